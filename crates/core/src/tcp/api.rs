//! The socket calls on [`Tcp`] (errno semantics after POSIX and Linux); `Stack` forwards its `tcp_*` calls here.

use super::options::TcpOptions;
use super::state::State;
use super::table::{Kind, Listener, Own, Tcp, TcpSocket};
use super::tcb::{Tcb, TcbId};

use crate::config::StackConfig;
use crate::cx::Cx;
use crate::errno::{Errno, Result};
use crate::event::EventKind;
use crate::ipv4::output::is_broadcast;
use crate::socket::{Proto, Readiness, SocketHandle};
use crate::time::{Duration, Instant};
use core::fmt;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use tracing::debug;
use ustack_wire::Ipv4Addr;

/// Which direction(s) `tcp_shutdown` closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    Read,
    Write,
    Both,
}

/// A `TCP_INFO`-like record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpInfo {
    pub state: State,
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
    pub rtt: Duration,
    pub rttvar: Duration,
    pub rto: Duration,
    /// Consecutive timeouts without progress.
    pub retransmits: u32,
    pub total_retrans: u64,
    pub backoff: u32,
    pub probes: u32,
    pub snd_mss: u16,
    pub rcv_mss: u16,
    pub snd_wnd: u32,
    pub rcv_wnd: u32,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub timestamps: bool,
    pub sack: bool,
    /// Congestion window and slow-start threshold in bytes.
    pub cwnd: u32,
    pub ssthresh: u32,
    /// The congestion controller's name (`cubic`, `newreno`).
    pub congestion: &'static str,
    /// Loss-recovery state as Linux names it: Open, Disorder, Recovery, Loss.
    pub ca_state: &'static str,
    /// Bytes the peer has SACKed above SND.UNA, and bytes judged lost.
    pub sacked: u32,
    pub lost: u32,
    /// Bytes held in the out-of-order queue.
    pub ofo_bytes: u32,
    /// Our receive buffer and send buffer limits now (after autotuning).
    pub rcvbuf: usize,
    pub sndbuf: usize,
    /// Bytes (plus SYN/FIN) sent and not acknowledged.
    pub unacked: u32,
    /// Bytes in the send buffer, and in the receive buffer (for a
    /// listener: the accept queue length and the backlog, as `ss` shows).
    pub send_queue: usize,
    pub recv_queue: usize,
    /// The rate data is paced at (bytes/s; 0 when not paced), and the
    /// congestion control's bandwidth estimate and state, if it has them
    /// (Linux `tcpi_pacing_rate`, `tcp_bbr_info`).
    pub pacing_rate: u64,
    pub cc_bw: u64,
    pub cc_mode: &'static str,
}

/// One line of an `ss`-like table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRow {
    /// `None` for an orphaned TCB (closed by the user, still finishing) or
    /// a connection not yet accepted.
    pub handle: Option<SocketHandle>,
    pub state: State,
    pub local: SocketAddr,
    pub remote: Option<SocketAddr>,
    pub recv_q: usize,
    pub send_q: usize,
    /// The next timer: its kind (`on`, `keepalive`, `timewait`) and time left.
    pub timer: Option<(&'static str, Duration)>,
}

impl SocketRow {
    /// Column titles matching the `Display` of a row.
    pub const HEADER: &'static str =
        "State       Recv-Q Send-Q Local Address:Port    Peer Address:Port";
}

impl fmt::Display for SocketRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let remote = self
            .remote
            .map_or_else(|| "*:*".to_string(), |r| r.to_string());
        let mut line = format!(
            "{:<11} {:>6} {:>6} {:<21} {:<21}",
            self.state.ss_name(),
            self.recv_q,
            self.send_q,
            self.local,
            remote
        );
        if let Some((kind, left)) = self.timer {
            line.push_str(&format!(" timer:({kind},{:.3}s)", left.as_secs_f64()));
        }
        f.write_str(line.trim_end())
    }
}

impl Tcp {
    fn tcp_sock(&self, h: SocketHandle) -> Result<&TcpSocket> {
        match self.socks.get(h) {
            Some(s) => Ok(s),
            None => Err(Errno::EBADF),
        }
    }

    fn tcp_sock_mut(&mut self, h: SocketHandle) -> Result<&mut TcpSocket> {
        match self.socks.get_mut(h) {
            Some(s) => Ok(s),
            None => Err(Errno::EBADF),
        }
    }

    fn tcp_conn(&self, h: SocketHandle) -> Result<Option<TcbId>> {
        Ok(match self.tcp_sock(h)?.kind {
            Kind::Conn(id) => Some(id),
            _ => None,
        })
    }

    /// Opens an unbound TCP socket.
    pub fn tcp_open(&mut self, cx: &mut Cx<'_>) -> SocketHandle {
        let s = TcpSocket {
            kind: Kind::Closed {
                was_connected: false,
            },
            error: None,
            in_ports: false,
            bound_any: false,
            own: Some(Own::new(None, TcpOptions::new(&cx.cfg.tcp))),
        };
        let h = cx.sh.handles.insert(Proto::Tcp);
        self.socks.insert(h, s);
        h
    }

