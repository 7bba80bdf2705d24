//! A non-blocking connect (UNP ch. 16's connect_nonb): connect returns
//! EINPROGRESS, the socket turns writable when the handshake ends, and
//! SO_ERROR says how it ended. On the in-memory network:
//! `cargo run -p ustack --example connect_async`.

#[path = "common/mod.rs"]
mod common;

use std::net::SocketAddrV4;
use std::time::Duration;
use ustack::posix::*;
use ustack::{Errno, OptVal, Runtime};

/// Connects without blocking and waits (with poll) up to `timeout`.
/// Returns `Ok(())`, or the errno SO_ERROR gave (ETIMEDOUT if time ran out).
pub fn connect_nonb(rt: &Runtime, to: SocketAddrV4, timeout: Duration) -> Result<i32, Errno> {
    let fd = rt.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)?;
    match rt.connect(fd, to) {
        Ok(()) => return Ok(fd),
        Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let mut p = [PollFd::new(fd, POLLOUT)];
    if rt.poll(&mut p, timeout.as_millis() as i32)? == 0 {
        rt.close(fd)?;
        return Err(Errno::ETIMEDOUT);
    }
    match rt.getsockopt(fd, SOL_SOCKET, SO_ERROR)? {
        OptVal::Int(0) => Ok(fd),
        OptVal::Int(e) => {
            rt.close(fd)?;
            Err(Errno::from_raw(e).unwrap_or(Errno::EINVAL))
        }
        _ => Err(Errno::EINVAL),
    }
}

/// Three attempts: an open port, a closed port, a host that never answers.
pub fn run() -> Result<[Result<(), Errno>; 3], String> {
    let net = ustack::memnet::MemNet::new(1, ustack_devices::Impairments::none());
    let client = net
        .host(std::net::Ipv4Addr::new(10, 0, 0, 1), ustack::Mode::Thread)
        .map_err(|e| e.to_string())?;
    let server = net
        .host(common::SERVER, ustack::Mode::Thread)
        .map_err(|e| e.to_string())?;
    let l = server
        .socket(AF_INET, SOCK_STREAM, 0)
        .map_err(|e| e.to_string())?;
    server
        .bind(l, common::server_addr())
        .map_err(|e| e.to_string())?;
    server.listen(l, 8).map_err(|e| e.to_string())?;
    let t = Duration::from_millis(1500);
    let open = connect_nonb(&client, common::server_addr(), t).map(|_| ());
    let closed = connect_nonb(&client, SocketAddrV4::new(common::SERVER, 9), t).map(|_| ());
    let silent = connect_nonb(
        &client,
        SocketAddrV4::new(std::net::Ipv4Addr::new(10, 0, 0, 99), 80),
        t,
    )
    .map(|_| ());
    Ok([open, closed, silent])
}

#[allow(dead_code)]
fn main() {
    common::init_logging();
    match run() {
        Ok(r) => {
            let show = |r: &Result<(), Errno>| match r {
                Ok(()) => "connected".to_string(),
                Err(e) => e.name().to_string(),
            };
            println!("connect_async: open port: {}", show(&r[0]));
            println!("connect_async: closed port: {}", show(&r[1]));
            println!("connect_async: silent host (1.5 s limit): {}", show(&r[2]));
        }
        Err(e) => {
            eprintln!("connect_async: {e}");
            std::process::exit(1);
        }
    }
}
