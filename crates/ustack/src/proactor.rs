//! A completion-based API (the Proactor), in the shape of io_uring: the
//! application queues operations that carry buffers it owns (accept,
//! connect, send, recv, close), submits them, and reaps completions,
//! each with the operation's `user_data`, a result or an [`Errno`], and
//! the buffer handed back.
//!
//! Sends are zero-copy: the buffer moves into the stack, segments and
//! retransmissions read from it, and it comes back once every byte in it
//! is ACKed (the MSG_ZEROCOPY idea). A recv posts its buffer to the
//! connection: in-order payload is written there straight from the frame
//! while the receive ring holds nothing before it
//! (`tcp.rx_direct_bytes`). A buffer handed back early is impossible by
//! construction: ownership moves with the submission and comes back with
//! the completion.
//!
//! Bounds, and backpressure: the submission queue holds at most
//! `sq_entries` entries ([`Proactor::push`] hands an entry back when it
//! is full); every operation in flight keeps a place in the completion
//! queue (`cq_entries`), so a completion is never dropped: once ops in
//! flight plus completions not reaped fill it, [`Proactor::submit`]
//! refuses with EBUSY (as io_uring does) until completions are reaped.
//!
//! [`Engine`] is the sans-IO part, on a bare [`Stack`] and its socket
//! handles (what `tcp_bulk --api zerocopy` drives); [`Proactor`] puts it
//! on a [`Runtime`] and its descriptors, in every runtime mode: its
//! waits sleep on the runtime's readiness changes (thread and external
//! modes) or drive the device (inline).
//!
//! ```
//! use ustack::posix::{AF_INET, SOCK_STREAM};
//! use ustack::proactor::{Op, Proactor, Sqe};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (a, b) = ustack::memnet::pair()?; // 10.0.0.1 and 10.0.0.2
//! let l = b.socket(AF_INET, SOCK_STREAM, 0)?;
//! b.bind(l, "10.0.0.2:7".parse::<std::net::SocketAddr>()?)?;
//! b.listen(l, 8)?;
//! let c = a.socket(AF_INET, SOCK_STREAM, 0)?;
//! let (mut pa, mut pb) = (Proactor::new(&a, 8, 16), Proactor::new(&b, 8, 16));
//! pa.push(Sqe::new(1, Op::Connect { sock: c, addr: "10.0.0.2:7".parse()? })).ok();
//! pb.push(Sqe::new(2, Op::Accept { sock: l })).ok();
//! pa.submit()?;
//! pb.submit()?;
//! let done = pb.wait_one(None)?;
//! let conn = done.accepted.expect("a connection");
//! pa.wait_one(None)?.result?;
//! pb.push(Sqe::new(3, Op::Recv { sock: conn, buf: vec![0; 64], waitall: false })).ok();
//! pa.push(Sqe::new(4, Op::send(c, b"hello".to_vec()))).ok();
//! pb.submit()?;
//! pa.submit()?;
//! let mut got = pb.wait_one(None)?;
//! let n = got.result?;
//! assert_eq!(&got.take_vec().unwrap()[..n], b"hello");
//! // The send's buffer comes back once ACKed.
//! assert_eq!(pa.wait_one(None)?.result, Ok(5));
//! # Ok(()) }
//! ```

use crate::fd::{Entry, Kind, SockEntry};
use crate::runtime::{Runtime, State};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;
use ustack_core::{Errno, Instant, SendBuf, SocketHandle, Stack, ZcDone};

/// One operation, on socket `S` (a descriptor for [`Proactor`], a
/// [`SocketHandle`] for [`Engine`]), with the buffer it owns.
pub enum Op<S> {
    /// Take a connection from a listener: the completion's `accepted`.
    Accept { sock: S },
    /// Active open; completes once established (Ok(0)) or refused.
    Connect { sock: S, addr: SocketAddr },
    /// Zero-copy send of all of `buf`; completes with its length once
    /// every byte is ACKed, handing `buf` back.
    Send { sock: S, buf: Box<dyn SendBuf> },
    /// Receive into `buf`: completes with the bytes written (0 at EOF)
    /// as soon as there are some, or with `waitall` once it is full.
    Recv {
        sock: S,
        buf: Vec<u8>,
        waitall: bool,
    },
    /// Close once the sends before it are done; recvs and accepts still
    /// waiting complete with ECANCELED.
    Close { sock: S },
}

