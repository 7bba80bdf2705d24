//! TCP between two stacks back to back (handshake, transfer, close).

mod common;
mod segscript;

use common::{Pair, A, B};
use std::net::SocketAddr;
use ustack_core::{Duration, Errno, Medium, Shutdown, TcpState};

fn connect_pair(p: &mut Pair, port: u16) -> (ustack_core::SocketHandle, ustack_core::SocketHandle) {
    let l = p.b.tcp_open();
    p.b.tcp_bind(l, SocketAddr::from((B, port))).unwrap();
    p.b.tcp_listen(l, 8).unwrap();
    let c = p.a.tcp_open();
    assert_eq!(
        p.a.tcp_connect(p.now, c, SocketAddr::from((B, port))),
        Err(Errno::EINPROGRESS)
    );
    p.pump();
    assert_eq!(p.a.tcp_state(c), Ok(TcpState::Established));
    let (s, peer) = p.b.tcp_accept(l).unwrap();
    assert_eq!(
        peer,
        SocketAddr::from((A, p.a.local_addr(c).unwrap().unwrap().port()))
    );
    (c, s)
}

#[test]
fn handshake_transfer_and_close() {
    for medium in [Medium::Ip, Medium::Ethernet] {
        let mut p = Pair::new(medium);
        let (c, s) = connect_pair(&mut p, 80);
        assert!(p.a.readiness(c).unwrap().writable);
        assert_eq!(p.a.take_error(c), Ok(None));
        assert_eq!(p.a.tcp_send(p.now, c, b"hello"), Ok(5));
        p.pump();
        let mut buf = [0u8; 64];
        assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(5));
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(p.b.tcp_recv(s, &mut buf), Err(Errno::EAGAIN));
        // Active close from A.
        p.a.close(c).unwrap();
        p.pump();
        assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(0));
        assert_eq!(p.b.tcp_state(s), Ok(TcpState::CloseWait));
        assert!(p.b.readiness(s).unwrap().read_hangup);
        p.b.close(s).unwrap();
        p.pump();
        // A's orphan sits in TIME_WAIT for 60 s.
        let rows = p.a.socket_table(p.now);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].state, TcpState::TimeWait);
        assert_eq!(p.b.tcp_tcb_count(), 0);
        p.advance(Duration::from_secs(59));
        assert_eq!(p.a.tcp_tcb_count(), 1);
        p.advance(Duration::from_secs(2));
        assert_eq!(p.a.tcp_tcb_count(), 0);
        assert_eq!(p.a.counters().tcp.active_opens, 1);
        assert_eq!(p.b.counters().tcp.passive_opens, 1);
        assert_eq!(p.a.counters().tcp.curr_estab, 0);
    }
}

#[test]
fn bulk_transfer_intact() {
    let mut p = Pair::new(Medium::Ip);
    let (c, s) = connect_pair(&mut p, 80);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
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
        if sent == data.len() {
            let _ = p.a.tcp_shutdown(p.now, c, Shutdown::Write);
        }
        p.pump();
        loop {
            match p.b.tcp_recv(s, &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("{e}"),
            }
        }
        if got.len() == data.len() && p.b.tcp_recv(s, &mut buf) == Ok(0) {
            break;
        }
        p.advance(Duration::from_millis(1));
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data);
    assert_eq!(p.a.counters().tcp.retrans_segs, 0);
}

#[test]
fn simultaneous_open_between_two_stacks() {
    let mut p = Pair::new(Medium::Ip);
    let a = p.a.tcp_open();
    p.a.tcp_bind(a, SocketAddr::from((A, 5000))).unwrap();
    let b = p.b.tcp_open();
    p.b.tcp_bind(b, SocketAddr::from((B, 6000))).unwrap();
    // Both SYNs are on the wire before either arrives.
    let _ = p.a.tcp_connect(p.now, a, SocketAddr::from((B, 6000)));
    let _ = p.b.tcp_connect(p.now, b, SocketAddr::from((A, 5000)));
    let mut buf = vec![0u8; 2000];
    let n = p.a.transmit(p.now, &mut buf).unwrap();
    let syn_a = buf[..n].to_vec();
    let n = p.b.transmit(p.now, &mut buf).unwrap();
    let syn_b = buf[..n].to_vec();
    p.a.receive(p.now, &syn_b);
    p.b.receive(p.now, &syn_a);
    assert_eq!(p.a.tcp_state(a), Ok(TcpState::SynReceived));
    assert_eq!(p.b.tcp_state(b), Ok(TcpState::SynReceived));
    p.pump();
    assert_eq!(p.a.tcp_state(a), Ok(TcpState::Established));
    assert_eq!(p.b.tcp_state(b), Ok(TcpState::Established));
    p.a.tcp_send(p.now, a, b"ping").unwrap();
    p.pump();
    let mut buf = [0u8; 8];
    assert_eq!(p.b.tcp_recv(b, &mut buf), Ok(4));
}

