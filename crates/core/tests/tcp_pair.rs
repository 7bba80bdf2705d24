//! TCP between two stacks back to back (handshake, transfer, close).

mod common;

use common::{Pair, A, B};
use std::net::SocketAddrV4;
use ustack_core::{Duration, Errno, Medium, Shutdown, TcpState};

fn connect_pair(p: &mut Pair, port: u16) -> (ustack_core::SocketHandle, ustack_core::SocketHandle) {
    let l = p.b.tcp_open();
    p.b.tcp_bind(l, SocketAddrV4::new(B, port)).unwrap();
    p.b.tcp_listen(l, 8).unwrap();
    let c = p.a.tcp_open();
    assert_eq!(
        p.a.tcp_connect(p.now, c, SocketAddrV4::new(B, port)),
        Err(Errno::EINPROGRESS)
    );
    p.pump();
    assert_eq!(p.a.tcp_state(c), Ok(TcpState::Established));
    let (s, peer) = p.b.tcp_accept(l).unwrap();
    assert_eq!(
        peer,
        SocketAddrV4::new(A, p.a.local_addr(c).unwrap().unwrap().port())
    );
    (c, s)
}

#[test]
fn handshake_transfer_and_close() {
    for medium in [Medium::Ip, Medium::Ethernet] {
        let mut p = Pair::new(medium);
        let (c, s) = connect_pair(&mut p, 80);
        assert!(p.a.readiness(c).unwrap().writable);
        assert_eq!(p.a.take_error(c), Ok(None));
        assert_eq!(p.a.tcp_send(p.now, c, b"hello"), Ok(5));
        p.pump();
        let mut buf = [0u8; 64];
        assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(5));
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(p.b.tcp_recv(s, &mut buf), Err(Errno::EAGAIN));
        // Active close from A.
        p.a.close(c).unwrap();
        p.pump();
        assert_eq!(p.b.tcp_recv(s, &mut buf), Ok(0));
        assert_eq!(p.b.tcp_state(s), Ok(TcpState::CloseWait));
        assert!(p.b.readiness(s).unwrap().read_hangup);
        p.b.close(s).unwrap();
        p.pump();
        // A's orphan sits in TIME_WAIT for 60 s.
        let rows = p.a.socket_table(p.now);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].state, TcpState::TimeWait);
        assert_eq!(p.b.tcp_tcb_count(), 0);
        p.advance(Duration::from_secs(59));
        assert_eq!(p.a.tcp_tcb_count(), 1);
        p.advance(Duration::from_secs(2));
        assert_eq!(p.a.tcp_tcb_count(), 0);
        assert_eq!(p.a.counters().tcp.active_opens, 1);
        assert_eq!(p.b.counters().tcp.passive_opens, 1);
        assert_eq!(p.a.counters().tcp.curr_estab, 0);
    }
}

#[test]
fn bulk_transfer_intact() {
    let mut p = Pair::new(Medium::Ip);
    let (c, s) = connect_pair(&mut p, 80);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    for _ in 0..100_000 {
        while sent < data.len() {
            match p.a.tcp_send(p.now, c, &data[sent..]) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("{e}"),
            }
        }
        if sent == data.len() {
            let _ = p.a.tcp_shutdown(p.now, c, Shutdown::Write);
        }
        p.pump();
        loop {
            match p.b.tcp_recv(s, &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("{e}"),
            }
        }
        if got.len() == data.len() && p.b.tcp_recv(s, &mut buf) == Ok(0) {
            break;
        }
        p.advance(Duration::from_millis(1));
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data);
    assert_eq!(p.a.counters().tcp.retrans_segs, 0);
}
