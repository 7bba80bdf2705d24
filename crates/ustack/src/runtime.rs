//! The runtime: owns one core [`Stack`] and one [`Device`] and drives them —
//! frames in and out, timers, and waking callers blocked on a socket or an
//! epoll, or async tasks through the wakers they leave
//! ([`Runtime::register_waker`], the `*_or_wake` calls). Three modes:
//!
//! - [`Mode::Thread`]: a dedicated stack thread waits on the device and the
//!   next deadline; applications call from any thread.
//! - [`Mode::Inline`]: no thread; a caller that has to wait (a blocking
//!   `recv`, `epoll_wait`) drives the stack itself while it waits, the
//!   run-to-completion model of F-Stack and mTCP. Data left in a send
//!   buffer (which autotuning may grow to megabytes) flows only while some
//!   call drives the stack: a program that writes, then stops calling into
//!   ustack, stalls, as with any run-to-completion stack.
//! - [`Mode::External`]: no thread; the application's event loop calls
//!   [`Runtime::drive`] when the device's fd is ready, when the deadline it
//!   returned passes, or when the waker it gave is woken (ustack-tokio's
//!   `drive` task does, on tokio's reactor).
//!
//! In every mode an application call transmits what it made the stack owe
//! before it returns (the caller's thread does the send, as Linux's process
//! context does), so a `send` costs no thread hand-off.

use crate::epoll::{self, EpollSet};
use crate::fd::{Entry, FdTable};
use crate::signal;
use crate::sys::{self, PollFd};
use crate::trace::TraceWriter;
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::warn;
use ustack_core::{Counters, Errno, Instant, Placed, Readiness, SocketHandle, Stack, StackConfig};
use ustack_devices::driver::{receive_batch, retry_held, send_next, TxStep};
use ustack_devices::{Clock, Device, PacketBatch, RxHalf};

/// Frames read from the device per batch.
const RX_BATCH: usize = 64;
/// Batches per wake-up before timers and callers get a turn.
const RX_BATCHES_PER_PUMP: usize = 16;
/// Frames sent in one flush between looks at what the stack thread received.
const TX_BETWEEN_RX: usize = 64;
/// How soon the stack thread looks again at frames it left in the inbox
/// while the lock was busy.
const STRANDED_RETRY: Duration = Duration::from_micros(200);
/// Frames the split stack thread reads in place (straight into a
/// receive ring, holding the stack lock) before it lets go of the lock:
/// few, as the application's copy out of the ring waits meanwhile (4
/// received at 0.83 of veth in `tun_bench`, 16 at 0.79, 2026-12-05).
const PLACED_PER_LOCK: usize = 4;
/// Longest sleep when the device has no fd to wait on.
const NO_FD_POLL: Duration = Duration::from_millis(1);

/// How the stack is driven; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Thread,
    Inline,
    /// No thread: an event loop of the application's drives the stack by
    /// calling [`Runtime::drive`] when the device's fd is ready, when the
    /// deadline it returned passes, and when the waker it gave is woken
    /// (a call moved the deadline earlier). Blocking calls sleep until it
    /// does. ustack-tokio's reactor driver is one.
    External,
}

/// What [`Runtime::drive`] leaves for the driver to wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drive {
    /// The device's descriptor (readable: frames waiting); None if it has none.
    pub fd: Option<i32>,
    /// Also wait for the fd to be writable (a frame waits to be sent).
    pub want_write: bool,
    /// Call again by then (timers).
    pub deadline: Option<std::time::Instant>,
    /// Frames may be left (the read budget ran out): call again soon,
    /// after letting other work run.
    pub again: bool,
}

/// Current epoll mask of the socket behind `fd` (0 if it is not a socket).
pub(crate) fn fd_mask(fds: &FdTable, stack: &Stack, fd: i32) -> u32 {
    match fds.get(fd) {
        Some(Entry::Socket(s)) => stack
            .readiness(s.handle)
            .map(epoll::mask)
            .unwrap_or(epoll::EPOLLHUP),
        _ => 0,
    }
}

