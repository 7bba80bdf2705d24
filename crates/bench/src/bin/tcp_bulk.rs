//! Bulk TCP transfer between two stacks in one process over an in-memory
//! wire: ustack and smoltcp measured in the same run, the ratio printed.
//!
//! With `--loss`: ustack's goodput over a lossy, delayed link on virtual
//! time instead, for each congestion controller.

use clap::Parser;
use ustack_bench::ustack_peer::{self, LossyOptions, LossyResult};
use ustack_bench::{smoltcp_peer, BulkOptions, BulkResult};
use ustack_core::{Congestion, Duration};

#[derive(Parser, Debug)]
#[command(about = "Bulk TCP throughput: ustack vs smoltcp on the same in-memory wire")]
struct Args {
    /// Bytes to transfer (default 1 GiB).
    #[arg(long, env = "TCP_BULK_BYTES", default_value_t = 1 << 30)]
    bytes: u64,
    /// IP MTU of the wire.
    #[arg(long, default_value_t = 1500)]
    mtu: usize,
    /// Socket send/receive buffer in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    buf: usize,
    /// Bytes per application send/recv call.
    #[arg(long, default_value_t = 64 * 1024)]
    chunk: usize,
    /// Runs of each configuration; the best is reported.
    #[arg(long, env = "TCP_BULK_RUNS", default_value_t = 3)]
    runs: u32,
    /// The ustack API: `copy` (send/recv through the socket rings), or
    /// `zerocopy` (the completion API, zero-copy send and receive; the
    /// copy API is measured in the same run too).
    #[arg(long, default_value = "copy")]
    api: String,
    /// Only this stack (ustack, ustack-zerocopy or smoltcp), e.g. under a profiler.
    #[arg(long)]
    only: Option<String>,
    /// Only this checksum mode (computed or offload).
    #[arg(long)]
    checksums: Option<String>,
    /// Instead: ustack's goodput over a lossy link (virtual time), per
    /// loss rate and congestion controller.
    #[arg(long)]
    loss: bool,
    /// Lossy mode: bytes per transfer.
    #[arg(long, env = "TCP_BULK_LOSS_BYTES", default_value_t = 64 << 20)]
    loss_bytes: u64,
    /// Lossy mode: loss rates in percent, each direction.
    #[arg(long, value_delimiter = ',', default_values_t = [1.0, 5.0])]
    loss_pct: Vec<f64>,
    /// Lossy mode: one-way delay in milliseconds.
    #[arg(long, default_value_t = 10)]
    delay_ms: u64,
    /// Lossy mode: a bottleneck of this many Mbit/s each way (with
    /// `--queue`): also reports the queueing delay each sender builds.
    #[arg(long)]
    bandwidth_mbit: Option<u64>,
    /// Lossy mode: the bottleneck's queue in frames (0: 1000).
    #[arg(long, default_value_t = 0)]
    queue: usize,
    /// Lossy mode: the congestion controllers to run (newreno, cubic, bbr).
    #[arg(long, value_delimiter = ',', default_values_t = [Congestion::NewReno, Congestion::Cubic, Congestion::Bbr])]
    cc: Vec<Congestion>,
    /// Lossy mode: seeds per configuration (the mean is reported).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
}

fn label(offload: bool) -> &'static str {
    if offload {
        "checksum offload"
    } else {
        "checksums computed"
    }
}

fn show(name: &str, offload: bool, r: &BulkResult) {
    println!(
        "{name:8} {:18}: {:6.2} Gbps ({} bytes in {:.3} s, {} frames)",
        label(offload),
        r.gbps(),
        r.bytes,
        r.secs,
        r.frames
    );
}

fn best(results: &[BulkResult]) -> Option<&BulkResult> {
    results.iter().max_by(|a, b| a.gbps().total_cmp(&b.gbps()))
}

