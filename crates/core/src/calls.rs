//! The socket calls, by handle, on [`Stack`]: each checks the handle's
//! protocol (EBADF, EOPNOTSUPP) and hands the call to `Tcp`, `Udp` or
//! `Icmp` with a [`Cx`](crate::cx::Cx) at the call's `now` (or, for calls
//! without one, the latest time the stack was given).

use crate::errno::{Errno, Result};
use crate::icmp::EchoReply;
use crate::socket::{Proto, SocketHandle};
use crate::stack::{split, Stack};
use crate::tcp::{RecvDone, SendBuf, Shutdown, SocketRow, State, TcpInfo, TcpOptions, ZcDone};
use crate::time::{Duration, Instant};
use std::net::SocketAddr;
use ustack_wire::Ipv4Addr;

impl Stack {
    /// Moves the stack's clock to `now` if that is later.
    #[inline]
    pub(crate) fn touch(&mut self, now: Instant) {
        if now > self.clock {
            self.clock = now;
        }
    }

    /// Opens an unbound TCP socket.
    pub fn tcp_open(&mut self) -> SocketHandle {
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_open(&mut cx)
    }

    /// Binds to `addr` (port 0: an ephemeral port, RFC 6056). EINVAL if
    /// already bound, EADDRNOTAVAIL for an address not ours, EADDRINUSE on
    /// a clash.
    pub fn tcp_bind(&mut self, h: SocketHandle, addr: impl Into<SocketAddr>) -> Result<SocketAddr> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_bind(&mut cx, h, addr.into())
    }

    /// Starts listening. The accept queue holds at most `backlog`
    /// connections (clamped to 1..=somaxconn); the SYN queue at most
    /// min(backlog, max_syn_backlog) half-open ones. An unbound socket gets
    /// an ephemeral port; calling again changes the backlog.
    pub fn tcp_listen(&mut self, h: SocketHandle, backlog: usize) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_listen(&mut cx, h, backlog)
    }

    /// Takes the oldest completed connection: its new handle and the peer.
    /// EAGAIN when none is waiting, EINVAL if not listening.
    pub fn tcp_accept(&mut self, h: SocketHandle) -> Result<(SocketHandle, SocketAddr)> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_accept(&mut cx, h)
    }

    /// Starts an active open (RFC 9293 §3.10.1) and returns EINPROGRESS, like
    /// a non-blocking `connect`: the outcome shows as writable readiness, and
    /// `take_error` then gives `None`, ECONNREFUSED or ETIMEDOUT. EALREADY
    /// while in progress, EISCONN once connected.
    pub fn tcp_connect(
        &mut self,
        now: Instant,
        h: SocketHandle,
        remote: impl Into<SocketAddr>,
    ) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        self.touch(now);
        let (tcp, mut cx) = split!(self, tcp, now);
        tcp.tcp_connect(&mut cx, h, remote.into())
    }

    /// Queues what fits of `data` for sending. EAGAIN when the send buffer is
    /// full (or the handshake is still running); EPIPE after
    /// shutdown(Write) or once the connection is gone (never a signal);
    /// ENOTCONN before connect. A pending error is returned first, once.
    pub fn tcp_send(&mut self, now: Instant, h: SocketHandle, data: &[u8]) -> Result<usize> {
        self.expect(h, Proto::Tcp)?;
        self.touch(now);
        let (tcp, mut cx) = split!(self, tcp, now);
        tcp.tcp_send(&mut cx, h, data)
    }

    /// Reads received bytes. Ok(0) at end of stream; EAGAIN when nothing is
    /// there yet; a pending error (ECONNRESET after a RST) first, once.
    pub fn tcp_recv(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_recv(&mut cx, h, buf)
    }

    /// Zero-copy send: queues all of `buf` without copying it; segments
    /// and retransmissions read from it, and it comes back through
    /// [`tcp_zc_done`](Self::tcp_zc_done) once every byte is ACKed (the
    /// MSG_ZEROCOPY idea). Errors as [`tcp_send`](Self::tcp_send), the
    /// buffer handed back with them. Tagged `tcp::ZC_DETACHED`, it is
    /// dropped once ACKed instead.
    pub fn tcp_send_zc(
        &mut self,
        now: Instant,
        h: SocketHandle,
        buf: Box<dyn SendBuf>,
        tag: u64,
    ) -> core::result::Result<(), (Errno, Box<dyn SendBuf>)> {
        if let Err(e) = self.expect(h, Proto::Tcp) {
            return Err((e, buf));
        }
        self.touch(now);
        let (tcp, mut cx) = split!(self, tcp, now);
        tcp.tcp_send_zc(&mut cx, h, buf, tag)
    }

    /// Lent send buffers of `h` handed back (all ACKed, or the
    /// connection ended: `acked` says how much), appended to `out`.
    pub fn tcp_zc_done(&mut self, h: SocketHandle, out: &mut Vec<ZcDone>) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        self.tcp.tcp_zc_done(h, out)
    }

    /// Bytes of lent send buffers `h` holds, not yet ACKed.
    pub fn tcp_zc_pending(&self, h: SocketHandle) -> usize {
        self.tcp.tcp_zc_pending(h)
    }

    /// Posts a receive buffer, after those posted before: in-order data
    /// lands in them straight from the frame (`tcp.rx_direct_bytes`)
    /// while the receive ring holds nothing before it. Taken back by
    /// [`tcp_take_posted`](Self::tcp_take_posted). EBUSY with
    /// `tcp::MAX_POSTED` posted.
    pub fn tcp_post_recv(
        &mut self,
        h: SocketHandle,
        buf: Vec<u8>,
        tag: u64,
        waitall: bool,
    ) -> core::result::Result<(), (Errno, Vec<u8>)> {
        if let Err(e) = self.expect(h, Proto::Tcp) {
            return Err((e, buf));
        }
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_post_recv(&mut cx, h, buf, tag, waitall)
    }

    /// The first posted receive buffer of `h` if it is due back (data
    /// in it, EOF, an error); or, with `cancel`, the one posted with that
    /// tag in any case (ECANCELED unless it holds data).
    pub fn tcp_take_posted(&mut self, h: SocketHandle, cancel: Option<u64>) -> Option<RecvDone> {
        self.expect(h, Proto::Tcp).ok()?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_take_posted(&mut cx, h, cancel)
    }

    /// Like [`tcp_recv`](Self::tcp_recv) but leaves the bytes queued (MSG_PEEK).
    pub fn tcp_peek(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_peek(&mut cx, h, buf)
    }

    /// shutdown(2): Read stops reading (recv gives 0 once drained); Write
    /// sends FIN after the queued data (RFC 9293 §3.10.4). ENOTCONN if not
    /// connected.
    pub fn tcp_shutdown(&mut self, now: Instant, h: SocketHandle, how: Shutdown) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        self.touch(now);
        let (tcp, mut cx) = split!(self, tcp, now);
        tcp.tcp_shutdown(&mut cx, h, how)
    }

    /// The connection state of a TCP socket.
    pub fn tcp_state(&self, h: SocketHandle) -> Result<State> {
        self.expect(h, Proto::Tcp)?;
        self.tcp.tcp_state(h)
    }

    /// A TCP_INFO-like snapshot.
    pub fn tcp_info(&self, h: SocketHandle) -> Result<TcpInfo> {
        self.expect(h, Proto::Tcp)?;
        self.tcp.tcp_info(&self.cfg, h)
    }

    /// Every TCP socket and TCB, like `ss -tan`: listeners, connections,
    /// and orphaned or not-yet-accepted TCBs (handle `None`).
    pub fn socket_table(&self, now: Instant) -> Vec<SocketRow> {
        self.tcp.socket_table(now)
    }

    /// Number of TCBs (connections in any state, including orphans).
    pub fn tcp_tcb_count(&self) -> usize {
        self.tcp.tcp_tcb_count()
    }

    /// The socket's options (getsockopt).
    pub fn tcp_options(&self, h: SocketHandle) -> Result<TcpOptions> {
        self.expect(h, Proto::Tcp)?;
        self.tcp.tcp_options(h)
    }

    /// SO_REUSEADDR (takes effect at bind).
    pub fn tcp_set_reuseaddr(&mut self, h: SocketHandle, on: bool) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_reuseaddr(&mut cx, h, on)
    }

    /// SO_REUSEPORT (takes effect at bind).
    pub fn tcp_set_reuseport(&mut self, h: SocketHandle, on: bool) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_reuseport(&mut cx, h, on)
    }

    /// IPV6_V6ONLY (before bind; EINVAL after): an IPv6 wildcard socket
    /// then takes no IPv4 (RFC 3493 §5.3).
    pub fn tcp_set_v6only(&mut self, h: SocketHandle, on: bool) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_v6only(&mut cx, h, on)
    }

    /// IPV6_UNICAST_HOPS (`None`: the stack's `hop_limit6`).
    pub fn tcp_set_unicast_hops(&mut self, h: SocketHandle, hops: Option<u8>) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_unicast_hops(&mut cx, h, hops)
    }

    /// SO_KEEPALIVE.
    pub fn tcp_set_keepalive(&mut self, now: Instant, h: SocketHandle, on: bool) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        self.touch(now);
        let (tcp, mut cx) = split!(self, tcp, now);
        tcp.tcp_set_keepalive(&mut cx, h, on)
    }

    /// TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT (`None` leaves one as is);
    /// zero is EINVAL.
    pub fn tcp_set_keepalive_params(
        &mut self,
        now: Instant,
        h: SocketHandle,
        idle: Option<Duration>,
        intvl: Option<Duration>,
        cnt: Option<u32>,
    ) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        self.touch(now);
        let (tcp, mut cx) = split!(self, tcp, now);
        tcp.tcp_set_keepalive_params(&mut cx, h, idle, intvl, cnt)
    }

    /// SO_LINGER. Only a zero timeout changes anything here (abort with
    /// RST): a sans-IO core cannot block in `close`, so a non-zero linger
    /// behaves like a normal close.
    pub fn tcp_set_linger(&mut self, h: SocketHandle, linger: Option<Duration>) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_linger(&mut cx, h, linger)
    }

    /// SO_RCVBUF / SO_SNDBUF in bytes, clamped to [2048, max_buf]. The
    /// window scale is fixed at the handshake from the receive buffer then.
    pub fn tcp_set_buffers(
        &mut self,
        h: SocketHandle,
        rcvbuf: Option<usize>,
        sndbuf: Option<usize>,
    ) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_buffers(&mut cx, h, rcvbuf, sndbuf)
    }

    /// TCP_MAXSEG: caps the MSS announced and used (88..=65495, else EINVAL).
    pub fn tcp_set_maxseg(&mut self, h: SocketHandle, mss: u16) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_maxseg(&mut cx, h, mss)
    }

    /// TCP_USER_TIMEOUT (RFC 5482): how long sent data may stay unacknowledged.
    pub fn tcp_set_user_timeout(
        &mut self,
        h: SocketHandle,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_user_timeout(&mut cx, h, timeout)
    }

    /// TCP_NODELAY: on sends small segments at once (no Nagle, RFC 896);
    /// turning it on also pushes anything Nagle was holding back.
    pub fn tcp_set_nodelay(&mut self, h: SocketHandle, on: bool) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_nodelay(&mut cx, h, on)
    }

    /// TCP_CORK: while on, only full segments go out, and partial data
    /// after 200 ms at the latest (tcp(7)); turning it off sends what was held.
    pub fn tcp_set_cork(&mut self, h: SocketHandle, on: bool) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_cork(&mut cx, h, on)
    }

    /// TCP_CONGESTION: the controller for this socket (before connect or
    /// listen; an established connection keeps its own).
    pub fn tcp_set_congestion(
        &mut self,
        h: SocketHandle,
        cc: crate::config::Congestion,
    ) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_congestion(&mut cx, h, cc)
    }

    /// SO_MAX_PACING_RATE (bytes/s; `None`: no ceiling): caps the pacing
    /// rate, and a ceiling makes the connection pace (as Linux).
    pub fn tcp_set_max_pacing_rate(&mut self, h: SocketHandle, rate: Option<u64>) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_set_max_pacing_rate(&mut cx, h, rate)
    }

    /// Opens an unbound UDP socket.
    pub fn udp_open(&mut self) -> SocketHandle {
        let (udp, mut cx) = split!(self, udp, self.clock);
        udp.udp_open(&mut cx)
    }

    /// Binds to `addr` (port 0: an ephemeral port, RFC 6056). The address
    /// must be ours or unspecified (EADDRNOTAVAIL); a port held by another
    /// socket with an overlapping address is EADDRINUSE.
    pub fn udp_bind(&mut self, h: SocketHandle, addr: impl Into<SocketAddr>) -> Result<SocketAddr> {
        self.expect(h, Proto::Udp)?;
        let (udp, mut cx) = split!(self, udp, self.clock);
        udp.udp_bind(&mut cx, h, addr.into())
    }

    /// Sets the default destination and filters received datagrams to it.
    /// Binds an ephemeral port first if unbound.
    pub fn udp_connect(&mut self, h: SocketHandle, remote: impl Into<SocketAddr>) -> Result<()> {
        self.expect(h, Proto::Udp)?;
        let (udp, mut cx) = split!(self, udp, self.clock);
        udp.udp_connect(&mut cx, h, remote.into())
    }

    /// Queues one datagram. `to` may be omitted on a connected socket
    /// (EDESTADDRREQ otherwise). A full send buffer is EAGAIN; a payload too
    /// large for IPv4 is EMSGSIZE. A pending error (SO_ERROR) is returned
    /// first, once.
    pub fn udp_send_to(
        &mut self,
        h: SocketHandle,
        data: &[u8],
        to: Option<SocketAddr>,
    ) -> Result<usize> {
        self.expect(h, Proto::Udp)?;
        let (udp, mut cx) = split!(self, udp, self.clock);
        udp.udp_send_to(&mut cx, h, data, to)
    }

    /// Takes the oldest datagram, copying at most `buf.len()` bytes (the rest
    /// of a longer datagram is discarded, as POSIX says). Returns the bytes
    /// copied, the datagram's full length, and its source. EAGAIN when empty;
    /// a pending error is returned first, once.
    pub fn udp_recv_from(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> Result<(usize, usize, SocketAddr)> {
        self.expect(h, Proto::Udp)?;
        self.udp.udp_recv_from(h, buf)
    }

    /// Like [`udp_recv_from`](Self::udp_recv_from) but leaves the datagram queued (MSG_PEEK).
    pub fn udp_peek_from(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> Result<(usize, usize, SocketAddr)> {
        self.expect(h, Proto::Udp)?;
        self.udp.udp_peek_from(h, buf)
    }

    /// Sets SO_RCVBUF / SO_SNDBUF in bytes (clamped to at least 256 like Linux's minimum).
    pub fn udp_set_buffers(
        &mut self,
        h: SocketHandle,
        rcvbuf: Option<usize>,
        sndbuf: Option<usize>,
    ) -> Result<()> {
        self.expect(h, Proto::Udp)?;
        self.udp.udp_set_buffers(h, rcvbuf, sndbuf)
    }

    /// IPV6_V6ONLY (before bind; EINVAL after).
    pub fn udp_set_v6only(&mut self, h: SocketHandle, on: bool) -> Result<()> {
        self.expect(h, Proto::Udp)?;
        self.udp.udp_set_v6only(h, on)
    }

    /// IPV6_UNICAST_HOPS (`None`: the stack's `hop_limit6`).
    pub fn udp_set_unicast_hops(&mut self, h: SocketHandle, hops: Option<u8>) -> Result<()> {
        self.expect(h, Proto::Udp)?;
        self.udp.udp_set_unicast_hops(h, hops)
    }

    /// IPV6_V6ONLY and IPV6_UNICAST_HOPS of a UDP socket.
    pub fn udp_v6_options(&self, h: SocketHandle) -> Result<(bool, Option<u8>)> {
        self.expect(h, Proto::Udp)?;
        self.udp.udp_v6_options(h)
    }

    /// Datagrams this socket dropped because its receive queue was full.
    pub fn udp_drops(&self, h: SocketHandle) -> Result<u64> {
        self.expect(h, Proto::Udp)?;
        self.udp.udp_drops(h)
    }

    /// Opens a ping socket with a random free identifier.
    pub fn icmp_open(&mut self) -> SocketHandle {
        let (icmp, mut cx) = split!(self, icmp, self.clock);
        icmp.icmp_open(&mut cx)
    }

    /// Sends an echo request (RFC 792) to `dst`.
    pub fn icmp_send_echo(
        &mut self,
        h: SocketHandle,
        dst: Ipv4Addr,
        seq_no: u16,
        data: &[u8],
    ) -> Result<()> {
        self.expect(h, Proto::Icmp)?;
        let (icmp, mut cx) = split!(self, icmp, self.clock);
        icmp.icmp_send_echo(&mut cx, h, dst, seq_no, data)
    }

    /// Sends an ICMPv6 echo request (RFC 4443 §4.1) to `dst`.
    pub fn icmp_send_echo6(
        &mut self,
        h: SocketHandle,
        dst: std::net::Ipv6Addr,
        seq_no: u16,
        data: &[u8],
    ) -> Result<()> {
        self.expect(h, Proto::Icmp)?;
        self.icmp
            .icmp_send_echo6(&self.cfg, &mut self.sh.ip6, h, dst, seq_no, data)
    }

    /// Takes the oldest echo reply; EAGAIN when none.
    pub fn icmp_recv(&mut self, h: SocketHandle) -> Result<EchoReply> {
        self.expect(h, Proto::Icmp)?;
        self.icmp.icmp_recv(h)
    }

    /// Checks the TCP tables' invariants and panics with a description if
    /// one is broken. For tests and fuzzing; O(connections).
    #[doc(hidden)]
    pub fn tcp_check_invariants(&self) {
        self.tcp.check_invariants(&self.cfg.tcp);
    }
}
