//! The send queue: bytes copied into the send ring, and buffers the
//! application lent the stack whole (zero-copy sends, the MSG_ZEROCOPY
//! idea), in the order they were queued. Segments and retransmissions
//! read from wherever the bytes lie; a lent buffer goes back (a
//! [`ZcDone`]) once the cumulative ACK has passed its last byte.
//!
//! Also the receive buffer an application posted ([`Posted`]): in-order
//! data is written straight into it from the frame when the ring holds
//! nothing before it.

use super::buffer::Ring;
use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use ustack_wire::checksum::{copy_and_sum, fold};

/// Bytes an application lends the stack for a zero-copy send: any owned
/// byte container (`Vec<u8>`, `Box<[u8]>`, a read-only file mapping).
/// It comes back as it went in ([`SendBuf::into_any`], downcast).
pub trait SendBuf: Send + 'static {
    fn bytes(&self) -> &[u8];
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<T: AsRef<[u8]> + Send + 'static> SendBuf for T {
    fn bytes(&self) -> &[u8] {
        self.as_ref()
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// The tag of a lent send buffer nobody waits for (a `sendfile`): it is
/// dropped once ACKed instead of handed back.
pub const ZC_DETACHED: u64 = u64::MAX;

/// A lent send buffer handed back: `acked` of its bytes were
/// cumulatively ACKed (all of them unless the connection ended first).
pub struct ZcDone {
    pub tag: u64,
    pub buf: Box<dyn SendBuf>,
    pub acked: usize,
}

impl std::fmt::Debug for ZcDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZcDone")
            .field("tag", &self.tag)
            .field("len", &self.buf.bytes().len())
            .field("acked", &self.acked)
            .finish()
    }
}

enum Piece {
    /// This many bytes at the front of what the ring still holds.
    Ring(usize),
    /// A lent buffer, its bytes before `start` already ACKed; `end` its
    /// length (read once: `bytes` is a dynamic call).
    Owned {
        buf: Box<dyn SendBuf>,
        tag: u64,
        start: usize,
        end: usize,
    },
}

impl Piece {
    fn len(&self) -> usize {
        match self {
            Piece::Ring(n) => *n,
            Piece::Owned { start, end, .. } => end - start,
        }
    }
}

/// The send queue: a byte ring plus lent buffers. While no buffer is
/// lent every call goes straight to the ring (`lent` is `None`, so an
/// idle connection pays one pointer for this).
#[derive(Default)]
pub struct SendQueue {
    ring: Ring,
    lent: Option<Box<Lent>>,
}

/// The order of a queue holding lent buffers, and those handed back.
#[derive(Default)]
struct Lent {
    /// The queue in order, when a lent buffer is in it.
    pieces: VecDeque<Piece>,
    /// Bytes of lent buffers not yet ACKed.
    owned: usize,
    /// Lent buffers fully ACKed (or released), to hand back.
    done: Vec<ZcDone>,
    /// Where the last read began. Segments read the queue front to back,
    /// so the next read starts its walk there, not at the front; reset
    /// whenever the front moves.
    cursor: Cell<Cursor>,
}

/// A piece of [`Lent::pieces`]: its index, the queue offset of its first
/// byte and the ring's bytes in the pieces before it.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    index: usize,
    at: usize,
    ring_at: usize,
}

impl std::fmt::Debug for SendQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendQueue")
            .field("ring", &self.ring.len())
            .field("owned", &self.owned())
            .finish()
    }
}

impl SendQueue {
    pub fn new(limit: usize) -> SendQueue {
        SendQueue {
            ring: Ring::new(limit),
            lent: None,
        }
    }

    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    pub fn set_limit(&mut self, limit: usize) {
        self.ring.set_limit(limit);
    }

    /// Bytes queued (copied and lent), not yet ACKed.
    #[inline]
    pub fn len(&self) -> usize {
        self.ring.len() + self.owned()
    }

    /// Room in the ring for copied bytes (lent buffers take none).
    pub fn free(&self) -> usize {
        self.ring.free()
    }

    /// Bytes of lent buffers still queued.
    #[inline]
    pub fn owned(&self) -> usize {
        self.lent.as_ref().map_or(0, |l| l.owned)
    }

    /// Whether lent buffers are done and waiting to be handed back.
    pub fn has_done(&self) -> bool {
        self.lent.as_ref().is_some_and(|l| !l.done.is_empty())
    }

    /// Moves the lent buffers done into `out`.
    pub fn take_done(&mut self, out: &mut Vec<ZcDone>) {
        if let Some(l) = self.lent.as_mut() {
            out.append(&mut l.done);
        }
    }

