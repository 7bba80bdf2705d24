//! TCP segment scripts: inject hand-built segments into one stack at chosen
//! times and check exactly what it sends back, and when (RFC 9293).

mod segscript;

use segscript::*;
use std::net::SocketAddr;
use ustack_core::wire::DstUnreachable;
use ustack_core::{Duration, Errno, Shutdown, SocketHandle, TcpState};

const PEER_ISS: u32 = 1000;

fn peer() -> SocketAddr {
    SocketAddr::from((PEER, PEER_PORT))
}

fn listen(s: &mut Script, backlog: usize) -> SocketHandle {
    let l = s.stack.tcp_open();
    s.stack
        .tcp_bind(l, SocketAddr::from((US, US_PORT)))
        .unwrap();
    s.stack.tcp_listen(l, backlog).unwrap();
    assert_eq!(s.stack.tcp_state(l), Ok(TcpState::Listen));
    l
}

/// A passive handshake from `port`; returns our ISS.
fn handshake_from(s: &mut Script, port: u16) -> u32 {
    s.inject(seg(SYN).sport(port).seq(PEER_ISS).mss(1460));
    let sa = s.expect(&seg(SYN | ACK).sport(port).ack(PEER_ISS + 1).reply().seq(0));
    s.inject(seg(ACK).sport(port).seq(PEER_ISS + 1).ack(sa.seq + 1));
    sa.seq
}

/// A listener plus one accepted connection from PEER_PORT: (listener, conn, iss).
fn established() -> (Script, SocketHandle, SocketHandle, u32) {
    established_with(config())
}

fn established_with(cfg: ustack_core::StackConfig) -> (Script, SocketHandle, SocketHandle, u32) {
    let mut s = Script::with(cfg);
    let l = listen(&mut s, 8);
    let iss = handshake_from(&mut s, PEER_PORT);
    let (c, from) = s.stack.tcp_accept(l).unwrap();
    assert_eq!(from, peer());
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Established));
    s.expect_silence();
    (s, l, c, iss)
}

/// Our SYN after connect(); returns (handle, SYN).
fn connect(s: &mut Script) -> (SocketHandle, Seg) {
    let h = s.stack.tcp_open();
    assert_eq!(
        s.stack.tcp_connect(s.now, h, peer()),
        Err(Errno::EINPROGRESS)
    );
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::SynSent));
    let syn = s.next();
    (h, syn)
}

/// Our expectation of a segment to the peer from `from`.
fn out(flags: ustack_core::wire::TcpFlags, from: SocketAddr, seq: u32, ack: u32) -> Seg {
    seg(flags).from(peer()).reply().from(from).seq(seq).ack(ack)
}

#[test]
fn active_open_syn_options_and_backoff_to_etimedout() {
    let mut s = Script::new();
    let (h, syn) = connect(&mut s);
    assert_eq!(syn.flags, SYN);
    assert_eq!(syn.dst, peer());
    assert_eq!(syn.ack, 0);
    assert_eq!(syn.win, 65535);
    assert_eq!(syn.mss, Some(1460));
    assert_eq!(
        syn.ws,
        Some(7),
        "the scale covers what autotuning may grow the buffer to (6 MiB, as Linux tcp_rmem[2])"
    );
    assert!(syn.sack_perm);
    assert_eq!(syn.ts.map(|t| t.1), Some(0));
    assert!(!s.stack.readiness(h).unwrap().writable);
    // RFC 6298 §5.5 backoff from a 1 s initial RTO, 6 retries like Linux.
    for t in [1.0, 3.0, 7.0, 15.0, 31.0, 63.0] {
        s.run_to(t);
        s.expect_at(t, &out(SYN, syn.src, syn.seq, 0));
    }
    s.run_to(126.9);
    s.expect_silence();
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::SynSent));
    s.run_to(127.0);
    s.expect_silence();
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::Closed));
    let r = s.stack.readiness(h).unwrap();
    assert!(r.writable && r.error && r.hangup);
    assert_eq!(s.stack.take_error(h), Ok(Some(Errno::ETIMEDOUT)));
    assert_eq!(s.stack.take_error(h), Ok(None));
    let c = s.stack.counters().tcp;
    assert_eq!((c.syn_timeouts, c.attempt_fails, c.retrans_segs), (1, 1, 6));
}

#[test]
fn syn_retries_are_configurable() {
    let mut cfg = config();
    cfg.tcp.syn_retries = 2;
    let mut s = Script::with(cfg);
    let (h, syn) = connect(&mut s);
    s.run_to(1.0);
    s.expect_at(1.0, &out(SYN, syn.src, syn.seq, 0));
    s.run_to(3.0);
    s.expect_at(3.0, &out(SYN, syn.src, syn.seq, 0));
    s.run_to(6.9);
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::SynSent));
    s.run_to(7.0);
    assert_eq!(s.stack.take_error(h), Ok(Some(Errno::ETIMEDOUT)));
}

#[test]
fn connect_to_closed_port_is_refused() {
    let mut s = Script::new();
    let (h, syn) = connect(&mut s);
    let from_us = syn.src;
    // A RST whose ACK does not cover our SYN is ignored (RFC 9293 §3.10.7.3).
    s.inject(
        seg(RST | ACK)
            .dport(from_us.port())
            .ack(syn.seq.wrapping_add(5)),
    );
    s.expect_silence();
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::SynSent));
    s.inject(
        seg(RST | ACK)
            .dport(from_us.port())
            .ack(syn.seq.wrapping_add(1)),
    );
    s.expect_silence();
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::Closed));
    assert!(s.stack.readiness(h).unwrap().writable);
    assert_eq!(s.stack.take_error(h), Ok(Some(Errno::ECONNREFUSED)));
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    s.run_to(10.0);
    s.expect_silence();
}

#[test]
fn ack_from_an_old_connection_in_syn_sent_is_reset_and_the_syn_resent_at_once() {
    let mut s = Script::new();
    let (h, syn) = connect(&mut s);
    let from_us = syn.src;
    // A peer still in TIME-WAIT for this 4-tuple answers our SYN with an
    // ACK of the old connection: RFC 9293 §3.10.7.3 says reset it with
    // <SEQ=SEG.ACK><CTL=RST> and drop it; the RST ends the TIME-WAIT, and
    // our SYN follows it at once rather than an RTO later.
    s.inject(
        seg(ACK)
            .dport(from_us.port())
            .seq(777)
            .ack(syn.seq.wrapping_sub(5000)),
    );
    let got = s.take();
    assert_eq!(got.len(), 2, "a RST, then the SYN again: {got:?}");
    assert!(got.iter().all(|(t, _)| *t == s.now), "{got:?}");
    let (rst, again) = (&got[0].1, &got[1].1);
    assert_eq!(rst.flags, RST);
    assert_eq!(rst.seq, syn.seq.wrapping_sub(5000), "SEQ=SEG.ACK");
    assert_eq!((again.flags, again.seq), (SYN, syn.seq));
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::SynSent));
    // Only once per attempt: a second such ACK gets its RST and nothing more.
    s.inject(
        seg(ACK)
            .dport(from_us.port())
            .seq(777)
            .ack(syn.seq.wrapping_sub(5000)),
    );
    let got = s.take();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1.flags, RST);
    // The listener's SYN-ACK, now that the TIME-WAIT is gone, completes it.
    s.inject(
        seg(SYN | ACK)
            .dport(from_us.port())
            .seq(PEER_ISS)
            .ack(syn.seq.wrapping_add(1))
            .mss(1460),
    );
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::Established));
    assert_eq!(s.stack.counters().tcp.retrans_segs, 1);
}

#[test]
fn icmp_unreachable_is_a_soft_error_reported_at_timeout() {
    let mut cfg = config();
    cfg.tcp.syn_retries = 1;
    let mut s = Script::with(cfg);
    let (h, syn) = connect(&mut s);
    s.inject_icmp_unreach(&syn, DstUnreachable::HostUnreachable);
    // RFC 1122 §4.2.3.9: not fatal, the SYN is retried.
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::SynSent));
    assert_eq!(s.stack.take_error(h), Ok(None));
    s.run_to(1.0);
    s.expect_at(1.0, &out(SYN, syn.src, syn.seq, 0));
    s.run_to(3.0);
    assert_eq!(s.stack.take_error(h), Ok(Some(Errno::EHOSTUNREACH)));
}

#[test]
fn icmp_port_unreachable_during_handshake_refuses() {
    let mut s = Script::new();
    let (h, syn) = connect(&mut s);
    s.inject_icmp_unreach(&syn, DstUnreachable::PortUnreachable);
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::Closed));
    assert_eq!(s.stack.take_error(h), Ok(Some(Errno::ECONNREFUSED)));
    s.run_to(5.0);
    s.expect_silence();
}

