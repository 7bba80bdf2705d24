//! Bulk TCP throughput over TUN against the Linux kernel, and in the same
//! run the kernel-to-kernel figure over a veth pair between two network
//! namespaces. Needs root and /dev/net/tun. MTU 1500. ustack runs twice:
//! with the TUN's offloads (virtio-net header: TSO super-segments out, GSO
//! super-packets in, partial checksums) and without (one packet per
//! syscall, every checksum in software). For each, the CPU time of this
//! process's threads (ustack's stack thread and the application thread;
//! the kernel ends are other processes) per GiB moved.
//!
//! The kernel ends are this same program in a role (`--role sink|source`)
//! started inside a namespace with `ip netns exec`.

use clap::Parser;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use ustack::net::{TcpListener as UListener, TcpStream as UStream};
use ustack::{Mode, Runtime};
use ustack_bench::smoltcp_tun;
use ustack_core::wire::Ipv4Cidr;
use ustack_core::{Medium, Stack, StackConfig};
use ustack_devices::{Clock, KernelIf, NetNs, TunOptions};

#[derive(Parser, Debug)]
#[command(about = "TCP throughput over TUN: ustack vs the kernel (veth)")]
struct Args {
    /// Bytes per transfer.
    #[arg(long, default_value_t = 256 << 20)]
    bytes: u64,
    /// Internal: run as a kernel-side sink or source.
    #[arg(long)]
    role: Option<String>,
    /// Internal: address to listen on or connect to.
    #[arg(long)]
    addr: Option<SocketAddrV4>,
    /// ustack's TCP send and receive buffers, bytes (the kernel end
    /// autotunes its own; ustack has no autotuning yet, so the bench asks
    /// for large buffers up front as iperf's -w would).
    #[arg(long, default_value_t = 4 << 20)]
    sockbuf: usize,
    /// Which transfers to run: all, tx (ustack -> kernel), rx (kernel -> ustack), veth.
    #[arg(long, default_value = "all")]
    only: String,
    /// Open the TUN with IFF_NAPI and give its GRO this flush timeout (ns).
    #[arg(long)]
    napi_gro: Option<u64>,
    /// Print the sending socket's cwnd, window and RTT every 32 MiB (stderr).
    #[arg(long)]
    tcp_info: bool,
    /// ustack runs with the TUN's offloads: on, off, or both (one after the other).
    #[arg(long, default_value = "both", value_parser = ["on", "off", "both"])]
    offload: String,
    /// Software GRO of each receive batch in the mode without offloads.
    #[arg(long)]
    gro: bool,
    /// Also run smoltcp on the same TUN path (default on; `--smoltcp false` skips it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    smoltcp: bool,
}

/// CPU seconds (user + system) of this process's threads so far, from
/// /proc/self/stat (clock ticks of 1/100 s).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 12 and 13 here.
    (tick(11) + tick(12)) / 100.0
}

/// One ustack mode's figures.
#[derive(Default, Clone, Copy)]
struct Mode2 {
    tx: Option<f64>,
    rx: Option<f64>,
    /// CPU seconds per GiB sent / received.
    tx_cpu: Option<f64>,
    rx_cpu: Option<f64>,
}

const CHUNK: usize = 256 * 1024;

/// Kernel sink: accept one connection, read `bytes`, print the seconds taken.
fn sink(addr: SocketAddrV4, bytes: u64) -> std::io::Result<()> {
    let l = std::net::TcpListener::bind(addr)?;
    println!("ready");
    std::io::stdout().flush()?;
    let (mut s, _) = l.accept()?;
    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    let mut got = 0u64;
    while got < bytes {
        match s.read(&mut buf)? {
            0 => break,
            n => got += n as u64,
        }
    }
    println!("{got} {}", start.elapsed().as_secs_f64());
    Ok(())
}

/// Kernel source: connect, write `bytes`, print the seconds taken.
fn source(addr: SocketAddrV4, bytes: u64) -> std::io::Result<()> {
    let mut s = std::net::TcpStream::connect(addr)?;
    let buf = vec![0x5au8; CHUNK];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(CHUNK as u64) as usize;
        s.write_all(&buf[..n])?;
        sent += n as u64;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let _ = s.read(&mut [0u8; 1]);
    println!("{sent} {}", start.elapsed().as_secs_f64());
    Ok(())
}

