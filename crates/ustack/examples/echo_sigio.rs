//! The signal-driven I/O model (UNP ch. 25): every socket O_ASYNC, owned
//! by the server thread (F_SETOWN_EX), raising a realtime signal
//! (F_SETSIG) whose `si_fd` names it when it turns readable or writable.
//! The loop sleeps in sigtimedwait — no handler, the signals blocked — and
//! serves the socket each signal names. If the realtime queue overflowed,
//! a plain SIGIO comes instead and every socket is served. On the
//! in-memory network: `cargo run --release -p ustack --example echo_sigio`.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::Duration;
use ustack::posix::*;
use ustack::signal;
use ustack::{Errno, Runtime};

/// Makes `fd` non-blocking and signal-driven: `sig` to the calling thread.
fn make_async(rt: &Runtime, fd: i32, sig: i32) -> Result<(), Errno> {
    rt.fcntl_setown_ex(fd, F_OWNER_TID, signal::gettid())?;
    rt.fcntl(fd, F_SETSIG, sig)?;
    rt.fcntl(fd, F_SETFL, O_NONBLOCK | O_ASYNC)?;
    Ok(())
}

/// Reads `fd` until EAGAIN and echoes until EAGAIN; returns whether it
/// reached EOF with everything echoed (then it is closed).
fn serve_conn(rt: &Runtime, fd: i32, out: &mut Vec<u8>, buf: &mut [u8]) -> Result<bool, Errno> {
    let mut eof = false;
    loop {
        match rt.read(fd, buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) => break,
            Err(e) => return Err(e),
        }
    }
    while !out.is_empty() {
        match rt.write(fd, out) {
            Ok(n) => drop(out.drain(..n)),
            // Space coming back raises the signal again (POLL_OUT).
            Err(Errno::EAGAIN) => break,
            Err(e) => return Err(e),
        }
    }
    if eof && out.is_empty() {
        rt.close(fd)?;
        return Ok(true);
    }
    Ok(false)
}

/// Serves until `clients` connections have been accepted and closed;
/// ETIMEDOUT if no signal comes for 5 s. Returns how many signals it took.
pub fn serve(rt: &Runtime, listener: i32, clients: usize) -> Result<u64, Errno> {
    let sig = signal::sigrtmin() + 1;
    // Blocked, so they wait for sigtimedwait (SIGIO's default would end
    // the process). Only this thread is the owner.
    signal::block(&[sig, libc::SIGIO]).map_err(|_| Errno::EINVAL)?;
    make_async(rt, listener, sig)?;
    let mut conns: HashMap<i32, Vec<u8>> = HashMap::new();
    let (mut accepted, mut closed, mut signals) = (0, 0, 0u64);
    let mut buf = vec![0u8; 16384];
    // A connection may have come before O_ASYNC was set: look once first.
    let mut todo: Vec<i32> = vec![listener];
    while closed < clients {
        if todo.is_empty() {
            let got = signal::wait(&[sig, libc::SIGIO], Duration::from_secs(5))
                .map_err(|_| Errno::EINVAL)?
                .ok_or(Errno::ETIMEDOUT)?;
            signals += 1;
            if got.signo == sig {
                todo.push(got.fd);
            } else {
                // SIGIO: the realtime queue overflowed; look at everything.
                todo.push(listener);
                todo.extend(conns.keys());
            }
        }
        while let Some(fd) = todo.pop() {
            if fd == listener {
                loop {
                    match rt.accept4(listener, SOCK_NONBLOCK) {
                        Ok((c, _)) => {
                            accepted += 1;
                            make_async(rt, c, sig)?;
                            conns.insert(c, Vec::new());
                            // Data may have come before O_ASYNC: serve it now.
                            todo.push(c);
                        }
                        Err(Errno::EAGAIN) => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            // A signal for a descriptor already closed is stale: skip it.
            let Some(out) = conns.get_mut(&fd) else {
                continue;
            };
            if serve_conn(rt, fd, out, &mut buf)? {
                conns.remove(&fd);
                closed += 1;
            }
        }
    }
    let _ = accepted;
    Ok(signals)
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
    let signals = server
        .join()
        .map_err(|_| "server panicked")?
        .map_err(|e| e.to_string())?;
    if signals == 0 {
        return Err("the server was never signalled".into());
    }
    Ok(bytes)
}

#[allow(dead_code)]
fn main() {
    common::measure("sigio", run);
}