/// What the stack thread and the callers share, under one lock.
pub(crate) struct State {
    pub stack: Stack,
    device: Box<dyn Device + Send>,
    rx: PacketBatch,
    txbuf: Vec<u8>,
    /// A frame the device refused with WouldBlock: sent before anything else.
    held: Option<Vec<u8>>,
    pub fds: FdTable,
    /// Epoll instances by descriptor.
    pub epolls: HashMap<i32, EpollSet>,
    /// Which epoll instances watch a socket, as (epoll fd, socket fd).
    pub watchers: HashMap<SocketHandle, Vec<(i32, i32)>>,
    /// Rotates the wake-up among EPOLLEXCLUSIVE watchers of one socket.
    exclusive: epoll::ExclusiveTurns,
    /// When the stack thread will next wake on its own.
    thread_deadline: Option<Instant>,
    /// Inline mode: a caller is driving the device right now.
    driving: bool,
    /// Device errors other than WouldBlock, for the counters.
    pub device_errors: u64,
    /// The last pump stopped at its batch budget: the device may have
    /// more frames waiting, so the stack thread goes round again at once
    /// instead of asking poll(2).
    rx_backlog: bool,
    /// Frames the stack thread read through the device's receive half
    /// while a caller held the lock; `None` when the device is not split.
    inbox: Option<Arc<Inbox>>,
    /// The other buffer of the inbox's double buffering.
    inbox_spare: PacketBatch,
    /// Readiness changes dispatched while a caller's flush took in inbox
    /// frames, reported by [`Shared::settle`].
    changed_by_caller: bool,
    changed_by_network: bool,
    /// Tasks waiting on a socket (async callers): woken when its readiness
    /// changes the way they wait for. See [`Runtime::register_waker`].
    pub(crate) wakers: HashMap<SocketHandle, SockWakers>,
    /// Mode::External: the driver's waker, woken when a caller moves the
    /// next deadline earlier than the one the driver waits for.
    driver: Option<Waker>,
    /// Wakers due, woken once the lock is let go (a task woken while the
    /// lock is held would only run into it).
    to_wake: Vec<Waker>,
    /// Signal-driven sockets (`O_ASYNC` with an owner), by handle.
    pub(crate) sigio: HashMap<SocketHandle, SigWatch>,
    /// Signals due, raised once the lock is let go.
    to_signal: Vec<signal::Raise>,
    /// Software GRO of each batch read (see [`Runtime::set_gro`]), and
    /// its output batch.
    gro: bool,
    gro_out: PacketBatch,
    /// Where the events go, if traced ([`Runtime::trace_to`]), and the
    /// host name in it.
    trace: Option<(TraceWriter<Box<dyn Write + Send>>, String)>,
}

/// Which way a task waits on a socket ([`Runtime::register_waker`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Data, a connection to accept, EOF, an error.
    Read,
    /// Send space, a finished handshake, an error.
    Write,
}

/// The tasks waiting on one socket: one reader and one writer, the last
/// to register in each direction (as tokio's own sockets keep them).
#[derive(Default)]
pub(crate) struct SockWakers {
    read: Option<Waker>,
    write: Option<Waker>,
}

/// A socket with `O_ASYNC` and an owner: what it raises, and the
/// readiness it had, so that only news raises a signal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SigWatch {
    pub fd: i32,
    pub owner: signal::Owner,
    /// `F_SETSIG` (0: SIGIO).
    pub sig: i32,
    pub last: Readiness,
}

/// What is due once the stack lock is let go: tasks to wake, signals to
/// raise (a handler run in this thread must not find the lock held).
#[derive(Default)]
pub(crate) struct Due {
    wakers: Vec<Waker>,
    signals: Vec<signal::Raise>,
}

/// What one [`State::read_placed`] read: frames, and of those, how many
/// were taken in place.
#[derive(Debug, Default, Clone, Copy)]
struct PlacedRound {
    read: usize,
    in_place: usize,
}

/// Frames read without the stack lock, waiting for whoever holds it.
#[derive(Default)]
struct Inbox {
    frames: Mutex<PacketBatch>,
    /// `frames` is not empty (read without taking its lock).
    pending: AtomicBool,
}

impl Inbox {
    /// Hands `batch` over (swapped in when the inbox is empty, else copied).
    fn put(&self, batch: &mut PacketBatch) {
        let mut q = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if q.is_empty() {
            std::mem::swap(&mut *q, batch);
        } else {
            for (f, meta) in batch.iter_with() {
                q.push_with(f, meta);
            }
        }
        self.pending.store(true, Ordering::Release);
    }
}

impl State {
    /// Takes socket descriptor `fd` out of the table, its wakers and the
    /// epolls that watched it with it (Linux does so when the last
    /// reference goes), leaving the stack's socket open. Its handle.
    pub(crate) fn forget_fd(&mut self, fd: i32) -> Option<SocketHandle> {
        let Some(Entry::Socket(s)) = self.fds.remove(fd) else {
            return None;
        };
        // Most sockets have no waker, SIGIO owner or epoll watcher: an
        // empty map is not worth hashing the handle for.
        if !self.wakers.is_empty() {
            self.wakers.remove(&s.handle);
        }
        if !self.sigio.is_empty() {
            self.sigio.remove(&s.handle);
        }
        if self.watchers.is_empty() {
            return Some(s.handle);
        }
        if let Some(ws) = self.watchers.remove(&s.handle) {
            for (ep, wfd) in ws {
                if let Some(set) = self.epolls.get_mut(&ep) {
                    let _ = set.delete(wfd);
                }
            }
        }
        Some(s.handle)
    }

    /// Feeds the stack what the stack thread left in the inbox. Returns
    /// whether there was anything. `caller`: a caller holds the lock (not
    /// the stack thread's pump), so the readiness changes the caller made
    /// so far are handed to epoll first as its own, and those the frames
    /// make as news from the network (edge-triggered interests see only
    /// the latter).
    fn drain_inbox(&mut self, now: Instant, caller: bool) -> bool {
        let Some(inbox) = &self.inbox else {
            return false;
        };
        if !inbox.pending.load(Ordering::Acquire) {
            return false;
        }
        {
            let mut q = inbox.frames.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::swap(&mut *q, &mut self.inbox_spare);
            inbox.pending.store(false, Ordering::Release);
        }
        if self.inbox_spare.is_empty() {
            return false;
        }
        if caller {
            self.changed_by_caller |= self.dispatch_changes(false);
        }
        if self.gro {
            self.gro_out.clear();
            let medium = self.stack.config().medium;
            ustack_devices::offload::gro(medium, &self.inbox_spare, &mut self.gro_out);
            self.stack.receive_burst(now, self.gro_out.iter_with());
        } else {
            self.stack.receive_burst(now, self.inbox_spare.iter_with());
        }
        self.inbox_spare.clear();
        if caller {
            self.changed_by_network |= self.dispatch_changes(true);
        }
        true
    }

