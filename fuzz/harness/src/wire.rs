//! `wire_parse`: the input goes to every `new_checked` + `Repr::parse` of the
//! wire crate, and, layer by layer, to the parser of what it carries
//! (Ethernet -> ARP / IPv4 -> ICMP / UDP / TCP). Whatever parses is emitted
//! into a fresh buffer of `buffer_len()` and parsed again: the two Reprs must
//! be equal. Parsing with checksums verified must agree with parsing without.

use ustack_wire::{
    icmpv4, ArpPacket, ArpRepr, ChecksumCaps, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr, TcpOption, TcpPacket, TcpRepr,
    UdpPacket, UdpRepr,
};

const SW: ChecksumCaps = ChecksumCaps::SOFTWARE;
const OFF: ChecksumCaps = ChecksumCaps::OFFLOAD;

/// Pseudo-header addresses for transport bytes that come without an IP header.
const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub fn check(data: &[u8]) {
    ethernet(data);
    arp(data);
    ipv4(data);
    icmp(data);
    udp(data, SRC, DST);
    tcp(data, SRC, DST);
    tcp_options(data);
    invoking(data);
    virtio(data);
    ipv6(data);
    icmpv6(data);
}

/// A TUN's virtio-net header and the frame after it (the device's receive
/// path): parse, check, complete the checksum, never a panic; a header
/// that passed `check` has its checksum field inside the frame.
fn virtio(data: &[u8]) {
    use ustack_wire::virtio::{complete_checksum, GsoType, VirtioNetHdr, HDR_LEN, HDR_LEN_MRG};
    let Ok(h) = VirtioNetHdr::parse(data) else {
        return;
    };
    let mut again = [0u8; HDR_LEN_MRG];
    h.emit(&mut again);
    assert_eq!(VirtioNetHdr::parse(&again), Ok(h), "virtio round trip");
    let mut frame = data[HDR_LEN..].to_vec();
    match h.check(frame.len()) {
        Ok(gso) => {
            if gso != GsoType::None {
                assert!(h.gso_size > 0 && usize::from(h.hdr_len) < frame.len());
            }
            if h.needs_csum() {
                complete_checksum(&mut frame, h.csum_start.into(), h.csum_offset.into())
                    .expect("check passed: the checksum field is inside the frame");
            }
        }
        Err(_) => {
            let _ = complete_checksum(&mut frame, h.csum_start.into(), h.csum_offset.into());
        }
    }
}

const SRC6: ustack_wire::Ipv6Addr = ustack_wire::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const DST6: ustack_wire::Ipv6Addr = ustack_wire::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

/// IPv6 header round trip and the extension-header walk (RFC 8200 §4).
fn ipv6(data: &[u8]) {
    use ustack_wire::{ipv6, Ipv6Packet, Ipv6Repr};
    for nh in [0u8, 43, 44, 60] {
        if let Ok(w) = ipv6::walk_ext_headers(nh, data, false) {
            assert!(w.offset <= data.len(), "walk past the payload");
        }
    }
    let Ok(packet) = Ipv6Packet::new_checked(data) else {
        return;
    };
    let repr = Ipv6Repr::parse(&packet).expect("new_checked passed but parse failed");
    let mut buf = vec![0u8; repr.buffer_len() + repr.payload_len];
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
    let again = Ipv6Repr::parse(&Ipv6Packet::new_checked(&buf[..]).unwrap()).unwrap();
    assert_eq!(repr, again, "IPv6 round trip");
    let _ = ipv6::walk_ext_headers(
        packet.next_header(),
        packet.payload(),
        packet.dst_addr().is_multicast(),
    );
    icmpv6(packet.payload());
}

