//! Forwarding engines' socket calls on [`Stack`] (TUN proxies and VPNs):
//! the any-destination TCP listener with connect-before-accept
//! (`tcp/forward.rs`) and the any-destination UDP socket. Both see
//! datagrams to other hosts only with
//! [`StackConfig::transparent`](crate::StackConfig::transparent).

use crate::errno::Result;
use crate::socket::{Proto, SocketHandle};
use crate::stack::{split, Stack};
use crate::time::Instant;
use std::net::SocketAddr;

impl Stack {
    /// Makes `h` (fresh, unbound) the any-destination listener: SYNs to any
    /// address and port no other listener takes. `defer`: each SYN waits,
    /// unanswered, until [`tcp_answer`](Self::tcp_answer) or
    /// [`tcp_refuse`](Self::tcp_refuse) (connect-before-accept). At most
    /// `max_conns` of its connections are alive at once (more SYNs are
    /// dropped and counted), half-open ones within `max_syn_backlog` (then
    /// SYN cookies, RFC 4987). EADDRINUSE if one is open already.
    pub fn tcp_listen_any(
        &mut self,
        h: SocketHandle,
        backlog: usize,
        defer: bool,
        max_conns: usize,
    ) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_listen_any(&mut cx, h, backlog, defer, max_conns)
    }

    /// The any-destination listener's next connection: a deferred one
    /// (answer or refuse it) before a completed one. Returns the new
    /// socket, the client, and the original destination (also its
    /// `local_addr`). EAGAIN when none.
    pub fn tcp_take_pending(
        &mut self,
        h: SocketHandle,
    ) -> Result<(SocketHandle, SocketAddr, SocketAddr)> {
        self.expect(h, Proto::Tcp)?;
        let (tcp, mut cx) = split!(self, tcp, self.clock);
        tcp.tcp_take_pending(&mut cx, h)
    }

    /// Sends the SYN-ACK of a deferred connection (no-op if not deferred);
    /// the socket becomes writable when the handshake completes. The
    /// socket's error (ECONNRESET) if the client gave up meanwhile.
    pub fn tcp_answer(&mut self, now: Instant, h: SocketHandle) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        self.touch(now);
        let (tcp, mut cx) = split!(self, tcp, now);
        tcp.tcp_answer(&mut cx, h)
    }

    /// Refuses (RST, seen by the client as ECONNREFUSED) a connection from
    /// [`tcp_take_pending`](Self::tcp_take_pending), or resets an answered one.
    pub fn tcp_refuse(&mut self, now: Instant, h: SocketHandle) -> Result<()> {
        self.expect(h, Proto::Tcp)?;
        self.touch(now);
        let (tcp, mut cx) = split!(self, tcp, now);
        tcp.tcp_refuse(&mut cx, h)
    }

    /// Makes `h` (unbound) the any-destination UDP socket: every datagram
    /// no other socket takes, read with
    /// [`udp_recv_from_to`](Self::udp_recv_from_to).
    pub fn udp_bind_any(&mut self, h: SocketHandle) -> Result<()> {
        self.expect(h, Proto::Udp)?;
        self.udp.udp_bind_any(h)
    }

    /// Takes the oldest datagram with its source and the address it was
    /// sent to: `(copied, full length, from, to)`.
    pub fn udp_recv_from_to(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> Result<(usize, usize, SocketAddr, SocketAddr)> {
        self.expect(h, Proto::Udp)?;
        self.udp.udp_recv_from_to(h, buf)
    }

    /// Sends a datagram from `from` (any address) to `to`, on the
    /// any-destination socket (EINVAL on another).
    pub fn udp_send_from(
        &mut self,
        h: SocketHandle,
        data: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> Result<usize> {
        self.expect(h, Proto::Udp)?;
        let (udp, mut cx) = split!(self, udp, self.clock);
        udp.udp_send_from(&mut cx, h, data, from, to)
    }
}
