//! A million connections (issue 19, item 4), run by hand:
//!
//! `cargo run --release -p ustack-bench --bin million -- --idle 1000000 --short 1000000`
//!
//! Two core stacks on the in-memory IP link and a virtual clock, in one
//! process. `--idle N`: N established connections held open at once; the
//! figure is the stacks' heap growth (a counting global allocator: bytes
//! allocated minus freed) and the RSS growth, per connection per end.
//! `--short N`: N sequential connections (connect, 64 B each way, close),
//! the clock stepping 1 ms after each, so TIME_WAIT (60 s) holds about
//! 60 000 at a time; at the end the clock passes TIME_WAIT and the heap
//! must be back where it started.

use clap::Parser;
use ustack_bench::million::{rss, Counting, Pair};
use ustack_core::{Duration, SocketHandle};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    Counting::live()
}

#[derive(Parser, Debug)]
#[command(about = "Memory of many idle connections, and of many short ones")]
struct Args {
    /// Idle established connections held at once (0: skip).
    #[arg(long, default_value_t = 100_000)]
    idle: usize,
    /// Sequential short connections (0: skip).
    #[arg(long, default_value_t = 100_000)]
    short: usize,
    /// Server ports (each takes at most 64 512 client ports).
    #[arg(long, default_value_t = 20)]
    ports: usize,
}

fn main() {
    let a = Args::parse();
    let tw = Duration::from_secs(60);
    if a.idle > 0 {
        let mut p = Pair::new(a.ports, a.idle, tw);
        // Warm up the pair (first ARP-free packets, buffers of the pump).
        let w = p.open(100, 100);
        p.close(w);
        p.advance(Duration::from_secs(61));
        let (h0, r0) = (live(), rss());
        let t = std::time::Instant::now();
        let conns = p.open(a.idle, 1000);
        // The bench's own list of handles is not the stacks'.
        let mine = conns.capacity() * std::mem::size_of::<(SocketHandle, SocketHandle)>();
        let (h1, r1) = (live() - mine, rss());
        let per = |x: usize, y: usize| x.saturating_sub(y) as f64 / a.idle as f64 / 2.0;
        println!(
            "idle: {} established connections in {:.1} s; per connection per end: heap {:.0} B, RSS {:.0} B",
            a.idle,
            t.elapsed().as_secs_f64(),
            per(h1, h0),
            per(r1, r0)
        );
        // Idle for a while: the handshakes' retransmission timers run out.
        p.advance(Duration::from_secs(5));
        let (h1, r1) = (live() - mine, rss());
        println!(
            "idle: the same 5 s later (handshake timers run out): heap {:.0} B, RSS {:.0} B",
            per(h1, h0),
            per(r1, r0)
        );
        p.exchange(&conns, &[7; 64]);
        let (h2, r2) = (live() - mine, rss());
        println!(
            "idle: after 64 B each way on every connection: heap {:.0} B, RSS {:.0} B",
            per(h2, h0),
            per(r2, r0)
        );
        p.close(conns);
        let tw_count = p.tcbs();
        p.advance(Duration::from_secs(61));
        println!(
            "idle: after closing ({} TCBs left, in TIME_WAIT) and 61 s: {} TCBs, heap {:+} B against before opening",
            tw_count,
            p.tcbs(),
            live() as i64 - h0 as i64
        );
    }
    if a.short > 0 {
        let mut p = Pair::new(a.ports, 128, tw);
        let req = [7u8; 64];
        p.short(0, &req, Duration::from_millis(1));
        p.advance(Duration::from_secs(61));
        let h0 = live();
        let t = std::time::Instant::now();
        let mut peak = 0;
        for i in 0..a.short {
            p.short(i, &req, Duration::from_millis(1));
            peak = peak.max(p.tcbs());
        }
        let secs = t.elapsed().as_secs_f64();
        let at_end = p.tcbs();
        let h1 = live();
        p.advance(Duration::from_secs(61));
        println!(
            "short: {} sequential connections in {:.1} s ({:.0}/s, virtual clock 1 ms apart); TCBs (TIME_WAIT) at the end {}, at most {}; heap at the end {:+} B, after 61 s {:+} B, {} TCBs",
            a.short,
            secs,
            a.short as f64 / secs,
            at_end,
            peak,
            h1 as i64 - h0 as i64,
            live() as i64 - h0 as i64,
            p.tcbs()
        );
    }
}
