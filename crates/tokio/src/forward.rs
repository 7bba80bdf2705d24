//! For proxy builders (tun2socks-style tools, VPN clients): every TCP
//! connection and UDP datagram that arrives on the link, whatever its
//! destination, with both addresses. The runtime's stack must be made
//! with `StackConfig::transparent` to see traffic to other hosts.
//!
//! ```no_run
//! # async fn f(rt: ustack::Runtime) -> std::io::Result<()> {
//! use ustack_tokio::forward::{ForwardOptions, TcpForwarder};
//! let fwd = TcpForwarder::bind(&rt, ForwardOptions::default())?;
//! loop {
//!     let pending = fwd.next().await?;          // nothing answered yet
//!     let dst = pending.dst();
//!     match tokio::net::TcpStream::connect(dst).await {
//!         Ok(mut out) => {
//!             let mut conn = pending.accept().await?; // the SYN-ACK goes now
//!             tokio::spawn(async move {
//!                 let _ = tokio::io::copy_bidirectional(&mut conn, &mut out).await;
//!             });
//!         }
//!         Err(_) => pending.refuse(),             // the client sees a RST
//!     }
//! }
//! # }
//! ```

use super::{Sock, TcpStream};
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::task::{Context, Poll};
use ustack::posix::*;
use ustack::{Errno, Interest, OptVal, Runtime};

/// How a [`TcpForwarder`] takes connections.
#[derive(Debug, Clone, Copy)]
pub struct ForwardOptions {
    /// Completed connections not yet taken (clamped to somaxconn).
    pub backlog: usize,
    /// Connect-before-accept: each SYN waits, unanswered, until the
    /// [`PendingTcp`] is accepted or refused. Without it connections are
    /// answered at once and [`PendingTcp::accept`] only waits for them.
    pub defer: bool,
    /// The most connections alive at once; more SYNs are dropped (the
    /// client retries), as a full accept queue drops them.
    pub max_conns: usize,
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            backlog: 1024,
            defer: true,
            max_conns: 20_000,
        }
    }
}

/// Takes TCP connections to any destination: the stream of
/// `(connection, source, original destination)` a proxy relays.
#[derive(Debug)]
pub struct TcpForwarder {
    sock: Sock,
}

impl TcpForwarder {
    /// Opens the runtime's any-destination listener (one per stack).
    pub fn bind(rt: &Runtime, opts: ForwardOptions) -> io::Result<TcpForwarder> {
        let sock = Sock::open(rt, SOCK_STREAM, &SocketAddr::from(([0, 0, 0, 0], 0)))?;
        rt.listen_any(sock.fd, opts.backlog, opts.defer, opts.max_conns)?;
        Ok(TcpForwarder { sock })
    }

    /// The next connection, not yet answered if deferred. Cancel-safe.
    pub async fn next(&self) -> io::Result<PendingTcp> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Polls for the next connection.
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<io::Result<PendingTcp>> {
        self.sock
            .poll_call(cx, |rt, fd, w| rt.take_pending_or_wake(fd, true, w))
            .map_ok(|(fd, src, dst)| PendingTcp {
                sock: Some(Sock {
                    rt: self.sock.rt.clone(),
                    fd,
                }),
                src,
                dst,
            })
    }

    /// The next connection, accepted: `(stream, source, destination)`,
    /// the shape of a proxy's accept loop. A client that went away
    /// meanwhile is skipped.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr, SocketAddr)> {
        loop {
            let p = self.next().await?;
            let (src, dst) = (p.src(), p.dst());
            match p.accept().await {
                Ok(s) => return Ok((s, src, dst)),
                Err(e) if is_client_gone(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The runtime the forwarder is on.
    pub fn runtime(&self) -> &Runtime {
        &self.sock.rt
    }
}

fn is_client_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::TimedOut
            | io::ErrorKind::NotConnected
    )
}

/// A connection taken from a [`TcpForwarder`], not yet answered: accept
/// it once the destination is reached, or refuse it. Dropped undecided,
/// it is refused.
#[derive(Debug)]
pub struct PendingTcp {
    sock: Option<Sock>,
    src: SocketAddrV4,
    dst: SocketAddrV4,
}

impl PendingTcp {
    /// The client.
    pub fn src(&self) -> SocketAddr {
        self.src.into()
    }

