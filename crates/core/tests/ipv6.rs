//! The IPv6 layer seen from the link: packets in, packets out, on the
//! virtual clock (RFC 8200, RFC 4443, RFC 4861 §7.2.4).

use std::net::{IpAddr, Ipv6Addr};
use ustack_core::wire::{
    ipv6, ChecksumCaps, EthernetAddress, EthernetFrame, Icmpv6Packet, Icmpv6Repr, IpProtocol,
    Ipv6Packet, Ipv6Repr, NdpRepr,
};
use ustack_core::{Instant, Medium, Stack, StackConfig};

const US: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const PEER: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn stack(medium: Medium) -> Stack {
    let cfg = StackConfig::new(medium, "10.0.0.1/24".parse().unwrap())
        .with_addr6("fd00::1/64".parse().unwrap());
    Stack::new(cfg).unwrap()
}

/// An Ethernet stack with its DAD solicitations (RFC 4862 §5.4.2)
/// already sent: from ::, one per address, no link-layer option.
fn eth_stack() -> Stack {
    let mut s = stack(Medium::Ethernet);
    let now = Instant::ZERO;
    let mut buf = [0u8; 2048];
    let mut targets = Vec::new();
    while let Some(n) = s.transmit(now, &mut buf) {
        let (ip, r) = parse_icmp(&buf[14..n]);
        assert!(ip.src_addr.is_unspecified());
        let Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
            target,
            lladdr: None,
        }) = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(ip.dst_addr, ipv6::solicited_node(&target));
        targets.push(target);
    }
    assert_eq!(targets, s.addresses6());
    s
}

/// An IPv6 packet `src` -> `dst` with `next` and `body` (extension headers
/// and upper layer as given).
fn packet(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop_limit: u8, body: &[u8]) -> Vec<u8> {
    let repr = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: next.into(),
        payload_len: body.len(),
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    };
    let mut b = vec![0u8; 40 + body.len()];
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    b[40..].copy_from_slice(body);
    b
}

fn icmp(src: Ipv6Addr, dst: Ipv6Addr, r: &Icmpv6Repr) -> Vec<u8> {
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(
        src,
        dst,
        &mut Icmpv6Packet::new_unchecked(&mut b[..]),
        &ChecksumCaps::default(),
    );
    b
}

fn echo_request(src: Ipv6Addr, dst: Ipv6Addr, seq_no: u16) -> Vec<u8> {
    let m = icmp(
        src,
        dst,
        &Icmpv6Repr::EchoRequest {
            ident: 7,
            seq_no,
            data: b"ping6",
        },
    );
    packet(src, dst, 58, 64, &m)
}

/// Everything the stack sends now, as IPv6 packets (link header cut).
fn drain(s: &mut Stack, now: Instant) -> Vec<Vec<u8>> {
    let hl = s.config().link_header_len();
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    for _ in 0..100 {
        match s.transmit(now, &mut buf) {
            Some(n) => out.push(buf[hl..n].to_vec()),
            None => break,
        }
    }
    out
}

/// The ICMPv6 message of a packet we sent, checksum verified.
fn parse_icmp(p: &[u8]) -> (Ipv6Repr, Icmpv6Repr<'_>) {
    let ip = Ipv6Packet::new_checked(p).unwrap();
    let repr = Ipv6Repr::parse(&ip).unwrap();
    assert_eq!(repr.next_header, IpProtocol::Icmpv6);
    let m = Icmpv6Packet::new_checked(&p[40..]).unwrap();
    let r = Icmpv6Repr::parse(&m, repr.src_addr, repr.dst_addr, &ChecksumCaps::default());
    (repr, r.expect("our ICMPv6 message parses, checksum good"))
}

