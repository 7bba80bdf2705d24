//! tokio's socket types on ustack: [`TcpListener`], [`TcpStream`] and
//! [`UdpSocket`] with tokio's method names, `AsyncRead`/`AsyncWrite`, and
//! `std::io::ErrorKind`s as tokio reports them (a refused connect is
//! `ConnectionRefused`, a reset `ConnectionReset`, a write after the
//! connection ended `BrokenPipe`), so hyper, axum and tokio-util run on
//! the user-space stack unchanged. Each constructor takes the
//! [`ustack::Runtime`] to use where tokio uses the kernel.
//!
//! For proxy builders, [`forward`] takes connections and datagrams to any
//! address (a transparent stack): `(TcpStream, source, destination)`,
//! accepted only once the destination is reached, and UDP with both
//! addresses.
//!
//! # How the stack is driven
//!
//! By the runtime's own stack thread ([`ustack::Mode::Thread`]), not by a
//! task on the tokio reactor. A call that cannot go on (EAGAIN) registers
//! the task's waker with the runtime ([`ustack::Runtime::register_waker`])
//! and tries once more; whoever changes the socket's readiness next (the
//! stack thread taking in a segment, or another task's call) wakes it.
//! There is no polling loop, sleep or busy wait. Why the thread:
//!
//! - it already drives every device, TUN/TAP (reading the fd without the
//!   stack lock while callers send) and the in-memory link alike, and
//!   owns the core's timers; a reactor task would have to redo all of it;
//! - the stack keeps running when the application's tasks are busy or
//!   block (a current-thread runtime inside a slow handler would
//!   otherwise stall every retransmission timer and ACK);
//! - one stack serves blocking and async callers at once, from any number
//!   of tokio runtimes of either flavour: a waker is all a task leaves.
//!
//! The cost is a hand-off between threads per wake-up (the stack thread
//! wakes the task's worker), a few microseconds; see BENCHMARKS.md.
//!
//! The other way is there too: a runtime made with [`Mode::External`] and
//! [`drive`] spawned as a task, which takes the device's fd through
//! `AsyncFd` and the timers through `tokio::time`. On a current-thread
//! tokio runtime that is one thread doing everything, and a frame that
//! arrives wakes only it: `ustack serve` runs that way, at twice the
//! requests/s of the stack thread with two workers (BENCHMARKS.md). On a
//! multi-thread runtime it measured no better than the stack thread (the
//! driver and the task it wakes are often on different workers). The
//! stack thread stays the default for the library: it keeps the stack
//! alive whatever the tasks do, and it suits any runtime.
//!
//! # Semantics
//!
//! - Every future is cancel-safe: bytes and connections are taken from the
//!   stack only in the `poll` that returns them, so dropping a future
//!   loses nothing.
//! - Dropping a [`TcpStream`] is Linux's `close`: FIN after the queued
//!   data, or RST if received data was left unread (RFC 2525 §2.17), or
//!   after `set_linger(Some(0))`.
//! - `shutdown` (AsyncWriteExt::shutdown) sends FIN (RFC 9293 §3.10.4);
//!   dropping an [`OwnedWriteHalf`] does too, as tokio's does.
//! - IPv4 only, as ustack; addresses are resolved with
//!   `std::net::ToSocketAddrs` (literals: ustack has no DNS).

#![deny(unsafe_code)]

pub mod forward;

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ustack::posix::*;
use ustack::{Errno, Interest, Mode, OptVal, Runtime};

/// The first address of `addr`, either version.
fn first_addr(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to use"))
}

/// A non-blocking ustack descriptor, closed on drop.
struct Sock {
    rt: Runtime,
    fd: i32,
}

impl fmt::Debug for Sock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sock").field("fd", &self.fd).finish()
    }
}

impl Drop for Sock {
    fn drop(&mut self) {
        let _ = self.rt.close(self.fd);
    }
}

