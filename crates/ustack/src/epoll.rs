//! The epoll engine: an interest set and a ready list per instance, with
//! Linux's level-triggered, edge-triggered and one-shot semantics
//! (epoll(7)). It is pure bookkeeping: the runtime tells it when a watched
//! descriptor's readiness changed and asks it for events; no scan of all
//! sockets happens per wait.
//!
//! The calls are [`Runtime`](crate::Runtime) methods, as in C:
//!
//! ```
//! use ustack::epoll::*;
//! use ustack::posix::*;
//! use ustack::EpollEvent;
//!
//! let (a, b) = ustack::memnet::pair()?;
//! let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)?;
//! b.bind(l, "10.0.0.2:80".parse::<std::net::SocketAddr>().unwrap())?;
//! b.listen(l, 16)?;
//! let ep = b.epoll_create1(0)?;
//! b.epoll_ctl(ep, EPOLL_CTL_ADD, l, Some(EpollEvent::new(EPOLLIN, l as u64)))?;
//! // A client connects: the listener becomes readable.
//! let c = a.socket(AF_INET, SOCK_STREAM, 0)?;
//! a.connect(c, "10.0.0.2:80".parse::<std::net::SocketAddr>().unwrap())?;
//! let mut events = [EpollEvent::new(0, 0); 8];
//! let n = b.epoll_wait(ep, &mut events, 5000)?;
//! assert_eq!((n, events[0].data), (1, l as u64));
//! assert!(events[0].events & EPOLLIN != 0);
//! let (conn, _peer) = b.accept(l)?;
//! b.close(conn)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::errno::{Errno, Result};
use std::collections::{HashMap, VecDeque};
use ustack_core::{Readiness, SocketHandle};

pub const EPOLLIN: u32 = libc::EPOLLIN as u32;
pub const EPOLLPRI: u32 = libc::EPOLLPRI as u32;
pub const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
pub const EPOLLERR: u32 = libc::EPOLLERR as u32;
pub const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
pub const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
pub const EPOLLET: u32 = libc::EPOLLET as u32;
pub const EPOLLONESHOT: u32 = libc::EPOLLONESHOT as u32;
pub const EPOLLEXCLUSIVE: u32 = libc::EPOLLEXCLUSIVE as u32;

/// `epoll_ctl` operations.
pub const EPOLL_CTL_ADD: i32 = libc::EPOLL_CTL_ADD;
pub const EPOLL_CTL_DEL: i32 = libc::EPOLL_CTL_DEL;
pub const EPOLL_CTL_MOD: i32 = libc::EPOLL_CTL_MOD;

/// Events always reported, whether asked for or not (epoll_ctl(2)).
const ALWAYS: u32 = EPOLLERR | EPOLLHUP;
/// The mode bits of an interest, as opposed to the events.
const MODES: u32 = EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE;

/// One event as `epoll_wait` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpollEvent {
    pub events: u32,
    pub data: u64,
}

impl EpollEvent {
    pub fn new(events: u32, data: u64) -> EpollEvent {
        EpollEvent { events, data }
    }
}

/// The epoll mask of a socket's readiness.
pub fn mask(r: Readiness) -> u32 {
    let mut m = 0;
    if r.readable {
        m |= EPOLLIN;
    }
    if r.writable {
        m |= EPOLLOUT;
    }
    if r.error {
        m |= EPOLLERR;
    }
    if r.hangup {
        m |= EPOLLHUP;
    }
    if r.read_hangup {
        m |= EPOLLRDHUP | EPOLLIN;
    }
    m
}

#[derive(Debug, Clone, Copy)]
struct Interest {
    events: u32,
    data: u64,
    /// False after a one-shot report, until `EPOLL_CTL_MOD`.
    armed: bool,
    /// On the ready list now.
    queued: bool,
}

impl Interest {
    fn wants(&self, current: u32) -> u32 {
        current & ((self.events & !MODES) | ALWAYS)
    }
}

/// One epoll instance.
#[derive(Debug, Default)]
pub struct EpollSet {
    interest: HashMap<i32, Interest>,
    ready: VecDeque<i32>,
}

