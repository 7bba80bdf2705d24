//! The completion API (Proactor): operations carry the buffers they own,
//! completions hand them back with a result or an errno, in every
//! runtime mode; a full completion queue refuses submissions and never
//! drops a completion; a cancel returns its buffer.

mod common;

use common::{pair_modes, sa, B};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use ustack::posix::*;
use ustack::proactor::{Cqe, Op, Proactor, Sqe};
use ustack::{Errno, Mode, Runtime};
use ustack_devices::Impairments;

const T: Option<Duration> = Some(Duration::from_secs(10));

/// An event loop for a runtime in external mode, until dropped.
struct Driver(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl Driver {
    fn start(rt: &Runtime) -> Driver {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, rt) = (stop.clone(), rt.clone());
        let t = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let d = rt.drive(std::task::Waker::noop());
                let nap = d
                    .deadline
                    .and_then(|t| t.checked_duration_since(std::time::Instant::now()))
                    .unwrap_or(Duration::ZERO)
                    .clamp(Duration::from_micros(50), Duration::from_micros(500));
                std::thread::sleep(nap);
            }
        });
        Driver(stop, Some(t))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

/// A std-like echo server on `b` for one connection, on its own thread.
fn echo_once(b: &Runtime, port: u16) -> std::thread::JoinHandle<usize> {
    let l = ustack::net::TcpListener::bind(b, sa(B, port)).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 8192];
        let mut total = 0;
        loop {
            match s.read(&mut buf).unwrap() {
                0 => return total,
                n => {
                    s.write_all(&buf[..n]).unwrap();
                    total += n;
                }
            }
        }
    })
}

fn wait(p: &mut Proactor) -> Cqe<i32> {
    p.wait_one(T).expect("a completion in time")
}

#[test]
fn echo_through_completions_in_every_mode() {
    for mode in [Mode::Thread, Mode::Inline, Mode::External] {
        let (a, b, _link) = pair_modes(mode, Mode::Thread, Impairments::none());
        let _driver = (mode == Mode::External).then(|| Driver::start(&a));
        let server = echo_once(&b, 80);
        let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
        let mut p = Proactor::new(&a, 8, 8);
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 13 + i / 7) as u8).collect();
        p.push(Sqe::new(
            1,
            Op::Connect {
                sock: c,
                addr: sa(B, 80),
            },
        ))
        .ok()
        .unwrap();
        // Posted before anything can arrive: the echo lands in it directly.
        p.push(Sqe::new(
            2,
            Op::Recv {
                sock: c,
                buf: vec![0; data.len()],
                waitall: true,
            },
        ))
        .ok()
        .unwrap();
        // Held until the handshake is done, then lent to the stack.
        p.push(Sqe::new(3, Op::send(c, data.clone()))).ok().unwrap();
        assert_eq!(p.submit(), Ok(3));
        let mut seen = HashSet::new();
        let mut echoed = None;
        for _ in 0..3 {
            let mut cqe = wait(&mut p);
            assert!(seen.insert(cqe.user_data), "{mode:?}: one completion each");
            match cqe.user_data {
                1 => assert_eq!(cqe.result, Ok(0), "{mode:?}: connected"),
                2 => {
                    assert_eq!(cqe.result, Ok(data.len()), "{mode:?}");
                    echoed = cqe.take_vec();
                }
                3 => {
                    assert_eq!(cqe.result, Ok(data.len()), "{mode:?}: all ACKed");
                    assert!(cqe.take_vec().unwrap() == data, "the buffer comes back");
                }
                other => panic!("{other}"),
            }
        }
        assert!(echoed.unwrap() == data, "{mode:?}: the echo is intact");
        let direct = a.counters().tcp.rx_direct_bytes;
        assert!(
            direct > data.len() as u64 / 2,
            "{mode:?}: most of the echo bypassed the ring ({direct} bytes)"
        );
        p.push(Sqe::new(4, Op::Close { sock: c })).ok().unwrap();
        p.submit().unwrap();
        let cqe = wait(&mut p);
        assert_eq!((cqe.user_data, cqe.result), (4, Ok(0)));
        assert_eq!(
            a.close(c),
            Err(Errno::EBADF),
            "the close took the descriptor"
        );
        assert_eq!(server.join().unwrap(), data.len());
    }
}

