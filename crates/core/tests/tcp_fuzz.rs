//! Random segments and socket calls against a live connection: never a
//! panic, and the TCP tables' invariants hold after every step.

mod segscript;

use proptest::prelude::*;
use segscript::*;
use std::net::SocketAddr;
use ustack_core::wire::TcpFlags;
use ustack_core::Shutdown;

#[derive(Debug, Clone)]
enum Step {
    Seg {
        flags: u8,
        seq: i64,
        ack: i64,
        len: usize,
        win: u16,
        port: u16,
        /// A SACK block: offset from the end of what we sent, length.
        sack: Option<(i64, u16)>,
    },
    Send(usize),
    /// A zero-copy send of this many bytes (a lent buffer).
    SendZc(usize),
    /// A posted receive buffer of this size (MSG_WAITALL or not).
    Post(usize, bool),
    /// Takes back what is due: the posted buffer done (or cancels the
    /// last one posted), and the lent buffers ACKed.
    Take(bool),
    Recv,
    Shut(u8),
    Close,
    Keepalive,
    Wait(u64),
}

fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![4 => Just(0i64), 2 => -3i64..4, 2 => -70_000i64..70_000, 1 => Just(1i64 << 31)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (any::<u8>(), offset(), offset(), 0usize..1500, any::<u16>(), prop_oneof![Just(PEER_PORT), Just(PEER_PORT + 1)], prop::option::of((-20_000i64..500, 1u16..4000)))
            .prop_map(|(flags, seq, ack, len, win, port, sack)| Step::Seg { flags, seq, ack, len, win, port, sack }),
        2 => (0usize..40_000).prop_map(Step::Send),
        1 => (0usize..40_000).prop_map(Step::SendZc),
        1 => (0usize..20_000, any::<bool>()).prop_map(|(n, w)| Step::Post(n, w)),
        1 => any::<bool>().prop_map(Step::Take),
        2 => Just(Step::Recv),
        1 => (0u8..3).prop_map(Step::Shut),
        1 => Just(Step::Close),
        1 => Just(Step::Keepalive),
        2 => (0u64..3_000).prop_map(Step::Wait),
    ]
}

// Case count: proptest's default (256) or PROPTEST_CASES, as hostile_input.
proptest! {

    #[test]
    fn random_segments_and_calls_keep_invariants(
        client in any::<bool>(),
        sack in any::<bool>(),
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let mut s = Script::new();
        let l = s.stack.tcp_open();
        s.stack.tcp_bind(l, SocketAddr::from((US, US_PORT))).unwrap();
        s.stack.tcp_listen(l, 2).unwrap();
        // Either an accepted connection on port 80, or our own connect from
        // an ephemeral port still in SYN-SENT.
        let (c, iss, our_port, mut rcv_base) = if client {
            let c = s.stack.tcp_open();
            let _ = s.stack.tcp_connect(s.now, c, SocketAddr::from((PEER, PEER_PORT)));
            let syn = s.next();
            (c, syn.seq, syn.src.port(), 1000u32)
        } else {
            let mut syn = seg(TcpFlags::SYN).seq(1000).mss(1460).ws(7).ts(5, 0);
            if sack {
                // SACK on: the sender's scoreboard and RACK get the blocks.
                syn = syn.sack_perm();
            }
            s.inject(syn);
            let iss = s.next().seq;
            s.inject(seg(TcpFlags::ACK).seq(1001).ack(iss.wrapping_add(1)).ts(6, 0));
            let (c, _) = s.stack.tcp_accept(l).unwrap();
            (c, iss, US_PORT, 1001u32)
        };
        s.stack.tcp_check_invariants();
        // Offsets are taken from what the stack last said: its ACK (our
        // next sequence number) and the end of what it sent (an ACK that
        // covers everything), so small offsets hit the edges exactly and
        // connections really progress through the states.
        let mut snd_base: u32 = iss.wrapping_add(1);
        let data = vec![0x5au8; 40_000];
        let mut buf = vec![0u8; 8192];
        let mut tag = 0u64;
        let mut done = Vec::new();
        for st in steps {
            match st {
                Step::Seg { flags, seq, ack, len, win, port, sack } => {
                    let mut x = seg(TcpFlags(u16::from(flags) & 0x3f))
                        .sport(port)
                        .dport(our_port)
                        .seq((i64::from(rcv_base) + seq) as u32)
                        .ack((i64::from(snd_base) + ack) as u32)
                        .win(win)
                        .data(&data[..len]);
                    if flags & 0x40 != 0 {
                        x = x.ts(7, 0);
                    }
                    if flags & 0x80 != 0 {
                        x = x.mss(536);
                    }
                    if let Some((off, n)) = sack {
                        let l = (i64::from(snd_base) + off) as u32;
                        x = x.sack(&[(l, l.wrapping_add(u32::from(n)))]);
                    }
                    s.inject(x);
                }
                Step::Send(n) => {
                    let _ = s.stack.tcp_send(s.now, c, &data[..n]);
                }
                Step::SendZc(n) => {
                    tag += 1;
                    let _ = s.stack.tcp_send_zc(s.now, c, Box::new(data[..n].to_vec()), tag);
                }
                Step::Post(n, waitall) => {
                    tag += 1;
                    let _ = s.stack.tcp_post_recv(c, vec![0; n], tag, waitall);
                }
                Step::Take(cancel) => {
                    let _ = s.stack.tcp_take_posted(c, cancel.then_some(tag));
                    let _ = s.stack.tcp_zc_done(c, &mut done);
                    for d in done.drain(..) {
                        prop_assert!(d.acked <= d.buf.bytes().len());
                    }
                }
                Step::Recv => {
                    let _ = s.stack.tcp_recv(c, &mut buf);
                }
                Step::Shut(k) => {
                    let how = [Shutdown::Read, Shutdown::Write, Shutdown::Both][k as usize];
                    let _ = s.stack.tcp_shutdown(s.now, c, how);
                }
                Step::Close => {
                    let _ = s.stack.close(c);
                }
                Step::Keepalive => {
                    let _ = s.stack.tcp_set_keepalive(s.now, c, true);
                }
                Step::Wait(ms) => s.wait(ms as f64 / 1000.0),
            }
            for (_, x) in s.take() {
                if x.dst.port() == PEER_PORT && x.flags.contains(TcpFlags::ACK) {
                    rcv_base = x.ack;
                }
                if x.dst.port() == PEER_PORT && !x.flags.contains(TcpFlags::RST) {
                    let end = x.seq.wrapping_add(x.payload.len() as u32)
                        + u32::from(x.flags.contains(TcpFlags::FIN));
                    if end.wrapping_sub(snd_base) as i32 > 0 {
                        snd_base = end;
                    }
                }
            }
            s.stack.tcp_check_invariants();
            let _ = s.stack.tcp_info(c);
            let _ = s.stack.readiness(c);
            let _ = s.stack.socket_table(s.now);
        }
        // Everything ends: no connection outlives its timers.
        s.wait(20_000.0);
        s.stack.tcp_check_invariants();
        let _ = s.stack.close(c);
        let _ = s.stack.close(l);
        s.wait(20_000.0);
        prop_assert_eq!(s.stack.tcp_tcb_count(), 0);
    }
}

