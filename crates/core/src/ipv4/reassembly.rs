//! Reassembly of fragmented IPv4 datagrams (RFC 791 §3.2, RFC 815), with
//! bounded memory and a timeout (RFC 1122 §3.3.2).
//!
//! Overlapping fragments drop the whole datagram, as Linux has done since
//! 2018 (they have no legitimate use and serve evasion attacks); exact
//! duplicates (a retransmitted or duplicated fragment) are ignored.

use crate::config::ReassemblyConfig;
use crate::time::Instant;
use std::collections::HashMap;
use ustack_wire::{Ipv4Addr, Ipv4Repr};

/// Largest payload an IPv4 datagram can carry (65535 minus a minimal header).
const MAX_PAYLOAD: usize = 65535 - 20;
/// Fragments kept per datagram before it is considered hostile.
const MAX_FRAGMENTS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ident: u16,
}

#[derive(Debug)]
struct Partial {
    /// Payload bytes placed at their offsets.
    data: Vec<u8>,
    /// Fragments received, as (start, end) byte ranges, sorted by start.
    frags: Vec<(usize, usize)>,
    /// Known once the fragment with MF clear arrived.
    total_len: Option<usize>,
    /// Header of the fragment at offset 0, once it arrived.
    first: Option<Ipv4Repr>,
    /// The first fragment's header and first 8 payload bytes, for ICMP Time Exceeded.
    invoking: Vec<u8>,
    deadline: Instant,
    created: Instant,
}

impl Partial {
    fn complete(&self) -> bool {
        let Some(total) = self.total_len else {
            return false;
        };
        let mut covered = 0;
        for &(s, e) in &self.frags {
            if s > covered {
                return false;
            }
            covered = covered.max(e);
        }
        covered >= total
    }
}

/// What a fragment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Held; the datagram is not complete yet.
    Held,
    /// The datagram is complete: its header (fragment fields cleared) and payload.
    Complete(Ipv4Repr, Vec<u8>),
    /// A duplicate of a fragment already held; ignored.
    Duplicate,
    /// Dropped: the fragment (and for overlaps, its datagram) with the reason.
    Dropped(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Fragments overlapped, or disagreed on the datagram's length.
    Overlap,
    /// More fragments than one datagram may have (`MAX_FRAGMENTS`).
    TooMany,
    /// Offset plus length beyond 65535 bytes.
    Oversize,
    /// A non-final fragment whose length is not a multiple of 8.
    Malformed,
    /// Over the memory or datagram limits even after evicting older datagrams.
    Memory,
}

/// A partial datagram that timed out.
#[derive(Debug)]
pub struct Expired {
    pub src: Ipv4Addr,
    /// The datagram's destination: ours, or a broadcast address.
    pub dst: Ipv4Addr,
    /// The first fragment's header + 8 bytes, if fragment zero had arrived
    /// (only then is ICMP Time Exceeded sent, RFC 792).
    pub invoking: Option<Vec<u8>>,
}

/// The set of datagrams being reassembled.
#[derive(Debug)]
pub struct Reassembler {
    cfg: ReassemblyConfig,
    partials: HashMap<Key, Partial>,
    bytes: usize,
    /// Datagrams evicted for memory, for the counters.
    pub evicted: u64,
}

impl Reassembler {
    pub fn new(cfg: ReassemblyConfig) -> Self {
        Reassembler {
            cfg,
            partials: HashMap::new(),
            bytes: 0,
            evicted: 0,
        }
    }

    /// Bytes currently held.
    pub fn bytes_held(&self) -> usize {
        self.bytes
    }

    /// Datagrams currently being reassembled.
    pub fn len(&self) -> usize {
        self.partials.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partials.is_empty()
    }

