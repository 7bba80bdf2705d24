//! Signal-driven I/O (fcntl F_SETOWN, O_ASYNC, F_SETSIG), as Linux's
//! sockets do it. Each test owns the signals through F_SETOWN_EX with its
//! own thread id and blocks them in that thread, so they wait for
//! sigtimedwait (bounded) and never reach the other test threads.

mod common;

use common::{pair_modes, sa, B};
use std::time::Duration;
use ustack::posix::*;
use ustack::signal::{self, SigInfo, POLL_ERR, POLL_IN, POLL_OUT};
use ustack::{Errno, Mode, OptVal, Runtime};
use ustack_devices::Impairments;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// Makes `fd` signal-driven, its signals (`sig`: 0 for SIGIO) going to
/// the calling thread, where they are blocked.
fn own(rt: &Runtime, fd: i32, sig: i32) {
    // SIGIO too: it replaces a realtime signal whose queue is full.
    signal::block(&[libc::SIGIO]).unwrap();
    if sig != 0 {
        signal::block(&[sig]).unwrap();
    }
    rt.fcntl_setown_ex(fd, F_OWNER_TID, signal::gettid())
        .unwrap();
    rt.fcntl(fd, F_SETSIG, sig).unwrap();
    let fl = rt.fcntl(fd, F_GETFL, 0).unwrap();
    rt.fcntl(fd, F_SETFL, fl | O_ASYNC | O_NONBLOCK).unwrap();
}

fn take(sig: i32, within: Duration) -> Option<SigInfo> {
    signal::wait(&[sig], within).unwrap()
}

/// Drains every pending `sig` (a burst of news may raise several).
fn drain(sig: i32) {
    while take(sig, Duration::ZERO).is_some() {}
}

/// A connected pair of stream descriptors: (client on `a`, server on `b`).
fn connected(a: &Runtime, b: &Runtime, port: u16) -> (i32, i32) {
    let l = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    b.bind(l, sa(B, port)).unwrap();
    b.listen(l, 4).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.connect(c, sa(B, port)).unwrap();
    let (s, _) = b.accept(l).unwrap();
    b.close(l).unwrap();
    (c, s)
}

