//! IPv6 reassembly (RFC 8200 §4.5) within the same bounds as IPv4's
//! (`ReassemblyConfig`: bytes held, datagrams held, timeout), with the
//! IPv6 rules: overlapping fragments discard the whole datagram (RFC
//! 5722), a non-last fragment whose length is not a multiple of 8, or one
//! reaching past 65535, is answered with Parameter Problem; the datagram
//! is rebuilt from the first fragment's unfragmentable part.

use crate::config::ReassemblyConfig;
use crate::time::Instant;
use std::collections::HashMap;
use std::net::Ipv6Addr;
use ustack_wire::ipv6::{self, FragmentHeader};

type Key = (Ipv6Addr, Ipv6Addr, u32);

#[derive(Debug)]
struct Partial {
    deadline: Instant,
    /// The first fragment's bytes before its Fragment header, with the
    /// Next Header that named the Fragment header already set to the
    /// fragmentable part's (RFC 8200 §4.5 "reassembly").
    unfrag: Option<Vec<u8>>,
    /// The first fragment, whole, for a Time Exceeded quote.
    first: Option<Vec<u8>>,
    /// Received (offset, bytes), kept sorted by offset, never overlapping.
    pieces: Vec<(usize, Vec<u8>)>,
    /// Total fragmentable length, once the last fragment came.
    total: Option<usize>,
    bytes: usize,
}

/// What a fragment did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reasm {
    /// Held; more to come.
    Held,
    /// The whole packet, rebuilt (no Fragment header).
    Complete(Vec<u8>),
    /// Dropped (overlap, limits): silently, counted by the caller.
    Dropped,
    /// Parameter Problem code 0 with this pointer (RFC 8200 §4.5).
    ParamProblem(u32),
}

/// Partial datagrams by (source, destination, identification).
#[derive(Debug)]
pub struct Reassembler6 {
    cfg: ReassemblyConfig,
    partial: HashMap<Key, Partial>,
    bytes: usize,
}

impl Reassembler6 {
    pub fn new(cfg: ReassemblyConfig) -> Self {
        Reassembler6 {
            cfg,
            partial: HashMap::new(),
            bytes: 0,
        }
    }

    /// Bytes held across partial datagrams.
    pub fn bytes_held(&self) -> usize {
        self.bytes
    }

    /// The earliest timeout.
    pub fn poll_at(&self) -> Option<Instant> {
        self.partial.values().map(|p| p.deadline).min()
    }

    /// Drops timed-out datagrams; gives back the first fragments of those
    /// that had one, for Time Exceeded code 1 (RFC 8200 §4.5).
    pub fn poll(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let expired: Vec<Key> = self
            .partial
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for k in expired {
            if let Some(p) = self.partial.remove(&k) {
                self.bytes -= p.bytes;
                out.extend(p.first);
            }
        }
        out
    }

