//! Segment output: the next segment a TCB owes, written straight into the
//! caller's buffer (IP header, TCP header, payload from the send ring).

use super::cc::CaState;
use super::data::SendKind;
use super::plan::{Burst, Plan, BURST_HEADER_MAX, BURST_SEGMENTS};
use super::state::State;
use super::table::Tcp;
use super::tcb::TcbId;
use crate::cx::Cx;

use crate::ipv4::output::Emitted;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use ustack_wire::{
    checksum, ChecksumCaps, IpProtocol, Ipv6Packet, Ipv6Repr, TcpFlags, TcpPacket, TcpRepr,
    TcpTimestamp,
};

/// The IPv4 address in `ip` (the v4 output path; an IPv6 plan never gets there).
#[inline(always)]
fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// What `tcp_transmit` did.
pub(crate) enum TcpTx {
    /// A frame of this length is in the caller's buffer.
    Sent(usize),
    /// Something happened (loopback, ARP queue): look at the other queues again.
    Again,
    /// Nothing owed.
    Idle,
}

impl Tcp {
    /// Writes the next TCP segment owed (control queue first, then the ready
    /// list, round robin).
    #[inline(always)]
    pub(crate) fn dispatch(&mut self, cx: &mut Cx<'_>, buf: &mut [u8]) -> TcpTx {
        loop {
            if self.burst.is_some() {
                // The rest of a burst: planned and accounted for already.
                if let Some(r) = self.burst_next(cx, buf) {
                    return r;
                }
                continue;
            }
            let plan = if let Some(c) = self.ctl.pop_front() {
                Plan::from_ctl(c)
            } else if let Some(id) = self.ready.pop_front() {
                let Some(t) = self.get_mut(id) else {
                    continue;
                };
                t.owed.in_ready = false;
                match self.tcp_next_segment(cx, id) {
                    Some(p) => p,
                    None => {
                        // Its turn found nothing to send: maybe the cork
                        // now holds its tail, or pacing armed its timer.
                        self.arm_cork(cx.now, id);
                        self.arm(id);
                        continue;
                    }
                }
            } else {
                return TcpTx::Idle;
            };
            let r = if plan.len > plan.seg && plan.seg > 0 {
                if self.tso_fits(cx, &plan) {
                    self.tso_emit(cx, &plan, buf)
                } else {
                    self.burst_start(cx, &plan, buf)
                }
            } else {
                self.tcp_emit(cx, &plan, buf)
            };
            if let Some(id) = plan.id {
                self.arm(id);
                if plan.len > 0 {
                    // A TCB that just sent data usually has more: back on
                    // the ready list without asking choose_send twice per
                    // segment; its next turn asks (and finds nothing once
                    // the window is used up).
                    self.requeue(id);
                } else {
                    self.schedule(cx.now, id);
                }
            }
            return r;
        }
    }

    /// Whether a burst may leave as one super-segment (`StackConfig::tso`):
    /// segments that fill the MTU (the device reads the segment size as
    /// MTU − headers), at most 64 KiB of IP datagram, straight out.
    #[inline]
    fn tso_fits(&self, cx: &Cx<'_>, plan: &Plan) -> bool {
        let ip = ustack_wire::ipv4::HEADER_LEN + plan.repr.header_len();
        cx.cfg.tso
            && plan.remote.is_ipv4()
            && plan.id.is_some()
            && plan.seg + ip == cx.cfg.mtu
            && ip + plan.len <= usize::from(u16::MAX)
            && cx.sh.ip.direct(cx.cfg, cx.now, v4(plan.remote.ip()))
    }