impl<S> Op<S> {
    /// A send of a byte vector.
    pub fn send(sock: S, buf: Vec<u8>) -> Op<S> {
        Op::Send {
            sock,
            buf: Box::new(buf),
        }
    }
}

/// A submission queue entry.
pub struct Sqe<S> {
    pub user_data: u64,
    pub op: Op<S>,
}

impl<S> Sqe<S> {
    pub fn new(user_data: u64, op: Op<S>) -> Sqe<S> {
        Sqe { user_data, op }
    }
}

/// The buffer a completion hands back.
pub enum CqeBuf {
    None,
    /// A recv's buffer (the bytes are at the front).
    Recv(Vec<u8>),
    /// A send's buffer, as it was lent.
    Send(Box<dyn SendBuf>),
}

/// A completion queue entry.
pub struct Cqe<S> {
    pub user_data: u64,
    /// Bytes sent or received (0 for accept, connect, close), or why not.
    pub result: Result<usize, Errno>,
    pub buf: CqeBuf,
    /// Accept: the new connection, and the peer.
    pub accepted: Option<S>,
    pub peer: Option<SocketAddr>,
}

impl<S> Cqe<S> {
    fn new(user_data: u64, result: Result<usize, Errno>, buf: CqeBuf) -> Cqe<S> {
        Cqe {
            user_data,
            result,
            buf,
            accepted: None,
            peer: None,
        }
    }

    /// The buffer as the `Vec<u8>` it was (a recv's, or a send's that was
    /// one); `None` for other buffers (they stay in `buf`).
    pub fn take_vec(&mut self) -> Option<Vec<u8>> {
        match std::mem::replace(&mut self.buf, CqeBuf::None) {
            CqeBuf::Recv(v) => Some(v),
            CqeBuf::Send(b) => match b.into_any().downcast::<Vec<u8>>() {
                Ok(v) => Some(*v),
                Err(_) => None,
            },
            CqeBuf::None => None,
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Cqe<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cqe")
            .field("user_data", &self.user_data)
            .field("result", &self.result)
            .field("accepted", &self.accepted)
            .finish()
    }
}

/// What one socket has in flight.
#[derive(Default)]
struct SockOps {
    /// Recvs posted to the stack (their buffers are there), in order.
    recvs: VecDeque<u64>,
    /// Sends the stack holds, by user_data (their tags), in order.
    sends: VecDeque<(u64, usize)>,
    /// Sends waiting for the handshake to finish.
    held: VecDeque<(u64, Box<dyn SendBuf>)>,
    accepts: VecDeque<u64>,
    connect: Option<u64>,
    close: Option<u64>,
}

impl SockOps {
    fn idle(&self) -> bool {
        self.recvs.is_empty()
            && self.sends.is_empty()
            && self.held.is_empty()
            && self.accepts.is_empty()
            && self.connect.is_none()
            && self.close.is_none()
    }
}

/// The sans-IO proactor on a bare [`Stack`], sockets by handle: `submit`
/// an entry, call [`Engine::progress`] after the stack took frames in
/// (or any time), pop completions with [`Engine::reap`].
pub struct Engine {
    /// In-flight operations by socket. Keyed by local handles, not by
    /// anything from the wire, so the cheap Fx hash (SipHash's share of a
    /// zero-copy transfer was ~0.6%).
    socks: FxHashMap<SocketHandle, SockOps>,
    /// Room for the handles [`Engine::progress`] found idle, to remove
    /// after its walk (no allocation per call).
    visit: Vec<SocketHandle>,
    cq: VecDeque<Cqe<SocketHandle>>,
    cq_cap: usize,
    inflight: usize,
    done: Vec<ZcDone>,
}

impl Engine {
    /// An engine whose completion queue holds `cq_entries` (at least 1).
    pub fn new(cq_entries: usize) -> Engine {
        let cq_cap = cq_entries.max(1);
        Engine {
            socks: FxHashMap::default(),
            visit: Vec::new(),
            cq: VecDeque::with_capacity(cq_cap),
            cq_cap,
            inflight: 0,
            done: Vec::new(),
        }
    }