#[test]
fn passive_open_synack_is_exact() {
    let mut s = Script::new();
    let l = listen(&mut s, 8);
    s.inject(
        seg(SYN)
            .seq(PEER_ISS)
            .mss(1400)
            .ws(7)
            .sack_perm()
            .ts(500, 0),
    );
    let sa = s.expect(&seg(SYN | ACK).reply().seq(0).ack(PEER_ISS + 1));
    let iss = sa.seq;
    assert_eq!(sa.win, 65535);
    assert_eq!(sa.mss, Some(1460));
    assert_eq!(sa.ws, Some(7), "room for autotuning up to 6 MiB");
    assert!(sa.sack_perm);
    assert_eq!(sa.ts.map(|t| t.1), Some(500));
    assert!(!s.stack.readiness(l).unwrap().readable);
    assert_eq!(s.stack.tcp_accept(l), Err(Errno::EAGAIN));
    s.inject(
        seg(ACK)
            .seq(PEER_ISS + 1)
            .ack(iss + 1)
            .ts(501, sa.ts.unwrap().0),
    );
    s.expect_silence();
    assert!(s.stack.readiness(l).unwrap().readable);
    let (c, _) = s.stack.tcp_accept(l).unwrap();
    let info = s.stack.tcp_info(c).unwrap();
    assert_eq!(info.state, TcpState::Established);
    assert_eq!(
        info.snd_mss,
        1400 - 12,
        "peer MSS less the timestamp option"
    );
    assert_eq!((info.snd_wscale, info.rcv_wscale), (7, 7));
    assert!(info.timestamps && info.sack);
    // Data carries the timestamp option with the peer's latest value.
    s.stack.tcp_send(s.now, c, b"hi").unwrap();
    let d = s.expect(&seg(ACK | PSH).reply().seq(iss + 1).ack(PEER_ISS + 1));
    assert_eq!(d.payload, b"hi");
    assert_eq!(d.ts.map(|t| t.1), Some(501));
    assert_eq!(d.win, ((128 * 1024) >> 7) as u16, "scaled window");
    assert_eq!(s.stack.counters().tcp.passive_opens, 1);
    assert_eq!(s.stack.counters().tcp.curr_estab, 1);
}

#[test]
fn synack_retransmitted_then_half_open_dropped() {
    let mut s = Script::new();
    listen(&mut s, 8);
    s.inject(seg(SYN).seq(PEER_ISS));
    let sa = s.expect(&seg(SYN | ACK).reply().seq(0).ack(PEER_ISS + 1));
    assert_eq!(sa.mss, Some(1460));
    assert_eq!(sa.ws, None, "no window scale unless the SYN had one");
    // A retransmitted SYN gets the SYN-ACK again.
    s.inject(seg(SYN).seq(PEER_ISS));
    s.expect(&seg(SYN | ACK).reply().seq(sa.seq).ack(PEER_ISS + 1));
    for t in [1.0, 3.0, 7.0, 15.0, 31.0] {
        s.run_to(t);
        s.expect_at(t, &seg(SYN | ACK).reply().seq(sa.seq).ack(PEER_ISS + 1));
    }
    s.run_to(62.9);
    assert_eq!(s.stack.tcp_tcb_count(), 1);
    s.run_to(63.0);
    s.expect_silence();
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    // The late ACK finds no connection: RST <SEQ=SEG.ACK>.
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(sa.seq + 1));
    s.expect(&seg(RST).reply().seq(sa.seq + 1).ack(0));
}

#[test]
fn closed_port_gets_rst_but_rst_gets_nothing() {
    let mut s = Script::new();
    s.inject(seg(SYN).seq(7));
    let r = s.expect(&seg(RST | ACK).reply().seq(0).ack(8));
    assert_eq!(r.win, 0);
    s.inject(seg(ACK).seq(9).ack(1234));
    s.expect(&seg(RST).reply().seq(1234).ack(0));
    s.inject(seg(PSH).seq(10).data(b"hello"));
    s.expect(&seg(RST | ACK).reply().seq(0).ack(15));
    s.inject(seg(FIN).seq(10).data(b"hello"));
    s.expect(&seg(RST | ACK).reply().seq(0).ack(16));
    s.inject(seg(RST).seq(10));
    s.inject(seg(RST | ACK).seq(10).ack(5));
    s.expect_silence();
    assert_eq!(s.stack.counters().tcp.out_rsts, 4);
    // Bad checksum: counted, no reply.
    let mut bytes = seg(SYN).seq(1).to_ip();
    bytes[20 + 16] ^= 0xff;
    s.inject_raw(&bytes);
    s.expect_silence();
    assert_eq!(s.stack.counters().tcp.in_csum_errors, 1);
    assert_eq!(s.stack.counters().ip.in_unknown_protos, 0);
}

#[test]
fn passive_close_close_wait_last_ack_closed() {
    let (mut s, _l, c, iss) = established();
    s.inject(seg(FIN | ACK).seq(PEER_ISS + 1).ack(iss + 1));
    s.expect(&seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 2));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::CloseWait));
    let r = s.stack.readiness(c).unwrap();
    assert!(r.readable && r.read_hangup && !r.hangup && r.writable);
    let mut buf = [0u8; 8];
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(0));
    // Half-closed: we may still send.
    assert_eq!(s.stack.tcp_send(s.now, c, b"late"), Ok(4));
    s.expect(&seg(ACK | PSH).reply().seq(iss + 1).ack(PEER_ISS + 2));
    s.inject(seg(ACK).seq(PEER_ISS + 2).ack(iss + 5));
    s.stack.close(c).unwrap();
    s.expect(&seg(FIN | ACK).reply().seq(iss + 5).ack(PEER_ISS + 2));
    let rows = s.stack.socket_table(s.now);
    assert!(rows
        .iter()
        .any(|r| r.state == TcpState::LastAck && r.handle.is_none()));
    // FIN retransmitted on the RTO until acknowledged.
    s.wait(0.5);
    let again = s.next();
    assert_eq!((again.flags, again.seq), (FIN | ACK, iss + 5));
    s.inject(seg(ACK).seq(PEER_ISS + 2).ack(iss + 6));
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    s.wait(100.0);
    s.expect_silence();
}

#[test]
fn active_close_fin_wait_time_wait_and_fin_reack() {
    let (mut s, _l, c, iss) = established();
    s.stack.tcp_shutdown(s.now, c, Shutdown::Write).unwrap();
    s.expect(&seg(FIN | ACK).reply().seq(iss + 1).ack(PEER_ISS + 1));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::FinWait1));
    assert_eq!(s.stack.tcp_send(s.now, c, b"x"), Err(Errno::EPIPE));
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 2));
    s.expect_silence();
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::FinWait2));
    // Not orphaned: FIN_WAIT_2 waits as long as it takes.
    s.wait(120.0);
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::FinWait2));
    // The peer keeps sending; we keep receiving.
    s.inject(seg(ACK | PSH).seq(PEER_ISS + 1).ack(iss + 2).data(b"more"));
    s.expect(&seg(ACK).reply().seq(iss + 2).ack(PEER_ISS + 5));
    s.inject(seg(FIN | ACK).seq(PEER_ISS + 5).ack(iss + 2));
    s.expect(&seg(ACK).reply().seq(iss + 2).ack(PEER_ISS + 6));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::TimeWait));
    let t0 = s.t();
    // The peer lost our ACK: its FIN again is re-ACKed and 2MSL restarts.
    s.run_to(t0 + 30.0);
    s.inject(seg(FIN | ACK).seq(PEER_ISS + 5).ack(iss + 2));
    s.expect(&seg(ACK).reply().seq(iss + 2).ack(PEER_ISS + 6));
    s.run_to(t0 + 89.9);
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::TimeWait));
    s.run_to(t0 + 90.0);
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Closed));
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    let mut buf = [0u8; 8];
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(4));
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(0));
    s.expect_silence();
}

#[test]
fn time_wait_lasts_configured_2msl() {
    let mut cfg = config();
    cfg.tcp.time_wait = Duration::from_secs(10);
    let (mut s, _l, c, iss) = established_with(cfg);
    s.stack.close(c).unwrap();
    s.expect(&seg(FIN | ACK).reply().seq(iss + 1).ack(PEER_ISS + 1));
    s.inject(seg(FIN | ACK).seq(PEER_ISS + 1).ack(iss + 2));
    s.expect(&seg(ACK).reply().seq(iss + 2).ack(PEER_ISS + 2));
    let t0 = s.t();
    let rows = s.stack.socket_table(s.now);
    assert_eq!(rows.len(), 2, "listener and the orphan: {rows:?}");
    let tw = rows.iter().find(|r| r.handle.is_none()).unwrap();
    assert_eq!(tw.state, TcpState::TimeWait);
    assert_eq!(tw.timer, Some(("timewait", Duration::from_secs(10))));
    assert!(tw.to_string().starts_with("TIME-WAIT"), "{tw}");
    let table: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        table[0],
        format!(
            "LISTEN           0      8 {:<21} *:*",
            SocketAddr::from((US, US_PORT))
        )
    );
    assert_eq!(
        table[1],
        format!(
            "TIME-WAIT        0      0 {:<21} {:<21} timer:(timewait,10.000s)",
            SocketAddr::from((US, US_PORT)),
            peer()
        )
    );
    assert!(ustack_core::SocketRow::HEADER.starts_with("State"));
    let mut bad = config();
    bad.tcp.rto_min = Duration::from_secs(200);
    assert!(ustack_core::Stack::new(bad).is_err());
    s.run_to(t0 + 9.999);
    assert_eq!(s.stack.tcp_tcb_count(), 1);
    s.run_to(t0 + 10.0);
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    assert_eq!(s.stack.counters().tcp.time_waits_done, 1);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let (mut s, _l, c, iss) = established();
    s.stack.tcp_shutdown(s.now, c, Shutdown::Write).unwrap();
    s.expect(&seg(FIN | ACK).reply().seq(iss + 1).ack(PEER_ISS + 1));
    // The peer's FIN crosses ours: it does not ack our FIN.
    s.inject(seg(FIN | ACK).seq(PEER_ISS + 1).ack(iss + 1));
    s.expect(&seg(ACK).reply().seq(iss + 2).ack(PEER_ISS + 2));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Closing));
    s.inject(seg(ACK).seq(PEER_ISS + 2).ack(iss + 2));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::TimeWait));
    let r = s.stack.readiness(c).unwrap();
    assert!(r.hangup && r.read_hangup);
}

