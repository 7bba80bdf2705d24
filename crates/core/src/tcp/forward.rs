//! The any-destination listener, for forwarding engines (TUN proxies and
//! VPNs): it takes SYNs to any address and port that no other listener
//! takes (with [`StackConfig::transparent`](crate::StackConfig::transparent),
//! those to other hosts too), and an accepted socket's local address
//! (`getsockname`) is the destination the client asked for.
//!
//! Connect-before-accept: with `defer`, a SYN makes a SYN-RECEIVED TCB that
//! sends nothing until the application, having tried the destination,
//! answers it (`tcp_answer`: the SYN-ACK goes out) or refuses it
//! (`tcp_refuse`: a RST, so the client sees ECONNREFUSED as it would from
//! the destination). Until then the client's retransmitted SYNs are
//! dropped. The bounds are a listener's: deferred and half-open TCBs count
//! against the SYN queue (`max_syn_backlog`), beyond which SYN cookies
//! answer at once (RFC 4987; such a connection arrives established, not
//! deferred) or the SYN is dropped; and `max_conns` caps the TCBs the
//! listener made that are alive, whatever their state.

use super::state::State;
use super::table::{Forward, Kind, Listener, Tcp, TcpSocket};
use super::tcb::TcbId;
use crate::cx::Cx;
use crate::errno::{Errno, Result};
use crate::event::EventKind;
use crate::socket::{Proto, SocketHandle};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use ustack_wire::Ipv4Addr;

impl Tcp {
    /// Makes `h` (fresh, unbound) the any-destination listener. `defer`:
    /// connect-before-accept (see the module docs); `max_conns`: the most
    /// connections it may have alive at once. EADDRINUSE if there is one
    /// already, EINVAL if `h` is bound or connected.
    pub fn tcp_listen_any(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        backlog: usize,
        defer: bool,
        max_conns: usize,
    ) -> Result<()> {
        let s = self.socks.get(h).ok_or(Errno::EBADF)?;
        if !matches!(
            s.kind,
            Kind::Closed {
                was_connected: false
            }
        ) || self.sock_local(s).is_some()
        {
            return Err(Errno::EINVAL);
        }
        if self
            .fwd
            .as_ref()
            .is_some_and(|f| self.socks.get(f.lh).is_some())
        {
            return Err(Errno::EADDRINUSE);
        }
        let backlog = backlog.clamp(1, cx.cfg.tcp.somaxconn.max(1));
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        let s = self.socks.get_mut(h).ok_or(Errno::EBADF)?;
        s.own.as_deref_mut().ok_or(Errno::EINVAL)?.local = Some(local);
        s.kind = Kind::Listen(Box::new(Listener {
            backlog,
            syn_count: 0,
            accept: VecDeque::new(),
            cookies_since: None,
            pending: VecDeque::new(),
        }));
        self.fwd = Some(Forward {
            lh: h,
            defer,
            max_conns: max_conns.max(1),
            conns: HashMap::new(),
        });
        cx.event(EventKind::TcpState {
            local,
            remote: None,
            from: State::Closed,
            to: State::Listen,
        });
        Ok(())
    }

    /// The any-destination listener, if one is open.
    #[inline]
    pub(crate) fn fwd_listener(&self) -> Option<SocketHandle> {
        self.fwd.as_ref().map(|f| f.lh)
    }

    /// Whether the any-destination listener `lh` may make another TCB
    /// (counted as a listen drop if not).
    pub(crate) fn fwd_admit(&self, cx: &mut Cx<'_>, lh: SocketHandle) -> bool {
        match &self.fwd {
            Some(f) if f.lh == lh && f.conns.len() >= f.max_conns => {
                cx.sh.counters.tcp.listen_drops += 1;
                false
            }
            _ => true,
        }
    }

    /// Records a TCB the any-destination listener `lh` made; true if it is
    /// deferred (then it waits on the listener's pending queue, and the
    /// caller must not owe its SYN-ACK).
    pub(crate) fn fwd_created(
        &mut self,
        cx: &mut Cx<'_>,
        lh: SocketHandle,
        id: TcbId,
        may_defer: bool,
    ) -> bool {
        let Some(f) = self.fwd.as_mut().filter(|f| f.lh == lh) else {
            return false;
        };
        let defer = may_defer && f.defer;
        f.conns.insert(id, defer);
        if defer {
            if let Some(Kind::Listen(l)) = self.socks.get_mut(lh).map(|s| &mut s.kind) {
                l.pending.push_back(id);
            }
            cx.sh.handles.mark_changed(lh);
        }
        defer
    }

