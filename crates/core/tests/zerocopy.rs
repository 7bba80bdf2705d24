//! Zero copies: receive buffers posted before the data arrives are
//! filled straight from the frames (the ring stays out of it), and lent
//! send buffers are read by every segment and retransmission, then
//! handed back only once the peer has ACKed their last byte.

mod common;

use common::{Pair, B};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use ustack_core::{Duration, Errno, Medium, Shutdown, SocketHandle, TcpState, ZcDone};

fn connect_pair(p: &mut Pair, port: u16, sndbuf: usize) -> (SocketHandle, SocketHandle) {
    let l = p.b.tcp_open();
    p.b.tcp_bind(l, SocketAddr::from((B, port))).unwrap();
    p.b.tcp_listen(l, 8).unwrap();
    let c = p.a.tcp_open();
    p.a.tcp_set_buffers(c, None, Some(sndbuf)).unwrap();
    assert_eq!(
        p.a.tcp_connect(p.now, c, SocketAddr::from((B, port))),
        Err(Errno::EINPROGRESS)
    );
    p.pump();
    assert_eq!(p.a.tcp_state(c), Ok(TcpState::Established));
    let (s, _) = p.b.tcp_accept(l).unwrap();
    (c, s)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n as u32).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn a_recv_posted_before_the_data_gets_it_without_the_ring() {
    let mut p = Pair::new(Medium::Ip);
    let (c, s) = connect_pair(&mut p, 80, 256 * 1024);
    let data = pattern(100_010);
    // MSG_WAITALL: back only once full. Two buffers, filled in order.
    p.b.tcp_post_recv(s, vec![0; 100_000], 7, true).unwrap();
    p.b.tcp_post_recv(s, vec![0; 10], 8, true).unwrap();
    let mut sent = 0;
    for _ in 0..1000 {
        if sent < data.len() {
            sent += p.a.tcp_send(p.now, c, &data[sent..]).unwrap_or(0);
        }
        p.pump();
        if sent == data.len() {
            break;
        }
        assert!(p.b.tcp_take_posted(s, None).is_none(), "not full yet");
    }
    let done = p.b.tcp_take_posted(s, None).expect("full");
    assert_eq!((done.tag, done.result), (7, Ok(100_000)));
    assert!(done.buf[..] == data[..100_000], "bytes intact");
    let done = p.b.tcp_take_posted(s, None).expect("full");
    assert_eq!((done.tag, done.result), (8, Ok(10)));
    assert!(done.buf[..] == data[100_000..], "bytes intact, in order");
    assert_eq!(
        p.b.counters().tcp.rx_direct_bytes,
        data.len() as u64,
        "every byte went straight into the posted buffers"
    );
    let mut buf = [0u8; 16];
    assert_eq!(p.b.tcp_recv(s, &mut buf), Err(Errno::EAGAIN), "ring empty");

    // Data that came first waits in the ring and is copied in at post time.
    p.a.tcp_send(p.now, c, b"early").unwrap();
    p.pump();
    p.b.tcp_post_recv(s, vec![0; 64], 9, false).unwrap();
    let d = p.b.tcp_take_posted(s, None).unwrap();
    assert_eq!((d.result, &d.buf[..5]), (Ok(5), &b"early"[..]));
    assert_eq!(p.b.counters().tcp.rx_direct_bytes, data.len() as u64);

    // A cancel hands the buffer back; EOF completes a posted recv with 0.
    p.b.tcp_post_recv(s, vec![0; 64], 10, false).unwrap();
    assert!(p.b.tcp_take_posted(s, None).is_none(), "nothing yet");
    let d = p.b.tcp_take_posted(s, Some(10)).unwrap();
    assert_eq!(
        (d.tag, d.result, d.buf.len()),
        (10, Err(Errno::ECANCELED), 64)
    );
    p.b.tcp_post_recv(s, vec![0; 64], 11, false).unwrap();
    p.a.close(c).unwrap();
    p.pump();
    let d = p.b.tcp_take_posted(s, None).unwrap();
    assert_eq!((d.tag, d.result), (11, Ok(0)));
}