impl Sock {
    /// A socket of the version of `addr` (AF_INET6 for IPv6, as std opens).
    fn open(rt: &Runtime, ty: i32, addr: &SocketAddr) -> io::Result<Sock> {
        if rt.mode() == Mode::Inline {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ustack-tokio needs a runtime with a stack thread (Mode::Thread) or one \
                 driven by ustack_tokio::drive (Mode::External): in Mode::Inline nothing \
                 drives the stack while tasks wait",
            ));
        }
        let domain = if addr.is_ipv6() { AF_INET6 } else { AF_INET };
        let fd = rt.socket(domain, ty | SOCK_NONBLOCK, 0)?;
        Ok(Sock { rt: rt.clone(), fd })
    }

    /// Runs `op` (a non-blocking call); on EAGAIN registers the task's
    /// waker for `interest` and runs it once more, so a readiness change
    /// between the two tries is not missed.
    fn poll_io<R>(
        &self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut op: impl FnMut(&Runtime, i32) -> Result<R, Errno>,
    ) -> Poll<io::Result<R>> {
        match op(&self.rt, self.fd) {
            Err(Errno::EAGAIN) => {}
            r => return Poll::Ready(r.map_err(io::Error::from)),
        }
        if let Err(e) = self.rt.register_waker(self.fd, interest, cx.waker()) {
            return Poll::Ready(Err(e.into()));
        }
        match op(&self.rt, self.fd) {
            Err(Errno::EAGAIN) => Poll::Pending,
            r => Poll::Ready(r.map_err(io::Error::from)),
        }
    }

    /// Runs an `*_or_wake` call: Pending when it said EAGAIN (the waker
    /// is registered by then, under the lock the call took).
    fn poll_call<R>(
        &self,
        cx: &mut Context<'_>,
        op: impl FnOnce(&Runtime, i32, &std::task::Waker) -> Result<R, Errno>,
    ) -> Poll<io::Result<R>> {
        match op(&self.rt, self.fd, cx.waker()) {
            Err(Errno::EAGAIN) => Poll::Pending,
            r => Poll::Ready(r.map_err(io::Error::from)),
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.rt.getsockname(self.fd)?)
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.rt.getpeername(self.fd)?)
    }

    fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self.rt.getsockopt(self.fd, SOL_SOCKET, SO_ERROR)? {
            OptVal::Int(0) => Ok(None),
            OptVal::Int(e) => Ok(Some(io::Error::from_raw_os_error(e))),
            _ => Ok(None),
        }
    }

    /// poll(2) bits of the socket now.
    fn revents(&self, events: i16) -> Result<i16, Errno> {
        let mut p = [PollFd::new(self.fd, events)];
        self.rt.poll(&mut p, 0)?;
        Ok(p[0].revents)
    }
}

/// Like `tokio::net::TcpListener`.
#[derive(Debug)]
pub struct TcpListener {
    sock: Sock,
}

impl TcpListener {
    /// Binds and listens on `rt` (backlog 1024 and SO_REUSEADDR, as tokio).
    pub async fn bind(rt: &Runtime, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let addr = first_addr(addr)?;
        let sock = Sock::open(rt, SOCK_STREAM, &addr)?;
        rt.setsockopt(sock.fd, SOL_SOCKET, SO_REUSEADDR, OptVal::Int(1))?;
        rt.bind(sock.fd, addr)?;
        rt.listen(sock.fd, 1024)?;
        Ok(TcpListener { sock })
    }

    /// The next connection and its peer. Cancel-safe.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for the next connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.sock
            .poll_call(cx, |rt, fd, w| rt.accept4_or_wake(fd, SOCK_NONBLOCK, w))
            .map_ok(|(fd, peer)| {
                let s = TcpStream::from_sock(Sock {
                    rt: self.sock.rt.clone(),
                    fd,
                });
                (s, peer)
            })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The runtime the listener is on.
    pub fn runtime(&self) -> &Runtime {
        &self.sock.rt
    }
}

/// Like `tokio::net::TcpStream`.
pub struct TcpStream {
    sock: Arc<Sock>,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.sock.fd)
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

impl TcpStream {
    fn from_sock(sock: Sock) -> TcpStream {
        TcpStream {
            sock: Arc::new(sock),
        }
    }

