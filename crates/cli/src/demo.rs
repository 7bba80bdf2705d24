//! `ustack demo`: two stacks on an in-memory link, a ping and a UDP echo
//! exchange over whatever impairments were asked for, and a summary.

use crate::transitions;
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
    /// Bytes of the TCP transfer.
    pub bytes: u64,
    /// Write the JSON-lines trace of the TCP transfer here (docs/trace.md).
    pub trace: Option<PathBuf>,
    /// Draw the transfer's time-sequence, cwnd and RTT graphs into this
    /// directory (timeseq.svg, cwnd.svg, rtt.svg).
    pub plot: Option<PathBuf>,
    /// Congestion control of both hosts (`--cc`).
    pub cc: ustack_core::Congestion,
    /// ECN of both hosts (`--ecn`).
    pub ecn: ustack_core::EcnMode,
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
    pub tcp: Option<TcpReport>,
    /// The graphs written (`--plot`).
    pub plots: Vec<PathBuf>,
    pub text: String,
}

/// What the TCP transfer showed.
#[derive(Debug, Default)]
pub struct TcpReport {
    pub bytes: u64,
    /// Virtual time from connect to the last byte read.
    pub elapsed: Duration,
    pub intact: bool,
    pub retransmissions: u64,
    pub cwnd: u32,
    pub srtt: Duration,
    pub paths: Vec<String>,
}

/// Byte `i` of the transferred stream.
fn stream_byte(i: u64) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 11)) as u8
}

const TCP_PORT: u16 = 5001;

/// A TCP transfer of `bytes` from a to b, then both ends close (a first,
/// so a goes through TIME_WAIT); runs on until TIME_WAIT ends.
fn tcp_transfer(
    sim: &mut Sim<Stack>,
    bytes: u64,
    recorder: &mut transitions::Recorder,
) -> Result<TcpReport, String> {
    // Transitions in the order they happen: drained after each call that
    // makes one and after every step of the simulation.
    let drain = |sim: &mut Sim<Stack>, recorder: &mut transitions::Recorder| {
        for (name, h) in ["a", "b"].into_iter().zip(sim.hosts.iter_mut()) {
            recorder.record_from(name, h.take_events());
        }
    };
    let listener = sim.hosts[1].tcp_open();
    sim.hosts[1]
        .tcp_bind(listener, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, TCP_PORT))
        .map_err(|e| e.to_string())?;
    sim.hosts[1]
        .tcp_listen(listener, 16)
        .map_err(|e| e.to_string())?;
    drain(sim, recorder);
    let client = sim.hosts[0].tcp_open();
    let start = sim.now();
    match sim.hosts[0].tcp_connect(start, client, SocketAddrV4::new(B, TCP_PORT)) {
        Err(Errno::EINPROGRESS) | Ok(()) => {}
        Err(e) => return Err(format!("connect: {e}")),
    }
    drain(sim, recorder);
    let mut report = TcpReport {
        bytes,
        intact: true,
        ..Default::default()
    };
    let (mut sent, mut received, mut shut, mut client_done) = (0u64, 0u64, false, false);
    let mut server: Option<ustack_core::SocketHandle> = None;
    let mut server_done = false;
    let mut out = vec![0u8; 64 * 1024];
    let mut inbuf = vec![0u8; 64 * 1024];
    let mut failure: Option<String> = None;
    let deadline = start + Duration::from_secs(3600);
    let mut last_byte_at = start;
    let mut step = |sim: &mut Sim<Stack>| -> bool {
        drain(sim, recorder);
        let now = sim.now();
        // b: accept, read and check every byte, close at EOF.
        let b = &mut sim.hosts[1];
        if server.is_none() {
            if let Ok((h, _)) = b.tcp_accept(listener) {
                server = Some(h);
            }
        }
        if let (Some(h), false) = (server, server_done) {
            loop {
                match b.tcp_recv(h, &mut inbuf) {
                    Ok(0) => {
                        let _ = b.close(h);
                        server_done = true;
                        break;
                    }
                    Ok(n) => {
                        if inbuf[..n]
                            .iter()
                            .enumerate()
                            .any(|(i, &x)| x != stream_byte(received + i as u64))
                        {
                            report.intact = false;
                        }
                        received += n as u64;
                        last_byte_at = now;
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(e) => {
                        failure = Some(format!("server recv: {e}"));
                        server_done = true;
                        break;
                    }
                }
            }
        }
        // a: send the stream, then shut down writing; close at the server's FIN.
        let a = &mut sim.hosts[0];
        while sent < bytes {
            let n = (bytes - sent).min(out.len() as u64) as usize;
            for (i, x) in out[..n].iter_mut().enumerate() {
                *x = stream_byte(sent + i as u64);
            }
            match a.tcp_send(now, client, &out[..n]) {
                Ok(k) if k > 0 => sent += k as u64,
                Ok(_) | Err(Errno::EAGAIN) => break,
                Err(e) => {
                    failure = Some(format!("client send: {e}"));
                    sent = bytes;
                }
            }
        }
        if sent == bytes && !shut {
            shut = a
                .tcp_shutdown(now, client, ustack_core::Shutdown::Write)
                .is_ok();
        }
        if shut && !client_done {
            match a.tcp_recv(client, &mut inbuf) {
                Ok(0) | Err(Errno::ECONNRESET) => {
                    if let Ok(info) = a.tcp_info(client) {
                        report.cwnd = info.cwnd;
                        report.srtt = info.rtt;
                    }
                    let _ = a.close(client);
                    client_done = true;
                }
                _ => {}
            }
        }
        drain(sim, recorder);
        client_done && server_done
    };
    sim.run_until(deadline, &mut step);
    if let Some(f) = failure {
        return Err(f);
    }
    if !(client_done && server_done) {
        return Err(format!(
            "TCP transfer did not finish: {received} of {bytes} bytes"
        ));
    }
    // Let TIME_WAIT (2 MSL) run out so every state is shown. A FIN
    // retransmitted after the transfer restarts it (RFC 9293 §3.10.7.4), so
    // run until every connection is gone, bounded by two of its spans.
    let t = sim.now() + Duration::from_secs(122);
    sim.run_until(t, |sim| {
        drain(sim, recorder);
        sim.hosts.iter().all(|h| h.tcp_tcb_count() == 0)
    });
    drain(sim, recorder);
    report.elapsed = last_byte_at - start;
    report.intact &= received == bytes;
    report.retransmissions = sim
        .hosts
        .iter()
        .map(|h| h.counters().tcp.retrans_segs)
        .sum();
    report.paths = recorder.paths();
    let _ = sim.hosts[1].close(listener);
    Ok(report)
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
        // Stamped with the simulation's own clock (from the Unix epoch), so
        // the same seed writes the same file.
        let sink = PcapSink::create(path, LinkKind::Ip)
            .map_err(|e| format!("cannot write pcap file {}: {e}", path.display()))?
            .with_epoch(std::time::Duration::ZERO);
        link.set_capture(Some(sink));
    }
    let mut sim: Sim<Stack> = Sim::new(link);
    for (addr, seed) in [(A, opts.seed ^ 0xa), (B, opts.seed ^ 0xb)] {
        let mut cfg = StackConfig::new(Medium::Ip, Ipv4Cidr::new(addr, 24))
            .with_seed(seed)
            .with_trace(opts.trace.is_some() || opts.plot.is_some());
        cfg.tcp.congestion = opts.cc;
        cfg.tcp.ecn = opts.ecn;
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
    if opts.bytes > 0 {
        let mut recorder = transitions::Recorder::default();
        if opts.trace.is_some() || opts.plot.is_some() {
            recorder.trace = Some(ustack::trace::TraceWriter::new(Vec::new()));
        }
        let tcp = tcp_transfer(&mut sim, opts.bytes, &mut recorder)?;
        report.tcp = Some(tcp);
        if let Some(w) = recorder.trace.take() {
            let text = w.into_inner();
            if let Some(path) = &opts.trace {
                std::fs::write(path, &text)
                    .map_err(|e| format!("cannot write trace file {}: {e}", path.display()))?;
            }
            if let Some(dir) = &opts.plot {
                report.plots = crate::plot::demo_plots(&text, dir)?;
            }
        }
    }
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
    if let Some(t) = &r.tcp {
        let secs = t.elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(
            s,
            "tcp {A} -> {B}:{TCP_PORT}: {} bytes in {:.3} s ({:.2} Mbit/s), {}, {} retransmissions, final cwnd {} bytes, srtt {:.3} ms",
            t.bytes,
            secs,
            t.bytes as f64 * 8.0 / secs / 1e6,
            if t.intact { "every byte intact and in order" } else { "DATA DAMAGED" },
            t.retransmissions,
            t.cwnd,
            t.srtt.as_secs_f64() * 1000.0
        );
        let _ = writeln!(s, "tcp state transitions:");
        for p in &t.paths {
            let _ = writeln!(s, "  {p}");
        }
    }
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
    if let Some(p) = &opts.trace {
        let _ = writeln!(s, "trace written to {}", p.display());
    }
    for p in &r.plots {
        let _ = writeln!(s, "graph written to {}", p.display());
    }
    s
}

