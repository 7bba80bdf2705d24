//! An acceptor thread hands accepted connections to worker loops, each
//! with its own epoll instance. The hand-off is `epoll_ctl(EPOLL_CTL_ADD)`
//! on the worker's epoll from the acceptor's thread: ustack has no
//! eventfd, and needs none, since an ADD of a socket that is already
//! readable wakes the worker blocked in `epoll_wait` at once (as on
//! Linux, where epoll_ctl is thread-safe and an added ready fd wakes the
//! waiters). The worker learns of the connection from its first event.
//! On the in-memory network:
//! `cargo run --release -p ustack --example server_acceptor -- --workers 4 --clients 64 --requests 100`.

#[path = "servers/mod.rs"]
pub mod servers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use ustack::epoll::*;
use ustack::posix::*;
use ustack::{Errno, Runtime};

#[derive(Debug)]
pub struct Report {
    /// Requests the clients made and checked.
    pub requests: u64,
    /// Connections the acceptor handed to each worker.
    pub handed: Vec<u64>,
    /// Per worker: requests served.
    pub per_worker: Vec<servers::LoopStats>,
    pub rps: u64,
}

/// Accepts until `stop`, handing connection k to worker k mod N.
fn acceptor(rt: &Runtime, l: i32, workers: &[i32], stop: &AtomicBool) -> Result<Vec<u64>, Errno> {
    let ep = rt.epoll_create1(0)?;
    rt.epoll_ctl(
        ep,
        EPOLL_CTL_ADD,
        l,
        Some(EpollEvent::new(EPOLLIN, l as u64)),
    )?;
    let mut handed = vec![0u64; workers.len()];
    let mut next = 0;
    let mut events = [EpollEvent::new(0, 0); 4];
    while !stop.load(Ordering::Acquire) {
        if rt.epoll_wait(ep, &mut events, servers::TICK_MS)? == 0 {
            continue;
        }
        loop {
            match rt.accept4(l, SOCK_NONBLOCK) {
                Ok((c, _)) => {
                    servers::add_conn(rt, workers[next], c)?;
                    handed[next] += 1;
                    next = (next + 1) % workers.len();
                }
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(e),
            }
        }
    }
    rt.close(ep)?;
    Ok(handed)
}

/// One acceptor, `workers` worker loops; `clients` clients each make
/// `requests` requests, on keep-alive connections if `keepalive`, else
/// each on its own connection.
pub fn run(
    workers: usize,
    clients: usize,
    requests: usize,
    keepalive: bool,
) -> Result<Report, String> {
    let (client_rt, server_rt) = ustack::memnet::pair().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let l = servers::listener(&server_rt, false).map_err(|e| e.to_string())?;
    let mut eps = Vec::new();
    let mut loops = Vec::new();
    for _ in 0..workers {
        let ep = server_rt.epoll_create1(0).map_err(|e| e.to_string())?;
        eps.push(ep);
        let (rt, stop) = (server_rt.clone(), stop.clone());
        loops.push(std::thread::spawn(move || {
            servers::serve_loop(&rt, ep, None, &stop)
        }));
    }
    let acc = {
        let (rt, stop) = (server_rt.clone(), stop.clone());
        std::thread::spawn(move || acceptor(&rt, l, &eps, &stop))
    };
    let done = servers::load(&client_rt, clients, requests, keepalive);
    stop.store(true, Ordering::Release);
    let handed = acc
        .join()
        .map_err(|_| "acceptor panicked")?
        .map_err(|e| e.to_string())?;
    let mut per_worker = Vec::new();
    for t in loops {
        per_worker.push(
            t.join()
                .map_err(|_| "worker panicked")?
                .map_err(|e| e.to_string())?,
        );
    }
    let (n, d) = done?;
    Ok(Report {
        requests: n,
        handed,
        per_worker,
        rps: servers::rate(n, d),
    })
}

#[allow(dead_code)]
fn main() {
    let workers = servers::arg("--workers", 4);
    let clients = servers::arg("--clients", 64);
    let requests = servers::arg("--requests", 100);
    match run(workers, clients, requests, false) {
        Ok(r) => {
            let served: Vec<String> = r
                .per_worker
                .iter()
                .map(|s| s.requests.to_string())
                .collect();
            println!(
                "acceptor: 1 acceptor + {workers} workers, {clients} clients x {requests} short connections; handed {:?}; served {}",
                r.handed,
                served.join(" ")
            );
            println!("server=acceptor requests/s={}", r.rps);
        }
        Err(e) => {
            eprintln!("server_acceptor: {e}");
            std::process::exit(1);
        }
    }
}
