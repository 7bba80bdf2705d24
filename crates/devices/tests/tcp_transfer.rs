//! Bulk TCP in both directions at once between two stacks over an impaired
//! MemLink on the virtual clock (issue 4): each impairment alone, then all
//! together. Each run checks that
//! - the bytes each side reads hash to the bytes the other side wrote,
//! - the transfer finishes within a bound derived from the link (see
//!   [`time_bound`]),
//! - each sender's retransmissions account for what the link took from it
//!   (at least the bytes lost, see [`Wire`]) and are not wildly more.
//!
//! Sizes: `*_4mib` move 4 MiB each way, `*_64mib` 64 MiB each way; both
//! run by default. The workspace's dev profile builds with opt-level 1, and
//! the whole matrix then takes a few seconds of wall time (the virtual clock
//! jumps from event to event; the cost is per frame, not per virtual
//! second). `USTACK_SKIP_BIG_TRANSFERS=1` skips the 64 MiB half;
//! `USTACK_TRANSFER_MIB=n` overrides the size of both.

use std::collections::HashSet;
use std::net::SocketAddrV4;
use std::time::Instant as WallClock;
use ustack_core::time::{Duration, Instant};
use ustack_core::wire::{
    ChecksumCaps, EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Addr, Ipv4Cidr,
    Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
};
use ustack_core::{
    Congestion, Errno, Medium, Shutdown, SocketHandle, Stack, StackConfig, TcpState,
};
use ustack_devices::{Impairments, LinkStats, MemLink, Sim, SimHost};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// The link both ways: 100 Mbit/s, 2 ms one way, and a drop-tail queue of
/// one bandwidth-delay product but at least 100 frames (so a window-filling
/// CUBIC finds drops, yet after its ×0.7 reduction still fills the pipe).
const BANDWIDTH_BPS: u64 = 100_000_000;
const BASE_DELAY_MS: u64 = 2;
const MIN_QUEUE_FRAMES: usize = 100;

fn mac(addr: Ipv4Addr) -> EthernetAddress {
    EthernetAddress([2, 0, 0, 0, 0, addr.octets()[3]])
}

fn cfg(addr: Ipv4Addr, seed: u64, cc: Congestion) -> StackConfig {
    let mut c = StackConfig::new(Medium::Ethernet, Ipv4Cidr::new(addr, 24))
        .with_seed(seed)
        .with_mac(mac(addr));
    c.tcp.congestion = cc;
    c
}

/// What one host put on the wire and took off it, judged from the frames
/// themselves (one TCP connection per host).
///
/// Segments are told apart by (sequence number, length, TSval): a copy the
/// link made is alike, a retransmission is not unless sent within the same
/// millisecond as an earlier alike copy, which the sender side sees
/// (`dups_tx`). Lost = distinct segments sent less distinct received.
///
/// Why `retx_bytes >= lost_bytes` must hold: take one byte and its
/// transmissions in time order. A transmission that fails (dropped, or
/// corrupted so the receiver rejects it) before the byte is delivered is
/// followed by a later transmission of it, a retransmission, distinct for
/// each such failure; one that fails after delivery was itself a
/// retransmission. So the failed transmissions of each byte map one-to-one
/// into its retransmissions.
#[derive(Debug, Default, Clone, Copy)]
struct Wire {
    /// Highest sequence number sent plus one (SYN and FIN count).
    snd_max: Option<u32>,
    data_segs_tx: u64,
    data_bytes_tx: u64,
    /// Segments occupying sequence space that start below `snd_max`.
    retx_segs_tx: u64,
    retx_bytes_tx: u64,
    /// Data segments sent twice alike (same sequence number, length and
    /// TSval: within the same millisecond), counted once above.
    dups_tx: u64,
    /// Data segments received intact (checksums good, addressed to us),
    /// copies alike counted once (a link-made duplicate is alike; a
    /// retransmission has a new TSval unless sent in the same millisecond,
    /// when the sender counted it in `dups_tx`).
    data_segs_rx: u64,
    data_bytes_rx: u64,
    dups_rx: u64,
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// A stack with a meter on its wire.
struct Host {
    stack: Stack,
    mac: EthernetAddress,
    wire: Wire,
    /// `(seq, TSval, len)` of every data segment received, and sent.
    seen_rx: HashSet<(u32, u32, usize)>,
    seen_tx: HashSet<(u32, u32, usize)>,
}

/// The TCP segment in an Ethernet frame, if intact and for `to` (or
/// anyone): sequence number, payload length, sequence space, TSval.
fn tcp_in(frame: &[u8], to: Option<EthernetAddress>) -> Option<(u32, usize, usize, u32)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if to.is_some_and(|m| eth.dst_addr() != m) || eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ipr = Ipv4Repr::parse(&ip, &ChecksumCaps::default()).ok()?;
    if ipr.protocol != IpProtocol::Tcp {
        return None;
    }
    let payload = ip.payload().get(..ipr.payload_len)?;
    let tcp = TcpPacket::new_checked(payload).ok()?;
    let r = TcpRepr::parse(&tcp, ipr.src_addr, ipr.dst_addr, &ChecksumCaps::default()).ok()?;
    let tsval = r.timestamp.map_or(0, |t| t.tsval);
    Some((r.seq_number.0, r.payload.len(), r.segment_len(), tsval))
}