    /// A burst as ONE frame: the headers of its first segment, IP total
    /// length over all of it, the payload of all its segments, and the
    /// TCP checksum field holding the pseudo-header sum only (partial:
    /// the device's TSO cuts it at the MSS and completes each segment's
    /// checksum, as Linux's `tcp_gso_segment` does). PSH as planned (the
    /// kernel keeps it on the last segment only). The TCB accounted for
    /// every segment when the burst was planned.
    fn tso_emit(&mut self, cx: &mut Cx<'_>, plan: &Plan, buf: &mut [u8]) -> TcpTx {
        let repr = &plan.repr;
        let thl = repr.header_len();
        let segs = plan.len.div_ceil(plan.seg.max(1));
        let this = &*self;
        let r = cx.sh.ip.emit_with(
            cx.cfg,
            &mut cx.sh.counters,
            cx.now,
            v4(plan.local.ip()),
            v4(plan.remote.ip()),
            IpProtocol::Tcp,
            thl + plan.len,
            buf,
            |out, pseudo| {
                this.tcp_write(false, plan, repr, thl, pseudo, out);
                TcpPacket::new_unchecked(&mut out[..]).set_checksum(checksum::fold(pseudo));
            },
        );
        if let (Emitted::Sent(n), true) = (r, plan.ect) {
            let lhl = cx.cfg.link_header_len();
            super::ecn::mark_ect(&mut buf[lhl..n], cx.cfg.checksums.tx);
        }
        if r != Emitted::NoRoute {
            cx.sh.counters.tcp.out_segs += segs as u64;
            cx.sh.counters.tcp.tso_sends += 1;
        }
        match r {
            Emitted::Sent(n) => TcpTx::Sent(n),
            _ => TcpTx::Again,
        }
    }

    /// Sends the first segment of a burst and keeps the rest.
    fn burst_start(&mut self, cx: &mut Cx<'_>, plan: &Plan, buf: &mut [u8]) -> TcpTx {
        let mut first = *plan;
        first.len = plan.seg;
        first.repr.flags.remove(TcpFlags::PSH);
        let r = self.tcp_emit(cx, &first, buf);
        let Some(id) = plan.id else { return r };
        let mut b = Burst {
            id,
            seq: plan.repr.seq_number + plan.seg,
            left: plan.len - plan.seg,
            seg: plan.seg,
            psh: plan.repr.flags.contains(TcpFlags::PSH),
            hdr: [0; BURST_HEADER_MAX],
            hdr_len: 0,
            plan: *plan,
        };
        if let TcpTx::Sent(_) = r {
            let n = cx.cfg.link_header_len() + 20 + first.repr.header_len();
            b.hdr[..n].copy_from_slice(&buf[..n]);
            b.hdr_len = n;
        }
        self.burst = Some(b);
        r
    }

    /// The next segment of the burst in hand; `None` when the burst has
    /// ended instead. It is checked against the TCB as it is now: between
    /// two `transmit` calls an ACK may have moved the send ring's front
    /// (the payload's offset is taken afresh), and a timeout (SND.NXT sent
    /// back: go-back-N resends these bytes), a reset, or an ACK for bytes
    /// not yet on the wire (a hostile peer) ends it.
    #[inline(always)]
    fn burst_next(&mut self, cx: &mut Cx<'_>, buf: &mut [u8]) -> Option<TcpTx> {
        let b = self.burst.as_ref()?;
        let (id, seq, left, seg) = (b.id, b.seq, b.left, b.seg);
        let n = seg.min(left);
        let last = n == left;
        let psh = last && b.psh;
        let templated = b.hdr_len > 0;
        let off = self.get(id).and_then(|t| {
            let off = seq.diff(t.sndq_seq());
            let ok = off >= 0
                && off as usize + n <= t.snd.q.len()
                && (seq + n).diff(t.snd.nxt) <= 0
                && t.sending_state();
            ok.then_some(off as usize)
        });
        let Some(off) = off else {
            self.burst = None;
            return None;
        };
        let r = if templated {
            self.burst_emit(cx, off, n, psh, buf)
        } else {
            self.burst_emit_planned(cx, off, n, psh, buf)
        };
        match self.burst.as_mut() {
            Some(b) if !last => {
                b.seq = seq + n;
                b.left = left - n;
            }
            _ => self.burst = None,
        }
        Some(r)
    }

