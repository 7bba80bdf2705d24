//! BBR version 1 (draft-cardwell-iccrg-bbr-congestion-control-00, as
//! Linux's `tcp_bbr.c`): a model of the path from delivery-rate samples
//! (`rate.rs`): the bottleneck bandwidth (windowed max over 10 round
//! trips) and the round-trip propagation time (windowed min over 10 s).
//! It paces at `pacing_gain` × bandwidth and keeps `cwnd_gain` × BDP in
//! flight, through four states: STARTUP (gain 2/ln 2 until the bandwidth
//! stops growing 25 % in three rounds), DRAIN (until the queue STARTUP
//! made is gone), PROBE_BW (an eight-phase gain cycle 1.25, 0.75, 1 × 6)
//! and PROBE_RTT (4 segments for 200 ms and a round, when the min RTT is
//! 10 s old).
//!
//! Why version 1 rather than the CCWG's v3: v1 is what Linux runs (this
//! machine's `tcp_bbr.c`, the sender the issue measured), so the two can
//! be compared like for like; v1's specification is complete and stable
//! where v3's drafts still change; and on random (non-congestive) loss,
//! the case asked for, v1 is the stronger: it does not react to loss
//! beyond packet conservation in recovery (draft §4.2.3.5), where v3
//! caps inflight on a 2 % loss rate.

use super::cc::CongestionControl;
use super::rate::RateSample;
use crate::time::{Duration, Instant};

/// 2/ln(2) ≈ 2.885 (draft §4.2.3.1), in 1/1000.
const HIGH_GAIN: u64 = 2885;
/// 1/HIGH_GAIN (draft §4.2.3.2).
const DRAIN_GAIN: u64 = 1000 * 1000 / HIGH_GAIN;
/// PROBE_BW's cwnd gain.
const CWND_GAIN: u64 = 2000;
/// PROBE_BW's pacing gain cycle (draft §4.2.3.3).
const CYCLE: [u64; 8] = [1250, 750, 1000, 1000, 1000, 1000, 1000, 1000];
/// The max-bandwidth filter's window, in round trips.
const BW_ROUNDS: u64 = 10;
/// The min-RTT filter's window.
const MIN_RTT_WINDOW: Duration = Duration::from_secs(10);
/// PROBE_RTT lasts at least this long (and a round trip).
const PROBE_RTT_TIME: Duration = Duration::from_millis(200);
/// The least cwnd, in segments (draft: BBRMinPipeCwnd).
const MIN_CWND_SEGS: u32 = 4;
/// Full pipe: the bandwidth grew by less than 25 % in three rounds.
const FULL_BW_GROWTH: u64 = 1250;
const FULL_BW_ROUNDS: u32 = 3;
/// A round with at least this share of its segments lost (percent) is a
/// full pipe's even in recovery (Linux `bbr_lt_loss_thresh`, 50/256).
const FULL_BW_LOSS_PCT: u64 = 20;
/// Pace 1 % below the estimate (Linux `bbr_pacing_margin_percent`).
const PACING_MARGIN: u64 = 99;

/// BBR's state (draft §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BbrMode {
    Startup,
    Drain,
    ProbeBw,
    ProbeRtt,
}

/// Kathleen Nichols' windowed max (Linux `lib/minmax.c`): the best, second
/// and third best values of the window, so the max expires on time.
#[derive(Debug, Clone, Copy, Default)]
struct MaxFilter {
    s: [(u64, u64); 3],
}

impl MaxFilter {
    fn get(&self) -> u64 {
        self.s[0].1
    }
    fn reset(&mut self, t: u64, v: u64) {
        self.s = [(t, v); 3];
    }
    fn update(&mut self, win: u64, t: u64, v: u64) {
        if v >= self.s[0].1 || t.saturating_sub(self.s[2].0) > win {
            self.reset(t, v);
            return;
        }
        if v >= self.s[1].1 {
            self.s[1] = (t, v);
            self.s[2] = (t, v);
        } else if v >= self.s[2].1 {
            self.s[2] = (t, v);
        }
        let dt = t.saturating_sub(self.s[0].0);
        if dt > win {
            self.s = [self.s[1], self.s[2], (t, v)];
            if t.saturating_sub(self.s[0].0) > win {
                self.s = [self.s[1], self.s[2], (t, v)];
            }
        } else if self.s[1].0 == self.s[0].0 && dt > win / 4 {
            self.s[1] = (t, v);
            self.s[2] = (t, v);
        } else if self.s[2].0 == self.s[1].0 && dt > win / 2 {
            self.s[2] = (t, v);
        }
    }
}

