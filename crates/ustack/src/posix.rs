//! POSIX-like calls on integer descriptors, with Linux's errno values.
//!
//! The calls are methods of [`Runtime`] named as in C (`socket`, `bind`,
//! `recvfrom`, `epoll_wait`, ...); addresses are `SocketAddr` (an
//! `AF_INET6` socket shows IPv4 peers as v4-mapped, RFC 4291 §2.5.5.2, and
//! takes them unless `IPV6_V6ONLY`, RFC 3493 §5.3), errors
//! [`Errno`]. A descriptor is blocking unless made non-blocking with
//! `SOCK_NONBLOCK`, `fcntl(F_SETFL, O_NONBLOCK)` or a `MSG_DONTWAIT` call.
//!
//! ```
//! use std::net::SocketAddr;
//! use ustack::posix::*;
//! use ustack::Errno;
//!
//! let (a, b) = ustack::memnet::pair()?;
//! let srv: SocketAddr = "10.0.0.2:7".parse().unwrap();
//! // UDP: a datagram from a to b, answered.
//! let s = b.socket(AF_INET, SOCK_DGRAM, 0)?;
//! b.bind(s, srv)?;
//! let c = a.socket(AF_INET, SOCK_DGRAM, 0)?;
//! a.sendto(c, b"ping", 0, Some(srv))?;
//! let mut buf = [0u8; 16];
//! let (n, from) = b.recvfrom(s, &mut buf, 0)?;
//! assert_eq!(&buf[..n], b"ping");
//! b.sendto(s, b"pong", 0, from)?;
//! assert_eq!(a.recv(c, &mut buf, 0)?, 4);
//! // Nothing more to read: a non-blocking call says EAGAIN, as Linux does.
//! assert_eq!(a.recv(c, &mut buf, MSG_DONTWAIT), Err(Errno::EAGAIN));
//! // TCP: connect to a port nobody listens on.
//! let t = a.socket(AF_INET, SOCK_STREAM, 0)?;
//! assert_eq!(a.connect(t, SocketAddr::new(srv.ip(), 9)), Err(Errno::ECONNREFUSED));
//! for fd in [c, t] {
//!     a.close(fd)?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::epoll::{EpollEvent, EpollSet, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD};
use crate::fd::{Entry, Kind, SockEntry};
use crate::runtime::{fd_mask, Interest, Runtime, SigWatch, State};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::task::Waker;
use std::time::Duration;
use ustack_core::errno::Result;
use ustack_core::tcp::{Shutdown, TcpInfo};
use ustack_core::{Errno, Instant, SocketHandle};

pub const AF_INET: i32 = libc::AF_INET;
pub const AF_INET6: i32 = libc::AF_INET6;
pub const IPPROTO_IPV6: i32 = libc::IPPROTO_IPV6;
pub const IPV6_V6ONLY: i32 = libc::IPV6_V6ONLY;
pub const IPV6_UNICAST_HOPS: i32 = libc::IPV6_UNICAST_HOPS;
pub const SOCK_STREAM: i32 = libc::SOCK_STREAM;
pub const SOCK_DGRAM: i32 = libc::SOCK_DGRAM;
pub const SOCK_NONBLOCK: i32 = libc::SOCK_NONBLOCK;
pub const SOCK_CLOEXEC: i32 = libc::SOCK_CLOEXEC;
pub const IPPROTO_TCP: i32 = libc::IPPROTO_TCP;
pub const IPPROTO_UDP: i32 = libc::IPPROTO_UDP;

pub const MSG_DONTWAIT: i32 = libc::MSG_DONTWAIT;
pub const MSG_PEEK: i32 = libc::MSG_PEEK;
pub const MSG_WAITALL: i32 = libc::MSG_WAITALL;
pub const MSG_TRUNC: i32 = libc::MSG_TRUNC;
pub const MSG_NOSIGNAL: i32 = libc::MSG_NOSIGNAL;

pub const F_GETFL: i32 = libc::F_GETFL;
pub const F_SETFL: i32 = libc::F_SETFL;
pub const O_NONBLOCK: i32 = libc::O_NONBLOCK;
pub const O_RDWR: i32 = libc::O_RDWR;
pub const O_ASYNC: i32 = libc::O_ASYNC;
pub const FASYNC: i32 = libc::O_ASYNC;
pub const F_GETOWN: i32 = libc::F_GETOWN;
pub const F_SETOWN: i32 = libc::F_SETOWN;
pub use crate::signal::{
    F_GETOWN_EX, F_GETSIG, F_OWNER_PGRP, F_OWNER_PID, F_OWNER_TID, F_SETOWN_EX, F_SETSIG,
};
/// Signals are 1..=64 on Linux (`_NSIG`).
const NSIG: i32 = 64;

pub const SHUT_RD: i32 = libc::SHUT_RD;
pub const SHUT_WR: i32 = libc::SHUT_WR;
pub const SHUT_RDWR: i32 = libc::SHUT_RDWR;

pub const SOL_SOCKET: i32 = libc::SOL_SOCKET;
pub const SO_REUSEADDR: i32 = libc::SO_REUSEADDR;
pub const SO_REUSEPORT: i32 = libc::SO_REUSEPORT;
pub const SO_KEEPALIVE: i32 = libc::SO_KEEPALIVE;
pub const SO_LINGER: i32 = libc::SO_LINGER;
pub const SO_SNDBUF: i32 = libc::SO_SNDBUF;
pub const SO_RCVBUF: i32 = libc::SO_RCVBUF;
pub const SO_ERROR: i32 = libc::SO_ERROR;
pub const SO_RCVTIMEO: i32 = libc::SO_RCVTIMEO;
pub const SO_SNDTIMEO: i32 = libc::SO_SNDTIMEO;
pub const SO_TYPE: i32 = libc::SO_TYPE;
pub const TCP_NODELAY: i32 = libc::TCP_NODELAY;
pub const TCP_MAXSEG: i32 = libc::TCP_MAXSEG;
pub const TCP_KEEPIDLE: i32 = libc::TCP_KEEPIDLE;
pub const TCP_KEEPINTVL: i32 = libc::TCP_KEEPINTVL;
pub const TCP_KEEPCNT: i32 = libc::TCP_KEEPCNT;
pub const TCP_USER_TIMEOUT: i32 = libc::TCP_USER_TIMEOUT;
pub const TCP_INFO: i32 = libc::TCP_INFO;
pub const TCP_CORK: i32 = libc::TCP_CORK;
pub const TCP_CONGESTION: i32 = libc::TCP_CONGESTION;
pub const SO_MAX_PACING_RATE: i32 = libc::SO_MAX_PACING_RATE;

