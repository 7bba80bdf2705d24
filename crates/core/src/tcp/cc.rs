//! Congestion control behind a trait: NewReno (RFC 5681, RFC 6582) and
//! CUBIC (RFC 9438). The sender owns loss detection and recovery (fast
//! retransmit, the SACK scoreboard); a controller only decides the window
//! and the slow-start threshold at each event.

use super::hystart::{HyStart, Phase, CSS_GROWTH_DIVISOR};
use super::rate::RateSample;
use crate::time::{Duration, Instant};
use core::fmt;
use ustack_wire::SeqNumber;

/// Loss-recovery state, as Linux names them (`ca_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaState {
    /// Normal transmission.
    Open,
    /// Fast recovery (RFC 6582 NewReno, or RFC 6675 with SACK).
    Recovery,
    /// After a retransmission timeout, until everything sent before it is ACKed.
    Loss,
}

impl CaState {
    pub fn name(self) -> &'static str {
        match self {
            CaState::Open => "Open",
            CaState::Recovery => "Recovery",
            CaState::Loss => "Loss",
        }
    }
}

/// What the sender asks of a congestion controller. Windows are in bytes.
pub trait CongestionControl: fmt::Debug + Send {
    /// The name TCP_CONGESTION and `ss` show.
    fn name(&self) -> &'static str;
    /// Congestion window.
    fn window(&self) -> u32;
    /// Slow-start threshold.
    fn ssthresh(&self) -> u32;
    /// `acked` new bytes were cumulatively acknowledged outside loss
    /// recovery; `srtt` is the smoothed RTT (zero before a sample).
    fn on_ack(&mut self, now: Instant, acked: u32, mss: u32, srtt: Duration);
    /// Loss detected by duplicate ACKs or SACK (entering fast recovery):
    /// lower ssthresh and set cwnd to it (RFC 5681 §3.2, RFC 6675 §5).
    fn on_loss(&mut self, now: Instant, flight: u32, mss: u32);
    /// The retransmission timer expired (RFC 5681 §3.1 eq. 4: cwnd = 1 MSS);
    /// ssthresh is lowered only on the `first` timeout of a loss episode.
    fn on_rto(&mut self, now: Instant, flight: u32, mss: u32, first: bool);
    /// Fast recovery ended: cwnd = ssthresh (RFC 6582 §3.2 step 3, option 2).
    fn on_recovery_end(&mut self, now: Instant);
    /// The Loss state after a timeout ended: what was outstanding at the
    /// timeout is ACKed. Nothing for loss-based controllers (they grow
    /// from ssthresh); BBR restores its cwnd, as Linux's
    /// `bbr_set_cwnd_to_recover_or_restore`.
    fn on_loss_end(&mut self, _now: Instant) {}
    /// Sending resumes after an idle period longer than the RTO
    /// (RFC 5681 §4.1): cwnd = min(cwnd, restart window).
    fn on_idle_restart(&mut self, now: Instant, restart: u32);
    /// Whether this controller wants `on_ack_sample` (the sender then
    /// keeps per-send delivery snapshots, `rate.rs`).
    fn wants_rate_samples(&self) -> bool {
        false
    }
    /// Every ACK, in any state, after loss detection: the delivery-rate
    /// sample it made (draft-cheng-iccrg-delivery-rate-estimation §3.3).
    fn on_ack_sample(&mut self, _now: Instant, _rs: &RateSample, _mss: u32) {}
    /// The rate (bytes/s) this controller wants data paced at, if it
    /// paces; `None` leaves it to the stack (`pacing.rs`).
    fn pacing_rate(&self) -> Option<u64> {
        None
    }
    /// For TCP_INFO: the controller's bandwidth estimate (bytes/s) and
    /// its state's name, if it models the path (BBR; Linux `bbr_get_info`).
    fn model(&self) -> Option<(u64, &'static str)> {
        None
    }
    /// Every ACK that moved SND.UNA outside recovery, before `on_ack`:
    /// the ACK, SND.NXT (rounds), and its RTT sample if it made one.
    fn on_ack_rtt(
        &mut self,
        _now: Instant,
        _ack: SeqNumber,
        _snd_nxt: SeqNumber,
        _rtt: Option<Duration>,
    ) {
    }
    /// An ECN echo (RFC 3168 §6.1.2): as a loss, without recovery.
    fn on_ecn(&mut self, now: Instant, flight: u32, mss: u32) {
        self.on_loss(now, flight, mss);
    }
}

