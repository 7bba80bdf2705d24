//! An in-memory hub link on a virtual clock, with seeded impairments.
//!
//! A frame sent on one port goes to every other port; each delivery passes,
//! in order, through: the direction's drop-tail queue and serializer
//! (`bandwidth_bps`, `queue_limit`), loss, duplication, then per copy:
//! delay + jitter (FIFO per direction), reorder, corruption.
//! All randomness comes from one seeded PRNG: same seed and same calls give
//! the same run, bit for bit.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::io;

use ustack_core::time::{Duration, Instant};

use crate::hop::{HopVerdict, SmallMtuHop};
use crate::pcap::PcapSink;
use ustack_core::rng::Rng;

/// Default `queue_limit` when the field is 0.
pub const DEFAULT_QUEUE_LIMIT: usize = 1000;
const POOL_MAX: usize = 4096;

/// How one direction of the link mistreats frames. All probabilities in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Impairments {
    /// Probability a delivery is dropped.
    pub loss: f64,
    /// Probability a delivery is duplicated (the copy is delayed independently).
    pub duplicate: f64,
    /// Probability a copy is held back `reorder_delay` extra so later ones overtake it.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Uniform extra delay in `[0, jitter]`; never reorders by itself.
    pub jitter: Duration,
    /// Serialization rate; `None` (or 0) is infinitely fast.
    pub bandwidth_bps: Option<u64>,
    /// Frames one direction may hold not yet fully serialized; excess is dropped.
    /// Only bites with `bandwidth_bps`. 0 means [`DEFAULT_QUEUE_LIMIT`].
    pub queue_limit: usize,
    /// Probability a copy gets one bit flipped (see `corrupt`).
    pub corrupt: f64,
    /// A router hop with a smaller MTU on the way ([`SmallMtuHop`]),
    /// before the other impairments; its ICMP answers go back to the sender.
    pub hop: Option<SmallMtuHop>,
    /// ECN marking (RFC 3168 §5, a threshold AQM): an ECN-capable packet
    /// that finds at least this many frames queued is marked Congestion
    /// Experienced instead of waiting for a drop; 0 is off. Only bites
    /// with `bandwidth_bps`; `queue_limit` still drops.
    pub ce_threshold: usize,
}

impl Impairments {
    /// A perfect, instantaneous link.
    pub fn none() -> Self {
        Self::default()
    }
    /// Only random loss with probability `p`.
    pub fn lossy(p: f64) -> Self {
        Self::none().with_loss(p)
    }
    pub fn with_loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }
    pub fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }
    pub fn with_reorder(mut self, p: f64, extra: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = extra;
        self
    }
    pub fn with_delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    pub fn with_jitter(mut self, d: Duration) -> Self {
        self.jitter = d;
        self
    }
    pub fn with_bandwidth(mut self, bps: u64) -> Self {
        self.bandwidth_bps = Some(bps);
        self
    }
    pub fn with_queue_limit(mut self, frames: usize) -> Self {
        self.queue_limit = frames;
        self
    }
    /// Marks CE above `frames` queued (see `ce_threshold`).
    pub fn with_ce_threshold(mut self, frames: usize) -> Self {
        self.ce_threshold = frames;
        self
    }
    pub fn with_corrupt(mut self, p: f64) -> Self {
        self.corrupt = p;
        self
    }
    /// A hop that answers packets over `mtu` with ICMP Fragmentation
    /// Needed / Packet Too Big and drops them.
    pub fn with_hop_mtu(mut self, mtu: usize) -> Self {
        self.hop = Some(SmallMtuHop {
            mtu,
            blackhole: false,
        });
        self
    }
    /// A hop that drops packets over `mtu` silently (an ICMP black hole).
    pub fn with_blackhole_hop_mtu(mut self, mtu: usize) -> Self {
        self.hop = Some(SmallMtuHop {
            mtu,
            blackhole: true,
        });
        self
    }
}

