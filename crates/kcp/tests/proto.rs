//! The protocol's rules as the reference states them, seen on the wire:
//! header layout, fragments, selective ACK, fast retransmit after `resend`
//! skips, RTO growth (doubling, or x1.5 in nodelay mode), windows, MTU.

use ustack_kcp::{Config, InputError, Kcp, OVERHEAD};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seg {
    conv: u32,
    cmd: u8,
    frg: u8,
    wnd: u16,
    ts: u32,
    sn: u32,
    una: u32,
    data: Vec<u8>,
}

fn parse(mut d: &[u8]) -> Vec<Seg> {
    let mut v = Vec::new();
    while d.len() >= OVERHEAD {
        let u = |i: usize| u32::from_le_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
        let len = u(20) as usize;
        v.push(Seg {
            conv: u(0),
            cmd: d[4],
            frg: d[5],
            wnd: u16::from_le_bytes([d[6], d[7]]),
            ts: u(8),
            sn: u(12),
            una: u(16),
            data: d[OVERHEAD..OVERHEAD + len].to_vec(),
        });
        d = &d[OVERHEAD + len..];
    }
    v
}

fn ack(conv: u32, sn: u32, ts: u32, una: u32) -> Vec<u8> {
    let mut b = conv.to_le_bytes().to_vec();
    b.extend_from_slice(&[82, 0]);
    b.extend_from_slice(&128u16.to_le_bytes());
    for x in [ts, sn, una, 0] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    b
}

/// Runs `k` from `from` to `to` ms, one update a ms; the datagrams with their times.
fn run(k: &mut Kcp, from: u32, to: u32) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    for t in from..to {
        k.update(t, &mut |d| out.push((t, d.to_vec())));
    }
    out
}

#[test]
fn header_fields_on_the_wire() {
    let mut k = Kcp::new(0x0102_0304, Config::fast());
    k.send(b"hello").unwrap();
    let out = run(&mut k, 1000, 1001);
    assert_eq!(out.len(), 1);
    let d = &out[0].1;
    assert_eq!(&d[..4], &[4, 3, 2, 1], "conv little-endian");
    assert_eq!(
        parse(d),
        vec![Seg {
            conv: 0x0102_0304,
            cmd: 81,
            frg: 0,
            wnd: 128,
            ts: 1000,
            sn: 0,
            una: 0,
            data: b"hello".to_vec()
        }]
    );
}

#[test]
fn message_fragments_count_down_and_fit_the_mtu() {
    let mut k = Kcp::new(1, Config::fast().with_mtu(500).with_windows(64, 128));
    let msg: Vec<u8> = (0..1200u32).map(|i| i as u8).collect();
    k.send(&msg).unwrap();
    let out = run(&mut k, 0, 1);
    assert!(out.iter().all(|(_, d)| d.len() <= 500), "MTU respected");
    let segs: Vec<Seg> = out.iter().flat_map(|(_, d)| parse(d)).collect();
    assert_eq!(
        segs.iter().map(|s| s.frg).collect::<Vec<_>>(),
        vec![2, 1, 0]
    );
    assert_eq!(segs.iter().map(|s| s.sn).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(
        segs.iter().flat_map(|s| s.data.clone()).collect::<Vec<_>>(),
        msg
    );
    // The receiver gives the message back whole, only when all fragments are in.
    let mut r = Kcp::new(1, Config::fast().with_mtu(500));
    let mut buf = vec![0u8; 4096];
    r.input(&out[out.len() - 1].1).unwrap();
    if out.len() > 1 {
        assert!(r.recv(&mut buf).is_err(), "incomplete message held back");
    }
    for (_, d) in &out {
        r.input(d).unwrap();
    }
    let n = r.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &msg[..]);
    // Too large for 127 fragments: refused, with the limit.
    assert!(k.send(&vec![0u8; 128 * 476]).is_err());
}

#[test]
fn stream_mode_fills_segments() {
    let mut k = Kcp::new(1, Config::fast().with_stream(true));
    for _ in 0..10 {
        k.send(&[7u8; 100]).unwrap();
    }
    let segs: Vec<Seg> = run(&mut k, 0, 1)
        .iter()
        .flat_map(|(_, d)| parse(d))
        .collect();
    assert_eq!(segs.len(), 1, "ten writes, one segment");
    assert_eq!((segs[0].frg, segs[0].data.len()), (0, 1000));
}

/// The times a lone, never-acknowledged segment is sent.
fn send_times(cfg: Config) -> Vec<u32> {
    let mut k = Kcp::new(1, cfg);
    k.send(b"x").unwrap();
    run(&mut k, 0, 3000).into_iter().map(|(t, _)| t).collect()
}

/// Gaps between sends match `want` to within the 10 ms flush interval.
fn assert_gaps(t: &[u32], want: &[u32]) {
    let gaps: Vec<u32> = t.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= want.len(), "{gaps:?}");
    for (g, w) in gaps.iter().zip(want) {
        assert!(g.abs_diff(*w) < 10, "gaps {gaps:?}, want {want:?}");
    }
}