#[test]
fn sigio_is_raised_when_a_tcp_socket_turns_readable() {
    let (a, b, _) = pair_modes(Mode::Thread, Mode::Thread, Impairments::none());
    let (c, s) = connected(&a, &b, 80);
    own(&b, s, 0);
    // Setting O_ASYNC raises nothing by itself.
    assert_eq!(take(libc::SIGIO, QUIET), None);
    a.write(c, b"ping").unwrap();
    let got = take(libc::SIGIO, WAIT).expect("SIGIO on data");
    assert_eq!(got.signo, libc::SIGIO);
    let mut buf = [0u8; 16];
    assert_eq!(b.read(s, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"ping");
    // Again for the next arrival: each one raises it (the edge).
    drain(libc::SIGIO);
    a.write(c, b"pong").unwrap();
    assert!(
        take(libc::SIGIO, WAIT).is_some(),
        "SIGIO on the second arrival"
    );
    assert_eq!(b.read(s, &mut buf), Ok(4));
}

#[test]
fn the_f_setsig_signal_carries_the_fd_and_band_of_a_udp_datagram() {
    let (a, b, _) = pair_modes(Mode::Thread, Mode::Thread, Impairments::none());
    let rt = signal::sigrtmin() + 2;
    let s = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    b.bind(s, sa(B, 53)).unwrap();
    own(&b, s, rt);
    assert_eq!(b.fcntl(s, F_GETSIG, 0), Ok(rt));
    let c = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    a.sendto(c, b"query", 0, Some(sa(B, 53))).unwrap();
    let got = take(rt, WAIT).expect("the F_SETSIG signal");
    assert_eq!(got.signo, rt);
    assert_eq!(got.fd, s, "si_fd names the socket");
    assert_eq!(got.reason(), Some(POLL_IN));
    assert_eq!(
        got.band,
        i64::from(libc::POLLIN | libc::POLLRDNORM),
        "si_band"
    );
    // The chosen signal replaces SIGIO.
    assert_eq!(take(libc::SIGIO, Duration::ZERO), None);
    let mut buf = [0u8; 16];
    assert_eq!(b.recv(s, &mut buf, 0), Ok(5));
}

#[test]
fn a_finished_connect_signals_writable() {
    let (a, b, _) = pair_modes(Mode::Thread, Mode::Thread, Impairments::none());
    let l = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    b.bind(l, sa(B, 81)).unwrap();
    b.listen(l, 4).unwrap();
    let rt = signal::sigrtmin() + 3;
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    own(&a, c, rt);
    assert_eq!(a.connect(c, sa(B, 81)), Err(Errno::EINPROGRESS));
    let got = take(rt, WAIT).expect("a signal when the handshake ends");
    assert_eq!((got.fd, got.reason()), (c, Some(POLL_OUT)));
    assert_eq!(a.getpeername(c), Ok(sa(B, 81)));
}

#[test]
fn send_space_coming_back_signals_writable() {
    let (a, b, _) = pair_modes(Mode::Thread, Mode::Thread, Impairments::none());
    let (c, s) = connected(&a, &b, 82);
    let rt = signal::sigrtmin() + 4;
    own(&a, c, rt);
    // Fill A's send buffer and B's receive window: EAGAIN, not writable.
    let chunk = vec![7u8; 65536];
    let mut sent = 0usize;
    for _ in 0..10_000 {
        match a.send(c, &chunk, 0) {
            Ok(n) => sent += n,
            Err(Errno::EAGAIN) => break,
            Err(e) => panic!("send: {e}"),
        }
    }
    assert_eq!(a.send(c, &chunk, 0), Err(Errno::EAGAIN));
    drain(rt);
    // B reads everything: its window opens, ACKs free A's buffer.
    let mut buf = vec![0u8; 65536];
    let mut got = 0usize;
    let mut sig = None;
    for _ in 0..100_000 {
        if got < sent {
            match b.recv(s, &mut buf, MSG_DONTWAIT) {
                Ok(n) => got += n,
                Err(Errno::EAGAIN) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("recv: {e}"),
            }
        }
        if let Some(i) = take(rt, Duration::ZERO) {
            sig = Some(i);
            break;
        }
        if got >= sent {
            sig = take(rt, WAIT);
            break;
        }
    }
    let sig = sig.expect("a signal when send space returns");
    assert_eq!((sig.fd, sig.reason()), (c, Some(POLL_OUT)));
    assert!(a.send(c, b"x", 0).is_ok(), "writable again");
}

#[test]
fn a_fin_signals_pollin_and_a_reset_pollerr() {
    // Linux: tcp_fin wakes with POLL_IN (half-close), tcp_reset's error
    // report with POLL_ERR.
    let (a, b, _) = pair_modes(Mode::Thread, Mode::Thread, Impairments::none());
    let rt = signal::sigrtmin() + 6;
    let (c, s) = connected(&a, &b, 84);
    own(&b, s, rt);
    a.shutdown(c, SHUT_WR).unwrap();
    let got = take(rt, WAIT).expect("a signal for the FIN");
    assert_eq!((got.fd, got.reason()), (s, Some(POLL_IN)));
    let mut buf = [0u8; 4];
    assert_eq!(b.recv(s, &mut buf, 0), Ok(0), "EOF");
    drain(rt);
    // Linger 0: A's close aborts with RST.
    a.setsockopt(
        c,
        SOL_SOCKET,
        SO_LINGER,
        OptVal::Linger {
            onoff: true,
            secs: 0,
        },
    )
    .unwrap();
    a.close(c).unwrap();
    let got = take(rt, WAIT).expect("a signal for the RST");
    assert_eq!((got.fd, got.reason()), (s, Some(POLL_ERR)));
}

#[test]
fn nothing_is_raised_without_o_async() {
    let (a, b, _) = pair_modes(Mode::Thread, Mode::Thread, Impairments::none());
    let (c, s) = connected(&a, &b, 83);
    own(&b, s, 0);
    // O_ASYNC off again: the owner stays, the signals stop.
    b.fcntl(s, F_SETFL, 0).unwrap();
    assert_eq!(b.fcntl(s, F_GETFL, 0), Ok(O_RDWR));
    a.write(c, b"ping").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(b.recv(s, &mut buf, 0), Ok(4), "the data came");
    assert_eq!(take(libc::SIGIO, QUIET), None);
    // Nor without an owner.
    b.fcntl(s, F_SETOWN, 0).unwrap();
    b.fcntl(s, F_SETFL, O_ASYNC).unwrap();
    a.write(c, b"ping").unwrap();
    assert_eq!(b.recv(s, &mut buf, 0), Ok(4));
    assert_eq!(take(libc::SIGIO, QUIET), None);
}

#[test]
fn the_owner_driving_an_inline_stack_gets_the_poll_si_code() {
    // Inline: the owner's own call takes in the datagram, so the signal is
    // raised from its thread, where Linux lets it carry si_code POLL_IN.
    let (a, b, _) = pair_modes(Mode::Thread, Mode::Inline, Impairments::none());
    let rt = signal::sigrtmin() + 5;
    let s = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    b.bind(s, sa(B, 54)).unwrap();
    own(&b, s, rt);
    let c = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    a.sendto(c, b"q", 0, Some(sa(B, 54))).unwrap();
    let mut p = [PollFd::new(s, POLLIN)];
    assert_eq!(b.poll(&mut p, 5000), Ok(1));
    let got = take(rt, WAIT).expect("the signal");
    assert_eq!((got.fd, got.code), (s, POLL_IN));
}

#[test]
fn fcntl_owner_and_signal_settings_and_their_errors() {
    let (a, _b, _) = pair_modes(Mode::Thread, Mode::Thread, Impairments::none());
    let s = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    let pid = std::process::id() as i32;
    assert_eq!(a.fcntl(s, F_GETOWN, 0), Ok(0), "no owner at first");
    assert_eq!(a.fcntl(s, F_GETSIG, 0), Ok(0), "SIGIO at first");
    a.fcntl(s, F_SETOWN, pid).unwrap();
    assert_eq!(a.fcntl(s, F_GETOWN, 0), Ok(pid));
    assert_eq!(a.fcntl_getown_ex(s), Ok((F_OWNER_PID, pid)));
    let pgrp = proc_pgrp();
    a.fcntl(s, F_SETOWN, -pgrp).unwrap();
    assert_eq!(a.fcntl(s, F_GETOWN, 0), Ok(-pgrp), "a group reads negative");
    assert_eq!(a.fcntl_getown_ex(s), Ok((F_OWNER_PGRP, pgrp)));
    let tid = signal::gettid();
    a.fcntl_setown_ex(s, F_OWNER_TID, tid).unwrap();
    assert_eq!(a.fcntl_getown_ex(s), Ok((F_OWNER_TID, tid)));
    // No such process, an unknown owner type, a signal out of range.
    assert_eq!(a.fcntl(s, F_SETOWN, 0x3fff_fff0), Err(Errno::ESRCH));
    assert_eq!(a.fcntl_setown_ex(s, 7, pid), Err(Errno::EINVAL));
    assert_eq!(a.fcntl(s, F_SETSIG, 65), Err(Errno::EINVAL));
    assert_eq!(a.fcntl(s, F_SETSIG, -1), Err(Errno::EINVAL));
    assert_eq!(
        a.fcntl(s, F_GETOWN, 0),
        Ok(tid),
        "failed calls changed nothing"
    );
    // FASYNC is O_ASYNC; F_GETFL shows it.
    a.fcntl(s, F_SETFL, FASYNC).unwrap();
    assert_eq!(a.fcntl(s, F_GETFL, 0), Ok(O_RDWR | O_ASYNC));
    // A descriptor that is not open.
    a.close(s).unwrap();
    assert_eq!(a.fcntl(s, F_SETOWN, pid), Err(Errno::EBADF));
    assert_eq!(a.fcntl(s, F_SETSIG, 0), Err(Errno::EBADF));
    assert_eq!(a.fcntl_setown_ex(s, F_OWNER_TID, tid), Err(Errno::EBADF));
}

/// This process's group, from /proc (no unsafe in tests).
fn proc_pgrp() -> i32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // pid (comm) state ppid pgrp ...: fields after the last ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(2).unwrap().parse().unwrap()
}