    /// Copies what fits of `data` into the ring, after everything queued.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = self.ring.push(data);
        if let Some(l) = self.lent.as_mut() {
            if n > 0 && !l.pieces.is_empty() {
                match l.pieces.back_mut() {
                    Some(Piece::Ring(k)) => *k += n,
                    _ => l.pieces.push_back(Piece::Ring(n)),
                }
            }
        }
        n
    }

    /// Queues a lent buffer whole, after everything queued.
    pub fn push_owned(&mut self, buf: Box<dyn SendBuf>, tag: u64) {
        let len = buf.bytes().len();
        let ring_len = self.ring.len();
        let l = self.lent.get_or_insert_with(Default::default);
        if l.pieces.is_empty() && ring_len > 0 {
            l.pieces.push_back(Piece::Ring(ring_len));
        }
        l.owned += len;
        l.pieces.push_back(Piece::Owned {
            buf,
            tag,
            start: 0,
            end: len,
        });
    }

    /// Calls `f` with the bytes at `offset..offset+len` (clipped), in
    /// order, as the slices they lie in.
    #[inline]
    fn each_slice(&self, offset: usize, len: usize, mut f: impl FnMut(&[u8])) {
        let Some(l) = self.lent.as_deref().filter(|l| !l.pieces.is_empty()) else {
            let (a, b) = self.ring.slices(offset, len);
            f(a);
            if !b.is_empty() {
                f(b);
            }
            return;
        };
        let pieces = &l.pieces;
        let mut c = l.cursor.get();
        if offset < c.at || c.index >= pieces.len() {
            c = Cursor::default();
        }
        let (mut skip, mut left, mut ring_at) = (offset - c.at, len, c.ring_at);
        let (mut index, mut at, mut first) = (c.index, c.at, true);
        for p in pieces.range(c.index..) {
            if left == 0 {
                break;
            }
            let plen = p.len();
            if skip >= plen {
                skip -= plen;
                if let Piece::Ring(n) = p {
                    ring_at += n;
                }
                index += 1;
                at += plen;
                continue;
            }
            if first {
                first = false;
                l.cursor.set(Cursor { index, at, ring_at });
            }
            let take = (plen - skip).min(left);
            match p {
                Piece::Ring(n) => {
                    let (a, b) = self.ring.slices(ring_at + skip, take);
                    f(a);
                    if !b.is_empty() {
                        f(b);
                    }
                    ring_at += n;
                }
                Piece::Owned { buf, start, .. } => {
                    let from = start + skip;
                    f(&buf.bytes()[from..from + take]);
                }
            }
            skip = 0;
            left -= take;
        }
    }

    /// The lent buffer holding the queue's byte at `offset`: the queue
    /// offset of its first unACKed byte, and those bytes. `None` when
    /// that byte was copied in (or is not queued).
    pub fn lent_span(&self, offset: usize) -> Option<(usize, &[u8])> {
        let l = self.lent.as_deref()?;
        let mut at = 0;
        for p in &l.pieces {
            let len = p.len();
            if offset < at + len {
                return match p {
                    Piece::Owned {
                        buf, start, end, ..
                    } => Some((at, &buf.bytes()[*start..*end])),
                    Piece::Ring(_) => None,
                };
            }
            at += len;
        }
        None
    }

    /// Copies from `offset` into `out`; returns the bytes copied.
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> usize {
        let mut at = 0;
        self.each_slice(offset, out.len(), |s| {
            out[at..at + s.len()].copy_from_slice(s);
            at += s.len();
        });
        at
    }

    /// `copy_out` that also returns the checksum sum (RFC 1071) of the
    /// bytes copied (`checksum::copy_and_sum`, each piece summed while in
    /// cache).
    pub fn copy_out_sum(&self, offset: usize, out: &mut [u8]) -> (usize, u64) {
        let Some(l) = self.lent.as_deref().filter(|l| !l.pieces.is_empty()) else {
            return self.ring.copy_out_sum(offset, out);
        };
        // A segment within the lent buffer the last read began in (most
        // are): one slice of it, no walk.
        let c = l.cursor.get();
        if let (
            Some(skip),
            Some(Piece::Owned {
                buf, start, end, ..
            }),
        ) = (offset.checked_sub(c.at), l.pieces.get(c.index))
        {
            let from = start + skip;
            if from + out.len() <= *end {
                let sum = copy_and_sum(out, &buf.bytes()[from..from + out.len()]);
                return (out.len(), sum);
            }
        }
        let (mut at, mut total) = (0, 0u64);
        self.each_slice(offset, out.len(), |s| {
            let mut sum = copy_and_sum(&mut out[at..at + s.len()], s);
            if at % 2 == 1 {
                // Starts at an odd offset: the byte-swapped sum (RFC 1071 §2(B)).
                sum = u64::from(fold(sum).swap_bytes());
            }
            total += sum;
            at += s.len();
        });
        (at, total)
    }

    /// Drops `n` bytes (clipped) from the front: ACKed. A lent buffer
    /// whose last byte goes is moved to `done`.
    pub fn consume(&mut self, n: usize) {
        let Some(l) = self.lent.as_mut().filter(|l| !l.pieces.is_empty()) else {
            self.ring.consume(n);
            return;
        };
        l.cursor.set(Cursor::default());
        let mut left = n;
        while left > 0 {
            let Some(p) = l.pieces.front_mut() else {
                break;
            };
            let plen = p.len();
            let take = plen.min(left);
            left -= take;
            match p {
                Piece::Ring(k) => {
                    self.ring.consume(take);
                    *k -= take;
                }
                Piece::Owned { start, .. } => {
                    *start += take;
                    l.owned -= take;
                }
            }
            if take == plen {
                if let Some(Piece::Owned { buf, tag, .. }) = l.pieces.pop_front() {
                    if tag != ZC_DETACHED {
                        let acked = buf.bytes().len();
                        l.done.push(ZcDone { tag, buf, acked });
                    }
                }
            }
        }
        if l.owned == 0 {
            // Nothing lent left: back to the plain ring.
            l.pieces.clear();
        }
    }

    /// Hands back every lent buffer still queued (the connection is
    /// gone), with what of each was ACKed; copied bytes are dropped.
    /// Gives the ring's storage back if nothing is queued (`Ring::release`).
    pub fn release(&mut self) {
        self.ring.release();
    }

    pub fn release_owned(&mut self) {
        let Some(l) = self.lent.as_mut() else { return };
        l.cursor.set(Cursor::default());
        for p in l.pieces.drain(..) {
            if let Piece::Owned {
                buf, tag, start, ..
            } = p
            {
                if tag == ZC_DETACHED {
                    continue;
                }
                l.done.push(ZcDone {
                    tag,
                    buf,
                    acked: start,
                });
            }
        }
        l.owned = 0;
    }
}

