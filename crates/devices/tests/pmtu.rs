//! Path MTU discovery end to end on the virtual clock: a TCP transfer from
//! A to B through a hop whose MTU is smaller than the link's
//! ([`Impairments::with_hop_mtu`]). With ICMP Fragmentation Needed the
//! sender resegments at once (RFC 1191 §6.4); with the ICMP black-holed
//! only PLPMTUD black-hole detection (RFC 4821 §7.7) gets it through.

use std::net::{SocketAddr, SocketAddrV4};
use ustack_core::time::{Duration, Instant};
use ustack_core::wire::{
    ChecksumCaps, DstUnreachable, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, IpProtocol, Ipv4Addr, Ipv4Cidr, Ipv4Packet, Ipv4Repr, TcpPacket,
};
use ustack_core::{Errno, Medium, Shutdown, SocketHandle, Stack, StackConfig, TcpState};
use ustack_devices::{Impairments, MemLink, Sim, SimHost};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const HOP_MTU: usize = 1000;

fn mac(addr: Ipv4Addr) -> EthernetAddress {
    EthernetAddress([2, 0, 0, 0, 0, addr.octets()[3]])
}

fn cfg(addr: Ipv4Addr, seed: u64, probing: bool) -> StackConfig {
    let mut c = StackConfig::new(Medium::Ethernet, Ipv4Cidr::new(addr, 24))
        .with_seed(seed)
        .with_mac(mac(addr));
    c.tcp.mtu_probing = probing;
    c
}

/// A stack that records the IP length of every frame it sends, and
/// whether an ICMP Fragmentation Needed has reached it yet.
struct Host {
    stack: Stack,
    /// (IP length, sent after the first Fragmentation Needed arrived,
    /// TCP sequence number or 0).
    sent: Vec<(usize, bool, u32)>,
    icmp_seen: bool,
    /// The connection's cwnd just before and after the first ICMP.
    cwnd_around_icmp: Option<(u32, u32)>,
    conn: Option<SocketHandle>,
    /// Sequence number of the last TCP segment sent.
    last_seq: u32,
}

impl SimHost for Host {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        let frag_needed = frame.len() > 14 + 21
            && frame[12..14] == [0x08, 0x00]
            && frame[14 + 9] == 1
            && frame[14 + 20] == 3
            && frame[14 + 21] == 4;
        let before = self.conn.and_then(|c| self.stack.tcp_info(c).ok());
        self.stack.receive(now, frame);
        if frag_needed && !self.icmp_seen {
            self.icmp_seen = true;
            let after = self.conn.and_then(|c| self.stack.tcp_info(c).ok());
            if let (Some(b), Some(a)) = (before, after) {
                self.cwnd_around_icmp = Some((b.cwnd, a.cwnd));
            }
        }
    }
    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let n = self.stack.transmit(now, buf)?;
        let mut seq = 0;
        if n >= 14 + 40 && buf[12..14] == [0x08, 0x00] && buf[14 + 9] == 6 {
            let t = 14 + usize::from(buf[14] & 0x0f) * 4;
            seq = u32::from_be_bytes([buf[t + 4], buf[t + 5], buf[t + 6], buf[t + 7]]);
            self.last_seq = seq;
        }
        self.sent.push((n - 14, self.icmp_seen, seq));
        Some(n)
    }
    fn poll_at(&self) -> Option<Instant> {
        self.stack.poll_at()
    }
}

fn host(c: StackConfig) -> Host {
    Host {
        stack: Stack::new(c).unwrap(),
        sent: Vec::new(),
        icmp_seen: false,
        cwnd_around_icmp: None,
        conn: None,
        last_seq: 0,
    }
}

struct Run {
    sim: Sim<Host>,
    done: bool,
    got: Vec<u8>,
    data: Vec<u8>,
    listener: SocketHandle,
}