    /// Operations submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.inflight
    }

    /// Completions waiting to be reaped.
    pub fn ready(&self) -> usize {
        self.cq.len()
    }

    /// Whether one more operation fits (its completion is sure of a place).
    pub fn has_room(&self) -> bool {
        self.inflight + self.cq.len() < self.cq_cap
    }

    pub fn reap(&mut self) -> Option<Cqe<SocketHandle>> {
        self.cq.pop_front()
    }

    fn complete(&mut self, c: Cqe<SocketHandle>) {
        self.inflight -= 1;
        debug_assert!(self.cq.len() < self.cq_cap);
        self.cq.push_back(c);
    }

    /// Starts `sqe`. EBUSY, with the entry handed back, when the
    /// completion queue has no place left for it.
    pub fn submit(
        &mut self,
        stack: &mut Stack,
        now: Instant,
        sqe: Sqe<SocketHandle>,
    ) -> Result<(), (Errno, Sqe<SocketHandle>)> {
        if !self.has_room() {
            return Err((Errno::EBUSY, sqe));
        }
        self.inflight += 1;
        let ud = sqe.user_data;
        match sqe.op {
            Op::Accept { sock } => {
                self.socks.entry(sock).or_default().accepts.push_back(ud);
                self.progress_one(stack, now, sock);
            }
            Op::Connect { sock, addr } => match stack.tcp_connect(now, sock, addr) {
                Err(Errno::EINPROGRESS) => self.socks.entry(sock).or_default().connect = Some(ud),
                r => self.complete(Cqe::new(ud, r.map(|()| 0), CqeBuf::None)),
            },
            Op::Send { sock, buf } => {
                let ops = self.socks.entry(sock).or_default();
                if !ops.held.is_empty() || ops.connect.is_some() {
                    ops.held.push_back((ud, buf));
                } else {
                    self.start_send(stack, now, sock, ud, buf);
                }
            }
            Op::Recv { sock, buf, waitall } => match stack.tcp_post_recv(sock, buf, ud, waitall) {
                Ok(()) => {
                    self.socks.entry(sock).or_default().recvs.push_back(ud);
                    self.progress_one(stack, now, sock);
                }
                Err((e, buf)) => self.complete(Cqe::new(ud, Err(e), CqeBuf::Recv(buf))),
            },
            Op::Close { sock } => {
                self.socks.entry(sock).or_default().close = Some(ud);
                self.progress_one(stack, now, sock);
            }
        }
        Ok(())
    }

    fn start_send(
        &mut self,
        stack: &mut Stack,
        now: Instant,
        sock: SocketHandle,
        ud: u64,
        buf: Box<dyn SendBuf>,
    ) {
        let len = buf.bytes().len();
        match stack.tcp_send_zc(now, sock, buf, ud) {
            Ok(()) => self
                .socks
                .entry(sock)
                .or_default()
                .sends
                .push_back((ud, len)),
            Err((Errno::EAGAIN, buf)) => {
                self.socks
                    .entry(sock)
                    .or_default()
                    .held
                    .push_back((ud, buf));
            }
            Err((e, buf)) => self.complete(Cqe::new(ud, Err(e), CqeBuf::Send(buf))),
        }
    }

