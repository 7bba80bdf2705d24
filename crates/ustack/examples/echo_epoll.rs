//! An edge-triggered epoll echo server with non-blocking sockets: every
//! event drains its socket until EAGAIN, as ET requires. On the in-memory
//! network: `cargo run -p ustack --example echo_epoll`.

#[path = "common/mod.rs"]
pub mod common;

use std::collections::HashMap;
use ustack::epoll::*;
use ustack::posix::*;
use ustack::{Errno, Runtime};

/// Serves until `clients` connections have been accepted and closed.
/// Returns the most events one `epoll_wait` returned.
pub fn serve(rt: &Runtime, listener: i32, clients: usize) -> Result<usize, Errno> {
    rt.fcntl(listener, F_SETFL, O_NONBLOCK)?;
    let ep = rt.epoll_create1(0)?;
    rt.epoll_ctl(
        ep,
        EPOLL_CTL_ADD,
        listener,
        Some(EpollEvent::new(EPOLLIN | EPOLLET, listener as u64)),
    )?;
    let mut out: HashMap<i32, Vec<u8>> = HashMap::new();
    let (mut accepted, mut closed, mut most) = (0, 0, 0);
    let mut events = vec![EpollEvent::new(0, 0); 256];
    let mut buf = vec![0u8; 16384];
    while closed < clients {
        let n = rt.epoll_wait(ep, &mut events, 5000)?;
        if n == 0 {
            return Err(Errno::ETIMEDOUT);
        }
        most = most.max(n);
        for ev in &events[..n] {
            let fd = ev.data as i32;
            if fd == listener {
                // ET: accept until the queue is empty.
                loop {
                    match rt.accept4(listener, SOCK_NONBLOCK) {
                        Ok((c, _)) => {
                            accepted += 1;
                            out.insert(c, Vec::new());
                            let interest = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
                            rt.epoll_ctl(
                                ep,
                                EPOLL_CTL_ADD,
                                c,
                                Some(EpollEvent::new(interest, c as u64)),
                            )?;
                        }
                        Err(Errno::EAGAIN) => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let Some(pending) = out.get_mut(&fd) else {
                continue;
            };
            // ET: read until EAGAIN (or EOF), then write until EAGAIN.
            let mut eof = false;
            loop {
                match rt.read(fd, &mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(k) => pending.extend_from_slice(&buf[..k]),
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return Err(e),
                }
            }
            while !pending.is_empty() {
                match rt.write(fd, pending) {
                    Ok(k) => drop(pending.drain(..k)),
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return Err(e),
                }
            }
            if eof && pending.is_empty() {
                rt.close(fd)?;
                out.remove(&fd);
                closed += 1;
            }
        }
    }
    let _ = accepted;
    rt.close(ep)?;
    Ok(most)
}

pub fn run(clients: usize, rounds: usize, size: usize) -> Result<u64, String> {
    let (client_rt, server_rt) = ustack::memnet::pair().map_err(|e| e.to_string())?;
    let l = server_rt
        .socket(AF_INET, SOCK_STREAM, 0)
        .map_err(|e| e.to_string())?;
    server_rt
        .bind(l, common::server_addr())
        .map_err(|e| e.to_string())?;
    server_rt.listen(l, 1024).map_err(|e| e.to_string())?;
    let server = std::thread::spawn(move || serve(&server_rt, l, clients));
    let bytes = common::echo_clients(&client_rt, clients, rounds, size)?;
    server
        .join()
        .map_err(|_| "server panicked")?
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

#[allow(dead_code)]
fn main() {
    common::measure("epoll", run);
}