    /// A segment of a burst whose headers could not be kept: built as
    /// any other.
    #[cold]
    fn burst_emit_planned(
        &mut self,
        cx: &mut Cx<'_>,
        off: usize,
        n: usize,
        psh: bool,
        buf: &mut [u8],
    ) -> TcpTx {
        let Some(b) = self.burst.as_ref() else {
            return TcpTx::Again;
        };
        let mut p = b.plan;
        p.repr.seq_number = b.seq;
        p.off = off;
        p.len = n;
        p.seg = n;
        p.repr.flags.remove(TcpFlags::PSH);
        if psh {
            p.repr.flags |= TcpFlags::PSH;
        }
        self.tcp_emit(cx, &p, buf)
    }

    /// The window we advertise: free receive space, scaled, never shrinking
    /// the right edge already offered (RFC 9293 §3.8.6), and moving it
    /// only by at least min(buffer / 2, MSS) (receiver SWS avoidance,
    /// RFC 9293 §3.8.6.2.2).
    fn tcp_window(&mut self, id: TcbId, syn: bool) -> u16 {
        let Some(t) = self.get_mut(id) else {
            return 0;
        };
        let shift = if syn { 0 } else { t.rcv.wscale };
        let offered = t.rcv.adv.diff(t.rcv.nxt).max(0) as usize;
        let free = t.rcv_space();
        let step = (t.rcv.q.capacity() / 2).min(usize::from(t.rcv.mss));
        let space = if free > offered && free - offered < step {
            offered
        } else {
            free.max(offered)
        };
        let w = (space >> shift).min(65535);
        t.rcv.adv = t.rcv.nxt + (w << shift);
        w as u16
    }

