//! TCP between two stacks over a lossy MemLink on the virtual clock.

use std::net::SocketAddrV4;
use ustack_core::time::{Duration, Instant};
use ustack_core::wire::{EthernetAddress, Ipv4Addr, Ipv4Cidr};
use ustack_core::{Errno, Medium, Shutdown, SocketHandle, Stack, StackConfig, TcpState};
use ustack_devices::{Impairments, MemLink, Sim};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn cfg(addr: Ipv4Addr, seed: u64) -> StackConfig {
    StackConfig::new(Medium::Ethernet, Ipv4Cidr::new(addr, 24))
        .with_seed(seed)
        .with_mac(EthernetAddress([2, 0, 0, 0, 0, addr.octets()[3]]))
}

/// FNV-1a, enough to compare two byte streams.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

struct Outcome {
    got: Vec<u8>,
    sent_hash: u64,
    client: ustack_core::Counters,
    lost: u64,
    took: Duration,
    /// Super-segments the link cut (TSO on).
    tso_cut: u64,
}

/// Client on A sends `len` bytes to a server on B, then half-closes; the
/// server reads to EOF and closes.
/// With `tso`, TSO on both stacks: the link cuts their super-segments
/// into segments before impairing them ([`MemLink::set_tso`]).
fn transfer_tso(len: usize, imp: Impairments, seed: u64, tso: bool) -> Outcome {
    transfer_with(len, imp, seed, tso, |c| c).0
}

