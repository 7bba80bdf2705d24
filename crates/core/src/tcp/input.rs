//! Segment arrival (RFC 9293 §3.10.7), with the RFC 5961 defences.

use super::{CaState, Ctl, Kind, Listener, PortClass, State, Tcb, TcbId};
use crate::errno::Errno;
use crate::socket::{Socket, SocketHandle};
use crate::stack::Stack;
use crate::time::{Duration, Instant};
use std::net::SocketAddrV4;
use tracing::debug;
use ustack_wire::{
    checksum, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr, SeqNumber, TcpFlags, TcpPacket, TcpRepr,
    TcpTimestamp,
};

/// Smallest MSS we accept from a peer (Linux `tcp_min_snd_mss`).
const MIN_SND_MSS: u16 = 48;

/// Out-of-window pure ACKs are answered at most this often (Linux `tcp_invalid_ratelimit`).
const OOW_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// The fields of a segment that header prediction looks at: what is left
/// of it once the flags are known to be ACK (maybe PSH) and it carries no
/// SACK blocks.
pub(crate) struct FastSeg<'a> {
    seq_number: SeqNumber,
    ack_number: SeqNumber,
    window_len: u16,
    timestamp: Option<TcpTimestamp>,
    payload: &'a [u8],
}

impl<'a> FastSeg<'a> {
    fn from_repr(seg: &TcpRepr<'a>) -> FastSeg<'a> {
        FastSeg {
            seq_number: seg.seq_number,
            ack_number: seg.ack_number,
            window_len: seg.window_len,
            timestamp: seg.timestamp,
            payload: seg.payload,
        }
    }

    /// A whole IPv4 datagram (`bytes`), read only as far as header
    /// prediction needs: a 20-byte IP header, not a fragment, TCP to
    /// `local_ip`; a TCP header of ACK or ACK|PSH and no other bit, with
    /// no options or exactly NOP NOP Timestamp (the layout RFC 7323
    /// Appendix A recommends and Linux's `tcp_rcv_established` predicts),
    /// and data. Anything else is `None` and takes the full path, which
    /// validates and counts it. Checksums are not checked here.
    #[inline(always)]
    fn from_datagram(bytes: &'a [u8], local_ip: Ipv4Addr) -> Option<Predicted<'a>> {
        // Fixed offsets into arrays of known length: no bounds checks and
        // no accessor calls on the one path every bulk segment takes.
        let ip: &[u8; 20] = bytes.get(..20)?.try_into().ok()?;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        // Version 4, IHL 5; no MF, fragment offset 0 (DF may be set).
        if ip[0] != 0x45
            || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0
            || ip[9] != u8::from(IpProtocol::Tcp)
            || total < 40
            || total > bytes.len()
            || [ip[16], ip[17], ip[18], ip[19]] != local_ip.octets()
        {
            return None;
        }
        let segment = &bytes[20..total];
        let h: &[u8; 20] = segment.get(..20)?.try_into().ok()?;
        // The header-prediction word: data offset 5 or 8, reserved bits
        // zero, flags ACK or ACK|PSH.
        let (timestamp, hl) = match (h[12], h[13] & !(TcpFlags::PSH.0 as u8)) {
            (0x50, 0x10) => (None, 20),
            (0x80, 0x10) => {
                let o: &[u8; 12] = segment.get(20..32)?.try_into().ok()?;
                if o[..4] != [1, 1, 8, 10] {
                    return None;
                }
                let ts = TcpTimestamp {
                    tsval: u32::from_be_bytes([o[4], o[5], o[6], o[7]]),
                    tsecr: u32::from_be_bytes([o[8], o[9], o[10], o[11]]),
                };
                (Some(ts), 32)
            }
            _ => return None,
        };
        let payload = &segment[hl..];
        if payload.is_empty() {
            return None;
        }
        Some(Predicted {
            seg: FastSeg {
                seq_number: SeqNumber(u32::from_be_bytes([h[4], h[5], h[6], h[7]])),
                ack_number: SeqNumber(u32::from_be_bytes([h[8], h[9], h[10], h[11]])),
                window_len: u16::from_be_bytes([h[14], h[15]]),
                timestamp,
                payload,
            },
            local: SocketAddrV4::new(local_ip, u16::from_be_bytes([h[2], h[3]])),
            remote: SocketAddrV4::new(
                Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
                u16::from_be_bytes([h[0], h[1]]),
            ),
            segment,
        })
    }
}

/// A datagram header prediction takes: the segment's fields, its
/// 4-tuple, and the TCP segment's bytes (for the checksum).
struct Predicted<'a> {
    seg: FastSeg<'a>,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    segment: &'a [u8],
}

impl Stack {
    /// Header prediction straight from the datagram's bytes, before any
    /// general parsing: in-order data for the connection that had the last
    /// segment. Returns false, having changed nothing, unless the segment
    /// was taken (then it is counted as the full path would count it).
    pub(crate) fn tcp_input_fast(&mut self, now: Instant, bytes: &[u8]) -> bool {
        if !self.cfg.tcp.header_prediction {
            return false;
        }
        let Some(p) = FastSeg::from_datagram(bytes, self.address()) else {
            return false;
        };
        let Some(id) = self.tcp.cached(p.local, p.remote) else {
            return false;
        };
        if self.cfg.checksums.rx
            && (!Ipv4Packet::new_unchecked(bytes).verify_checksum()
                || checksum::transport(*p.remote.ip(), *p.local.ip(), IpProtocol::Tcp, p.segment)
                    != 0)
        {
            return false;
        }
        if !self.tcp_fast_data(now, id, &p.seg) {
            return false;
        }
        self.counters.ip.in_delivers += 1;
        self.counters.tcp.in_segs += 1;
        true
    }

    pub(crate) fn tcp_input(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        payload: &[u8],
        broadcast: bool,
    ) {
        let Ok(packet) = TcpPacket::new_checked(payload) else {
            self.counters.tcp.in_errs += 1;
            return;
        };
        // Borrowed from the result, not moved out of it: the repr is ~100
        // bytes and copying it stalled on store forwarding every segment.
        let parsed = TcpRepr::parse(&packet, ip.src_addr, ip.dst_addr, &self.cfg.checksums);
        let seg = match &parsed {
            Ok(r) => r,
            Err(ustack_wire::Error::Checksum) => {
                self.counters.tcp.in_csum_errors += 1;
                self.counters.tcp.in_errs += 1;
                return;
            }
            Err(_) => {
                self.counters.tcp.in_errs += 1;
                return;
            }
        };
        self.counters.ip.in_delivers += 1;
        self.counters.tcp.in_segs += 1;
        // RFC 1122 §4.2.3.10: TCP never talks to broadcast addresses.
        if broadcast {
            return;
        }
        let local = SocketAddrV4::new(ip.dst_addr, seg.dst_port);
        let remote = SocketAddrV4::new(ip.src_addr, seg.src_port);
        if let Some(id) = self.tcp.lookup(local, remote) {
            self.tcp_segment(now, id, seg);
            return;
        }
        if let Some(lh) = self.tcp_find_listener(local, remote) {
            self.tcp_listen_input(now, lh, local, remote, seg);
            return;
        }
        self.tcp_reset_reply(local, remote, seg);
    }

