//! `Stack::receive_burst` against `receive` frame by frame, differentially:
//! the same frames, taken both ways by two otherwise identical stacks,
//! must leave the application and the peer seeing the same (segments
//! out, data read and handed back in posted buffers, readiness changes,
//! events, counters, TCP_INFO). The bursts mix in-order data of two
//! connections, out-of-order and duplicate data, FIN, RST, frames for no
//! connection, CE-marked frames (the full path), frames with bad
//! checksums, some of them vouched for by the device, frames cut short
//! and random bytes (case count: proptest's default or PROPTEST_CASES).

mod segscript;

use proptest::prelude::*;
use segscript::*;
use std::net::SocketAddr;
use ustack_core::wire::{checksum, TcpFlags};
use ustack_core::{RxMeta, SocketHandle};

/// Peer ports: two connections, then one nobody listens for.
const PORTS: [u16; 3] = [PEER_PORT, PEER_PORT + 1, PEER_PORT + 2];
/// The peer's ISN per connection: the same, so that a frame taken for the
/// wrong connection would pass its sequence checks.
const ISN: [u32; 3] = [1000, 1000, 1000];

#[derive(Debug, Clone)]
struct Frame {
    conn: usize,
    /// Offset from the next in-order sequence number.
    dseq: i64,
    len: usize,
    /// 0: ACK, 1: ACK|PSH, 2: ACK|FIN, 3: RST, 4: ACK|RST.
    kind: u8,
    /// Flip a byte (a bad IPv4 or TCP checksum).
    corrupt: Option<usize>,
    /// Acknowledge all we sent, else only our SYN.
    ack_all: bool,
    /// Marked CE (RFC 3168): the full path takes it.
    ce: bool,
    /// The device vouches for its checksums (`RxMeta::csum_ok`).
    trusted: bool,
    /// Cut short to this many bytes, or replaced by these bytes (after
    /// an IPv4 version and header length byte).
    mangle: Option<Result<usize, Vec<u8>>>,
}

#[derive(Debug, Clone)]
enum Step {
    Burst(Vec<Frame>),
    Recv(usize),
    Post(usize, usize, bool),
    Take(usize),
    Send(usize, usize),
    Wait(u64),
    /// The peer's next sequence number from our last ACK to it.
    Resync(usize),
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        prop_oneof![6 => Just(0usize), 3 => Just(1usize), 1 => Just(2usize)],
        prop_oneof![12 => Just(0i64), 1 => -3000i64..3000],
        prop_oneof![1 => Just(0usize), 8 => 1usize..1460],
        prop_oneof![160 => Just(0u8), 20 => Just(1u8), 2 => Just(2u8), 1 => Just(3u8), 1 => Just(4u8)],
        prop_oneof![12 => Just(None), 1 => (0usize..60).prop_map(Some)],
        prop_oneof![4 => Just(true), 1 => Just(false)],
        prop_oneof![8 => Just(false), 1 => Just(true)],
        prop_oneof![4 => Just(false), 1 => Just(true)],
        prop_oneof![
            20 => Just(None),
            1 => (0usize..80).prop_map(|n| Some(Ok(n))),
            1 => prop::collection::vec(any::<u8>(), 0..80).prop_map(|v| Some(Err(v))),
        ],
    )
        .prop_map(|(conn, dseq, len, kind, corrupt, ack_all, ce, trusted, mangle)| Frame {
            conn,
            dseq,
            len,
            kind,
            corrupt,
            ack_all,
            ce,
            trusted,
            mangle,
        })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => prop::collection::vec(frame(), 1..24).prop_map(Step::Burst),
        4 => (0usize..2).prop_map(Step::Recv),
        1 => (0usize..2, 1usize..9000, any::<bool>()).prop_map(|(c, n, w)| Step::Post(c, n, w)),
        1 => (0usize..2).prop_map(Step::Take),
        1 => (0usize..2, 1usize..4000).prop_map(|(c, n)| Step::Send(c, n)),
        1 => (0u64..300).prop_map(Step::Wait),
        2 => (0usize..2).prop_map(Step::Resync),
    ]
}