    /// Whether binding `ip:port` with the socket's options clashes
    /// (EADDRINUSE); SO_REUSEADDR passes TIME_WAIT connections and
    /// non-listening SO_REUSEADDR sockets, SO_REUSEPORT passes other
    /// SO_REUSEPORT sockets.
    fn tcp_bind_conflict(&self, h: SocketHandle, ip: IpAddr, port: u16, o: &TcpOptions) -> bool {
        let Some(pu) = self.bind_ports.get(&port) else {
            return false;
        };
        for &other in &pu.sockets {
            if other == h {
                continue;
            }
            let Some(s) = self.socks.get(other) else {
                continue;
            };
            let Some(l) = self.sock_local(s) else {
                continue;
            };
            let so = self.sock_opts(s);
            if !crate::addr::overlap(l.ip(), so.v6only, ip, o.v6only) {
                continue;
            }
            if o.reuseport && so.reuseport {
                continue;
            }
            if o.reuseaddr && so.reuseaddr && !matches!(s.kind, Kind::Listen(_)) {
                continue;
            }
            return true;
        }
        pu.live_conflicts(o.reuseaddr, o.reuseport) > 0 || (pu.time_wait > 0 && !o.reuseaddr)
    }

    /// Binds to `addr` (port 0: an ephemeral port, RFC 6056). EINVAL if
    /// already bound, EADDRNOTAVAIL for an address not ours, EADDRINUSE on
    /// a clash.
    pub fn tcp_bind(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        addr: SocketAddr,
    ) -> Result<SocketAddr> {
        let s = self.tcp_sock(h)?;
        if self.sock_local(s).is_some() || !matches!(s.kind, Kind::Closed { .. }) {
            return Err(Errno::EINVAL);
        }
        let ip = addr.ip();
        if !ip.is_unspecified() && !crate::addr::is_local(cx.cfg, ip) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let opts = self.sock_opts(s).clone();
        let port = if addr.port() == 0 {
            let ports = &self.bind_ports;
            cx.sh
                .ports
                .pick(&mut cx.sh.rng, |p| ports.contains_key(&p))?
        } else {
            if self.tcp_bind_conflict(h, ip, addr.port(), &opts) {
                return Err(Errno::EADDRINUSE);
            }
            addr.port()
        };
        let local = SocketAddr::new(ip, port);
        let s = self.tcp_sock_mut(h)?;
        let own = s.own.as_deref_mut().ok_or(Errno::EINVAL)?;
        own.local = Some(local);
        s.in_ports = true;
        self.port_use(port).sockets.push(h);
        Ok(local)
    }

