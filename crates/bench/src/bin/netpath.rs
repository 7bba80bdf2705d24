//! The fair comparison of issue #20: bulk goodput through exactly the
//! impairment ustack gets, with the Linux kernel as the receiver every
//! time, and the kernel or ustack as the sender. Needs root.
//!
//! Two network namespaces (unique names, removed on exit, on failure and
//! on Ctrl-C), each with a TUN device whose other end this program holds;
//! a bridge thread joins the two through `ustack_devices::Impaired`
//! (random loss, one-way delay, and a bottleneck: bandwidth with a
//! drop-tail queue), so a kernel in namespace A talks to the kernel in
//! namespace B across the impairment. ustack takes A's place as the sender
//! on a third TUN in A, whose kernel routes it onto the bridge: the same
//! path. Per path and sender: goodput at the receiver, and the queueing
//! delay the sender builds, read off the bottleneck queue itself (how long
//! each frame waited there: the RTT above the minimum).
//!
//! ```text
//! kernel A (10.78.0.1) ─ npa0 ═ bridge: Impaired ═ npb0 ─ kernel B (10.78.0.2, the sink)
//! ustack (10.79.0.2) ─ npu0 ─ kernel A (router)  ┘
//! ```
//!
//! The kernel ends are this program in a role (`--role sink|source`),
//! started inside a namespace with `ip netns exec`.

use clap::Parser;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use ustack::posix::{AF_INET, IPPROTO_TCP, SHUT_WR, SOCK_STREAM, SOL_SOCKET, SO_SNDTIMEO};
use ustack::posix::{TCP_CONGESTION, TCP_INFO};
use ustack::{Mode, OptVal, Runtime};
use ustack_core::wire::Ipv4Cidr;
use ustack_core::{Congestion, Medium, Stack, StackConfig};
use ustack_devices::{
    poll, Clock, Device, Impaired, Impairments, KernelIf, NetNs, PollFd, QueueDelay, Tun,
    TunOptions,
};

#[derive(Parser, Debug)]
#[command(about = "Bulk goodput of the kernel and ustack through the same impairment (issue #20)")]
struct Args {
    /// Bytes per transfer, at most.
    #[arg(long, default_value_t = 8 << 20)]
    bytes: u64,
    /// Seconds per transfer, at most: the receiver stops counting then.
    #[arg(long, default_value_t = 20.0)]
    secs: f64,
    /// Senders, each `kernel:CC` (TCP_CONGESTION in namespace A) or
    /// `ustack:CC` (ustack's congestion control); plain `ustack` takes `--cc`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kernel:cubic,kernel:bbr,ustack"
    )]
    senders: Vec<String>,
    /// ustack's congestion control (the names of `Congestion`: newreno,
    /// cubic, ...), for the stack's configuration and for plain `ustack`.
    #[arg(long, default_value = "cubic")]
    cc: String,
    /// Paths: loss1-rtt20, loss5-rtt20, loss1-rtt100, loss5-rtt100,
    /// bneck100 (100 Mbit/s, a 1000-packet queue, RTT 20 ms), or all.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    paths: Vec<String>,
    /// Seed of the impairments' random choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Names of the two namespaces: PREFIX-a and PREFIX-b (default
    /// `npath-<pid>`); they must not exist yet.
    #[arg(long)]
    netns_prefix: Option<String>,
    /// Print ustack's TCP_INFO (cwnd, pacing rate, the congestion
    /// control's bandwidth estimate and state) every this many seconds of
    /// a transfer (between writes of 64 KiB), to stderr; 0: never.
    #[arg(long, default_value_t = 0.0)]
    watch: f64,
    /// Writes ustack's events (docs/trace.md: cwnd, RTT, retransmissions)
    /// as JSON lines to FILE, for every ustack transfer of the run.
    #[arg(long, value_name = "FILE")]
    trace: Option<std::path::PathBuf>,
    /// Internal: run as the kernel's sink or source.
    #[arg(long)]
    role: Option<String>,
    /// Internal: where the sink listens / the source connects.
    #[arg(long)]
    addr: Option<SocketAddrV4>,
    /// Internal: the source's TCP_CONGESTION.
    #[arg(long)]
    role_cc: Option<String>,
}

const CHUNK: usize = 256 * 1024;
/// Kernel B on the bridged link (A is 10.78.0.1); ustack behind A.
const B: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 2);
const U_GW: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 1);
const U: Ipv4Addr = Ipv4Addr::new(10, 79, 0, 2);

