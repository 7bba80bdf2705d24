//! [`Impaired`]: a device wrapper that mistreats frames the way
//! [`MemLink`](crate::MemLink) does (loss, duplication, delay and jitter,
//! reordering, one-bit corruption), for real links where the kernel offers
//! no netem.
//!
//! Each direction has its own [`Impairments`] and its own PRNG seeded from
//! one seed, so a direction's choices depend only on the frames it saw, in
//! order. Time is the caller's `now`: under a virtual clock the wrapper is
//! deterministic; on a real clock it is as deterministic as arrival order.
//!
//! Per frame, in MemLink's order: loss, duplication, then per copy: delay +
//! jitter (FIFO per direction), reorder (held `reorder_delay` longer, so
//! later frames overtake it), corruption. Frames not yet due wait in the
//! wrapper; [`Device::poll_at`] says when the next falls due, and
//! [`Device::service`] sends the due outgoing ones.
//!
//! With `bandwidth_bps`, each direction first has MemLink's drop-tail
//! queue and serializer: a frame waits behind those not yet serialized,
//! is dropped (counted in `dropped_queue`) when `queue_limit` of them wait
//! (0: [`DEFAULT_QUEUE_LIMIT`]), and leaves at the serializer's rate; the
//! delay counts from the end of its serialization. The time each frame
//! waited in the queue is kept ([`Impaired::tx_queue_delay`]): the
//! queueing delay a sender builds at the bottleneck.
//!
//! A [`SmallMtuHop`](crate::SmallMtuHop) comes first: a frame it drops is
//! answered (ICMP) in the other direction. Frames are judged whole, so a
//! hop on frames we send turns TSO off; one on frames received should not
//! meet a kernel's GSO super-packets (turn TSO off on the device).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::os::fd::RawFd;

use ustack_core::rng::Rng;
use ustack_core::time::{Duration, Instant};
use ustack_core::Medium;

use crate::device::{Device, DeviceStats, MAX_FRAME};
use crate::hop::HopVerdict;
use crate::memlink::{corrupt, Impairments, LinkStats, DEFAULT_QUEUE_LIMIT};
use crate::offload::Offloads;

/// Frames one direction may hold back; beyond that, sends are refused with
/// `WouldBlock` and the inner device is not read.
pub const HELD_LIMIT: usize = 4096;
/// Frames read from the inner device per `recv` call, at most.
const RX_PULL: usize = 256;

#[derive(Debug)]
struct Held {
    at: Instant,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    /// Reversed so `BinaryHeap` pops the earliest `(at, seq)` first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// How long frames waited in a direction's bottleneck queue, in 1 ms
/// buckets up to [`QueueDelay::BUCKETS`] ms (the last takes the rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDelay {
    /// Frames queued (not those dropped at a full queue).
    pub frames: u64,
    /// Sum of their waits, microseconds.
    pub total_us: u64,
    pub max_us: u64,
    buckets: Vec<u64>,
}

impl Default for QueueDelay {
    fn default() -> Self {
        QueueDelay {
            frames: 0,
            total_us: 0,
            max_us: 0,
            buckets: vec![0; Self::BUCKETS],
        }
    }
}

impl QueueDelay {
    pub const BUCKETS: usize = 4096;

    fn add(&mut self, us: u64) {
        self.frames += 1;
        self.total_us = self.total_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
        let i = usize::try_from(us / 1000).unwrap_or(usize::MAX);
        self.buckets[i.min(Self::BUCKETS - 1)] += 1;
    }

    /// Mean wait; zero before any frame.
    pub fn mean(&self) -> Duration {
        Duration::from_micros(self.total_us.checked_div(self.frames).unwrap_or(0))
    }

    /// The wait `q` (0..=1) of the frames stayed under, to the next whole
    /// millisecond; zero before any frame.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.frames == 0 {
            return Duration::ZERO;
        }
        let want = ((self.frames as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Duration::from_millis(i as u64 + 1);
            }
        }
        Duration::from_millis(Self::BUCKETS as u64)
    }
}