#[test]
fn a_full_completion_queue_refuses_submissions_and_drops_nothing() {
    let (a, b, _link) = pair_modes(Mode::Thread, Mode::Thread, Impairments::none());
    let l = ustack::net::TcpListener::bind(&b, sa(B, 81)).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.connect(c, sa(B, 81)).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    let mut p = Proactor::new(&a, 16, 4);
    for ud in 0..6 {
        let op = Op::Recv {
            sock: c,
            buf: vec![0; 10],
            waitall: true,
        };
        p.push(Sqe::new(ud, op)).ok().unwrap();
    }
    assert_eq!(p.submit(), Ok(4), "four places in the completion queue");
    assert_eq!(p.submit(), Err(Errno::EBUSY), "no place left: refused");
    assert_eq!(p.queued(), 2, "the refused entries stay queued");
    // A cancel completes an op with its buffer: its place is reaped.
    assert_eq!(p.cancel(3), Ok(()));
    let mut cqe = wait(&mut p);
    assert_eq!((cqe.user_data, cqe.result), (3, Err(Errno::ECANCELED)));
    assert_eq!(cqe.take_vec().map(|v| v.len()), Some(10), "buffer back");
    assert_eq!(p.cancel(3), Err(Errno::ENOENT), "already completed");
    assert_eq!(p.submit(), Ok(1));
    // 50 bytes fill the five recvs in flight, in order, none lost.
    let msg: Vec<u8> = (0..50u8).collect();
    peer.write_all(&msg).unwrap();
    let mut got = Vec::new();
    let mut order = Vec::new();
    while order.len() < 5 {
        let mut cqe = wait(&mut p);
        assert_eq!(cqe.result, Ok(10));
        order.push(cqe.user_data);
        got.extend_from_slice(&cqe.take_vec().unwrap());
        let _ = p.submit();
    }
    assert_eq!(order, [0, 1, 2, 4, 5]);
    assert_eq!(got, msg);
    assert_eq!(p.in_flight(), 0);
    // Completions not reaped hold their places too.
    for ud in 10..14 {
        let op = Op::Recv {
            sock: c,
            buf: vec![0; 10],
            waitall: true,
        };
        p.push(Sqe::new(ud, op)).ok().unwrap();
    }
    assert_eq!(p.submit(), Ok(4));
    for ud in 10..14 {
        p.cancel(ud).unwrap();
    }
    assert_eq!(p.in_flight(), 0);
    p.push(Sqe::new(20, Op::Close { sock: c })).ok().unwrap();
    assert_eq!(p.submit(), Err(Errno::EBUSY), "four completions unreaped");
    for ud in 10..14 {
        let cqe = wait(&mut p);
        assert_eq!((cqe.user_data, cqe.result), (ud, Err(Errno::ECANCELED)));
    }
    assert_eq!(p.submit(), Ok(1));
    assert_eq!(wait(&mut p).user_data, 20);
}

#[test]
fn errors_complete_with_their_errno_and_the_buffer() {
    let (a, b, _link) = pair_modes(Mode::Thread, Mode::Thread, Impairments::none());
    let mut p = Proactor::new(&a, 8, 8);
    // Nobody listens on B:9.
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    p.push(Sqe::new(
        1,
        Op::Connect {
            sock: c,
            addr: sa(B, 9),
        },
    ))
    .ok()
    .unwrap();
    p.push(Sqe::new(2, Op::send(c, vec![7; 100]))).ok().unwrap();
    // A descriptor that is not open.
    p.push(Sqe::new(3, Op::send(999, vec![1; 3]))).ok().unwrap();
    p.submit().unwrap();
    let mut results = Vec::new();
    for _ in 0..3 {
        let mut cqe = wait(&mut p);
        let len = cqe.take_vec().map(|v| v.len());
        results.push((cqe.user_data, cqe.result, len));
    }
    results.sort_by_key(|r| r.0);
    assert_eq!(
        results,
        [
            (1, Err(Errno::ECONNREFUSED), None),
            (2, Err(Errno::ENOTCONN), Some(100)),
            (3, Err(Errno::EBADF), Some(3)),
        ]
    );
    // A recv waiting when its socket is closed is cancelled, buffer back.
    let l = ustack::net::TcpListener::bind(&b, sa(B, 82)).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.connect(c, sa(B, 82)).unwrap();
    let _peer = l.accept().unwrap();
    let op = Op::Recv {
        sock: c,
        buf: vec![0; 32],
        waitall: false,
    };
    p.push(Sqe::new(4, op)).ok().unwrap();
    p.push(Sqe::new(5, Op::Close { sock: c })).ok().unwrap();
    p.submit().unwrap();
    let mut r = [wait(&mut p), wait(&mut p)];
    r.sort_by_key(|c| c.user_data);
    assert_eq!(r[0].result, Err(Errno::ECANCELED));
    assert_eq!(r[0].take_vec().map(|v| v.len()), Some(32));
    assert_eq!(r[1].result, Ok(0));
    // Closed behind the proactor's back: the recv waiting ends, EBADF.
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.connect(c, sa(B, 82)).unwrap();
    let _peer = l.accept().unwrap();
    let op = Op::Recv {
        sock: c,
        buf: vec![0; 32],
        waitall: false,
    };
    p.push(Sqe::new(6, op)).ok().unwrap();
    p.submit().unwrap();
    a.close(c).unwrap();
    let cqe = wait(&mut p);
    assert_eq!((cqe.user_data, cqe.result), (6, Err(Errno::EBADF)));
}

#[test]
fn sendfile_sends_from_the_file_mapping() {
    let (a, b, _link) = pair_modes(Mode::Thread, Mode::Thread, Impairments::none());
    let l = ustack::net::TcpListener::bind(&b, sa(B, 83)).unwrap();
    let c = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.connect(c, sa(B, 83)).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    let path = std::env::temp_dir().join(format!("ustack-sendfile-{}", std::process::id()));
    let data: Vec<u8> = (0..300_001u32).map(|i| (i * 29 + i / 1000) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    // From an offset that is not page-aligned, to the end of the file.
    assert_eq!(a.sendfile(c, &file, 7, 1 << 20), Ok(data.len() - 7));
    assert_eq!(
        a.sendfile(c, &file, data.len() as u64, 10),
        Ok(0),
        "at the end"
    );
    let mut got = vec![0u8; data.len() - 7];
    peer.read_exact(&mut got).unwrap();
    assert!(got[..] == data[7..], "the file's bytes, intact");
    assert_eq!(
        a.counters().tcp.tx_zc_bytes,
        (data.len() - 7) as u64,
        "lent from the mapping, not copied into the send ring"
    );
    a.close(c).unwrap();
}