pub const EPOLL_CLOEXEC: i32 = libc::EPOLL_CLOEXEC;

/// A socket option value, shaped like the C types the options take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptVal {
    /// `int` options (flags, sizes, counts, seconds, milliseconds).
    Int(i32),
    /// `struct linger`.
    Linger { onoff: bool, secs: i32 },
    /// `struct timeval`: None is zero, "no timeout".
    Time(Option<Duration>),
    /// `struct tcp_info` (getsockopt TCP_INFO).
    TcpInfo(Box<TcpInfo>),
    /// A name (TCP_CONGESTION: `cubic`, `reno`).
    Name(String),
}

impl OptVal {
    fn int(&self) -> Result<i32> {
        match self {
            OptVal::Int(v) => Ok(*v),
            _ => Err(Errno::EINVAL),
        }
    }
}

pub(crate) fn sock(st: &State, fd: i32) -> Result<SockEntry> {
    match st.fds.get(fd) {
        Some(Entry::Socket(s)) => Ok(s.clone()),
        Some(Entry::Epoll) => Err(Errno::ENOTSOCK),
        None => Err(Errno::EBADF),
    }
}

fn sock_mut(st: &mut State, fd: i32) -> Result<&mut SockEntry> {
    match st.fds.get_mut(fd) {
        Some(Entry::Socket(s)) => Ok(s),
        Some(Entry::Epoll) => Err(Errno::ENOTSOCK),
        None => Err(Errno::EBADF),
    }
}

/// Keeps the runtime's list of signal-driven sockets in step with `fd`'s
/// settings: listed while O_ASYNC is on and it has an owner (Linux's
/// fasync list; without an owner nothing is sent).
fn sync_sigio(st: &mut State, fd: i32) -> Result<()> {
    let s = sock(st, fd)?;
    if s.sigio.on && s.sigio.owner != crate::signal::Owner::None {
        let last = st.stack.readiness(s.handle)?;
        let w = st.sigio.entry(s.handle).or_insert(SigWatch {
            fd,
            owner: s.sigio.owner,
            sig: s.sigio.sig,
            last,
        });
        w.owner = s.sigio.owner;
        w.sig = s.sigio.sig;
    } else {
        st.sigio.remove(&s.handle);
    }
    Ok(())
}

/// The core's send, noting for signal-driven I/O when it fills the buffer.
fn tcp_send(st: &mut State, now: Instant, h: SocketHandle, buf: &[u8]) -> Result<usize> {
    let r = st.stack.tcp_send(now, h, buf);
    st.note_send(h);
    r
}

/// How long a call on `s` may wait: not at all when non-blocking or
/// MSG_DONTWAIT, else its timeout (None: forever).
fn wait_for(s: &SockEntry, flags: i32, timeo: Option<Duration>) -> Option<Option<Duration>> {
    if s.nonblocking || flags & MSG_DONTWAIT != 0 {
        None
    } else {
        Some(timeo)
    }
}

/// The IPv4 address of a socket of the IPv4-only calls (forwarding).
pub(crate) fn v4_only(a: SocketAddr) -> Result<SocketAddrV4> {
    match a {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(Errno::EAFNOSUPPORT),
    }
}

/// What an address is given to: bind, connect or sendto.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Bind,
    Connect,
    Send,
}

/// What a call on `s` was given, as the core takes it. An `AF_INET`
/// socket takes IPv4 only; an `AF_INET6` one IPv6, its v4-mapped
/// addresses as IPv4 (none with IPV6_V6ONLY: EINVAL to bind, ENETUNREACH
/// to reach), and, for UDP only, plain IPv4 peers (as Linux's
/// `ip6_datagram_connect` and `udpv6_sendmsg`: with IPV6_V6ONLY,
/// EAFNOSUPPORT and ENETUNREACH). Else the wrong family is EAFNOSUPPORT.
/// The address a connect on `s` goes to (IPv4-mapped for an IPv6 socket).
pub(crate) fn connect_addr(st: &State, s: &SockEntry, a: SocketAddr) -> Result<SocketAddr> {
    addr_in(st, s, a, Use::Connect)
}

fn addr_in(st: &State, s: &SockEntry, a: SocketAddr, to: Use) -> Result<SocketAddr> {
    if !s.v6 {
        return match a {
            SocketAddr::V4(_) => Ok(a),
            SocketAddr::V6(_) => Err(Errno::EAFNOSUPPORT),
        };
    }
    let v6only = v6only(st, s)?;
    match a {
        SocketAddr::V6(a6) => match a6.ip().to_ipv4_mapped() {
            Some(_) if v6only && to == Use::Bind => Err(Errno::EINVAL),
            Some(_) if v6only => Err(Errno::ENETUNREACH),
            Some(v4) => Ok(SocketAddr::new(IpAddr::V4(v4), a6.port())),
            None => Ok(a),
        },
        SocketAddr::V4(_) if s.kind != Kind::Datagram || to == Use::Bind => {
            Err(Errno::EAFNOSUPPORT)
        }
        SocketAddr::V4(_) if !v6only => Ok(a),
        SocketAddr::V4(_) if to == Use::Send => Err(Errno::ENETUNREACH),
        SocketAddr::V4(_) => Err(Errno::EAFNOSUPPORT),
    }
}

/// An address as the caller of an `AF_INET6` socket sees it: IPv4 as
/// v4-mapped (RFC 4291 §2.5.5.2).
fn addr_out(s: &SockEntry, a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V4(a4) if s.v6 => {
            SocketAddr::V6(SocketAddrV6::new(a4.ip().to_ipv6_mapped(), a4.port(), 0, 0))
        }
        _ => a,
    }
}

/// IPV6_V6ONLY as set on `s`.
fn v6only(st: &State, s: &SockEntry) -> Result<bool> {
    match s.kind {
        Kind::Stream => Ok(st.stack.tcp_options(s.handle)?.v6only),
        Kind::Datagram => Ok(st.stack.udp_v6_options(s.handle)?.0),
    }
}

/// An unbound `AF_INET6` datagram socket is bound to `[::]:0` before its
/// first send or connect, so that it can reach both versions.
fn bind_v6_wildcard(st: &mut State, s: &SockEntry) -> Result<()> {
    if s.v6 && s.kind == Kind::Datagram && st.stack.local_addr(s.handle)?.is_none() {
        st.stack.udp_bind(
            s.handle,
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
        )?;
    }
    Ok(())
}

