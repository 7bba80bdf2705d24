//! Data transfer on a TCB: what to send next (new data, Nagle and sender
//! SWS avoidance, retransmissions in loss recovery), the SACK scoreboard
//! (RFC 2018, RFC 6675), the receiver's out-of-order queue and ACK policy.

use super::cc::CaState;
use super::rack::{Detected, Rack, DUP_THRESH};
use super::spans::{OfoRange, Span};
use super::state::State;
use super::tcb::Tcb;
use crate::config::TcpConfig;

use crate::time::{Duration, Instant};

use ustack_wire::SeqNumber;

/// SACKed ranges the sender's scoreboard keeps at most: one per hole in
/// flight, which a large window at a few percent loss has by the hundred
/// (the receiver's `max_ofo_ranges` is a different limit; Linux keeps all,
/// on its retransmission queue). Past it, a new disjoint block is left out
/// and only underestimates what is SACKed (pipe errs high, RFC 6675 §4).
pub(crate) const MAX_SACKED_SPANS: usize = 2048;

/// What `choose_send` picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Send {
    pub seq: SeqNumber,
    pub len: usize,
    pub fin: bool,
    pub kind: SendKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendKind {
    /// New data (or a FIN) at SND.NXT = SND.MAX.
    New,
    /// Go-back-N after a timeout: resending from SND.NXT < SND.MAX.
    Resend,
    /// Fast retransmit / NewReno partial ACK / SACK hole: does not move SND.NXT.
    Repair,
    /// A zero-window probe (RFC 9293 §3.8.6.1).
    Probe,
}