    /// Starts listening. The accept queue holds at most `backlog`
    /// connections (clamped to 1..=somaxconn); the SYN queue at most
    /// min(backlog, max_syn_backlog) half-open ones. An unbound socket gets
    /// an ephemeral port; calling again changes the backlog.
    pub fn tcp_listen(&mut self, cx: &mut Cx<'_>, h: SocketHandle, backlog: usize) -> Result<()> {
        let backlog = backlog.clamp(1, cx.cfg.tcp.somaxconn.max(1));
        let s = self.tcp_sock(h)?;
        match &s.kind {
            Kind::Conn(_) => return Err(Errno::EINVAL),
            Kind::Listen(_) => {
                if let Kind::Listen(l) = &mut self.tcp_sock_mut(h)?.kind {
                    l.backlog = backlog;
                }
                return Ok(());
            }
            Kind::Closed {
                was_connected: true,
            } => return Err(Errno::EINVAL),
            Kind::Closed { .. } => {}
        }
        if self.sock_local(s).is_none() {
            self.tcp_bind(cx, h, SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))?;
        }
        let s = self.tcp_sock(h)?;
        let local = self.sock_local(s).ok_or(Errno::EINVAL)?;
        // Linux re-checks at listen: two listeners on one port need SO_REUSEPORT.
        let so = self.sock_opts(s);
        if let Some(list) = self.listeners.get(&local.port()) {
            for &o in list {
                if let Some(os) = self.socks.get(o) {
                    let oo = self.sock_opts(os);
                    let overlap = self.sock_local(os).is_none_or(|l| {
                        crate::addr::overlap(l.ip(), oo.v6only, local.ip(), so.v6only)
                    });
                    if overlap && !(so.reuseport && oo.reuseport) {
                        return Err(Errno::EADDRINUSE);
                    }
                }
            }
        }
        self.tcp_sock_mut(h)?.kind = Kind::Listen(Box::new(Listener {
            backlog,
            syn_count: 0,
            accept: VecDeque::new(),
            cookies_since: None,
            pending: VecDeque::new(),
        }));
        self.listeners.entry(local.port()).or_default().push(h);
        debug!(%local, from = %State::Closed, to = %State::Listen, backlog, "tcp state");
        cx.event(EventKind::TcpState {
            local,
            remote: None,
            from: State::Closed,
            to: State::Listen,
        });
        Ok(())
    }

    /// Takes the oldest completed connection: its new handle and the peer.
    /// EAGAIN when none is waiting, EINVAL if not listening.
    pub fn tcp_accept(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
    ) -> Result<(SocketHandle, SocketAddr)> {
        let s = self.tcp_sock_mut(h)?;
        let Kind::Listen(l) = &mut s.kind else {
            return Err(Errno::EINVAL);
        };
        let id = l.accept.pop_front().ok_or(Errno::EAGAIN)?;
        cx.sh.handles.mark_changed(h);
        let t = self.get_mut(id).ok_or(Errno::EAGAIN)?;
        t.listener = None;
        t.in_accept_queue = false;
        let sock = TcpSocket::connected(id);
        let remote = t.remote;
        let nh = cx.sh.handles.insert(Proto::Tcp);
        self.socks.insert(nh, sock);
        if let Some(t) = self.get_mut(id) {
            t.socket = Some(nh);
        }
        cx.sh.handles.mark_changed(nh);
        Ok((nh, remote))
    }

    /// Starts an active open (RFC 9293 §3.10.1) and returns EINPROGRESS, like
    /// a non-blocking `connect`: the outcome shows as writable readiness, and
    /// `take_error` then gives `None`, ECONNREFUSED or ETIMEDOUT. EALREADY
    /// while in progress, EISCONN once connected.
    pub fn tcp_connect(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        remote: SocketAddr,
    ) -> Result<()> {
        let now = cx.now;
        let s = self.tcp_sock(h)?;
        match &s.kind {
            Kind::Conn(id) => {
                return match self.get(*id).map(|t| t.state) {
                    Some(State::SynSent | State::SynReceived) => Err(Errno::EALREADY),
                    _ => Err(Errno::EISCONN),
                };
            }
            Kind::Listen(_) => return Err(Errno::EISCONN),
            Kind::Closed { .. } => {}
        }
        let rip = remote.ip();
        if remote.port() == 0 || rip.is_unspecified() {
            return Err(Errno::EINVAL);
        }
        if let IpAddr::V4(rip) = rip {
            if rip.is_broadcast() || rip.is_multicast() || is_broadcast(cx.cfg, rip) {
                return Err(Errno::ENETUNREACH);
            }
        }
        crate::addr::check_route(cx.cfg, rip)?;
        let bound = self.sock_local(s);
        let opts = self.sock_opts(s).clone();
        let ip = match bound {
            Some(l) if !l.ip().is_unspecified() && l.is_ipv4() == remote.is_ipv4() => l.ip(),
            _ => crate::addr::source_for(cx.cfg, rip),
        };
        // tcp_tw_reuse: (on, TIME_WAIT's length, now).
        let reuse = (cx.cfg.tcp.tw_reuse, cx.cfg.tcp.time_wait, now);
        let port = match bound {
            Some(l) => {
                let local = SocketAddr::new(ip, l.port());
                if self.has_conn(local, remote) && self.tw_reusable(reuse, local, remote).is_none()
                {
                    return Err(Errno::EADDRNOTAVAIL);
                }
                l.port()
            }
            None => {
                // RFC 6056 §3.3.1, never a 4-tuple in use (nor a bound
                // port), unless a TIME_WAIT that may be reused.
                let tcp = &*self;
                cx.sh
                    .ports
                    .pick_flow(&mut cx.sh.rng, ip, remote, |p| {
                        let local = SocketAddr::new(ip, p);
                        tcp.bind_ports
                            .get(&p)
                            .is_some_and(|u| !u.sockets.is_empty())
                            || (tcp.has_conn(local, remote)
                                && tcp.tw_reusable(reuse, local, remote).is_none())
                    })
                    .map_err(|_| Errno::EADDRNOTAVAIL)?
            }
        };
        let local = SocketAddr::new(ip, port);
        if let Some(old) = self.tw_reusable(reuse, local, remote) {
            cx.sh.counters.tcp.time_wait_reused += 1;
            self.tcp_free(cx, old);
        }
        let iss = self.secret.isn(local, remote, now);
        let ts_offset = self.secret.ts_offset(local, remote);
        let mut tcb = self.tcp_create(cx, State::SynSent, local, remote, iss, ts_offset, opts);
        tcb.socket = Some(h);
        tcb.owed.syn = true;
        let id = self.tcp_insert(tcb);
        let s = self.tcp_sock_mut(h)?;
        let was_in_ports = std::mem::take(&mut s.in_ports);
        s.error = None;
        self.attach(h, id, local);
        if was_in_ports {
            if let Some(pu) = self.bind_ports.get_mut(&port) {
                pu.sockets.retain(|x| *x != h);
            }
        }
        cx.sh.counters.tcp.active_opens += 1;
        debug!(%local, %remote, from = %State::Closed, to = %State::SynSent, "tcp state");
        cx.event(EventKind::TcpState {
            local,
            remote: Some(remote),
            from: State::Closed,
            to: State::SynSent,
        });
        self.schedule(cx.now, id);
        Err(Errno::EINPROGRESS)
    }

    /// Queues what fits of `data` for sending. EAGAIN when the send buffer is
    /// full (or the handshake is still running); EPIPE after
    /// shutdown(Write) or once the connection is gone (never a signal);
    /// ENOTCONN before connect. A pending error is returned first, once.
    pub fn tcp_send(&mut self, cx: &mut Cx<'_>, h: SocketHandle, data: &[u8]) -> Result<usize> {
        let now = cx.now;
        let s = self.tcp_sock_mut(h)?;
        if let Some(e) = s.error.take() {
            cx.sh.handles.mark_changed(h);
            return Err(e);
        }
        let id = match s.kind {
            Kind::Conn(id) => id,
            Kind::Closed {
                was_connected: true,
            } => return Err(Errno::EPIPE),
            _ => return Err(Errno::ENOTCONN),
        };
        let t = self.get_mut(id).ok_or(Errno::EPIPE)?;
        if t.snd.fin_queued {
            return Err(Errno::EPIPE);
        }
        match t.state {
            State::SynSent | State::SynReceived => return Err(Errno::EAGAIN),
            State::Established | State::CloseWait => {}
            _ => return Err(Errno::EPIPE),
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = t.snd.q.push(data);
        if n < data.len() || t.snd.q.free() < t.snd.q.len() / 2 {
            // The send left the socket not writable (full, or less than
            // half free, as readiness reports it): wake a writer when space
            // frees up. Linux sets SOCK_NOSPACE whenever tcp_poll reports a
            // stream not writable; sends are the only way writability is lost.
            t.snd.nospace = true;
        }
        if n == 0 {
            return Err(Errno::EAGAIN);
        }
        t.maybe_arm_persist(now, &cx.cfg.tcp);
        self.arm(id);
        self.schedule(cx.now, id);
        Ok(n)
    }

    /// Reads received bytes. Ok(0) at end of stream; EAGAIN when nothing is
    /// there yet; a pending error (ECONNRESET after a RST) first, once.
    pub fn tcp_recv(&mut self, cx: &mut Cx<'_>, h: SocketHandle, buf: &mut [u8]) -> Result<usize> {
        self.tcp_read(cx, h, buf, true)
    }

    /// Like [`tcp_recv`](Self::tcp_recv) but leaves the bytes queued (MSG_PEEK).
    pub fn tcp_peek(&mut self, cx: &mut Cx<'_>, h: SocketHandle, buf: &mut [u8]) -> Result<usize> {
        self.tcp_read(cx, h, buf, false)
    }

    pub(super) fn tcp_read(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        buf: &mut [u8],
        consume: bool,
    ) -> Result<usize> {
        let s = self.tcp_sock_mut(h)?;
        if let Some(e) = s.error.take() {
            cx.sh.handles.mark_changed(h);
            return Err(e);
        }
        let id = match s.kind {
            Kind::Conn(id) => id,
            Kind::Closed {
                was_connected: true,
            } => {
                let Some(own) = s.own.as_deref_mut() else {
                    return Ok(0);
                };
                let n = own.leftover.as_deref().map_or(0, |l| l.copy_out(0, buf));
                if consume {
                    if let Some(l) = own.leftover.as_deref_mut() {
                        l.consume(n);
                        if l.is_empty() {
                            own.leftover = None;
                        }
                    }
                }
                return Ok(n);
            }
            _ => return Err(Errno::ENOTCONN),
        };
        let Some(t) = self.get_mut(id) else {
            return Ok(0);
        };
        if matches!(t.state, State::SynSent | State::SynReceived) {
            return Err(Errno::EAGAIN);
        }
        if t.rcv.q.is_empty() {
            return if t.rcv.fin_received || t.rcv.shut_rd {
                Ok(0)
            } else {
                Err(Errno::EAGAIN)
            };
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = t.rcv.q.copy_out(0, buf);
        if consume {
            t.rcv.q.consume(n);
            self.rcv_drained(cx, id, n, false);
            cx.sh.handles.mark_changed(h);
        }
        Ok(n)
    }

    /// After the application took `n` bytes from `id`'s receive ring:
    /// autotuning ([`Tcb::rcv_space_adjust`]), then a window update once
    /// the window grows by min(rcvbuf/2, MSS) (receiver SWS avoidance,
    /// RFC 9293 §3.8.6.2.2); with `only_if_grown`, only when autotuning
    /// just grew the buffer (the ring itself did not drain).
    pub(super) fn rcv_drained(
        &mut self,
        cx: &mut Cx<'_>,
        id: TcbId,
        n: usize,
        only_if_grown: bool,
    ) {
        let Some(t) = self.get_mut(id) else { return };
        let grown = t.rcv_space_adjust(cx.now, n, &cx.cfg.tcp);
        if grown {
            cx.sh.counters.tcp.rcvbuf_grown += 1;
        } else if only_if_grown {
            return;
        }
        let offered = t.rcv.adv.diff(t.rcv.nxt).max(0) as usize;
        let grow = t.rcv_space().saturating_sub(offered);
        // No update once the peer's FIN is in: it sends no more data,
        // and in TIME_WAIT the update would hit a peer that has
        // already closed (it answers with a RST).
        if grow >= (t.rcv.q.capacity() / 2).min(usize::from(t.rcv.mss)).max(1)
            && t.state.synchronized()
            && !t.rcv.fin_received
        {
            t.owed.ack = true;
            self.schedule(cx.now, id);
        }
    }

    /// shutdown(2): Read stops reading (recv gives 0 once drained); Write
    /// sends FIN after the queued data (RFC 9293 §3.10.4). ENOTCONN if not
    /// connected.
    pub fn tcp_shutdown(&mut self, cx: &mut Cx<'_>, h: SocketHandle, how: Shutdown) -> Result<()> {
        let id = self.tcp_conn(h)?.ok_or(Errno::ENOTCONN)?;
        let t = self.get_mut(id).ok_or(Errno::ENOTCONN)?;
        if matches!(how, Shutdown::Read | Shutdown::Both) {
            t.rcv.shut_rd = true;
        }
        if matches!(how, Shutdown::Write | Shutdown::Both) && !t.snd.fin_queued {
            t.snd.fin_queued = true;
            match t.state {
                State::Established => self.tcp_set_state(cx, id, State::FinWait1),
                State::CloseWait => self.tcp_set_state(cx, id, State::LastAck),
                _ => {}
            }
        }
        self.schedule(cx.now, id);
        cx.sh.handles.mark_changed(h);
        Ok(())
    }

    /// close(2) for a TCP socket (its handle already freed).
    pub(crate) fn tcp_close(&mut self, cx: &mut Cx<'_>, h: SocketHandle) {
        let now = cx.now;
        let Some(s) = self.socks.remove(h) else {
            return;
        };
        let own_local = s.own.as_deref().and_then(|o| o.local);
        if s.in_ports {
            if let Some(l) = own_local {
                if let Some(pu) = self.bind_ports.get_mut(&l.port()) {
                    pu.sockets.retain(|x| *x != h);
                }
                self.port_release_if_empty(l.port());
            }
        }
        match s.kind {
            Kind::Closed { .. } => {}
            Kind::Listen(l) => {
                if let Some(local) = own_local {
                    if let Some(v) = self.listeners.get_mut(&local.port()) {
                        v.retain(|x| *x != h);
                        if v.is_empty() {
                            self.listeners.remove(&local.port());
                        }
                    }
                }
                self.fwd_closed(h);
                // Connections never accepted are reset (Linux inet_csk_listen_stop).
                for id in l.accept.into_iter().chain(l.pending) {
                    if let Some(t) = self.get_mut(id) {
                        t.listener = None;
                        t.in_accept_queue = false;
                    }
                    self.tcp_abort(cx, id, None, true);
                }
            }
            Kind::Conn(id) => {
                if self.fwd_deferred(id) {
                    // Never answered: refused (`forward.rs`).
                    self.tcp_abort(cx, id, None, true);
                    return;
                }
                let Some(t) = self.get_mut(id) else {
                    return;
                };
                t.socket = None;
                if t.opts.linger == Some(Duration::ZERO) && t.state != State::TimeWait {
                    // SO_LINGER 0: abort (RFC 9293 §3.10.5).
                    cx.sh.counters.tcp.abort_on_linger += 1;
                    let rst = t.state.synchronized() || t.state == State::SynReceived;
                    self.tcp_abort(cx, id, None, rst);
                    return;
                }
                if !t.rcv.q.is_empty() && t.state != State::TimeWait {
                    // Unread data: RST instead of FIN (RFC 2525 §2.17, Linux).
                    cx.sh.counters.tcp.abort_on_close += 1;
                    self.tcp_abort(cx, id, None, true);
                    return;
                }
                t.snd.fin_queued = true;
                match t.state {
                    State::SynSent => self.tcp_free(cx, id),
                    State::Established => self.tcp_set_state(cx, id, State::FinWait1),
                    State::CloseWait => self.tcp_set_state(cx, id, State::LastAck),
                    State::FinWait2 => {
                        t.timer.linger = Some(now + cx.cfg.tcp.fin_timeout);
                    }
                    _ => {}
                }
                self.arm(id);
                self.schedule(cx.now, id);
            }
        }
    }

    /// The conditions epoll reports (Linux `tcp_poll`).
    pub(crate) fn tcp_readiness(&self, h: SocketHandle) -> Option<Readiness> {
        let s = self.socks.get(h)?;
        Some(self.readiness_of(s))
    }

    fn readiness_of(&self, s: &TcpSocket) -> Readiness {
        let error = s.error.is_some();
        match &s.kind {
            Kind::Listen(l) => Readiness {
                readable: !l.accept.is_empty() || !l.pending.is_empty(),
                error,
                ..Readiness::default()
            },
            Kind::Closed { was_connected } => Readiness {
                readable: *was_connected || error,
                writable: true,
                error,
                hangup: true,
                read_hangup: *was_connected,
            },
            Kind::Conn(id) => {
                let Some(t) = self.get(*id) else {
                    return Readiness {
                        hangup: true,
                        error,
                        ..Readiness::default()
                    };
                };
                let rd_shut = t.rcv.fin_received || t.rcv.shut_rd;
                let wr_shut = t.snd.fin_queued;
                let connecting = matches!(t.state, State::SynSent | State::SynReceived);
                let used = t.snd.q.len();
                Readiness {
                    readable: !t.rcv.q.is_empty() || rd_shut || error,
                    writable: !connecting && (wr_shut || t.snd.q.free() >= used / 2),
                    error,
                    hangup: rd_shut && wr_shut,
                    read_hangup: rd_shut,
                }
            }
        }
    }

    /// getsockname / getpeername for TCP.
    pub(crate) fn tcp_local_addr(&self, h: SocketHandle) -> Result<Option<SocketAddr>> {
        let s = self.tcp_sock(h)?;
        Ok(match s.kind {
            Kind::Conn(id) => self.get(id).map(|t| t.local).or_else(|| self.sock_local(s)),
            _ => self.sock_local(s),
        })
    }

    pub(crate) fn tcp_peer_addr(&self, h: SocketHandle) -> Result<SocketAddr> {
        let s = self.tcp_sock(h)?;
        match s.kind {
            Kind::Conn(id) => self.get(id).map(|t| t.remote).ok_or(Errno::ENOTCONN),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// The connection state of a TCP socket.
    pub fn tcp_state(&self, h: SocketHandle) -> Result<State> {
        let s = self.tcp_sock(h)?;
        Ok(match s.kind {
            Kind::Listen(_) => State::Listen,
            Kind::Closed { .. } => State::Closed,
            Kind::Conn(id) => self.get(id).map_or(State::Closed, |t| t.state),
        })
    }

    /// A TCP_INFO-like snapshot.
    pub fn tcp_info(&self, cfg: &StackConfig, h: SocketHandle) -> Result<TcpInfo> {
        let s = self.tcp_sock(h)?;
        let so = self.sock_opts(s);
        let mut info = TcpInfo {
            state: self.tcp_state(h)?,
            local: self.tcp_local_addr(h)?,
            remote: None,
            rtt: Duration::ZERO,
            rttvar: Duration::ZERO,
            rto: Duration::ZERO,
            retransmits: 0,
            total_retrans: 0,
            backoff: 0,
            probes: 0,
            snd_mss: 0,
            rcv_mss: 0,
            snd_wnd: 0,
            rcv_wnd: 0,
            snd_wscale: 0,
            rcv_wscale: 0,
            timestamps: false,
            sack: false,
            cwnd: 0,
            ssthresh: 0,
            congestion: match so.congestion {
                crate::config::Congestion::NewReno => "newreno",
                c => c.name(),
            },
            ca_state: "",
            sacked: 0,
            lost: 0,
            ofo_bytes: 0,
            rcvbuf: so.rcvbuf,
            sndbuf: so.sndbuf,
            unacked: 0,
            send_queue: 0,
            recv_queue: 0,
            pacing_rate: 0,
            cc_bw: 0,
            cc_mode: "",
        };
        match &s.kind {
            Kind::Listen(l) => {
                info.recv_queue = l.accept.len();
                info.send_queue = l.backlog;
            }
            Kind::Conn(id) => {
                if let Some(t) = self.get(*id) {
                    info.remote = Some(t.remote);
                    info.rtt = t.rtt.srtt();
                    info.rttvar = t.rtt.rttvar();
                    info.rto = t.current_rto(&cfg.tcp);
                    info.retransmits = t.timer.retries;
                    info.total_retrans = t.total_retrans;
                    info.backoff = t.timer.backoff;
                    info.probes = t.timer.probes_out;
                    info.snd_mss = t.snd.mss;
                    info.rcv_mss = t.rcv.mss;
                    info.snd_wnd = t.snd.wnd;
                    info.rcv_wnd = t.rcv.adv.diff(t.rcv.nxt).max(0) as u32;
                    info.snd_wscale = t.snd.wscale;
                    info.rcv_wscale = t.rcv.wscale;
                    info.timestamps = t.neg.ts;
                    info.sack = t.neg.sack;
                    info.cwnd = t.cong.cc.window();
                    info.ssthresh = t.cong.cc.ssthresh();
                    info.congestion = t.cong.cc.name();
                    info.ca_state = t.cong.ca.name();
                    info.sacked = t.sacked_bytes();
                    info.lost = t.lost_bytes();
                    info.ofo_bytes = t.ofo_bytes();
                    info.rcvbuf = t.rcv.q.capacity();
                    info.sndbuf = t.snd.q.capacity();
                    info.unacked = t.snd.max.diff(t.snd.una).max(0) as u32;
                    info.send_queue = t.snd.q.len();
                    info.recv_queue = t.rcv.q.len();
                    info.pacing_rate = t.pacing_rate(&cfg.tcp).unwrap_or(0);
                    if let Some((bw, mode)) = t.cong.cc.model() {
                        (info.cc_bw, info.cc_mode) = (bw, mode);
                    }
                }
            }
            Kind::Closed { .. } => {}
        }
        Ok(info)
    }

    fn tcb_row(&self, now: Instant, handle: Option<SocketHandle>, t: &Tcb) -> SocketRow {
        let timer = if let Some(d) = t.timer.linger {
            Some(("timewait", d))
        } else if let Some(d) = t.timer.rexmit {
            Some(("on", d))
        } else {
            t.timer.keepalive.map(|d| ("keepalive", d))
        };
        SocketRow {
            handle,
            state: t.state,
            local: t.local,
            remote: Some(t.remote),
            recv_q: t.rcv.q.len(),
            send_q: t.snd.q.len(),
            timer: timer.map(|(k, d)| (k, d - now)),
        }
    }

    /// Every TCP socket and TCB, like `ss -tan`: listeners, connections,
    /// and orphaned or not-yet-accepted TCBs (handle `None`).
    pub fn socket_table(&self, now: Instant) -> Vec<SocketRow> {
        let mut rows = Vec::new();
        for (h, s) in self.socks.iter() {
            match &s.kind {
                Kind::Conn(id) => {
                    if let Some(t) = self.get(*id) {
                        rows.push(self.tcb_row(now, Some(h), t));
                    }
                }
                Kind::Listen(l) => rows.push(SocketRow {
                    handle: Some(h),
                    state: State::Listen,
                    local: self
                        .sock_local(s)
                        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
                    remote: None,
                    recv_q: l.accept.len(),
                    send_q: l.backlog,
                    timer: None,
                }),
                Kind::Closed { .. } => rows.push(SocketRow {
                    handle: Some(h),
                    state: State::Closed,
                    local: self
                        .sock_local(s)
                        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)),
                    remote: None,
                    recv_q: 0,
                    send_q: 0,
                    timer: None,
                }),
            }
        }
        for (_, t) in self.iter() {
            if t.socket.is_none() {
                rows.push(self.tcb_row(now, None, t));
            }
        }
        rows
    }

    /// Number of TCBs (connections in any state, including orphans).
    pub fn tcp_tcb_count(&self) -> usize {
        self.count
    }

    /// Applies a change of socket options to the connection, if any.
    fn tcp_set_opt(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        f: impl FnOnce(&mut TcpOptions),
    ) -> Result<()> {
        let now = cx.now;
        let s = self.tcp_sock_mut(h)?;
        let conn = match s.kind {
            Kind::Conn(id) => Some(id),
            _ => None,
        };
        // Connected, the TCB's options are the socket's (`sock_opts`).
        let Some((id, t)) = conn.and_then(|id| Some((id, self.get_mut(id)?))) else {
            if let Some(o) = self.tcp_sock_mut(h)?.own.as_deref_mut() {
                f(&mut o.opts);
            }
            if conn.is_some() {
                cx.sh.handles.mark_changed(h);
            }
            return Ok(());
        };
        f(&mut t.opts);
        t.snd.q.set_limit(t.opts.sndbuf);
        t.rcv.q.set_limit(t.opts.rcvbuf);
        if !t.opts.cork {
            t.timer.cork = None;
            t.snd.cork_release = None;
        }
        t.timer.keepalive = t.keepalive_deadline().map(|d| d.max(now));
        self.arm(id);
        // NODELAY on or CORK off may release held data.
        self.schedule(cx.now, id);
        cx.sh.handles.mark_changed(h);
        Ok(())
    }

    /// The socket's options (getsockopt).
    pub fn tcp_options(&self, h: SocketHandle) -> Result<TcpOptions> {
        Ok(self.sock_opts(self.tcp_sock(h)?).clone())
    }

    /// SO_REUSEADDR (takes effect at bind).
    pub fn tcp_set_reuseaddr(&mut self, cx: &mut Cx<'_>, h: SocketHandle, on: bool) -> Result<()> {
        self.tcp_set_opt(cx, h, |o| o.reuseaddr = on)
    }

    /// SO_REUSEPORT (takes effect at bind).
    pub fn tcp_set_reuseport(&mut self, cx: &mut Cx<'_>, h: SocketHandle, on: bool) -> Result<()> {
        self.tcp_set_opt(cx, h, |o| o.reuseport = on)
    }

    /// IPV6_V6ONLY; EINVAL once bound (as Linux).
    pub fn tcp_set_v6only(&mut self, cx: &mut Cx<'_>, h: SocketHandle, on: bool) -> Result<()> {
        if self.sock_local(self.tcp_sock(h)?).is_some() {
            return Err(Errno::EINVAL);
        }
        self.tcp_set_opt(cx, h, |o| o.v6only = on)
    }

    /// IPV6_UNICAST_HOPS (`None`: the stack's default).
    pub fn tcp_set_unicast_hops(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        hops: Option<u8>,
    ) -> Result<()> {
        self.tcp_set_opt(cx, h, |o| o.unicast_hops = hops)
    }

    /// SO_KEEPALIVE.
    pub fn tcp_set_keepalive(&mut self, cx: &mut Cx<'_>, h: SocketHandle, on: bool) -> Result<()> {
        self.tcp_set_opt(cx, h, |o| o.keepalive = on)
    }

    /// TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT (`None` leaves one as is);
    /// zero is EINVAL.
    pub fn tcp_set_keepalive_params(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        idle: Option<Duration>,
        intvl: Option<Duration>,
        cnt: Option<u32>,
    ) -> Result<()> {
        if idle == Some(Duration::ZERO) || intvl == Some(Duration::ZERO) || cnt == Some(0) {
            return Err(Errno::EINVAL);
        }
        self.tcp_set_opt(cx, h, |o| {
            if let Some(i) = idle {
                o.keep_idle = i;
            }
            if let Some(i) = intvl {
                o.keep_intvl = i;
            }
            if let Some(c) = cnt {
                o.keep_cnt = c;
            }
        })
    }

    /// SO_LINGER. Only a zero timeout changes anything here (abort with
    /// RST): a sans-IO core cannot block in `close`, so a non-zero linger
    /// behaves like a normal close.
    pub fn tcp_set_linger(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        linger: Option<Duration>,
    ) -> Result<()> {
        self.tcp_set_opt(cx, h, |o| o.linger = linger)
    }

    /// SO_RCVBUF / SO_SNDBUF in bytes, clamped to [2048, max_buf]. The
    /// window scale is fixed at the handshake from the receive buffer then.
    pub fn tcp_set_buffers(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        rcvbuf: Option<usize>,
        sndbuf: Option<usize>,
    ) -> Result<()> {
        let max = cx.cfg.tcp.max_buf.max(2048);
        self.tcp_set_opt(cx, h, |o| {
            if let Some(r) = rcvbuf {
                o.rcvbuf = r.clamp(2048, max);
                o.rcvbuf_locked = true;
            }
            if let Some(s) = sndbuf {
                o.sndbuf = s.clamp(2048, max);
                o.sndbuf_locked = true;
            }
        })
    }

    /// TCP_MAXSEG: caps the MSS announced and used (88..=65495, else EINVAL).
    pub fn tcp_set_maxseg(&mut self, cx: &mut Cx<'_>, h: SocketHandle, mss: u16) -> Result<()> {
        if !(88..=65495).contains(&mss) {
            return Err(Errno::EINVAL);
        }
        if self.tcp_conn(h)?.is_some() {
            return Err(Errno::EISCONN);
        }
        self.tcp_set_opt(cx, h, |o| o.maxseg = Some(mss))
    }

    /// TCP_USER_TIMEOUT (RFC 5482): how long sent data may stay unacknowledged.
    pub fn tcp_set_user_timeout(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.tcp_set_opt(cx, h, |o| o.user_timeout = timeout.filter(|d| !d.is_zero()))
    }

    /// TCP_NODELAY: on sends small segments at once (no Nagle, RFC 896);
    /// turning it on also pushes anything Nagle was holding back.
    pub fn tcp_set_nodelay(&mut self, cx: &mut Cx<'_>, h: SocketHandle, on: bool) -> Result<()> {
        self.tcp_set_opt(cx, h, |o| o.nodelay = on)
    }

    /// TCP_CORK: while on, only full segments go out, and partial data
    /// after 200 ms at the latest (tcp(7)); turning it off sends what was held.
    pub fn tcp_set_cork(&mut self, cx: &mut Cx<'_>, h: SocketHandle, on: bool) -> Result<()> {
        self.tcp_set_opt(cx, h, |o| o.cork = on)
    }

    /// TCP_CONGESTION: the controller for this socket (before connect or
    /// listen; an established connection keeps its own).
    pub fn tcp_set_congestion(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        cc: crate::config::Congestion,
    ) -> Result<()> {
        self.tcp_set_opt(cx, h, |o| o.congestion = cc)
    }

    /// SO_MAX_PACING_RATE (bytes/s): a ceiling on the pacing rate.
    pub fn tcp_set_max_pacing_rate(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        rate: Option<u64>,
    ) -> Result<()> {
        self.tcp_set_opt(cx, h, |o| o.max_pacing_rate = rate)
    }
}

impl Tcp {
    /// The TIME_WAIT TCB of this 4-tuple if an outgoing connection may
    /// take it over (Linux `tcp_tw_reuse`, see [`crate::config::TcpConfig::tw_reuse`]):
    /// it used timestamps and entered TIME_WAIT 1 s or more ago.
    fn tw_reusable(
        &self,
        (on, time_wait, now): (bool, Duration, Instant),
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<TcbId> {
        if !on {
            return None;
        }
        let id = self.find(local, remote)?;
        let t = self.get(id)?;
        let entered = t.timer.linger?.checked_sub(time_wait);
        let old = entered.is_some_and(|e| e + Duration::from_secs(1) <= now);
        (t.state == State::TimeWait && t.neg.ts && old).then_some(id)
    }
}