    /// Adds one fragment. `header` is the fragment's raw IP header (used to
    /// quote it in ICMP Time Exceeded if it is fragment zero).
    pub fn add(&mut self, now: Instant, repr: &Ipv4Repr, header: &[u8], payload: &[u8]) -> Outcome {
        let start = usize::from(repr.frag_offset);
        let end = start + payload.len();
        if end > MAX_PAYLOAD {
            return Outcome::Dropped(DropReason::Oversize);
        }
        if repr.more_frags && (payload.is_empty() || !payload.len().is_multiple_of(8)) {
            return Outcome::Dropped(DropReason::Malformed);
        }
        let key = Key {
            src: repr.src_addr,
            dst: repr.dst_addr,
            protocol: repr.protocol.into(),
            ident: repr.ident,
        };

        if !self.partials.contains_key(&key) {
            if !self.make_room(end) {
                return Outcome::Dropped(DropReason::Memory);
            }
            self.partials.insert(
                key,
                Partial {
                    data: Vec::new(),
                    frags: Vec::new(),
                    total_len: None,
                    first: None,
                    invoking: Vec::new(),
                    deadline: now + self.cfg.timeout,
                    created: now,
                },
            );
        }
        let p = self.partials.get_mut(&key).expect("inserted above");

        if p.frags.contains(&(start, end)) {
            return Outcome::Duplicate;
        }
        let overlaps = p.frags.iter().any(|&(s, e)| start < e && s < end);
        let bad_len = match (repr.more_frags, p.total_len) {
            (false, Some(total)) => total != end,
            (false, None) => p.frags.iter().any(|&(_, e)| e > end),
            (true, Some(total)) => end > total,
            (true, None) => false,
        };
        if overlaps || bad_len {
            self.remove(&key);
            return Outcome::Dropped(DropReason::Overlap);
        }
        if p.frags.len() >= MAX_FRAGMENTS {
            self.remove(&key);
            return Outcome::Dropped(DropReason::TooMany);
        }
        let grow = end.saturating_sub(p.data.len());
        if self.bytes + grow > self.cfg.max_bytes {
            // Never exceed the budget: drop this datagram rather than grow.
            self.remove(&key);
            self.evicted += 1;
            return Outcome::Dropped(DropReason::Memory);
        }
        let p = self.partials.get_mut(&key).expect("present");
        if p.data.len() < end {
            p.data.resize(end, 0);
        }
        self.bytes += grow;
        p.data[start..end].copy_from_slice(payload);
        let pos = p.frags.partition_point(|&(s, _)| s < start);
        p.frags.insert(pos, (start, end));
        if !repr.more_frags {
            p.total_len = Some(end);
        }
        if start == 0 {
            p.first = Some(*repr);
            p.invoking.clear();
            p.invoking.extend_from_slice(header);
            p.invoking
                .extend_from_slice(&payload[..payload.len().min(8)]);
        }
        if !p.complete() {
            return Outcome::Held;
        }
        let p = self.remove(&key).expect("present");
        let total = p.total_len.expect("complete implies known length");
        let mut data = p.data;
        data.truncate(total);
        let mut repr = p.first.expect("complete implies fragment zero");
        repr.more_frags = false;
        repr.frag_offset = 0;
        repr.payload_len = total;
        Outcome::Complete(repr, data)
    }

    fn remove(&mut self, key: &Key) -> Option<Partial> {
        let p = self.partials.remove(key)?;
        self.bytes -= p.data.len();
        Some(p)
    }

