//! Pacing on the virtual clock: the gaps between the segments a paced
//! sender puts on the wire, and no delay for a flow the application limits.

mod common;

use common::{Delayed, Pair, A};
use ustack_core::wire::{Ipv4Packet, TcpPacket};
use ustack_core::{Duration, Errno, Instant, Medium, SocketHandle};

/// The data segments A sent, as (time, payload bytes), from the trace.
fn data_from_a(p: &Pair) -> Vec<(Instant, usize)> {
    p.trace
        .iter()
        .filter(|(_, from_a, _)| *from_a)
        .filter_map(|(t, _, f)| {
            let ip = Ipv4Packet::new_checked(&f[..]).ok()?;
            let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
            let n = tcp.payload().len();
            (n > 0 && ip.src_addr() == A).then_some((*t, n))
        })
        .collect()
}

/// Sends `total` bytes from `c` to `s` in 1 ms steps for at most `limit`.
fn transfer(p: &mut Pair, c: SocketHandle, s: SocketHandle, total: usize, limit: Duration) {
    let data = vec![0x5a; total];
    let (mut sent, mut got) = (0, 0);
    let mut buf = vec![0u8; 65536];
    let end = p.now + limit;
    while got < total && p.now < end {
        while sent < total {
            match p.a.tcp_send(p.now, c, &data[sent..]) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("{e}"),
            }
        }
        p.advance(Duration::from_millis(1));
        while let Ok(n) = p.b.tcp_recv(s, &mut buf) {
            assert!(buf[..n].iter().all(|&b| b == 0x5a));
            got += n;
        }
    }
    assert_eq!(got, total, "the transfer finished");
}

/// Groups of segments sent at the same instant: (time, segments, bytes).
fn bursts(segs: &[(Instant, usize)]) -> Vec<(Instant, usize, usize)> {
    let mut out: Vec<(Instant, usize, usize)> = Vec::new();
    for &(t, n) in segs {
        match out.last_mut() {
            Some(b) if b.0 == t => {
                b.1 += 1;
                b.2 += n;
            }
            _ => out.push((t, 1, n)),
        }
    }
    out
}

#[test]
fn so_max_pacing_rate_spaces_the_segments() {
    const RATE: u64 = 1_000_000;
    let mut p = Pair::new(Medium::Ip);
    let (c, s) = p.connect(80);
    p.a.tcp_set_max_pacing_rate(c, Some(RATE)).unwrap();
    assert_eq!(p.a.tcp_options(c).unwrap().max_pacing_rate, Some(RATE));
    p.trace.clear();
    transfer(&mut p, c, s, 100_000, Duration::from_secs(5));
    let b = bursts(&data_from_a(&p));
    // About 1 ms of data per burst is less than a segment at 1 MB/s: the
    // floor of two segments.
    assert!(b.iter().all(|x| x.1 <= 2), "{b:?}");
    for w in b.windows(2) {
        let gap = w[1].0.total_micros() - w[0].0.total_micros();
        let due = w[0].2 as u64 * 1_000_000 / RATE;
        assert!(gap >= due, "{gap} µs after {} bytes: {b:?}", w[0].2);
    }
    let first = b.first().unwrap().0;
    let last = b.last().unwrap();
    let secs = (last.0.total_micros() - first.total_micros()) as f64 / 1e6;
    let bytes = (100_000 - last.2) as f64;
    assert!(
        bytes / secs <= RATE as f64 * 1.01,
        "{:.0} B/s over a ceiling of {RATE}",
        bytes / secs
    );

    // Unpaced (the default), the same transfer leaves the whole initial
    // window at once.
    let mut q = Pair::new(Medium::Ip);
    let (c, s) = q.connect(80);
    q.trace.clear();
    transfer(&mut q, c, s, 100_000, Duration::from_secs(5));
    let b = bursts(&data_from_a(&q));
    assert!(b[0].1 >= 10, "{b:?}");
}