/// What the peer of a sender does: ACK (an offset into what is in flight)
/// with SACK blocks (offsets and lengths, often segment-aligned), let time
/// pass, or have more written.
#[derive(Debug, Clone)]
enum SackStep {
    Ack { ack: u32, blocks: Vec<(u32, u32)> },
    Wait(u64),
    Send(usize),
}

fn sack_step() -> impl Strategy<Value = SackStep> {
    let at = prop_oneof![6 => (0u32..14).prop_map(|i| i * 1000), 1 => 0u32..40_000];
    let block = (
        at.clone(),
        prop_oneof![3 => (1u32..5).prop_map(|i| i * 1000), 1 => 1u32..5000],
    );
    prop_oneof![
        6 => (at, prop::collection::vec(block, 0..4))
            .prop_map(|(ack, blocks)| SackStep::Ack { ack, blocks }),
        3 => (0u64..400).prop_map(SackStep::Wait),
        1 => (0usize..20_000).prop_map(SackStep::Send),
    ]
}

proptest! {

    /// A sender with SACK (and so RACK) under arbitrary ACKs and SACK
    /// blocks, retransmissions and timers: never a panic, the invariants
    /// (the RACK log within SND.UNA..SND.MAX, its lost count) hold.
    #[test]
    fn random_sacks_against_a_sender_keep_invariants(
        steps in prop::collection::vec(sack_step(), 1..60),
    ) {
        let mut cfg = config();
        cfg.tcp.tail_loss_probe = true;
        cfg.tcp.sndbuf = 64 << 10;
        let mut s = Script::with(cfg);
        let l = s.stack.tcp_open();
        s.stack.tcp_bind(l, SocketAddr::from((US, US_PORT))).unwrap();
        s.stack.tcp_listen(l, 2).unwrap();
        s.inject(seg(TcpFlags::SYN).seq(1000).mss(1000).sack_perm());
        let iss = s.next().seq;
        s.wait(0.05);
        s.inject(seg(TcpFlags::ACK).seq(1001).ack(iss.wrapping_add(1)));
        let (c, _) = s.stack.tcp_accept(l).unwrap();
        let d0 = iss.wrapping_add(1);
        let data = vec![0x5au8; 20_000];
        let _ = s.stack.tcp_send(s.now, c, &data);
        let mut una = 0u32;
        for st in steps {
            match st {
                SackStep::Ack { ack, blocks } => {
                    // Never back: an old ACK is just ignored.
                    una = una.max(ack);
                    let b: Vec<(u32, u32)> = blocks
                        .iter()
                        .map(|&(l, n)| (d0.wrapping_add(l), d0.wrapping_add(l + n)))
                        .collect();
                    s.inject(seg(TcpFlags::ACK).seq(1001).ack(d0.wrapping_add(una)).sack(&b));
                }
                SackStep::Wait(ms) => s.wait(ms as f64 / 1000.0),
                SackStep::Send(n) => {
                    let _ = s.stack.tcp_send(s.now, c, &data[..n]);
                }
            }
            s.take();
            s.stack.tcp_check_invariants();
            let _ = s.stack.tcp_info(c);
        }
    }
}