#[test]
fn simultaneous_open_via_syn_received() {
    for final_seg in ["synack", "ack"] {
        let mut s = Script::new();
        let (h, syn) = connect(&mut s);
        let us = syn.src;
        // Their SYN crosses ours.
        s.inject(seg(SYN).dport(us.port()).seq(5000).mss(1460));
        let sa = s.expect(&out(SYN | ACK, us, syn.seq, 5001));
        assert_eq!(sa.mss, Some(1460));
        assert_eq!(s.stack.tcp_state(h), Ok(TcpState::SynReceived));
        assert!(!s.stack.readiness(h).unwrap().writable);
        match final_seg {
            "synack" => s.inject(
                seg(SYN | ACK)
                    .dport(us.port())
                    .seq(5000)
                    .ack(syn.seq + 1)
                    .mss(1460),
            ),
            _ => s.inject(seg(ACK).dport(us.port()).seq(5001).ack(syn.seq + 1)),
        }
        assert_eq!(
            s.stack.tcp_state(h),
            Ok(TcpState::Established),
            "{final_seg}"
        );
        assert!(s.stack.readiness(h).unwrap().writable);
        assert_eq!(s.stack.take_error(h), Ok(None));
        assert_eq!(s.stack.tcp_connect(s.now, h, peer()), Err(Errno::EISCONN));
        s.stack.tcp_send(s.now, h, b"x").unwrap();
        s.expect(&out(ACK | PSH, us, syn.seq + 1, 5001));
    }
}

#[test]
fn close_with_unread_data_sends_rst() {
    let (mut s, _l, c, iss) = established();
    s.inject(
        seg(ACK | PSH)
            .seq(PEER_ISS + 1)
            .ack(iss + 1)
            .data(b"unread"),
    );
    s.expect(&seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 7));
    s.stack.close(c).unwrap();
    s.expect(&seg(RST | ACK).reply().seq(iss + 1).ack(PEER_ISS + 7));
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    assert_eq!(s.stack.counters().tcp.abort_on_close, 1);
}

#[test]
fn linger_zero_aborts_with_rst() {
    let (mut s, _l, c, iss) = established();
    s.stack.tcp_set_linger(c, Some(Duration::ZERO)).unwrap();
    s.stack.close(c).unwrap();
    s.expect(&seg(RST | ACK).reply().seq(iss + 1).ack(PEER_ISS + 1));
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    s.wait(100.0);
    s.expect_silence();
}

#[test]
fn orphaned_fin_wait_2_times_out() {
    let (mut s, _l, c, iss) = established();
    s.stack.close(c).unwrap();
    s.expect(&seg(FIN | ACK).reply().seq(iss + 1).ack(PEER_ISS + 1));
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 2));
    let t0 = s.t();
    let rows = s.stack.socket_table(s.now);
    let fw2 = rows.iter().find(|r| r.handle.is_none()).unwrap();
    assert_eq!(fw2.state, TcpState::FinWait2);
    s.run_to(t0 + 59.9);
    assert_eq!(s.stack.tcp_tcb_count(), 1);
    s.run_to(t0 + 60.0);
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    assert_eq!(s.stack.counters().tcp.fin_wait2_timeouts, 1);
    s.expect_silence();
}

#[test]
fn orphan_gives_up_after_orphan_retries() {
    let mut cfg = config();
    cfg.tcp.orphan_retries = 2;
    let (mut s, _l, c, iss) = established_with(cfg);
    let t0 = s.t();
    s.stack.close(c).unwrap();
    let fin = seg(FIN | ACK).reply().seq(iss + 1).ack(PEER_ISS + 1);
    s.expect_at(t0, &fin);
    s.run_to(t0 + 0.2);
    s.expect_at(t0 + 0.2, &fin);
    s.run_to(t0 + 0.6);
    s.expect_at(t0 + 0.6, &fin);
    s.run_to(t0 + 1.39);
    assert_eq!(s.stack.tcp_tcb_count(), 1);
    s.run_to(t0 + 1.4);
    s.expect_silence();
    assert_eq!(s.stack.tcp_tcb_count(), 0);
}

#[test]
fn keepalive_also_watches_fin_wait_2() {
    let (mut s, _l, c, iss) = established();
    s.stack.tcp_set_keepalive(s.now, c, true).unwrap();
    s.stack
        .tcp_set_keepalive_params(
            s.now,
            c,
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(1)),
            Some(1),
        )
        .unwrap();
    s.stack.tcp_shutdown(s.now, c, Shutdown::Write).unwrap();
    s.next();
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 2));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::FinWait2));
    let t0 = s.t();
    s.run_to(t0 + 10.0);
    s.expect_at(t0 + 10.0, &seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 1));
    s.run_to(t0 + 11.0);
    assert_eq!(s.stack.take_error(c), Ok(Some(Errno::ETIMEDOUT)));
}

#[test]
fn data_for_an_orphan_gets_rst() {
    let (mut s, _l, c, iss) = established();
    s.stack.close(c).unwrap();
    s.expect(&seg(FIN | ACK).reply().seq(iss + 1).ack(PEER_ISS + 1));
    s.inject(seg(ACK | PSH).seq(PEER_ISS + 1).ack(iss + 2).data(b"zzz"));
    s.expect(&seg(RST | ACK).reply().seq(iss + 2).ack(PEER_ISS + 1));
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    assert_eq!(s.stack.counters().tcp.abort_on_data, 1);
}

#[test]
fn keepalive_probes_then_etimedout() {
    let (mut s, _l, c, iss) = established();
    let t0 = s.t();
    s.stack.tcp_set_keepalive(s.now, c, true).unwrap();
    s.stack
        .tcp_set_keepalive_params(
            s.now,
            c,
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(2)),
            Some(3),
        )
        .unwrap();
    s.run_to(t0 + 9.99);
    s.expect_silence();
    // Probe: <SEQ=SND.UNA-1><ACK=RCV.NXT> (RFC 1122 §4.2.3.6).
    let probe = seg(ACK).reply().seq(iss).ack(PEER_ISS + 1);
    s.run_to(t0 + 10.0);
    s.expect_at(t0 + 10.0, &probe);
    // Answered: idle counts again from the answer.
    s.run_to(t0 + 11.0);
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 1));
    s.run_to(t0 + 20.99);
    s.expect_silence();
    for k in 0..3 {
        let t = t0 + 21.0 + 2.0 * k as f64;
        s.run_to(t);
        s.expect_at(t, &probe);
    }
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Established));
    s.run_to(t0 + 27.0);
    s.expect_at(
        t0 + 27.0,
        &seg(RST | ACK).reply().seq(iss + 1).ack(PEER_ISS + 1),
    );
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Closed));
    assert_eq!(s.stack.take_error(c), Ok(Some(Errno::ETIMEDOUT)));
    assert_eq!(s.stack.counters().tcp.keepalive_probes, 4);
    assert_eq!(s.stack.counters().tcp.keepalive_timeouts, 1);
}

#[test]
fn keepalive_defaults_are_linux_ones() {
    let (mut s, _l, c, iss) = established();
    s.stack.tcp_set_keepalive(s.now, c, true).unwrap();
    let t0 = s.t();
    let probe = seg(ACK).reply().seq(iss).ack(PEER_ISS + 1);
    s.run_to(t0 + 7199.0);
    s.expect_silence();
    for k in 0..9 {
        let t = t0 + 7200.0 + 75.0 * k as f64;
        s.run_to(t);
        s.expect_at(t, &probe);
    }
    s.run_to(t0 + 7200.0 + 75.0 * 9.0);
    assert_eq!(s.stack.take_error(c), Ok(Some(Errno::ETIMEDOUT)));
}

#[test]
fn retransmission_cap_gives_etimedout() {
    let mut cfg = config();
    cfg.tcp.retries2 = 3;
    let (mut s, _l, c, iss) = established_with(cfg);
    let t0 = s.t();
    s.stack.tcp_send(s.now, c, b"data").unwrap();
    let d = seg(ACK | PSH).reply().seq(iss + 1).ack(PEER_ISS + 1);
    s.expect_at(t0, &d);
    // RTO from a ~0 RTT sample is the 200 ms floor, doubling each time.
    for t in [0.2, 0.6, 1.4] {
        s.run_to(t0 + t);
        s.expect_at(t0 + t, &d);
    }
    s.run_to(t0 + 2.99);
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Established));
    s.run_to(t0 + 3.0);
    s.expect_silence();
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Closed));
    assert_eq!(s.stack.take_error(c), Ok(Some(Errno::ETIMEDOUT)));
    assert_eq!(s.stack.tcp_send(s.now, c, b"x"), Err(Errno::EPIPE));
    let info_c = s.stack.counters().tcp;
    assert_eq!((info_c.retrans_segs, info_c.abort_on_timeout), (3, 1));
}

#[test]
fn user_timeout_gives_etimedout() {
    let (mut s, _l, c, iss) = established();
    s.stack
        .tcp_set_user_timeout(c, Some(Duration::from_secs(1)))
        .unwrap();
    let t0 = s.t();
    s.stack.tcp_send(s.now, c, b"data").unwrap();
    let d = seg(ACK | PSH).reply().seq(iss + 1).ack(PEER_ISS + 1);
    s.expect_at(t0, &d);
    s.run_to(t0 + 0.2);
    s.expect_at(t0 + 0.2, &d);
    s.run_to(t0 + 0.6);
    s.expect_at(t0 + 0.6, &d);
    s.run_to(t0 + 1.4);
    s.expect_silence();
    assert_eq!(s.stack.take_error(c), Ok(Some(Errno::ETIMEDOUT)));
}