    /// The split stack thread, holding the lock: reads frames from `half`
    /// straight into the receive ring of the connection header prediction
    /// last took (`Stack::receive_placed`), after what the inbox holds.
    /// Returns `None` when there is no such ring to read into (read the
    /// usual way), else what was read and whether more may be waiting.
    fn read_placed(
        &mut self,
        now: Instant,
        half: &mut dyn RxHalf,
        rest: &mut [u8],
    ) -> Option<(PlacedRound, bool)> {
        if self.gro {
            return None;
        }
        self.drain_inbox(now, false);
        let mut r = PlacedRound::default();
        while r.read < PLACED_PER_LOCK {
            let got = self
                .stack
                .receive_placed(now, rest, |bufs| half.recv_scattered(&mut bufs[..]));
            match got {
                Ok(Placed::NoSlot) if r.read == 0 => return None,
                // The ring filled up: the rest the usual way.
                Ok(Placed::NoSlot) => return Some((r, true)),
                Ok(Placed::Empty) => return Some((r, false)),
                Ok(Placed::InPlace) => {
                    r.read += 1;
                    r.in_place += 1;
                }
                Ok(Placed::Copied) => r.read += 1,
                Err(e) => {
                    self.device_error(&e);
                    return Some((r, false));
                }
            }
        }
        Some((r, true))
    }

    /// Receives what the device has, transmits what the stack owes, and
    /// notifies epoll of readiness changes. Returns whether any socket's
    /// readiness may have changed.
    fn pump(&mut self, now: Instant) -> bool {
        if let Err(e) = self.device.service(now) {
            self.device_error(&e);
        }
        if self.inbox.is_some() {
            // The stack thread reads the device; what it read is here.
            self.drain_inbox(now, false);
            self.flush(now, false);
            return self.dispatch_changes(true);
        }
        for _ in 0..RX_BATCHES_PER_PUMP {
            let got = receive_batch(
                &mut self.stack,
                &mut *self.device,
                now,
                &mut self.rx,
                RX_BATCH,
                |_| Ok(()),
            );
            let n = got.unwrap_or_else(|e| {
                self.device_error(&e);
                0
            });
            self.rx_backlog = n == RX_BATCH;
            if n < RX_BATCH {
                break;
            }
        }
        self.flush(now, false);
        self.dispatch_changes(true)
    }

    /// Writes the events recorded so far to the trace; a write error ends
    /// the trace (logged once).
    #[cold]
    fn write_trace(&mut self) {
        let events = self.stack.take_events();
        crate::stats::tally(&events);
        let Some((w, host)) = self.trace.as_mut() else {
            return;
        };
        if let Err(e) = w.write(host, &events).and_then(|()| w.flush()) {
            warn!(error = %e, "cannot write the trace; tracing stops");
            self.trace = None;
            self.stack.set_trace(false);
        }
    }

    fn device_error(&mut self, e: &io::Error) {
        self.device_errors += 1;
        if self.device_errors.is_power_of_two() {
            warn!(error = %e, count = self.device_errors, "device error");
        }
    }