impl EpollSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Descriptors watched.
    pub fn len(&self) -> usize {
        self.interest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.interest.is_empty()
    }

    /// Whether events may be waiting (the ready list is not empty).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The descriptors watched.
    pub fn fds(&self) -> impl Iterator<Item = i32> + '_ {
        self.interest.keys().copied()
    }

    pub fn watches(&self, fd: i32) -> bool {
        self.interest.contains_key(&fd)
    }

    /// Whether `fd` was added with `EPOLLEXCLUSIVE`.
    pub fn is_exclusive(&self, fd: i32) -> bool {
        self.interest
            .get(&fd)
            .is_some_and(|i| i.events & EPOLLEXCLUSIVE != 0)
    }

    /// EPOLL_CTL_ADD: EEXIST if already watched. `current` is the fd's
    /// readiness now: an fd that is already ready is reported by the next wait.
    pub fn add(&mut self, fd: i32, ev: EpollEvent, current: u32) -> Result<()> {
        if self.interest.contains_key(&fd) {
            return Err(Errno::EEXIST);
        }
        // EPOLLEXCLUSIVE goes only with ADD, and not with ONESHOT (epoll_ctl(2)).
        if ev.events & EPOLLEXCLUSIVE != 0 && ev.events & EPOLLONESHOT != 0 {
            return Err(Errno::EINVAL);
        }
        self.interest.insert(
            fd,
            Interest {
                events: ev.events,
                data: ev.data,
                armed: true,
                queued: false,
            },
        );
        self.notify(fd, current);
        Ok(())
    }

    /// EPOLL_CTL_MOD: ENOENT if not watched; re-arms a one-shot interest.
    /// An exclusive interest cannot be modified (EINVAL, as Linux).
    pub fn modify(&mut self, fd: i32, ev: EpollEvent, current: u32) -> Result<()> {
        let i = self.interest.get_mut(&fd).ok_or(Errno::ENOENT)?;
        if i.events & EPOLLEXCLUSIVE != 0 || ev.events & EPOLLEXCLUSIVE != 0 {
            return Err(Errno::EINVAL);
        }
        i.events = ev.events;
        i.data = ev.data;
        i.armed = true;
        self.notify(fd, current);
        Ok(())
    }

    /// EPOLL_CTL_DEL: ENOENT if not watched.
    pub fn delete(&mut self, fd: i32) -> Result<()> {
        let i = self.interest.remove(&fd).ok_or(Errno::ENOENT)?;
        if i.queued {
            self.ready.retain(|&x| x != fd);
        }
        Ok(())
    }

    /// Something happened on `fd` (data arrived, space freed, error, ...):
    /// puts it on the ready list if an event it watches holds now.
    /// Returns whether it did (so the runtime can wake a waiter).
    pub fn notify(&mut self, fd: i32, current: u32) -> bool {
        self.notify_change(fd, current, true)
    }

    /// Like [`notify`](Self::notify); `edge` says whether the change was an
    /// event from the network (new data, freed space, a FIN) rather than
    /// the application's own call (a read that left data behind). Only
    /// events wake edge-triggered interests (epoll(7): ET reports arrivals).
    pub fn notify_change(&mut self, fd: i32, current: u32, edge: bool) -> bool {
        let Some(i) = self.interest.get_mut(&fd) else {
            return false;
        };
        if !i.armed || i.wants(current) == 0 || (!edge && i.events & EPOLLET != 0) {
            return false;
        }
        if !i.queued {
            i.queued = true;
            self.ready.push_back(fd);
        }
        true
    }

    /// Takes up to `max` events. `current(fd)` gives each fd's readiness now;
    /// an fd whose watched events no longer hold is dropped from the list.
    /// Level-triggered fds stay on the list and are reported again by the
    /// next wait while their condition holds; edge-triggered ones wait for
    /// the next [`notify`](Self::notify); one-shot ones are disarmed.
    pub fn collect(&mut self, max: usize, mut current: impl FnMut(i32) -> u32) -> Vec<EpollEvent> {
        let mut out = Vec::new();
        // Each fd at most once per call: only those queued when it began.
        let mut budget = self.ready.len();
        while out.len() < max && budget > 0 {
            budget -= 1;
            let Some(fd) = self.ready.pop_front() else {
                break;
            };
            let Some(i) = self.interest.get_mut(&fd) else {
                continue;
            };
            i.queued = false;
            let events = i.wants(current(fd));
            if events == 0 || !i.armed {
                continue;
            }
            out.push(EpollEvent {
                events,
                data: i.data,
            });
            if i.events & EPOLLONESHOT != 0 {
                i.armed = false;
            } else if i.events & EPOLLET == 0 {
                i.queued = true;
                self.ready.push_back(fd);
            }
        }
        out
    }
}

