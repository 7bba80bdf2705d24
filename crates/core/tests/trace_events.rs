//! The per-segment trace (`StackConfig::trace`): a scripted transfer that
//! loses one data segment shows, in order, the segments, the duplicate
//! ACKs with SACK, the fast retransmit, the congestion response and the
//! RTT samples; with tracing off none of them is recorded.

mod common;

use common::{config, Pair, A, B};
use std::net::SocketAddr;
use ustack_core::wire::TcpFlags;
use ustack_core::{Duration, Event, EventKind, Medium, RetransmitCause};

const MSS_DATA: usize = 1448;

/// a sends 40 segments to b; the 5th data segment is lost once. (The
/// pair delivers at once: b answers a whole flight with one ACK.)
fn lossy_transfer(trace: bool, rack: bool) -> (Vec<Event>, Vec<u8>) {
    let mut ca = config(Medium::Ip, A, 1).with_trace(trace);
    let mut cb = config(Medium::Ip, B, 2).with_trace(trace);
    ca.tcp.rack = rack;
    ca.tcp.gso = false;
    cb.tcp.gso = false;
    let mut p = Pair::with(ca, cb);
    let mut data_seen = 0;
    p.filter = Box::new(move |from_a, f| {
        // IPv4 header 20 bytes, TCP header 32 (timestamps): data beyond.
        if from_a && f.len() > 60 {
            data_seen += 1;
            if data_seen == 5 {
                return None;
            }
        }
        Some(f)
    });
    let l = p.b.tcp_open();
    p.b.tcp_bind(l, SocketAddr::from((B, 80))).unwrap();
    p.b.tcp_listen(l, 1).unwrap();
    let c = p.a.tcp_open();
    let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((B, 80)));
    p.advance(Duration::from_millis(10));
    let (s, _) = p.b.tcp_accept(l).unwrap();
    let data: Vec<u8> = (0..40 * MSS_DATA).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..1000 {
        if sent < data.len() {
            sent += p.a.tcp_send(p.now, c, &data[sent..]).unwrap_or(0);
        }
        p.advance(Duration::from_millis(5));
        while let Ok(n) = p.b.tcp_recv(s, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got, data, "every byte arrives");
    (p.a.take_events(), got)
}

#[test]
fn one_loss_shows_dupacks_then_fast_retransmit_then_the_cwnd_cut() {
    // The ACK after the loss SACKs five segments above the hole: the
    // scoreboard's IsLost(SND.UNA) (RFC 6675 §4), with RACK on or off.
    check_one_loss(true, RetransmitCause::FastRetransmit);
    check_one_loss(false, RetransmitCause::FastRetransmit);
}

