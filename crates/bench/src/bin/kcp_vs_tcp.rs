//! KCP against ustack TCP on the same in-memory link, on virtual time: the
//! KCP authors' claim (10-20% more bandwidth for 30-40% lower average
//! latency than TCP under loss), measured.
//!
//! Two hosts on a `MemLink` with a bottleneck rate, a one-way delay (RTT/2)
//! and random loss each way, driven by the devices crate's `Sim`. KCP runs
//! over the stack's UDP sockets; TCP is ustack's, with CUBIC, with SACK and
//! RACK or with neither. Workloads:
//! - messages: 100-byte messages every 20 ms for 20 s; the latency of each
//!   is its arrival at the receiving application minus its send time;
//! - bulk: N bytes as fast as the protocol goes; goodput, and the link's
//!   frames per MiB delivered (the bandwidth cost, retransmissions included).

use clap::Parser;
use std::net::SocketAddrV4;
use ustack_core::wire::{Ipv4Addr, Ipv4Cidr};
use ustack_core::{
    Congestion, Duration, Errno, Instant, Medium, SocketHandle, Stack, StackConfig, TcpState,
};
use ustack_devices::{Impairments, MemLink, Sim};
use ustack_kcp::{Config, Kcp};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PORT: u16 = 5001;
const MSG: usize = 100;

#[derive(Parser, Debug)]
#[command(
    about = "KCP (normal, nodelay) vs ustack TCP (CUBIC with and without SACK/RACK) on a lossy in-memory link"
)]
struct Args {
    /// Round-trip times in ms.
    #[arg(long, value_delimiter = ',', default_values_t = [20u64, 100])]
    rtt: Vec<u64>,
    /// Loss rates in percent, each direction.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0, 5.0, 10.0])]
    loss: Vec<f64>,
    /// Seeds per configuration (latencies pooled, goodput averaged).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Messages per run (one every 20 ms).
    #[arg(long, default_value_t = 1000)]
    messages: usize,
    /// Bytes of the bulk transfer.
    #[arg(long, default_value_t = 4 << 20)]
    bulk: u64,
    /// Bottleneck rate of the link, Mbit/s.
    #[arg(long, default_value_t = 10)]
    mbps: u64,
    /// Frames the bottleneck queues (each direction).
    #[arg(long, default_value_t = 100)]
    queue: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Proto {
    KcpNormal,
    KcpFast,
    TcpSackRack,
    TcpPlain,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::KcpNormal => "KCP normal (0,40,0,0)",
            Proto::KcpFast => "KCP nodelay (1,10,2,1)",
            Proto::TcpSackRack => "TCP CUBIC SACK+RACK",
            Proto::TcpPlain => "TCP CUBIC no SACK",
        }
    }
    fn kcp(self, bulk: bool) -> Config {
        // The reference README's two settings; windows sized for the path.
        let w = if bulk { 256 } else { 128 };
        match self {
            Proto::KcpFast => Config::fast().with_windows(w, w),
            _ => Config {
                interval: 40,
                ..Config::normal()
            }
            .with_windows(w, w),
        }
    }
}

struct Scenario {
    rtt: u64,
    loss: f64,
    seed: u64,
    mbps: u64,
    queue: usize,
}

fn sim(sc: &Scenario, proto: Proto) -> Sim<Stack> {
    let mut link = MemLink::new(sc.seed);
    link.set_impairments(
        Impairments::none()
            .with_loss(sc.loss)
            .with_delay(Duration::from_millis(sc.rtt / 2))
            .with_bandwidth(sc.mbps * 1_000_000)
            .with_queue_limit(sc.queue),
    );
    let mut sim = Sim::new(link);
    for (addr, seed) in [(A, sc.seed * 2 + 1), (B, sc.seed * 2 + 2)] {
        let mut cfg = StackConfig::new(Medium::Ip, Ipv4Cidr::new(addr, 24)).with_seed(seed);
        cfg.tcp.congestion = Congestion::Cubic;
        if proto == Proto::TcpPlain {
            cfg.tcp.sack = false;
            cfg.tcp.rack = false;
        }
        sim.add_host(Stack::new(cfg).expect("stack config"));
    }
    sim
}

/// What an application loop reports each round: done, and its next timer.
struct Turn {
    done: bool,
    timer: Option<Instant>,
}