impl Runtime {
    /// Runs `op` once when the call must not wait, or until it stops saying
    /// EAGAIN (or the timeout passes) when it may.
    fn call<R>(
        &self,
        wait: Option<Option<Duration>>,
        op: impl FnMut(&mut State) -> Result<R>,
    ) -> Result<R> {
        let mut op = op;
        match wait {
            None => self.with(|st, _| op(st)),
            Some(timeout) => self.wait(timeout, |st, _| op(st)),
        }
    }

    /// socket(2): `AF_INET` or `AF_INET6` with `SOCK_STREAM` or
    /// `SOCK_DGRAM`, optionally or-ed with `SOCK_NONBLOCK` (and
    /// `SOCK_CLOEXEC`, accepted and ignored).
    pub fn socket(&self, domain: i32, ty: i32, protocol: i32) -> Result<i32> {
        if domain != AF_INET && domain != AF_INET6 {
            return Err(Errno::EAFNOSUPPORT);
        }
        let nonblocking = ty & SOCK_NONBLOCK != 0;
        let kind = match ty & !(SOCK_NONBLOCK | SOCK_CLOEXEC) {
            SOCK_STREAM if protocol == 0 || protocol == IPPROTO_TCP => Kind::Stream,
            SOCK_DGRAM if protocol == 0 || protocol == IPPROTO_UDP => Kind::Datagram,
            SOCK_STREAM | SOCK_DGRAM => return Err(Errno::EPROTONOSUPPORT),
            _ => return Err(Errno::EINVAL),
        };
        self.with(|st, _| {
            let handle = match kind {
                Kind::Datagram => st.stack.udp_open(),
                Kind::Stream => st.stack.tcp_open(),
            };
            let entry = SockEntry {
                handle,
                kind,
                nonblocking,
                rcvtimeo: None,
                sndtimeo: None,
                linger: None,
                v6: domain == AF_INET6,
                sigio: Default::default(),
            };
            match st.fds.insert(Entry::Socket(entry)) {
                Some(fd) => Ok(fd),
                None => {
                    let _ = st.stack.close(handle);
                    Err(Errno::EMFILE)
                }
            }
        })
    }

    /// bind(2).
    pub fn bind(&self, fd: i32, addr: impl Into<SocketAddr>) -> Result<()> {
        let addr = addr.into();
        self.with(|st, _| {
            let s = sock(st, fd)?;
            let addr = addr_in(st, &s, addr, Use::Bind)?;
            match s.kind {
                Kind::Datagram => st.stack.udp_bind(s.handle, addr).map(|_| ()),
                Kind::Stream => st.stack.tcp_bind(s.handle, addr).map(|_| ()),
            }
        })
    }

    /// connect(2). A stream socket that is non-blocking returns EINPROGRESS
    /// and turns writable when the handshake ends, SO_ERROR telling how; a
    /// blocking one waits for that (up to SO_SNDTIMEO, as Linux). For a
    /// datagram socket: sets the default peer.
    pub fn connect(&self, fd: i32, addr: impl Into<SocketAddr>) -> Result<()> {
        let addr = addr.into();
        let s = self.with(|st, _| sock(st, fd))?;
        if s.kind == Kind::Datagram {
            return self.with(|st, _| {
                let addr = addr_in(st, &s, addr, Use::Connect)?;
                bind_v6_wildcard(st, &s)?;
                st.stack.udp_connect(s.handle, addr)
            });
        }
        let started = self.with(|st, now| {
            let addr = addr_in(st, &s, addr, Use::Connect)?;
            let r = st.stack.tcp_connect(now, s.handle, addr);
            st.note_send(s.handle);
            r
        });
        match started {
            Err(Errno::EINPROGRESS) if !s.nonblocking => {}
            other => return other,
        }
        let r = self.wait(s.sndtimeo, |st, _| {
            if let Some(e) = st.stack.take_error(s.handle)? {
                return Err(e);
            }
            if st.stack.readiness(s.handle)?.writable {
                Ok(())
            } else {
                Err(Errno::EAGAIN)
            }
        });
        // A timed-out blocking connect is EINPROGRESS, as Linux reports it.
        r.map_err(|e| {
            if e == Errno::EAGAIN {
                Errno::EINPROGRESS
            } else {
                e
            }
        })
    }

    /// listen(2): the backlog bounds the accept queue (Linux semantics).
    pub fn listen(&self, fd: i32, backlog: i32) -> Result<()> {
        self.with(|st, _| {
            let s = sock(st, fd)?;
            match s.kind {
                Kind::Stream => st
                    .stack
                    .tcp_listen(s.handle, usize::try_from(backlog.max(0)).unwrap_or(0)),
                Kind::Datagram => Err(Errno::EOPNOTSUPP),
            }
        })
    }

    /// accept(2): the next completed connection and its peer. Blocks unless
    /// the listener is non-blocking (then EAGAIN).
    pub fn accept(&self, fd: i32) -> Result<(i32, SocketAddr)> {
        self.accept4(fd, 0)
    }

    /// accept4(2): `flags` may hold SOCK_NONBLOCK (and SOCK_CLOEXEC, ignored).
    pub fn accept4(&self, fd: i32, flags: i32) -> Result<(i32, SocketAddr)> {
        if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        let s = self.with(|st, _| sock(st, fd))?;
        if s.kind != Kind::Stream {
            return Err(Errno::EOPNOTSUPP);
        }
        self.call(wait_for(&s, 0, s.rcvtimeo), |st| {
            let (handle, peer) = st.stack.tcp_accept(s.handle)?;
            let entry = SockEntry {
                handle,
                kind: Kind::Stream,
                nonblocking: flags & SOCK_NONBLOCK != 0,
                rcvtimeo: None,
                sndtimeo: None,
                linger: None,
                v6: s.v6,
                sigio: Default::default(),
            };
            match st.fds.insert(Entry::Socket(entry)) {
                Some(nfd) => Ok((nfd, addr_out(&s, peer))),
                None => {
                    let _ = st.stack.close(handle);
                    Err(Errno::EMFILE)
                }
            }
        })
    }

    /// shutdown(2) with SHUT_RD, SHUT_WR or SHUT_RDWR.
    pub fn shutdown(&self, fd: i32, how: i32) -> Result<()> {
        let how = match how {
            SHUT_RD => Shutdown::Read,
            SHUT_WR => Shutdown::Write,
            SHUT_RDWR => Shutdown::Both,
            _ => return Err(Errno::EINVAL),
        };
        self.with(|st, now| {
            let s = sock(st, fd)?;
            match s.kind {
                Kind::Stream => st.stack.tcp_shutdown(now, s.handle, how),
                Kind::Datagram => Err(Errno::EOPNOTSUPP),
            }
        })
    }