    /// Evicts the oldest datagrams until a new one of up to `need` bytes fits.
    fn make_room(&mut self, need: usize) -> bool {
        if need > self.cfg.max_bytes || self.cfg.max_datagrams == 0 {
            return false;
        }
        while self.partials.len() >= self.cfg.max_datagrams
            || self.bytes + need > self.cfg.max_bytes
        {
            let Some(oldest) = self
                .partials
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(k, _)| *k)
            else {
                return false;
            };
            self.remove(&oldest);
            self.evicted += 1;
        }
        true
    }

    pub fn poll_at(&self) -> Option<Instant> {
        self.partials.values().map(|p| p.deadline).min()
    }

    /// Drops datagrams whose time is up.
    pub fn poll(&mut self, now: Instant) -> Vec<Expired> {
        let mut keys: Vec<Key> = self
            .partials
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_by_key(|k| (k.src, k.dst, k.protocol, k.ident));
        keys.into_iter()
            .filter_map(|k| {
                let p = self.remove(&k)?;
                Some(Expired {
                    src: k.src,
                    dst: k.dst,
                    invoking: p.first.map(|_| p.invoking),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;
    use ustack_wire::IpProtocol;

    fn frag(offset: u16, more: bool, len: usize, ident: u16) -> (Ipv4Repr, Vec<u8>) {
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IpProtocol::Udp,
            payload_len: len,
            ttl: 64,
            tos: 0,
            ident,
            dont_frag: false,
            more_frags: more,
            frag_offset: offset,
        };
        let data = (0..len)
            .map(|i| ((usize::from(offset) + i) % 251) as u8)
            .collect();
        (repr, data)
    }

    fn reasm() -> Reassembler {
        Reassembler::new(ReassemblyConfig::default())
    }

    #[test]
    fn in_any_order() {
        let t = Instant::ZERO;
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let mut r = reasm();
            let frags = [
                frag(0, true, 16, 1),
                frag(16, true, 16, 1),
                frag(32, false, 5, 1),
            ];
            let mut out = None;
            for i in order {
                match r.add(t, &frags[i].0, &[0; 20], &frags[i].1) {
                    Outcome::Held => {}
                    Outcome::Complete(repr, data) => out = Some((repr, data)),
                    other => panic!("{other:?}"),
                }
            }
            let (repr, data) = out.expect("complete");
            assert_eq!(repr.payload_len, 37);
            assert!(!repr.more_frags);
            assert_eq!(data, (0..37).map(|i| (i % 251) as u8).collect::<Vec<_>>());
            assert_eq!(r.bytes_held(), 0);
            assert!(r.is_empty());
        }
    }

    #[test]
    fn duplicates_ignored_overlaps_dropped() {
        let t = Instant::ZERO;
        let mut r = reasm();
        let (a, da) = frag(0, true, 16, 1);
        assert_eq!(r.add(t, &a, &[], &da), Outcome::Held);
        assert_eq!(r.add(t, &a, &[], &da), Outcome::Duplicate);
        let (b, db) = frag(8, true, 16, 1);
        assert_eq!(
            r.add(t, &b, &[], &db),
            Outcome::Dropped(DropReason::Overlap)
        );
        assert!(r.is_empty());
    }

    #[test]
    fn too_many_fragments_is_its_own_reason() {
        let t = Instant::ZERO;
        let mut r = reasm();
        // 8-byte fragments, none overlapping, one past the limit.
        for i in 0..MAX_FRAGMENTS {
            let (f, d) = frag(8 * i as u16, true, 8, 3);
            assert_eq!(r.add(t, &f, &[], &d), Outcome::Held, "fragment {i}");
        }
        let (f, d) = frag(8 * MAX_FRAGMENTS as u16, true, 8, 3);
        assert_eq!(r.add(t, &f, &[], &d), Outcome::Dropped(DropReason::TooMany));
        assert!(r.is_empty());
    }

    #[test]
    fn rejects_oversize_and_odd_lengths() {
        let mut r = reasm();
        let (a, da) = frag(65528, false, 16, 1);
        assert_eq!(
            r.add(Instant::ZERO, &a, &[], &da),
            Outcome::Dropped(DropReason::Oversize)
        );
        let (b, db) = frag(0, true, 12, 2);
        assert_eq!(
            r.add(Instant::ZERO, &b, &[], &db),
            Outcome::Dropped(DropReason::Malformed)
        );
    }

    #[test]
    fn times_out_and_reports_fragment_zero() {
        let mut r = reasm();
        let (a, da) = frag(0, true, 16, 1);
        let (b, db) = frag(16, true, 16, 2);
        r.add(Instant::ZERO, &a, &[0x45; 20], &da);
        r.add(Instant::ZERO, &b, &[0x45; 20], &db);
        assert_eq!(r.poll_at(), Some(Instant::from_secs(30)));
        assert!(r
            .poll(Instant::ZERO + Duration::from_millis(29_999))
            .is_empty());
        let expired = r.poll(Instant::from_secs(30));
        assert_eq!(expired.len(), 2);
        let with_zero: Vec<_> = expired.iter().filter_map(|e| e.invoking.as_ref()).collect();
        assert_eq!(with_zero.len(), 1);
        assert_eq!(with_zero[0].len(), 28);
        assert_eq!(r.bytes_held(), 0);
    }

    #[test]
    fn memory_stays_bounded() {
        let cfg = ReassemblyConfig {
            max_bytes: 1000,
            max_datagrams: 8,
            ..Default::default()
        };
        let mut r = Reassembler::new(cfg);
        for ident in 0..1000u16 {
            let (a, da) = frag(0, true, 96, ident);
            r.add(Instant::from_millis(ident.into()), &a, &[], &da);
            assert!(r.bytes_held() <= 1000);
            assert!(r.len() <= 8);
        }
        assert!(r.evicted > 900);
    }
}