    fn tcp_next_segment(&mut self, cx: &mut Cx<'_>, id: TcbId) -> Option<Plan> {
        let now = cx.now;
        let cfg = &cx.cfg.tcp;
        let t = self.get_mut(id)?;
        let tsval = (now.total_millis() as u32).wrapping_add(t.neg.ts_offset);
        let mut plan = Plan::new(
            Some(id),
            t.local,
            t.remote,
            TcpFlags::ACK,
            t.snd.nxt,
            t.rcv.nxt,
        );
        plan.repr.timestamp = t.neg.ts.then_some(TcpTimestamp {
            tsval,
            tsecr: t.neg.ts_recent,
        });
        let syn = match t.state {
            State::Closed | State::Listen => return None,
            State::SynSent | State::SynReceived if !t.owed.syn => {
                t.owed.ack = false;
                return None;
            }
            State::SynSent | State::SynReceived => {
                t.owed.syn = false;
                if t.snd.max != t.snd.iss {
                    cx.sh.counters.tcp.retrans_segs += 1;
                    t.total_retrans += 1;
                    t.rtt.timing = None;
                    if cx.cfg.trace {
                        t.trace_retransmit(cx, t.snd.iss, 0, SendKind::Resend);
                    }
                } else {
                    t.rtt.timing = Some((t.snd.iss, now));
                }
                t.snd.nxt = t.snd.iss + 1;
                t.snd.max = t.snd.iss + 1;
                if t.timer.rexmit.is_none() {
                    t.timer.rexmit = Some(t.rto_deadline(now, cfg));
                }
                plan.repr.seq_number = t.snd.iss;
                plan.repr.max_seg_size = Some(t.rcv.mss);
                if t.state == State::SynSent {
                    plan.repr.flags = TcpFlags::SYN;
                    if cfg.ecn == crate::config::EcnMode::On {
                        // RFC 3168 §6.1.1: an ECN-setup SYN.
                        plan.repr.flags |= TcpFlags::ECE | TcpFlags::CWR;
                    }
                    plan.repr.window_scale = cfg.window_scaling.then_some(t.rcv.wscale);
                    plan.repr.sack_permitted = cfg.sack;
                    plan.repr.timestamp =
                        cfg.timestamps.then_some(TcpTimestamp { tsval, tsecr: 0 });
                } else {
                    plan.repr.flags = TcpFlags::SYN | TcpFlags::ACK;
                    if t.neg.ecn.ok {
                        plan.repr.flags |= TcpFlags::ECE;
                    }
                    plan.repr.window_scale = t.neg.ws.then_some(t.rcv.wscale);
                    plan.repr.sack_permitted = t.neg.sack;
                }
                t.owed.ack = false;
                true
            }
            _ => {
                // Restart after idle (RFC 5681 §4.1): nothing in flight and
                // quiet for longer than the RTO.
                if cfg.slow_start_after_idle
                    && t.snd.una == t.snd.max
                    && t.unsent() > 0
                    && now - t.snd.last_send > t.current_rto(cfg)
                {
                    let iw = cfg.initial_window.max(1) * u32::from(t.snd.mss);
                    if t.cong.cc.window() > iw {
                        t.cong.cc.on_idle_restart(now, iw);
                        cx.sh.counters.tcp.idle_restarts += 1;
                    }
                }
                plan.repr.sack_ranges = t.sack_blocks();
                let sack_n = plan
                    .repr
                    .sack_ranges
                    .iter()
                    .flatten()
                    .count()
                    .min(if t.neg.ts { 3 } else { 4 });
                let sack_opt = if sack_n > 0 { 4 + 8 * sack_n } else { 0 };
                let mut send = t.choose_send();
                if send.is_some() && t.pace_hold(now, cfg) {
                    send = None;
                }
                if let Some(s) = send.as_mut() {
                    // SACK blocks take room from the payload (the MSS
                    // already allows for timestamps).
                    let max = usize::from(t.snd.mss).saturating_sub(sack_opt).max(1);
                    if s.len > max {
                        s.len = max;
                        s.fin = false;
                    }
                }
                if let Some(s) = send {
                    let seq = s.seq;
                    // Full segments of new data, with room for more: a
                    // burst (the rest of this arm accounts for all of it,
                    // as it would segment by segment).
                    let segs = if cfg.gso
                        && s.kind == SendKind::New
                        && !t.neg.ecn.cwr
                        && !s.fin
                        && sack_opt == 0
                        && s.len == usize::from(t.snd.mss)
                    {
                        t.burst_segments(s.len, t.pace_burst(cfg, BURST_SEGMENTS))
                    } else {
                        1
                    };
                    let len = s.len * segs;
                    plan.repr.seq_number = seq;
                    plan.off = seq.diff(t.sndq_seq()).max(0) as usize;
                    plan.len = len;
                    plan.seg = s.len;
                    let end = seq + len + usize::from(s.fin);
                    let rtx = seq.diff(t.snd.max) < 0;
                    if rtx {
                        cx.sh.counters.tcp.retrans_segs += 1;
                        t.total_retrans += 1;
                        if cx.cfg.trace {
                            t.trace_retransmit(cx, seq, len, s.kind);
                        }
                        // Karn: no RTT sample from anything retransmitted.
                        t.rtt.timing = None;
                    } else if t.rtt.timing.is_none() && len > 0 {
                        t.rtt.timing = Some((seq, now));
                    }
                    if t.snd.una == t.snd.max {
                        t.timer.una_since = now;
                    }
                    // RACK's per-segment send times (RFC 8985 §6.1).
                    if t.cong.rack.is_none() && t.neg.sack && cfg.rack {
                        t.cong.rack = Some(Box::new(super::rack::Rack::new(t.snd.una)));
                    }
                    if let Some(r) = t.cong.rack.as_deref_mut() {
                        r.on_send(seq, end, now.total_micros());
                    }
                    t.paced_send(now, cfg, seq, end, len, rtx);
                    // Nothing was in flight: a persist timer armed while the
                    // cork (or Nagle) held the data must not become this
                    // data's RTO (Linux `tcp_event_new_data_sent` re-arms).
                    let first_out = s.kind == SendKind::New && t.snd.una == t.snd.max;
                    match s.kind {
                        SendKind::Repair => {
                            t.cong.rtx_now = false;
                            // A repair from SND.UNA may run past what was
                            // ever sent (data Nagle or the cork held back):
                            // that part is sent now.
                            if end.diff(t.snd.nxt) > 0 {
                                t.snd.nxt = end;
                            }
                            t.cong.rtx_fence = t.snd.max;
                            if end.diff(t.cong.high_rxt) > 0 {
                                t.cong.high_rxt = end;
                            }
                            if t.cong.ca == CaState::Recovery && t.cong.rec_sack {
                                cx.sh.counters.tcp.sack_retrans += 1;
                            }
                        }
                        SendKind::Resend => {
                            cx.sh.counters.tcp.rto_retrans += 1;
                            t.snd.nxt = end;
                        }
                        SendKind::Probe => {
                            cx.sh.counters.tcp.window_probes += 1;
                            t.owed.force_probe = false;
                            t.snd.nxt = end;
                        }
                        SendKind::New => t.snd.nxt = end,
                    }
                    if t.snd.nxt.diff(t.snd.max) > 0 {
                        t.snd.max = t.snd.nxt;
                    }
                    if t.timer.rexmit.is_none() || first_out {
                        t.timer.rexmit = Some(t.rto_deadline(now, cfg));
                    }
                    if t.cong.tlp_pending {
                        t.cong.tlp_pending = false;
                        cx.sh.counters.tcp.tlp_probes += 1;
                        // RFC 8985 §7.3: the RTO runs again from the probe.
                        t.timer.rexmit = Some(t.rto_deadline(now, cfg));
                    } else if s.kind == SendKind::New {
                        t.arm_tlp(now, cfg);
                    }
                    if len > 0 {
                        t.snd.last_send = now;
                        if len < usize::from(t.snd.mss) && end.diff(t.snd.sml) > 0 {
                            t.snd.sml = end;
                        }
                        if t.timer.cork.is_some() && end.diff(t.snd.cork_end) >= 0 {
                            // What the cork held has gone (with a full
                            // segment): what is left waits a ceiling of its own.
                            t.timer.cork = None;
                        }
                        if t.snd.cork_release.is_some_and(|r| end.diff(r) >= 0) {
                            t.snd.cork_release = None;
                        }
                        if seq + len == t.data_end() {
                            plan.repr.flags |= TcpFlags::PSH;
                        }
                    }
                    if s.fin {
                        plan.repr.flags |= TcpFlags::FIN;
                    }
                    if t.neg.ecn.ok && !rtx && len > 0 {
                        // RFC 3168 §6.1.2 and §6.1.5: new data is ECT, and
                        // the first after a reduction carries CWR.
                        plan.ect = true;
                        if t.neg.ecn.cwr {
                            t.neg.ecn.cwr = false;
                            plan.repr.flags |= TcpFlags::CWR;
                        }
                    }
                } else if t.owed.probe {
                    // Keepalive probe: one below SND.UNA (RFC 1122 §4.2.3.6).
                    plan.repr.seq_number = t.snd.una - 1;
                } else if !t.owed.ack {
                    return None;
                } else {
                    // A pure ACK carries SND.MAX: after a timeout SND.NXT
                    // went back, and a peer that has everything would find
                    // SEG.SEQ below RCV.NXT unacceptable and drop the ACK.
                    plan.repr.seq_number = t.snd.max;
                }
                if t.neg.ecn.ece {
                    plan.repr.flags |= TcpFlags::ECE;
                }
                t.owed.ack = false;
                t.owed.probe = false;
                t.timer.delack = None;
                t.rcv.unacked = 0;
                t.rcv.last_ack_sent = t.rcv.nxt;
                false
            }
        };
        plan.repr.window_len = self.tcp_window(id, syn);
        plan.finish();
        Some(plan)
    }