/// Runs `app` before every round; the clock stops at the app's timers too.
fn drive(
    sim: &mut Sim<Stack>,
    end: Instant,
    mut app: impl FnMut(&mut Sim<Stack>, Instant) -> Turn,
) -> bool {
    for _ in 0..50_000_000u64 {
        let now = sim.now();
        if app(sim, now).done {
            return true;
        }
        // Deliver what is due now without moving the clock, then let the
        // applications read it at the instant it arrived.
        sim.step(now);
        let t = app(sim, now);
        if t.done {
            return true;
        }
        if now >= end {
            return false;
        }
        let next_ms = Instant::from_millis(now.total_millis() + 1);
        let limit = t
            .timer
            .map_or(end, |x| if x <= now { next_ms } else { x })
            .min(end);
        if !sim.step(limit) {
            sim.run_to(limit, |_| {});
        }
    }
    false
}

#[derive(Default)]
struct Outcome {
    /// Message latencies, ms.
    lat: Vec<f64>,
    /// Bulk: virtual seconds to deliver everything.
    secs: f64,
    bytes: u64,
    /// Bytes the link delivered (both ways, headers, ACKs and
    /// retransmissions included) and frames its queue dropped.
    link_bytes: u64,
    queue_drops: u64,
}

fn msg_bytes(i: usize) -> [u8; MSG] {
    let mut m = [0u8; MSG];
    m[..8].copy_from_slice(&(i as u64).to_le_bytes());
    for (k, b) in m[8..].iter_mut().enumerate() {
        *b = (i + k) as u8;
    }
    m
}

fn msg_index(m: &[u8]) -> usize {
    u64::from_le_bytes(m[..8].try_into().unwrap_or([0; 8])) as usize
}

/// Bulk payload byte at `offset`.
fn bulk_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(31) >> 3) as u8
}

const GAP: Duration = Duration::from_millis(20);

/// When message `i` is written: every 20 ms, at a pseudo-random point in
/// its 20 ms slot, so sends do not line up with KCP's flush grid.
fn send_time(start: Instant, i: usize) -> Instant {
    let offset = (i as u64).wrapping_mul(2_654_435_761) % 20_000;
    start + GAP * i as u32 + Duration::from_micros(offset)
}

fn run_kcp(sc: &Scenario, proto: Proto, messages: usize, bulk: u64) -> Result<Outcome, String> {
    let mut sim = sim(sc, proto);
    let cfg = proto.kcp(bulk > 0);
    let mut socks = Vec::new();
    for (i, addr) in [A, B].into_iter().enumerate() {
        let st = &mut sim.hosts[i];
        let h = st.udp_open();
        st.udp_bind(h, SocketAddrV4::new(addr, PORT))
            .map_err(|e| e.to_string())?;
        st.udp_set_buffers(h, Some(8 << 20), Some(8 << 20))
            .map_err(|e| e.to_string())?;
        socks.push(h);
    }
    let mut kcps = [Kcp::new(1, cfg), Kcp::new(1, cfg)];
    let peers = [SocketAddrV4::new(B, PORT), SocketAddrV4::new(A, PORT)];
    let start = sim.now();
    let mut out = Outcome::default();
    let mut sent_at: Vec<Instant> = Vec::new();
    let (mut next, mut got, mut sent_bytes, mut recvd) = (0usize, 0usize, 0u64, 0u64);
    let mut buf = vec![0u8; 1 << 20];
    let mut error = None;
    let end = start + Duration::from_secs(900);
    let ok = drive(&mut sim, end, |s, now| {
        let ms = now.total_millis() as u32;
        // Sender application.
        let mut timer = None;
        if bulk == 0 {
            while next < messages && send_time(start, next) <= now {
                let _ = kcps[0].send(&msg_bytes(next));
                sent_at.push(now);
                next += 1;
            }
            if next < messages {
                timer = Some(send_time(start, next));
            }
        } else {
            while sent_bytes < bulk && kcps[0].wait_snd() < 2 * usize::from(cfg.snd_wnd) {
                let n = (bulk - sent_bytes).min(kcps[0].mss() as u64 * 8) as usize;
                let chunk: Vec<u8> = (0..n as u64).map(|k| bulk_byte(sent_bytes + k)).collect();
                if kcps[0].send(&chunk).is_err() {
                    break;
                }
                sent_bytes += n as u64;
            }
        }
        for i in 0..2 {
            let st = &mut s.hosts[i];
            while let Ok((n, _, _)) = st.udp_recv_from(socks[i], &mut buf) {
                let _ = kcps[i].input(&buf[..n]);
            }
            let (h, peer) = (socks[i], peers[i]);
            kcps[i].update(ms, &mut |d| {
                let _ = st.udp_send_to(h, d, Some(peer.into()));
            });
            let t = Instant::from_millis(u64::from(kcps[i].check(ms)));
            timer = Some(timer.map_or(t, |x: Instant| x.min(t)));
        }
        // Receiver application.
        while let Ok(n) = kcps[1].recv(&mut buf) {
            if bulk == 0 {
                let idx = msg_index(&buf[..n]);
                if idx != got || buf[..n] != msg_bytes(got) {
                    error = Some(format!("message {got} wrong (index {idx})"));
                    return Turn { done: true, timer };
                }
                out.lat.push((now - sent_at[got]).as_secs_f64() * 1e3);
                got += 1;
            } else {
                if (0..n).any(|k| buf[k] != bulk_byte(recvd + k as u64)) {
                    error = Some(format!("wrong bytes near {recvd}"));
                    return Turn { done: true, timer };
                }
                recvd += n as u64;
            }
        }
        let done = if bulk == 0 {
            got == messages
        } else {
            recvd >= bulk
        };
        Turn { done, timer }
    });
    if let Some(e) = error {
        return Err(e);
    }
    if !ok {
        return Err(format!("KCP stalled: {got} messages, {recvd} bytes"));
    }
    out.secs = (sim.now() - start).as_secs_f64();
    out.bytes = recvd;
    out.link_bytes = sim.link.stats().bytes_delivered;
    out.queue_drops = sim.link.stats().dropped_queue;
    Ok(out)
}