#[test]
fn half_close_round_trip() {
    let mut p = Pair::new(Medium::Ip);
    let (c, s) = connect_pair(&mut p, 80);
    p.a.tcp_send(p.now, c, b"request").unwrap();
    p.a.tcp_shutdown(p.now, c, Shutdown::Write).unwrap();
    p.pump();
    let mut buf = [0u8; 64];
    assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(7));
    assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(0), "EOF after the request");
    assert_eq!(p.a.tcp_state(c), Ok(TcpState::FinWait2));
    assert_eq!(p.a.tcp_send(p.now, c, b"more"), Err(Errno::EPIPE));
    // The other direction still works.
    for _ in 0..3 {
        p.b.tcp_send(p.now, s, b"response").unwrap();
        p.pump();
        assert_eq!(p.a.tcp_recv(c, &mut buf), Ok(8));
    }
    assert_eq!(p.a.tcp_recv(c, &mut buf), Err(Errno::EAGAIN));
    p.b.close(s).unwrap();
    p.pump();
    assert_eq!(p.a.tcp_recv(c, &mut buf), Ok(0));
    assert_eq!(p.a.tcp_state(c), Ok(TcpState::TimeWait));
    let r = p.a.readiness(c).unwrap();
    assert!(r.hangup && r.read_hangup && r.readable);
}

#[test]
fn close_with_unread_data_resets_the_peer() {
    let mut p = Pair::new(Medium::Ip);
    let (c, s) = connect_pair(&mut p, 80);
    p.a.tcp_send(p.now, c, b"never read").unwrap();
    p.pump();
    p.b.close(s).unwrap();
    p.pump();
    let mut buf = [0u8; 16];
    let r = p.a.readiness(c).unwrap();
    assert!(r.error && r.hangup && r.readable);
    assert_eq!(p.a.tcp_recv(c, &mut buf), Err(Errno::ECONNRESET));
    assert_eq!(p.a.tcp_recv(c, &mut buf), Ok(0));
    assert_eq!(p.a.tcp_send(p.now, c, b"x"), Err(Errno::EPIPE));
    assert_eq!(p.a.counters().tcp.estab_resets, 1);
    assert_eq!(p.b.counters().tcp.out_rsts, 1);
    assert_eq!(p.a.tcp_tcb_count() + p.b.tcp_tcb_count(), 0);
}

#[test]
fn connect_to_closed_port_and_silent_host() {
    let mut p = Pair::new(Medium::Ip);
    let c = p.a.tcp_open();
    let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((B, 9)));
    p.pump();
    assert_eq!(p.a.take_error(c), Ok(Some(Errno::ECONNREFUSED)));
    // Silent host: every frame dropped.
    p.filter = Box::new(|_, _| None);
    let c = p.a.tcp_open();
    let start = p.now;
    let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((B, 80)));
    p.advance(Duration::from_secs(126));
    assert_eq!(p.a.take_error(c), Ok(None));
    p.advance(Duration::from_secs(1));
    assert_eq!(p.now - start, Duration::from_secs(127));
    assert_eq!(p.a.take_error(c), Ok(Some(Errno::ETIMEDOUT)));
}

#[test]
fn readiness_changes_are_reported() {
    let mut p = Pair::new(Medium::Ip);
    let l = p.b.tcp_open();
    p.b.tcp_bind(l, SocketAddr::from((B, 80))).unwrap();
    p.b.tcp_listen(l, 4).unwrap();
    p.b.take_readiness_changes();
    let c = p.a.tcp_open();
    let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((B, 80)));
    p.a.take_readiness_changes();
    p.pump();
    assert!(
        p.a.take_readiness_changes().contains(&c),
        "connect completed"
    );
    assert!(p.b.take_readiness_changes().contains(&l), "accept queue");
    let (s, _) = p.b.tcp_accept(l).unwrap();
    p.b.take_readiness_changes();
    p.a.tcp_send(p.now, c, b"x").unwrap();
    p.pump();
    assert!(p.b.take_readiness_changes().contains(&s), "data");
    p.a.close(c).unwrap();
    p.pump();
    assert!(p.b.take_readiness_changes().contains(&s), "FIN");
    assert!(p.b.readiness(s).unwrap().read_hangup);
}