    /// The destination the client asked for (the stream's `local_addr`).
    pub fn dst(&self) -> SocketAddr {
        self.dst.into()
    }

    /// Sends the SYN-ACK and waits for the handshake to complete. An
    /// error if the client gave up (`ConnectionReset`) or never answered
    /// (`TimedOut`, after SYN-ACK retries).
    pub async fn accept(mut self) -> io::Result<TcpStream> {
        let sock = self
            .sock
            .take()
            .expect("a pending connection has its socket");
        sock.rt.answer(sock.fd)?;
        poll_fn(|cx| {
            sock.poll_io(cx, Interest::Write, |rt, fd| {
                let r = sock.revents(POLLOUT)?;
                if r & (POLLOUT | POLLERR | POLLHUP) == 0 {
                    return Err(Errno::EAGAIN);
                }
                match rt.getsockopt(fd, SOL_SOCKET, SO_ERROR)? {
                    OptVal::Int(0) if r & POLLOUT != 0 => Ok(()),
                    OptVal::Int(0) => Err(Errno::ECONNRESET),
                    OptVal::Int(e) => Err(Errno::from_raw(e).unwrap_or(Errno::ECONNRESET)),
                    _ => Err(Errno::EINVAL),
                }
            })
        })
        .await?;
        Ok(TcpStream::from_sock(sock))
    }

    /// Refuses the connection: the client gets a RST, as from a closed port.
    pub fn refuse(mut self) {
        if let Some(sock) = self.sock.take() {
            let _ = sock.rt.refuse(sock.fd);
        }
    }
}

impl Drop for PendingTcp {
    fn drop(&mut self) {
        if let Some(sock) = self.sock.take() {
            let _ = sock.rt.refuse(sock.fd);
        }
    }
}

/// Takes UDP datagrams to any destination, with both addresses, and
/// answers from the address the client sent to.
#[derive(Debug)]
pub struct UdpForwarder {
    sock: Sock,
}

impl UdpForwarder {
    /// Opens the runtime's any-destination UDP socket (one per stack).
    pub fn bind(rt: &Runtime) -> io::Result<UdpForwarder> {
        let sock = Sock::open(rt, SOCK_DGRAM, &SocketAddr::from(([0, 0, 0, 0], 0)))?;
        rt.bind_any(sock.fd)?;
        Ok(UdpForwarder { sock })
    }

    /// The next datagram: `(length, source, destination)`; a longer one is
    /// cut to `buf`. Cancel-safe.
    pub async fn recv_from_to(
        &self,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr, SocketAddr)> {
        poll_fn(|cx| self.poll_recv_from_to(cx, buf)).await
    }

    /// Polls for the next datagram.
    pub fn poll_recv_from_to(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr, SocketAddr)>> {
        self.sock
            .poll_call(cx, |rt, fd, w| rt.recv_from_to_or_wake(fd, buf, w))
            .map_ok(|(n, from, to)| (n, from.into(), to.into()))
    }

    /// Sends `buf` from `from` (any address: the destination a client
    /// sent to) to `to`.
    pub async fn send_from_to(
        &self,
        buf: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> io::Result<usize> {
        let (SocketAddr::V4(from), SocketAddr::V4(to)) = (from, to) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ustack is IPv4 only: both addresses must be IPv4",
            ));
        };
        poll_fn(|cx| {
            self.sock
                .poll_call(cx, |rt, fd, w| rt.send_from_or_wake(fd, buf, from, to, w))
        })
        .await
    }

    /// The runtime the forwarder is on.
    pub fn runtime(&self) -> &Runtime {
        &self.sock.rt
    }
}