#[test]
fn echo_request_answered_from_the_address_asked() {
    let mut s = stack(Medium::Ip);
    let now = Instant::from_secs(1);
    s.receive(now, &echo_request(PEER, US, 3));
    let out = drain(&mut s, now);
    assert_eq!(out.len(), 1);
    let (ip, r) = parse_icmp(&out[0]);
    assert_eq!((ip.src_addr, ip.dst_addr, ip.hop_limit), (US, PEER, 64));
    assert_eq!(
        r,
        Icmpv6Repr::EchoReply {
            ident: 7,
            seq_no: 3,
            data: b"ping6"
        }
    );
    // Labelled (RFC 6437): the same flow, the same non-zero label.
    let label = ip.flow_label;
    assert_ne!(label, 0);
    s.receive(now, &echo_request(PEER, US, 4));
    let again = drain(&mut s, now);
    assert_eq!(parse_icmp(&again[0]).0.flow_label, label);
    // The link-local address answers too, from itself.
    let ll = s.addresses6()[0];
    assert!(ll.is_unicast_link_local());
    let peer_ll: Ipv6Addr = "fe80::2".parse().unwrap();
    s.receive(now, &echo_request(peer_ll, ll, 4));
    let out = drain(&mut s, now);
    assert_eq!(parse_icmp(&out[0]).0.src_addr, ll);
    assert_ne!(parse_icmp(&out[0]).0.flow_label, label, "another flow");
    // Not ours: not answered (a host does not forward).
    s.receive(now, &echo_request(PEER, "fd00::9".parse().unwrap(), 5));
    assert!(drain(&mut s, now).is_empty());
    assert_eq!(s.ipv6_counters().in_addr_errors, 1);
    // A bad checksum: dropped and counted.
    let mut bad = echo_request(PEER, US, 6);
    bad[45] ^= 1;
    s.receive(now, &bad);
    assert!(drain(&mut s, now).is_empty());
    assert_eq!(s.ipv6_counters().icmp_in_csum_errors, 1);
}

#[test]
fn ping_socket_sends_v6_and_gets_the_reply() {
    let mut s = stack(Medium::Ip);
    let now = Instant::from_secs(1);
    let h = s.icmp_open();
    s.icmp_send_echo6(h, PEER, 9, b"abc").unwrap();
    let out = drain(&mut s, now);
    assert_eq!(out.len(), 1);
    let (ip, r) = parse_icmp(&out[0]);
    assert_eq!((ip.src_addr, ip.dst_addr), (US, PEER));
    let Icmpv6Repr::EchoRequest {
        ident,
        seq_no: 9,
        data: b"abc",
    } = r
    else {
        panic!("{r:?}")
    };
    let reply = icmp(
        PEER,
        US,
        &Icmpv6Repr::EchoReply {
            ident,
            seq_no: 9,
            data: b"abc",
        },
    );
    s.receive(now, &packet(PEER, US, 58, 64, &reply));
    let got = s.icmp_recv(h).unwrap();
    assert_eq!(got.from, IpAddr::V6(PEER));
    assert_eq!((got.seq_no, &got.data[..]), (9, &b"abc"[..]));
}

