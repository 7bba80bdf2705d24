//! Bulk TCP through ustack-tokio against the blocking `ustack::net` API,
//! same stacks, same in-memory link, same run: what the async layer
//! (wakers, the non-blocking call and retry) costs.
//!
//! Each round sends `--bytes` from host a to host b on a fresh connection,
//! once with blocking threads and once with tokio tasks (a current-thread
//! and a multi-thread runtime, alternating), 256 KiB per call; then once
//! more on a current-thread runtime whose tasks also drive both stacks
//! (`Mode::External` + `ustack_tokio::drive`, no stack threads). The
//! figure is the median of `--rounds`.

use clap::Parser;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::Runtime;

#[derive(Parser, Debug)]
#[command(about = "Bulk TCP: ustack-tokio vs the blocking API, in-memory link")]
struct Args {
    /// Bytes per transfer.
    #[arg(long, default_value_t = 256 << 20)]
    bytes: u64,
    /// Transfers per mode.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CHUNK: usize = 256 * 1024;

fn blocking(a: &Runtime, b: &Runtime, port: u16, bytes: u64) -> f64 {
    let l = ustack::net::TcpListener::bind(b, (B, port)).unwrap();
    let rx = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        loop {
            match s.read(&mut buf).unwrap() {
                0 => break,
                n => got += n as u64,
            }
        }
        got
    });
    let mut c = ustack::net::TcpStream::connect(a, (B, port)).unwrap();
    let buf = vec![7u8; CHUNK];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        c.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let got = rx.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got, bytes);
    ustack_bench::gbps(bytes, secs)
}

async fn async_transfer(a: &Runtime, b: &Runtime, port: u16, bytes: u64) -> f64 {
    let l = ustack_tokio::TcpListener::bind(b, (B, port)).await.unwrap();
    let rx = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        loop {
            match s.read(&mut buf).await.unwrap() {
                0 => break,
                n => got += n as u64,
            }
        }
        got
    });
    let mut c = ustack_tokio::TcpStream::connect(a, (B, port))
        .await
        .unwrap();
    let buf = vec![7u8; CHUNK];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        c.write_all(&buf[..n]).await.unwrap();
        left -= n as u64;
    }
    c.shutdown().await.unwrap();
    let got = rx.await.unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(got, bytes);
    ustack_bench::gbps(bytes, secs)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    let (a, b) = ustack::memnet::pair().expect("two runtimes on the in-memory link");
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    // Two more hosts, driven by tasks on their own current-thread runtime.
    let net = ustack::memnet::MemNet::new(2, ustack_devices::Impairments::none());
    let ra = net
        .host(Ipv4Addr::new(10, 0, 0, 1), ustack::Mode::External)
        .unwrap();
    let rb = net.host(B, ustack::Mode::External).unwrap();
    let reactor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    reactor.spawn(ustack_tokio::drive(ra.clone()));
    reactor.spawn(ustack_tokio::drive(rb.clone()));
    let mut rea = Vec::new();
    let (mut blk, mut cur, mut mul) = (Vec::new(), Vec::new(), Vec::new());
    let mut port = 6000;
    for round in 0..args.rounds {
        port += 3;
        blk.push(blocking(&a, &b, port, args.bytes));
        cur.push(current.block_on(async_transfer(&a, &b, port + 1, args.bytes)));
        mul.push(multi.block_on(async_transfer(&a, &b, port + 2, args.bytes)));
        rea.push(reactor.block_on(async_transfer(&ra, &rb, port, args.bytes)));
        eprintln!(
            "round {round}: blocking {:.2} Gbps, tokio current-thread {:.2}, tokio multi-thread {:.2}, reactor-driven {:.2}",
            blk[round], cur[round], mul[round], rea[round]
        );
    }
    let (b0, c0, m0, r0) = (
        median(&mut blk),
        median(&mut cur),
        median(&mut mul),
        median(&mut rea),
    );
    println!(
        "bulk {} MiB x{} (median Gbps): blocking {b0:.2}, tokio current-thread {c0:.2} ({:.2}x), tokio multi-thread {m0:.2} ({:.2}x), reactor-driven current-thread {r0:.2} ({:.2}x)",
        args.bytes >> 20,
        args.rounds,
        c0 / b0,
        m0 / b0,
        r0 / b0
    );
}
