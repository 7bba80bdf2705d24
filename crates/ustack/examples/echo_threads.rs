//! A blocking echo server with a thread per connection (UNP's str_echo with
//! fork, in threads), on the in-memory network: `cargo run -p ustack --example echo_threads`.

#[path = "common/mod.rs"]
mod common;

use std::io::{Read, Write};
use ustack::net::TcpListener;

/// Serves until `clients` connections have come and gone.
pub fn serve(listener: TcpListener, clients: usize) -> std::io::Result<()> {
    let mut workers = Vec::new();
    for _ in 0..clients {
        let (mut s, _peer) = listener.accept()?;
        workers.push(std::thread::spawn(move || -> std::io::Result<()> {
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf)? {
                    0 => return Ok(()),
                    n => s.write_all(&buf[..n])?,
                }
            }
        }));
    }
    for w in workers {
        w.join().expect("worker")?;
    }
    Ok(())
}

pub fn run(clients: usize, rounds: usize, size: usize) -> Result<u64, String> {
    let (client_rt, server_rt) = ustack::memnet::pair().map_err(|e| e.to_string())?;
    let listener =
        TcpListener::bind(&server_rt, common::server_addr()).map_err(|e| e.to_string())?;
    let server = std::thread::spawn(move || serve(listener, clients));
    let bytes = common::echo_clients(&client_rt, clients, rounds, size)?;
    server
        .join()
        .map_err(|_| "server panicked")?
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

#[allow(dead_code)]
fn main() {
    common::measure("blocking", run);
}
