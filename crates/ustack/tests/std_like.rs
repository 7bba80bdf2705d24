//! Code written for std::net, ported by changing its imports.

mod common;

use common::{pair, B};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;
use ustack::net::{TcpListener, TcpStream, UdpSocket};
use ustack::Mode;

#[test]
fn echo_over_tcp_with_std_shapes() {
    let (a, b) = pair(Mode::Thread);
    let listener = TcpListener::bind(&b, "10.0.0.2:7").unwrap();
    assert_eq!(listener.local_addr().unwrap().to_string(), "10.0.0.2:7");
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip().to_string(), "10.0.0.1");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        buf.len()
    });
    let mut c = TcpStream::connect(&a, (B, 7)).unwrap();
    c.set_nodelay(true).unwrap();
    let msg: Vec<u8> = (0..100_000u32).map(|i| (i % 256) as u8).collect();
    c.write_all(&msg).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert_eq!(back, msg, "half-close round trip");
    assert_eq!(server.join().unwrap(), msg.len());
    assert!(c.tcp_info().unwrap().rtt > Duration::ZERO);
}

#[test]
fn nonblocking_and_timeouts_map_to_io_error_kinds() {
    let (a, b) = pair(Mode::Thread);
    let listener = TcpListener::bind(&b, "10.0.0.2:8").unwrap();
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    let c = TcpStream::connect(&a, (B, 8)).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    assert_eq!(c.read_timeout().unwrap(), Some(Duration::from_millis(30)));
    assert_eq!(
        (&c).read(&mut [0u8; 4]).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert!(c.set_read_timeout(Some(Duration::ZERO)).is_err());
    let refused = TcpStream::connect(&a, (B, 9)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn udp_with_std_shapes() {
    let (a, b) = pair(Mode::Thread);
    let server = UdpSocket::bind(&b, "0.0.0.0:53").unwrap();
    let client = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    client.connect("10.0.0.2:53").unwrap();
    client.send(b"query").unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"query");
    server.send_to(b"answer", from).unwrap();
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"answer");
}
