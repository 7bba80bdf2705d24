use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use ustack_core::time::{Duration, Instant};
use ustack_devices::memlink::DEFAULT_QUEUE_LIMIT;
use ustack_devices::{Impairments, LinkKind, LinkStats, MemLink, PcapSink, PortId};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
fn at_us(n: u64) -> Instant {
    Instant::from_micros(n)
}
fn frame(i: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0xA5; len.max(4)];
    f[..4].copy_from_slice(&i.to_be_bytes());
    f
}
fn id(f: &[u8]) -> u32 {
    u32::from_be_bytes(f[..4].try_into().unwrap())
}

fn pair(seed: u64, imp: Impairments) -> (MemLink, PortId, PortId) {
    let mut link = MemLink::new(seed);
    let a = link.add_port();
    let b = link.add_port();
    link.set_impairments(imp);
    (link, a, b)
}

/// Drains everything for `port` due by `until`, with the time each became due.
fn drain(link: &mut MemLink, port: PortId, until: Instant) -> Vec<(Instant, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(t) = link.poll_at_port(port) {
        if t > until {
            break;
        }
        if let Some(before) = t.checked_sub(Duration::from_micros(1)) {
            assert!(link.recv(before, port).is_none(), "frame handed out early");
        }
        out.push((t, link.recv(t, port).expect("due frame")));
    }
    out
}

#[test]
fn perfect_link_delivers_at_send_time_to_others_only() {
    let mut link = MemLink::new(1);
    let a = link.add_port();
    let b = link.add_port();
    let c = link.add_port();
    link.send(at_us(5), a, b"hello");
    assert_eq!(link.poll_at(), Some(at_us(5)));
    assert_eq!(link.recv(at_us(4), b), None);
    assert_eq!(link.recv(at_us(5), b).as_deref(), Some(&b"hello"[..]));
    assert_eq!(link.recv(at_us(5), c).as_deref(), Some(&b"hello"[..]));
    assert_eq!(
        link.recv(at_us(5), a),
        None,
        "hub must not echo to the sender"
    );
    assert_eq!(link.poll_at(), None);
    let s = link.stats();
    assert_eq!((s.sent, s.delivered, s.bytes_delivered), (1, 2, 10));
}

#[test]
fn delay_and_bandwidth_give_exact_arrival_times() {
    // 1 Mbit/s: a 125-byte frame takes 1 ms to serialize; then 10 ms propagation.
    let imp = Impairments::none()
        .with_delay(ms(10))
        .with_bandwidth(1_000_000);
    let (mut link, a, b) = pair(1, imp);
    for i in 0..3 {
        link.send(Instant::ZERO, a, &frame(i, 125));
    }
    // Sent later, after the serializer went idle: no queueing.
    link.send(Instant::from_millis(20), a, &frame(3, 125));
    let got = drain(&mut link, b, Instant::MAX);
    let times: Vec<u64> = got.iter().map(|(t, _)| t.total_micros()).collect();
    assert_eq!(times, [11_000, 12_000, 13_000, 31_000]);
    let ids: Vec<u32> = got.iter().map(|(_, f)| id(f)).collect();
    assert_eq!(ids, [0, 1, 2, 3]);
}

#[test]
fn sub_microsecond_serialization_accumulates_exactly() {
    // 10 Gbit/s, 125-byte frames: 100 ns each; 1000 of them end at exactly 100 us.
    let (mut link, a, b) = pair(1, Impairments::none().with_bandwidth(10_000_000_000));
    for i in 0..1000 {
        link.send(Instant::ZERO, a, &frame(i, 125));
    }
    let got = drain(&mut link, b, Instant::MAX);
    assert_eq!(got.len(), 1000);
    assert_eq!(
        got[0].0,
        at_us(1),
        "100 ns rounds up to the next microsecond"
    );
    assert_eq!(got[999].0, at_us(100));
}

#[test]
fn directions_serialize_independently_and_override_applies() {
    let (mut link, a, b) = pair(1, Impairments::none().with_delay(ms(1)));
    link.set_direction_impairments(a, b, Impairments::lossy(1.0));
    for i in 0..10 {
        link.send(Instant::ZERO, a, &frame(i, 10));
        link.send(Instant::ZERO, b, &frame(i, 10));
    }
    assert!(drain(&mut link, b, Instant::MAX).is_empty());
    let back = drain(&mut link, a, Instant::MAX);
    assert_eq!(back.len(), 10);
    assert!(back.iter().all(|(t, _)| *t == Instant::from_millis(1)));
    assert_eq!(link.stats().dropped_loss, 10);
}

#[test]
fn loss_rate_matches_configuration() {
    let (mut link, a, b) = pair(42, Impairments::lossy(0.1));
    let n = 100_000u64;
    for i in 0..n {
        link.send(at_us(i), a, &frame(i as u32, 4));
        while link.recv_with(at_us(i), b, |_| ()).is_some() {}
    }
    let s = link.stats();
    assert_eq!(s.sent, n);
    assert_eq!(s.delivered + s.dropped_loss, n);
    // sd = sqrt(n p (1-p)) ~ 95; allow ~10 sd.
    let rate = s.dropped_loss as f64 / n as f64;
    assert!((rate - 0.1).abs() < 0.01, "loss rate {rate}");
}