#[test]
fn rto_follows_rfc6298_and_retransmits_data() {
    let mut s = Script::new();
    let l = listen(&mut s, 8);
    s.inject(seg(SYN).seq(PEER_ISS));
    let iss = s.next().seq;
    // First sample 100 ms: SRTT 100, RTTVAR 50, RTO = 100 + 4·50 = 300 ms (RFC 6298 §2.2).
    s.run_to(0.1);
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 1));
    let (c, _) = s.stack.tcp_accept(l).unwrap();
    let info = s.stack.tcp_info(c).unwrap();
    assert_eq!(
        (info.rtt, info.rttvar, info.rto),
        (
            Duration::from_millis(100),
            Duration::from_millis(50),
            Duration::from_millis(300)
        )
    );
    s.stack.tcp_send(s.now, c, b"abcd").unwrap();
    s.expect(&seg(ACK | PSH).reply().seq(iss + 1).ack(PEER_ISS + 1));
    // Second sample 200 ms: RTTVAR = 3/4·50 + 1/4·100 = 62.5, SRTT = 7/8·100 +
    // 1/8·200 = 112.5, RTO = 362.5 ms (RFC 6298 §2.3).
    s.run_to(0.3);
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 5));
    let info = s.stack.tcp_info(c).unwrap();
    assert_eq!(info.rtt, Duration::from_micros(112_500));
    assert_eq!(info.rttvar, Duration::from_micros(62_500));
    assert_eq!(info.rto, Duration::from_micros(362_500));
    s.stack.tcp_send(s.now, c, b"efgh").unwrap();
    s.expect(&seg(ACK | PSH).reply().seq(iss + 5).ack(PEER_ISS + 1));
    s.run_to(0.6624);
    s.expect_silence();
    s.run_to(0.6625);
    let r = s.expect_at(
        0.6625,
        &seg(ACK | PSH).reply().seq(iss + 5).ack(PEER_ISS + 1),
    );
    assert_eq!(r.payload, b"efgh");
    let info = s.stack.tcp_info(c).unwrap();
    assert_eq!(
        (info.retransmits, info.backoff, info.total_retrans),
        (1, 1, 1)
    );
    assert_eq!(
        info.rto,
        Duration::from_micros(725_000),
        "backed off (§5.5)"
    );
    // Karn: the ACK of a retransmission is no RTT sample; backoff resets.
    s.run_to(1.0);
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 9));
    let info = s.stack.tcp_info(c).unwrap();
    assert_eq!(info.rto, Duration::from_micros(362_500));
    assert_eq!((info.retransmits, info.backoff, info.unacked), (0, 0, 0));
}

#[test]
fn blind_injection_never_tears_down_or_corrupts() {
    let (mut s, _l, c, iss) = established();
    let challenge = seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 1);
    // RST in window but not at RCV.NXT: challenge ACK (RFC 5961 §3.2).
    s.inject(seg(RST).seq(PEER_ISS + 1 + 100));
    s.expect(&challenge);
    // SYN in a synchronized state: challenge ACK (RFC 5961 §4.2).
    // Challenge ACKs go at most once per 500 ms per connection.
    s.wait(0.6);
    s.inject(seg(SYN).seq(PEER_ISS + 500));
    s.expect(&challenge);
    // Data with an ACK for data never sent: challenge ACK, dropped (§5.2).
    s.wait(0.6);
    s.inject(
        seg(ACK | PSH)
            .seq(PEER_ISS + 1)
            .ack(iss + 100_000)
            .data(b"evil"),
    );
    s.expect(&challenge);
    // Data in window but not at RCV.NXT: dup ACK, nothing delivered.
    s.inject(seg(ACK | PSH).seq(PEER_ISS + 50).ack(iss + 1).data(b"evil"));
    s.expect(&challenge);
    // Out-of-window RST: silently dropped.
    s.inject(seg(RST).seq(PEER_ISS + 1_000_000));
    s.expect_silence();
    let mut buf = [0u8; 16];
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Err(Errno::EAGAIN));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Established));
    // The real peer's data still arrives intact.
    s.inject(seg(ACK | PSH).seq(PEER_ISS + 1).ack(iss + 1).data(b"real"));
    s.expect(&seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 5));
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"real");
    let t = s.stack.counters().tcp;
    assert_eq!((t.challenge_acks, t.syn_challenge), (3, 1));
    // An exact RST does reset.
    s.inject(seg(RST).seq(PEER_ISS + 5));
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Err(Errno::ECONNRESET));
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(0));
    assert_eq!(s.stack.tcp_send(s.now, c, b"x"), Err(Errno::EPIPE));
    assert_eq!(s.stack.counters().tcp.estab_resets, 1);
}

#[test]
fn challenge_acks_are_rate_limited_per_connection() {
    // The stack-wide budget (1000 per second) is far away: this is the
    // connection's own limit.
    let (mut s, _l, _c, iss) = established();
    let challenge = seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 1);
    for round in 0..2 {
        for k in 0..5 {
            s.inject(seg(RST).seq(PEER_ISS + 10 + k));
        }
        s.expect(&challenge);
        s.expect_silence();
        if round == 0 {
            s.wait(0.6);
        }
    }
    let t = s.stack.counters().tcp;
    assert_eq!((t.challenge_acks, t.challenge_ack_limited), (2, 8));
}

#[test]
fn challenge_acks_are_rate_limited_across_the_stack() {
    let mut cfg = config();
    cfg.tcp.challenge_ack_limit = 1;
    let (mut s, _l, _c, iss) = established_with(cfg);
    let challenge = seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 1);
    s.inject(seg(RST).seq(PEER_ISS + 10));
    s.expect(&challenge);
    // 600 ms on the connection may answer again, but the stack-wide budget
    // (one per second) is spent.
    s.wait(0.6);
    s.inject(seg(RST).seq(PEER_ISS + 11));
    s.expect_silence();
    s.wait(0.6);
    s.inject(seg(RST).seq(PEER_ISS + 12));
    s.expect(&challenge);
    let t = s.stack.counters().tcp;
    assert_eq!((t.challenge_acks, t.challenge_ack_limited), (2, 1));
}

#[test]
fn backlog_full_drops_final_ack_and_completes_after_accept() {
    let mut s = Script::new();
    let l = listen(&mut s, 2);
    let ports = [40001u16, 40002, 40003];
    let mut iss = Vec::new();
    for p in ports {
        s.inject(seg(SYN).sport(p).seq(PEER_ISS));
        iss.push(s.next().seq);
    }
    for (p, i) in ports.iter().zip(&iss) {
        s.inject(seg(ACK).sport(*p).seq(PEER_ISS + 1).ack(i + 1));
    }
    s.expect_silence();
    assert_eq!(s.stack.counters().tcp.listen_overflows, 1);
    assert_eq!(s.stack.counters().tcp.ack_dropped_overflow, 1);
    // A fourth SYN while the accept queue is full is dropped (Linux).
    s.inject(seg(SYN).sport(40004).seq(PEER_ISS));
    s.expect_silence();
    assert_eq!(s.stack.counters().tcp.listen_drops, 2);
    // The third is still half-open: its SYN-ACK is retransmitted.
    s.run_to(1.0);
    let sa = s.expect_at(
        1.0,
        &seg(SYN | ACK)
            .sport(40003)
            .reply()
            .seq(iss[2])
            .ack(PEER_ISS + 1),
    );
    assert_eq!(sa.dst.port(), 40003);
    s.expect_silence();
    let (_, a) = s.stack.tcp_accept(l).unwrap();
    assert_eq!(a.port(), 40001);
    s.inject(seg(ACK).sport(40003).seq(PEER_ISS + 1).ack(iss[2] + 1));
    let (_, b) = s.stack.tcp_accept(l).unwrap();
    let (_, c) = s.stack.tcp_accept(l).unwrap();
    assert_eq!((b.port(), c.port()), (40002, 40003));
    assert_eq!(s.stack.tcp_accept(l), Err(Errno::EAGAIN));
    assert_eq!(s.stack.counters().tcp.passive_opens, 3);
}

#[test]
fn backlog_full_with_abort_on_overflow_resets() {
    let mut cfg = config();
    cfg.tcp.abort_on_overflow = true;
    let mut s = Script::with(cfg);
    let _l = listen(&mut s, 1);
    let mut iss = Vec::new();
    for p in [40001u16, 40002] {
        s.inject(seg(SYN).sport(p).seq(PEER_ISS));
        iss.push(s.next().seq);
    }
    s.inject(seg(ACK).sport(40001).seq(PEER_ISS + 1).ack(iss[0] + 1));
    s.expect_silence();
    s.inject(seg(ACK).sport(40002).seq(PEER_ISS + 1).ack(iss[1] + 1));
    s.expect(
        &seg(RST | ACK)
            .sport(40002)
            .reply()
            .seq(iss[1] + 1)
            .ack(PEER_ISS + 1),
    );
    assert_eq!(s.stack.tcp_tcb_count(), 1);
}

