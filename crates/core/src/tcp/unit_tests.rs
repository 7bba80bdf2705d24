//! A TCB driven alone: a `Tcp` and a context built from parts, no
//! `Stack`. Segments go in through `process` and come out of `dispatch`.

use super::output::TcpTx;
use super::state::State;
use super::table::Tcp;

use crate::config::{Medium, StackConfig};
use crate::cx::Parts;
use crate::ipv4::output::IpPair;
use crate::time::Instant;
use std::net::{IpAddr, SocketAddr};
use ustack_wire::{
    ChecksumCaps, Ipv4Addr, Ipv4Cidr, Ipv4Packet, SeqNumber, TcpFlags, TcpPacket, TcpRepr,
};

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn parts() -> (Parts, Tcp) {
    let cfg = StackConfig::new(Medium::Ip, Ipv4Cidr::new(US, 24)).with_seed(7);
    let mut p = Parts::new(cfg);
    let tcp = Tcp::new(&p.cfg.tcp, &mut p.sh.rng);
    (p, tcp)
}

/// The next segment `tcp` owes, as (flags, seq, ack, payload length).
fn next(p: &mut Parts, tcp: &mut Tcp, now: Instant) -> Option<(TcpFlags, SeqNumber, SeqNumber)> {
    let mut buf = [0u8; 2048];
    let n = match tcp.dispatch(&mut p.cx(now), &mut buf) {
        TcpTx::Sent(n) => n,
        _ => return None,
    };
    let ip = Ipv4Packet::new_checked(&buf[..n]).unwrap();
    assert_eq!(ip.dst_addr(), PEER);
    let seg = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(
        seg.verify_checksum(US, PEER),
        "checksum from the IP layer's pseudo-header sum"
    );
    Some((seg.flags(), seg.seq_number(), seg.ack_number()))
}

/// A segment from the peer, as the IP layer would hand it over.
fn input(p: &mut Parts, tcp: &mut Tcp, now: Instant, repr: TcpRepr) {
    let mut seg = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut seg[..]),
        PEER,
        US,
        &ChecksumCaps::default(),
    );
    let ip = IpPair { src: PEER, dst: US };
    tcp.process(&mut p.cx(now), ip, &seg, false);
}

fn repr(flags: TcpFlags, seq: SeqNumber, ack: SeqNumber, dst_port: u16) -> TcpRepr<'static> {
    TcpRepr {
        src_port: 80,
        dst_port,
        flags,
        seq_number: seq,
        ack_number: ack,
        window_len: 65535,
        urgent_pointer: 0,
        max_seg_size: Some(1460),
        window_scale: None,
        sack_permitted: false,
        sack_ranges: [None; 4],
        timestamp: None,
        payload: &[],
    }
}

#[test]
fn active_open_without_a_stack() {
    let (mut p, mut tcp) = parts();
    let t0 = Instant::from_secs(1);
    let h = tcp.tcp_open(&mut p.cx(t0));
    let remote = SocketAddr::new(IpAddr::V4(PEER), 80);
    let _ = tcp.tcp_connect(&mut p.cx(t0), h, remote);
    assert_eq!(tcp.tcp_state(h), Ok(State::SynSent));
    let (flags, iss, _) = next(&mut p, &mut tcp, t0).expect("a SYN");
    assert_eq!(flags, TcpFlags::SYN);
    assert!(next(&mut p, &mut tcp, t0).is_none(), "one SYN only");
    let port = tcp.tcp_local_addr(h).unwrap().unwrap().port();
    // SYN-ACK: established, and an ACK of the peer's SYN.
    let irs = SeqNumber(5000);
    let synack = repr(TcpFlags::SYN | TcpFlags::ACK, irs, iss + 1, port);
    input(&mut p, &mut tcp, t0, synack);
    assert_eq!(tcp.tcp_state(h), Ok(State::Established));
    let (flags, seq, ack) = next(&mut p, &mut tcp, t0).expect("the ACK");
    assert_eq!(flags, TcpFlags::ACK);
    assert_eq!((seq, ack), (iss + 1, irs + 1));
    assert_eq!(p.sh.counters.tcp.active_opens, 1);
    assert_eq!(p.sh.counters.tcp.out_segs, 2);
}

#[test]
fn the_syn_is_resent_on_the_rto_without_a_stack() {
    let (mut p, mut tcp) = parts();
    let t0 = Instant::from_secs(1);
    let h = tcp.tcp_open(&mut p.cx(t0));
    let _ = tcp.tcp_connect(&mut p.cx(t0), h, SocketAddr::new(IpAddr::V4(PEER), 80));
    let (_, iss, _) = next(&mut p, &mut tcp, t0).unwrap();
    let rto = tcp.poll_at().expect("the SYN's timer");
    assert_eq!(rto, t0 + p.cfg.tcp.rto_initial);
    tcp.tcp_run_timers(&mut p.cx(rto));
    let (flags, seq, _) = next(&mut p, &mut tcp, rto).expect("the SYN again");
    assert_eq!((flags, seq), (TcpFlags::SYN, iss));
    assert_eq!(p.sh.counters.tcp.retrans_segs, 1);
}
