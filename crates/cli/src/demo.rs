//! `ustack demo`: two stacks on an in-memory link, a ping and a UDP echo
//! exchange over whatever impairments were asked for, and a summary.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddrV4;
use std::path::PathBuf;
use ustack_core::wire::{Ipv4Addr, Ipv4Cidr};
use ustack_core::{Duration, Errno, Instant, Medium, Stack, StackConfig};
use ustack_devices::{Impairments, LinkKind, MemLink, PcapSink, Sim};

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const ECHO_PORT: u16 = 7;

/// What the demo was asked to do.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub loss: f64,
    pub delay: Duration,
    pub corrupt: f64,
    pub count: u32,
    pub size: usize,
    pub seed: u64,
    pub pcap: Option<PathBuf>,
}

/// What happened.
#[derive(Debug, Default)]
pub struct DemoReport {
    pub pings_sent: u32,
    pub pings_received: u32,
    pub rtts: Vec<Duration>,
    pub datagrams_sent: u32,
    pub echoes_intact: u32,
    pub echoes_damaged: u32,
    pub text: String,
}

fn payload(seq: u32, size: usize) -> Vec<u8> {
    let mut x = seq.wrapping_mul(2_654_435_761) | 1;
    let mut v: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    v[..4].copy_from_slice(&seq.to_be_bytes());
    v
}

/// Runs the demo on a virtual clock.
pub fn run(opts: &DemoOptions) -> Result<DemoReport, String> {
    let mut link = MemLink::new(opts.seed);
    let imp = Impairments::none()
        .with_loss(opts.loss)
        .with_delay(opts.delay)
        .with_jitter(opts.delay / 10)
        .with_corrupt(opts.corrupt);
    link.set_impairments(imp);
    if let Some(path) = &opts.pcap {
        let sink = PcapSink::create(path, LinkKind::Ip)
            .map_err(|e| format!("cannot write pcap file {}: {e}", path.display()))?;
        link.set_capture(Some(sink));
    }
    let mut sim: Sim<Stack> = Sim::new(link);
    for (addr, seed) in [(A, opts.seed ^ 0xa), (B, opts.seed ^ 0xb)] {
        let cfg = StackConfig::new(Medium::Ip, Ipv4Cidr::new(addr, 24)).with_seed(seed);
        sim.add_host(Stack::new(cfg).map_err(|e| e.to_string())?);
    }

    // b: a UDP echo server (RFC 862).
    let server = sim.hosts[1].udp_open();
    sim.hosts[1]
        .udp_bind(server, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, ECHO_PORT))
        .map_err(|e| e.to_string())?;
    // a: a ping socket and a UDP client.
    let ping = sim.hosts[0].icmp_open();
    let client = sim.hosts[0].udp_open();
    sim.hosts[0]
        .udp_connect(client, SocketAddrV4::new(B, ECHO_PORT))
        .map_err(|e| e.to_string())?;

    let mut report = DemoReport::default();
    let mut ping_sent_at: HashMap<u16, Instant> = HashMap::new();
    let mut echoed: HashMap<u32, bool> = HashMap::new();
    let interval = Duration::from_millis(100);
    let mut buf = vec![0u8; 65536];

    let mut serve =
        |sim: &mut Sim<Stack>, report: &mut DemoReport, ping_sent_at: &HashMap<u16, Instant>| {
            let b = &mut sim.hosts[1];
            while let Ok((n, _, from)) = b.udp_recv_from(server, &mut buf) {
                let _ = b.udp_send_to(server, &buf[..n], Some(from));
            }
            let a = &mut sim.hosts[0];
            while let Ok(reply) = a.icmp_recv(ping) {
                if let Some(sent) = ping_sent_at.get(&reply.seq_no) {
                    report.pings_received += 1;
                    report.rtts.push(reply.at - *sent);
                }
            }
            loop {
                match a.udp_recv_from(client, &mut buf) {
                    Ok((n, _, _)) if n >= 4 => {
                        let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                        let intact = buf[..n] == payload(seq, opts.size)[..];
                        if echoed.insert(seq, intact).is_none() {
                            if intact {
                                report.echoes_intact += 1;
                            } else {
                                report.echoes_damaged += 1;
                            }
                        }
                    }
                    Ok(_) => report.echoes_damaged += 1,
                    Err(Errno::EAGAIN) => break,
                    Err(_) => {}
                }
            }
        };

    let start = Instant::from_secs(1);
    for k in 0..opts.count {
        let t = start + interval * k;
        sim.run_to(t, |sim| serve(sim, &mut report, &ping_sent_at));
        let a = &mut sim.hosts[0];
        let seq = k as u16;
        if a.icmp_send_echo(ping, B, seq, &payload(k, 56)).is_ok() {
            ping_sent_at.insert(seq, t);
            report.pings_sent += 1;
        }
        if a.udp_send_to(client, &payload(k, opts.size), None).is_ok() {
            report.datagrams_sent += 1;
        }
    }
    let end = start + interval * opts.count + opts.delay * 4 + Duration::from_secs(2);
    sim.run_to(end, |sim| serve(sim, &mut report, &ping_sent_at));
    if let Some(mut cap) = sim.link.take_capture() {
        cap.flush()
            .map_err(|e| format!("cannot write pcap file: {e}"))?;
    }
    if let Some(e) = sim.link.capture_error() {
        return Err(format!("pcap capture failed: {e}"));
    }
    report.text = summary(opts, &report, &sim);
    Ok(report)
}

fn summary(opts: &DemoOptions, r: &DemoReport, sim: &Sim<Stack>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ustack demo: hosts a={A}/24 and b={B}/24 on an in-memory link \
         (loss {:.1}%, delay {} ms, corruption {:.1}%, seed {})",
        opts.loss * 100.0,
        opts.delay.as_millis(),
        opts.corrupt * 100.0,
        opts.seed
    );
    let loss = 100.0 * (1.0 - f64::from(r.pings_received) / f64::from(r.pings_sent.max(1)));
    let _ = write!(
        s,
        "ping {B}: {} sent, {} received, {loss:.0}% packet loss",
        r.pings_sent, r.pings_received
    );
    if !r.rtts.is_empty() {
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let min = r.rtts.iter().map(ms).fold(f64::MAX, f64::min);
        let max = r.rtts.iter().map(ms).fold(0.0, f64::max);
        let avg = r.rtts.iter().map(ms).sum::<f64>() / r.rtts.len() as f64;
        let _ = write!(s, ", rtt min/avg/max = {min:.3}/{avg:.3}/{max:.3} ms");
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "udp echo {B}:{ECHO_PORT}: {} datagrams of {} bytes sent, {} echoed back intact, {} damaged, {} lost",
        r.datagrams_sent,
        opts.size,
        r.echoes_intact,
        r.echoes_damaged,
        r.datagrams_sent - r.echoes_intact - r.echoes_damaged
    );
    let l = sim.link.stats();
    let _ = writeln!(
        s,
        "link: {} frames sent, {} delivered, {} lost, {} corrupted",
        l.sent, l.delivered, l.dropped_loss, l.corrupted
    );
    for (name, host) in ["a", "b"].iter().zip(&sim.hosts) {
        let _ = writeln!(s, "\ncounters of {name} ({}):", host.address());
        for line in host.counters().to_string().lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    if let Some(p) = &opts.pcap {
        let _ = writeln!(s, "\ncapture written to {}", p.display());
    }
    s
}
