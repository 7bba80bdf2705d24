//! `ustack serve ...`: TCP servers on the stack, running until
//! SIGINT/SIGTERM or `--duration`.
//!
//! Every service runs on ustack-tokio in one thread: a current-thread
//! tokio runtime whose tasks are the connections and the stack's driver
//! (`ustack_tokio::drive`: the device's fd on tokio's reactor, the stack's
//! timers on tokio's), so a frame that arrives is taken in, and the task
//! it makes ready runs, on the thread that woke for it — no hand-off
//! between threads. One thread however many clients come; past
//! `--max-connections` a new connection is closed at once. (A stack thread
//! and a multi-thread runtime measured half the requests/s at 10
//! connections: two hand-offs per request; see BENCHMARKS.md.) Nothing here
//! blocks for long: files are read a 64 KiB chunk at a time.
//!
//! The simple services of RFC 862 (echo), 863 (discard) and 864 (chargen)
//! live here; the HTTP file server is in [`crate::http`].

use crate::http::HttpConfig;
use crate::stats;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::Runtime;
use ustack_tokio::{TcpListener, TcpStream};

/// What a server serves.
#[derive(Debug, Clone)]
pub enum Service {
    /// Static files.
    Http(Arc<HttpConfig>),
    Echo,
    Discard,
    Chargen,
}

impl Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Http(_) => "http",
            Service::Echo => "echo",
            Service::Discard => "discard",
            Service::Chargen => "chargen",
        }
    }
}

/// How often the accept loop looks at the signal flags.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// When to stop, and when to print the stats: flags the signal handlers set
/// and the serve loop checks.
pub struct Signals {
    term: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl Signals {
    /// Catches SIGINT and SIGTERM (a second one ends the process at once)
    /// and SIGUSR1.
    pub fn install(duration: Option<Duration>) -> io::Result<Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
        use signal_hook::flag;
        let term = Arc::new(AtomicBool::new(false));
        let usr1 = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            // Registered first, so it sees the flag as the previous signal left it.
            flag::register_conditional_shutdown(sig, 1, term.clone())?;
            flag::register(sig, term.clone())?;
        }
        flag::register(SIGUSR1, usr1.clone())?;
        Ok(Signals {
            term,
            usr1,
            deadline: duration.map(|d| Instant::now() + d),
        })
    }

    pub(crate) fn should_stop(&self) -> bool {
        self.term.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    pub(crate) fn take_usr1(&self) -> bool {
        self.usr1.swap(false, Ordering::Relaxed)
    }
}

/// Listens on `port` and serves until told to stop, with at most
/// `max_connections` connections open at once.
#[allow(clippy::too_many_arguments)]
pub fn run(
    rt: &Runtime,
    local: Ipv4Addr,
    local6: Option<Ipv6Addr>,
    port: u16,
    service: &Service,
    signals: &Signals,
    stats: bool,
    max_connections: usize,
) -> Result<(), String> {
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        // Nothing here blocks on purpose; keep the pool from growing anyway.
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    tokio_rt.block_on(accept_loop(
        rt,
        local,
        local6,
        port,
        service,
        signals,
        stats,
        max_connections,
    ))
}

/// `--queues N`: N stacks on N queues of a multiqueue TUN, each served
/// by [`run`] on its own thread (pinned where allowed), every stack
/// listening on `port` (REUSEPORT across stacks: a connection is served by
/// the stack whose queue its SYN came in on). `max_connections` is shared
/// out evenly. `stats`: every stack's, at exit, each under a
/// `== stack I of N ==` line.
pub fn run_group(
    link: &crate::link::LinkArgs,
    port: u16,
    service: &Service,
    signals: &Signals,
    stats: bool,
    max_connections: usize,
) -> Result<(), String> {
    let group = link.start_group("serve", ustack::Mode::External)?;
    let n = group.len();
    let per_stack = max_connections.div_ceil(n).max(1);
    let local = link.addr().address();
    let local6 = link.addr6.map(|a| a.address());
    let cpus = ustack::ustack_devices::affinity::allowed_cpus();
    eprintln!(
        "ustack: {n} stacks on {n} queues of {}, one thread each, pinned where allowed to CPUs {:?}",
        link.tun.as_deref().unwrap_or("?"),
        (0..n)
            .map(|i| cpus.get(i % cpus.len().max(1)))
            .collect::<Vec<_>>()
    );
    // Each loop prints nothing itself: the stacks' stats come at exit,
    // one section per stack (SIGUSR1 prints nothing with several stacks).
    let results = group.run_per_stack(true, |_, rt| {
        run(rt, local, local6, port, service, signals, false, per_stack)
    });
    if stats {
        let mut out = io::stdout().lock();
        for (i, rt) in group.stacks().iter().enumerate() {
            let _ = writeln!(out, "== stack {i} of {n} ==");
            let _ = out.write_all(stats::render(rt).as_bytes());
        }
        let _ = out.flush();
    }
    results.into_iter().collect()
}