/// One impaired path: the same impairments each way.
#[derive(Debug, Clone, Copy)]
struct PathSpec {
    name: &'static str,
    loss: f64,
    rtt_ms: u64,
    mbps: Option<u64>,
    queue: usize,
}

const PATHS: [PathSpec; 5] = [
    PathSpec {
        name: "loss1-rtt20",
        loss: 0.01,
        rtt_ms: 20,
        mbps: None,
        queue: 0,
    },
    PathSpec {
        name: "loss5-rtt20",
        loss: 0.05,
        rtt_ms: 20,
        mbps: None,
        queue: 0,
    },
    PathSpec {
        name: "loss1-rtt100",
        loss: 0.01,
        rtt_ms: 100,
        mbps: None,
        queue: 0,
    },
    PathSpec {
        name: "loss5-rtt100",
        loss: 0.05,
        rtt_ms: 100,
        mbps: None,
        queue: 0,
    },
    PathSpec {
        name: "bneck100",
        loss: 0.0,
        rtt_ms: 20,
        mbps: Some(100),
        queue: 1000,
    },
];

impl PathSpec {
    fn impairments(&self) -> Impairments {
        let mut imp = Impairments::none()
            .with_loss(self.loss)
            .with_delay(ustack_core::Duration::from_millis(self.rtt_ms / 2));
        if let Some(m) = self.mbps {
            imp = imp
                .with_bandwidth(m * 1_000_000)
                .with_queue_limit(self.queue);
        }
        imp
    }

    fn describe(&self) -> String {
        match self.mbps {
            Some(m) => format!(
                "{m} Mbit/s bottleneck each way, {}-packet drop-tail queue, RTT {} ms, no random loss",
                self.queue, self.rtt_ms
            ),
            None => format!(
                "{}% random loss each way, RTT {} ms, no bandwidth limit",
                self.loss * 100.0,
                self.rtt_ms
            ),
        }
    }
}

/// Who sends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sender {
    Kernel(String),
    Ustack(String),
}

impl Sender {
    fn parse(s: &str, default_cc: &str) -> Result<Sender, String> {
        match s.split_once(':') {
            Some(("kernel", cc)) if !cc.is_empty() => Ok(Sender::Kernel(cc.into())),
            Some(("ustack", cc)) if !cc.is_empty() => Ok(Sender::Ustack(cc.into())),
            None if s == "ustack" => Ok(Sender::Ustack(default_cc.into())),
            _ => Err(format!("bad sender {s:?}: kernel:CC, ustack:CC or ustack")),
        }
    }

    fn label(&self) -> String {
        match self {
            Sender::Kernel(cc) => format!("Linux {cc}"),
            Sender::Ustack(cc) => format!("ustack {cc}"),
        }
    }
}

// ---- the kernel's ends (run inside a namespace) ----

/// Kernel sink: accept one connection, read until EOF, `bytes`, or `secs`
/// pass; print "bytes seconds" (seconds from the accept to the last byte
/// if all came, else to the cut).
fn sink(addr: SocketAddrV4, bytes: u64, secs: f64) -> std::io::Result<()> {
    let l = std::net::TcpListener::bind(addr)?;
    println!("ready");
    std::io::stdout().flush()?;
    // The sender has `secs` to connect too: nothing here waits unbounded.
    l.set_nonblocking(true)?;
    let connect_by = Instant::now() + Duration::from_secs_f64(secs);
    let mut s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > connect_by {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no sender connected",
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    };
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    let (mut got, mut last) = (0u64, start);
    while got < bytes && start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got += n as u64;
                last = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let took = if got >= bytes {
        last - start
    } else {
        start.elapsed().min(limit)
    };
    println!("{got} {}", took.as_secs_f64());
    Ok(())
}

/// Kernel source: TCP_CONGESTION `cc`, connect, write `bytes` (or until
/// the sink hangs up).
fn source(addr: SocketAddrV4, bytes: u64, cc: &str) -> std::io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_tcp_congestion(cc.as_bytes())
        .map_err(|e| std::io::Error::new(e.kind(), format!("TCP_CONGESTION {cc}: {e}")))?;
    s.connect_timeout(&addr.into(), Duration::from_secs(10))?;
    let mut s: std::net::TcpStream = s.into();
    let buf = vec![0x5au8; CHUNK];
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(CHUNK as u64) as usize;
        if s.write_all(&buf[..n]).is_err() {
            break; // the sink's time was up
        }
        sent += n as u64;
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let _ = s.read(&mut [0u8; 1]);
    println!("{sent}");
    Ok(())
}