impl Tcb {
    /// Whether this state still sends data or a FIN.
    pub(crate) fn sending_state(&self) -> bool {
        matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        )
    }

    /// Whether our FIN goes after the data in this state.
    fn fin_state(&self) -> bool {
        self.snd.fin_queued
            && matches!(
                self.state,
                State::FinWait1 | State::Closing | State::LastAck
            )
    }

    /// Bytes (and SYN/FIN) sent and not cumulatively ACKed.
    pub fn flight(&self) -> u32 {
        self.snd.max.diff(self.snd.una).max(0) as u32
    }

    /// Bytes the peer has SACKed above SND.UNA.
    pub fn sacked_bytes(&self) -> u32 {
        self.cong.sacked.iter().map(Span::len).sum()
    }

    /// The holes below the highest SACKed byte, each with whether RFC 6675
    /// IsLost() holds for it.
    fn holes(&self) -> impl Iterator<Item = (Span, bool)> + '_ {
        holes_of(&self.cong.sacked, self.snd.una, u32::from(self.snd.mss))
    }

    /// Bytes judged lost (RFC 6675 IsLost, or RACK) and not yet retransmitted.
    pub fn lost_bytes(&self) -> u32 {
        if let Some(r) = self.cong.rack.as_deref() {
            return r.lost_bytes();
        }
        self.holes()
            .filter(|(_, lost)| *lost)
            .map(|(h, _)| {
                let from = if h.start.diff(self.cong.high_rxt) < 0 {
                    self.cong.high_rxt
                } else {
                    h.start
                };
                h.end.diff(from).max(0) as u32
            })
            .sum()
    }

    /// RFC 6675 §4 SetPipe(): bytes still believed in the network.
    pub fn pipe(&self) -> u32 {
        self.flight()
            .saturating_sub(self.sacked_bytes())
            .saturating_sub(self.lost_bytes())
    }

    /// RFC 6675 NextSeg() rule 1: the first lost byte range not yet
    /// retransmitted (with RACK, from its per-segment marks).
    fn next_hole(&self) -> Option<(SeqNumber, usize)> {
        let mss = usize::from(self.snd.mss);
        if let Some(r) = self.cong.rack.as_deref() {
            return r.next_lost(mss);
        }
        self.holes().find_map(|(h, lost)| {
            if !lost {
                return None;
            }
            let from = if h.start.diff(self.cong.high_rxt) < 0 {
                self.cong.high_rxt
            } else {
                h.start
            };
            let len = h.end.diff(from);
            (len > 0).then(|| (from, (len as usize).min(mss)))
        })
    }

    /// The first lost hole as a segment to resend: its data (the send
    /// queue ends at the FIN), and the FIN if the hole covers its sequence
    /// number.
    fn next_repair(&self, fin_sent: bool) -> Option<Send> {
        let (seq, len) = self.next_hole()?;
        let data_end = self.data_end();
        let data = (data_end.diff(seq).max(0) as usize).min(len);
        let fin = fin_sent && data < len && seq + data == data_end;
        (data > 0 || fin).then_some(Send {
            seq,
            len: data,
            fin,
            kind: SendKind::Repair,
        })
    }

    /// Re-arms the tail-loss-probe timer (RFC 8985 §7.2): PTO = 2 SRTT
    /// (at least 10 ms), plus the worst-case delayed ACK when only one
    /// segment is out, never later than the RTO; only in the Open state
    /// with data outstanding and no probe out.
    pub(crate) fn arm_tlp(&mut self, now: Instant, cfg: &TcpConfig) {
        self.timer.tlp = None;
        if !cfg.tail_loss_probe
            || !self.rtt.have_sample
            || self.cong.tlp_out
            || self.cong.ca != CaState::Open
            || self.snd.una == self.snd.max
        {
            return;
        }
        // In integer microseconds: this runs for every segment sent and
        // every ACK, where `Duration` arithmetic showed in profiles.
        let mut pto = (self.rtt.srtt8 / 8).saturating_mul(2).max(10_000);
        if self.flight() <= u32::from(self.snd.mss) {
            pto += 200_000;
        }
        let at = Instant::from_micros(now.total_micros().saturating_add(pto));
        if self.timer.rexmit.is_none_or(|r| at < r) {
            self.timer.tlp = Some(at);
        }
    }

    /// The duplicate-ACK threshold: DupThresh, lowered when fewer than four
    /// segments are outstanding and no new data can go (early retransmit,
    /// RFC 5827 §3.1).
    pub fn dup_thresh(&self) -> u32 {
        let mss = u32::from(self.snd.mss).max(1);
        let segs = self.flight().div_ceil(mss);
        if segs < 4 && self.unsent() == 0 {
            segs.saturating_sub(1).max(1)
        } else {
            DUP_THRESH
        }
    }

    /// In SACK recovery, retransmissions are judged lost when more than
    /// DupThresh segments sent after them have been SACKed (the idea of
    /// RACK, RFC 8985): they are sent again.
    pub(crate) fn detect_lost_retransmits(&mut self) -> bool {
        if self.cong.rack.is_some() {
            // RACK finds lost retransmissions by their send times.
            return false;
        }
        let mss = u32::from(self.snd.mss);
        let Some(top) = self.cong.sacked.last().map(|r| r.end) else {
            return false;
        };
        if self.cong.ca != CaState::Recovery
            || !self.cong.rec_sack
            || self.cong.high_rxt.diff(self.snd.una) <= 0
            || top.diff(self.cong.rtx_fence) <= (DUP_THRESH * mss) as i32
        {
            return false;
        }
        // Holes below HighRxt that are still unSACKed were retransmitted
        // before data that has since arrived.
        let unsacked_below = self
            .holes()
            .any(|(h, _)| h.start.diff(self.cong.high_rxt) < 0);
        if unsacked_below {
            self.cong.high_rxt = self.snd.una;
            self.cong.rtx_fence = self.snd.max;
        }
        unsacked_below
    }

    /// RACK (RFC 8985 §6.2) for the ACK just taken in (its SACK blocks and
    /// cumulative ACK already fed to the log): RACK.xmit_ts/rtt/fack from
    /// what it delivered, time-based loss detection, then the holes RFC
    /// 6675 IsLost() holds for marked lost too (outside RTO recovery).
    pub(crate) fn rack_on_ack(&mut self, now: Instant) -> Detected {
        let Some(r) = self.cong.rack.as_deref_mut() else {
            return Detected::default();
        };
        r.end_ack();
        let found = self.rack_detect(now);
        let mss = u32::from(self.snd.mss);
        if let (false, Some(r)) = (self.cong.ca == CaState::Loss, self.cong.rack.as_deref_mut()) {
            for (h, _) in holes_of(&self.cong.sacked, self.snd.una, mss).filter(|(_, lost)| *lost) {
                r.mark_lost(h.start, h.end);
            }
        }
        found
    }

    /// RFC 8985 §6.2 step 5 with the reordering window for the current
    /// state (step 4); also what the reordering timer runs.
    pub(crate) fn rack_detect(&mut self, now: Instant) -> Detected {
        let mss = u32::from(self.snd.mss).max(1);
        let sacked_segs = self.sacked_bytes().div_ceil(mss);
        let recovering = self.cong.ca != CaState::Open;
        let srtt = self.rtt.have_sample.then_some(self.rtt.srtt8 / 8);
        let Some(r) = self.cong.rack.as_deref_mut() else {
            return Detected::default();
        };
        let reo_wnd = r.reo_wnd(recovering, sacked_segs, srtt);
        let found = r.detect(now.total_micros(), reo_wnd, mss);
        self.cong.rack_timer = r.timer.is_some();
        found
    }

    /// Whether RACK (or IsLost, with RACK on) has judged a segment lost
    /// that is not yet retransmitted.
    pub(crate) fn rack_lost(&self) -> bool {
        self.cong.rack.as_deref().is_some_and(Rack::has_lost)
    }

    /// Enters fast recovery (RFC 5681 §3.2, RFC 6675 §5, RFC 6582): the
    /// congestion response once for this window, then the first lost
    /// segment (or SND.UNA) goes at once.
    pub(crate) fn enter_recovery(&mut self, now: Instant) {
        let mss = u32::from(self.snd.mss);
        let flight = self.flight();
        self.cong.cc.on_loss(now, flight, mss);
        self.cong.ca = CaState::Recovery;
        // With RACK the per-segment marks drive recovery (it needs SACK).
        self.cong.rec_sack = self.neg.sack
            && (self.cong.rack.is_some() || (!self.cong.sacked.is_empty() && self.una_lost()));
        self.cong.recover = self.snd.max;
        self.cong.high_rxt = self.snd.una;
        self.cong.rec_cwnd = self.cong.cc.window().saturating_add(3 * mss);
        self.cong.rtx_now = true;
        self.rtt.timing = None;
        self.timer.tlp = None;
        self.cong.tlp_pending = false;
    }

    /// Whether RFC 6675 IsLost(SND.UNA) holds: enough SACKed above it.
    pub fn una_lost(&self) -> bool {
        self.neg.sack
            && self
                .holes()
                .next()
                .is_some_and(|(h, lost)| lost && h.start == self.snd.una)
    }

    /// `seq`, or the end of the SACKed range it falls in.
    fn skip_sacked(&self, seq: SeqNumber) -> SeqNumber {
        let mut s = seq;
        for r in self.cong.sacked.iter() {
            if s.diff(r.start) >= 0 && s.diff(r.end) < 0 {
                s = r.end;
            }
        }
        s
    }

    /// The start of the first SACKed range above `seq`.
    fn next_sacked_after(&self, seq: SeqNumber) -> Option<SeqNumber> {
        self.cong
            .sacked
            .iter()
            .find(|r| r.start.diff(seq) > 0)
            .map(|r| r.start)
    }

    /// The data segment this TCB would send now, if any. Pure, so that
    /// `wants_output` (the ready list) and the output path agree.
    pub(crate) fn choose_send(&self) -> Option<Send> {
        self.choose_send_corked(true)
    }

    /// Whether TCP_CORK is what holds data back: nothing may go, but
    /// would without the cork.
    pub(crate) fn cork_holds(&self) -> bool {
        self.opts.cork && self.choose_send().is_none() && self.choose_send_corked(false).is_some()
    }

    /// What cwnd lets go in the open state. Limited transmit (RFC 3042):
    /// the first two duplicate ACKs each let one new segment beyond cwnd
    /// go, so that enough ACKs come back for fast retransmit.
    fn open_allowance(&self) -> usize {
        let extra = self.cong.dupacks.min(2) * u32::from(self.snd.mss);
        let in_flight = self.snd.nxt.diff(self.snd.una).max(0) as u32;
        self.cong
            .cc
            .window()
            .saturating_add(extra)
            .saturating_sub(in_flight) as usize
    }

    /// How many segments of `seg` bytes of new data from SND.NXT may go at
    /// once, up to `max`: the bound `choose_send` applies to one segment
    /// (cwnd, the peer's window, the data queued), for a burst of full
    /// segments. Only in the open state with nothing owed but new data,
    /// and short of the end of the data while a FIN is queued, so no
    /// segment of a burst needs a rule of its own (FIN, Nagle, probes).
    pub(crate) fn burst_segments(&self, seg: usize, max: usize) -> usize {
        if seg == 0
            || self.cong.ca != CaState::Open
            || self.cong.rtx_now
            || self.cong.tlp_pending
            || self.owed.force_probe
            || self.snd.fin_queued
            || self.snd.nxt != self.snd.max
        {
            return 1;
        }
        let seq = self.snd.nxt;
        let unsent = self.data_end().diff(seq).max(0) as usize;
        let wnd_room = (self.snd.una + self.snd.wnd as usize).diff(seq).max(0) as usize;
        let room = self.open_allowance().min(unsent).min(wnd_room);
        (room / seg).clamp(1, max)
    }

    /// `choose_send`, with TCP_CORK applied or not.
    fn choose_send_corked(&self, cork: bool) -> Option<Send> {
        if !self.sending_state() {
            return None;
        }
        let data_end = self.data_end();
        // Everything sent, nothing to repair or resend, no FIN owed: the
        // common case of a receiver (checked on every segment it gets).
        if self.snd.nxt == data_end
            && self.snd.max == data_end
            && !self.cong.rtx_now
            && !self.cong.tlp_pending
            && self.cong.ca == CaState::Open
            && !self.fin_state()
        {
            return None;
        }
        let mss = usize::from(self.snd.mss);
        let fin_sent = self.fin_state() && self.snd.max.diff(data_end) > 0;
        // Fast retransmit, or a NewReno partial ACK: the segment at SND.UNA
        // (or, with SACK, the first lost hole), whatever the window.
        if self.cong.rtx_now {
            if let Some(s) = self.next_repair(fin_sent) {
                return Some(s);
            }
            let avail = data_end.diff(self.snd.una).max(0) as usize;
            let len = avail.min(mss);
            let fin = fin_sent && self.snd.una + len == data_end;
            if len > 0 || fin {
                return Some(Send {
                    seq: self.snd.una,
                    len,
                    fin,
                    kind: SendKind::Repair,
                });
            }
        }
        if self.cong.tlp_pending {
            // The probe (RFC 8985 §7.3): new data if the peer's window
            // allows, else the last segment sent, whatever cwnd says.
            let wnd_room = (self.snd.una + self.snd.wnd as usize)
                .diff(self.snd.max)
                .max(0) as usize;
            let unsent = data_end.diff(self.snd.max).max(0) as usize;
            if unsent > 0 && wnd_room > 0 && self.snd.nxt == self.snd.max {
                let len = unsent.min(mss).min(wnd_room);
                return Some(Send {
                    seq: self.snd.max,
                    len,
                    fin: self.fin_state() && self.snd.max + len == data_end,
                    kind: SendKind::New,
                });
            }
            let sent_end = if self.snd.max.diff(data_end) > 0 {
                data_end
            } else {
                self.snd.max
            };
            let from = sent_end - mss.min(sent_end.diff(self.snd.una).max(0) as usize);
            let len = sent_end.diff(from).max(0) as usize;
            let fin = fin_sent && sent_end == data_end;
            if len > 0 || fin {
                return Some(Send {
                    seq: from,
                    len,
                    fin,
                    kind: SendKind::Repair,
                });
            }
        }
        let cwnd = self.cong.cc.window();
        let allowance = match self.cong.ca {
            CaState::Recovery if self.cong.rec_sack => {
                let room = cwnd.saturating_sub(self.pipe()) as usize;
                if let Some(s) = self.next_repair(fin_sent) {
                    return (room >= s.len.max(1)).then_some(s);
                }
                room
            }
            CaState::Recovery => self.cong.rec_cwnd.saturating_sub(self.flight()) as usize,
            CaState::Open => self.open_allowance(),
            CaState::Loss => {
                let in_flight = self.snd.nxt.diff(self.snd.una).max(0) as u32;
                cwnd.saturating_sub(in_flight) as usize
            }
        };
        let seq = self.skip_sacked(self.snd.nxt);
        let resend = seq.diff(self.snd.max) < 0;
        let unsent = data_end.diff(seq).max(0) as usize;
        let wnd_room = (self.snd.una + self.snd.wnd as usize).diff(seq).max(0) as usize;
        let mut len = unsent.min(mss).min(allowance).min(wnd_room);
        if resend {
            if let Some(next) = self.next_sacked_after(seq) {
                len = len.min(next.diff(seq).max(0) as usize);
            }
        }
        let fin = self.fin_state() && seq + len == data_end && (resend || !fin_sent);
        if len == 0 && unsent > 0 && self.owed.force_probe && wnd_room == 0 {
            // One byte beyond a closed window (RFC 9293 §3.8.6.1).
            return Some(Send {
                seq,
                len: 1,
                fin: self.fin_state() && seq + 1 == data_end,
                kind: SendKind::Probe,
            });
        }
        if resend {
            return (len > 0 || fin).then_some(Send {
                seq,
                len,
                fin,
                kind: SendKind::Resend,
            });
        }
        if len == 0 {
            if fin && unsent == 0 {
                return Some(Send {
                    seq,
                    len: 0,
                    fin: true,
                    kind: SendKind::New,
                });
            }
            if unsent > 0 && self.owed.force_probe {
                // One byte beyond a closed window (RFC 9293 §3.8.6.1), or
                // what a small open window allows.
                let len = wnd_room.clamp(1, mss).min(unsent);
                let fin = self.fin_state() && seq + len == data_end;
                return Some(Send {
                    seq,
                    len,
                    fin,
                    kind: SendKind::Probe,
                });
            }
            return None;
        }
        if len < mss && !fin {
            if len < unsent {
                // Sender SWS avoidance (RFC 9293 §3.8.6.2.1): a piece cut
                // short by the window goes only if it is at least half the
                // largest window the peer has offered, or if nothing is in
                // flight (no ACK would come to open more; as Linux).
                if (len as u32) < self.snd.max_wnd / 2 && self.snd.una != self.snd.max {
                    return None;
                }
            } else if (cork
                && self.opts.cork
                && self
                    .snd
                    .cork_release
                    .is_none_or(|r| (seq + len).diff(r) > 0))
                || (!self.opts.nodelay && self.snd.sml.diff(self.snd.una) > 0)
            {
                // TCP_CORK holds partial segments; Nagle (RFC 896, with
                // Minshall's refinement as Linux) holds a small segment
                // while an earlier small one is unacknowledged.
                return None;
            }
        }
        Some(Send {
            seq,
            len,
            fin,
            kind: SendKind::New,
        })
    }

    /// Takes the SACK blocks of an ACK into the scoreboard (RFC 2018 §5):
    /// blocks must lie within (SND.UNA, SND.MAX]; D-SACKs and junk are
    /// ignored. Returns the number of valid blocks and the bytes newly SACKed.
    pub(crate) fn take_sack(
        &mut self,
        blocks: &[Option<(SeqNumber, SeqNumber)>],
        max: usize,
    ) -> (u32, u32) {
        let before = self.sacked_bytes();
        let mut n = 0;
        for &(l, r) in blocks.iter().flatten() {
            if l.diff(r) >= 0 || l.diff(self.snd.una) <= 0 || r.diff(self.snd.max) > 0 {
                continue;
            }
            n += 1;
            self.cong
                .sacked
                .edit(|v| insert_span(v, Span { start: l, end: r }, max));
            // RACK's log has its own bound: it learns of every block, so a
            // SACKed segment is never judged lost (issue #20).
            if let Some(rack) = self.cong.rack.as_deref_mut() {
                rack.on_sack(l, r);
            }
        }
        (n, self.sacked_bytes().saturating_sub(before))
    }

    /// Drops scoreboard entries the cumulative ACK has passed.
    pub(crate) fn trim_sacked(&mut self) {
        let una = self.snd.una;
        self.cong.sacked.retain_mut(|r| {
            if r.end.diff(una) <= 0 {
                return false;
            }
            if r.start.diff(una) < 0 {
                r.start = una;
            }
            true
        });
    }

    /// The SACK blocks to send: the range holding the latest segment
    /// first, then the others by recency (RFC 2018 §4).
    pub(crate) fn sack_blocks(&self) -> ustack_wire::tcp::SackBlocks {
        let mut out: ustack_wire::tcp::SackBlocks = [None; 4];
        if !self.neg.sack || self.rcv.ofo.is_empty() {
            return out;
        }
        let mut v: Vec<&OfoRange> = self.rcv.ofo.iter().collect();
        v.sort_unstable_by_key(|r| core::cmp::Reverse(r.stamp));
        for (slot, r) in out.iter_mut().zip(v) {
            *slot = Some((r.span.start, r.span.end));
        }
        out
    }

    /// Bytes held in the out-of-order queue.
    pub fn ofo_bytes(&self) -> u32 {
        self.rcv.ofo.iter().map(|r| r.span.len()).sum()
    }

    /// Queues out-of-order data at `seq` > RCV.NXT in the receive ring's
    /// free space. Returns the bytes taken (0: dropped, no room or too
    /// many ranges).
    pub(crate) fn ofo_insert(&mut self, seq: SeqNumber, data: &[u8], max_ranges: usize) -> usize {
        let off = seq.diff(self.rcv.nxt);
        if off <= 0 || data.is_empty() {
            return 0;
        }
        let off = off as usize;
        let room = self.rcv.q.free().saturating_sub(off).min(data.len());
        if room == 0 {
            return 0;
        }
        let span = Span {
            start: seq,
            end: seq + room,
        };
        let touches = self
            .rcv
            .ofo
            .iter()
            .any(|r| r.span.start.diff(span.end) <= 0 && span.start.diff(r.span.end) <= 0);
        if !touches && self.rcv.ofo.len() >= max_ranges {
            return 0;
        }
        let n = self.rcv.q.write_at(off, &data[..room]);
        self.rcv.ofo_stamp = self.rcv.ofo_stamp.wrapping_add(1);
        let stamp = self.rcv.ofo_stamp;
        let mut merged = span;
        self.rcv.ofo.retain_mut(|r| {
            let overlap = r.span.start.diff(merged.end) <= 0 && merged.start.diff(r.span.end) <= 0;
            if overlap {
                if r.span.start.diff(merged.start) < 0 {
                    merged.start = r.span.start;
                }
                if r.span.end.diff(merged.end) > 0 {
                    merged.end = r.span.end;
                }
            }
            !overlap
        });
        let at = self
            .rcv
            .ofo
            .iter()
            .position(|r| r.span.start.diff(merged.start) > 0)
            .unwrap_or(self.rcv.ofo.len());
        self.rcv.ofo.insert(
            at,
            OfoRange {
                span: merged,
                stamp,
            },
        );
        n
    }

    /// Takes in-order `data` at RCV.NXT into the receive ring (as much as
    /// fits), then any queued out-of-order ranges it now joins, and moves
    /// RCV.NXT past all of it. Returns the bytes of `data` taken.
    /// With posted buffers waiting and nothing in the ring before them,
    /// the data goes straight into them, in order (counted in `direct`).
    #[inline(always)]
    pub(crate) fn take_in_order(&mut self, data: &[u8], direct: &mut u64) -> usize {
        let mut data = data;
        let mut d = 0;
        if let Some(q) = self.rcv.posted.as_mut() {
            if self.rcv.q.is_empty() && self.rcv.ofo.is_empty() {
                d = q.fill(data);
                data = &data[d..];
                *direct += d as u64;
                self.rcv.nxt += d;
                // Read, for autotuning (`rcv_space_adjust`).
                self.rcv.copied = self.rcv.copied.wrapping_add(d);
                if data.is_empty() {
                    return d;
                }
            }
        }
        let n = self.rcv.q.write_at(0, data);
        let end = self.ofo_advance(self.rcv.nxt + n);
        self.rcv.q.commit(end.diff(self.rcv.nxt).max(0) as usize);
        self.rcv.nxt = end;
        d + n
    }

    /// After in-order data up to `end`: pulls queued ranges that now
    /// touch it; returns the new RCV.NXT.
    pub(crate) fn ofo_advance(&mut self, mut end: SeqNumber) -> SeqNumber {
        while let Some(r) = self.rcv.ofo.first() {
            if r.span.start.diff(end) > 0 {
                break;
            }
            if r.span.end.diff(end) > 0 {
                end = r.span.end;
            }
            self.rcv.ofo.remove(0);
        }
        end
    }

    /// ACK policy for `n` in-order bytes just received (RFC 9293
    /// §3.8.6.3, RFC 1122 §4.2.3.2): quick-ACK at the start, else an ACK
    /// for every second full-sized segment, else the delayed-ACK timer.
    #[inline(always)]
    pub(crate) fn on_data_received(&mut self, now: Instant, n: usize, cfg: &TcpConfig) -> bool {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.rcv.unacked = self.rcv.unacked.saturating_add(n);
        // A coalesced super-packet (GRO) stands for segments of at most
        // our MSS: the "full-sized segment" of the rule below stays one.
        let seg = n.min(u32::from(self.rcv.mss.max(1)));
        self.rcv.seg_max = self.rcv.seg_max.max(seg as u16);
        if self.rcv.quickack > 0 {
            self.rcv.quickack -= 1;
            self.owed.ack = true;
            return true;
        }
        if self.rcv.unacked >= 2 * u32::from(self.rcv.seg_max.max(1)) || cfg.delayed_ack.is_zero() {
            self.owed.ack = true;
        } else if self.timer.delack.is_none() {
            self.timer.delack = Some(now + cfg.delayed_ack);
        }
        false
    }

    /// Receive-buffer autotuning (after Linux `tcp_rcv_space_adjust`):
    /// once per receiver RTT, a buffer the application drained at more
    /// than a quarter of its size grows to four times what was read, up
    /// to `max_rcvbuf`. Returns whether it grew.
    ///
    /// "Read" is `copied` from the ring (`tcp_recv`), plus the bytes
    /// that landed in posted buffers, added to `rcv.copied` as they are
    /// placed: Linux calls `tcp_rcv_space_adjust` from
    /// `tcp_recvmsg_locked` after each skb it copies into the user's
    /// buffer (io_uring's recv too), and once called it from the direct
    /// copy into a waiting reader's iovec in `tcp_data_queue`
    /// (prequeue), so the copy, not the completion, is the moment that
    /// counts. Counting at hand-back instead would see a large
    /// MSG_WAITALL buffer's bytes in one lump, rounds late. The
    /// per-RTT judgment itself waits for the next read or reap
    /// (`Tcp::tcp_take_posted`), off the per-segment path.
    pub(crate) fn rcv_space_adjust(
        &mut self,
        now: Instant,
        copied: usize,
        cfg: &TcpConfig,
    ) -> bool {
        if self.opts.rcvbuf_locked {
            return false;
        }
        self.rcv.copied = self.rcv.copied.saturating_add(copied);
        let rtt = if self.rcv.rtt_us > 0 {
            Duration::from_micros(u64::from(self.rcv.rtt_us))
        } else if self.rtt.have_sample {
            self.rtt.srtt()
        } else {
            Duration::from_millis(100)
        }
        .max(Duration::from_millis(1));
        if now - self.rcv.copied_since < rtt {
            return false;
        }
        let copied = core::mem::take(&mut self.rcv.copied);
        self.rcv.copied_since = now;
        let cap = self.rcv.q.capacity();
        let want = copied.saturating_mul(4).min(cfg.max_rcvbuf);
        if want > cap && copied * 4 > cap {
            self.rcv.q.set_limit(want);
            return true;
        }
        false
    }

    /// Send-buffer autotuning (after Linux `tcp_sndbuf_expand`): room for
    /// two congestion windows, up to `max_sndbuf`.
    pub(crate) fn snd_space_adjust(&mut self, cfg: &TcpConfig) {
        if self.opts.sndbuf_locked {
            return;
        }
        let want = (2 * self.cong.cc.window().max(self.snd.wnd) as usize).min(cfg.max_sndbuf);
        if want > self.snd.q.capacity() {
            self.snd.q.set_limit(want);
        }
    }
}