/// RFC 3465 §2.2: slow start grows by at most L = 2 SMSS per ACK.
const ABC_L: u32 = 2;
/// RFC 9406 §4.2: HyStart++'s L for a sender that does not pace (a paced
/// one SHOULD use no limit): a stretch ACK of up to 8 segments counts whole.
const HYSTART_L: u32 = 8;

/// Slow start (RFC 5681 §3.1 with RFC 3465: at most `l` SMSS per ACK).
/// Returns the bytes of `acked` left over after slow start ended.
fn slow_start(cwnd: &mut u32, ssthresh: u32, acked: u32, mss: u32, l: u32) -> u32 {
    if *cwnd >= ssthresh {
        return acked;
    }
    let inc = acked.min(l.saturating_mul(mss));
    let room = ssthresh - *cwnd;
    *cwnd = cwnd.saturating_add(inc.min(room));
    acked.saturating_sub(room)
}

/// NewReno (RFC 5681 §3.1, RFC 6582).
#[derive(Debug, Clone)]
pub struct NewReno {
    cwnd: u32,
    ssthresh: u32,
    /// Bytes ACKed since cwnd last grew in congestion avoidance.
    acked_acc: u32,
}

impl NewReno {
    pub fn new(initial: u32) -> NewReno {
        NewReno {
            cwnd: initial,
            ssthresh: u32::MAX,
            acked_acc: 0,
        }
    }
}

impl CongestionControl for NewReno {
    fn name(&self) -> &'static str {
        "newreno"
    }
    fn window(&self) -> u32 {
        self.cwnd
    }
    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
    fn on_ack(&mut self, _now: Instant, acked: u32, mss: u32, _srtt: Duration) {
        let rest = slow_start(&mut self.cwnd, self.ssthresh, acked, mss, ABC_L);
        if self.cwnd < self.ssthresh || rest == 0 {
            return;
        }
        // Congestion avoidance: cwnd += SMSS once per cwnd of bytes ACKed
        // (RFC 5681 §3.1, the byte-counting variant).
        self.acked_acc = self.acked_acc.saturating_add(rest);
        if self.acked_acc >= self.cwnd {
            self.acked_acc -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(mss);
        }
    }
    fn on_loss(&mut self, _now: Instant, flight: u32, mss: u32) {
        // RFC 5681 eq. 4: ssthresh = max(FlightSize / 2, 2 SMSS).
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = self.ssthresh;
        self.acked_acc = 0;
    }
    fn on_rto(&mut self, _now: Instant, flight: u32, mss: u32, first: bool) {
        if first {
            self.ssthresh = (flight / 2).max(2 * mss);
        }
        self.cwnd = mss;
        self.acked_acc = 0;
    }
    fn on_recovery_end(&mut self, _now: Instant) {
        self.cwnd = self.ssthresh;
    }
    fn on_idle_restart(&mut self, _now: Instant, restart: u32) {
        self.cwnd = self.cwnd.min(restart);
    }
}