    /// sendto(2): `to` may be None on a connected socket.
    pub fn sendto(&self, fd: i32, buf: &[u8], flags: i32, to: Option<SocketAddr>) -> Result<usize> {
        let s = self.with(|st, _| sock(st, fd))?;
        match s.kind {
            Kind::Datagram => self.call(wait_for(&s, flags, s.sndtimeo), |st| {
                let to = to.map(|a| addr_in(st, &s, a, Use::Send)).transpose()?;
                bind_v6_wildcard(st, &s)?;
                st.stack.udp_send_to(s.handle, buf, to)
            }),
            Kind::Stream if to.is_some() => Err(Errno::EISCONN),
            Kind::Stream => self.stream_send(&s, buf, flags),
        }
    }

    /// A stream send: non-blocking, what fits (EAGAIN if nothing does);
    /// blocking, returns only once all of `buf` is in the send buffer (or
    /// an error or SO_SNDTIMEO ends it after part: then the part's length).
    fn stream_send(&self, s: &SockEntry, buf: &[u8], flags: i32) -> Result<usize> {
        let Some(timeout) = wait_for(s, flags, s.sndtimeo) else {
            return self.with(|st, now| tcp_send(st, now, s.handle, buf));
        };
        let mut done = 0;
        let r = self.wait(timeout, |st, now| {
            while done < buf.len() {
                match tcp_send(st, now, s.handle, &buf[done..]) {
                    Ok(0) => return Err(Errno::EAGAIN),
                    Ok(n) => done += n,
                    Err(e) => return Err(e),
                }
            }
            Ok(done)
        });
        match r {
            Err(_) if done > 0 => Ok(done),
            r => r,
        }
    }

    /// send(2).
    pub fn send(&self, fd: i32, buf: &[u8], flags: i32) -> Result<usize> {
        self.sendto(fd, buf, flags, None)
    }

    /// write(2): send with no flags.
    pub fn write(&self, fd: i32, buf: &[u8]) -> Result<usize> {
        self.send(fd, buf, 0)
    }

    /// sendfile(2) to a TCP socket: `count` bytes of `file` from
    /// `offset` (clipped to its end) go out without a user-space bounce
    /// buffer: a regular file is mapped read-only and the mapping lent to
    /// the stack whole, segments and retransmissions reading the file's
    /// pages until the peer ACKs them (then it is unmapped). Other files
    /// are read into a buffer first. Returns the bytes queued (all of
    /// them; 0 at or past the end), or waits (blocking socket) or EAGAIN
    /// while the handshake runs; the errors of send. The file must not
    /// shrink while being sent (a page past its end faults).
    pub fn sendfile(
        &self,
        fd: i32,
        file: &std::fs::File,
        offset: u64,
        count: usize,
    ) -> Result<usize> {
        let s = self.with(|st, _| sock(st, fd))?;
        if s.kind != Kind::Stream {
            return Err(Errno::EINVAL);
        }
        let meta = file.metadata().map_err(|_| Errno::EINVAL)?;
        let buf: Box<dyn ustack_core::SendBuf> = if meta.is_file() {
            let len = meta.len().saturating_sub(offset).min(count as u64) as usize;
            if len == 0 {
                return Ok(0);
            }
            Box::new(crate::mapped::FileMap::new(file, offset, len).map_err(|_| Errno::ENOMEM)?)
        } else {
            use std::os::unix::fs::FileExt;
            let mut v = vec![0u8; count];
            let n = file.read_at(&mut v, offset).map_err(|_| Errno::EINVAL)?;
            if n == 0 {
                return Ok(0);
            }
            v.truncate(n);
            Box::new(v)
        };
        let len = buf.bytes().len();
        let mut buf = Some(buf);
        let mut op = |st: &mut State, now| {
            let Some(b) = buf.take() else {
                return Err(Errno::EINVAL);
            };
            let detached = ustack_core::tcp::ZC_DETACHED;
            match st.stack.tcp_send_zc(now, s.handle, b, detached) {
                Ok(()) => Ok(len),
                Err((e, b)) => {
                    buf = Some(b);
                    Err(e)
                }
            }
        };
        match wait_for(&s, 0, s.sndtimeo) {
            None => self.with(|st, now| op(st, now)),
            Some(timeout) => self.wait(timeout, |st, now| op(st, now)),
        }
    }

    /// recvfrom(2): returns the bytes read and the sender. With MSG_TRUNC a
    /// datagram socket returns the datagram's real length.
    pub fn recvfrom(
        &self,
        fd: i32,
        buf: &mut [u8],
        flags: i32,
    ) -> Result<(usize, Option<SocketAddr>)> {
        let s = self.with(|st, _| sock(st, fd))?;
        match s.kind {
            Kind::Datagram => self.call(wait_for(&s, flags, s.rcvtimeo), |st| {
                let (n, full, from) = if flags & MSG_PEEK != 0 {
                    st.stack.udp_peek_from(s.handle, buf)?
                } else {
                    st.stack.udp_recv_from(s.handle, buf)?
                };
                let from = addr_out(&s, from);
                Ok((if flags & MSG_TRUNC != 0 { full } else { n }, Some(from)))
            }),
            Kind::Stream => self.stream_recv(&s, buf, flags).map(|n| (n, None)),
        }
    }

