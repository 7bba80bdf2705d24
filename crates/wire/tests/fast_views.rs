//! The fixed-layout views header prediction reads through take exactly
//! the datagrams and segments they describe and refuse the rest.

use ustack_wire::{
    ChecksumCaps, IpProtocol, Ipv4Addr, Ipv4Fast, Ipv4Packet, Ipv4Repr, SeqNumber, TcpFast,
    TcpFlags, TcpPacket, TcpRepr, TcpTimestamp,
};

const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn segment(flags: TcpFlags, ts: Option<TcpTimestamp>, payload: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 80,
        dst_port: 40000,
        flags,
        seq_number: SeqNumber(1000),
        ack_number: SeqNumber(2000),
        window_len: 512,
        urgent_pointer: 0,
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        sack_ranges: [None; 4],
        timestamp: ts,
        payload,
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut b[..]),
        SRC,
        DST,
        &ChecksumCaps::default(),
    );
    b
}

fn datagram(payload: &[u8], more_frags: bool) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: SRC,
        dst_addr: DST,
        protocol: IpProtocol::Tcp,
        payload_len: payload.len(),
        ttl: 64,
        tos: 0,
        ident: 7,
        dont_frag: true,
        more_frags,
        frag_offset: 0,
    };
    let mut b = vec![0u8; 20 + payload.len()];
    repr.emit(
        &mut Ipv4Packet::new_unchecked(&mut b[..]),
        &ChecksumCaps::default(),
    );
    b[20..].copy_from_slice(payload);
    b
}

#[test]
fn ipv4_fast_takes_a_plain_datagram_and_cuts_padding() {
    let seg = segment(TcpFlags::ACK, None, b"data");
    let mut d = datagram(&seg, false);
    d.extend_from_slice(&[0; 6]); // Ethernet padding
    let v = Ipv4Fast::new(&d).expect("a plain datagram");
    assert_eq!(v.protocol(), IpProtocol::Tcp);
    assert_eq!((v.src_addr(), v.dst_addr()), (SRC, DST));
    assert!(v.dst_is(DST) && !v.dst_is(SRC));
    assert!(v.checksum_ok());
    assert_eq!(v.payload(), &seg[..]);
    d[8] ^= 1; // TTL: the header checksum no longer verifies
    assert!(!Ipv4Fast::new(&d).unwrap().checksum_ok());
}

#[test]
fn ipv4_fast_refuses_fragments_options_and_short_buffers() {
    let seg = segment(TcpFlags::ACK, None, b"data");
    assert!(Ipv4Fast::new(&datagram(&seg, true)).is_none(), "MF set");
    let mut d = datagram(&seg, false);
    d[0] = 0x46; // IHL 6: options
    assert!(Ipv4Fast::new(&d).is_none());
    let d = datagram(&seg, false);
    assert!(
        Ipv4Fast::new(&d[..d.len() - 1]).is_none(),
        "total length past the buffer"
    );
    assert!(Ipv4Fast::new(&d[..19]).is_none());
}

#[test]
fn tcp_fast_takes_the_predicted_layouts_only() {
    let ts = TcpTimestamp {
        tsval: 11,
        tsecr: 22,
    };
    for (flags, t) in [
        (TcpFlags::ACK, None),
        (TcpFlags::ACK | TcpFlags::PSH, Some(ts)),
    ] {
        let s = segment(flags, t, b"hello");
        let f = TcpFast::new(&s).expect("predicted");
        assert_eq!((f.src_port, f.dst_port), (80, 40000));
        assert_eq!(
            (f.seq_number, f.ack_number),
            (SeqNumber(1000), SeqNumber(2000))
        );
        assert_eq!(f.window_len, 512);
        assert_eq!(f.timestamp, t);
        assert_eq!(f.payload, b"hello");
    }
    assert!(
        TcpFast::new(&segment(TcpFlags::ACK, None, b"")).is_none(),
        "no data"
    );
    assert!(TcpFast::new(&segment(TcpFlags::ACK | TcpFlags::FIN, None, b"x")).is_none());
    assert!(TcpFast::new(&segment(TcpFlags::SYN | TcpFlags::ACK, None, b"x")).is_none());
    let mut s = segment(TcpFlags::ACK, Some(ts), b"x");
    s[20] = 8; // the timestamp option first, not NOP NOP
    assert!(TcpFast::new(&s).is_none());
}
