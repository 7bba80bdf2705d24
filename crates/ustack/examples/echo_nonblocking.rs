//! The non-blocking I/O model: one thread, every socket O_NONBLOCK, and a
//! loop that tries each of them in turn — accept, read, write — taking
//! EAGAIN as "nothing now" (UNP ch. 16). No call ever sleeps; a pass that
//! found nothing to do yields the CPU and goes round again. On the
//! in-memory network: `cargo run --release -p ustack --example echo_nonblocking`.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};
use ustack::posix::*;
use ustack::{Errno, Runtime};

/// A connection: its descriptor and the bytes read but not yet echoed.
struct Conn {
    fd: i32,
    out: Vec<u8>,
}

/// Serves until `clients` connections have been accepted and closed, or
/// ETIMEDOUT once `idle` passes with nothing to do (the loop is bounded
/// in time).
pub fn serve(rt: &Runtime, listener: i32, clients: usize, idle: Duration) -> Result<(), Errno> {
    rt.fcntl(listener, F_SETFL, O_NONBLOCK)?;
    let mut deadline = Instant::now() + idle;
    let mut conns: Vec<Conn> = Vec::new();
    let (mut accepted, mut closed) = (0, 0);
    let mut buf = vec![0u8; 16384];
    while closed < clients {
        if Instant::now() > deadline {
            return Err(Errno::ETIMEDOUT);
        }
        let mut busy = false;
        while accepted < clients {
            match rt.accept4(listener, SOCK_NONBLOCK) {
                Ok((fd, _)) => {
                    conns.push(Conn {
                        fd,
                        out: Vec::new(),
                    });
                    accepted += 1;
                    busy = true;
                }
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(e),
            }
        }
        let mut i = 0;
        while i < conns.len() {
            let c = &mut conns[i];
            let mut eof = false;
            loop {
                match rt.read(c.fd, &mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        c.out.extend_from_slice(&buf[..n]);
                        busy = true;
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return Err(e),
                }
            }
            while !c.out.is_empty() {
                match rt.write(c.fd, &c.out) {
                    Ok(n) => {
                        c.out.drain(..n);
                        busy = true;
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return Err(e),
                }
            }
            if eof && c.out.is_empty() {
                rt.close(c.fd)?;
                conns.swap_remove(i);
                closed += 1;
                continue;
            }
            i += 1;
        }
        if busy {
            deadline = Instant::now() + idle;
        } else {
            std::thread::yield_now();
        }
    }
    Ok(())
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
    let server = std::thread::spawn(move || serve(&server_rt, l, clients, Duration::from_secs(5)));
    let bytes = common::echo_clients(&client_rt, clients, rounds, size)?;
    server
        .join()
        .map_err(|_| "server panicked")?
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

#[allow(dead_code)]
fn main() {
    common::measure("nonblocking", run);
}