    /// A stream receive: returns as soon as any bytes are there (all of
    /// `buf` with MSG_WAITALL, unless EOF or an error comes first), 0 at EOF.
    fn stream_recv(&self, s: &SockEntry, buf: &mut [u8], flags: i32) -> Result<usize> {
        let peek = flags & MSG_PEEK != 0;
        let all = flags & MSG_WAITALL != 0 && !peek;
        let read = |st: &mut State, b: &mut [u8]| {
            if peek {
                st.stack.tcp_peek(s.handle, b)
            } else {
                st.stack.tcp_recv(s.handle, b)
            }
        };
        let Some(timeout) = wait_for(s, flags, s.rcvtimeo) else {
            return self.with(|st, _| read(st, buf));
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let mut got = 0;
        let r = self.wait(timeout, |st, _| loop {
            match read(st, &mut buf[got..]) {
                Ok(0) => return Ok(got),
                Ok(n) => {
                    got += n;
                    if !all || got == buf.len() {
                        return Ok(got);
                    }
                }
                Err(Errno::EAGAIN) if got > 0 && !all => return Ok(got),
                Err(e) => return Err(e),
            }
        });
        match r {
            Err(_) if got > 0 => Ok(got),
            r => r,
        }
    }

    /// recv(2).
    pub fn recv(&self, fd: i32, buf: &mut [u8], flags: i32) -> Result<usize> {
        self.recvfrom(fd, buf, flags).map(|(n, _)| n)
    }

    /// read(2): recv with no flags.
    pub fn read(&self, fd: i32, buf: &mut [u8]) -> Result<usize> {
        self.recv(fd, buf, 0)
    }

    /// close(2): frees the descriptor; an epoll instance forgets what it watched.
    pub fn close(&self, fd: i32) -> Result<()> {
        self.linger_before_close(fd);
        self.with(|st, _| match st.fds.get(fd).ok_or(Errno::EBADF)? {
            Entry::Socket(_) => {
                let h = st.forget_fd(fd).ok_or(Errno::EBADF)?;
                st.stack.close(h)
            }
            Entry::Epoll => {
                st.fds.remove(fd);
                let set = st.epolls.remove(&fd).unwrap_or_default();
                let watched: Vec<(i32, SocketHandle)> = set
                    .fds()
                    .filter_map(|wfd| match st.fds.get(wfd) {
                        Some(Entry::Socket(s)) => Some((wfd, s.handle)),
                        _ => None,
                    })
                    .collect();
                for (wfd, h) in watched {
                    st.unwatch(h, fd, wfd);
                }
                Ok(())
            }
        })
    }

    /// SO_LINGER with a time on a blocking stream: send FIN after the queued
    /// data and wait up to that time for all of it to be acknowledged, as
    /// Linux's close does; the close that follows then finds little to do.
    fn linger_before_close(&self, fd: i32) {
        let Ok(s) = self.with(|st, _| sock(st, fd)) else {
            return;
        };
        let Some(t) = s
            .linger
            .filter(|_| s.kind == Kind::Stream && !s.nonblocking)
        else {
            return;
        };
        if self
            .with(|st, now| st.stack.tcp_shutdown(now, s.handle, Shutdown::Write))
            .is_err()
        {
            return;
        }
        let _ = self.wait(Some(t), |st, _| {
            let info = st.stack.tcp_info(s.handle)?;
            if info.send_queue == 0 && info.unacked == 0 {
                Ok(())
            } else {
                Err(Errno::EAGAIN)
            }
        });
    }

    /// getsockname(2).
    pub fn getsockname(&self, fd: i32) -> Result<SocketAddr> {
        self.with(|st, _| {
            let s = sock(st, fd)?;
            let unbound = if s.v6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            let a = st.stack.local_addr(s.handle)?;
            Ok(addr_out(&s, a.unwrap_or(SocketAddr::new(unbound, 0))))
        })
    }

    /// getpeername(2): ENOTCONN when not connected.
    pub fn getpeername(&self, fd: i32) -> Result<SocketAddr> {
        self.with(|st, _| {
            let s = sock(st, fd)?;
            Ok(addr_out(&s, st.stack.peer_addr(s.handle)?))
        })
    }

    /// fcntl(2) on a socket: F_GETFL / F_SETFL (O_NONBLOCK and O_ASYNC
    /// change; the access mode stays O_RDWR), and for signal-driven I/O
    /// F_SETOWN / F_GETOWN (a pid, or minus a process group; ESRCH if
    /// none has it) and F_SETSIG / F_GETSIG (0: SIGIO; EINVAL beyond the
    /// last signal), as Linux's fs/fcntl.c. With O_ASYNC and an owner, the
    /// socket signals the owner when it turns readable or writable (see
    /// [`crate::signal`]). A descriptor that is not open is EBADF.
    pub fn fcntl(&self, fd: i32, cmd: i32, arg: i32) -> Result<i32> {
        self.with(|st, _| {
            let s = sock_mut(st, fd)?;
            match cmd {
                F_GETFL => Ok(O_RDWR
                    | if s.nonblocking { O_NONBLOCK } else { 0 }
                    | if s.sigio.on { O_ASYNC } else { 0 }),
                F_SETFL => {
                    s.nonblocking = arg & O_NONBLOCK != 0;
                    s.sigio.on = arg & O_ASYNC != 0;
                    sync_sigio(st, fd)?;
                    Ok(0)
                }
                F_GETOWN => Ok(s.sigio.owner.getown()),
                F_SETOWN => {
                    let owner = crate::signal::Owner::from_setown(arg);
                    if !crate::signal::exists(owner) {
                        return Err(Errno::ESRCH);
                    }
                    s.sigio.owner = owner;
                    sync_sigio(st, fd)?;
                    Ok(0)
                }
                F_GETSIG => Ok(s.sigio.sig),
                F_SETSIG => {
                    if !(0..=NSIG).contains(&arg) {
                        return Err(Errno::EINVAL);
                    }
                    s.sigio.sig = arg;
                    sync_sigio(st, fd)?;
                    Ok(0)
                }
                _ => Err(Errno::EINVAL),
            }
        })
    }

    /// fcntl(2) F_SETOWN_EX: `ty` F_OWNER_TID (one thread), F_OWNER_PID
    /// or F_OWNER_PGRP; EINVAL for another type, ESRCH if no such id.
    pub fn fcntl_setown_ex(&self, fd: i32, ty: i32, pid: i32) -> Result<()> {
        let owner = crate::signal::Owner::from_ex(ty, pid).ok_or(Errno::EINVAL)?;
        if !crate::signal::exists(owner) {
            return Err(Errno::ESRCH);
        }
        self.with(|st, _| {
            sock_mut(st, fd)?.sigio.owner = owner;
            sync_sigio(st, fd)
        })
    }

    /// fcntl(2) F_GETOWN_EX: the owner as (type, id).
    pub fn fcntl_getown_ex(&self, fd: i32) -> Result<(i32, i32)> {
        self.with(|st, _| Ok(sock_mut(st, fd)?.sigio.owner.to_ex()))
    }

    /// setsockopt(2).
    pub fn setsockopt(&self, fd: i32, level: i32, name: i32, value: OptVal) -> Result<()> {
        self.with(|st, now| {
            let s = sock(st, fd)?;
            match (level, name) {
                (SOL_SOCKET, SO_RCVTIMEO) | (SOL_SOCKET, SO_SNDTIMEO) => {
                    let OptVal::Time(t) = value else {
                        return Err(Errno::EINVAL);
                    };
                    let t = t.filter(|d| !d.is_zero());
                    let e = sock_mut(st, fd)?;
                    if name == SO_RCVTIMEO {
                        e.rcvtimeo = t;
                    } else {
                        e.sndtimeo = t;
                    }
                    Ok(())
                }
                (SOL_SOCKET, SO_RCVBUF) | (SOL_SOCKET, SO_SNDBUF) => {
                    // Linux doubles the value to account for bookkeeping overhead.
                    let v = usize::try_from(value.int()?)
                        .map_err(|_| Errno::EINVAL)?
                        .saturating_mul(2);
                    let (r, w) = if name == SO_RCVBUF {
                        (Some(v), None)
                    } else {
                        (None, Some(v))
                    };
                    match s.kind {
                        Kind::Datagram => st.stack.udp_set_buffers(s.handle, r, w),
                        Kind::Stream => st.stack.tcp_set_buffers(s.handle, r, w),
                    }
                }
                (IPPROTO_IPV6, _) if !s.v6 => Err(Errno::ENOPROTOOPT),
                (IPPROTO_IPV6, IPV6_V6ONLY) => {
                    let on = value.int()? != 0;
                    match s.kind {
                        Kind::Stream => st.stack.tcp_set_v6only(s.handle, on),
                        Kind::Datagram => st.stack.udp_set_v6only(s.handle, on),
                    }
                }
                (IPPROTO_IPV6, IPV6_UNICAST_HOPS) => {
                    // -1: the default; else 0..=255 (ipv6(7)).
                    let hops = match value.int()? {
                        -1 => None,
                        v => Some(u8::try_from(v).map_err(|_| Errno::EINVAL)?),
                    };
                    match s.kind {
                        Kind::Stream => st.stack.tcp_set_unicast_hops(s.handle, hops),
                        Kind::Datagram => st.stack.udp_set_unicast_hops(s.handle, hops),
                    }
                }
                (IPPROTO_IPV6, _) => Err(Errno::ENOPROTOOPT),
                _ if s.kind == Kind::Stream => {
                    set_tcp_opt(st, now, fd, s.handle, level, name, &value)
                }
                _ => Err(Errno::ENOPROTOOPT),
            }
        })
    }

    /// getsockopt(2).
    pub fn getsockopt(&self, fd: i32, level: i32, name: i32) -> Result<OptVal> {
        self.with(|st, _| {
            let s = sock(st, fd)?;
            match (level, name) {
                (SOL_SOCKET, SO_ERROR) => Ok(OptVal::Int(
                    st.stack.take_error(s.handle)?.map_or(0, |e| e.raw()),
                )),
                (SOL_SOCKET, SO_TYPE) => Ok(OptVal::Int(match s.kind {
                    Kind::Stream => SOCK_STREAM,
                    Kind::Datagram => SOCK_DGRAM,
                })),
                (IPPROTO_IPV6, IPV6_V6ONLY) if s.v6 => Ok(OptVal::Int(i32::from(v6only(st, &s)?))),
                (IPPROTO_IPV6, IPV6_UNICAST_HOPS) if s.v6 => {
                    let hops = match s.kind {
                        Kind::Stream => st.stack.tcp_options(s.handle)?.unicast_hops,
                        Kind::Datagram => st.stack.udp_v6_options(s.handle)?.1,
                    };
                    Ok(OptVal::Int(
                        hops.map_or(st.stack.config().hop_limit6.into(), i32::from),
                    ))
                }
                (SOL_SOCKET, SO_RCVTIMEO) => Ok(OptVal::Time(s.rcvtimeo)),
                (SOL_SOCKET, SO_SNDTIMEO) => Ok(OptVal::Time(s.sndtimeo)),
                (IPPROTO_TCP, TCP_INFO) if s.kind == Kind::Stream => {
                    Ok(OptVal::TcpInfo(Box::new(st.stack.tcp_info(s.handle)?)))
                }
                (IPPROTO_TCP, TCP_CONGESTION) if s.kind == Kind::Stream => {
                    let o = st.stack.tcp_options(s.handle)?;
                    Ok(OptVal::Name(o.congestion.name().to_string()))
                }
                (SOL_SOCKET, SO_MAX_PACING_RATE) if s.kind == Kind::Stream => {
                    // As Linux's 32-bit form: ~0U for no ceiling.
                    let o = st.stack.tcp_options(s.handle)?;
                    let r = o
                        .max_pacing_rate
                        .map_or(u32::MAX, |r| r.min(u64::from(u32::MAX)) as u32);
                    Ok(OptVal::Int(r as i32))
                }
                (IPPROTO_TCP, TCP_NODELAY | TCP_CORK) if s.kind == Kind::Stream => {
                    let o = st.stack.tcp_options(s.handle)?;
                    let on = if name == TCP_NODELAY {
                        o.nodelay
                    } else {
                        o.cork
                    };
                    Ok(OptVal::Int(i32::from(on)))
                }
                _ => Err(Errno::ENOPROTOOPT),
            }
        })
    }

    /// epoll_create1(2).
    pub fn epoll_create1(&self, flags: i32) -> Result<i32> {
        if flags & !EPOLL_CLOEXEC != 0 {
            return Err(Errno::EINVAL);
        }
        self.with(|st, _| {
            let ep = st.fds.insert(Entry::Epoll).ok_or(Errno::EMFILE)?;
            st.epolls.insert(ep, EpollSet::new());
            Ok(ep)
        })
    }

    /// epoll_ctl(2): ADD/MOD need an event; EEXIST, ENOENT, EBADF, EINVAL
    /// (an epoll watching itself), EPERM (not a socket) as Linux.
    /// An ADD or MOD of an fd that is ready now wakes the threads waiting
    /// on `epfd`, as Linux's ep_insert/ep_modify do: another thread may
    /// hand a connection to a loop blocked in epoll_wait this way.
    pub fn epoll_ctl(&self, epfd: i32, op: i32, fd: i32, event: Option<EpollEvent>) -> Result<()> {
        let ready = self.with(|st, _| {
            match st.fds.get(epfd) {
                Some(Entry::Epoll) => {}
                Some(_) => return Err(Errno::EINVAL),
                None => return Err(Errno::EBADF),
            }
            if epfd == fd {
                return Err(Errno::EINVAL);
            }
            let handle = match st.fds.get(fd) {
                Some(Entry::Socket(s)) => s.handle,
                Some(Entry::Epoll) => return Err(Errno::EPERM),
                None => return Err(Errno::EBADF),
            };
            let current = fd_mask(&st.fds, &st.stack, fd);
            let set = st.epolls.get_mut(&epfd).ok_or(Errno::EBADF)?;
            match op {
                EPOLL_CTL_ADD => {
                    set.add(fd, event.ok_or(Errno::EINVAL)?, current)?;
                    st.watch(handle, epfd, fd);
                }
                EPOLL_CTL_MOD => set.modify(fd, event.ok_or(Errno::EINVAL)?, current)?,
                EPOLL_CTL_DEL => {
                    set.delete(fd)?;
                    st.unwatch(handle, epfd, fd);
                    return Ok(false);
                }
                _ => return Err(Errno::EINVAL),
            }
            Ok(st.epolls.get(&epfd).is_some_and(|s| s.has_ready()))
        })?;
        if ready {
            // After the lock is let go: a waiter either looked after the
            // ADD, or sleeps and is woken now.
            self.shared().wake_waiters();
        }
        Ok(())
    }

    /// epoll_wait(2): fills `events`, returns how many; `timeout_ms` -1
    /// waits forever, 0 returns at once.
    pub fn epoll_wait(
        &self,
        epfd: i32,
        events: &mut [EpollEvent],
        timeout_ms: i32,
    ) -> Result<usize> {
        if events.is_empty() {
            return Err(Errno::EINVAL);
        }
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        let mut collect = |st: &mut State| -> Result<usize> {
            let State {
                epolls, fds, stack, ..
            } = st;
            let set = epolls.get_mut(&epfd).ok_or(Errno::EBADF)?;
            // Only the ready list is looked at, never every watched socket.
            let got = set.collect(events.len(), |fd| fd_mask(fds, stack, fd));
            if got.is_empty() {
                return Err(Errno::EAGAIN);
            }
            events[..got.len()].copy_from_slice(&got);
            Ok(got.len())
        };
        match timeout {
            Some(t) if t.is_zero() => match self.with(|st, _| collect(st)) {
                Err(Errno::EAGAIN) => Ok(0),
                r => r,
            },
            t => match self.wait(t, |st, _| collect(st)) {
                Err(Errno::EAGAIN) => Ok(0),
                r => r,
            },
        }
    }
}

/// Calls for async callers: non-blocking whatever the descriptor's mode,
/// and on EAGAIN the task's waker is kept under the same lock as the try,
/// so no readiness change can fall between the two (one lock round per
/// call; see [`Runtime::register_waker`]).
impl Runtime {
    pub(crate) fn or_wake<R>(
        &self,
        fd: i32,
        interest: Interest,
        waker: &Waker,
        op: impl FnOnce(&mut State, &SockEntry, Instant) -> Result<R>,
    ) -> Result<R> {
        self.with(|st, now| {
            let s = sock(st, fd)?;
            match op(st, &s, now) {
                Err(Errno::EAGAIN) => {
                    st.register_waker(s.handle, interest, waker);
                    Err(Errno::EAGAIN)
                }
                r => r,
            }
        })
    }