/// One attachment point on a [`MemLink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub usize);

/// Counters over the link's whole life. `sent` counts `send` calls; the rest
/// count deliveries (one per receiving port per frame, plus duplicates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub sent: u64,
    /// Frames handed out by `recv`/`recv_with`.
    pub delivered: u64,
    pub dropped_loss: u64,
    pub dropped_queue: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub corrupted: u64,
    pub bytes_delivered: u64,
    /// TCP super-segments cut into segments ([`MemLink::set_tso`]).
    pub tso_cut: u64,
    /// Packets a [`SmallMtuHop`] dropped for their size.
    pub dropped_hop: u64,
    /// ECN-capable packets marked Congestion Experienced (`ce_threshold`).
    pub ce_marked: u64,
}

#[derive(Debug)]
struct Pending {
    at: Instant,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    /// Reversed so `BinaryHeap` pops the earliest `(at, seq)` first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Debug, Default)]
struct Direction {
    imp: Option<Impairments>,
    /// Serializer busy until this time, in picoseconds.
    busy_until_ps: u128,
    /// Serialization end (ps) of each frame still in the queue, oldest first.
    queue: VecDeque<u128>,
    /// Latest delivery time given to a non-reordered copy (FIFO floor).
    last_at: Instant,
}

/// An in-memory hub joining any number of ports; see the module docs.
#[derive(Debug)]
pub struct MemLink {
    rng: Rng,
    default_imp: Impairments,
    /// `dirs[from][to]`.
    dirs: Vec<Vec<Direction>>,
    inbox: Vec<BinaryHeap<Pending>>,
    seq: u64,
    stats: LinkStats,
    pool: Vec<Vec<u8>>,
    capture: Option<PcapSink>,
    capture_error: Option<io::Error>,
    /// TSO: the medium and MTU by which super-segments are cut.
    tso: Option<(ustack_core::Medium, usize)>,
    /// How frames are framed, for a [`SmallMtuHop`] (default Ethernet).
    medium: ustack_core::Medium,
}

impl MemLink {
    /// Takes TCP super-segments (stacks with `StackConfig::tso`) as a TUN
    /// with TSO does: each is cut into MTU-sized segments, as the kernel
    /// would cut it (see [`crate::offload::gso_segment`]), BEFORE the
    /// impairments, which then apply to each segment (a loss drops one
    /// MSS, not the super-segment). The capture shows the segments.
    pub fn set_tso(&mut self, medium: ustack_core::Medium, mtu: usize) {
        self.tso = Some((medium, mtu));
    }

    pub fn new(seed: u64) -> Self {
        MemLink {
            rng: Rng::new(seed),
            default_imp: Impairments::none(),
            dirs: Vec::new(),
            inbox: Vec::new(),
            seq: 0,
            stats: LinkStats::default(),
            pool: Vec::new(),
            capture: None,
            capture_error: None,
            tso: None,
            medium: ustack_core::Medium::Ethernet,
        }
    }

    /// The framing of the hosts' frames, which a [`SmallMtuHop`] must know
    /// (default Ethernet).
    pub fn set_medium(&mut self, medium: ustack_core::Medium) {
        self.medium = medium;
    }

    pub fn add_port(&mut self) -> PortId {
        let id = self.inbox.len();
        for row in &mut self.dirs {
            row.push(Direction::default());
        }
        self.dirs
            .push((0..=id).map(|_| Direction::default()).collect());
        self.inbox.push(BinaryHeap::new());
        PortId(id)
    }

    pub fn ports(&self) -> usize {
        self.inbox.len()
    }

    /// Impairments for every direction without its own override (default none).
    pub fn set_impairments(&mut self, imp: Impairments) {
        self.default_imp = imp;
    }