// ---- the lab ----

/// Child processes to end on Ctrl-C, and the namespaces to remove.
#[derive(Default)]
struct Cleanup {
    pids: Vec<u32>,
    netns: Vec<String>,
}

/// Ctrl-C, SIGTERM, SIGHUP: end the children, remove the namespaces, exit.
/// The signals are blocked in every thread (set before any starts) and
/// taken here with sigtimedwait.
fn guard_signals(cleanup: Arc<Mutex<Cleanup>>) -> Result<(), String> {
    let sigs = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
    ustack::signal::block(&sigs).map_err(|e| format!("block signals: {e}"))?;
    std::thread::spawn(move || loop {
        let Ok(Some(got)) = ustack::signal::wait(&sigs, Duration::from_secs(3600)) else {
            continue;
        };
        let c = cleanup.lock().unwrap_or_else(|e| e.into_inner());
        for pid in &c.pids {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .output();
        }
        for ns in &c.netns {
            let _ = ustack_devices::kernel::ip(["netns", "delete", ns]);
        }
        eprintln!("netpath: signal {}, namespaces removed", got.signo);
        std::process::exit(130);
    });
    Ok(())
}

struct Lab {
    a: NetNs,
    b: NetNs,
    tuns: Option<(Tun, Tun)>,
    ustack: Runtime,
    cleanup: Arc<Mutex<Cleanup>>,
    port: u16,
}