/// BBR v1 (see the module documentation). Windows in bytes, rates in bytes/s.
#[derive(Debug, Clone)]
pub struct Bbr {
    mode: BbrMode,
    cwnd: u32,
    /// cwnd before recovery or PROBE_RTT, restored after.
    prior_cwnd: u32,
    mss: u32,
    bw: MaxFilter,
    min_rtt_us: u64,
    min_rtt_at: Instant,
    /// Round counting by delivered bytes (draft §4.1.1.3).
    rounds: u64,
    next_round_delivered: u64,
    round_start: bool,
    /// Full-pipe detection (draft §4.2.3.2).
    full_bw: u64,
    full_bw_count: u32,
    full_bw_reached: bool,
    /// The round in progress saw a recovery or timeout cut cwnd, and lost
    /// `round_lost` segments out of those delivered since `round_from`.
    round_restrained: bool,
    round_lost: u64,
    round_from: u64,
    pacing_gain: u64,
    cwnd_gain: u64,
    pacing_rate: u64,
    cycle_index: usize,
    cycle_start: Instant,
    /// In recovery: cwnd follows what is delivered for a round.
    conservation: bool,
    in_recovery: bool,
    /// A recovery ended in the ACK being processed: cwnd before its
    /// restore, in case the same ACK begins the next one.
    ended: Option<u32>,
    probe_rtt_done: Option<Instant>,
    probe_rtt_round_done: bool,
    delivered: u64,
    /// The pacing rate was set from the first RTT sample.
    has_seen_rtt: bool,
}

impl Bbr {
    pub fn new(initial: u32, mss: u32) -> Bbr {
        let mss = mss.max(1);
        // Before an RTT sample: the initial window over 1 ms (Linux
        // `bbr_init_pacing_rate_from_rtt`), times the high gain.
        let pacing_rate = u64::from(initial) * 1000 * HIGH_GAIN / 1000;
        Bbr {
            mode: BbrMode::Startup,
            cwnd: initial,
            prior_cwnd: 0,
            mss,
            bw: MaxFilter::default(),
            min_rtt_us: u64::MAX,
            min_rtt_at: Instant::ZERO,
            rounds: 0,
            next_round_delivered: 0,
            round_start: false,
            full_bw: 0,
            full_bw_count: 0,
            full_bw_reached: false,
            round_restrained: false,
            round_lost: 0,
            round_from: 0,
            pacing_gain: HIGH_GAIN,
            cwnd_gain: HIGH_GAIN,
            pacing_rate,
            cycle_index: 0,
            cycle_start: Instant::ZERO,
            conservation: false,
            in_recovery: false,
            ended: None,
            probe_rtt_done: None,
            probe_rtt_round_done: false,
            delivered: 0,
            has_seen_rtt: false,
        }
    }

    /// The current state.
    pub fn mode(&self) -> BbrMode {
        self.mode
    }
    /// The bottleneck bandwidth estimate (bytes/s).
    pub fn max_bw(&self) -> u64 {
        self.bw.get()
    }
    /// The round-trip propagation time estimate.
    pub fn min_rtt(&self) -> Option<Duration> {
        (self.min_rtt_us != u64::MAX).then(|| Duration::from_micros(self.min_rtt_us))
    }

    /// gain × bandwidth × min RTT in bytes (draft §4.2.3.2 BBRInflight);
    /// before an RTT sample, the initial window.
    fn bdp(&self, gain: u64) -> u64 {
        if self.min_rtt_us == u64::MAX {
            return u64::from(10 * self.mss) * gain / 1000;
        }
        let bdp = u128::from(self.bw.get()) * u128::from(self.min_rtt_us) / 1_000_000;
        (bdp * u128::from(gain) / 1000).min(u128::from(u32::MAX)) as u64
    }