fn run_tcp(sc: &Scenario, proto: Proto, messages: usize, bulk: u64) -> Result<Outcome, String> {
    let mut sim = sim(sc, proto);
    let now = sim.now();
    let buf_size = 1 << 20;
    let l = sim.hosts[1].tcp_open();
    let srv = &mut sim.hosts[1];
    srv.tcp_set_buffers(l, Some(buf_size), Some(buf_size))
        .map_err(|e| e.to_string())?;
    srv.tcp_bind(l, SocketAddrV4::new(B, PORT))
        .map_err(|e| e.to_string())?;
    srv.tcp_listen(l, 4).map_err(|e| e.to_string())?;
    let cl = &mut sim.hosts[0];
    let c = cl.tcp_open();
    cl.tcp_set_buffers(c, Some(buf_size), Some(buf_size))
        .map_err(|e| e.to_string())?;
    cl.tcp_set_nodelay(c, true).map_err(|e| e.to_string())?;
    match cl.tcp_connect(now, c, SocketAddrV4::new(B, PORT)) {
        Ok(()) | Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.to_string()),
    }
    // Wait for the connection, then start the clock.
    let mut server: Option<SocketHandle> = None;
    let up = drive(&mut sim, now + Duration::from_secs(60), |s, _| {
        if server.is_none() {
            server = s.hosts[1].tcp_accept(l).ok().map(|(h, _)| h);
        }
        Turn {
            done: server.is_some() && s.hosts[0].tcp_state(c) == Ok(TcpState::Established),
            timer: None,
        }
    });
    let srv_h = server
        .filter(|_| up)
        .ok_or("TCP handshake did not finish")?;
    let start = sim.now();
    let link0 = sim.link.stats();
    let mut out = Outcome::default();
    let mut sent_at: Vec<Instant> = Vec::new();
    let (mut next, mut got, mut sent_bytes, mut recvd) = (0usize, 0usize, 0u64, 0u64);
    let mut pending: Vec<u8> = Vec::new();
    let mut rx: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut error = None;
    let end = start + Duration::from_secs(900);
    let ok = drive(&mut sim, end, |s, now| {
        let mut timer = None;
        let cl = &mut s.hosts[0];
        if bulk == 0 {
            while next < messages && send_time(start, next) <= now {
                pending.extend_from_slice(&msg_bytes(next));
                sent_at.push(now);
                next += 1;
            }
            if next < messages {
                timer = Some(send_time(start, next));
            }
            while !pending.is_empty() {
                match cl.tcp_send(now, c, &pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(_) => break,
                }
            }
        } else {
            while sent_bytes < bulk {
                let n = (bulk - sent_bytes).min(64 << 10) as usize;
                let chunk: Vec<u8> = (0..n as u64).map(|k| bulk_byte(sent_bytes + k)).collect();
                match cl.tcp_send(now, c, &chunk) {
                    Ok(n) => sent_bytes += n as u64,
                    Err(_) => break,
                }
            }
        }
        let sv = &mut s.hosts[1];
        while let Ok(n) = sv.tcp_recv(srv_h, &mut buf) {
            if n == 0 {
                break;
            }
            if bulk == 0 {
                rx.extend_from_slice(&buf[..n]);
                while rx.len() >= MSG {
                    if rx[..MSG] != msg_bytes(got) {
                        error = Some(format!("message {got} wrong"));
                        return Turn { done: true, timer };
                    }
                    out.lat.push((now - sent_at[got]).as_secs_f64() * 1e3);
                    got += 1;
                    rx.drain(..MSG);
                }
            } else {
                if (0..n).any(|k| buf[k] != bulk_byte(recvd + k as u64)) {
                    error = Some(format!("wrong bytes near {recvd}"));
                    return Turn { done: true, timer };
                }
                recvd += n as u64;
            }
        }
        let done = if bulk == 0 {
            got == messages
        } else {
            recvd >= bulk
        };
        Turn { done, timer }
    });
    if let Some(e) = error {
        return Err(e);
    }
    if !ok {
        return Err(format!("TCP stalled: {got} messages, {recvd} bytes"));
    }
    out.secs = (sim.now() - start).as_secs_f64();
    out.bytes = recvd;
    out.link_bytes = sim.link.stats().bytes_delivered - link0.bytes_delivered;
    out.queue_drops = sim.link.stats().dropped_queue - link0.dropped_queue;
    Ok(out)
}

