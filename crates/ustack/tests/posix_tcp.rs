//! The stream-socket semantics the classic texts spell out, one test each,
//! in both runtime modes where the mode matters.

mod common;

use common::{pair, pair_config, sa, A, B};
use std::time::{Duration, Instant};
use ustack::epoll::*;
use ustack::posix::*;
use ustack::{Errno, Mode, OptVal, Runtime};
use ustack_devices::Impairments;

fn listener(rt: &Runtime, port: u16, backlog: i32) -> i32 {
    let l = rt.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    rt.bind(l, sa(B, port)).unwrap();
    rt.listen(l, backlog).unwrap();
    l
}

/// A connected pair of descriptors: (client on `a`, server side on `b`).
/// B accepts on its own thread, so an inline-mode B is driven meanwhile.
fn connected(a: &Runtime, b: &Runtime, port: u16) -> (i32, i32) {
    let l = listener(b, port, 16);
    let bb = b.clone();
    let acceptor = std::thread::spawn(move || bb.accept(l).unwrap());
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.connect(c, sa(B, port)).unwrap();
    let (s, peer) = acceptor.join().unwrap();
    assert_eq!(peer.ip(), A);
    assert_eq!(a.getpeername(c), Ok(sa(B, port)));
    b.close(l).unwrap();
    (c, s)
}

#[test]
fn blocking_write_returns_when_all_is_in_the_send_buffer() {
    for mode in [Mode::Thread, Mode::Inline] {
        // B reads on its own thread; A's blocking send of 2 MB returns all of it.
        let (a, b, _) = pair_config(mode, Mode::Thread, Impairments::none(), |c| c);
        let (c, s) = connected(&a, &b, 80);
        let reader = std::thread::spawn(move || {
            let mut total = 0usize;
            let mut buf = vec![0u8; 65536];
            let mut sum = 0u64;
            loop {
                match b.read(s, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        sum += buf[..n].iter().map(|&x| u64::from(x)).sum::<u64>();
                        total += n;
                    }
                    Err(e) => panic!("read: {e}"),
                }
            }
            b.close(s).unwrap();
            (total, sum)
        });
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(a.write(c, &data), Ok(data.len()), "{mode:?}");
        a.shutdown(c, SHUT_WR).unwrap();
        // What is still in the (autotuned) send buffer flows while A waits
        // in a call: in inline mode nothing else drives A's stack.
        assert_eq!(
            a.read(c, &mut [0u8; 16]),
            Ok(0),
            "{mode:?}: EOF once B closes"
        );
        let (total, sum) = reader.join().unwrap();
        assert_eq!(total, data.len());
        assert_eq!(sum, data.iter().map(|&x| u64::from(x)).sum::<u64>());
    }
}

#[test]
fn nonblocking_write_returns_what_fits_then_eagain() {
    let (a, b) = pair(Mode::Thread);
    let (c, _s) = connected(&a, &b, 81);
    a.fcntl(c, F_SETFL, O_NONBLOCK).unwrap();
    let chunk = vec![7u8; 1 << 20];
    let first = a.send(c, &chunk, 0).unwrap();
    assert!(first > 0 && first < chunk.len(), "a partial write: {first}");
    // Nobody reads on B: the windows and buffers fill, then EAGAIN.
    let mut total = first;
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match a.send(c, &chunk, 0) {
            Ok(n) => total += n,
            Err(e) => break e,
        }
        assert!(Instant::now() < deadline);
    };
    assert_eq!(err, Errno::EAGAIN);
    assert!(total < 8 << 20, "bounded by the buffers: {total}");
}

