//! The one IPv4 output path every protocol uses: routing, neighbour
//! resolution (ARP), Ethernet framing, loopback, and the queues a datagram
//! waits in (egress, fragmentation, ARP).
//!
//! TCP writes its segments straight into the caller's frame through
//! `IpOut::emit_with`; UDP and ICMP queue whole datagrams on `egress`,
//! which `Stack::transmit` drains through the same routing and framing
//! (and fragments, RFC 791 §3.2, since they may exceed the MTU).

use crate::arp::{ArpAction, ArpCache};
use crate::config::{Medium, StackConfig};
use crate::counters::Counters;
use crate::errno::{Errno, Result};
use crate::ipv4::fragment::Fragmenter;
use crate::socket::SocketHandle;
use crate::time::Instant;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv6Addr};
use ustack_wire::{
    checksum, ArpOperation, ArpPacket, ArpRepr, ChecksumCaps, EtherType, EthernetAddress,
    EthernetFrame, EthernetRepr, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr,
};

/// A datagram waiting to go out: header fields, transport payload, next hop.
#[derive(Debug)]
pub(crate) struct OutPacket {
    pub next_hop: Ipv4Addr,
    pub repr: Ipv4Repr,
    pub payload: Vec<u8>,
    /// The socket charged for it, and how much, released once it leaves.
    pub owner: Option<(SocketHandle, usize)>,
}

/// A datagram being cut into fragments: the fragmenter, the link
/// destination (Ethernet), and the owner to release when done.
pub(crate) type Fragmenting = (
    Fragmenter,
    Option<EthernetAddress>,
    Option<(SocketHandle, usize)>,
);

/// The addresses of a datagram as the transport sees them, and the
/// pseudo-header sum its checksum starts from (RFC 9293 §3.1, RFC 768).
/// IPv4 only for now; IPv6 adds its own (RFC 8200 §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPair {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
}

impl IpPair {
    /// The unfolded pseudo-header sum for `len` transport bytes.
    #[inline(always)]
    pub fn pseudo_sum(&self, proto: IpProtocol, len: usize) -> u64 {
        checksum::pseudo_header(self.src, self.dst, proto, len as u32)
    }
}

/// A datagram's addresses in either version, for the transports; the
/// IPv6 pseudo-header is RFC 8200 §8.1's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addrs {
    V4(IpPair),
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl Addrs {
    #[inline(always)]
    pub fn src(&self) -> IpAddr {
        match self {
            Addrs::V4(p) => IpAddr::V4(p.src),
            Addrs::V6 { src, .. } => IpAddr::V6(*src),
        }
    }

    #[inline(always)]
    pub fn dst(&self) -> IpAddr {
        match self {
            Addrs::V4(p) => IpAddr::V4(p.dst),
            Addrs::V6 { dst, .. } => IpAddr::V6(*dst),
        }
    }

    /// The unfolded pseudo-header sum for `len` transport bytes.
    #[inline(always)]
    pub fn pseudo_sum(&self, proto: IpProtocol, len: usize) -> u64 {
        match self {
            Addrs::V4(p) => p.pseudo_sum(proto, len),
            Addrs::V6 { src, dst } => checksum::pseudo_header_v6(*src, *dst, proto, len as u32),
        }
    }

    /// The pair from `src` to `dst`, when both are of one version.
    pub fn new(src: IpAddr, dst: IpAddr) -> Option<Addrs> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Some(Addrs::V4(IpPair { src, dst })),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(Addrs::V6 { src, dst }),
            _ => None,
        }
    }
}

/// What [`IpOut::emit_with`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emitted {
    /// A frame of this length is in the caller's buffer.
    Sent(usize),
    /// Written elsewhere (loopback queue, ARP queue) or dropped and counted.
    Queued,
    /// No route to the destination (counted); nothing was written.
    NoRoute,
}

/// What [`IpOut::next_queued`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// A frame of this length is in the caller's buffer.
    Frame(usize),
    /// A datagram to ourselves went onto the loopback queue.
    Looped,
    /// Nothing queued: the transports' turn.
    Empty,
}

/// Gives back what a queued datagram's socket was charged (and, with an
/// error, reports it) once the datagram has left or was dropped.
pub(crate) type Release<'r> = &'r mut dyn FnMut(Option<(SocketHandle, usize)>, Option<Errno>);

