//! `ustack serve ...`: TCP servers on the stack, a thread per connection,
//! running until SIGINT/SIGTERM or `--duration`.
//!
//! The simple services of RFC 862 (echo), 863 (discard) and 864 (chargen)
//! live here; the HTTP file server is in [`crate::http`].

use crate::stats;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ustack::net::{TcpListener, TcpStream};
use ustack::posix::{PollFd, POLLIN};
use ustack::Runtime;

/// What a server serves.
#[derive(Debug, Clone)]
pub enum Service {
    /// Static files under this (canonical) directory.
    Http {
        root: PathBuf,
    },
    Echo,
    Discard,
    Chargen,
}

impl Service {
    fn name(&self) -> &'static str {
        match self {
            Service::Http { .. } => "http",
            Service::Echo => "echo",
            Service::Discard => "discard",
            Service::Chargen => "chargen",
        }
    }
}

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

    fn should_stop(&self) -> bool {
        self.term.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn take_usr1(&self) -> bool {
        self.usr1.swap(false, Ordering::Relaxed)
    }
}

/// Listens on `port` and serves until told to stop.
pub fn run(
    rt: &Runtime,
    local: Ipv4Addr,
    port: u16,
    service: &Service,
    signals: &Signals,
    stats: bool,
) -> Result<(), String> {
    let addr = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    let listener = TcpListener::bind(rt, addr).map_err(|e| {
        if e.raw_os_error() == Some(libc_eaddrinuse()) {
            format!("cannot listen on port {port}: address already in use; choose another --port")
        } else {
            format!("cannot listen on port {port}: {e}")
        }
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    eprintln!(
        "ustack: serving {} on {local}:{port}{}",
        service.name(),
        match service {
            Service::Http { root } => format!(" from {}", root.display()),
            _ => String::new(),
        }
    );
    while !signals.should_stop() {
        if stats && signals.take_usr1() {
            print_stats(rt);
        }
        let mut fds = [PollFd::new(listener.as_raw_fd(), POLLIN)];
        if rt.poll(&mut fds, 100).is_err() || fds[0].revents & POLLIN == 0 {
            continue;
        }
        loop {
            match listener.accept() {
                Ok((stream, _peer)) => {
                    let service = service.clone();
                    let spawned = std::thread::Builder::new()
                        .name(format!("{}-conn", service.name()))
                        .spawn(move || serve_one(stream, &service));
                    if let Err(e) = spawned {
                        eprintln!("ustack: cannot start a connection thread: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("ustack: accept: {e}");
                    break;
                }
            }
        }
    }
    // While the listener is still open, so the table shows it.
    if stats {
        print_stats(rt);
    }
    Ok(())
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

fn serve_one(stream: TcpStream, service: &Service) {
    match service {
        Service::Http { root } => crate::http::serve(stream, root),
        Service::Echo => echo(stream),
        Service::Discard => discard(stream),
        Service::Chargen => chargen(stream),
    }
}

/// RFC 862: everything back, until the client's FIN; then the rest of the
/// echo and our FIN.
fn echo(s: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match (&s).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if (&s).write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    let _ = s.shutdown(Shutdown::Write);
}

/// RFC 863: read and throw away until the client closes.
fn discard(s: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match (&s).read(&mut buf) {
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
fn chargen(s: TcpStream) {
    let cycle = chargen_cycle();
    while (&s).write_all(&cycle).is_ok() {}
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