/// EPOLLEXCLUSIVE (epoll_ctl(2)): of the instances that watch one socket
/// exclusively, a change wakes one, in turn; the others are told as usual.
#[derive(Debug, Default)]
pub(crate) struct ExclusiveTurns {
    turn: HashMap<SocketHandle, usize>,
}

impl ExclusiveTurns {
    /// Hands a readiness change of `h` (`mask`, `edge` as in
    /// [`EpollSet::notify_change`]) to its `watchers`, (epoll fd, fd) pairs.
    pub(crate) fn notify(
        &mut self,
        epolls: &mut HashMap<i32, EpollSet>,
        h: SocketHandle,
        watchers: &[(i32, i32)],
        mask: u32,
        edge: bool,
    ) {
        let exclusive: Vec<(i32, i32)> = watchers
            .iter()
            .copied()
            .filter(|&(ep, fd)| epolls.get(&ep).is_some_and(|s| s.is_exclusive(fd)))
            .collect();
        for &(ep, fd) in watchers {
            if exclusive.contains(&(ep, fd)) {
                continue;
            }
            if let Some(set) = epolls.get_mut(&ep) {
                set.notify_change(fd, mask, edge);
            }
        }
        if exclusive.is_empty() {
            return;
        }
        let turn = self.turn.entry(h).or_insert(0);
        for k in 0..exclusive.len() {
            let (ep, fd) = exclusive[(*turn + k) % exclusive.len()];
            if let Some(set) = epolls.get_mut(&ep) {
                if set.notify_change(fd, mask, edge) {
                    *turn = (*turn + k + 1) % exclusive.len();
                    break;
                }
            }
        }
    }

