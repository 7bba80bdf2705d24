//! ustack-tokio's TCP and UDP on the in-memory link (no root): what a
//! tokio program sees — bytes, EOF, error kinds, addresses — on both
//! runtime flavours.

use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::time::timeout;
use ustack::memnet::{pair, MemNet};
use ustack::{Mode, Runtime};
use ustack_devices::Impairments;
use ustack_tokio::{TcpListener, TcpStream, UdpSocket};

const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Bound on any one wait, so a broken wake-up fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(20);

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

async fn echo_round_trip(a: Runtime, b: Runtime, len: usize) {
    let listener = TcpListener::bind(&b, (B, 7)).await.unwrap();
    assert_eq!(listener.local_addr().unwrap().to_string(), "10.0.0.2:7");
    let server = tokio::spawn(async move {
        let (mut s, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip().to_string(), "10.0.0.1");
        assert_eq!(s.peer_addr().unwrap(), peer);
        let (mut r, mut w) = s.split();
        let n = tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
        n
    });
    let c = timeout(LIMIT, TcpStream::connect(&a, (B, 7)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.peer_addr().unwrap().to_string(), "10.0.0.2:7");
    assert_eq!(c.local_addr().unwrap().ip().to_string(), "10.0.0.1");
    let (mut r, mut w) = c.into_split();
    let msg = pattern(len);
    let m = msg.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&m).await.unwrap();
        // Dropping the owned write half sends the FIN.
    });
    let mut back = Vec::new();
    timeout(LIMIT, r.read_to_end(&mut back))
        .await
        .expect("echo finished")
        .unwrap();
    writer.await.unwrap();
    assert!(back == msg, "echoed bytes differ ({} of {len})", back.len());
    assert_eq!(server.await.unwrap(), len as u64);
}

#[tokio::test(flavor = "current_thread")]
async fn echo_one_mebibyte_on_the_current_thread_runtime() {
    let (a, b) = pair().unwrap();
    echo_round_trip(a, b, 1 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_one_mebibyte_on_the_multi_thread_runtime() {
    let (a, b) = pair().unwrap();
    echo_round_trip(a, b, 1 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_intact_over_a_lossy_reordering_link() {
    let imp = Impairments::none()
        .with_loss(0.03)
        .with_reorder(0.05, ustack_core::Duration::from_millis(2));
    let net = MemNet::new(7, imp);
    let a = net.host(Ipv4Addr::new(10, 0, 0, 1), Mode::Thread).unwrap();
    let b = net.host(B, Mode::Thread).unwrap();
    echo_round_trip(a, b, 200_000).await;
}

#[tokio::test]
async fn refused_connect_is_connection_refused() {
    let (a, _b) = pair().unwrap();
    let e = TcpStream::connect(&a, (B, 9)).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
}

#[tokio::test]
async fn inline_runtimes_are_refused_with_a_reason() {
    let net = MemNet::new(1, Impairments::none());
    let a = net.host(Ipv4Addr::new(10, 0, 0, 1), Mode::Inline).unwrap();
    let e = TcpListener::bind(&a, "0.0.0.0:1").await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("Mode::Thread"), "{e}");
}

async fn connected(a: &Runtime, b: &Runtime, port: u16) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(b, (B, port)).await.unwrap();
    let (c, s) = timeout(LIMIT, async {
        tokio::join!(TcpStream::connect(a, (B, port)), l.accept())
    })
    .await
    .expect("connected in time");
    (c.unwrap(), s.unwrap().0)
}

#[tokio::test]
async fn shutdown_sends_fin_and_the_other_way_stays_open() {
    let (a, b) = pair().unwrap();
    let (mut c, mut s) = connected(&a, &b, 80).await;
    c.write_all(b"request").await.unwrap();
    c.shutdown().await.unwrap();
    let mut got = Vec::new();
    timeout(LIMIT, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"request", "data, then EOF");
    s.write_all(b"reply after the FIN").await.unwrap();
    drop(s);
    let mut back = Vec::new();
    timeout(LIMIT, c.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"reply after the FIN");
    let e = c.write_all(b"x").await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "write after shutdown");
}

#[tokio::test]
async fn drop_with_unread_data_resets_the_connection() {
    let (a, b) = pair().unwrap();
    let (mut c, s) = connected(&a, &b, 81).await;
    c.write_all(b"never read").await.unwrap();
    // Wait until the bytes sit unread in s's receive queue.
    let mut peek = [0u8; 16];
    timeout(LIMIT, s.peek(&mut peek)).await.unwrap().unwrap();
    let before = b.counters().tcp.abort_on_close;
    drop(s);
    assert_eq!(b.counters().tcp.abort_on_close, before + 1);
    let mut buf = [0u8; 8];
    let e = timeout(LIMIT, c.read(&mut buf))
        .await
        .unwrap()
        .expect_err("RST, not EOF");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
}

#[tokio::test]
async fn drop_with_everything_read_closes_with_fin() {
    let (a, b) = pair().unwrap();
    let (mut c, mut s) = connected(&a, &b, 82).await;
    c.write_all(b"read me").await.unwrap();
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).await.unwrap();
    drop(s);
    let mut rest = Vec::new();
    let n = timeout(LIMIT, c.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "a clean EOF");
}