    /// Overrides the impairments from `from` to `to`. Panics on unknown ports.
    pub fn set_direction_impairments(&mut self, from: PortId, to: PortId, imp: Impairments) {
        assert!(from != to, "a port does not hear itself");
        self.dirs[from.0][to.0].imp = Some(imp);
    }

    /// Records every frame as sent, before impairments. Replaces any old sink.
    pub fn set_capture(&mut self, cap: Option<PcapSink>) {
        self.capture = cap;
        self.capture_error = None;
    }

    /// Removes and returns the capture sink (flush or drop it to finish the file).
    pub fn take_capture(&mut self) -> Option<PcapSink> {
        self.capture.take()
    }

    /// The write error that stopped capturing, if any.
    pub fn capture_error(&self) -> Option<&io::Error> {
        self.capture_error.as_ref()
    }

    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Frames waiting for `port`, due or not.
    pub fn pending(&self, port: PortId) -> usize {
        self.inbox[port.0].len()
    }

    /// Sends `frame` from `from` at `now` to every other port. Panics on an unknown port.
    pub fn send(&mut self, now: Instant, from: PortId, frame: &[u8]) {
        assert!(from.0 < self.inbox.len(), "unknown port {from:?}");
        if let Some((medium, mtu)) = self.tso {
            if let Some(segs) = crate::offload::gso_segment(medium, mtu, frame) {
                self.stats.tso_cut += 1;
                for seg in segs {
                    self.send(now, from, &seg);
                }
                return;
            }
        }
        self.stats.sent += 1;
        if let Some(cap) = &mut self.capture {
            if let Err(e) = cap.write(now, frame) {
                self.capture = None;
                self.capture_error = Some(e);
            }
        }
        for to in 0..self.inbox.len() {
            if to != from.0 {
                self.deliver_one(now, from.0, to, frame);
            }
        }
    }

