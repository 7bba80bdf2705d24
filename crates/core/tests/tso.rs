//! TCP over a device with TSO and GRO (issue 14): a burst leaves as one
//! super-segment (`StackConfig::tso`) that, cut as the kernel cuts it,
//! gives exactly the segments planned; a lost MSS inside one is repaired
//! alone; a coalesced super-packet received is ACKed like the segments
//! it stands for.

mod segscript;

use segscript::*;
use std::net::SocketAddr;
use ustack_core::wire::{checksum, IpProtocol, Ipv4Packet, TcpPacket};
use ustack_core::{SocketHandle, StackConfig};

const PEER_ISS: u32 = 1000;
const MSS: usize = 1460;

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(7) % 251) as u8
}

/// An accepted connection with a peer offering MSS 1460, SACK and
/// window scaling (no timestamps: segments fill the MTU exactly).
fn open(cfg: StackConfig) -> (Script, SocketHandle, u32) {
    let mut s = Script::with(cfg);
    let l = s.stack.tcp_open();
    s.stack
        .tcp_bind(l, SocketAddr::from((US, US_PORT)))
        .unwrap();
    s.stack.tcp_listen(l, 8).unwrap();
    s.inject(seg(SYN).seq(PEER_ISS).mss(MSS as u16).sack_perm().ws(7));
    let sa = s.expect(&seg(SYN | ACK).reply().seq(0).ack(PEER_ISS + 1));
    s.inject(
        seg(ACK)
            .seq(PEER_ISS + 1)
            .ack(sa.seq.wrapping_add(1))
            .win(4096),
    );
    let (c, _) = s.stack.tcp_accept(l).unwrap();
    s.expect_silence();
    (s, c, sa.seq.wrapping_add(1))
}

fn tso_config() -> StackConfig {
    let mut c = config().with_tso(true);
    c.tcp.sndbuf = 1 << 20;
    c.tcp.initial_window = 64;
    c
}

/// What the kernel does with a super-segment written with NEEDS_CSUM,
/// `csum_start` 20, `csum_offset` 16 and `gso_size` = MTU − headers
/// (`tcp_gso_segment`): checks the field holds the pseudo-header sum of
/// the whole, then cuts it into segments with the headers copied,
/// sequence numbers advanced, PSH/FIN only on the last, and full checksums.
fn kernel_segment(frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let ip = Ipv4Packet::new_checked(frame).unwrap();
    assert!(ip.dont_frag());
    let ihl = usize::from(ip.header_len());
    assert_eq!(usize::from(ip.total_len()), frame.len());
    let tcp = &frame[ihl..];
    let thl = usize::from(tcp[12] >> 4) * 4;
    let pseudo = checksum::pseudo_header(
        ip.src_addr(),
        ip.dst_addr(),
        IpProtocol::Tcp,
        tcp.len() as u32,
    );
    let field = u16::from_be_bytes([tcp[16], tcp[17]]);
    assert_eq!(
        field,
        checksum::fold(pseudo),
        "partial checksum: the pseudo-header sum"
    );
    let gso = mtu - ihl - thl;
    let payload = &tcp[thl..];
    let seq0 = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let flags = tcp[13];
    let n = payload.len().div_ceil(gso);
    (0..n)
        .map(|i| {
            let chunk = &payload[i * gso..((i + 1) * gso).min(payload.len())];
            let mut f = frame[..ihl + thl].to_vec();
            f.extend_from_slice(chunk);
            let total = f.len() as u16;
            f[2..4].copy_from_slice(&total.to_be_bytes());
            let mut p = Ipv4Packet::new_unchecked(&mut f[..]);
            p.fill_checksum();
            let t = &mut f[ihl..];
            t[4..8].copy_from_slice(&seq0.wrapping_add((i * gso) as u32).to_be_bytes());
            // FIN (0x01) and PSH (0x08) stay on the last segment only.
            t[13] = if i + 1 == n { flags } else { flags & !0x09 };
            let mut tp = TcpPacket::new_unchecked(&mut t[..]);
            tp.set_checksum(0);
            let len = tp.as_ref().len();
            let c = !checksum::fold(
                checksum::pseudo_header(ip.src_addr(), ip.dst_addr(), IpProtocol::Tcp, len as u32)
                    + checksum::sum(tp.as_ref()),
            );
            tp.set_checksum(c);
            f
        })
        .collect()
}

/// Everything the stack sends now, as frames (super-segments whole).
fn frames(s: &mut Script) -> Vec<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    while let Some(n) = s.stack.transmit(s.now, &mut buf) {
        out.push(buf[..n].to_vec());
        assert!(out.len() < 10_000);
    }
    out
}

