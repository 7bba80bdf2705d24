//! Header prediction from the raw datagram (`TcpConfig::header_prediction`)
//! against the full receive path, differentially: every input must get the
//! same response from both (case count: proptest's default or
//! PROPTEST_CASES).

mod segscript;

use proptest::prelude::*;
use segscript::*;
use std::net::SocketAddr;
use ustack_core::wire::{checksum, IpProtocol, Ipv4Addr, TcpFlags};
use ustack_core::SocketHandle;

#[derive(Debug, Clone)]
enum Mut {
    None,
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Pad(usize),
    TotalLen(u16),
    Random(Vec<u8>),
}

#[derive(Debug, Clone)]
enum Step {
    Data {
        dseq: i64,
        dack: i64,
        len: usize,
        win_delta: i32,
        ts: u8,
        psh: bool,
        muts: Vec<Mut>,
        fix: u8,
        src_alt: u8,
    },
    Send(usize),
    Recv,
    Wait(u64),
    Cork(bool),
    /// A posted receive buffer (in-order data lands in it from the frame,
    /// in the checksum pass when predicted), MSG_WAITALL or not.
    Post(usize, bool),
    /// Takes back the posted buffer due, or cancels the last posted.
    Take(bool),
}

fn mutation() -> impl Strategy<Value = Mut> {
    prop_oneof![
        2 => Just(Mut::None),
        4 => (0usize..80, 1u8..=255).prop_map(|(i, x)| Mut::Flip(i, x)),
        3 => (0usize..80, any::<u8>()).prop_map(|(i, x)| Mut::Set(i, x)),
        1 => (0usize..80).prop_map(Mut::Truncate),
        1 => (1usize..30).prop_map(Mut::Pad),
        1 => (0u16..200).prop_map(Mut::TotalLen),
        1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(Mut::Random),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (prop_oneof![6 => Just(0i64), 2 => -3i64..3, 1 => -70000i64..70000],
              prop_oneof![6 => Just(0i64), 1 => -3i64..3, 1 => -70000i64..70000],
              prop_oneof![1 => Just(0usize), 6 => 1usize..1500],
              prop_oneof![6 => Just(0i32), 1 => -2i32..2],
              0u8..5, any::<bool>(),
              prop_oneof![3 => Just(vec![]), 2 => prop::collection::vec(mutation(), 1..3)], 0u8..4, 0u8..8)
            .prop_map(|(dseq, dack, len, win_delta, ts, psh, muts, fix, src_alt)| Step::Data { dseq, dack, len, win_delta, ts, psh, muts, fix, src_alt }),
        2 => (1usize..5000).prop_map(Step::Send),
        2 => Just(Step::Recv),
        1 => (0u64..400).prop_map(Step::Wait),
        1 => any::<bool>().prop_map(Step::Cork),
        1 => (1usize..6000, any::<bool>()).prop_map(|(n, w)| Step::Post(n, w)),
        1 => any::<bool>().prop_map(Step::Take),
    ]
}

fn fix_sums(b: &mut [u8]) {
    if b.len() < 20 {
        return;
    }
    let ihl = usize::from(b[0] & 0xf) * 4;
    if ihl < 20 || ihl > b.len() {
        return;
    }
    b[10] = 0;
    b[11] = 0;
    let c = checksum::checksum(&b[..ihl]);
    b[10..12].copy_from_slice(&c.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([b[2], b[3]])).min(b.len());
    if total < ihl + 18 {
        return;
    }
    let src = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
    let dst = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    b[ihl + 16] = 0;
    b[ihl + 17] = 0;
    let c = checksum::transport(src, dst, IpProtocol::Tcp, &b[ihl..total]);
    b[ihl + 16..ihl + 18].copy_from_slice(&c.to_be_bytes());
}

/// One stack with an accepted connection, header prediction on or off.
struct Side {
    s: Script,
    c: SocketHandle,
}

fn open(prediction: bool, ts: bool, rx_sums: bool) -> Side {
    let mut cfg = config();
    cfg.tcp.header_prediction = prediction;
    cfg.checksums.rx = rx_sums;
    let mut s = Script::with(cfg);
    let l = s.stack.tcp_open();
    s.stack
        .tcp_bind(l, SocketAddr::from((US, US_PORT)))
        .unwrap();
    s.stack.tcp_listen(l, 2).unwrap();
    let mut syn = seg(TcpFlags::SYN).seq(1000).mss(1460).ws(2);
    if ts {
        syn = syn.ts(5, 0);
    }
    s.inject(syn);
    let iss = s.next().seq;
    let mut a = seg(TcpFlags::ACK)
        .seq(1001)
        .ack(iss.wrapping_add(1))
        .win(5000);
    if ts {
        a = a.ts(6, 0);
    }
    s.inject(a);
    let (c, _) = s.stack.tcp_accept(l).unwrap();
    Side { s, c }
}

impl Side {
    fn with<R>(&mut self, f: impl FnOnce(&mut Script, SocketHandle) -> R) -> R {
        f(&mut self.s, self.c)
    }
}

