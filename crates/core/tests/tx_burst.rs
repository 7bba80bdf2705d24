//! `Stack::transmit_burst`: several frames per call, exactly the frames
//! (and counters) that as many `transmit` calls write. Two transfers run
//! side by side on the virtual clock, one driven frame by frame and one
//! in batches of varying size, with data both ways (ACKs arrive between
//! the batches of a burst), lost frames (fast retransmits, RTOs, tail
//! loss probes), buffers too short for a frame, lent (zero-copy) and
//! copied sends; the frames on the wire must match byte for byte.

mod common;

use common::{config, A, B};
use std::net::SocketAddr;
use ustack_core::{Counters, Duration, Errno, Instant, Medium, SocketHandle, Stack, ZcDone};

/// Bytes each way.
const A_TO_B: usize = 700 * 1448;
const B_TO_A: usize = 120_000;
/// Frames each side may write per turn, in rotation.
const TURNS: [usize; 7] = [1, 3, 44, 2, 64, 7, 16];

fn pattern(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32 * 7 + i as u32 / 251) as u8 ^ salt)
        .collect()
}

struct Run {
    /// Every frame written, in order: (turn, from A?, bytes).
    wire: Vec<(u64, bool, Vec<u8>)>,
    counters: [Counters; 2],
}

/// One side's turn: up to `k` frames into `bufs` (the fourth of them
/// too short for a full segment every fourth turn), by one
/// `transmit_burst` call or `k` `transmit` calls.
fn turn(s: &mut Stack, now: Instant, bufs: &mut [Vec<u8>], burst: bool) -> Vec<Vec<u8>> {
    let mut lens = vec![0usize; bufs.len()];
    let n = if burst {
        s.transmit_burst(now, bufs, &mut lens)
    } else {
        let mut n = 0;
        while n < bufs.len() {
            match s.transmit(now, &mut bufs[n]) {
                Some(len) => lens[n] = len,
                None => break,
            }
            n += 1;
        }
        n
    };
    (0..n).map(|i| bufs[i][..lens[i]].to_vec()).collect()
}

fn run(medium: Medium, burst: bool) -> Run {
    let mut st = [
        Stack::new(config(medium, A, 1)).unwrap(),
        Stack::new(config(medium, B, 2)).unwrap(),
    ];
    let mut now = Instant::from_secs(1);
    let l = st[1].tcp_open();
    st[1].tcp_bind(l, SocketAddr::from((B, 80))).unwrap();
    st[1].tcp_listen(l, 8).unwrap();
    let c = st[0].tcp_open();
    assert_eq!(
        st[0].tcp_connect(now, c, SocketAddr::from((B, 80))),
        Err(Errno::EINPROGRESS)
    );
    let data = [pattern(A_TO_B, 0), pattern(B_TO_A, 0x5a)];
    let mut sock: [Option<SocketHandle>; 2] = [Some(c), None];
    let (mut sent, mut got) = ([0usize; 2], [Vec::new(), Vec::new()]);
    let mut wire = Vec::new();
    let mut written = [0u64; 2];
    let mut zc = Vec::<ZcDone>::new();
    let mut rbuf = vec![0u8; 10_000];
    for t in 0..200_000u64 {
        if got[1].len() == A_TO_B && got[0].len() == B_TO_A {
            break;
        }
        let mut moved = false;
        for side in 0..2 {
            let k = TURNS[t as usize % TURNS.len()];
            let mut bufs: Vec<Vec<u8>> = (0..k).map(|_| vec![0u8; 1600]).collect();
            if t % 4 == 1 && k > 3 {
                bufs[3].truncate(700);
            }
            for f in turn(&mut st[side], now, &mut bufs, burst) {
                moved = true;
                written[side] += 1;
                wire.push((t, side == 0, f.clone()));
                // Loss: every 13th frame of A's, every 9th of B's, and
                // all for a while (the timers fire: TLP, RTOs).
                let lost = written[side] % [13, 9][side] == 0 || (300..310).contains(&t);
                if !lost {
                    st[1 - side].receive(now, &f);
                }
            }
        }
        if sock[1].is_none() {
            sock[1] = st[1].tcp_accept(l).ok().map(|(h, _)| h);
        }
        for side in 0..2 {
            let Some(h) = sock[side] else { continue };
            let s = &mut st[side];
            // A writes 20 full segments every 25th turn: most of its
            // bursts end at the end of what is queued (PSH).
            if sent[side] < data[side].len() && (side == 1 || t % 25 == 0) {
                let end = (sent[side] + 28_960).min(data[side].len());
                let chunk = &data[side][sent[side]..end];
                // A lends every other chunk (zero-copy), copies the rest.
                if side == 0 && (sent[side] / 28_960) % 2 == 1 {
                    if s.tcp_send_zc(now, h, Box::new(chunk.to_vec()), 1).is_ok() {
                        sent[side] = end;
                    }
                } else if let Ok(n) = s.tcp_send(now, h, chunk) {
                    sent[side] += n;
                }
            }
            while let Ok(n) = s.tcp_recv(h, &mut rbuf) {
                if n == 0 {
                    break;
                }
                got[side].extend_from_slice(&rbuf[..n]);
            }
            let _ = s.tcp_zc_done(h, &mut zc);
        }
        if !moved {
            let next = st.iter().filter_map(|s| s.poll_at()).min();
            now = match next {
                Some(at) if at > now => at,
                _ => now + Duration::from_millis(1),
            };
        } else {
            now += Duration::from_micros(50);
        }
    }
    assert!(
        got[1] == data[0],
        "A's bytes reached B intact, in order (burst {burst}: {} of {}, {} frames, {now:?})",
        got[1].len(),
        A_TO_B,
        wire.len()
    );
    assert!(got[0] == data[1], "B's bytes reached A intact, in order");
    Run {
        wire,
        counters: [*st[0].counters(), *st[1].counters()],
    }
}

fn same_frames(medium: Medium) {
    let plain = run(medium, false);
    let burst = run(medium, true);
    let a = plain.counters[0];
    eprintln!(
        "frames {} bursts {} retrans {} rto {} tlp {} short {} fast {}",
        plain.wire.len(),
        a.tcp.burst_segs,
        a.tcp.retrans_segs,
        a.tcp.timeouts,
        a.tcp.tlp_probes,
        a.link.tx_dropped_too_big,
        a.tcp.fast_retrans
    );
    assert!(
        a.tcp.burst_segs > 300,
        "bursts went out: {}",
        a.tcp.burst_segs
    );
    assert!(a.tcp.retrans_segs > 10, "lost segments were sent again");
    assert!(a.tcp.timeouts > 0, "an RTO fired");
    assert!(a.link.tx_dropped_too_big > 0, "a short buffer was met");
    assert_eq!(plain.wire.len(), burst.wire.len(), "frame count");
    for (i, (p, b)) in plain.wire.iter().zip(&burst.wire).enumerate() {
        assert!(p == b, "frame {i} differs: {:?} vs {:?}", p.0, b.0);
    }
    assert_eq!(plain.counters, burst.counters);
}

#[test]
fn a_batch_writes_the_frames_transmit_would_over_ip() {
    same_frames(Medium::Ip);
}

#[test]
fn a_batch_writes_the_frames_transmit_would_over_ethernet() {
    same_frames(Medium::Ethernet);
}
