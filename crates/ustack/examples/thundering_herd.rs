//! The thundering herd: N threads, each blocked in `epoll_wait` on its own
//! epoll instance, all watching one listening socket (Linux's herd: every
//! epoll that watches the listener is told of a new connection). Clients
//! connect one at a time; every return of `epoll_wait` with an event is a
//! wake-up, and each wake-up tries one accept (EAGAIN: someone else got
//! it). Without `EPOLLEXCLUSIVE` a connection wakes every thread that gets
//! to look before the first one accepted; with it, one.
//!
//! A woken thread holds `hold` before it accepts, as a server busy with
//! what else its wake-up brought would. With no hold, on a machine with
//! fewer cores than threads the first woken thread usually accepts before
//! the others run, and since `epoll_wait` re-checks readiness before it
//! reports (ustack's collect, Linux's `ep_send_events`), the late ones go
//! back to sleep unseen: the herd is there but not visible.
//!
//! The same run measures Linux: kernel sockets on loopback, the kernel's
//! epoll. `cargo run --release -p ustack --example thundering_herd -- --threads 4 --conns 500 --hold-us 1000`.

#[path = "servers/mod.rs"]
pub mod servers;

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ustack::epoll::*;
use ustack::posix::*;
use ustack::Errno;

/// What the threads counted, summed.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Herd {
    /// `epoll_wait` returns that reported the listener.
    pub wakeups: u64,
    pub accepted: u64,
    /// Wake-ups whose accept found nothing.
    pub eagain: u64,
}

impl Herd {
    pub fn per_accept(&self) -> f64 {
        self.wakeups as f64 / self.accepted.max(1) as f64
    }
}

/// What the client watches: connections accepted, threads busy between a
/// wake-up and the end of their accept.
#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    busy: AtomicU64,
}

/// Counts one thread's wake-ups: `wait` blocks (up to a tick) and says
/// whether it was woken with an event, `accept` tries once.
fn waiter(
    hold: Duration,
    stop: &AtomicBool,
    tally: &Tally,
    mut wait: impl FnMut() -> Result<bool, String>,
    mut accept: impl FnMut() -> Result<bool, String>,
) -> Result<Herd, String> {
    let mut h = Herd::default();
    while !stop.load(Ordering::Acquire) {
        if !wait()? {
            continue;
        }
        tally.busy.fetch_add(1, Ordering::AcqRel);
        h.wakeups += 1;
        if !hold.is_zero() {
            std::thread::sleep(hold);
        }
        if accept()? {
            h.accepted += 1;
            tally.accepted.fetch_add(1, Ordering::AcqRel);
        } else {
            h.eagain += 1;
        }
        tally.busy.fetch_sub(1, Ordering::AcqRel);
    }
    Ok(h)
}