#[test]
fn a_lost_zero_copy_send_is_resent_from_the_same_buffer_and_returned_after_the_last_ack() {
    let mut p = Pair::new(Medium::Ip);
    // A send ring far too small to hold the buffer: every byte on the
    // wire, first sends and retransmissions, comes from the lent buffer.
    let (c, s) = connect_pair(&mut p, 80, 4096);
    let data = pattern(60_000);
    // Drop the 3rd and the last data segment from A, once each.
    let seen = Rc::new(RefCell::new(0usize));
    let seen2 = seen.clone();
    let last = data.len().div_ceil(1448);
    p.filter = Box::new(move |from_a, f| {
        if from_a && f.len() > 52 {
            let mut n = seen2.borrow_mut();
            *n += 1;
            if *n == 3 || *n == last {
                return None;
            }
        }
        Some(f)
    });
    p.a.tcp_send_zc(p.now, c, Box::new(data.clone()), 42)
        .map_err(|e| e.0)
        .unwrap();
    assert_eq!(p.a.counters().tcp.tx_zc_bytes, data.len() as u64);
    let mut got = Vec::new();
    let mut back: Vec<ZcDone> = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..200 {
        p.advance(Duration::from_millis(5));
        loop {
            match p.b.tcp_recv(s, &mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        p.a.tcp_zc_done(c, &mut back).unwrap();
        if !back.is_empty() {
            break;
        }
        assert!(
            p.a.tcp_zc_pending(c) > 0,
            "while the buffer is out, its bytes are pending"
        );
    }
    assert!(*seen.borrow() > last, "the lost segments were sent again");
    assert!(p.a.counters().tcp.retrans_segs >= 2);
    assert_eq!(back.len(), 1, "the buffer came back");
    assert!(
        got == data,
        "every byte arrived intact ({} of {})",
        got.len(),
        data.len()
    );
    let d = back.pop().unwrap();
    assert_eq!((d.tag, d.acked), (42, data.len()));
    assert_eq!(p.a.tcp_zc_pending(c), 0);
    let v = d.buf.into_any().downcast::<Vec<u8>>().unwrap();
    assert!(*v == data, "the same buffer, unchanged");
}

#[test]
fn a_zero_copy_buffer_comes_back_only_after_the_final_ack() {
    let mut p = Pair::new(Medium::Ip);
    let (c, s) = connect_pair(&mut p, 80, 4096);
    let data = pattern(10_000);
    // B's ACKs are lost until `open` says otherwise.
    let open = Rc::new(RefCell::new(false));
    let o = open.clone();
    p.filter = Box::new(move |from_a, f| (from_a || *o.borrow()).then_some(f));
    p.a.tcp_send_zc(p.now, c, Box::new(data.clone()), 1)
        .map_err(|e| e.0)
        .unwrap();
    p.advance(Duration::from_millis(50));
    let mut buf = vec![0u8; 65536];
    assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(data.len()), "all delivered");
    let mut back = Vec::new();
    p.a.tcp_zc_done(c, &mut back).unwrap();
    assert!(back.is_empty(), "not ACKed yet: the stack still holds it");
    *open.borrow_mut() = true;
    p.advance(Duration::from_secs(2));
    p.a.tcp_zc_done(c, &mut back).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].acked, data.len());
}

#[test]
fn lent_buffers_of_a_reset_connection_come_back_with_what_was_acked() {
    let mut p = Pair::new(Medium::Ip);
    let (c, s) = connect_pair(&mut p, 80, 4096);
    p.filter = Box::new(|from_a, f| (!from_a).then_some(f));
    p.a.tcp_send_zc(p.now, c, Box::new(vec![1u8; 5000]), 5)
        .map_err(|e| e.0)
        .unwrap();
    p.pump();
    // B goes away with a RST (SO_LINGER 0); A drops the connection.
    p.b.tcp_set_linger(s, Some(Duration::ZERO)).unwrap();
    p.b.close(s).unwrap();
    p.pump();
    assert_eq!(p.a.tcp_state(c).ok(), Some(TcpState::Closed));
    let mut back = Vec::new();
    p.a.tcp_zc_done(c, &mut back).unwrap();
    assert_eq!((back.len(), back[0].tag, back[0].acked), (1, 5, 0));
    assert_eq!(
        p.a.tcp_send_zc(p.now, c, Box::new(vec![1u8; 1]), 6)
            .map_err(|e| e.0),
        Err(Errno::ECONNRESET)
    );
}