fn err(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl Lab {
    fn new(
        cleanup: Arc<Mutex<Cleanup>>,
        cc: Congestion,
        seed: u64,
        prefix: Option<&str>,
        trace: Option<&std::path::Path>,
    ) -> Result<Lab, String> {
        let tag = std::process::id();
        let prefix = prefix.map_or_else(|| format!("npath-{tag}"), str::to_owned);
        let names = [format!("{prefix}-a"), format!("{prefix}-b")];
        cleanup
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .netns
            .extend(names.iter().cloned());
        let a = NetNs::create(&names[0]).map_err(err("create namespace A"))?;
        let b = NetNs::create(&names[1]).map_err(err("create namespace B"))?;
        let open = |ns: &NetNs, name: &str, addr: &str| -> Result<Tun, String> {
            let tun = TunOptions::new(name)
                .mtu(1500)
                .offload(false)
                .netns(ns.path())
                .open_tun()
                .map_err(err("open a TUN"))?;
            KernelIf::new(name, addr.parse().map_err(|_| "bad address")?)
                .mtu(1500)
                .apply(Some(ns))
                .map_err(err("configure a TUN"))?;
            Ok(tun)
        };
        let ta = open(&a, "npa0", "10.78.0.1/24")?;
        let tb = open(&b, "npb0", "10.78.0.2/24")?;
        let tu = open(&a, "npu0", "10.79.0.1/24")?;
        // A routes between ustack and the bridge; B answers ustack there.
        a.command("sh")
            .args([
                "-c",
                "echo 1 > /proc/sys/net/ipv4/ip_forward && \
                 echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter",
            ])
            .status()
            .map_err(err("enable forwarding in A"))?;
        b.ip(["route", "add", "10.79.0.0/24", "dev", "npb0"])
            .map_err(err("route to ustack in B"))?;
        let mut cfg = StackConfig::new(Medium::Ip, Ipv4Cidr::new(U, 24))
            .with_seed(seed ^ u64::from(tag))
            .with_gateway(U_GW)
            .with_tso(tu.offloads().tso());
        cfg.tcp.congestion = cc;
        cfg.tcp.sndbuf = 4 << 20;
        cfg.tcp.rcvbuf = 4 << 20;
        cfg.tcp.max_buf = cfg.tcp.max_buf.max(8 << 20);
        let stack = Stack::new(cfg).map_err(|e| e.to_string())?;
        let ustack =
            Runtime::new(stack, tu, Clock::new(), Mode::Thread).map_err(err("start ustack"))?;
        if let Some(path) = trace {
            let f = std::fs::File::create(path)
                .map_err(|e| format!("trace file {}: {e}", path.display()))?;
            ustack.trace_to(Box::new(std::io::BufWriter::new(f)), "ustack");
        }
        Ok(Lab {
            a,
            b,
            tuns: Some((ta, tb)),
            ustack,
            cleanup,
            port: 5300,
        })
    }

    fn spawn(&self, ns: &NetNs, args: &[String]) -> Result<Child, String> {
        let exe = std::env::current_exe().map_err(err("own path"))?;
        let c = ns
            .command(exe)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(err("start a kernel end"))?;
        self.cleanup
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pids
            .push(c.id());
        Ok(c)
    }

    /// One transfer through `path` from `sender` to the kernel in B.
    fn run(&mut self, path: &PathSpec, sender: &Sender, args: &Args) -> Result<Outcome, String> {
        self.port += 1;
        let to = SocketAddrV4::new(B, self.port);
        let (ta, tb) = self.tuns.take().ok_or("the TUNs were lost")?;
        let bridge = Bridge::start(ta, tb, path.impairments(), args.seed);
        let r = self.transfer(to, sender, args);
        let (ta, tb, report) = bridge.stop();
        self.tuns = Some((ta, tb));
        let (bytes, secs) = r?;
        Ok(Outcome {
            bytes,
            secs,
            report,
        })
    }

    fn transfer(
        &self,
        to: SocketAddrV4,
        sender: &Sender,
        args: &Args,
    ) -> Result<(u64, f64), String> {
        let common = |role: &str| {
            vec![
                "--role".to_string(),
                role.into(),
                "--addr".into(),
                to.to_string(),
                "--bytes".into(),
                args.bytes.to_string(),
                "--secs".into(),
                args.secs.to_string(),
            ]
        };
        let mut sink = self.spawn(&self.b, &common("sink"))?;
        let mut out = sink.stdout.take().ok_or("no sink output")?;
        let mut ready = [0u8; 6];
        out.read_exact(&mut ready).map_err(err("sink start"))?;
        let sent = match sender {
            Sender::Kernel(cc) => {
                let mut a = common("source");
                a.extend(["--role-cc".to_string(), cc.clone()]);
                let src = self.spawn(&self.a, &a)?;
                let o = src.wait_with_output().map_err(err("kernel source"))?;
                if !o.status.success() {
                    return Err(format!("kernel source ({cc}) failed: {}", o.status));
                }
                Ok(())
            }
            Sender::Ustack(cc) => ustack_send(&self.ustack, to, args.bytes, cc, args),
        };
        if sent.is_err() {
            let _ = sink.kill();
        }
        let mut text = String::new();
        out.read_to_string(&mut text).map_err(err("sink output"))?;
        let _ = sink.wait();
        sent?;
        let mut it = text.split_whitespace();
        let bytes = it.next().and_then(|v| v.parse().ok());
        let secs = it.next().and_then(|v| v.parse().ok());
        match (bytes, secs) {
            (Some(b), Some(s)) => Ok((b, s)),
            _ => Err(format!("the sink said {text:?}")),
        }
    }
}

/// ustack sends up to `bytes` with congestion control `cc` (set as
/// TCP_CONGESTION, which takes `Congestion`'s names).
fn ustack_send(
    rt: &Runtime,
    to: SocketAddrV4,
    bytes: u64,
    cc: &str,
    args: &Args,
) -> Result<(), String> {
    let secs = args.secs;
    let e = |what: &'static str| move |e: ustack::Errno| format!("ustack {what}: {e}");
    let fd = rt.socket(AF_INET, SOCK_STREAM, 0).map_err(e("socket"))?;
    rt.setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, OptVal::Name(cc.into()))
        .map_err(|er| format!("ustack TCP_CONGESTION {cc}: {er}"))?;
    // Never wait past the sink's time by much, even if its RST is lost.
    let t = Duration::from_secs_f64(secs + 30.0);
    rt.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, OptVal::Time(Some(t)))
        .map_err(e("SO_SNDTIMEO"))?;
    rt.connect(fd, to).map_err(e("connect"))?;
    let before = rt.counters().tcp;
    let buf = vec![0x5au8; CHUNK];
    let mut sent = 0u64;
    let start = Instant::now();
    let mut next_watch = 0.0;
    let chunk = if args.watch > 0.0 { 64 << 10 } else { CHUNK };
    while sent < bytes {
        let t = start.elapsed().as_secs_f64();
        if args.watch > 0.0 && t >= next_watch {
            next_watch = t + args.watch;
            if let Ok(OptVal::TcpInfo(i)) = rt.getsockopt(fd, IPPROTO_TCP, TCP_INFO) {
                let mbit = |b: u64| b as f64 * 8.0 / 1e6;
                eprintln!(
                    "  {t:6.2}s sent {:.1} MB cwnd {} unacked {} pacing {:.1} bw {:.1} Mbit/s {} {} srtt {:?} snd_wnd {} retrans {}",
                    sent as f64 / 1e6,
                    i.cwnd,
                    i.unacked,
                    mbit(i.pacing_rate),
                    mbit(i.cc_bw),
                    i.cc_mode,
                    i.ca_state,
                    i.rtt,
                    i.snd_wnd,
                    i.total_retrans,
                );
            }
        }
        let n = (bytes - sent).min(chunk as u64) as usize;
        match rt.write(fd, &buf[..n]) {
            Ok(k) => sent += k as u64,
            Err(_) => break, // the sink's time was up
        }
    }
    // What ustack went through (stderr, beside the table): its timeouts,
    // retransmissions and the window it ended with.
    let c = rt.counters().tcp;
    if let Ok(OptVal::TcpInfo(i)) = rt.getsockopt(fd, IPPROTO_TCP, TCP_INFO) {
        eprintln!(
            "  ustack {cc}: out {} retrans {} (rto {} sack {} tlp {} rack-lost {} lost-again {}) timeouts {} \
             recoveries {} | at the last write: cwnd {} ssthresh {} srtt {:?} rto {:?} snd_wnd {} unacked {} sndbuf {}",
            c.out_segs - before.out_segs,
            c.retrans_segs - before.retrans_segs,
            c.rto_retrans - before.rto_retrans,
            c.sack_retrans - before.sack_retrans,
            c.tlp_probes - before.tlp_probes,
            c.rack_lost - before.rack_lost,
            c.lost_retransmits - before.lost_retransmits,
            c.timeouts - before.timeouts,
            c.sack_recovery - before.sack_recovery,
            i.cwnd,
            i.ssthresh,
            i.rtt,
            i.rto,
            i.snd_wnd,
            i.unacked,
            i.sndbuf,
        );
    }
    let _ = rt.shutdown(fd, SHUT_WR);
    let _ = rt.close(fd);
    Ok(())
}