proptest! {
    /// Whatever arrives — in-order data, near misses in sequence, ACK,
    /// window and timestamp, corrupted, truncated, padded, mislabelled or
    /// random bytes, bad sources — a stack that predicts headers from the
    /// datagram and one that parses every segment in full answer alike:
    /// the same segments out, counters, TCP_INFO and data read.
    #[test]
    fn header_prediction_and_the_full_path_agree(
        ts_on in any::<bool>(),
        rx_sums in any::<bool>(), steps in prop::collection::vec(step(), 1..60)) {
        let mut a = open(true, ts_on, rx_sums);
        let mut b = open(false, ts_on, rx_sums);
        let iss = a.s.sent[0].1.seq;
        let mut rcv_base: u32 = 1001;
        let mut snd_base: u32 = iss.wrapping_add(1);
        let mut tsval: u32 = 100;
        let data: Vec<u8> = (0..70000u32).map(|i| (i * 7) as u8).collect();
        let mut buf = vec![0u8; 100000];
        let mut tag = 0u64;
        for (k, st) in steps.iter().enumerate() {
            match st.clone() {
                Step::Data { dseq, dack, len, win_delta, ts, psh, muts, fix, src_alt } => {
                    let mut x = seg(if psh { TcpFlags::ACK | TcpFlags::PSH } else { TcpFlags::ACK })
                        .seq((i64::from(rcv_base) + dseq) as u32)
                        .ack((i64::from(snd_base) + dack) as u32)
                        .win((5000 + win_delta) as u16)
                        .data(&data[..len]);
                    if ts_on && ts != 4 {
                        tsval = tsval.wrapping_add(1);
                        let v = if ts == 3 { tsval.wrapping_sub(1000) } else { tsval };
                        x = x.ts(v, 0);
                    }
                    if src_alt == 1 { x = x.from(SocketAddr::from((Ipv4Addr::new(10,0,0,255), PEER_PORT))); }
                    if src_alt == 2 { x = x.from(SocketAddr::from((Ipv4Addr::new(224,0,0,1), PEER_PORT))); }
                    let mut bytes = x.to_ip();
                    for m in muts {
                        match m {
                            Mut::None => {}
                            Mut::Flip(i, v) => { if !bytes.is_empty() { let i = i % bytes.len(); bytes[i] ^= v; } }
                            Mut::Set(i, v) => { if !bytes.is_empty() { let i = i % bytes.len(); bytes[i] = v; } }
                            Mut::Truncate(n) => { let n = n.min(bytes.len()); bytes.truncate(bytes.len() - n); }
                            Mut::Pad(n) => bytes.extend(std::iter::repeat_n(0xAA, n)),
                            Mut::TotalLen(d) => { if bytes.len() >= 4 { let t = (bytes.len() as u16).wrapping_sub(d); bytes[2..4].copy_from_slice(&t.to_be_bytes()); } }
                            Mut::Random(r) => bytes = r,
                        }
                    }
                    if fix != 0 { fix_sums(&mut bytes); }
                    a.with(|s, _| s.inject_raw(&bytes));
                    b.with(|s, _| s.inject_raw(&bytes));
                }
                Step::Send(n) => {
                    let ra = a.with(|s, c| { let now = s.now; let r = s.stack.tcp_send(now, c, &data[..n]); s.take(); r });
                    let rb = b.with(|s, c| { let now = s.now; let r = s.stack.tcp_send(now, c, &data[..n]); s.take(); r });
                    prop_assert_eq!(ra, rb);
                }
                Step::Recv => {
                    let ra = a.with(|s, c| s.stack.tcp_recv(c, &mut buf).map(|n| buf[..n].to_vec()));
                    let rb = b.with(|s, c| s.stack.tcp_recv(c, &mut buf).map(|n| buf[..n].to_vec()));
                    prop_assert_eq!(ra, rb);
                }
                Step::Wait(ms) => {
                    a.with(|s, _| s.wait(ms as f64 / 1000.0));
                    b.with(|s, _| s.wait(ms as f64 / 1000.0));
                }
                Step::Post(n, waitall) => {
                    tag += 1;
                    let ra = a.with(|s, c| s.stack.tcp_post_recv(c, vec![0; n], tag, waitall).map_err(|e| e.0));
                    let rb = b.with(|s, c| s.stack.tcp_post_recv(c, vec![0; n], tag, waitall).map_err(|e| e.0));
                    prop_assert_eq!(ra, rb);
                }
                Step::Take(cancel) => {
                    let done = |d: ustack_core::RecvDone| {
                        let n = *d.result.as_ref().unwrap_or(&0);
                        (d.tag, d.result, d.buf[..n].to_vec())
                    };
                    let ra = a.with(|s, c| s.stack.tcp_take_posted(c, cancel.then_some(tag)).map(done));
                    let rb = b.with(|s, c| s.stack.tcp_take_posted(c, cancel.then_some(tag)).map(done));
                    prop_assert_eq!(ra, rb);
                }
                Step::Cork(on) => {
                    let ra = a.with(|s, c| s.stack.tcp_set_cork(c, on));
                    let rb = b.with(|s, c| s.stack.tcp_set_cork(c, on));
                    prop_assert_eq!(ra, rb);
                }
            }
            a.with(|s, _| s.stack.tcp_check_invariants());
            b.with(|s, _| s.stack.tcp_check_invariants());
            prop_assert_eq!(a.s.stack.counters(), b.s.stack.counters(), "counters after step {} {:?}", k, st);
            prop_assert_eq!(a.s.stack.tcp_info(a.c), b.s.stack.tcp_info(b.c), "info after step {}", k);
            prop_assert_eq!(&a.s.sent, &b.s.sent, "sent after step {}", k);
            for (_, x) in a.s.sent.iter() {
                if x.flags.contains(TcpFlags::ACK) && !x.flags.contains(TcpFlags::RST) { rcv_base = x.ack; }
                let end = x.seq.wrapping_add(x.payload.len() as u32) + u32::from(x.flags.contains(TcpFlags::FIN));
                if end.wrapping_sub(snd_base) as i32 > 0 && !x.flags.contains(TcpFlags::RST) { snd_base = end; }
            }
        }
    }
}