#[test]
fn read_returns_what_is_there_then_zero_at_eof() {
    for mode in [Mode::Thread, Mode::Inline] {
        let (a, b, _) = pair_config(Mode::Thread, mode, Impairments::none(), |c| c);
        let (c, s) = connected(&a, &b, 82);
        a.write(c, b"hello").unwrap();
        let mut buf = [0u8; 100];
        assert_eq!(
            b.read(s, &mut buf),
            Ok(5),
            "{mode:?}: returns as soon as any bytes are there"
        );
        assert_eq!(&buf[..5], b"hello");
        b.fcntl(s, F_SETFL, O_NONBLOCK).unwrap();
        assert_eq!(b.read(s, &mut buf), Err(Errno::EAGAIN));
        b.fcntl(s, F_SETFL, 0).unwrap();
        a.close(c).unwrap();
        assert_eq!(b.read(s, &mut buf), Ok(0), "EOF");
        assert_eq!(b.read(s, &mut buf), Ok(0), "EOF again");
    }
}

#[test]
fn msg_waitall_and_peek() {
    let (a, b) = pair(Mode::Thread);
    let (c, s) = connected(&a, &b, 83);
    let writer = std::thread::spawn(move || {
        for i in 0..4u8 {
            a.write(c, &[i; 10]).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        a
    });
    let mut buf = [0u8; 40];
    assert_eq!(b.recv(s, &mut buf, MSG_WAITALL), Ok(40));
    assert_eq!(&buf[30..], &[3u8; 10]);
    let a = writer.join().unwrap();
    a.write(c, b"peek").unwrap();
    let mut p = [0u8; 4];
    assert_eq!(b.recv(s, &mut p, MSG_PEEK), Ok(4));
    assert_eq!(b.recv(s, &mut p, 0), Ok(4), "peeked bytes are still there");
    assert_eq!(&p, b"peek");
}

#[test]
fn after_the_peers_rst_write_is_epipe_and_read_is_econnreset() {
    let (a, b) = pair(Mode::Thread);
    let (c, s) = connected(&a, &b, 84);
    // Linger 0: close aborts with RST.
    b.setsockopt(
        s,
        SOL_SOCKET,
        SO_LINGER,
        OptVal::Linger {
            onoff: true,
            secs: 0,
        },
    )
    .unwrap();
    b.close(s).unwrap();
    let mut buf = [0u8; 8];
    a.setsockopt(
        c,
        SOL_SOCKET,
        SO_RCVTIMEO,
        OptVal::Time(Some(Duration::from_secs(2))),
    )
    .unwrap();
    assert_eq!(a.read(c, &mut buf), Err(Errno::ECONNRESET));
    assert_eq!(a.write(c, b"x"), Err(Errno::EPIPE), "never a signal");
    assert_eq!(a.write(c, b"x"), Err(Errno::EPIPE));
}

#[test]
fn nonblocking_connect_inprogress_then_writable_and_so_error() {
    let (a, b) = pair(Mode::Thread);
    let _l = listener(&b, 85, 4);
    let ep = a.epoll_create1(0).unwrap();
    // Success.
    let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(c, sa(B, 85)), Err(Errno::EINPROGRESS));
    assert_eq!(a.connect(c, sa(B, 85)), Err(Errno::EALREADY));
    a.epoll_ctl(ep, EPOLL_CTL_ADD, c, Some(EpollEvent::new(EPOLLOUT, 1)))
        .unwrap();
    let mut ev = [EpollEvent::new(0, 0); 4];
    assert_eq!(a.epoll_wait(ep, &mut ev, 2000), Ok(1));
    assert!(ev[0].events & EPOLLOUT != 0);
    assert_eq!(a.getsockopt(c, SOL_SOCKET, SO_ERROR), Ok(OptVal::Int(0)));
    assert_eq!(a.connect(c, sa(B, 85)), Err(Errno::EISCONN));
    // Refused: a closed port answers RST.
    let r = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    assert_eq!(a.connect(r, sa(B, 9999)), Err(Errno::EINPROGRESS));
    a.epoll_ctl(ep, EPOLL_CTL_ADD, r, Some(EpollEvent::new(EPOLLOUT, 2)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let n = a.epoll_wait(ep, &mut ev, 100).unwrap();
        if ev[..n].iter().any(|e| e.data == 2) {
            break;
        }
        assert!(Instant::now() < deadline, "refusal reported");
    }
    assert_eq!(
        a.getsockopt(r, SOL_SOCKET, SO_ERROR),
        Ok(OptVal::Int(Errno::ECONNREFUSED.raw()))
    );
    // A blocking connect to a closed port: ECONNREFUSED directly.
    let d = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(a.connect(d, sa(B, 9998)), Err(Errno::ECONNREFUSED));
}

#[test]
fn connect_to_a_silent_host_times_out() {
    // Two SYN retries from an initial RTO of 200 ms: 0.2 + 0.4 + 0.8 s, then ETIMEDOUT.
    let (a, _b, _) = pair_config(Mode::Thread, Mode::Thread, Impairments::none(), |mut c| {
        c.tcp.syn_retries = 2;
        c.tcp.rto_initial = Duration::from_millis(200);
        c
    });
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    let start = Instant::now();
    // 10.0.0.9 is on the link but nobody answers.
    assert_eq!(
        a.connect(c, sa(std::net::Ipv4Addr::new(10, 0, 0, 9), 80)),
        Err(Errno::ETIMEDOUT)
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(2500),
        "{took:?}"
    );
}

#[test]
fn accept_on_an_empty_nonblocking_listener_is_eagain() {
    let (_a, b) = pair(Mode::Thread);
    let l = listener(&b, 86, 4);
    b.fcntl(l, F_SETFL, O_NONBLOCK).unwrap();
    assert_eq!(b.accept(l).map(|_| ()), Err(Errno::EAGAIN));
    b.fcntl(l, F_SETFL, 0).unwrap();
    b.setsockopt(
        l,
        SOL_SOCKET,
        SO_RCVTIMEO,
        OptVal::Time(Some(Duration::from_millis(50))),
    )
    .unwrap();
    assert_eq!(
        b.accept(l).map(|_| ()),
        Err(Errno::EAGAIN),
        "SO_RCVTIMEO on accept"
    );
}

#[test]
fn so_rcvtimeo_expiry_is_eagain_on_a_stream() {
    let (a, b) = pair(Mode::Thread);
    let (_c, s) = connected(&a, &b, 87);
    b.setsockopt(
        s,
        SOL_SOCKET,
        SO_RCVTIMEO,
        OptVal::Time(Some(Duration::from_millis(80))),
    )
    .unwrap();
    let start = Instant::now();
    assert_eq!(b.read(s, &mut [0u8; 4]), Err(Errno::EAGAIN));
    assert!(start.elapsed() >= Duration::from_millis(80));
}

#[test]
fn tcp_info_and_options() {
    let (a, b) = pair(Mode::Thread);
    let (c, _s) = connected(&a, &b, 88);
    a.setsockopt(c, IPPROTO_TCP, TCP_NODELAY, OptVal::Int(1))
        .unwrap();
    a.setsockopt(c, SOL_SOCKET, SO_KEEPALIVE, OptVal::Int(1))
        .unwrap();
    a.setsockopt(c, IPPROTO_TCP, TCP_KEEPIDLE, OptVal::Int(30))
        .unwrap();
    assert_eq!(
        a.setsockopt(c, IPPROTO_TCP, TCP_KEEPCNT, OptVal::Int(0)),
        Err(Errno::EINVAL)
    );
    let Ok(OptVal::TcpInfo(info)) = a.getsockopt(c, IPPROTO_TCP, TCP_INFO) else {
        panic!("TCP_INFO")
    };
    assert_eq!(info.state, ustack_core::TcpState::Established);
    assert_eq!(info.remote, Some(sa(B, 88)));
    assert!(info.snd_mss > 0 && info.rto >= Duration::from_millis(200));
    assert_eq!(info.congestion, "cubic", "the default, as Linux");
    assert_eq!(info.cwnd, 10 * u32::from(info.snd_mss), "IW10 (RFC 6928)");
    assert_eq!(info.ca_state, "Open");
    assert_eq!(
        a.getsockopt(c, IPPROTO_TCP, TCP_NODELAY),
        Ok(OptVal::Int(1))
    );
    a.setsockopt(c, IPPROTO_TCP, TCP_CORK, OptVal::Int(1))
        .unwrap();
    assert_eq!(a.getsockopt(c, IPPROTO_TCP, TCP_CORK), Ok(OptVal::Int(1)));
    // TCP_CONGESTION by name; an unknown one is ENOENT as on Linux.
    let fresh = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.setsockopt(
        fresh,
        IPPROTO_TCP,
        TCP_CONGESTION,
        OptVal::Name("reno".into()),
    )
    .unwrap();
    assert_eq!(
        a.getsockopt(fresh, IPPROTO_TCP, TCP_CONGESTION),
        Ok(OptVal::Name("reno".into()))
    );
    assert_eq!(
        a.setsockopt(
            fresh,
            IPPROTO_TCP,
            TCP_CONGESTION,
            OptVal::Name("bbr9".into())
        ),
        Err(Errno::ENOENT)
    );
}

#[test]
fn bbr_by_name_and_a_pacing_ceiling() {
    let (a, b) = pair(Mode::Thread);
    let l = listener(&b, 90, 4);
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.setsockopt(c, IPPROTO_TCP, TCP_CONGESTION, OptVal::Name("bbr".into()))
        .unwrap();
    assert_eq!(
        a.getsockopt(c, IPPROTO_TCP, TCP_CONGESTION),
        Ok(OptVal::Name("bbr".into()))
    );
    // No ceiling is ~0U, as Linux's 32-bit form; 10 MB/s is one.
    assert_eq!(
        a.getsockopt(c, SOL_SOCKET, SO_MAX_PACING_RATE),
        Ok(OptVal::Int(-1))
    );
    a.setsockopt(c, SOL_SOCKET, SO_MAX_PACING_RATE, OptVal::Int(10_000_000))
        .unwrap();
    assert_eq!(
        a.getsockopt(c, SOL_SOCKET, SO_MAX_PACING_RATE),
        Ok(OptVal::Int(10_000_000))
    );
    let bb = b.clone();
    let acceptor = std::thread::spawn(move || bb.accept(l).unwrap());
    a.connect(c, sa(B, 90)).unwrap();
    let (s, _) = acceptor.join().unwrap();
    let Ok(OptVal::TcpInfo(info)) = a.getsockopt(c, IPPROTO_TCP, TCP_INFO) else {
        panic!("TCP_INFO")
    };
    assert_eq!(info.congestion, "bbr");
    // 300 kB through the paced BBR sender, intact.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            match b.read(s, &mut buf) {
                Ok(0) => break got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{e}"),
            }
        }
    });
    assert_eq!(a.write(c, &data), Ok(data.len()));
    a.close(c).unwrap();
    assert!(reader.join().unwrap() == data, "bytes intact");
}

