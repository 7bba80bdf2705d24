//! RACK (RFC 8985 §6): the send time of every segment in flight, and loss
//! detection by time. A segment is lost once a segment sent after it has
//! been delivered and it was sent more than RACK.rtt + RACK.reo_wnd ago;
//! one not yet that old is checked again by the reordering timer.
//!
//! The log also carries the per-segment scoreboard the loss detection
//! feeds (SACKed, lost, retransmitted, as Linux's `TCPCB_*` bits): with
//! RACK on, the segments judged lost here, and those RFC 6675 IsLost()
//! marks, are what recovery retransmits (`Tcb::next_hole`).

use crate::time::Instant;
use std::collections::VecDeque;
use ustack_wire::SeqNumber;

/// RFC 5681 §3.2 / RFC 6675: DupThresh.
pub(crate) const DUP_THRESH: u32 = 3;

/// Records kept at most. Past it, new data extends the last record (one
/// later send time for both: later loss detection, never spurious), and a
/// SACK or retransmission edge inside a record no longer splits it.
const MAX_SEGS: usize = 4096;
const MAX_SPLIT_SEGS: usize = 2 * MAX_SEGS;

/// RACK.min_RTT is the least RTT seen over this long (Linux
/// `tcp_min_rtt_wlen`, 300 s); after it, the next sample starts afresh.
const MIN_RTT_WINDOW_US: u64 = 300_000_000;

/// Selectively acknowledged.
pub(crate) const SACKED: u8 = 1;
/// Judged lost (by RACK or RFC 6675 IsLost).
pub(crate) const LOST: u8 = 2;
/// A retransmission is in flight (sent since it was judged lost, or
/// resent without being judged lost); cleared when RACK finds the
/// retransmission lost too.
pub(crate) const RTX: u8 = 4;
/// Retransmitted at least once: its RTT samples are ambiguous.
pub(crate) const EVER_RTX: u8 = 8;

/// Transmitted sequence space `[start, end)` (a FIN counts as a byte):
/// one segment, or a burst of new data sent in one go (the same clock
/// tick, nothing else sent between), which is split again where a SACK
/// block, a retransmission or a cumulative ACK ends inside it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxSeg {
    pub start: SeqNumber,
    pub end: SeqNumber,
    /// When it was last sent, in µs of stack time (RACK_segment.xmit_ts).
    pub xmit: u64,
    /// Which send (of this connection) that was.
    pub order: u32,
    pub flags: u8,
}

impl TxSeg {
    fn len(&self) -> u32 {
        self.end.diff(self.start).max(0) as u32
    }

    fn stamp(&self) -> Stamp {
        (self.xmit, self.order, self.end)
    }

    /// Lost and not retransmitted since.
    fn needs_rtx(&self) -> bool {
        self.flags & (SACKED | LOST | RTX) == LOST
    }
}

/// When a segment was sent: (µs, which send, end_seq).
type Stamp = (u64, u32, SeqNumber);

/// RFC 8985 §6.2 RACK_sent_after. Sends in the same clock tick are told
/// apart by the order they went in and, within one send (a burst), by
/// end_seq as the RFC does: end_seq alone would put a retransmission
/// before new data sent earlier in the same tick (with a virtual clock,
/// a whole ACK's worth of sends shares one).
fn sent_after(a: Stamp, b: Stamp) -> bool {
    a.0 > b.0
        || (a.0 == b.0
            && (a.1 != b.1 && (a.1.wrapping_sub(b.1) as i32) > 0
                || a.1 == b.1 && a.2.diff(b.2) > 0))
}

/// What one run of loss detection found.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Detected {
    /// Segments newly judged lost.
    pub lost: u32,
    /// Of them, retransmissions that were lost too.
    pub lost_rtx: u32,
}