fn role(ns: &NetNs, role: &str, addr: SocketAddrV4, bytes: u64) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    let mut c = ns
        .command(exe)
        .args([
            "--role",
            role,
            "--addr",
            &addr.to_string(),
            "--bytes",
            &bytes.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()?;
    if role == "sink" {
        // Wait for "ready" so the listener exists before anyone connects.
        let mut out = c.stdout.take().expect("piped");
        let mut line = [0u8; 6];
        out.read_exact(&mut line)?;
        c.stdout = Some(out);
    }
    Ok(c)
}

/// Gbps from a role's output line "bytes seconds".
fn finish(c: Child) -> Result<f64, String> {
    let out = c.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .last()
        .ok_or("no output from the kernel side")?;
    let mut it = line.split_whitespace();
    let bytes: f64 = it
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(format!("bad output: {line}"))?;
    let secs: f64 = it
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(format!("bad output: {line}"))?;
    Ok(bytes * 8.0 / secs / 1e9)
}

fn ustack_on_tun(
    ns: &NetNs,
    sockbuf: usize,
    napi_gro: Option<u64>,
    offload: bool,
) -> Result<Runtime, String> {
    let tun = TunOptions::new("ustb0")
        .mtu(1500)
        .offload(offload)
        .napi(napi_gro.is_some())
        .netns(ns.path())
        .open_tun()
        .map_err(|e| e.to_string())?;
    KernelIf::new("ustb0", "10.240.0.1/24".parse().unwrap())
        .mtu(1500)
        .gro_flush_timeout(napi_gro)
        .apply(Some(ns))
        .map_err(|e| e.to_string())?;
    let mut cfg = StackConfig::new(Medium::Ip, Ipv4Cidr::new(Ipv4Addr::new(10, 240, 0, 2), 24))
        .with_seed(7)
        .with_tso(ustack_devices::Device::offloads(&tun).tso());
    cfg.tcp.sndbuf = sockbuf;
    cfg.tcp.rcvbuf = sockbuf;
    cfg.tcp.max_buf = cfg.tcp.max_buf.max(sockbuf);
    let stack = Stack::new(cfg).map_err(|e| e.to_string())?;
    Runtime::new(stack, tun, Clock::new(), Mode::Thread).map_err(|e| e.to_string())
}

/// ustack sends `bytes` to a kernel sink; Gbps at the kernel end.
fn ustack_to_kernel(rt: &Runtime, ns: &NetNs, bytes: u64, info: bool) -> Result<f64, String> {
    let sink_addr = SocketAddrV4::new(Ipv4Addr::new(10, 240, 0, 1), 5201);
    let k = role(ns, "sink", sink_addr, bytes).map_err(|e| e.to_string())?;
    let mut s = UStream::connect(rt, sink_addr).map_err(|e| format!("ustack connect: {e}"))?;
    let buf = vec![0x5au8; CHUNK];
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(CHUNK as u64) as usize;
        s.write_all(&buf[..n])
            .map_err(|e| format!("ustack send: {e}"))?;
        sent += n as u64;
        if info && sent.is_multiple_of(32 << 20) {
            if let Ok(i) = s.tcp_info() {
                eprintln!(
                    "cwnd {} ssthresh {} snd_wnd {} unacked {} rtt {:?} retrans {} ca {}",
                    i.cwnd, i.ssthresh, i.snd_wnd, i.unacked, i.rtt, i.total_retrans, i.ca_state
                );
            }
        }
    }
    s.shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    finish(k)
}

/// A kernel source sends `bytes` to ustack; Gbps at the kernel end.
fn kernel_to_ustack(rt: &Runtime, ns: &NetNs, bytes: u64) -> Result<f64, String> {
    let listener = UListener::bind(rt, "10.240.0.2:5202").map_err(|e| e.to_string())?;
    let k = role(
        ns,
        "source",
        SocketAddrV4::new(Ipv4Addr::new(10, 240, 0, 2), 5202),
        bytes,
    )
    .map_err(|e| e.to_string())?;
    let (mut c, _) = listener.accept().map_err(|e| e.to_string())?;
    let mut rbuf = vec![0u8; CHUNK];
    let mut got = 0u64;
    while got < bytes {
        match c.read(&mut rbuf).map_err(|e| format!("ustack recv: {e}"))? {
            0 => break,
            n => got += n as u64,
        }
    }
    drop(c);
    finish(k)
}