/// Lent buffers, copied sends, posted receive buffers and plain reads
/// mixed, over a link losing one frame in ten each way, for a few seeds:
/// every byte arrives once and in order, and every lent buffer comes
/// back all ACKed, in the order lent.
#[test]
fn mixed_zero_copy_and_copied_data_survive_loss_intact() {
    let mut retrans = 0;
    for seed in 1..=30u64 {
        let mut p = Pair::new(Medium::Ip);
        let (c, s) = connect_pair(&mut p, 80, 65536);
        let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut drop_rng = seed ^ 0xdead_beef;
        p.filter = Box::new(move |_, f| {
            drop_rng = drop_rng.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((drop_rng >> 33) % 10 != 0).then_some(f)
        });
        // What A queues: the stream, and where each lent buffer ends in it.
        let mut stream = Vec::new();
        let mut lent_ends = Vec::new();
        for tag in 0..12u64 {
            let len = 1 + (next() % 9000) as usize;
            let chunk: Vec<u8> = (0..len).map(|i| (i as u64 * 11 + tag) as u8).collect();
            if next() % 3 == 0 {
                let n = p.a.tcp_send(p.now, c, &chunk).unwrap_or(0);
                stream.extend_from_slice(&chunk[..n]);
            } else {
                stream.extend_from_slice(&chunk);
                lent_ends.push((tag, stream.len()));
                p.a.tcp_send_zc(p.now, c, Box::new(chunk), tag)
                    .map_err(|e| e.0)
                    .unwrap();
            }
        }
        // EOF after the data: a MSG_WAITALL buffer the tail does not fill
        // completes with what it holds.
        p.a.tcp_shutdown(p.now, c, Shutdown::Write).unwrap();
        let mut got = Vec::new();
        let mut back: Vec<ZcDone> = Vec::new();
        let mut posted = 0;
        let mut buf = vec![0u8; 4096];
        for _ in 0..20_000 {
            if posted < 3 {
                let len = 1 + (next() % 6000) as usize;
                let waitall = next() % 2 == 0;
                if p.b.tcp_post_recv(s, vec![0; len], 0, waitall).is_ok() {
                    posted += 1;
                }
            }
            p.advance(Duration::from_millis(20));
            while let Some(d) = p.b.tcp_take_posted(s, None) {
                posted -= 1;
                let n = d.result.unwrap();
                got.extend_from_slice(&d.buf[..n]);
            }
            if posted == 0 && next() % 4 == 0 {
                if let Ok(n) = p.b.tcp_recv(s, &mut buf) {
                    got.extend_from_slice(&buf[..n]);
                }
            }
            let before = back.len();
            p.a.tcp_zc_done(c, &mut back).unwrap();
            for d in &back[before..] {
                assert_eq!(d.acked, d.buf.bytes().len(), "seed {seed}: all ACKed");
            }
            if got.len() >= stream.len() && back.len() == lent_ends.len() {
                break;
            }
        }
        assert_eq!(got.len(), stream.len(), "seed {seed}: all delivered");
        assert!(got == stream, "seed {seed}: bytes intact and in order");
        let tags: Vec<u64> = back.iter().map(|d| d.tag).collect();
        let want: Vec<u64> = lent_ends.iter().map(|e| e.0).collect();
        assert_eq!(tags, want, "seed {seed}: every lent buffer back, in order");
        retrans += p.a.counters().tcp.retrans_segs;
    }
    assert!(
        retrans > 30,
        "losses were repaired ({retrans} retransmissions)"
    );
}