/// A (client) sends `len` bytes to B through a hop of `HOP_MTU` on the way
/// from A to B (10 ms each way), then half-closes; B reads to EOF. Runs for
/// at most `limit` of virtual time. `forge` is called once, at 100 ms.
fn transfer(
    len: usize,
    hop: Impairments,
    probing: bool,
    limit: Duration,
    forge: impl FnMut(&mut Sim<Host>, SocketHandle),
) -> Run {
    transfer_to(
        SocketAddrV4::new(B, 80).into(),
        len,
        hop,
        probing,
        limit,
        forge,
    )
}

/// [`transfer`] to `dst` on B; for an IPv6 `dst` both hosts get fd00::N/64
/// and a second for DAD and neighbour discovery before the transfer.
fn transfer_to(
    dst: SocketAddr,
    len: usize,
    hop: Impairments,
    probing: bool,
    limit: Duration,
    forge: impl FnMut(&mut Sim<Host>, SocketHandle),
) -> Run {
    let delay = Duration::from_millis(10);
    let mut sim = Sim::new(MemLink::new(7));
    let (mut ca, mut cb) = (cfg(A, 1, probing), cfg(B, 2, false));
    if dst.is_ipv6() {
        ca = ca.with_addr6("fd00::1/64".parse().unwrap());
        cb = cb.with_addr6("fd00::2/64".parse().unwrap());
    }
    let a = sim.add_host(host(ca));
    let b = sim.add_host(host(cb));
    let (pa, pb) = (sim.port(a), sim.port(b));
    sim.link
        .set_direction_impairments(pa, pb, hop.with_delay(delay));
    sim.link
        .set_direction_impairments(pb, pa, Impairments::none().with_delay(delay));
    if dst.is_ipv6() {
        let settled = sim.now() + Duration::from_secs(1);
        sim.run_until(settled, |_| false);
    }
    let l = sim.hosts[1].stack.tcp_open();
    sim.hosts[1].stack.tcp_bind(l, dst).unwrap();
    sim.hosts[1].stack.tcp_listen(l, 4).unwrap();
    again(sim, l, len, limit, forge)
}