/// ICMPv6 (and NDP) parse, then emit/parse round trip.
fn icmpv6(data: &[u8]) {
    use ustack_wire::{icmpv6, Icmpv6Packet, Icmpv6Repr};
    let _ = icmpv6::parse_invoking(data);
    let Ok(packet) = Icmpv6Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = Icmpv6Repr::parse(&packet, SRC6, DST6, &OFF) else {
        return;
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(
        SRC6,
        DST6,
        &mut Icmpv6Packet::new_unchecked(&mut buf[..]),
        &SW,
    );
    let p = Icmpv6Packet::new_checked(&buf[..]).expect("emitted ICMPv6 fails new_checked");
    let again = Icmpv6Repr::parse(&p, SRC6, DST6, &SW).expect("emitted ICMPv6 fails parse");
    assert_eq!(repr, again, "ICMPv6 round trip");
}

fn ethernet(data: &[u8]) {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    let repr = EthernetRepr::parse(&frame).expect("new_checked passed but parse failed");
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    let again = EthernetRepr::parse(&EthernetFrame::new_checked(&buf[..]).unwrap()).unwrap();
    assert_eq!(repr, again, "Ethernet round trip");
    match repr.ethertype {
        EtherType::Arp => arp(frame.payload()),
        EtherType::Ipv4 => ipv4(frame.payload()),
        EtherType::Ipv6 => ipv6(frame.payload()),
        _ => {}
    }
}

fn arp(data: &[u8]) {
    let Ok(packet) = ArpPacket::new_checked(data) else {
        return;
    };
    let Ok(repr) = ArpRepr::parse(&packet) else {
        return;
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    let p = ArpPacket::new_checked(&buf[..]).expect("emitted ARP fails new_checked");
    let again = ArpRepr::parse(&p).expect("emitted ARP fails parse");
    assert_eq!(repr, again, "ARP round trip");
}

fn ipv4(data: &[u8]) {
    let Ok(packet) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let sw = Ipv4Repr::parse(&packet, &SW);
    let Ok(repr) = Ipv4Repr::parse(&packet, &OFF) else {
        assert!(
            sw.is_err(),
            "IPv4 parses with checksum checked but not without"
        );
        return;
    };
    if let Ok(sw) = sw {
        assert_eq!(sw, repr, "IPv4 parse differs with checksum checked");
    }
    assert_eq!(packet.payload().len(), repr.payload_len);
    let mut buf = vec![0u8; repr.buffer_len() + repr.payload_len];
    {
        let mut out = Ipv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut out, &SW);
        out.payload_mut().copy_from_slice(packet.payload());
    }
    let p = Ipv4Packet::new_checked(&buf[..]).expect("emitted IPv4 fails new_checked");
    let again = Ipv4Repr::parse(&p, &SW).expect("emitted IPv4 fails parse");
    assert_eq!(repr, again, "IPv4 round trip");
    match repr.protocol {
        IpProtocol::Icmp => icmp(packet.payload()),
        IpProtocol::Udp => udp(packet.payload(), repr.src_addr, repr.dst_addr),
        IpProtocol::Tcp => tcp(packet.payload(), repr.src_addr, repr.dst_addr),
        IpProtocol::Icmpv6 | IpProtocol::Unknown(_) => {}
    }
}

fn icmp(data: &[u8]) {
    let Ok(packet) = Icmpv4Packet::new_checked(data) else {
        return;
    };
    let sw = Icmpv4Repr::parse(&packet, &SW);
    let Ok(repr) = Icmpv4Repr::parse(&packet, &OFF) else {
        assert!(
            sw.is_err(),
            "ICMP parses with checksum checked but not without"
        );
        return;
    };
    if let Ok(sw) = sw {
        assert_eq!(sw, repr, "ICMP parse differs with checksum checked");
    }
    if let Icmpv4Repr::DstUnreachable { invoking: q, .. }
    | Icmpv4Repr::TimeExceeded { invoking: q, .. } = repr
    {
        invoking(q);
    }
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]), &SW);
    let p = Icmpv4Packet::new_checked(&buf[..]).expect("emitted ICMP fails new_checked");
    let again = Icmpv4Repr::parse(&p, &SW).expect("emitted ICMP fails parse");
    assert_eq!(repr, again, "ICMP round trip");
}

fn invoking(data: &[u8]) {
    if let Ok(q) = icmpv4::parse_invoking(data) {
        assert!(q.transport.len() >= 8, "invoking packet quotes < 8 bytes");
        assert!(q.transport.len() + 20 <= data.len());
    }
}