struct Outcome {
    bytes: u64,
    secs: f64,
    report: BridgeReport,
}

// ---- the bridge ----

#[derive(Debug, Default)]
struct BridgeReport {
    /// The data direction (A to B): the impairment's counters and queue.
    ab: ustack_devices::LinkStats,
    ab_queue: QueueDelay,
    ba: ustack_devices::LinkStats,
    /// Frames a TUN refused (its queue full) or failed to take.
    refused: u64,
}

struct Bridge {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Tun, Tun, BridgeReport)>,
}

impl Bridge {
    /// Joins `a` and `b`: frames from A to B pass `imp` as the impaired
    /// device's receive direction, frames from B to A its send direction.
    fn start(a: Tun, b: Tun, imp: Impairments, seed: u64) -> Bridge {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let clock = Clock::new();
            let mut ia = Impaired::new(a, seed, imp, imp);
            let mut b = b;
            let mut buf = vec![0u8; 65536];
            let mut refused = 0u64;
            let fds = [ia.as_raw_fd(), b.as_raw_fd()];
            while !flag.load(Ordering::Acquire) {
                let now = clock.now();
                for _ in 0..256 {
                    match ia.recv(now, &mut buf) {
                        Ok(Some(n)) => refused += u64::from(b.send(now, &buf[..n]).is_err()),
                        _ => break,
                    }
                }
                for _ in 0..256 {
                    match b.recv(now, &mut buf) {
                        Ok(Some(n)) => refused += u64::from(ia.send(now, &buf[..n]).is_err()),
                        _ => break,
                    }
                }
                let _ = ia.service(now);
                let wait = ia
                    .poll_at()
                    .map(|t| {
                        clock
                            .to_std(t)
                            .saturating_duration_since(std::time::Instant::now())
                    })
                    .unwrap_or(Duration::from_millis(20))
                    .min(Duration::from_millis(20));
                let pf: Vec<PollFd> = fds
                    .iter()
                    .flatten()
                    .map(|&fd| PollFd {
                        fd,
                        read: true,
                        write: false,
                    })
                    .collect();
                if !wait.is_zero() {
                    let _ = poll(&pf, Some(wait));
                }
            }
            let report = BridgeReport {
                ab: ia.rx_stats(),
                ab_queue: ia.rx_queue_delay().clone(),
                ba: ia.tx_stats(),
                refused,
            };
            (ia.into_inner(), b, report)
        });
        Bridge { stop, thread }
    }

    fn stop(self) -> (Tun, Tun, BridgeReport) {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("the bridge thread panicked")
    }
}

