//! Two stacks on a MemLink with seeded impairments: what applications see.

use std::net::SocketAddr;
use ustack_core::wire::{Ipv4Addr, Ipv4Cidr};
use ustack_core::{Duration, Errno, Instant, Medium, Stack, StackConfig};
use ustack_devices::{Impairments, MemLink, Sim};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn sim(medium: Medium, imp: Impairments, seed: u64) -> Sim<Stack> {
    let mut link = MemLink::new(seed);
    link.set_impairments(imp);
    let mut sim = Sim::new(link);
    for (i, addr) in [A, B].into_iter().enumerate() {
        let mac = ustack_core::wire::EthernetAddress([2, 0, 0, 0, 0, i as u8 + 1]);
        let cfg = StackConfig::new(medium, Ipv4Cidr::new(addr, 24))
            .with_seed(seed + i as u64)
            .with_mac(mac);
        sim.add_host(Stack::new(cfg).unwrap());
    }
    sim
}

/// A datagram whose content proves its integrity: sequence number, length, then a pattern.
fn datagram(seq: u32, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq) as u8)
        .collect();
    v[..4].copy_from_slice(&seq.to_be_bytes());
    v
}

#[test]
fn ping_over_memlink_with_delay() {
    for medium in [Medium::Ip, Medium::Ethernet] {
        let mut s = sim(
            medium,
            Impairments::none().with_delay(Duration::from_millis(5)),
            1,
        );
        let h = s.hosts[0].icmp_open();
        let start = Instant::from_secs(1);
        s.run_to(start, |_| {});
        for seq in 0..5 {
            s.hosts[0].icmp_send_echo(h, B, seq, b"abcdefgh").unwrap();
        }
        let mut replies = Vec::new();
        s.run_to(start + Duration::from_secs(1), |s| {
            while let Ok(r) = s.hosts[0].icmp_recv(h) {
                replies.push(r);
            }
        });
        assert_eq!(
            replies.iter().map(|r| r.seq_no).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        // IP: one round trip of 2 × 5 ms. Ethernet: ARP first, one more round trip.
        let rtt = if medium == Medium::Ip { 10 } else { 20 };
        for r in &replies {
            assert_eq!(r.at - start, Duration::from_millis(rtt), "{medium:?}");
            assert_eq!(r.data, b"abcdefgh");
        }
    }
}

#[test]
fn udp_with_20_percent_loss_delivers_intact_or_counts() {
    let mut s = sim(
        Medium::Ip,
        Impairments::lossy(0.2).with_delay(Duration::from_millis(2)),
        7,
    );
    let server = s.hosts[1].udp_open();
    s.hosts[1]
        .udp_bind(server, SocketAddr::from((B, 9)))
        .unwrap();
    let client = s.hosts[0].udp_open();
    const N: u32 = 2000;
    let mut received = Vec::new();
    let mut buf = vec![0u8; 2048];
    for seq in 0..N {
        let len = 8 + (seq as usize * 37) % 1400;
        s.hosts[0]
            .udp_send_to(client, &datagram(seq, len), Some(SocketAddr::from((B, 9))))
            .unwrap();
        let t = s.now() + Duration::from_micros(200);
        s.run_to(t, |s| {
            while let Ok((n, full, _)) = s.hosts[1].udp_recv_from(server, &mut buf) {
                assert_eq!(n, full);
                received.push(buf[..n].to_vec());
            }
        });
    }
    let t = s.now() + Duration::from_secs(1);
    s.run_to(t, |s| {
        while let Ok((n, _, _)) = s.hosts[1].udp_recv_from(server, &mut buf) {
            received.push(buf[..n].to_vec());
        }
    });
    let mut seqs = Vec::new();
    for d in &received {
        let seq = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        assert_eq!(d, &datagram(seq, d.len()), "datagram {seq} intact");
        assert_eq!(d.len(), 8 + (seq as usize * 37) % 1400);
        seqs.push(seq);
    }
    let mut sorted = seqs.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), seqs.len(), "no datagram delivered twice");
    let link = s.link.stats();
    assert_eq!(link.sent, u64::from(N));
    assert_eq!(
        link.dropped_loss + received.len() as u64,
        u64::from(N),
        "every datagram delivered or counted lost"
    );
    let loss = link.dropped_loss as f64 / f64::from(N);
    assert!((0.16..0.24).contains(&loss), "loss {loss}");
    assert_eq!(
        s.hosts[1].counters().udp.in_datagrams,
        received.len() as u64
    );
}

