//! Socket handles, readiness (what epoll reports), the handle table every
//! protocol shares, and the per-protocol socket slab keyed by handle.
//!
//! A handle names one socket of a stack; the [`Handles`] table says which
//! protocol owns it and keeps the list of sockets whose readiness may have
//! changed. Each protocol keeps its own sockets in a [`Slab`], so no
//! protocol module needs to know the others' socket types.

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

/// The protocol a handle belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Icmp,
    Tcp,
}

struct Slot {
    generation: u32,
    proto: Option<Proto>,
    /// Already on the readiness-change list.
    queued: bool,
}

/// The handle table: which protocol owns each live handle, plus the list
/// of sockets whose readiness may have changed since it was last drained.
#[derive(Default)]
pub struct Handles {
    slots: Vec<Slot>,
    free: Vec<u32>,
    changed: Vec<SocketHandle>,
    len: usize,
}

impl Handles {
    /// A fresh handle for a socket of `proto`.
    pub fn insert(&mut self, proto: Proto) -> SocketHandle {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.generation = slot.generation.wrapping_add(1);
            slot.proto = Some(proto);
            slot.queued = false;
            SocketHandle {
                index,
                generation: slot.generation,
            }
        } else {
            let index = u32::try_from(self.slots.len()).expect("more than 2^32 sockets");
            self.slots.push(Slot {
                generation: 0,
                proto: Some(proto),
                queued: false,
            });
            SocketHandle {
                index,
                generation: 0,
            }
        }
    }

    /// The protocol of a live handle.
    #[inline]
    pub fn proto(&self, h: SocketHandle) -> Option<Proto> {
        let slot = self.slots.get(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.proto
    }

    pub fn remove(&mut self, h: SocketHandle) -> Option<Proto> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        let p = slot.proto.take()?;
        self.free.push(h.index);
        self.len -= 1;
        Some(p)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Notes that `h`'s readiness may have changed (deduplicated).
    #[inline(always)]
    pub fn mark_changed(&mut self, h: SocketHandle) {
        if let Some(slot) = self.slots.get_mut(h.index as usize) {
            if slot.generation == h.generation && slot.proto.is_some() && !slot.queued {
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

/// One protocol's sockets, indexed by handle (the index space is shared
/// with the other protocols, so it may be sparse).
/// Values are boxed: a slot is 16 bytes whatever `T` is, a removed value
/// gives its memory back at once, and trailing empty slots are trimmed.
pub struct Slab<T> {
    items: Vec<Option<(u32, Box<T>)>>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab { items: Vec::new() }
    }
}

impl<T> Slab<T> {
    /// Stores `v` under a handle fresh from [`Handles::insert`].
    pub fn insert(&mut self, h: SocketHandle, v: T) {
        let i = h.index as usize;
        if self.items.len() <= i {
            self.items.resize_with(i + 1, || None);
        }
        self.items[i] = Some((h.generation, Box::new(v)));
    }

    #[inline]
    pub fn get(&self, h: SocketHandle) -> Option<&T> {
        match self.items.get(h.index as usize)? {
            Some((g, v)) if *g == h.generation => Some(&**v),
            _ => None,
        }
    }

    #[inline]
    pub fn get_mut(&mut self, h: SocketHandle) -> Option<&mut T> {
        match self.items.get_mut(h.index as usize)? {
            Some((g, v)) if *g == h.generation => Some(&mut **v),
            _ => None,
        }
    }

    pub fn remove(&mut self, h: SocketHandle) -> Option<T> {
        let slot = self.items.get_mut(h.index as usize)?;
        match slot {
            Some((g, _)) if *g == h.generation => {
                let v = slot.take().map(|(_, v)| *v);
                while self.items.last().is_some_and(|s| s.is_none()) {
                    self.items.pop();
                }
                if self.items.capacity() > 64 && self.items.len() < self.items.capacity() / 4 {
                    self.items.shrink_to(self.items.len() * 2);
                }
                v
            }
            _ => None,
        }
    }

    /// Every socket, by handle order.
    pub fn iter(&self) -> impl Iterator<Item = (SocketHandle, &T)> {
        self.items.iter().enumerate().filter_map(|(i, s)| {
            let (generation, v) = s.as_ref()?;
            Some((
                SocketHandle {
                    index: i as u32,
                    generation: *generation,
                },
                &**v,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_never_alias() {
        let mut set = Handles::default();
        let a = set.insert(Proto::Icmp);
        assert!(set.remove(a).is_some());
        let b = set.insert(Proto::Udp);
        assert_eq!(a.index(), b.index());
        assert!(set.proto(a).is_none());
        assert_eq!(set.proto(b), Some(Proto::Udp));
        assert!(set.remove(a).is_none());
        assert_eq!(set.len(), 1);
        let mut slab = Slab::default();
        slab.insert(b, 7u8);
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.get(b), Some(&7));
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.remove(b), Some(7));
    }

    #[test]
    fn changes_are_deduplicated() {
        let mut set = Handles::default();
        let a = set.insert(Proto::Icmp);
        set.mark_changed(a);
        set.mark_changed(a);
        assert_eq!(set.take_changed(), vec![a]);
        assert!(set.take_changed().is_empty());
        set.mark_changed(a);
        assert_eq!(set.take_changed(), vec![a]);
    }
}
