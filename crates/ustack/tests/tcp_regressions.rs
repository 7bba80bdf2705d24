//! TCP bugs found by work above the core, each kept as a regression test.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;
use ustack::net::{TcpListener, TcpStream};

/// The active closer reads the peer's FIN and so frees receive space: it
/// then sends a window update from TIME_WAIT (after ACKing the FIN). The
/// peer, already CLOSED after its LAST_ACK, answers with a RST, and the RST
/// ends the TIME_WAIT early: the socket reads CLOSED and TCP_INFO is all
/// zeros. Linux sends no window update once the peer's FIN is in
/// (tcp_cleanup_rbuf checks RCV_SHUTDOWN). Seen as an intermittent failure
/// of crates/ustack/tests/std_like.rs (`rtt > 0` after the echo); a capture
/// shows: ... ACK(ack=FIN+1), [Window Update] ACK, then RST from the peer.
#[test]
fn active_closer_stays_in_time_wait_and_draws_no_reset() {
    for round in 0..20 {
        let (a, b) = ustack::memnet::pair().unwrap();
        let listener = TcpListener::bind(&b, "10.0.0.2:7").unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            s.read_to_end(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
        });
        let mut c = TcpStream::connect(&a, "10.0.0.2:7").unwrap();
        let msg = vec![7u8; 100_000];
        c.write_all(&msg).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        assert_eq!(back.len(), msg.len());
        server.join().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let info = c.tcp_info().unwrap();
        let resets = b.counters().tcp.out_rsts;
        assert!(
            resets == 0 && info.state == ustack_core::tcp::State::TimeWait,
            "round {round}: the peer sent {resets} resets; our socket is {:?} (expected TIME-WAIT)",
            info.state
        );
    }
}