/// The RACK state of one connection (RFC 8985 §6.1), boxed in the TCB and
/// made on the first data sent with SACK on: idle connections carry none.
#[derive(Debug)]
pub(crate) struct Rack {
    /// In sequence order, covering what is in flight.
    segs: VecDeque<TxSeg>,
    /// How many of them are lost and not yet retransmitted (so the
    /// common question "anything to repair?" costs nothing).
    n_lost: u32,
    /// Segments ending at or below this may have been resent, so their
    /// send times are not in sequence order; above it they are (which
    /// lets the loss scan stop early, like Linux's time-sorted list).
    rtx_hi: SeqNumber,
    /// RACK.xmit_ts and RACK.end_seq (with the send they were in): the
    /// most recently sent segment known delivered.
    latest: Option<Stamp>,
    /// Sends so far (wrapping).
    sends: u32,
    /// RACK.rtt (µs): the RTT of that segment.
    rtt: u64,
    /// RACK.min_RTT (µs; `u64::MAX` before a sample) and when it was taken.
    min_rtt: u64,
    min_rtt_at: u64,
    /// RACK.fack: the highest end delivered.
    fack: SeqNumber,
    /// RACK.reordering_seen.
    reord_seen: bool,
    /// The reordering timer (RFC 8985 §6.2 step 5).
    pub timer: Option<Instant>,
    /// The ACK being processed: its time, TSecr, the TCB's TS offset, the
    /// most recently sent segment it delivered, its highest end, and
    /// whether it delivered an original segment below RACK.fack.
    ack_now: u64,
    ack_tsecr: Option<u32>,
    ts_offset: u32,
    ack_best: Option<Stamp>,
    ack_fack: Option<SeqNumber>,
    ack_reord: bool,
}

impl Rack {
    pub fn new(una: SeqNumber) -> Rack {
        Rack {
            segs: VecDeque::new(),
            n_lost: 0,
            rtx_hi: una,
            latest: None,
            sends: 0,
            rtt: 0,
            min_rtt: u64::MAX,
            min_rtt_at: 0,
            fack: una,
            reord_seen: false,
            timer: None,
            ack_now: 0,
            ack_tsecr: None,
            ts_offset: 0,
            ack_best: None,
            ack_fack: None,
            ack_reord: false,
        }
    }

    /// Index of the first segment ending after `seq`.
    fn find(&self, seq: SeqNumber) -> usize {
        self.segs.partition_point(|s| s.end.diff(seq) <= 0)
    }

    /// Splits the segment holding `seq` in its interior at `seq`. False if
    /// it could not (at the limit).
    fn split_at(&mut self, seq: SeqNumber) -> bool {
        let i = self.find(seq);
        let full = self.segs.len() >= MAX_SPLIT_SEGS;
        let Some(s) = self.segs.get_mut(i) else {
            return true;
        };
        if s.start.diff(seq) >= 0 {
            return true;
        }
        if full {
            return false;
        }
        let mut right = *s;
        right.start = seq;
        s.end = seq;
        if right.needs_rtx() {
            self.n_lost += 1;
        }
        self.segs.insert(i + 1, right);
        true
    }

    /// `[start, end)` was sent at `now` (µs): new data at the end, or a
    /// retransmission of what is here (RACK_segment.xmit_ts is the latest
    /// transmission, §6.1).
    #[inline]
    pub fn on_send(&mut self, start: SeqNumber, end: SeqNumber, now: u64) {
        // New data straight after the last send in this tick: the same
        // burst (the bulk path: one record per window sent).
        if let Some(b) = self.segs.back_mut() {
            if b.end == start && b.flags == 0 && b.xmit == now && b.order == self.sends {
                if end.diff(start) > 0 {
                    b.end = end;
                }
                return;
            }
        }
        self.on_send_slow(start, end, now);
    }