#[test]
fn data_and_fin_before_accept_are_kept() {
    let mut s = Script::new();
    let l = listen(&mut s, 4);
    let iss = handshake_from(&mut s, PEER_PORT);
    s.inject(seg(ACK | PSH).seq(PEER_ISS + 1).ack(iss + 1).data(b"early"));
    s.expect(&seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 6));
    s.inject(seg(FIN | ACK).seq(PEER_ISS + 6).ack(iss + 1));
    s.expect(&seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 7));
    let (c, _) = s.stack.tcp_accept(l).unwrap();
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::CloseWait));
    let mut buf = [0u8; 16];
    assert_eq!(s.stack.tcp_peek(c, &mut buf), Ok(5));
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"early");
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(0));
}

#[test]
fn closing_a_listener_resets_unaccepted_connections() {
    let mut s = Script::new();
    let l = listen(&mut s, 4);
    let iss = handshake_from(&mut s, PEER_PORT);
    s.inject(seg(SYN).sport(40001).seq(PEER_ISS));
    let half = s.next().seq;
    s.stack.close(l).unwrap();
    s.expect(&seg(RST | ACK).reply().seq(iss + 1).ack(PEER_ISS + 1));
    assert_eq!(s.stack.tcp_tcb_count(), 1, "the half-open one");
    // Its handshake completes after the listener went: reset.
    s.inject(seg(ACK).sport(40001).seq(PEER_ISS + 1).ack(half + 1));
    s.expect(
        &seg(RST | ACK)
            .sport(40001)
            .reply()
            .seq(half + 1)
            .ack(PEER_ISS + 1),
    );
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    s.inject(seg(SYN).seq(5));
    s.expect(&seg(RST | ACK).reply().seq(0).ack(6));
}

#[test]
fn syn_cookie_handshake_when_syn_queue_full() {
    let mut cfg = config();
    cfg.tcp.max_syn_backlog = 1;
    let mut s = Script::with(cfg);
    let l = listen(&mut s, 8);
    s.inject(seg(SYN).sport(40001).seq(PEER_ISS));
    let first = s.next();
    assert_eq!(first.ws, None);
    // Queue full: a cookie SYN-ACK with only the MSS option.
    s.inject(
        seg(SYN)
            .sport(40002)
            .seq(PEER_ISS)
            .mss(1460)
            .ws(7)
            .sack_perm()
            .ts(1, 0),
    );
    let ck = s.expect(&seg(SYN | ACK).sport(40002).reply().seq(0).ack(PEER_ISS + 1));
    let ck = ck.clone();
    assert_eq!(
        (ck.mss, ck.ws, ck.sack_perm, ck.ts),
        (Some(1460), None, false, None)
    );
    assert_eq!(s.stack.tcp_tcb_count(), 1, "no state for the cookie");
    // A forged cookie fails and gets a RST.
    s.inject(seg(ACK).sport(40002).seq(PEER_ISS + 1).ack(ck.seq + 2));
    s.expect(&seg(RST).sport(40002).reply().seq(ck.seq + 2).ack(0));
    // The right one makes an established connection, data and all.
    s.inject(
        seg(ACK | PSH)
            .sport(40002)
            .seq(PEER_ISS + 1)
            .ack(ck.seq + 1)
            .data(b"hi"),
    );
    s.expect(
        &seg(ACK)
            .sport(40002)
            .reply()
            .seq(ck.seq + 1)
            .ack(PEER_ISS + 3),
    );
    let (c, from) = s.stack.tcp_accept(l).unwrap();
    assert_eq!(from.port(), 40002);
    let mut buf = [0u8; 4];
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(2));
    assert_eq!(s.stack.tcp_info(c).unwrap().snd_mss, 1460);
    let t = s.stack.counters().tcp;
    assert_eq!(
        (t.syncookies_sent, t.syncookies_recv, t.syncookies_failed),
        (1, 1, 1)
    );
}

#[test]
fn syn_queue_full_without_cookies_drops() {
    let mut cfg = config();
    cfg.tcp.max_syn_backlog = 1;
    cfg.tcp.syncookies = false;
    let mut s = Script::with(cfg);
    listen(&mut s, 8);
    s.inject(seg(SYN).sport(40001).seq(PEER_ISS));
    s.next();
    s.inject(seg(SYN).sport(40002).seq(PEER_ISS));
    s.expect_silence();
    assert_eq!(s.stack.counters().tcp.listen_drops, 1);
}

#[test]
fn socket_call_errors_match_posix() {
    let (mut s, l, c, _iss) = established();
    let mut buf = [0u8; 4];
    let fresh = s.stack.tcp_open();
    assert_eq!(s.stack.tcp_send(s.now, fresh, b"x"), Err(Errno::ENOTCONN));
    assert_eq!(s.stack.tcp_recv(fresh, &mut buf), Err(Errno::ENOTCONN));
    assert_eq!(s.stack.tcp_accept(fresh), Err(Errno::EINVAL));
    assert_eq!(s.stack.peer_addr(fresh), Err(Errno::ENOTCONN));
    assert_eq!(
        s.stack.tcp_shutdown(s.now, fresh, Shutdown::Write),
        Err(Errno::ENOTCONN)
    );
    assert_eq!(s.stack.tcp_accept(l), Err(Errno::EAGAIN));
    assert_eq!(s.stack.tcp_connect(s.now, c, peer()), Err(Errno::EISCONN));
    assert_eq!(s.stack.tcp_connect(s.now, l, peer()), Err(Errno::EISCONN));
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Err(Errno::EAGAIN));
    assert_eq!(s.stack.peer_addr(c), Ok(peer()));
    assert_eq!(
        s.stack.local_addr(c),
        Ok(Some(SocketAddr::from((US, US_PORT))))
    );
    assert_eq!(
        s.stack.udp_recv_from(c, &mut buf).unwrap_err(),
        Errno::EOPNOTSUPP
    );
    let r = s.stack.readiness(fresh).unwrap();
    assert!(r.hangup && r.writable && !r.readable);
    let h = s.stack.tcp_open();
    assert_eq!(
        s.stack.tcp_connect(s.now, h, peer()),
        Err(Errno::EINPROGRESS)
    );
    assert_eq!(s.stack.tcp_connect(s.now, h, peer()), Err(Errno::EALREADY));
    assert_eq!(s.stack.tcp_send(s.now, h, b"x"), Err(Errno::EAGAIN));
    assert_eq!(s.stack.tcp_recv(h, &mut buf), Err(Errno::EAGAIN));
    let b = s.stack.tcp_open();
    assert_eq!(
        s.stack.tcp_bind(
            b,
            SocketAddr::from((std::net::Ipv4Addr::new(10, 0, 0, 9), 1))
        ),
        Err(Errno::EADDRNOTAVAIL)
    );
    let closed = s.stack.tcp_open();
    s.stack.close(closed).unwrap();
    assert_eq!(s.stack.tcp_recv(closed, &mut buf), Err(Errno::EBADF));
}

#[test]
fn send_buffer_bounds_writes_and_window_bounds_output() {
    let mut cfg = config();
    cfg.tcp.sndbuf = 4096;
    cfg.tcp.max_sndbuf = 4096; // no autotuning: the bound is the point here
    let (mut s, _l, c, iss) = established_with(cfg);
    // The peer offers 1000 bytes of window.
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 1).win(1000));
    s.take();
    let big = vec![7u8; 10_000];
    assert_eq!(s.stack.tcp_send(s.now, c, &big), Ok(4096));
    assert_eq!(s.stack.tcp_send(s.now, c, &big), Err(Errno::EAGAIN));
    assert!(!s.stack.readiness(c).unwrap().writable);
    let segs = s.take();
    let bytes: usize = segs.iter().map(|(_, x)| x.payload.len()).sum();
    assert_eq!(bytes, 1000, "{segs:?}");
    // Window opens: the rest flows, in MSS-sized pieces.
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 1001).win(65535));
    let segs = s.take();
    let sizes: Vec<usize> = segs.iter().map(|(_, x)| x.payload.len()).collect();
    assert_eq!(sizes, vec![1460, 1460, 176]);
    assert!(!s.stack.readiness(c).unwrap().writable);
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 4097).win(65535));
    assert!(s.stack.readiness(c).unwrap().writable);
    assert_eq!(s.stack.tcp_info(c).unwrap().send_queue, 0);
}

#[test]
fn zero_window_is_probed() {
    let (mut s, _l, c, iss) = established();
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 1).win(0));
    s.take();
    s.stack.tcp_send(s.now, c, b"abc").unwrap();
    s.expect_silence();
    let t0 = s.t();
    s.run_to(t0 + 5.0);
    let probes = s.take();
    assert!(!probes.is_empty());
    assert_eq!(probes[0].1.payload, b"a", "one byte beyond the window");
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 2).win(100));
    let rest = s.take();
    assert_eq!(rest.last().unwrap().1.payload, b"bc");
}

#[test]
fn window_opening_without_taking_the_probe_resends_at_once() {
    let (mut s, _l, c, iss) = established();
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 1).win(0));
    s.stack.tcp_send(s.now, c, b"abc").unwrap();
    let t0 = s.t();
    s.run_to(t0 + 0.2);
    let probe = s.expect_at(t0 + 0.2, &seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 1));
    assert_eq!(probe.payload, b"a");
    // The receiver had no room for the probe; later its window opens.
    s.run_to(t0 + 0.3);
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 1).win(1000));
    let d = s.expect_at(
        t0 + 0.3,
        &seg(ACK | PSH).reply().seq(iss + 1).ack(PEER_ISS + 1),
    );
    assert_eq!(d.payload, b"abc");
}