fn bulk(args: &Args) {
    let want = |name: &str| args.only.as_deref().is_none_or(|o| o == name);
    let modes = match args.checksums.as_deref() {
        None => vec![false, true],
        Some("computed") => vec![false],
        Some("offload") => vec![true],
        Some(other) => panic!("--checksums {other}: use computed or offload"),
    };
    for offload in modes {
        let opts = BulkOptions {
            bytes: args.bytes,
            mtu: args.mtu,
            buf: args.buf,
            chunk: args.chunk,
            offload,
            timeout: std::time::Duration::from_secs(120),
        };
        // Interleaved, so a burst of noise from the neighbours hits both.
        let zc = match args.api.as_str() {
            "copy" => false,
            "zerocopy" => true,
            other => panic!("--api {other}: use copy or zerocopy"),
        };
        let (mut us, mut them, mut zcs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.runs {
            if zc && want("ustack-zerocopy") {
                zcs.push(ustack_peer::run_zerocopy(&opts).unwrap_or_else(|e| panic!("{e}")));
            }
            if want("ustack") {
                us.push(ustack_peer::run(&opts).unwrap_or_else(|e| panic!("{e}")));
            }
            if want("smoltcp") {
                them.push(smoltcp_peer::run(&opts).unwrap_or_else(|e| panic!("{e}")));
            }
        }
        let (us, them, zcs) = (best(&us), best(&them), best(&zcs));
        if let Some(r) = zcs {
            show("ustack-zc", offload, r);
        }
        if let Some(r) = us {
            show("ustack", offload, r);
        }
        if let Some(r) = them {
            show("smoltcp", offload, r);
        }
        if let (Some(z), Some(s)) = (zcs, them) {
            println!(
                "ratio ustack-zerocopy/smoltcp, {}: {:.2}",
                label(offload),
                z.gbps() / s.gbps()
            );
        }
        if let (Some(z), Some(u)) = (zcs, us) {
            println!(
                "ratio ustack-zerocopy/ustack-copy, {}: {:.2}",
                label(offload),
                z.gbps() / u.gbps()
            );
        }
        if let (Some(u), Some(s)) = (us, them) {
            println!(
                "ratio ustack/smoltcp, {}: {:.2}",
                label(offload),
                u.gbps() / s.gbps()
            );
        }
    }
}

fn lossy(args: &Args) {
    println!(
        "ustack goodput, {} bytes, {} ms one-way delay, MTU {}, {} B buffers, mean of {} seeds (virtual time)",
        args.loss_bytes, args.delay_ms, args.mtu, args.buf, args.seeds
    );
    let rtt = 2.0 * args.delay_ms as f64 / 1e3;
    // MSS with timestamps: MTU less 20 (IP), 20 (TCP) and 12 (option) bytes.
    let mss = args.mtu.saturating_sub(52) as f64;
    println!(
        "window ceiling (buffer/RTT): {:.2} Mbit/s",
        args.buf as f64 * 8.0 / rtt / 1e6
    );
    for &pct in &args.loss_pct {
        println!(
            "loss {pct}%: Mathis ceiling for Reno (MSS/RTT * 1.22/sqrt(p)): {:.2} Mbit/s",
            mss * 8.0 / rtt * 1.22 / (pct / 100.0).sqrt() / 1e6
        );
        for &cc in &args.cc {
            let runs: Vec<LossyResult> = (0..args.seeds)
                .map(|seed| {
                    let opts = LossyOptions {
                        bytes: args.loss_bytes,
                        mtu: args.mtu,
                        buf: args.buf,
                        chunk: args.chunk,
                        loss: pct / 100.0,
                        delay: Duration::from_millis(args.delay_ms),
                        congestion: cc,
                        seed: 1 + seed * 1000,
                        limit: Duration::from_secs(24 * 3600),
                        bandwidth_bps: args.bandwidth_mbit.map(|m| m * 1_000_000),
                        queue_limit: args.queue,
                    };
                    ustack_peer::run_lossy(&opts).unwrap_or_else(|e| panic!("{e}"))
                })
                .collect();
            let n = runs.len() as f64;
            let mean = runs.iter().map(LossyResult::mbps).sum::<f64>() / n;
            let lo = runs.iter().map(LossyResult::mbps).fold(f64::MAX, f64::min);
            let hi = runs.iter().map(LossyResult::mbps).fold(0.0, f64::max);
            let vsecs = runs.iter().map(|r| r.virtual_secs).sum::<f64>() / n;
            let wall = runs.iter().map(|r| r.wall_secs).sum::<f64>();
            let lost = runs.iter().map(|r| r.frames_lost).sum::<u64>() as f64 / n;
            let retrans = runs.iter().map(|r| r.retrans_segs).sum::<u64>() as f64 / n;
            let rto = runs.iter().map(|r| r.timeouts).sum::<u64>() as f64 / n;
            let fast = runs.iter().map(|r| r.fast_retrans).sum::<u64>() as f64 / n;
            let ofo = runs.iter().map(|r| r.ofo_queued).sum::<u64>() as f64 / n;
            if args.bandwidth_mbit.is_some() {
                // Queueing delay: the mean smoothed RTT over the transfer
                // above the propagation RTT.
                let srtt = runs.iter().map(|r| r.mean_srtt.as_secs_f64()).sum::<f64>() / n;
                let drops = runs.iter().map(|r| r.queue_drops).sum::<u64>() as f64 / n;
                println!(
                    "loss {pct}% {:8}: bottleneck: mean srtt {:.1} ms, {:.1} ms above the {:.0} ms path RTT; {drops:.0} queue drops per run",
                    format!("{cc:?}"),
                    srtt * 1e3,
                    (srtt - rtt) * 1e3,
                    rtt * 1e3
                );
            }
            println!(
                "loss {pct}% {:8}: {mean:8.2} Mbit/s (min {lo:.2}, max {hi:.2}; {vsecs:.1} s virtual, \
                 {lost:.0} frames lost, {retrans:.0} retransmitted, {fast:.0} fast retransmits, {rto:.0} RTOs, \
                 {ofo:.0} out-of-order queued per run; {wall:.1} s wall)",
                format!("{cc:?}")
            );
        }
    }
}

fn main() {
    let args = Args::parse();
    if args.loss {
        lossy(&args);
    } else {
        bulk(&args);
    }
}
