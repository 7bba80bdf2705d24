//! Our KCP against the `kcp` crate (a port of the reference ikcp.c), both
//! ways, on a simulated link with seeded 5% loss and 20 ms one-way delay,
//! on a virtual millisecond clock: every message arrives intact and in order.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::rc::Rc;
use ustack_kcp::{Config, Kcp};

/// Seeded xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// One direction of the link: datagrams with their arrival times.
#[derive(Default)]
struct Wire {
    q: VecDeque<(u32, Vec<u8>)>,
}

#[derive(Clone, Default)]
struct Sink(Rc<RefCell<Vec<Vec<u8>>>>);
impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().push(b.to_vec());
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Message `i`: 1 to 3000 bytes (up to three fragments), its bytes from `i`.
fn message(i: u32, dir: u8) -> Vec<u8> {
    let len = 1 + (i.wrapping_mul(2_654_435_761) % 3000) as usize;
    (0..len)
        .map(|k| (k as u32 ^ i.wrapping_mul(31) ^ (u32::from(dir) * 7)) as u8)
        .collect()
}

fn config_ref(k: &mut kcp::Kcp<Sink>, fast: bool) {
    if fast {
        k.set_nodelay(true, 10, 2, true);
    } else {
        k.set_nodelay(false, 100, 0, false);
    }
    k.set_wndsize(128, 128);
}

/// Runs `n` messages each way between ours and the reference, with loss.
fn exchange(seed: u64, loss: f64, fast: bool, stream: bool, n: u32) {
    let cfg = if fast {
        Config::fast()
    } else {
        Config::normal()
    }
    .with_windows(128, 128)
    .with_stream(stream);
    let mut ours = Kcp::new(7, cfg);
    let sink = Sink::default();
    let mut theirs = if stream {
        kcp::Kcp::new_stream(7, sink.clone())
    } else {
        kcp::Kcp::new(7, sink.clone())
    };
    config_ref(&mut theirs, fast);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (mut to_theirs, mut to_ours) = (Wire::default(), Wire::default());
    let delay = 20;
    let want_ours: Vec<Vec<u8>> = (0..n).map(|i| message(i, 1)).collect();
    let want_theirs: Vec<Vec<u8>> = (0..n).map(|i| message(i, 2)).collect();
    // Received: messages (message mode) or bytes (stream mode).
    let (mut got_by_theirs, mut got_by_ours) = (Vec::<Vec<u8>>::new(), Vec::<Vec<u8>>::new());
    let (mut stream_theirs, mut stream_ours) = (Vec::new(), Vec::new());
    let total: usize = want_ours.iter().map(Vec::len).sum();
    let (mut next_ours, mut next_theirs) = (0usize, 0usize);
    let mut buf = vec![0u8; 1 << 20];
    let mut now: u32 = 0;
    let done = |a: &Vec<Vec<u8>>, b: &Vec<Vec<u8>>, sa: &Vec<u8>, sb: &Vec<u8>| {
        if stream {
            sa.len() >= total && sb.len() >= total
        } else {
            a.len() == n as usize && b.len() == n as usize
        }
    };
    while !done(&got_by_theirs, &got_by_ours, &stream_theirs, &stream_ours) {
        assert!(
            now < 600_000,
            "not done after 600 s of virtual time (ours {ours:?})"
        );
        // Offer messages while the send queues are short.
        while next_ours < want_ours.len() && ours.wait_snd() < 256 {
            ours.send(&want_ours[next_ours]).unwrap();
            next_ours += 1;
        }
        while next_theirs < want_theirs.len() && theirs.wait_snd() < 256 {
            theirs.send(&want_theirs[next_theirs]).unwrap();
            next_theirs += 1;
        }
        // Deliver what is due.
        while to_ours.q.front().is_some_and(|(t, _)| *t <= now) {
            let (_, d) = to_ours.q.pop_front().unwrap();
            ours.input(&d).expect("ours takes the reference's datagram");
        }
        while to_theirs.q.front().is_some_and(|(t, _)| *t <= now) {
            let (_, d) = to_theirs.q.pop_front().unwrap();
            theirs.input(&d).expect("the reference takes our datagram");
        }
        ours.update(now, &mut |d| {
            if !rng.chance(loss) {
                to_theirs.q.push_back((now + delay, d.to_vec()));
            }
        });
        theirs.update(now).unwrap();
        for d in sink.0.borrow_mut().drain(..) {
            if !rng.chance(loss) {
                to_ours.q.push_back((now + delay, d));
            }
        }
        while let Ok(len) = ours.recv(&mut buf) {
            if stream {
                stream_ours.extend_from_slice(&buf[..len]);
            } else {
                got_by_ours.push(buf[..len].to_vec());
            }
        }
        while let Ok(len) = theirs.recv(&mut buf) {
            if stream {
                stream_theirs.extend_from_slice(&buf[..len]);
            } else {
                got_by_theirs.push(buf[..len].to_vec());
            }
        }
        now += 1;
    }
    if stream {
        assert_eq!(
            stream_theirs,
            want_ours.concat(),
            "ours -> reference, stream"
        );
        assert_eq!(
            stream_ours,
            want_theirs.concat(),
            "reference -> ours, stream"
        );
    } else {
        assert!(
            got_by_theirs == want_ours,
            "ours -> reference: a message differs or is out of order"
        );
        assert!(
            got_by_ours == want_theirs,
            "reference -> ours: a message differs or is out of order"
        );
    }
    assert!(
        ours.stats().timeout_retransmits + ours.stats().fast_retransmits > 0,
        "the loss made ours retransmit"
    );
    eprintln!(
        "seed {seed} loss {loss} fast {fast} stream {stream}: {n} messages each way in {} ms virtual; ours {:?}",
        now,
        ours.stats()
    );
}

#[test]
fn messages_both_ways_normal_mode_5pct_loss() {
    exchange(1, 0.05, false, false, 1500);
}

#[test]
fn messages_both_ways_nodelay_mode_5pct_loss() {
    exchange(2, 0.05, true, false, 1500);
}

#[test]
fn stream_both_ways_nodelay_mode_5pct_loss() {
    exchange(3, 0.05, true, true, 1000);
}

#[test]
fn several_seeds_nodelay() {
    for seed in 10..14 {
        exchange(seed, 0.05, true, false, 300);
    }
}
