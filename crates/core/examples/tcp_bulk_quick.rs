//! Rough bulk-transfer throughput between two stacks in one process
//! (the real benchmark with a smoltcp peer lives in crates/bench).
use std::net::SocketAddrV4;
use ustack_core::wire::{ChecksumCaps, Ipv4Addr, Ipv4Cidr};
use ustack_core::{Errno, Instant, Medium, Stack, StackConfig};

fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .map_or(1 << 30, |s| s.parse().unwrap());
    let offload = std::env::args().nth(2).is_some();
    let a_ip = Ipv4Addr::new(10, 0, 0, 1);
    let b_ip = Ipv4Addr::new(10, 0, 0, 2);
    let mk = |ip, seed| {
        let mut c = StackConfig::new(Medium::Ip, Ipv4Cidr::new(ip, 24)).with_seed(seed);
        if offload {
            c = c.with_checksums(ChecksumCaps::OFFLOAD);
        }
        c.tcp.sndbuf = 256 * 1024;
        c.tcp.rcvbuf = 256 * 1024;
        Stack::new(c).unwrap()
    };
    let (mut a, mut b) = (mk(a_ip, 1), mk(b_ip, 2));
    let l = b.tcp_open();
    b.tcp_bind(l, SocketAddrV4::new(b_ip, 80)).unwrap();
    b.tcp_listen(l, 1).unwrap();
    let c = a.tcp_open();
    let now = Instant::from_secs(1);
    let _ = a.tcp_connect(now, c, SocketAddrV4::new(b_ip, 80));
    let mut frame = vec![0u8; 2048];
    let mut s = None;
    let chunk = vec![7u8; 64 * 1024];
    let mut rbuf = vec![0u8; 64 * 1024];
    let (mut sent, mut got, mut frames) = (0usize, 0usize, 0u64);
    let start = std::time::Instant::now();
    while got < total {
        while sent < total {
            match a.tcp_send(now, c, &chunk[..chunk.len().min(total - sent)]) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => break,
                Err(e) => panic!("{e}"),
            }
        }
        while let Some(n) = a.transmit(now, &mut frame) {
            b.receive(now, &frame[..n]);
            frames += 1;
        }
        while let Some(n) = b.transmit(now, &mut frame) {
            a.receive(now, &frame[..n]);
            frames += 1;
        }
        if s.is_none() {
            s = b.tcp_accept(l).ok().map(|x| x.0);
        }
        if let Some(h) = s {
            while let Ok(n) = b.tcp_recv(h, &mut rbuf) {
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} bytes in {secs:.3} s: {:.2} Gbps, {frames} frames (offload: {offload})",
        got,
        got as f64 * 8.0 / secs / 1e9
    );
}