#[derive(Debug)]
struct Direction {
    imp: Impairments,
    rng: Rng,
    held: BinaryHeap<Held>,
    /// Latest due time given to a non-reordered copy (FIFO floor).
    last_at: Instant,
    seq: u64,
    stats: LinkStats,
    /// Serializer busy until this time, in picoseconds.
    busy_until_ps: u128,
    /// Serialization end (ps) of each frame still in the queue, oldest first.
    queue: VecDeque<u128>,
    queue_delay: QueueDelay,
}

impl Direction {
    fn new(imp: Impairments, seed: u64) -> Self {
        Direction {
            imp,
            rng: Rng::new(seed),
            held: BinaryHeap::new(),
            last_at: Instant::ZERO,
            seq: 0,
            stats: LinkStats::default(),
            busy_until_ps: 0,
            queue: VecDeque::new(),
            queue_delay: QueueDelay::default(),
        }
    }

    /// The bottleneck, as MemLink's: None if the queue is full (the frame
    /// is dropped), else when the frame has been serialized (`now`
    /// without a bandwidth).
    fn serialize(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let bps = match self.imp.bandwidth_bps {
            Some(bps) if bps > 0 => bps,
            _ => return Some(now),
        };
        let now_ps = u128::from(now.total_micros()) * 1_000_000;
        while self.queue.front().is_some_and(|&end| end <= now_ps) {
            self.queue.pop_front();
        }
        let limit = match self.imp.queue_limit {
            0 => DEFAULT_QUEUE_LIMIT,
            n => n,
        };
        if self.queue.len() >= limit {
            self.stats.dropped_queue += 1;
            return None;
        }
        let start = self.busy_until_ps.max(now_ps);
        let end = start + len as u128 * 8 * 1_000_000_000_000 / u128::from(bps);
        self.busy_until_ps = end;
        self.queue.push_back(end);
        let waited_us = (start - now_ps) / 1_000_000;
        self.queue_delay
            .add(u64::try_from(waited_us).unwrap_or(u64::MAX));
        Some(Instant::from_micros(
            u64::try_from(end.div_ceil(1_000_000)).unwrap_or(u64::MAX),
        ))
    }

    /// Applies the impairments to one frame, holding what survives; the
    /// answer of a small-MTU hop that dropped it, for the other direction.
    fn offer(&mut self, now: Instant, frame: &[u8], medium: Medium) -> Option<Vec<u8>> {
        self.stats.sent += 1;
        let imp = self.imp;
        if let Some(hop) = imp.hop {
            if let HopVerdict::Drop(answer) = hop.check(medium, frame) {
                self.stats.dropped_hop += 1;
                return answer;
            }
        }
        let sent_at = self.serialize(now, frame.len())?;
        if self.rng.chance(imp.loss) {
            self.stats.dropped_loss += 1;
            return None;
        }
        let copies = if self.rng.chance(imp.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let jitter_us = u64::try_from(imp.jitter.as_micros()).unwrap_or(u64::MAX);
        for _ in 0..copies {
            let mut at = sent_at + imp.delay + Duration::from_micros(self.rng.upto(jitter_us));
            if self.rng.chance(imp.reorder) {
                at += imp.reorder_delay;
                self.stats.reordered += 1;
            } else {
                at = at.max(self.last_at);
                self.last_at = at;
            }
            let mut copy = frame.to_vec();
            if !copy.is_empty() && self.rng.chance(imp.corrupt) {
                corrupt(&mut self.rng, &mut copy);
                self.stats.corrupted += 1;
            }
            self.seq += 1;
            self.held.push(Held {
                at,
                seq: self.seq,
                frame: copy,
            });
        }
        None
    }

    fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.held.peek()?.at > now {
            return None;
        }
        let h = self.held.pop()?;
        self.stats.delivered += 1;
        self.stats.bytes_delivered += h.frame.len() as u64;
        Some(h.frame)
    }

    fn next_at(&self) -> Option<Instant> {
        self.held.peek().map(|h| h.at)
    }
}