#[test]
fn an_application_limited_flow_is_not_held() {
    let mut p = Pair::new(Medium::Ip);
    let (c, s) = p.connect(80);
    // 10 kB/s: a 1000-byte write owes 100 ms of gap.
    p.a.tcp_set_max_pacing_rate(c, Some(10_000)).unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..5 {
        p.trace.clear();
        let t = p.now;
        assert_eq!(p.a.tcp_send(p.now, c, &[1u8; 1000]), Ok(1000));
        p.pump();
        assert_eq!(data_from_a(&p), vec![(t, 1000)], "sent at once");
        assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(1000));
        // Nothing waits, so no pacing timer: no deadline at the end of
        // the gap (other timers, such as the RTO, may be pending).
        let gap_end = t + Duration::from_millis(100);
        assert_ne!(p.a.poll_at(), Some(gap_end));
        // The application pauses longer than the gap it owes.
        p.advance(Duration::from_millis(150));
    }
    // A write larger than a burst is paced: the second burst waits.
    p.trace.clear();
    let t = p.now;
    assert_eq!(p.a.tcp_send(p.now, c, &[2u8; 4000]), Ok(4000));
    p.pump();
    let sent: usize = data_from_a(&p).iter().map(|x| x.1).sum();
    assert!(sent < 4000, "held: {:?}", data_from_a(&p));
    let next = p.a.poll_at().expect("the pacing timer");
    assert!(
        next > t && next <= t + Duration::from_millis(300),
        "{next:?} at {t:?}: {:?}",
        data_from_a(&p)
    );
}

/// BBR over a 100 ms RTT: A writes `total` bytes, B reads them; A's data
/// segments as (time, payload bytes).
fn bbr_over_a_delay(total: usize, secs: u64) -> Vec<(Instant, usize)> {
    let mut d = Delayed::new(ustack_core::Congestion::Bbr, total);
    let (c, s) = d.connect();
    d.sent.clear();
    let data = vec![0x5a; total];
    assert_eq!(d.p.a.tcp_send(d.p.now, c, &data), Ok(total));
    let mut got = 0;
    let mut buf = vec![0u8; 65536];
    d.run(Duration::from_secs(secs), |p| {
        while let Ok(n) = p.b.tcp_recv(s, &mut buf) {
            got += n;
        }
        got == total
    });
    d.sent
}

/// BBR's STARTUP paces from its first RTT sample on: 2/ln 2 × cwnd /
/// RTT (Linux `bbr_init_pacing_rate_from_rtt`), not at the rate its
/// placeholder RTT of 1 ms gave (334 Mbit/s for ten segments: no
/// pacing at all), so the second round trip's data is spread over it.
#[test]
fn bbr_startup_paces_from_the_first_rtt_sample() {
    let segs = bbr_over_a_delay(2 << 20, 1);
    let first = segs[0].0;
    let iw: usize = segs.iter().take_while(|s| s.0 == first).map(|s| s.1).sum();
    assert!(iw >= 10 * 1400, "the initial window leaves at once: {iw}");
    // The first ACK is back one RTT after: the second round begins.
    let round2 = segs.iter().find(|s| s.0 > first).unwrap().0;
    let rtt = Duration::from_millis(100);
    assert!(round2 >= first + rtt, "{round2:?}");
    // In its first 20 ms, at 2.885 × iw / 100 ms, about 8 kB leave (and a
    // burst), where unpaced the whole ACK-clocked round went at once.
    let window = round2 + Duration::from_millis(20);
    let early: usize = segs
        .iter()
        .filter(|s| s.0 >= round2 && s.0 < window)
        .map(|s| s.1)
        .sum();
    let due = iw as u64 * 2885 / 1000 * 20 / 100;
    assert!(
        (early as u64) <= due + 3 * 1460 && (early as u64) >= due / 2,
        "{early} bytes in the first 20 ms of round 2, {due} due"
    );
}

/// A receive window that holds the sender back makes app-limited rate
/// samples (as the application running dry does): what is delivered then
/// measures the receiver, and BBR stays in STARTUP, ready to grow when
/// the window opens, instead of taking it for a full pipe.
#[test]
fn a_receive_window_limit_is_no_full_pipe() {
    let total = 2 << 20;
    let mut d = Delayed::with_rcvbuf(ustack_core::Congestion::Bbr, total, Some(64 << 10));
    let (c, s) = d.connect();
    let data = vec![0x5a; total];
    assert_eq!(d.p.a.tcp_send(d.p.now, c, &data), Ok(total));
    let mut got = 0;
    let mut buf = vec![0u8; 65536];
    // 20 round trips of 100 ms, B reading all it gets at once.
    d.run(Duration::from_secs(2), |p| {
        while let Ok(n) = p.b.tcp_recv(s, &mut buf) {
            got += n;
        }
        false
    });
    let i = d.p.a.tcp_info(c).unwrap();
    // About a window per round trip: the receiver, not the path, limited.
    assert!(got > 10 * 40_000 && got < 20 * 80_000, "{got} bytes");
    assert!(i.snd_wnd <= 64 << 10, "{}", i.snd_wnd);
    assert_eq!(i.cc_mode, "startup", "{i:?}");
}