#[test]
fn no_window_update_after_the_peers_fin() {
    let mut cfg = config();
    cfg.tcp.rcvbuf = 4096;
    // CLOSE_WAIT: reading the last data opens the window; nothing is sent.
    let (mut s, _l, c, iss) = established_with(cfg.clone());
    s.inject(
        seg(ACK | PSH | FIN)
            .seq(PEER_ISS + 1)
            .ack(iss + 1)
            .data(&[1u8; 4000]),
    );
    s.expect(&seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 4002));
    let mut buf = vec![0u8; 8192];
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(4000));
    s.expect_silence();
    // TIME_WAIT after our half-close: same, or the peer that has finished
    // would answer the update with a RST and end our TIME_WAIT early.
    let (mut s, _l, c, iss) = established_with(cfg);
    s.stack.tcp_shutdown(s.now, c, Shutdown::Write).unwrap();
    s.expect(&seg(FIN | ACK).reply().seq(iss + 1).ack(PEER_ISS + 1));
    s.inject(
        seg(ACK | PSH | FIN)
            .seq(PEER_ISS + 1)
            .ack(iss + 2)
            .data(&[1u8; 4000]),
    );
    s.expect(&seg(ACK).reply().seq(iss + 2).ack(PEER_ISS + 4002));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::TimeWait));
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(4000));
    s.expect_silence();
}

#[test]
fn receive_window_shrinks_as_data_queues_and_reopens() {
    let mut cfg = config();
    cfg.tcp.rcvbuf = 4096;
    let (mut s, _l, c, iss) = established_with(cfg);
    s.inject(
        seg(ACK | PSH)
            .seq(PEER_ISS + 1)
            .ack(iss + 1)
            .data(&[1u8; 3000]),
    );
    let a = s.expect(&seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 3001));
    assert_eq!(a.win, 4096 - 3000);
    // Beyond the window: only what fits is taken.
    s.inject(
        seg(ACK | PSH)
            .seq(PEER_ISS + 3001)
            .ack(iss + 1)
            .data(&[2u8; 2000]),
    );
    let a = s.expect(&seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 4097));
    assert_eq!(a.win, 0);
    let mut buf = vec![0u8; 8192];
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(4096));
    let upd = s.expect(&seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 4097));
    assert_eq!(upd.win, 4096, "window update after the read");
}

#[test]
fn bind_rules() {
    let mut s = Script::new();
    let any = |p| SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, p));
    let us = |p| SocketAddr::from((US, p));
    let a = s.stack.tcp_open();
    let b = s.stack.tcp_open();
    assert_eq!(s.stack.tcp_bind(a, us(80)), Ok(us(80)));
    assert_eq!(
        s.stack.tcp_bind(a, us(81)),
        Err(Errno::EINVAL),
        "already bound"
    );
    assert_eq!(s.stack.tcp_bind(b, us(80)), Err(Errno::EADDRINUSE));
    assert_eq!(
        s.stack.tcp_bind(b, any(80)),
        Err(Errno::EADDRINUSE),
        "wildcard overlaps"
    );
    assert_eq!(s.stack.tcp_bind(b, us(81)), Ok(us(81)));
    // Both SO_REUSEADDR: binding is allowed, but only one may listen (Linux).
    let c = s.stack.tcp_open();
    let d = s.stack.tcp_open();
    for h in [c, d] {
        s.stack.tcp_set_reuseaddr(h, true).unwrap();
        assert_eq!(s.stack.tcp_bind(h, us(90)), Ok(us(90)));
    }
    s.stack.tcp_listen(c, 4).unwrap();
    assert_eq!(s.stack.tcp_listen(d, 4), Err(Errno::EADDRINUSE));
    // Port 0 picks a free ephemeral port; listen without bind does too.
    let e = s.stack.tcp_open();
    let got = s.stack.tcp_bind(e, any(0)).unwrap();
    assert!((32768..=60999).contains(&got.port()));
    let f = s.stack.tcp_open();
    s.stack.tcp_listen(f, 1).unwrap();
    let lf = s.stack.local_addr(f).unwrap().unwrap();
    assert!(lf.port() >= 32768 && lf.port() != got.port());
    let o = s.stack.tcp_options(c).unwrap();
    assert!(o.reuseaddr && !o.reuseport && !o.keepalive);
    assert_eq!((o.sndbuf, o.rcvbuf, o.keep_cnt), (16384, 131072, 9));
    s.stack
        .tcp_set_buffers(c, Some(1), Some(usize::MAX))
        .unwrap();
    let o = s.stack.tcp_options(c).unwrap();
    assert_eq!((o.rcvbuf, o.sndbuf), (2048, 4 << 20), "clamped");
    // Closing frees the port.
    s.stack.close(a).unwrap();
    let g = s.stack.tcp_open();
    assert_eq!(s.stack.tcp_bind(g, us(80)), Ok(us(80)));
}

#[test]
fn syn_ends_time_wait_with_a_higher_sequence() {
    let (mut s, _l, c, iss) = established();
    // We close first, so TIME_WAIT is on our side of this 4-tuple.
    s.stack.close(c).unwrap();
    s.expect(&seg(FIN | ACK).reply().seq(iss + 1).ack(PEER_ISS + 1));
    s.inject(seg(FIN | ACK).seq(PEER_ISS + 1).ack(iss + 2));
    s.expect(&seg(ACK).reply().seq(iss + 2).ack(PEER_ISS + 2));
    // An old duplicate SYN (lower sequence) is not a new connection.
    s.inject(seg(SYN).seq(PEER_ISS - 5));
    let r = s.next();
    assert_eq!(r.flags, ACK, "{r}");
    // A new incarnation above the old sequence space is accepted.
    s.inject(seg(SYN).seq(PEER_ISS + 100_000));
    s.expect(&seg(SYN | ACK).reply().seq(0).ack(PEER_ISS + 100_001));
    assert_eq!(s.stack.counters().tcp.time_wait_recycled, 1);
}

/// RFC 9293 §3.10.7.4 with RFC 5961, one fresh ESTABLISHED connection per
/// row: a segment from the peer, the reply (seq relative to our ISS, ack
/// relative to the peer's), the state after, the bytes then readable.
#[test]
fn established_segment_table() {
    type Mk = fn(u32) -> Seg;
    type Reply = Option<(ustack_core::wire::TcpFlags, u32, u32)>;
    type Row = (&'static str, Mk, Reply, TcpState, usize);
    let p = PEER_ISS;
    let rows: &[Row] = &[
        (
            "in-order data",
            |i| seg(ACK | PSH).seq(PEER_ISS + 1).ack(i + 1).data(b"abc"),
            Some((ACK, 1, 4)),
            TcpState::Established,
            3,
        ),
        (
            "old duplicate",
            |i| seg(ACK).seq(PEER_ISS - 9).ack(i + 1).data(&[0; 10]),
            Some((ACK, 1, 1)),
            TcpState::Established,
            0,
        ),
        (
            "partly old",
            |i| seg(ACK).seq(PEER_ISS - 1).ack(i + 1).data(b"xyabc"),
            Some((ACK, 1, 4)),
            TcpState::Established,
            3,
        ),
        (
            "beyond the window",
            |i| seg(ACK).seq(PEER_ISS + 200_001).ack(i + 1).data(b"a"),
            Some((ACK, 1, 1)),
            TcpState::Established,
            0,
        ),
        (
            "out of order in window",
            |i| seg(ACK).seq(PEER_ISS + 100).ack(i + 1).data(b"a"),
            Some((ACK, 1, 1)),
            TcpState::Established,
            0,
        ),
        (
            "exact RST",
            |_| seg(RST).seq(PEER_ISS + 1),
            None,
            TcpState::Closed,
            0,
        ),
        (
            "in-window RST",
            |_| seg(RST).seq(PEER_ISS + 2),
            Some((ACK, 1, 1)),
            TcpState::Established,
            0,
        ),
        (
            "out-of-window RST",
            |i| seg(RST | ACK).seq(PEER_ISS + 300_000).ack(i + 1),
            None,
            TcpState::Established,
            0,
        ),
        (
            "SYN in window",
            |_| seg(SYN).seq(PEER_ISS + 10),
            Some((ACK, 1, 1)),
            TcpState::Established,
            0,
        ),
        (
            "SYN below window",
            |_| seg(SYN).seq(PEER_ISS - 1000),
            Some((ACK, 1, 1)),
            TcpState::Established,
            0,
        ),
        (
            "ACK above SND.NXT",
            |i| seg(ACK).seq(PEER_ISS + 1).ack(i + 50).data(b"abc"),
            Some((ACK, 1, 1)),
            TcpState::Established,
            0,
        ),
        (
            "ACK far below SND.UNA",
            |i| {
                seg(ACK)
                    .seq(PEER_ISS + 1)
                    .ack(i.wrapping_sub(1 << 20))
                    .data(b"abc")
            },
            Some((ACK, 1, 1)),
            TcpState::Established,
            0,
        ),
        (
            "data without ACK",
            |_| seg(PSH).seq(PEER_ISS + 1).data(b"abc"),
            None,
            TcpState::Established,
            0,
        ),
        (
            "FIN",
            |i| seg(FIN | ACK).seq(PEER_ISS + 1).ack(i + 1),
            Some((ACK, 1, 2)),
            TcpState::CloseWait,
            0,
        ),
        (
            "data and FIN",
            |i| {
                seg(FIN | ACK | PSH)
                    .seq(PEER_ISS + 1)
                    .ack(i + 1)
                    .data(b"abc")
            },
            Some((ACK, 1, 5)),
            TcpState::CloseWait,
            3,
        ),
        (
            "FIN out of order",
            |i| seg(FIN | ACK).seq(PEER_ISS + 5).ack(i + 1),
            Some((ACK, 1, 1)),
            TcpState::Established,
            0,
        ),
        (
            "duplicate ACK",
            |i| seg(ACK).seq(PEER_ISS + 1).ack(i + 1),
            None,
            TcpState::Established,
            0,
        ),
    ];
    for (what, mk, reply, state, readable) in rows {
        let (mut s, _l, c, iss) = established();
        s.inject(mk(iss));
        match reply {
            Some((flags, rs, ra)) => {
                s.expect(&seg(*flags).reply().seq(iss + rs).ack(p + ra));
            }
            None => s.expect_silence(),
        }
        s.expect_silence();
        assert_eq!(s.stack.tcp_state(c), Ok(*state), "{what}");
        let mut buf = [0u8; 64];
        let n = s.stack.tcp_peek(c, &mut buf).unwrap_or(0);
        assert_eq!(n, *readable, "{what}");
        if *readable == 3 {
            assert_eq!(&buf[..3], b"abc", "{what}");
        }
    }
}

#[test]
fn tiny_peer_mss_and_tiny_mtu() {
    // A peer MSS of 1 is raised to 48 (Linux tcp_min_snd_mss).
    let mut s = Script::new();
    let l = listen(&mut s, 1);
    s.inject(seg(SYN).seq(PEER_ISS).mss(1));
    let iss = s.next().seq;
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 1));
    let (c, _) = s.stack.tcp_accept(l).unwrap();
    s.stack.tcp_send(s.now, c, &[1u8; 100]).unwrap();
    let sizes: Vec<usize> = s.take().iter().map(|(_, x)| x.payload.len()).collect();
    assert_eq!(sizes, vec![48, 48, 4]);
    // The smallest IPv4 MTU still carries whole segments, options and all.
    let mut s = Script::with(config().with_mtu(68));
    let h = s.stack.tcp_open();
    let _ = s.stack.tcp_connect(s.now, h, peer());
    let syn = s.next();
    assert_eq!(syn.mss, Some(28));
    s.inject(
        seg(SYN | ACK)
            .dport(syn.src.port())
            .seq(9)
            .ack(syn.seq + 1)
            .mss(1460)
            .ts(1, 1),
    );
    s.take();
    s.stack.tcp_send(s.now, h, &[1u8; 100]).unwrap();
    for (_, x) in s.take() {
        assert!(x.payload.len() + 20 + 20 + 12 <= 68, "{x}");
    }
}