    /// The listener for a new connection to `local`: exact address before
    /// wildcard; among SO_REUSEPORT peers, one chosen by a hash of the 4-tuple.
    pub(crate) fn tcp_find_listener(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> Option<SocketHandle> {
        let list = self.tcp.listeners.get(&local.port())?;
        let addr_of = |h: &SocketHandle| match self.sockets.get(*h) {
            Some(Socket::Tcp(s)) => s.local.map(|l| *l.ip()),
            _ => None,
        };
        for exact in [true, false] {
            let n = list
                .iter()
                .filter(|h| {
                    addr_of(h).is_some_and(|ip| {
                        if exact {
                            ip == *local.ip()
                        } else {
                            ip.is_unspecified()
                        }
                    })
                })
                .count();
            if n == 0 {
                continue;
            }
            let pick = self.tcp.secret.spread(local, remote, n);
            return list
                .iter()
                .filter(|h| {
                    addr_of(h).is_some_and(|ip| {
                        if exact {
                            ip == *local.ip()
                        } else {
                            ip.is_unspecified()
                        }
                    })
                })
                .nth(pick)
                .copied();
        }
        None
    }

    /// RFC 9293 §3.10.7.1: a segment for no connection gets a RST (never in
    /// reply to a RST).
    pub(crate) fn tcp_reset_reply(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
    ) {
        if seg.flags.contains(TcpFlags::RST) {
            return;
        }
        let ctl = if seg.flags.contains(TcpFlags::ACK) {
            Ctl {
                local,
                remote,
                seq: seg.ack_number,
                ack: SeqNumber(0),
                flags: TcpFlags::RST,
                window: 0,
                mss: None,
            }
        } else {
            Ctl {
                local,
                remote,
                seq: SeqNumber(0),
                ack: seg.seq_number + seg.segment_len(),
                flags: TcpFlags::RST | TcpFlags::ACK,
                window: 0,
                mss: None,
            }
        };
        self.tcp_push_ctl(ctl);
    }

    pub(crate) fn tcp_push_ctl(&mut self, ctl: Ctl) {
        if self.tcp.ctl.len() >= self.cfg.tcp.max_ctl_queue {
            return;
        }
        self.tcp.ctl.push_back(ctl);
    }

    fn listener_mut(&mut self, lh: SocketHandle) -> Option<&mut Listener> {
        match self.sockets.get_mut(lh) {
            Some(Socket::Tcp(s)) => match &mut s.kind {
                Kind::Listen(l) => Some(l),
                _ => None,
            },
            _ => None,
        }
    }

    /// Linux's accept queue is full when it holds more than the backlog; we
    /// hold at most the backlog.
    fn accept_full(&mut self, lh: SocketHandle) -> bool {
        self.listener_mut(lh)
            .is_none_or(|l| l.accept.len() >= l.backlog)
    }

    /// RFC 9293 §3.10.7.2 (LISTEN), with SYN and accept queues as Linux.
    fn tcp_listen_input(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
    ) {
        let f = seg.flags;
        if f.contains(TcpFlags::RST) {
            return;
        }
        if f.contains(TcpFlags::ACK) {
            if !f.contains(TcpFlags::SYN) && self.cfg.tcp.syncookies {
                self.tcp_cookie_ack(now, lh, local, remote, seg);
            } else {
                self.tcp_reset_reply(local, remote, seg);
            }
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        if self.accept_full(lh) {
            self.counters.tcp.listen_overflows += 1;
            self.counters.tcp.listen_drops += 1;
            return;
        }
        let Some(syn_count) = self.listener_mut(lh).map(|l| l.syn_count) else {
            return;
        };
        // The SYN queue is bounded by max_syn_backlog (the accept queue by the backlog).
        let syn_cap = self.cfg.tcp.max_syn_backlog.max(1);
        if syn_count >= syn_cap {
            if self.cfg.tcp.syncookies {
                self.tcp_send_cookie(now, lh, local, remote, seg);
            } else {
                self.counters.tcp.listen_drops += 1;
            }
            return;
        }
        let Some(Socket::Tcp(ls)) = self.sockets.get(lh) else {
            return;
        };
        let opts = ls.opts.clone();
        let iss = self.tcp.secret.isn(local, remote, now);
        let ts_offset = self.tcp.secret.ts_offset(local, remote);
        let mtu_mss = self.tcp_mtu_mss();
        let mut tcb = Tcb::new(
            &self.cfg.tcp,
            State::SynReceived,
            local,
            remote,
            iss,
            opts,
            mtu_mss,
            now,
            ts_offset,
        );
        tcb.listener = Some(lh);
        tcb_take_syn(&mut tcb, seg, &self.cfg.tcp);
        tcb.syn_pending = true;
        let id = self.tcp_insert(tcb);
        if let Some(l) = self.listener_mut(lh) {
            l.syn_count += 1;
        }
        debug!(%local, %remote, from = %State::Listen, to = %State::SynReceived, "tcp state");
        self.tcp.schedule(id);
    }

    /// Answers a SYN with a cookie SYN-ACK and keeps no state (RFC 4987 §3.6).
    /// The cookie carries only the MSS, so such connections go without
    /// window scaling, SACK and timestamps.
    fn tcp_send_cookie(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
    ) {
        let peer_mss = seg.max_seg_size.unwrap_or(536);
        let (isn, _) = self
            .tcp
            .secret
            .cookie(local, remote, seg.seq_number, peer_mss, now);
        let window = match self.sockets.get(lh) {
            Some(Socket::Tcp(s)) => s.opts.rcvbuf.min(65535) as u16,
            _ => return,
        };
        if let Some(l) = self.listener_mut(lh) {
            l.cookies_since = Some(now);
        }
        self.counters.tcp.syncookies_sent += 1;
        let mss = self.tcp_mtu_mss();
        self.tcp_push_ctl(Ctl {
            local,
            remote,
            seq: isn,
            ack: seg.seq_number + 1,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window,
            mss: Some(mss),
        });
    }

    /// An ACK to a listener: a returning SYN cookie, or else a RST.
    fn tcp_cookie_ack(
        &mut self,
        now: Instant,
        lh: SocketHandle,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr,
    ) {
        let recent = self
            .listener_mut(lh)
            .and_then(|l| l.cookies_since)
            .is_some_and(|t| now - t < Duration::from_secs(128));
        if !recent {
            self.tcp_reset_reply(local, remote, seg);
            return;
        }
        let client_isn = seg.seq_number - 1;
        let isn = seg.ack_number - 1;
        let Some(mss) = self
            .tcp
            .secret
            .check_cookie(local, remote, client_isn, isn, now)
        else {
            self.counters.tcp.syncookies_failed += 1;
            self.tcp_reset_reply(local, remote, seg);
            return;
        };
        if self.accept_full(lh) {
            self.counters.tcp.listen_overflows += 1;
            self.counters.tcp.listen_drops += 1;
            return;
        }
        self.counters.tcp.syncookies_recv += 1;
        let Some(Socket::Tcp(ls)) = self.sockets.get(lh) else {
            return;
        };
        let opts = ls.opts.clone();
        let mtu_mss = self.tcp_mtu_mss();
        let mut tcb = Tcb::new(
            &self.cfg.tcp,
            State::SynReceived,
            local,
            remote,
            isn,
            opts,
            mtu_mss,
            now,
            0,
        );
        tcb.irs = client_isn;
        tcb.rcv_nxt = seg.seq_number;
        tcb.rcv_wscale = 0;
        tcb.rcv_adv = tcb.rcv_nxt + tcb.rcv_space().min(65535);
        tcb.snd_nxt = isn + 1;
        tcb.snd_max = isn + 1;
        tcb.snd_mss = mss.max(MIN_SND_MSS).min(tcb.rcv_mss);
        tcb.cc = super::new_controller(
            tcb.opts.congestion,
            u32::from(tcb.snd_mss),
            self.cfg.tcp.initial_window,
        );
        tcb.listener = Some(lh);
        let id = self.tcp_insert(tcb);
        if let Some(l) = self.listener_mut(lh) {
            l.syn_count += 1;
        }
        self.tcp_segment(now, id, seg);
    }

    /// Creates a TCB and enters it in the lookup and port tables.
    pub(crate) fn tcp_insert(&mut self, tcb: Tcb) -> TcbId {
        let port = tcb.local.port();
        let class = tcb.port_class;
        let id = self.tcp.insert(tcb);
        self.tcp.port_use(port).count(class, 1);
        id
    }

    /// Our MSS for this interface: MTU - 40 (RFC 9293 §3.7.1).
    pub(crate) fn tcp_mtu_mss(&self) -> u16 {
        (self.cfg.mtu.saturating_sub(40)).clamp(28, 65495) as u16
    }

    /// Moves a TCB to `to`, keeping the gauges, port buckets and timers right.
    pub(crate) fn tcp_set_state(&mut self, now: Instant, id: TcbId, to: State) {
        let Some(t) = self.tcp.get_mut(id) else {
            return;
        };
        let from = t.state;
        if from == to {
            return;
        }
        debug!(local = %t.local, remote = %t.remote, %from, %to, "tcp state");
        t.state = to;
        let estab = |s: State| matches!(s, State::Established | State::CloseWait);
        match (estab(from), estab(to)) {
            (false, true) => self.counters.tcp.curr_estab += 1,
            (true, false) => {
                self.counters.tcp.curr_estab = self.counters.tcp.curr_estab.saturating_sub(1)
            }
            _ => {}
        }
        match to {
            State::TimeWait => {
                t.rexmit_at = None;
                t.keepalive_at = None;
                t.linger_at = Some(now + self.cfg.tcp.time_wait);
                let port = t.local.port();
                let old = t.port_class;
                if old != PortClass::TimeWait {
                    t.port_class = PortClass::TimeWait;
                    let pu = self.tcp.port_use(port);
                    pu.count(old, -1);
                    pu.count(PortClass::TimeWait, 1);
                }
            }
            State::FinWait2 if t.socket.is_none() => {
                t.linger_at = Some(now + self.cfg.tcp.fin_timeout);
            }
            State::Established | State::CloseWait | State::FinWait2 => {
                t.keepalive_at = t.keepalive_deadline();
            }
            _ => {}
        }
        self.tcp.arm(id);
        self.tcp_notify(id);
    }

    /// Marks the socket (or the listener) of a TCB as possibly changed.
    pub(crate) fn tcp_notify(&mut self, id: TcbId) {
        if let Some(t) = self.tcp.get(id) {
            if let Some(h) = t.socket {
                self.sockets.mark_changed(h);
            } else if let Some(l) = t.listener {
                self.sockets.mark_changed(l);
            }
        }
    }

    /// Frees a TCB: lookup, port bucket, listener queues, socket state.
    pub(crate) fn tcp_free(&mut self, now: Instant, id: TcbId) {
        if self.tcp.get(id).is_none() {
            return;
        }
        self.tcp_set_state(now, id, State::Closed);
        let Some(t) = self.tcp.remove(id) else { return };
        let port = t.local.port();
        self.tcp.port_use(port).count(t.port_class, -1);
        self.tcp.port_release_if_empty(port);
        if let Some(lh) = t.listener {
            let was_half_open = !t.in_accept_queue;
            if let Some(l) = self.listener_mut(lh) {
                if was_half_open {
                    l.syn_count = l.syn_count.saturating_sub(1);
                } else {
                    l.accept.retain(|x| *x != id);
                }
            }
            self.sockets.mark_changed(lh);
        }
        if let Some(h) = t.socket {
            if let Some(Socket::Tcp(s)) = self.sockets.get_mut(h) {
                s.kind = Kind::Closed {
                    was_connected: true,
                };
                s.leftover = t.rcvq;
            }
            self.sockets.mark_changed(h);
        }
    }

    /// Ends a connection at once: the error goes to the socket; a RST
    /// (RFC 9293 §3.10.7.4 form `<SEQ=SND.NXT><CTL=RST,ACK>`) if asked.
    pub(crate) fn tcp_abort(&mut self, now: Instant, id: TcbId, err: Option<Errno>, rst: bool) {
        let Some(t) = self.tcp.get(id) else { return };
        let socket = t.socket;
        if rst {
            let ctl = Ctl {
                local: t.local,
                remote: t.remote,
                seq: t.snd_nxt,
                ack: t.rcv_nxt,
                flags: TcpFlags::RST | TcpFlags::ACK,
                window: 0,
                mss: None,
            };
            self.tcp_push_ctl(ctl);
        }
        if let (Some(e), Some(h)) = (err, socket) {
            if let Some(Socket::Tcp(s)) = self.sockets.get_mut(h) {
                s.error = Some(e);
            }
        }
        self.tcp_free(now, id);
    }

    /// An ACK that says where we are, instead of acting on a suspicious
    /// segment (RFC 5961 §3.2, §4.2, §5.2). At most one per connection per
    /// 500 ms, sharing the out-of-window ACK limit (Linux
    /// `tcp_send_challenge_ack`), and then within the stack-wide limit
    /// (RFC 5961 §7). The per-connection limit comes first so that no one
    /// connection can drain the shared budget and read, from how much is
    /// left, whether its spoofed segments hit another connection's window
    /// (CVE-2016-5696).
    fn tcp_challenge_ack(&mut self, now: Instant, id: TcbId) {
        let Some(t) = self.tcp.get_mut(id) else {
            return;
        };
        if t.last_oow_ack.is_some_and(|l| now - l < OOW_ACK_INTERVAL) {
            self.counters.tcp.challenge_ack_limited += 1;
            return;
        }
        t.last_oow_ack = Some(now);
        if !self.tcp.challenge.take(now) {
            self.counters.tcp.challenge_ack_limited += 1;
            return;
        }
        self.counters.tcp.challenge_acks += 1;
        if let Some(t) = self.tcp.get_mut(id) {
            t.ack_pending = true;
        }
        self.tcp.schedule(id);
    }

    /// A segment for an existing TCB (RFC 9293 §3.10.7.3 and §3.10.7.4).
    pub(crate) fn tcp_segment(&mut self, now: Instant, id: TcbId, seg: &TcpRepr) {
        let Some(t) = self.tcp.get(id) else { return };
        match t.state {
            State::SynSent => self.tcp_syn_sent(now, id, seg),
            State::Closed | State::Listen => {}
            _ => self.tcp_synchronized(now, id, seg),
        }
        self.tcp.arm(id);
        self.tcp.schedule(id);
    }

    /// RFC 9293 §3.10.7.3: SYN-SENT.
    fn tcp_syn_sent(&mut self, now: Instant, id: TcbId, seg: &TcpRepr) {
        let f = seg.flags;
        let Some(t) = self.tcp.get_mut(id) else {
            return;
        };
        if f.contains(TcpFlags::ACK)
            && (seg.ack_number.diff(t.iss) <= 0 || seg.ack_number.diff(t.snd_max) > 0)
        {
            if !f.contains(TcpFlags::RST) {
                // An ACK from an old connection (a peer in TIME-WAIT for
                // the same 4-tuple answers a SYN it will not take with an
                // ACK): reset it, <SEQ=SEG.ACK><CTL=RST>, and drop the
                // segment (RFC 9293 §3.10.7.3). The RST ends that TIME-WAIT
                // (RFC 1337), so our SYN goes again at once, behind the RST,
                // instead of a whole RTO later; once per attempt, so a
                // stream of such ACKs gets no more SYNs than the timer sends.
                let (local, remote) = (t.local, t.remote);
                if t.retries == 0 && !t.syn_pending {
                    t.retries = 1;
                    t.syn_pending = true;
                    t.snd_nxt = t.iss;
                    t.rtt.timing = None;
                }
                self.tcp_reset_reply(local, remote, seg);
            }
            return;
        }
        if f.contains(TcpFlags::RST) {
            if f.contains(TcpFlags::ACK) {
                debug!(local = %t.local, remote = %t.remote, "tcp connection refused");
                self.counters.tcp.attempt_fails += 1;
                self.tcp_abort(now, id, Some(Errno::ECONNREFUSED), false);
            }
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        tcb_take_syn(t, seg, &self.cfg.tcp);
        t.last_rcv = now;
        if f.contains(TcpFlags::ACK) {
            t.snd_una = seg.ack_number;
            t.snd_wnd = u32::from(seg.window_len);
            t.max_snd_wnd = t.snd_wnd;
            t.snd_wl1 = seg.seq_number;
            t.snd_wl2 = seg.ack_number;
            if let Some((_, sent)) = t.rtt.timing.take() {
                t.rtt
                    .sample(now - sent, self.cfg.tcp.rto_min, self.cfg.tcp.rto_max);
            }
            t.rexmit_at = None;
            t.backoff = 0;
            t.retries = 0;
            t.ack_pending = true;
            let fin = t.fin_queued;
            self.tcp_set_state(now, id, State::Established);
            if fin {
                self.tcp_set_state(now, id, State::FinWait1);
            }
        } else {
            // Simultaneous open: SYN-SENT -> SYN-RECEIVED, send SYN,ACK.
            t.snd_wnd = u32::from(seg.window_len);
            t.max_snd_wnd = t.snd_wnd;
            t.snd_wl1 = seg.seq_number;
            t.snd_nxt = t.iss;
            t.syn_pending = true;
            t.rtt.timing = None;
            self.tcp_set_state(now, id, State::SynReceived);
        }
    }

    /// Header prediction (after Linux `tcp_rcv_established`'s fast path):
    /// the next in-order data on an ESTABLISHED connection with nothing of
    /// ours in flight, only ACK (and PSH) set, the ACK and the window as
    /// they were, no SACK, nothing queued out of order, and a timestamp (if
    /// any) that passes PAWS. Every step of the full path below would come
    /// to the same outcome for such a segment (RFC 9293 §3.10.7.4: it is
    /// acceptable, the ACK acknowledges nothing new, the window update
    /// changes only SND.WL1/SND.WL2); this skips the tests that cannot
    /// fire. Returns false, having changed nothing, if the segment does not
    /// qualify. This is every segment a bulk receiver gets.
    #[inline(always)]
    fn tcp_fast_data(&mut self, now: Instant, id: TcbId, seg: &FastSeg) -> bool {
        let cfg = &self.cfg.tcp;
        let Some((t, mut queues)) = self.tcp.split_mut(id) else {
            return false;
        };
        let wnd = u32::from(seg.window_len) << t.snd_wscale;
        if t.state != State::Established
            || seg.seq_number != t.rcv_nxt
            || seg.payload.is_empty()
            || seg.ack_number != t.snd_una
            || t.snd_una != t.snd_max
            || wnd == 0
            || wnd != t.snd_wnd
            || t.snd_wl1.diff(seg.seq_number) >= 0
            || !t.ofo.is_empty()
            || t.ofo_fin.is_some()
            || (t.socket.is_none() && t.listener.is_none())
        {
            return false;
        }
        if t.ts_ok {
            if let Some(ts) = seg.timestamp {
                if (ts.tsval.wrapping_sub(t.ts_recent) as i32) < 0 {
                    return false;
                }
            }
        }
        let wnd_rcv = t.rcv_adv.diff(t.rcv_nxt).max(0) as u32;
        if !seq_acceptable(seg.seq_number, seg.payload.len(), t.rcv_nxt, wnd_rcv) {
            return false;
        }
        // Fifth: ACK (RFC 9293 §3.10.7.4), as `tcp_ack` for an ACK of
        // nothing new with the window unchanged.
        t.last_rcv = now;
        t.probes_out = 0;
        if t.opts.keepalive {
            t.keepalive_at = t.keepalive_deadline();
        }
        tcb_take_timestamp(t, now, seg.seq_number, seg.timestamp, seg.payload.len());
        t.max_snd_wnd = t.max_snd_wnd.max(wnd);
        t.snd_wl1 = seg.seq_number;
        t.snd_wl2 = seg.ack_number;
        t.maybe_arm_persist(now, cfg);
        // Seventh: segment text, in order, no hole to fill.
        let data = seg.payload;
        let n = t.take_in_order(data);
        if n < data.len() {
            self.counters.tcp.rcv_pruned += 1;
            t.ack_pending = true;
        }
        if n > 0 && t.on_data_received(now, n, cfg) {
            self.counters.tcp.quick_acks += 1;
        }
        if t.ack_pending {
            t.delack_at = None;
        }
        // What the caller would do next, with the TCB in hand: its timers,
        // its place on the ready list, its socket's readiness. Only these
        // three timers can have moved here; the heap needs an entry only
        // if one of them now comes before the one it holds.
        let sched = t.timer_sched;
        let earlier = |d: Option<Instant>| d.is_some_and(|d| sched.is_none_or(|s| d < s));
        if earlier(t.delack_at) || earlier(t.rexmit_at) || earlier(t.keepalive_at) {
            queues.arm(id, t);
        }
        let corked = !queues.schedule(id, t) && t.opts.cork;
        let owner = if n > 0 { t.socket.or(t.listener) } else { None };
        if let Some(h) = owner {
            self.sockets.mark_changed(h);
        }
        if corked {
            self.tcp.arm_cork(id);
        }
        self.counters.tcp.hp_hits += 1;
        true
    }

    /// RFC 9293 §3.10.7.4 for SYN-RECEIVED and the synchronized states.
    fn tcp_synchronized(&mut self, now: Instant, id: TcbId, seg: &TcpRepr) {
        if seg.flags.0 & !TcpFlags::PSH.0 == TcpFlags::ACK.0
            && seg.sack_ranges[0].is_none()
            && self.tcp_fast_data(now, id, &FastSeg::from_repr(seg))
        {
            return;
        }
        let f = seg.flags;
        let Some(t) = self.tcp.get_mut(id) else {
            return;
        };
        let state = t.state;

        // A retransmitted SYN (or our peer's SYN,ACK in a simultaneous open)
        // in SYN-RECEIVED.
        if state == State::SynReceived
            && f.contains(TcpFlags::SYN)
            && !f.contains(TcpFlags::RST)
            && seg.seq_number + 1 == t.rcv_nxt
        {
            if f.contains(TcpFlags::ACK) && seg.ack_number == t.snd_max && t.listener.is_none() {
                // Simultaneous open (Linux tcp_rcv_state_process): the
                // SYN,ACK completes our handshake; ACK their SYN in case our
                // SYN,ACK has not gone out yet.
                t.ack_pending = t.syn_pending;
                self.tcp_established_from_syn_received(now, id, seg);
            } else if !f.contains(TcpFlags::ACK) {
                t.syn_pending = true;
                t.snd_nxt = t.iss;
            }
            return;
        }

        if state == State::TimeWait && self.tcp_time_wait_special(now, id, seg) {
            return;
        }
        let Some(t) = self.tcp.get_mut(id) else {
            return;
        };

        // PAWS (RFC 7323 §5.3): a segment with a timestamp older than
        // TS.Recent is an old duplicate: drop it, ACK unless it is a RST.
        if t.ts_ok && !f.contains(TcpFlags::RST) {
            if let Some(ts) = seg.timestamp {
                if (ts.tsval.wrapping_sub(t.ts_recent) as i32) < 0 {
                    self.counters.tcp.paws_drops += 1;
                    t.ack_pending = true;
                    return;
                }
            }
        }

        // First: sequence number acceptable?
        let seg_len = seg.segment_len();
        let wnd = t.rcv_adv.diff(t.rcv_nxt).max(0) as u32;
        if !seq_acceptable(seg.seq_number, seg_len, t.rcv_nxt, wnd) {
            if f.contains(TcpFlags::RST) {
                return;
            }
            if f.contains(TcpFlags::SYN) && state.synchronized() {
                self.counters.tcp.syn_challenge += 1;
                self.tcp_challenge_ack(now, id);
                return;
            }
            // Out-of-window: re-ACK; pure ACKs only at a bounded rate.
            if seg.payload.is_empty() && !f.contains(TcpFlags::FIN) {
                if t.last_oow_ack.is_some_and(|l| now - l < OOW_ACK_INTERVAL) {
                    return;
                }
                t.last_oow_ack = Some(now);
            }
            t.ack_pending = true;
            return;
        }

        // Second: RST (RFC 5961 §3.2: only an exact match resets).
        if f.contains(TcpFlags::RST) {
            if seg.seq_number != t.rcv_nxt {
                self.tcp_challenge_ack(now, id);
                return;
            }
            self.tcp_reset_received(now, id);
            return;
        }

        // Fourth: SYN in a synchronized state (RFC 5961 §4.2).
        if f.contains(TcpFlags::SYN) {
            self.counters.tcp.syn_challenge += 1;
            self.tcp_challenge_ack(now, id);
            return;
        }

        // Fifth: ACK.
        if !f.contains(TcpFlags::ACK) {
            return;
        }
        if state == State::SynReceived {
            if seg.ack_number.diff(t.snd_una) > 0 && seg.ack_number.diff(t.snd_max) <= 0 {
                if !self.tcp_established_from_syn_received(now, id, seg) {
                    return;
                }
            } else {
                let (local, remote) = (t.local, t.remote);
                self.tcp_reset_reply(local, remote, seg);
                return;
            }
        }
        let Some(t) = self.tcp.get_mut(id) else {
            return;
        };
        // RFC 5961 §5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT.
        let lower = t.snd_una - (t.max_snd_wnd.min(1 << 30) as usize);
        if seg.ack_number.diff(t.snd_max) > 0 || seg.ack_number.diff(lower) < 0 {
            self.tcp_challenge_ack(now, id);
            return;
        }
        t.last_rcv = now;
        t.probes_out = 0;
        if t.opts.keepalive {
            t.keepalive_at = t.keepalive_deadline();
        }
        tcb_take_timestamp(t, now, seg.seq_number, seg.timestamp, seg.payload.len());
        self.tcp_ack(now, id, seg);

        // Seventh: segment text.
        let Some(t) = self.tcp.get_mut(id) else {
            return;
        };
        let mut seq = seg.seq_number;
        let mut data = seg.payload;
        let mut fin = f.contains(TcpFlags::FIN);
        if seq.diff(t.rcv_nxt) < 0 {
            let skip = t.rcv_nxt.diff(seq) as usize;
            if skip >= data.len() {
                // All old data; a FIN at rcv_nxt - 1 is old too.
                let fin_seq = seq + data.len();
                fin = fin && fin_seq == t.rcv_nxt;
                data = &[];
            } else {
                data = &data[skip..];
            }
            seq = t.rcv_nxt;
        }
        let data_ok = matches!(
            t.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        if !data.is_empty()
            && data_ok
            && (t.socket.is_none() && t.listener.is_none()
                || (t.shut_rd && t.state != State::Established))
        {
            // Data for a closed socket: RST (Linux tcp_rcv_state_process).
            self.counters.tcp.abort_on_data += 1;
            self.tcp_abort(now, id, None, true);
            return;
        }
        if seq != t.rcv_nxt {
            // Out of order (RFC 9293 §3.10.7.4 seventh): queue it past
            // RCV.NXT and ACK at once, with SACK blocks (RFC 2018 §4).
            if data_ok && !data.is_empty() {
                let n = t.ofo_insert(seq, data, self.cfg.tcp.max_ofo_ranges);
                if n == 0 {
                    self.counters.tcp.ofo_drops += 1;
                } else {
                    self.counters.tcp.ofo_queued += 1;
                    if fin && n == data.len() {
                        t.ofo_fin = Some(seq + n);
                    }
                }
            } else if data_ok && fin {
                t.ofo_fin = Some(seq);
            }
            self.counters.tcp.quick_acks += 1;
            t.ack_pending = true;
            return;
        }
        if !data.is_empty() {
            if data_ok {
                let had_hole = !t.ofo.is_empty();
                let n = t.take_in_order(data);
                if n < data.len() {
                    self.counters.tcp.rcv_pruned += 1;
                    t.ack_pending = true;
                    fin = false;
                }
                if t.ofo_fin == Some(t.rcv_nxt) {
                    fin = true;
                    t.ofo_fin = None;
                }
                if had_hole {
                    // Filling a hole is ACKed at once (RFC 9293 §3.8.6.3).
                    self.counters.tcp.quick_acks += 1;
                    t.ack_pending = true;
                } else if n > 0 && t.on_data_received(now, n, &self.cfg.tcp) {
                    self.counters.tcp.quick_acks += 1;
                }
                if t.ack_pending {
                    t.delack_at = None;
                }
                if n > 0 {
                    self.tcp_notify(id);
                }
            } else {
                // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer sent FIN; ignore.
                fin = false;
            }
        }

        // Eighth: FIN.
        let Some(t) = self.tcp.get_mut(id) else {
            return;
        };
        if fin && !t.fin_received {
            t.rcv_nxt += 1;
            t.fin_received = true;
            t.ack_pending = true;
            let next = match t.state {
                State::SynReceived | State::Established => Some(State::CloseWait),
                State::FinWait1 => Some(if t.fin_acked() {
                    State::TimeWait
                } else {
                    State::Closing
                }),
                State::FinWait2 => Some(State::TimeWait),
                _ => None,
            };
            if let Some(s) = next {
                self.tcp_set_state(now, id, s);
            }
            self.tcp_notify(id);
        } else if fin && t.state == State::TimeWait {
            t.ack_pending = true;
            t.linger_at = Some(now + self.cfg.tcp.time_wait);
        }
    }

    /// TIME-WAIT: a new SYN may reopen (RFC 6191 style); a retransmitted
    /// FIN is ACKed and restarts 2MSL (RFC 9293 §3.10.7.4). True if handled.
    fn tcp_time_wait_special(&mut self, now: Instant, id: TcbId, seg: &TcpRepr) -> bool {
        let f = seg.flags;
        let Some(t) = self.tcp.get(id) else {
            return true;
        };
        let (local, remote, rcv_nxt) = (t.local, t.remote, t.rcv_nxt);
        if f.contains(TcpFlags::SYN)
            && !f.intersects(TcpFlags::RST | TcpFlags::ACK)
            && seg.seq_number.diff(rcv_nxt) > 0
        {
            if let Some(lh) = self.tcp_find_listener(local, remote) {
                self.counters.tcp.time_wait_recycled += 1;
                self.tcp_free(now, id);
                self.tcp_listen_input(now, lh, local, remote, seg);
                return true;
            }
        }
        if f.contains(TcpFlags::FIN)
            && !f.contains(TcpFlags::RST)
            && (seg.seq_number + seg.segment_len()) == rcv_nxt
        {
            if let Some(t) = self.tcp.get_mut(id) {
                t.ack_pending = true;
                t.linger_at = Some(now + self.cfg.tcp.time_wait);
            }
            return true;
        }
        false
    }

    /// SYN-RECEIVED + acceptable ACK: ESTABLISHED, into the accept queue if
    /// passive. False if the segment must be dropped (accept queue full).
    fn tcp_established_from_syn_received(
        &mut self,
        now: Instant,
        id: TcbId,
        seg: &TcpRepr,
    ) -> bool {
        let Some(t) = self.tcp.get(id) else {
            return false;
        };
        if let Some(lh) = t.listener {
            if self.listener_mut(lh).is_none() {
                // The listener was closed while this was half-open.
                self.tcp_abort(now, id, None, true);
                return false;
            }
            if self.accept_full(lh) {
                self.counters.tcp.listen_overflows += 1;
                self.counters.tcp.listen_drops += 1;
                if self.cfg.tcp.abort_on_overflow {
                    self.tcp_abort(now, id, None, true);
                } else {
                    self.counters.tcp.ack_dropped_overflow += 1;
                }
                return false;
            }
            self.counters.tcp.passive_opens += 1;
            if let Some(l) = self.listener_mut(lh) {
                l.syn_count = l.syn_count.saturating_sub(1);
                l.accept.push_back(id);
            }
            self.sockets.mark_changed(lh);
        }
        let Some(t) = self.tcp.get_mut(id) else {
            return false;
        };
        t.in_accept_queue = t.listener.is_some();
        t.snd_una = seg.ack_number;
        if t.snd_nxt.diff(t.snd_una) < 0 {
            t.snd_nxt = t.snd_una;
        }
        t.snd_wnd = u32::from(seg.window_len) << t.snd_wscale;
        t.max_snd_wnd = t.max_snd_wnd.max(t.snd_wnd);
        t.snd_wl1 = seg.seq_number;
        t.snd_wl2 = seg.ack_number;
        if let Some((_, sent)) = t.rtt.timing.take() {
            t.rtt
                .sample(now - sent, self.cfg.tcp.rto_min, self.cfg.tcp.rto_max);
        }
        t.rexmit_at = None;
        t.backoff = 0;
        t.retries = 0;
        t.syn_pending = false;
        t.last_rcv = now;
        let fin = t.fin_queued;
        self.tcp_set_state(now, id, State::Established);
        if fin {
            self.tcp_set_state(now, id, State::FinWait1);
        }
        true
    }

    /// An acceptable RST (RFC 9293 §3.10.7.4, second check).
    fn tcp_reset_received(&mut self, now: Instant, id: TcbId) {
        let Some(t) = self.tcp.get(id) else { return };
        debug!(local = %t.local, remote = %t.remote, state = %t.state, "tcp RST received");
        match t.state {
            State::SynReceived if t.listener.is_some() => self.tcp_free(now, id),
            State::SynReceived => {
                self.counters.tcp.attempt_fails += 1;
                self.tcp_abort(now, id, Some(Errno::ECONNREFUSED), false);
            }
            State::Established | State::CloseWait => {
                self.counters.tcp.estab_resets += 1;
                self.tcp_abort(now, id, Some(Errno::ECONNRESET), false);
            }
            State::FinWait1 | State::FinWait2 => {
                self.tcp_abort(now, id, Some(Errno::ECONNRESET), false);
            }
            _ => self.tcp_free(now, id),
        }
    }

    /// ACK processing for a synchronized connection (RFC 9293 §3.10.7.4,
    /// fifth check; RTT per RFC 6298), with the SACK scoreboard, fast
    /// retransmit and recovery (RFC 5681 §3.2, RFC 6582, RFC 6675).
    fn tcp_ack(&mut self, now: Instant, id: TcbId, seg: &TcpRepr) {
        let cfg = &self.cfg.tcp;
        let Some(t) = self.tcp.get_mut(id) else {
            return;
        };
        let ack = seg.ack_number;
        let mss = u32::from(t.snd_mss);
        let mut progressed = false;
        let mut new_sack = 0;
        let tsecr = seg
            .timestamp
            .filter(|ts| t.ts_ok && ts.tsecr != 0)
            .map(|ts| ts.tsecr);
        let ts_offset = t.ts_offset;
        if let Some(r) = t.rack.as_deref_mut() {
            r.begin_ack(now.total_micros(), tsecr, ts_offset);
        }
        if t.sack_ok && seg.sack_ranges[0].is_some() {
            let (blocks, bytes) = t.take_sack(&seg.sack_ranges, cfg.max_ofo_ranges);
            self.counters.tcp.sack_blocks_recv += u64::from(blocks);
            new_sack = bytes;
        }
        let wnd = u32::from(seg.window_len) << t.snd_wscale;
        // RFC 7661 §4.1 (as Linux `tcp_is_cwnd_limited`): cwnd grows only
        // while it limits the sender, or it would swell without bound on
        // an application- or receiver-limited flow.
        let cwnd = t.cc.window();
        let flight_before = t.flight();
        let cwnd_limited = if cwnd < t.cc.ssthresh() {
            flight_before.saturating_mul(2) >= cwnd
        } else {
            flight_before.saturating_add(mss) >= cwnd
        };
        if ack.diff(t.snd_una) > 0 {
            let data_acked = (ack.diff(t.sndq_front).max(0) as usize).min(t.sndq.len());
            let acked = ack.diff(t.snd_una) as u32;
            t.sndq.consume(data_acked);
            t.sndq_front += data_acked;
            t.snd_una = ack;
            if t.snd_nxt.diff(ack) < 0 {
                t.snd_nxt = ack;
            }
            if t.high_rxt.diff(ack) < 0 {
                t.high_rxt = ack;
            }
            t.trim_sacked();
            if let Some(r) = t.rack.as_deref_mut() {
                r.on_cum_ack(ack);
            }
            if let Some((timed, sent)) = t.rtt.timing {
                if ack.diff(timed) > 0 {
                    t.rtt.sample(now - sent, cfg.rto_min, cfg.rto_max);
                    t.rtt.timing = None;
                }
            }
            t.backoff = 0;
            t.retries = 0;
            t.force_probe = false;
            t.dupacks = 0;
            match t.ca {
                CaState::Recovery if ack.diff(t.recover) >= 0 => {
                    // Full ACK: recovery is over (RFC 6582 §3.2 step 3).
                    t.cc.on_recovery_end(now);
                    t.ca = CaState::Open;
                    t.rtx_now = false;
                    if t.rec_sack {
                        self.counters.tcp.sack_recovery += 1;
                    } else {
                        self.counters.tcp.reno_recovery += 1;
                    }
                }
                CaState::Recovery => {
                    // Partial ACK: the next hole is lost too (RFC 6582 §3.2
                    // step 4); with SACK the scoreboard drives instead.
                    self.counters.tcp.partial_acks += 1;
                    if !t.rec_sack {
                        t.rtx_now = true;
                        t.rec_cwnd = t.rec_cwnd.saturating_sub(acked);
                        if acked >= mss {
                            t.rec_cwnd += mss;
                        }
                        t.rec_cwnd = t.rec_cwnd.max(mss);
                    }
                }
                CaState::Loss if ack.diff(t.recover) >= 0 => {
                    t.ca = CaState::Open;
                    if cwnd_limited {
                        t.cc.on_ack(now, acked, mss, t.rtt.srtt());
                    }
                }
                _ if cwnd_limited => t.cc.on_ack(now, acked, mss, t.rtt.srtt()),
                _ => {}
            }
            t.snd_space_adjust(cfg);
            t.una_since = now;
            t.rexmit_at = if t.snd_una == t.snd_max {
                None
            } else {
                Some(t.rto_deadline(now, cfg))
            };
            t.tlp_out = false;
            t.arm_tlp(now, cfg);
            progressed = true;
        } else if wnd == 0 && ack == t.snd_una {
            // The peer answers our window probes: it is alive (Linux
            // resets icsk_probes_out on any ACK).
            t.retries = 0;
        } else if ack == t.snd_una
            && t.snd_una != t.snd_max
            && seg.payload.is_empty()
            && !seg.flags.intersects(TcpFlags::SYN | TcpFlags::FIN)
            && (wnd == t.snd_wnd || new_sack > 0)
        {
            // A duplicate ACK (RFC 5681 §2).
            t.dupacks += 1;
            self.counters.tcp.dup_acks_recv += 1;
            if t.ca == CaState::Recovery && !t.rec_sack {
                // NewReno: each duplicate means a segment left the network.
                t.rec_cwnd = t.rec_cwnd.saturating_add(mss);
            }
        }
        // RACK (RFC 8985 §6.2): what this ACK delivered, then loss by time.
        if t.rack.is_some() {
            let d = t.rack_on_ack(now);
            self.counters.tcp.rack_lost += u64::from(d.lost);
            self.counters.tcp.lost_retransmits += u64::from(d.lost_rtx);
        }
        // Fast retransmit (RFC 5681 §3.2; RFC 6675 §5: DupThresh duplicate
        // ACKs, or IsLost(SND.UNA) from the scoreboard; or a segment RACK
        // judged lost).
        // Without RACK: a SACK for the tail loss probe, sent two RTTs after
        // what is still missing, means that is lost (RACK's rule for the
        // probe alone); NewReno-style recovery then repairs each hole.
        let tlp_loss = t.rack.is_none() && t.tlp_out && new_sack > 0;
        if t.ca == CaState::Open
            && t.snd_una != t.snd_max
            && (t.dupacks >= t.dup_thresh() || t.una_lost() || tlp_loss || t.rack_lost())
        {
            t.enter_recovery(now);
            self.counters.tcp.fast_retrans += 1;
            debug!(local = %t.local, remote = %t.remote, cwnd = t.cc.window(), "tcp fast retransmit");
        }
        if new_sack > 0 && t.detect_lost_retransmits() {
            self.counters.tcp.lost_retransmits += 1;
        }
        // Window update (RFC 9293 §3.10.7.4: SND.WL1/SND.WL2 rule).
        if t.snd_wl1.diff(seg.seq_number) < 0
            || (t.snd_wl1 == seg.seq_number && t.snd_wl2.diff(ack) <= 0)
        {
            if wnd > t.snd_wnd {
                t.force_probe = false;
            }
            if t.snd_wnd == 0 && wnd > 0 && ack == t.snd_una && t.snd_nxt != t.snd_una {
                // The window opened without taking our probe: send from
                // SND.UNA now rather than wait for the RTO.
                t.snd_nxt = t.snd_una;
                t.rexmit_at = Some(t.rto_deadline(now, cfg));
            }
            t.snd_wnd = wnd;
            t.max_snd_wnd = t.max_snd_wnd.max(wnd);
            t.snd_wl1 = seg.seq_number;
            t.snd_wl2 = ack;
        }
        t.maybe_arm_persist(now, cfg);
        let fin_acked = t.fin_acked();
        let state = t.state;
        // Freed space wakes writers only if one found the buffer full, as
        // Linux's SOCK_NOSPACE: no spurious EPOLLOUT edges on every ACK.
        if progressed && t.nospace && t.sndq.free() >= t.sndq.len() / 2 {
            t.nospace = false;
            self.tcp_notify(id);
        }
        if fin_acked {
            match state {
                State::FinWait1 => self.tcp_set_state(now, id, State::FinWait2),
                State::Closing => self.tcp_set_state(now, id, State::TimeWait),
                State::LastAck => self.tcp_free(now, id),
                _ => {}
            }
        }
    }

    /// An ICMP error about a segment we sent (RFC 1122 §4.2.3.9): net and
    /// host unreachable are soft errors, kept and reported only if the
    /// connection then times out; port or protocol unreachable during the
    /// handshake abort it (ECONNREFUSED, as Linux). Fragmentation needed is
    /// left to path MTU discovery (not yet here).
    pub(crate) fn tcp_icmp_error(&mut self, local: SocketAddrV4, remote: SocketAddrV4, err: Errno) {
        let Some(&id) = self.tcp.conns.get(&(local, remote)) else {
            return;
        };
        let Some(t) = self.tcp.get_mut(id) else {
            return;
        };
        match err {
            Errno::EMSGSIZE => {}
            Errno::ECONNREFUSED if t.state == State::SynSent => {
                self.counters.tcp.attempt_fails += 1;
                let now = self.tcp.now;
                self.tcp_abort(now, id, Some(err), false);
            }
            _ => t.soft_error = Some(err),
        }
    }
}

/// RFC 9293 §3.10.7.4 Table 6: segment acceptability.
fn seq_acceptable(seq: SeqNumber, len: usize, rcv_nxt: SeqNumber, wnd: u32) -> bool {
    let in_wnd = |s: SeqNumber| s.diff(rcv_nxt) >= 0 && (s.diff(rcv_nxt) as i64) < wnd as i64;
    match (len, wnd) {
        (0, 0) => seq == rcv_nxt,
        (0, _) => in_wnd(seq),
        (_, 0) => false,
        _ => in_wnd(seq) || in_wnd(seq + (len - 1)),
    }
}

/// An acceptable segment's timestamp: TS.Recent and the receiver's RTT.
#[inline(always)]
fn tcb_take_timestamp(
    t: &mut Tcb,
    now: Instant,
    seq: SeqNumber,
    timestamp: Option<TcpTimestamp>,
    payload_len: usize,
) {
    if !t.ts_ok {
        return;
    }
    if let Some(ts) = timestamp {
        // RFC 7323 §4.3: TS.Recent from the segment our next ACK
        // covers first (SEG.SEQ <= Last.ACK.sent).
        if seq.diff(t.last_ack_sent) <= 0 && (ts.tsval.wrapping_sub(t.ts_recent) as i32) >= 0 {
            t.ts_recent = ts.tsval;
        }
        // The receiver's RTT (for autotuning) from the echo of our
        // clock on data-bearing segments.
        if ts.tsecr != 0 && payload_len > 0 {
            let ours = (now.total_millis() as u32).wrapping_add(t.ts_offset);
            let ms = ours.wrapping_sub(ts.tsecr);
            if ms < 60_000 {
                let us = (ms.max(1)) * 1000;
                t.rcv_rtt_us = if t.rcv_rtt_us == 0 {
                    us
                } else {
                    (t.rcv_rtt_us * 7 + us) / 8
                };
            }
        }
    }
}

/// Takes the peer's SYN: IRS, options (RFC 7323 §1.3, RFC 2018 §2), MSS.
fn tcb_take_syn(t: &mut Tcb, seg: &TcpRepr, cfg: &crate::config::TcpConfig) {
    t.irs = seg.seq_number;
    t.rcv_nxt = seg.seq_number + 1;
    t.last_ack_sent = t.rcv_nxt;
    // Window scaling only if both sides sent the option.
    match seg.window_scale.filter(|_| cfg.window_scaling) {
        Some(s) => {
            t.ws_ok = true;
            t.snd_wscale = s;
        }
        None => {
            t.ws_ok = false;
            t.snd_wscale = 0;
            t.rcv_wscale = 0;
        }
    }
    t.sack_ok = seg.sack_permitted && cfg.sack;
    t.ts_ok = seg.timestamp.is_some() && cfg.timestamps;
    if let Some(ts) = seg.timestamp.filter(|_| t.ts_ok) {
        t.ts_recent = ts.tsval;
    }
    // A tiny announced MSS is raised to 48 (Linux `tcp_min_snd_mss`), so a
    // peer cannot make us cut the stream into 1-byte segments.
    let peer = seg.max_seg_size.unwrap_or(536).max(MIN_SND_MSS);
    let ts_len = if t.ts_ok { 12 } else { 0 };
    t.snd_mss = peer.min(t.rcv_mss).saturating_sub(ts_len).max(8);
    t.cc = super::new_controller(t.opts.congestion, u32::from(t.snd_mss), cfg.initial_window);
    t.rcv_seg_max = t.snd_mss.min(536);
    let wnd = t.rcv_space().min(65535 << t.rcv_wscale);
    t.rcv_adv = t.rcv_nxt + wnd;
}
