//! Zero-copy socket calls: sends from buffers the application lends
//! whole (handed back once ACKed, `sendq.rs`), and receive buffers the
//! application posts for in-order data to land in straight from the
//! frame (`Tcb::take_in_order`).

use super::sendq::{Posted, SendBuf, ZcDone};
use super::state::State;
use super::table::{Kind, Tcp};
use super::tcb::{Tcb, TcbId};
use ustack_wire::checksum::copy_and_sum;

/// Receive buffers one connection may have posted at once.
pub const MAX_POSTED: usize = 64;
use crate::cx::Cx;
use crate::errno::{Errno, Result};
use crate::socket::SocketHandle;

/// A posted receive buffer handed back: the bytes in it, or why none.
#[derive(Debug)]
pub struct RecvDone {
    pub tag: u64,
    pub buf: Vec<u8>,
    pub result: Result<usize>,
}

impl Tcp {
    /// Header prediction's receive into a posted buffer: copies
    /// `payload` past the filled part of `id`'s first posted buffer with
    /// room and summing it (RFC 1071, `copy_and_sum`), when the next
    /// in-order data would go there whole (nothing in the ring or out of
    /// order, room for all of it): the sum, and where the buffer is in
    /// the queue. The bytes stay unfilled until
    /// [`Tcb::take_posted_placed`]; `None`, nothing written, otherwise.
    #[inline]
    pub(crate) fn posted_copy_sum(&mut self, id: TcbId, payload: &[u8]) -> Option<(u64, usize)> {
        let t = self.get_mut(id)?;
        if payload.is_empty() || !t.rcv.q.is_empty() || !t.rcv.ofo.is_empty() {
            return None;
        }
        let (i, p) = t.rcv.posted.as_mut()?.first_with_room()?;
        if p.room() < payload.len() {
            return None;
        }
        let at = p.filled;
        Some((copy_and_sum(&mut p.buf[at..at + payload.len()], payload), i))
    }
    /// Queues all of `buf` for sending without copying it: segments and
    /// retransmissions read from it until the cumulative ACK passes its
    /// last byte, then it comes back from [`Tcp::tcp_zc_done`]. The same
    /// errors as `tcp_send` (EAGAIN during the handshake, EPIPE, ENOTCONN)
    /// with the buffer handed back; EINVAL for an empty one.
    ///
    /// Lent bytes are not charged to SO_SNDBUF (Linux charges MSG_ZEROCOPY
    /// skbs to `sk_wmem_queued`, so its sends block or EAGAIN there): any
    /// number of buffers of any size is taken. The bound is the caller's:
    /// the proactor's queue capacity (`Engine::new`) counts sends in
    /// flight, and `sendfile` lends one mapping per call. They cost the
    /// stack no copy, only the pieces' bookkeeping.
    pub fn tcp_send_zc(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        buf: Box<dyn SendBuf>,
        tag: u64,
    ) -> core::result::Result<(), (Errno, Box<dyn SendBuf>)> {
        let now = cx.now;
        let len = buf.bytes().len();
        let Some(s) = self.socks.get_mut(h) else {
            return Err((Errno::EBADF, buf));
        };
        if let Some(e) = s.error.take() {
            cx.sh.handles.mark_changed(h);
            return Err((e, buf));
        }
        let id = match s.kind {
            Kind::Conn(id) => id,
            Kind::Closed {
                was_connected: true,
            } => return Err((Errno::EPIPE, buf)),
            _ => return Err((Errno::ENOTCONN, buf)),
        };
        let Some(t) = self.get_mut(id) else {
            return Err((Errno::EPIPE, buf));
        };
        if t.snd.fin_queued {
            return Err((Errno::EPIPE, buf));
        }
        match t.state {
            State::SynSent | State::SynReceived => return Err((Errno::EAGAIN, buf)),
            State::Established | State::CloseWait => {}
            _ => return Err((Errno::EPIPE, buf)),
        }
        if len == 0 {
            return Err((Errno::EINVAL, buf));
        }
        t.snd.q.push_owned(buf, tag);
        cx.sh.counters.tcp.tx_zc_bytes += len as u64;
        t.maybe_arm_persist(now, &cx.cfg.tcp);
        self.arm(id);
        self.schedule(now, id);
        Ok(())
    }

    /// Moves the lent send buffers of `h` that are done (all ACKed, or
    /// the connection ended: `acked` says how much) into `out`.
    pub fn tcp_zc_done(&mut self, h: SocketHandle, out: &mut Vec<ZcDone>) -> Result<()> {
        let s = self.socks.get_mut(h).ok_or(Errno::EBADF)?;
        if let Some(z) = s.own.as_deref_mut().and_then(|o| o.zc.as_mut()) {
            out.append(&mut z.done);
        }
        if let Kind::Conn(id) = s.kind {
            if let Some(t) = self.get_mut(id) {
                t.snd.q.take_done(out);
            }
        }
        Ok(())
    }

    /// Bytes of lent buffers `h` still holds, not yet ACKed.
    pub fn tcp_zc_pending(&self, h: SocketHandle) -> usize {
        match self.socks.get(h).map(|s| &s.kind) {
            Some(Kind::Conn(id)) => self.get(*id).map_or(0, |t| t.snd.q.owned()),
            _ => 0,
        }
    }

