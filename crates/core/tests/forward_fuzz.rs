//! Random SYNs, ACKs, RSTs and data to random far addresses, interleaved
//! with random take/answer/refuse/close calls on a deferring any-address
//! listener with tiny bounds: never a panic, the TCP tables' invariants
//! hold after every step, and the bounds are kept.

mod segscript;

use proptest::prelude::*;
use segscript::*;
use std::net::SocketAddr;
use ustack_core::wire::{Ipv4Addr, TcpFlags};
use ustack_core::SocketHandle;

#[derive(Debug, Clone)]
enum Op {
    Seg {
        dst: u8,
        sport: u8,
        flags: u8,
        seq: u32,
        ack: u32,
        data: bool,
    },
    Take,
    Answer(u8),
    Refuse(u8),
    Close(u8),
    Wait(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0u8..4, any::<u8>(), any::<u32>(), any::<u32>(), any::<bool>())
            .prop_map(|(dst, sport, flags, seq, ack, data)| Op::Seg { dst, sport, flags, seq, ack, data }),
        2 => Just(Op::Take),
        2 => any::<u8>().prop_map(Op::Answer),
        1 => any::<u8>().prop_map(Op::Refuse),
        1 => any::<u8>().prop_map(Op::Close),
        1 => (1u16..5000).prop_map(Op::Wait),
    ]
}

/// FIN, SYN, RST, PSH, ACK from the low five bits.
fn flags_of(b: u8) -> TcpFlags {
    let mut f = TcpFlags::empty();
    for (bit, flag) in [
        (1, TcpFlags::FIN),
        (2, TcpFlags::SYN),
        (4, TcpFlags::RST),
        (8, TcpFlags::PSH),
        (16, TcpFlags::ACK),
    ] {
        if b & bit != 0 {
            f |= flag;
        }
    }
    f
}

proptest! {
    #[test]
    fn random_traffic_to_any_address_keeps_invariants(ops in prop::collection::vec(op(), 1..80)) {
        let mut cfg = config();
        cfg.transparent = true;
        cfg.tcp.max_syn_backlog = 3;
        let mut s = Script::with(cfg);
        let l = s.stack.tcp_open();
        s.stack.tcp_listen_any(l, 2, true, 4).unwrap();
        let mut taken: Vec<SocketHandle> = Vec::new();
        for op in ops {
            match op {
                Op::Seg { dst, sport, flags, seq, ack, data } => {
                    let mut g = seg(flags_of(flags))
                        .sport(40000 + u16::from(sport))
                        .seq(seq)
                        .ack(ack);
                    g.dst = SocketAddr::from((Ipv4Addr::new(93, 184, 216, 30 + dst), 80));
                    if data {
                        g = g.data(b"payload");
                    }
                    s.inject(g);
                }
                Op::Take => {
                    if let Ok((h, _, dst)) = s.stack.tcp_take_pending(l) {
                        prop_assert_eq!(s.stack.local_addr(h).unwrap(), Some(dst));
                        taken.push(h);
                    }
                }
                Op::Answer(i) if !taken.is_empty() => {
                    let h = taken[usize::from(i) % taken.len()];
                    let _ = s.stack.tcp_answer(s.now, h);
                }
                Op::Refuse(i) if !taken.is_empty() => {
                    let h = taken[usize::from(i) % taken.len()];
                    let _ = s.stack.tcp_refuse(s.now, h);
                }
                Op::Close(i) if !taken.is_empty() => {
                    let h = taken.swap_remove(usize::from(i) % taken.len());
                    s.stack.close(h).unwrap();
                }
                Op::Wait(ms) => s.wait(f64::from(ms) / 1000.0),
                _ => {}
            }
            s.take();
            s.stack.tcp_check_invariants();
            // max_conns (4) bounds every TCB the listener made.
            prop_assert!(s.stack.tcp_tcb_count() <= 4, "{} TCBs", s.stack.tcp_tcb_count());
        }
    }
}
