//! An echo server on the completion API (the Proactor, io_uring's
//! shape): one thread submits accepts, recvs, sends and closes, each
//! carrying its buffer, and reaps their completions. A received buffer
//! is sent back as it is (moved, zero-copy: the stack sends from it until
//! ACKed); a fresh one is posted for the next request at once, so the
//! request lands in it straight from the frame. On the in-memory
//! network: `cargo run -p ustack --example echo_proactor`.

#[path = "common/mod.rs"]
pub mod common;

use std::time::Duration;
use ustack::posix::*;
use ustack::proactor::{Cqe, Op, Proactor, Sqe};
use ustack::{Errno, Runtime};

const BUF: usize = 16 * 1024;
const ACCEPT: u64 = 1;
const RECV: u64 = 2;
const SEND: u64 = 3;
const CLOSE: u64 = 4;

fn ud(fd: i32, kind: u64) -> u64 {
    (fd as u64) << 8 | kind
}

/// Queues `sqe`, submitting (and so making room) when the queue is full.
fn push(p: &mut Proactor, sqe: Sqe<i32>) -> Result<(), Errno> {
    let mut sqe = sqe;
    for _ in 0..1000 {
        match p.push(sqe) {
            Ok(()) => return Ok(()),
            Err(back) => {
                sqe = back;
                p.submit()?;
            }
        }
    }
    Err(Errno::EBUSY)
}

/// Serves until `clients` connections have been accepted and closed.
/// Returns the bytes echoed.
pub fn serve(rt: &Runtime, listener: i32, clients: usize) -> Result<u64, Errno> {
    let mut p = Proactor::new(rt, 256, 1024);
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let (mut accepted, mut closed, mut echoed) = (0, 0, 0u64);
    push(
        &mut p,
        Sqe::new(ud(listener, ACCEPT), Op::Accept { sock: listener }),
    )?;
    while closed < clients {
        match p.submit() {
            Ok(_) | Err(Errno::EBUSY) => {}
            Err(e) => return Err(e),
        }
        let mut c: Cqe<i32> = p.wait_one(Some(Duration::from_secs(5)))?;
        let fd = (c.user_data >> 8) as i32;
        match c.user_data & 0xff {
            ACCEPT => {
                let conn = c.accepted.ok_or(c.result.err().unwrap_or(Errno::EINVAL))?;
                accepted += 1;
                let buf = pool.pop().unwrap_or_else(|| vec![0; BUF]);
                push(&mut p, Sqe::new(ud(conn, RECV), recv(conn, buf)))?;
                if accepted < clients {
                    push(
                        &mut p,
                        Sqe::new(ud(listener, ACCEPT), Op::Accept { sock: listener }),
                    )?;
                }
            }
            RECV => {
                let n = c.result?;
                let mut buf = c.take_vec().ok_or(Errno::EINVAL)?;
                if n == 0 {
                    pool.push(buf);
                    push(&mut p, Sqe::new(ud(fd, CLOSE), Op::Close { sock: fd }))?;
                    continue;
                }
                // The request goes back in the buffer it arrived in; the
                // next one lands in another.
                buf.truncate(n);
                push(&mut p, Sqe::new(ud(fd, SEND), Op::send(fd, buf)))?;
                let next = pool.pop().unwrap_or_else(|| vec![0; BUF]);
                push(&mut p, Sqe::new(ud(fd, RECV), recv(fd, next)))?;
            }
            SEND => {
                echoed += c.result? as u64;
                let mut buf = c.take_vec().ok_or(Errno::EINVAL)?;
                buf.resize(BUF, 0);
                pool.push(buf);
            }
            CLOSE => {
                c.result?;
                closed += 1;
            }
            _ => return Err(Errno::EINVAL),
        }
    }
    Ok(echoed)
}

fn recv(sock: i32, buf: Vec<u8>) -> Op<i32> {
    Op::Recv {
        sock,
        buf,
        waitall: false,
    }
}

/// `clients` clients each send `rounds` messages of `size` bytes to the
/// proactor server and check every echo. Returns the bytes echoed.
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
    let served = server
        .join()
        .map_err(|_| "server panicked")?
        .map_err(|e| e.to_string())?;
    if served != bytes {
        return Err(format!("server echoed {served} bytes, clients got {bytes}"));
    }
    Ok(bytes)
}

#[allow(dead_code)]
fn main() {
    common::init_logging();
    let (clients, rounds, size) = (32, 50, 1000);
    let start = std::time::Instant::now();
    match run(clients, rounds, size) {
        Ok(bytes) => {
            let secs = start.elapsed().as_secs_f64();
            println!(
                "model=proactor requests/s={} bytes/s={}",
                ((clients * rounds) as f64 / secs) as u64,
                (bytes as f64 / secs) as u64
            );
        }
        Err(e) => {
            eprintln!("echo_proactor: {e}");
            std::process::exit(1);
        }
    }
}