fn udp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok(packet) = UdpPacket::new_checked(data) else {
        return;
    };
    let sw = UdpRepr::parse(&packet, src, dst, &SW);
    let Ok(repr) = UdpRepr::parse(&packet, src, dst, &OFF) else {
        assert!(
            sw.is_err(),
            "UDP parses with checksum checked but not without"
        );
        return;
    };
    if let Ok(sw) = sw {
        assert_eq!(sw, repr, "UDP parse differs with checksum checked");
    }
    let payload = packet.payload();
    let mut buf = vec![0u8; repr.header_len() + payload.len()];
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut buf[..]),
        src,
        dst,
        payload,
        &SW,
    );
    let p = UdpPacket::new_checked(&buf[..]).expect("emitted UDP fails new_checked");
    let again = UdpRepr::parse(&p, src, dst, &SW).expect("emitted UDP fails parse");
    assert_eq!(repr, again, "UDP round trip");
    assert_eq!(p.payload(), payload, "UDP payload round trip");
}

fn tcp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok(packet) = TcpPacket::new_checked(data) else {
        return;
    };
    tcp_options(packet.options());
    let sw = TcpRepr::parse(&packet, src, dst, &SW);
    let Ok(repr) = TcpRepr::parse(&packet, src, dst, &OFF) else {
        assert!(
            sw.is_err(),
            "TCP parses with checksum checked but not without"
        );
        return;
    };
    if let Ok(sw) = sw {
        assert_eq!(sw, repr, "TCP parse differs with checksum checked");
    }
    let hl = repr.header_len();
    assert!(
        hl.is_multiple_of(4) && (20..=60).contains(&hl),
        "TCP header_len {hl}"
    );
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst, &SW);
    let p = TcpPacket::new_checked(&buf[..]).expect("emitted TCP fails new_checked");
    assert_eq!(p.header_len() as usize, hl);
    let again = TcpRepr::parse(&p, src, dst, &SW).expect("emitted TCP fails parse");
    // emit writes only as many SACK blocks as fit beside the other options
    // (documented): the blocks that come back must be a prefix of those sent,
    // cut only when one more block would not have fitted in 60 bytes.
    let sent: Vec<_> = repr.sack_ranges.iter().flatten().copied().collect();
    let got: Vec<_> = again.sack_ranges.iter().flatten().copied().collect();
    assert!(
        got.len() <= sent.len() && got[..] == sent[..got.len()],
        "TCP SACK round trip: sent {sent:?}, got {got:?}"
    );
    if got.len() < sent.len() {
        let more = if got.is_empty() { 12 } else { 8 };
        assert!(
            hl + more > 60,
            "TCP emit dropped SACK blocks that fit: hl {hl}, sent {sent:?}, got {got:?}"
        );
    }
    let normalized = TcpRepr {
        sack_ranges: again.sack_ranges,
        ..repr
    };
    assert_eq!(normalized, again, "TCP round trip");
}

/// Walks an options area with `TcpOption::parse`, round-tripping each option.
fn tcp_options(mut opts: &[u8]) {
    // Every successful parse consumes at least one byte, so this ends.
    while !opts.is_empty() {
        let Ok((rest, opt)) = TcpOption::parse(opts) else {
            return;
        };
        let used = opts.len() - rest.len();
        assert!(used >= 1, "TcpOption::parse consumed nothing");
        assert_eq!(
            opt.buffer_len(),
            used,
            "TcpOption buffer_len vs bytes parsed"
        );
        let mut buf = vec![0u8; opt.buffer_len()];
        let left = opt.emit(&mut buf[..]);
        assert!(left.is_empty());
        let (left, again) = TcpOption::parse(&buf[..]).expect("emitted TCP option fails parse");
        assert!(left.is_empty());
        assert_eq!(opt, again, "TCP option round trip");
        assert_eq!(&buf[..], &opts[..used], "TCP option bytes round trip");
        opts = rest;
    }
}