    /// Sends every frame the stack owes, until the device refuses one.
    /// `caller`: see [`State::drain_inbox`].
    pub(crate) fn flush(&mut self, now: Instant, caller: bool) {
        self.drain_inbox(now, caller);
        match retry_held(&mut *self.device, now, &mut self.held, |_| Ok(())) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => self.device_error(&e),
        }
        let mut sent = 0;
        loop {
            let step = send_next(
                &mut self.stack,
                &mut *self.device,
                now,
                &mut self.held,
                &mut self.txbuf,
                |_| Ok(()),
            );
            match step {
                Ok(TxStep::Idle) | Ok(TxStep::Blocked) => return,
                Ok(TxStep::Sent) => {}
                Err(e) => self.device_error(&e),
            }
            sent += 1;
            if sent % TX_BETWEEN_RX == 0 {
                // A long burst: take in what the stack thread read meanwhile
                // (ACKs), so they do not wait until the burst ends (which
                // inflated the RTT to the time of a whole window's writes).
                self.drain_inbox(now, caller);
            }
        }
    }

    /// Hands readiness changes to the epoll instances watching the sockets.
    /// `edge`: the changes came from the network (see [`EpollSet::notify_change`]).
    pub(crate) fn dispatch_changes(&mut self, edge: bool) -> bool {
        if self.trace.is_some() {
            self.write_trace();
        }
        let changed = self.stack.take_readiness_changes();
        for &h in &changed {
            self.wake_tasks(h);
            if !self.sigio.is_empty() {
                self.sigio_news(h, edge);
            }
            let Some(watchers) = self.watchers.get(&h) else {
                continue;
            };
            let Ok(r) = self.stack.readiness(h) else {
                continue;
            };
            let mask = epoll::mask(r);
            self.exclusive
                .notify(&mut self.epolls, h, watchers, mask, edge);
        }
        !changed.is_empty()
    }

    /// The wakers and signals due; wake and raise them after letting go
    /// of the lock.
    fn take_wakes(&mut self) -> Due {
        Due {
            wakers: std::mem::take(&mut self.to_wake),
            signals: std::mem::take(&mut self.to_signal),
        }
    }

    /// After a send or connect on `h`: if it left the socket unwritable, a
    /// signal-driven socket raises POLL_OUT when space returns (Linux's
    /// SOCKWQ_ASYNC_NOSPACE). The core does not report the application's
    /// own changes, so the send paths tell it here.
    pub(crate) fn note_send(&mut self, h: SocketHandle) {
        if self.sigio.is_empty() {
            return;
        }
        let writable = self.stack.readiness(h).is_ok_and(|r| r.writable);
        if let Some(w) = self.sigio.get_mut(&h) {
            w.last.writable &= writable;
        }
    }

    /// The signals a change of `h`'s readiness raises if `h` is
    /// signal-driven. As Linux's `sk_wake_async` callers: news from the
    /// network only (`edge`), never the application's own calls; POLL_IN
    /// for each arrival of data, a connection, or a FIN (`tcp_fin`),
    /// POLL_HUP when both directions are shut, POLL_ERR when an error
    /// turns up (`sock_def_error_report`), POLL_OUT when send space
    /// returns after the socket was not writable (`sk_stream_write_space`,
    /// a finished connect).
    fn sigio_news(&mut self, h: SocketHandle, edge: bool) {
        let Some(w) = self.sigio.get_mut(&h) else {
            return;
        };
        let Ok(r) = self.stack.readiness(h) else {
            return;
        };
        let was = std::mem::replace(&mut w.last, r);
        if !edge {
            return;
        }
        let reason_in = if r.error && !was.error {
            Some(signal::POLL_ERR)
        } else if r.hangup && !was.hangup {
            Some(signal::POLL_HUP)
        } else if r.readable || (r.read_hangup && !was.read_hangup) {
            Some(signal::POLL_IN)
        } else {
            None
        };
        let out = (r.writable && !was.writable).then_some(signal::POLL_OUT);
        for reason in reason_in.into_iter().chain(out) {
            self.to_signal.push(signal::Raise {
                owner: w.owner,
                sig: w.sig,
                fd: w.fd,
                reason,
            });
        }
    }

    /// Keeps `waker` to wake when `h` turns ready for `interest`.
    pub(crate) fn register_waker(&mut self, h: SocketHandle, interest: Interest, waker: &Waker) {
        let w = self.wakers.entry(h).or_default();
        let slot = match interest {
            Interest::Read => &mut w.read,
            Interest::Write => &mut w.write,
        };
        match slot {
            Some(old) if old.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Wakes the tasks waiting on `h` for what its readiness now offers
    /// (a closed socket wakes both, so they see the error).
    fn wake_tasks(&mut self, h: SocketHandle) {
        if self.wakers.is_empty() {
            return;
        }
        let Some(w) = self.wakers.get_mut(&h) else {
            return;
        };
        let (read, write) = match self.stack.readiness(h) {
            Ok(r) => (
                r.readable || r.read_hangup || r.hangup || r.error,
                r.writable || r.hangup || r.error,
            ),
            Err(_) => (true, true),
        };
        if read {
            if let Some(k) = w.read.take() {
                self.to_wake.push(k);
            }
        }
        if write {
            if let Some(k) = w.write.take() {
                self.to_wake.push(k);
            }
        }
        if w.read.is_none() && w.write.is_none() {
            self.wakers.remove(&h);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.stack.poll_at(), self.device.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Watches `fd` (a socket) from epoll `ep`.
    pub(crate) fn watch(&mut self, h: SocketHandle, ep: i32, fd: i32) {
        self.watchers.entry(h).or_default().push((ep, fd));
    }

    pub(crate) fn unwatch(&mut self, h: SocketHandle, ep: i32, fd: i32) {
        if let Some(v) = self.watchers.get_mut(&h) {
            v.retain(|&x| x != (ep, fd));
            if v.is_empty() {
                self.watchers.remove(&h);
                self.exclusive.forget(h);
            }
        }
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Signalled whenever socket readiness may have changed.
    changed: Condvar,
    /// Callers blocked on `changed` (counted under the state lock): a
    /// notify with none would still cost a futex syscall, on every call
    /// of a run-to-completion loop that nobody waits beside.
    sleepers: AtomicUsize,
    wake_tx: UnixDatagram,
    wake_rx: UnixDatagram,
    pub(crate) clock: Clock,
    mode: Mode,
    stop: AtomicBool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the callers blocked in a wait, so they look again (an
    /// epoll_ctl that put a ready fd on an epoll's ready list).
    pub(crate) fn wake_waiters(&self) {
        self.notify_all();
    }

    /// `changed.notify_all()`, skipped when no caller waits on it.
    fn notify_all(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.changed.notify_all();
        }
    }

    fn wake_thread(&self) {
        // A full socket already means "wake up".
        let _ = self.wake_tx.send(&[1]);
    }

    fn drain_wakes(&self) {
        let mut buf = [0u8; 64];
        while self.wake_rx.recv(&mut buf).is_ok() {}
    }

    /// After a caller changed the stack: send what it owes, tell epoll, and
    /// make sure the stack thread wakes for any earlier deadline.
    /// Returns whether frames from the network were taken in meanwhile (so
    /// a caller about to sleep must look again first).
    fn settle(&self, st: &mut State, now: Instant) -> bool {
        st.changed_by_caller = false;
        st.changed_by_network = false;
        st.flush(now, true);
        // What changed now was the caller's doing, not news from the network.
        let changed = st.dispatch_changes(false) | st.changed_by_caller | st.changed_by_network;
        let news = st.changed_by_network;
        if self.mode != Mode::Inline {
            let next = st.next_deadline();
            let earlier = match (next, st.thread_deadline) {
                (Some(n), Some(t)) => n < t,
                (Some(_), None) => true,
                _ => false,
            };
            if earlier || st.held.is_some() {
                st.thread_deadline = next;
                if self.mode == Mode::Thread {
                    self.wake_thread();
                } else if let Some(w) = st.driver.take() {
                    st.to_wake.push(w);
                }
            }
        }
        if changed {
            self.notify_all();
        }
        news
    }

    /// Takes in what the stack thread left in the inbox before a caller
    /// looks at the stack, as news from the network.
    fn take_inbox(&self, st: &mut State, now: Instant) {
        if st.drain_inbox(now, false) && st.dispatch_changes(true) {
            self.notify_all();
        }
    }

    /// What to poll: the wake-up socket first (bit 0 of poll's answer),
    /// then the device's fd if it has one. Returns the fds and how many.
    fn wait_fds(&self, st: &State, write: bool) -> ([PollFd; 2], usize) {
        let wake = PollFd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&self.wake_rx),
            read: true,
            write: false,
        };
        match st.device.as_raw_fd() {
            Some(fd) => (
                [
                    wake,
                    PollFd {
                        fd,
                        read: true,
                        write,
                    },
                ],
                2,
            ),
            None => ([wake, wake], 1),
        }
    }

    /// How long to sleep until `next` (a core instant), bounded.
    fn timeout_until(&self, next: Option<Instant>, has_fd: bool) -> Option<Duration> {
        let t = next.map(|t| {
            self.clock
                .to_std(t)
                .saturating_duration_since(std::time::Instant::now())
        });
        if has_fd {
            t
        } else {
            Some(t.map_or(NO_FD_POLL, |t| t.min(NO_FD_POLL)))
        }
    }

    fn thread_main(self: Arc<Self>) {
        while !self.stop.load(Ordering::Acquire) {
            let ((fds, nfds), timeout, backlog, wakes) = {
                let mut st = self.lock();
                let now = self.clock.now();
                if st.pump(now) {
                    self.notify_all();
                }
                let next = st.next_deadline();
                st.thread_deadline = next;
                let fds = self.wait_fds(&st, st.held.is_some());
                let has_fd = fds.1 > 1;
                let wakes = st.take_wakes();
                (fds, self.timeout_until(next, has_fd), st.rx_backlog, wakes)
            };
            wake_all(wakes);
            if backlog {
                // Frames are waiting: no need to ask poll(2). Callers got a
                // turn at the lock in between.
                continue;
            }
            self.poll_and_drain(&fds[..nfds], timeout);
        }
    }
}

impl Shared {
    /// The stack thread's wait: poll(2) on `fds` (the wake-up socket
    /// first), reading the wake-up socket only when it has data.
    fn poll_and_drain(&self, fds: &[PollFd], timeout: Option<Duration>) {
        match sys::poll(fds, timeout) {
            Ok(ready) if ready & 1 == 0 => {}
            Ok(_) => self.drain_wakes(),
            Err(e) => {
                warn!(error = %e, "poll failed");
                std::thread::sleep(Duration::from_millis(1));
                self.drain_wakes();
            }
        }
    }

    /// The stack thread when the device is split: it reads frames without
    /// the stack lock, then hands them to the stack if the lock is free, or
    /// leaves them in the inbox for the caller holding it (who looks there
    /// between bursts of sends and before it lets go).
    fn thread_main_split(self: Arc<Self>, mut half: Box<dyn RxHalf>, inbox: &Inbox) {
        let mut local = PacketBatch::new();
        let mut next: Option<Instant> = None;
        let mut held = false;
        // Where a frame that does not fit a ring in place is read (and put
        // back together); empty when the device cannot scatter.
        let mut rest = if half.can_scatter() {
            vec![0u8; half.max_frame_len()]
        } else {
            Vec::new()
        };
        // Bulk data is being taken in place: wait for the lock rather than
        // read the usual way (a copy) while a caller holds it.
        let mut receiving = false;
        while !self.stop.load(Ordering::Acquire) {
            local.clear();
            let mut full = false;
            if !rest.is_empty() {
                // In place, if a ring is ready: the payload lands in the
                // ring under the lock (no copy). Otherwise (the lock busy
                // while nothing is being received in place, as while a
                // caller sends) read without it, as below.
                let st = if receiving {
                    Some(self.lock())
                } else {
                    self.try_lock_state()
                };
                let placed = st.and_then(|mut st| {
                    let now = self.clock.now();
                    let got = st.read_placed(now, &mut *half, &mut rest);
                    (next, held) = self.pump_locked(st, now);
                    got
                });
                receiving = match placed {
                    Some((r, _)) => r.in_place > 0 || (receiving && r.read == 0),
                    None => false,
                };
                if let Some((_, more)) = placed {
                    if more {
                        continue;
                    }
                    self.wait_split(&*half, inbox, next, held);
                    continue;
                }
            }
            for _ in 0..RX_BATCHES_PER_PUMP {
                match half.recv_batch(&mut local, RX_BATCH) {
                    Ok(n) => {
                        full = n == RX_BATCH;
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        self.lock().device_error(&e);
                        full = false;
                        break;
                    }
                }
            }
            if !local.is_empty() {
                inbox.put(&mut local);
            }
            if let Some(st) = self.try_lock_state() {
                let now = self.clock.now();
                (next, held) = self.pump_locked(st, now);
            }
            if full {
                continue;
            }
            self.wait_split(&*half, inbox, next, held);
        }
    }

    /// The stack lock, if free now.
    fn try_lock_state(&self) -> Option<MutexGuard<'_, State>> {
        match self.state.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// The split stack thread's turn at the stack: pump, note the next
    /// deadline, let go of the lock and wake whom it owes. Returns the
    /// deadline and whether a frame is held for the device.
    fn pump_locked(&self, mut st: MutexGuard<'_, State>, now: Instant) -> (Option<Instant>, bool) {
        if st.pump(now) {
            self.notify_all();
        }
        let next = st.next_deadline();
        st.thread_deadline = next;
        let held = st.held.is_some();
        let wakes = st.take_wakes();
        drop(st);
        wake_all(wakes);
        (next, held)
    }

    /// The split stack thread's wait for the device, a wake-up or `next`.
    fn wait_split(&self, half: &dyn RxHalf, inbox: &Inbox, next: Option<Instant>, held: bool) {
        let fds = [
            PollFd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&self.wake_rx),
                read: true,
                write: false,
            },
            PollFd {
                fd: half.as_raw_fd(),
                read: true,
                write: held,
            },
        ];
        let mut timeout = self.timeout_until(next, true);
        if inbox.pending.load(Ordering::Acquire) {
            // The lock was busy and its holder may have let go before
            // looking in the inbox: come back soon.
            timeout = Some(timeout.map_or(STRANDED_RETRY, |t| t.min(STRANDED_RETRY)));
        }
        self.poll_and_drain(&fds, timeout);
    }
}