impl SimHost for Host {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        if let Some((seq, len, _, tsval)) = tcp_in(frame, Some(self.mac)) {
            if len > 0 {
                if self.seen_rx.insert((seq, tsval, len)) {
                    self.wire.data_segs_rx += 1;
                    self.wire.data_bytes_rx += len as u64;
                } else {
                    self.wire.dups_rx += 1;
                }
            }
        }
        self.stack.receive(now, frame)
    }

    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let n = self.stack.transmit(now, buf)?;
        if let Some((seq, len, seg_len, tsval)) = tcp_in(&buf[..n], None) {
            let w = &mut self.wire;
            if len > 0 {
                if self.seen_tx.insert((seq, tsval, len)) {
                    w.data_segs_tx += 1;
                    w.data_bytes_tx += len as u64;
                } else {
                    w.dups_tx += 1;
                }
            }
            if seg_len > 0 {
                let end = seq.wrapping_add(seg_len as u32);
                match w.snd_max {
                    Some(max) if seq_lt(seq, max) => {
                        w.retx_segs_tx += 1;
                        w.retx_bytes_tx += len as u64;
                        if seq_lt(max, end) {
                            w.snd_max = Some(end);
                        }
                    }
                    _ => w.snd_max = Some(end),
                }
            }
        }
        Some(n)
    }

    fn poll_at(&self) -> Option<Instant> {
        self.stack.poll_at()
    }
}

/// FNV-1a, streaming.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A source of `len` bytes: a pseudo-random block of prime length (so
/// that no segment boundary lines up with its period), written from where
/// the last write stopped.
struct Source {
    block: Vec<u8>,
    len: usize,
    pos: usize,
    hash: Fnv,
}

impl Source {
    fn new(len: usize, seed: u64) -> Source {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let block = (0..1_000_003)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        Source {
            block,
            len,
            pos: 0,
            hash: Fnv::new(),
        }
    }

    /// Writes as much as the socket takes; true once everything is written.
    fn pump(&mut self, stack: &mut Stack, now: Instant, h: SocketHandle) -> bool {
        while self.pos < self.len {
            let at = self.pos % self.block.len();
            let n = (self.block.len() - at).min(self.len - self.pos);
            let chunk = &self.block[at..at + n];
            match stack.tcp_send(now, h, chunk) {
                Ok(k) => {
                    self.hash.update(&chunk[..k]);
                    self.pos += k;
                }
                Err(Errno::EAGAIN) => return false,
                Err(e) => panic!("send after {} bytes: {e}", self.pos),
            }
        }
        true
    }
}

/// One direction's reader.
struct Sink {
    got: usize,
    hash: Fnv,
    eof: bool,
}

impl Sink {
    fn new() -> Sink {
        Sink {
            got: 0,
            hash: Fnv::new(),
            eof: false,
        }
    }

