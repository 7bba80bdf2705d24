//! The device interface for real-time links (TUN, TAP, and wrappers around
//! them), a monotonic clock for the core's [`Instant`], reusable packet
//! batches, and an in-memory device pair for tests.
//!
//! A device is non-blocking: `recv` returns `Ok(None)` when nothing is
//! waiting, and `send` returns an error of kind
//! [`WouldBlock`](io::ErrorKind::WouldBlock) when the device's queue is full,
//! having counted it; a frame is never dropped silently. A runtime waits for
//! readiness on [`Device::as_raw_fd`] and for [`Device::poll_at`], then moves
//! a batch of frames each way per wake-up ([`Device::recv_batch`],
//! [`Device::send_batch`]).
//!
//! Every method takes `now`, the caller's clock, so wrappers that hold frames
//! back (see [`Impaired`](crate::Impaired)) stay deterministic under a
//! virtual clock, as the core does. Plain devices ignore it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use crate::offload::Offloads;
use ustack_core::time::Instant;
use ustack_core::{Medium, RxMeta};

/// Largest frame any device here hands out: an IPv4 datagram of 65535 bytes
/// behind an Ethernet header, rounded up.
pub const MAX_FRAME: usize = 65_536;

/// What a device counted over its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Sends refused because the device queue was full (reported as `WouldBlock`).
    pub tx_would_block: u64,
    /// Sends refused for any other error.
    pub tx_errors: u64,
    /// Receives that failed with an error other than `WouldBlock`.
    pub rx_errors: u64,
    /// GSO super-packets received from the kernel (virtio-net header).
    pub rx_gso_frames: u64,
    /// Frames received with their checksum partial (completed by the
    /// device) or already validated by the kernel.
    pub rx_csum_offloaded: u64,
    /// Frames received with a complete checksum, left to the stack to verify.
    pub rx_csum_software: u64,
    /// Frames dropped for a virtio-net header that does not fit them.
    pub rx_bad_vnet_hdr: u64,
    /// TCP super-segments sent for the kernel to cut (TSO, partial checksum).
    pub tx_gso_frames: u64,
}

/// Like the stack's counters (`netstat -s` style): what went through, then
/// the refusals and errors that happened.
impl std::fmt::Display for DeviceStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Device:")?;
        writeln!(
            f,
            "    {} frames received ({} bytes)",
            self.rx_frames, self.rx_bytes
        )?;
        writeln!(
            f,
            "    {} frames sent ({} bytes)",
            self.tx_frames, self.tx_bytes
        )?;
        for (n, what) in [
            (
                self.tx_would_block,
                "sends refused (the device queue was full)",
            ),
            (self.tx_errors, "sends failed"),
            (self.rx_errors, "receives failed"),
        ] {
            if n > 0 {
                writeln!(f, "    {what}: {n}")?;
            }
        }
        Ok(())
    }
}

/// A non-blocking link to somewhere outside the stack; see the module docs.
pub trait Device {
    /// What the frames carry: bare IPv4 (TUN) or Ethernet (TAP).
    fn medium(&self) -> Medium;

    /// The IP MTU: the largest IP packet the link carries, not counting a
    /// link header.
    fn mtu(&self) -> usize;

    /// The offloads negotiated with the kernel ([`Offloads::NONE`] for
    /// anything but a TUN/TAP opened with them). With
    /// [`Offloads::tso`], `send` takes TCP super-segments (see
    /// [`crate::offload`]): give the stack `StackConfig::tso`.
    fn offloads(&self) -> Offloads {
        Offloads::NONE
    }

    /// The largest frame `recv` can return or `send` accept: the MTU plus
    /// the link header (64 KiB with TSO).
    fn max_frame_len(&self) -> usize {
        match self.medium() {
            Medium::Ip => self.mtu(),
            Medium::Ethernet => self.mtu() + ustack_core::wire::ethernet::HEADER_LEN,
        }
    }

    /// Reads one frame into `buf` (which should hold [`max_frame_len`](Self::max_frame_len)
    /// bytes; a longer frame is truncated by the kernel). `Ok(None)` when
    /// nothing is waiting.
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// [`recv`](Self::recv), and what the device knows of the frame for
    /// `Stack::receive_with` (a TUN/TAP with a virtio-net header vouches
    /// for the checksums the kernel checked or left partial, and leaves a
    /// partial one as it is). The default knows nothing.
    fn recv_with(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        Ok(self.recv(now, buf)?.map(|n| (n, RxMeta::default())))
    }