#[test]
fn extension_headers_answered_per_rfc8200_section4() {
    let mut s = stack(Medium::Ip);
    let now = Instant::from_secs(1);
    // Destination options (PadN) then ICMPv6: walked through and answered.
    let m = icmp(
        PEER,
        US,
        &Icmpv6Repr::EchoRequest {
            ident: 1,
            seq_no: 1,
            data: b"x",
        },
    );
    let mut body = vec![58u8, 0, 1, 4, 0, 0, 0, 0];
    body.extend_from_slice(&m);
    s.receive(now, &packet(PEER, US, 60, 64, &body));
    let out = drain(&mut s, now);
    assert!(matches!(
        parse_icmp(&out[0]).1,
        Icmpv6Repr::EchoReply { .. }
    ));

    // An unknown option of action 10: Parameter Problem code 2, pointer at
    // the option's type (40 + 2).
    let mut body = vec![58u8, 0, 0x80, 4, 0, 0, 0, 0];
    body.extend_from_slice(&m);
    let bad = packet(PEER, US, 60, 64, &body);
    s.receive(now, &bad);
    let out = drain(&mut s, now);
    let (ip, r) = parse_icmp(&out[0]);
    assert_eq!(ip.dst_addr, PEER);
    let Icmpv6Repr::ParamProblem {
        code,
        pointer,
        invoking,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!((code, pointer), (2, 42));
    assert_eq!(invoking, &bad[..]);

    // An unknown upper layer (253): code 1 pointing at the Next Header field.
    s.receive(now, &packet(PEER, US, 253, 64, &[0u8; 8]));
    let out = drain(&mut s, now);
    let r = parse_icmp(&out[0]).1;
    assert!(
        matches!(
            r,
            Icmpv6Repr::ParamProblem {
                code: 1,
                pointer: 6,
                ..
            }
        ),
        "{r:?}"
    );

    // Hop-by-Hop after a Destination Options header: code 1, pointer at
    // the Next Header field naming it (the first byte after the fixed header).
    let body = [0u8, 0, 1, 4, 0, 0, 0, 0, 58, 0, 1, 4, 0, 0, 0, 0];
    s.receive(now, &packet(PEER, US, 60, 64, &body));
    let out = drain(&mut s, now);
    let r = parse_icmp(&out[0]).1;
    assert!(
        matches!(
            r,
            Icmpv6Repr::ParamProblem {
                code: 1,
                pointer: 40,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(s.ipv6_counters().icmp_out_param_probs, 3);
}

#[test]
fn no_errors_about_errors_or_to_groups_and_rate_limited() {
    let cfg = StackConfig::new(Medium::Ip, "10.0.0.1/24".parse().unwrap())
        .with_addr6("fd00::1/64".parse().unwrap());
    let mut cfg = cfg;
    cfg.icmp_errors_per_sec = 2;
    let mut s = Stack::new(cfg).unwrap();
    let now = Instant::from_secs(1);
    // UDP to a port nobody listens on: port unreachable (code 4). The
    // checksum is mandatory over IPv6 (RFC 8200 §8.1).
    let mut udp = [0x30u8, 0x39, 0, 9, 0, 8, 0, 0];
    let c = ustack_core::wire::checksum::transport_v6(PEER, US, IpProtocol::Udp, &udp);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    s.receive(now, &packet(PEER, US, 17, 64, &udp));
    let out = drain(&mut s, now);
    let r = parse_icmp(&out[0]).1;
    assert!(
        matches!(r, Icmpv6Repr::DstUnreachable { code: 4, .. }),
        "{r:?}"
    );
    // The same to the all-nodes group: nothing (RFC 4443 §2.4 (e.3)).
    s.receive(now, &packet(PEER, "ff02::1".parse().unwrap(), 17, 64, &udp));
    assert!(drain(&mut s, now).is_empty());
    // Nor a Parameter Problem code 1 about a packet to a group.
    s.receive(
        now,
        &packet(PEER, "ff02::1".parse().unwrap(), 253, 64, &udp),
    );
    assert!(drain(&mut s, now).is_empty());
    assert_eq!(s.ipv6_counters().in_unknown_protos, 1);
    // An unknown ICMPv6 error type with a bad option: never answered.
    let err = icmp(
        PEER,
        US,
        &Icmpv6Repr::DstUnreachable {
            code: 0,
            invoking: &[0u8; 48],
        },
    );
    let mut body = vec![58u8, 0, 0x80, 4, 0, 0, 0, 0];
    body.extend_from_slice(&err);
    s.receive(now, &packet(PEER, US, 60, 64, &body));
    assert!(drain(&mut s, now).is_empty());
    // Rate limit: 2 a second, one already spent.
    for _ in 0..5 {
        s.receive(now, &packet(PEER, US, 17, 64, &udp));
    }
    assert_eq!(drain(&mut s, now).len(), 1);
    assert_eq!(s.ipv6_counters().icmp_out_rate_limited, 4);
    // A second later the bucket has refilled.
    let later = Instant::from_secs(2);
    s.receive(later, &packet(PEER, US, 17, 64, &udp));
    assert_eq!(drain(&mut s, later).len(), 1);
}

#[test]
fn neighbor_solicitation_answered_over_ethernet() {
    let mut s = eth_stack();
    let now = Instant::from_secs(1);
    let peer_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x22]);
    let ns = Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
        target: US,
        lladdr: Some(peer_mac),
    });
    let group = ipv6::solicited_node(&US);
    let ip = packet(PEER, group, 58, 255, &icmp(PEER, group, &ns));
    let mut frame = vec![0u8; 14];
    frame[..6].copy_from_slice(&[0x33, 0x33, 0xff, 0, 0, 1]);
    frame[6..12].copy_from_slice(&peer_mac.0);
    frame[12..14].copy_from_slice(&[0x86, 0xdd]);
    frame.extend_from_slice(&ip);
    s.receive(now, &frame);
    let mut buf = [0u8; 2048];
    let n = s.transmit(now, &mut buf).expect("a neighbor advertisement");
    let eth = EthernetFrame::new_checked(&buf[..n]).unwrap();
    assert_eq!(eth.src_addr(), s.config().mac);
    let (ip, r) = parse_icmp(eth.payload());
    assert_eq!((ip.src_addr, ip.dst_addr, ip.hop_limit), (US, PEER, 255));
    assert_eq!(
        r,
        Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
            flags: 0x60,
            target: US,
            lladdr: Some(s.config().mac),
        })
    );
    // Hop limit not 255: not from the link, ignored (RFC 4861 §7.1.1).
    let ip = packet(PEER, group, 58, 64, &icmp(PEER, group, &ns));
    frame.truncate(14);
    frame.extend_from_slice(&ip);
    s.receive(now, &frame);
    assert_eq!(s.transmit(now, &mut buf), None);
    // For somebody else's address: no answer.
    let other = Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
        target: "fd00::7".parse().unwrap(),
        lladdr: Some(peer_mac),
    });
    let ip = packet(PEER, group, 58, 255, &icmp(PEER, group, &other));
    frame.truncate(14);
    frame.extend_from_slice(&ip);
    s.receive(now, &frame);
    assert_eq!(s.transmit(now, &mut buf), None);
}

