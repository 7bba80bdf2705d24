//! A bounded byte ring used for both the send and receive buffers.
//!
//! Storage grows on demand (doubling) up to the limit, so an idle or
//! half-open connection holds no buffer memory; once grown, pushing,
//! peeking and consuming never allocate.

/// A byte ring holding at most `limit` bytes.
#[derive(Debug, Default)]
pub struct Ring {
    buf: Vec<u8>,
    head: usize,
    len: usize,
    limit: usize,
}

impl Ring {
    pub fn new(limit: usize) -> Ring {
        Ring {
            buf: Vec::new(),
            head: 0,
            len: 0,
            limit,
        }
    }

    /// The most bytes it may hold (SO_SNDBUF / SO_RCVBUF).
    pub fn capacity(&self) -> usize {
        self.limit
    }

    fn grow(&mut self, need: usize) {
        let cap = need.max(self.buf.len() * 2).max(4096).min(self.limit);
        let mut next = vec![0; cap];
        let (a, b) = self.slices(0, self.len);
        next[..a.len()].copy_from_slice(a);
        next[a.len()..a.len() + b.len()].copy_from_slice(b);
        self.buf = next;
        self.head = 0;
    }

    pub fn len(&self) -> usize {
        self.len
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

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn free(&self) -> usize {
        self.limit.saturating_sub(self.len)
    }

    /// Appends as much of `data` as fits; returns the bytes taken.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        if n == 0 {
            return 0;
        }
        if self.len + n > self.buf.len() {
            self.grow(self.len + n);
        }
        let cap = self.buf.len();
        let tail = self.wrap(self.head + self.len);
        let first = n.min(cap - tail);
        self.buf[tail..tail + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        self.len += n;
        n
    }

    /// The bytes at `offset..offset+len` (clipped to what is held) as at most
    /// two slices.
    pub fn slices(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        if offset >= self.len || cap == 0 {
            return (&[], &[]);
        }
        let len = len.min(self.len - offset);
        let start = self.wrap(self.head + offset);
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

    /// Drops `n` bytes (clipped) from the front.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        if self.buf.is_empty() {
            return;
        }
        self.head = self.wrap(self.head + n);
        self.len -= n;
        if self.len == 0 {
            self.head = 0;
        }
    }

    /// Changes the limit; contents beyond it stay until consumed.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