/// Another transfer like [`transfer`]'s on the same hosts; `forge` is
/// called once, 100 ms after it starts.
fn again(
    mut sim: Sim<Host>,
    l: SocketHandle,
    len: usize,
    limit: Duration,
    mut forge: impl FnMut(&mut Sim<Host>, SocketHandle),
) -> Run {
    let data: Vec<u8> = (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let start = sim.now();
    let dst = sim.hosts[1].stack.local_addr(l).unwrap().unwrap();
    let c = sim.hosts[0].stack.tcp_open();
    sim.hosts[0].conn = Some(c);
    assert_eq!(
        sim.hosts[0].stack.tcp_connect(start, c, dst),
        Err(Errno::EINPROGRESS)
    );
    let (mut server, mut sent, mut eof, mut forged) = (None, 0usize, false, false);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let done = sim.run_until(start + limit, |s| {
        let now = s.now();
        if !forged && now >= start + Duration::from_millis(100) {
            forged = true;
            forge(s, c);
        }
        let client = &mut s.hosts[0].stack;
        if client.tcp_state(c) == Ok(TcpState::Established) {
            while sent < data.len() {
                match client.tcp_send(now, c, &data[sent..]) {
                    Ok(n) => sent += n,
                    Err(Errno::EAGAIN) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            if sent == data.len() {
                client.tcp_shutdown(now, c, Shutdown::Write).unwrap();
            }
        }
        let srv = &mut s.hosts[1].stack;
        if server.is_none() {
            server = srv.tcp_accept(l).ok().map(|(h, _)| h);
        }
        if let Some(h) = server.filter(|_| !eof) {
            loop {
                match srv.tcp_recv(h, &mut buf) {
                    Ok(0) => {
                        eof = true;
                        srv.close(h).unwrap();
                        break;
                    }
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(Errno::EAGAIN) => break,
                    Err(e) => panic!("recv: {e}"),
                }
            }
        }
        eof
    });
    Run {
        sim,
        done,
        got,
        data,
        listener: l,
    }
}

fn no_forge(_: &mut Sim<Host>, _: SocketHandle) {}

#[test]
fn transfer_through_a_small_mtu_hop_resegments_at_once() {
    let r = transfer(
        1 << 20,
        Impairments::none().with_hop_mtu(HOP_MTU),
        false,
        Duration::from_secs(60),
        no_forge,
    );
    assert!(r.done, "stalled: {} of {} bytes", r.got.len(), r.data.len());
    assert!(r.got == r.data, "bytes differ");
    let a = &r.sim.hosts[0];
    assert!(r.sim.link.stats().dropped_hop > 0, "the hop never bit");
    assert!(a.icmp_seen);
    // Everything A sent once the ICMP was in fits through the hop.
    let after: Vec<usize> = a.sent.iter().filter(|s| s.1).map(|s| s.0).collect();
    assert!(after.len() > 500, "{}", after.len());
    assert!(
        after.iter().all(|&n| n <= HOP_MTU),
        "too big after the ICMP: {:?}",
        after.iter().filter(|&&n| n > HOP_MTU).collect::<Vec<_>>()
    );
    let k = a.stack.counters();
    assert_eq!(k.ip.pmtu_lowered, 1);
    assert_eq!(a.stack.path_mtu(r.sim.now(), B), HOP_MTU);
    // Resent at the new size straight away, from the first segment the
    // hop dropped: not after a timeout nor by loss recovery.
    let first_dropped = a.sent.iter().find(|s| s.0 > HOP_MTU).unwrap().2;
    let first_after = a.sent.iter().find(|s| s.1).unwrap().2;
    assert_eq!(first_after, first_dropped, "not resent at once");
    assert_eq!(k.tcp.timeouts, 0, "waited for the RTO");
    assert_eq!(k.tcp.fast_retrans, 0, "treated as loss");
    let (before, after) = a.cwnd_around_icmp.expect("cwnd around the ICMP");
    assert!(after >= before, "cwnd cut from {before} to {after}");
}

/// The same over IPv6: the hop answers Packet Too Big (RFC 8201 §4) and
/// the connection resegments to fit it.
#[test]
fn a_v6_transfer_through_a_small_mtu_hop_resegments_at_once() {
    const HOP6: usize = 1280;
    let r = transfer_to(
        "[fd00::2]:80".parse().unwrap(),
        1 << 20,
        Impairments::none().with_hop_mtu(HOP6),
        false,
        Duration::from_secs(60),
        no_forge,
    );
    assert!(r.done, "stalled: {} of {} bytes", r.got.len(), r.data.len());
    assert!(r.got == r.data, "bytes differ");
    assert!(r.sim.link.stats().dropped_hop > 0, "the hop never bit");
    let a = &r.sim.hosts[0];
    let k = a.stack.counters();
    assert_eq!(k.tcp.timeouts, 0, "waited for the RTO");
    // TCP itself fits the hop (RFC 8201 §5: the MSS drops to PMTU − 60),
    // rather than the IPv6 layer fragmenting every segment.
    let mss = a.stack.tcp_info(a.conn.unwrap()).unwrap().snd_mss;
    assert!(usize::from(mss) <= HOP6 - 60, "send MSS {mss}");
    // Once the hop has bitten, the rest fits through it: of the last
    // 500 frames A sent, none is bigger than the hop.
    let last: Vec<usize> = a.sent.iter().rev().take(500).map(|s| s.0).collect();
    assert!(
        last.iter().all(|&n| n <= HOP6),
        "too big at the end: {:?}",
        last.iter().filter(|&&n| n > HOP6).collect::<Vec<_>>()
    );
}

#[test]
fn a_new_connection_starts_at_the_known_path_mtu() {
    let r = transfer(
        64 << 10,
        Impairments::none().with_hop_mtu(HOP_MTU),
        false,
        Duration::from_secs(60),
        no_forge,
    );
    assert!(r.done);
    let (drops, frames) = (r.sim.link.stats().dropped_hop, r.sim.hosts[0].sent.len());
    let r = again(
        r.sim,
        r.listener,
        64 << 10,
        Duration::from_secs(60),
        no_forge,
    );
    assert!(r.done && r.got == r.data);
    assert_eq!(r.sim.link.stats().dropped_hop, drops, "learned again");
    let second = &r.sim.hosts[0].sent[frames..];
    assert!(second.iter().all(|s| s.0 <= HOP_MTU));
    assert!(second.iter().filter(|s| s.0 > 900).count() > 40);
}

#[test]
fn the_lowered_path_mtu_expires_after_ten_minutes() {
    let mut r = transfer(
        64 << 10,
        Impairments::none().with_hop_mtu(HOP_MTU),
        false,
        Duration::from_secs(60),
        no_forge,
    );
    assert!(r.done);
    let t = r.sim.now();
    assert_eq!(r.sim.hosts[0].stack.path_mtu(t, B), HOP_MTU);
    // The stack's deadline includes the expiry: the clock gets there by itself.
    assert!(r.sim.hosts[0].stack.poll_at().is_some());
    r.sim.run_for(Duration::from_secs(601));
    let now = r.sim.now();
    assert_eq!(r.sim.hosts[0].stack.path_mtu(now, B), 1500);
    assert_eq!(r.sim.hosts[0].stack.counters().ip.pmtu_expired, 1);
}

/// An Ethernet frame from B to A carrying ICMP Fragmentation Needed
/// (next-hop MTU `mtu`) that quotes A's 1500-byte segment of connection
/// `conn` with sequence number `seq`.
fn frag_needed(conn: (u16, u16), seq: u32, mtu: u16) -> Vec<u8> {
    let mut quoted = vec![0u8; 20 + 20];
    let ip = Ipv4Repr {
        src_addr: A,
        dst_addr: B,
        protocol: IpProtocol::Tcp,
        payload_len: 1480,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    };
    ip.emit(
        &mut Ipv4Packet::new_unchecked(&mut quoted[..]),
        &ChecksumCaps::default(),
    );
    let mut tcp = TcpPacket::new_unchecked(&mut quoted[20..]);
    tcp.set_src_port(conn.0);
    tcp.set_dst_port(conn.1);
    tcp.set_seq_number(ustack_core::wire::SeqNumber(seq));
    let icmp = Icmpv4Repr::DstUnreachable {
        reason: DstUnreachable::FragRequired,
        next_hop_mtu: mtu,
        invoking: &quoted,
    };
    let outer = Ipv4Repr {
        src_addr: B,
        dst_addr: A,
        protocol: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        ..ip
    };
    let mut f = vec![0u8; 14 + 20 + icmp.buffer_len()];
    EthernetRepr {
        src_addr: mac(B),
        dst_addr: mac(A),
        ethertype: ustack_core::wire::EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    let mut p = Ipv4Packet::new_unchecked(&mut f[14..]);
    outer.emit(&mut p, &ChecksumCaps::default());
    icmp.emit(
        &mut Icmpv4Packet::new_unchecked(p.payload_mut()),
        &ChecksumCaps::default(),
    );
    f
}

/// Injects at 100 ms a Fragmentation Needed (next-hop MTU `mtu`) quoting
/// A's connection with its last sequence number sent plus `off`.
fn forged(off: u32, mtu: u16) -> Run {
    transfer(
        1 << 20,
        Impairments::none(),
        false,
        Duration::from_secs(60),
        |s, c| {
            let now = s.now();
            let h = &mut s.hosts[0];
            let port = h.stack.tcp_info(c).unwrap().local.unwrap().port();
            let seq = h.last_seq.wrapping_add(off);
            h.stack.receive(now, &frag_needed((port, 80), seq, mtu));
        },
    )
}

#[test]
fn a_forged_frag_needed_out_of_window_is_counted_and_ignored() {
    // Half the sequence space away from what is in flight (RFC 5927 §4.1).
    let r = forged(0x8000_0000, 600);
    assert!(r.done && r.got == r.data);
    let a = &r.sim.hosts[0];
    let k = a.stack.counters();
    assert_eq!(k.tcp.icmp_out_of_window, 1);
    assert_eq!(k.ip.pmtu_lowered, 0);
    assert_eq!(a.stack.path_mtu(r.sim.now(), B), 1500);
    assert_eq!(a.sent.iter().map(|s| s.0).max(), Some(1500));
}

#[test]
fn the_same_frag_needed_in_window_lowers_the_mss() {
    let r = forged(0, 600);
    assert!(r.done && r.got == r.data);
    let a = &r.sim.hosts[0];
    let k = a.stack.counters();
    assert_eq!(k.tcp.icmp_out_of_window, 0);
    assert_eq!(k.ip.pmtu_lowered, 1);
    assert_eq!(a.stack.path_mtu(r.sim.now(), B), 600);
    assert!(k.tcp.mss_reductions >= 1);
    let last = a.sent.iter().rev().take(10).map(|s| s.0).max();
    assert!(last.is_some_and(|n| n <= 600), "{last:?}");
}

#[test]
fn a_black_hole_hop_is_crossed_with_mtu_probing() {
    let r = transfer(
        1 << 20,
        Impairments::none().with_blackhole_hop_mtu(HOP_MTU),
        true,
        Duration::from_secs(120),
        no_forge,
    );
    assert!(r.done, "stalled: {} of {} bytes", r.got.len(), r.data.len());
    assert!(r.got == r.data, "bytes differ");
    let a = &r.sim.hosts[0];
    let k = a.stack.counters();
    assert!(!a.icmp_seen);
    assert!(k.tcp.mtu_blackholes >= 1);
    assert_eq!(k.ip.pmtu_lowered, 0);
    let last = a.sent.iter().rev().take(100).map(|s| s.0).max();
    assert!(last.is_some_and(|n| n <= HOP_MTU), "{last:?}");
}

#[test]
fn a_black_hole_hop_stalls_without_mtu_probing() {
    let r = transfer(
        1 << 20,
        Impairments::none().with_blackhole_hop_mtu(HOP_MTU),
        false,
        Duration::from_secs(120),
        no_forge,
    );
    assert!(!r.done, "crossed a black hole without probing");
    assert!(r.got.is_empty(), "{} bytes crossed", r.got.len());
    assert_eq!(r.sim.hosts[0].stack.counters().tcp.mtu_blackholes, 0);
}

#[test]
fn a_black_hole_found_is_shared_and_forgotten_after_ten_minutes() {
    let r = transfer(
        256 << 10,
        Impairments::none().with_blackhole_hop_mtu(HOP_MTU),
        true,
        Duration::from_secs(120),
        no_forge,
    );
    assert!(r.done);
    let k = *r.sim.hosts[0].stack.counters();
    let pmtu = r.sim.hosts[0].stack.path_mtu(r.sim.now(), B);
    assert!(pmtu <= HOP_MTU, "{pmtu}");
    // A second connection starts at what the first found: no timeout.
    let r = again(
        r.sim,
        r.listener,
        256 << 10,
        Duration::from_secs(60),
        no_forge,
    );
    assert!(r.done && r.got == r.data);
    let k2 = *r.sim.hosts[0].stack.counters();
    assert_eq!(
        k2.tcp.timeouts, k.tcp.timeouts,
        "found the black hole again"
    );
    // Ten minutes on, the full size is tried again and the hole found again.
    let mut sim = r.sim;
    sim.run_for(Duration::from_secs(601));
    assert_eq!(sim.hosts[0].stack.path_mtu(sim.now(), B), 1500);
    let frames = sim.hosts[0].sent.len();
    let r = again(
        sim,
        r.listener,
        256 << 10,
        Duration::from_secs(120),
        no_forge,
    );
    assert!(r.done && r.got == r.data);
    assert!(r.sim.hosts[0].sent[frames..].iter().any(|s| s.0 == 1500));
    let k3 = r.sim.hosts[0].stack.counters();
    assert!(k3.tcp.mtu_blackholes > k2.tcp.mtu_blackholes);
}

#[test]
fn an_old_router_without_next_hop_mtu_gets_the_plateau_below() {
    // RFC 1191 §5: MTU 0 and a 1500-byte quoted datagram: 1492.
    let r = forged(0, 0);
    assert!(r.done && r.got == r.data);
    let a = &r.sim.hosts[0].stack;
    assert_eq!(a.path_mtu(r.sim.now(), B), 1492);
    assert_eq!(a.counters().ip.pmtu_lowered, 1);
}

#[test]
fn ipv6_echo_through_a_small_mtu_hop_is_fragmented_after_packet_too_big() {
    use std::net::Ipv6Addr;
    use ustack_core::wire::Ipv6Cidr;
    let (a6, b6): (Ipv6Addr, Ipv6Addr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
    let mut sim = Sim::new(MemLink::new(7));
    let a = sim.add_host(host(
        cfg(A, 1, false).with_addr6(Ipv6Cidr::try_new(a6, 64).unwrap()),
    ));
    let b = sim.add_host(host(
        cfg(B, 2, false).with_addr6(Ipv6Cidr::try_new(b6, 64).unwrap()),
    ));
    let (pa, pb) = (sim.port(a), sim.port(b));
    sim.link
        .set_direction_impairments(pa, pb, Impairments::none().with_hop_mtu(1280));
    let h = sim.hosts[0].stack.icmp_open();
    let payload = vec![0x5a; 1400];
    let mut replies = Vec::new();
    for seq in 1..=2u16 {
        sim.hosts[0]
            .stack
            .icmp_send_echo6(h, b6, seq, &payload)
            .unwrap();
        sim.run_for(Duration::from_secs(1));
        while let Ok(r) = sim.hosts[0].stack.icmp_recv(h) {
            replies.push(r.seq_no);
        }
    }
    // The first is dropped at the hop and answered with Packet Too Big
    // (RFC 8201); the second goes in fragments that fit, and is answered.
    assert_eq!(replies, vec![2]);
    let st = &sim.hosts[0].stack;
    assert_eq!(st.path_mtu6(sim.now(), &b6), 1280);
    assert_eq!(st.ipv6_counters().pmtu_lowered, 1);
    assert!(sim.link.stats().dropped_hop >= 1);
}

#[test]
fn a_lowered_path_mtu_reaches_an_idle_connection_to_the_same_host() {
    let r = transfer(
        1024,
        Impairments::none(),
        false,
        Duration::from_secs(10),
        no_forge,
    );
    assert!(r.done);
    let (mut sim, l) = (r.sim, r.listener);
    // An idle connection to B, accepted, sending nothing.
    let idle = sim.hosts[0].stack.tcp_open();
    let now = sim.now();
    let _ = sim.hosts[0]
        .stack
        .tcp_connect(now, idle, SocketAddrV4::new(B, 80));
    sim.run_for(Duration::from_secs(1));
    assert!(sim.hosts[1].stack.tcp_accept(l).is_ok());
    let full = sim.hosts[0].stack.tcp_info(idle).unwrap().snd_mss;
    // The transfer's connection gets a Fragmentation Needed (MTU 600).
    let r = again(sim, l, 1 << 20, Duration::from_secs(60), |s, c| {
        let now = s.now();
        let h = &mut s.hosts[0];
        let port = h.stack.tcp_info(c).unwrap().local.unwrap().port();
        let seq = h.last_seq;
        h.stack.receive(now, &frag_needed((port, 80), seq, 600));
    });
    assert!(r.done && r.got == r.data);
    let mss = r.sim.hosts[0].stack.tcp_info(idle).unwrap().snd_mss;
    assert_eq!((full, mss), (1448, 600 - 52));
}