/// `transfer_tso` with both stacks' configuration adjusted by `f`; also
/// the link's counters.
fn transfer_with(
    len: usize,
    imp: Impairments,
    seed: u64,
    tso: bool,
    f: impl Fn(StackConfig) -> StackConfig,
) -> (Outcome, ustack_devices::LinkStats) {
    let data: Vec<u8> = (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut link = MemLink::new(seed);
    link.set_impairments(imp);
    if tso {
        link.set_tso(Medium::Ethernet, 1500);
    }
    let mut sim = Sim::new(link);
    sim.add_host(Stack::new(f(cfg(A, seed).with_tso(tso))).unwrap());
    sim.add_host(Stack::new(f(cfg(B, seed + 1).with_tso(tso))).unwrap());
    let l = sim.hosts[1].tcp_open();
    sim.hosts[1].tcp_bind(l, SocketAddrV4::new(B, 80)).unwrap();
    sim.hosts[1].tcp_listen(l, 4).unwrap();
    let c = sim.hosts[0].tcp_open();
    let now = sim.now();
    assert_eq!(
        sim.hosts[0].tcp_connect(now, c, SocketAddrV4::new(B, 80)),
        Err(Errno::EINPROGRESS)
    );
    let mut server: Option<SocketHandle> = None;
    let mut sent = 0usize;
    let mut got = Vec::with_capacity(len);
    let mut eof = false;
    let mut buf = vec![0u8; 65536];
    let start = sim.now();
    let done = sim.run_until(Instant::from_secs(3600), |s| {
        let now = s.now();
        let client = &mut s.hosts[0];
        if client.tcp_state(c) == Ok(TcpState::Established) {
            while sent < data.len() {
                match client.tcp_send(now, c, &data[sent..]) {
                    Ok(n) => sent += n,
                    Err(Errno::EAGAIN) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            if sent == data.len() {
                client.tcp_shutdown(now, c, Shutdown::Write).unwrap();
            }
        }
        let srv = &mut s.hosts[1];
        if server.is_none() {
            server = srv.tcp_accept(l).ok().map(|(h, _)| h);
        }
        if let Some(h) = server {
            if !eof {
                loop {
                    match srv.tcp_recv(h, &mut buf) {
                        Ok(0) => {
                            eof = true;
                            srv.close(h).unwrap();
                            break;
                        }
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(Errno::EAGAIN) => break,
                        Err(e) => panic!("recv: {e}"),
                    }
                }
            }
        }
        eof && s.hosts[0].tcp_state(c) == Ok(TcpState::TimeWait)
    });
    assert!(
        done,
        "transfer did not finish: {} of {len} bytes",
        got.len()
    );
    let o = Outcome {
        got,
        sent_hash: fnv(&data),
        client: *sim.hosts[0].counters(),
        lost: sim.link.stats().dropped_loss,
        took: sim.now() - start,
        tso_cut: sim.link.stats().tso_cut,
    };
    (o, sim.link.stats())
}

/// A bottleneck that marks CE above 20 queued frames instead of dropping
/// at its 100-frame limit (`Impairments::ce_threshold`): with ECN on both
/// ends, CUBIC backs off on the marks and the queue never overflows.
#[test]
fn ecn_marks_instead_of_drops_at_a_threshold_queue() {
    let len = 4 << 20;
    let imp = Impairments::none()
        .with_bandwidth(50_000_000)
        .with_delay(Duration::from_millis(5))
        .with_queue_limit(100)
        .with_ce_threshold(20);
    let ecn = |mut c: StackConfig| {
        c.tcp.ecn = ustack_core::EcnMode::On;
        c
    };
    let (o, link) = transfer_with(len, imp, 21, false, ecn);
    assert_eq!(fnv(&o.got), o.sent_hash, "bytes intact");
    let t = o.client.tcp;
    assert!(link.ce_marked > 0, "{link:?}");
    assert!(t.ecn_reductions > 0, "{t:?}");
    assert_eq!(link.dropped_queue, 0, "marks, not drops: {link:?}");
    assert_eq!(t.retrans_segs, 0, "{t:?}");
    // Without ECN the same queue overflows.
    let (o, link) = transfer_with(len, imp, 21, false, |c| c);
    assert_eq!(fnv(&o.got), o.sent_hash);
    assert_eq!(link.ce_marked, 0);
    assert!(link.dropped_queue > 0, "{link:?}");
    assert_eq!(o.client.tcp.ecn_reductions, 0);
}

#[test]
fn three_megabytes_over_five_percent_loss_arrive_intact() {
    five_percent_loss(false);
}

#[test]
fn three_megabytes_over_five_percent_loss_arrive_intact_with_tso() {
    five_percent_loss(true);
}

fn five_percent_loss(tso: bool) {
    let len = 3 << 20;
    let o = transfer_tso(
        len,
        Impairments::lossy(0.05).with_delay(Duration::from_millis(5)),
        11,
        tso,
    );
    assert_eq!(o.tso_cut > 0, tso, "super-segments sent: {}", o.tso_cut);
    assert_eq!(o.client.tcp.tso_sends, o.tso_cut);
    assert_eq!(o.got.len(), len);
    assert_eq!(fnv(&o.got), o.sent_hash, "hash of received bytes");
    assert!(o.lost > 100, "the link did drop frames: {}", o.lost);
    let t = o.client.tcp;
    assert!(t.retrans_segs > 0 && t.timeouts > 0, "{t:?}");
    eprintln!(
        "3 MiB over 5% loss: {:?} virtual, {} frames lost, {} retransmitted",
        o.took, o.lost, t.retrans_segs
    );
}

#[test]
fn clean_link_transfer_needs_no_retransmission() {
    for tso in [false, true] {
        let len = 1 << 20;
        let o = transfer_tso(
            len,
            Impairments::none().with_delay(Duration::from_millis(1)),
            5,
            tso,
        );
        assert_eq!(fnv(&o.got), o.sent_hash);
        assert_eq!(o.client.tcp.retrans_segs, 0);
        assert_eq!(o.tso_cut > 0, tso);
    }
}

#[test]
fn reordering_and_duplication_are_survived() {
    for tso in [false, true] {
        let len = 512 << 10;
        let imp = Impairments::none()
            .with_delay(Duration::from_millis(2))
            .with_reorder(0.05, Duration::from_millis(3))
            .with_duplicate(0.05);
        let o = transfer_tso(len, imp, 21, tso);
        assert_eq!(fnv(&o.got), o.sent_hash);
        assert_eq!(o.tso_cut > 0, tso);
    }
}

/// Corruption with TSO: the link cuts super-segments before corrupting,
/// so every damaged segment has a checksum that exposes it.
#[test]
fn corruption_with_tso_is_caught_by_checksums() {
    let len = 512 << 10;
    let imp = Impairments::none()
        .with_delay(Duration::from_millis(1))
        .with_corrupt(0.02);
    let o = transfer_tso(len, imp, 31, true);
    assert_eq!(fnv(&o.got), o.sent_hash);
    assert!(o.tso_cut > 0);
}

/// Client on host 0 connected to a server on host 1: (client, server).
fn connected(sim: &mut Sim<Stack>) -> (SocketHandle, SocketHandle) {
    let l = sim.hosts[1].tcp_open();
    sim.hosts[1].tcp_bind(l, SocketAddrV4::new(B, 80)).unwrap();
    sim.hosts[1].tcp_listen(l, 4).unwrap();
    let c = sim.hosts[0].tcp_open();
    let now = sim.now();
    let _ = sim.hosts[0].tcp_connect(now, c, SocketAddrV4::new(B, 80));
    let end = sim.now() + Duration::from_secs(5);
    assert!(sim.run_until(end, |s| s.hosts[0].tcp_state(c)
        == Ok(TcpState::Established)));
    sim.run_for(Duration::from_millis(10));
    let (s, _) = sim.hosts[1].tcp_accept(l).unwrap();
    (c, s)
}

fn two_hosts(seed: u64) -> Sim<Stack> {
    let mut link = MemLink::new(seed);
    link.set_impairments(Impairments::none().with_delay(Duration::from_millis(1)));
    let mut sim = Sim::new(link);
    sim.add_host(Stack::new(cfg(A, seed)).unwrap());
    sim.add_host(Stack::new(cfg(B, seed + 1)).unwrap());
    sim
}

#[test]
fn keepalive_finds_a_vanished_peer() {
    let mut sim = two_hosts(3);
    let (c, _s) = connected(&mut sim);
    let now = sim.now();
    let client = &mut sim.hosts[0];
    client.tcp_set_keepalive(now, c, true).unwrap();
    client
        .tcp_set_keepalive_params(
            now,
            c,
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(1)),
            Some(3),
        )
        .unwrap();
    // While the peer answers, probes keep the connection up.
    sim.run_for(Duration::from_secs(35));
    assert_eq!(sim.hosts[0].tcp_state(c), Ok(TcpState::Established));
    assert!(sim.hosts[0].counters().tcp.keepalive_probes >= 3);
    // The peer vanishes.
    sim.link.set_impairments(Impairments::lossy(1.0));
    let gone = sim.now();
    let end = gone + Duration::from_secs(60);
    assert!(sim.run_until(end, |s| s.hosts[0].tcp_state(c) == Ok(TcpState::Closed)));
    let took = sim.now() - gone;
    assert!(took <= Duration::from_secs(14), "{took:?}");
    assert_eq!(sim.hosts[0].take_error(c), Ok(Some(Errno::ETIMEDOUT)));
}

#[test]
fn a_restarted_peer_resets_the_old_connection() {
    let mut sim = two_hosts(4);
    let (c, _s) = connected(&mut sim);
    // The server host reboots: a fresh stack, same address, no connections.
    sim.hosts[1] = Stack::new(cfg(B, 99)).unwrap();
    let now = sim.now();
    sim.hosts[0].tcp_send(now, c, b"hello?").unwrap();
    let end = sim.now() + Duration::from_secs(5);
    assert!(sim.run_until(end, |s| s.hosts[0].tcp_state(c) == Ok(TcpState::Closed)));
    let mut buf = [0u8; 8];
    assert_eq!(sim.hosts[0].tcp_recv(c, &mut buf), Err(Errno::ECONNRESET));
    assert_eq!(sim.hosts[1].counters().tcp.out_rsts, 1);
}

/// Wireshark's dissectors judge a captured session: checksums right, no
/// malformed segments, and on a clean link no expert complaint at all
/// (no "ACKed unseen segment", "previous segment not captured", ...).
#[test]
fn tshark_finds_nothing_wrong_with_a_session() {
    let ok = std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert_ne!(
            std::env::var("USTACK_REQUIRE_TOOLS").as_deref(),
            Ok("1"),
            "tshark not on PATH"
        );
        say_skipped("tshark not on PATH");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ustack-tcp-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("session.pcap");
    let mut sim = two_hosts(8);
    sim.link.set_capture(Some(
        ustack_devices::PcapSink::create(&path, ustack_devices::LinkKind::Ethernet).unwrap(),
    ));
    let (c, s) = connected(&mut sim);
    let data = vec![42u8; 200_000];
    let mut sent = 0;
    let mut got = 0;
    let mut buf = vec![0u8; 65536];
    let mut closed = false;
    let end = sim.now() + Duration::from_secs(30);
    sim.run_until(end, |sim| {
        let now = sim.now();
        while sent < data.len() {
            match sim.hosts[0].tcp_send(now, c, &data[sent..]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        if sent == data.len() && !closed {
            sim.hosts[0].close(c).unwrap();
            closed = true;
        }
        loop {
            match sim.hosts[1].tcp_recv(s, &mut buf) {
                Ok(0) => {
                    let _ = sim.hosts[1].close(s);
                    break;
                }
                Ok(n) => got += n,
                Err(_) => break,
            }
        }
        got == data.len()
            && sim.hosts[0]
                .socket_table(now)
                .iter()
                .all(|r| r.state == TcpState::TimeWait)
    });
    assert_eq!(got, data.len());
    let mut cap = sim.link.take_capture().unwrap();
    cap.flush().unwrap();
    drop(cap);
    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
        ])
        .args(["-Y", "tcp"])
        .args(["-T", "fields", "-e", "frame.number", "-e", "tcp.flags.str"])
        .args(["-e", "tcp.checksum.status", "-e", "_ws.expert.severity"])
        .args(["-e", "_ws.malformed", "-e", "_ws.expert.message"])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert!(rows.len() > 100, "{text}");
    for r in &rows {
        assert_eq!(r[2], "1", "checksum judged good: {r:?}");
        assert!(r.get(4).is_none_or(|m| m.is_empty()), "malformed: {r:?}");
        // Chat and notes (connection setup and finish) are fine; a warning
        // (severity 6291456) or error is not.
        let severities = r.get(3).copied().unwrap_or("");
        assert!(
            severities
                .split(',')
                .filter(|x| !x.is_empty())
                .all(|x| x.parse::<u64>().unwrap() < 6_291_456),
            "tshark says: {r:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

use ustack_testkit::say_skipped;

/// HyStart++ (RFC 9406) on the wire: CUBIC's slow start through a 20
/// Mbit/s bottleneck with a deep (1000-frame) queue. The queue delay
/// shows as a rising RTT, and CUBIC leaves slow start before the queue
/// overflows; standard slow start doubles on until it drops a burst.
#[test]
fn hystart_leaves_slow_start_before_the_queue_overflows() {
    let len = 4 << 20;
    let imp = Impairments::none()
        .with_bandwidth(20_000_000)
        .with_delay(Duration::from_millis(10))
        .with_queue_limit(1000);
    let (o, link) = transfer_with(len, imp, 31, false, |c| c);
    assert_eq!(fnv(&o.got), o.sent_hash, "bytes intact");
    assert_eq!(link.dropped_queue, 0, "{link:?}");
    assert_eq!(o.client.tcp.retrans_segs, 0);
    let (o, link) = transfer_with(len, imp, 31, false, |mut c| {
        c.tcp.hystart = false;
        c
    });
    assert_eq!(fnv(&o.got), o.sent_hash);
    assert!(link.dropped_queue > 0, "{link:?}");
    assert!(o.client.tcp.retrans_segs > 0);
}