/// Wakes the tasks whose sockets turned ready and raises the signals due.
fn wake_all(due: Due) {
    for w in due.wakers {
        w.wake();
    }
    for r in due.signals {
        signal::raise(r);
    }
}

/// Stops the stack thread when the last [`Runtime`] clone is dropped.
struct Owner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake_thread();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
        // The last events to the trace.
        self.shared.lock().write_trace();
    }
}

/// A running stack; clone it freely (all clones drive the same stack).
///
/// Two runtimes on an in-memory link, one serving, one fetching:
///
/// ```
/// use std::io::{Read, Write};
/// use ustack::net::{TcpListener, TcpStream};
///
/// let (client, server) = ustack::memnet::pair()?; // 10.0.0.1 and 10.0.0.2
/// let listener = TcpListener::bind(&server, "10.0.0.2:80")?;
/// let mut out = TcpStream::connect(&client, "10.0.0.2:80")?;
/// let (mut conn, peer) = listener.accept()?;
/// assert_eq!(peer, out.local_addr()?);
/// out.write_all(b"hello")?;
/// let mut buf = [0u8; 5];
/// conn.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"hello");
/// // The stack itself, for what the socket calls do not show.
/// assert!(client.counters().tcp.active_opens >= 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Runtime {
    owner: Arc<Owner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("mode", &self.mode())
            .finish()
    }
}