    fn drain(&mut self, stack: &mut Stack, h: SocketHandle, buf: &mut [u8]) {
        while !self.eof {
            match stack.tcp_recv(h, buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.hash.update(&buf[..n]);
                    self.got += n;
                }
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("recv after {} bytes: {e}", self.got),
            }
        }
    }
}

struct Outcome {
    took: Duration,
    wall: std::time::Duration,
    link: LinkStats,
    wires: [Wire; 2],
    counters: [ustack_core::Counters; 2],
}

/// Both hosts write `len` bytes to each other at once, half-close, and
/// read to EOF. Panics unless both streams arrive intact by `deadline`.
fn both_ways(
    len: usize,
    imp: Impairments,
    seed: u64,
    deadline: Duration,
    cc: Congestion,
) -> Outcome {
    let wall = WallClock::now();
    let mut link = MemLink::new(seed);
    link.set_impairments(imp);
    let mut sim = Sim::new(link);
    for (addr, s) in [(A, seed), (B, seed + 1)] {
        sim.add_host(Host {
            stack: Stack::new(cfg(addr, s, cc)).unwrap(),
            mac: mac(addr),
            wire: Wire::default(),
            seen_rx: HashSet::new(),
            seen_tx: HashSet::new(),
        });
    }
    let l = sim.hosts[1].stack.tcp_open();
    sim.hosts[1]
        .stack
        .tcp_bind(l, SocketAddrV4::new(B, 80))
        .unwrap();
    sim.hosts[1].stack.tcp_listen(l, 4).unwrap();
    let c = sim.hosts[0].stack.tcp_open();
    let now = sim.now();
    assert_eq!(
        sim.hosts[0]
            .stack
            .tcp_connect(now, c, SocketAddrV4::new(B, 80)),
        Err(Errno::EINPROGRESS)
    );
    let mut handles = [Some(c), None];
    let mut src = [Source::new(len, seed ^ 0xa), Source::new(len, seed ^ 0xb)];
    let mut sink = [Sink::new(), Sink::new()];
    let mut shut = [false, false];
    let mut buf = vec![0u8; 1 << 16];
    let start = sim.now();
    let end = start + deadline;
    let done = sim.run_until(end, |s| {
        let now = s.now();
        if handles[1].is_none() {
            handles[1] = s.hosts[1].stack.tcp_accept(l).ok().map(|(h, _)| h);
        }
        for i in 0..2 {
            let Some(h) = handles[i] else { continue };
            let st = &mut s.hosts[i].stack;
            if st.tcp_state(h) == Ok(TcpState::SynSent) {
                continue;
            }
            if !shut[i] && src[i].pump(st, now, h) {
                st.tcp_shutdown(now, h, Shutdown::Write).unwrap();
                shut[i] = true;
            }
            sink[i].drain(st, h, &mut buf);
        }
        (0..2).all(|i| {
            sink[i].eof
                && handles[i].is_some_and(|h| {
                    matches!(
                        s.hosts[i].stack.tcp_state(h),
                        Ok(TcpState::TimeWait | TcpState::Closed)
                    )
                })
        })
    });
    let took = sim.now() - start;
    // Nothing left to happen before the deadline: no frame in flight, no
    // timer armed on either host. A connection that still has work then
    // waits for ever.
    let stalled = sim.link.poll_at().is_none() && sim.hosts.iter().all(|h| h.poll_at().is_none());
    for i in 0..2 {
        let j = 1 - i;
        assert!(
            done,
            "not done: {} after {took:?} (deadline {deadline:?}): host {i} read {} of {len}, \
             eof {}, state {:?}, info {:?}",
            if stalled {
                "stalled, no frame in flight and no timer armed,"
            } else {
                "still running"
            },
            sink[i].got,
            sink[i].eof,
            handles[i].map(|h| s_state(&sim, i, h)),
            handles[i].map(|h| sim.hosts[i].stack.tcp_info(h)),
        );
        assert_eq!(sink[i].got, len, "bytes host {i} read");
        assert_eq!(
            sink[i].hash.0, src[j].hash.0,
            "hash of what host {i} read vs what host {j} wrote"
        );
    }
    // Let frames still in flight land, so that the wire meters agree.
    sim.run_for(Duration::from_secs(2));
    Outcome {
        took,
        wall: wall.elapsed(),
        link: sim.link.stats(),
        wires: [sim.hosts[0].wire, sim.hosts[1].wire],
        counters: [
            *sim.hosts[0].stack.counters(),
            *sim.hosts[1].stack.counters(),
        ],
    }
}