    /// Connects to `addr` through `rt`. A refused connection is
    /// `ConnectionRefused`, an unanswered one `TimedOut` (after SYN
    /// retries, RFC 6298 backoff). Dropping the future abandons the attempt.
    pub async fn connect(rt: &Runtime, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addr = first_addr(addr)?;
        let sock = Sock::open(rt, SOCK_STREAM, &addr)?;
        match rt.connect(sock.fd, addr) {
            Ok(()) | Err(Errno::EINPROGRESS) => {}
            Err(e) => return Err(e.into()),
        }
        poll_fn(|cx| {
            sock.poll_io(cx, Interest::Write, |rt, fd| {
                let r = sock.revents(POLLOUT)?;
                if r & (POLLOUT | POLLERR | POLLHUP) == 0 {
                    return Err(Errno::EAGAIN);
                }
                match rt.getsockopt(fd, SOL_SOCKET, SO_ERROR)? {
                    OptVal::Int(0) if r & POLLOUT != 0 => Ok(()),
                    OptVal::Int(0) => Err(Errno::ECONNREFUSED),
                    OptVal::Int(e) => Err(Errno::from_raw(e).unwrap_or(Errno::ECONNREFUSED)),
                    _ => Err(Errno::EINVAL),
                }
            })
        })
        .await?;
        Ok(TcpStream::from_sock(sock))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()
    }

    /// The pending error (SO_ERROR), taken.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.take_error()
    }

    /// TCP_NODELAY: send small segments at once instead of holding them
    /// until earlier data is acknowledged (RFC 896 / RFC 9293 §3.7.4).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        Ok(self.sock.rt.setsockopt(
            self.sock.fd,
            IPPROTO_TCP,
            TCP_NODELAY,
            OptVal::Int(i32::from(nodelay)),
        )?)
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        match self
            .sock
            .rt
            .getsockopt(self.sock.fd, IPPROTO_TCP, TCP_NODELAY)?
        {
            OptVal::Int(v) => Ok(v != 0),
            _ => Err(io::ErrorKind::InvalidData.into()),
        }
    }

    /// SO_LINGER. `Some(Duration::ZERO)`: dropping the stream resets the
    /// connection (RST) instead of closing it with a FIN. A non-zero time
    /// does not make drop wait (the socket is non-blocking, and dropping
    /// must not block a runtime thread): the stack still sends the queued
    /// data and the FIN after the drop.
    pub fn set_linger(&self, dur: Option<Duration>) -> io::Result<()> {
        let v = match dur {
            Some(d) => OptVal::Linger {
                onoff: true,
                secs: i32::try_from(d.as_secs()).unwrap_or(i32::MAX),
            },
            None => OptVal::Linger {
                onoff: false,
                secs: 0,
            },
        };
        Ok(self
            .sock
            .rt
            .setsockopt(self.sock.fd, SOL_SOCKET, SO_LINGER, v)?)
    }

    /// Reads without taking the bytes from the stream (MSG_PEEK).
    pub fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        poll_recv(&self.sock, cx, buf, MSG_PEEK)
    }

    /// Waits for data and copies it into `buf` without taking it. Cancel-safe.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rb = ReadBuf::new(buf);
        poll_fn(|cx| self.poll_peek(cx, &mut rb)).await
    }

    /// Reads what is there now (WouldBlock if nothing).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.sock.rt.recv(self.sock.fd, buf, MSG_DONTWAIT)?)
    }

    /// Writes what fits now (WouldBlock if nothing does).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        Ok(self
            .sock
            .rt
            .send(self.sock.fd, buf, MSG_DONTWAIT | MSG_NOSIGNAL)?)
    }

    /// Waits until the stream has data, EOF or an error.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_read_ready(cx)).await
    }

    /// Waits until the stream can take data (or has an error).
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_ready(cx)).await
    }

    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_ready(&self.sock, cx, Interest::Read, POLLIN | POLLRDHUP)
    }

    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_ready(&self.sock, cx, Interest::Write, POLLOUT)
    }

    /// Borrowed halves, for reading and writing from one task.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(&*self), WriteHalf(&*self))
    }

    /// Owned halves, to move into different tasks. Dropping the write half
    /// sends FIN; the connection closes when both are dropped.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        (
            OwnedReadHalf {
                sock: self.sock.clone(),
            },
            OwnedWriteHalf {
                sock: self.sock,
                shutdown_on_drop: true,
            },
        )
    }

    /// The runtime the stream is on.
    pub fn runtime(&self) -> &Runtime {
        &self.sock.rt
    }

    /// The descriptor, for ustack's POSIX calls (TCP_INFO, say).
    pub fn as_raw_fd(&self) -> i32 {
        self.sock.fd
    }
}

fn poll_ready(
    sock: &Sock,
    cx: &mut Context<'_>,
    interest: Interest,
    bits: i16,
) -> Poll<io::Result<()>> {
    sock.poll_io(cx, interest, |_, _| {
        if sock.revents(bits)? & (bits | POLLERR | POLLHUP) != 0 {
            Ok(())
        } else {
            Err(Errno::EAGAIN)
        }
    })
}