    /// Segments per burst at the pacing rate (Linux `bbr_tso_segs_goal`).
    fn tso_segs(&self) -> u64 {
        let min = if self.pacing_rate < 150_000 { 1 } else { 2 };
        ((self.pacing_rate >> 10) / u64::from(self.mss)).clamp(min, 44)
    }

    /// The cwnd target: the BDP at `gain`, plus room for three bursts
    /// (Linux `bbr_quantization_budget`), even, and two segments more in
    /// the probing phase.
    fn target_cwnd(&self, gain: u64) -> u64 {
        let mss = u64::from(self.mss);
        let mut t = self.bdp(gain) + 3 * self.tso_segs() * mss;
        let segs = t.div_ceil(mss);
        t = (segs + (segs & 1)) * mss;
        if self.mode == BbrMode::ProbeBw && self.cycle_index == 0 {
            t += 2 * mss;
        }
        t
    }

    /// Leaving recovery: cwnd back to what it was before.
    fn restore(&mut self) {
        self.in_recovery = false;
        self.conservation = false;
        self.cwnd = self.cwnd.max(self.prior_cwnd);
    }

    fn min_cwnd(&self) -> u32 {
        MIN_CWND_SEGS * self.mss
    }

    fn save_cwnd(&mut self) {
        self.prior_cwnd = if self.in_recovery || self.mode == BbrMode::ProbeRtt {
            self.prior_cwnd.max(self.cwnd)
        } else {
            self.cwnd
        };
    }

    fn enter_probe_bw(&mut self, now: Instant) {
        self.mode = BbrMode::ProbeBw;
        // A phase other than the 0.75 one, chosen from what was
        // delivered (Linux picks at random; no RNG here).
        let r = (self.delivered / u64::from(self.mss)) % 7;
        self.cycle_index = (CYCLE.len() - 1 - r as usize) % CYCLE.len();
        if self.cycle_index == 1 {
            self.cycle_index = 2;
        }
        self.cycle_start = now;
    }

    fn update_round(&mut self, rs: &RateSample) {
        self.round_start = false;
        if rs.rtt_us.is_some() && rs.prior_delivered >= self.next_round_delivered {
            self.next_round_delivered = rs.delivered_total;
            self.rounds += 1;
            self.round_start = true;
            self.conservation = false;
        }
    }

    fn update_bw(&mut self, rs: &RateSample) {
        let Some(bw) = rs.rate() else { return };
        // App-limited samples only raise the estimate (draft §4.1.1.4).
        if !rs.is_app_limited || bw >= self.bw.get() {
            self.bw.update(BW_ROUNDS, self.rounds, bw);
        }
    }

    fn update_cycle(&mut self, now: Instant, rs: &RateSample) {
        if self.mode != BbrMode::ProbeBw {
            return;
        }
        let full =
            now.saturating_duration_since(self.cycle_start).as_micros() as u64 > self.min_rtt_us;
        let gain = CYCLE[self.cycle_index];
        let inflight = u64::from(rs.in_flight);
        let next = match gain {
            1000 => full,
            g if g > 1000 => full && (rs.losses > 0 || inflight >= self.bdp(g)),
            _ => full || inflight <= self.bdp(1000),
        };
        if next {
            self.cycle_index = (self.cycle_index + 1) % CYCLE.len();
            self.cycle_start = now;
        }
    }

    /// Whether the round that just ended can show a full pipe: not
    /// app-limited (draft §4.2.3.2), and not held down by our own loss
    /// response. BBR v1 does not leave STARTUP on random loss, but each
    /// recovery sets cwnd to what is in flight and conserves packets for
    /// a round (§4.2.3.5): at 1-5 % random loss, with a recovery every
    /// two rounds, that alone flattens the delivery rate for rounds on
    /// end, and STARTUP left at a tenth of the path's rate. A round in
    /// which a recovery began (or a timeout fired) counts only if its loss
    /// was heavy (≥ [`FULL_BW_LOSS_PCT`]): a queue overflowing, a full pipe.
    fn round_shows_full_pipe(&mut self, rs: &RateSample) -> bool {
        if !self.round_start {
            self.round_lost += u64::from(rs.losses);
            return false;
        }
        let delivered = rs.delivered_total.saturating_sub(self.round_from) / u64::from(self.mss);
        let heavy = self.round_lost * 100 >= delivered * FULL_BW_LOSS_PCT;
        let counts = !rs.is_app_limited && (!self.round_restrained || heavy);
        self.round_restrained = false;
        self.round_lost = u64::from(rs.losses);
        self.round_from = rs.delivered_total;
        counts
    }

