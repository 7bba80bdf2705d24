//! Transparent forwarding: the any-destination listener (connect-before-
//! accept, bounds, cookies), the any-destination UDP socket and ICMP echo
//! to any address, as segments on the virtual clock.

mod segscript;

use segscript::*;
use std::net::SocketAddr;
use ustack_core::wire::{
    ChecksumCaps, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr, TcpFlags,
    UdpPacket, UdpRepr,
};
use ustack_core::{Errno, SocketHandle, StackConfig, TcpState};

const PEER_ISS: u32 = 5000;
/// A destination that is not the stack's address.
const FAR: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

trait SetFlags {
    fn flags(self, f: TcpFlags) -> Self;
}

impl SetFlags for Seg {
    fn flags(mut self, f: TcpFlags) -> Self {
        self.flags = f;
        self
    }
}

fn transparent() -> StackConfig {
    let mut c = config();
    c.transparent = true;
    c
}

fn far(port: u16) -> SocketAddr {
    SocketAddr::from((FAR, port))
}

/// A SYN from the peer (port `sport`) to `dst`.
fn syn_to(dst: SocketAddr, sport: u16) -> Seg {
    let mut s = seg(SYN).sport(sport).seq(PEER_ISS).mss(1460);
    s.dst = dst;
    s
}

fn any_listener(s: &mut Script, defer: bool, max_conns: usize) -> SocketHandle {
    let l = s.stack.tcp_open();
    s.stack.tcp_listen_any(l, 16, defer, max_conns).unwrap();
    l
}

#[test]
fn any_destination_is_accepted_and_its_address_is_getsockname() {
    let mut s = Script::with(transparent());
    let l = any_listener(&mut s, false, 100);
    let syn = syn_to(far(443), 40001);
    s.inject(syn.clone());
    // The SYN-ACK comes from the address the client asked for.
    let sa = s.expect(
        &syn.clone()
            .reply()
            .seq(0)
            .ack(PEER_ISS + 1)
            .flags(SYN | ACK),
    );
    let mut ack = syn.clone().flags(ACK).seq(PEER_ISS + 1).ack(sa.seq + 1);
    s.inject(ack.clone());
    let (c, peer, dst) = s.stack.tcp_take_pending(l).unwrap();
    assert_eq!(peer, SocketAddr::from((PEER, 40001)));
    assert_eq!(dst, far(443));
    assert_eq!(s.stack.local_addr(c), Ok(Some(far(443))));
    assert_eq!(s.stack.peer_addr(c), Ok(peer));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Established));
    // Data both ways, from the original destination.
    ack.payload = b"hello".to_vec();
    s.inject(ack);
    let mut buf = [0u8; 16];
    assert_eq!(s.stack.tcp_recv(c, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    s.stack.tcp_send(s.now, c, b"world").unwrap();
    let mut got = s.next();
    if got.payload.is_empty() {
        got = s.next(); // the delayed ACK of "hello" may go first
    }
    assert_eq!((got.src, got.payload.as_slice()), (far(443), &b"world"[..]));
    s.stack.tcp_check_invariants();
}

#[test]
fn without_transparent_mode_other_addresses_are_dropped() {
    let mut s = Script::new();
    let _l = any_listener(&mut s, false, 100);
    let before = s.stack.counters().ip.in_addr_errors;
    s.inject(syn_to(far(443), 40001));
    s.expect_silence();
    assert_eq!(s.stack.counters().ip.in_addr_errors, before + 1);
    // Our own address still reaches it (no other listener on the port).
    let syn = syn_to(SocketAddr::from((US, 8080)), 40002);
    s.inject(syn.clone());
    s.expect(&syn.reply().seq(0).ack(PEER_ISS + 1).flags(SYN | ACK));
}

#[test]
fn a_bound_listener_comes_before_the_any_destination_one() {
    let mut s = Script::with(transparent());
    let any = any_listener(&mut s, true, 100);
    let l = s.stack.tcp_open();
    s.stack.tcp_bind(l, SocketAddr::from((US, 80))).unwrap();
    s.stack.tcp_listen(l, 8).unwrap();
    let syn = syn_to(SocketAddr::from((US, 80)), 40003);
    s.inject(syn.clone());
    // Not deferred: the bound listener answers at once.
    s.expect(&syn.reply().seq(0).ack(PEER_ISS + 1).flags(SYN | ACK));
    assert_eq!(s.stack.tcp_take_pending(any), Err(Errno::EAGAIN));
}

#[test]
fn deferred_syn_waits_for_the_answer_then_completes() {
    let mut s = Script::with(transparent());
    let l = any_listener(&mut s, true, 100);
    assert!(!s.stack.readiness(l).unwrap().readable);
    let syn = syn_to(far(80), 40004);
    s.inject(syn.clone());
    s.expect_silence();
    assert!(s.stack.readiness(l).unwrap().readable);
    // The client's retransmission is not answered either.
    s.wait(1.0);
    s.inject(syn.clone());
    s.expect_silence();
    let (c, peer, dst) = s.stack.tcp_take_pending(l).unwrap();
    assert_eq!((peer.port(), dst), (40004, far(80)));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::SynReceived));
    assert!(!s.stack.readiness(l).unwrap().readable);
    s.wait(2.0);
    s.expect_silence();
    s.stack.tcp_answer(s.now, c).unwrap();
    let sa = s.expect_at(
        3.0,
        &syn.clone()
            .reply()
            .seq(0)
            .ack(PEER_ISS + 1)
            .flags(SYN | ACK),
    );
    s.inject(syn.flags(ACK).seq(PEER_ISS + 1).ack(sa.seq + 1));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Established));
    assert!(s.stack.readiness(c).unwrap().writable);
    s.stack.tcp_check_invariants();
}