    /// recvfrom(2) with MSG_DONTWAIT; on EAGAIN `waker` is woken when the
    /// socket turns readable. `flags`: MSG_PEEK, MSG_TRUNC.
    pub fn recvfrom_or_wake(
        &self,
        fd: i32,
        buf: &mut [u8],
        flags: i32,
        waker: &Waker,
    ) -> Result<(usize, Option<SocketAddr>)> {
        let peek = flags & MSG_PEEK != 0;
        self.or_wake(fd, Interest::Read, waker, |st, s, _| match s.kind {
            Kind::Datagram => {
                let (n, full, from) = if peek {
                    st.stack.udp_peek_from(s.handle, buf)?
                } else {
                    st.stack.udp_recv_from(s.handle, buf)?
                };
                let from = addr_out(s, from);
                Ok((if flags & MSG_TRUNC != 0 { full } else { n }, Some(from)))
            }
            Kind::Stream if peek => Ok((st.stack.tcp_peek(s.handle, buf)?, None)),
            Kind::Stream => Ok((st.stack.tcp_recv(s.handle, buf)?, None)),
        })
    }

    /// sendto(2) with MSG_DONTWAIT (`to` None: the connected peer); on
    /// EAGAIN `waker` is woken when the socket turns writable.
    pub fn sendto_or_wake(
        &self,
        fd: i32,
        buf: &[u8],
        to: Option<SocketAddr>,
        waker: &Waker,
    ) -> Result<usize> {
        self.or_wake(fd, Interest::Write, waker, |st, s, now| match s.kind {
            Kind::Datagram => {
                let to = to.map(|a| addr_in(st, s, a, Use::Send)).transpose()?;
                bind_v6_wildcard(st, s)?;
                st.stack.udp_send_to(s.handle, buf, to)
            }
            Kind::Stream if to.is_some() => Err(Errno::EISCONN),
            Kind::Stream => tcp_send(st, now, s.handle, buf),
        })
    }