/// A device whose traffic passes through seeded impairments; see the module docs.
#[derive(Debug)]
pub struct Impaired<D: Device> {
    inner: D,
    /// Frames we send, toward the inner device.
    tx: Direction,
    /// Frames the inner device delivers, toward the caller.
    rx: Direction,
    /// The held outgoing frame the inner device refused, retried first.
    tx_refused: Option<Vec<u8>>,
    would_block: u64,
    scratch: Vec<u8>,
    /// Frames we send may be corrupted or meet a small-MTU hop (no TSO
    /// then, see `offloads`).
    tx_corrupts: bool,
}

impl<D: Device> Impaired<D> {
    /// Wraps `inner`: `tx` applies to frames sent through it, `rx` to frames
    /// received from it.
    pub fn new(inner: D, seed: u64, tx: Impairments, rx: Impairments) -> Self {
        Impaired {
            inner,
            tx_corrupts: tx.corrupt > 0.0 || tx.hop.is_some(),
            tx: Direction::new(tx, seed),
            rx: Direction::new(rx, seed ^ 0x5bd1_e995_9e37_79b9),
            tx_refused: None,
            would_block: 0,
            scratch: vec![0; MAX_FRAME],
        }
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    pub fn into_inner(self) -> D {
        self.inner
    }

    /// What the impairments did to outgoing frames (`sent`: frames offered,
    /// `delivered`: frames handed to the inner device).
    pub fn tx_stats(&self) -> LinkStats {
        self.tx.stats
    }

    /// What the impairments did to incoming frames (`sent`: frames read from
    /// the inner device, `delivered`: frames returned by `recv`).
    pub fn rx_stats(&self) -> LinkStats {
        self.rx.stats
    }

    /// How long outgoing frames waited in the bottleneck queue.
    pub fn tx_queue_delay(&self) -> &QueueDelay {
        &self.tx.queue_delay
    }

    /// How long incoming frames waited in the bottleneck queue.
    pub fn rx_queue_delay(&self) -> &QueueDelay {
        &self.rx.queue_delay
    }

    /// Frames held back, (outgoing, incoming).
    pub fn held(&self) -> (usize, usize) {
        (
            self.tx.held.len() + usize::from(self.tx_refused.is_some()),
            self.rx.held.len(),
        )
    }

    /// Sends due outgoing frames to the inner device until it refuses one.
    fn flush_tx(&mut self, now: Instant) -> io::Result<()> {
        loop {
            let frame = match self.tx_refused.take() {
                Some(f) => f,
                None => match self.tx.pop_due(now) {
                    Some(f) => f,
                    None => return Ok(()),
                },
            };
            match self.inner.send(now, &frame) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.tx_refused = Some(frame);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads what the inner device has (bounded) into the incoming queue.
    fn pull_rx(&mut self, now: Instant) -> io::Result<()> {
        for _ in 0..RX_PULL {
            if self.rx.held.len() >= HELD_LIMIT {
                break;
            }
            match self.inner.recv(now, &mut self.scratch)? {
                Some(n) => {
                    let medium = self.inner.medium();
                    if let Some(a) = self.rx.offer(now, &self.scratch[..n], medium) {
                        // The hop's answer to the peer; lost if refused.
                        let _ = self.inner.send(now, &a);
                    }
                }
                None => break,
            }
        }
        Ok(())
    }
}

impl<D: Device> Device for Impaired<D> {
    fn medium(&self) -> Medium {
        self.inner.medium()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn max_frame_len(&self) -> usize {
        self.inner.max_frame_len()
    }

    /// The inner device's offloads, but no TSO when frames we send may be
    /// corrupted: the kernel would give a corrupted super-segment fresh,
    /// valid checksums. A super-segment is impaired as one frame (lost,
    /// delayed, duplicated or reordered whole), as a NIC's queue would.
    fn offloads(&self) -> Offloads {
        let mut o = self.inner.offloads();
        if self.tx_corrupts {
            o.tso4 = false;
            o.tso6 = false;
        }
        o
    }

    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.pull_rx(now)?;
        Ok(self.rx.pop_due(now).map(|f| {
            let n = f.len().min(buf.len());
            buf[..n].copy_from_slice(&f[..n]);
            n
        }))
    }

    /// Refused with `WouldBlock` (and counted) only when the wrapper already
    /// holds [`HELD_LIMIT`] outgoing frames.
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.flush_tx(now)?;
        if self.tx.held.len() >= HELD_LIMIT {
            self.would_block += 1;
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "impaired device: held-frame queue full",
            ));
        }
        if let Some(a) = self.tx.offer(now, frame, self.inner.medium()) {
            self.rx.offer(now, &a, self.inner.medium());
        }
        self.flush_tx(now)
    }