    fn on_send_slow(&mut self, start: SeqNumber, end: SeqNumber, now: u64) {
        if end.diff(start) <= 0 {
            return;
        }
        let last = self.segs.back().map_or(start, |s| s.end);
        self.sends = self.sends.wrapping_add(1);
        let order = self.sends;
        if start.diff(last) < 0 {
            let to = if end.diff(last) < 0 { end } else { last };
            self.split_at(start);
            self.split_at(to);
            let mut i = self.find(start);
            while let Some(s) = self.segs.get_mut(i) {
                if s.start.diff(to) >= 0 {
                    break;
                }
                if s.needs_rtx() {
                    self.n_lost -= 1;
                }
                s.xmit = now;
                s.order = order;
                s.flags |= RTX | EVER_RTX;
                if s.end.diff(self.rtx_hi) > 0 {
                    self.rtx_hi = s.end;
                }
                i += 1;
            }
        }
        if end.diff(last) <= 0 {
            return;
        }
        let from = if start.diff(last) > 0 { start } else { last };
        if self.segs.len() >= MAX_SEGS {
            if let Some(b) = self.segs.back_mut() {
                if b.flags == 0 && b.end == from {
                    b.end = end;
                    b.xmit = now;
                    b.order = order;
                }
            }
            return;
        }
        self.segs.push_back(TxSeg {
            start: from,
            end,
            xmit: now,
            order,
            flags: 0,
        });
    }

    /// Starts taking in an ACK received at `now` (µs).
    pub fn begin_ack(&mut self, now: u64, tsecr: Option<u32>, ts_offset: u32) {
        self.ack_now = now;
        self.ack_tsecr = tsecr;
        self.ts_offset = ts_offset;
        self.ack_best = None;
        self.ack_fack = None;
        self.ack_reord = false;
    }

    /// A segment this ACK newly delivered (RFC 8985 §6.2 steps 1-3).
    fn delivered(&mut self, s: TxSeg, cumulative: bool) {
        let now = self.ack_now;
        if s.flags & EVER_RTX == 0 && s.end.diff(self.fack) < 0 {
            self.ack_reord = true;
        }
        if self.ack_fack.is_none_or(|f| s.end.diff(f) > 0) {
            self.ack_fack = Some(s.end);
        }
        let rtt = now.saturating_sub(s.xmit);
        if s.flags & EVER_RTX != 0 {
            // Step 2: a sample from a retransmitted segment is taken only
            // if it cannot be for an earlier transmission: its echoed
            // timestamp is not older (checked on cumulative ACKs only, as
            // Linux: a SACK echoes TS.Recent, which out-of-order data does
            // not move, RFC 7323 §4.3), and it is not below min_RTT.
            if cumulative {
                if let Some(ecr) = self.ack_tsecr {
                    let sent = ((s.xmit / 1000) as u32).wrapping_add(self.ts_offset);
                    if (ecr.wrapping_sub(sent) as i32) < 0 {
                        return;
                    }
                }
            }
            if rtt < self.min_rtt {
                return;
            }
        } else if rtt <= self.min_rtt || now.saturating_sub(self.min_rtt_at) > MIN_RTT_WINDOW_US {
            self.min_rtt = rtt;
            self.min_rtt_at = now;
        }
        let stamp = s.stamp();
        if self.ack_best.is_none_or(|b| sent_after(stamp, b)) {
            self.ack_best = Some(stamp);
        }
    }

    /// The cumulative ACK reached `una`: segments below it leave the log.
    pub fn on_cum_ack(&mut self, una: SeqNumber) {
        while let Some(s) = self.segs.front().copied() {
            if s.end.diff(una) > 0 {
                break;
            }
            self.segs.pop_front();
            if s.needs_rtx() {
                self.n_lost -= 1;
            }
            if s.flags & SACKED == 0 {
                self.delivered(s, true);
            }
        }
        if let Some(s) = self.segs.front().copied() {
            if s.start.diff(una) < 0 {
                // The part of a burst below SND.UNA was delivered.
                if s.flags & SACKED == 0 {
                    self.delivered(TxSeg { end: una, ..s }, true);
                }
                self.segs[0].start = una;
            }
        } else if self.segs.capacity() <= 64 {
            // All acknowledged: a small log goes back (an idle connection
            // holds none); a bulk flow's large one stays for reuse.
            self.segs = VecDeque::new();
        }
        // Keep the marks within 2^31 of SND.UNA so they compare right.
        if self.rtx_hi.diff(una) < 0 {
            self.rtx_hi = una;
        }
        if self.fack.diff(una) < 0 {
            self.fack = una;
        }
    }

