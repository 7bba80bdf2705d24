//! A half-close client (UNP ch. 6's str_cli with shutdown): send
//! everything, shutdown(SHUT_WR), then read the reply to EOF. The server
//! only answers once it has read EOF. On the in-memory network:
//! `cargo run -p ustack --example halfclose`.

#[path = "common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use ustack::net::{TcpListener, TcpStream};

/// Sends `data`, half-closes, and returns the server's reply (its count of
/// bytes received and their sum).
pub fn run(data: &[u8]) -> Result<String, String> {
    let (client_rt, server_rt) = ustack::memnet::pair().map_err(|e| e.to_string())?;
    let listener =
        TcpListener::bind(&server_rt, common::server_addr()).map_err(|e| e.to_string())?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        let mut got = Vec::new();
        s.read_to_end(&mut got)?; // returns at the client's FIN
        let sum: u64 = got.iter().map(|&b| u64::from(b)).sum();
        s.write_all(format!("{} bytes, sum {sum}\n", got.len()).as_bytes())?;
        Ok(()) // dropping `s` closes: the client reads EOF
    });
    let mut c = TcpStream::connect(&client_rt, common::server_addr()).map_err(|e| e.to_string())?;
    c.write_all(data).map_err(|e| e.to_string())?;
    c.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut reply = String::new();
    c.read_to_string(&mut reply).map_err(|e| e.to_string())?;
    server
        .join()
        .map_err(|_| "server panicked")?
        .map_err(|e| e.to_string())?;
    Ok(reply)
}

#[allow(dead_code)]
fn main() {
    common::init_logging();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    match run(&data) {
        Ok(reply) => print!(
            "halfclose: sent {} bytes, then FIN; server replied: {reply}",
            data.len()
        ),
        Err(e) => {
            eprintln!("halfclose: {e}");
            std::process::exit(1);
        }
    }
}