/// CUBIC (RFC 9438), in units of segments internally, as the RFC writes it.
#[derive(Debug, Clone)]
pub struct Cubic {
    cwnd: u32,
    ssthresh: u32,
    /// W_max: the window (segments) before the last reduction.
    w_max: f64,
    /// When the current congestion-avoidance epoch began, and K.
    epoch: Option<(Instant, f64)>,
    /// The Reno-friendly estimate W_est (segments), RFC 9438 §4.3.
    w_est: f64,
    /// cwnd_prior: the window (segments) just before the last reduction;
    /// W_est grows at α = 1 once it gets there (RFC 9438 §4.3).
    cwnd_prior: f64,
    /// Growth (bytes) not yet added to cwnd.
    frac: f64,
    /// HyStart++ (RFC 9406) in the initial slow start; `None`: off.
    hystart: Option<HyStart>,
}

/// RFC 9438 §4.6: multiplicative decrease factor β_cubic.
pub const CUBIC_BETA: f64 = 0.7;
/// RFC 9438 §5: C = 0.4.
const CUBIC_C: f64 = 0.4;

impl Cubic {
    pub fn new(initial: u32) -> Cubic {
        Cubic {
            cwnd: initial,
            ssthresh: u32::MAX,
            w_max: 0.0,
            epoch: None,
            w_est: 0.0,
            cwnd_prior: 0.0,
            frac: 0.0,
            hystart: Some(HyStart::default()),
        }
    }

    /// CUBIC with standard slow start only (no HyStart++).
    pub fn without_hystart(initial: u32) -> Cubic {
        Cubic {
            hystart: None,
            ..Cubic::new(initial)
        }
    }

    fn reduce(&mut self, mss: u32) {
        if let Some(h) = self.hystart.as_mut() {
            h.stop();
        }
        let cwnd_seg = f64::from(self.cwnd) / f64::from(mss);
        self.cwnd_prior = cwnd_seg;
        // Fast convergence (RFC 9438 §4.7): release bandwidth to newer flows.
        self.w_max = if cwnd_seg < self.w_max {
            cwnd_seg * (1.0 + CUBIC_BETA) / 2.0
        } else {
            cwnd_seg
        };
        self.ssthresh = ((f64::from(self.cwnd) * CUBIC_BETA) as u32).max(2 * mss);
        self.epoch = None;
        self.frac = 0.0;
    }
}