#[test]
fn mss_follows_mtu_maxseg_and_peer() {
    // MSS = MTU - 40; TCP_MAXSEG lowers it; the SYN's window scale follows SO_RCVBUF.
    let mut s = Script::with(config().with_mtu(1280));
    let h = s.stack.tcp_open();
    s.stack.tcp_set_buffers(h, Some(1 << 20), None).unwrap();
    let _ = s.stack.tcp_connect(s.now, h, peer());
    let syn = s.next();
    assert_eq!((syn.mss, syn.ws), (Some(1240), Some(5)));
    let h2 = s.stack.tcp_open();
    s.stack.tcp_set_maxseg(h2, 1000).unwrap();
    assert_eq!(s.stack.tcp_set_maxseg(h2, 10), Err(Errno::EINVAL));
    let _ = s.stack.tcp_connect(s.now, h2, peer());
    let syn2 = s.next();
    assert_eq!(syn2.mss, Some(1000));
    // The peer announces 1460 but we clamp to our 1000; no timestamps.
    s.inject(
        seg(SYN | ACK)
            .dport(syn2.src.port())
            .seq(5000)
            .ack(syn2.seq + 1)
            .mss(1460),
    );
    s.expect(&out(ACK, syn2.src, syn2.seq + 1, 5001));
    s.stack.tcp_send(s.now, h2, &[1u8; 2500]).unwrap();
    let sizes: Vec<usize> = s.take().iter().map(|(_, x)| x.payload.len()).collect();
    assert_eq!(sizes, vec![1000, 1000, 500]);
    // A SYN without MSS option means 536 (RFC 9293 §3.7.1).
    let mut s = Script::new();
    let l = listen(&mut s, 1);
    s.inject(seg(SYN).seq(PEER_ISS));
    let iss = s.next().seq;
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 1));
    let (c, _) = s.stack.tcp_accept(l).unwrap();
    s.stack.tcp_send(s.now, c, &[1u8; 1200]).unwrap();
    let sizes: Vec<usize> = s.take().iter().map(|(_, x)| x.payload.len()).collect();
    assert_eq!(sizes, vec![536, 536, 128]);
}

#[test]
fn shutdown_or_close_while_connecting() {
    // shutdown(Write) in SYN-SENT: the FIN follows the handshake.
    let mut s = Script::new();
    let (h, syn) = connect(&mut s);
    s.stack.tcp_shutdown(s.now, h, Shutdown::Write).unwrap();
    s.expect_silence();
    s.inject(
        seg(SYN | ACK)
            .dport(syn.src.port())
            .seq(5000)
            .ack(syn.seq + 1),
    );
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::FinWait1));
    let fin = s.next();
    assert!(fin.flags.contains(FIN | ACK), "{fin}");
    assert_eq!((fin.seq, fin.ack), (syn.seq + 1, 5001));
    // close() in SYN-SENT forgets the attempt; a late SYN-ACK gets a RST.
    let mut s = Script::new();
    let (h, syn) = connect(&mut s);
    s.stack.close(h).unwrap();
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    s.inject(
        seg(SYN | ACK)
            .dport(syn.src.port())
            .seq(5000)
            .ack(syn.seq + 1),
    );
    s.expect(&out(RST, syn.src, syn.seq + 1, 0));
    s.run_to(10.0);
    s.expect_silence();
}

#[test]
fn peer_window_is_scaled_after_the_handshake() {
    let mut cfg = config();
    cfg.tcp.sndbuf = 64 * 1024;
    let mut s = Script::with(cfg);
    let l = listen(&mut s, 1);
    // SYN windows are never scaled (RFC 7323 §2.2); later ones are, by 2^7.
    s.inject(seg(SYN).seq(PEER_ISS).mss(1000).ws(7).win(50));
    let iss = s.next().seq;
    s.inject(seg(ACK).seq(PEER_ISS + 1).ack(iss + 1).win(40));
    let (c, _) = s.stack.tcp_accept(l).unwrap();
    assert_eq!(s.stack.tcp_info(c).unwrap().snd_wnd, 40 << 7);
    s.stack.tcp_send(s.now, c, &vec![1u8; 20_000]).unwrap();
    let sent: usize = s.take().iter().map(|(_, x)| x.payload.len()).sum();
    // Five full segments; the 120-byte sliver left of the 5120-byte window
    // waits (sender SWS avoidance, RFC 9293 §3.8.6.2.1).
    assert_eq!(sent, 5000, "the scaled window, in full segments");
}

#[test]
fn stray_ack_to_a_listener_is_reset_without_a_cookie_check() {
    let mut s = Script::new();
    listen(&mut s, 4);
    s.inject(seg(ACK).seq(5).ack(777));
    s.expect(&seg(RST).reply().seq(777).ack(0));
    assert_eq!(
        s.stack.counters().tcp.syncookies_failed,
        0,
        "no cookies were sent"
    );
}

#[test]
fn out_of_window_pure_acks_are_answered_at_a_bounded_rate() {
    let (mut s, _l, _c, iss) = established();
    let stray = || seg(ACK).seq(PEER_ISS + 500_000).ack(iss + 1);
    let reack = seg(ACK).reply().seq(iss + 1).ack(PEER_ISS + 1);
    let t0 = s.t();
    s.inject(stray());
    s.expect(&reack);
    for k in 1..5 {
        s.run_to(t0 + 0.1 * k as f64);
        s.inject(stray());
    }
    s.expect_silence();
    assert_eq!(
        s.stack.counters().tcp.oow_ack_limited,
        4,
        "each unanswered one counted"
    );
    s.run_to(t0 + 0.5);
    s.inject(stray());
    s.expect(&reack);
    // Data out of window is always answered (the peer may be retransmitting).
    for _ in 0..3 {
        s.inject(stray().data(b"x"));
        s.expect(&reack);
    }
}

#[test]
fn an_out_of_window_rst_is_ignored_and_counted() {
    let (mut s, _l, c, iss) = established();
    s.inject(seg(RST | ACK).seq(PEER_ISS + 500_000).ack(iss + 1));
    s.expect_silence();
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Established));
    assert_eq!(s.stack.counters().tcp.oow_rst_drops, 1);
}

#[test]
fn a_segment_without_ack_is_dropped_and_counted() {
    let (mut s, _l, c, iss) = established();
    // In window, no ACK bit (RFC 9293 §3.10.7.4, fifth check): dropped.
    s.inject(seg(PSH).seq(PEER_ISS + 1).ack(iss + 1).data(b"noack"));
    s.expect_silence();
    let mut buf = [0u8; 16];
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Err(Errno::EAGAIN));
    assert_eq!(s.stack.counters().tcp.no_ack_drops, 1);
}