/// Kernel to kernel over a veth pair between two namespaces; Gbps.
fn veth(tag: u32, bytes: u64) -> Result<f64, String> {
    let n1 = NetNs::create(&format!("ustb-{tag}-a")).map_err(|e| e.to_string())?;
    let n2 = NetNs::create(&format!("ustb-{tag}-b")).map_err(|e| e.to_string())?;
    let run_ip = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run_ip(&[
        "link",
        "add",
        "ustbv0",
        "netns",
        n1.name(),
        "type",
        "veth",
        "peer",
        "name",
        "ustbv1",
        "netns",
        n2.name(),
    ])?;
    for (ns, dev, addr) in [
        (&n1, "ustbv0", "10.241.0.1/24"),
        (&n2, "ustbv1", "10.241.0.2/24"),
    ] {
        ns.ip(["addr", "add", addr, "dev", dev])
            .map_err(|e| e.to_string())?;
        ns.ip(["link", "set", "dev", dev, "mtu", "1500", "up"])
            .map_err(|e| e.to_string())?;
    }
    let vaddr = SocketAddrV4::new(Ipv4Addr::new(10, 241, 0, 2), 5203);
    let k = role(&n2, "sink", vaddr, bytes).map_err(|e| e.to_string())?;
    let src = role(&n1, "source", vaddr, bytes).map_err(|e| e.to_string())?;
    let _ = finish(src)?;
    finish(k)
}