// ---- the tables ----

fn ms(d: ustack_core::Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

fn run(args: &Args) -> Result<(), String> {
    let cc: Congestion = args.cc.parse()?;
    let senders = args
        .senders
        .iter()
        .map(|s| Sender::parse(s, &args.cc))
        .collect::<Result<Vec<_>, _>>()?;
    for s in &senders {
        if let Sender::Ustack(name) = s {
            name.parse::<Congestion>()?;
        }
    }
    let paths: Vec<PathSpec> = if args.paths.iter().any(|p| p == "all") {
        PATHS.to_vec()
    } else {
        args.paths
            .iter()
            .map(|p| {
                PATHS
                    .iter()
                    .find(|s| s.name == p)
                    .copied()
                    .ok_or_else(|| format!("unknown path {p:?}"))
            })
            .collect::<Result<_, _>>()?
    };
    let cleanup = Arc::new(Mutex::new(Cleanup::default()));
    guard_signals(cleanup.clone())?;
    let mut lab = Lab::new(
        cleanup,
        cc,
        args.seed,
        args.netns_prefix.as_deref(),
        args.trace.as_deref(),
    )?;
    println!(
        "netpath: up to {} bytes or {} s per transfer, the Linux kernel receiving in namespace B, seed {}",
        args.bytes, args.secs, args.seed
    );
    for path in &paths {
        println!();
        println!("path {}: {}", path.name, path.describe());
        println!();
        println!("| sender | goodput Mbit/s | bytes | s | queue delay mean / p95 / max ms | dropped loss / queue (A→B) |");
        println!("|---|---|---|---|---|---|");
        let mut rates: Vec<(Sender, f64)> = Vec::new();
        for s in &senders {
            match lab.run(path, s, args) {
                Ok(o) => {
                    let mbps = o.bytes as f64 * 8.0 / o.secs.max(1e-9) / 1e6;
                    let q = &o.report.ab_queue;
                    let queue = if path.mbps.is_some() {
                        format!(
                            "{:.1} / {:.0} / {:.1}",
                            ms(q.mean()),
                            ms(q.quantile(0.95)),
                            q.max_us as f64 / 1000.0
                        )
                    } else {
                        "–".into()
                    };
                    println!(
                        "| {} | {mbps:.2} | {} | {:.2} | {queue} | {} / {} |",
                        s.label(),
                        o.bytes,
                        o.secs,
                        o.report.ab.dropped_loss,
                        o.report.ab.dropped_queue
                    );
                    if o.report.refused > 0 {
                        eprintln!(
                            "netpath: {} frames refused by a TUN (B→A dropped {})",
                            o.report.refused, o.report.ba.dropped_loss
                        );
                    }
                    rates.push((s.clone(), mbps));
                }
                Err(e) => println!("| {} | failed: {e} | | | | |", s.label()),
            }
        }
        for (s, r) in &rates {
            if let Sender::Ustack(cc) = s {
                let peer = rates.iter().find(|(k, _)| *k == Sender::Kernel(cc.clone()));
                if let Some((_, k)) = peer {
                    println!("ratio ustack {cc} / Linux {cc}: {:.2}", r / k.max(1e-9));
                }
            }
        }
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let r = match (args.role.as_deref(), args.addr) {
        (Some("sink"), Some(a)) => sink(a, args.bytes, args.secs).map_err(|e| e.to_string()),
        (Some("source"), Some(a)) => {
            source(a, args.bytes, args.role_cc.as_deref().unwrap_or("cubic"))
                .map_err(|e| e.to_string())
        }
        (Some(r), _) => Err(format!("--role {r} needs --addr, and is sink or source")),
        (None, _) => run(&args),
    };
    if let Err(e) = r {
        eprintln!("netpath: {e}");
        std::process::exit(1);
    }
}