    /// Cancels the operation `user_data`: it completes with ECANCELED
    /// (a recv that already holds data completes with it instead) and
    /// hands its buffer back. ENOENT if no such operation waits; EALREADY
    /// for a send the stack has begun to transmit (its bytes may be on
    /// the wire: it completes when ACKed, or when the connection ends).
    pub fn cancel(&mut self, stack: &mut Stack, user_data: u64) -> Result<(), Errno> {
        let mut found = None;
        for (h, ops) in self.socks.iter_mut() {
            if let Some(i) = ops.recvs.iter().position(|u| *u == user_data) {
                ops.recvs.remove(i);
                found = Some((*h, 0));
            } else if let Some(i) = ops.held.iter().position(|r| r.0 == user_data) {
                if let Some((ud, buf)) = ops.held.remove(i) {
                    self.cq
                        .push_back(Cqe::new(ud, Err(Errno::ECANCELED), CqeBuf::Send(buf)));
                }
                found = Some((*h, 1));
            } else if let Some(i) = ops.accepts.iter().position(|u| *u == user_data) {
                ops.accepts.remove(i);
                self.cq
                    .push_back(Cqe::new(user_data, Err(Errno::ECANCELED), CqeBuf::None));
                found = Some((*h, 1));
            } else if ops.connect == Some(user_data) {
                ops.connect = None;
                self.cq
                    .push_back(Cqe::new(user_data, Err(Errno::ECANCELED), CqeBuf::None));
                found = Some((*h, 1));
            } else if ops.sends.iter().any(|s| s.0 == user_data) {
                return Err(Errno::EALREADY);
            }
            if found.is_some() {
                break;
            }
        }
        match found {
            None => Err(Errno::ENOENT),
            Some((_, 1)) => {
                self.inflight -= 1;
                Ok(())
            }
            Some((h, _)) => {
                match stack.tcp_take_posted(h, Some(user_data)) {
                    Some(d) => self.complete(Cqe::new(d.tag, d.result, CqeBuf::Recv(d.buf))),
                    // The stack no longer has it: it must have completed.
                    None => self.complete(Cqe::new(user_data, Err(Errno::ECANCELED), CqeBuf::None)),
                }
                Ok(())
            }
        }
    }

    /// Moves every operation that can be finished to the completion
    /// queue: sends ACKed, recvs filled, connections accepted or
    /// established, closes whose sends are done.
    pub fn progress(&mut self, stack: &mut Stack, now: Instant) {
        let mut c = Completer {
            cq: &mut self.cq,
            inflight: &mut self.inflight,
            done: &mut self.done,
            cap: self.cq_cap,
        };
        // Each socket's ops stay in place; only those left idle go.
        for (&h, ops) in self.socks.iter_mut() {
            if c.step(stack, now, h, ops) {
                self.visit.push(h);
            }
        }
        for h in self.visit.drain(..) {
            self.socks.remove(&h);
        }
    }

    fn progress_one(&mut self, stack: &mut Stack, now: Instant, h: SocketHandle) {
        let Some(ops) = self.socks.get_mut(&h) else {
            return;
        };
        let mut c = Completer {
            cq: &mut self.cq,
            inflight: &mut self.inflight,
            done: &mut self.done,
            cap: self.cq_cap,
        };
        if c.step(stack, now, h, ops) {
            self.socks.remove(&h);
        }
    }
}

/// The engine's completion side, borrowed apart from its socket table so
/// that a socket's ops are worked on in place (no remove and re-insert
/// per call).
struct Completer<'a> {
    cq: &'a mut VecDeque<Cqe<SocketHandle>>,
    inflight: &'a mut usize,
    done: &'a mut Vec<ZcDone>,
    cap: usize,
}