#[test]
fn a_refused_destination_is_a_rst_that_acknowledges_the_syn() {
    let mut s = Script::with(transparent());
    let l = any_listener(&mut s, true, 100);
    let syn = syn_to(far(81), 40005);
    s.inject(syn.clone());
    let (c, _, _) = s.stack.tcp_take_pending(l).unwrap();
    s.stack.tcp_refuse(s.now, c).unwrap();
    // RFC 9293 §3.10.7.3: a RST whose ACK acknowledges the SYN refuses it.
    let rst = s.next();
    assert_eq!(
        (rst.src, rst.dst, rst.flags, rst.ack),
        (far(81), syn.src, RST | ACK, PEER_ISS + 1)
    );
    s.expect_silence();
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    // A retransmitted SYN now meets a fresh deferral, not the old TCB.
    s.inject(syn);
    s.expect_silence();
    assert!(s.stack.tcp_take_pending(l).is_ok());
    s.stack.tcp_check_invariants();
}

#[test]
fn closing_an_unanswered_connection_refuses_it_and_a_client_rst_ends_the_wait() {
    let mut s = Script::with(transparent());
    let l = any_listener(&mut s, true, 100);
    let syn = syn_to(far(82), 40006);
    s.inject(syn.clone());
    let (c, _, _) = s.stack.tcp_take_pending(l).unwrap();
    s.stack.close(c).unwrap();
    assert_eq!(s.next().flags, RST | ACK);
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    // The client gives up (RST) while the application is still deciding.
    let syn2 = syn_to(far(82), 40007);
    s.inject(syn2.clone());
    let (c2, _, _) = s.stack.tcp_take_pending(l).unwrap();
    // A RST off RCV.NXT (blind, RFC 5961) is ignored.
    s.inject(syn2.clone().flags(RST).seq(PEER_ISS + 1000));
    assert_eq!(s.stack.tcp_tcb_count(), 1);
    s.inject(syn2.flags(RST).seq(PEER_ISS + 1));
    s.expect_silence();
    assert_eq!(s.stack.tcp_tcb_count(), 0);
    assert_eq!(s.stack.tcp_answer(s.now, c2), Err(Errno::ECONNRESET));
    // An untaken deferred SYN is reset when the listener closes.
    s.inject(syn_to(far(83), 40008));
    s.expect_silence();
    s.stack.close(l).unwrap();
    assert_eq!(s.next().flags, RST | ACK);
    assert_eq!(s.stack.tcp_tcb_count(), 0);
}