    /// Forgets `h`'s turn once nothing watches it.
    pub(crate) fn forget(&mut self, h: SocketHandle) {
        self.turn.remove(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctl_errors_match_linux() {
        let mut e = EpollSet::new();
        e.add(3, EpollEvent::new(EPOLLIN, 3), 0).unwrap();
        assert_eq!(e.add(3, EpollEvent::new(EPOLLIN, 3), 0), Err(Errno::EEXIST));
        assert_eq!(
            e.modify(4, EpollEvent::new(EPOLLIN, 4), 0),
            Err(Errno::ENOENT)
        );
        assert_eq!(e.delete(4), Err(Errno::ENOENT));
        assert_eq!(
            e.add(
                5,
                EpollEvent::new(EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT, 5),
                0
            ),
            Err(Errno::EINVAL)
        );
        e.add(6, EpollEvent::new(EPOLLIN | EPOLLEXCLUSIVE, 6), 0)
            .unwrap();
        assert_eq!(
            e.modify(6, EpollEvent::new(EPOLLOUT, 6), 0),
            Err(Errno::EINVAL)
        );
        e.delete(3).unwrap();
        assert!(!e.watches(3));
    }

    #[test]
    fn level_triggered_reports_while_condition_holds() {
        let mut e = EpollSet::new();
        e.add(3, EpollEvent::new(EPOLLIN, 33), 0).unwrap();
        assert!(e.collect(8, |_| EPOLLIN).is_empty(), "nothing happened yet");
        e.notify(3, EPOLLIN);
        assert_eq!(
            e.collect(8, |_| EPOLLIN),
            vec![EpollEvent::new(EPOLLIN, 33)]
        );
        assert_eq!(
            e.collect(8, |_| EPOLLIN),
            vec![EpollEvent::new(EPOLLIN, 33)],
            "still readable"
        );
        assert!(e.collect(8, |_| 0).is_empty(), "drained");
        assert!(
            e.collect(8, |_| EPOLLIN).is_empty(),
            "off the list until the next change"
        );
    }

    #[test]
    fn edge_triggered_reports_once_per_change() {
        let mut e = EpollSet::new();
        e.add(3, EpollEvent::new(EPOLLIN | EPOLLET, 3), 0).unwrap();
        e.notify(3, EPOLLIN);
        e.notify(3, EPOLLIN);
        assert_eq!(e.collect(8, |_| EPOLLIN).len(), 1);
        assert!(
            e.collect(8, |_| EPOLLIN).is_empty(),
            "data remains, but no new arrival"
        );
        e.notify(3, EPOLLIN);
        assert_eq!(e.collect(8, |_| EPOLLIN).len(), 1, "new data, new edge");
    }

    #[test]
    fn edge_triggered_ignores_the_applications_own_changes() {
        let mut e = EpollSet::new();
        e.add(3, EpollEvent::new(EPOLLIN | EPOLLET, 3), 0).unwrap();
        e.add(4, EpollEvent::new(EPOLLIN, 4), 0).unwrap();
        assert!(
            !e.notify_change(3, EPOLLIN, false),
            "a partial read is no arrival"
        );
        assert!(
            e.notify_change(4, EPOLLIN, false),
            "level-triggered still listens"
        );
        assert_eq!(e.collect(8, |_| EPOLLIN), vec![EpollEvent::new(EPOLLIN, 4)]);
    }

    #[test]
    fn oneshot_is_silent_until_mod() {
        let mut e = EpollSet::new();
        e.add(3, EpollEvent::new(EPOLLIN | EPOLLONESHOT, 3), EPOLLIN)
            .unwrap();
        assert_eq!(e.collect(8, |_| EPOLLIN).len(), 1, "ready at ADD");
        e.notify(3, EPOLLIN);
        assert!(e.collect(8, |_| EPOLLIN).is_empty());
        e.modify(3, EpollEvent::new(EPOLLIN | EPOLLONESHOT, 3), EPOLLIN)
            .unwrap();
        assert_eq!(e.collect(8, |_| EPOLLIN).len(), 1, "re-armed by MOD");
    }

    #[test]
    fn errors_and_hangups_are_always_reported_and_masks_filter() {
        let mut e = EpollSet::new();
        e.add(3, EpollEvent::new(EPOLLOUT, 3), 0).unwrap();
        e.notify(3, EPOLLIN);
        assert!(
            e.collect(8, |_| EPOLLIN).is_empty(),
            "EPOLLIN not asked for"
        );
        e.notify(3, EPOLLIN | EPOLLERR | EPOLLHUP);
        assert_eq!(
            e.collect(8, |_| EPOLLIN | EPOLLERR | EPOLLHUP),
            vec![EpollEvent::new(EPOLLERR | EPOLLHUP, 3)]
        );
    }

    #[test]
    fn maxevents_and_fairness() {
        let mut e = EpollSet::new();
        for fd in 0..10 {
            e.add(fd, EpollEvent::new(EPOLLIN, fd as u64), EPOLLIN)
                .unwrap();
        }
        let first: Vec<u64> = e.collect(4, |_| EPOLLIN).iter().map(|x| x.data).collect();
        let second: Vec<u64> = e.collect(4, |_| EPOLLIN).iter().map(|x| x.data).collect();
        assert_eq!(first, vec![0, 1, 2, 3]);
        assert_eq!(
            second,
            vec![4, 5, 6, 7],
            "round robin: the rest before the first again"
        );
        e.delete(8).unwrap();
        let third: Vec<u64> = e.collect(4, |_| EPOLLIN).iter().map(|x| x.data).collect();
        assert_eq!(third, vec![9, 0, 1, 2]);
    }

    #[test]
    fn readiness_mask() {
        let r = Readiness {
            readable: true,
            writable: true,
            error: false,
            hangup: false,
            read_hangup: true,
        };
        assert_eq!(mask(r), EPOLLIN | EPOLLOUT | EPOLLRDHUP);
    }
}