    /// A SACK block `[l, r)` the scoreboard took.
    pub fn on_sack(&mut self, l: SeqNumber, r: SeqNumber) {
        self.split_at(l);
        self.split_at(r);
        let mut i = self.find(l);
        while let Some(s) = self.segs.get(i).copied() {
            if s.start.diff(r) >= 0 {
                break;
            }
            if s.flags & SACKED == 0 && s.start.diff(l) >= 0 && s.end.diff(r) <= 0 {
                if s.needs_rtx() {
                    self.n_lost -= 1;
                }
                self.segs[i].flags |= SACKED;
                self.delivered(s, false);
            }
            i += 1;
        }
    }

    /// Ends the ACK (steps 2-3): RACK.xmit_ts, end_seq, rtt, fack and
    /// reordering_seen from what it delivered.
    pub fn end_ack(&mut self) {
        if let Some(f) = self.ack_fack {
            if f.diff(self.fack) > 0 {
                self.fack = f;
            }
        }
        if self.ack_reord {
            self.reord_seen = true;
        }
        if let Some(b) = self.ack_best {
            self.rtt = self.ack_now.saturating_sub(b.0);
            if self.latest.is_none_or(|l| sent_after(b, l)) {
                self.latest = Some(b);
            }
        }
    }

    /// Step 4, RACK.reo_wnd: none while no reordering has been seen and
    /// either recovery is under way or DupThresh segments are SACKed (as
    /// DupThresh would), else min_RTT / 4, at most SRTT. (The D-SACK
    /// driven growth of §6.2 is not done: the multiplier stays 1.)
    pub fn reo_wnd(&self, recovering: bool, sacked_segs: u32, srtt: Option<u64>) -> u64 {
        if !self.reord_seen && (recovering || sacked_segs >= super::rack::DUP_THRESH) {
            return 0;
        }
        let w = if self.min_rtt == u64::MAX {
            0
        } else {
            self.min_rtt / 4
        };
        srtt.map_or(w, |s| w.min(s))
    }

    /// Step 5, RACK_detect_loss_and_arm_timer: marks lost each segment sent
    /// before RACK.xmit_ts (and not delivered) once RACK.rtt + reo_wnd
    /// have passed since it was sent; arms the reordering timer for the
    /// first of the others to get there.
    /// Counts are in segments of `mss`.
    pub fn detect(&mut self, now: u64, reo_wnd: u64, mss: u32) -> Detected {
        self.timer = None;
        let mut out = Detected::default();
        let Some(latest) = self.latest else {
            return out;
        };
        let mut wait = 0u64;
        for s in self.segs.iter_mut() {
            // Skip what is delivered, and what awaits its retransmission.
            if s.flags & SACKED != 0 || s.flags & (LOST | RTX) == LOST {
                continue;
            }
            if !sent_after(latest, s.stamp()) {
                if s.start.diff(self.rtx_hi) >= 0 {
                    // In send order from here on: none later was sent before.
                    break;
                }
                continue;
            }
            let due = s.xmit.saturating_add(self.rtt).saturating_add(reo_wnd);
            if due <= now {
                let segs = s.len().div_ceil(mss.max(1)).max(1);
                if s.flags & RTX != 0 {
                    out.lost_rtx += segs;
                }
                s.flags = (s.flags | LOST) & !RTX;
                out.lost += segs;
                self.n_lost += 1;
            } else {
                wait = wait.max(due - now);
            }
        }
        if wait > 0 {
            self.timer = Some(Instant::from_micros(now.saturating_add(wait)));
        }
        out
    }

    /// RFC 6675 IsLost() holds for `[start, end)`: marks what is not yet
    /// judged lost.
    pub fn mark_lost(&mut self, start: SeqNumber, end: SeqNumber) {
        let mut i = self.find(start);
        while let Some(s) = self.segs.get_mut(i) {
            if s.start.diff(end) >= 0 {
                break;
            }
            if s.flags & (SACKED | LOST) == 0 && s.start.diff(start) >= 0 {
                s.flags |= LOST;
                if s.needs_rtx() {
                    self.n_lost += 1;
                }
            }
            i += 1;
        }
    }

    /// After a retransmission timeout everything unSACKed goes again from
    /// SND.UNA (go-back-N), so no earlier judgement stands.
    pub fn on_rto(&mut self) {
        for s in self.segs.iter_mut() {
            s.flags &= !(LOST | RTX);
        }
        self.n_lost = 0;
        self.timer = None;
    }