    /// One fragment: `packet` is the whole IPv6 packet (fixed header on),
    /// `frag_at` the offset of its Fragment header from the packet's
    /// start, `named_at` the offset of the Next Header field that named it.
    pub fn add(
        &mut self,
        now: Instant,
        packet: &[u8],
        frag: FragmentHeader,
        frag_at: usize,
        named_at: usize,
    ) -> Reasm {
        let p = ipv6::Ipv6Packet::new_unchecked(packet);
        let (src, dst) = (p.src_addr(), p.dst_addr());
        let data = &packet[frag_at + ipv6::FRAGMENT_HEADER_LEN..];
        let off = usize::from(frag.offset);
        // RFC 8200 §4.5: a non-last fragment's length must be a multiple of
        // 8 (pointer: the Payload Length field), and no fragment may end
        // past 65535 (pointer: the Fragment Offset field).
        if frag.more_frags && !data.len().is_multiple_of(8) {
            return Reasm::ParamProblem(4);
        }
        if off + data.len() > 65535 {
            return Reasm::ParamProblem((frag_at + 2) as u32);
        }
        let key = (src, dst, frag.ident);
        if !self.partial.contains_key(&key) {
            if self.partial.len() >= self.cfg.max_datagrams {
                return Reasm::Dropped;
            }
            self.partial.insert(
                key,
                Partial {
                    deadline: now + self.cfg.timeout,
                    unfrag: None,
                    first: None,
                    pieces: Vec::new(),
                    total: None,
                    bytes: 0,
                },
            );
        }
        let Some(part) = self.partial.get_mut(&key) else {
            return Reasm::Dropped;
        };
        let end = off + data.len();
        let overlaps = part
            .pieces
            .iter()
            .any(|(o, d)| off < o + d.len() && *o < end)
            || part
                .total
                .is_some_and(|t| end > t || (!frag.more_frags && end != t))
            || (!frag.more_frags && part.pieces.iter().any(|(o, d)| o + d.len() > end));
        if overlaps || self.bytes + data.len() + frag_at > self.cfg.max_bytes {
            // RFC 5722: overlapping (or inconsistent) fragments discard
            // the whole datagram, silently.
            let p = self.partial.remove(&key);
            self.bytes -= p.map_or(0, |p| p.bytes);
            return Reasm::Dropped;
        }
        if !frag.more_frags {
            part.total = Some(end);
        }
        if off == 0 {
            let mut u = packet[..frag_at].to_vec();
            u[named_at] = frag.next_header;
            part.bytes += u.len();
            self.bytes += u.len();
            part.unfrag = Some(u);
            part.first = Some(packet.to_vec());
        }
        let at = part.pieces.partition_point(|(o, _)| *o < off);
        part.pieces.insert(at, (off, data.to_vec()));
        part.bytes += data.len();
        self.bytes += data.len();
        // Whole when the pieces run from 0 to the total without a gap.
        let Some(total) = part.total else {
            return Reasm::Held;
        };
        let mut next = 0;
        for (o, d) in &part.pieces {
            if *o != next {
                return Reasm::Held;
            }
            next += d.len();
        }
        if next != total || part.unfrag.is_none() {
            return Reasm::Held;
        }
        let Some(part) = self.partial.remove(&key) else {
            return Reasm::Dropped;
        };
        self.bytes -= part.bytes;
        let mut out = part.unfrag.unwrap_or_default();
        let payload_len = out.len() - ipv6::HEADER_LEN + total;
        let Ok(len) = u16::try_from(payload_len) else {
            return Reasm::Dropped;
        };
        out.reserve(total);
        for (_, d) in part.pieces {
            out.extend_from_slice(&d);
        }
        ipv6::Ipv6Packet::new_unchecked(&mut out[..]).set_payload_len(len);
        Reasm::Complete(out)
    }
}