impl Completer<'_> {
    fn complete(&mut self, c: Cqe<SocketHandle>) {
        *self.inflight -= 1;
        debug_assert!(self.cq.len() < self.cap);
        self.cq.push_back(c);
    }

    /// Finishes what can be of socket `h`'s `ops`; true when the entry
    /// should go (nothing left in flight, or the socket is gone or closed).
    fn step(
        &mut self,
        stack: &mut Stack,
        now: Instant,
        h: SocketHandle,
        ops: &mut SockOps,
    ) -> bool {
        let c = self;
        if stack.readiness(h) == Err(Errno::EBADF) {
            // Closed behind the proactor's back (not by its Close): what
            // waited on it ends with EBADF; buffers the stack held went
            // with the socket.
            let uds = ops.recvs.drain(..).chain(ops.sends.drain(..).map(|s| s.0));
            let uds: Vec<u64> = uds
                .chain(ops.accepts.drain(..))
                .chain(ops.connect.take())
                .chain(ops.close.take())
                .collect();
            for ud in uds {
                c.complete(Cqe::new(ud, Err(Errno::EBADF), CqeBuf::None));
            }
            for (ud, buf) in ops.held.drain(..) {
                c.complete(Cqe::new(ud, Err(Errno::EBADF), CqeBuf::Send(buf)));
            }
            return true;
        }
        // Connect: established (writable) or failed.
        if let Some(ud) = ops.connect {
            let r = match stack.take_error(h) {
                Ok(Some(e)) | Err(e) => Some(Err(e)),
                Ok(None) => match stack.readiness(h) {
                    Ok(r) if r.writable => Some(Ok(0)),
                    Ok(r) if r.hangup => Some(Err(Errno::ECONNREFUSED)),
                    _ => None,
                },
            };
            if let Some(r) = r {
                ops.connect = None;
                let failed = r.is_err();
                c.complete(Cqe::new(ud, r, CqeBuf::None));
                if failed {
                    for (ud, buf) in ops.held.drain(..) {
                        *c.inflight -= 1;
                        c.cq.push_back(Cqe::new(ud, Err(Errno::ENOTCONN), CqeBuf::Send(buf)));
                    }
                }
            }
        }
        // Sends held for the handshake.
        if ops.connect.is_none() {
            while let Some((ud, buf)) = ops.held.pop_front() {
                let len = buf.bytes().len();
                match stack.tcp_send_zc(now, h, buf, ud) {
                    Ok(()) => ops.sends.push_back((ud, len)),
                    Err((Errno::EAGAIN, buf)) => {
                        ops.held.push_front((ud, buf));
                        break;
                    }
                    Err((e, buf)) => c.complete(Cqe::new(ud, Err(e), CqeBuf::Send(buf))),
                }
            }
        }
        // Sends ACKed (or cut short by the connection's end).
        if !ops.sends.is_empty() {
            let _ = stack.tcp_zc_done(h, c.done);
            // Drained, and put back with its room.
            let mut done = std::mem::take(c.done);
            for d in done.drain(..) {
                ops.sends.retain(|s| s.0 != d.tag);
                let len = d.buf.bytes().len();
                let r = if d.acked == len {
                    Ok(len)
                } else {
                    Err(stack.take_error(h).ok().flatten().unwrap_or(Errno::EPIPE))
                };
                c.complete(Cqe::new(d.tag, r, CqeBuf::Send(d.buf)));
            }
            *c.done = done;
        }
        // Recvs, in the order posted.
        while !ops.recvs.is_empty() {
            let Some(d) = stack.tcp_take_posted(h, None) else {
                break;
            };
            ops.recvs.retain(|u| *u != d.tag);
            c.complete(Cqe::new(d.tag, d.result, CqeBuf::Recv(d.buf)));
        }
        // Accepts.
        while let Some(&ud) = ops.accepts.front() {
            match stack.tcp_accept(h) {
                Ok((conn, peer)) => {
                    ops.accepts.pop_front();
                    let mut cqe = Cqe::new(ud, Ok(0), CqeBuf::None);
                    cqe.accepted = Some(conn);
                    cqe.peer = Some(peer);
                    c.complete(cqe);
                }
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    ops.accepts.pop_front();
                    c.complete(Cqe::new(ud, Err(e), CqeBuf::None));
                }
            }
        }
        // Close, once the sends before it are done.
        if let Some(ud) = ops.close {
            if ops.sends.is_empty() && ops.held.is_empty() {
                for ud in std::mem::take(&mut ops.recvs) {
                    match stack.tcp_take_posted(h, Some(ud)) {
                        Some(d) => c.complete(Cqe::new(d.tag, d.result, CqeBuf::Recv(d.buf))),
                        None => c.complete(Cqe::new(ud, Err(Errno::ECANCELED), CqeBuf::None)),
                    }
                }
                for ud in ops.accepts.drain(..) {
                    *c.inflight -= 1;
                    c.cq.push_back(Cqe::new(ud, Err(Errno::ECANCELED), CqeBuf::None));
                }
                ops.close = None;
                let r = stack.close(h).map(|()| 0);
                c.complete(Cqe::new(ud, r, CqeBuf::None));
                return true;
            }
        }
        ops.idle()
    }
}