fn run(args: &Args) -> Result<(), String> {
    let bytes = args.bytes;
    let want = |what: &str| args.only == "all" || args.only == what;
    if !["all", "tx", "rx", "veth"].contains(&args.only.as_str()) {
        return Err(format!(
            "--only {}: expected all, tx, rx or veth",
            args.only
        ));
    }
    let tag = std::process::id();
    let gib = bytes as f64 / f64::from(1u32 << 30);
    let modes: Vec<bool> = match args.offload.as_str() {
        "on" => vec![true],
        "off" => vec![false],
        _ => vec![true, false],
    };
    let mut results = Vec::new();
    let mut stats = Vec::new();
    for &offload in &modes {
        if !(want("tx") || want("rx")) {
            break;
        }
        // ustack <-> kernel over TUN.
        let ns = NetNs::create(&format!("ustb-{tag}-t{}", u8::from(offload)))
            .map_err(|e| e.to_string())?;
        let rt = ustack_on_tun(&ns, args.sockbuf, args.napi_gro, offload)?;
        rt.set_gro(args.gro && !offload);
        let mut m = Mode2::default();
        if want("tx") {
            let c0 = cpu_secs();
            m.tx = Some(ustack_to_kernel(&rt, &ns, bytes, args.tcp_info)?);
            m.tx_cpu = Some((cpu_secs() - c0) / gib);
        }
        if want("rx") {
            let c0 = cpu_secs();
            m.rx = Some(kernel_to_ustack(&rt, &ns, bytes)?);
            m.rx_cpu = Some((cpu_secs() - c0) / gib);
        }
        stats.push((
            offload,
            rt.device_offloads(),
            rt.counters(),
            rt.device_stats(),
        ));
        results.push((offload, m));
    }
    // smoltcp on the same TUN path (plain frames, software checksums).
    let mut smol = Mode2::default();
    if (want("tx") || want("rx")) && args.smoltcp {
        let ns = NetNs::create(&format!("ustb-{tag}-s")).map_err(|e| e.to_string())?;
        let open = || -> Result<ustack_devices::Tun, String> {
            let tun = TunOptions::new("ustb0")
                .mtu(1500)
                .netns(ns.path())
                .open_tun()
                .map_err(|e| e.to_string())?;
            KernelIf::new("ustb0", "10.240.0.1/24".parse().unwrap())
                .mtu(1500)
                .apply(Some(&ns))
                .map_err(|e| e.to_string())?;
            Ok(tun)
        };
        let ours = Ipv4Addr::new(10, 240, 0, 2);
        let limit = std::time::Duration::from_secs(120);
        if want("tx") {
            let sink_addr = SocketAddrV4::new(Ipv4Addr::new(10, 240, 0, 1), 5201);
            let tun = open()?;
            let k = role(&ns, "sink", sink_addr, bytes).map_err(|e| e.to_string())?;
            let c0 = cpu_secs();
            smoltcp_tun::transfer(
                tun,
                ours,
                sink_addr,
                smoltcp_tun::Dir::Send,
                bytes,
                args.sockbuf,
                limit,
            )?;
            smol.tx_cpu = Some((cpu_secs() - c0) / gib);
            smol.tx = Some(finish(k)?);
        }
        if want("rx") {
            let tun = open()?;
            let at = SocketAddrV4::new(ours, 5202);
            let c0 = cpu_secs();
            let k = role(&ns, "source", at, bytes).map_err(|e| e.to_string())?;
            smoltcp_tun::transfer(
                tun,
                ours,
                at,
                smoltcp_tun::Dir::Receive,
                bytes,
                args.sockbuf,
                limit,
            )?;
            smol.rx_cpu = Some((cpu_secs() - c0) / gib);
            smol.rx = Some(finish(k)?);
        }
    }
    let veth = if want("veth") {
        Some(veth(tag, bytes)?)
    } else {
        None
    };
    let g = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for (offload, m) in &results {
        let name = if *offload {
            "offloads on "
        } else {
            "offloads off"
        };
        println!(
            "ustack ({name}) -> kernel over TUN: {} Gbps, {} CPU s/GiB",
            g(m.tx),
            g(m.tx_cpu)
        );
        println!(
            "kernel -> ustack ({name}) over TUN: {} Gbps, {} CPU s/GiB",
            g(m.rx),
            g(m.rx_cpu)
        );
    }
    if args.smoltcp {
        println!(
            "smoltcp -> kernel over TUN: {} Gbps, {} CPU s/GiB",
            g(smol.tx),
            g(smol.tx_cpu)
        );
        println!(
            "kernel -> smoltcp over TUN: {} Gbps, {} CPU s/GiB",
            g(smol.rx),
            g(smol.rx_cpu)
        );
        for (offload, m) in &results {
            let name = if *offload { "on " } else { "off" };
            println!(
                "ratios to smoltcp, offloads {name}: send {}, receive {}",
                g(m.tx.zip(smol.tx).map(|(a, b)| a / b)),
                g(m.rx.zip(smol.rx).map(|(a, b)| a / b))
            );
        }
    }
    if let Some(veth) = veth {
        println!("kernel -> kernel over veth: {veth:.2} Gbps (default congestion control)");
        for (offload, m) in &results {
            let name = if *offload { "on " } else { "off" };
            println!(
                "ratios to veth, offloads {name}: send {}, receive {}",
                g(m.tx.map(|t| t / veth)),
                g(m.rx.map(|r| r / veth))
            );
        }
    }
    if let [(true, on), (false, off)] = results[..] {
        println!(
            "offloads on / off: send {}, receive {}",
            g(on.tx.zip(off.tx).map(|(a, b)| a / b)),
            g(on.rx.zip(off.rx).map(|(a, b)| a / b))
        );
    }
    println!(
        "({} MiB each, ustack socket buffers {} KiB; ustack's counters below)",
        bytes >> 20,
        args.sockbuf >> 10
    );
    for (offload, o, c, d) in stats {
        println!(
            "--- offloads {}: negotiated {o}; device {d:?}",
            if offload { "on" } else { "off" }
        );
        print!("{c}");
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let r = match (args.role.as_deref(), args.addr) {
        (Some("sink"), Some(a)) => sink(a, args.bytes).map_err(|e| e.to_string()),
        (Some("source"), Some(a)) => source(a, args.bytes).map_err(|e| e.to_string()),
        (Some(r), _) => Err(format!("--role {r} needs --addr, and is sink or source")),
        (None, _) => run(&args),
    };
    if let Err(e) = r {
        eprintln!("tun_bench: {e}");
        std::process::exit(2);
    }
}
