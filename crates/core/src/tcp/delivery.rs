//! A TCB's side of pacing and delivery-rate sampling: when a send may
//! leave (`pacing.rs`), what it snapshots, and the rate sample each ACK
//! hands the congestion controller (`rate.rs`).

use super::pacing::{self, Paced};
use super::tcb::Tcb;
use crate::config::TcpConfig;
use crate::time::Instant;
use ustack_wire::SeqNumber;

impl Tcb {
    /// Whether this connection paces or samples delivery rates.
    #[inline]
    fn wants_paced(&self, cfg: &TcpConfig) -> bool {
        cfg.pacing || self.opts.max_pacing_rate.is_some() || self.cong.cc.wants_rate_samples()
    }

    /// The rate (bytes/s) data leaves at: the controller's, else, when
    /// the connection paces, Linux's default (`pacing::default_rate`);
    /// never above SO_MAX_PACING_RATE.
    pub(crate) fn pacing_rate(&self, cfg: &TcpConfig) -> Option<u64> {
        let ceiling = self.opts.max_pacing_rate;
        let rate = match self.cong.cc.pacing_rate() {
            Some(r) => r,
            None if cfg.pacing || ceiling.is_some() => {
                let cwnd = self.cong.cc.window().max(self.flight());
                let srtt = self.rtt.srtt().as_micros() as u64;
                // Before an RTT sample only the ceiling holds.
                pacing::default_rate(cwnd, self.cong.cc.ssthresh(), srtt).or(ceiling)?
            }
            None => return None,
        };
        Some(rate.min(ceiling.unwrap_or(u64::MAX)).max(1))
    }

    /// Whether pacing holds data back at `now`; then its timer is armed.
    #[inline]
    pub(crate) fn pace_hold(&mut self, now: Instant, cfg: &TcpConfig) -> bool {
        if self.cong.paced.is_none() {
            if !self.wants_paced(cfg) {
                return false;
            }
            self.cong.paced = Some(Box::new(Paced::new()));
        }
        if self.pacing_rate(cfg).is_none() {
            return false;
        }
        let hold = self.cong.paced.as_deref_mut().is_some_and(|p| p.hold(now));
        self.cong.pace_timer = hold;
        hold
    }

    /// Segments a burst of new data may hold: about 1 ms at the pacing
    /// rate when pacing (Linux `tcp_tso_autosize`), else `max`.
    #[inline]
    pub(crate) fn pace_burst(&self, cfg: &TcpConfig, max: usize) -> usize {
        if self.cong.paced.is_none() {
            return max;
        }
        match self.pacing_rate(cfg) {
            Some(r) => pacing::burst_segments(r, usize::from(self.snd.mss), max),
            None => max,
        }
    }

    /// `[seq, end)` (`len` payload bytes) leaves now, before SND.NXT
    /// moves; `rtx` when it was sent before.
    #[inline]
    pub(crate) fn paced_send(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        seq: SeqNumber,
        end: SeqNumber,
        len: usize,
        rtx: bool,
    ) {
        if self.cong.paced.is_none() {
            return;
        }
        let in_flight = self.pipe();
        let rate = self.pacing_rate(cfg);
        let cwnd = self.cong.cc.window();
        let unsent_after = self.unsent().saturating_sub(if rtx { 0 } else { len });
        // The peer's window left after this send.
        let wnd_after = (self.snd.una + self.snd.wnd as usize).diff(end).max(0) as usize;
        let mss = usize::from(self.snd.mss);
        let Some(p) = self.cong.paced.as_deref_mut() else {
            return;
        };
        p.rate.on_send(seq, end, now.total_micros(), in_flight, rtx);
        if let (Some(r), true) = (rate, len > 0) {
            p.sent(now, len, r);
        }
        let out = in_flight.saturating_add(len as u32);
        if !rtx && (unsent_after < mss || wnd_after < mss) && out < cwnd {
            // Sending runs dry with cwnd open: the application is the
            // limit (draft-cheng-iccrg-delivery-rate-estimation §3.4), or
            // the peer's receive window is. Either way what is delivered
            // measures the receiver, not the path: BBR must not take a
            // window that opens slowly (a Linux receiver's autotuning)
            // for a full pipe and leave STARTUP at a tenth of the path.
            p.rate.mark_app_limited(out);
        }
    }

    /// The end of an ACK's processing: what it delivered (SND.UNA moved
    /// from `una_before`, SACKed bytes from `sacked_before`) makes a rate
    /// sample for the controller.
    pub(crate) fn rate_on_ack(
        &mut self,
        now: Instant,
        una_before: SeqNumber,
        sacked_before: u32,
        sack: &[Option<(SeqNumber, SeqNumber)>],
        losses: u32,
    ) {
        if self.cong.paced.is_none() {
            return;
        }
        let acked = self.snd.una.diff(una_before).max(0) as u64;
        let delivered = (acked + u64::from(self.sacked_bytes()))
            .saturating_sub(u64::from(sacked_before))
            .min(u64::from(u32::MAX)) as u32;
        let in_flight = self.pipe();
        let una = self.snd.una;
        let mss = u32::from(self.snd.mss);
        let Some(p) = self.cong.paced.as_deref_mut() else {
            return;
        };
        p.rate.on_ack(una, sack);
        let rs = p
            .rate
            .sample(now.total_micros(), delivered, in_flight, losses);
        self.cong.cc.on_ack_sample(now, &rs, mss);
    }

    /// The pacing timer fired: the held send may go.
    pub(crate) fn pace_timer_due(&mut self, now: Instant) {
        if let Some(p) = self.cong.paced.as_deref_mut() {
            if p.timer.is_some_and(|d| d <= now) {
                p.timer = None;
                self.cong.pace_timer = false;
            }
        }
    }
}