fn run(sc: &Scenario, proto: Proto, messages: usize, bulk: u64) -> Result<Outcome, String> {
    match proto {
        Proto::KcpNormal | Proto::KcpFast => run_kcp(sc, proto, messages, bulk),
        _ => run_tcp(sc, proto, messages, bulk),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args = Args::parse();
    println!(
        "KCP vs ustack TCP, virtual time; link {} Mbit/s, queue {} frames, loss each way; {} seeds; messages: {} x {MSG} B every 20 ms; bulk: {} bytes",
        args.mbps, args.queue, args.seeds, args.messages, args.bulk
    );
    println!(
        "| RTT | loss | protocol | msg avg ms | msg p99 ms | bulk Mbit/s | link bytes / payload byte | queue drops |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let protos = [
        Proto::KcpNormal,
        Proto::KcpFast,
        Proto::TcpSackRack,
        Proto::TcpPlain,
    ];
    for &rtt in &args.rtt {
        for &loss in &args.loss {
            for proto in protos {
                let mut lat = Vec::new();
                let (mut mbps, mut cost, mut drops, mut n) = (0.0, 0.0, 0.0, 0.0);
                let mut failed = None;
                for seed in 0..args.seeds {
                    let sc = Scenario {
                        rtt,
                        loss: loss / 100.0,
                        seed: seed + 1,
                        mbps: args.mbps,
                        queue: args.queue,
                    };
                    match run(&sc, proto, args.messages, 0) {
                        Ok(o) => {
                            if std::env::var_os("KCP_VS_TCP_DEBUG").is_some() {
                                eprintln!(
                                    "{} msgs: {} delivered, {:.1} s, link bytes {}",
                                    proto.name(),
                                    o.lat.len(),
                                    o.secs,
                                    o.link_bytes
                                );
                            }
                            lat.extend(o.lat)
                        }
                        Err(e) => failed = Some(e),
                    }
                    match run(&sc, proto, 0, args.bulk) {
                        Ok(o) => {
                            mbps += o.bytes as f64 * 8.0 / o.secs / 1e6;
                            cost += o.link_bytes as f64 / o.bytes as f64;
                            drops += o.queue_drops as f64;
                            n += 1.0;
                        }
                        Err(e) => failed = Some(e),
                    }
                }
                lat.sort_by(f64::total_cmp);
                let avg = lat.iter().sum::<f64>() / lat.len().max(1) as f64;
                println!(
                    "| {rtt} ms | {loss}% | {} | {avg:.1} | {:.1} | {:.2} | {:.3} | {:.0} |{}",
                    proto.name(),
                    percentile(&lat, 99.0),
                    mbps / n,
                    cost / n,
                    drops / n,
                    failed.map(|e| format!(" failed: {e}")).unwrap_or_default()
                );
            }
        }
    }
}