/// The proactor on a [`Runtime`], sockets by descriptor. Used by one
/// thread at a time (`&mut self`), like an io_uring instance; the
/// runtime may serve other callers meanwhile.
pub struct Proactor {
    rt: Runtime,
    engine: Engine,
    sq: VecDeque<Sqe<i32>>,
    sq_cap: usize,
    cq: VecDeque<Cqe<i32>>,
}

impl Proactor {
    /// A proactor on `rt` with `sq_entries` submission and `cq_entries`
    /// completion slots (each at least 1).
    pub fn new(rt: &Runtime, sq_entries: usize, cq_entries: usize) -> Proactor {
        Proactor {
            rt: rt.clone(),
            engine: Engine::new(cq_entries),
            sq: VecDeque::new(),
            sq_cap: sq_entries.max(1),
            cq: VecDeque::new(),
        }
    }

    /// Queues `sqe` for the next [`submit`](Self::submit); hands it back
    /// when the submission queue is full.
    pub fn push(&mut self, sqe: Sqe<i32>) -> Result<(), Sqe<i32>> {
        if self.sq.len() >= self.sq_cap {
            return Err(sqe);
        }
        self.sq.push_back(sqe);
        Ok(())
    }

    /// Entries queued and not yet submitted.
    pub fn queued(&self) -> usize {
        self.sq.len()
    }

    /// Operations submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.engine.in_flight()
    }

    /// Starts the queued operations, in order; returns how many started.
    /// EBUSY when none could start because the completion queue is full
    /// (reap first); the entries stay queued.
    pub fn submit(&mut self) -> Result<usize, Errno> {
        let sq = &mut self.sq;
        let engine = &mut self.engine;
        let cq = &mut self.cq;
        let n = self.rt.with(|st, now| {
            let mut n = 0;
            // Each entry started keeps a place in the completion queue,
            // beside the completions not reaped yet.
            while engine.in_flight() + engine.ready() + cq.len() < engine.cq_cap {
                let Some(sqe) = sq.pop_front() else { break };
                n += 1;
                match translate(st, sqe) {
                    Ok(sqe) => {
                        if let Err((e, back)) = engine.submit(&mut st.stack, now, sqe) {
                            // Not reached: room was checked.
                            cq.push_back(Cqe::new(back.user_data, Err(e), op_buf(back.op)));
                        }
                    }
                    Err((e, ud, buf)) => {
                        engine.inflight += 1;
                        engine.complete(Cqe::new(ud, Err(e), buf));
                    }
                }
            }
            move_completions(st, engine, cq);
            n
        });
        if n == 0 && !self.sq.is_empty() {
            return Err(Errno::EBUSY);
        }
        Ok(n)
    }

    /// The next completion, if one is ready (without waiting).
    pub fn reap(&mut self) -> Option<Cqe<i32>> {
        if self.cq.is_empty() {
            let engine = &mut self.engine;
            let cq = &mut self.cq;
            self.rt.with(|st, now| {
                engine.progress(&mut st.stack, now);
                move_completions(st, engine, cq);
            });
        }
        self.cq.pop_front()
    }

    /// Waits until at least `min` completions are ready, up to `timeout`
    /// (None: forever); returns how many are. EAGAIN when the time ran
    /// out first; EINVAL when fewer than `min` operations are in flight
    /// to complete.
    pub fn wait(&mut self, min: usize, timeout: Option<Duration>) -> Result<usize, Errno> {
        if self.cq.len() + self.engine.in_flight() + self.engine.ready() < min {
            return Err(Errno::EINVAL);
        }
        let engine = &mut self.engine;
        let cq = &mut self.cq;
        self.rt.wait(timeout, |st, now| {
            engine.progress(&mut st.stack, now);
            move_completions(st, engine, cq);
            if cq.len() >= min {
                Ok(cq.len())
            } else {
                Err(Errno::EAGAIN)
            }
        })
    }

    /// Waits for the next completion and takes it.
    pub fn wait_one(&mut self, timeout: Option<Duration>) -> Result<Cqe<i32>, Errno> {
        self.wait(1, timeout)?;
        self.cq.pop_front().ok_or(Errno::EAGAIN)
    }

    /// Cancels the operation `user_data` (see [`Engine::cancel`]): its
    /// completion, ECANCELED with the buffer, is then ready to reap.
    pub fn cancel(&mut self, user_data: u64) -> Result<(), Errno> {
        if let Some(i) = self.sq.iter().position(|s| s.user_data == user_data) {
            // Not submitted yet: it completes without starting.
            let sqe = self.sq.remove(i).ok_or(Errno::ENOENT)?;
            let buf = op_buf(sqe.op);
            self.cq
                .push_back(Cqe::new(user_data, Err(Errno::ECANCELED), buf));
            return Ok(());
        }
        let engine = &mut self.engine;
        let cq = &mut self.cq;
        self.rt.with(|st, _| {
            let r = engine.cancel(&mut st.stack, user_data);
            move_completions(st, engine, cq);
            r
        })
    }
}

