//! Segment arrival (RFC 9293 §3.10.7), with the RFC 5961 defences.

use super::cc::CaState;
use super::options::TcpOptions;
use super::plan::Ctl;
use super::state::State;
use super::table::{Kind, Listener, Tcp};
use super::tcb::{PortClass, Tcb, TcbId};

use crate::config::StackConfig;
use crate::cx::Cx;
use crate::errno::Errno;
use crate::event::{EventKind, RetransmitCause};
use crate::ipv4::output::{Addrs, IpPair};
use crate::socket::SocketHandle;
use crate::time::{Duration, Instant};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tracing::debug;
use ustack_wire::{
    checksum, IpProtocol, SeqNumber, TcpFast, TcpFlags, TcpPacket, TcpRepr, TcpTimestamp,
};

/// Smallest MSS we accept from a peer (Linux `tcp_min_snd_mss`).
const MIN_SND_MSS: u16 = 48;

/// Out-of-window pure ACKs are answered at most this often (Linux `tcp_invalid_ratelimit`).
const OOW_ACK_INTERVAL: Duration = Duration::from_millis(500);

/// A run of a burst's frames header prediction took for one connection
/// (`Tcp::process_fast_run`).
pub(crate) struct Run {
    /// Source and destination address, ports, as on the wire.
    key: (u64, u32),
    id: TcbId,
    /// Some bytes were taken.
    data: bool,
}

#[inline(always)]
fn ip_src(ip: &[u8; 20]) -> Ipv4Addr {
    Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])
}

#[inline(always)]
fn ip_dst(ip: &[u8; 20]) -> Ipv4Addr {
    Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])
}

/// The fields of a segment that header prediction looks at: what is left
/// of it once the flags are known to be ACK (maybe PSH) and it carries no
/// SACK blocks.
pub(crate) struct FastSeg<'a> {
    seq_number: SeqNumber,
    ack_number: SeqNumber,
    window_len: u16,
    timestamp: Option<TcpTimestamp>,
    payload: &'a [u8],
    /// Payload bytes already written in place at the tail of the receive
    /// ring (`payload` is then empty): see `Tcp::process_placed`.
    placed: usize,
    /// Payload bytes already written past the filled part of the first
    /// posted receive buffer with room (`payload` is then empty), in the
    /// pass that summed them for the checksum.
    posted: usize,
    /// Where that buffer is in the posted queue.
    posted_at: usize,
}

