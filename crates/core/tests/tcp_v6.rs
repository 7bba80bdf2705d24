//! TCP and UDP over IPv6 between two stacks back to back, on the virtual
//! clock: the segments on the wire checked against an independent
//! checksum (RFC 8200 §8.1), the MSS from the IPv6 MTU, flow labels
//! (RFC 6437), resets from closed ports, dual-stack listeners (RFC 3493).

mod common;

use common::{config, Pair, A, B};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use ustack_core::wire::Ipv6Cidr;
use ustack_core::{Duration, Errno, Medium, SocketHandle, TcpState};

const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn pair(medium: Medium) -> Pair {
    let a = config(medium, A, 1).with_addr6("fd00::1/64".parse::<Ipv6Cidr>().unwrap());
    let b = config(medium, B, 2).with_addr6("fd00::2/64".parse::<Ipv6Cidr>().unwrap());
    let mut p = Pair::with(a, b);
    // DAD and neighbour discovery settle first.
    p.advance(Duration::from_secs(1));
    p.trace.clear();
    p
}

fn sa6(ip: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(ip), port)
}

/// The IPv6 packet inside a traced frame, if it is one.
fn ip6_of(medium: Medium, frame: &[u8]) -> Option<&[u8]> {
    let ip = match medium {
        Medium::Ip => frame,
        Medium::Ethernet if frame.len() > 14 && frame[12..14] == [0x86, 0xdd] => &frame[14..],
        Medium::Ethernet => return None,
    };
    (ip.first()? >> 4 == 6).then_some(ip)
}

/// RFC 1071 over the RFC 8200 §8.1 pseudo-header, written out here
/// rather than taken from the wire crate: zero when the checksum is right.
fn independent_checksum(ip: &[u8]) -> u16 {
    let len = u16::from_be_bytes([ip[4], ip[5]]) as usize;
    let upper = &ip[40..40 + len];
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&ip[8..40]); // source and destination
    bytes.extend_from_slice(&(len as u32).to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, ip[6]]);
    bytes.extend_from_slice(upper);
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn connect6(p: &mut Pair, port: u16) -> (SocketHandle, SocketHandle) {
    let l = p.b.tcp_open();
    p.b.tcp_bind(l, sa6(B6, port)).unwrap();
    p.b.tcp_listen(l, 8).unwrap();
    let c = p.a.tcp_open();
    assert_eq!(
        p.a.tcp_connect(p.now, c, sa6(B6, port)),
        Err(Errno::EINPROGRESS)
    );
    p.pump();
    assert_eq!(p.a.tcp_state(c), Ok(TcpState::Established));
    let (s, peer) = p.b.tcp_accept(l).unwrap();
    let local = p.a.local_addr(c).unwrap().unwrap();
    assert_eq!(local.ip(), IpAddr::V6(A6));
    assert_eq!(peer, local);
    (c, s)
}

/// Sends `data` from `c` to `s`, reading all of it at `s`.
fn transfer(p: &mut Pair, c: SocketHandle, s: SocketHandle, data: &[u8]) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..100_000 {
        while sent < data.len() {
            match p.a.tcp_send(p.now, c, &data[sent..]) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("{e}"),
            }
        }
        p.advance(Duration::from_millis(1));
        loop {
            match p.b.tcp_recv(s, &mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        if got.len() == data.len() {
            break;
        }
    }
    got
}