/// Connects `conns` times, one at a time: the next only once the last
/// was accepted and no thread has been busy for `settle`, so each
/// connection's wake-ups are its own.
fn clients(
    conns: usize,
    tally: &Tally,
    settle: Duration,
    mut connect: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    for i in 0..conns as u64 {
        connect()?;
        let t0 = Instant::now();
        let mut quiet = Instant::now();
        loop {
            let done = tally.accepted.load(Ordering::Acquire) > i;
            if !done || tally.busy.load(Ordering::Acquire) != 0 {
                quiet = Instant::now();
            } else if quiet.elapsed() >= settle {
                break;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                return Err(format!("connection {i} not accepted within 5 s"));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    Ok(())
}

fn sum(threads: Vec<std::thread::JoinHandle<Result<Herd, String>>>) -> Result<Herd, String> {
    let mut all = Herd::default();
    for t in threads {
        let h = t.join().map_err(|_| "waiter panicked")??;
        all.wakeups += h.wakeups;
        all.accepted += h.accepted;
        all.eagain += h.eagain;
    }
    Ok(all)
}

/// The herd on ustack, in memory: `threads` epolls on one listener.
pub fn run_ustack(
    threads: usize,
    conns: usize,
    exclusive: bool,
    hold: Duration,
) -> Result<Herd, String> {
    let (client_rt, server_rt) = ustack::memnet::pair().map_err(|e| e.to_string())?;
    let l = servers::listener(&server_rt, false).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut waiters = Vec::new();
    for _ in 0..threads {
        let ep = server_rt.epoll_create1(0).map_err(|e| e.to_string())?;
        let mut interest = EPOLLIN;
        if exclusive {
            interest |= EPOLLEXCLUSIVE;
        }
        server_rt
            .epoll_ctl(
                ep,
                EPOLL_CTL_ADD,
                l,
                Some(EpollEvent::new(interest, l as u64)),
            )
            .map_err(|e| e.to_string())?;
        let (rt, stop, tally) = (server_rt.clone(), stop.clone(), tally.clone());
        waiters.push(std::thread::spawn(move || {
            let mut ev = [EpollEvent::new(0, 0); 1];
            waiter(
                hold,
                &stop,
                &tally,
                || {
                    rt.epoll_wait(ep, &mut ev, servers::TICK_MS)
                        .map(|n| n > 0)
                        .map_err(|e| e.to_string())
                },
                || match rt.accept4(l, SOCK_NONBLOCK) {
                    Ok((c, _)) => rt.close(c).map(|_| true).map_err(|e| e.to_string()),
                    Err(Errno::EAGAIN) => Ok(false),
                    Err(e) => Err(e.to_string()),
                },
            )
        }));
    }
    // The clients stay open until the end: a FIN on a connection still in
    // the accept queue counts in ustack as a change of the listener and
    // passes an EPOLLEXCLUSIVE turn on (Linux wakes no one for it), which
    // would add wake-ups that are not this connection's.
    let mut keep = Vec::new();
    let done = clients(conns, &tally, hold + Duration::from_millis(1), || {
        ustack::net::TcpStream::connect(&client_rt, servers::server_addr())
            .map(|s| keep.push(s))
            .map_err(|e| format!("connect: {e}"))
    });
    stop.store(true, Ordering::Release);
    let herd = sum(waiters)?;
    done.map(|_| herd)
}

/// The same on Linux: kernel TCP on loopback, the kernel's epoll.
pub fn run_linux(
    threads: usize,
    conns: usize,
    exclusive: bool,
    hold: Duration,
) -> Result<Herd, String> {
    let l = Arc::new(TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?);
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut waiters = Vec::new();
    for _ in 0..threads {
        let ep = kernel::Epoll::new().map_err(|e| e.to_string())?;
        let mut interest = libc::EPOLLIN as u32;
        if exclusive {
            interest |= libc::EPOLLEXCLUSIVE as u32;
        }
        ep.add(l.as_raw_fd(), interest).map_err(|e| e.to_string())?;
        let (l, stop, tally) = (l.clone(), stop.clone(), tally.clone());
        waiters.push(std::thread::spawn(move || {
            waiter(
                hold,
                &stop,
                &tally,
                || ep.wait(servers::TICK_MS).map_err(|e| e.to_string()),
                || match l.accept() {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
                    Err(e) => Err(e.to_string()),
                },
            )
        }));
    }
    let done = clients(conns, &tally, hold + Duration::from_millis(1), || {
        TcpStream::connect(addr)
            .map(drop)
            .map_err(|e| format!("connect: {e}"))
    });
    stop.store(true, Ordering::Release);
    let herd = sum(waiters)?;
    done.map(|_| herd)
}

/// The kernel's epoll, for Linux's figure: the only unsafe code here.
#[allow(unsafe_code)]
mod kernel {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

    pub struct Epoll(OwnedFd);

    impl Epoll {
        pub fn new() -> io::Result<Epoll> {
            // SAFETY: epoll_create1 takes no pointers; the result is checked.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` is a new descriptor that nothing else owns.
            Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
        }

        /// EPOLL_CTL_ADD of `fd` for `events`.
        pub fn add(&self, fd: RawFd, events: u32) -> io::Result<()> {
            let mut ev = libc::epoll_event {
                events,
                u64: fd as u64,
            };
            // SAFETY: `ev` is a valid epoll_event that outlives the call.
            let r =
                unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }

        /// Waits up to `timeout_ms`; whether an event came (EINTR: none).
        pub fn wait(&self, timeout_ms: i32) -> io::Result<bool> {
            let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 1];
            // SAFETY: `ev` has room for the 1 event the call may write.
            let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), ev.as_mut_ptr(), 1, timeout_ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::Interrupted => Ok(false),
                    _ => Err(e),
                };
            }
            Ok(n > 0)
        }
    }
}

#[allow(dead_code)]
fn main() {
    let threads = servers::arg("--threads", 4);
    let conns = servers::arg("--conns", 500);
    let hold = Duration::from_micros(servers::arg("--hold-us", 1000) as u64);
    for exclusive in [false, true] {
        let r = run_ustack(threads, conns, exclusive, hold)
            .and_then(|u| run_linux(threads, conns, exclusive, hold).map(|k| (u, k)));
        match r {
            Ok((u, k)) => {
                println!(
                    "herd: {threads} threads, {conns} connections, hold {hold:?}, EPOLLEXCLUSIVE {}: ustack {} wake-ups ({} EAGAIN), Linux {} wake-ups ({} EAGAIN)",
                    if exclusive { "on" } else { "off" },
                    u.wakeups,
                    u.eagain,
                    k.wakeups,
                    k.eagain
                );
                println!(
                    "herd={} wakeups_per_accept={:.2} linux={:.2}",
                    if exclusive { "on" } else { "off" },
                    u.per_accept(),
                    k.per_accept()
                );
            }
            Err(e) => {
                eprintln!("thundering_herd: {e}");
                std::process::exit(1);
            }
        }
    }
}