#[tokio::test]
async fn linger_zero_resets_on_drop() {
    let (a, b) = pair().unwrap();
    let (mut c, s) = connected(&a, &b, 83).await;
    s.set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
    let mut buf = [0u8; 8];
    let e = timeout(LIMIT, c.read(&mut buf))
        .await
        .unwrap()
        .expect_err("RST");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn nodelay_is_set_and_read_back() {
    let (a, b) = pair().unwrap();
    let (c, _s) = connected(&a, &b, 84).await;
    assert!(!c.nodelay().unwrap());
    c.set_nodelay(true).unwrap();
    assert!(c.nodelay().unwrap());
}

#[tokio::test]
async fn peek_leaves_the_bytes_for_read() {
    let (a, b) = pair().unwrap();
    let (mut c, mut s) = connected(&a, &b, 85).await;
    c.write_all(b"hello").await.unwrap();
    let mut p = [0u8; 5];
    let mut got = 0;
    while got < 5 {
        got = timeout(LIMIT, s.peek(&mut p)).await.unwrap().unwrap();
    }
    assert_eq!(&p, b"hello");
    let mut r = [0u8; 5];
    s.read_exact(&mut r).await.unwrap();
    assert_eq!(&r, b"hello", "peek took nothing");
}

/// Counts how often the wrapped future is polled.
struct Counted<F> {
    f: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.f.as_mut().poll(cx)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_read_is_woken_by_data_not_polled_in_a_loop() {
    let (a, b) = pair().unwrap();
    let (mut c, mut s) = connected(&a, &b, 86).await;
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 4];
        let f = Counted {
            f: Box::pin(async move { s.read_exact(&mut buf).await.map(|_| buf) }),
            polls: p,
        };
        f.await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_polls = polls.load(Ordering::Relaxed);
    assert!(
        idle_polls <= 2,
        "an idle read was polled {idle_polls} times in 300 ms"
    );
    c.write_all(b"ping").await.unwrap();
    let got = timeout(LIMIT, reader).await.unwrap().unwrap().unwrap();
    assert_eq!(&got, b"ping", "the data woke the reader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_reads_and_accepts_lose_nothing() {
    let (a, b) = pair().unwrap();
    let l = TcpListener::bind(&b, (B, 87)).await.unwrap();
    // An accept cancelled before any client came: the next one still
    // gets the connection.
    assert!(timeout(Duration::from_millis(20), l.accept())
        .await
        .is_err());
    let (c, s) = tokio::join!(TcpStream::connect(&a, (B, 87)), timeout(LIMIT, l.accept()));
    let (mut c, mut s) = (c.unwrap(), s.unwrap().unwrap().0);
    let msg = pattern(300_000);
    let m = msg.clone();
    let writer = tokio::spawn(async move {
        for (i, chunk) in m.chunks(1000).enumerate() {
            c.write_all(chunk).await.unwrap();
            if i % 10 == 0 {
                // A gap the reader's timer wins.
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        }
        c.shutdown().await.unwrap();
        c
    });
    // Reads raced against a timer that often wins: each lost race drops
    // a read future.
    let mut got = Vec::new();
    let mut cancelled = 0;
    let mut buf = vec![0u8; 777];
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "transfer stalled");
        tokio::select! {
            r = s.read(&mut buf) => match r.unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(1)) => cancelled += 1,
        }
    }
    let _c = writer.await.unwrap();
    assert!(
        cancelled > 0,
        "no read was cancelled; the test proves nothing"
    );
    assert!(got == msg, "bytes lost or reordered by cancelled reads");
}

#[tokio::test]
async fn udp_send_to_recv_from_and_connected() {
    let (a, b) = pair().unwrap();
    let server = UdpSocket::bind(&b, (B, 53)).await.unwrap();
    let client = UdpSocket::bind(&a, "0.0.0.0:0").await.unwrap();
    let port = client.local_addr().unwrap().port();
    assert_ne!(port, 0, "an ephemeral port");
    client.send_to(b"query", (B, 53)).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = timeout(LIMIT, server.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"query");
    assert_eq!(from.to_string(), format!("10.0.0.1:{port}"));
    server.send_to(b"answer", from).await.unwrap();
    let (n, from) = timeout(LIMIT, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&buf[..n], from.to_string().as_str()),
        (&b"answer"[..], "10.0.0.2:53")
    );

    // Connected: send/recv, and datagrams from anyone else are not received.
    client.connect((B, 53)).await.unwrap();
    assert_eq!(client.peer_addr().unwrap().to_string(), "10.0.0.2:53");
    let other = UdpSocket::bind(&b, (B, 54)).await.unwrap();
    other
        .send_to(b"stranger", ("10.0.0.1", port))
        .await
        .unwrap();
    client.send(b"again").await.unwrap();
    let (n, from) = timeout(LIMIT, server.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"again");
    server.send_to(b"reply", from).await.unwrap();
    let n = timeout(LIMIT, client.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"reply", "the stranger's datagram was filtered");
    let unconnected = UdpSocket::bind(&a, "0.0.0.0:0").await.unwrap();
    let e = unconnected.send(b"x").await.unwrap_err();
    assert!(
        matches!(e.kind(), io::ErrorKind::NotConnected | io::ErrorKind::Other)
            || e.raw_os_error() == Some(libc_edestaddrreq()),
        "{e:?}"
    );
}