/// The holes in `[una, highest SACKed)` between the SACKed spans, each
/// with whether RFC 6675 IsLost() holds for it (more than (DupThresh-1) ×
/// SMSS bytes, or DupThresh ranges, SACKed above it).
fn holes_of(sacked: &[Span], una: SeqNumber, mss: u32) -> impl Iterator<Item = (Span, bool)> + '_ {
    let total: u32 = sacked.iter().map(Span::len).sum();
    let n = sacked.len();
    let mut below = 0u32;
    let mut from = una;
    sacked.iter().enumerate().filter_map(move |(i, r)| {
        let hole = Span {
            start: from,
            end: r.start,
        };
        let above = total - below;
        below += r.len();
        from = r.end;
        let lost = above > (DUP_THRESH - 1) * mss || (n - i) as u32 >= DUP_THRESH;
        (hole.len() > 0).then_some((hole, lost))
    })
}

/// Inserts `s` into a sorted list of disjoint spans, merging overlaps;
/// beyond `max` entries a new disjoint span is not kept. Returns whether
/// it was kept.
fn insert_span(list: &mut Vec<Span>, s: Span, max: usize) -> bool {
    let mut merged = s;
    let before = list.len();
    list.retain(|r| {
        let overlap = r.start.diff(merged.end) <= 0 && merged.start.diff(r.end) <= 0;
        if overlap {
            if r.start.diff(merged.start) < 0 {
                merged.start = r.start;
            }
            if r.end.diff(merged.end) > 0 {
                merged.end = r.end;
            }
        }
        !overlap
    });
    if list.len() == before && list.len() >= max {
        return false;
    }
    let at = list
        .iter()
        .position(|r| r.start.diff(merged.start) > 0)
        .unwrap_or(list.len());
    list.insert(at, merged);
    true
}