fn s_state(sim: &Sim<Host>, i: usize, h: SocketHandle) -> Result<TcpState, Errno> {
    sim.hosts[i].stack.tcp_state(h)
}

/// Bytes on the wire per segment beyond its payload: Ethernet 14, IPv4 20,
/// TCP 20 + 12 of timestamps.
const OVERHEAD: f64 = 66.0;
/// Payload per full segment (1500 - 20 - 20 - 12).
const SMSS: f64 = 1448.0;

/// How long moving `len` bytes each way may take over `imp`, in seconds.
///
/// - Link: each direction carries one stream plus the ACKs piggybacked on
///   it (pure ACKs, 66 bytes per two segments at worst, included):
///   `len · (SMSS + 1.5 · OVERHEAD) / SMSS · 8 / bandwidth`.
/// - Loss: the PFTK model (Padhye, Firoiu, Towsley, Kurose, SIGCOMM '98)
///   of a Reno flow's throughput with timeouts,
///   `SMSS / (RTT·√(2bp/3) + T0·min(1, 3·√(3bp/8))·p·(1 + 32p²))`,
///   with b = 2 (delayed ACKs), T0 = 200 ms (the RTO floor) and p the
///   chance a segment or its ACK is lost, corrupted, or reordered by more
///   than three segments (which the spec's fast retransmit takes for a
///   loss; reordering counts in the first term only, as it brings no
///   timeouts). RTT is twice the
///   one-way delay, mean jitter and reorder hold-back, plus a full queue's
///   worth of serialization (which a window-filling CUBIC will find).
/// - Fixed costs: 20 RTTs (handshake, slow start, FIN exchange) and 1 s.
///
/// The transfer is limited by the slower of link and loss model; SACK and
/// CUBIC should beat Reno's model, so the bound is 3× that plus the fixed
/// costs, which catches a stack stalling on RTOs where it should recover
/// fast, without flaking on a particular seed.
fn time_bound(len: usize, imp: &Impairments) -> f64 {
    let bw = imp.bandwidth_bps.unwrap_or(u64::MAX) as f64;
    let frame_s = (SMSS + OVERHEAD) * 8.0 / bw;
    let one_way = imp.delay.as_secs_f64()
        + imp.jitter.as_secs_f64() / 2.0
        + imp.reorder * imp.reorder_delay.as_secs_f64();
    let queue = match imp.queue_limit {
        0 => ustack_devices::memlink::DEFAULT_QUEUE_LIMIT,
        n => n,
    };
    let rtt = 2.0 * one_way + 2.0 * frame_s + queue as f64 * frame_s;
    let link = len as f64 * (SMSS + 1.5 * OVERHEAD) / SMSS * 8.0 / bw;
    // A segment held back by more than three segments' time draws three
    // duplicate ACKs: a (spurious) fast retransmit and a window reduction,
    // as for a loss (no undo is specified), though no timeout.
    let reorder_as_loss = if imp.reorder_delay.as_secs_f64() > 3.0 * frame_s {
        imp.reorder
    } else {
        0.0
    };
    // Window reductions come from losses and reordering, timeouts only
    // from losses.
    let p_loss = 1.0 - (1.0 - imp.loss) * (1.0 - imp.corrupt);
    let p = 1.0 - (1.0 - p_loss) * (1.0 - reorder_as_loss);
    let model = if p > 0.0 {
        let b = 2.0;
        let t0 = 0.2f64.max(rtt);
        let per_seg = rtt * (2.0 * b * p / 3.0).sqrt()
            + t0 * (3.0 * (3.0 * b * p_loss / 8.0).sqrt()).min(1.0)
                * p_loss
                * (1.0 + 32.0 * p_loss * p_loss);
        len as f64 / (SMSS / per_seg)
    } else {
        0.0
    };
    3.0 * link.max(model) + 20.0 * rtt + 1.0
}

