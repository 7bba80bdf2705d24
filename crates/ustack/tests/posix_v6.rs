//! AF_INET6 sockets through the POSIX calls and the std-like types, over
//! an in-memory link: dual-stack listeners with v4-mapped peers
//! (RFC 4291 §2.5.5.2, RFC 3493 §5.3), IPV6_V6ONLY, IPV6_UNICAST_HOPS,
//! and Linux's errno values.

mod common;

use common::{pair_config, sa, A, B};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use ustack::posix::*;
use ustack::{Errno, Mode, OptVal, Runtime};
use ustack_devices::Impairments;

const A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn pair6() -> (Runtime, Runtime) {
    let (a, b, _) = pair_config(Mode::Thread, Mode::Thread, Impairments::none(), |c| {
        let me = if c.addr.address() == A {
            "fd00::1/64"
        } else {
            "fd00::2/64"
        };
        c.with_addr6(me.parse().unwrap())
    });
    (a, b)
}

fn sa6(ip: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0))
}

fn mapped(ip: std::net::Ipv4Addr, port: u16) -> SocketAddr {
    sa6(ip.to_ipv6_mapped(), port)
}

#[test]
fn dual_stack_listener_accepts_both_versions_with_mapped_peers() {
    let (a, b) = pair6();
    let l = b.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    b.bind(l, sa6(Ipv6Addr::UNSPECIFIED, 80)).unwrap();
    b.listen(l, 8).unwrap();
    assert_eq!(b.getsockname(l), Ok(sa6(Ipv6Addr::UNSPECIFIED, 80)));
    assert_eq!(
        b.getsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY),
        Ok(OptVal::Int(0)),
        "off by default, as Linux"
    );
    // Over IPv6.
    let c6 = a.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    a.connect(c6, sa6(B6, 80)).unwrap();
    let (s6, peer) = b.accept(l).unwrap();
    assert_eq!(peer, a.getsockname(c6).unwrap());
    assert_eq!(peer.ip(), IpAddr::V6(A6));
    assert_eq!(a.getpeername(c6), Ok(sa6(B6, 80)));
    a.send(c6, b"over six", 0).unwrap();
    let mut buf = [0u8; 32];
    let n = b.recv(s6, &mut buf, 0).unwrap();
    assert_eq!(&buf[..n], b"over six");
    // Over IPv4 to the same listener: the peer as ::ffff:10.0.0.1.
    let c4 = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    a.connect(c4, sa(B, 80)).unwrap();
    let (s4, peer) = b.accept(l).unwrap();
    let port = a.getsockname(c4).unwrap().port();
    assert_eq!(peer, mapped(A, port));
    assert_eq!(b.getsockname(s4), Ok(mapped(B, 80)));
    assert_eq!(b.getpeername(s4), Ok(mapped(A, port)));
    b.send(s4, b"over four", 0).unwrap();
    let n = a.recv(c4, &mut buf, 0).unwrap();
    assert_eq!(&buf[..n], b"over four");
    // An AF_INET6 socket reaches an IPv4 server through a mapped address.
    let c46 = a.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    a.connect(c46, mapped(B, 80)).unwrap();
    let (_, peer) = b.accept(l).unwrap();
    assert_eq!(peer.port(), a.getsockname(c46).unwrap().port());
    assert_eq!(a.getpeername(c46), Ok(mapped(B, 80)));
}

#[test]
fn v6only_listener_refuses_ipv4() {
    let (a, b) = pair6();
    let l = b.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    b.setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, OptVal::Int(1))
        .unwrap();
    assert_eq!(
        b.getsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY),
        Ok(OptVal::Int(1))
    );
    b.bind(l, sa6(Ipv6Addr::UNSPECIFIED, 81)).unwrap();
    assert_eq!(
        b.setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, OptVal::Int(0)),
        Err(Errno::EINVAL),
        "not once bound"
    );
    b.listen(l, 8).unwrap();
    let c4 = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(a.connect(c4, sa(B, 81)), Err(Errno::ECONNREFUSED));
    let c6 = a.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    a.connect(c6, sa6(B6, 81)).unwrap();
    // A v6-only socket has no IPv4: a mapped address does not reach.
    let m = a.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    a.setsockopt(m, IPPROTO_IPV6, IPV6_V6ONLY, OptVal::Int(1))
        .unwrap();
    assert_eq!(a.connect(m, mapped(B, 81)), Err(Errno::ENETUNREACH));
    assert_eq!(a.bind(m, mapped(A, 0)), Err(Errno::EINVAL));
}

#[test]
fn closed_v6_port_is_refused() {
    let (a, _b) = pair6();
    let c = a.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    assert_eq!(a.connect(c, sa6(B6, 9)), Err(Errno::ECONNREFUSED));
}