fn libc_edestaddrreq() -> i32 {
    ustack::Errno::EDESTADDRREQ.raw()
}

#[test]
fn one_stack_serves_two_runtimes_at_once() {
    // A listener on one tokio runtime, clients on another.
    let (a, b) = pair().unwrap();
    let server_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let l = server_rt.block_on(TcpListener::bind(&b, (B, 88))).unwrap();
    let server = std::thread::spawn(move || {
        server_rt.block_on(async move {
            for _ in 0..3 {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 5];
                    s.read_exact(&mut buf).await.unwrap();
                    s.write_all(&buf).await.unwrap();
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        })
    });
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    client_rt.block_on(async move {
        let mut tasks = Vec::new();
        for i in 0..3u8 {
            let a = a.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = TcpStream::connect(&a, (B, 88)).await.unwrap();
                c.write_all(&[i; 5]).await.unwrap();
                let mut back = [0u8; 5];
                timeout(LIMIT, c.read_exact(&mut back))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(back, [i; 5]);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    server.join().unwrap();
}

#[tokio::test]
async fn poll_peek_reports_pending_then_ready() {
    let (a, b) = pair().unwrap();
    let (mut c, s) = connected(&a, &b, 89).await;
    let mut storage = [0u8; 8];
    let mut rb = ReadBuf::new(&mut storage);
    let waker = std::task::Waker::noop();
    let mut cx = Context::from_waker(waker);
    assert!(
        s.poll_peek(&mut cx, &mut rb).is_pending(),
        "nothing sent yet"
    );
    c.write_all(b"abc").await.unwrap();
    let n = timeout(
        LIMIT,
        std::future::poll_fn(|cx| {
            let mut rb = ReadBuf::new(&mut storage);
            s.poll_peek(cx, &mut rb)
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&storage[..n], b"abc");
}

/// Two hosts whose stacks are driven by tasks on the current tokio runtime
/// (`ustack_tokio::drive`), not by stack threads.
fn reactor_pair() -> (Runtime, Runtime) {
    let net = MemNet::new(3, Impairments::none());
    let a = net
        .host(Ipv4Addr::new(10, 0, 0, 1), Mode::External)
        .unwrap();
    let b = net.host(B, Mode::External).unwrap();
    tokio::spawn(ustack_tokio::drive(a.clone()));
    tokio::spawn(ustack_tokio::drive(b.clone()));
    (a, b)
}

#[tokio::test(flavor = "current_thread")]
async fn reactor_driven_echo_on_the_current_thread_runtime() {
    let (a, b) = reactor_pair();
    echo_round_trip(a, b, 1 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactor_driven_echo_on_the_multi_thread_runtime() {
    let (a, b) = reactor_pair();
    echo_round_trip(a, b, 1 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactor_driven_refusal_reset_and_timers() {
    let (a, b) = reactor_pair();
    let e = timeout(LIMIT, TcpStream::connect(&a, (B, 9)))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    let (mut c, s) = connected(&a, &b, 90).await;
    c.write_all(b"unread").await.unwrap();
    let mut p = [0u8; 6];
    timeout(LIMIT, s.peek(&mut p)).await.unwrap().unwrap();
    drop(s);
    let mut buf = [0u8; 8];
    let e = timeout(LIMIT, c.read(&mut buf))
        .await
        .unwrap()
        .expect_err("RST");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
    // A blocking caller beside the driver: woken by it.
    let l = TcpListener::bind(&b, (B, 91)).await.unwrap();
    let a2 = a.clone();
    let blocking = tokio::task::spawn_blocking(move || {
        let mut s = ustack::net::TcpStream::connect(&a2, (B, 91)).unwrap();
        std::io::Write::write_all(&mut s, b"from a thread").unwrap();
    });
    let (mut s, _) = timeout(LIMIT, l.accept()).await.unwrap().unwrap();
    let mut got = Vec::new();
    timeout(LIMIT, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"from a thread");
    blocking.await.unwrap();
}

#[tokio::test]
async fn drive_refuses_a_runtime_with_a_stack_thread() {
    let (a, _b) = pair().unwrap();
    let e = ustack_tokio::drive(a).await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}
