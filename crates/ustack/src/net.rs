//! `std::net`-shaped types over the runtime, so code written for the
//! kernel's sockets ports by changing its imports (and passing a
//! [`Runtime`] where std uses the global one).

use crate::posix::*;
use crate::runtime::Runtime;
use crate::OptVal;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};
use std::time::Duration;

/// The first IPv4 address of `addr` (ustack speaks IPv4 only).
fn v4(addr: impl ToSocketAddrs) -> io::Result<SocketAddrV4> {
    addr.to_socket_addrs()?
        .find_map(|a| match a {
            SocketAddr::V4(a) => Some(a),
            SocketAddr::V6(_) => None,
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "no IPv4 address to use (ustack is IPv4 only)",
            )
        })
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
        let addr = v4(addr)?;
        let fd = Fd {
            rt: rt.clone(),
            fd: rt.socket(AF_INET, SOCK_DGRAM, 0)?,
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
        Ok(self.rt().getsockname(self.fd.fd)?.into())
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.rt().getpeername(self.fd.fd)?.into())
    }

    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        Ok(self.rt().connect(self.fd.fd, v4(addr)?)?)
    }

    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        Ok(self.rt().sendto(self.fd.fd, buf, 0, Some(v4(addr)?))?)
    }

    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.rt().send(self.fd.fd, buf, 0)?)
    }

    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, from) = self.rt().recvfrom(self.fd.fd, buf, 0)?;
        Ok((
            n,
            from.unwrap_or(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0))
                .into(),
        ))
    }

    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (n, from) = self.rt().recvfrom(self.fd.fd, buf, MSG_PEEK)?;
        Ok((
            n,
            from.unwrap_or(SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0))
                .into(),
        ))
    }

    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.rt().recv(self.fd.fd, buf, 0)?)
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        Ok(self
            .rt()
            .fcntl(self.fd.fd, F_SETFL, if on { O_NONBLOCK } else { 0 })
            .map(|_| ())?)
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
