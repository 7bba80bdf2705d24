//! `std::net`-shaped types over the runtime, so code written for the
//! kernel's sockets ports by changing its imports (and passing a
//! [`Runtime`] where std uses the global one).
//!
//! ```
//! use std::time::Duration;
//! use ustack::net::UdpSocket;
//!
//! let (a, b) = ustack::memnet::pair()?;
//! let echo = UdpSocket::bind(&b, "10.0.0.2:7")?;
//! let sock = UdpSocket::bind(&a, "0.0.0.0:0")?;
//! sock.send_to(b"hello", "10.0.0.2:7")?;
//! let mut buf = [0u8; 64];
//! let (n, from) = echo.recv_from(&mut buf)?;
//! echo.send_to(&buf[..n], from)?;
//! sock.set_read_timeout(Some(Duration::from_secs(5)))?;
//! let (n, _) = sock.recv_from(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! # Ok::<(), std::io::Error>(())
//! ```

use crate::posix::*;
use crate::runtime::Runtime;
use crate::OptVal;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The first address of `addr`, either version.
fn first(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to use"))
}

/// The socket domain std would open for `addr`.
fn domain(addr: &SocketAddr) -> i32 {
    if addr.is_ipv6() {
        AF_INET6
    } else {
        AF_INET
    }
}

/// What a socket call gives back when the peer is not known.
fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// A descriptor closed on drop.
#[derive(Debug)]
struct Fd {
    rt: Runtime,
    fd: i32,
}

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = self.rt.close(self.fd);
    }
}

/// Like `std::net::UdpSocket`.
#[derive(Debug)]
pub struct UdpSocket {
    fd: Fd,
}

impl UdpSocket {
    /// Binds a new socket on `rt` (port 0: an ephemeral port).
    pub fn bind(rt: &Runtime, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addr = first(addr)?;
        let fd = Fd {
            rt: rt.clone(),
            fd: rt.socket(domain(&addr), SOCK_DGRAM, 0)?,
        };
        rt.bind(fd.fd, addr)?;
        Ok(UdpSocket { fd })
    }

    fn rt(&self) -> &Runtime {
        &self.fd.rt
    }

    /// The descriptor, for the POSIX calls and epoll.
    pub fn as_raw_fd(&self) -> i32 {
        self.fd.fd
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.rt().getsockname(self.fd.fd)?)
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.rt().getpeername(self.fd.fd)?)
    }

    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        Ok(self.rt().connect(self.fd.fd, first(addr)?)?)
    }

    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        Ok(self.rt().sendto(self.fd.fd, buf, 0, Some(first(addr)?))?)
    }

    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.rt().send(self.fd.fd, buf, 0)?)
    }

    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, from) = self.rt().recvfrom(self.fd.fd, buf, 0)?;
        Ok((n, from.unwrap_or_else(unspecified)))
    }

    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, from) = self.rt().recvfrom(self.fd.fd, buf, MSG_PEEK)?;
        Ok((n, from.unwrap_or_else(unspecified)))
    }

    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.rt().recv(self.fd.fd, buf, 0)?)
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        set_nonblocking(self.rt(), self.fd.fd, on)
    }

    /// Like std: `Some(Duration::ZERO)` is an error.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        set_timeout(self.rt(), self.fd.fd, SO_RCVTIMEO, t)
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        set_timeout(self.rt(), self.fd.fd, SO_SNDTIMEO, t)
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        get_timeout(self.rt(), self.fd.fd, SO_RCVTIMEO)
    }

    /// Takes the pending error (SO_ERROR).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        take_error(self.rt(), self.fd.fd)
    }
}

fn set_timeout(rt: &Runtime, fd: i32, name: i32, t: Option<Duration>) -> io::Result<()> {
    if t == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(rt.setsockopt(fd, SOL_SOCKET, name, OptVal::Time(t))?)
}

fn get_timeout(rt: &Runtime, fd: i32, name: i32) -> io::Result<Option<Duration>> {
    match rt.getsockopt(fd, SOL_SOCKET, name)? {
        OptVal::Time(t) => Ok(t),
        _ => Ok(None),
    }
}

fn take_error(rt: &Runtime, fd: i32) -> io::Result<Option<io::Error>> {
    match rt.getsockopt(fd, SOL_SOCKET, SO_ERROR)? {
        OptVal::Int(0) => Ok(None),
        OptVal::Int(e) => Ok(Some(io::Error::from_raw_os_error(e))),
        _ => Ok(None),
    }
}

/// Like `std::net::TcpListener`.
#[derive(Debug)]
pub struct TcpListener {
    fd: Fd,
}

impl TcpListener {
    /// Binds and listens on `rt` with a backlog of 128 (std's choice).
    pub fn bind(rt: &Runtime, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let addr = first(addr)?;
        let fd = Fd {
            rt: rt.clone(),
            fd: rt.socket(domain(&addr), SOCK_STREAM, 0)?,
        };
        // std sets SO_REUSEADDR on listeners (Unix), so a restart can bind while
        // old connections sit in TIME_WAIT.
        rt.setsockopt(fd.fd, SOL_SOCKET, SO_REUSEADDR, OptVal::Int(1))?;
        rt.bind(fd.fd, addr)?;
        rt.listen(fd.fd, 128)?;
        Ok(TcpListener { fd })
    }

