//! Connection benchmarks of the socket layer, each against the Linux kernel
//! measured in the same run:
//!
//! - short connections per second: connect, 64-byte request, 64-byte
//!   response, close, one after another (kernel: loopback, a client and
//!   a server thread; ustack run to completion: two inline runtimes on
//!   the in-memory link driven from one thread, no hand-off; ustack thread
//!   mode: two runtimes with stack threads, four hand-offs per exchange);
//!   `--cpu N` pins the whole run to one CPU;
//! - memory per idle established connection at 10 000 and 100 000
//!   connections (ustack: process RSS growth; kernel: Slab + socket buffer
//!   growth from /proc, a lower bound of what it really uses).

use clap::Parser;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};
use ustack::net::{TcpListener as UTcpListener, TcpStream as UTcpStream};
use ustack::Runtime;

#[derive(Parser, Debug)]
#[command(
    about = "Short connections per second and memory per idle connection: ustack vs the kernel"
)]
struct Args {
    /// Short connections to make (each stack).
    #[arg(long, default_value_t = 5000)]
    conns: usize,
    /// Idle connection counts to measure memory at.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    idle: Vec<usize>,
    /// Skip the kernel's figures.
    #[arg(long)]
    no_kernel: bool,
    /// Pin the whole process (every thread: ustack's, the kernel run's
    /// client and server) to this one CPU; unpinned by default.
    #[arg(long)]
    cpu: Option<usize>,
    /// Rounds of kernel then run-to-completion short connections; the
    /// best and the median of each are printed.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Listening ports: several, so 100 000 connections fit in the ephemeral range.
const PORTS: [u16; 8] = [5000, 5001, 5002, 5003, 5004, 5005, 5006, 5007];

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Kernel memory that grows with sockets: Slab (struct sock, inodes,
/// dentries, files) plus TCP buffer pages, in bytes.
fn kernel_socket_memory() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let slab_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("Slab:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    let tcp_pages: u64 = sockstat
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "mem").nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    slab_kb * 1024 + tcp_pages * 4096
}

fn ustack_short_conns(n: usize) -> Result<f64, String> {
    let (client, server) = ustack::memnet::pair().map_err(|e| e.to_string())?;
    let listener =
        UTcpListener::bind(&server, SocketAddrV4::new(SERVER, 80)).map_err(|e| e.to_string())?;
    let srv = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = [0u8; 64];
        for _ in 0..n {
            let (mut s, _) = listener.accept()?;
            s.read_exact(&mut buf)?;
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let start = Instant::now();
    let mut buf = [0u8; 64];
    for i in 0..n {
        let mut c = UTcpStream::connect(&client, SocketAddrV4::new(SERVER, 80))
            .map_err(|e| format!("connect {i}: {e}"))?;
        c.write_all(&[i as u8; 64]).map_err(|e| e.to_string())?;
        c.read_exact(&mut buf).map_err(|e| e.to_string())?;
    }
    let secs = start.elapsed().as_secs_f64();
    srv.join()
        .map_err(|_| "server panicked")?
        .map_err(|e| e.to_string())?;
    Ok(n as f64 / secs)
}

/// Short connections run to completion on one thread: client and server
/// are inline-mode runtimes (no stack thread) on the in-memory link, driven
/// by non-blocking calls from this thread, so connect, accept, recv, send
/// and close cross no thread hand-off. Each call services its own stack's
/// device first; an EAGAIN on one side means the other side must run.
#[inline(never)]
fn ustack_inline_short_conns(n: usize) -> Result<f64, String> {
    use ustack::posix::{AF_INET, SOCK_NONBLOCK, SOCK_STREAM};
    use ustack::{Errno, Mode};
    let net = ustack::memnet::MemNet::new(1, ustack::Impairments::none());
    let client = net
        .host(Ipv4Addr::new(10, 0, 0, 1), Mode::Inline)
        .map_err(|e| e.to_string())?;
    let server = net.host(SERVER, Mode::Inline).map_err(|e| e.to_string())?;
    let e = |what: &str, i: usize, err: Errno| format!("{what} {i}: {err:?}");
    let lfd = server
        .socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)
        .map_err(|x| e("socket", 0, x))?;
    let to = SocketAddrV4::new(SERVER, 80);
    server.bind(lfd, to).map_err(|x| e("bind", 0, x))?;
    server.listen(lfd, 128).map_err(|x| e("listen", 0, x))?;
    // Runs `op` on one side until it stops saying EAGAIN, letting the
    // other side's stack take in what it was sent in between (bounded).
    fn until<R>(other: &Runtime, mut op: impl FnMut() -> Result<R, Errno>) -> Result<R, Errno> {
        for _ in 0..1000 {
            match op() {
                Err(Errno::EAGAIN) => {
                    other.poll(&mut [], 0)?;
                }
                r => return r,
            }
        }
        Err(Errno::ETIMEDOUT)
    }
    let start = Instant::now();
    let mut buf = [0u8; 64];
    for i in 0..n {
        let cfd = client
            .socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)
            .map_err(|x| e("socket", i, x))?;
        match client.connect(cfd, to) {
            Ok(()) | Err(Errno::EINPROGRESS) => {}
            Err(x) => return Err(e("connect", i, x)),
        }
        let (sfd, _) =
            until(&client, || server.accept4(lfd, SOCK_NONBLOCK)).map_err(|x| e("accept", i, x))?;
        let req = [i as u8; 64];
        until(&server, || client.send(cfd, &req, 0)).map_err(|x| e("send", i, x))?;
        let got = until(&client, || server.recv(sfd, &mut buf, 0)).map_err(|x| e("recv", i, x))?;
        if got != 64 {
            return Err(format!("server recv {i}: {got} bytes"));
        }
        until(&client, || server.send(sfd, &buf, 0)).map_err(|x| e("send", i, x))?;
        server.close(sfd).map_err(|x| e("close", i, x))?;
        let got = until(&server, || client.recv(cfd, &mut buf, 0)).map_err(|x| e("recv", i, x))?;
        if got != 64 || buf != req {
            return Err(format!("client recv {i}: {got} bytes"));
        }
        client.close(cfd).map_err(|x| e("close", i, x))?;
    }
    // The last FIN's ACK.
    server.poll(&mut [], 0).map_err(|x| e("poll", n, x))?;
    let secs = start.elapsed().as_secs_f64();
    Ok(n as f64 / secs)
}