#[test]
fn bind_conflicts_reuseaddr_and_time_wait() {
    let mut p = Pair::new(Medium::Ip);
    let (c, s) = connect_pair(&mut p, 80);
    let any80 = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 80));
    let x = p.b.tcp_open();
    assert_eq!(p.b.tcp_bind(x, any80), Err(Errno::EADDRINUSE));
    // The server closes first, so its side goes to TIME_WAIT.
    p.b.close(s).unwrap();
    p.pump();
    p.a.close(c).unwrap();
    p.pump();
    let listener = p.b.socket_table(p.now);
    let l = listener
        .iter()
        .find(|r| r.state == TcpState::Listen)
        .and_then(|r| r.handle)
        .unwrap();
    p.b.close(l).unwrap();
    assert!(p
        .b
        .socket_table(p.now)
        .iter()
        .any(|r| r.state == TcpState::TimeWait));
    assert_eq!(p.b.tcp_bind(x, any80), Err(Errno::EADDRINUSE));
    p.b.tcp_set_reuseaddr(x, true).unwrap();
    assert_eq!(p.b.tcp_bind(x, any80), Ok(any80));
    p.b.tcp_listen(x, 4).unwrap();
    // The same peer port again: the SYN ends the TIME_WAIT (RFC 6191 style).
    let (c2, _s2) = connect_pair_again(&mut p, x);
    assert_eq!(p.a.tcp_state(c2), Ok(TcpState::Established));
}

fn connect_pair_again(
    p: &mut Pair,
    l: ustack_core::SocketHandle,
) -> (ustack_core::SocketHandle, ustack_core::SocketHandle) {
    let c = p.a.tcp_open();
    let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((B, 80)));
    p.pump();
    let (s, _) = p.b.tcp_accept(l).unwrap();
    (c, s)
}

#[test]
fn reuseport_spreads_connections() {
    let mut p = Pair::new(Medium::Ip);
    let mut ls = Vec::new();
    for _ in 0..2 {
        let l = p.b.tcp_open();
        p.b.tcp_set_reuseport(l, true).unwrap();
        p.b.tcp_bind(l, SocketAddr::from((B, 80))).unwrap();
        p.b.tcp_listen(l, 64).unwrap();
        ls.push(l);
    }
    let other = p.b.tcp_open();
    assert_eq!(
        p.b.tcp_bind(other, SocketAddr::from((B, 80))),
        Err(Errno::EADDRINUSE),
        "without SO_REUSEPORT"
    );
    let mut cs = Vec::new();
    for _ in 0..40 {
        let c = p.a.tcp_open();
        let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((B, 80)));
        cs.push(c);
    }
    p.pump();
    let mut counts = [0; 2];
    for (i, l) in ls.iter().enumerate() {
        while p.b.tcp_accept(*l).is_ok() {
            counts[i] += 1;
        }
    }
    assert_eq!(counts[0] + counts[1], 40);
    assert!(counts[0] >= 8 && counts[1] >= 8, "{counts:?}");
    // Ephemeral ports are distinct, in range, and not sequential.
    let ports: Vec<u16> = cs
        .iter()
        .map(|c| p.a.local_addr(*c).unwrap().unwrap().port())
        .collect();
    let distinct: std::collections::HashSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), 40);
    assert!(ports.iter().all(|p| (32768..=60999).contains(p)));
    assert!(
        ports.windows(2).filter(|w| w[1] == w[0] + 1).count() < 5,
        "{ports:?}"
    );
}