#[test]
fn linger_with_a_time_waits_for_the_data_to_be_acknowledged() {
    let (a, b) = pair(Mode::Thread);
    let (c, s) = connected(&a, &b, 89);
    a.setsockopt(
        c,
        SOL_SOCKET,
        SO_LINGER,
        OptVal::Linger {
            onoff: true,
            secs: 5,
        },
    )
    .unwrap();
    a.fcntl(c, F_SETFL, O_NONBLOCK).unwrap();
    // Fill what the windows and buffers take while B does not read: until
    // sends have been refused for 100 ms straight.
    let mut sent = 0;
    let mut stalled_since = Instant::now();
    loop {
        match a.send(c, &[9u8; 65536], 0) {
            Ok(n) => {
                sent += n;
                stalled_since = Instant::now();
            }
            Err(Errno::EAGAIN) if stalled_since.elapsed() < Duration::from_millis(100) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(Errno::EAGAIN) => break,
            Err(e) => panic!("send: {e}"),
        }
    }
    a.fcntl(c, F_SETFL, 0).unwrap();
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut got = 0;
        let mut buf = [0u8; 65536];
        loop {
            match b.read(s, &mut buf) {
                Ok(0) | Err(_) => return got,
                Ok(n) => got += n,
            }
        }
    });
    let start = Instant::now();
    a.close(c).unwrap();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(250),
        "close waited for the acknowledgements: {took:?}"
    );
    assert_eq!(reader.join().unwrap(), sent, "all data delivered, then EOF");
}

