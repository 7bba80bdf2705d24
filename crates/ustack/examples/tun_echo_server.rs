//! A TCP echo server (RFC 862) on a TUN device, with the `ustack` crate
//! alone; the README's "Use ustack in your program" shows `serve`.
//!
//! ```sh
//! sudo cargo run -p ustack --example tun_echo_server -- [IFNAME]   # default ustk0
//! echo hello | nc -N 10.202.0.2 7                                  # from another shell
//! ```
//!
//! Log with RUST_LOG (e.g. RUST_LOG=debug) or -v.

#[path = "common/mod.rs"]
mod common;

use std::io::{Read, Write};
use ustack::net::TcpListener;
use ustack::{KernelIf, Medium, Mode, NetNs, Runtime, StackConfig, TunOptions};

/// Puts ustack at 10.202.0.2 on TUN device `name` (the kernel's side gets
/// 10.202.0.1/24) and echoes `clients` connections, one after another.
pub fn serve(name: &str, netns: Option<&NetNs>, clients: usize) -> std::io::Result<()> {
    let mut tun = TunOptions::new(name);
    if let Some(ns) = netns {
        tun = tun.netns(ns.path());
    }
    let tun = tun.open_tun()?; // needs root or CAP_NET_ADMIN
    KernelIf::new(name, "10.202.0.1/24".parse().unwrap()).apply(netns)?;
    let cfg = StackConfig::new(Medium::Ip, "10.202.0.2/24".parse().unwrap())
        .with_seed(ustack::os_seed()?);
    let rt = Runtime::with_config(cfg, tun, Mode::Thread)?;
    let listener = TcpListener::bind(&rt, "10.202.0.2:7")?;
    println!("echo server at 10.202.0.2:7 on {name}");
    for conn in listener.incoming().take(clients) {
        let mut conn = conn?;
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf)? {
                0 => break,
                n => conn.write_all(&buf[..n])?,
            }
        }
    }
    Ok(())
}

#[allow(dead_code)]
fn main() {
    common::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args
        .iter()
        .find(|a| *a != "-v")
        .map_or("ustk0", |a| a.as_str());
    if let Err(e) = serve(name, None, usize::MAX) {
        eprintln!("tun_echo_server: {e}");
        std::process::exit(1);
    }
}