fn base() -> Impairments {
    Impairments::none()
        .with_bandwidth(BANDWIDTH_BPS)
        .with_delay(Duration::from_millis(BASE_DELAY_MS))
}

/// Sets the queue to one bandwidth-delay product of full frames (at least
/// `MIN_QUEUE_FRAMES`), from the propagation RTT with mean jitter.
fn bdp_queue(imp: Impairments) -> Impairments {
    let rtt = 2.0 * (imp.delay.as_secs_f64() + imp.jitter.as_secs_f64() / 2.0);
    let frame_bits = (SMSS + OVERHEAD) * 8.0;
    let bdp = (BANDWIDTH_BPS as f64 * rtt / frame_bits).ceil() as usize;
    imp.with_queue_limit(bdp.max(MIN_QUEUE_FRAMES))
}

/// The scenarios: each impairment alone on the base link, then all.
fn scenarios() -> Vec<(&'static str, Impairments)> {
    let ms = Duration::from_millis;
    let v = vec![
        ("clean", base()),
        ("loss 1%", base().with_loss(0.01)),
        ("loss 5%", base().with_loss(0.05)),
        ("loss 10%", base().with_loss(0.10)),
        ("reorder 2% by 3 ms", base().with_reorder(0.02, ms(3))),
        ("duplicate 2%", base().with_duplicate(0.02)),
        ("corrupt 1%", base().with_corrupt(0.01)),
        (
            "delay 20 ms, jitter 10 ms",
            base().with_delay(ms(20)).with_jitter(ms(10)),
        ),
        (
            "all together",
            base()
                .with_loss(0.02)
                .with_reorder(0.01, ms(3))
                .with_duplicate(0.01)
                .with_corrupt(0.005)
                .with_delay(ms(20))
                .with_jitter(ms(10)),
        ),
    ];
    v.into_iter().map(|(n, imp)| (n, bdp_queue(imp))).collect()
}