    /// Posts `buf` for the next received bytes, after the buffers
    /// posted before it: what the receive ring holds is copied in at
    /// once, later in-order data lands in the posted buffers straight
    /// from the frame, filling them in order. `waitall`: hand it back
    /// only once full (or at EOF, or on an error). EBUSY with
    /// [`MAX_POSTED`] buffers posted, EINVAL for an empty buffer,
    /// ENOTCONN before a connection.
    pub fn tcp_post_recv(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        buf: Vec<u8>,
        tag: u64,
        waitall: bool,
    ) -> core::result::Result<(), (Errno, Vec<u8>)> {
        if buf.is_empty() {
            return Err((Errno::EINVAL, buf));
        }
        let Some(s) = self.socks.get_mut(h) else {
            return Err((Errno::EBADF, buf));
        };
        let p = Posted {
            tag,
            buf,
            filled: 0,
            waitall,
        };
        let q = match s.kind {
            Kind::Conn(id) => match self.get_mut(id) {
                Some(t) => &mut **t.rcv.posted.get_or_insert_with(Default::default),
                None => return Err((Errno::ENOTCONN, p.buf)),
            },
            Kind::Closed {
                was_connected: true,
            } => match s.own.as_deref_mut() {
                Some(o) => &mut o.zc.get_or_insert_with(Default::default).posted,
                None => return Err((Errno::ENOTCONN, p.buf)),
            },
            _ => return Err((Errno::ENOTCONN, p.buf)),
        };
        if q.len() >= MAX_POSTED {
            return Err((Errno::EBUSY, p.buf));
        }
        q.push_back(p);
        // Whatever the ring already holds goes first.
        self.posted_fill(cx, h);
        Ok(())
    }

    /// Copies what the ring holds into the posted buffers (data that
    /// came while none was posted, or out of order).
    fn posted_fill(&mut self, cx: &mut Cx<'_>, h: SocketHandle) {
        let Some(Kind::Conn(id)) = self.socks.get(h).map(|s| &s.kind) else {
            return;
        };
        let id = *id;
        let Some(t) = self.get_mut(id) else { return };
        if t.rcv.q.is_empty() {
            return;
        }
        let Some(mut q) = t.rcv.posted.take() else {
            return;
        };
        while let Some((_, p)) = q.first_with_room() {
            let at = p.filled;
            match self.tcp_read(cx, h, &mut p.buf[at..], true) {
                Ok(n) if n > 0 => p.filled += n,
                _ => break,
            }
        }
        if let Some(t) = self.get_mut(id) {
            t.rcv.posted = Some(q);
        }
    }

    /// The first posted receive buffer of `h`, if it is due back: it
    /// holds data (all it can, with `waitall`), or EOF or an error ended
    /// the wait. `cancel`: instead the buffer posted with that tag, in
    /// any case: ECANCELED unless it holds data, which is never lost.
    pub fn tcp_take_posted(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        cancel: Option<u64>,
    ) -> Option<RecvDone> {
        self.posted_fill(cx, h);
        if let Some(Kind::Conn(id)) = self.socks.get(h).map(|s| &s.kind) {
            // Bytes placed in posted buffers count as read
            // (`Tcb::take_posted_placed`): judged here, as a read would be.
            let id = *id;
            self.rcv_drained(cx, id, 0, true);
        }
        let s = self.socks.get_mut(h)?;
        let failed = s.error.is_some();
        let (p, ended) = match s.kind {
            Kind::Conn(id) => {
                let t = self.get_mut(id)?;
                let eof = (t.rcv.fin_received || t.rcv.shut_rd) && t.rcv.q.is_empty();
                let q = t.rcv.posted.as_mut()?;
                let i = match cancel {
                    Some(tag) => q.iter().position(|p| p.tag == tag)?,
                    None => {
                        let p = q.front()?;
                        if !(p.ready() || eof || failed) {
                            return None;
                        }
                        0
                    }
                };
                (q.remove(i)?, eof || failed)
            }
            _ => {
                let q = &mut s.own.as_deref_mut()?.zc.as_mut()?.posted;
                let i = match cancel {
                    Some(tag) => q.iter().position(|p| p.tag == tag)?,
                    None => 0,
                };
                (q.remove(i)?, true)
            }
        };
        let mut p = p;
        let mut err = None;
        if ended && p.room() > 0 && cancel.is_none() {
            // What a read gives now: bytes left over, 0 at EOF, the error.
            let at = p.filled;
            match self.tcp_read(cx, h, &mut p.buf[at..], true) {
                Ok(n) => p.filled += n,
                Err(e) => err = Some(e),
            }
        }
        let result = if p.filled > 0 {
            Ok(p.filled)
        } else if cancel.is_some() {
            Err(Errno::ECANCELED)
        } else {
            match err {
                Some(e) => Err(e),
                None => Ok(0),
            }
        };
        Some(RecvDone {
            tag: p.tag,
            buf: p.buf,
            result,
        })
    }
}

impl Tcb {
    /// Makes `n` bytes [`Tcp::posted_copy_sum`] wrote the next in-order
    /// data, filled in the posted buffer it wrote them in (`at`, the
    /// first with room). Returns `n`. They count as read for
    /// autotuning ([`Tcb::rcv_space_adjust`]) as they land.
    pub(crate) fn take_posted_placed(&mut self, n: usize, at: usize) -> usize {
        let Some(p) = self.rcv.posted.as_mut().and_then(|q| q.get_mut(at)) else {
            return 0;
        };
        let n = n.min(p.room());
        p.filled += n;
        self.rcv.nxt += n;
        self.rcv.copied = self.rcv.copied.wrapping_add(n);
        n
    }
}