/// Frames cut as the kernel would, parsed; `(stream offset, len)` of the
/// data segments, checking the payload bytes.
fn data_segments(frames: &[Vec<u8>], d0: u32) -> Vec<(usize, usize, Seg)> {
    let mut v = Vec::new();
    for f in frames {
        let segs = if f.len() > 1500 {
            kernel_segment(f, 1500)
        } else {
            vec![f.clone()]
        };
        for x in segs {
            let x = Seg::parse(&x).expect("a TCP segment with a valid checksum");
            if x.payload.is_empty() {
                continue;
            }
            let off = x.seq.wrapping_sub(d0) as usize;
            for (i, &b) in x.payload.iter().enumerate() {
                assert_eq!(b, pattern(off + i), "payload at {}", off + i);
            }
            v.push((off, x.payload.len(), x));
        }
    }
    v
}

fn write(s: &mut Script, c: SocketHandle, from: usize, n: usize) {
    let data: Vec<u8> = (from..from + n).map(pattern).collect();
    let now = s.now;
    assert_eq!(s.stack.tcp_send(now, c, &data), Ok(n));
}

#[test]
fn a_64k_send_leaves_as_one_super_segment() {
    let (mut s, c, d0) = open(tso_config());
    write(&mut s, c, 0, 44 * MSS);
    let out = frames(&mut s);
    assert_eq!(
        out.len(),
        1,
        "one frame for 44 segments: {:?}",
        out.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(out[0].len(), 20 + 20 + 44 * MSS);
    let segs = data_segments(&out, d0);
    assert_eq!(segs.len(), 44);
    for (i, (off, len, x)) in segs.iter().enumerate() {
        assert_eq!((*off, *len), (i * MSS, MSS));
        assert_eq!(x.flags.contains(PSH), i == 43, "PSH on the last only");
    }
    let tc = s.stack.counters().tcp;
    // The SYN-ACK and the 44 segments the super-segment stands for.
    assert_eq!((tc.tso_sends, tc.out_segs), (1, 1 + 44), "{tc:?}");
}

#[test]
fn without_tso_a_burst_is_cut_by_the_stack() {
    let mut cfg = tso_config();
    cfg.tso = false;
    let (mut s, c, d0) = open(cfg);
    write(&mut s, c, 0, 44 * MSS);
    let out = frames(&mut s);
    assert_eq!(out.len(), 44);
    assert!(out.iter().all(|f| f.len() <= 1500));
    assert_eq!(data_segments(&out, d0).len(), 44);
}

#[test]
fn one_lost_mss_of_a_super_segment_is_resent_alone() {
    let (mut s, c, d0) = open(tso_config());
    write(&mut s, c, 0, 44 * MSS);
    let out = frames(&mut s);
    assert_eq!(out.len(), 1);
    // Segment 5 of the 44 is lost: the peer ACKs up to it and SACKs the
    // rest, segment by segment.
    let at = |off: usize| d0.wrapping_add(off as u32);
    let hole = 5 * MSS;
    // (`inject` collects what the stack sends in answer: all of it fits
    // the MTU here, nothing new being written.)
    for k in 6..=9 {
        s.inject(
            seg(ACK)
                .seq(PEER_ISS + 1)
                .ack(at(hole))
                .win(4096)
                .sack(&[(at(hole + MSS), at(k * MSS + MSS))]),
        );
    }
    let resent: Vec<(usize, usize)> = s
        .take()
        .into_iter()
        .filter(|(_, x)| !x.payload.is_empty())
        .map(|(_, x)| (x.seq.wrapping_sub(d0) as usize, x.payload.len()))
        .collect();
    assert_eq!(resent, vec![(hole, MSS)], "only the lost MSS again");
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(at(44 * MSS)).win(4096));
    let info = s.stack.tcp_info(c).unwrap();
    assert_eq!(info.unacked, 0);
    assert_eq!(s.stack.counters().tcp.retrans_segs, 1);
}

/// The peer's data as one coalesced super-packet (as GRO or the kernel's
/// TSO hands it over a TUN): `n` segments' worth in one IP datagram.
fn peer_data(s: &mut Script, d0: u32, off: u32, len: usize) {
    let mut x = seg(ACK | PSH).seq(PEER_ISS + 1 + off).ack(d0).win(4096);
    x.payload = vec![0x5a; len];
    s.inject(x);
}

#[test]
fn a_coalesced_receive_is_acked_like_the_segments_it_stands_for() {
    let mut cfg = tso_config();
    cfg.tcp.quickack_segments = 0;
    let (mut s, c, d0) = open(cfg);
    let _ = c;
    // One full segment: the ACK is delayed.
    peer_data(&mut s, d0, 0, MSS);
    s.expect_silence();
    // Ten segments' worth in one datagram: ACKed at once, all of it.
    let off = MSS as u32;
    peer_data(&mut s, d0, off, 10 * MSS);
    let a = s.next();
    assert_eq!(a.ack, PEER_ISS + 1 + 11 * MSS as u32);
    s.expect_silence();
    // Still one ACK for every second full-sized (MSS) segment after it:
    // the super-packet did not make "full-sized" 10 segments.
    let off = 11 * MSS as u32;
    peer_data(&mut s, d0, off, MSS);
    s.expect_silence();
    peer_data(&mut s, d0, off + MSS as u32, MSS);
    let a = s.next();
    assert_eq!(a.ack, PEER_ISS + 1 + 13 * MSS as u32);
}