#[test]
fn malformed_v6_never_panics_and_is_counted() {
    let mut s = stack(Medium::Ip);
    let now = Instant::from_secs(1);
    let good = echo_request(PEER, US, 1);
    for cut in 1..good.len() {
        s.receive(now, &good[..cut]);
    }
    assert!(drain(&mut s, now).is_empty());
    assert_eq!(s.ipv6_counters().in_truncated, good.len() as u64 - 1);
}

/// An Ethernet frame from `src_mac` around an IPv6 packet.
fn frame(dst_mac: [u8; 6], src_mac: EthernetAddress, ip: &[u8]) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac.0);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(ip);
    f
}

#[test]
fn neighbour_resolved_before_unicast_over_ethernet() {
    use ustack_core::ipv6::neighbor::NeighborState;
    let mut s = eth_stack();
    let mac = s.config().mac;
    let peer_mac = EthernetAddress([0x02, 0, 0, 0, 0, 0x22]);
    let t0 = Instant::from_secs(1);
    let h = s.icmp_open();
    s.icmp_send_echo6(h, PEER, 1, b"q").unwrap();
    // First out: a solicitation to PEER's solicited-node group, with our address.
    let mut buf = [0u8; 2048];
    let n = s.transmit(t0, &mut buf).expect("a neighbor solicitation");
    let eth = EthernetFrame::new_checked(&buf[..n]).unwrap();
    assert_eq!(eth.dst_addr().0, [0x33, 0x33, 0xff, 0, 0, 2]);
    let (ip, r) = parse_icmp(eth.payload());
    assert_eq!(
        (ip.dst_addr, ip.hop_limit),
        (ipv6::solicited_node(&PEER), 255)
    );
    assert_eq!(
        r,
        Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
            target: PEER,
            lladdr: Some(mac)
        })
    );
    assert_eq!(s.transmit(t0, &mut buf), None, "the echo is held");
    assert_eq!(s.neighbor6(&PEER), Some((NeighborState::Incomplete, None)));
    // Unanswered: again after RetransTimer (1 s).
    assert_eq!(s.poll_at(), Some(t0 + ustack_core::Duration::from_secs(1)));
    let t1 = t0 + ustack_core::Duration::from_secs(1);
    assert!(s.transmit(t1, &mut buf).is_some());
    // The solicited advertisement: REACHABLE, and the echo goes to its address.
    let na = Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
        flags: 0x60,
        target: PEER,
        lladdr: Some(peer_mac),
    });
    let ip = packet(PEER, US, 58, 255, &icmp(PEER, US, &na));
    s.receive(t1, &frame(mac.0, peer_mac, &ip));
    assert_eq!(
        s.neighbor6(&PEER),
        Some((NeighborState::Reachable, Some(peer_mac)))
    );
    let n = s.transmit(t1, &mut buf).expect("the held echo request");
    let eth = EthernetFrame::new_checked(&buf[..n]).unwrap();
    assert_eq!(eth.dst_addr(), peer_mac);
    assert!(matches!(
        parse_icmp(eth.payload()).1,
        Icmpv6Repr::EchoRequest { seq_no: 1, .. }
    ));
}

