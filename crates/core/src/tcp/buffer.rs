//! A bounded byte ring used for both the send and receive buffers.
//!
//! Storage grows on demand (doubling) up to the limit, so an idle or
//! half-open connection holds no buffer memory; once grown, pushing,
//! peeking and consuming never allocate. The receive side also writes
//! out-of-order data straight into the free space past the end
//! (`write_at`) and makes it readable once the gap before it fills
//! (`commit`), so reassembly needs no second buffer.

/// The largest storage a ring gives back as soon as it drains.
const SMALL: usize = 4096;
/// Smallest storage a ring allocates: room for a short request or
/// response, so a short connection zeroes 256 bytes per buffer rather than
/// 4 KiB (conn_bench, 2026-12-05); bulk flows double from it.
const MIN_ALLOC: usize = 256;

/// A byte ring holding at most `limit` bytes (at most `u32::MAX`: the
/// offsets are 32-bit, so the ring is 32 bytes, two in every TCB).
#[derive(Debug, Default)]
pub struct Ring {
    buf: Box<[u8]>,
    head: u32,
    len: u32,
    /// Bytes past `len` that may hold data written by `write_at` (kept
    /// across growth).
    ext: u32,
    limit: u32,
}

/// A byte count as the ring stores it (`limit` bounds them all).
#[inline(always)]
fn n32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Ring {
    pub fn new(limit: usize) -> Ring {
        Ring {
            buf: Box::default(),
            head: 0,
            len: 0,
            ext: 0,
            limit: n32(limit),
        }
    }

    /// The most bytes it may hold (SO_SNDBUF / SO_RCVBUF).
    pub fn capacity(&self) -> usize {
        self.limit as usize
    }

    fn grow(&mut self, need: usize) {
        let cap = need
            .max(self.buf.len() * 2)
            .max(MIN_ALLOC)
            .min(self.capacity().max(need));
        let mut next = vec![0; cap].into_boxed_slice();
        let keep = (self.len() + self.ext as usize).min(self.buf.len());
        if keep > 0 {
            let old = self.buf.len();
            let start = self.head as usize;
            let first = keep.min(old - start);
            next[..first].copy_from_slice(&self.buf[start..start + first]);
            next[first..keep].copy_from_slice(&self.buf[..keep - first]);
        }
        self.buf = next;
        self.head = 0;
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// `i % buf.len()` for `i < 2 * buf.len()`, without a division.
    #[inline]
    fn wrap(&self, i: usize) -> usize {
        if i >= self.buf.len() {
            i - self.buf.len()
        } else {
            i
        }
    }

    /// Where the readable bytes start.
    #[inline(always)]
    fn head(&self) -> usize {
        self.head as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn free(&self) -> usize {
        self.limit.saturating_sub(self.len) as usize
    }

    /// Appends as much of `data` as fits; returns the bytes taken.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        if self.len() + n > self.buf.len() {
            self.grow(self.len() + n);
        }
        self.ext = self.ext.saturating_sub(n32(n));
        let cap = self.buf.len();
        let tail = self.wrap(self.head() + self.len());
        let first = n.min(cap - tail);
        self.buf[tail..tail + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        self.len += n32(n);
        n
    }

    /// The bytes at `offset..offset+len` (clipped to what is held) as at most
    /// two slices.
    pub fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        if offset >= self.len() || cap == 0 {
            return (&[], &[]);
        }
        let len = len.min(self.len() - offset);
        let start = self.wrap(self.head() + offset);
        let first = len.min(cap - start);
        (&self.buf[start..start + first], &self.buf[..len - first])
    }

    /// Copies from `offset` into `out`; returns the bytes copied.
    pub fn copy_out(&self, offset: usize, out: &mut [u8]) -> usize {
        let (a, b) = self.slices(offset, out.len());
        out[..a.len()].copy_from_slice(a);
        out[a.len()..a.len() + b.len()].copy_from_slice(b);
        a.len() + b.len()
    }

    /// `copy_out` that also returns the checksum sum (RFC 1071, folded to
    /// 16 bits, network order) of the bytes copied (`copy_and_sum`).
    pub fn copy_out_sum(&self, offset: usize, out: &mut [u8]) -> (usize, u64) {
        use ustack_wire::checksum::{copy_and_sum, fold};
        let (a, b) = self.slices(offset, out.len());
        let sa = copy_and_sum(&mut out[..a.len()], a);
        let mut sb = copy_and_sum(&mut out[a.len()..a.len() + b.len()], b);
        if a.len() % 2 == 1 {
            // The second piece starts at an odd offset: its 16-bit words
            // straddle ours, and such a sum is the byte-swapped one
            // (RFC 1071 §2(B)).
            sb = u64::from(fold(sb).swap_bytes());
        }
        (a.len() + b.len(), sa + sb)
    }

    /// Drops `n` bytes (clipped) from the front.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len());
        if self.buf.is_empty() {
            return;
        }
        self.head = n32(self.wrap(self.head() + n));
        self.len -= n32(n);
        if self.len == 0 && self.ext == 0 {
            self.head = 0;
            // Drained: a small buffer goes back at once (an idle
            // connection holds none); a grown one stays while the flow is
            // busy, for regrowing means copying (`release`).
            if self.buf.len() <= SMALL {
                self.buf = Box::default();
            }
        }
    }

    /// Gives the storage back if nothing is held (a connection that will
    /// send or receive no more, e.g. in TIME_WAIT).
    pub fn release(&mut self) {
        if self.len == 0 && self.ext == 0 {
            self.buf = Box::default();
            self.head = 0;
        }
    }

    /// Writes `data` at `offset` bytes past the readable end, without
    /// making it readable; clipped to the free space. Returns the bytes
    /// written (from the start of `data`).
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let n = data.len().min(self.free().saturating_sub(offset));
        if n == 0 {
            return 0;
        }
        let end = self.len() + offset + n;
        if end > self.buf.len() {
            self.grow(end);
        }
        let cap = self.buf.len();
        // head < cap and len + offset < end <= cap: one wrap at most, so no
        // division on every segment received.
        let at = self.wrap(self.head() + self.len() + offset);
        let first = n.min(cap - at);
        self.buf[at..at + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        self.ext = self.ext.max(n32(offset + n));
        n
    }

    /// Makes `n` bytes past the end (written by `write_at`) readable.
    pub fn commit(&mut self, n: usize) {
        let n = n32(n.min(self.free()));
        self.len += n;
        self.ext = self.ext.saturating_sub(n);
    }

    /// Where the next `min(max, free)` bytes would go, as at most two
    /// writable slices (the second after the wrap), the storage grown to
    /// hold them. Bytes written there stay unreadable until `commit`ed;
    /// any later write past the end overwrites them.
    pub fn tail_mut(&mut self, max: usize) -> (&mut [u8], &mut [u8]) {
        let n = max.min(self.free());
        if n == 0 {
            return (&mut [], &mut []);
        }
        if self.len() + n > self.buf.len() {
            self.grow(self.len() + n);
        }
        let cap = self.buf.len();
        let at = self.wrap(self.head() + self.len());
        let first = n.min(cap - at);
        // The wrapped part ends at or before `head`, so before `at`.
        let (lo, hi) = self.buf.split_at_mut(at);
        (&mut hi[..first], &mut lo[..n - first])
    }

    /// The first `n` bytes past the readable end (clipped to the storage),
    /// as `tail_mut` laid them out: what was written there, not readable.
    pub fn tail(&self, n: usize) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        let n = n.min(self.free()).min(cap.saturating_sub(self.len()));
        if n == 0 {
            return (&[], &[]);
        }
        let at = self.wrap(self.head() + self.len());
        let first = n.min(cap - at);
        (&self.buf[at..at + first], &self.buf[..n - first])
    }

    /// Forgets anything written past the readable end.
    pub fn clear_ext(&mut self) {
        self.ext = 0;
    }

    /// Changes the limit; contents beyond it stay until consumed.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = n32(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_written_in_place_and_readable_only_once_committed() {
        let mut r = Ring::new(8);
        assert_eq!(r.push(b"abcdef"), 6);
        r.consume(5);
        let (a, b) = r.tail_mut(100);
        assert_eq!((a.len(), b.len()), (2, 5), "free space, across the wrap");
        a.copy_from_slice(b"gh");
        b[..3].copy_from_slice(b"ijk");
        assert_eq!(r.len(), 1, "nothing readable before the commit");
        assert_eq!(r.tail(5), (&b"gh"[..], &b"ijk"[..]));
        r.commit(5);
        let mut out = [0u8; 8];
        assert_eq!(r.copy_out(0, &mut out), 6);
        assert_eq!(&out[..6], b"fghijk");
        let (a, b) = r.tail_mut(1);
        assert_eq!(a.len() + b.len(), 1);
    }

    #[test]
    fn wraps_and_clips() {
        let mut r = Ring::new(8);
        assert_eq!(r.push(b"abcdef"), 6);
        r.consume(4);
        assert_eq!(r.push(b"ghijklmn"), 6);
        assert_eq!(r.len(), 8);
        let mut out = [0u8; 8];
        assert_eq!(r.copy_out(0, &mut out), 8);
        assert_eq!(&out, b"efghijkl");
        let (a, b) = r.slices(1, 5);
        assert_eq!([a, b].concat(), b"fghij");
        r.consume(100);
        assert!(r.is_empty());
        assert_eq!(r.copy_out(0, &mut out), 0);
        r.push(b"xy");
        r.set_limit(1);
        assert_eq!(r.free(), 0);
        assert_eq!(r.push(b"z"), 0);
    }

    #[test]
    fn copy_out_sum_across_the_wrap() {
        use ustack_wire::checksum::{fold, sum};
        // Every split of a wrapped range, odd and even.
        for head in 4000..4100 {
            let mut r = Ring::new(4096);
            r.push(&vec![0; head]);
            r.consume(head);
            let data: Vec<u8> = (0..1500u32).map(|i| (i * 7 + 3) as u8).collect();
            r.push(&data);
            let mut out = vec![0u8; 1499];
            let (n, s) = r.copy_out_sum(1, &mut out);
            assert_eq!(n, 1499);
            assert_eq!(&out[..], &data[1..]);
            assert_eq!(fold(s), fold(sum(&data[1..])), "head {head}");
        }
    }

    #[test]
    fn out_of_order_writes_survive_growth_and_wrap() {
        let mut r = Ring::new(1 << 16);
        r.push(&[1; 4000]);
        r.consume(3000);
        // A hole of 100 bytes, then 5000 bytes written past it: forces growth.
        let tail: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        assert_eq!(r.write_at(100, &tail), 5000);
        assert_eq!(r.len(), 1000);
        // Fill the hole and commit everything.
        assert_eq!(r.write_at(0, &[9; 100]), 100);
        r.commit(5100);
        assert_eq!(r.len(), 6100);
        let mut out = vec![0u8; 6100];
        assert_eq!(r.copy_out(0, &mut out), 6100);
        assert!(out[..1000].iter().all(|&b| b == 1));
        assert!(out[1000..1100].iter().all(|&b| b == 9));
        assert_eq!(&out[1100..], &tail[..]);
        // Clipped to free space.
        let mut small = Ring::new(10);
        small.push(b"abc");
        assert_eq!(small.write_at(5, b"0123456789"), 2);
        assert_eq!(small.write_at(7, b"x"), 0);
    }
}