#[test]
fn connections_are_bounded_and_the_syn_queue_overflows_into_cookies() {
    let mut cfg = transparent();
    cfg.tcp.max_syn_backlog = 2;
    let mut s = Script::with(cfg);
    let l = any_listener(&mut s, true, 3);
    for p in 0..2 {
        s.inject(syn_to(far(90 + p), 41000 + p));
    }
    s.expect_silence();
    // The SYN queue (2) is full of deferred SYNs: a cookie SYN-ACK at once.
    let syn = syn_to(far(99), 41009);
    s.inject(syn.clone());
    let sa = s.expect(
        &syn.clone()
            .reply()
            .seq(0)
            .ack(PEER_ISS + 1)
            .flags(SYN | ACK),
    );
    assert_eq!(s.stack.counters().tcp.syncookies_sent, 1);
    assert_eq!(s.stack.tcp_tcb_count(), 2);
    s.inject(syn.flags(ACK).seq(PEER_ISS + 1).ack(sa.seq + 1));
    assert_eq!(s.stack.counters().tcp.syncookies_recv, 1);
    // Three alive now (max_conns): a fourth SYN is dropped and counted.
    let drops = s.stack.counters().tcp.listen_drops;
    s.inject(syn_to(far(100), 41010));
    s.expect_silence();
    assert_eq!(s.stack.counters().tcp.listen_drops, drops + 1);
    assert_eq!(s.stack.tcp_tcb_count(), 3);
    // Deferred first, then the cookie connection, already established.
    let (a, _, _) = s.stack.tcp_take_pending(l).unwrap();
    let (_b, _, _) = s.stack.tcp_take_pending(l).unwrap();
    let (c, _, dst) = s.stack.tcp_take_pending(l).unwrap();
    assert_eq!(dst, far(99));
    assert_eq!(s.stack.tcp_state(c), Ok(TcpState::Established));
    assert_eq!(s.stack.tcp_answer(s.now, c), Ok(()));
    s.expect_silence();
    // One refused leaves room for the next SYN.
    s.stack.tcp_refuse(s.now, a).unwrap();
    assert_eq!(s.next().flags, RST | ACK);
    s.inject(syn_to(far(100), 41010));
    s.expect_silence();
    assert_eq!(s.stack.tcp_tcb_count(), 3);
    s.stack.tcp_check_invariants();
}

fn ip_datagram(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: proto,
        payload_len: payload.len(),
        ttl: 64,
        tos: 0,
        ident: 9,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    };
    let mut buf = vec![0u8; 20 + payload.len()];
    ip.emit(
        &mut Ipv4Packet::new_unchecked(&mut buf[..]),
        &ChecksumCaps::default(),
    );
    buf[20..].copy_from_slice(payload);
    buf
}

fn udp_datagram(from: SocketAddr, to: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut udp = vec![0u8; 8 + data.len()];
    UdpRepr {
        src_port: from.port(),
        dst_port: to.port(),
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut udp[..]),
        ip4(from.ip()),
        ip4(to.ip()),
        data,
        &ChecksumCaps::default(),
    );
    ip_datagram(ip4(from.ip()), ip4(to.ip()), IpProtocol::Udp, &udp)
}

/// Delivers `bytes` and returns the datagrams the stack sent in answer.
fn answers(s: &mut Script, bytes: &[u8]) -> Vec<Vec<u8>> {
    let n = s.raw.len();
    s.inject_raw(bytes);
    s.raw[n..].to_vec()
}

