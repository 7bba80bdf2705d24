//! A router hop with a smaller MTU, for path MTU discovery tests: an IPv4
//! packet over the hop's MTU with DF set is dropped and answered with ICMP
//! Fragmentation Needed carrying the next-hop MTU (RFC 1191 §4, RFC 1812
//! §4.3.2.3 quote); an IPv6 one with Packet Too Big (RFC 4443 §3.2). A
//! black-hole hop drops without answering (RFC 2923 §2.1). IPv4 packets
//! without DF pass whole (the hop does not fragment).

use ustack_core::wire::{
    ChecksumCaps, DstUnreachable, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv4Repr,
    Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
};
use ustack_core::Medium;

/// The hop: packets over `mtu` bytes of IP do not pass it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmallMtuHop {
    pub mtu: usize,
    /// Drop without the ICMP answer (a path that black-holes ICMP).
    pub blackhole: bool,
}

/// What the hop does with a frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HopVerdict {
    Pass,
    /// Dropped; the frame to send back to its sender, if any.
    Drop(Option<Vec<u8>>),
}

/// The most of the dropped packet an ICMPv4 error quotes (576 in all).
const QUOTE4: usize = 576 - 20 - 8;
/// The most of the dropped packet an ICMPv6 error quotes (1280 in all).
const QUOTE6: usize = 1280 - 40 - 8;