impl CongestionControl for Cubic {
    fn name(&self) -> &'static str {
        "cubic"
    }
    fn window(&self) -> u32 {
        self.cwnd
    }
    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
    fn on_ack(&mut self, now: Instant, acked: u32, mss: u32, srtt: Duration) {
        let phase = self.hystart.map(|h| h.phase());
        if self.cwnd < self.ssthresh && phase == Some(Phase::Css) {
            // Conservative Slow Start (RFC 9406 §4.2).
            let inc = acked.min(HYSTART_L * mss) / CSS_GROWTH_DIVISOR;
            self.cwnd = self.cwnd.saturating_add(inc).min(self.ssthresh);
            return;
        }
        // HyStart++'s own slow start (the initial one) takes L = 8; the
        // slow start after a timeout is RFC 5681's, with RFC 3465's L.
        let l = if phase == Some(Phase::SlowStart) {
            HYSTART_L
        } else {
            ABC_L
        };
        let rest = slow_start(&mut self.cwnd, self.ssthresh, acked, mss, l);
        if self.cwnd < self.ssthresh || rest == 0 {
            return;
        }
        let mssf = f64::from(mss);
        let cwnd_seg = f64::from(self.cwnd) / mssf;
        let (start, k) = *self.epoch.get_or_insert_with(|| {
            // A new epoch (RFC 9438 §4.2): K = cbrt((W_max - cwnd) / C).
            self.w_est = cwnd_seg;
            let k = if self.w_max > cwnd_seg {
                ((self.w_max - cwnd_seg) / CUBIC_C).cbrt()
            } else {
                self.w_max = cwnd_seg;
                0.0
            };
            (now, k)
        });
        // W_cubic(t + RTT) as the target (RFC 9438 §4.2), clamped to
        // [cwnd, 1.5 cwnd].
        let t = (now - start).as_secs_f64() + srtt.as_secs_f64();
        let w_cubic = CUBIC_C * (t - k).powi(3) + self.w_max;
        let target = w_cubic.clamp(cwnd_seg, 1.5 * cwnd_seg);
        // Reno-friendly region (RFC 9438 §4.3): α = 3(1-β)/(1+β), and 1
        // (Reno's own rate) once W_est has regained cwnd_prior.
        let alpha = if self.w_est >= self.cwnd_prior {
            1.0
        } else {
            3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA)
        };
        let segs_acked = f64::from(rest) / mssf;
        self.w_est += alpha * segs_acked / cwnd_seg;
        // Growth per ACK: (target - cwnd) / cwnd segments per segment ACKed.
        let grow_seg = if self.w_est > target {
            (self.w_est - cwnd_seg).max(0.0) * segs_acked / cwnd_seg
        } else {
            (target - cwnd_seg) * segs_acked / cwnd_seg
        };
        // Whole bytes only; the fraction carries to the next ACK.
        self.frac += grow_seg * mssf;
        let add = self.frac.floor();
        self.frac -= add;
        self.cwnd = self.cwnd.saturating_add(add as u32).max(2 * mss);
    }
    fn on_loss(&mut self, _now: Instant, _flight: u32, mss: u32) {
        self.reduce(mss);
        self.cwnd = self.ssthresh;
    }
    fn on_rto(&mut self, _now: Instant, _flight: u32, mss: u32, first: bool) {
        if first {
            self.reduce(mss);
        }
        self.cwnd = mss;
    }
    fn on_ack_rtt(
        &mut self,
        _now: Instant,
        ack: SeqNumber,
        snd_nxt: SeqNumber,
        rtt: Option<Duration>,
    ) {
        // Only the initial slow start (RFC 9406 §4.3: not after a timeout).
        if self.ssthresh != u32::MAX {
            return;
        }
        let Some(h) = self.hystart.as_mut() else {
            return;
        };
        let rtt_us = rtt.map(|d| d.as_micros() as u64);
        if h.on_ack(ack, snd_nxt, rtt_us) == Phase::Exit {
            // Congestion avoidance from the window reached.
            self.ssthresh = self.cwnd;
            self.w_max = 0.0;
        }
    }
    fn on_recovery_end(&mut self, _now: Instant) {
        self.cwnd = self.ssthresh;
    }
    fn on_idle_restart(&mut self, _now: Instant, restart: u32) {
        self.cwnd = self.cwnd.min(restart);
        self.epoch = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;

    #[test]
    fn newreno_slow_start_then_avoidance() {
        let now = Instant::ZERO;
        let mut c = NewReno::new(10 * MSS);
        // Slow start: +min(acked, 2 SMSS) per ACK.
        c.on_ack(now, 2 * MSS, MSS, Duration::ZERO);
        assert_eq!(c.window(), 12 * MSS);
        c.on_ack(now, 5 * MSS, MSS, Duration::ZERO);
        assert_eq!(c.window(), 14 * MSS);
        c.on_loss(now, 14 * MSS, MSS);
        assert_eq!((c.window(), c.ssthresh()), (7 * MSS, 7 * MSS));
        // Congestion avoidance: one SMSS per cwnd of bytes ACKed.
        for _ in 0..6 {
            c.on_ack(now, MSS, MSS, Duration::ZERO);
        }
        assert_eq!(c.window(), 7 * MSS);
        c.on_ack(now, MSS, MSS, Duration::ZERO);
        assert_eq!(c.window(), 8 * MSS);
        c.on_rto(now, 8 * MSS, MSS, true);
        assert_eq!((c.window(), c.ssthresh()), (MSS, 4 * MSS));
        c.on_rto(now, MSS, MSS, false);
        assert_eq!((c.window(), c.ssthresh()), (MSS, 4 * MSS), "held");
        c.on_loss(now, MSS, MSS);
        assert_eq!(c.ssthresh(), 2 * MSS, "never below 2 SMSS");
    }

    #[test]
    fn cubic_reduces_by_beta_and_regrows_to_w_max() {
        let mut now = Instant::ZERO;
        let mut c = Cubic::new(100 * MSS);
        c.ssthresh = 100 * MSS;
        c.on_loss(now, 100 * MSS, MSS);
        assert_eq!(c.window(), 70 * MSS);
        assert_eq!(c.ssthresh(), 70 * MSS);
        // K = cbrt(30 / 0.4) ≈ 4.22 s: by then the window is back near W_max.
        let rtt = Duration::from_millis(100);
        let mut at_k = 0;
        for step in 0..100 {
            now = Instant::ZERO + Duration::from_millis(100 * step);
            // One window of ACKs per RTT.
            let segs = c.window() / MSS;
            for _ in 0..segs {
                c.on_ack(now, MSS, MSS, rtt);
            }
            if step == 42 {
                at_k = c.window();
            }
        }
        let at_k = at_k / MSS;
        assert!((95..=105).contains(&at_k), "cwnd at K is {at_k} segments");
        assert!(c.window() > 100 * MSS, "probes beyond W_max after K");
    }

    /// Slow start with HyStart++ (RFC 9406) on a scripted ACK stream:
    /// rounds of one ACK per segment in flight, the RTT flat, then up by
    /// 10 ms: CSS (growth a quarter), then congestion avoidance.
    #[test]
    fn hystart_leaves_slow_start_on_an_rtt_rise() {
        fn round(c: &mut Cubic, seq: &mut u32, now: &mut Instant, rtt_ms: u64) -> u32 {
            let segs = c.window() / MSS;
            let before = c.window();
            *now += Duration::from_millis(rtt_ms);
            for _ in 0..segs {
                *seq += MSS;
                let rtt = Some(Duration::from_millis(rtt_ms));
                c.on_ack_rtt(*now, SeqNumber(*seq), SeqNumber(*seq + c.window()), rtt);
                c.on_ack(*now, MSS, MSS, Duration::from_millis(rtt_ms));
            }
            c.window() - before
        }
        for hystart in [true, false] {
            let mut c = if hystart {
                Cubic::new(10 * MSS)
            } else {
                Cubic::without_hystart(10 * MSS)
            };
            let (mut seq, mut now) = (0u32, Instant::ZERO);
            for _ in 0..3 {
                let grew = round(&mut c, &mut seq, &mut now, 40);
                assert!(grew >= c.window() / 2 - MSS, "slow start doubles: +{grew}");
            }
            assert_eq!(c.ssthresh(), u32::MAX);
            // The RTT rises by 10 ms (over max(40/8, 4) ms).
            let w = c.window();
            let grew = round(&mut c, &mut seq, &mut now, 50);
            if !hystart {
                assert_eq!(grew, w, "standard slow start doubles on");
                continue;
            }
            // CSS from the 8th sample: a quarter of the growth after it.
            assert!(grew < w / 2, "+{grew} of {w}");
            assert_eq!(c.ssthresh(), u32::MAX, "still slow start (CSS)");
            for _ in 0..4 {
                let w = c.window();
                let grew = round(&mut c, &mut seq, &mut now, 50);
                assert!(grew <= w / 4 + MSS, "CSS: +{grew} of {w}");
            }
            round(&mut c, &mut seq, &mut now, 50);
            // Congestion avoidance from the window reached (grown a little since).
            let (w, t) = (c.window(), c.ssthresh());
            assert!(t <= w && w - t < MSS, "ssthresh {t}, cwnd {w}");
        }
    }

    #[test]
    fn cubic_fast_convergence() {
        let now = Instant::ZERO;
        let mut c = Cubic::new(100 * MSS);
        c.on_loss(now, 0, MSS);
        c.on_loss(now, 0, MSS);
        // Second loss below W_max: W_max = 70 × (1 + β) / 2.
        assert!((c.w_max - 59.5).abs() < 1e-9);
        assert_eq!(c.window(), 49 * MSS);
    }
}