#[test]
fn v6_handshake_transfer_close_with_checksums_mss_and_flow_label() {
    for medium in [Medium::Ip, Medium::Ethernet] {
        let mut p = pair(medium);
        let (c, s) = connect6(&mut p, 80);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let got = transfer(&mut p, c, s, &data);
        assert!(
            got == data,
            "{medium:?}: {} of {} bytes, or not intact",
            got.len(),
            data.len()
        );
        p.a.close(c).unwrap();
        p.pump();
        let mut buf = [0u8; 8];
        assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(0));
        p.b.close(s).unwrap();
        p.pump();
        assert_eq!(p.b.tcp_tcb_count(), 0);
        p.advance(Duration::from_secs(61));
        assert_eq!(p.a.tcp_tcb_count(), 0);

        let mut segs = 0;
        let mut labels = std::collections::HashSet::new();
        let mut max_payload = 0;
        for (_, from_a, frame) in &p.trace {
            let Some(ip) = ip6_of(medium, frame) else {
                continue;
            };
            if ip[6] != 6 {
                continue;
            }
            segs += 1;
            assert_eq!(independent_checksum(ip), 0, "{medium:?}: bad TCP checksum");
            let tcp = &ip[40..];
            let hl = usize::from(tcp[12] >> 4) * 4;
            let payload = u16::from_be_bytes([ip[4], ip[5]]) as usize - hl;
            max_payload = max_payload.max(payload);
            if tcp[13] & 0x02 != 0 {
                // SYN: MSS option = MTU - 60 (RFC 8200 §8.3).
                assert_eq!(&tcp[20..22], &[2, 4]);
                let mss = u16::from_be_bytes([tcp[22], tcp[23]]);
                assert_eq!(mss, 1500 - 60, "{medium:?}");
            }
            if *from_a {
                labels.insert(u32::from_be_bytes([0, ip[1] & 0x0f, ip[2], ip[3]]));
            }
        }
        assert!(segs > 200, "{medium:?}: only {segs} TCP segments over IPv6");
        assert!(max_payload <= 1500 - 60 - 12, "{medium:?}: {max_payload}");
        assert_eq!(labels.len(), 1, "{medium:?}: one flow label per connection");
        assert!(!labels.contains(&0));
        assert_eq!(p.a.counters().tcp.active_opens, 1);
        assert_eq!(p.b.counters().tcp.in_csum_errors, 0);
    }
}

#[test]
fn v6_closed_port_is_refused() {
    let mut p = pair(Medium::Ethernet);
    let c = p.a.tcp_open();
    assert_eq!(
        p.a.tcp_connect(p.now, c, sa6(B6, 81)),
        Err(Errno::EINPROGRESS)
    );
    p.pump();
    assert_eq!(p.a.take_error(c), Ok(Some(Errno::ECONNREFUSED)));
    assert_eq!(p.b.counters().tcp.out_rsts, 1);
}

#[test]
fn v6_corrupted_segment_is_dropped_and_counted() {
    let mut p = pair(Medium::Ip);
    p.filter = Box::new(|from_a, mut f| {
        if from_a && f[0] >> 4 == 6 && f[6] == 6 {
            f[40 + 4] ^= 0x80; // a bit of the sequence number
        }
        Some(f)
    });
    let c = p.a.tcp_open();
    let _ = p.a.tcp_connect(p.now, c, sa6(B6, 80));
    p.pump();
    assert_eq!(p.b.counters().tcp.in_csum_errors, 1);
    assert_eq!(p.b.counters().tcp.out_rsts, 0);
}

#[test]
fn v6_udp_round_trip() {
    for medium in [Medium::Ip, Medium::Ethernet] {
        let mut p = pair(medium);
        let server = p.b.udp_open();
        p.b.udp_bind(server, sa6(Ipv6Addr::UNSPECIFIED, 5353))
            .unwrap();
        let client = p.a.udp_open();
        let big = vec![0x5a; 4000]; // fragmented to the MTU (RFC 8200 §4.5)
        for msg in [&b"ping"[..], &big[..]] {
            assert_eq!(
                p.a.udp_send_to(client, msg, Some(sa6(B6, 5353))),
                Ok(msg.len())
            );
            p.pump();
            let mut buf = vec![0u8; 8192];
            let (n, _, from) = p.b.udp_recv_from(server, &mut buf).unwrap();
            assert_eq!(&buf[..n], msg);
            assert_eq!(from.ip(), IpAddr::V6(A6));
            p.b.udp_send_to(server, &buf[..n], Some(from)).unwrap();
            p.pump();
            let (n, _, back) = p.a.udp_recv_from(client, &mut buf).unwrap();
            assert_eq!(&buf[..n], msg, "{medium:?}");
            assert_eq!(back, sa6(B6, 5353));
        }
        for (_, _, frame) in &p.trace {
            if let Some(ip) = ip6_of(medium, frame) {
                if ip[6] == 17 {
                    assert_eq!(independent_checksum(ip), 0, "{medium:?}: bad UDP checksum");
                }
            }
        }
    }
}