    /// The first segment judged lost and not yet retransmitted, at most
    /// `mss` of it.
    pub fn next_lost(&self, mss: usize) -> Option<(SeqNumber, usize)> {
        if self.n_lost == 0 {
            return None;
        }
        self.segs
            .iter()
            .find(|s| s.needs_rtx())
            .map(|s| (s.start, (s.len() as usize).min(mss)))
    }

    /// Bytes judged lost and not yet retransmitted.
    pub fn lost_bytes(&self) -> u32 {
        if self.n_lost == 0 {
            return 0;
        }
        self.segs
            .iter()
            .filter(|s| s.needs_rtx())
            .map(TxSeg::len)
            .sum()
    }

    /// Whether anything is judged lost and not yet retransmitted.
    pub fn has_lost(&self) -> bool {
        debug_assert_eq!(
            self.n_lost as usize,
            self.segs.iter().filter(|s| s.needs_rtx()).count()
        );
        self.n_lost > 0
    }

    /// Checks the log against SND.UNA and SND.MAX: records in order, not
    /// overlapping, within `[una, max]`, the lost count right.
    pub fn check(&self, una: SeqNumber, max: SeqNumber) -> Result<(), String> {
        let mut at = una;
        for s in &self.segs {
            if s.start.diff(at) < 0 || s.end.diff(s.start) <= 0 || s.end.diff(max) > 0 {
                return Err(format!("record {s:?} after {at} (SND.MAX {max})"));
            }
            at = s.end;
        }
        let lost = self.segs.iter().filter(|s| s.needs_rtx()).count();
        if lost != self.n_lost as usize {
            return Err(format!("{lost} records lost, counted {}", self.n_lost));
        }
        Ok(())
    }