#[test]
fn unanswered_resolution_gives_up_after_three_solicitations() {
    let mut s = eth_stack();
    let h = s.icmp_open();
    let mut buf = [0u8; 2048];
    let mut now = Instant::from_secs(1);
    s.icmp_send_echo6(h, PEER, 1, b"q").unwrap();
    let mut solicits = 0;
    for _ in 0..10 {
        while s.transmit(now, &mut buf).is_some() {
            solicits += 1;
        }
        match s.poll_at() {
            Some(t) => now = t,
            None => break,
        }
    }
    assert_eq!(solicits, 3);
    assert_eq!(s.neighbor6(&PEER), None);
    assert_eq!(s.ipv6_counters().nd_resolution_failures, 1);
    assert_eq!(now, Instant::from_secs(4));
}

#[test]
fn fragmented_echo_reassembled_and_the_reply_fragmented() {
    use ustack_core::ipv6::reassembly::fragment;
    let mut s = stack(Medium::Ip);
    let now = Instant::from_secs(1);
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let m = icmp(
        PEER,
        US,
        &Icmpv6Repr::EchoRequest {
            ident: 5,
            seq_no: 1,
            data: &data,
        },
    );
    let whole = packet(PEER, US, 58, 64, &m);
    let frags = fragment(&whole, 1280, 0x1234);
    assert_eq!(frags.len(), 3);
    // Last first: held until the first and middle come.
    s.receive(now, &frags[2]);
    s.receive(now, &frags[0]);
    assert!(drain(&mut s, now).is_empty());
    s.receive(now, &frags[1]);
    let out = drain(&mut s, now);
    // The 3048-byte reply leaves in fragments of at most the MTU (1500).
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|f| f.len() <= 1500));
    assert_eq!(s.ipv6_counters().reasm_oks, 1);
    // Put back together by a second reassembler (ours, on the other side).
    let mut r = ustack_core::ipv6::reassembly::Reassembler6::new(Default::default());
    let mut full = None;
    for f in &out {
        let fh = ustack_core::wire::FragmentHeader::parse(&f[40..]).unwrap();
        if let ustack_core::ipv6::reassembly::Reasm::Complete(p) = r.add(now, f, fh, 40, 6) {
            full = Some(p);
        }
    }
    let full = full.expect("the reply reassembles");
    let (ip, reply) = parse_icmp(&full);
    assert_eq!((ip.src_addr, ip.dst_addr), (US, PEER));
    assert_eq!(
        reply,
        Icmpv6Repr::EchoReply {
            ident: 5,
            seq_no: 1,
            data: &data
        }
    );
    // A fragment alone times out: Time Exceeded code 1 after 30 s.
    s.receive(now, &frags[0]);
    assert!(drain(&mut s, now).is_empty());
    let later = now + ustack_core::Duration::from_secs(30);
    assert_eq!(s.poll_at(), Some(later));
    let out = drain(&mut s, later);
    assert!(matches!(
        parse_icmp(&out[0]).1,
        Icmpv6Repr::TimeExceeded { code: 1, .. }
    ));
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    /// Extension headers, fragments and ICMPv6 in any mix: the stack
    /// never panics, holds bounded memory, and what it sends parses.
    fn arb_packet() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(vec![0u8, 43, 44, 58, 59, 60, 6, 17, 253]),
            prop::collection::vec(any::<u8>(), 0..200),
            prop::sample::select(vec![US, PEER, "ff02::1".parse().unwrap()]),
            any::<bool>(),
        )
            .prop_map(|(nh, mut body, dst, fix_frag)| {
                if fix_frag && nh == 44 && body.len() >= 8 {
                    body[0] = 58;
                }
                packet(PEER, dst, nh, 255, &body)
            })
    }

    proptest! {
        #[test]
        fn random_v6_never_panics(pkts in prop::collection::vec(arb_packet(), 1..20), eth in any::<bool>()) {
            let mut s = stack(if eth { Medium::Ethernet } else { Medium::Ip });
            let mac = s.config().mac;
            let mut now = Instant::from_secs(1);
            for p in &pkts {
                if eth {
                    s.receive(now, &frame(mac.0, EthernetAddress([2, 0, 0, 0, 0, 9]), p));
                } else {
                    s.receive(now, p);
                }
                now += ustack_core::Duration::from_millis(100);
                let hl = s.config().link_header_len();
                let mut buf = [0u8; 2048];
                for _ in 0..50 {
                    let Some(n) = s.transmit(now, &mut buf) else { break };
                    let ip = Ipv6Packet::new_checked(&buf[hl..n]);
                    prop_assert!(ip.is_ok(), "we sent a bad IPv6 packet");
                }
            }
        }
    }
}