fn check_one_loss(rack: bool, want: RetransmitCause) {
    let (ev, _) = lossy_transfer(true, rack);
    if std::env::var("SHOW").is_ok() {
        for e in &ev {
            eprintln!("{:?}", e);
        }
    }
    let pos = |f: &dyn Fn(&EventKind) -> bool| ev.iter().position(|e| f(&e.kind));
    // The handshake: our SYN out, the SYN-ACK in, window scale offered.
    let syn = pos(&|k| {
        matches!(k, EventKind::TcpSegment { sent: true, flags, wscale: Some(_), .. }
            if TcpFlags(*flags).contains(TcpFlags::SYN))
    })
    .expect("SYN traced");
    let synack = pos(&|k| {
        matches!(k, EventKind::TcpSegment { sent: false, flags, .. }
            if TcpFlags(*flags).contains(TcpFlags::SYN | TcpFlags::ACK))
    })
    .expect("SYN-ACK traced");
    assert!(syn < synack);
    // The lost segment: the 5th with data.
    let lost_seq = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TcpSegment {
                sent: true,
                len,
                seq,
                ..
            } if *len > 0 => Some(*seq),
            _ => None,
        })
        .nth(4)
        .expect("5 data segments sent");
    // Duplicate ACKs for it, carrying SACK blocks above it.
    let first_dup = pos(&|k| {
        matches!(k, EventKind::TcpSegment { sent: false, ack, sack, .. }
            if *ack == lost_seq && sack.first().is_some_and(|b| b.0.wrapping_sub(lost_seq) as i32 > 0))
    })
    .expect("a duplicate ACK with SACK");
    // Exactly one retransmission: that segment, a fast retransmit.
    let rtx: Vec<(usize, u32, u32, RetransmitCause)> = ev
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.kind {
            EventKind::TcpRetransmit {
                seq, len, cause, ..
            } => Some((i, *seq, *len, *cause)),
            _ => None,
        })
        .collect();
    assert_eq!(rtx.len(), 1, "one retransmission: {rtx:?}");
    let (rtx_at, seq, len, cause) = rtx[0];
    assert_eq!((seq, len as usize, cause), (lost_seq, MSS_DATA, want));
    assert!(first_dup < rtx_at, "duplicate ACKs come before the repair");
    // The segment goes out again right after the retransmission event.
    assert!(matches!(&ev[rtx_at + 1].kind,
        EventKind::TcpSegment { sent: true, seq, .. } if *seq == lost_seq));
    // The congestion response (RFC 5681 §3.2): ssthresh from "infinite"
    // to half the flight, at the loss, not before.
    let cut = pos(&|k| matches!(k, EventKind::TcpCwnd { ssthresh, .. } if *ssthresh < 1 << 30))
        .expect("ssthresh set");
    assert!(first_dup < cut && cut <= rtx_at + 1, "cut at the loss");
    // After recovery, congestion avoidance: cwnd grows past ssthresh.
    let EventKind::TcpCwnd {
        cwnd: cut_cwnd,
        ssthresh: cut_ss,
        ..
    } = ev[cut].kind
    else {
        unreachable!()
    };
    assert!(cut_cwnd <= cut_ss);
    assert!(ev[cut..].iter().any(
        |e| matches!(e.kind, EventKind::TcpCwnd { cwnd, ssthresh, .. } if ssthresh == cut_ss && cwnd > cut_ss)
    ));
    // RTT samples, with RTO at least the 200 ms floor.
    let rtts: Vec<_> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::TcpRtt { rto, .. } => Some(*rto),
            _ => None,
        })
        .collect();
    assert!(!rtts.is_empty(), "RTT samples traced");
    assert!(rtts.iter().all(|r| *r >= Duration::from_millis(200)));
    // An ACK covering everything arrives last of all the data ACKs.
    let full = pos(&|k| {
        matches!(k, EventKind::TcpSegment { sent: false, ack, .. }
            if ack.wrapping_sub(lost_seq) as i32 >= 16 * MSS_DATA as i32)
    })
    .expect("the final ACK");
    assert!(rtx_at < full);
}

#[test]
fn without_trace_no_segment_events_are_recorded() {
    let (ev, _) = lossy_transfer(false, true);
    assert!(ev
        .iter()
        .any(|e| matches!(e.kind, EventKind::TcpState { .. })));
    assert!(!ev.iter().any(|e| matches!(
        e.kind,
        EventKind::TcpSegment { .. }
            | EventKind::TcpRetransmit { .. }
            | EventKind::TcpCwnd { .. }
            | EventKind::TcpRtt { .. }
            | EventKind::TcpWindow { .. }
    )));
}

/// A TCP/IPv4 header with random options and lengths, as from the wire.
fn tcp_frame(opts: &[u8], hlen_words: u8, total_extra: u16, payload: &[u8]) -> Vec<u8> {
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = hlen_words << 4;
    tcp[13] = 0x10;
    tcp.extend_from_slice(opts);
    tcp.extend_from_slice(payload);
    let total = (20 + tcp.len()) as u16;
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1,
    ];
    ip[2..4].copy_from_slice(&total.wrapping_add(total_extra).to_be_bytes());
    let sum = ustack_core::wire::checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&(!sum).to_be_bytes());
    ip.extend_from_slice(&tcp);
    ip
}

proptest::proptest! {
    /// The trace parses every frame in and out: wire input with any
    /// options, data offset or lengths never panics it (nor the stack).
    #[test]
    fn traced_stack_takes_hostile_tcp_frames(
        frames in proptest::collection::vec(
            (proptest::collection::vec(proptest::prelude::any::<u8>(), 0..44),
             0u8..16, 0u16..64,
             proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)),
            1..10),
    ) {
        let mut s = ustack_core::Stack::new(config(Medium::Ip, A, 3).with_trace(true)).unwrap();
        let mut now = ustack_core::Instant::from_secs(1);
        let mut buf = vec![0u8; 2048];
        for (opts, words, extra, payload) in frames {
            s.receive(now, &tcp_frame(&opts, words, extra, &payload));
            while s.transmit(now, &mut buf).is_some() {}
            now += Duration::from_millis(1);
        }
        let _ = s.take_events();
    }
}
