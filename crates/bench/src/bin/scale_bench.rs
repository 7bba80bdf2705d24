//! Scaling across stacks (issue 19): bulk throughput of 8 flows on one
//! stack against the same 8 flows spread over 2 (or N) share-nothing
//! stacks, in the same run, on a multiqueue in-memory link
//! (`ustack::memnet::mq_pair`, symmetric RSS steering).
//!
//! Each lane is a client stack and a server stack in inline mode, driven
//! run-to-completion by one thread pinned to a core: the thread sends on
//! its client sockets and reads on its server sockets, non-blocking, each
//! call a turn of the stack it names. With N lanes, flow f goes to lane
//! f mod N (its client stack picks a port the link steers to the same
//! lane). Every received byte is compared with the flow's pattern. The
//! figure is total bytes over the time from start to the last byte, best
//! of `--runs`, the configurations alternating. Also printed: the CPU
//! time the lane threads used per GiB (/proc/thread-self/schedstat), which
//! says whether the stacks scale when the cores are busy with other work
//! (same CPU per byte with 2 stacks: nothing shared slows them).

use clap::Parser;
use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use ustack::memnet::mq_pair;
use ustack::posix::{AF_INET, MSG_DONTWAIT, SOCK_NONBLOCK, SOCK_STREAM};
use ustack::{Errno, Mode};

#[derive(Parser, Debug)]
#[command(about = "Bulk throughput of 8 flows on 1 stack against N stacks, in memory")]
struct Args {
    /// Flows in total.
    #[arg(long, default_value_t = 8)]
    flows: usize,
    /// Bytes per flow.
    #[arg(long, default_value_t = 128 << 20)]
    bytes: usize,
    /// Stacks to compare against one.
    #[arg(long, default_value_t = 2)]
    stacks: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Do not pin the lane threads.
    #[arg(long)]
    no_pin: bool,
}

const CHUNK: usize = 64 << 10;

/// Nanoseconds the calling thread has run on a CPU
/// (/proc/thread-self/schedstat, first field); 0 if unreadable.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    gbps: f64,
    /// CPU seconds the lane threads used per GiB moved.
    cpu_per_gib: f64,
}

/// One run: `flows` flows over `n` lanes.
fn run(args: &Args, n: usize) -> Figures {
    let net = mq_pair(n, n, 0, Mode::Inline, false, |c| c).expect("in-memory link");
    let listener = net.b.listen("10.0.0.2:5001").expect("listen");
    let dst: SocketAddr = "10.0.0.2:5001".parse().unwrap();
    let start = Instant::now();
    let per_lane = net.a.run_per_stack(!args.no_pin, |lane, a| {
        let cpu0 = thread_cpu_ns();
        let b = net.b.stack(lane);
        let flows: Vec<usize> = (0..args.flows).filter(|f| f % n == lane).collect();
        let fds: Vec<i32> = flows
            .iter()
            .map(|_| {
                let fd = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
                match a.connect(fd, dst) {
                    Ok(()) | Err(Errno::EINPROGRESS) => fd,
                    Err(e) => panic!("connect: {e:?}"),
                }
            })
            .collect();
        let mut servers = Vec::new();
        let mut sent = vec![0usize; fds.len()];
        let mut got = 0usize;
        let total = fds.len() * args.bytes;
        // Flow k's bytes are all `k + 1` (checked on receipt per server).
        let patterns: Vec<Vec<u8>> = (0..fds.len()).map(|k| vec![k as u8 + 1; CHUNK]).collect();
        let mut marks: Vec<Option<u8>> = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        let deadline = Instant::now() + Duration::from_secs(300);
        while got < total {
            assert!(
                Instant::now() < deadline,
                "lane {lane}: stuck at {got} of {total}"
            );
            while servers.len() < fds.len() {
                match listener.accept_on(lane) {
                    Ok((c, _)) => {
                        c.set_nonblocking(true).unwrap();
                        servers.push(c);
                        marks.push(None);
                    }
                    Err(_) => break,
                }
            }
            let mut wrote = false;
            for (k, &fd) in fds.iter().enumerate() {
                let left = args.bytes - sent[k];
                if left == 0 {
                    continue;
                }
                match a.send(fd, &patterns[k][..left.min(CHUNK)], MSG_DONTWAIT) {
                    Ok(m) => {
                        sent[k] += m;
                        wrote = true;
                    }
                    Err(Errno::EAGAIN) | Err(Errno::ENOTCONN) => {}
                    Err(e) => panic!("send: {e:?}"),
                }
            }
            if !wrote {
                let _ = a.counters(); // a turn of the client stack
            }
            if servers.is_empty() {
                let _ = b.counters();
            }
            for (s, mark) in servers.iter().zip(marks.iter_mut()) {
                match (&*s).read(&mut buf) {
                    Ok(m) => {
                        let want = *mark.get_or_insert(buf[0]);
                        assert!(buf[..m].iter().all(|&x| x == want), "bytes differ");
                        got += m;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }
        let cpu = thread_cpu_ns() - cpu0;
        for fd in fds {
            let _ = a.close(fd);
        }
        (got, cpu)
    });
    let secs = start.elapsed().as_secs_f64();
    let bytes: usize = per_lane.iter().map(|l| l.0).sum();
    let cpu: u64 = per_lane.iter().map(|l| l.1).sum();
    assert_eq!(bytes, args.flows * args.bytes);
    Figures {
        gbps: bytes as f64 * 8.0 / secs / 1e9,
        cpu_per_gib: cpu as f64 / 1e9 / (bytes as f64 / f64::from(1u32 << 30)),
    }
}

fn main() {
    let args = Args::parse();
    let cpus = ustack_devices::affinity::allowed_cpus();
    println!(
        "scale_bench: {} flows x {} MiB, 1 stack vs {} stacks, {} CPUs, best of {}",
        args.flows,
        args.bytes >> 20,
        args.stacks,
        cpus.len(),
        args.runs
    );
    let (mut one, mut many) = (Figures::default(), Figures::default());
    for r in 0..args.runs {
        let a = run(&args, 1);
        let b = run(&args, args.stacks);
        println!(
            "run {r}: 1 stack {:.2} Gbit/s ({:.3} CPU s/GiB), {} stacks {:.2} Gbit/s ({:.3} CPU s/GiB)",
            a.gbps, a.cpu_per_gib, args.stacks, b.gbps, b.cpu_per_gib
        );
        if a.gbps > one.gbps {
            one = a;
        }
        if b.gbps > many.gbps {
            many = b;
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at the end: {}", load.trim());
    println!(
        "1 stack: {:.2} Gbit/s, {:.3} CPU s/GiB",
        one.gbps, one.cpu_per_gib
    );
    println!(
        "{} stacks: {:.2} Gbit/s, {:.3} CPU s/GiB",
        args.stacks, many.gbps, many.cpu_per_gib
    );
    println!(
        "ratio {} stacks / 1 stack: {:.2} (throughput); CPU per byte, 1 stack / {} stacks: {:.2}",
        args.stacks,
        many.gbps / one.gbps,
        args.stacks,
        one.cpu_per_gib / many.cpu_per_gib
    );
}