/// Cuts `packet` (a fixed header and no extension headers) into fragments
/// of at most `mtu` bytes (RFC 8200 §4.5): each a copy of the header with
/// a Fragment header, data parts multiples of 8 but the last.
pub fn fragment(packet: &[u8], mtu: usize, ident: u32) -> Vec<Vec<u8>> {
    let h = ipv6::HEADER_LEN;
    let next = packet[6];
    let data = &packet[h..];
    let step = (mtu.saturating_sub(h + ipv6::FRAGMENT_HEADER_LEN) / 8 * 8).max(8);
    let mut out = Vec::new();
    let mut off = 0;
    while off < data.len() {
        let end = (off + step).min(data.len());
        let mut f = Vec::with_capacity(h + 8 + end - off);
        f.extend_from_slice(&packet[..h]);
        f.extend_from_slice(&[0; 8]);
        FragmentHeader {
            next_header: next,
            offset: off as u16,
            more_frags: end < data.len(),
            ident,
        }
        .emit(&mut f[h..h + 8]);
        f.extend_from_slice(&data[off..end]);
        let mut p = ipv6::Ipv6Packet::new_unchecked(&mut f[..]);
        p.set_next_header(ipv6::next_header::FRAGMENT);
        p.set_payload_len((8 + end - off) as u16);
        out.push(f);
        off = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn packet(len: usize) -> Vec<u8> {
        let mut p = vec![0u8; 40 + len];
        let repr = ustack_wire::Ipv6Repr {
            src_addr: "fd00::2".parse().unwrap(),
            dst_addr: "fd00::1".parse().unwrap(),
            next_header: ustack_wire::IpProtocol::Udp,
            payload_len: len,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        };
        repr.emit(&mut ipv6::Ipv6Packet::new_unchecked(&mut p[..]));
        for (i, b) in p[40..].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        p
    }

    fn feed(r: &mut Reassembler6, now: Instant, f: &[u8]) -> Reasm {
        let h = FragmentHeader::parse(&f[40..]).unwrap();
        r.add(now, f, h, 40, 6)
    }

    #[test]
    fn fragments_in_any_order_rebuild_the_packet() {
        let p = packet(3000);
        let frags = fragment(&p, 1280, 7);
        assert_eq!(frags.len(), 3);
        assert!(frags.iter().all(|f| f.len() <= 1280));
        let mut r = Reassembler6::new(ReassemblyConfig::default());
        let now = Instant::from_secs(1);
        assert_eq!(feed(&mut r, now, &frags[2]), Reasm::Held);
        assert_eq!(feed(&mut r, now, &frags[0]), Reasm::Held);
        assert_eq!(feed(&mut r, now, &frags[1]), Reasm::Complete(p));
        assert_eq!(r.bytes_held(), 0);
    }

    #[test]
    fn overlap_discards_the_datagram() {
        let p = packet(3000);
        let frags = fragment(&p, 1280, 7);
        let mut r = Reassembler6::new(ReassemblyConfig::default());
        let now = Instant::from_secs(1);
        assert_eq!(feed(&mut r, now, &frags[0]), Reasm::Held);
        // A fragment at offset 8 overlaps the first: all discarded (RFC 5722).
        let mut o = frags[1].clone();
        o[42..44].copy_from_slice(&(8u16 | 1).to_be_bytes());
        assert_eq!(feed(&mut r, now, &o), Reasm::Dropped);
        assert_eq!(r.bytes_held(), 0);
        // The rest alone never completes it.
        assert_eq!(feed(&mut r, now, &frags[1]), Reasm::Held);
        assert_eq!(feed(&mut r, now, &frags[2]), Reasm::Held);
    }

    #[test]
    fn length_and_offset_rules_answered() {
        let p = packet(3000);
        let frags = fragment(&p, 1280, 7);
        let mut r = Reassembler6::new(ReassemblyConfig::default());
        let now = Instant::from_secs(1);
        let mut odd = frags[0].clone();
        odd.pop();
        assert_eq!(feed(&mut r, now, &odd), Reasm::ParamProblem(4));
        let mut far = frags[2].clone();
        far[42..44].copy_from_slice(&(65528u16).to_be_bytes());
        assert_eq!(feed(&mut r, now, &far), Reasm::ParamProblem(42));
    }

    #[test]
    fn timeout_gives_back_the_first_fragment_and_memory_is_bounded() {
        let p = packet(3000);
        let frags = fragment(&p, 1280, 7);
        let cfg = ReassemblyConfig {
            max_bytes: 2000,
            ..ReassemblyConfig::default()
        };
        let mut r = Reassembler6::new(cfg);
        let now = Instant::from_secs(1);
        assert_eq!(feed(&mut r, now, &frags[0]), Reasm::Held);
        assert_eq!(r.poll_at(), Some(now + Duration::from_secs(30)));
        assert!(r.poll(now + Duration::from_secs(29)).is_empty());
        assert_eq!(
            r.poll(now + Duration::from_secs(30)),
            vec![frags[0].clone()]
        );
        assert_eq!(r.bytes_held(), 0);
        // Over max_bytes: the datagram goes.
        assert_eq!(feed(&mut r, now, &frags[0]), Reasm::Held);
        assert_eq!(feed(&mut r, now, &frags[1]), Reasm::Dropped);
        assert_eq!(r.bytes_held(), 0);
    }
}