    /// Writes `plan` through the IP layer's output path, DF set (RFC 9293
    /// §3.7.1 relies on path MTU, so segments are never fragmented by us).
    fn tcp_emit(&mut self, cx: &mut Cx<'_>, plan: &Plan, buf: &mut [u8]) -> TcpTx {
        if let (IpAddr::V6(src), IpAddr::V6(dst)) = (plan.local.ip(), plan.remote.ip()) {
            return self.tcp_emit6(cx, plan, src, dst);
        }
        let repr = &plan.repr;
        let thl = repr.header_len();
        let tcp_len = thl + plan.len;
        let tx = cx.cfg.checksums.tx;
        let this = &*self;
        let r = cx.sh.ip.emit_with(
            cx.cfg,
            &mut cx.sh.counters,
            cx.now,
            v4(plan.local.ip()),
            v4(plan.remote.ip()),
            IpProtocol::Tcp,
            tcp_len,
            buf,
            |out, pseudo| this.tcp_write(tx, plan, repr, thl, pseudo, out),
        );
        if let (Emitted::Sent(n), true) = (r, plan.ect) {
            let lhl = cx.cfg.link_header_len();
            super::ecn::mark_ect(&mut buf[lhl..n], cx.cfg.checksums.tx);
        }
        if r != Emitted::NoRoute {
            cx.sh.counters.tcp.out_segs += 1;
            if plan.repr.flags.contains(TcpFlags::RST) {
                cx.sh.counters.tcp.out_rsts += 1;
            }
        }
        match r {
            Emitted::Sent(n) => TcpTx::Sent(n),
            _ => TcpTx::Again,
        }
    }

