//! KcpSession (the tokio API) on ustack's UDP on the in-memory link with
//! seeded 5% loss each way: messages both ways at once, every one intact
//! and in order, between two sessions on both runtime flavours, and
//! against the `kcp` crate (a port of ikcp.c) on another host.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::time::timeout;
use ustack::memnet::MemNet;
use ustack::{Mode, Runtime};
use ustack_devices::Impairments;
use ustack_kcp::{Config, KcpSession};

/// Bound on a whole exchange, so a lost wake-up fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(120);

fn message(i: u32, dir: u8) -> Vec<u8> {
    let len = 1 + (i.wrapping_mul(2_654_435_761) % 2500) as usize;
    (0..len)
        .map(|k| (k as u32 ^ i.wrapping_mul(131) ^ u32::from(dir)) as u8)
        .collect()
}

fn addr(host: u8) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, host), 4000))
}

fn lossy_net(seed: u64) -> (MemNet, Runtime, Runtime) {
    let net = MemNet::new(
        seed,
        Impairments::none()
            .with_loss(0.05)
            .with_delay(Duration::from_millis(5)),
    );
    let a = net.host(Ipv4Addr::new(10, 0, 0, 1), Mode::Thread).unwrap();
    let b = net.host(Ipv4Addr::new(10, 0, 0, 2), Mode::Thread).unwrap();
    (net, a, b)
}

/// Sends `n` messages tagged `dir` and receives `n` from the peer, from
/// two tasks sharing the session; returns what was received.
async fn run_side(s: Arc<KcpSession>, n: u32, dir: u8) -> Vec<Vec<u8>> {
    let tx = s.clone();
    let sender = tokio::spawn(async move {
        for i in 0..n {
            tx.send(&message(i, dir)).await.unwrap();
        }
        tx.flush().await.unwrap();
    });
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while got.len() < n as usize {
        let len = s.recv(&mut buf).await.unwrap();
        got.push(buf[..len].to_vec());
    }
    sender.await.unwrap();
    got
}

async fn two_sessions(seed: u64, cfg: Config, n: u32) {
    let (_net, a, b) = lossy_net(seed);
    let sa = Arc::new(
        KcpSession::bind(&a, addr(1), addr(2), 9, cfg)
            .await
            .unwrap(),
    );
    let sb = Arc::new(
        KcpSession::bind(&b, addr(2), addr(1), 9, cfg)
            .await
            .unwrap(),
    );
    let t0 = Instant::now();
    let (ga, gb) = timeout(LIMIT, async {
        tokio::join!(run_side(sa.clone(), n, 1), run_side(sb.clone(), n, 2))
    })
    .await
    .expect("both ways done in time");
    let want_a: Vec<Vec<u8>> = (0..n).map(|i| message(i, 2)).collect();
    let want_b: Vec<Vec<u8>> = (0..n).map(|i| message(i, 1)).collect();
    assert!(ga == want_a, "b -> a: a message differs or is out of order");
    assert!(gb == want_b, "a -> b: a message differs or is out of order");
    let st = sa.with_kcp(|k| k.stats());
    assert!(st.timeout_retransmits + st.fast_retransmits > 0, "{st:?}");
    assert_eq!(sa.ignored(), Default::default());
    eprintln!("{n} messages each way in {:?}; a {st:?}", t0.elapsed());
}