#[test]
fn dual_stack_listener_takes_both_versions_unless_v6only() {
    let mut p = pair(Medium::Ip);
    let l = p.b.tcp_open();
    p.b.tcp_bind(l, sa6(Ipv6Addr::UNSPECIFIED, 80)).unwrap();
    p.b.tcp_listen(l, 8).unwrap();
    for remote in [sa6(B6, 80), SocketAddr::from((B, 80))] {
        let c = p.a.tcp_open();
        let _ = p.a.tcp_connect(p.now, c, remote);
        p.pump();
        assert_eq!(p.a.tcp_state(c), Ok(TcpState::Established), "{remote}");
        let (_, peer) = p.b.tcp_accept(l).unwrap();
        assert_eq!(peer.is_ipv4(), remote.is_ipv4());
    }
    // IPV6_V6ONLY: an IPv4 SYN to the port is refused; and 0.0.0.0:80
    // may then be bound beside it.
    let l6 = p.b.tcp_open();
    p.b.tcp_set_v6only(l6, true).unwrap();
    p.b.tcp_bind(l6, sa6(Ipv6Addr::UNSPECIFIED, 81)).unwrap();
    assert_eq!(p.b.tcp_set_v6only(l6, false), Err(Errno::EINVAL));
    p.b.tcp_listen(l6, 8).unwrap();
    let c = p.a.tcp_open();
    let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((B, 81)));
    p.pump();
    assert_eq!(p.a.take_error(c), Ok(Some(Errno::ECONNREFUSED)));
    let l4 = p.b.tcp_open();
    p.b.tcp_bind(l4, SocketAddr::from((B, 81))).unwrap();
    // Without V6ONLY, [::]:80 holds 0.0.0.0:80 too.
    let l4b = p.b.tcp_open();
    assert_eq!(
        p.b.tcp_bind(l4b, SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 80))),
        Err(Errno::EADDRINUSE)
    );
    let _ = A;
}

#[test]
fn v6_connected_udp_socket_sees_port_unreachable() {
    let mut p = pair(Medium::Ethernet);
    let c = p.a.udp_open();
    p.a.udp_connect(c, sa6(B6, 9)).unwrap();
    p.a.udp_send_to(c, b"anyone?", None).unwrap();
    p.pump();
    // B answers ICMPv6 port unreachable (RFC 4443 §3.1 code 4); A's
    // connected socket reports it, as Linux does.
    assert_eq!(p.b.counters().udp.no_ports, 1);
    let mut buf = [0u8; 16];
    assert_eq!(p.a.udp_recv_from(c, &mut buf), Err(Errno::ECONNREFUSED));
    assert_eq!(p.a.udp_recv_from(c, &mut buf), Err(Errno::EAGAIN));
}

#[test]
fn v6_segments_are_traced_both_ways() {
    for medium in [Medium::Ip, Medium::Ethernet] {
        let a = config(medium, A, 1)
            .with_addr6("fd00::1/64".parse::<Ipv6Cidr>().unwrap())
            .with_trace(true);
        let b = config(medium, B, 2).with_addr6("fd00::2/64".parse::<Ipv6Cidr>().unwrap());
        let mut p = Pair::with(a, b);
        p.advance(Duration::from_secs(1));
        let (c, _s) = connect6(&mut p, 80);
        p.a.tcp_send(p.now, c, b"traced").unwrap();
        p.pump();
        let (mut out, mut back) = (0, 0);
        for e in p.a.take_events() {
            if let ustack_core::EventKind::TcpSegment {
                local,
                remote,
                sent,
                ..
            } = e.kind
            {
                assert_eq!(
                    (local, remote.ip()),
                    (p.a.local_addr(c).unwrap().unwrap(), IpAddr::V6(B6))
                );
                if sent {
                    out += 1;
                } else {
                    back += 1;
                }
            }
        }
        // SYN, ACK, data out; SYN-ACK, ACK back.
        assert!(out >= 3 && back >= 2, "{medium:?}: {out} out, {back} in");
    }
}

/// A RST from B to A built from B's last segment to A: `seq` as given,
/// no payload, checksum recomputed.
fn rst_from_b(p: &Pair, seq: u32) -> Vec<u8> {
    let last = p
        .trace
        .iter()
        .rev()
        .find(|(_, from_a, f)| !*from_a && f[0] >> 4 == 6 && f[6] == 6)
        .map(|(_, _, f)| f.clone())
        .unwrap();
    let thl = usize::from(last[40 + 12] >> 4) * 4;
    let mut f = last[..40 + thl].to_vec();
    f[4..6].copy_from_slice(&(thl as u16).to_be_bytes());
    f[44..48].copy_from_slice(&seq.to_be_bytes());
    f[40 + 13] = 0x04; // RST
    f[40 + 16..40 + 18].copy_from_slice(&[0, 0]);
    let c = independent_checksum(&f);
    f[40 + 16..40 + 18].copy_from_slice(&c.to_be_bytes());
    f
}