#[test]
fn packet_too_big_lowers_the_path_mtu_until_it_expires() {
    let mut s = stack(Medium::Ip);
    let t0 = Instant::from_secs(1);
    let data = vec![0x5au8; 1400];
    let req = |seq| {
        let m = icmp(
            PEER,
            US,
            &Icmpv6Repr::EchoRequest {
                ident: 1,
                seq_no: seq,
                data: &data,
            },
        );
        packet(PEER, US, 58, 64, &m)
    };
    s.receive(t0, &req(1));
    let out = drain(&mut s, t0);
    assert_eq!(out.len(), 1, "1448 bytes fit the 1500 link MTU");
    let reply = out[0].clone();
    // A router says 1000: lowered to 1280, the IPv6 minimum (RFC 8200 §5).
    let ptb = |mtu, quote: &[u8]| {
        let m = icmp(
            "fd00::fe".parse().unwrap(),
            US,
            &Icmpv6Repr::PacketTooBig {
                mtu,
                invoking: quote,
            },
        );
        packet("fd00::fe".parse().unwrap(), US, 58, 64, &m)
    };
    s.receive(t0, &ptb(1000, &reply[..1232]));
    assert_eq!(s.path_mtu6(t0, &PEER), 1280);
    assert_eq!(s.ipv6_counters().pmtu_lowered, 1);
    s.receive(t0, &req(2));
    let out = drain(&mut s, t0);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|f| f.len() <= 1280));
    // Never raised by a larger one; one about a packet not ours is ignored.
    s.receive(t0, &ptb(1400, &reply[..1232]));
    assert_eq!(s.path_mtu6(t0, &PEER), 1280);
    let mut other = reply.clone();
    // Quoting a packet from fd00::98 (not us) to fd00::99.
    other[8..24].copy_from_slice(&"fd00::98".parse::<Ipv6Addr>().unwrap().octets());
    other[24..40].copy_from_slice(&"fd00::99".parse::<Ipv6Addr>().unwrap().octets());
    s.receive(t0, &ptb(1280, &other[..1232]));
    assert_eq!(s.path_mtu6(t0, &"fd00::99".parse().unwrap()), 1500);
    // Ten minutes on, the link MTU is tried again (RFC 8201 §4).
    let later = t0 + ustack_core::Duration::from_secs(600);
    assert_eq!(s.path_mtu6(later, &PEER), 1500);
    s.receive(later, &req(3));
    assert_eq!(drain(&mut s, later).len(), 1);
}

#[test]
fn an_advertisement_for_our_address_marks_it_duplicate() {
    let mut s = eth_stack();
    let mac = s.config().mac;
    let now = Instant::from_secs(1);
    let other = EthernetAddress([0x02, 0, 0, 0, 0, 0x33]);
    // Answers for US before: an echo gets its reply.
    s.receive(now, &frame(mac.0, other, &echo_request(PEER, US, 1)));
    let mut buf = [0u8; 2048];
    while s.transmit(now, &mut buf).is_some() {}
    let na = Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
        flags: 0x20,
        target: US,
        lladdr: Some(other),
    });
    let all: Ipv6Addr = "ff02::1".parse().unwrap();
    let ip = packet(PEER, all, 58, 255, &icmp(PEER, all, &na));
    s.receive(now, &frame([0x33, 0x33, 0, 0, 0, 1], other, &ip));
    assert_eq!(s.ipv6_counters().dad_duplicates, 1);
    // No longer ours: not answered.
    let before = s.ipv6_counters().in_addr_errors;
    s.receive(now, &frame(mac.0, other, &echo_request(PEER, US, 2)));
    assert_eq!(s.transmit(now, &mut buf), None);
    assert_eq!(s.ipv6_counters().in_addr_errors, before + 1);
}