    fn check_full_pipe(&mut self, rs: &RateSample) {
        let counts = self.round_shows_full_pipe(rs);
        if self.full_bw_reached || !counts {
            return;
        }
        let bw = self.bw.get();
        if bw >= self.full_bw.saturating_mul(FULL_BW_GROWTH) / 1000 {
            self.full_bw = bw;
            self.full_bw_count = 0;
            return;
        }
        self.full_bw_count += 1;
        self.full_bw_reached = self.full_bw_count >= FULL_BW_ROUNDS;
    }

    fn check_drain(&mut self, now: Instant, rs: &RateSample) {
        if self.mode == BbrMode::Startup && self.full_bw_reached {
            self.mode = BbrMode::Drain;
        }
        if self.mode == BbrMode::Drain && u64::from(rs.in_flight) <= self.bdp(1000) {
            self.enter_probe_bw(now);
        }
    }

    fn update_min_rtt(&mut self, now: Instant, rs: &RateSample) {
        // No estimate yet is not an old one (Linux stamps it at init).
        let expired = self.min_rtt_us != u64::MAX && now > self.min_rtt_at + MIN_RTT_WINDOW;
        if let Some(rtt) = rs.rtt_us {
            if rtt < self.min_rtt_us || expired {
                self.min_rtt_us = rtt;
                self.min_rtt_at = now;
            }
        }
        if expired && self.mode != BbrMode::ProbeRtt {
            self.mode = BbrMode::ProbeRtt;
            self.save_cwnd();
            self.probe_rtt_done = None;
        }
        if self.mode != BbrMode::ProbeRtt {
            return;
        }
        match self.probe_rtt_done {
            None if rs.in_flight <= self.min_cwnd() => {
                self.probe_rtt_done = Some(now + PROBE_RTT_TIME);
                self.probe_rtt_round_done = false;
                self.next_round_delivered = rs.delivered_total;
            }
            None => {}
            Some(done) => {
                if self.round_start {
                    self.probe_rtt_round_done = true;
                }
                if self.probe_rtt_round_done && now >= done {
                    self.min_rtt_at = now;
                    self.cwnd = self.cwnd.max(self.prior_cwnd);
                    if self.full_bw_reached {
                        self.enter_probe_bw(now);
                    } else {
                        self.mode = BbrMode::Startup;
                    }
                }
            }
        }
    }

    fn update_gains(&mut self) {
        (self.pacing_gain, self.cwnd_gain) = match self.mode {
            BbrMode::Startup => (HIGH_GAIN, HIGH_GAIN),
            BbrMode::Drain => (DRAIN_GAIN, HIGH_GAIN),
            BbrMode::ProbeBw => (CYCLE[self.cycle_index], CWND_GAIN),
            BbrMode::ProbeRtt => (1000, 1000),
        };
    }

    /// At the first RTT sample the pacing rate starts over from it: the
    /// high gain × cwnd / RTT (Linux `bbr_init_pacing_rate_from_rtt`);
    /// until then it assumed an RTT of 1 ms, so STARTUP would not pace.
    fn init_pacing_rate_from_rtt(&mut self, rs: &RateSample) {
        let Some(rtt) = rs.rtt_us.filter(|_| !self.has_seen_rtt) else {
            return;
        };
        self.has_seen_rtt = true;
        let bw = u64::from(self.cwnd) * 1_000_000 / rtt.max(1);
        self.pacing_rate = (bw * HIGH_GAIN / 1000 * PACING_MARGIN / 100).max(1);
    }

    fn set_pacing_rate(&mut self) {
        let bw = self.bw.get();
        if bw == 0 {
            return;
        }
        let rate = bw * self.pacing_gain / 1000 * PACING_MARGIN / 100;
        // In STARTUP the rate only grows (Linux `bbr_set_pacing_rate`).
        if self.full_bw_reached || rate > self.pacing_rate {
            self.pacing_rate = rate.max(1);
        }
    }