    fn poll_at(&self) -> Option<Instant> {
        let tx = if self.tx_refused.is_some() {
            Some(Instant::ZERO)
        } else {
            self.tx.next_at()
        };
        [tx, self.rx.next_at(), self.inner.poll_at()]
            .into_iter()
            .flatten()
            .min()
    }

    fn service(&mut self, now: Instant) -> io::Result<()> {
        self.inner.service(now)?;
        self.flush_tx(now)
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        self.inner.as_raw_fd()
    }

    /// The inner device's counters, plus the wrapper's own refusals in
    /// `tx_would_block`.
    fn stats(&self) -> DeviceStats {
        let mut s = self.inner.stats();
        s.tx_would_block += self.would_block;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    fn drain(d: &mut MemDevice, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Some(n) = d.recv(now, &mut buf).unwrap() {
            out.push(buf[..n].to_vec());
        }
        out
    }

    fn pair(tx: Impairments, rx: Impairments, seed: u64) -> (Impaired<MemDevice>, MemDevice) {
        let (a, b) = MemDevice::pair(Medium::Ip, 1500, 10_000);
        (Impaired::new(a, seed, tx, rx), b)
    }

    #[test]
    fn without_impairments_frames_pass_at_once() {
        let (mut d, mut peer) = pair(Impairments::none(), Impairments::none(), 1);
        d.send(ms(0), b"abc").unwrap();
        assert_eq!(drain(&mut peer, ms(0)), [b"abc".to_vec()]);
        peer.send(ms(0), b"xyz").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(d.recv(ms(0), &mut buf).unwrap(), Some(3));
        assert_eq!(&buf[..3], b"xyz");
        assert_eq!(d.poll_at(), None);
    }

    #[test]
    fn delay_holds_frames_until_due_in_both_directions() {
        let delay = Impairments::none().with_delay(Duration::from_millis(10));
        let (mut d, mut peer) = pair(delay, delay, 1);
        d.send(ms(0), b"out").unwrap();
        assert!(drain(&mut peer, ms(0)).is_empty());
        assert_eq!(d.poll_at(), Some(ms(10)));
        d.service(ms(9)).unwrap();
        assert!(drain(&mut peer, ms(9)).is_empty());
        d.service(ms(10)).unwrap();
        assert_eq!(drain(&mut peer, ms(10)), [b"out".to_vec()]);

        peer.send(ms(20), b"in").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(d.recv(ms(20), &mut buf).unwrap(), None);
        assert_eq!(d.poll_at(), Some(ms(30)));
        assert_eq!(d.recv(ms(30), &mut buf).unwrap(), Some(2));
        assert_eq!(d.rx_stats().delivered, 1);
    }

    #[test]
    fn loss_duplicate_corrupt_and_reorder_are_counted() {
        let imp = Impairments::none()
            .with_loss(0.2)
            .with_duplicate(0.2)
            .with_corrupt(0.2)
            .with_reorder(0.2, Duration::from_millis(5));
        let (mut d, mut peer) = pair(imp, Impairments::none(), 7);
        for i in 0..500u16 {
            d.send(ms(u64::from(i)), &i.to_be_bytes()).unwrap();
        }
        d.service(ms(10_000)).unwrap();
        let got = drain(&mut peer, ms(10_000));
        let s = d.tx_stats();
        assert_eq!(s.sent, 500);
        assert!(s.dropped_loss > 50 && s.duplicated > 50 && s.corrupted > 50 && s.reordered > 50);
        assert_eq!(got.len() as u64, 500 - s.dropped_loss + s.duplicated);
        assert_eq!(s.delivered, got.len() as u64);
        // Reordering shows: some frame arrives after a later-sent one.
        let seqs: Vec<u16> = got
            .iter()
            .map(|f| u16::from_be_bytes([f[0], f[1]]))
            .collect();
        assert!(seqs.windows(2).any(|w| w[0] > w[1] + 1), "{seqs:?}");
    }

    #[test]
    fn same_seed_same_run() {
        let imp = Impairments::lossy(0.3)
            .with_duplicate(0.1)
            .with_jitter(Duration::from_millis(3))
            .with_corrupt(0.1);
        let run = |seed| {
            let (mut d, mut peer) = pair(imp, Impairments::none(), seed);
            let mut out = Vec::new();
            for i in 0..200u64 {
                d.send(ms(i), &[i as u8; 40]).unwrap();
                d.service(ms(i)).unwrap();
                out.extend(drain(&mut peer, ms(i)));
            }
            out
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn a_refusing_inner_device_keeps_frames_in_order() {
        let (a, mut peer) = MemDevice::pair(Medium::Ip, 1500, 1);
        let mut d = Impaired::new(a, 1, Impairments::none(), Impairments::none());
        for i in 0..3u8 {
            d.send(ms(0), &[i]).unwrap();
        }
        assert_eq!(d.held().0, 2);
        assert_eq!(d.poll_at(), Some(Instant::ZERO));
        let mut got = drain(&mut peer, ms(0));
        for _ in 0..3 {
            d.service(ms(1)).unwrap();
            got.extend(drain(&mut peer, ms(1)));
        }
        assert_eq!(got, [vec![0], vec![1], vec![2]]);
        assert_eq!(d.poll_at(), None);
    }

    #[test]
    fn a_bottleneck_serializes_queues_and_drops_at_its_limit() {
        // 8 Mbit/s: a 1000-byte frame takes 1 ms; a queue of 3 frames.
        let imp = Impairments::none()
            .with_bandwidth(8_000_000)
            .with_queue_limit(3)
            .with_delay(Duration::from_millis(10));
        let (mut d, mut peer) = pair(imp, Impairments::none(), 1);
        for i in 0..5u8 {
            d.send(ms(0), &[i; 1000]).unwrap();
        }
        let s = d.tx_stats();
        assert_eq!(s.dropped_queue, 2, "the 4th and 5th find 3 waiting");
        // Serialized back to back, then the delay: due at 11, 12, 13 ms.
        assert_eq!(d.poll_at(), Some(ms(11)));
        d.service(ms(11)).unwrap();
        assert_eq!(drain(&mut peer, ms(11)).len(), 1);
        d.service(ms(12)).unwrap();
        assert_eq!(drain(&mut peer, ms(12)).len(), 1);
        d.service(ms(13)).unwrap();
        assert_eq!(drain(&mut peer, ms(13))[0][0], 2);
        // They waited 0, 1 and 2 ms in the queue.
        let q = d.tx_queue_delay();
        assert_eq!((q.frames, q.total_us, q.max_us), (3, 3000, 2000));
        assert_eq!(q.mean(), Duration::from_millis(1));
        assert_eq!(q.quantile(0.5), Duration::from_millis(2));
        assert_eq!(q.quantile(1.0), Duration::from_millis(3));
        // Once the queue has drained, a frame goes at once.
        d.send(ms(100), &[9; 1000]).unwrap();
        assert_eq!(d.poll_at(), Some(ms(111)));
        assert_eq!(d.tx_queue_delay().max_us, 2000);
    }

    #[test]
    fn without_a_bandwidth_nothing_queues() {
        let (mut d, _peer) = pair(
            Impairments::none().with_queue_limit(1),
            Impairments::none(),
            1,
        );
        for _ in 0..10 {
            d.send(ms(0), &[0; 1000]).unwrap();
        }
        assert_eq!(d.tx_stats().dropped_queue, 0);
        assert_eq!(d.tx_queue_delay().frames, 0);
    }
}
