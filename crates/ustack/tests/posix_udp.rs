//! POSIX semantics on datagram sockets, in both runtime modes.

mod common;

use common::{pair, pair_modes, sa, A, B};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use ustack::epoll::{
    EpollEvent, EPOLLET, EPOLLIN, EPOLLONESHOT, EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD,
};
use ustack::posix::*;
use ustack::{Errno, Mode, OptVal};
use ustack_devices::Impairments;

fn modes() -> [Mode; 2] {
    [Mode::Thread, Mode::Inline]
}

#[test]
fn blocking_recv_returns_when_a_datagram_arrives() {
    for mode in modes() {
        let (a, b) = pair(mode);
        let s = b.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
        b.bind(s, sa(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
        let c = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = b.recvfrom(s, &mut buf, 0).unwrap();
            (buf[..n].to_vec(), from, b)
        });
        std::thread::sleep(Duration::from_millis(20));
        a.sendto(c, b"hello", 0, Some(sa(B, 7))).unwrap();
        let (data, from, _b) = t.join().unwrap();
        assert_eq!(data, b"hello", "{mode:?}");
        assert_eq!(from.unwrap().ip(), A);
    }
}

#[test]
fn nonblocking_and_timeouts_give_eagain() {
    for mode in modes() {
        let (_a, b) = pair(mode);
        let s = b.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0).unwrap();
        b.bind(s, sa(B, 9)).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(b.recv(s, &mut buf, 0), Err(Errno::EAGAIN));
        assert_eq!(b.fcntl(s, F_GETFL, 0).unwrap() & O_NONBLOCK, O_NONBLOCK);
        b.fcntl(s, F_SETFL, 0).unwrap();
        assert_eq!(
            b.recv(s, &mut buf, MSG_DONTWAIT),
            Err(Errno::EAGAIN),
            "MSG_DONTWAIT"
        );
        b.setsockopt(
            s,
            SOL_SOCKET,
            SO_RCVTIMEO,
            OptVal::Time(Some(Duration::from_millis(50))),
        )
        .unwrap();
        let start = Instant::now();
        assert_eq!(
            b.recv(s, &mut buf, 0),
            Err(Errno::EAGAIN),
            "SO_RCVTIMEO expiry"
        );
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
    }
}

#[test]
fn bad_descriptors() {
    let (a, _b) = pair(Mode::Thread);
    let mut buf = [0u8; 4];
    assert_eq!(a.recv(99, &mut buf, 0), Err(Errno::EBADF));
    let ep = a.epoll_create1(0).unwrap();
    assert_eq!(a.recv(ep, &mut buf, 0), Err(Errno::ENOTSOCK));
    assert_eq!(
        a.socket(libc_af_unix(), SOCK_DGRAM, 0),
        Err(Errno::EAFNOSUPPORT)
    );
    let s = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    a.close(s).unwrap();
    assert_eq!(a.close(s), Err(Errno::EBADF));
    assert_eq!(a.getpeername(ep), Err(Errno::ENOTSOCK));
}

fn libc_af_unix() -> i32 {
    1
}

#[test]
fn connected_socket_reports_econnrefused_via_so_error_and_recv() {
    for mode in modes() {
        // B answers with ICMP on its own: it runs its own thread.
        let (a, _b, _) = pair_modes(mode, Mode::Thread, Impairments::none());
        let c = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
        a.connect(c, sa(B, 4444)).unwrap();
        a.send(c, b"x", 0).unwrap();
        a.setsockopt(
            c,
            SOL_SOCKET,
            SO_RCVTIMEO,
            OptVal::Time(Some(Duration::from_secs(2))),
        )
        .unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(a.recv(c, &mut buf, 0), Err(Errno::ECONNREFUSED), "{mode:?}");
        assert_eq!(
            a.getsockopt(c, SOL_SOCKET, SO_ERROR),
            Ok(OptVal::Int(0)),
            "reported once"
        );
    }
}

#[test]
fn epoll_level_edge_and_oneshot_on_datagrams() {
    for mode in modes() {
        let (a, b) = pair(mode);
        let s = b.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0).unwrap();
        b.bind(s, sa(B, 9)).unwrap();
        let c = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
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
        assert_eq!(
            b.epoll_ctl(lt, EPOLL_CTL_ADD, s, Some(EpollEvent::new(EPOLLIN, 1))),
            Err(Errno::EEXIST)
        );
        let mut ev = [EpollEvent::new(0, 0); 4];
        assert_eq!(b.epoll_wait(lt, &mut ev, 0), Ok(0));

        a.sendto(c, b"one", 0, Some(sa(B, 9))).unwrap();
        a.sendto(c, b"two", 0, Some(sa(B, 9))).unwrap();
        assert_eq!(b.epoll_wait(lt, &mut ev, 1000), Ok(1), "{mode:?}");
        assert_eq!(ev[0], EpollEvent::new(EPOLLIN, 1));
        // Wait until both datagrams are queued, then read only one.
        let mut buf = [0u8; 8];
        assert!(b.recv(s, &mut buf, MSG_DONTWAIT | MSG_PEEK).is_ok());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(b.epoll_wait(et, &mut ev, 1000), Ok(1));
        assert_eq!(b.epoll_wait(os, &mut ev, 1000), Ok(1));
        assert_eq!(b.recv(s, &mut buf, 0), Ok(3));
        // One datagram remains: LT reports again; ET and ONESHOT stay silent.
        assert_eq!(b.epoll_wait(lt, &mut ev, 0), Ok(1));
        assert_eq!(b.epoll_wait(et, &mut ev, 50), Ok(0));
        assert_eq!(b.epoll_wait(os, &mut ev, 50), Ok(0));
        // New data: a new edge for ET; ONESHOT still silent until MOD.
        a.sendto(c, b"three", 0, Some(sa(B, 9))).unwrap();
        assert_eq!(b.epoll_wait(et, &mut ev, 1000), Ok(1));
        assert_eq!(b.epoll_wait(os, &mut ev, 50), Ok(0));
        b.epoll_ctl(
            os,
            EPOLL_CTL_MOD,
            s,
            Some(EpollEvent::new(EPOLLIN | EPOLLONESHOT, 3)),
        )
        .unwrap();
        assert_eq!(b.epoll_wait(os, &mut ev, 0), Ok(1));
        // Drained: LT goes quiet.
        while b.recv(s, &mut buf, 0).is_ok() {}
        assert_eq!(b.epoll_wait(lt, &mut ev, 0), Ok(0));
        b.epoll_ctl(lt, EPOLL_CTL_DEL, s, None).unwrap();
        assert_eq!(b.epoll_ctl(lt, EPOLL_CTL_DEL, s, None), Err(Errno::ENOENT));
    }
}
