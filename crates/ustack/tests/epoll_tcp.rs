//! epoll's modes on stream sockets: LT reports again while data remains,
//! ET only on new data, ONESHOT stays silent until MOD, EXCLUSIVE wakes one
//! of several instances watching one listener; RDHUP/HUP/ERR as Linux.

mod common;

use common::{pair, sa, B};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use ustack::epoll::*;
use ustack::posix::*;
use ustack::{Errno, Mode, OptVal, Runtime};

fn connected(a: &Runtime, b: &Runtime, port: u16) -> (i32, i32) {
    let l = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    b.bind(l, sa(B, port)).unwrap();
    b.listen(l, 8).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.connect(c, sa(B, port)).unwrap();
    let (s, _) = b.accept(l).unwrap();
    b.close(l).unwrap();
    (c, s)
}

fn wait(rt: &Runtime, ep: i32, ms: i32) -> Vec<EpollEvent> {
    let mut ev = [EpollEvent::new(0, 0); 16];
    let n = rt.epoll_wait(ep, &mut ev, ms).unwrap();
    ev[..n].to_vec()
}

#[test]
fn level_edge_oneshot_on_a_stream() {
    let (a, b) = pair(Mode::Thread);
    let (c, s) = connected(&a, &b, 90);
    b.fcntl(s, F_SETFL, O_NONBLOCK).unwrap();
    let lt = b.epoll_create1(0).unwrap();
    let et = b.epoll_create1(0).unwrap();
    let os = b.epoll_create1(0).unwrap();
    b.epoll_ctl(lt, EPOLL_CTL_ADD, s, Some(EpollEvent::new(EPOLLIN, 1)))
        .unwrap();
    b.epoll_ctl(
        et,
        EPOLL_CTL_ADD,
        s,
        Some(EpollEvent::new(EPOLLIN | EPOLLET, 2)),
    )
    .unwrap();
    b.epoll_ctl(
        os,
        EPOLL_CTL_ADD,
        s,
        Some(EpollEvent::new(EPOLLIN | EPOLLONESHOT, 3)),
    )
    .unwrap();
    assert!(wait(&b, lt, 0).is_empty());

    a.write(c, &[1u8; 100]).unwrap();
    assert_eq!(wait(&b, lt, 2000), vec![EpollEvent::new(EPOLLIN, 1)]);
    assert_eq!(wait(&b, et, 2000).len(), 1);
    assert_eq!(wait(&b, os, 2000).len(), 1);
    let mut buf = [0u8; 40];
    assert_eq!(b.read(s, &mut buf), Ok(40));
    // 60 bytes remain.
    assert_eq!(
        wait(&b, lt, 0).len(),
        1,
        "LT: reported again while data remains"
    );
    assert!(wait(&b, et, 100).is_empty(), "ET: no new data, no report");
    assert!(wait(&b, os, 100).is_empty(), "ONESHOT: disabled");
    a.write(c, &[2u8; 10]).unwrap();
    assert_eq!(wait(&b, et, 2000).len(), 1, "ET: new data is a new edge");
    assert!(wait(&b, os, 100).is_empty(), "ONESHOT: still disabled");
    b.epoll_ctl(
        os,
        EPOLL_CTL_MOD,
        s,
        Some(EpollEvent::new(EPOLLIN | EPOLLONESHOT, 3)),
    )
    .unwrap();
    assert_eq!(wait(&b, os, 0).len(), 1, "ONESHOT: re-armed by MOD");
    while b.read(s, &mut buf).is_ok_and(|n| n > 0) {}
    assert!(wait(&b, lt, 0).is_empty(), "LT: drained");
}