#[allow(clippy::too_many_arguments)]
async fn accept_loop(
    rt: &Runtime,
    local: Ipv4Addr,
    local6: Option<Ipv6Addr>,
    port: u16,
    service: &Service,
    signals: &Signals,
    stats: bool,
    max_connections: usize,
) -> Result<(), String> {
    // The stack's driver (a runtime with a stack thread needs none).
    if rt.mode() == ustack::Mode::External {
        let driver = rt.clone();
        tokio::spawn(async move {
            if let Err(e) = ustack_tokio::drive(driver).await {
                eprintln!("ustack: the stack's driver stopped: {e}");
            }
        });
    }
    // With an IPv6 address, one dual-stack listener for both versions
    // (RFC 3493 §5.3: IPV6_V6ONLY off, IPv4 peers v4-mapped).
    let addr = match local6 {
        Some(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
    };
    let listener = TcpListener::bind(rt, addr).await.map_err(|e| {
        if e.raw_os_error() == Some(libc_eaddrinuse()) {
            format!("cannot listen on port {port}: address already in use; choose another --port")
        } else {
            format!("cannot listen on port {port}: {e}")
        }
    })?;
    let on6 = local6.map_or(String::new(), |a| format!(" and [{a}]:{port}"));
    eprintln!(
        "ustack: serving {} on {local}:{port}{on6}{}",
        service.name(),
        match service {
            Service::Http(cfg) => format!(" from {}", cfg.root.display()),
            _ => String::new(),
        }
    );
    let open = Arc::new(AtomicUsize::new(0));
    let mut tick = tokio::time::interval(SIGNAL_CHECK);
    while !signals.should_stop() {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = tick.tick() => {
                if stats && signals.take_usr1() {
                    print_stats(rt);
                }
                continue;
            }
        };
        let stream = match accepted {
            Ok((s, _peer)) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("ustack: accept: {e}");
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= max_connections {
            // Over the limit: closed at once (the client sees a FIN).
            drop(stream);
            continue;
        }
        let guard = Open::new(open.clone());
        let service = service.clone();
        tokio::spawn(async move {
            serve_one(stream, &service).await;
            drop(guard);
        });
    }
    // While the listener is still open, so the table shows it.
    if stats {
        print_stats(rt);
    }
    Ok(())
}

/// One open connection, counted while it lives.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(n: Arc<AtomicUsize>) -> Open {
        n.fetch_add(1, Ordering::Relaxed);
        Open(n)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn libc_eaddrinuse() -> i32 {
    ustack::errno::Errno::EADDRINUSE.raw()
}

/// Prints the stats to stdout, at once.
pub fn print_stats(rt: &Runtime) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(stats::render(rt).as_bytes());
    let _ = out.flush();
}

async fn serve_one(stream: TcpStream, service: &Service) {
    match service {
        Service::Http(cfg) => crate::http::serve(stream, cfg.clone()).await,
        Service::Echo => echo(stream).await,
        Service::Discard => discard(stream).await,
        Service::Chargen => chargen(stream).await,
    }
}

/// RFC 862: everything back, until the client's FIN; then the rest of the
/// echo and our FIN. TCP_NODELAY: an echo is interactive, and Nagle would
/// hold a small echo written while an earlier small one is unacknowledged
/// until the client's (possibly delayed) ACK.
async fn echo(mut s: TcpStream) {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    let _ = s.shutdown().await;
}

/// RFC 863: read and throw away until the client closes.
async fn discard(mut s: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// One full cycle of RFC 864's pattern: 95 lines of 72 printable characters,
/// each starting one character further along, CR LF after each.
fn chargen_cycle() -> Vec<u8> {
    let chars: Vec<u8> = (b' '..=b'~').collect();
    let mut out = Vec::with_capacity(chars.len() * 74);
    for start in 0..chars.len() {
        out.extend((0..72).map(|i| chars[(start + i) % chars.len()]));
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// RFC 864: send the pattern until the client goes away (what it sends is ignored).
async fn chargen(mut s: TcpStream) {
    let cycle = chargen_cycle();
    while s.write_all(&cycle).await.is_ok() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chargen_lines_rotate_through_the_printable_characters() {
        let c = chargen_cycle();
        assert_eq!(c.len(), 95 * 74);
        let lines: Vec<&[u8]> = c.split(|&b| b == b'\n').collect();
        assert_eq!(&lines[0][..5], b" !\"#$");
        assert_eq!(&lines[1][..5], b"!\"#$%");
        assert!(lines[..95].iter().all(|l| l.len() == 73 && l[72] == b'\r'));
    }
}