    fn rt(&self) -> &Runtime {
        &self.fd.rt
    }

    pub fn as_raw_fd(&self) -> i32 {
        self.fd.fd
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.rt().getsockname(self.fd.fd)?)
    }

    /// The next connection (blocks unless non-blocking: then WouldBlock).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (fd, peer) = self.rt().accept(self.fd.fd)?;
        Ok((
            TcpStream {
                fd: Fd {
                    rt: self.rt().clone(),
                    fd,
                },
            },
            peer,
        ))
    }

    /// An endless iterator of accepted connections, like std's.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(s, _)| s))
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        set_nonblocking(self.rt(), self.fd.fd, on)
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        take_error(self.rt(), self.fd.fd)
    }
}

/// Like `std::net::TcpStream`: `io::Read` and `io::Write` on `&TcpStream`
/// too, so one thread can read while another writes.
#[derive(Debug)]
pub struct TcpStream {
    fd: Fd,
}

impl TcpStream {
    /// Takes ownership of the connected socket `fd` of `rt`.
    pub(crate) fn from_fd(rt: &Runtime, fd: i32) -> TcpStream {
        TcpStream {
            fd: Fd { rt: rt.clone(), fd },
        }
    }

    /// Connects, blocking until the handshake ends.
    pub fn connect(rt: &Runtime, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addr = first(addr)?;
        let fd = Fd {
            rt: rt.clone(),
            fd: rt.socket(domain(&addr), SOCK_STREAM, 0)?,
        };
        rt.connect(fd.fd, addr)?;
        Ok(TcpStream { fd })
    }

    /// Connects with a time limit (TimedOut when it passes).
    pub fn connect_timeout(
        rt: &Runtime,
        addr: &SocketAddr,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        let addr = first(addr)?;
        let fd = Fd {
            rt: rt.clone(),
            fd: rt.socket(domain(&addr), SOCK_STREAM, 0)?,
        };
        rt.setsockopt(fd.fd, SOL_SOCKET, SO_SNDTIMEO, OptVal::Time(Some(timeout)))?;
        match rt.connect(fd.fd, addr) {
            Ok(()) => {}
            Err(ustack_core::Errno::EINPROGRESS) => return Err(io::ErrorKind::TimedOut.into()),
            Err(e) => return Err(e.into()),
        }
        rt.setsockopt(fd.fd, SOL_SOCKET, SO_SNDTIMEO, OptVal::Time(None))?;
        Ok(TcpStream { fd })
    }

    fn rt(&self) -> &Runtime {
        &self.fd.rt
    }

    pub fn as_raw_fd(&self) -> i32 {
        self.fd.fd
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.rt().getsockname(self.fd.fd)?)
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.rt().getpeername(self.fd.fd)?)
    }

    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        let how = match how {
            std::net::Shutdown::Read => SHUT_RD,
            std::net::Shutdown::Write => SHUT_WR,
            std::net::Shutdown::Both => SHUT_RDWR,
        };
        Ok(self.rt().shutdown(self.fd.fd, how)?)
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        Ok(self.rt().setsockopt(
            self.fd.fd,
            IPPROTO_TCP,
            TCP_NODELAY,
            OptVal::Int(i32::from(on)),
        )?)
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        set_nonblocking(self.rt(), self.fd.fd, on)
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        set_timeout(self.rt(), self.fd.fd, SO_RCVTIMEO, t)
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        set_timeout(self.rt(), self.fd.fd, SO_SNDTIMEO, t)
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        get_timeout(self.rt(), self.fd.fd, SO_RCVTIMEO)
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        get_timeout(self.rt(), self.fd.fd, SO_SNDTIMEO)
    }

    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.rt().recv(self.fd.fd, buf, MSG_PEEK)?)
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        take_error(self.rt(), self.fd.fd)
    }

    /// TCP_INFO: state, RTT, RTO, window, retransmissions.
    pub fn tcp_info(&self) -> io::Result<ustack_core::TcpInfo> {
        match self.rt().getsockopt(self.fd.fd, IPPROTO_TCP, TCP_INFO)? {
            OptVal::TcpInfo(i) => Ok(*i),
            _ => Err(io::ErrorKind::InvalidData.into()),
        }
    }
}

/// A read that timed out (SO_RCVTIMEO) is WouldBlock, as std reports it.
impl io::Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.rt().read(self.fd.fd, buf)?)
    }
}

impl io::Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.rt().write(self.fd.fd, buf)?)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl io::Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn set_nonblocking(rt: &Runtime, fd: i32, on: bool) -> io::Result<()> {
    let flags = rt.fcntl(fd, F_GETFL, 0)?;
    let flags = if on {
        flags | O_NONBLOCK
    } else {
        flags & !O_NONBLOCK
    };
    rt.fcntl(fd, F_SETFL, flags)?;
    Ok(())
}