#[test]
fn fragmented_20k_datagrams_reassemble_despite_reordering_and_duplicates() {
    let imp = Impairments::none()
        .with_delay(Duration::from_millis(1))
        .with_reorder(0.3, Duration::from_millis(3))
        .with_duplicate(0.1);
    let mut s = sim(Medium::Ethernet, imp, 3);
    let server = s.hosts[1].udp_open();
    s.hosts[1]
        .udp_bind(server, SocketAddr::from((B, 9)))
        .unwrap();
    let client = s.hosts[0].udp_open();
    s.hosts[0]
        .udp_set_buffers(client, None, Some(1 << 20))
        .unwrap();
    s.hosts[1]
        .udp_set_buffers(server, Some(1 << 20), None)
        .unwrap();
    for seq in 0..10 {
        s.hosts[0]
            .udp_send_to(
                client,
                &datagram(seq, 20_000),
                Some(SocketAddr::from((B, 9))),
            )
            .unwrap();
    }
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    s.run_to(Instant::from_secs(2), |s| {
        while let Ok((n, _, _)) = s.hosts[1].udp_recv_from(server, &mut buf) {
            got.push(buf[..n].to_vec());
        }
    });
    assert_eq!(got.len(), 10);
    for d in &got {
        let seq = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        assert_eq!(d, &datagram(seq, 20_000));
    }
    let c = s.hosts[1].counters();
    assert_eq!(c.ip.reasm_oks, 10);
    assert!(s.link.stats().reordered > 0 && s.link.stats().duplicated > 0);
    // A duplicate fragment arriving after its datagram completed starts a
    // new partial datagram; it is held until the reassembly timeout.
    let held = s.hosts[1].reassembly_bytes();
    s.run_to(Instant::from_secs(40), |_| {});
    assert_eq!(s.hosts[1].reassembly_bytes(), 0);
    let c = s.hosts[1].counters();
    assert_eq!(held > 0, c.ip.reasm_timeout > 0);
    assert_eq!(c.ip.reasm_oks, 10, "no datagram delivered twice");
}

#[test]
fn corruption_is_caught_by_checksums_never_delivered() {
    let mut s = sim(Medium::Ip, Impairments::none().with_corrupt(0.3), 11);
    let server = s.hosts[1].udp_open();
    s.hosts[1]
        .udp_bind(server, SocketAddr::from((B, 9)))
        .unwrap();
    let client = s.hosts[0].udp_open();
    let ping = s.hosts[0].icmp_open();
    const N: u32 = 1000;
    let mut good = 0;
    let mut buf = vec![0u8; 2048];
    for seq in 0..N {
        s.hosts[0]
            .udp_send_to(client, &datagram(seq, 200), Some(SocketAddr::from((B, 9))))
            .unwrap();
        s.hosts[0]
            .icmp_send_echo(ping, B, seq as u16, &datagram(seq, 64))
            .unwrap();
        let t = s.now() + Duration::from_millis(1);
        s.run_to(t, |s| {
            while let Ok((n, _, _)) = s.hosts[1].udp_recv_from(server, &mut buf) {
                let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                assert_eq!(
                    &buf[..n],
                    &datagram(seq, 200)[..],
                    "a corrupted datagram was delivered"
                );
                good += 1;
            }
            while let Ok(r) = s.hosts[0].icmp_recv(ping) {
                assert_eq!(
                    r.data,
                    datagram(u32::from(r.seq_no), 64),
                    "a corrupted echo was delivered"
                );
            }
        });
    }
    let link = s.link.stats();
    assert!(link.corrupted > 300, "corrupted {}", link.corrupted);
    let b = s.hosts[1].counters();
    let a = s.hosts[0].counters();
    // Each corrupted frame is caught by some check: IP header, UDP or ICMP checksum, or header sanity.
    let caught = a.ip.in_hdr_errors
        + a.ip.in_addr_errors
        + a.ip.in_unknown_protos
        + a.icmp.in_errors
        + a.icmp.in_unsupported
        + a.ip.in_truncated
        + b.ip.in_hdr_errors
        + b.ip.in_addr_errors
        + b.ip.in_unknown_protos
        + b.ip.in_truncated
        + b.ip.reasm_reqds
        + b.udp.in_errors
        + b.udp.no_ports
        + b.icmp.in_errors
        + b.icmp.in_unsupported;
    assert!(good < N);
    assert!(
        caught > 0 && caught <= link.corrupted,
        "caught {caught} of {} corrupted",
        link.corrupted
    );
    assert!(b.udp.in_csum_errors > 0 && b.ip.in_csum_errors > 0);
    // A MemLink vouches for nothing: every checksum was summed here.
    assert_eq!((a.link.rx_csum_trusted, b.link.rx_csum_trusted), (0, 0));
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let mut s = sim(
            Medium::Ethernet,
            Impairments::lossy(0.3).with_jitter(Duration::from_millis(3)),
            seed,
        );
        let c = s.hosts[0].udp_open();
        let srv = s.hosts[1].udp_open();
        s.hosts[1].udp_bind(srv, SocketAddr::from((B, 9))).unwrap();
        let mut arrivals = Vec::new();
        for seq in 0..200 {
            let _ = s.hosts[0].udp_send_to(c, &datagram(seq, 100), Some(SocketAddr::from((B, 9))));
            let t = s.now() + Duration::from_millis(1);
            s.run_to(t, |s| {
                while let Ok((_, _, from)) = s.hosts[1].udp_recv_from(srv, &mut [0u8; 200]) {
                    arrivals.push((s.now(), from));
                }
            });
        }
        (arrivals, *s.hosts[0].counters(), *s.hosts[1].counters())
    };
    assert_eq!(run(5), run(5));
    assert_ne!(run(5).0, run(6).0);
    let (arrivals, _, _) = run(5);
    assert!(arrivals.iter().all(|(_, from)| from.ip() == A));
    let _ = Errno::EAGAIN;
}
