//! Shared pieces of the benchmarks: an in-memory wire that both stacks use
//! alike, and figures.

use std::collections::VecDeque;

/// A lossless in-memory wire: two FIFO directions of frames, with a pool of
/// recycled buffers so neither stack pays an allocation per frame.
#[derive(Default)]
pub struct Wire {
    dirs: [VecDeque<Vec<u8>>; 2],
    pool: Vec<Vec<u8>>,
    /// Frames carried.
    pub frames: u64,
}

impl Wire {
    /// A buffer of `len` bytes from the pool.
    pub fn buffer(&mut self, len: usize) -> Vec<u8> {
        let mut b = self.pool.pop().unwrap_or_default();
        b.resize(len, 0);
        b
    }

    /// Puts a frame on direction `dir` (0: a→b, 1: b→a).
    pub fn push(&mut self, dir: usize, frame: Vec<u8>) {
        self.frames += 1;
        self.dirs[dir].push_back(frame);
    }

    pub fn pop(&mut self, dir: usize) -> Option<Vec<u8>> {
        self.dirs[dir].pop_front()
    }

    /// Returns a buffer to the pool.
    pub fn recycle(&mut self, b: Vec<u8>) {
        self.pool.push(b);
    }

    pub fn is_empty(&self) -> bool {
        self.dirs[0].is_empty() && self.dirs[1].is_empty()
    }
}

/// Gigabits per second.
pub fn gbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 * 8.0 / secs / 1e9
}

/// A payload pattern the receiver can verify cheaply: byte i is `i*7+seed`.
pub fn fill_pattern(buf: &mut [u8], offset: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = ((offset + i as u64).wrapping_mul(7)) as u8;
    }
}

pub mod million;
pub mod smoltcp_peer;
pub mod smoltcp_tun;
pub mod ustack_peer;

/// A bulk transfer: how much, over what link, with what buffers.
#[derive(Debug, Clone)]
pub struct BulkOptions {
    pub bytes: u64,
    pub mtu: usize,
    /// Socket send and receive buffer, bytes.
    pub buf: usize,
    /// Bytes per application send/recv call.
    pub chunk: usize,
    /// Checksums offloaded (not computed) on both stacks.
    pub offload: bool,
    pub timeout: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct BulkResult {
    pub bytes: u64,
    pub secs: f64,
    pub frames: u64,
}

impl BulkResult {
    pub fn gbps(&self) -> f64 {
        gbps(self.bytes, self.secs)
    }
}

/// The sending application's data: a pattern buffer sent over and over; the
/// receiver compares what arrives against it (a memcmp, cheap next to the stack).
pub struct Source {
    pattern: Vec<u8>,
}

impl Source {
    pub fn new(chunk: usize) -> Source {
        // Twice the chunk, so any window of `chunk` bytes at any offset is contiguous.
        let period = chunk.max(1);
        let mut pattern = vec![0u8; period * 2];
        fill_pattern(&mut pattern, 0);
        // Make the pattern periodic with `period`.
        let (a, b) = pattern.split_at_mut(period);
        b.copy_from_slice(a);
        Source { pattern }
    }

    fn period(&self) -> usize {
        self.pattern.len() / 2
    }

    /// Up to one period of data starting at stream offset `offset`.
    pub fn chunk(&self, offset: u64, remaining: u64) -> &[u8] {
        let p = self.period();
        let start = (offset % p as u64) as usize;
        let len = (p as u64).min(remaining) as usize;
        &self.pattern[start..start + len]
    }

    /// Whether `data` is what was sent at stream offset `offset`.
    pub fn verify(&self, data: &[u8], offset: u64) -> bool {
        let p = self.period();
        data.chunks(p).enumerate().all(|(i, piece)| {
            let o = offset + (i * p) as u64;
            let start = (o % p as u64) as usize;
            self.pattern[start..start + piece.len()] == *piece
        })
    }
}