/// Runs one scenario and checks it; returns a report line.
fn check(name: &str, imp: Impairments, len: usize, seed: u64, cc: Congestion) -> String {
    let bound = time_bound(len, &imp);
    let o = both_ways(
        len,
        imp,
        seed,
        Duration::from_secs_f64(bound * 2.0 + 60.0),
        cc,
    );
    let took = o.took.as_secs_f64();
    let mut report = format!(
        "{name:<26} {:>4} MiB each way: {took:>8.2} s virtual (bound {bound:.1} s), {:>6.2} s wall; \
         link dropped {} (queue {}), corrupted {}, duplicated {}, reordered {}",
        len >> 20,
        o.wall.as_secs_f64(),
        o.link.dropped_loss,
        o.link.dropped_queue,
        o.link.corrupted,
        o.link.duplicated,
        o.link.reordered,
    );
    let data_segs_total: u64 = o.wires.iter().map(|w| w.data_segs_tx).sum();
    // Frames the link mistreated in ways that may fairly draw spurious
    // retransmissions (both directions: a reordered or duplicated ACK
    // matters as much as a reordered data segment).
    let disorder = o.link.reordered + o.link.duplicated;
    for i in 0..2 {
        let j = 1 - i;
        let (w, t) = (o.wires[i], o.counters[i].tcp);
        // What i sent that j did not take: dropped, queue-dropped, corrupted
        // (duplicates made by the link are not counted as taken).
        let lost_bytes = w.data_bytes_tx.saturating_sub(o.wires[j].data_bytes_rx);
        let lost_segs = w.data_segs_tx.saturating_sub(o.wires[j].data_segs_rx);
        report += &format!(
            "\n    host {i}: sent {} data segments (and {} again alike), \
             lost {lost_segs} ({lost_bytes} B), {} duplicates reached the peer; \
             retransmitted {} segments ({} B) on the wire, retrans_segs {}, \
             fast_retrans {}, timeouts {}, sack_retrans {}, rto_retrans {}",
            w.data_segs_tx,
            w.dups_tx,
            o.wires[j].dups_rx,
            w.retx_segs_tx,
            w.retx_bytes_tx,
            t.retrans_segs,
            t.fast_retrans,
            t.timeouts,
            t.sack_retrans,
            t.rto_retrans,
        );
        assert!(
            w.retx_bytes_tx >= lost_bytes,
            "{name}: host {i} lost {lost_bytes} B but retransmitted only {} B\n{report}",
            w.retx_bytes_tx
        );
        // Each retransmission carries at most one SMSS.
        let min_segs = lost_bytes.div_ceil(SMSS as u64);
        assert!(
            t.retrans_segs >= min_segs,
            "{name}: host {i} counts {} retransmissions for {lost_bytes} B lost\n{report}",
            t.retrans_segs
        );
        // The counter and the wire agree (zero-window probes aside, which
        // these transfers should not need).
        assert!(
            t.retrans_segs.abs_diff(w.retx_segs_tx) <= 2 + w.retx_segs_tx / 100,
            "{name}: host {i}: retrans_segs {} but {} retransmissions seen\n{report}",
            t.retrans_segs,
            w.retx_segs_tx
        );
        // Not wildly more: twice the losses (a retransmission may be lost
        // too, or go once early), two per frame the link disordered, and
        // 1% of all data segments plus 50 for timeouts' go-back-N bursts.
        let allowance = 2 * lost_segs + 2 * disorder + data_segs_total / 100 + 50;
        assert!(
            t.retrans_segs <= allowance,
            "{name}: host {i} retransmitted {} segments, allowance {allowance}\n{report}",
            t.retrans_segs
        );
    }
    // Up to a few percent of random loss, SACK recovery repairs almost
    // everything; timeouts are for lost retransmissions and tails.
    let p = 1.0 - (1.0 - imp.loss) * (1.0 - imp.corrupt);
    if p > 0.0 && p <= 0.05 {
        for i in 0..2 {
            let t = o.counters[i].tcp;
            assert!(
                t.fast_retrans > 0 && t.timeouts <= t.fast_retrans,
                "{name}: host {i}: {} timeouts, {} fast retransmits\n{report}",
                t.timeouts,
                t.fast_retrans
            );
        }
    }
    if imp.loss == 0.0 && imp.corrupt == 0.0 && imp.reorder == 0.0 && imp.duplicate == 0.0 {
        for i in 0..2 {
            let lost = o.wires[i]
                .data_segs_tx
                .saturating_sub(o.wires[1 - i].data_segs_rx);
            if lost == 0 {
                assert_eq!(
                    o.counters[i].tcp.retrans_segs, 0,
                    "{name}: host {i}: nothing lost, nothing to resend\n{report}"
                );
            }
        }
    }
    if imp.delay >= Duration::from_millis(10) {
        // A bandwidth-delay product (~500 KB here) beyond the default
        // 128 KiB receive buffer: autotuning must have grown the buffers.
        for i in 0..2 {
            assert!(
                o.counters[i].tcp.rcvbuf_grown > 0,
                "{name}: host {i}: receive buffer never grew\n{report}"
            );
        }
    }
    assert!(
        took <= bound,
        "{name}: took {took:.2} s, bound {bound:.2} s\n{report}"
    );
    report
}