#[test]
fn udp_to_any_destination_is_delivered_with_both_addresses_and_answered_from_it() {
    let mut s = Script::with(transparent());
    let u = s.stack.udp_open();
    s.stack.udp_bind_any(u).unwrap();
    let other = s.stack.udp_open();
    assert_eq!(s.stack.udp_bind_any(other), Err(Errno::EADDRINUSE));
    let client = SocketAddr::from((PEER, 5353));
    let dns = SocketAddr::from((Ipv4Addr::new(8, 8, 8, 8), 53));
    s.inject_raw(&udp_datagram(client, dns, b"query"));
    let mut buf = [0u8; 32];
    let (n, len, from, to) = s.stack.udp_recv_from_to(u, &mut buf).unwrap();
    assert_eq!((&buf[..n], len, from, to), (&b"query"[..], 5, client, dns));
    // A socket bound to the port on our address is preferred.
    let bound = s.stack.udp_open();
    s.stack.udp_bind(bound, SocketAddr::from((US, 53))).unwrap();
    s.inject_raw(&udp_datagram(client, SocketAddr::from((US, 53)), b"mine"));
    assert!(s.stack.udp_recv_from(bound, &mut buf).is_ok());
    assert_eq!(s.stack.udp_recv_from_to(u, &mut buf), Err(Errno::EAGAIN));
    // The answer comes from the address the client asked.
    s.stack.udp_send_from(u, b"answer", dns, client).unwrap();
    assert_eq!(
        s.stack.udp_send_from(bound, b"x", dns, client),
        Err(Errno::EINVAL)
    );
    let n = s.raw.len();
    s.take();
    let out = s.raw[n..].to_vec();
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::new_checked(&out[0][..]).unwrap();
    let ipr = Ipv4Repr::parse(&ip, &ChecksumCaps::default()).unwrap();
    assert_eq!((ipr.src_addr, ipr.dst_addr), (ip4(dns.ip()), PEER));
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    let r = UdpRepr::parse(&udp, ipr.src_addr, ipr.dst_addr, &ChecksumCaps::default()).unwrap();
    assert_eq!(
        (r.src_port, r.dst_port, udp.payload()),
        (53, 5353, &b"answer"[..])
    );
}

fn echo_request(to: Ipv4Addr) -> Vec<u8> {
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 7,
        seq_no: 1,
        data: b"ping",
    };
    let mut b = vec![0u8; icmp.buffer_len()];
    icmp.emit(
        &mut Icmpv4Packet::new_unchecked(&mut b[..]),
        &ChecksumCaps::default(),
    );
    ip_datagram(PEER, to, IpProtocol::Icmp, &b)
}

#[test]
fn echo_to_any_address_is_answered_from_it_unless_turned_off() {
    let mut s = Script::with(transparent());
    let out = answers(&mut s, &echo_request(FAR));
    assert_eq!(out.len(), 1);
    let ip = Ipv4Packet::new_checked(&out[0][..]).unwrap();
    let ipr = Ipv4Repr::parse(&ip, &ChecksumCaps::default()).unwrap();
    assert_eq!((ipr.src_addr, ipr.dst_addr), (FAR, PEER));
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(matches!(
        Icmpv4Repr::parse(&icmp, &ChecksumCaps::default()),
        Ok(Icmpv4Repr::EchoReply {
            ident: 7,
            seq_no: 1,
            data: b"ping"
        })
    ));
    let mut cfg = transparent();
    cfg.transparent_echo = false;
    let mut s = Script::with(cfg);
    assert!(answers(&mut s, &echo_request(FAR)).is_empty());
    assert_eq!(answers(&mut s, &echo_request(US)).len(), 1);
}

/// The IPv4 address in `ip` (these tests are IPv4).
fn ip4(ip: std::net::IpAddr) -> Ipv4Addr {
    match ip {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => panic!("IPv4 only"),
    }
}