/// `total` bytes from A to B over a 100 ms RTT (50 ms each way, no
/// bandwidth limit: the receive window decides), B's buffers left to
/// autotuning. B reads with `tcp_recv`, or (`posted`) only through
/// posted buffers, reaped and posted again as they come back, as a
/// completion-API receiver does; `offload`: B does not verify
/// checksums (header prediction then places payload through
/// `take_in_order`, not `posted_copy_sum`). Returns (seconds taken, B's
/// rcvbuf at the end, the largest window B advertised).
fn bulk_over_a_long_path(posted: bool, offload: bool, total: usize) -> (f64, usize, u32) {
    let mut ca = common::config(Medium::Ip, common::A, 1);
    ca.tcp.sndbuf = total;
    let mut cb = common::config(Medium::Ip, B, 2);
    cb.checksums.rx = !offload;
    let mut d = common::Delayed::with(ca, cb);
    let (c, s) = d.connect();
    let data = pattern(total);
    assert_eq!(d.p.a.tcp_send(d.p.now, c, &data), Ok(total));
    let rcvbuf0 = d.p.b.tcp_info(s).unwrap().rcvbuf;
    let start = d.p.now;
    let mut got = Vec::with_capacity(total);
    let mut buf = vec![0u8; 65536];
    let mut max_wnd = 0;
    const POSTED: usize = 16;
    const LEN: usize = 256 * 1024;
    if posted {
        for tag in 0..POSTED as u64 {
            d.p.b.tcp_post_recv(s, vec![0; LEN], tag, false).unwrap();
        }
    }
    d.run(Duration::from_secs(30), |p| {
        if posted {
            while let Some(done) = p.b.tcp_take_posted(s, None) {
                let n = done.result.expect("data");
                got.extend_from_slice(&done.buf[..n]);
                p.b.tcp_post_recv(s, vec![0; LEN], done.tag, false).unwrap();
            }
        } else {
            while let Ok(n) = p.b.tcp_recv(s, &mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        max_wnd = max_wnd.max(p.b.tcp_info(s).unwrap().rcv_wnd);
        got.len() == total
    });
    assert!(got == data, "posted {posted}: all bytes, intact, in order");
    if posted {
        assert!(
            d.p.b.counters().tcp.rx_direct_bytes > total as u64 / 2,
            "most bytes went straight into the posted buffers"
        );
    }
    let rcvbuf = d.p.b.tcp_info(s).unwrap().rcvbuf;
    assert!(rcvbuf >= rcvbuf0);
    ((d.p.now - start).as_secs_f64(), rcvbuf, max_wnd)
}

/// Receive-buffer autotuning (Linux `tcp_rcv_space_adjust`) counts the
/// bytes that land in posted buffers as read: over a path whose
/// bandwidth-delay product is far beyond the initial 128 KiB buffer, a
/// receiver that only posts buffers gets the window a copying one gets,
/// and its transfer takes as long (io_uring's recv goes through
/// `tcp_recvmsg`, and so through the same autotuning).
#[test]
fn a_posted_buffer_receiver_autotunes_its_window_like_a_copying_one() {
    const TOTAL: usize = 8 << 20;
    let (t_copy, buf_copy, wnd_copy) = bulk_over_a_long_path(false, false, TOTAL);
    assert!(
        buf_copy >= 1 << 20,
        "the copying receiver autotunes: {t_copy:.2} s, rcvbuf {buf_copy}, window {wnd_copy}"
    );
    for offload in [false, true] {
        let (t_posted, buf_posted, wnd_posted) = bulk_over_a_long_path(true, offload, TOTAL);
        let seen = format!(
            "copy: {t_copy:.2} s, rcvbuf {buf_copy}, window {wnd_copy}; posted \
             (rx checksums offloaded: {offload}): {t_posted:.2} s, rcvbuf {buf_posted}, \
             window {wnd_posted}"
        );
        eprintln!("{seen}");
        assert!(buf_posted * 2 >= buf_copy, "rcvbuf grows alike: {seen}");
        assert!(wnd_posted * 2 >= wnd_copy, "window grows alike: {seen}");
        assert!(
            t_posted <= t_copy * 1.1,
            "goodput within 10% of the copying receiver's: {seen}"
        );
    }
}
