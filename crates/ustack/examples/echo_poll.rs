//! A single-threaded echo server multiplexing with poll() (UNP ch. 6's
//! tcpservpoll), non-blocking sockets, on the in-memory network:
//! `cargo run -p ustack --example echo_poll`.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use ustack::posix::*;
use ustack::{Errno, Runtime};

/// Serves until `clients` connections have been accepted and closed.
pub fn serve(rt: &Runtime, listener: i32, clients: usize) -> Result<(), Errno> {
    rt.fcntl(listener, F_SETFL, O_NONBLOCK)?;
    // Bytes accepted but not yet echoed back, per connection.
    let mut pending: HashMap<i32, Vec<u8>> = HashMap::new();
    let (mut accepted, mut closed) = (0, 0);
    let mut buf = [0u8; 4096];
    while closed < clients {
        let mut fds = vec![PollFd::new(listener, POLLIN)];
        fds.extend(
            pending
                .iter()
                .map(|(&fd, out)| PollFd::new(fd, if out.is_empty() { POLLIN } else { POLLOUT })),
        );
        rt.poll(&mut fds, 5000)?;
        for p in fds.iter().filter(|p| p.revents != 0) {
            if p.fd == listener {
                while accepted < clients {
                    match rt.accept4(listener, SOCK_NONBLOCK) {
                        Ok((fd, _)) => {
                            pending.insert(fd, Vec::new());
                            accepted += 1;
                        }
                        Err(Errno::EAGAIN) => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let out = pending.get_mut(&p.fd).expect("polled fds are pending");
            if !out.is_empty() {
                match rt.write(p.fd, out) {
                    Ok(n) => drop(out.drain(..n)),
                    Err(Errno::EAGAIN) => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            match rt.read(p.fd, &mut buf) {
                Ok(0) => {
                    rt.close(p.fd)?;
                    pending.remove(&p.fd);
                    closed += 1;
                }
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => {}
                Err(e) => return Err(e),
            }
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
    server_rt.listen(l, 128).map_err(|e| e.to_string())?;
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
    common::measure("poll", run);
}
