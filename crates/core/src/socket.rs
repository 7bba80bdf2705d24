//! Socket handles, the socket table, and readiness (what epoll reports).

use crate::icmp::IcmpSocket;
use crate::tcp::TcpSocket;
use crate::udp::UdpSocket;

/// Names one socket of a stack. Handles are never reused while the stack
/// lives (a generation counter), so a stale handle gives EBADF, never
/// another socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle {
    index: u32,
    generation: u32,
}

impl SocketHandle {
    /// A number to show to people (not stable across stacks).
    pub fn index(self) -> usize {
        self.index as usize
    }
}

/// The conditions epoll reports for a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// Data (or a connection, or EOF) can be read without blocking.
    pub readable: bool,
    /// A write would not block.
    pub writable: bool,
    /// A pending error (SO_ERROR) is set.
    pub error: bool,
    /// Both directions are shut (EPOLLHUP).
    pub hangup: bool,
    /// The peer shut its sending side (EPOLLRDHUP).
    pub read_hangup: bool,
}

/// The kinds of socket in the table.
#[derive(Debug)]
pub enum Socket {
    Udp(UdpSocket),
    Icmp(IcmpSocket),
    Tcp(TcpSocket),
}

struct Slot {
    generation: u32,
    socket: Option<Socket>,
    /// Already on the readiness-change list.
    queued: bool,
}

/// The socket table: a slab indexed by handle, plus the list of sockets
/// whose readiness may have changed since it was last drained.
#[derive(Default)]
pub struct SocketSet {
    slots: Vec<Slot>,
    free: Vec<u32>,
    changed: Vec<SocketHandle>,
    len: usize,
}

impl SocketSet {
    pub fn insert(&mut self, socket: Socket) -> SocketHandle {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.generation = slot.generation.wrapping_add(1);
            slot.socket = Some(socket);
            slot.queued = false;
            SocketHandle {
                index,
                generation: slot.generation,
            }
        } else {
            let index = u32::try_from(self.slots.len()).expect("more than 2^32 sockets");
            self.slots.push(Slot {
                generation: 0,
                socket: Some(socket),
                queued: false,
            });
            SocketHandle {
                index,
                generation: 0,
            }
        }
    }

    pub fn get(&self, h: SocketHandle) -> Option<&Socket> {
        let slot = self.slots.get(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.socket.as_ref()
    }

    pub fn get_mut(&mut self, h: SocketHandle) -> Option<&mut Socket> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.socket.as_mut()
    }

    pub fn remove(&mut self, h: SocketHandle) -> Option<Socket> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        let s = slot.socket.take()?;
        self.free.push(h.index);
        self.len -= 1;
        Some(s)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every live socket.
    pub fn iter(&self) -> impl Iterator<Item = (SocketHandle, &Socket)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let socket = s.socket.as_ref()?;
            Some((
                SocketHandle {
                    index: i as u32,
                    generation: s.generation,
                },
                socket,
            ))
        })
    }

    /// Notes that `h`'s readiness may have changed (deduplicated).
    #[inline(always)]
    pub fn mark_changed(&mut self, h: SocketHandle) {
        if let Some(slot) = self.slots.get_mut(h.index as usize) {
            if slot.generation == h.generation && slot.socket.is_some() && !slot.queued {
                slot.queued = true;
                self.changed.push(h);
            }
        }
    }

    /// Takes the sockets whose readiness may have changed, oldest first.
    pub fn take_changed(&mut self) -> Vec<SocketHandle> {
        let changed = std::mem::take(&mut self.changed);
        for h in &changed {
            if let Some(slot) = self.slots.get_mut(h.index as usize) {
                slot.queued = false;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_never_alias() {
        let mut set = SocketSet::default();
        let a = set.insert(Socket::Icmp(IcmpSocket::new(1, 4)));
        assert!(set.remove(a).is_some());
        let b = set.insert(Socket::Icmp(IcmpSocket::new(2, 4)));
        assert_eq!(a.index(), b.index());
        assert!(set.get(a).is_none());
        assert!(set.get(b).is_some());
        assert!(set.remove(a).is_none());
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn changes_are_deduplicated() {
        let mut set = SocketSet::default();
        let a = set.insert(Socket::Icmp(IcmpSocket::new(1, 4)));
        set.mark_changed(a);
        set.mark_changed(a);
        assert_eq!(set.take_changed(), vec![a]);
        assert!(set.take_changed().is_empty());
        set.mark_changed(a);
        assert_eq!(set.take_changed(), vec![a]);
    }
}