/// One stack with two accepted connections; `burst`: takes frames in
/// bursts.
struct Side {
    s: Script,
    conns: [SocketHandle; 2],
    burst: bool,
}

fn open(burst: bool, ts: bool, rx_sums: bool) -> Side {
    let mut cfg = config();
    cfg.checksums.rx = rx_sums;
    let mut s = Script::with(cfg);
    let l = s.stack.tcp_open();
    s.stack
        .tcp_bind(l, SocketAddr::from((US, US_PORT)))
        .unwrap();
    s.stack.tcp_listen(l, 4).unwrap();
    let mut conns = Vec::new();
    for c in 0..2 {
        let from = SocketAddr::from((PEER, PORTS[c]));
        let mut syn = seg(TcpFlags::SYN).from(from).seq(ISN[c]).mss(1460).ws(2);
        if ts {
            syn = syn.ts(5, 0);
        }
        s.inject(syn);
        let iss = s.next().seq;
        let mut a = seg(TcpFlags::ACK)
            .from(from)
            .seq(ISN[c] + 1)
            .ack(iss.wrapping_add(1))
            .win(20000);
        if ts {
            a = a.ts(6, 0);
        }
        s.inject(a);
        conns.push(s.stack.tcp_accept(l).unwrap().0);
    }
    Side {
        s,
        conns: [conns[0], conns[1]],
        burst,
    }
}

impl Side {
    fn frames(&mut self, frames: &[(Vec<u8>, RxMeta)]) {
        if self.burst {
            self.s.inject_burst(frames);
        } else {
            self.s.inject_each(frames);
        }
    }
}

