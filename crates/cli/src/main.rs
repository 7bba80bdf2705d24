//! `ustack`: run servers and clients on the user-space stack and see what
//! it is doing.

mod demo;
mod link;
mod ping;
mod transitions;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use ustack_core::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "ustack",
    version,
    about = "A user-space TCP/IP stack: demos, servers and clients"
)]
struct Cli {
    #[command(flatten)]
    link: link::LinkArgs,
    /// At exit, print the counters (netstat -s style).
    #[arg(long, global = true)]
    stats: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Two hosts on an in-memory link: ping and a UDP echo exchange (no root needed).
    Demo {
        /// Probability that the link drops a frame (0 to 1).
        #[arg(long, default_value_t = 0.05, value_parser = probability)]
        loss: f64,
        /// One-way delay of the link in milliseconds.
        #[arg(long, default_value_t = 10)]
        delay: u64,
        /// Probability that the link flips bits in a frame (0 to 1).
        #[arg(long, default_value_t = 0.01, value_parser = probability)]
        corrupt: f64,
        /// Pings and datagrams to send.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        count: u32,
        /// Bytes per UDP datagram (over the 1500-byte MTU they are fragmented).
        #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(4..=65507))]
        size: u32,
        /// Seed of every random choice: the same seed gives the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write every frame to this pcap file (readable by tshark/Wireshark).
        #[arg(long)]
        pcap: Option<PathBuf>,
        /// Bytes of the TCP transfer (0: none).
        #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(0..=1 << 34))]
        bytes: u64,
    },
    /// Send ICMP echo requests from ustack (needs --tun or --tap).
    Ping {
        /// The address to ping.
        host: std::net::Ipv4Addr,
        /// Stop after this many requests.
        #[arg(short = 'c', long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        count: u32,
        /// Seconds between requests.
        #[arg(short = 'i', long, default_value_t = 1.0)]
        interval: f64,
        /// Bytes of data in each request.
        #[arg(short = 's', long, default_value_t = 56, value_parser = clap::value_parser!(u32).range(0..=65507))]
        size: u32,
    },
}

fn probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability between 0 and 1"))
    }
}

/// Writes to stdout; a closed pipe (`ustack demo | head`) is not an error.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ustack: cannot write to stdout: {e}");
            ExitCode::from(2)
        }
    }
}

/// The counters, netstat -s style.
fn print_stats(rt: &ustack::Runtime) {
    print!("{}", rt.counters());
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let stats = cli.stats;
    match cli.command {
        Command::Ping {
            host,
            count,
            interval,
            size,
        } => {
            if !(0.0..=3600.0).contains(&interval) {
                eprintln!("ustack: --interval {interval} is outside 0..3600 seconds");
                return ExitCode::from(2);
            }
            let rt = match cli.link.start("ping") {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("ustack: {e}");
                    return ExitCode::from(2);
                }
            };
            let r = ping::run(
                &rt,
                host,
                count,
                Duration::from_secs_f64(interval),
                size as usize,
            );
            if stats {
                print_stats(&rt);
            }
            match r {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("ustack: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Demo {
            loss,
            delay,
            corrupt,
            count,
            size,
            seed,
            pcap,
            bytes,
        } => {
            if cli.link.given() {
                eprintln!(
                    "ustack: demo runs on the in-memory network; put its options after `demo` (--tun/--tap do not apply)"
                );
                return ExitCode::from(2);
            }
            let opts = demo::DemoOptions {
                loss,
                delay: Duration::from_millis(delay),
                corrupt,
                count,
                size: size as usize,
                seed,
                pcap,
                bytes,
            };
            match demo::run(&opts) {
                Ok(report) => print_out(&report.text),
                Err(e) => {
                    eprintln!("ustack: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
