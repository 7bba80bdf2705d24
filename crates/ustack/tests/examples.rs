//! Every example runs here, and the epoll ET server holds 10 000
//! concurrent connections with every echo checked.

// Each example includes the shared module itself, as a standalone program must.
#![allow(clippy::duplicate_mod)]

#[path = "../examples/connect_async.rs"]
mod connect_async;
#[path = "../examples/echo_epoll.rs"]
mod echo_epoll;
#[path = "../examples/echo_nonblocking.rs"]
mod echo_nonblocking;
#[path = "../examples/echo_poll.rs"]
mod echo_poll;
#[path = "../examples/echo_proactor.rs"]
mod echo_proactor;
#[path = "../examples/echo_sigio.rs"]
mod echo_sigio;
#[path = "../examples/echo_threads.rs"]
mod echo_threads;
#[path = "../examples/halfclose.rs"]
mod halfclose;
#[path = "../examples/tun_echo_server.rs"]
mod tun_echo_server;

use std::collections::HashMap;
use std::time::{Duration, Instant};
use ustack::epoll::*;
use ustack::posix::*;
use ustack::Errno;

#[test]
fn echo_servers_echo_every_byte() {
    assert_eq!(echo_threads::run(4, 20, 700), Ok(4 * 20 * 700));
    assert_eq!(echo_poll::run(8, 20, 700), Ok(8 * 20 * 700));
    assert_eq!(echo_epoll::run(8, 20, 700), Ok(8 * 20 * 700));
    assert_eq!(echo_proactor::run(8, 20, 700), Ok(8 * 20 * 700));
}

#[test]
fn the_nonblocking_and_signal_driven_servers_echo_every_byte() {
    assert_eq!(echo_nonblocking::run(8, 20, 700), Ok(8 * 20 * 700));
    assert_eq!(echo_sigio::run(8, 20, 700), Ok(8 * 20 * 700));
}

#[test]
fn connect_async_reports_each_outcome() {
    let r = connect_async::run().unwrap();
    assert_eq!(r, [Ok(()), Err(Errno::ECONNREFUSED), Err(Errno::ETIMEDOUT)]);
}

#[test]
fn halfclose_reply_arrives_after_fin() {
    let data: Vec<u8> = (0..50_000u32).map(|i| (i % 253) as u8).collect();
    let sum: u64 = data.iter().map(|&b| u64::from(b)).sum();
    assert_eq!(
        halfclose::run(&data).unwrap(),
        format!("50000 bytes, sum {sum}\n")
    );
}

#[test]
fn epoll_server_holds_10_000_concurrent_connections() {
    const N: usize = 10_000;
    let (client, server_rt) = ustack::memnet::pair().unwrap();
    let l = server_rt.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    server_rt
        .bind(l, echo_epoll::common::server_addr())
        .unwrap();
    server_rt.listen(l, 4096).unwrap();
    let server = std::thread::spawn(move || echo_epoll::serve(&server_rt, l, N));

    // One client thread, non-blocking sockets, its own epoll.
    let ep = client.epoll_create1(0).unwrap();
    let msg = |i: usize| -> [u8; 64] { std::array::from_fn(|k| (i * 7 + k) as u8) };
    // fd -> (connection number, bytes sent, bytes echoed so far)
    let mut conns: HashMap<i32, (usize, bool, Vec<u8>)> = HashMap::new();
    for i in 0..N {
        let fd = client
            .socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)
            .unwrap();
        assert_eq!(
            client.connect(fd, echo_epoll::common::server_addr()),
            Err(Errno::EINPROGRESS)
        );
        client
            .epoll_ctl(
                ep,
                EPOLL_CTL_ADD,
                fd,
                Some(EpollEvent::new(EPOLLIN | EPOLLOUT | EPOLLET, fd as u64)),
            )
            .unwrap();
        conns.insert(fd, (i, false, Vec::new()));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut events = vec![EpollEvent::new(0, 0); 1024];
    let mut verified = 0;
    let mut open = N;
    let mut buf = [0u8; 128];
    while open > 0 {
        assert!(
            Instant::now() < deadline,
            "{verified} of {N} verified before the deadline"
        );
        let n = client.epoll_wait(ep, &mut events, 1000).unwrap();
        for ev in &events[..n] {
            let fd = ev.data as i32;
            let Some((i, sent, got)) = conns.get_mut(&fd) else {
                continue;
            };
            assert_eq!(ev.events & EPOLLERR, 0, "connection {i} failed");
            if ev.events & EPOLLOUT != 0 && !*sent {
                assert_eq!(client.write(fd, &msg(*i)), Ok(64));
                *sent = true;
            }
            let before = got.len();
            loop {
                match client.read(fd, &mut buf) {
                    Ok(0) => break,
                    Ok(k) => got.extend_from_slice(&buf[..k]),
                    Err(Errno::EAGAIN) => break,
                    Err(e) => panic!("connection {i}: {e}"),
                }
            }
            // Count a connection once: when its echo becomes complete (a
            // later edge may report the same socket again, as Linux's would).
            if before < 64 && got.len() >= 64 {
                assert_eq!(got[..], msg(*i)[..], "connection {i} echo");
                verified += 1;
            }
        }
        // Close only once all echoes are in: all N are concurrent at the peak.
        if verified == N && open == N {
            for &fd in conns.keys() {
                client.close(fd).unwrap();
            }
            open = 0;
        }
    }
    assert_eq!(verified, N);
    let most = server.join().unwrap().unwrap();
    assert!(most > 1, "the server got batches of events: {most}");
}

#[test]
fn tun_echo_server_echoes_a_kernel_client_in_a_namespace() {
    if !ustack_testkit::lab_available(&["python3"], "apt-get install iproute2 python3") {
        return;
    }
    let name = format!("ustack-example-{}", std::process::id());
    // Removes the namespace even if the server thread, blocked in accept
    // after a failure, still holds it (declared first: dropped last).
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", &self.0])
                .output();
        }
    }
    let _cleanup = Cleanup(name.clone());
    let ns = std::sync::Arc::new(ustack::NetNs::create(&name).expect("create a network namespace"));
    let (done, served) = std::sync::mpsc::channel();
    let server_ns = ns.clone();
    std::thread::spawn(move || {
        let r = tun_echo_server::serve("ustk0", Some(&server_ns), 1);
        let _ = done.send(r.map_err(|e| e.to_string()));
    });
    // The kernel's client, in the namespace, retrying until the server listens.
    let client = r#"
import socket, sys, time
for _ in range(100):
    try:
        c = socket.create_connection(("10.202.0.2", 7), timeout=5)
        break
    except OSError:
        time.sleep(0.05)
c.sendall(b"hello, ustack\n" * 1000)
c.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = c.recv(65536)
    if not d:
        break
    got += d
sys.stdout.write("%d %s" % (len(got), got == b"hello, ustack\n" * 1000))
"#;
    let out = ns
        .command("timeout")
        .args(["30", "python3", "-c", client])
        .output()
        .expect("run python3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "14000 True",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        served.recv_timeout(Duration::from_secs(30)),
        Ok(Ok(())),
        "the server returns after its one client"
    );
}

#[test]
fn the_readme_shows_the_tun_echo_servers_code() {
    let readme = include_str!("../../../README.md");
    let example = include_str!("../examples/tun_echo_server.rs");
    let start = example.find("use std::io").unwrap();
    let end = example.find("#[allow(dead_code)]").unwrap();
    let code = example[start..end].trim_end();
    assert!(
        readme.contains(code),
        "README's \"Use ustack in your program\" must show examples/tun_echo_server.rs from `use` to the end of `serve`:\n{code}"
    );
}