/// A's RCV.NXT: after B's last segment to A.
fn a_rcv_nxt(p: &Pair) -> u32 {
    let (_, _, f) = p
        .trace
        .iter()
        .rev()
        .find(|(_, from_a, f)| !*from_a && f[0] >> 4 == 6 && f[6] == 6)
        .unwrap();
    let thl = usize::from(f[40 + 12] >> 4) * 4;
    let len = usize::from(u16::from_be_bytes([f[4], f[5]])) - thl;
    let syn_fin = u32::from(f[40 + 13] & 0x03 != 0);
    u32::from_be_bytes([f[44], f[45], f[46], f[47]]) + len as u32 + syn_fin
}

#[test]
fn v6_rst_in_window_gets_a_challenge_ack_and_an_exact_one_resets() {
    // RFC 5961 §3.2 over IPv6, as over IPv4.
    let mut p = pair(Medium::Ip);
    let (c, s) = connect6(&mut p, 80);
    p.b.tcp_send(p.now, s, b"data").unwrap();
    p.pump();
    let nxt = a_rcv_nxt(&p);
    let acks = p.a.counters().tcp.challenge_acks;
    p.a.receive(p.now, &rst_from_b(&p, nxt.wrapping_add(100)));
    p.pump();
    assert_eq!(p.a.counters().tcp.challenge_acks, acks + 1);
    assert_eq!(p.a.tcp_state(c), Ok(TcpState::Established));
    p.a.receive(p.now, &rst_from_b(&p, nxt));
    assert_eq!(p.a.take_error(c), Ok(Some(Errno::ECONNRESET)));
}

#[test]
fn v6_packet_too_big_resegments_the_connection() {
    use ustack_core::wire::{ChecksumCaps, Icmpv6Packet, Icmpv6Repr, Ipv6Packet, Ipv6Repr};
    let mut p = pair(Medium::Ip);
    let (c, s) = connect6(&mut p, 80);
    let first: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    assert!(transfer(&mut p, c, s, &first) == first);
    let big = p
        .trace
        .iter()
        .rev()
        .find(|(_, from_a, f)| *from_a && f[6] == 6 && f.len() > 1400)
        .map(|(_, _, f)| f.clone())
        .unwrap();
    // A router on the way says 1280 (RFC 8201 §4), quoting the segment.
    let router: Ipv6Addr = "fd00::fe".parse().unwrap();
    let r = Icmpv6Repr::PacketTooBig {
        mtu: 1280,
        invoking: &big[..1232],
    };
    let mut m = vec![0u8; r.buffer_len()];
    r.emit(
        router,
        A6,
        &mut Icmpv6Packet::new_unchecked(&mut m[..]),
        &ChecksumCaps::default(),
    );
    let ip = Ipv6Repr {
        src_addr: router,
        dst_addr: A6,
        next_header: 58.into(),
        payload_len: m.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    let mut ptb = vec![0u8; 40 + m.len()];
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut ptb[..]));
    ptb[40..].copy_from_slice(&m);
    p.a.receive(p.now, &ptb);
    let mss = p.a.tcp_info(c).unwrap().snd_mss;
    assert!(mss <= 1280 - 60, "send MSS {mss} after Packet Too Big 1280");
    p.trace.clear();
    let rest: Vec<u8> = (0..200_000u32).map(|i| (i / 3) as u8).collect();
    assert!(transfer(&mut p, c, s, &rest) == rest);
    let out: Vec<&Vec<u8>> = p
        .trace
        .iter()
        .filter(|(_, a, _)| *a)
        .map(|(_, _, f)| f)
        .collect();
    assert!(out.len() > 100);
    for f in out {
        assert!(
            f.len() <= 1280,
            "a {}-byte packet after Packet Too Big",
            f.len()
        );
        assert_eq!(f[6], 6, "resegmented, not fragmented");
    }
}