    /// Whether `id` waits for the application's answer.
    #[inline]
    pub(crate) fn fwd_deferred(&self, id: TcbId) -> bool {
        self.fwd
            .as_ref()
            .is_some_and(|f| f.conns.get(&id) == Some(&true))
    }

    /// A freed TCB leaves the listener's count.
    pub(crate) fn fwd_freed(&mut self, id: TcbId) {
        if let Some(f) = self.fwd.as_mut() {
            f.conns.remove(&id);
        }
    }

    /// The any-destination listener `h` is closed.
    pub(crate) fn fwd_closed(&mut self, h: SocketHandle) {
        if self.fwd.as_ref().is_some_and(|f| f.lh == h) {
            self.fwd = None;
        }
    }

    /// Takes the next connection of the any-destination listener `lh`:
    /// a deferred one first (SYN-RECEIVED, nothing sent yet: answer it with
    /// [`tcp_answer`](Self::tcp_answer) or [`tcp_refuse`](Self::tcp_refuse)),
    /// else a completed one from the accept queue. Returns the new socket,
    /// the client (`getpeername`) and the original destination
    /// (`getsockname`). EAGAIN when none; EINVAL if `lh` is not the
    /// any-destination listener.
    pub fn tcp_take_pending(
        &mut self,
        cx: &mut Cx<'_>,
        lh: SocketHandle,
    ) -> Result<(SocketHandle, SocketAddr, SocketAddr)> {
        if self.fwd_listener() != Some(lh) {
            return Err(Errno::EINVAL);
        }
        let Some(Kind::Listen(l)) = self.socks.get_mut(lh).map(|s| &mut s.kind) else {
            return Err(Errno::EINVAL);
        };
        let Some(id) = l.pending.pop_front() else {
            let (h, remote) = self.tcp_accept(cx, lh)?;
            let local = self.tcp_local_addr(h)?.ok_or(Errno::EINVAL)?;
            return Ok((h, remote, local));
        };
        // It leaves the SYN queue for the application's hands.
        l.syn_count = l.syn_count.saturating_sub(1);
        cx.sh.handles.mark_changed(lh);
        let t = self.get_mut(id).ok_or(Errno::EAGAIN)?;
        t.listener = None;
        t.in_accept_queue = false;
        let sock = TcpSocket::connected(id);
        let (local, remote) = (t.local, t.remote);
        let nh = cx.sh.handles.insert(Proto::Tcp);
        self.socks.insert(nh, sock);
        if let Some(t) = self.get_mut(id) {
            t.socket = Some(nh);
        }
        cx.sh.handles.mark_changed(nh);
        Ok((nh, remote, local))
    }

    /// The TCB of a socket taken with `tcp_take_pending`; the socket's
    /// pending error (ECONNRESET if the client gave up) if it is gone.
    fn fwd_tcb(&mut self, h: SocketHandle) -> Result<TcbId> {
        let live = match self.socks.get(h).ok_or(Errno::EBADF)?.kind {
            Kind::Conn(id) if self.get(id).is_some() => Some(id),
            _ => None,
        };
        match live {
            Some(id) => Ok(id),
            None => {
                let s = self.socks.get_mut(h).ok_or(Errno::EBADF)?;
                Err(s.error.take().unwrap_or(Errno::ENOTCONN))
            }
        }
    }

    /// Accepts a deferred connection: its SYN-ACK goes out now. A
    /// connection that was not deferred is left as it is.
    pub fn tcp_answer(&mut self, cx: &mut Cx<'_>, h: SocketHandle) -> Result<()> {
        let id = self.fwd_tcb(h)?;
        if !self.fwd_deferred(id) {
            return Ok(());
        }
        if let Some(f) = self.fwd.as_mut() {
            f.conns.insert(id, false);
        }
        cx.sh.counters.tcp.passive_opens += 1;
        if let Some(t) = self.get_mut(id) {
            t.owed.syn = true;
        }
        self.schedule(cx.now, id);
        Ok(())
    }

    /// Refuses a connection taken with `tcp_take_pending`: a RST to the
    /// client (acknowledging its SYN, so a client in SYN-SENT takes it as
    /// "connection refused", RFC 9293 §3.10.7.3), and the socket is closed
    /// (read gives ECONNREFUSED). Works on an answered connection too (it
    /// is reset).
    pub fn tcp_refuse(&mut self, cx: &mut Cx<'_>, h: SocketHandle) -> Result<()> {
        let id = self.fwd_tcb(h)?;
        self.tcp_abort(cx, id, Some(Errno::ECONNREFUSED), true);
        Ok(())
    }
}
