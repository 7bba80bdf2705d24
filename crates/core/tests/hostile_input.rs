//! Anything from the wire: no panic, and the stack keeps working.

mod common;

use common::{config, A, B};
use proptest::prelude::*;
use ustack_core::{Instant, Medium, RxMeta, Stack};

/// Valid frames of every kind we parse, to mutate.
fn seeds(medium: Medium) -> Vec<Vec<u8>> {
    let mut a = Stack::new(config(medium, A, 1)).unwrap();
    let mut b = Stack::new(config(medium, B, 2)).unwrap();
    let now = Instant::from_secs(1);
    let u = a.udp_open();
    let s = b.udp_open();
    b.udp_bind(s, std::net::SocketAddr::from((B, 9))).unwrap();
    let h = a.icmp_open();
    a.icmp_send_echo(h, B, 1, b"ping").unwrap();
    a.udp_send_to(u, b"datagram", Some(std::net::SocketAddr::from((B, 9))))
        .unwrap();
    a.udp_send_to(u, &[7u8; 3000], Some(std::net::SocketAddr::from((B, 9))))
        .unwrap();
    a.udp_send_to(u, b"closed", Some(std::net::SocketAddr::from((B, 10))))
        .unwrap();
    // TCP: a handshake, data both ways, a close, and a SYN to a closed port.
    let l = b.tcp_open();
    b.tcp_bind(l, std::net::SocketAddr::from((B, 80))).unwrap();
    b.tcp_listen(l, 4).unwrap();
    let c = a.tcp_open();
    let _ = a.tcp_connect(now, c, std::net::SocketAddr::from((B, 80)));
    let c2 = a.tcp_open();
    let _ = a.tcp_connect(now, c2, std::net::SocketAddr::from((B, 81)));
    let mut frames = Vec::new();
    let mut buf = vec![0u8; 2000];
    for round in 0..10 {
        if round == 2 {
            let _ = a.tcp_send(now, c, b"GET / HTTP/1.0\r\n\r\n");
            if let Ok((h, _)) = b.tcp_accept(l) {
                let _ = b.tcp_send(now, h, &[9u8; 1400]);
                let _ = b.close(h);
            }
        }
        if round == 4 {
            let _ = a.close(c);
        }
        while let Some(n) = a.transmit(now, &mut buf) {
            frames.push(buf[..n].to_vec());
            b.receive(now, &buf[..n]);
        }
        while let Some(n) = b.transmit(now, &mut buf) {
            frames.push(buf[..n].to_vec());
            a.receive(now, &buf[..n]);
        }
    }
    assert!(frames.len() >= 6, "seed frames: {}", frames.len());
    let hl = if medium == Medium::Ethernet { 14 } else { 0 };
    let tcp = frames
        .iter()
        .filter(|f| f.len() > hl + 9 && f[hl + 9] == 6)
        .count();
    assert!(tcp >= 6, "TCP seed frames: {tcp}");
    frames
}

/// `trusted`: every frame comes as from a device that vouches for its
/// checksums (`RxMeta::csum_ok`), so a mutated frame is not stopped by a
/// checksum and goes on into the protocols.
fn check(medium: Medium, frames: Vec<Vec<u8>>, trusted: bool) {
    let mut s = Stack::new(config(medium, B, 3)).unwrap();
    let u = s.udp_open();
    s.udp_bind(u, std::net::SocketAddr::from((B, 9))).unwrap();
    let l = s.tcp_open();
    s.tcp_bind(l, std::net::SocketAddr::from((B, 80))).unwrap();
    s.tcp_listen(l, 4).unwrap();
    let mut buf = vec![0u8; 2000];
    for (i, f) in frames.iter().enumerate() {
        let now = Instant::from_millis(i as u64 * 700);
        s.receive_with(now, f, RxMeta { csum_ok: trusted });
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
    let _ = s.poll_at();
    s.tcp_check_invariants();
    assert!(s.reassembly_bytes() <= s.config().reassembly.max_bytes);
    assert!(s.tcp_tcb_count() <= s.config().tcp.max_syn_backlog + 4);
    // Timers run without panicking either.
    let mut n = 0;
    let mut t = Instant::from_secs(100);
    while let Some(d) = s.poll_at() {
        t = t.max(d).max(t + ustack_core::Duration::from_millis(1));
        if t > Instant::from_secs(1000) {
            break;
        }
        while s.transmit(t, &mut buf).is_some() {
            n += 1;
            assert!(n < 100_000);
        }
    }
}

// Case count: proptest's default (256), or PROPTEST_CASES; CI runs a long
// release-mode pass with many more.
proptest! {

    #[test]
    fn random_bytes_never_panic(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..1600), 1..8)) {
        check(Medium::Ip, frames.clone(), false);
        check(Medium::Ethernet, frames, false);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        medium in prop::sample::select(vec![Medium::Ip, Medium::Ethernet]),
        trusted in any::<bool>(),
        picks in prop::collection::vec((any::<prop::sample::Index>(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), any::<prop::sample::Index>()), 1..12),
    ) {
        let seeds = seeds(medium);
        let frames = picks.iter().map(|(which, edits, cut)| {
            let mut f = which.get(&seeds).clone();
            for (at, byte) in edits {
                let i = at.index(f.len());
                f[i] = *byte;
            }
            let keep = f.len() - cut.index(f.len() / 4 + 1);
            f.truncate(keep);
            f
        }).collect();
        check(medium, frames, trusted);
    }
}