#[test]
fn keepalive_stays_quiet_while_data_is_in_flight() {
    let mut cfg = config();
    cfg.tcp.retries2 = 100;
    let (mut s, _l, c, iss) = established_with(cfg);
    s.stack.tcp_set_keepalive(s.now, c, true).unwrap();
    s.stack
        .tcp_set_keepalive_params(
            s.now,
            c,
            Some(Duration::from_secs(2)),
            Some(Duration::from_secs(1)),
            Some(2),
        )
        .unwrap();
    let t0 = s.t();
    s.stack.tcp_send(s.now, c, b"unacked").unwrap();
    s.run_to(t0 + 12.0);
    let segs = s.take();
    assert!(segs.len() >= 5, "retransmissions: {}", segs.len());
    for (_, x) in &segs {
        assert_eq!(
            (x.seq, x.payload.len()),
            (iss + 1, 7),
            "only the data, no probe: {x}"
        );
    }
    assert_eq!(s.stack.counters().tcp.keepalive_probes, 0);
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Established));
}

/// Our side into TIME_WAIT on the connection from `port`, with timestamps
/// if `ts` (the peer's TSval 100 on its SYN, 200 on its FIN).
fn time_wait_from(s: &mut Script, l: SocketHandle, port: u16, ts: bool) -> u32 {
    let t = |x: Seg, v: u32| if ts { x.ts(v, 0) } else { x };
    s.inject(t(seg(SYN).sport(port).seq(PEER_ISS).mss(1460), 100));
    let sa = s.expect(&seg(SYN | ACK).sport(port).ack(PEER_ISS + 1).reply().seq(0));
    assert_eq!(sa.ts.is_some(), ts, "{sa}");
    let iss = sa.seq;
    s.inject(t(seg(ACK).sport(port).seq(PEER_ISS + 1).ack(iss + 1), 150));
    let (c, _) = s.stack.tcp_accept(l).unwrap();
    s.stack.close(c).unwrap();
    s.expect(
        &seg(FIN | ACK)
            .sport(port)
            .reply()
            .seq(iss + 1)
            .ack(PEER_ISS + 1),
    );
    s.inject(t(
        seg(FIN | ACK).sport(port).seq(PEER_ISS + 1).ack(iss + 2),
        200,
    ));
    s.expect(&seg(ACK).sport(port).reply().seq(iss + 2).ack(PEER_ISS + 2));
    iss
}

/// RFC 6191 §2: with timestamps on both incarnations the SYN's TSval,
/// not its sequence number, decides whether it ends TIME_WAIT.
#[test]
fn syn_ends_time_wait_with_a_newer_timestamp() {
    let mut s = Script::new();
    let l = listen(&mut s, 8);
    time_wait_from(&mut s, l, PEER_PORT, true);
    assert_eq!(s.stack.counters().tcp.curr_time_wait, 1);
    // Higher sequence but an older timestamp: an old duplicate, ACKed.
    s.inject(seg(SYN).seq(PEER_ISS + 100_000).ts(199, 0));
    let r = s.next();
    assert_eq!(r.flags, ACK, "{r}");
    assert_eq!(s.stack.counters().tcp.time_wait_old_syns, 1);
    assert_eq!(s.stack.counters().tcp.time_wait_recycled, 0);
    // Lower sequence but a newer timestamp: a new incarnation.
    s.inject(seg(SYN).seq(PEER_ISS - 50).ts(201, 0).mss(1460));
    s.expect(&seg(SYN | ACK).reply().seq(0).ack(PEER_ISS - 49));
    let c = s.stack.counters();
    assert_eq!((c.tcp.time_wait_recycled, c.tcp.curr_time_wait), (1, 0));
}

/// RFC 6191 §2: an old incarnation without timestamps gives way to any
/// SYN that would use them.
#[test]
fn syn_with_timestamps_ends_a_time_wait_without() {
    let mut s = Script::new();
    let l = listen(&mut s, 8);
    time_wait_from(&mut s, l, PEER_PORT, false);
    s.inject(seg(SYN).seq(PEER_ISS - 50).ts(1, 0).mss(1460));
    s.expect(&seg(SYN | ACK).reply().seq(0).ack(PEER_ISS - 49));
    assert_eq!(s.stack.counters().tcp.time_wait_recycled, 1);
}

/// Linux `tcp_max_tw_buckets`: past `max_time_wait` a closing connection
/// sends its last ACK and is gone at once; a FIN retransmitted to it then
/// meets a RST, while the one still in TIME_WAIT ACKs it again.
#[test]
fn time_wait_beyond_the_cap_is_skipped() {
    let mut cfg = config();
    cfg.tcp.max_time_wait = 1;
    let mut s = Script::with(cfg);
    let l = listen(&mut s, 8);
    let iss1 = time_wait_from(&mut s, l, 4001, false);
    let iss2 = time_wait_from(&mut s, l, 4002, false);
    s.wait(0.01);
    let c = s.stack.counters();
    assert_eq!((c.tcp.curr_time_wait, c.tcp.time_wait_overflows), (1, 1));
    s.inject(seg(FIN | ACK).sport(4001).seq(PEER_ISS + 1).ack(iss1 + 2));
    s.expect(&seg(ACK).sport(4001).reply().seq(iss1 + 2).ack(PEER_ISS + 2));
    s.inject(seg(FIN | ACK).sport(4002).seq(PEER_ISS + 1).ack(iss2 + 2));
    let r = s.expect(&seg(RST).sport(4002).reply().seq(iss2 + 2).ack(0));
    assert_eq!(r.flags, RST);
    // The one held ends after 2MSL; then the cap has room again.
    s.wait(61.0);
    let c = s.stack.counters();
    assert_eq!((c.tcp.curr_time_wait, c.tcp.time_waits_done), (0, 2));
    time_wait_from(&mut s, l, 4003, false);
    let c = s.stack.counters();
    assert_eq!((c.tcp.curr_time_wait, c.tcp.time_wait_overflows), (1, 1));
}

/// An active open from the one ephemeral port 40000 that we close first:
/// TIME_WAIT on our side. Returns (our FIN's seq, our last TSval).
fn active_time_wait(s: &mut Script, ts: bool) -> (u32, Option<u32>) {
    let (h, syn) = connect(s);
    assert_eq!(syn.src.port(), 40000);
    let t = |x: Seg, v: u32| match (ts, syn.ts) {
        (true, Some((ecr, _))) => x.ts(v, ecr),
        _ => x,
    };
    let sa = seg(SYN | ACK).dport(40000).seq(PEER_ISS).ack(syn.seq + 1);
    s.inject(t(sa.mss(1460), 500));
    s.expect(&out(ACK, syn.src, syn.seq + 1, PEER_ISS + 1));
    s.stack.close(h).unwrap();
    let fin = s.expect(&out(FIN | ACK, syn.src, syn.seq + 1, PEER_ISS + 1));
    let peer_fin = seg(FIN | ACK)
        .dport(40000)
        .seq(PEER_ISS + 1)
        .ack(syn.seq + 2);
    s.inject(t(peer_fin, 501));
    let ack = s.expect(&out(ACK, syn.src, syn.seq + 2, PEER_ISS + 2));
    assert_eq!(ack.ts.is_some(), ts, "{ack}");
    assert_eq!(s.stack.counters().tcp.curr_time_wait, 1);
    (fin.seq, ack.ts.map(|t| t.0))
}

fn one_port_config() -> ustack_core::StackConfig {
    let mut cfg = config();
    cfg.ephemeral_ports = 40000..=40000;
    cfg
}

/// Linux `tcp_tw_reuse`: connect may take over our own TIME_WAIT 4-tuple
/// once it is 1 s old and used timestamps; the new SYN's sequence number
/// and TSval are above the old incarnation's.
#[test]
fn connect_reuses_a_time_wait_older_than_a_second() {
    let mut s = Script::with(one_port_config());
    let (fin_seq, last_ts) = active_time_wait(&mut s, true);
    let h = s.stack.tcp_open();
    assert_eq!(
        s.stack.tcp_connect(s.now, h, peer()),
        Err(Errno::EADDRNOTAVAIL),
        "younger than 1 s"
    );
    s.expect_silence();
    s.wait(1.0);
    let (h, syn) = connect(&mut s);
    assert_eq!(syn.src.port(), 40000);
    assert!(
        (syn.seq.wrapping_sub(fin_seq + 1) as i32) > 0,
        "ISN above the old"
    );
    let (tsval, _) = syn.ts.expect("timestamps");
    assert!(
        (tsval.wrapping_sub(last_ts.unwrap()) as i32) > 0,
        "TSval above the old"
    );
    let c = s.stack.counters();
    assert_eq!((c.tcp.time_wait_reused, c.tcp.curr_time_wait), (1, 0));
    assert_eq!(s.stack.tcp_state(h), Ok(TcpState::SynSent));
}

/// Without timestamps (or with `tw_reuse` off) TIME_WAIT holds its
/// 4-tuple for its whole 2MSL.
#[test]
fn connect_does_not_reuse_a_time_wait_without_timestamps_or_when_off() {
    for (ts, reuse) in [(false, true), (true, false)] {
        let mut cfg = one_port_config();
        cfg.tcp.tw_reuse = reuse;
        let mut s = Script::with(cfg);
        active_time_wait(&mut s, ts);
        s.wait(30.0);
        let h = s.stack.tcp_open();
        assert_eq!(
            s.stack.tcp_connect(s.now, h, peer()),
            Err(Errno::EADDRNOTAVAIL),
            "ts {ts} reuse {reuse}"
        );
        s.expect_silence();
        assert_eq!(s.stack.counters().tcp.time_wait_reused, 0);
        s.wait(31.0);
        let h = s.stack.tcp_open();
        assert_eq!(
            s.stack.tcp_connect(s.now, h, peer()),
            Err(Errno::EINPROGRESS)
        );
    }
}
