//! Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation-02):
//! each send takes a snapshot of how much had been delivered and when; an
//! ACK or SACK that delivers it turns the snapshot into a rate sample.
//! Per connection, for any congestion controller (BBR needs it).
//!
//! Simplifications, all conservative: a send that leaves in one go (a
//! burst) is one record, sampled when any part of it is delivered; a
//! retransmitted record gives no sample (its bytes still count as
//! delivered), so no sample mixes two transmissions.

use std::collections::VecDeque;
use ustack_wire::SeqNumber;

/// Records kept at most; past it, sends extend the last record.
const MAX_RECS: usize = 4096;

/// One rate sample (draft §3.3), what `CongestionControl::on_ack_sample` gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateSample {
    /// Bytes delivered over `interval_us` (0: no valid sample this ACK).
    pub delivered: u64,
    /// The sampling interval, max(send_elapsed, ack_elapsed) (draft §3.3).
    pub interval_us: u64,
    /// C.delivered when the sampled packet was sent (round counting).
    pub prior_delivered: u64,
    /// C.delivered after this ACK.
    pub delivered_total: u64,
    /// RTT of the most recently sent packet this ACK delivered (µs).
    pub rtt_us: Option<u64>,
    /// The sampled packet was sent while the application limited sending.
    pub is_app_limited: bool,
    /// Bytes newly delivered (cumulatively ACKed or SACKed) by this ACK.
    pub acked_sacked: u32,
    /// Bytes still in flight after this ACK (RFC 6675 pipe).
    pub in_flight: u32,
    /// Segments newly judged lost at this ACK.
    pub losses: u32,
}

impl RateSample {
    /// Bytes per second, if this ACK made a valid sample.
    pub fn rate(&self) -> Option<u64> {
        (self.delivered > 0 && self.interval_us > 0)
            .then(|| self.delivered.saturating_mul(1_000_000) / self.interval_us)
    }
}

/// What a send remembered (draft §3.2, the per-packet state).
#[derive(Debug, Clone, Copy)]
struct Rec {
    start: SeqNumber,
    end: SeqNumber,
    sent: u64,
    delivered: u64,
    delivered_time: u64,
    first_sent_time: u64,
    app_limited: bool,
    /// Sent again: gives no sample.
    rtx: bool,
    /// Already delivered (by a SACK): gives no second sample.
    done: bool,
}

/// The connection's side of delivery-rate estimation (draft §3.1).
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    recs: VecDeque<Rec>,
    /// C.delivered, C.delivered_time, C.first_sent_time (µs).
    delivered: u64,
    delivered_time: u64,
    first_sent_time: u64,
    /// C.app_limited: delivered + in flight when sending last ran dry; 0: not.
    app_limited: u64,
    /// The least RTT seen: shorter intervals are not trusted (draft §3.3).
    min_rtt: u64,
    /// The newest record the ACK in progress delivered.
    best: Option<Rec>,
}

impl Delivery {
    pub fn new() -> Delivery {
        Delivery {
            min_rtt: u64::MAX,
            ..Default::default()
        }
    }

    /// `[start, end)` leaves at `now` (µs) with `in_flight` bytes already
    /// out; `rtx` if it was sent before (draft §3.2 "Upon sending").
    pub fn on_send(
        &mut self,
        start: SeqNumber,
        end: SeqNumber,
        now: u64,
        in_flight: u32,
        rtx: bool,
    ) {
        if in_flight == 0 {
            self.first_sent_time = now;
            self.delivered_time = now;
        }
        if rtx {
            let i = self.recs.partition_point(|r| r.end.diff(start) <= 0);
            for r in self.recs.iter_mut().skip(i) {
                if r.start.diff(end) >= 0 {
                    break;
                }
                r.rtx = true;
            }
            return;
        }
        let rec = Rec {
            start,
            end,
            sent: now,
            delivered: self.delivered,
            delivered_time: self.delivered_time,
            first_sent_time: self.first_sent_time,
            app_limited: self.app_limited != 0,
            rtx: false,
            done: false,
        };
        let full = self.recs.len() >= MAX_RECS;
        if let Some(b) = self.recs.back_mut() {
            let same = b.end == start
                && b.sent == now
                && b.delivered == rec.delivered
                && !b.rtx
                && !b.done;
            if same || full {
                if end.diff(b.end) > 0 {
                    b.end = end;
                }
                return;
            }
        }
        self.recs.push_back(rec);
    }

    /// Sending ran dry with the window open (draft §3.4): what is sent
    /// until all that is out now has been delivered is app-limited.
    pub fn mark_app_limited(&mut self, in_flight: u32) {
        self.app_limited = (self.delivered + u64::from(in_flight)).max(1);
    }

    fn take(&mut self, r: Rec) {
        if r.rtx || r.done {
            return;
        }
        // Draft §3.3 UpdateRateSample: the most recently sent packet wins.
        if self.best.is_none_or(|b| {
            r.delivered > b.delivered || (r.delivered == b.delivered && r.sent >= b.sent)
        }) {
            self.best = Some(r);
        }
    }