    /// Writes one frame. A full device queue is an error of kind
    /// `WouldBlock` (counted in [`DeviceStats::tx_would_block`]); the caller
    /// keeps the frame and retries when the fd is writable.
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()>;

    /// When the device next needs [`service`](Self::service) even if its fd
    /// stays quiet (a wrapper holding delayed frames). `None` for plain devices.
    fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// Does the time-driven work due at `now` (sends held frames that fell
    /// due). Plain devices have none.
    fn service(&mut self, now: Instant) -> io::Result<()> {
        let _ = now;
        Ok(())
    }

    /// The fd to wait on with poll(2)/epoll for readability (and writability
    /// after a `WouldBlock`), if the device has one.
    fn as_raw_fd(&self) -> Option<RawFd>;

    fn stats(&self) -> DeviceStats;

    /// A second handle on the device's receive side, usable from another
    /// thread while this one sends (a runtime reads frames on one core while
    /// another writes). Once taken, frames should be read through it only.
    /// `None` (the default) for devices that cannot split: wrappers that
    /// hold state across both directions, in-memory links.
    fn rx_half(&mut self) -> Option<Box<dyn RxHalf>> {
        None
    }

    /// Reads up to `max` frames into `batch` (appending), stopping early when
    /// the device has nothing more. Returns how many were read.
    fn recv_batch(
        &mut self,
        now: Instant,
        batch: &mut PacketBatch,
        max: usize,
    ) -> io::Result<usize> {
        let mut n = 0;
        let room = self.max_frame_len();
        while n < max {
            let buf = batch.reserve(room);
            match self.recv_with(now, buf)? {
                Some((len, meta)) => {
                    batch.commit_with(len, meta);
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }

    /// Sends the frames of `batch` in order, from `start`, until one is
    /// refused with `WouldBlock`. Returns how many were sent; other errors are
    /// returned as errors (frames before them were sent).
    fn send_batch(&mut self, now: Instant, batch: &PacketBatch, start: usize) -> io::Result<usize> {
        let mut n = 0;
        for frame in batch.iter().skip(start) {
            match self.send(now, frame) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// The receive side of a device split off by [`Device::rx_half`].
pub trait RxHalf: Send {
    /// The largest frame `recv` can return.
    fn max_frame_len(&self) -> usize;

    /// Reads one frame into `buf`; `Ok(None)` when nothing is waiting.
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// [`recv`](Self::recv), and what the device knows of the frame (see
    /// [`Device::recv_with`]). The default knows nothing.
    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        Ok(self.recv(buf)?.map(|n| (n, RxMeta::default())))
    }

    /// Whether [`recv_scattered`](Self::recv_scattered) reads frames
    /// whose checksums the device can vouch for (worth reading in place).
    fn can_scatter(&self) -> bool {
        false
    }

    /// Reads one frame across `bufs`, filled in order as by readv(2)
    /// (the device's own header, if any, is not among them); returns the
    /// frame's length and what the device knows of it, `Ok(None)` when
    /// nothing is waiting. `Unsupported` unless
    /// [`can_scatter`](Self::can_scatter).
    fn recv_scattered(&mut self, bufs: &mut [&mut [u8]]) -> io::Result<Option<(usize, RxMeta)>> {
        let _ = bufs;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// The fd to wait on for readability (and, being the same device,
    /// writability).
    fn as_raw_fd(&self) -> RawFd;

    /// Reads up to `max` frames into `batch` (appending); how many were read.
    fn recv_batch(&mut self, batch: &mut PacketBatch, max: usize) -> io::Result<usize> {
        let mut n = 0;
        let room = self.max_frame_len();
        while n < max {
            let buf = batch.reserve(room);
            match self.recv_with(buf)? {
                Some((len, meta)) => {
                    batch.commit_with(len, meta);
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn medium(&self) -> Medium {
        (**self).medium()
    }
    fn mtu(&self) -> usize {
        (**self).mtu()
    }
    fn max_frame_len(&self) -> usize {
        (**self).max_frame_len()
    }
    fn offloads(&self) -> Offloads {
        (**self).offloads()
    }
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        (**self).recv(now, buf)
    }
    fn recv_with(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        (**self).recv_with(now, buf)
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        (**self).send(now, frame)
    }
    fn poll_at(&self) -> Option<Instant> {
        (**self).poll_at()
    }
    fn service(&mut self, now: Instant) -> io::Result<()> {
        (**self).service(now)
    }
    fn as_raw_fd(&self) -> Option<RawFd> {
        (**self).as_raw_fd()
    }
    fn stats(&self) -> DeviceStats {
        (**self).stats()
    }
    fn rx_half(&mut self) -> Option<Box<dyn RxHalf>> {
        (**self).rx_half()
    }
}

/// Frames stored back to back in one buffer, reused across wake-ups so a
/// batch costs no allocation once warm. The buffer keeps its length (the
/// bytes past the last frame are stale room): a frame read into it costs no
/// zero-filling once the buffer has grown.
#[derive(Debug, Default, Clone)]
pub struct PacketBatch {
    data: Vec<u8>,
    /// End offset of each frame in `data`.
    ends: Vec<usize>,
    /// What the device said of each frame.
    metas: Vec<RxMeta>,
}

impl PacketBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Forgets the frames, keeping the memory.
    pub fn clear(&mut self) {
        self.ends.clear();
        self.metas.clear();
    }

    fn end(&self) -> usize {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Makes `data` at least `len` long (zero-filling only new memory).
    fn room_to(&mut self, len: usize) {
        if self.data.len() < len {
            self.data.resize(len, 0);
        }
    }

    /// Appends a copy of `frame`.
    pub fn push(&mut self, frame: &[u8]) {
        self.push_with(frame, RxMeta::default());
    }

    /// Appends a copy of `frame`, with what the device said of it.
    pub fn push_with(&mut self, frame: &[u8], meta: RxMeta) {
        let start = self.end();
        let end = start + frame.len();
        self.room_to(end);
        self.data[start..end].copy_from_slice(frame);
        self.ends.push(end);
        self.metas.push(meta);
    }

    /// Room for a frame of up to `len` bytes after the last one; finish with
    /// [`commit`](Self::commit) or leave it uncommitted to discard it. The
    /// room holds stale bytes, not zeros.
    pub fn reserve(&mut self, len: usize) -> &mut [u8] {
        let start = self.end();
        self.room_to(start + len);
        &mut self.data[start..start + len]
    }

    /// Keeps the first `len` bytes of the reserved room as a frame.
    pub fn commit(&mut self, len: usize) {
        self.commit_with(len, RxMeta::default());
    }

    /// [`commit`](Self::commit), with what the device said of the frame.
    pub fn commit_with(&mut self, len: usize, meta: RxMeta) {
        let end = self.end() + len;
        assert!(end <= self.data.len(), "commit past the reserved room");
        self.ends.push(end);
        self.metas.push(meta);
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The frames with what the device said of each.
    pub fn iter_with(&self) -> impl Iterator<Item = (&[u8], RxMeta)> + '_ {
        (0..self.len())
            .filter_map(|i| Some((self.get(i)?, self.metas.get(i).copied().unwrap_or_default())))
    }
}

/// Maps a monotonic clock onto the core's [`Instant`] (microseconds since
/// the clock was made). One clock per stack: every `now` it is given must
/// come from the same epoch.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            epoch: std::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Instant {
        self.to_core(std::time::Instant::now())
    }

    /// A std instant as a core instant (before the epoch is the epoch).
    pub fn to_core(&self, t: std::time::Instant) -> Instant {
        let us = t.saturating_duration_since(self.epoch).as_micros();
        Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
    }

    /// A core instant as a std instant.
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        let d = std::time::Duration::from_micros(t.total_micros());
        self.epoch
            .checked_add(d)
            .unwrap_or_else(|| self.epoch + std::time::Duration::from_secs(86_400 * 365))
    }
}

#[derive(Debug, Default)]
struct Wire {
    /// Frames in flight, `queues[to]`.
    queues: [VecDeque<Vec<u8>>; 2],
}

/// One end of an in-memory point-to-point device pair (no fd, no clock):
/// what one end sends the other receives, in order, up to `capacity` frames
/// in flight; beyond that `send` is `WouldBlock`. For tests of device
/// wrappers and drivers.
#[derive(Debug)]
pub struct MemDevice {
    wire: Rc<RefCell<Wire>>,
    side: usize,
    medium: Medium,
    mtu: usize,
    capacity: usize,
    stats: DeviceStats,
}

impl MemDevice {
    /// Two connected ends.
    pub fn pair(medium: Medium, mtu: usize, capacity: usize) -> (MemDevice, MemDevice) {
        let wire = Rc::new(RefCell::new(Wire::default()));
        let end = |side| MemDevice {
            wire: wire.clone(),
            side,
            medium,
            mtu,
            capacity,
            stats: DeviceStats::default(),
        };
        (end(0), end(1))
    }

    /// Frames waiting for this end.
    pub fn pending(&self) -> usize {
        self.wire.borrow().queues[self.side].len()
    }
}

impl Device for MemDevice {
    fn medium(&self) -> Medium {
        self.medium
    }
    fn mtu(&self) -> usize {
        self.mtu
    }
    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(frame) = self.wire.borrow_mut().queues[self.side].pop_front() else {
            return Ok(None);
        };
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += n as u64;
        Ok(Some(n))
    }
    fn send(&mut self, _now: Instant, frame: &[u8]) -> io::Result<()> {
        if frame.len() > self.max_frame_len() {
            self.stats.tx_errors += 1;
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes exceeds the device's {}",
                    frame.len(),
                    self.max_frame_len()
                ),
            ));
        }
        let mut wire = self.wire.borrow_mut();
        let q = &mut wire.queues[1 - self.side];
        if q.len() >= self.capacity {
            self.stats.tx_would_block += 1;
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "device queue full",
            ));
        }
        q.push_back(frame.to_vec());
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        Ok(())
    }
    fn as_raw_fd(&self) -> Option<RawFd> {
        None
    }
    fn stats(&self) -> DeviceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_reserve_commit_and_iterate() {
        let mut b = PacketBatch::new();
        b.push(b"one");
        let room = b.reserve(100);
        room[..3].copy_from_slice(b"two");
        b.commit(3);
        b.reserve(50); // abandoned
        b.push(b"three");
        let frames: Vec<&[u8]> = b.iter().collect();
        assert_eq!(frames, [&b"one"[..], b"two", b"three"]);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.get(0), None);
    }

    #[test]
    fn mem_pair_reports_a_full_queue_and_counts_it() {
        let (mut a, mut b) = MemDevice::pair(Medium::Ip, 1500, 2);
        let t = Instant::ZERO;
        a.send(t, b"x").unwrap();
        a.send(t, b"y").unwrap();
        let e = a.send(t, b"z").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(a.stats().tx_would_block, 1);
        assert_eq!(a.stats().tx_frames, 2);

        let mut batch = PacketBatch::new();
        assert_eq!(b.recv_batch(t, &mut batch, 8).unwrap(), 2);
        assert_eq!(batch.iter().collect::<Vec<_>>(), [&b"x"[..], b"y"]);
        assert_eq!(b.recv(t, &mut [0; 10]).unwrap(), None);

        // A batch send stops at the first refusal and says how far it got.
        let mut out = PacketBatch::new();
        for f in [b"1", b"2", b"3"] {
            out.push(f);
        }
        assert_eq!(a.send_batch(t, &out, 0).unwrap(), 2);
        assert_eq!(b.recv_batch(t, &mut batch, 1).unwrap(), 1);
        assert_eq!(a.send_batch(t, &out, 2).unwrap(), 1);
        assert_eq!(a.stats().tx_would_block, 2);
    }

    #[test]
    fn clock_maps_both_ways() {
        let c = Clock::new();
        let later = std::time::Instant::now() + std::time::Duration::from_millis(5);
        let core = c.to_core(later);
        assert!(core >= Instant::from_millis(5));
        let back = c.to_std(core);
        assert!(back <= later && later - back < std::time::Duration::from_micros(2));
    }
}

#[cfg(test)]
mod display_tests {
    use super::DeviceStats;

    #[test]
    fn device_stats_read_like_counters() {
        let s = DeviceStats {
            rx_frames: 3,
            rx_bytes: 252,
            tx_frames: 2,
            tx_bytes: 168,
            tx_would_block: 1,
            ..DeviceStats::default()
        };
        assert_eq!(
            s.to_string(),
            "Device:\n    3 frames received (252 bytes)\n    2 frames sent (168 bytes)\n    sends refused (the device queue was full): 1\n"
        );
    }
}