    /// `plan` as a whole IPv6 packet on the IPv6 layer's queue (framed,
    /// resolved and sent by `transmit`), checksummed over the IPv6
    /// pseudo-header (RFC 8200 §8.1), with the connection's flow label
    /// (RFC 6437 §3).
    #[cold]
    fn tcp_emit6(&mut self, cx: &mut Cx<'_>, plan: &Plan, src: Ipv6Addr, dst: Ipv6Addr) -> TcpTx {
        let repr = &plan.repr;
        let thl = repr.header_len();
        let len = thl + plan.len;
        let ip6 = &mut cx.sh.ip6;
        if ip6.out.len() >= cx.cfg.max_egress_packets {
            ip6.counters.out_discards += 1;
            return TcpTx::Again;
        }
        let hop_limit = plan
            .id
            .and_then(|id| self.get(id))
            .and_then(|t| t.opts.unicast_hops)
            .unwrap_or(cx.cfg.hop_limit6);
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Tcp,
            payload_len: len,
            hop_limit,
            traffic_class: if plan.ect { super::ecn::ECT0 } else { 0 },
            flow_label: ip6.transport_label(&src, &dst, 6, repr.src_port, repr.dst_port),
        };
        let hl = ustack_wire::ipv6::HEADER_LEN;
        let mut b = vec![0u8; hl + len];
        ip.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
        let pseudo = checksum::pseudo_header_v6(src, dst, IpProtocol::Tcp, len as u32);
        self.tcp_write(true, plan, repr, thl, pseudo, &mut b[hl..]);
        ip6.counters.out_requests += 1;
        ip6.out.push_back(b);
        cx.sh.counters.tcp.out_segs += 1;
        if repr.flags.contains(TcpFlags::RST) {
            cx.sh.counters.tcp.out_rsts += 1;
        }
        TcpTx::Again
    }

    /// Header, then payload copied from the send ring and summed for the
    /// checksum as it is copied (`checksum::copy_and_sum`).
    /// `out` is the whole segment: `hl` (`repr.header_len()`) + payload;
    /// `pseudo` the IP layer's pseudo-header sum. The header goes first, so
    /// that by the time it is summed its stores have drained (summing it
    /// straight after writing it waited on store forwarding).
    #[inline(always)]
    fn tcp_write(
        &self,
        tx: bool,
        plan: &Plan,
        repr: &TcpRepr,
        hl: usize,
        pseudo: u64,
        out: &mut [u8],
    ) {
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut out[..]),
            v4(plan.local.ip()),
            v4(plan.remote.ip()),
            &ChecksumCaps::OFFLOAD,
        );
        self.tcp_fill(tx, plan.id, plan.off, plan.len, pseudo, hl, out);
    }

    /// The next segment of a burst from the headers of its first: what
    /// `tcp_emit` would write for it, without building the headers.
    fn burst_emit(
        &mut self,
        cx: &mut Cx<'_>,
        off: usize,
        n: usize,
        psh: bool,
        buf: &mut [u8],
    ) -> TcpTx {
        let Some(b) = self.burst.as_ref() else {
            return TcpTx::Again;
        };
        let total = b.hdr_len + n;
        if buf.len() < total {
            cx.sh.counters.link.tx_dropped_too_big += 1;
            return TcpTx::Again;
        }
        let t = self.get(b.id);
        burst_write(cx, b, t, None, b.seq, off, n, psh, buf);
        cx.sh.counters.tcp.burst_segs += 1;
        cx.sh.counters.tcp.out_segs += 1;
        TcpTx::Sent(total)
    }

    /// Up to `bufs.len()` more segments of the burst in hand, written
    /// into `bufs` in order (their lengths into `lens`): what as many
    /// `dispatch` calls would write while the burst lasts, with the TCB
    /// looked up and checked once for all of them (no input can move it
    /// in between). Returns how many; it stops early, leaving the rest
    /// to `dispatch`, where the burst ends, where `burst_next` would end
    /// it, at a buffer too short for the segment, and when the headers
    /// were not kept or a timer is due.
    pub(crate) fn burst_run<B: AsMut<[u8]>>(
        &mut self,
        cx: &mut Cx<'_>,
        bufs: &mut [B],
        lens: &mut [usize],
    ) -> usize {
        if self.timers.peek().is_some_and(|r| r.0 .0 <= cx.now) {
            return 0;
        }
        let Some(b) = self.burst.as_ref().filter(|b| b.hdr_len > 0) else {
            return 0;
        };
        let Some(t) = self.get(b.id).filter(|t| t.sending_state()) else {
            return 0;
        };
        let (front, qlen, nxt) = (t.sndq_seq(), t.snd.q.len(), t.snd.nxt);
        let (mut seq, mut left) = (b.seq, b.left);
        // The lent buffer the burst reads from, looked up once for all
        // its segments (zero-copy sends; `None` for copied bytes).
        let span = usize::try_from(seq.diff(front))
            .ok()
            .and_then(|off| t.snd.q.lent_span(off));
        let mut k = 0;
        for (buf, len) in bufs.iter_mut().zip(lens.iter_mut()) {
            if left == 0 {
                break;
            }
            let n = b.seg.min(left);
            // `burst_next`'s checks: the bytes still queued, and sent.
            let off = seq.diff(front);
            if off < 0 || off as usize + n > qlen || (seq + n).diff(nxt) > 0 {
                break;
            }
            let buf = buf.as_mut();
            if buf.len() < b.hdr_len + n {
                break;
            }
            let psh = n == left && b.psh;
            burst_write(cx, b, Some(t), span, seq, off as usize, n, psh, buf);
            *len = b.hdr_len + n;
            seq += n;
            left -= n;
            k += 1;
        }
        cx.sh.counters.tcp.burst_segs += k as u64;
        cx.sh.counters.tcp.out_segs += k as u64;
        match self.burst.as_mut() {
            Some(_) if left == 0 => self.burst = None,
            Some(b) => {
                b.seq = seq;
                b.left = left;
            }
            None => {}
        }
        k
    }

    /// The payload after a written header (checksum field zero), and the
    /// checksum (when `tx`: not offloaded).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn tcp_fill(
        &self,
        tx: bool,
        id: Option<TcbId>,
        off: usize,
        len: usize,
        pseudo: u64,
        hl: usize,
        out: &mut [u8],
    ) {
        let t = if len > 0 {
            id.and_then(|id| self.get(id))
        } else {
            None
        };
        fill(tx, t, None, off, len, pseudo, hl, out);
    }
}