proptest! {
    #[test]
    fn a_burst_and_frame_by_frame_agree(
        ts_on in any::<bool>(),
        rx_sums in any::<bool>(),
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let mut a = open(false, ts_on, rx_sums);
        let mut b = open(true, ts_on, rx_sums);
        // Per peer port: our ISS + 1, the highest we sent, the peer's next
        // sequence number, our last ACK to it.
        let mut iss1 = [0u32; 3];
        let mut snd_high = [0u32; 3];
        let mut next = [ISN[0] + 1, ISN[1] + 1, ISN[2] + 1];
        let mut last_ack = next;
        for (_, x) in &a.s.sent {
            if let Some(c) = PORTS.iter().position(|&p| p == x.dst.port()) {
                if x.flags.contains(TcpFlags::SYN) {
                    iss1[c] = x.seq.wrapping_add(1);
                    snd_high[c] = iss1[c];
                }
            }
        }
        let mut tsval = 100u32;
        let data: Vec<u8> = (0..20000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut buf = vec![0u8; 70000];
        let mut tag = 0u64;
        for (k, st) in steps.iter().enumerate() {
            match st.clone() {
                Step::Burst(fs) => {
                    let mut frames = Vec::new();
                    for f in fs {
                        let flags = match f.kind {
                            0 => TcpFlags::ACK,
                            1 => TcpFlags::ACK | TcpFlags::PSH,
                            2 => TcpFlags::ACK | TcpFlags::FIN,
                            3 => TcpFlags::RST,
                            _ => TcpFlags::ACK | TcpFlags::RST,
                        };
                        let len = if flags.contains(TcpFlags::RST) { 0 } else { f.len };
                        let seq = (i64::from(next[f.conn]) + f.dseq) as u32;
                        let ack = if f.ack_all { snd_high[f.conn] } else { iss1[f.conn] };
                        let mut x = seg(flags)
                            .from(SocketAddr::from((PEER, PORTS[f.conn])))
                            .seq(seq)
                            .ack(ack)
                            .win(20000)
                            .data(&data[..len]);
                        if ts_on {
                            tsval = tsval.wrapping_add(1);
                            x = x.ts(tsval, 0);
                        }
                        if f.dseq == 0 {
                            next[f.conn] = seq.wrapping_add(len as u32);
                        }
                        let mut bytes = x.to_ip();
                        if f.ce {
                            bytes[1] |= 3;
                            bytes[10..12].fill(0);
                            let c = checksum::checksum(&bytes[..20]);
                            bytes[10..12].copy_from_slice(&c.to_be_bytes());
                        }
                        if let Some(i) = f.corrupt {
                            let i = i % bytes.len();
                            bytes[i] ^= 0x5a;
                        }
                        match f.mangle {
                            None => {}
                            Some(Ok(n)) => bytes.truncate(n),
                            Some(Err(v)) => bytes = [&[0x45][..], &v].concat(),
                        }
                        frames.push((bytes, RxMeta { csum_ok: f.trusted }));
                    }
                    a.frames(&frames);
                    b.frames(&frames);
                }
                Step::Recv(c) => {
                    let ra = a.s.stack.tcp_recv(a.conns[c], &mut buf).map(|n| buf[..n].to_vec());
                    let rb = b.s.stack.tcp_recv(b.conns[c], &mut buf).map(|n| buf[..n].to_vec());
                    prop_assert_eq!(ra, rb);
                }
                Step::Post(c, n, waitall) => {
                    tag += 1;
                    let ra = a.s.stack.tcp_post_recv(a.conns[c], vec![0; n], tag, waitall).map_err(|e| e.0);
                    let rb = b.s.stack.tcp_post_recv(b.conns[c], vec![0; n], tag, waitall).map_err(|e| e.0);
                    prop_assert_eq!(ra, rb);
                }
                Step::Take(c) => {
                    let done = |d: ustack_core::RecvDone| {
                        let n = *d.result.as_ref().unwrap_or(&0);
                        (d.tag, d.result, d.buf[..n].to_vec())
                    };
                    let ra = a.s.stack.tcp_take_posted(a.conns[c], None).map(done);
                    let rb = b.s.stack.tcp_take_posted(b.conns[c], None).map(done);
                    prop_assert_eq!(ra, rb);
                }
                Step::Send(c, n) => {
                    let now = a.s.now;
                    let ra = a.s.stack.tcp_send(now, a.conns[c], &data[..n]);
                    let rb = b.s.stack.tcp_send(now, b.conns[c], &data[..n]);
                    prop_assert_eq!(ra, rb);
                    a.s.take();
                    b.s.take();
                }
                Step::Wait(ms) => {
                    a.s.wait(ms as f64 / 1000.0);
                    b.s.wait(ms as f64 / 1000.0);
                }
                Step::Resync(c) => next[c] = last_ack[c],
            }
            a.s.stack.tcp_check_invariants();
            b.s.stack.tcp_check_invariants();
            prop_assert_eq!(&a.s.sent, &b.s.sent, "sent after step {} {:?}", k, st);
            prop_assert_eq!(a.s.stack.counters(), b.s.stack.counters(), "counters after step {}", k);
            prop_assert_eq!(a.s.stack.take_readiness_changes(), b.s.stack.take_readiness_changes(), "readiness after step {}", k);
            prop_assert_eq!(a.s.stack.take_events(), b.s.stack.take_events(), "events after step {}", k);
            for c in 0..2 {
                prop_assert_eq!(a.s.stack.tcp_info(a.conns[c]), b.s.stack.tcp_info(b.conns[c]), "info {} after step {}", c, k);
                prop_assert_eq!(a.s.stack.readiness(a.conns[c]), b.s.stack.readiness(b.conns[c]));
            }
            for (_, x) in &a.s.sent {
                let Some(c) = PORTS.iter().position(|&p| p == x.dst.port()) else { continue };
                if x.flags.contains(TcpFlags::ACK) && !x.flags.contains(TcpFlags::RST) {
                    last_ack[c] = x.ack;
                }
                let end = x.seq.wrapping_add(x.payload.len() as u32);
                if end.wrapping_sub(snd_high[c]) as i32 > 0 && !x.flags.contains(TcpFlags::RST) {
                    snd_high[c] = end;
                }
            }
        }
    }
}