    fn deliver_one(&mut self, now: Instant, from: usize, to: usize, frame: &[u8]) {
        let dir = &mut self.dirs[from][to];
        let imp = dir.imp.unwrap_or(self.default_imp);
        if let Some(hop) = imp.hop {
            if let HopVerdict::Drop(answer) = hop.check(self.medium, frame) {
                self.stats.dropped_hop += 1;
                if let Some(a) = answer {
                    // Back to the sender after the one-way delay.
                    self.seq += 1;
                    self.inbox[from].push(Pending {
                        at: now + imp.delay,
                        seq: self.seq,
                        frame: a,
                    });
                }
                return;
            }
        }
        let now_ps = u128::from(now.total_micros()) * 1_000_000;

        // Queue and serializer.
        let mut mark = false;
        let tx_end_us = match imp.bandwidth_bps {
            Some(bps) if bps > 0 => {
                while dir.queue.front().is_some_and(|&end| end <= now_ps) {
                    dir.queue.pop_front();
                }
                let limit = if imp.queue_limit == 0 {
                    DEFAULT_QUEUE_LIMIT
                } else {
                    imp.queue_limit
                };
                if dir.queue.len() >= limit {
                    self.stats.dropped_queue += 1;
                    return;
                }
                mark = imp.ce_threshold > 0 && dir.queue.len() >= imp.ce_threshold;
                let bits = frame.len() as u128 * 8;
                let start = dir.busy_until_ps.max(now_ps);
                let end = start + bits * 1_000_000_000_000 / u128::from(bps);
                dir.busy_until_ps = end;
                dir.queue.push_back(end);
                Instant::from_micros(u64::try_from(end.div_ceil(1_000_000)).unwrap_or(u64::MAX))
            }
            _ => now,
        };

        if self.rng.chance(imp.loss) {
            self.stats.dropped_loss += 1;
            return;
        }
        let copies = if self.rng.chance(imp.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let jitter_us = u64::try_from(imp.jitter.as_micros()).unwrap_or(u64::MAX);
        for _ in 0..copies {
            let mut at = tx_end_us + imp.delay + Duration::from_micros(self.rng.upto(jitter_us));
            let dir = &mut self.dirs[from][to];
            if self.rng.chance(imp.reorder) {
                at += imp.reorder_delay;
                self.stats.reordered += 1;
            } else {
                at = at.max(dir.last_at);
                dir.last_at = at;
            }
            let mut buf = self.pool.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(frame);
            if mark && mark_ce(self.medium, &mut buf) {
                self.stats.ce_marked += 1;
            }
            if !buf.is_empty() && self.rng.chance(imp.corrupt) {
                corrupt(&mut self.rng, &mut buf);
                self.stats.corrupted += 1;
            }
            self.seq += 1;
            self.inbox[to].push(Pending {
                at,
                seq: self.seq,
                frame: buf,
            });
        }
    }

    /// Next frame for `port` due at or before `now` (delivery-time order, ties in send order).
    pub fn recv(&mut self, now: Instant, port: PortId) -> Option<Vec<u8>> {
        let p = self.pop_due(now, port)?;
        Some(p.frame)
    }

    /// Like [`recv`](Self::recv) but lends the frame to `f` and recycles its buffer.
    pub fn recv_with<R>(
        &mut self,
        now: Instant,
        port: PortId,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let p = self.pop_due(now, port)?;
        let r = f(&p.frame);
        if self.pool.len() < POOL_MAX {
            self.pool.push(p.frame);
        }
        Some(r)
    }

    fn pop_due(&mut self, now: Instant, port: PortId) -> Option<Pending> {
        let heap = &mut self.inbox[port.0];
        if heap.peek()?.at > now {
            return None;
        }
        let p = heap.pop()?;
        self.stats.delivered += 1;
        self.stats.bytes_delivered += p.frame.len() as u64;
        Some(p)
    }

    /// Earliest pending delivery time over all ports (may be in the past if not yet received).
    pub fn poll_at(&self) -> Option<Instant> {
        self.inbox
            .iter()
            .filter_map(|h| h.peek().map(|p| p.at))
            .min()
    }

    /// Earliest pending delivery time for `port`.
    pub fn poll_at_port(&self, port: PortId) -> Option<Instant> {
        self.inbox[port.0].peek().map(|p| p.at)
    }
}

/// Flips one random bit of a non-empty `buf`.
///
/// One bit, because that is the error the Internet checksum always detects
/// (RFC 1071): two flips can cancel in the one's-complement sum, and on a
/// real link the frame CRC catches those before IP sees them.
pub(crate) fn corrupt(rng: &mut Rng, buf: &mut [u8]) {
    let bit = rng.below(buf.len() as u64 * 8);
    buf[(bit / 8) as usize] ^= 1 << (bit % 8);
}

/// Sets Congestion Experienced on an ECN-capable (ECT) IPv4 or IPv6
/// packet in `frame` (RFC 3168 §5; the IPv4 header checksum made again);
/// false for anything else.
fn mark_ce(medium: ustack_core::Medium, frame: &mut [u8]) -> bool {
    let off = match medium {
        ustack_core::Medium::Ethernet => match frame.get(12..14) {
            Some([0x08, 0x00] | [0x86, 0xdd]) => 14,
            _ => return false,
        },
        _ => 0,
    };
    let Some(ip) = frame.get_mut(off..) else {
        return false;
    };
    match ip.first().map(|b| b >> 4) {
        Some(4) if ip.len() >= 20 => {
            if ip[1] & 3 == 0 {
                return false;
            }
            ip[1] |= 3;
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ihl < 20 || ip.len() < ihl {
                return false;
            }
            ip[10] = 0;
            ip[11] = 0;
            let mut sum = 0u32;
            for w in ip[..ihl].chunks(2) {
                sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
            }
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            true
        }
        Some(6) if ip.len() >= 40 => {
            if (ip[1] >> 4) & 3 == 0 {
                return false;
            }
            ip[1] |= 0x30;
            true
        }
        _ => false,
    }
}