#[test]
fn poll_and_select_report_readiness_and_bad_descriptors() {
    let (a, b) = pair(Mode::Thread);
    let (c, s) = connected(&a, &b, 79);
    let mut fds = [
        PollFd::new(s, POLLIN),
        PollFd::new(c, POLLOUT),
        PollFd::new(999, POLLIN),
        PollFd::new(-1, POLLIN),
    ];
    assert_eq!(b.poll(&mut fds[..1], 0), Ok(0), "nothing to read yet");
    a.write(c, b"ping").unwrap();
    assert_eq!(b.poll(&mut fds[..1], 2000), Ok(1));
    assert_eq!(fds[0].revents, POLLIN);
    assert_eq!(
        a.poll(&mut fds[1..], 0),
        Ok(2),
        "writable, and an unknown fd"
    );
    assert_eq!(fds[1].revents, POLLOUT);
    assert_eq!(fds[2].revents, POLLNVAL);
    assert_eq!(fds[3].revents, 0, "negative fds are skipped");
    let (mut r, mut w) = (vec![s], vec![]);
    assert_eq!(b.select(&mut r, &mut w, Some(Duration::ZERO)), Ok(1));
    assert_eq!(r, vec![s]);
    let (mut r, mut w) = (vec![999], vec![]);
    assert_eq!(
        b.select(&mut r, &mut w, Some(Duration::ZERO)),
        Err(Errno::EBADF)
    );
}