#[test]
fn connect_to_ourselves() {
    let mut p = Pair::new(Medium::Ip);
    let l = p.a.tcp_open();
    p.a.tcp_bind(l, SocketAddr::from((A, 7))).unwrap();
    p.a.tcp_listen(l, 1).unwrap();
    let c = p.a.tcp_open();
    let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((A, 7)));
    p.pump();
    let (s, _) = p.a.tcp_accept(l).unwrap();
    p.a.tcp_send(p.now, c, b"loop").unwrap();
    p.pump();
    let mut buf = [0u8; 8];
    assert_eq!(p.a.tcp_recv(s, &mut buf), Ok(4));
    // A socket connected to itself: a simultaneous open with one TCB.
    let me = p.a.tcp_open();
    p.a.tcp_bind(me, SocketAddr::from((A, 5555))).unwrap();
    let _ = p.a.tcp_connect(p.now, me, SocketAddr::from((A, 5555)));
    p.pump();
    assert_eq!(p.a.tcp_state(me), Ok(TcpState::Established));
    p.a.tcp_send(p.now, me, b"echo").unwrap();
    p.pump();
    assert_eq!(p.a.tcp_recv(me, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"echo");
    assert!(p.trace.is_empty(), "nothing on the wire");
    p.a.tcp_check_invariants();
}

#[test]
fn syn_flood_keeps_half_open_state_bounded_and_real_clients_connect() {
    let mut cfg_b = common::config(Medium::Ip, B, 2);
    cfg_b.tcp.max_syn_backlog = 256;
    let mut p = Pair::with(common::config(Medium::Ip, A, 1), cfg_b);
    let l = p.b.tcp_open();
    p.b.tcp_bind(l, SocketAddr::from((B, 80))).unwrap();
    p.b.tcp_listen(l, 128).unwrap();
    let mut rng = ustack_core::rng::Rng::new(99);
    let mut buf = vec![0u8; 2048];
    let mut replies = 0;
    for i in 0..100_000u32 {
        let src = std::net::Ipv4Addr::new(10, 0, 0, 3 + (rng.below(250) as u8));
        let syn = segscript::seg(segscript::SYN)
            .from(SocketAddr::from((src, 1024 + rng.below(60000) as u16)))
            .seq(rng.next_u64() as u32)
            .mss(1460);
        p.b.receive(p.now, &syn.to_ip());
        while p.b.transmit(p.now, &mut buf).is_some() {
            replies += 1;
        }
        if i % 10_000 == 0 {
            p.now += Duration::from_millis(100);
        }
    }
    assert!(p.b.tcp_tcb_count() <= 256, "{}", p.b.tcp_tcb_count());
    p.b.tcp_check_invariants();
    let t = p.b.counters().tcp;
    assert!(t.syncookies_sent >= 99_000, "{t:?}");
    assert!(
        replies >= 99_990,
        "every SYN answered, most by cookie: {replies}"
    );
    // A real client still gets through, by cookie, and can talk.
    let c = p.a.tcp_open();
    let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((B, 80)));
    p.pump();
    assert_eq!(p.a.tcp_state(c), Ok(TcpState::Established));
    let (s, _) = p.b.tcp_accept(l).unwrap();
    p.a.tcp_send(p.now, c, b"through").unwrap();
    p.pump();
    let mut got = [0u8; 16];
    assert_eq!(p.b.tcp_recv(s, &mut got), Ok(7));
    assert_eq!(p.b.counters().tcp.syncookies_recv, 1);
    // The half-open entries expire after their SYN-ACK retries.
    p.advance(Duration::from_secs(70));
    assert_eq!(p.b.tcp_tcb_count(), 1);
}

#[test]
fn ephemeral_port_never_reuses_a_live_four_tuple() {
    let mut cfg_a = common::config(Medium::Ip, A, 1);
    cfg_a.ephemeral_ports = 40000..=40000;
    let mut p = Pair::with(cfg_a, common::config(Medium::Ip, B, 2));
    let mut ls = Vec::new();
    for port in [80, 81] {
        let l = p.b.tcp_open();
        p.b.tcp_bind(l, SocketAddr::from((B, port))).unwrap();
        p.b.tcp_listen(l, 4).unwrap();
        ls.push(l);
    }
    let c = p.a.tcp_open();
    let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((B, 80)));
    p.pump();
    assert_eq!(p.a.local_addr(c), Ok(Some(SocketAddr::from((A, 40000)))));
    // The client closes first: its 4-tuple sits in TIME_WAIT.
    p.a.close(c).unwrap();
    p.pump();
    let (s, _) = p.b.tcp_accept(ls[0]).unwrap();
    p.b.close(s).unwrap();
    p.pump();
    assert_eq!(p.a.socket_table(p.now)[0].state, TcpState::TimeWait);
    let c2 = p.a.tcp_open();
    assert_eq!(
        p.a.tcp_connect(p.now, c2, SocketAddr::from((B, 80))),
        Err(Errno::EADDRNOTAVAIL)
    );
    // Another destination may share the local port.
    assert_eq!(
        p.a.tcp_connect(p.now, c2, SocketAddr::from((B, 81))),
        Err(Errno::EINPROGRESS)
    );
    p.pump();
    assert_eq!(p.a.tcp_state(c2), Ok(TcpState::Established));
    assert_eq!(p.a.local_addr(c2), Ok(Some(SocketAddr::from((A, 40000)))));
    // Once TIME_WAIT ends, the first 4-tuple is free again.
    p.advance(Duration::from_secs(61));
    let c3 = p.a.tcp_open();
    assert_eq!(
        p.a.tcp_connect(p.now, c3, SocketAddr::from((B, 80))),
        Err(Errno::EINPROGRESS)
    );
}