/// A receive buffer the application posted: in-order data goes into
/// `buf[filled..]` straight from the frame.
pub struct Posted {
    pub tag: u64,
    pub buf: Vec<u8>,
    pub filled: usize,
    /// Complete only once full (MSG_WAITALL), at EOF or on an error.
    pub waitall: bool,
}

impl std::fmt::Debug for Posted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Posted")
            .field("tag", &self.tag)
            .field("len", &self.buf.len())
            .field("filled", &self.filled)
            .finish()
    }
}

/// The buffers an application posted, in order: those full (waiting to
/// be taken back), the one in-order bytes go to now, and those after
/// it. The one being filled is held in the queue itself, not in a deque
/// slot: a segment's payload reaches it in one load less (the pointer
/// chase was ~2% of a zero-copy receive).
#[derive(Debug, Default)]
pub struct PostedQueue {
    /// Buffers before `active`, all full.
    full: VecDeque<Posted>,
    /// The buffer being filled (it may be full too until the next
    /// [`first_with_room`](Self::first_with_room) moves past it); `None`
    /// only when `next` is empty.
    active: Option<Posted>,
    /// Buffers after `active`, in order.
    next: VecDeque<Posted>,
}

impl PostedQueue {
    /// Buffers posted and not taken back.
    pub fn len(&self) -> usize {
        self.full.len() + usize::from(self.active.is_some()) + self.next.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_none() && self.full.is_empty()
    }

    /// The buffers in order.
    pub fn iter(&self) -> impl Iterator<Item = &Posted> {
        self.full.iter().chain(&self.active).chain(&self.next)
    }

    /// The first buffer.
    pub fn front(&self) -> Option<&Posted> {
        self.full.front().or(self.active.as_ref())
    }

    /// Posts `p` after the others.
    pub fn push_back(&mut self, p: Posted) {
        if self.active.is_none() {
            self.active = Some(p);
        } else {
            self.next.push_back(p);
        }
    }