#[test]
fn duplicates_are_counted_and_visible() {
    let (mut link, a, b) = pair(3, Impairments::none().with_duplicate(0.2).with_delay(ms(1)));
    for i in 0..10_000 {
        link.send(at_us(u64::from(i) * 10), a, &frame(i, 8));
    }
    let got = drain(&mut link, b, Instant::MAX);
    let s = link.stats();
    assert_eq!(got.len() as u64, 10_000 + s.duplicated);
    let mut counts = vec![0u32; 10_000];
    for (_, f) in &got {
        counts[id(f) as usize] += 1;
    }
    assert_eq!(
        counts.iter().filter(|&&c| c == 2).count() as u64,
        s.duplicated
    );
    assert!(counts.iter().all(|&c| c == 1 || c == 2));
    assert!(
        (1700..2300).contains(&s.duplicated),
        "duplicated {}",
        s.duplicated
    );
}

#[test]
fn reorder_lets_later_frames_overtake() {
    let imp = Impairments::none()
        .with_delay(ms(2))
        .with_reorder(0.1, ms(5));
    let (mut link, a, b) = pair(4, imp);
    for i in 0..2000 {
        link.send(Instant::from_millis(u64::from(i)), a, &frame(i, 8));
    }
    let got = drain(&mut link, b, Instant::MAX);
    assert_eq!(got.len(), 2000);
    let ids: Vec<u32> = got.iter().map(|(_, f)| id(f)).collect();
    // Frames delivered after some frame sent later than them.
    let mut max_seen = 0;
    let mut late = 0u64;
    for &i in &ids {
        if i < max_seen {
            late += 1;
        }
        max_seen = max_seen.max(i);
    }
    let s = link.stats();
    assert!(
        (150..250).contains(&s.reordered),
        "reordered {}",
        s.reordered
    );
    // Each held-back frame (5 ms behind, 1 ms spacing) lands after later ones.
    assert_eq!(late, s.reordered);
    // Delivery times never go backwards.
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[test]
fn jitter_alone_never_reorders() {
    let imp = Impairments::none().with_delay(ms(1)).with_jitter(ms(20));
    let (mut link, a, b) = pair(5, imp);
    for i in 0..5000 {
        link.send(at_us(u64::from(i) * 100), a, &frame(i, 8));
    }
    let got = drain(&mut link, b, Instant::MAX);
    let ids: Vec<u32> = got.iter().map(|(_, f)| id(f)).collect();
    assert_eq!(ids, (0..5000).collect::<Vec<_>>());
    // Jitter did vary the one-way latency.
    let lat: Vec<u64> = got
        .iter()
        .map(|(t, f)| t.total_micros() - u64::from(id(f)) * 100)
        .collect();
    assert!(lat.iter().all(|&l| l >= 1000));
    assert!(lat.iter().max().unwrap() - lat.iter().min().unwrap() > 10_000);
}

#[test]
fn corruption_flips_one_bit_and_is_counted() {
    let (mut link, a, b) = pair(6, Impairments::none().with_corrupt(0.3));
    let n = 5000;
    for i in 0..n {
        link.send(Instant::ZERO, a, &frame(i, 64));
    }
    let got = drain(&mut link, b, Instant::MAX);
    assert_eq!(got.len(), n as usize);
    let mut changed = 0u64;
    for (i, (_, f)) in got.iter().enumerate() {
        let orig = frame(i as u32, 64);
        let bits: u32 = f.iter().zip(&orig).map(|(x, y)| (x ^ y).count_ones()).sum();
        assert!(bits <= 1);
        if bits > 0 {
            changed += 1;
        }
    }
    assert_eq!(changed, link.stats().corrupted);
    assert!((1300..1700).contains(&changed), "corrupted {changed}");
}

#[test]
fn queue_limit_drops_are_counted() {
    // 8 kbit/s: a 100-byte frame takes 100 ms on the wire.
    let imp = Impairments::none()
        .with_bandwidth(8_000)
        .with_queue_limit(10);
    let (mut link, a, b) = pair(7, imp);
    for i in 0..100 {
        link.send(Instant::ZERO, a, &frame(i, 100));
    }
    assert_eq!(link.stats().dropped_queue, 90);
    // After the first frame finished, one slot is free again.
    link.send(Instant::from_millis(100), a, &frame(100, 100));
    link.send(Instant::from_millis(100), a, &frame(101, 100));
    assert_eq!(link.stats().dropped_queue, 91);
    let ids: Vec<u32> = drain(&mut link, b, Instant::MAX)
        .iter()
        .map(|(_, f)| id(f))
        .collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100]);
}

