//! A single-thread reactor: one thread, one epoll instance, one listening
//! socket, every connection non-blocking and level-triggered. Clients
//! make 64-byte requests, first on keep-alive connections, then each on
//! a short connection of its own. On the in-memory network:
//! `cargo run --release -p ustack --example server_reactor -- --clients 64 --requests 200`.

#[path = "servers/mod.rs"]
pub mod servers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a run measured.
#[derive(Debug)]
pub struct Report {
    pub keepalive_rps: u64,
    pub short_rps: u64,
    /// Requests done (keep-alive and short), as the clients counted them.
    pub requests: u64,
    /// As the server counted them, and its accepted connections.
    pub served: servers::LoopStats,
    pub rps: u64,
}

pub fn run(clients: usize, requests: usize) -> Result<Report, String> {
    let (client_rt, server_rt) = ustack::memnet::pair().map_err(|e| e.to_string())?;
    let l = servers::listener(&server_rt, false).map_err(|e| e.to_string())?;
    let ep = server_rt.epoll_create1(0).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || servers::serve_loop(&server_rt, ep, Some(l), &stop))
    };
    let keep = servers::load(&client_rt, clients, requests, true);
    let short = keep
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|_| servers::load(&client_rt, clients, requests, false));
    stop.store(true, Ordering::Release);
    let served = server
        .join()
        .map_err(|_| "server panicked")?
        .map_err(|e| e.to_string())?;
    let (kn, kt) = keep?;
    let (sn, st) = short?;
    Ok(Report {
        keepalive_rps: servers::rate(kn, kt),
        short_rps: servers::rate(sn, st),
        requests: kn + sn,
        served,
        rps: servers::rate(kn + sn, kt + st),
    })
}

#[allow(dead_code)]
fn main() {
    let clients = servers::arg("--clients", 64);
    let requests = servers::arg("--requests", 200);
    match run(clients, requests) {
        Ok(r) => {
            println!(
                "reactor: {clients} clients x {requests} requests of {} B; keep-alive {} requests/s, short connections {} requests/s; {} connections accepted",
                servers::REQ,
                r.keepalive_rps,
                r.short_rps,
                r.served.accepted
            );
            println!("server=reactor requests/s={}", r.rps);
        }
        Err(e) => {
            eprintln!("server_reactor: {e}");
            std::process::exit(1);
        }
    }
}