/// The output half of the IP layer.
pub struct IpOut {
    pub(crate) arp: ArpCache<OutPacket>,
    pub(crate) egress: VecDeque<OutPacket>,
    /// Ready link-layer frames (ARP), sent before IP traffic.
    pub(crate) link_out: VecDeque<Vec<u8>>,
    pub(crate) frag: Option<Fragmenting>,
    /// Datagrams addressed to ourselves, fed back to input by the stack.
    pub(crate) loopback: VecDeque<Vec<u8>>,
    ip_ident: u16,
    /// Path MTUs lowered by Fragmentation Needed (RFC 1191).
    pub(crate) pmtu: crate::ipv4::pmtu::PmtuCache,
    /// The ARP, reassembly or path MTU deadlines changed.
    pub(crate) timers_dirty: bool,
}

/// Whether `ip` is the limited or our subnet's directed broadcast.
#[inline]
pub(crate) fn is_broadcast(cfg: &StackConfig, ip: Ipv4Addr) -> bool {
    ip.is_broadcast() || cfg.addr.broadcast() == Some(ip)
}

/// The next hop for `dst`: itself when on-link (or broadcast), else the
/// gateway; ENETUNREACH without one.
#[inline]
pub(crate) fn route(cfg: &StackConfig, dst: Ipv4Addr) -> Result<Ipv4Addr> {
    if dst.is_unspecified() {
        return Err(Errno::EINVAL);
    }
    if dst.is_broadcast() || cfg.addr.contains_addr(&dst) || dst == cfg.addr.address() {
        return Ok(dst);
    }
    cfg.gateway.ok_or(Errno::ENETUNREACH)
}

pub(crate) fn write_eth_header(
    buf: &mut [u8],
    src: EthernetAddress,
    dst: EthernetAddress,
    ethertype: EtherType,
) {
    let repr = EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype,
    };
    repr.emit(&mut EthernetFrame::new_unchecked(
        &mut buf[..ustack_wire::ethernet::HEADER_LEN],
    ));
}

impl IpOut {
    pub(crate) fn new(cfg: &StackConfig, ip_ident: u16) -> IpOut {
        IpOut {
            arp: ArpCache::new(cfg.arp.clone()),
            egress: VecDeque::new(),
            link_out: VecDeque::new(),
            frag: None,
            loopback: VecDeque::new(),
            ip_ident,
            pmtu: Default::default(),
            timers_dirty: false,
        }
    }

    pub(crate) fn egress_full(&self, cfg: &StackConfig) -> bool {
        self.egress.len() >= cfg.max_egress_packets
    }

    /// Whether anything waits to go out at once.
    pub(crate) fn pending(&self) -> bool {
        !self.link_out.is_empty()
            || !self.egress.is_empty()
            || self.frag.is_some()
            || !self.loopback.is_empty()
    }