/// A segment of burst `b` at `seq` (`n` payload bytes from `off` in the
/// send queue of `t`) into `buf`, which holds `b.hdr_len + n` bytes: the
/// template's headers with the sequence number, IP ident and length,
/// PSH and checksums its own.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn burst_write(
    cx: &mut Cx<'_>,
    b: &Burst,
    t: Option<&super::tcb::Tcb>,
    span: Option<(usize, &[u8])>,
    seq: ustack_wire::SeqNumber,
    off: usize,
    n: usize,
    psh: bool,
    buf: &mut [u8],
) {
    let hl = b.hdr_len;
    let lhl = cx.cfg.link_header_len();
    let thl = hl - lhl - 20;
    let total = hl + n;
    // The whole template when it fits (a fixed-size copy, inlined; the
    // payload overwrites its tail), else just the headers.
    match buf.get_mut(..BURST_HEADER_MAX) {
        Some(head) => head.copy_from_slice(&b.hdr),
        None => buf[..hl].copy_from_slice(&b.hdr[..hl]),
    }
    let pair = cx
        .sh
        .ip
        .repeat_header(cx.cfg, &mut cx.sh.counters, &b.hdr, &mut buf[..total]);
    let out = &mut buf[lhl + 20..total];
    let mut tcp = TcpPacket::new_unchecked(&mut out[..]);
    tcp.set_seq_number(seq);
    if psh {
        tcp.set_flags(tcp.flags() | TcpFlags::PSH);
    }
    tcp.set_checksum(0);
    let tx = cx.cfg.checksums.tx;
    let pseudo = pair.pseudo_sum(IpProtocol::Tcp, thl + n);
    fill(tx, t, span, off, n, pseudo, thl, out);
}

