//! ustack-tokio over IPv6 on the in-memory link (no root): a dual-stack
//! `[::]` listener takes IPv6 and IPv4 clients (the latter v4-mapped,
//! RFC 4291 §2.5.5.2), and UDP over IPv6.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;
use ustack::memnet::MemNet;
use ustack::{Mode, Runtime};
use ustack_devices::Impairments;
use ustack_tokio::{TcpListener, TcpStream, UdpSocket};

const LIMIT: Duration = Duration::from_secs(20);

fn pair6() -> (Runtime, Runtime) {
    let net = MemNet::new(6, Impairments::none());
    let host = |v4: [u8; 4], v6: &str| {
        net.host_with(Ipv4Addr::from(v4), Mode::Thread, |c| {
            c.with_addr6(v6.parse().unwrap())
        })
        .unwrap()
    };
    (
        host([10, 0, 0, 1], "fd00::1/64"),
        host([10, 0, 0, 2], "fd00::2/64"),
    )
}

#[tokio::test]
async fn dual_stack_listener_and_udp_over_ipv6() {
    let (a, b) = pair6();
    let listener = TcpListener::bind(&b, "[::]:80").await.unwrap();
    assert!(listener.local_addr().unwrap().is_ipv6());
    let server = tokio::spawn(async move {
        let mut peers = Vec::new();
        for _ in 0..2 {
            let (mut s, peer) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
            peers.push(peer);
        }
        peers
    });
    for target in ["[fd00::2]:80", "10.0.0.2:80"] {
        let mut c = timeout(LIMIT, TcpStream::connect(&a, target))
            .await
            .unwrap()
            .unwrap();
        c.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        timeout(LIMIT, c.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"ping", "{target}");
    }
    let peers = server.await.unwrap();
    assert_eq!(peers[0].ip(), "fd00::1".parse::<IpAddr>().unwrap());
    assert_eq!(
        peers[1].ip(),
        IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped())
    );
    let u = UdpSocket::bind(&b, "[::]:53").await.unwrap();
    let v = UdpSocket::bind(&a, "[::]:0").await.unwrap();
    v.send_to(b"query", "[fd00::2]:53").await.unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = timeout(LIMIT, u.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"query");
    assert_eq!(
        from.ip(),
        IpAddr::V6("fd00::1".parse::<Ipv6Addr>().unwrap())
    );
    u.send_to(b"answer", from).await.unwrap();
    let (n, from) = timeout(LIMIT, v.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (&buf[..n], from),
        (
            &b"answer"[..],
            SocketAddr::from(("fd00::2".parse::<Ipv6Addr>().unwrap(), 53))
        )
    );
}