impl<'a> FastSeg<'a> {
    fn from_repr(seg: &TcpRepr<'a>) -> FastSeg<'a> {
        FastSeg {
            seq_number: seg.seq_number,
            ack_number: seg.ack_number,
            window_len: seg.window_len,
            timestamp: seg.timestamp,
            payload: seg.payload,
            placed: 0,
            posted: 0,
            posted_at: 0,
        }
    }

    /// The wire crate's fixed-layout view, as header prediction takes it.
    #[inline(always)]
    fn from_fast(seg: &TcpFast<'a>) -> FastSeg<'a> {
        FastSeg {
            seq_number: seg.seq_number,
            ack_number: seg.ack_number,
            window_len: seg.window_len,
            timestamp: seg.timestamp,
            payload: seg.payload,
            placed: 0,
            posted: 0,
            posted_at: 0,
        }
    }
}

impl Tcp {
    /// Header prediction (RFC 9293 §3.10.7.4 as BSD and Linux predict
    /// it): in-order data for the connection that had the last segment,
    /// read through the wire crate's fixed-layout view of `segment` (the
    /// IP layer has checked its own header and hands over `ip`). Returns
    /// false, having changed nothing, unless the segment was taken (then
    /// it is counted as the full path would count it); the caller then
    /// takes the full path.
    #[inline(always)]
    pub(crate) fn process_fast(&mut self, cx: &mut Cx<'_>, ip: IpPair, segment: &[u8]) -> bool {
        self.fast_missed = None;
        let Some(seg) = TcpFast::new(segment) else {
            return false;
        };
        let local = SocketAddr::new(IpAddr::V4(ip.dst), seg.dst_port);
        let remote = SocketAddr::new(IpAddr::V4(ip.src), seg.src_port);
        let Some(id) = self.cached(local, remote) else {
            return false;
        };
        let mut fast = FastSeg::from_fast(&seg);
        if cx.cfg.checksums.rx {
            let hl = segment.len() - seg.payload.len();
            let pseudo = ip.pseudo_sum(IpProtocol::Tcp, segment.len());
            // Payload bound for a posted buffer is copied there and
            // summed as it goes (the header is even-sized: sums add,
            // RFC 1071); the bytes count only once the segment is taken.
            let sum = match self.posted_copy_sum(id, seg.payload) {
                Some((s, at)) => {
                    fast.payload = &[];
                    fast.posted = seg.payload.len();
                    fast.posted_at = at;
                    checksum::sum_words(&segment[..hl]) + s
                }
                None => checksum::sum(segment),
            };
            if checksum::fold(pseudo + sum) != 0xffff {
                return false;
            }
        }
        if !self.tcp_fast_data(cx, id, &fast) {
            self.fast_missed = Some(id);
            return false;
        }
        cx.sh.counters.ip.in_delivers += 1;
        cx.sh.counters.tcp.in_segs += 1;
        true
    }

    /// [`process_fast`](Self::process_fast) for one frame of a burst
    /// (`Stack::receive_burst`): `run` is the flow header prediction took
    /// the burst's frames for since the last frame it did not, whose
    /// tail ([`fast_tail`](Self::fast_tail)) is owed once, when the run
    /// ends ([`end_run`](Self::end_run)). A frame of the same 4-tuple
    /// (compared as the bytes on the wire) skips the lookup. `csum`:
    /// verify the TCP checksum. False, the run ended, if header
    /// prediction does not take the segment: the frame goes the usual way.
    #[inline(always)]
    pub(crate) fn process_fast_run(
        &mut self,
        cx: &mut Cx<'_>,
        ip: &[u8; 20],
        segment: &[u8],
        csum: bool,
        run: &mut Option<Run>,
    ) -> bool {
        let Some(seg) = TcpFast::new(segment) else {
            self.end_run(cx, run);
            return false;
        };
        let key = (
            u64::from_ne_bytes([
                ip[12], ip[13], ip[14], ip[15], ip[16], ip[17], ip[18], ip[19],
            ]),
            u32::from_ne_bytes([segment[0], segment[1], segment[2], segment[3]]),
        );
        let id = match run {
            Some(r) if r.key == key => r.id,
            _ => {
                self.end_run(cx, run);
                let local = SocketAddr::new(IpAddr::V4(ip_dst(ip)), seg.dst_port);
                let remote = SocketAddr::new(IpAddr::V4(ip_src(ip)), seg.src_port);
                let Some(id) = self.cached(local, remote) else {
                    return false;
                };
                id
            }
        };
        let mut fast = FastSeg::from_fast(&seg);
        if csum {
            let hl = segment.len() - seg.payload.len();
            let pair = IpPair {
                src: ip_src(ip),
                dst: ip_dst(ip),
            };
            let pseudo = pair.pseudo_sum(IpProtocol::Tcp, segment.len());
            let sum = match self.posted_copy_sum(id, seg.payload) {
                Some((s, at)) => {
                    fast.payload = &[];
                    fast.posted = seg.payload.len();
                    fast.posted_at = at;
                    checksum::sum_words(&segment[..hl]) + s
                }
                None => checksum::sum(segment),
            };
            if checksum::fold(pseudo + sum) != 0xffff {
                self.end_run(cx, run);
                return false;
            }
        }
        let Some(data) = self.tcp_fast_take::<false>(cx, id, &fast) else {
            self.end_run(cx, run);
            return false;
        };
        cx.sh.counters.ip.in_delivers += 1;
        cx.sh.counters.tcp.in_segs += 1;
        match run {
            Some(r) => r.data |= data,
            None => *run = Some(Run { key, id, data }),
        }
        true
    }

    /// Ends a burst's run of header-predicted segments: their tail, once.
    #[inline]
    pub(crate) fn end_run(&mut self, cx: &mut Cx<'_>, run: &mut Option<Run>) {
        if let Some(r) = run.take() {
            self.fast_tail(cx, r.id, r.data);
        }
    }

    /// Header prediction for a segment whose `placed` payload bytes the
    /// device already wrote at the tail of connection `id`'s receive ring
    /// (`Tcp::placed_slot`); `seg` is its header (read with a stand-in
    /// payload). Returns false, having changed nothing (the bytes stay
    /// unreadable), unless the data was taken where it lies.
    pub(crate) fn process_placed(
        &mut self,
        cx: &mut Cx<'_>,
        id: TcbId,
        seg: &TcpFast<'_>,
        placed: usize,
    ) -> bool {
        self.fast_missed = None;
        let seg = FastSeg {
            payload: &[],
            placed,
            ..FastSeg::from_fast(seg)
        };
        if placed == 0 || !self.tcp_fast_data(cx, id, &seg) {
            return false;
        }
        cx.sh.counters.ip.in_delivers += 1;
        cx.sh.counters.tcp.in_segs += 1;
        true
    }

    /// One segment for us (RFC 9293 §3.10.7): `ip` its addresses, `payload`
    /// the TCP header and data; `broadcast` when sent to a broadcast
    /// address (dropped, RFC 1122 §4.2.3.10, after it is counted).
    pub fn process(&mut self, cx: &mut Cx<'_>, ip: IpPair, payload: &[u8], broadcast: bool) {
        self.process_full(cx, Addrs::V4(ip), payload, broadcast);
        self.fast_missed = None;
    }

    /// One segment over IPv6 (RFC 8200 §8.1: the checksum covers the
    /// IPv6 pseudo-header); no broadcast there.
    pub fn process6(&mut self, cx: &mut Cx<'_>, src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) {
        self.process_full(cx, Addrs::V6 { src, dst }, payload, false);
        self.fast_missed = None;
    }

    fn process_full(&mut self, cx: &mut Cx<'_>, ip: Addrs, payload: &[u8], broadcast: bool) {
        let Ok(packet) = TcpPacket::new_checked(payload) else {
            cx.sh.counters.tcp.in_errs += 1;
            return;
        };
        // Borrowed from the result, not moved out of it: the repr is ~100
        // bytes and copying it stalled on store forwarding every segment.
        let parsed = match ip {
            Addrs::V4(ip) => TcpRepr::parse(&packet, ip.src, ip.dst, &cx.cfg.checksums),
            Addrs::V6 { .. } => {
                let sum = ip.pseudo_sum(IpProtocol::Tcp, payload.len()) + checksum::sum(payload);
                if cx.cfg.checksums.rx && checksum::fold(sum) != 0xffff {
                    Err(ustack_wire::Error::Checksum)
                } else {
                    let caps = ustack_wire::ChecksumCaps::OFFLOAD;
                    TcpRepr::parse(&packet, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, &caps)
                }
            }
        };
        let seg = match &parsed {
            Ok(r) => r,
            Err(ustack_wire::Error::Checksum) => {
                cx.sh.counters.tcp.in_csum_errors += 1;
                cx.sh.counters.tcp.in_errs += 1;
                return;
            }
            Err(_) => {
                cx.sh.counters.tcp.in_errs += 1;
                return;
            }
        };
        cx.sh.counters.ip.in_delivers += 1;
        cx.sh.counters.tcp.in_segs += 1;
        // RFC 1122 §4.2.3.10: TCP never talks to broadcast addresses.
        if broadcast {
            return;
        }
        let local = SocketAddr::new(ip.dst(), seg.dst_port);
        let remote = SocketAddr::new(ip.src(), seg.src_port);
        if let Some(id) = self.lookup(local, remote) {
            self.tcp_segment(cx, id, seg);
            return;
        }
        if let Some(lh) = self.tcp_find_listener(local, remote) {
            self.tcp_listen_input(cx, lh, local, remote, seg);
            return;
        }
        self.tcp_reset_reply(cx, local, remote, seg);
    }

    /// The listener for a new connection to `local`: exact address before
    /// wildcard; among SO_REUSEPORT peers, one chosen by a hash of the 4-tuple.
    pub(crate) fn tcp_find_listener(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<SocketHandle> {
        // The any-address listener forwards IPv4 only.
        let fwd = || self.fwd_listener().filter(|_| local.is_ipv4());
        let Some(list) = self.listeners.get(&local.port()) else {
            return fwd();
        };
        // Exact address before wildcard (an IPv6 wildcard takes IPv4 too
        // unless IPV6_V6ONLY, RFC 3493 §5.3).
        let how = |h: &SocketHandle| {
            let o = self.socks.get(*h)?.own.as_deref()?;
            crate::addr::takes(o.local?.ip(), o.opts.v6only, local.ip())
        };
        for exact in [true, false] {
            let n = list.iter().filter(|h| how(h) == Some(exact)).count();
            if n == 0 {
                continue;
            }
            let pick = self.secret.spread(local, remote, n);
            return list
                .iter()
                .filter(|h| how(h) == Some(exact))
                .nth(pick)
                .copied();
        }
        fwd()
    }

    /// RFC 9293 §3.10.7.1: a segment for no connection gets a RST (never in
    /// reply to a RST).
    pub(crate) fn tcp_reset_reply(
        &mut self,
        cx: &mut Cx<'_>,
        local: SocketAddr,
        remote: SocketAddr,
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
        self.tcp_push_ctl(cx, ctl);
    }

    pub(crate) fn tcp_push_ctl(&mut self, cx: &mut Cx<'_>, ctl: Ctl) {
        if self.ctl.len() >= cx.cfg.tcp.max_ctl_queue {
            return;
        }
        self.ctl.push_back(ctl);
    }

    fn listener_mut(&mut self, lh: SocketHandle) -> Option<&mut Listener> {
        match self.socks.get_mut(lh) {
            Some(s) => match &mut s.kind {
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
        cx: &mut Cx<'_>,
        lh: SocketHandle,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &TcpRepr,
    ) {
        let now = cx.now;
        let f = seg.flags;
        if f.contains(TcpFlags::RST) {
            return;
        }
        if f.contains(TcpFlags::ACK) {
            if !f.contains(TcpFlags::SYN) && cx.cfg.tcp.syncookies {
                self.tcp_cookie_ack(cx, lh, local, remote, seg);
            } else {
                self.tcp_reset_reply(cx, local, remote, seg);
            }
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        if self.accept_full(lh) {
            cx.sh.counters.tcp.listen_overflows += 1;
            cx.sh.counters.tcp.listen_drops += 1;
            return;
        }
        if !self.fwd_admit(cx, lh) {
            return;
        }
        let Some(syn_count) = self.listener_mut(lh).map(|l| l.syn_count) else {
            return;
        };
        // The SYN queue is bounded by max_syn_backlog (the accept queue by the backlog).
        let syn_cap = cx.cfg.tcp.max_syn_backlog.max(1);
        if syn_count >= syn_cap {
            if cx.cfg.tcp.syncookies {
                self.tcp_send_cookie(cx, lh, local, remote, seg);
            } else {
                cx.sh.counters.tcp.listen_drops += 1;
            }
            return;
        }
        let iss = self.secret.isn(local, remote, now);
        let ts_offset = self.secret.ts_offset(local, remote);
        let Some(id) =
            self.tcp_create_passive(cx, lh, local, remote, iss, ts_offset, |tcb, cfg| {
                tcb_take_syn(tcb, seg, cfg);
                tcb.owed.syn = true;
            })
        else {
            return;
        };
        if self.fwd_created(cx, lh, id, true) {
            // Connect-before-accept: the SYN-ACK waits for the answer.
            if let Some(t) = self.get_mut(id) {
                t.owed.syn = false;
            }
        }
        debug!(%local, %remote, from = %State::Listen, to = %State::SynReceived, "tcp state");
        cx.event(EventKind::TcpState {
            local,
            remote: Some(remote),
            from: State::Listen,
            to: State::SynReceived,
        });
        self.schedule(cx.now, id);
    }

    /// Answers a SYN with a cookie SYN-ACK and keeps no state (RFC 4987 §3.6).
    /// The cookie carries only the MSS, so such connections go without
    /// window scaling, SACK and timestamps.
    fn tcp_send_cookie(
        &mut self,
        cx: &mut Cx<'_>,
        lh: SocketHandle,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &TcpRepr,
    ) {
        let now = cx.now;
        let peer_mss = seg.max_seg_size.unwrap_or(536);
        let (isn, _) = self
            .secret
            .cookie(local, remote, seg.seq_number, peer_mss, now);
        let window = match self.socks.get(lh) {
            Some(s) => self.sock_opts(s).rcvbuf.min(65535) as u16,
            _ => return,
        };
        if let Some(l) = self.listener_mut(lh) {
            l.cookies_since = Some(now);
        }
        cx.sh.counters.tcp.syncookies_sent += 1;
        let mss = self.tcp_mtu_mss(cx.cfg, &remote);
        self.tcp_push_ctl(
            cx,
            Ctl {
                local,
                remote,
                seq: isn,
                ack: seg.seq_number + 1,
                flags: TcpFlags::SYN | TcpFlags::ACK,
                window,
                mss: Some(mss),
            },
        );
    }

    /// An ACK to a listener: a returning SYN cookie, or else a RST.
    fn tcp_cookie_ack(
        &mut self,
        cx: &mut Cx<'_>,
        lh: SocketHandle,
        local: SocketAddr,
        remote: SocketAddr,
        seg: &TcpRepr,
    ) {
        let now = cx.now;
        let recent = self
            .listener_mut(lh)
            .and_then(|l| l.cookies_since)
            .is_some_and(|t| now - t < Duration::from_secs(128));
        if !recent {
            self.tcp_reset_reply(cx, local, remote, seg);
            return;
        }
        let client_isn = seg.seq_number - 1;
        let isn = seg.ack_number - 1;
        let Some(mss) = self
            .secret
            .check_cookie(local, remote, client_isn, isn, now)
        else {
            cx.sh.counters.tcp.syncookies_failed += 1;
            self.tcp_reset_reply(cx, local, remote, seg);
            return;
        };
        if self.accept_full(lh) {
            cx.sh.counters.tcp.listen_overflows += 1;
            cx.sh.counters.tcp.listen_drops += 1;
            return;
        }
        cx.sh.counters.tcp.syncookies_recv += 1;
        // What the SYN told us lives only in the cookie: the MSS (RFC 4987 §3.6).
        let created = self.tcp_create_passive(cx, lh, local, remote, isn, 0, |tcb, cfg| {
            tcb.rcv.irs = client_isn;
            tcb.rcv.nxt = seg.seq_number;
            tcb.rcv.wscale = 0;
            tcb.rcv.adv = tcb.rcv.nxt + tcb.rcv_space().min(65535);
            tcb.snd.nxt = isn + 1;
            tcb.snd.max = isn + 1;
            tcb.snd.mss = mss.max(MIN_SND_MSS).min(tcb.rcv.mss);
            tcb.cong.cc = super::controllers::new_controller(
                tcb.opts.congestion,
                u32::from(tcb.snd.mss),
                cfg.initial_window,
                cfg.hystart,
            );
        });
        if let Some(id) = created {
            self.fwd_created(cx, lh, id, false);
            self.tcp_segment(cx, id, seg);
        }
    }

    /// A TCB for a new connection, with the socket options `opts`: the
    /// one place TCBs are made (active opens, SYNs, cookie ACKs).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tcp_create(
        &self,
        cx: &Cx<'_>,
        state: State,
        local: SocketAddr,
        remote: SocketAddr,
        iss: SeqNumber,
        ts_offset: u32,
        opts: TcpOptions,
    ) -> Tcb {
        let mtu_mss = self.tcp_mtu_mss(cx.cfg, &remote);
        Tcb::new(
            &cx.cfg.tcp,
            state,
            local,
            remote,
            iss,
            opts,
            mtu_mss,
            cx.now,
            ts_offset,
        )
    }

    /// A half-open connection of listener `lh` (SYN-RECEIVED), set up by
    /// `setup`, entered in the tables and counted in the SYN queue; `None`
    /// if the listener is gone.
    #[allow(clippy::too_many_arguments)]
    fn tcp_create_passive(
        &mut self,
        cx: &mut Cx<'_>,
        lh: SocketHandle,
        local: SocketAddr,
        remote: SocketAddr,
        iss: SeqNumber,
        ts_offset: u32,
        setup: impl FnOnce(&mut Tcb, &crate::config::TcpConfig),
    ) -> Option<TcbId> {
        if !self.fwd_admit(cx, lh) {
            return None;
        }
        let opts = self.sock_opts(self.socks.get(lh)?).clone();
        let mut tcb = self.tcp_create(cx, State::SynReceived, local, remote, iss, ts_offset, opts);
        tcb.listener = Some(lh);
        setup(&mut tcb, &cx.cfg.tcp);
        let id = self.tcp_insert(tcb);
        if let Some(l) = self.listener_mut(lh) {
            l.syn_count += 1;
        }
        Some(id)
    }

    /// Creates a TCB and enters it in the lookup and port tables.
    pub(crate) fn tcp_insert(&mut self, tcb: Tcb) -> TcbId {
        let port = tcb.local.port();
        let class = tcb.port_class;
        let id = self.insert(tcb);
        self.port_use(port).count(class, 1);
        id
    }

    /// Our MSS for this interface: MTU - 40 (RFC 9293 §3.7.1), MTU - 60
    /// towards an IPv6 peer (RFC 8200 §8.3: a 40-byte IPv6 header).
    pub(crate) fn tcp_mtu_mss(&self, cfg: &StackConfig, remote: &SocketAddr) -> u16 {
        let ip = if remote.is_ipv6() { 60 } else { 40 };
        (cfg.mtu.saturating_sub(ip)).clamp(28, 65495) as u16
    }

    /// Moves a TCB to `to`, keeping the gauges, port buckets and timers right.
    pub(crate) fn tcp_set_state(&mut self, cx: &mut Cx<'_>, id: TcbId, to: State) {
        let now = cx.now;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        let from = t.state;
        if from == to {
            return;
        }
        debug!(local = %t.local, remote = %t.remote, %from, %to, "tcp state");
        if to == State::TimeWait {
            // Nothing more is sent or received: buffers that drained go.
            t.snd.q.release();
            t.rcv.q.release();
        }
        let (local, remote, socket) = (t.local, t.remote, t.socket);
        cx.event(EventKind::TcpState {
            local,
            remote: Some(remote),
            from,
            to,
        });
        if to == State::Established {
            cx.event(EventKind::TcpEstablished {
                local,
                remote,
                socket,
            });
            // A path MTU already learned for the peer (Linux tcp_sync_mss);
            // over IPv6 the header's 20 more bytes are taken off.
            let (pmtu, extra) = match remote.ip() {
                IpAddr::V4(dst) => (cx.sh.ip.pmtu.get(now, dst, cx.cfg.mtu), 0),
                IpAddr::V6(dst) => (cx.sh.ip6.path_mtu(cx.cfg, now, &dst), super::pmtu::V6_EXTRA),
            };
            if pmtu < cx.cfg.mtu {
                t.pmtu_apply(pmtu - extra);
            }
        }
        t.state = to;
        let estab = |s: State| matches!(s, State::Established | State::CloseWait);
        match (estab(from), estab(to)) {
            (false, true) => cx.sh.counters.tcp.curr_estab += 1,
            (true, false) => {
                cx.sh.counters.tcp.curr_estab = cx.sh.counters.tcp.curr_estab.saturating_sub(1)
            }
            _ => {}
        }
        match to {
            State::TimeWait => {
                t.timer.rexmit = None;
                t.timer.keepalive = None;
                let tw = &mut cx.sh.counters.tcp;
                // Over the cap, the linger timer ends it at once: the ACK
                // it owes still goes out first (Linux tcp_max_tw_buckets).
                let full = tw.curr_time_wait >= cx.cfg.tcp.max_time_wait as u64;
                t.timer.linger = Some(if full {
                    tw.time_wait_overflows += 1;
                    now
                } else {
                    now + cx.cfg.tcp.time_wait
                });
                let port = t.local.port();
                let old = t.port_class;
                if old != PortClass::TimeWait {
                    tw.curr_time_wait += 1;
                    t.port_class = PortClass::TimeWait;
                    let pu = self.port_use(port);
                    pu.count(old, -1);
                    pu.count(PortClass::TimeWait, 1);
                }
            }
            State::FinWait2 if t.socket.is_none() => {
                t.timer.linger = Some(now + cx.cfg.tcp.fin_timeout);
            }
            State::Established | State::CloseWait | State::FinWait2 => {
                t.timer.keepalive = t.keepalive_deadline();
            }
            _ => {}
        }
        self.arm(id);
        self.tcp_notify(cx, id);
    }

    /// Marks the socket of a TCB as possibly changed. A connection not yet
    /// accepted has none: what changes its listener (joining or leaving the
    /// accept queue) is marked where that happens, so data or a FIN on a
    /// queued connection wakes no listener's watcher (as in Linux, whose
    /// child socket has no waiters until accepted).
    pub(crate) fn tcp_notify(&mut self, cx: &mut Cx<'_>, id: TcbId) {
        if let Some(h) = self.get(id).and_then(|t| t.socket) {
            cx.sh.handles.mark_changed(h);
        }
    }

    /// Frees a TCB: lookup, port bucket, listener queues, socket state.
    pub(crate) fn tcp_free(&mut self, cx: &mut Cx<'_>, id: TcbId) {
        if self.get(id).is_none() {
            return;
        }
        self.tcp_set_state(cx, id, State::Closed);
        let Some(t) = self.remove(id) else { return };
        cx.event(EventKind::TcpClosed {
            local: t.local,
            remote: t.remote,
            socket: t.socket,
        });
        let port = t.local.port();
        if t.port_class == PortClass::TimeWait {
            let tw = &mut cx.sh.counters.tcp.curr_time_wait;
            *tw = tw.saturating_sub(1);
        }
        self.port_use(port).count(t.port_class, -1);
        self.port_release_if_empty(port);
        self.fwd_freed(id);
        if let Some(lh) = t.listener {
            let was_half_open = !t.in_accept_queue;
            if let Some(l) = self.listener_mut(lh) {
                if was_half_open {
                    l.syn_count = l.syn_count.saturating_sub(1);
                    l.pending.retain(|x| *x != id);
                } else {
                    l.accept.retain(|x| *x != id);
                }
            }
            cx.sh.handles.mark_changed(lh);
        }
        if let Some(h) = t.socket {
            if let Some(own) = self
                .detach(h, t.local, t.opts)
                .and_then(|s| s.own.as_deref_mut())
            {
                own.leftover = (!t.rcv.q.is_empty()).then(|| Box::new(t.rcv.q));
                let mut sq = t.snd.q;
                sq.release_owned();
                if sq.has_done() || t.rcv.posted.is_some() {
                    let mut o = super::table::Orphans {
                        done: Vec::new(),
                        posted: t.rcv.posted.map(|p| *p).unwrap_or_default(),
                    };
                    sq.take_done(&mut o.done);
                    own.zc = Some(Box::new(o));
                }
            }
            cx.sh.handles.mark_changed(h);
        }
    }

    /// Ends a connection at once: the error goes to the socket; a RST
    /// (RFC 9293 §3.10.7.4 form `<SEQ=SND.NXT><CTL=RST,ACK>`) if asked.
    pub(crate) fn tcp_abort(&mut self, cx: &mut Cx<'_>, id: TcbId, err: Option<Errno>, rst: bool) {
        let Some(t) = self.get(id) else { return };
        let socket = t.socket;
        if rst {
            let ctl = Ctl {
                local: t.local,
                remote: t.remote,
                seq: t.snd.nxt,
                ack: t.rcv.nxt,
                flags: TcpFlags::RST | TcpFlags::ACK,
                window: 0,
                mss: None,
            };
            self.tcp_push_ctl(cx, ctl);
        }
        if let (Some(e), Some(h)) = (err, socket) {
            if let Some(s) = self.socks.get_mut(h) {
                s.error = Some(e);
            }
        }
        self.tcp_free(cx, id);
    }

    /// An ACK that says where we are, instead of acting on a suspicious
    /// segment (RFC 5961 §3.2, §4.2, §5.2). At most one per connection per
    /// 500 ms, sharing the out-of-window ACK limit (Linux
    /// `tcp_send_challenge_ack`), and then within the stack-wide limit
    /// (RFC 5961 §7). The per-connection limit comes first so that no one
    /// connection can drain the shared budget and read, from how much is
    /// left, whether its spoofed segments hit another connection's window
    /// (CVE-2016-5696).
    fn tcp_challenge_ack(&mut self, cx: &mut Cx<'_>, id: TcbId) {
        let now = cx.now;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        if t.timer
            .last_oow_ack
            .is_some_and(|l| now - l < OOW_ACK_INTERVAL)
        {
            cx.sh.counters.tcp.challenge_ack_limited += 1;
            return;
        }
        t.timer.last_oow_ack = Some(now);
        if !self.challenge.take(now) {
            cx.sh.counters.tcp.challenge_ack_limited += 1;
            return;
        }
        cx.sh.counters.tcp.challenge_acks += 1;
        if let Some(t) = self.get_mut(id) {
            t.owed.ack = true;
        }
        self.schedule(cx.now, id);
    }

    /// A segment for an existing TCB (RFC 9293 §3.10.7.3 and §3.10.7.4).
    pub(crate) fn tcp_segment(&mut self, cx: &mut Cx<'_>, id: TcbId, seg: &TcpRepr) {
        if self.fwd.is_some() && self.fwd_deferred(id) {
            // Waiting for the application (`forward.rs`): the client's
            // retransmitted SYNs go unanswered; its RST, at exactly
            // RCV.NXT (RFC 5961 §3.2: nothing else is in window, as no
            // SYN-ACK has told it a window), ends the wait.
            let rcv_nxt = self.get(id).map(|t| t.rcv.nxt);
            if seg.flags.contains(TcpFlags::RST) && rcv_nxt == Some(seg.seq_number) {
                self.tcp_abort(cx, id, Some(Errno::ECONNRESET), false);
            }
            return;
        }
        let Some(t) = self.get_mut(id) else { return };
        // ECN (RFC 3168 §6.1.3): CWR ends our echo, CE on data starts it
        // (and is ACKed at once, as Linux).
        let data = !seg.payload.is_empty();
        if t.neg
            .ecn
            .on_segment(cx.sh.rx_ce, seg.flags.contains(TcpFlags::CWR), data)
        {
            t.owed.ack = true;
        }
        match t.state {
            State::SynSent => self.tcp_syn_sent(cx, id, seg),
            State::Closed | State::Listen => {}
            _ => self.tcp_synchronized(cx, id, seg),
        }
        self.arm(id);
        self.schedule(cx.now, id);
    }

    /// RFC 9293 §3.10.7.3: SYN-SENT.
    fn tcp_syn_sent(&mut self, cx: &mut Cx<'_>, id: TcbId, seg: &TcpRepr) {
        let now = cx.now;
        let f = seg.flags;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        if f.contains(TcpFlags::ACK)
            && (seg.ack_number.diff(t.snd.iss) <= 0 || seg.ack_number.diff(t.snd.max) > 0)
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
                if t.timer.retries == 0 && !t.owed.syn {
                    t.timer.retries = 1;
                    t.owed.syn = true;
                    t.snd.nxt = t.snd.iss;
                    t.rtt.timing = None;
                }
                self.tcp_reset_reply(cx, local, remote, seg);
            }
            return;
        }
        if f.contains(TcpFlags::RST) {
            if f.contains(TcpFlags::ACK) {
                debug!(local = %t.local, remote = %t.remote, "tcp connection refused");
                cx.sh.counters.tcp.attempt_fails += 1;
                self.tcp_abort(cx, id, Some(Errno::ECONNREFUSED), false);
            }
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        tcb_take_syn(t, seg, &cx.cfg.tcp);
        t.timer.last_rcv = now;
        if f.contains(TcpFlags::ACK) {
            // Our SYN is acknowledged: ACK theirs. The window of a SYN is
            // never scaled (RFC 7323 §2.2).
            t.owed.ack = true;
            self.tcp_handshake_done(cx, id, seg, u32::from(seg.window_len));
        } else {
            // Simultaneous open: SYN-SENT -> SYN-RECEIVED, send SYN,ACK.
            t.snd.wnd = u32::from(seg.window_len);
            t.snd.max_wnd = t.snd.wnd;
            t.snd.wl1 = seg.seq_number;
            t.snd.nxt = t.snd.iss;
            t.owed.syn = true;
            t.rtt.timing = None;
            self.tcp_set_state(cx, id, State::SynReceived);
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
    fn tcp_fast_data(&mut self, cx: &mut Cx<'_>, id: TcbId, seg: &FastSeg) -> bool {
        self.tcp_fast_take::<true>(cx, id, seg).is_some()
    }

    /// [`tcp_fast_data`](Self::tcp_fast_data); without `TAIL` the steps
    /// after the data is taken (timers, ready list, readiness: see
    /// [`fast_tail`](Self::fast_tail)) are left to the caller. `Some`
    /// (whether bytes were taken) if the segment was.
    #[inline(always)]
    fn tcp_fast_take<const TAIL: bool>(
        &mut self,
        cx: &mut Cx<'_>,
        id: TcbId,
        seg: &FastSeg,
    ) -> Option<bool> {
        let now = cx.now;
        let cfg = &cx.cfg.tcp;
        let (t, mut queues) = self.split_mut(id)?;
        let wnd = u32::from(seg.window_len) << t.snd.wscale;
        let len = seg.payload.len() + seg.placed + seg.posted;
        if t.state != State::Established
            || seg.seq_number != t.rcv.nxt
            || len == 0
            || seg.ack_number != t.snd.una
            || t.snd.una != t.snd.max
            || wnd == 0
            || wnd != t.snd.wnd
            || t.snd.wl1.diff(seg.seq_number) >= 0
            || !t.rcv.ofo.is_empty()
            || t.rcv.ofo_fin.is_some()
            || (t.socket.is_none() && t.listener.is_none())
        {
            return None;
        }
        if t.neg.ts {
            if let Some(ts) = seg.timestamp {
                if (ts.tsval.wrapping_sub(t.neg.ts_recent) as i32) < 0 {
                    return None;
                }
            }
        }
        let wnd_rcv = t.rcv.adv.diff(t.rcv.nxt).max(0) as u32;
        if !seq_acceptable(seg.seq_number, len, t.rcv.nxt, wnd_rcv) {
            return None;
        }
        // Fifth: ACK (RFC 9293 §3.10.7.4), as `tcp_ack` for an ACK of
        // nothing new with the window unchanged.
        t.timer.last_rcv = now;
        t.timer.probes_out = 0;
        if t.opts.keepalive {
            t.timer.keepalive = t.keepalive_deadline();
        }
        tcb_take_timestamp(t, now, seg.seq_number, seg.timestamp, len);
        t.snd.max_wnd = t.snd.max_wnd.max(wnd);
        t.snd.wl1 = seg.seq_number;
        t.snd.wl2 = seg.ack_number;
        t.maybe_arm_persist(now, cfg);
        // Seventh: segment text, in order, no hole to fill.
        let n = if seg.placed > 0 {
            t.take_placed(seg.placed)
        } else if seg.posted > 0 {
            cx.sh.counters.tcp.rx_direct_bytes += seg.posted as u64;
            t.take_posted_placed(seg.posted, seg.posted_at)
        } else {
            let mut direct = 0;
            let n = t.take_in_order(seg.payload, &mut direct);
            cx.sh.counters.tcp.rx_direct_bytes += direct;
            n
        };
        if n < len {
            cx.sh.counters.tcp.rcv_pruned += 1;
            t.owed.ack = true;
        }
        if n > 0 && t.on_data_received(now, n, cfg) {
            cx.sh.counters.tcp.quick_acks += 1;
        }
        if t.owed.ack {
            t.timer.delack = None;
        }
        cx.sh.counters.tcp.hp_hits += 1;
        if TAIL && fast_tail_of(cx, id, t, &mut queues, n > 0) {
            self.arm_cork(cx.now, id);
        }
        Some(n > 0)
    }

    /// What follows header prediction's taking of segments of `id`,
    /// once for a run of them (`data`: some bytes were taken): see
    /// `fast_tail_of`.
    #[inline]
    pub(crate) fn fast_tail(&mut self, cx: &mut Cx<'_>, id: TcbId, data: bool) {
        let Some((t, mut queues)) = self.split_mut(id) else {
            return;
        };
        if fast_tail_of(cx, id, t, &mut queues, data) {
            self.arm_cork(cx.now, id);
        }
    }

    /// RFC 9293 §3.10.7.4 for SYN-RECEIVED and the synchronized states.
    fn tcp_synchronized(&mut self, cx: &mut Cx<'_>, id: TcbId, seg: &TcpRepr) {
        let now = cx.now;
        // Header prediction, unless the datagram path just tried it for
        // this segment (the outcome would be the same).
        let tried = self.fast_missed.take() == Some(id);
        if !tried
            && seg.flags.0 & !TcpFlags::PSH.0 == TcpFlags::ACK.0
            && seg.sack_ranges[0].is_none()
            && self.tcp_fast_data(cx, id, &FastSeg::from_repr(seg))
        {
            return;
        }
        let f = seg.flags;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        let state = t.state;

        // A retransmitted SYN (or our peer's SYN,ACK in a simultaneous open)
        // in SYN-RECEIVED.
        if state == State::SynReceived
            && f.contains(TcpFlags::SYN)
            && !f.contains(TcpFlags::RST)
            && seg.seq_number + 1 == t.rcv.nxt
        {
            if f.contains(TcpFlags::ACK) && seg.ack_number == t.snd.max && t.listener.is_none() {
                // Simultaneous open (Linux tcp_rcv_state_process): the
                // SYN,ACK completes our handshake; ACK their SYN in case our
                // SYN,ACK has not gone out yet.
                t.owed.ack = t.owed.syn;
                self.tcp_established_from_syn_received(cx, id, seg);
            } else if !f.contains(TcpFlags::ACK) {
                t.owed.syn = true;
                t.snd.nxt = t.snd.iss;
            }
            return;
        }

        if state == State::TimeWait && self.tcp_time_wait_special(cx, id, seg) {
            return;
        }
        let Some(t) = self.get_mut(id) else {
            return;
        };

        // PAWS (RFC 7323 §5.3): a segment with a timestamp older than
        // TS.Recent is an old duplicate: drop it, ACK unless it is a RST.
        if t.neg.ts && !f.contains(TcpFlags::RST) {
            if let Some(ts) = seg.timestamp {
                if (ts.tsval.wrapping_sub(t.neg.ts_recent) as i32) < 0 {
                    cx.sh.counters.tcp.paws_drops += 1;
                    t.owed.ack = true;
                    return;
                }
            }
        }

        // First: sequence number acceptable?
        let seg_len = seg.segment_len();
        let wnd = t.rcv.adv.diff(t.rcv.nxt).max(0) as u32;
        if !seq_acceptable(seg.seq_number, seg_len, t.rcv.nxt, wnd) {
            if f.contains(TcpFlags::RST) {
                cx.sh.counters.tcp.oow_rst_drops += 1;
                return;
            }
            if f.contains(TcpFlags::SYN) && state.synchronized() {
                cx.sh.counters.tcp.syn_challenge += 1;
                self.tcp_challenge_ack(cx, id);
                return;
            }
            // Out-of-window: re-ACK; pure ACKs only at a bounded rate.
            if seg.payload.is_empty() && !f.contains(TcpFlags::FIN) {
                if t.timer
                    .last_oow_ack
                    .is_some_and(|l| now - l < OOW_ACK_INTERVAL)
                {
                    cx.sh.counters.tcp.oow_ack_limited += 1;
                    return;
                }
                t.timer.last_oow_ack = Some(now);
            }
            t.owed.ack = true;
            return;
        }

        // Second: RST (RFC 5961 §3.2: only an exact match resets).
        if f.contains(TcpFlags::RST) {
            if seg.seq_number != t.rcv.nxt {
                self.tcp_challenge_ack(cx, id);
                return;
            }
            self.tcp_reset_received(cx, id);
            return;
        }

        // Fourth: SYN in a synchronized state (RFC 5961 §4.2).
        if f.contains(TcpFlags::SYN) {
            cx.sh.counters.tcp.syn_challenge += 1;
            self.tcp_challenge_ack(cx, id);
            return;
        }

        // Fifth: ACK (RFC 9293 §3.10.7.4: without it, drop the segment).
        if !f.contains(TcpFlags::ACK) {
            cx.sh.counters.tcp.no_ack_drops += 1;
            return;
        }
        if state == State::SynReceived {
            if seg.ack_number.diff(t.snd.una) > 0 && seg.ack_number.diff(t.snd.max) <= 0 {
                if !self.tcp_established_from_syn_received(cx, id, seg) {
                    return;
                }
            } else {
                let (local, remote) = (t.local, t.remote);
                self.tcp_reset_reply(cx, local, remote, seg);
                return;
            }
        }
        let Some(t) = self.get_mut(id) else {
            return;
        };
        // RFC 5961 §5.2: acceptable if SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT.
        let lower = t.snd.una - (t.snd.max_wnd.min(1 << 30) as usize);
        if seg.ack_number.diff(t.snd.max) > 0 || seg.ack_number.diff(lower) < 0 {
            self.tcp_challenge_ack(cx, id);
            return;
        }
        t.timer.last_rcv = now;
        t.timer.probes_out = 0;
        if t.opts.keepalive {
            t.timer.keepalive = t.keepalive_deadline();
        }
        tcb_take_timestamp(t, now, seg.seq_number, seg.timestamp, seg.payload.len());
        self.tcp_ack(cx, id, seg);

        // Seventh: segment text.
        let Some(t) = self.get_mut(id) else {
            return;
        };
        let mut seq = seg.seq_number;
        let mut data = seg.payload;
        let mut fin = f.contains(TcpFlags::FIN);
        if seq.diff(t.rcv.nxt) < 0 {
            let skip = t.rcv.nxt.diff(seq) as usize;
            if skip >= data.len() {
                // All old data; a FIN at rcv_nxt - 1 is old too.
                let fin_seq = seq + data.len();
                fin = fin && fin_seq == t.rcv.nxt;
                data = &[];
            } else {
                data = &data[skip..];
            }
            seq = t.rcv.nxt;
        }
        let data_ok = matches!(
            t.state,
            State::Established | State::FinWait1 | State::FinWait2
        );
        if !data.is_empty()
            && data_ok
            && (t.socket.is_none() && t.listener.is_none()
                || (t.rcv.shut_rd && t.state != State::Established))
        {
            // Data for a closed socket: RST (Linux tcp_rcv_state_process).
            cx.sh.counters.tcp.abort_on_data += 1;
            self.tcp_abort(cx, id, None, true);
            return;
        }
        if seq != t.rcv.nxt {
            // Out of order (RFC 9293 §3.10.7.4 seventh): queue it past
            // RCV.NXT and ACK at once, with SACK blocks (RFC 2018 §4).
            if data_ok && !data.is_empty() {
                let n = t.ofo_insert(seq, data, cx.cfg.tcp.max_ofo_ranges);
                if n == 0 {
                    cx.sh.counters.tcp.ofo_drops += 1;
                } else {
                    cx.sh.counters.tcp.ofo_queued += 1;
                    if fin && n == data.len() {
                        t.rcv.ofo_fin = Some(seq + n);
                    }
                }
            } else if data_ok && fin {
                t.rcv.ofo_fin = Some(seq);
            }
            cx.sh.counters.tcp.quick_acks += 1;
            t.owed.ack = true;
            return;
        }
        if !data.is_empty() {
            if data_ok {
                let had_hole = !t.rcv.ofo.is_empty();
                let mut direct = 0;
                let n = t.take_in_order(data, &mut direct);
                cx.sh.counters.tcp.rx_direct_bytes += direct;
                if n < data.len() {
                    cx.sh.counters.tcp.rcv_pruned += 1;
                    t.owed.ack = true;
                    fin = false;
                }
                if t.rcv.ofo_fin == Some(t.rcv.nxt) {
                    fin = true;
                    t.rcv.ofo_fin = None;
                }
                if had_hole {
                    // Filling a hole is ACKed at once (RFC 9293 §3.8.6.3).
                    cx.sh.counters.tcp.quick_acks += 1;
                    t.owed.ack = true;
                } else if n > 0 && t.on_data_received(now, n, &cx.cfg.tcp) {
                    cx.sh.counters.tcp.quick_acks += 1;
                }
                if t.owed.ack {
                    t.timer.delack = None;
                }
                if n > 0 {
                    self.tcp_notify(cx, id);
                }
            } else {
                // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer sent FIN; ignore.
                fin = false;
            }
        }

        // Eighth: FIN.
        let Some(t) = self.get_mut(id) else {
            return;
        };
        if fin && !t.rcv.fin_received {
            t.rcv.nxt += 1;
            t.rcv.fin_received = true;
            t.owed.ack = true;
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
                self.tcp_set_state(cx, id, s);
            }
            self.tcp_notify(cx, id);
        } else if fin && t.state == State::TimeWait {
            t.owed.ack = true;
            t.timer.linger = Some(now + cx.cfg.tcp.time_wait);
        }
    }

    /// TIME-WAIT: a new SYN may reopen it (RFC 6191 §2, [`syn_reopens_time_wait`]);
    /// a retransmitted FIN is ACKed and restarts 2MSL (RFC 9293
    /// §3.10.7.4). True if handled.
    fn tcp_time_wait_special(&mut self, cx: &mut Cx<'_>, id: TcbId, seg: &TcpRepr) -> bool {
        let now = cx.now;
        let f = seg.flags;
        let Some(t) = self.get(id) else {
            return true;
        };
        let (local, remote, rcv_nxt) = (t.local, t.remote, t.rcv.nxt);
        let prev_ts = t.neg.ts.then_some(t.neg.ts_recent);
        if f.contains(TcpFlags::SYN) && !f.intersects(TcpFlags::RST | TcpFlags::ACK) {
            let new_ts = seg.timestamp.filter(|_| cx.cfg.tcp.timestamps);
            let seq_newer = seg.seq_number.diff(rcv_nxt) > 0;
            if !syn_reopens_time_wait(prev_ts, new_ts.map(|t| t.tsval), seq_newer) {
                // Not newer: an old duplicate; TIME-WAIT answers it as
                // any unacceptable segment (an ACK).
                cx.sh.counters.tcp.time_wait_old_syns += 1;
                return false;
            }
            if let Some(lh) = self.tcp_find_listener(local, remote) {
                cx.sh.counters.tcp.time_wait_recycled += 1;
                self.tcp_free(cx, id);
                self.tcp_listen_input(cx, lh, local, remote, seg);
                return true;
            }
        }
        if f.contains(TcpFlags::FIN)
            && !f.contains(TcpFlags::RST)
            && (seg.seq_number + seg.segment_len()) == rcv_nxt
        {
            if let Some(t) = self.get_mut(id) {
                t.owed.ack = true;
                t.timer.linger = Some(now + cx.cfg.tcp.time_wait);
            }
            return true;
        }
        false
    }

    /// SYN-RECEIVED + acceptable ACK: ESTABLISHED, into the accept queue if
    /// passive. False if the segment must be dropped (accept queue full).
    fn tcp_established_from_syn_received(
        &mut self,
        cx: &mut Cx<'_>,
        id: TcbId,
        seg: &TcpRepr,
    ) -> bool {
        let Some(t) = self.get(id) else {
            return false;
        };
        if let Some(lh) = t.listener {
            if self.listener_mut(lh).is_none() {
                // The listener was closed while this was half-open.
                self.tcp_abort(cx, id, None, true);
                return false;
            }
            if self.accept_full(lh) {
                cx.sh.counters.tcp.listen_overflows += 1;
                cx.sh.counters.tcp.listen_drops += 1;
                if cx.cfg.tcp.abort_on_overflow {
                    self.tcp_abort(cx, id, None, true);
                } else {
                    cx.sh.counters.tcp.ack_dropped_overflow += 1;
                }
                return false;
            }
            cx.sh.counters.tcp.passive_opens += 1;
            if let Some(l) = self.listener_mut(lh) {
                l.syn_count = l.syn_count.saturating_sub(1);
                l.accept.push_back(id);
            }
            cx.sh.handles.mark_changed(lh);
        }
        let Some(t) = self.get_mut(id) else {
            return false;
        };
        t.in_accept_queue = t.listener.is_some();
        t.owed.syn = false;
        let wnd = u32::from(seg.window_len) << t.snd.wscale;
        self.tcp_handshake_done(cx, id, seg, wnd);
        true
    }

    /// The handshake's last step, either way it completes (RFC 9293
    /// §3.10.7.3 for SYN-SENT, §3.10.7.4 for SYN-RECEIVED): SND.UNA and
    /// the window from the ACK, an RTT sample from the SYN (RFC 6298 §3,
    /// not if it was retransmitted), the timer stopped, then ESTABLISHED,
    /// and on to FIN-WAIT-1 if the user has already closed.
    fn tcp_handshake_done(&mut self, cx: &mut Cx<'_>, id: TcbId, seg: &TcpRepr, wnd: u32) {
        let now = cx.now;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        t.snd.una = seg.ack_number;
        if t.snd.nxt.diff(t.snd.una) < 0 {
            t.snd.nxt = t.snd.una;
        }
        t.snd.wnd = wnd;
        t.snd.max_wnd = t.snd.max_wnd.max(t.snd.wnd);
        t.snd.wl1 = seg.seq_number;
        t.snd.wl2 = seg.ack_number;
        if let Some((_, sent)) = t.rtt.timing.take() {
            t.rtt
                .sample(now - sent, cx.cfg.tcp.rto_min, cx.cfg.tcp.rto_max);
            if cx.cfg.trace {
                t.trace_rtt(cx, now - sent);
            }
        }
        t.timer.rexmit = None;
        t.timer.backoff = 0;
        t.timer.retries = 0;
        t.timer.last_rcv = now;
        let fin = t.snd.fin_queued;
        self.tcp_set_state(cx, id, State::Established);
        if fin {
            self.tcp_set_state(cx, id, State::FinWait1);
        }
    }

    /// An acceptable RST (RFC 9293 §3.10.7.4, second check).
    fn tcp_reset_received(&mut self, cx: &mut Cx<'_>, id: TcbId) {
        let Some(t) = self.get(id) else { return };
        debug!(local = %t.local, remote = %t.remote, state = %t.state, "tcp RST received");
        cx.event(EventKind::TcpReset {
            local: t.local,
            remote: t.remote,
            socket: t.socket,
        });
        match t.state {
            State::SynReceived if t.listener.is_some() => self.tcp_free(cx, id),
            State::SynReceived => {
                cx.sh.counters.tcp.attempt_fails += 1;
                self.tcp_abort(cx, id, Some(Errno::ECONNREFUSED), false);
            }
            State::Established | State::CloseWait => {
                cx.sh.counters.tcp.estab_resets += 1;
                self.tcp_abort(cx, id, Some(Errno::ECONNRESET), false);
            }
            State::FinWait1 | State::FinWait2 => {
                self.tcp_abort(cx, id, Some(Errno::ECONNRESET), false);
            }
            _ => self.tcp_free(cx, id),
        }
    }

    /// ACK processing for a synchronized connection (RFC 9293 §3.10.7.4,
    /// fifth check; RTT per RFC 6298), with the SACK scoreboard, fast
    /// retransmit and recovery (RFC 5681 §3.2, RFC 6582, RFC 6675).
    fn tcp_ack(&mut self, cx: &mut Cx<'_>, id: TcbId, seg: &TcpRepr) {
        let now = cx.now;
        let cfg = &cx.cfg.tcp;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        let ack = seg.ack_number;
        let mss = u32::from(t.snd.mss);
        let mut progressed = false;
        let mut new_sack = 0;
        let tsecr = seg
            .timestamp
            .filter(|ts| t.neg.ts && ts.tsecr != 0)
            .map(|ts| ts.tsecr);
        let ts_offset = t.neg.ts_offset;
        if let Some(r) = t.cong.rack.as_deref_mut() {
            r.begin_ack(now.total_micros(), tsecr, ts_offset);
        }
        let una_before = t.snd.una;
        let sacked_before = if t.cong.paced.is_some() {
            t.sacked_bytes()
        } else {
            0
        };
        if t.neg.sack && seg.sack_ranges[0].is_some() {
            let (blocks, bytes) = t.take_sack(&seg.sack_ranges, super::data::MAX_SACKED_SPANS);
            cx.sh.counters.tcp.sack_blocks_recv += u64::from(blocks);
            new_sack = bytes;
        }
        let wnd = u32::from(seg.window_len) << t.snd.wscale;
        // RFC 7661 §4.1 (as Linux `tcp_is_cwnd_limited`): cwnd grows only
        // while it limits the sender, or it would swell without bound on
        // an application- or receiver-limited flow. Judged per flight, not
        // per ACK (Linux `is_cwnd_limited` until `cwnd_usage_seq`): ACKs
        // taken in one batch before anything is sent each see the flight
        // shrunk by the ones before, yet all ACK data sent while cwnd was full.
        let cwnd = t.cong.cc.window();
        let traced = cx.cfg.trace.then(|| (cwnd, t.cong.cc.ssthresh()));
        let flight_before = t.flight();
        let full_now = if cwnd < t.cong.cc.ssthresh() {
            flight_before.saturating_mul(2) >= cwnd
        } else {
            flight_before.saturating_add(mss) >= cwnd
        };
        let cwnd_limited = full_now || ack.diff(t.cong.cwnd_full_until) <= 0;
        if full_now {
            t.cong.cwnd_full_until = t.snd.max;
        } else if t.snd.una.diff(t.cong.cwnd_full_until) > 0 {
            // Kept within a window of SND.UNA, so it never wraps ahead.
            t.cong.cwnd_full_until = t.snd.una;
        }
        if ack.diff(t.snd.una) > 0 {
            let data_acked = (ack.diff(t.snd.q_front).max(0) as usize).min(t.snd.q.len());
            let acked = ack.diff(t.snd.una) as u32;
            t.snd.q.consume(data_acked);
            t.snd.q_front += data_acked;
            t.snd.una = ack;
            if t.snd.nxt.diff(ack) < 0 {
                t.snd.nxt = ack;
            }
            if t.cong.high_rxt.diff(ack) < 0 {
                t.cong.high_rxt = ack;
            }
            t.trim_sacked();
            if let Some(r) = t.cong.rack.as_deref_mut() {
                r.on_cum_ack(ack);
            }
            // An RTT sample for HyStart++: the timed segment's, else the
            // timestamp echo's (RFC 7323 §4, in ms).
            let mut rtt_now = tsecr
                .map(|e| {
                    (now.total_millis() as u32)
                        .wrapping_add(ts_offset)
                        .wrapping_sub(e)
                })
                .filter(|&ms| ms < 60_000)
                .map(|ms| Duration::from_millis(u64::from(ms)));
            if let Some((timed, sent)) = t.rtt.timing {
                if ack.diff(timed) > 0 {
                    rtt_now = Some(now - sent);
                    t.rtt.sample(now - sent, cfg.rto_min, cfg.rto_max);
                    t.rtt.timing = None;
                    if traced.is_some() {
                        t.trace_rtt(cx, now - sent);
                    }
                }
            }
            t.timer.backoff = 0;
            t.timer.retries = 0;
            t.owed.force_probe = false;
            t.cong.dupacks = 0;
            if t.cong.ca == CaState::Open {
                t.cong.cc.on_ack_rtt(now, ack, t.snd.nxt, rtt_now);
            }
            match t.cong.ca {
                CaState::Recovery if ack.diff(t.cong.recover) >= 0 => {
                    // Full ACK: recovery is over (RFC 6582 §3.2 step 3).
                    t.cong.cc.on_recovery_end(now);
                    t.cong.ca = CaState::Open;
                    t.cong.rtx_now = false;
                    if t.cong.rec_sack {
                        cx.sh.counters.tcp.sack_recovery += 1;
                    } else {
                        cx.sh.counters.tcp.reno_recovery += 1;
                    }
                }
                CaState::Recovery => {
                    // Partial ACK: the next hole is lost too (RFC 6582 §3.2
                    // step 4); with SACK the scoreboard drives instead.
                    cx.sh.counters.tcp.partial_acks += 1;
                    if !t.cong.rec_sack {
                        t.cong.rtx_now = true;
                        t.cong.rec_cwnd = t.cong.rec_cwnd.saturating_sub(acked);
                        if acked >= mss {
                            t.cong.rec_cwnd += mss;
                        }
                        t.cong.rec_cwnd = t.cong.rec_cwnd.max(mss);
                    }
                }
                CaState::Loss if ack.diff(t.cong.recover) >= 0 => {
                    t.cong.ca = CaState::Open;
                    t.cong.cc.on_loss_end(now);
                    if cwnd_limited {
                        t.cong.cc.on_ack(now, acked, mss, t.rtt.srtt());
                    }
                }
                _ if cwnd_limited => t.cong.cc.on_ack(now, acked, mss, t.rtt.srtt()),
                _ => {}
            }
            t.snd_space_adjust(cfg);
            t.timer.una_since = now;
            t.timer.rexmit = if t.snd.una == t.snd.max {
                None
            } else {
                Some(t.rto_deadline(now, cfg))
            };
            t.cong.tlp_out = false;
            t.arm_tlp(now, cfg);
            progressed = true;
        } else if wnd == 0 && ack == t.snd.una {
            // The peer answers our window probes: it is alive (Linux
            // resets icsk_probes_out on any ACK).
            t.timer.retries = 0;
        } else if ack == t.snd.una
            && t.snd.una != t.snd.max
            && seg.payload.is_empty()
            && !seg.flags.intersects(TcpFlags::SYN | TcpFlags::FIN)
            && (wnd == t.snd.wnd || new_sack > 0)
        {
            // A duplicate ACK (RFC 5681 §2).
            t.cong.dupacks += 1;
            cx.sh.counters.tcp.dup_acks_recv += 1;
            if t.cong.ca == CaState::Recovery && !t.cong.rec_sack {
                // NewReno: each duplicate means a segment left the network.
                t.cong.rec_cwnd = t.cong.rec_cwnd.saturating_add(mss);
            }
        }
        // RACK (RFC 8985 §6.2): what this ACK delivered, then loss by time.
        let mut lost = 0;
        if t.cong.rack.is_some() {
            let d = t.rack_on_ack(now);
            lost = d.lost;
            cx.sh.counters.tcp.rack_lost += u64::from(d.lost);
            cx.sh.counters.tcp.lost_retransmits += u64::from(d.lost_rtx);
        }
        // Fast retransmit (RFC 5681 §3.2; RFC 6675 §5: DupThresh duplicate
        // ACKs, or IsLost(SND.UNA) from the scoreboard; or a segment RACK
        // judged lost).
        // Without RACK: a SACK for the tail loss probe, sent two RTTs after
        // what is still missing, means that is lost (RACK's rule for the
        // probe alone); NewReno-style recovery then repairs each hole.
        let tlp_loss = t.cong.rack.is_none() && t.cong.tlp_out && new_sack > 0;
        if t.cong.ca == CaState::Open
            && t.snd.una != t.snd.max
            && (t.cong.dupacks >= t.dup_thresh() || t.una_lost() || tlp_loss || t.rack_lost())
        {
            t.cong.trigger = if t.cong.dupacks >= t.dup_thresh() || t.una_lost() {
                RetransmitCause::FastRetransmit
            } else if tlp_loss {
                RetransmitCause::Tlp
            } else {
                RetransmitCause::Rack
            };
            t.enter_recovery(now);
            cx.sh.counters.tcp.fast_retrans += 1;
            debug!(local = %t.local, remote = %t.remote, cwnd = t.cong.cc.window(), "tcp fast retransmit");
        }
        if new_sack > 0 && t.detect_lost_retransmits() {
            cx.sh.counters.tcp.lost_retransmits += 1;
        }
        t.rate_on_ack(now, una_before, sacked_before, &seg.sack_ranges, lost);
        // ECE (RFC 3168 §6.1.2): a loss's reduction, once per window, not
        // while recovery already reduced it.
        if seg.flags.contains(TcpFlags::ECE)
            && t.cong.ca == CaState::Open
            && t.neg.ecn.on_ece(t.snd.una, t.snd.max)
        {
            let flight = t.flight();
            t.cong.cc.on_ecn(now, flight, mss);
            cx.sh.counters.tcp.ecn_reductions += 1;
        }
        // Window update (RFC 9293 §3.10.7.4: SND.WL1/SND.WL2 rule).
        if t.snd.wl1.diff(seg.seq_number) < 0
            || (t.snd.wl1 == seg.seq_number && t.snd.wl2.diff(ack) <= 0)
        {
            if wnd > t.snd.wnd {
                t.owed.force_probe = false;
            }
            if t.snd.wnd == 0 && wnd > 0 && ack == t.snd.una && t.snd.nxt != t.snd.una {
                // The window opened without taking our probe: send from
                // SND.UNA now rather than wait for the RTO.
                t.snd.nxt = t.snd.una;
                t.timer.rexmit = Some(t.rto_deadline(now, cfg));
            }
            if traced.is_some() && wnd != t.snd.wnd {
                t.trace_window(cx, wnd);
            }
            t.snd.wnd = wnd;
            t.snd.max_wnd = t.snd.max_wnd.max(wnd);
            t.snd.wl1 = seg.seq_number;
            t.snd.wl2 = ack;
        }
        if let Some(before) = traced {
            if before != (t.cong.cc.window(), t.cong.cc.ssthresh()) {
                t.trace(cx, Tcb::cwnd_event);
            }
        }
        t.maybe_arm_persist(now, cfg);
        let fin_acked = t.fin_acked();
        let state = t.state;
        // Freed space wakes writers only if one found the buffer full, as
        // Linux's SOCK_NOSPACE: no spurious EPOLLOUT edges on every ACK.
        if progressed && t.snd.nospace && t.snd.q.free() >= t.snd.q.len() / 2 {
            t.snd.nospace = false;
            self.tcp_notify(cx, id);
        } else if t.snd.q.has_done() {
            // A lent buffer is all ACKed: its owner is told.
            self.tcp_notify(cx, id);
        }
        if fin_acked {
            match state {
                State::FinWait1 => self.tcp_set_state(cx, id, State::FinWait2),
                State::Closing => self.tcp_set_state(cx, id, State::TimeWait),
                State::LastAck => self.tcp_free(cx, id),
                _ => {}
            }
        }
    }

    /// An ICMP error about a segment we sent (RFC 1122 §4.2.3.9): net and
    /// host unreachable are soft errors, kept and reported only if the
    /// connection then times out; port or protocol unreachable during the
    /// handshake abort it (ECONNREFUSED, as Linux). Fragmentation needed is
    /// path MTU discovery's (`pmtu.rs`).
    pub(crate) fn tcp_icmp_error(
        &mut self,
        cx: &mut Cx<'_>,
        local: SocketAddr,
        remote: SocketAddr,
        err: Errno,
    ) {
        let Some(id) = self.find(local, remote) else {
            return;
        };
        let Some(t) = self.get_mut(id) else {
            return;
        };
        match err {
            Errno::EMSGSIZE => {}
            Errno::ECONNREFUSED if t.state == State::SynSent => {
                cx.sh.counters.tcp.attempt_fails += 1;
                self.tcp_abort(cx, id, Some(err), false);
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
    if !t.neg.ts {
        return;
    }
    if let Some(ts) = timestamp {
        // RFC 7323 §4.3: TS.Recent from the segment our next ACK
        // covers first (SEG.SEQ <= Last.ACK.sent).
        if seq.diff(t.rcv.last_ack_sent) <= 0
            && (ts.tsval.wrapping_sub(t.neg.ts_recent) as i32) >= 0
        {
            t.neg.ts_recent = ts.tsval;
        }
        // The receiver's RTT (for autotuning) from the echo of our
        // clock on data-bearing segments.
        if ts.tsecr != 0 && payload_len > 0 {
            let ours = (now.total_millis() as u32).wrapping_add(t.neg.ts_offset);
            let ms = ours.wrapping_sub(ts.tsecr);
            if ms < 60_000 {
                let us = (ms.max(1)) * 1000;
                t.rcv.rtt_us = if t.rcv.rtt_us == 0 {
                    us
                } else {
                    (t.rcv.rtt_us * 7 + us) / 8
                };
            }
        }
    }
}

/// Takes the peer's SYN: IRS, options (RFC 7323 §1.3, RFC 2018 §2), MSS.
fn tcb_take_syn(t: &mut Tcb, seg: &TcpRepr, cfg: &crate::config::TcpConfig) {
    t.rcv.irs = seg.seq_number;
    t.rcv.nxt = seg.seq_number + 1;
    t.rcv.last_ack_sent = t.rcv.nxt;
    // Window scaling only if both sides sent the option.
    match seg.window_scale.filter(|_| cfg.window_scaling) {
        Some(s) => {
            t.neg.ws = true;
            t.snd.wscale = s;
        }
        None => {
            t.neg.ws = false;
            t.snd.wscale = 0;
            t.rcv.wscale = 0;
        }
    }
    t.neg.sack = seg.sack_permitted && cfg.sack;
    t.neg.ts = seg.timestamp.is_some() && cfg.timestamps;
    t.neg.ecn.ok = super::ecn::Ecn::negotiate(
        cfg.ecn,
        t.state == State::SynSent,
        seg.flags.contains(TcpFlags::ECE),
        seg.flags.contains(TcpFlags::CWR),
    );
    if let Some(ts) = seg.timestamp.filter(|_| t.neg.ts) {
        t.neg.ts_recent = ts.tsval;
    }
    // A tiny announced MSS is raised to 48 (Linux `tcp_min_snd_mss`), so a
    // peer cannot make us cut the stream into 1-byte segments.
    let peer = seg.max_seg_size.unwrap_or(536).max(MIN_SND_MSS);
    let ts_len = if t.neg.ts { 12 } else { 0 };
    t.snd.mss = peer.min(t.rcv.mss).saturating_sub(ts_len).max(8);
    t.cong.cc = super::controllers::new_controller(
        t.opts.congestion,
        u32::from(t.snd.mss),
        cfg.initial_window,
        cfg.hystart,
    );
    t.rcv.seg_max = t.snd.mss.min(536);
    let wnd = t.rcv_space().min(65535 << t.rcv.wscale);
    t.rcv.adv = t.rcv.nxt + wnd;
}

/// RFC 6191 §2: whether a SYN may end a TIME-WAIT and open a new
/// incarnation. `prev_ts`: TS.Recent if the old one used timestamps;
/// `new_ts`: the SYN's TSval if the new one would use them; `seq_newer`:
/// the SYN's sequence number is above the old RCV.NXT.
pub(crate) fn syn_reopens_time_wait(
    prev_ts: Option<u32>,
    new_ts: Option<u32>,
    seq_newer: bool,
) -> bool {
    match (prev_ts, new_ts) {
        (Some(recent), Some(tsval)) => {
            let d = tsval.wrapping_sub(recent) as i32;
            d > 0 || (d == 0 && seq_newer)
        }
        (None, Some(_)) => true,
        (_, None) => seq_newer,
    }
}

/// What the caller of header prediction would do next, with the TCB in
/// hand: its timers, its place on the ready list, its socket's readiness
/// (`data`: bytes were taken). Only the delayed-ACK, retransmission and
/// keepalive timers can have moved; the heap needs an entry only if one
/// of them now comes before the one it holds. Returns whether a corked
/// TCB may need its hold armed (`Tcp::arm_cork`).
#[inline(always)]
fn fast_tail_of(
    cx: &mut Cx<'_>,
    id: TcbId,
    t: &mut Tcb,
    queues: &mut super::table::Queues<'_>,
    data: bool,
) -> bool {
    let sched = t.timer.sched;
    let earlier = |d: Option<Instant>| d.is_some_and(|d| sched.is_none_or(|s| d < s));
    if earlier(t.timer.delack) || earlier(t.timer.rexmit) || earlier(t.timer.keepalive) {
        queues.arm(id, t);
    }
    let corked = !queues.schedule(id, t) && t.opts.cork;
    let owner = if data { t.socket.or(t.listener) } else { None };
    if let Some(h) = owner {
        cx.sh.handles.mark_changed(h);
    }
    corked
}