impl Runtime {
    /// Builds the stack `cfg` describes and starts it over `device` on the
    /// real clock: the common case. A configuration the stack refuses is an
    /// `InvalidInput` error saying why.
    pub fn with_config(
        cfg: StackConfig,
        device: impl Device + Send + 'static,
        mode: Mode,
    ) -> io::Result<Runtime> {
        let stack = Stack::new(cfg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Runtime::new(stack, device, Clock::new(), mode)
    }

    /// Starts a runtime over `device`. `clock` is the time base the stack's
    /// instants come from (a shared in-memory link dictates its own).
    pub fn new(
        stack: Stack,
        device: impl Device + Send + 'static,
        clock: Clock,
        mode: Mode,
    ) -> io::Result<Runtime> {
        Runtime::new_with_init(stack, device, clock, mode, || {})
    }

    /// [`new`](Self::new), `init` run first on the stack thread in
    /// [`Mode::Thread`] (a runtime group pins it to a core); not run in
    /// the other modes, which have no thread.
    pub fn new_with_init(
        stack: Stack,
        device: impl Device + Send + 'static,
        clock: Clock,
        mode: Mode,
        init: impl FnOnce() + Send + 'static,
    ) -> io::Result<Runtime> {
        let mut device = device;
        // In thread mode the stack thread reads the device itself, without
        // the stack lock, when the device can split (a TUN/TAP): it reads
        // while a caller holding the lock writes, each on its own core.
        let rx_half = match mode {
            Mode::Thread => device.rx_half(),
            Mode::Inline | Mode::External => None,
        };
        let (wake_tx, wake_rx) = UnixDatagram::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        let frame = device.max_frame_len().max(ustack_devices::MAX_FRAME);
        let state = State {
            stack,
            device: Box::new(device),
            rx: PacketBatch::new(),
            txbuf: vec![0; frame],
            held: None,
            fds: FdTable::default(),
            epolls: HashMap::new(),
            watchers: HashMap::new(),
            exclusive: epoll::ExclusiveTurns::default(),
            thread_deadline: None,
            driving: false,
            device_errors: 0,
            rx_backlog: false,
            inbox: rx_half.as_ref().map(|_| Arc::new(Inbox::default())),
            inbox_spare: PacketBatch::new(),
            changed_by_caller: false,
            changed_by_network: false,
            wakers: HashMap::new(),
            driver: None,
            to_wake: Vec::new(),
            sigio: HashMap::new(),
            to_signal: Vec::new(),
            gro: false,
            gro_out: PacketBatch::new(),
            trace: None,
        };
        let inbox = state.inbox.clone();
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            wake_tx,
            wake_rx,
            clock,
            mode,
            stop: AtomicBool::new(false),
        });
        let thread = match mode {
            Mode::Thread => {
                let s = shared.clone();
                Some(
                    std::thread::Builder::new()
                        .name("ustack".into())
                        .spawn(move || {
                            init();
                            match (rx_half, inbox) {
                                (Some(half), Some(inbox)) => s.thread_main_split(half, &inbox),
                                _ => s.thread_main(),
                            }
                        })?,
                )
            }
            Mode::Inline | Mode::External => None,
        };
        Ok(Runtime {
            owner: Arc::new(Owner {
                shared,
                thread: Mutex::new(thread),
            }),
        })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.owner.shared
    }

    pub fn mode(&self) -> Mode {
        self.shared().mode
    }

    /// From now on, writes the stack's events as a JSON-lines trace
    /// (docs/trace.md) to `out`, `host` naming this stack in it; turns on
    /// the per-segment TCP events ([`ustack_core::StackConfig::trace`]).
    pub fn trace_to(&self, out: Box<dyn Write + Send>, host: &str) {
        self.with(|st, _| {
            st.stack.set_trace(true);
            st.trace = Some((TraceWriter::new(out), host.to_owned()));
        });
    }

    /// The stack's clock now.
    pub fn now(&self) -> Instant {
        self.shared().clock.now()
    }

    /// Runs `f` on the stack under the lock, then sends what it owes and
    /// wakes whoever the change concerns. In inline mode the device is
    /// serviced first, since no thread does it.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State, Instant) -> R) -> R {
        let shared = self.shared();
        let mut st = shared.lock();
        let now = shared.clock.now();
        if shared.mode == Mode::Inline {
            st.pump(now);
        }
        shared.take_inbox(&mut st, now);
        let r = f(&mut st, now);
        shared.settle(&mut st, now);
        let wakes = st.take_wakes();
        drop(st);
        wake_all(wakes);
        r
    }

    /// Runs `f` until it returns something other than EAGAIN, waiting for
    /// readiness changes in between, up to `timeout` (None: forever); EAGAIN
    /// when the time is up.
    pub(crate) fn wait<R>(
        &self,
        timeout: Option<Duration>,
        mut f: impl FnMut(&mut State, Instant) -> Result<R, Errno>,
    ) -> Result<R, Errno> {
        let shared = self.shared();
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let mut st = shared.lock();
        loop {
            let now = shared.clock.now();
            if shared.mode == Mode::Inline {
                st.pump(now);
            }
            shared.take_inbox(&mut st, now);
            let r = f(&mut st, now);
            let news = shared.settle(&mut st, now);
            let left = match r {
                Err(Errno::EAGAIN) => match deadline {
                    Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                        Some(left) if !left.is_zero() => Ok(Some(left)),
                        _ => Err(Err(Errno::EAGAIN)),
                    },
                    None => Ok(None),
                },
                other => Err(other),
            };
            let left = match left {
                Ok(left) => left,
                Err(done) => {
                    let wakes = st.take_wakes();
                    drop(st);
                    wake_all(wakes);
                    return done;
                }
            };
            if news {
                // Frames taken in after `f` looked may have made it ready:
                // look again before sleeping.
                continue;
            }
            // Rare (a blocking caller beside async tasks): woken with the lock held.
            wake_all(st.take_wakes());
            st = self.sleep(st, left);
        }
    }

    /// Sleeps until something changes or `left` passes. In inline mode the
    /// sleeper drives the device (unless another caller already does).
    fn sleep<'a>(
        &'a self,
        st: MutexGuard<'a, State>,
        left: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        let shared = self.shared();
        if shared.mode != Mode::Inline || st.driving {
            let cap = left.unwrap_or(Duration::from_secs(3600));
            shared.sleepers.fetch_add(1, Ordering::SeqCst);
            let st = shared
                .changed
                .wait_timeout(st, cap)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            shared.sleepers.fetch_sub(1, Ordering::SeqCst);
            return st;
        }
        let mut st = st;
        st.driving = true;
        let (fds, nfds) = shared.wait_fds(&st, st.held.is_some());
        let to_deadline = shared.timeout_until(st.next_deadline(), nfds > 1);
        let timeout = match (to_deadline, left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        drop(st);
        if sys::poll(&fds[..nfds], timeout).map_or(true, |ready| ready & 1 != 0) {
            shared.drain_wakes();
        }
        let mut st = shared.lock();
        st.driving = false;
        let now = shared.clock.now();
        if st.pump(now) {
            shared.notify_all();
        } else {
            // Let any other waiter take a turn at driving.
            if shared.sleepers.load(Ordering::SeqCst) > 0 {
                shared.changed.notify_one();
            }
        }
        st
    }

    /// Runs `f` on the stack until it returns something other than EAGAIN,
    /// waiting for the stack to change in between, up to `timeout` (None:
    /// forever); EAGAIN when the time is up. For calls the POSIX layer does
    /// not cover (ping sockets, say).
    pub fn wait_stack<R>(
        &self,
        timeout: Option<Duration>,
        mut f: impl FnMut(&mut Stack, Instant) -> Result<R, Errno>,
    ) -> Result<R, Errno> {
        self.wait(timeout, |st, now| f(&mut st.stack, now))
    }

    /// Direct access to the core, for observability and setup.
    pub fn with_stack<R>(&self, f: impl FnOnce(&mut Stack, Instant) -> R) -> R {
        self.with(|st, now| f(&mut st.stack, now))
    }

    /// Mode::External: one turn of the stack's work — frames in, frames
    /// out, timers, readiness news to waiters — then what to wait for
    /// before the next turn. `waker` is woken when a caller moves the next
    /// deadline earlier (or leaves a frame for the device to take).
    pub fn drive(&self, waker: &Waker) -> Drive {
        let shared = self.shared();
        let mut st = shared.lock();
        let now = shared.clock.now();
        if st.pump(now) {
            shared.notify_all();
        }
        let next = st.next_deadline();
        st.thread_deadline = next;
        match &st.driver {
            Some(w) if w.will_wake(waker) => {}
            _ => st.driver = Some(waker.clone()),
        }
        let d = Drive {
            fd: st.device.as_raw_fd(),
            want_write: st.held.is_some(),
            deadline: next.map(|t| shared.clock.to_std(t)),
            again: st.rx_backlog,
        };
        let wakes = st.take_wakes();
        drop(st);
        wake_all(wakes);
        d
    }

    /// Asks for `waker` to be woken when the socket behind `fd` turns ready
    /// for `interest` (or errs, or closes). The waker replaces the one
    /// registered before in that direction. For async callers of other
    /// calls than the `*_or_wake` ones (which register under the same
    /// lock as they try): try the call with MSG_DONTWAIT; on EAGAIN
    /// register, then try once more (a change between the two tries
    /// wakes the waker), and wait.
    /// Wakers are woken by whichever thread changes the readiness (the
    /// stack thread for news from the network), never by polling.
    pub fn register_waker(&self, fd: i32, interest: Interest, waker: &Waker) -> Result<(), Errno> {
        let shared = self.shared();
        let mut st = shared.lock();
        let h = match st.fds.get(fd) {
            Some(Entry::Socket(s)) => s.handle,
            Some(Entry::Epoll) => return Err(Errno::ENOTSOCK),
            None => return Err(Errno::EBADF),
        };
        st.register_waker(h, interest, waker);
        Ok(())
    }

    /// A snapshot of the stack's counters.
    pub fn counters(&self) -> Counters {
        self.with(|st, _| *st.stack.counters())
    }

    /// Device errors (other than a full queue) seen so far.
    pub fn device_errors(&self) -> u64 {
        self.with(|st, _| st.device_errors)
    }

    /// The device's counters (frames, offloads).
    pub fn device_stats(&self) -> ustack_devices::DeviceStats {
        self.with(|st, _| st.device.stats())
    }

    /// Software GRO (`ustack_devices::offload::gro`): each batch of frames
    /// the stack thread read is merged, in-order segments of one flow into
    /// one datagram, before the stack takes it. For devices whose kernel
    /// side does not coalesce (a TUN/TAP without offloads); applies when
    /// the device is read by the stack thread (thread mode, a TUN/TAP).
    pub fn set_gro(&self, on: bool) {
        self.with(|st, _| st.gro = on);
    }

    /// The offloads the device negotiated.
    pub fn device_offloads(&self) -> ustack_devices::Offloads {
        self.with(|st, _| st.device.offloads())
    }
}