#[test]
fn a_hundred_thousand_connections() {
    let mut p = Pair::new(Medium::Ip);
    // 28 232 ephemeral ports per destination: four listening ports.
    let ports = [80u16, 81, 82, 83];
    let ls: Vec<_> = ports
        .iter()
        .map(|&port| {
            let l = p.b.tcp_open();
            p.b.tcp_bind(l, SocketAddr::from((B, port))).unwrap();
            p.b.tcp_listen(l, 4096).unwrap();
            l
        })
        .collect();
    let n = 100_000;
    let mut cs = Vec::with_capacity(n);
    let mut ss = Vec::with_capacity(n);
    for i in 0..n {
        let c = p.a.tcp_open();
        p.a.tcp_set_keepalive(p.now, c, true).unwrap();
        let _ =
            p.a.tcp_connect(p.now, c, SocketAddr::from((B, ports[i % ports.len()])));
        cs.push(c);
        if i % 2000 == 1999 {
            p.pump();
            for l in &ls {
                while let Ok((s, _)) = p.b.tcp_accept(*l) {
                    ss.push(s);
                }
            }
        }
    }
    assert_eq!(ss.len(), n);
    assert_eq!(p.a.counters().tcp.curr_estab, n as u64);
    p.a.tcp_check_invariants();
    p.b.tcp_check_invariants();
    // Keepalive on every client: the probes all go out at 7200 s and are answered.
    p.advance(Duration::from_secs(7201));
    assert_eq!(p.a.counters().tcp.keepalive_probes, n as u64);
    assert_eq!(p.a.counters().tcp.curr_estab, n as u64);
    for c in cs {
        p.a.close(c).unwrap();
    }
    for s in ss {
        p.b.close(s).unwrap();
    }
    p.pump();
    p.advance(Duration::from_secs(61));
    assert_eq!(p.a.tcp_tcb_count() + p.b.tcp_tcb_count(), 0);
}

#[test]
fn acks_wake_writers_only_after_a_full_buffer() {
    let mut p = Pair::new(Medium::Ip);
    let (c, s) = connect_pair(&mut p, 80);
    p.a.take_readiness_changes();
    // A small write: its ACK is no news for epoll (Linux's SOCK_NOSPACE).
    p.a.tcp_send(p.now, c, b"small").unwrap();
    p.pump();
    assert!(!p.a.take_readiness_changes().contains(&c));
    // Fill the buffer until EAGAIN; the ACKs that free it wake the writer.
    let big = vec![1u8; 1 << 20];
    let mut sent = 0;
    while let Ok(n) = p.a.tcp_send(p.now, c, &big[sent..]) {
        sent += n;
    }
    assert!(!p.a.readiness(c).unwrap().writable);
    p.a.take_readiness_changes();
    let mut buf = vec![0u8; 1 << 20];
    while p.b.tcp_recv(s, &mut buf).is_ok() {}
    p.pump();
    while p.b.tcp_recv(s, &mut buf).is_ok() {}
    p.pump();
    assert!(p.a.take_readiness_changes().contains(&c));
    assert!(p.a.readiness(c).unwrap().writable);
}