fn poll_recv(
    sock: &Sock,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
    flags: i32,
) -> Poll<io::Result<usize>> {
    if buf.remaining() == 0 {
        return Poll::Ready(Ok(0));
    }
    let dst = buf.initialize_unfilled();
    let (n, _) =
        std::task::ready!(sock.poll_call(cx, |rt, fd, w| rt.recvfrom_or_wake(fd, dst, flags, w)))?;
    buf.advance(n);
    Poll::Ready(Ok(n))
}

fn poll_read(sock: &Sock, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
    poll_recv(sock, cx, buf, 0).map_ok(|_| ())
}

fn poll_write(sock: &Sock, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        return Poll::Ready(Ok(0));
    }
    sock.poll_call(cx, |rt, fd, w| rt.sendto_or_wake(fd, buf, None, w))
}

/// FIN (shutdown(SHUT_WR)); a second shutdown, or one after the
/// connection ended, is not an error (as tokio on Linux reports ENOTCONN
/// only for a never-connected socket).
fn poll_shutdown(sock: &Sock) -> Poll<io::Result<()>> {
    match sock.rt.shutdown(sock.fd, SHUT_WR) {
        Ok(()) => Poll::Ready(Ok(())),
        Err(Errno::ENOTCONN) if sock.peer_addr().is_ok() => Poll::Ready(Ok(())),
        Err(e) => Poll::Ready(Err(e.into())),
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read(&self.sock, cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write(&self.sock, cx, buf)
    }
    /// Written bytes are in the stack's send buffer already.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_shutdown(&self.sock)
    }
}

/// The read half of [`TcpStream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a TcpStream);
/// The write half of [`TcpStream::split`].
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a TcpStream);

impl ReadHalf<'_> {
    pub fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        self.0.poll_peek(cx, buf)
    }
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.peek(buf).await
    }
}

impl AsyncRead for ReadHalf<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read(&self.0.sock, cx, buf)
    }
}

impl AsyncWrite for WriteHalf<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write(&self.0.sock, cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_shutdown(&self.0.sock)
    }
}

/// The read half of [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    sock: Arc<Sock>,
}

/// The write half of [`TcpStream::into_split`]; dropping it sends FIN.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    sock: Arc<Sock>,
    shutdown_on_drop: bool,
}

/// The halves given to [`reunite`] came from different streams.
#[derive(Debug)]
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same socket")
    }
}

impl std::error::Error for ReuniteError {}

/// Puts the halves of [`TcpStream::into_split`] back together.
pub fn reunite(r: OwnedReadHalf, mut w: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
    if !Arc::ptr_eq(&r.sock, &w.sock) {
        return Err(ReuniteError(r, w));
    }
    w.shutdown_on_drop = false;
    drop(w);
    Ok(TcpStream { sock: r.sock })
}

impl OwnedReadHalf {
    pub fn reunite(self, w: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        reunite(self, w)
    }
    pub fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        poll_recv(&self.sock, cx, buf, MSG_PEEK)
    }
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rb = ReadBuf::new(buf);
        poll_fn(|cx| self.poll_peek(cx, &mut rb)).await
    }
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }
}

impl OwnedWriteHalf {
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()
    }
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.sock.rt.shutdown(self.sock.fd, SHUT_WR);
        }
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read(&self.sock, cx, buf)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write(&self.sock, cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_shutdown(&self.sock)
    }
}

/// Like `tokio::net::UdpSocket`.
#[derive(Debug)]
pub struct UdpSocket {
    sock: Sock,
}

impl UdpSocket {
    /// A socket bound to `addr` on `rt` (port 0: an ephemeral port).
    pub async fn bind(rt: &Runtime, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addr = first_addr(addr)?;
        let sock = Sock::open(rt, SOCK_DGRAM, &addr)?;
        rt.bind(sock.fd, addr)?;
        Ok(UdpSocket { sock })
    }