fn kernel_short_conns(n: usize) -> Result<f64, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let srv = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = [0u8; 64];
        for _ in 0..n {
            let (mut s, _) = listener.accept()?;
            s.read_exact(&mut buf)?;
            s.write_all(&buf)?;
        }
        Ok(())
    });
    let start = Instant::now();
    let mut buf = [0u8; 64];
    for i in 0..n {
        let mut c = std::net::TcpStream::connect(addr).map_err(|e| format!("connect {i}: {e}"))?;
        c.write_all(&[i as u8; 64]).map_err(|e| e.to_string())?;
        c.read_exact(&mut buf).map_err(|e| e.to_string())?;
    }
    let secs = start.elapsed().as_secs_f64();
    srv.join()
        .map_err(|_| "server panicked")?
        .map_err(|e| e.to_string())?;
    Ok(n as f64 / secs)
}

/// Opens `n` idle connections between two runtimes; returns bytes of RSS
/// per connection (both ends: client and accepted socket, TCBs and fds).
fn ustack_idle_memory(n: usize) -> Result<f64, String> {
    let (client, server): (Runtime, Runtime) = ustack::memnet::pair().map_err(|e| e.to_string())?;
    let listeners: Vec<UTcpListener> = PORTS
        .iter()
        .map(|&p| UTcpListener::bind(&server, SocketAddrV4::new(SERVER, p)))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let before = rss_bytes();
    let per_port = n.div_ceil(PORTS.len());
    let acceptors: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            std::thread::spawn(move || -> std::io::Result<Vec<UTcpStream>> {
                (0..per_port).map(|_| l.accept().map(|(s, _)| s)).collect()
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(n);
    for i in 0..per_port * PORTS.len() {
        let port = PORTS[i % PORTS.len()];
        conns.push(
            UTcpStream::connect(&client, SocketAddrV4::new(SERVER, port))
                .map_err(|e| format!("connect {i}: {e}"))?,
        );
    }
    let accepted: Vec<Vec<UTcpStream>> = acceptors
        .into_iter()
        .map(|t| t.join().expect("acceptor"))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_bytes();
    let total = conns.len();
    drop(accepted);
    drop(conns);
    Ok((after.saturating_sub(before)) as f64 / total as f64)
}

/// The kernel's figure at `n` connections, or at as many as the fd limit
/// allows (two fds per connection); returns (bytes per connection, count).
fn kernel_idle_memory(n: usize) -> Result<(f64, usize), String> {
    let want = (n as u64) * 2 + 512;
    let (soft, hard) = rlimit::Resource::NOFILE.get().map_err(|e| e.to_string())?;
    if soft < want {
        // Raise the soft limit as far as the hard one allows (more needs CAP_SYS_RESOURCE).
        let _ = rlimit::Resource::NOFILE.set(want.min(hard), hard);
    }
    let (soft, _) = rlimit::Resource::NOFILE.get().map_err(|e| e.to_string())?;
    let n = n.min((soft.saturating_sub(512) / 2) as usize / PORTS.len() * PORTS.len());
    let listeners: Vec<std::net::TcpListener> = PORTS
        .iter()
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let per_port = n.div_ceil(PORTS.len());
    let before = kernel_socket_memory();
    let acceptors: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            std::thread::spawn(move || -> std::io::Result<Vec<std::net::TcpStream>> {
                (0..per_port).map(|_| l.accept().map(|(s, _)| s)).collect()
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(n);
    for i in 0..per_port * PORTS.len() {
        conns.push(
            std::net::TcpStream::connect(addrs[i % addrs.len()])
                .map_err(|e| format!("kernel connect {i}: {e}"))?,
        );
    }
    let accepted: Vec<Vec<std::net::TcpStream>> = acceptors
        .into_iter()
        .map(|t| t.join().expect("acceptor"))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(200));
    let after = kernel_socket_memory();
    let total = conns.len();
    drop(accepted);
    drop(conns);
    Ok((after.saturating_sub(before) as f64 / total as f64, total))
}

fn main() {
    let args = Args::parse();
    if let Some(cpu) = args.cpu {
        // Before any thread exists, so every thread inherits it.
        if let Err(e) = ustack::ustack_devices::affinity::pin_current_thread(cpu) {
            eprintln!("conn_bench: cannot pin to CPU {cpu}: {e}");
            std::process::exit(2);
        }
    }
    let cores = ustack::ustack_devices::affinity::allowed_cpus().len();
    let run = || -> Result<(), String> {
        // Kernel and run-to-completion alternate, `rounds` times: the
        // best of each is reported (other work on the machine only slows
        // a round down), with the median beside it.
        let (mut ks, mut us) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds.max(1) {
            if !args.no_kernel {
                ks.push(kernel_short_conns(args.conns)?);
            }
            us.push(ustack_inline_short_conns(args.conns)?);
        }
        let best_median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            (v.last().copied(), v.get(v.len() / 2).copied())
        };
        let (k, k_med) = best_median(&mut ks);
        let (u_best, u_med) = best_median(&mut us);
        let ratio = |u: f64| {
            k.map(|k| format!(", ratio {:.2}", u / k))
                .unwrap_or_default()
        };
        if let (Some(k), Some(m)) = (k, k_med) {
            println!(
                "short connections/s, kernel (loopback, client and server threads): {k:.0} (median {m:.0}; {} connections, best of {} rounds, {cores} core(s))",
                args.conns, args.rounds
            );
        }
        if let (Some(u), Some(m)) = (u_best, u_med) {
            let med = k_med
                .map(|k| format!(", median ratio {:.2}", m / k))
                .unwrap_or_default();
            println!(
                "short connections/s, ustack run-to-completion (inline, one thread): {u:.0} (median {m:.0}){}{med}",
                ratio(u)
            );
        }
        let u = ustack_short_conns(args.conns)?;
        println!(
            "short connections/s, ustack thread mode (stack threads, 4 hand-offs): {u:.0}{}",
            ratio(u)
        );
        for &n in &args.idle {
            let u = ustack_idle_memory(n)?;
            print!("memory per idle connection at {n}: ustack {u:.0} bytes (both ends)");
            if !args.no_kernel {
                let (k, at) = kernel_idle_memory(n)?;
                print!(
                    ", kernel {k:.0} bytes at {at} (slab + buffers, both ends), ratio {:.2}",
                    u / k
                );
            }
            println!();
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("conn_bench: {e}");
        std::process::exit(2);
    }
}