/// A connection waiting in the accept queue that gets data and a FIN does
/// not mark its listener changed: the listener's readiness (something to
/// accept) did not change, and Linux wakes no one watching the listener
/// for it. Otherwise an EPOLLEXCLUSIVE turn or an edge-triggered event
/// would be spent on nothing.
#[test]
fn a_queued_connection_changing_does_not_touch_its_listener() {
    let mut p = Pair::new(Medium::Ip);
    let l = p.b.tcp_open();
    p.b.tcp_bind(l, SocketAddr::from((B, 81))).unwrap();
    p.b.tcp_listen(l, 8).unwrap();
    let c = p.a.tcp_open();
    assert_eq!(
        p.a.tcp_connect(p.now, c, SocketAddr::from((B, 81))),
        Err(Errno::EINPROGRESS)
    );
    p.pump();
    assert!(
        p.b.take_readiness_changes().contains(&l),
        "a connection entering the accept queue changes the listener"
    );
    assert_eq!(p.a.tcp_send(p.now, c, b"early"), Ok(5));
    p.a.close(c).unwrap();
    p.pump();
    assert!(
        !p.b.take_readiness_changes().contains(&l),
        "data and a FIN on a queued connection are not the listener's news"
    );
    let (s, _) = p.b.tcp_accept(l).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"early");
    assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(0));
}

/// A connected socket holds no copy of its options or addresses (the TCB
/// owns them, issue 19 item 4): getsockopt and getsockname answer the same
/// before, during and after the connection, and a listener's options
/// reach the sockets it accepts.
#[test]
fn options_and_addresses_survive_connect_and_its_end() {
    let mut p = Pair::new(Medium::Ip);
    let l = p.b.tcp_open();
    p.b.tcp_set_nodelay(l, true).unwrap();
    p.b.tcp_bind(l, SocketAddr::from((B, 80))).unwrap();
    p.b.tcp_listen(l, 8).unwrap();
    let any = SocketAddr::from(([0, 0, 0, 0], 4000));
    let (c, c2) = (p.a.tcp_open(), p.a.tcp_open());
    p.a.tcp_set_nodelay(c, true).unwrap();
    p.a.tcp_set_buffers(c, Some(8192), None).unwrap();
    p.a.tcp_bind(c, any).unwrap();
    let before = p.a.tcp_options(c).unwrap();
    for h in [c, c2] {
        let r = p.a.tcp_connect(p.now, h, SocketAddr::from((B, 80)));
        assert_eq!(r, Err(Errno::EINPROGRESS));
    }
    p.pump();
    let (s, _) = p.b.tcp_accept(l).unwrap();
    let (s2, _) = p.b.tcp_accept(l).unwrap();
    assert!(p.b.tcp_options(s).unwrap().nodelay, "the listener's option");
    assert_eq!(p.a.tcp_options(c).unwrap(), before);
    assert_eq!(p.a.local_addr(c), Ok(Some(SocketAddr::from((A, 4000)))));
    assert_eq!(p.a.peer_addr(c), Ok(SocketAddr::from((B, 80))));
    let c2_local = p.a.local_addr(c2).unwrap().expect("autobound");
    assert_eq!(c2_local.ip(), A);
    // Set while connected: seen by getsockopt now and after the end.
    p.a.tcp_set_cork(c, true).unwrap();
    p.a.tcp_set_linger(c2, Some(Duration::from_secs(3)))
        .unwrap();
    let during = p.a.tcp_options(c).unwrap();
    assert!(during.cork && during.nodelay && during.rcvbuf == 8192);
    // The server aborts both (SO_LINGER 0): A's sockets get the RST.
    for h in [s, s2] {
        p.b.tcp_set_linger(h, Some(Duration::ZERO)).unwrap();
        p.b.close(h).unwrap();
    }
    p.pump();
    assert_eq!(p.a.tcp_state(c), Ok(TcpState::Closed));
    assert_eq!(p.a.take_error(c), Ok(Some(Errno::ECONNRESET)));
    assert_eq!(p.a.tcp_options(c).unwrap(), during);
    let c2_opts = p.a.tcp_options(c2).unwrap();
    assert_eq!(c2_opts.linger, Some(Duration::from_secs(3)));
    // getsockname: the wildcard it was bound to; the connection's address
    // for the one that was not bound. No peer any more.
    assert_eq!(p.a.local_addr(c), Ok(Some(any)));
    assert_eq!(p.a.local_addr(c2), Ok(Some(c2_local)));
    assert_eq!(p.a.peer_addr(c), Err(Errno::ENOTCONN));
    assert_eq!(p.a.tcp_bind(c, any), Err(Errno::EINVAL), "still bound");
    p.a.tcp_check_invariants();
    p.b.tcp_check_invariants();
}