    /// The IP identification for the next datagram sent.
    #[inline]
    pub(crate) fn next_ip_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// A header for a datagram we originate, from `src` (our address, or
    /// a forwarded flow's original destination).
    pub(crate) fn ip_repr(
        &mut self,
        cfg: &StackConfig,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        payload_len: usize,
        df: bool,
    ) -> Ipv4Repr {
        let ident = self.next_ip_ident();
        Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol,
            payload_len,
            ttl: cfg.ttl,
            tos: 0,
            ident,
            dont_frag: df,
            more_frags: false,
            frag_offset: 0,
        }
    }

    /// Queues a datagram for `egress` (UDP, ICMP).
    pub(crate) fn queue(
        &mut self,
        cfg: &StackConfig,
        next_hop: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        payload: Vec<u8>,
        owner: Option<(SocketHandle, usize)>,
    ) {
        let src = cfg.addr.address();
        self.queue_from(cfg, src, next_hop, dst, protocol, payload, owner);
    }

    /// [`queue`](Self::queue) from source address `src` (a forwarded
    /// flow answers from the address it was sent to).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn queue_from(
        &mut self,
        cfg: &StackConfig,
        src: Ipv4Addr,
        next_hop: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        payload: Vec<u8>,
        owner: Option<(SocketHandle, usize)>,
    ) {
        let repr = self.ip_repr(cfg, src, dst, protocol, payload.len(), false);
        self.egress.push_back(OutPacket {
            next_hop,
            repr,
            payload,
            owner,
        });
    }

    pub(crate) fn queue_arp(
        &mut self,
        cfg: &StackConfig,
        counters: &mut Counters,
        operation: ArpOperation,
        target_mac: EthernetAddress,
        target_ip: Ipv4Addr,
        dst: EthernetAddress,
    ) {
        let arp = ArpRepr {
            operation,
            source_hardware_addr: cfg.mac,
            source_protocol_addr: cfg.addr.address(),
            target_hardware_addr: target_mac,
            target_protocol_addr: target_ip,
        };
        let hl = ustack_wire::ethernet::HEADER_LEN;
        let mut frame = vec![0u8; hl + arp.buffer_len()];
        write_eth_header(&mut frame, cfg.mac, dst, EtherType::Arp);
        arp.emit(&mut ArpPacket::new_unchecked(&mut frame[hl..]));
        match operation {
            ArpOperation::Request => counters.arp.tx_requests += 1,
            _ => counters.arp.tx_replies += 1,
        }
        self.link_out.push_back(frame);
    }

    pub(crate) fn queue_arp_request(
        &mut self,
        cfg: &StackConfig,
        counters: &mut Counters,
        ip: Ipv4Addr,
    ) {
        self.queue_arp(
            cfg,
            counters,
            ArpOperation::Request,
            EthernetAddress([0; 6]),
            ip,
            EthernetAddress::BROADCAST,
        );
    }

    /// Parks a datagram on the ARP queue of its unresolved next hop.
    pub(crate) fn arp_park(
        &mut self,
        cfg: &StackConfig,
        counters: &mut Counters,
        now: Instant,
        pkt: OutPacket,
    ) -> Option<OutPacket> {
        let hop = pkt.next_hop;
        let (action, dropped) = self.arp.enqueue(now, hop, pkt);
        self.timers_dirty = true;
        if let Some(ArpAction::Request(ip)) = action {
            self.queue_arp_request(cfg, counters, ip);
        }
        if dropped.is_some() {
            counters.arp.pending_dropped += 1;
            counters.ip.out_discards += 1;
        }
        dropped
    }

    /// The link destination for `next_hop`: `Some(None)` on a medium
    /// without link headers, `Some(Some(mac))` when known (or broadcast),
    /// `None` while ARP has not resolved it.
    #[inline(always)]
    fn link_dst(
        &self,
        cfg: &StackConfig,
        now: Instant,
        next_hop: Ipv4Addr,
    ) -> Option<Option<EthernetAddress>> {
        match cfg.medium {
            Medium::Ip => Some(None),
            Medium::Ethernet if is_broadcast(cfg, next_hop) => {
                Some(Some(EthernetAddress::BROADCAST))
            }
            Medium::Ethernet => self.arp.lookup(now, next_hop).map(Some),
        }
    }

    /// The next frame from the queues (fragments of the datagram being
    /// cut, link-layer frames, then `egress`) into `buf`. A datagram to
    /// ourselves goes onto the loopback queue; one to an unresolved next
    /// hop onto its ARP queue; one over the MTU is fragmented (RFC 791
    /// §3.2) unless DF is set (EMSGSIZE to its socket).
    pub(crate) fn next_queued(
        &mut self,
        cfg: &StackConfig,
        counters: &mut Counters,
        now: Instant,
        buf: &mut [u8],
        release: Release<'_>,
    ) -> Queued {
        let hl = cfg.link_header_len();
        loop {
            if let Some((f, mac, owner)) = &mut self.frag {
                if !f.is_done() {
                    let need = hl + f.next_len();
                    if buf.len() < need {
                        counters.link.tx_dropped_too_big += 1;
                        let owner = *owner;
                        self.frag = None;
                        release(owner, None);
                        continue;
                    }
                    if let Some(mac) = *mac {
                        write_eth_header(buf, cfg.mac, mac, EtherType::Ipv4);
                    }
                    let n = f.emit_next(&mut buf[hl..], &cfg.checksums).unwrap_or(0);
                    counters.ip.frag_creates += 1;
                    counters.link.tx_frames += 1;
                    return Queued::Frame(hl + n);
                }
                let owner = *owner;
                self.frag = None;
                release(owner, None);
            }
            if let Some(frame) = self.link_out.pop_front() {
                if buf.len() < frame.len() {
                    counters.link.tx_dropped_too_big += 1;
                    continue;
                }
                buf[..frame.len()].copy_from_slice(&frame);
                counters.link.tx_frames += 1;
                return Queued::Frame(frame.len());
            }
            let Some(pkt) = self.egress.pop_front() else {
                return Queued::Empty;
            };
            if pkt.repr.dst_addr == cfg.addr.address() {
                let mut bytes = vec![0u8; ustack_wire::ipv4::HEADER_LEN + pkt.payload.len()];
                let mut ip = Ipv4Packet::new_unchecked(&mut bytes[..]);
                pkt.repr.emit(&mut ip, &ChecksumCaps::default());
                ip.payload_mut()[..pkt.payload.len()].copy_from_slice(&pkt.payload);
                release(pkt.owner, None);
                self.loopback.push_back(bytes);
                return Queued::Looped;
            }
            let Some(mac) = self.link_dst(cfg, now, pkt.next_hop) else {
                if let Some(d) = self.arp_park(cfg, counters, now, pkt) {
                    release(d.owner, None);
                }
                continue;
            };
            counters.ip.out_requests += 1;
            let total = ustack_wire::ipv4::HEADER_LEN + pkt.payload.len();
            if total > cfg.mtu {
                if pkt.repr.dont_frag {
                    counters.ip.frag_fails += 1;
                    counters.ip.out_discards += 1;
                    release(pkt.owner, Some(Errno::EMSGSIZE));
                    continue;
                }
                counters.ip.frag_oks += 1;
                self.frag = Some((
                    Fragmenter::new(pkt.repr, pkt.payload, cfg.mtu),
                    mac,
                    pkt.owner,
                ));
                continue;
            }
            if buf.len() < hl + total {
                counters.link.tx_dropped_too_big += 1;
                release(pkt.owner, None);
                continue;
            }
            if let Some(mac) = mac {
                write_eth_header(buf, cfg.mac, mac, EtherType::Ipv4);
            }
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[hl..hl + total]);
            pkt.repr.emit(&mut ip, &cfg.checksums);
            ip.payload_mut()[..pkt.payload.len()].copy_from_slice(&pkt.payload);
            release(pkt.owner, None);
            counters.link.tx_frames += 1;
            return Queued::Frame(hl + total);
        }
    }

    /// Writes one datagram of `len` transport bytes from `src` to `dst`
    /// straight into `buf` (link header, IPv4 header, then `fill` with the
    /// transport bytes and the pseudo-header sum). To ourselves it goes on
    /// the loopback queue; to a next hop not yet resolved, on its ARP
    /// queue (a copy: a transport that retransmits covers a failure).
    /// `df`: segments that rely on path MTU (RFC 9293 §3.7.1) are never
    /// fragmented here; the caller keeps them within the MTU.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn emit_with(
        &mut self,
        cfg: &StackConfig,
        counters: &mut Counters,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        len: usize,
        buf: &mut [u8],
        fill: impl FnOnce(&mut [u8], u64),
    ) -> Emitted {
        let Ok(next_hop) = route(cfg, dst) else {
            counters.ip.out_no_routes += 1;
            return Emitted::NoRoute;
        };
        let ip = self.ip_repr(cfg, src, dst, protocol, len, true);
        let pair = IpPair {
            src: ip.src_addr,
            dst,
        };
        let iplen = ustack_wire::ipv4::HEADER_LEN + len;
        if dst == cfg.addr.address() {
            let mut bytes = vec![0u8; iplen];
            ip.emit(
                &mut Ipv4Packet::new_unchecked(&mut bytes[..]),
                &ChecksumCaps::default(),
            );
            fill(&mut bytes[20..], pair.pseudo_sum(protocol, len));
            self.loopback.push_back(bytes);
            return Emitted::Queued;
        }
        let Some(mac) = self.link_dst(cfg, now, next_hop) else {
            let mut payload = vec![0u8; len];
            fill(&mut payload, pair.pseudo_sum(protocol, len));
            let pkt = OutPacket {
                next_hop,
                repr: ip,
                payload,
                owner: None,
            };
            self.arp_park(cfg, counters, now, pkt);
            return Emitted::Queued;
        };
        let hl = cfg.link_header_len();
        if buf.len() < hl + iplen {
            counters.link.tx_dropped_too_big += 1;
            return Emitted::Queued;
        }
        if let Some(mac) = mac {
            write_eth_header(buf, cfg.mac, mac, EtherType::Ipv4);
        }
        ip.emit(
            &mut Ipv4Packet::new_unchecked(&mut buf[hl..hl + iplen]),
            &cfg.checksums,
        );
        fill(
            &mut buf[hl + 20..hl + iplen],
            pair.pseudo_sum(protocol, len),
        );
        counters.ip.out_requests += 1;
        counters.link.tx_frames += 1;
        Emitted::Sent(hl + iplen)
    }

    /// Whether a datagram to `dst` would leave at once through the
    /// caller's buffer (not to ourselves, next hop resolved): where a TCP
    /// super-segment may go (it must not wait on an ARP queue, whose
    /// datagrams are cut to the MTU, nor loop back with a partial checksum).
    pub(crate) fn direct(&self, cfg: &StackConfig, now: Instant, dst: Ipv4Addr) -> bool {
        dst != cfg.addr.address()
            && route(cfg, dst)
                .ok()
                .and_then(|hop| self.link_dst(cfg, now, hop))
                .is_some()
    }

    /// For a frame whose link and IP headers were copied from the last
    /// one `emit_with` wrote to the same destination (a burst): the total
    /// length of this datagram (`frame` is exactly the frame: a segment
    /// shorter than the template's must not keep its length, RFC 791
    /// §3.1), a fresh IP identification and header checksum. Returns the
    /// IP pair (from `template`, the copied headers, not read back from
    /// `frame`) and counts the frame.
    #[inline(always)]
    pub(crate) fn repeat_header(
        &mut self,
        cfg: &StackConfig,
        counters: &mut Counters,
        template: &[u8],
        frame: &mut [u8],
    ) -> IpPair {
        let lhl = cfg.link_header_len();
        let ident = self.next_ip_ident();
        let total = u16::try_from(frame.len() - lhl).unwrap_or(u16::MAX);
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[lhl..]);
        ip.set_total_len(total);
        ip.set_ident(ident);
        if cfg.checksums.tx {
            ip.fill_checksum();
        }
        let addr = |at: usize| {
            let a = lhl + at;
            Ipv4Addr::new(
                template[a],
                template[a + 1],
                template[a + 2],
                template[a + 3],
            )
        };
        counters.ip.out_requests += 1;
        counters.link.tx_frames += 1;
        IpPair {
            src: addr(12),
            dst: addr(16),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ustack_wire::ipv4::Ipv4Cidr;

    /// A frame repeated from a longer one's headers (a burst's last,
    /// shorter segment) gets its own total length, and a header checksum
    /// over it.
    #[test]
    fn a_repeated_header_gets_the_frames_own_length() {
        let cfg = StackConfig::new(
            Medium::Ethernet,
            Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 1), 24),
        );
        let lhl = cfg.link_header_len();
        let mut out = IpOut::new(&cfg, 7);
        let mut counters = Counters::default();
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IpProtocol::Tcp,
            payload_len: 1480,
            ttl: 64,
            tos: 0,
            ident: 7,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        };
        let mut template = vec![0u8; lhl + 1500];
        repr.emit(
            &mut Ipv4Packet::new_unchecked(&mut template[lhl..]),
            &cfg.checksums,
        );
        for len in [1500, 1000, 20 + 32 + 1] {
            let mut frame = template[..lhl + len].to_vec();
            let pair = out.repeat_header(&cfg, &mut counters, &template, &mut frame);
            assert_eq!((pair.src, pair.dst), (repr.src_addr, repr.dst_addr));
            let ip = Ipv4Packet::new_checked(&frame[lhl..]).expect("a valid datagram");
            assert_eq!(usize::from(ip.total_len()), len);
            assert!(ip.verify_checksum(), "len {len}");
        }
        assert_eq!(counters.link.tx_frames, 3);
    }
}
