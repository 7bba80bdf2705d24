//! Shared by the examples: the in-memory network and an echo client driver.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;
use ustack::net::TcpStream;
use ustack::Runtime;

pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const PORT: u16 = 7;

/// Logs to stderr what RUST_LOG asks for (e.g. RUST_LOG=debug), else
/// warnings, or debug with `-v` among the arguments.
pub fn init_logging() {
    let verbose = std::env::args().skip(1).any(|a| a == "-v");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| if verbose { "debug" } else { "warn" }.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn server_addr() -> SocketAddrV4 {
    SocketAddrV4::new(SERVER, PORT)
}

/// `n` clients at once, each sending `rounds` messages of `size` bytes and
/// checking every echo byte for byte (an echo 30 s late is an error).
/// Returns the bytes echoed.
pub fn echo_clients(rt: &Runtime, n: usize, rounds: usize, size: usize) -> Result<u64, String> {
    let threads: Vec<_> = (0..n)
        .map(|id| {
            let rt = rt.clone();
            std::thread::spawn(move || -> Result<u64, String> {
                let mut s = TcpStream::connect(&rt, server_addr())
                    .map_err(|e| format!("client {id}: connect: {e}"))?;
                // A server that stops answering fails the run, not hangs it.
                s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                    .map_err(|e| format!("client {id}: SO_RCVTIMEO: {e}"))?;
                let mut back = vec![0u8; size];
                for r in 0..rounds {
                    let msg: Vec<u8> = (0..size).map(|i| (id * 31 + r * 7 + i) as u8).collect();
                    s.write_all(&msg)
                        .map_err(|e| format!("client {id}: write: {e}"))?;
                    s.read_exact(&mut back)
                        .map_err(|e| format!("client {id}: read: {e}"))?;
                    if back != msg {
                        return Err(format!("client {id}: round {r}: echo differs"));
                    }
                }
                Ok((rounds * size) as u64)
            })
        })
        .collect();
    let mut total = 0;
    for t in threads {
        total += t
            .join()
            .map_err(|_| "client thread panicked".to_string())??;
    }
    Ok(total)
}

/// The load every echo example serves when run as a program, so that the
/// figures of the five I/O models compare (README, "Five I/O models"):
/// `CLIENTS` clients at once, each `ROUNDS` requests of `SIZE` bytes.
pub const CLIENTS: usize = 16;
pub const ROUNDS: usize = 2000;
pub const SIZE: usize = 1000;

/// Runs `run` on the common load and prints, last, the line the
/// comparison reads: `model=<name> requests/s=<N> bytes/s=<N>` (requests
/// and bytes echoed per second of the whole run, connections included).
/// Exits with 1 if the run fails.
pub fn measure(model: &str, run: impl FnOnce(usize, usize, usize) -> Result<u64, String>) {
    init_logging();
    let start = Instant::now();
    match run(CLIENTS, ROUNDS, SIZE) {
        Ok(bytes) => {
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            println!(
                "{model}: {CLIENTS} clients x {ROUNDS} requests of {SIZE} bytes, {bytes} bytes echoed intact"
            );
            println!(
                "model={model} requests/s={:.0} bytes/s={:.0}",
                (CLIENTS * ROUNDS) as f64 / secs,
                bytes as f64 / secs
            );
        }
        Err(e) => {
            eprintln!("{model}: {e}");
            std::process::exit(1);
        }
    }
}