/// The entry with its descriptor turned into the socket's handle (a
/// close takes the descriptor out of the table at once, as close(2));
/// or the error, user_data and buffer to complete it with.
fn translate(st: &mut State, sqe: Sqe<i32>) -> Result<Sqe<SocketHandle>, (Errno, u64, CqeBuf)> {
    let ud = sqe.user_data;
    let fd = match &sqe.op {
        Op::Accept { sock }
        | Op::Connect { sock, .. }
        | Op::Send { sock, .. }
        | Op::Recv { sock, .. }
        | Op::Close { sock } => *sock,
    };
    let h = match st.fds.get(fd) {
        Some(Entry::Socket(s)) if s.kind == Kind::Stream => Ok(s.clone()),
        Some(Entry::Socket(_)) => Err(Errno::EOPNOTSUPP),
        Some(Entry::Epoll) => Err(Errno::ENOTSOCK),
        None => Err(Errno::EBADF),
    };
    let s: SockEntry = match h {
        Ok(s) => s,
        Err(e) => return Err((e, ud, op_buf(sqe.op))),
    };
    let h = s.handle;
    let op = match sqe.op {
        Op::Accept { .. } => Op::Accept { sock: h },
        Op::Connect { addr, .. } => match crate::posix::connect_addr(st, &s, addr) {
            Ok(addr) => Op::Connect { sock: h, addr },
            Err(e) => return Err((e, ud, CqeBuf::None)),
        },
        Op::Send { buf, .. } => Op::Send { sock: h, buf },
        Op::Recv { buf, waitall, .. } => Op::Recv {
            sock: h,
            buf,
            waitall,
        },
        Op::Close { .. } => {
            st.forget_fd(fd);
            Op::Close { sock: h }
        }
    };
    Ok(Sqe::new(ud, op))
}

/// The buffer an operation carries, to hand back.
fn op_buf<S>(op: Op<S>) -> CqeBuf {
    match op {
        Op::Send { buf, .. } => CqeBuf::Send(buf),
        Op::Recv { buf, .. } => CqeBuf::Recv(buf),
        _ => CqeBuf::None,
    }
}

/// The engine's completions, in descriptor terms: an accepted
/// connection gets its descriptor here (EMFILE when the table is full).
fn move_completions(st: &mut State, engine: &mut Engine, cq: &mut VecDeque<Cqe<i32>>) {
    while let Some(c) = engine.reap() {
        let mut out = Cqe::new(c.user_data, c.result, c.buf);
        out.peer = c.peer;
        if let Some(h) = c.accepted {
            let entry = SockEntry {
                handle: h,
                kind: Kind::Stream,
                nonblocking: true,
                rcvtimeo: None,
                sndtimeo: None,
                linger: None,
                v6: matches!(c.peer, Some(SocketAddr::V6(_))),
                sigio: Default::default(),
            };
            match st.fds.insert(Entry::Socket(entry)) {
                Some(fd) => out.accepted = Some(fd),
                None => {
                    let _ = st.stack.close(h);
                    out.result = Err(Errno::EMFILE);
                }
            }
        }
        cq.push_back(out);
    }
}
