//! Shared by the server examples (`server_*.rs`, `thundering_herd.rs`): a
//! tiny request/response protocol, the per-connection work of an epoll
//! loop, and a client load that checks every response byte for byte.
//!
//! The protocol: a request is [`REQ`] bytes; its response is the same
//! number of bytes, each request byte plus one (so an echo would fail).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use ustack::epoll::*;
use ustack::net::TcpStream;
use ustack::posix::*;
use ustack::{Errno, Runtime};

pub const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const PORT: u16 = 8080;
/// Request and response size.
pub const REQ: usize = 64;
/// How long a loop's `epoll_wait` sleeps before it looks at its stop flag.
pub const TICK_MS: i32 = 20;

pub fn server_addr() -> SocketAddrV4 {
    SocketAddrV4::new(SERVER, PORT)
}

/// The response to one request.
pub fn respond(req: &[u8]) -> Vec<u8> {
    req.iter().map(|b| b.wrapping_add(1)).collect()
}

/// Request `r` of client `id`.
pub fn request(id: usize, r: usize) -> [u8; REQ] {
    std::array::from_fn(|i| (id * 31 + r * 7 + i) as u8)
}

/// A non-blocking listening socket on [`server_addr`]; `reuseport` sets
/// SO_REUSEPORT before bind, so several may share the port.
pub fn listener(rt: &Runtime, reuseport: bool) -> Result<i32, Errno> {
    let l = rt.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)?;
    if reuseport {
        rt.setsockopt(l, SOL_SOCKET, SO_REUSEPORT, OptVal::Int(1))?;
    }
    rt.bind(l, server_addr())?;
    rt.listen(l, 1024)?;
    Ok(l)
}

/// One connection's buffers: a partial request, responses not yet sent.
#[derive(Default)]
struct Conn {
    inb: Vec<u8>,
    out: Vec<u8>,
    /// EPOLLOUT is in the interest set (only while `out` is not empty).
    want_out: bool,
}

/// What one loop did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoopStats {
    pub accepted: u64,
    pub requests: u64,
}

/// An epoll loop (level-triggered): accepts on `listener` if it has one,
/// serves every connection its epoll `ep` reports — including those
/// another thread adds to `ep` — until `stop` is set.
pub fn serve_loop(
    rt: &Runtime,
    ep: i32,
    listener: Option<i32>,
    stop: &AtomicBool,
) -> Result<LoopStats, Errno> {
    if let Some(l) = listener {
        rt.epoll_ctl(
            ep,
            EPOLL_CTL_ADD,
            l,
            Some(EpollEvent::new(EPOLLIN, l as u64)),
        )?;
    }
    let mut conns: HashMap<i32, Conn> = HashMap::new();
    let mut st = LoopStats::default();
    let mut events = vec![EpollEvent::new(0, 0); 256];
    let mut buf = vec![0u8; 16384];
    while !stop.load(Ordering::Acquire) {
        let n = rt.epoll_wait(ep, &mut events, TICK_MS)?;
        for ev in &events[..n] {
            let fd = ev.data as i32;
            if Some(fd) == listener {
                // Several may be queued: take them all now.
                loop {
                    match rt.accept4(fd, SOCK_NONBLOCK) {
                        Ok((c, _)) => {
                            st.accepted += 1;
                            add_conn(rt, ep, c)?;
                        }
                        Err(Errno::EAGAIN) => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let c = conns.entry(fd).or_default();
            if service(rt, ep, fd, c, &mut buf, &mut st.requests)? {
                rt.close(fd)?;
                conns.remove(&fd);
            }
        }
    }
    for fd in conns.into_keys() {
        let _ = rt.close(fd);
    }
    Ok(st)
}

/// Watches a new connection from `ep` (data = its fd).
pub fn add_conn(rt: &Runtime, ep: i32, c: i32) -> Result<(), Errno> {
    rt.epoll_ctl(
        ep,
        EPOLL_CTL_ADD,
        c,
        Some(EpollEvent::new(EPOLLIN | EPOLLRDHUP, c as u64)),
    )
}

/// Reads what is there, answers every whole request, writes until
/// EAGAIN. Returns whether the connection is done (peer closed, all sent).
fn service(
    rt: &Runtime,
    ep: i32,
    fd: i32,
    c: &mut Conn,
    buf: &mut [u8],
    served: &mut u64,
) -> Result<bool, Errno> {
    let mut eof = false;
    // Bounded: a level-triggered loop comes back for the rest.
    for _ in 0..16 {
        match rt.read(fd, buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(k) => c.inb.extend_from_slice(&buf[..k]),
            Err(Errno::EAGAIN) => break,
            Err(Errno::ECONNRESET) => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    let whole = c.inb.len() / REQ * REQ;
    for req in c.inb[..whole].chunks(REQ) {
        c.out.extend(respond(req));
        *served += 1;
    }
    c.inb.drain(..whole);
    while !c.out.is_empty() {
        match rt.write(fd, &c.out) {
            Ok(k) => drop(c.out.drain(..k)),
            Err(Errno::EAGAIN) => break,
            Err(Errno::EPIPE | Errno::ECONNRESET) => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    let want_out = !c.out.is_empty();
    if want_out != c.want_out {
        let mut interest = EPOLLIN | EPOLLRDHUP;
        if want_out {
            interest |= EPOLLOUT;
        }
        rt.epoll_ctl(
            ep,
            EPOLL_CTL_MOD,
            fd,
            Some(EpollEvent::new(interest, fd as u64)),
        )?;
        c.want_out = want_out;
    }
    Ok(eof && c.out.is_empty())
}

/// The client load: `clients` threads, each making `requests` requests,
/// all on one connection (`keepalive`) or each on its own (connect, one
/// request, close). Every response is checked. Returns the requests done
/// and the time they took.
pub fn load(
    rt: &Runtime,
    clients: usize,
    requests: usize,
    keepalive: bool,
) -> Result<(u64, Duration), String> {
    let t0 = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|id| {
            let rt = rt.clone();
            std::thread::spawn(move || -> Result<u64, String> {
                let connect = || {
                    TcpStream::connect(&rt, server_addr())
                        .map_err(|e| format!("client {id}: connect: {e}"))
                };
                let mut s = if keepalive { Some(connect()?) } else { None };
                let mut back = [0u8; REQ];
                for r in 0..requests {
                    let mut short = None;
                    let conn = match s.as_mut() {
                        Some(c) => c,
                        None => short.insert(connect()?),
                    };
                    let req = request(id, r);
                    conn.write_all(&req)
                        .map_err(|e| format!("client {id}: write: {e}"))?;
                    conn.read_exact(&mut back)
                        .map_err(|e| format!("client {id}: read: {e}"))?;
                    if back[..] != respond(&req)[..] {
                        return Err(format!("client {id}: request {r}: wrong response"));
                    }
                }
                Ok(requests as u64)
            })
        })
        .collect();
    let mut total = 0;
    for t in threads {
        total += t
            .join()
            .map_err(|_| "client thread panicked".to_string())??;
    }
    Ok((total, t0.elapsed()))
}

/// Requests per second, rounded.
pub fn rate(n: u64, d: Duration) -> u64 {
    (n as f64 / d.as_secs_f64().max(1e-9)) as u64
}

/// `name value` pairs from the command line (`--clients 64`), else `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