mod hostile {
    //! TCP and UDP over IPv6 from a hostile wire: valid frames of a
    //! connection and datagrams, mutated and cut, to a stack that does not
    //! check checksums (so the mutations reach TCP and UDP): no panic, the
    //! TCP invariants hold, the timers run.
    use super::*;
    use proptest::prelude::*;
    use ustack_core::Instant;

    fn seeds6(medium: Medium) -> Vec<Vec<u8>> {
        let mut p = pair(medium);
        let (c, s) = connect6(&mut p, 80);
        let u = p.b.udp_open();
        p.b.udp_bind(u, sa6(B6, 9)).unwrap();
        let v = p.a.udp_open();
        p.a.udp_send_to(v, b"datagram", Some(sa6(B6, 9))).unwrap();
        p.a.udp_send_to(v, &[7u8; 3000], Some(sa6(B6, 9))).unwrap();
        p.a.udp_send_to(v, b"closed", Some(sa6(B6, 10))).unwrap();
        p.a.tcp_send(p.now, c, b"GET / HTTP/1.0\r\n\r\n").unwrap();
        p.pump();
        p.b.tcp_send(p.now, s, &[9u8; 3000]).unwrap();
        p.pump();
        p.a.close(c).unwrap();
        p.b.close(s).unwrap();
        p.pump();
        let c2 = p.a.tcp_open();
        let _ = p.a.tcp_connect(p.now, c2, sa6(B6, 81));
        p.pump();
        p.trace.iter().map(|(_, _, f)| f.clone()).collect()
    }

    fn check6(medium: Medium, frames: &[Vec<u8>]) {
        let mut cfg = config(medium, B, 3).with_addr6("fd00::2/64".parse::<Ipv6Cidr>().unwrap());
        cfg.checksums.rx = false;
        let mut s = ustack_core::Stack::new(cfg).unwrap();
        let u = s.udp_open();
        s.udp_bind(u, sa6(Ipv6Addr::UNSPECIFIED, 9)).unwrap();
        let l = s.tcp_open();
        s.tcp_bind(l, sa6(Ipv6Addr::UNSPECIFIED, 80)).unwrap();
        s.tcp_listen(l, 4).unwrap();
        let mut buf = vec![0u8; 4096];
        for (i, f) in frames.iter().enumerate() {
            let now = Instant::from_millis(i as u64 * 300);
            s.receive(now, f);
            let mut sent = 0;
            while s.transmit(now, &mut buf).is_some() {
                sent += 1;
                assert!(sent < 10_000);
            }
        }
        while let Ok((h, _)) = s.tcp_accept(l) {
            let mut rbuf = [0u8; 256];
            let _ = s.tcp_recv(h, &mut rbuf);
            let _ = s.tcp_send(Instant::from_secs(99), h, b"reply");
        }
        let mut rbuf = [0u8; 4096];
        while s.udp_recv_from(u, &mut rbuf).is_ok() {}
        s.tcp_check_invariants();
        let mut n = 0;
        let mut t = Instant::from_secs(100);
        while let Some(d) = s.poll_at() {
            t = t.max(d).max(t + Duration::from_millis(1));
            if t > Instant::from_secs(1000) {
                break;
            }
            while s.transmit(t, &mut buf).is_some() {
                n += 1;
                assert!(n < 100_000);
            }
        }
    }

    #[test]
    fn the_seeds_are_taken_whole() {
        for medium in [Medium::Ip, Medium::Ethernet] {
            let seeds = seeds6(medium);
            assert!(seeds.len() > 15, "{medium:?}: {} seed frames", seeds.len());
            check6(medium, &seeds);
        }
    }

    proptest! {
        #[test]
        fn mutated_v6_transport_frames_never_panic(
            eth in any::<bool>(),
            picks in prop::collection::vec((any::<prop::sample::Index>(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), any::<prop::sample::Index>()), 1..16),
        ) {
            let medium = if eth { Medium::Ethernet } else { Medium::Ip };
            let seeds = seeds6(medium);
            let frames: Vec<Vec<u8>> = picks.iter().map(|(which, edits, cut)| {
                let mut f = which.get(&seeds).clone();
                for (at, byte) in edits {
                    let i = at.index(f.len());
                    f[i] = *byte;
                }
                let keep = f.len() - cut.index(f.len() / 4 + 1);
                f.truncate(keep);
                f
            }).collect();
            check6(medium, &frames);
        }
    }
}