#[test]
fn rdhup_hup_and_err() {
    let (a, b) = pair(Mode::Thread);
    let (c, s) = connected(&a, &b, 91);
    let ep = b.epoll_create1(0).unwrap();
    b.epoll_ctl(
        ep,
        EPOLL_CTL_ADD,
        s,
        Some(EpollEvent::new(EPOLLIN | EPOLLRDHUP | EPOLLET, 1)),
    )
    .unwrap();
    a.shutdown(c, SHUT_WR).unwrap();
    let ev = wait(&b, ep, 2000);
    assert_eq!(ev.len(), 1);
    assert!(
        ev[0].events & EPOLLRDHUP != 0 && ev[0].events & EPOLLIN != 0,
        "{:#x}",
        ev[0].events
    );
    // The peer aborts: EPOLLERR and EPOLLHUP, reported though not asked for.
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
    let ev = wait(&b, ep, 2000);
    assert_eq!(ev.len(), 1);
    assert!(ev[0].events & EPOLLHUP != 0, "{:#x}", ev[0].events);
    assert_eq!(
        b.getsockopt(s, SOL_SOCKET, SO_ERROR),
        Ok(OptVal::Int(Errno::ECONNRESET.raw()))
    );
}

#[test]
fn exclusive_wakes_one_of_several_instances() {
    let (a, b) = pair(Mode::Thread);
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, sa(B, 92)).unwrap();
    b.listen(l, 64).unwrap();
    const WAITERS: usize = 4;
    let eps: Vec<i32> = (0..WAITERS)
        .map(|i| {
            let ep = b.epoll_create1(0).unwrap();
            b.epoll_ctl(
                ep,
                EPOLL_CTL_ADD,
                l,
                Some(EpollEvent::new(EPOLLIN | EPOLLEXCLUSIVE, i as u64)),
            )
            .unwrap();
            ep
        })
        .collect();
    let woken = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = eps
        .iter()
        .map(|&ep| {
            let (b, woken) = (b.clone(), woken.clone());
            std::thread::spawn(move || {
                let mut ev = [EpollEvent::new(0, 0); 4];
                if b.epoll_wait(ep, &mut ev, 1500).unwrap() > 0 {
                    woken.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.connect(c, sa(B, 92)).unwrap();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        woken.load(Ordering::SeqCst),
        1,
        "one connection wakes one exclusive waiter"
    );
    assert!(b.accept(l).is_ok());
}

/// A send that fits but leaves the buffer less than half free makes the
/// socket not writable; EPOLLOUT must come back once ACKs free the space,
/// for the writer that then waits for it (Linux sets SOCK_NOSPACE whenever
/// it reports a stream not writable, not only after a send found it full).
#[test]
fn epollout_returns_after_a_send_that_fit_but_filled_the_buffer() {
    let (a, b) = pair(Mode::Thread);
    let l = b.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    // A small receive window, so the data waits in the sender's buffer.
    b.setsockopt(l, SOL_SOCKET, SO_RCVBUF, OptVal::Int(4096))
        .unwrap();
    b.bind(l, sa(B, 95)).unwrap();
    b.listen(l, 8).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.setsockopt(c, SOL_SOCKET, SO_SNDBUF, OptVal::Int(16384))
        .unwrap();
    a.connect(c, sa(B, 95)).unwrap();
    let (s, _) = b.accept(l).unwrap();
    a.fcntl(c, F_SETFL, O_NONBLOCK).unwrap();
    let ep = a.epoll_create1(0).unwrap();
    a.epoll_ctl(
        ep,
        EPOLL_CTL_ADD,
        c,
        Some(EpollEvent::new(EPOLLOUT | EPOLLET, 7)),
    )
    .unwrap();
    assert_eq!(wait(&a, ep, 2000).len(), 1, "writable at first");
    // A full buffer's worth: it fits, and the socket stays not writable
    // (free < queued / 2) even once the peer's whole window (8 KiB for a
    // 4 KiB SO_RCVBUF) is sent and ACKed.
    assert_eq!(a.write(c, &[5u8; 32_768]), Ok(32_768));
    assert!(wait(&a, ep, 0).is_empty(), "not writable after the send");
    // The reader drains: the window opens, ACKs free the sender's buffer.
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut got = 0;
        while got < 32_768 {
            match b.read(s, &mut buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => panic!("read: {e:?}"),
            }
        }
        got
    });
    assert_eq!(
        wait(&a, ep, 5000),
        vec![EpollEvent::new(EPOLLOUT, 7)],
        "EPOLLOUT once the space is freed"
    );
    assert_eq!(reader.join().unwrap(), 32_768);
}