#[test]
fn default_queue_limit_applies_when_zero() {
    let (mut link, a, _b) = pair(7, Impairments::none().with_bandwidth(8_000));
    for i in 0..(DEFAULT_QUEUE_LIMIT as u32 + 5) {
        link.send(Instant::ZERO, a, &frame(i, 100));
    }
    assert_eq!(link.stats().dropped_queue, 5);
}

fn everything() -> Impairments {
    Impairments::none()
        .with_loss(0.05)
        .with_duplicate(0.05)
        .with_reorder(0.05, ms(3))
        .with_delay(ms(2))
        .with_jitter(ms(1))
        .with_bandwidth(100_000_000)
        .with_corrupt(0.05)
}

fn run_once(seed: u64) -> (Vec<(Instant, Vec<u8>)>, LinkStats) {
    let (mut link, a, b) = pair(seed, everything());
    for i in 0..3000 {
        link.send(at_us(u64::from(i) * 50), a, &frame(i, 200));
    }
    (drain(&mut link, b, Instant::MAX), link.stats())
}

#[test]
fn same_seed_same_run_different_seed_different_run() {
    let (x, sx) = run_once(99);
    let (y, sy) = run_once(99);
    let (z, _) = run_once(100);
    assert_eq!(x, y);
    assert_eq!(sx, sy);
    assert_ne!(x, z);
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);
impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn capture_records_frames_as_sent_before_impairments() {
    let (mut link, a, b) = pair(8, Impairments::lossy(1.0).with_delay(ms(7)));
    let buf = Shared::default();
    let sink = PcapSink::new(buf.clone(), LinkKind::Ip)
        .unwrap()
        .with_epoch(Duration::ZERO);
    link.set_capture(Some(sink));
    link.send(Instant::from_millis(1), a, &frame(1, 20));
    link.send(at_us(2_000_123), b, &frame(2, 30));
    let mut sink = link.take_capture().unwrap();
    sink.flush().unwrap();
    assert_eq!(sink.frames(), 2);
    let bytes = buf.0.lock().unwrap().clone();
    let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
    assert_eq!(r.header().datalink, pcap_file::DataLink::RAW);
    let p1 = r.next_packet().unwrap().unwrap();
    assert_eq!((p1.timestamp, p1.data.len()), (ms(1), 20));
    let p2 = r.next_packet().unwrap().unwrap();
    assert_eq!(
        (p2.timestamp, &p2.data[..]),
        (Duration::from_micros(2_000_123), &frame(2, 30)[..])
    );
    assert!(r.next_packet().is_none());
}

/// By default a capture carries real dates: the first frame at the wall
/// clock, later ones spaced exactly as on the stack's clock.
#[test]
fn capture_timestamps_are_wall_clock_dates_spaced_by_stack_time() {
    let buf = Shared::default();
    let mut sink = PcapSink::new(buf.clone(), LinkKind::Ip).unwrap();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    sink.write(at_us(5_000_000), &frame(1, 20)).unwrap();
    sink.write(at_us(5_250_321), &frame(2, 20)).unwrap();
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    sink.flush().unwrap();
    let bytes = buf.0.lock().unwrap().clone();
    let mut r = pcap_file::pcap::PcapReader::new(&bytes[..]).unwrap();
    let t1 = r.next_packet().unwrap().unwrap().timestamp;
    let t2 = r.next_packet().unwrap().unwrap().timestamp;
    // Microsecond resolution: allow the truncation of `before`.
    assert!(
        t1 + Duration::from_micros(1) >= before && t1 <= after,
        "{t1:?} not within [{before:?}, {after:?}]"
    );
    assert_eq!(t2 - t1, Duration::from_micros(250_321));
}

#[test]
fn capture_write_error_stops_capture_and_is_reported() {
    /// Accepts this many bytes, then fails.
    struct Failing(usize);
    impl Write for Failing {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.0 < b.len() {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let (mut link, a, b) = pair(9, Impairments::none());
    // Room for the 24-byte file header only.
    link.set_capture(Some(
        PcapSink::new(Failing(24), LinkKind::Ethernet).unwrap(),
    ));
    link.send(Instant::ZERO, a, b"x");
    assert!(link.capture_error().is_some());
    assert!(link.take_capture().is_none());
    assert_eq!(
        link.recv(Instant::ZERO, b).as_deref(),
        Some(&b"x"[..]),
        "link keeps working"
    );
}

#[test]
fn corruption_flips_exactly_one_bit() {
    // One flipped bit: the error every Internet checksum detects.
    let (mut link, a, b) = pair(10, Impairments::none().with_corrupt(1.0));
    for _ in 0..2000 {
        link.send(Instant::ZERO, a, &[0]);
    }
    while let Some(f) = link.recv(Instant::ZERO, b) {
        assert_eq!(f[0].count_ones(), 1, "{:08b}", f[0]);
    }
    assert_eq!(link.stats().corrupted, 2000);
    link.send(Instant::ZERO, a, &[]);
    assert_eq!(link.recv(Instant::ZERO, b), Some(vec![]));
    assert_eq!(
        link.stats().corrupted,
        2000,
        "nothing to flip in an empty frame"
    );
}