    /// An ACK arrived: everything below `una` and inside `sacked` is
    /// delivered (only records not already delivered give samples).
    pub fn on_ack(&mut self, una: SeqNumber, sacked: &[Option<(SeqNumber, SeqNumber)>]) {
        self.best = None;
        while let Some(r) = self.recs.front_mut() {
            if r.start.diff(una) >= 0 {
                break;
            }
            let r0 = *r;
            if r.end.diff(una) <= 0 {
                self.recs.pop_front();
            } else {
                r.start = una;
                r.done = true;
            }
            self.take(r0);
        }
        for &(s, e) in sacked.iter().flatten() {
            let i = self.recs.partition_point(|r| r.end.diff(s) <= 0);
            let mut j = i;
            while let Some(r) = self.recs.get_mut(j) {
                if r.start.diff(e) >= 0 {
                    break;
                }
                let r0 = *r;
                r.done = true;
                self.take(r0);
                j += 1;
            }
        }
    }

    /// Ends the ACK begun with `on_ack`: `acked_sacked` bytes newly
    /// delivered at `now` (µs), `in_flight` left (draft §3.3 GenerateRateSample).
    pub fn sample(
        &mut self,
        now: u64,
        acked_sacked: u32,
        in_flight: u32,
        losses: u32,
    ) -> RateSample {
        self.delivered += u64::from(acked_sacked);
        if acked_sacked > 0 {
            self.delivered_time = now;
        }
        if self.app_limited != 0 && self.delivered > self.app_limited {
            self.app_limited = 0;
        }
        let mut rs = RateSample {
            delivered_total: self.delivered,
            acked_sacked,
            in_flight,
            losses,
            ..Default::default()
        };
        let Some(b) = self.best.take() else {
            return rs;
        };
        self.first_sent_time = b.sent;
        let rtt = now.saturating_sub(b.sent);
        self.min_rtt = self.min_rtt.min(rtt);
        rs.rtt_us = Some(rtt);
        rs.prior_delivered = b.delivered;
        rs.is_app_limited = b.app_limited;
        let send_elapsed = b.sent.saturating_sub(b.first_sent_time);
        let ack_elapsed = now.saturating_sub(b.delivered_time);
        let interval = send_elapsed.max(ack_elapsed);
        // An interval shorter than the path's RTT is an artefact of ACK
        // compression: no sample (draft §3.3, "intervals ... less than min_rtt").
        if interval >= self.min_rtt && interval > 0 {
            rs.interval_us = interval;
            rs.delivered = self.delivered - b.delivered;
        }
        rs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_pipe_samples_its_rate() {
        // 10 segments of 1000 bytes every 10 ms, each ACKed 10 ms after it
        // left: 1000 bytes per ms.
        let mut d = Delivery::new();
        let s = |n: u32| SeqNumber(n * 1000);
        let mut last = RateSample::default();
        for i in 0..100u32 {
            let now = u64::from(i) * 1000;
            let inflight = if i < 10 { i * 1000 } else { 10_000 };
            d.on_send(s(i), s(i + 1), now, inflight, false);
            if i >= 10 {
                d.on_ack(s(i - 9), &[]);
                last = d.sample(now, 1000, 10_000, 0);
            }
        }
        assert_eq!(last.rate(), Some(1_000_000), "{last:?}");
        assert_eq!(last.rtt_us, Some(10_000));
        assert!(!last.is_app_limited);
    }

    #[test]
    fn sacks_sample_once_and_retransmissions_not_at_all() {
        let mut d = Delivery::new();
        let s = |n: u32| SeqNumber(n * 1000);
        for i in 0..4u32 {
            d.on_send(s(i), s(i + 1), u64::from(i) * 10, i * 1000, false);
        }
        d.on_send(s(0), s(1), 100, 4000, true);
        d.on_ack(s(0), &[Some((s(1), s(2)))]);
        let a = d.sample(10_000, 1000, 3000, 0);
        assert_eq!(a.rtt_us, Some(10_000 - 10));
        d.on_ack(s(0), &[Some((s(1), s(2)))]);
        let b = d.sample(10_100, 0, 3000, 0);
        assert_eq!(b.rtt_us, None, "the same SACK again samples nothing");
        d.on_ack(s(1), &[Some((s(1), s(2)))]);
        let c = d.sample(10_200, 1000, 2000, 0);
        assert_eq!(c.rtt_us, None, "a retransmitted segment gives no sample");
        assert_eq!(c.delivered_total, 2000);
    }

    #[test]
    fn app_limited_marks_until_delivered() {
        let mut d = Delivery::new();
        let s = |n: u32| SeqNumber(n * 1000);
        d.on_send(s(0), s(1), 0, 0, false);
        d.mark_app_limited(1000);
        d.on_send(s(1), s(2), 1, 1000, false);
        d.on_ack(s(2), &[]);
        let r = d.sample(20_000, 2000, 0, 0);
        assert!(r.is_app_limited);
        d.on_send(s(2), s(3), 20_000, 0, false);
        d.on_ack(s(3), &[]);
        assert!(!d.sample(40_000, 1000, 0, 0).is_app_limited);
    }
}