    fn set_cwnd(&mut self, rs: &RateSample) {
        let acked = rs.acked_sacked;
        if self.conservation {
            // Packet conservation for the first round of recovery.
            self.cwnd = self.cwnd.max(rs.in_flight.saturating_add(acked));
        } else if acked > 0 {
            let target = self.target_cwnd(self.cwnd_gain).min(u64::from(u32::MAX)) as u32;
            if self.full_bw_reached {
                self.cwnd = self.cwnd.saturating_add(acked).min(target);
            } else if self.cwnd < target || self.delivered < u64::from(10 * self.mss) {
                self.cwnd = self.cwnd.saturating_add(acked);
            }
        }
        self.cwnd = self.cwnd.max(self.min_cwnd());
        if self.mode == BbrMode::ProbeRtt {
            self.cwnd = self.cwnd.min(self.min_cwnd());
        }
    }
}

impl CongestionControl for Bbr {
    fn name(&self) -> &'static str {
        "bbr"
    }
    fn window(&self) -> u32 {
        self.cwnd
    }
    fn ssthresh(&self) -> u32 {
        u32::MAX
    }
    fn on_ack(&mut self, _now: Instant, _acked: u32, _mss: u32, _srtt: Duration) {}
    fn on_loss(&mut self, _now: Instant, _flight: u32, _mss: u32) {
        if let Some(cwnd) = self.ended.take() {
            // The ACK that ended a recovery begins the next: to Linux that
            // is no change of state (Recovery before and after the ACK,
            // `bbr_set_cwnd_to_recover_or_restore`), so neither the
            // restore nor a new cut and round of conservation. At 5 %
            // loss nearly every recovery ends so, and each cut took cwnd
            // down to what was in flight, often a tenth of it.
            self.cwnd = cwnd;
            self.in_recovery = true;
            return;
        }
        // Recovery (draft §4.2.3.5): save cwnd, conserve packets for a
        // round; the ACK's sample sets cwnd to what is in flight plus
        // what it delivered.
        self.save_cwnd();
        self.in_recovery = true;
        self.round_restrained = true;
        self.conservation = true;
        self.next_round_delivered = self.delivered;
        self.cwnd = self.min_cwnd();
    }
    fn on_rto(&mut self, _now: Instant, _flight: u32, mss: u32, _first: bool) {
        self.ended = None;
        self.save_cwnd();
        self.in_recovery = false;
        self.round_restrained = true;
        self.conservation = false;
        // Linux: the timeout ends a round, and full-pipe detection starts over.
        self.round_start = true;
        self.full_bw = 0;
        self.cwnd = mss;
    }
    fn on_recovery_end(&mut self, _now: Instant) {
        self.ended = Some(self.cwnd);
        self.restore();
    }
    fn on_loss_end(&mut self, _now: Instant) {
        // Linux leaves TCP_CA_Loss as it leaves recovery: cwnd restored.
        self.restore();
    }
    fn on_idle_restart(&mut self, _now: Instant, restart: u32) {
        self.cwnd = self.cwnd.min(restart).max(self.min_cwnd());
        if self.mode == BbrMode::ProbeBw {
            // Restarting from idle: pace at the estimate, not above it.
            self.pacing_rate = self.bw.get() * PACING_MARGIN / 100;
        }
    }
    fn wants_rate_samples(&self) -> bool {
        true
    }
    fn on_ecn(&mut self, _now: Instant, _flight: u32, _mss: u32) {
        // BBR v1 does not react to ECN (Linux `tcp_bbr.c`).
    }
    fn on_ack_sample(&mut self, now: Instant, rs: &RateSample, mss: u32) {
        // The end of the ACK's processing: a recovery that ended in it stays ended.
        self.ended = None;
        self.mss = mss.max(1);
        self.delivered = rs.delivered_total;
        self.update_round(rs);
        self.update_bw(rs);
        self.update_cycle(now, rs);
        self.check_full_pipe(rs);
        self.check_drain(now, rs);
        self.update_min_rtt(now, rs);
        self.update_gains();
        self.init_pacing_rate_from_rtt(rs);
        self.set_pacing_rate();
        self.set_cwnd(rs);
    }
    fn pacing_rate(&self) -> Option<u64> {
        Some(self.pacing_rate)
    }
    fn model(&self) -> Option<(u64, &'static str)> {
        let mode = match self.mode {
            BbrMode::Startup => "startup",
            BbrMode::Drain => "drain",
            BbrMode::ProbeBw => "probe_bw",
            BbrMode::ProbeRtt => "probe_rtt",
        };
        Some((self.bw.get(), mode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u32 = 1000;
    /// The path the script plays: 10 MB/s bottleneck, 20 ms RTT, so a
    /// BDP of 200 000 bytes.
    const BW: u64 = 10_000_000;
    const RTT_US: u64 = 20_000;

    /// Plays rounds of ACKs: each round ten ACKs of `per_ack` bytes, each
    /// sampling `rate` at `rtt_us`, with `in_flight` left after it.
    struct Script {
        bbr: Bbr,
        now: Instant,
        delivered: u64,
        round_base: u64,
    }

    impl Script {
        fn new() -> Script {
            Script {
                bbr: Bbr::new(10 * MSS, MSS),
                now: Instant::from_secs(1),
                delivered: 0,
                round_base: 0,
            }
        }

        fn round(&mut self, rate: u64, rtt_us: u64, in_flight: u32) {
            self.round_with(rate, rtt_us, |_| in_flight, 0);
        }

        /// A round where what is in flight follows the pacing rate (a
        /// paced sender's: rate × RTT, and a segment more); returns the
        /// pacing gains (percent of the bandwidth) seen.
        fn paced_round(&mut self, rtt_us: u64) -> Vec<u64> {
            let mut gains = Vec::new();
            self.round_with(
                BW,
                rtt_us,
                |b| {
                    let r = b.pacing_rate().unwrap();
                    gains.push(r * 100 / BW);
                    (r * 100 / 99 * RTT_US / 1_000_000) as u32 + MSS
                },
                0,
            );
            gains
        }

        /// A round of ten ACKs sampling `rate` at `rtt_us`, `in_flight`
        /// asked before each, `lost` segments judged lost at the first.
        fn round_with(
            &mut self,
            rate: u64,
            rtt_us: u64,
            mut in_flight: impl FnMut(&Bbr) -> u32,
            lost: u32,
        ) {
            let per_ack = (rate * RTT_US / 1_000_000 / 10).max(u64::from(MSS));
            let prior = self.round_base;
            for i in 0..10 {
                let in_flight = in_flight(&self.bbr);
                self.now += Duration::from_micros(RTT_US / 10);
                self.delivered += per_ack;
                let rs = RateSample {
                    delivered: rate * RTT_US / 1_000_000,
                    interval_us: RTT_US,
                    prior_delivered: prior,
                    delivered_total: self.delivered,
                    rtt_us: Some(rtt_us),
                    is_app_limited: false,
                    acked_sacked: per_ack as u32,
                    in_flight,
                    losses: if i == 0 { lost } else { 0 },
                };
                self.bbr.on_ack_sample(self.now, &rs, MSS);
            }
            self.round_base = self.delivered;
        }
    }

    #[test]
    fn startup_drain_probe_bw_then_probe_rtt() {
        let mut s = Script::new();
        assert_eq!(s.bbr.mode(), BbrMode::Startup);
        // STARTUP: the delivery rate doubles each round until the
        // bottleneck; cwnd and pacing grow with the high gain.
        let mut rate = BW / 16;
        let mut rounds_flat = 0;
        while s.bbr.mode() == BbrMode::Startup {
            s.round(rate.min(BW), RTT_US, s.bbr.window());
            if rate >= BW {
                rounds_flat += 1;
            }
            rate *= 2;
            assert!(
                rounds_flat <= 4,
                "still in STARTUP after {rounds_flat} flat rounds"
            );
        }
        // Full pipe: three rounds without 25 % growth (the first flat
        // round still counted as growth).
        assert_eq!(rounds_flat, 4);
        assert_eq!(s.bbr.mode(), BbrMode::Drain);
        assert_eq!(s.bbr.max_bw(), BW);
        assert_eq!(s.bbr.min_rtt(), Some(Duration::from_micros(RTT_US)));
        // DRAIN paces below the bandwidth (1/2.885 of it).
        let drain_rate = s.bbr.pacing_rate().unwrap();
        assert!(drain_rate < BW / 2, "{drain_rate}");
        // Still more than a BDP in flight: DRAIN holds.
        s.round(BW, RTT_US, 300_000);
        assert_eq!(s.bbr.mode(), BbrMode::Drain);
        // The queue is gone (in flight at most a BDP): PROBE_BW.
        s.round(BW, RTT_US, 190_000);
        assert_eq!(s.bbr.mode(), BbrMode::ProbeBw);
        // PROBE_BW: cwnd 2 × BDP plus three ~1 ms bursts; pacing cycles
        // through 1.25, 0.75 and 1 × the bandwidth.
        let mut gains = std::collections::BTreeSet::new();
        for _ in 0..40 {
            gains.extend(s.paced_round(RTT_US + 2000));
            assert_eq!(s.bbr.mode(), BbrMode::ProbeBw);
            let w = u64::from(s.bbr.window());
            assert!((420_000..=440_000).contains(&w), "cwnd {w}");
        }
        assert_eq!(
            gains.into_iter().collect::<Vec<_>>(),
            vec![74, 99, 123],
            "pacing gains 0.75, 1, 1.25 (less the 1 % margin)"
        );
        // 10 s without an RTT as low as the minimum: PROBE_RTT, cwnd at
        // four segments.
        // (The minimum was taken at the first ACK, 1.002 s.)
        while s.now < Instant::from_secs(11) {
            assert_eq!(s.bbr.mode(), BbrMode::ProbeBw, "at {:?}", s.now);
            s.paced_round(RTT_US + 2000);
        }
        s.paced_round(RTT_US + 2000);
        assert_eq!(s.bbr.mode(), BbrMode::ProbeRtt);
        assert_eq!(s.bbr.window(), 4 * MSS);
        // With four segments in flight for 200 ms and a round: back to
        // PROBE_BW with the window it had.
        for _ in 0..20 {
            s.round(BW, RTT_US + 2000, 4 * MSS);
            if s.bbr.mode() != BbrMode::ProbeRtt {
                break;
            }
        }
        assert_eq!(s.bbr.mode(), BbrMode::ProbeBw);
        assert!(s.bbr.window() >= 400_000);
        assert_eq!(
            s.bbr.min_rtt(),
            Some(Duration::from_micros(RTT_US + 2000)),
            "the new minimum"
        );
    }

    #[test]
    fn recovery_conserves_packets_then_restores() {
        let mut s = Script::new();
        for _ in 0..12 {
            s.round(BW, RTT_US, 200_000);
        }
        assert_eq!(s.bbr.mode(), BbrMode::ProbeBw);
        let before = s.bbr.window();
        s.bbr.on_loss(s.now, 200_000, MSS);
        // The first ACK in recovery: in flight plus what it delivered.
        let rs = RateSample {
            acked_sacked: 2000,
            in_flight: 150_000,
            delivered_total: s.delivered + 2000,
            ..Default::default()
        };
        s.bbr.on_ack_sample(s.now, &rs, MSS);
        assert_eq!(s.bbr.window(), 152_000);
        s.bbr.on_recovery_end(s.now);
        assert_eq!(s.bbr.window(), before, "restored");
        // Loss alone does not shrink the model.
        assert_eq!(s.bbr.max_bw(), BW);
    }

    #[test]
    fn the_end_of_rto_recovery_restores_cwnd() {
        let mut s = Script::new();
        for _ in 0..12 {
            s.round(BW, RTT_US, 200_000);
        }
        let before = s.bbr.window();
        s.bbr.on_rto(s.now, 200_000, MSS, true);
        assert_eq!(s.bbr.window(), MSS, "one segment after the timeout");
        // What was outstanding at the timeout is ACKed: Linux BBR
        // (bbr_set_cwnd_to_recover_or_restore) restores the saved cwnd.
        s.bbr.on_loss_end(s.now);
        assert_eq!(s.bbr.window(), before, "restored");
        assert_eq!(s.bbr.max_bw(), BW);
    }

    /// A connection that starts when the clock is past the min-RTT
    /// window (a stack up for more than 10 s) begins in STARTUP, not
    /// PROBE_RTT: its first RTT sample starts the window.
    #[test]
    fn a_late_connection_starts_in_startup() {
        let mut s = Script::new();
        s.now = Instant::from_secs(100);
        s.round(BW / 16, RTT_US, s.bbr.window());
        assert_eq!(s.bbr.mode(), BbrMode::Startup);
        assert!(s.bbr.window() > 10 * MSS, "cwnd {}", s.bbr.window());
        assert_eq!(s.bbr.min_rtt(), Some(Duration::from_micros(RTT_US)));
    }

    /// A recovery that ends on the ACK that begins the next one: to Linux
    /// the state stays Recovery, and cwnd is neither restored nor cut.
    #[test]
    fn a_recovery_ending_into_the_next_keeps_cwnd() {
        let mut s = Script::new();
        for _ in 0..12 {
            s.round(BW, RTT_US, 200_000);
        }
        let before = s.bbr.window();
        s.bbr.on_loss(s.now, 200_000, MSS);
        let ack = |s: &mut Script, in_flight: u32| {
            s.delivered += 2000;
            let rs = RateSample {
                acked_sacked: 2000,
                in_flight,
                delivered_total: s.delivered,
                ..Default::default()
            };
            s.bbr.on_ack_sample(s.now, &rs, MSS);
        };
        ack(&mut s, 150_000);
        assert_eq!(s.bbr.window(), 152_000, "conservation");
        // One ACK ends this recovery and begins another, with little in
        // flight: no cut to in flight + delivered (32 000) and no
        // conservation; cwnd grows by what the ACK delivered.
        s.bbr.on_recovery_end(s.now);
        s.bbr.on_loss(s.now, 30_000, MSS);
        ack(&mut s, 30_000);
        assert_eq!(s.bbr.window(), 154_000, "kept");
        // Recovery ends on its own ACK: the cwnd from before is back.
        s.now += Duration::from_millis(1);
        s.bbr.on_recovery_end(s.now);
        ack(&mut s, 30_000);
        assert_eq!(s.bbr.window(), before, "restored");
        // A later ACK's loss begins a recovery as before: cut and conserve.
        s.now += Duration::from_millis(1);
        s.bbr.on_loss(s.now, 30_000, MSS);
        ack(&mut s, 30_000);
        assert_eq!(s.bbr.window(), 32_000, "cut to in flight + delivered");
    }

    /// Rounds in which a recovery cut cwnd are not a full pipe's: at 1-5 %
    /// random loss a recovery begins every other round or so, and each
    /// flattens the delivery rate. Heavy loss still is (a queue overflows).
    #[test]
    fn light_loss_recoveries_do_not_end_startup() {
        let mut s = Script::new();
        // The rate grows to the bottleneck, then stays flat; in each
        // round a recovery begins, with 1 segment lost in 200.
        let mut rate = BW / 16;
        for _ in 0..12 {
            s.bbr.on_loss(s.now, s.bbr.window(), MSS);
            lost_round(&mut s, rate.min(BW), 1);
            rate *= 2;
        }
        assert_eq!(
            s.bbr.mode(),
            BbrMode::Startup,
            "flat, but each round restrained"
        );
        // The same flat rate without recoveries: three rounds and STARTUP ends.
        s.bbr.on_recovery_end(s.now);
        for _ in 0..4 {
            s.round(BW, RTT_US, s.bbr.window());
        }
        assert_eq!(s.bbr.mode(), BbrMode::Drain);

        // Heavy loss in each recovery round (a quarter of the segments): a
        // full pipe after three rounds, as without loss.
        let mut s = Script::new();
        let mut rate = BW / 16;
        let mut flat = 0;
        while s.bbr.mode() == BbrMode::Startup {
            s.bbr.on_loss(s.now, s.bbr.window(), MSS);
            lost_round(&mut s, rate.min(BW), 50);
            flat += u32::from(rate >= BW);
            rate *= 2;
            assert!(flat <= 8, "still in STARTUP after {flat} flat rounds");
        }
    }

    /// One round of ten ACKs sampling `rate` after a recovery began,
    /// `lost` segments judged lost at its first ACK.
    fn lost_round(s: &mut Script, rate: u64, lost: u32) {
        s.round_with(rate, RTT_US, |b| b.window(), lost);
    }
}