    /// The first buffer with room left, and where it is.
    #[inline(always)]
    pub fn first_with_room(&mut self) -> Option<(usize, &mut Posted)> {
        if self.active.as_ref().is_some_and(|p| p.room() == 0) {
            self.advance();
        }
        let at = self.full.len();
        self.active.as_mut().map(|p| (at, p))
    }

    /// Moves full buffers from `active` to `full`, until one with room
    /// (or none) is active.
    #[cold]
    fn advance(&mut self) {
        while let Some(p) = self.active.take_if(|p| p.room() == 0) {
            self.full.push_back(p);
            self.active = self.next.pop_front();
        }
    }

    /// The buffer at `at`. Its `filled` may grow, never shrink.
    #[inline]
    pub fn get_mut(&mut self, at: usize) -> Option<&mut Posted> {
        let nf = self.full.len();
        match at.checked_sub(nf) {
            None => self.full.get_mut(at),
            Some(0) => self.active.as_mut(),
            Some(k) => self.next.get_mut(k - 1),
        }
    }

    /// Takes the buffer at `at` out of the queue.
    pub fn remove(&mut self, at: usize) -> Option<Posted> {
        let nf = self.full.len();
        match at.checked_sub(nf) {
            None => self.full.remove(at),
            Some(0) => {
                let p = self.active.take();
                self.active = self.next.pop_front();
                p
            }
            Some(k) => self.next.remove(k - 1),
        }
    }

    /// Writes the front of `data` into the buffers with room, in order;
    /// returns the bytes written.
    pub fn fill(&mut self, mut data: &[u8]) -> usize {
        let mut d = 0;
        while !data.is_empty() {
            let Some((_, p)) = self.first_with_room() else {
                break;
            };
            let k = data.len().min(p.room());
            p.buf[p.filled..p.filled + k].copy_from_slice(&data[..k]);
            p.filled += k;
            d += k;
            data = &data[k..];
        }
        d
    }
}

impl Posted {
    /// Room left.
    #[inline]
    pub fn room(&self) -> usize {
        self.buf.len() - self.filled
    }