/// Short connections run to completion on one thread (issue #19): two
/// inline runtimes, non-blocking calls, an EAGAIN on one side answered by
/// letting the other side's stack run. Every exchange is intact, and each
/// server-side close leaves one TIME_WAIT behind on the server only.
#[test]
fn short_connections_run_to_completion_on_one_thread() {
    let (a, b) = pair(Mode::Inline);
    let l = b.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
    b.bind(l, sa(B, 7100)).unwrap();
    b.listen(l, 16).unwrap();
    fn until<R>(other: &Runtime, mut op: impl FnMut() -> Result<R, Errno>) -> R {
        for _ in 0..1000 {
            match op() {
                Err(Errno::EAGAIN) => {
                    other.poll(&mut [], 0).unwrap();
                }
                r => return r.unwrap(),
            }
        }
        panic!("no progress in 1000 turns");
    }
    const N: u32 = 50;
    let mut buf = [0u8; 64];
    for i in 0..N {
        let c = a.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0).unwrap();
        assert_eq!(a.connect(c, sa(B, 7100)), Err(Errno::EINPROGRESS));
        let (s, _) = until(&a, || b.accept4(l, SOCK_NONBLOCK));
        let req = [i as u8; 64];
        assert_eq!(until(&b, || a.send(c, &req, 0)), 64);
        assert_eq!(until(&a, || b.recv(s, &mut buf, 0)), 64);
        assert_eq!(buf, req);
        let resp = [!(i as u8); 64];
        assert_eq!(until(&a, || b.send(s, &resp, 0)), 64);
        b.close(s).unwrap();
        assert_eq!(until(&b, || a.recv(c, &mut buf, 0)), 64);
        assert_eq!(buf, resp);
        assert_eq!(until(&b, || a.recv(c, &mut buf, 0)), 0, "EOF");
        a.close(c).unwrap();
    }
    b.poll(&mut [], 0).unwrap();
    let (ca, cb) = (a.counters(), b.counters());
    assert_eq!(
        (ca.tcp.active_opens, cb.tcp.passive_opens),
        (N as u64, N as u64)
    );
    assert_eq!(
        (ca.tcp.curr_time_wait, cb.tcp.curr_time_wait),
        (0, N as u64)
    );
    assert_eq!(ca.tcp.out_rsts + cb.tcp.out_rsts, 0);
}