/// The payload of `t`'s send queue at `off..off + len` after a written
/// header of `hl` bytes (checksum field zero), and the checksum (when
/// `tx`: not offloaded). `span`: lent bytes of the queue (from the
/// queue offset it gives) to take the payload from when they hold it all.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fill(
    tx: bool,
    t: Option<&super::tcb::Tcb>,
    span: Option<(usize, &[u8])>,
    off: usize,
    len: usize,
    pseudo: u64,
    hl: usize,
    out: &mut [u8],
) {
    let mut payload_sum = 0;
    if len > 0 {
        let lent = span.and_then(|(at, s)| s.get(off.checked_sub(at)?..off - at + len));
        if let Some(src) = lent {
            let dst = &mut out[hl..hl + len];
            if tx {
                payload_sum = checksum::copy_and_sum(dst, src);
            } else {
                dst.copy_from_slice(src);
            }
        } else if let Some(t) = t {
            let dst = &mut out[hl..hl + len];
            let n = if tx {
                let (n, s) = t.snd.q.copy_out_sum(off, dst);
                payload_sum = s;
                n
            } else {
                t.snd.q.copy_out(off, dst)
            };
            debug_assert_eq!(n, len);
        }
    }
    if tx {
        // The header (checksum field zero) starts at an even offset, as
        // does the payload after it: the sums add (RFC 1071).
        let c = !checksum::fold(pseudo + header_sum(&out[..hl]) + payload_sum);
        TcpPacket::new_unchecked(&mut out[..]).set_checksum(c);
    }
}

/// `checksum::sum` of a TCP header; the usual 32 bytes (with timestamps)
/// as eight words added inline, without the call and the set-up that
/// `sum` has for data of any length.
#[inline(always)]
fn header_sum(h: &[u8]) -> u64 {
    let Ok(h) = <&[u8; 32]>::try_from(h) else {
        return checksum::sum(h);
    };
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let acc = w(0) + w(4) + w(8) + w(12) + w(16) + w(20) + w(24) + w(28);
    // Native-order words, as `sum` adds them, then to network order.
    u64::from(u16::from_be(checksum::fold(acc)))
}
