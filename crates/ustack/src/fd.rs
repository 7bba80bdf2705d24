//! The descriptor table: small integers naming sockets and epoll instances,
//! lowest free number first, as POSIX allocates them.

use std::time::Duration;
use ustack_core::SocketHandle;

/// The socket type given to `socket()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stream,
    Datagram,
}

/// What the table keeps for a socket descriptor.
#[derive(Debug, Clone)]
pub struct SockEntry {
    pub handle: SocketHandle,
    pub kind: Kind,
    /// O_NONBLOCK.
    pub nonblocking: bool,
    /// SO_RCVTIMEO / SO_SNDTIMEO (None: wait forever).
    pub rcvtimeo: Option<Duration>,
    pub sndtimeo: Option<Duration>,
    /// SO_LINGER with a non-zero time: a blocking close waits that long for
    /// the queued data to be acknowledged.
    pub linger: Option<Duration>,
    /// Opened as AF_INET6: IPv4 peers show as v4-mapped addresses.
    pub v6: bool,
    /// Signal-driven I/O: O_ASYNC, F_SETOWN, F_SETSIG.
    pub sigio: SigSettings,
}

/// A descriptor's signal-driven I/O settings (fcntl(2)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SigSettings {
    /// O_ASYNC (FASYNC).
    pub on: bool,
    pub owner: crate::signal::Owner,
    /// F_SETSIG: 0 for SIGIO.
    pub sig: i32,
}

/// A descriptor: a socket, or an epoll instance (kept in the runtime's
/// epoll map, so waits can borrow it beside the sockets).
#[derive(Debug)]
pub enum Entry {
    Socket(SockEntry),
    Epoll,
}

/// First descriptor handed out: 0–2 stay stdin, stdout, stderr by convention.
pub const FIRST_FD: i32 = 3;

#[derive(Debug)]
pub struct FdTable {
    slots: Vec<Option<Entry>>,
    /// No free slot below this index.
    low: usize,
    live: usize,
    /// Descriptors allowed at once (RLIMIT_NOFILE); EMFILE beyond.
    pub limit: usize,
}

impl Default for FdTable {
    fn default() -> Self {
        FdTable {
            slots: Vec::new(),
            low: 0,
            live: 0,
            limit: 1 << 20,
        }
    }
}

impl FdTable {
    pub fn insert(&mut self, e: Entry) -> Option<i32> {
        if self.live >= self.limit {
            return None;
        }
        let i = (self.low..self.slots.len())
            .find(|&i| self.slots[i].is_none())
            .unwrap_or(self.slots.len());
        if i == self.slots.len() {
            self.slots.push(None);
        }
        self.slots[i] = Some(e);
        self.low = i + 1;
        self.live += 1;
        Some(i as i32 + FIRST_FD)
    }

    fn index(fd: i32) -> Option<usize> {
        usize::try_from(fd.checked_sub(FIRST_FD)?).ok()
    }

    pub fn get(&self, fd: i32) -> Option<&Entry> {
        self.slots.get(Self::index(fd)?)?.as_ref()
    }

    pub fn get_mut(&mut self, fd: i32) -> Option<&mut Entry> {
        self.slots.get_mut(Self::index(fd)?)?.as_mut()
    }

    pub fn remove(&mut self, fd: i32) -> Option<Entry> {
        let i = Self::index(fd)?;
        let e = self.slots.get_mut(i)?.take()?;
        self.low = self.low.min(i);
        self.live -= 1;
        Some(e)
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Every socket descriptor.
    pub fn sockets(&self) -> impl Iterator<Item = (i32, &SockEntry)> {
        self.slots.iter().enumerate().filter_map(|(i, e)| match e {
            Some(Entry::Socket(s)) => Some((i as i32 + FIRST_FD, s)),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_first_and_limit() {
        let mut t = FdTable {
            limit: 3,
            ..Default::default()
        };
        let a = t.insert(Entry::Epoll).unwrap();
        let b = t.insert(Entry::Epoll).unwrap();
        let c = t.insert(Entry::Epoll).unwrap();
        assert_eq!((a, b, c), (3, 4, 5));
        assert!(t.insert(Entry::Epoll).is_none(), "EMFILE");
        t.remove(4).unwrap();
        assert_eq!(t.insert(Entry::Epoll), Some(4), "lowest free");
        assert!(t.get(2).is_none() && t.get(-1).is_none() && t.get(99).is_none());
    }
}