    /// The segments, for tests.
    #[cfg(test)]
    pub fn segs(&self) -> impl Iterator<Item = &TxSeg> {
        self.segs.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    fn spans(r: &Rack) -> Vec<(u32, u32, u8)> {
        r.segs().map(|s| (s.start.0, s.end.0, s.flags)).collect()
    }

    #[test]
    fn sends_append_retransmissions_split_and_acks_trim() {
        let mut r = Rack::new(seq(0));
        for i in 0..4 {
            r.on_send(seq(i * 100), seq(i * 100 + 100), u64::from(i));
        }
        // A retransmission of part of the second segment splits it.
        r.on_send(seq(100), seq(150), 10);
        assert_eq!(
            spans(&r),
            vec![
                (0, 100, 0),
                (100, 150, RTX | EVER_RTX),
                (150, 200, 0),
                (200, 300, 0),
                (300, 400, 0)
            ]
        );
        // A send reaching past the end resends the old part, adds the new.
        r.on_send(seq(350), seq(450), 11);
        assert_eq!(r.segs().count(), 7);
        assert_eq!(
            r.segs().last().map(|s| (s.start.0, s.end.0, s.flags)),
            Some((400, 450, 0))
        );
        r.begin_ack(20, None, 0);
        r.on_cum_ack(seq(120));
        r.end_ack();
        assert_eq!(spans(&r)[0], (120, 150, RTX | EVER_RTX));
        // Segment 0 (sent at 0) was delivered: RACK.xmit_ts = 0, rtt 20;
        // [100, 120) of the retransmission, 10 µs after it was resent, is
        // faster than min_RTT, so not a sample.
        assert_eq!(r.latest, Some((0, 1, seq(100))));
        assert_eq!((r.rtt, r.min_rtt), (20, 20));
    }

    #[test]
    fn a_burst_is_one_record_until_something_ends_inside_it() {
        let mut r = Rack::new(seq(0));
        for i in 0..5 {
            r.on_send(seq(i * 100), seq(i * 100 + 100), 1000);
        }
        assert_eq!(spans(&r), vec![(0, 500, 0)]);
        r.begin_ack(2000, None, 0);
        r.on_sack(seq(250), seq(400));
        r.end_ack();
        assert_eq!(
            spans(&r),
            vec![(0, 250, 0), (250, 400, SACKED), (400, 500, 0)]
        );
        // Sent in one go: what lies below 400 went before it (end_seq
        // breaks the tie, RFC 8985 §6.2). RTT 1000 µs, reo_wnd 250: lost
        // at 2250.
        assert_eq!(r.detect(2249, 250, 100).lost, 0);
        assert_eq!(r.timer, Some(Instant::from_micros(2250)));
        let d = r.detect(2250, 250, 100);
        assert_eq!((d.lost, d.lost_rtx), (3, 0), "in segments of 100");
        assert_eq!(r.next_lost(100), Some((seq(0), 100)));
        assert_eq!(r.lost_bytes(), 250);
        assert!(r.timer.is_none(), "the rest went after 400");
        // New data in a later tick is a new record.
        r.on_send(seq(500), seq(600), 3000);
        assert_eq!(r.segs().count(), 4);
        // A cumulative ACK inside a burst delivers the part below it.
        let mut b = Rack::new(seq(0));
        b.on_send(seq(0), seq(300), 0);
        b.begin_ack(500, None, 0);
        b.on_cum_ack(seq(200));
        b.end_ack();
        assert_eq!(b.latest, Some((0, 1, seq(200))));
        assert_eq!(spans(&b), vec![(200, 300, 0)]);
    }

    #[test]
    fn a_retransmission_in_the_same_tick_goes_after_earlier_new_data() {
        let mut r = Rack::new(seq(0));
        r.on_send(seq(0), seq(200), 0);
        r.begin_ack(500, None, 0);
        r.on_sack(seq(100), seq(200));
        r.end_ack();
        assert_eq!(r.detect(500, 0, 100).lost, 1);
        // At 1000: new data [200, 300), then the lost [0, 100) again.
        r.on_send(seq(200), seq(300), 1000);
        r.on_send(seq(0), seq(100), 1000);
        r.begin_ack(1500, None, 0);
        r.on_sack(seq(200), seq(300));
        r.end_ack();
        // [200, 300) went before the retransmission (end_seq alone would
        // say after): its SACK says nothing about it.
        assert_eq!(r.detect(1500, 0, 100).lost, 0);
        assert_eq!(r.lost_bytes(), 0);
    }

    #[test]
    fn ambiguous_samples_from_retransmissions_are_not_taken() {
        let mut r = Rack::new(seq(0));
        r.on_send(seq(0), seq(300), 0);
        r.begin_ack(10_000, None, 0);
        r.on_sack(seq(200), seq(300));
        r.end_ack();
        assert_eq!((r.min_rtt, r.rtt), (10_000, 10_000));
        // [100, 200) resent at 15 ms and SACKed 1 ms later: faster than
        // min_RTT, so the SACK was for the original (RFC 8985 §6.2 step 2).
        r.on_send(seq(100), seq(200), 15_000);
        r.begin_ack(16_000, None, 0);
        r.on_sack(seq(100), seq(200));
        r.end_ack();
        assert_eq!(r.latest, Some((0, 1, seq(300))), "RACK.xmit_ts unchanged");
        assert_eq!(r.rtt, 10_000);
        // [0, 100) resent at 20 ms (TSval 20), cumulatively ACKed 30 ms
        // later echoing TSval 5: the ACK is for the original.
        r.on_send(seq(0), seq(100), 20_000);
        r.begin_ack(50_000, Some(5), 0);
        r.on_cum_ack(seq(300));
        r.end_ack();
        assert_eq!(r.latest, Some((0, 1, seq(300))));
        // Echoing the retransmission's TSval, it is taken.
        let mut r2 = Rack::new(seq(0));
        r2.on_send(seq(0), seq(200), 0);
        r2.begin_ack(10_000, None, 0);
        r2.on_cum_ack(seq(100));
        r2.end_ack();
        r2.on_send(seq(100), seq(200), 20_000);
        r2.begin_ack(40_000, Some(20), 0);
        r2.on_cum_ack(seq(200));
        r2.end_ack();
        assert_eq!((r2.latest, r2.rtt), (Some((20_000, 2, seq(200))), 20_000));
    }
}