impl SmallMtuHop {
    pub(crate) fn check(&self, medium: Medium, frame: &[u8]) -> HopVerdict {
        let (lhl, ip) = match medium {
            Medium::Ip => (0, frame),
            Medium::Ethernet => match frame.get(12..14) {
                Some([0x08, 0x00]) | Some([0x86, 0xdd]) => (14, &frame[14..]),
                _ => return HopVerdict::Pass,
            },
        };
        if ip.len() <= self.mtu {
            return HopVerdict::Pass;
        }
        let answer = match ip.first().map(|b| b >> 4) {
            Some(4) => match Ipv4Packet::new_checked(ip) {
                Ok(p) if p.dont_frag() => self.frag_needed(&p, ip),
                _ => return HopVerdict::Pass,
            },
            Some(6) => match Ipv6Packet::new_checked(ip) {
                Ok(p) => self.too_big(&p, ip),
                Err(_) => return HopVerdict::Pass,
            },
            _ => return HopVerdict::Pass,
        };
        if self.blackhole {
            return HopVerdict::Drop(None);
        }
        let mut out = vec![0u8; lhl + answer.len()];
        if lhl > 0 {
            let eth = EthernetFrame::new_unchecked(frame);
            let repr = EthernetRepr {
                src_addr: eth.dst_addr(),
                dst_addr: eth.src_addr(),
                ethertype: if ip[0] >> 4 == 4 {
                    EtherType::Ipv4
                } else {
                    EtherType::Ipv6
                },
            };
            repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..lhl]));
        }
        out[lhl..].copy_from_slice(&answer);
        HopVerdict::Drop(Some(out))
    }

    /// ICMP type 3 code 4 from the packet's destination back to its source.
    fn frag_needed(&self, p: &Ipv4Packet<&[u8]>, ip: &[u8]) -> Vec<u8> {
        let icmp = Icmpv4Repr::DstUnreachable {
            reason: DstUnreachable::FragRequired,
            next_hop_mtu: u16::try_from(self.mtu).unwrap_or(u16::MAX),
            invoking: &ip[..ip.len().min(QUOTE4)],
        };
        let caps = ChecksumCaps::default();
        let repr = Ipv4Repr {
            src_addr: p.dst_addr(),
            dst_addr: p.src_addr(),
            protocol: IpProtocol::Icmp,
            payload_len: icmp.buffer_len(),
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        };
        let mut out = vec![0u8; 20 + icmp.buffer_len()];
        let mut pkt = Ipv4Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut pkt, &caps);
        icmp.emit(&mut Icmpv4Packet::new_unchecked(pkt.payload_mut()), &caps);
        out
    }

    /// ICMPv6 Packet Too Big from the packet's destination to its source.
    fn too_big(&self, p: &Ipv6Packet<&[u8]>, ip: &[u8]) -> Vec<u8> {
        let icmp = Icmpv6Repr::PacketTooBig {
            mtu: u32::try_from(self.mtu).unwrap_or(u32::MAX),
            invoking: &ip[..ip.len().min(QUOTE6)],
        };
        let repr = Ipv6Repr {
            src_addr: p.dst_addr(),
            dst_addr: p.src_addr(),
            next_header: IpProtocol::Icmpv6,
            payload_len: icmp.buffer_len(),
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        };
        let mut out = vec![0u8; 40 + icmp.buffer_len()];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..40]));
        icmp.emit(
            repr.src_addr,
            repr.dst_addr,
            &mut Icmpv6Packet::new_unchecked(&mut out[40..]),
            &ChecksumCaps::default(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ustack_core::wire::{icmpv4, Ipv4Addr};

    fn packet(len: usize, df: bool) -> Vec<u8> {
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IpProtocol::Tcp,
            payload_len: len - 20,
            ttl: 64,
            tos: 0,
            ident: 7,
            dont_frag: df,
            more_frags: false,
            frag_offset: 0,
        };
        let mut out = vec![0u8; len];
        repr.emit(
            &mut Ipv4Packet::new_unchecked(&mut out[..]),
            &ChecksumCaps::default(),
        );
        out
    }

    #[test]
    fn answers_oversized_df_packets_and_passes_the_rest() {
        let hop = SmallMtuHop {
            mtu: 1000,
            blackhole: false,
        };
        assert_eq!(hop.check(Medium::Ip, &packet(1000, true)), HopVerdict::Pass);
        assert_eq!(
            hop.check(Medium::Ip, &packet(1001, false)),
            HopVerdict::Pass
        );
        let HopVerdict::Drop(Some(ans)) = hop.check(Medium::Ip, &packet(1001, true)) else {
            panic!("no answer");
        };
        let ip = Ipv4Packet::new_checked(&ans[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(10, 0, 0, 1));
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        let repr = Icmpv4Repr::parse(&icmp, &ChecksumCaps::default()).unwrap();
        let Icmpv4Repr::DstUnreachable {
            reason,
            next_hop_mtu,
            invoking,
        } = repr
        else {
            panic!("{repr:?}");
        };
        assert_eq!((reason, next_hop_mtu), (DstUnreachable::FragRequired, 1000));
        let q = icmpv4::parse_invoking(invoking).unwrap();
        assert_eq!(q.dst_addr, Ipv4Addr::new(10, 0, 0, 2));
        // IPv6: Packet Too Big to the source, whatever the DF-less header.
        let mut v6 = vec![0u8; 1100];
        Ipv6Repr {
            src_addr: "fd00::1".parse().unwrap(),
            dst_addr: "fd00::2".parse().unwrap(),
            next_header: IpProtocol::Tcp,
            payload_len: 1060,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(&mut v6[..]));
        let HopVerdict::Drop(Some(ans)) = hop.check(Medium::Ip, &v6) else {
            panic!("no v6 answer");
        };
        let ip = Ipv6Packet::new_checked(&ans[..]).unwrap();
        assert_eq!(
            ip.dst_addr(),
            "fd00::1".parse::<std::net::Ipv6Addr>().unwrap()
        );
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        let repr = Icmpv6Repr::parse(
            &icmp,
            ip.src_addr(),
            ip.dst_addr(),
            &ChecksumCaps::default(),
        )
        .unwrap();
        assert!(
            matches!(repr, Icmpv6Repr::PacketTooBig { mtu: 1000, .. }),
            "{repr:?}"
        );
        let black = SmallMtuHop {
            mtu: 1000,
            blackhole: true,
        };
        assert_eq!(
            black.check(Medium::Ip, &packet(1001, true)),
            HopVerdict::Drop(None)
        );
    }
}