    /// Sets the default peer for `send`/`recv` (datagrams from others are
    /// then not received).
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        Ok(self.sock.rt.connect(self.sock.fd, first_addr(addr)?)?)
    }

    pub async fn send_to(&self, buf: &[u8], target: impl ToSocketAddrs) -> io::Result<usize> {
        let to = first_addr(target)?;
        poll_fn(|cx| self.poll_send_to_addr(cx, buf, to)).await
    }

    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        match first_addr(target) {
            Ok(to) => self.poll_send_to_addr(cx, buf, to),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_send_to_addr(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        to: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.sock
            .poll_call(cx, |rt, fd, w| rt.sendto_or_wake(fd, buf, Some(to), w))
    }

    /// One datagram and its sender; a datagram longer than `buf` is cut.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| {
            self.sock
                .poll_call(cx, |rt, fd, w| rt.recvfrom_or_wake(fd, buf, 0, w))
        })
        .await
        .map(|(n, from)| {
            (
                n,
                from.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), Into::into),
            )
        })
    }

    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<SocketAddr>> {
        let dst = buf.initialize_unfilled();
        let (n, from) = std::task::ready!(self
            .sock
            .poll_call(cx, |rt, fd, w| rt.recvfrom_or_wake(fd, dst, 0, w)))?;
        buf.advance(n);
        Poll::Ready(Ok(
            from.map_or(SocketAddr::from(([0, 0, 0, 0], 0)), Into::into)
        ))
    }

    /// To the connected peer (`connect` first, else `NotConnected`).
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| {
            self.sock
                .poll_call(cx, |rt, fd, w| rt.sendto_or_wake(fd, buf, None, w))
        })
        .await
    }

    /// From the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| {
            self.sock.poll_call(cx, |rt, fd, w| {
                rt.recvfrom_or_wake(fd, buf, 0, w).map(|(n, _)| n)
            })
        })
        .await
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.take_error()
    }
}

/// The device's descriptor, as tokio's reactor takes it (not closed here:
/// the runtime owns it).
struct DeviceFd(i32);

impl std::os::fd::AsRawFd for DeviceFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

/// Drives a [`Mode::External`] runtime from tokio's reactor instead of a
/// stack thread: the device's fd through `AsyncFd`, the stack's timers
/// through `tokio::time`, and a wake-up when a call moves the next deadline
/// earlier. Spawn it on the runtime the sockets are used from (it needs
/// tokio's IO and time drivers); it runs until it fails or is dropped.
///
/// Frames that arrive are taken in by the worker that runs this task, and
/// the tasks they make ready run next on that worker: one thread hand-off
/// fewer per request than the stack thread, the price being that the stack
/// stalls while that worker is blocked (keep blocking work off it).
pub async fn drive(rt: Runtime) -> io::Result<()> {
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest as TokioInterest;
    if rt.mode() != Mode::External {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "ustack_tokio::drive needs a runtime made with Mode::External",
        ));
    }
    /// A device without an fd is looked at this often.
    const NO_FD: Duration = Duration::from_millis(1);
    /// Turns of the stack per poll before other tasks get the worker.
    const TURNS: usize = 16;
    let mut afd: Option<AsyncFd<DeviceFd>> = None;
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    let sleep = tokio::time::sleep_until(far());
    tokio::pin!(sleep);
    poll_fn(|cx| {
        for _ in 0..TURNS {
            let d = rt.drive(cx.waker());
            if afd.is_none() {
                if let Some(fd) = d.fd {
                    // Deprecated in favour of an unsafe constructor; this
                    // crate has no unsafe. The fd stays open while the
                    // AsyncFd lives: the runtime that owns it (`rt`) is held
                    // by this same future, and outlives the local.
                    #[allow(deprecated)]
                    let registered = AsyncFd::with_interest(
                        DeviceFd(fd),
                        TokioInterest::READABLE | TokioInterest::WRITABLE,
                    )?;
                    afd = Some(registered);
                }
            }
            if d.again {
                // More frames wait: let other tasks run first.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let mut ready = false;
            let mut deadline = d.deadline.map(tokio::time::Instant::from_std);
            match &afd {
                Some(a) => {
                    if let Poll::Ready(r) = a.poll_read_ready(cx) {
                        r?.clear_ready();
                        ready = true;
                    }
                    if d.want_write {
                        if let Poll::Ready(r) = a.poll_write_ready(cx) {
                            r?.clear_ready();
                            ready = true;
                        }
                    }
                }
                None => {
                    let soon = tokio::time::Instant::now() + NO_FD;
                    deadline = Some(deadline.map_or(soon, |t| t.min(soon)));
                }
            }
            sleep.as_mut().reset(deadline.unwrap_or_else(far));
            if std::future::Future::poll(sleep.as_mut(), cx).is_ready() {
                ready = true;
            }
            if !ready {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}