#[test]
fn rto_doubles_in_normal_mode() {
    let cfg = Config {
        interval: 10,
        ..Config::normal()
    };
    // First RTO 200 + 200/8, then +max(rto, rx_rto) each time.
    assert_gaps(&send_times(cfg), &[225, 400, 800]);
}

#[test]
fn rto_grows_by_half_in_nodelay_mode() {
    assert_gaps(&send_times(Config::fast()), &[200, 300, 450, 675]);
}

#[test]
fn selective_ack_and_fast_retransmit_after_resend_skips() {
    let cfg = Config {
        resend: 2,
        ..Config::fast()
    };
    let mut k = Kcp::new(9, cfg);
    for i in 0..5u8 {
        k.send(&[i]).unwrap();
    }
    let first = run(&mut k, 0, 1);
    let segs: Vec<Seg> = first.iter().flat_map(|(_, d)| parse(d)).collect();
    assert_eq!(segs.len(), 5);
    // The peer got 1, 2 and 3, not 0: selective ACKs (una still 0).
    k.input(&ack(9, 1, 0, 0)).unwrap();
    assert!(
        run(&mut k, 5, 6).is_empty(),
        "one skip: no fast retransmit yet"
    );
    k.input(&ack(9, 2, 0, 0)).unwrap();
    let out = run(&mut k, 10, 11);
    let resent: Vec<u32> = out
        .iter()
        .flat_map(|(_, d)| parse(d))
        .map(|s| s.sn)
        .collect();
    assert_eq!(
        resent,
        vec![0],
        "sn 0 skipped twice: sent again at once, long before its RTO"
    );
    k.input(&ack(9, 3, 0, 0)).unwrap();
    // At the RTO, only what was not acknowledged goes again: 4 (and 0 later).
    let out = run(&mut k, 11, 260);
    let sns: Vec<u32> = out
        .iter()
        .flat_map(|(_, d)| parse(d))
        .map(|s| s.sn)
        .collect();
    assert!(sns.contains(&4), "{sns:?}");
    assert!(
        !sns.iter().any(|s| (1..=3).contains(s)),
        "acknowledged ones stay acknowledged: {sns:?}"
    );
    // A cumulative una=5 ends everything.
    k.input(&ack(9, 4, 0, 5)).unwrap();
    assert_eq!(k.wait_snd(), 0);
}

#[test]
fn send_window_limits_segments_in_flight() {
    let cfg = Config::fast().with_windows(4, 128);
    let mut k = Kcp::new(1, cfg);
    for i in 0..10u8 {
        k.send(&[i]).unwrap();
    }
    let segs: Vec<Seg> = run(&mut k, 0, 50)
        .iter()
        .flat_map(|(_, d)| parse(d))
        .collect();
    let mut sns: Vec<u32> = segs.iter().map(|s| s.sn).collect();
    sns.dedup();
    assert_eq!(sns, vec![0, 1, 2, 3], "four in flight, no more");
    k.input(&ack(1, 0, 0, 2)).unwrap();
    let segs: Vec<Seg> = run(&mut k, 50, 51)
        .iter()
        .flat_map(|(_, d)| parse(d))
        .collect();
    assert_eq!(segs.iter().map(|s| s.sn).collect::<Vec<_>>(), vec![4, 5]);
}

#[test]
fn receiver_acks_each_segment_and_advertises_its_window() {
    let mut s = Kcp::new(3, Config::fast());
    let mut r = Kcp::new(3, Config::fast());
    s.send(b"a").unwrap();
    s.send(b"b").unwrap();
    let d = run(&mut s, 0, 1);
    for (_, x) in &d {
        r.input(x).unwrap();
    }
    let acks: Vec<Seg> = run(&mut r, 0, 1)
        .iter()
        .flat_map(|(_, d)| parse(d))
        .collect();
    assert_eq!(
        acks.iter()
            .map(|a| (a.cmd, a.sn, a.una))
            .collect::<Vec<_>>(),
        vec![(82, 0, 2), (82, 1, 2)]
    );
    // Two messages queued, not read: the window shows it.
    assert_eq!(acks[0].wnd, 126);
}

#[test]
fn hostile_datagrams_are_rejected_without_panic() {
    let mut k = Kcp::new(5, Config::fast());
    assert_eq!(k.input(&[0; 10]), Err(InputError::TooShort(10)));
    assert!(matches!(
        k.input(&ack(6, 0, 0, 0)),
        Err(InputError::WrongConv {
            expected: 5,
            got: 6
        })
    ));
    let mut bad = ack(5, 0, 0, 0);
    bad[20] = 200; // len 200, nothing follows
    assert!(matches!(k.input(&bad), Err(InputError::Truncated { .. })));
    let mut bad = ack(5, 0, 0, 0);
    bad[4] = 99;
    assert_eq!(k.input(&bad), Err(InputError::UnknownCmd(99)));
    let mut x: u64 = 0x1234_5678;
    let mut buf = [0u8; 4096];
    for i in 0..20_000u32 {
        let len = (i as usize * 7) % 200;
        let mut d: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        if d.len() >= 8 {
            d[..4].copy_from_slice(&5u32.to_le_bytes());
            d[4] = 81 + (d[4] % 4);
        }
        let _ = k.input(&d);
        k.update(i, &mut |_| {});
        let _ = k.recv(&mut buf);
    }
}