fn mib_from_env(default: usize) -> usize {
    std::env::var("USTACK_TRANSFER_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scenario(name: &str) -> Impairments {
    scenarios()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
        .1
}

/// 4 MiB each way: always on, also in debug builds.
fn small(name: &str, seed: u64) {
    eprintln!(
        "{}",
        check(
            name,
            scenario(name),
            mib_from_env(4) << 20,
            seed,
            Congestion::Cubic
        )
    );
}

/// 64 MiB each way: the full matrix, also always on (see the module docs
/// for what it costs).
fn big(name: &str, seed: u64) {
    if std::env::var("USTACK_SKIP_BIG_TRANSFERS").as_deref() == Ok("1") {
        say_skipped("USTACK_SKIP_BIG_TRANSFERS=1");
        return;
    }
    eprintln!(
        "{}",
        check(
            name,
            scenario(name),
            mib_from_env(64) << 20,
            seed,
            Congestion::Cubic
        )
    );
}

macro_rules! matrix {
    ($($small:ident, $big:ident, $name:literal, $seed:literal;)*) => {
        $(
            #[test]
            fn $small() {
                small($name, $seed);
            }
            #[test]
            fn $big() {
                big($name, $seed + 1000);
            }
        )*
        #[test]
        fn every_scenario_has_its_tests() {
            let mut names = vec![$($name),*];
            names.sort();
            let mut all: Vec<&str> = scenarios().into_iter().map(|(n, _)| n).collect();
            all.sort();
            assert_eq!(names, all);
        }
    };
}

matrix! {
    clean_4mib, clean_64mib, "clean", 1;
    loss_1pct_4mib, loss_1pct_64mib, "loss 1%", 2;
    loss_5pct_4mib, loss_5pct_64mib, "loss 5%", 3;
    loss_10pct_4mib, loss_10pct_64mib, "loss 10%", 4;
    reorder_4mib, reorder_64mib, "reorder 2% by 3 ms", 5;
    duplicate_4mib, duplicate_64mib, "duplicate 2%", 6;
    corrupt_4mib, corrupt_64mib, "corrupt 1%", 7;
    delay_jitter_4mib, delay_jitter_64mib, "delay 20 ms, jitter 10 ms", 8;
    all_together_4mib, all_together_64mib, "all together", 9;
}

/// BBR (paced) through each scenario, 4 MiB each way: the same checks
/// (bytes intact, retransmissions that account for the losses, the time
/// bound).
macro_rules! bbr_matrix {
    ($($test:ident, $name:literal, $seed:literal;)*) => {
        $(
            #[test]
            fn $test() {
                let len = mib_from_env(4) << 20;
                eprintln!("{}", check($name, scenario($name), len, $seed, Congestion::Bbr));
            }
        )*
        #[test]
        fn every_scenario_has_its_bbr_test() {
            let mut names = vec![$($name),*];
            names.sort();
            let mut all: Vec<&str> = scenarios().into_iter().map(|(n, _)| n).collect();
            all.sort();
            assert_eq!(names, all);
        }
    };
}

bbr_matrix! {
    bbr_clean_4mib, "clean", 101;
    bbr_loss_1pct_4mib, "loss 1%", 102;
    bbr_loss_5pct_4mib, "loss 5%", 103;
    bbr_loss_10pct_4mib, "loss 10%", 104;
    bbr_reorder_4mib, "reorder 2% by 3 ms", 105;
    bbr_duplicate_4mib, "duplicate 2%", 106;
    bbr_corrupt_4mib, "corrupt 1%", 107;
    bbr_delay_jitter_4mib, "delay 20 ms, jitter 10 ms", 108;
    bbr_all_together_4mib, "all together", 109;
}

/// The time bound itself: the clean link is bandwidth-bound, loss makes it
/// longer, and the numbers are what the comment on `time_bound` says.
#[test]
fn time_bound_follows_the_link() {
    let len = 64 << 20;
    for (name, imp) in scenarios() {
        eprintln!("{name}: {:.1} s", time_bound(len, &imp));
    }
    let clean = time_bound(len, &scenario("clean"));
    // 64 MiB at 100 Mbit/s with 6.8% overhead is 5.7 s; 3× plus fixed costs.
    assert!((17.0..19.5).contains(&clean), "{clean}");
    let l1 = time_bound(len, &scenario("loss 1%"));
    let l5 = time_bound(len, &scenario("loss 5%"));
    let l10 = time_bound(len, &scenario("loss 10%"));
    assert!(
        clean <= l1 && l1 < l5 && l5 < l10,
        "{clean} {l1} {l5} {l10}"
    );
}

use ustack_testkit::say_skipped;