/// `demo --queues N`: N share-nothing stacks a side on a multiqueue
/// in-memory link (real time): 8 TCP connections from the client group,
/// each echoed by the server group's stack on the same queue. Returns
/// the lines to print: connections per stack, bytes checked.
pub fn multi_stack(n: usize) -> Result<String, String> {
    use std::io::{Read, Write};
    let err = |e: std::io::Error| format!("multi-stack demo: {e}");
    let net = ustack::memnet::mq_pair(n, n, 0, ustack::Mode::Thread, false, |c| c).map_err(err)?;
    let listener = net.b.listen("10.0.0.2:7").map_err(err)?;
    let flows = 8;
    let server = std::thread::spawn(move || -> std::io::Result<Vec<usize>> {
        let mut per_stack = vec![0; listener.len()];
        for _ in 0..flows {
            let (i, conn, _) = listener.accept()?;
            per_stack[i] += 1;
            conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
            let mut buf = [0u8; 64];
            let k = (&conn).read(&mut buf)?;
            (&conn).write_all(&buf[..k])?;
        }
        Ok(per_stack)
    });
    let mut clients = vec![0; n];
    for f in 0..flows {
        let (i, mut conn) = net.a.connect("10.0.0.2:7").map_err(err)?;
        clients[i] += 1;
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .map_err(err)?;
        let msg = format!("flow {f}");
        conn.write_all(msg.as_bytes()).map_err(err)?;
        let mut back = vec![0u8; msg.len()];
        conn.read_exact(&mut back).map_err(err)?;
        if back != msg.as_bytes() {
            return Err(format!("multi-stack demo: flow {f} came back changed"));
        }
    }
    let servers = server
        .join()
        .map_err(|_| "multi-stack demo: the server thread panicked".to_string())?
        .map_err(err)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{n} stacks a side on a {n}-queue in-memory link (RSS): {flows} TCP echoes, all intact"
    );
    let _ = writeln!(out, "  connections per client stack: {clients:?}");
    let _ = writeln!(
        out,
        "  connections per server stack: {servers:?} (each on its client's queue)"
    );
    Ok(out)
}