    /// accept4(2) without waiting; on EAGAIN `waker` is woken when a
    /// connection is ready. `flags`: SOCK_NONBLOCK (and SOCK_CLOEXEC).
    pub fn accept4_or_wake(&self, fd: i32, flags: i32, waker: &Waker) -> Result<(i32, SocketAddr)> {
        if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
            return Err(Errno::EINVAL);
        }
        self.or_wake(fd, Interest::Read, waker, |st, s, _| {
            if s.kind != Kind::Stream {
                return Err(Errno::EOPNOTSUPP);
            }
            let (handle, peer) = st.stack.tcp_accept(s.handle)?;
            let entry = SockEntry {
                handle,
                kind: Kind::Stream,
                nonblocking: flags & SOCK_NONBLOCK != 0,
                rcvtimeo: None,
                sndtimeo: None,
                linger: None,
                v6: s.v6,
                sigio: Default::default(),
            };
            match st.fds.insert(Entry::Socket(entry)) {
                Some(nfd) => Ok((nfd, addr_out(s, peer))),
                None => {
                    let _ = st.stack.close(handle);
                    Err(Errno::EMFILE)
                }
            }
        })
    }
}

/// The TCP and SOL_SOCKET options of a stream socket.
fn set_tcp_opt(
    st: &mut State,
    now: Instant,
    fd: i32,
    h: SocketHandle,
    level: i32,
    name: i32,
    v: &OptVal,
) -> Result<()> {
    let secs = |v: &OptVal| -> Result<Duration> {
        let n = v.int()?;
        if n <= 0 {
            return Err(Errno::EINVAL);
        }
        Ok(Duration::from_secs(n as u64))
    };
    let stack = &mut st.stack;
    match (level, name) {
        (SOL_SOCKET, SO_REUSEADDR) => stack.tcp_set_reuseaddr(h, v.int()? != 0),
        (SOL_SOCKET, SO_REUSEPORT) => stack.tcp_set_reuseport(h, v.int()? != 0),
        (SOL_SOCKET, SO_KEEPALIVE) => stack.tcp_set_keepalive(now, h, v.int()? != 0),
        (SOL_SOCKET, SO_LINGER) => match *v {
            OptVal::Linger { onoff, secs } => {
                let linger =
                    onoff.then(|| Duration::from_secs(u64::try_from(secs.max(0)).unwrap_or(0)));
                stack.tcp_set_linger(h, linger)?;
                if let Some(Entry::Socket(e)) = st.fds.get_mut(fd) {
                    e.linger = linger.filter(|d| !d.is_zero());
                }
                Ok(())
            }
            _ => Err(Errno::EINVAL),
        },
        (SOL_SOCKET, SO_MAX_PACING_RATE) => {
            // Bytes per second, read as Linux's unsigned 32-bit form: ~0U
            // is no ceiling.
            let r = v.int()? as u32;
            stack.tcp_set_max_pacing_rate(h, (r != u32::MAX).then_some(u64::from(r)))
        }
        (IPPROTO_TCP, TCP_NODELAY) => stack.tcp_set_nodelay(h, v.int()? != 0),
        (IPPROTO_TCP, TCP_CORK) => stack.tcp_set_cork(h, v.int()? != 0),
        (IPPROTO_TCP, TCP_CONGESTION) => match v {
            // ENOENT for an unknown name, as Linux.
            OptVal::Name(n) => stack.tcp_set_congestion(h, n.parse().map_err(|_| Errno::ENOENT)?),
            _ => Err(Errno::EINVAL),
        },
        (IPPROTO_TCP, TCP_MAXSEG) => {
            stack.tcp_set_maxseg(h, u16::try_from(v.int()?).map_err(|_| Errno::EINVAL)?)
        }
        (IPPROTO_TCP, TCP_KEEPIDLE) => {
            stack.tcp_set_keepalive_params(now, h, Some(secs(v)?), None, None)
        }
        (IPPROTO_TCP, TCP_KEEPINTVL) => {
            stack.tcp_set_keepalive_params(now, h, None, Some(secs(v)?), None)
        }
        (IPPROTO_TCP, TCP_KEEPCNT) => {
            let n = u32::try_from(v.int()?).map_err(|_| Errno::EINVAL)?;
            if n == 0 {
                return Err(Errno::EINVAL);
            }
            stack.tcp_set_keepalive_params(now, h, None, None, Some(n))
        }
        (IPPROTO_TCP, TCP_USER_TIMEOUT) => {
            let ms = u64::try_from(v.int()?).map_err(|_| Errno::EINVAL)?;
            stack.tcp_set_user_timeout(h, (ms > 0).then(|| Duration::from_millis(ms)))
        }
        _ => Err(Errno::ENOPROTOOPT),
    }
}

