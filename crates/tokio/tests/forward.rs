//! The proxy builders' API on the in-memory link (no root): a client
//! (10.0.0.1, gateway 10.0.0.2) reaches far addresses through a
//! transparent stack (10.0.0.2) whose forwarder relays to a server on
//! 10.0.0.3 with `copy_bidirectional`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use ustack::memnet::MemNet;
use ustack::{Mode, Runtime};
use ustack_devices::Impairments;
use ustack_tokio::forward::{ForwardOptions, TcpForwarder, UdpForwarder};
use ustack_tokio::{TcpListener, TcpStream, UdpSocket};

const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const C: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const FAR: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);
const LIMIT: Duration = Duration::from_secs(20);

/// (client, transparent relay, server).
fn hosts() -> (Runtime, Runtime, Runtime) {
    let net = MemNet::new(3, Impairments::none());
    let a = net
        .host_with(Ipv4Addr::new(10, 0, 0, 1), Mode::Thread, |c| {
            c.with_gateway(B)
        })
        .unwrap();
    let b = net
        .host_with(B, Mode::Thread, |mut c| {
            c.transparent = true;
            c
        })
        .unwrap();
    let c = net.host(C, Mode::Thread).unwrap();
    (a, b, c)
}

/// An echo server on `rt` at port 7: echoes until EOF, then shuts down.
async fn echo_server(rt: &Runtime) {
    let l = TcpListener::bind(rt, (C, 7)).await.unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            });
        }
    });
}

/// The relay: port 80 of any address goes to C:7; anything else is refused.
fn relay(b: &Runtime) {
    let fwd = TcpForwarder::bind(b, ForwardOptions::default()).unwrap();
    let b = b.clone();
    tokio::spawn(async move {
        loop {
            let p = fwd.next().await.unwrap();
            if p.dst().port() != 80 {
                p.refuse();
                continue;
            }
            assert_eq!(p.dst(), SocketAddr::from((FAR, 80)));
            assert_eq!(p.src().ip().to_string(), "10.0.0.1");
            let mut out = TcpStream::connect(&b, (C, 7)).await.unwrap();
            let mut conn = p.accept().await.unwrap();
            assert_eq!(conn.local_addr().unwrap(), SocketAddr::from((FAR, 80)));
            tokio::spawn(async move {
                tokio::io::copy_bidirectional(&mut conn, &mut out)
                    .await
                    .unwrap();
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_to_any_address_is_relayed_with_half_close_both_ways() {
    let (a, b, c) = hosts();
    echo_server(&c).await;
    relay(&b);
    let s = timeout(LIMIT, TcpStream::connect(&a, (FAR, 80)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.peer_addr().unwrap(), SocketAddr::from((FAR, 80)));
    let (mut r, mut w) = s.into_split();
    let msg: Vec<u8> = (0..300_000).map(|i| (i * 7 % 251) as u8).collect();
    let m = msg.clone();
    tokio::spawn(async move {
        w.write_all(&m).await.unwrap();
        w.shutdown().await.unwrap(); // FIN: the relay shuts C's write side
                                     // Keep the half open: our read side still gets the echo.
        tokio::time::sleep(LIMIT).await;
    });
    let mut back = Vec::new();
    timeout(LIMIT, r.read_to_end(&mut back))
        .await
        .expect("the echo ends with C's FIN carried back")
        .unwrap();
    assert!(
        back == msg,
        "relayed bytes differ ({} of {})",
        back.len(),
        msg.len()
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_refused_destination_is_refused_to_the_client() {
    let (a, b, _c) = hosts();
    relay(&b);
    let e = timeout(LIMIT, TcpStream::connect(&a, (FAR, 81)))
        .await
        .expect("refused at once, not timed out")
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test(flavor = "current_thread")]
async fn udp_to_any_address_carries_both_addresses_and_is_answered_from_the_destination() {
    let (a, b, _c) = hosts();
    let fwd = UdpForwarder::bind(&b).unwrap();
    let dns = SocketAddr::from((Ipv4Addr::new(8, 8, 8, 8), 53));
    let client = UdpSocket::bind(&a, "0.0.0.0:0").await.unwrap();
    client.send_to(b"query", dns).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, src, dst) = timeout(LIMIT, fwd.recv_from_to(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], dst), (&b"query"[..], dns));
    assert_eq!(src.ip().to_string(), "10.0.0.1");
    fwd.send_from_to(b"answer", dst, src).await.unwrap();
    let (n, from) = timeout(LIMIT, client.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&buf[..n], from), (&b"answer"[..], dns));
}

#[tokio::test(flavor = "current_thread")]
async fn without_defer_accept_gives_the_stream_with_both_addresses() {
    let (a, b, _c) = hosts();
    let opts = ForwardOptions {
        defer: false,
        ..ForwardOptions::default()
    };
    let fwd = TcpForwarder::bind(&b, opts).unwrap();
    let server = tokio::spawn(async move {
        let (mut s, src, dst) = fwd.accept().await.unwrap();
        assert_eq!(src.ip().to_string(), "10.0.0.1");
        assert_eq!(dst, SocketAddr::from((FAR, 443)));
        assert_eq!(s.local_addr().unwrap(), dst);
        assert_eq!(s.peer_addr().unwrap(), src);
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let mut c = timeout(LIMIT, TcpStream::connect(&a, (FAR, 443)))
        .await
        .unwrap()
        .unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut back = Vec::new();
    timeout(LIMIT, c.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, b"hello");
    server.await.unwrap();
}
