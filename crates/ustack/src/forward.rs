//! Calls for forwarding engines (TUN proxies, VPNs), on descriptors: the
//! any-destination TCP listener with connect-before-accept and the
//! any-destination UDP socket (`ustack_core::forward`). The stack must be
//! made with `StackConfig::transparent` to see traffic to other hosts.

use crate::fd::{Entry, Kind, SockEntry};
use crate::posix::sock;
use crate::runtime::{Interest, Runtime};
use std::net::SocketAddrV4;
use std::task::Waker;
use ustack_core::errno::Result;
use ustack_core::Errno;

impl Runtime {
    /// Makes the TCP socket `fd` (fresh, unbound) the any-destination
    /// listener (`Stack::tcp_listen_any`).
    pub fn listen_any(&self, fd: i32, backlog: usize, defer: bool, max_conns: usize) -> Result<()> {
        self.with(|st, _| {
            let s = sock(st, fd)?;
            if s.kind != Kind::Stream {
                return Err(Errno::EOPNOTSUPP);
            }
            st.stack.tcp_listen_any(s.handle, backlog, defer, max_conns)
        })
    }

    /// The any-destination listener's next connection, as a new
    /// descriptor (non-blocking if `nonblocking`), with the client and the
    /// original destination. A deferred one must be answered
    /// ([`answer`](Self::answer)) or refused ([`refuse`](Self::refuse)).
    /// On EAGAIN `waker` is woken when one arrives.
    pub fn take_pending_or_wake(
        &self,
        fd: i32,
        nonblocking: bool,
        waker: &Waker,
    ) -> Result<(i32, SocketAddrV4, SocketAddrV4)> {
        self.or_wake(fd, Interest::Read, waker, |st, s, now| {
            if s.kind != Kind::Stream {
                return Err(Errno::EOPNOTSUPP);
            }
            let (handle, peer, dst) = st.stack.tcp_take_pending(s.handle)?;
            let (peer, dst) = (crate::posix::v4_only(peer)?, crate::posix::v4_only(dst)?);
            let entry = SockEntry {
                handle,
                kind: Kind::Stream,
                nonblocking,
                rcvtimeo: None,
                sndtimeo: None,
                linger: None,
                v6: false,
                sigio: Default::default(),
            };
            match st.fds.insert(Entry::Socket(entry)) {
                Some(nfd) => Ok((nfd, peer, dst)),
                None => {
                    let _ = st.stack.tcp_refuse(now, handle);
                    let _ = st.stack.close(handle);
                    Err(Errno::EMFILE)
                }
            }
        })
    }

    /// Sends a deferred connection's SYN-ACK (`Stack::tcp_answer`).
    pub fn answer(&self, fd: i32) -> Result<()> {
        self.with(|st, now| {
            let s = sock(st, fd)?;
            st.stack.tcp_answer(now, s.handle)
        })
    }

    /// Refuses a taken connection with a RST (`Stack::tcp_refuse`).
    pub fn refuse(&self, fd: i32) -> Result<()> {
        self.with(|st, now| {
            let s = sock(st, fd)?;
            st.stack.tcp_refuse(now, s.handle)
        })
    }

    /// Makes the UDP socket `fd` (unbound) the any-destination socket.
    pub fn bind_any(&self, fd: i32) -> Result<()> {
        self.with(|st, _| {
            let s = sock(st, fd)?;
            if s.kind != Kind::Datagram {
                return Err(Errno::EOPNOTSUPP);
            }
            st.stack.udp_bind_any(s.handle)
        })
    }

    /// The next datagram with its source and the address it was sent to;
    /// on EAGAIN `waker` is woken when one arrives.
    pub fn recv_from_to_or_wake(
        &self,
        fd: i32,
        buf: &mut [u8],
        waker: &Waker,
    ) -> Result<(usize, SocketAddrV4, SocketAddrV4)> {
        self.or_wake(fd, Interest::Read, waker, |st, s, _| {
            let (n, _, from, to) = st.stack.udp_recv_from_to(s.handle, buf)?;
            Ok((n, crate::posix::v4_only(from)?, crate::posix::v4_only(to)?))
        })
    }

    /// Sends a datagram from `from` (any address) to `to` on the
    /// any-destination socket; on EAGAIN `waker` is woken when writable.
    pub fn send_from_or_wake(
        &self,
        fd: i32,
        buf: &[u8],
        from: SocketAddrV4,
        to: SocketAddrV4,
        waker: &Waker,
    ) -> Result<usize> {
        self.or_wake(fd, Interest::Write, waker, |st, s, _| {
            st.stack
                .udp_send_from(s.handle, buf, from.into(), to.into())
        })
    }
}