#[tokio::test(flavor = "current_thread")]
async fn nodelay_both_ways_5pct_loss_current_thread() {
    two_sessions(21, Config::fast().with_windows(128, 128), 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodelay_both_ways_5pct_loss_multi_thread() {
    two_sessions(22, Config::fast().with_windows(128, 128), 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_mode_both_ways_5pct_loss() {
    two_sessions(23, Config::normal().with_windows(128, 128), 60).await;
}

#[tokio::test(flavor = "current_thread")]
async fn stream_mode_bytes_intact() {
    let (_net, a, b) = lossy_net(24);
    let cfg = Config::fast().with_windows(128, 128).with_stream(true);
    let sa = KcpSession::bind(&a, addr(1), addr(2), 9, cfg)
        .await
        .unwrap();
    let sb = KcpSession::bind(&b, addr(2), addr(1), 9, cfg)
        .await
        .unwrap();
    let want: Vec<u8> = (0..200u32).flat_map(|i| message(i, 3)).collect();
    let got = timeout(LIMIT, async {
        let send = async {
            for c in want.chunks(777) {
                sa.send(c).await.unwrap();
            }
            sa.flush().await.unwrap();
        };
        let recv = async {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            while got.len() < want.len() {
                let n = sb.recv(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got
        };
        tokio::join!(send, recv).1
    })
    .await
    .expect("done in time");
    assert!(
        got == want,
        "stream bytes differ ({} of {})",
        got.len(),
        want.len()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_too_small_buffer_is_an_error_and_the_message_stays() {
    let (_net, a, b) = lossy_net(25);
    let cfg = Config::fast();
    let sa = KcpSession::bind(&a, addr(1), addr(2), 9, cfg)
        .await
        .unwrap();
    let sb = KcpSession::bind(&b, addr(2), addr(1), 9, cfg)
        .await
        .unwrap();
    sa.send(&[7u8; 100]).await.unwrap();
    let mut small = [0u8; 10];
    let e = timeout(LIMIT, sb.recv(&mut small))
        .await
        .unwrap()
        .expect_err("a 100-byte message does not fit in 10 bytes");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("100 bytes"), "{e}");
    let mut big = [0u8; 200];
    let n = timeout(LIMIT, sb.recv(&mut big)).await.unwrap().unwrap();
    assert_eq!(&big[..n], &[7u8; 100][..]);
}

/// The reference's output: one UDP datagram per write.
struct Out(Arc<ustack::net::UdpSocket>, SocketAddr);
impl Write for Out {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send_to(b, self.1);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `kcp` crate on host b, on its own thread, in nodelay mode: sends
/// `n` messages, collects what comes, lingers to acknowledge the last.
fn reference_peer(
    b: &Runtime,
    n: u32,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
) -> std::thread::JoinHandle<bool> {
    let bsock = Arc::new(ustack::net::UdpSocket::bind(b, addr(2)).unwrap());
    std::thread::spawn(move || {
        let mut k = kcp::Kcp::new(9, Out(bsock.clone(), addr(1)));
        k.set_nodelay(true, 10, 2, true);
        k.set_wndsize(128, 128);
        bsock
            .set_read_timeout(Some(Duration::from_millis(2)))
            .unwrap();
        let start = Instant::now();
        let mut next = 0;
        let mut buf = vec![0u8; 65536];
        let mut finished_at = None;
        while start.elapsed() < LIMIT {
            while next < n && k.wait_snd() < 128 {
                k.send(&message(next, 2)).unwrap();
                next += 1;
            }
            for _ in 0..64 {
                let Ok((len, from)) = bsock.recv_from(&mut buf) else {
                    break;
                };
                if from == addr(1) {
                    k.input(&buf[..len]).unwrap();
                }
            }
            k.update(start.elapsed().as_millis() as u32).unwrap();
            while let Ok(len) = k.recv(&mut buf) {
                got.lock().unwrap().push(buf[..len].to_vec());
            }
            let done = got.lock().unwrap().len() == n as usize && next == n && k.wait_snd() == 0;
            match (done, finished_at) {
                (true, None) => finished_at = Some(Instant::now()),
                (true, Some(t)) if t.elapsed() > Duration::from_millis(500) => return true,
                _ => {}
            }
        }
        false
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_the_kcp_crate_both_ways_5pct_loss() {
    let n = 300;
    let (_net, a, b) = lossy_net(26);
    let got_by_ref = Arc::new(Mutex::new(Vec::new()));
    let peer = reference_peer(&b, n, got_by_ref.clone());
    let s = Arc::new(
        KcpSession::bind(
            &a,
            addr(1),
            addr(2),
            9,
            Config::fast().with_windows(128, 128),
        )
        .await
        .unwrap(),
    );
    let got = timeout(LIMIT, run_side(s.clone(), n, 1))
        .await
        .expect("done in time");
    // Keep the session (and its ACKs) up until the reference is done.
    let finished = tokio::task::spawn_blocking(move || peer.join().unwrap())
        .await
        .unwrap();
    assert!(
        finished,
        "the reference got everything and its data was acknowledged"
    );
    let want: Vec<Vec<u8>> = (0..n).map(|i| message(i, 2)).collect();
    assert!(
        got == want,
        "reference -> ours: a message differs or is out of order"
    );
    let want_ref: Vec<Vec<u8>> = (0..n).map(|i| message(i, 1)).collect();
    assert!(
        *got_by_ref.lock().unwrap() == want_ref,
        "ours -> reference: a message differs or is out of order"
    );
    drop(s);
}

/// AsyncRead/AsyncWrite in stream mode: `write_all` a buffer each way
/// while `read_exact` takes the other's, reads of odd sizes.
async fn stream_io_both_ways(seed: u64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_net, a, b) = lossy_net(seed);
    let cfg = Config::fast().with_windows(128, 128).with_stream(true);
    let sa = KcpSession::bind(&a, addr(1), addr(2), 9, cfg)
        .await
        .unwrap();
    let sb = KcpSession::bind(&b, addr(2), addr(1), 9, cfg)
        .await
        .unwrap();
    let data = |dir: u8| -> Vec<u8> { (0..150u32).flat_map(|i| message(i, dir)).collect() };
    // Reader and writer each in a task of their own, so each waits on its
    // own wake-up.
    let side = |s: KcpSession, mine: Vec<u8>, theirs_len: usize| async move {
        let (mut r, mut w) = tokio::io::split(s);
        let writer = tokio::spawn(async move {
            w.write_all(&mine).await.unwrap();
            // flush: until the peer acknowledged every byte.
            w.flush().await.unwrap();
            w
        });
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; theirs_len];
            let mut at = 0;
            let mut step = 1;
            while at < got.len() {
                let end = (at + step).min(got.len());
                r.read_exact(&mut got[at..end]).await.unwrap();
                at = end;
                step = step % 997 + 13;
            }
            (got, r)
        });
        let (got, r) = reader.await.unwrap();
        let w = writer.await.unwrap();
        (got, r, w)
    };
    let (da, db) = (data(1), data(2));
    let ((ga, ..), (gb, ..)) = timeout(LIMIT, async {
        tokio::join!(
            side(sa, da.clone(), db.len()),
            side(sb, db.clone(), da.len())
        )
    })
    .await
    .expect("done in time");
    assert!(ga == db, "b -> a: the byte stream differs");
    assert!(gb == da, "a -> b: the byte stream differs");
}

#[tokio::test(flavor = "current_thread")]
async fn async_read_write_stream_both_ways_current_thread() {
    stream_io_both_ways(27).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_read_write_stream_both_ways_multi_thread() {
    stream_io_both_ways(28).await;
}
