//! One loop per thread: each thread has its own listening socket on the
//! same port (SO_REUSEPORT) and its own epoll instance, and serves the
//! connections it accepted. The stack spreads incoming connections among
//! the listeners by a hash of the 4-tuple, as Linux does; each thread's
//! accepted count shows the spread. On the in-memory network:
//! `cargo run --release -p ustack --example server_reuseport -- --threads 4 --clients 64 --requests 100`.

#[path = "servers/mod.rs"]
pub mod servers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct Report {
    /// Requests the clients made and checked.
    pub requests: u64,
    /// Per thread: connections accepted, requests served.
    pub per_thread: Vec<servers::LoopStats>,
    pub rps: u64,
}

/// `threads` loops; `clients` clients each make `requests` requests on
/// short connections (one connection per request, so accepts dominate).
pub fn run(threads: usize, clients: usize, requests: usize) -> Result<Report, String> {
    let (client_rt, server_rt) = ustack::memnet::pair().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for _ in 0..threads {
        // Every listener is open before any client connects.
        let l = servers::listener(&server_rt, true).map_err(|e| e.to_string())?;
        let ep = server_rt.epoll_create1(0).map_err(|e| e.to_string())?;
        let (rt, stop) = (server_rt.clone(), stop.clone());
        loops.push(std::thread::spawn(move || {
            servers::serve_loop(&rt, ep, Some(l), &stop)
        }));
    }
    let done = servers::load(&client_rt, clients, requests, false);
    stop.store(true, Ordering::Release);
    let mut per_thread = Vec::new();
    for t in loops {
        per_thread.push(
            t.join()
                .map_err(|_| "server loop panicked")?
                .map_err(|e| e.to_string())?,
        );
    }
    let (n, d) = done?;
    Ok(Report {
        requests: n,
        per_thread,
        rps: servers::rate(n, d),
    })
}

#[allow(dead_code)]
fn main() {
    let threads = servers::arg("--threads", 4);
    let clients = servers::arg("--clients", 64);
    let requests = servers::arg("--requests", 100);
    match run(threads, clients, requests) {
        Ok(r) => {
            let spread: Vec<String> = r
                .per_thread
                .iter()
                .enumerate()
                .map(|(i, s)| format!("thread{i}={}", s.accepted))
                .collect();
            println!(
                "reuseport: {threads} loops, {clients} clients x {requests} short connections; accepted {}",
                spread.join(" ")
            );
            println!("server=reuseport requests/s={}", r.rps);
        }
        Err(e) => {
            eprintln!("server_reuseport: {e}");
            std::process::exit(1);
        }
    }
}