pub const POLLIN: i16 = libc::POLLIN;
pub const POLLPRI: i16 = libc::POLLPRI;
pub const POLLOUT: i16 = libc::POLLOUT;
pub const POLLERR: i16 = libc::POLLERR;
pub const POLLHUP: i16 = libc::POLLHUP;
pub const POLLNVAL: i16 = libc::POLLNVAL;
pub const POLLRDHUP: i16 = libc::POLLRDHUP;

/// One entry of [`Runtime::poll`], as `struct pollfd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollFd {
    pub fd: i32,
    pub events: i16,
    pub revents: i16,
}

impl PollFd {
    pub fn new(fd: i32, events: i16) -> PollFd {
        PollFd {
            fd,
            events,
            revents: 0,
        }
    }
}

/// poll(2)'s view of an epoll mask.
fn poll_bits(m: u32) -> i16 {
    use crate::epoll::{EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLPRI, EPOLLRDHUP};
    let mut r = 0;
    for (e, p) in [
        (EPOLLIN, POLLIN),
        (EPOLLPRI, POLLPRI),
        (EPOLLOUT, POLLOUT),
        (EPOLLERR, POLLERR),
        (EPOLLHUP, POLLHUP),
        (EPOLLRDHUP, POLLRDHUP),
    ] {
        if m & e != 0 {
            r |= p;
        }
    }
    r
}

impl Runtime {
    /// poll(2): fills each entry's `revents` and returns how many are
    /// non-zero; waits up to `timeout_ms` (-1: forever) for one. A negative
    /// fd is skipped; a closed one reports POLLNVAL. Built on the same
    /// readiness as epoll, but (like poll) it looks at every entry it is given.
    pub fn poll(&self, fds: &mut [PollFd], timeout_ms: i32) -> Result<usize> {
        let timeout = (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64));
        let mut scan = |st: &mut State| -> Result<usize> {
            let mut n = 0;
            for p in fds.iter_mut() {
                p.revents = if p.fd < 0 {
                    0
                } else {
                    match st.fds.get(p.fd) {
                        Some(Entry::Socket(_)) => {
                            let bits = poll_bits(fd_mask(&st.fds, &st.stack, p.fd));
                            bits & (p.events | POLLERR | POLLHUP)
                        }
                        Some(Entry::Epoll) => 0,
                        None => POLLNVAL,
                    }
                };
                n += usize::from(p.revents != 0);
            }
            if n == 0 {
                Err(Errno::EAGAIN)
            } else {
                Ok(n)
            }
        };
        let r = match timeout {
            Some(t) if t.is_zero() => self.with(|st, _| scan(st)),
            t => self.wait(t, |st, _| scan(st)),
        };
        match r {
            Err(Errno::EAGAIN) => Ok(0),
            r => r,
        }
    }

    /// select(2) in Rust clothes: keeps in `read` and `write` only the
    /// descriptors ready for it and returns how many remain in all. EBADF
    /// for a descriptor that is not open.
    pub fn select(
        &self,
        read: &mut Vec<i32>,
        write: &mut Vec<i32>,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        let mut fds: Vec<PollFd> = read
            .iter()
            .map(|&fd| PollFd::new(fd, POLLIN))
            .chain(write.iter().map(|&fd| PollFd::new(fd, POLLOUT)))
            .collect();
        let ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
        self.poll(&mut fds, ms)?;
        if fds.iter().any(|p| p.revents & POLLNVAL != 0) {
            return Err(Errno::EBADF);
        }
        let (r, w) = fds.split_at(read.len());
        let ready = |p: &PollFd, want: i16| p.revents & (want | POLLERR | POLLHUP) != 0;
        *read = r
            .iter()
            .filter(|p| ready(p, POLLIN))
            .map(|p| p.fd)
            .collect();
        *write = w
            .iter()
            .filter(|p| ready(p, POLLOUT))
            .map(|p| p.fd)
            .collect();
        Ok(read.len() + write.len())
    }
}