    /// Whether the application should get it back now (some data, and
    /// not waiting for all).
    pub fn ready(&self) -> bool {
        self.room() == 0 || (self.filled > 0 && !self.waitall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ustack_wire::checksum::sum;

    #[test]
    fn copied_and_lent_bytes_read_in_order_and_lent_ones_go_back_when_acked() {
        let mut q = SendQueue::new(16);
        assert_eq!(q.push(b"abc"), 3);
        q.push_owned(Box::new(b"defgh".to_vec()), 7);
        assert_eq!(q.push(b"ij"), 2);
        q.push_owned(Box::new(vec![b'k'; 3]), 8);
        assert_eq!(q.len(), 13);
        assert_eq!(q.free(), 11, "lent bytes take no ring room");
        let mut out = [0u8; 13];
        assert_eq!(q.copy_out(0, &mut out), 13);
        assert_eq!(&out, b"abcdefghijkkk");
        for off in 0..13 {
            for len in 0..13 - off {
                let mut o = vec![0u8; len];
                let (n, s) = q.copy_out_sum(off, &mut o);
                assert_eq!(n, len);
                assert_eq!(&o[..], &b"abcdefghijkkk"[off..off + len]);
                assert_eq!(fold(s), fold(sum(&o)), "off {off} len {len}");
            }
        }
        q.consume(7);
        assert!(!q.has_done(), "one byte of the first buffer unACKed");
        q.consume(1);
        let mut done = Vec::new();
        q.take_done(&mut done);
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].tag, done[0].acked), (7, 5));
        let mut o = [0u8; 5];
        assert_eq!(q.copy_out(0, &mut o), 5);
        assert_eq!(&o, b"ijkkk");
        q.consume(4);
        q.release_owned();
        q.take_done(&mut done);
        assert_eq!((done[1].tag, done[1].acked), (8, 2));
        let back = done.remove(0).buf.into_any().downcast::<Vec<u8>>();
        assert_eq!(*back.unwrap(), b"defgh");
    }

    /// The lent buffer around an offset is found wherever the front
    /// is, with the queue offset of its first unACKed byte.
    #[test]
    fn lent_span_gives_the_lent_bytes_around_an_offset() {
        let mut q = SendQueue::new(16);
        assert_eq!(q.lent_span(0), None, "nothing lent");
        q.push(b"abc");
        q.push_owned(Box::new(b"defgh".to_vec()), 1);
        q.push(b"ij");
        q.push_owned(Box::new(b"klm".to_vec()), 2);
        assert_eq!(q.lent_span(2), None, "a copied byte");
        assert_eq!(q.lent_span(3), Some((3, &b"defgh"[..])));
        assert_eq!(q.lent_span(7), Some((3, &b"defgh"[..])));
        assert_eq!(q.lent_span(8), None);
        assert_eq!(q.lent_span(12), Some((10, &b"klm"[..])));
        assert_eq!(q.lent_span(13), None, "past the end");
        q.consume(5);
        assert_eq!(q.lent_span(0), Some((0, &b"fgh"[..])));
        assert_eq!(q.lent_span(5), Some((5, &b"klm"[..])));
    }

    fn posted(tag: u64, len: usize) -> Posted {
        Posted {
            tag,
            buf: vec![0; len],
            filled: 0,
            waitall: true,
        }
    }

    fn tags(q: &PostedQueue) -> Vec<u64> {
        q.iter().map(|p| p.tag).collect()
    }

    /// Posted buffers fill in the order posted and keep that order
    /// whichever is taken out (front, the one being filled, later ones),
    /// and each index names the buffer at that place.
    #[test]
    fn posted_buffers_fill_in_order_and_keep_their_places() {
        let mut q = PostedQueue::default();
        for (tag, len) in [(1, 2), (2, 3), (3, 2)] {
            q.push_back(posted(tag, len));
        }
        assert_eq!(q.fill(b"abcd"), 4);
        assert_eq!(q.first_with_room().map(|(i, p)| (i, p.tag)), Some((1, 2)));
        assert_eq!(tags(&q), [1, 2, 3]);
        for at in 0..3 {
            assert_eq!(q.get_mut(at).map(|p| p.tag), Some(at as u64 + 1));
        }
        assert_eq!(q.front().map(|p| p.tag), Some(1));
        assert_eq!(q.remove(0).map(|p| p.buf), Some(b"ab".to_vec()));
        assert_eq!(q.first_with_room().map(|(i, p)| (i, p.tag)), Some((0, 2)));
        q.push_back(posted(4, 1));
        assert_eq!(q.fill(b"efghi"), 4, "room for four bytes only");
        assert!(q.first_with_room().is_none());
        let got: Vec<&[u8]> = q.iter().map(|p| &p.buf[..p.filled]).collect();
        assert_eq!(got, [&b"cde"[..], b"fg", b"h"]);
        assert_eq!(q.remove(1).map(|p| p.tag), Some(3));
        assert_eq!(tags(&q), [2, 4]);
        assert_eq!(q.remove(1).map(|p| p.tag), Some(4));
        assert_eq!(q.remove(0).map(|p| p.tag), Some(2));
        assert!(q.is_empty() && q.front().is_none());
        // Taking out the one being filled: the next one takes its place.
        q.push_back(posted(5, 2));
        q.push_back(posted(6, 2));
        q.push_back(posted(7, 2));
        assert_eq!(q.fill(b"x"), 1);
        assert_eq!(q.remove(0).map(|p| p.tag), Some(5));
        assert_eq!(q.get_mut(1).map(|p| p.tag), Some(7));
        assert_eq!(q.first_with_room().map(|(i, p)| (i, p.tag)), Some((0, 6)));
        assert_eq!((q.len(), tags(&q)), (2, vec![6, 7]));
    }

    /// Reads front to back (as segments do) with ACKs moving the front
    /// in between, and reads going back (retransmissions): every read
    /// gets the bytes at its offset, wherever the last one left off.
    #[test]
    fn reads_in_any_order_get_the_bytes_at_their_offset() {
        let mut q = SendQueue::new(64);
        let mut model: Vec<u8> = Vec::new();
        for i in 0..6u8 {
            let lent: Vec<u8> = (0..7).map(|j| 100 + 10 * i + j).collect();
            model.extend_from_slice(&lent);
            q.push_owned(Box::new(lent), u64::from(i));
            let copied = [i; 3];
            assert_eq!(q.push(&copied), 3);
            model.extend_from_slice(&copied);
        }
        let mut front = 0;
        for step in 0..40 {
            let len = q.len();
            let off = (step * 5) % (len + 1);
            let n = (len - off).min(4 + step % 3);
            let mut o = vec![0u8; n];
            let (got, s) = q.copy_out_sum(off, &mut o);
            assert_eq!(got, n);
            assert_eq!(o, model[front + off..front + off + n], "step {step}");
            assert_eq!(fold(s), fold(sum(&o)));
            if step % 3 == 2 && len > 2 {
                q.consume(2);
                front += 2;
            }
        }
    }
}