#[test]
fn errno_values_as_linux() {
    let (a, _b) = pair6();
    assert_eq!(
        a.socket(libc::AF_UNIX, SOCK_STREAM, 0),
        Err(Errno::EAFNOSUPPORT)
    );
    assert_eq!(
        a.socket(libc::AF_PACKET, SOCK_DGRAM, 0),
        Err(Errno::EAFNOSUPPORT)
    );
    let t4 = a.socket(AF_INET, SOCK_STREAM, 0).unwrap();
    assert_eq!(a.bind(t4, sa6(A6, 80)), Err(Errno::EAFNOSUPPORT));
    assert_eq!(a.connect(t4, sa6(B6, 80)), Err(Errno::EAFNOSUPPORT));
    assert_eq!(
        a.setsockopt(t4, IPPROTO_IPV6, IPV6_V6ONLY, OptVal::Int(1)),
        Err(Errno::ENOPROTOOPT)
    );
    let u4 = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    assert_eq!(
        a.sendto(u4, b"x", 0, Some(sa6(B6, 53))),
        Err(Errno::EAFNOSUPPORT)
    );
    let t6 = a.socket(AF_INET6, SOCK_STREAM, 0).unwrap();
    // tcp_v6_connect: a sockaddr_in to an AF_INET6 TCP socket.
    assert_eq!(a.connect(t6, sa(B, 80)), Err(Errno::EAFNOSUPPORT));
    assert_eq!(a.bind(t6, sa(A, 80)), Err(Errno::EAFNOSUPPORT));
    assert_eq!(a.bind(t6, sa6(B6, 80)), Err(Errno::EADDRNOTAVAIL));
    // IPV6_UNICAST_HOPS: 0..=255, -1 the default (64).
    assert_eq!(
        a.setsockopt(t6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, OptVal::Int(256)),
        Err(Errno::EINVAL)
    );
    a.setsockopt(t6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, OptVal::Int(7))
        .unwrap();
    assert_eq!(
        a.getsockopt(t6, IPPROTO_IPV6, IPV6_UNICAST_HOPS),
        Ok(OptVal::Int(7))
    );
    a.setsockopt(t6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, OptVal::Int(-1))
        .unwrap();
    assert_eq!(
        a.getsockopt(t6, IPPROTO_IPV6, IPV6_UNICAST_HOPS),
        Ok(OptVal::Int(64))
    );
    // A v6-only UDP socket and an IPv4 peer: connect says EAFNOSUPPORT,
    // sendto ENETUNREACH (ip6_datagram_connect, udpv6_sendmsg).
    let u6 = a.socket(AF_INET6, SOCK_DGRAM, 0).unwrap();
    a.setsockopt(u6, IPPROTO_IPV6, IPV6_V6ONLY, OptVal::Int(1))
        .unwrap();
    assert_eq!(a.connect(u6, sa(B, 53)), Err(Errno::EAFNOSUPPORT));
    assert_eq!(
        a.sendto(u6, b"x", 0, Some(sa(B, 53))),
        Err(Errno::ENETUNREACH)
    );
    assert_eq!(
        a.sendto(u6, b"x", 0, Some(mapped(B, 53))),
        Err(Errno::ENETUNREACH)
    );
    assert_eq!(a.bind(u6, sa(A, 53)), Err(Errno::EAFNOSUPPORT));
}

#[test]
fn udp_v6_and_mapped_round_trips() {
    let (a, b) = pair6();
    let s = b.socket(AF_INET6, SOCK_DGRAM, 0).unwrap();
    b.bind(s, sa6(Ipv6Addr::UNSPECIFIED, 53)).unwrap();
    let mut buf = [0u8; 64];
    // From an AF_INET6 socket over IPv6.
    let c6 = a.socket(AF_INET6, SOCK_DGRAM, 0).unwrap();
    a.sendto(c6, b"six", 0, Some(sa6(B6, 53))).unwrap();
    let (n, from) = b.recvfrom(s, &mut buf, 0).unwrap();
    assert_eq!(&buf[..n], b"six");
    let from = from.unwrap();
    assert_eq!(from.ip(), IpAddr::V6(A6));
    b.sendto(s, b"back", 0, Some(from)).unwrap();
    let (n, back) = a.recvfrom(c6, &mut buf, 0).unwrap();
    assert_eq!((&buf[..n], back), (&b"back"[..], Some(sa6(B6, 53))));
    // From an AF_INET socket: the sender as ::ffff:10.0.0.1, answered there.
    let c4 = a.socket(AF_INET, SOCK_DGRAM, 0).unwrap();
    a.sendto(c4, b"four", 0, Some(sa(B, 53))).unwrap();
    let (n, from) = b.recvfrom(s, &mut buf, 0).unwrap();
    assert_eq!(&buf[..n], b"four");
    let from = from.unwrap();
    assert_eq!(from, mapped(A, a.getsockname(c4).unwrap().port()));
    b.sendto(s, b"mapped", 0, Some(from)).unwrap();
    let (n, back) = a.recvfrom(c4, &mut buf, 0).unwrap();
    assert_eq!((&buf[..n], back), (&b"mapped"[..], Some(sa(B, 53))));
}

#[test]
fn std_like_types_over_ipv6() {
    let (a, b) = pair6();
    let l = ustack::net::TcpListener::bind(&b, "[::]:8080").unwrap();
    assert!(l.local_addr().unwrap().is_ipv6());
    let t = std::thread::spawn(move || {
        let (mut s, peer) = l.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        peer
    });
    let mut c = ustack::net::TcpStream::connect(&a, "[fd00::2]:8080").unwrap();
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    assert_eq!(t.join().unwrap(), c.local_addr().unwrap());
    let u = ustack::net::UdpSocket::bind(&b, "[::]:5300").unwrap();
    let v = ustack::net::UdpSocket::bind(&a, "[::]:0").unwrap();
    v.send_to(b"dgram", "[fd00::2]:5300").unwrap();
    let (n, from) = u.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from.ip()), (&b"dgram"[..], IpAddr::V6(A6)));
}
