//! Two stacks back to back: what a peer and a socket user see.

mod common;

use common::{config, Pair, A, B};
use std::net::SocketAddr;
use ustack_core::wire::{
    ChecksumCaps, EthernetFrame, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};
use ustack_core::{Duration, Errno, Instant, Medium, RxMeta, Stack};

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

#[test]
fn ping_over_ip_and_ethernet() {
    for medium in [Medium::Ip, Medium::Ethernet] {
        let mut p = Pair::new(medium);
        let h = p.a.icmp_open();
        p.a.icmp_send_echo(h, B, 7, b"hello ping").unwrap();
        p.pump();
        let reply = p.a.icmp_recv(h).expect("echo reply");
        assert_eq!(
            (reply.from, reply.seq_no, &reply.data[..]),
            (std::net::IpAddr::V4(B), 7, &b"hello ping"[..])
        );
        assert_eq!(p.a.icmp_recv(h), Err(Errno::EAGAIN));
        assert_eq!(p.b.counters().icmp.in_echos, 1);
        assert_eq!(p.b.counters().icmp.out_echo_reps, 1);
        if medium == Medium::Ethernet {
            assert_eq!(p.a.counters().arp.tx_requests, 1);
            assert_eq!(p.b.counters().arp.tx_replies, 1);
            assert_eq!(p.a.arp_entries(p.now).len(), 1);
            // B learnt A from the request, so it asked nothing itself.
            assert_eq!(p.b.counters().arp.tx_requests, 0);
        }
    }
}

#[test]
fn udp_keeps_message_boundaries() {
    let mut p = Pair::new(Medium::Ip);
    let server = p.b.udp_open();
    p.b.udp_bind(server, sa(Ipv4Addr::UNSPECIFIED, 5000))
        .unwrap();
    let client = p.a.udp_open();
    let sizes = [1usize, 0, 1472, 300];
    for (i, &n) in sizes.iter().enumerate() {
        let data = vec![i as u8; n];
        assert_eq!(p.a.udp_send_to(client, &data, Some(sa(B, 5000))), Ok(n));
    }
    p.pump();
    let local = p.a.local_addr(client).unwrap().expect("autobound");
    assert!((32768..=60999).contains(&local.port()));
    let mut buf = [0u8; 2000];
    for (i, &n) in sizes.iter().enumerate() {
        let (got, full, from) = p.b.udp_recv_from(server, &mut buf).unwrap();
        assert_eq!((got, full), (n, n));
        assert!(buf[..n].iter().all(|&x| x == i as u8));
        assert_eq!(from, sa(A, local.port()));
    }
    assert_eq!(p.b.udp_recv_from(server, &mut buf), Err(Errno::EAGAIN));
    // The reply goes back to the ephemeral port.
    p.b.udp_send_to(server, b"pong", Some(sa(A, local.port())))
        .unwrap();
    p.pump();
    let (n, _, from) = p.a.udp_recv_from(client, &mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"pong"[..], sa(B, 5000)));
}

#[test]
fn recv_truncates_and_peek_leaves_datagram() {
    let mut p = Pair::new(Medium::Ip);
    let s = p.b.udp_open();
    p.b.udp_bind(s, sa(B, 9)).unwrap();
    let c = p.a.udp_open();
    p.a.udp_send_to(c, b"0123456789", Some(sa(B, 9))).unwrap();
    p.a.udp_send_to(c, b"next", Some(sa(B, 9))).unwrap();
    p.pump();
    let mut small = [0u8; 4];
    assert_eq!(p.b.udp_peek_from(s, &mut small).unwrap().0, 4);
    let (n, full, _) = p.b.udp_recv_from(s, &mut small).unwrap();
    assert_eq!((n, full, &small[..]), (4, 10, &b"0123"[..]));
    let (n, _, _) = p.b.udp_recv_from(s, &mut small).unwrap();
    assert_eq!(
        &small[..n],
        b"next",
        "the rest of the long datagram was discarded"
    );
}

#[test]
fn closed_port_gives_icmp_and_econnrefused_on_connected_socket() {
    let mut p = Pair::new(Medium::Ip);
    let c = p.a.udp_open();
    p.a.udp_connect(c, sa(B, 4444)).unwrap();
    p.a.udp_send_to(c, b"anyone?", None).unwrap();
    let u = p.a.udp_open();
    p.a.udp_send_to(u, b"anyone?", Some(sa(B, 4445))).unwrap();
    p.pump();
    assert_eq!(p.b.counters().udp.no_ports, 2);
    assert_eq!(p.b.counters().icmp.out_dest_unreachs, 2);
    assert_eq!(p.a.counters().icmp.in_dest_unreachs, 2);
    assert!(p.a.readiness(c).unwrap().error);
    let mut buf = [0u8; 16];
    assert_eq!(p.a.udp_recv_from(c, &mut buf), Err(Errno::ECONNREFUSED));
    assert_eq!(
        p.a.udp_recv_from(c, &mut buf),
        Err(Errno::EAGAIN),
        "reported once"
    );
    // An unconnected socket is not told (Linux without IP_RECVERR).
    assert_eq!(p.a.udp_recv_from(u, &mut buf), Err(Errno::EAGAIN));
    // The ICMP error quotes our datagram: IP header + UDP header at least.
    let icmp = p.trace.iter().rev().find(|(_, from_a, _)| !from_a).unwrap();
    let ip = Ipv4Packet::new_checked(&icmp.2[..]).unwrap();
    assert_eq!(ip.protocol(), IpProtocol::Icmp);
    assert!(ip.payload().len() >= 8 + 20 + 8);
}

#[test]
fn fragmented_20k_datagram_reassembles() {
    let mut p = Pair::new(Medium::Ethernet);
    let s = p.b.udp_open();
    p.b.udp_bind(s, sa(B, 7000)).unwrap();
    let c = p.a.udp_open();
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 253) as u8).collect();
    p.a.udp_send_to(c, &data, Some(sa(B, 7000))).unwrap();
    p.pump();
    let mut buf = vec![0u8; 65536];
    let (n, _, _) = p.b.udp_recv_from(s, &mut buf).unwrap();
    assert_eq!(&buf[..n], &data[..]);
    // 20 008 bytes of UDP in 1480-byte pieces: 14 fragments, none over the MTU.
    assert_eq!(p.a.counters().ip.frag_oks, 1);
    assert_eq!(p.a.counters().ip.frag_creates, 14);
    assert_eq!(p.b.counters().ip.reasm_reqds, 14);
    assert_eq!(p.b.counters().ip.reasm_oks, 1);
    let ip_frames: Vec<_> = p
        .trace
        .iter()
        .filter(|(_, a, f)| *a && f.len() > 14 + 20 + 100)
        .collect();
    assert_eq!(ip_frames.len(), 14);
    assert!(ip_frames.iter().all(|(_, _, f)| f.len() <= 14 + 1500));
    assert_eq!(p.b.reassembly_bytes(), 0);
}

#[test]
fn missing_fragment_times_out_with_icmp_time_exceeded() {
    let mut p = Pair::new(Medium::Ip);
    let s = p.b.udp_open();
    p.b.udp_bind(s, sa(B, 7000)).unwrap();
    let c = p.a.udp_open();
    let mut n = 0;
    p.filter = Box::new(move |from_a, f| {
        if from_a {
            n += 1;
            if n == 3 {
                return None;
            }
        }
        Some(f)
    });
    p.a.udp_send_to(c, &[1u8; 5000], Some(sa(B, 7000))).unwrap();
    p.pump();
    assert!(p.b.reassembly_bytes() > 0);
    p.advance(Duration::from_millis(29_900));
    assert_eq!(p.b.counters().ip.reasm_timeout, 0);
    p.advance(Duration::from_millis(200));
    assert_eq!(p.b.counters().ip.reasm_timeout, 1);
    assert_eq!(p.b.counters().icmp.out_time_excds, 1);
    assert_eq!(p.a.counters().icmp.in_time_excds, 1);
    assert_eq!(p.b.reassembly_bytes(), 0);
    let mut buf = [0u8; 100];
    assert_eq!(p.b.udp_recv_from(s, &mut buf), Err(Errno::EAGAIN));
}

/// RFC 1122 §3.2.2: no ICMP error about a datagram sent to a broadcast
/// address, Time Exceeded for its reassembly included (found by fuzzing:
/// the reassembly timeout sent one, unlike Linux's `ip_expire`).
#[test]
fn broadcast_fragments_time_out_without_icmp() {
    for dst in [Ipv4Addr::BROADCAST, Ipv4Addr::new(10, 0, 0, 255)] {
        let mut p = Pair::new(Medium::Ip);
        let c = p.a.udp_open();
        let mut n = 0;
        p.filter = Box::new(move |from_a, f| {
            if from_a {
                n += 1;
                if n == 3 {
                    return None;
                }
            }
            Some(f)
        });
        p.a.udp_send_to(c, &[1u8; 5000], Some(sa(dst, 7000)))
            .unwrap();
        p.pump();
        assert!(p.b.reassembly_bytes() > 0, "{dst}");
        p.advance(Duration::from_secs(31));
        assert_eq!(p.b.counters().ip.reasm_timeout, 1, "{dst}");
        assert_eq!(p.b.counters().icmp.out_msgs, 0, "{dst}");
        assert_eq!(p.a.counters().icmp.in_msgs, 0, "{dst}");
        assert_eq!(p.b.reassembly_bytes(), 0, "{dst}");
    }
}

#[test]
fn corrupted_datagrams_are_counted_never_delivered() {
    let mut p = Pair::new(Medium::Ip);
    let s = p.b.udp_open();
    p.b.udp_bind(s, sa(B, 53)).unwrap();
    let c = p.a.udp_open();
    // Flip one bit in the UDP payload of every datagram: only the checksum can tell.
    p.filter = Box::new(|_, mut f| {
        let last = f.len() - 1;
        f[last] ^= 0x10;
        Some(f)
    });
    for _ in 0..10 {
        p.a.udp_send_to(c, b"important bytes", Some(sa(B, 53)))
            .unwrap();
    }
    p.pump();
    let mut buf = [0u8; 100];
    assert_eq!(p.b.udp_recv_from(s, &mut buf), Err(Errno::EAGAIN));
    assert_eq!(p.b.counters().udp.in_csum_errors, 10);
    // A flipped bit in the IP header is caught by the header checksum.
    p.filter = Box::new(|_, mut f| {
        f[8] ^= 0x01; // TTL
        Some(f)
    });
    p.a.udp_send_to(c, b"x", Some(sa(B, 53))).unwrap();
    p.pump();
    assert_eq!(p.b.counters().ip.in_csum_errors, 1);
    assert_eq!(p.b.udp_recv_from(s, &mut buf), Err(Errno::EAGAIN));
}

#[test]
fn bind_errors_match_posix() {
    let mut p = Pair::new(Medium::Ip);
    let a = p.a.udp_open();
    let b = p.a.udp_open();
    p.a.udp_bind(a, sa(Ipv4Addr::UNSPECIFIED, 8000)).unwrap();
    assert_eq!(p.a.udp_bind(b, sa(A, 8000)), Err(Errno::EADDRINUSE));
    assert_eq!(
        p.a.udp_bind(b, sa(Ipv4Addr::new(10, 9, 9, 9), 8001)),
        Err(Errno::EADDRNOTAVAIL)
    );
    assert_eq!(
        p.a.udp_bind(a, sa(A, 8002)),
        Err(Errno::EINVAL),
        "already bound"
    );
    assert_eq!(p.a.udp_send_to(b, b"x", None), Err(Errno::EDESTADDRREQ));
    assert_eq!(
        p.a.udp_send_to(b, &vec![0; 65508], Some(sa(B, 1))),
        Err(Errno::EMSGSIZE)
    );
    assert_eq!(
        p.a.udp_send_to(b, b"x", Some(sa(Ipv4Addr::new(192, 0, 2, 1), 1))),
        Err(Errno::ENETUNREACH)
    );
    p.a.close(a).unwrap();
    assert_eq!(p.a.close(a), Err(Errno::EBADF));
    p.a.udp_bind(b, sa(A, 8000)).expect("port free after close");
}

#[test]
fn full_buffers_are_eagain_and_counted_drops() {
    let mut p = Pair::new(Medium::Ip);
    let s = p.b.udp_open();
    p.b.udp_bind(s, sa(B, 9)).unwrap();
    p.b.udp_set_buffers(s, Some(2500), None).unwrap();
    let c = p.a.udp_open();
    p.a.udp_set_buffers(c, None, Some(4096)).unwrap();
    let mut sent = 0;
    let err = loop {
        match p.a.udp_send_to(c, &[0u8; 1000], Some(sa(B, 9))) {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 100);
    };
    assert_eq!(err, Errno::EAGAIN);
    assert!(!p.a.readiness(c).unwrap().writable);
    assert_eq!(p.a.counters().udp.sndbuf_errors, 1);
    p.pump();
    assert!(
        p.a.readiness(c).unwrap().writable,
        "space returns once sent"
    );
    // 3 datagrams fit in 4096 bytes of send buffer (1064 bytes charged each).
    assert_eq!(sent, 3);
    // The receiver had room for 2 of them; the third is a counted drop.
    let queued = (0..)
        .take_while(|_| p.b.udp_recv_from(s, &mut [0u8; 2000]).is_ok())
        .count();
    assert_eq!(queued, 2);
    assert_eq!(p.b.udp_drops(s).unwrap(), 1);
    assert_eq!(p.b.counters().udp.rcvbuf_errors, 1);
}

#[test]
fn arp_failure_drops_and_reports_ehostunreach() {
    let mut p = Pair::new(Medium::Ethernet);
    p.filter = Box::new(|_, _| None); // B never hears anything
    let c = p.a.udp_open();
    p.a.udp_connect(c, sa(B, 1234)).unwrap();
    p.a.udp_send_to(c, b"lost", None).unwrap();
    p.pump();
    p.advance(Duration::from_secs(5));
    assert_eq!(p.a.counters().arp.tx_requests, 3);
    assert_eq!(p.a.counters().arp.resolution_failures, 1);
    assert_eq!(p.a.counters().arp.pending_dropped, 1);
    let requests: Vec<Instant> = p.trace.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(
        requests,
        vec![
            Instant::from_secs(1),
            Instant::from_secs(2),
            Instant::from_secs(3)
        ]
    );
    assert_eq!(p.a.udp_send_to(c, b"again", None), Err(Errno::EHOSTUNREACH));
}

#[test]
fn broadcast_ping_ignored_by_default() {
    let mut p = Pair::new(Medium::Ip);
    let h = p.a.icmp_open();
    p.a.icmp_send_echo(h, Ipv4Addr::new(10, 0, 0, 255), 1, b"all?")
        .unwrap();
    p.pump();
    assert_eq!(p.b.counters().icmp.echo_broadcast_ignored, 1);
    assert_eq!(p.a.icmp_recv(h), Err(Errno::EAGAIN));
}

#[test]
fn packets_to_other_hosts_are_not_ours() {
    let mut b = Stack::new(config(Medium::Ip, B, 2)).unwrap();
    let mut frame = vec![0u8; 28];
    let repr = Ipv4Repr {
        src_addr: A,
        dst_addr: Ipv4Addr::new(10, 0, 0, 3),
        protocol: IpProtocol::Udp,
        payload_len: 8,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    };
    repr.emit(
        &mut Ipv4Packet::new_unchecked(&mut frame[..]),
        &ChecksumCaps::default(),
    );
    UdpRepr {
        src_port: 1,
        dst_port: 2,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut frame[20..]),
        A,
        Ipv4Addr::new(10, 0, 0, 3),
        &[],
        &ChecksumCaps::default(),
    );
    b.receive(Instant::ZERO, &frame);
    assert_eq!(b.counters().ip.in_addr_errors, 1);
    assert_eq!(
        b.transmit(Instant::ZERO, &mut [0u8; 1500]),
        None,
        "no ICMP for others' traffic"
    );
    // Not an Ethernet frame for our MAC either.
    let mut e = Stack::new(config(Medium::Ethernet, B, 2)).unwrap();
    let mut eth = vec![0u8; 14 + 28];
    eth[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
    eth[12..14].copy_from_slice(&[0x08, 0x00]);
    eth[14..].copy_from_slice(&frame);
    assert!(EthernetFrame::new_checked(&eth[..]).is_ok());
    e.receive(Instant::ZERO, &eth);
    assert_eq!(e.counters().link.rx_not_for_us, 1);
}

#[test]
fn config_errors_are_clear() {
    let cfg = config(Medium::Ip, A, 1).with_mtu(40);
    let err = Stack::new(cfg).err().unwrap();
    assert!(err.to_string().contains("MTU 40"), "{err}");
}

#[test]
fn off_link_destinations_go_to_the_gateway() {
    // A (10.0.0.1/24) with gateway B sends to 192.0.2.9: the frame goes to
    // B's MAC after ARP for B, with the far address in the IP header.
    let gw_cfg = config(Medium::Ethernet, A, 1).with_gateway(B);
    let mut p = Pair::with(gw_cfg, config(Medium::Ethernet, B, 2));
    let c = p.a.udp_open();
    let far = Ipv4Addr::new(192, 0, 2, 9);
    p.a.udp_send_to(c, b"via gw", Some(sa(far, 53))).unwrap();
    p.pump();
    let arp_request = &p.trace[0].2;
    assert_eq!(&arp_request[12..14], &[0x08, 0x06]);
    assert_eq!(
        &arp_request[38..42],
        &B.octets(),
        "ARP asks for the gateway"
    );
    let data = p
        .trace
        .iter()
        .find(|(_, a, f)| *a && f[12..14] == [0x08, 0x00])
        .expect("datagram sent");
    let eth = EthernetFrame::new_checked(&data.2[..]).unwrap();
    assert_eq!(eth.dst_addr().0, [2, 0, 0, 0, 0, 2], "to the gateway's MAC");
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.dst_addr(), far);
    // B is a host, not a router: it does not forward, it counts.
    assert_eq!(p.b.counters().ip.in_addr_errors, 1);
    // Without a gateway, the same send is ENETUNREACH.
    let mut q = Pair::new(Medium::Ethernet);
    let c = q.a.udp_open();
    assert_eq!(
        q.a.udp_send_to(c, b"x", Some(sa(far, 53))),
        Err(Errno::ENETUNREACH)
    );
}

#[test]
fn ip_options_are_skipped() {
    let mut b = Stack::new(config(Medium::Ip, B, 2)).unwrap();
    let s = b.udp_open();
    b.udp_bind(s, sa(B, 9)).unwrap();
    // IHL 7: 8 bytes of options (a record-route-like option, then NOP/EOL).
    let payload = b"with options";
    let mut frame = vec![0u8; 28 + 8 + payload.len()];
    let repr = Ipv4Repr {
        src_addr: A,
        dst_addr: B,
        protocol: IpProtocol::Udp,
        payload_len: 8 + payload.len(),
        ttl: 64,
        tos: 0,
        ident: 9,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    };
    let mut udp = vec![0u8; 8 + payload.len()];
    UdpRepr {
        src_port: 1000,
        dst_port: 9,
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut udp[..]),
        A,
        B,
        payload,
        &ChecksumCaps::default(),
    );
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[..]);
        repr.emit(&mut ip, &ChecksumCaps::default());
        ip.set_header_len(28);
        ip.set_total_len((28 + udp.len()) as u16);
    }
    frame[20..28].copy_from_slice(&[0x07, 0x07, 0x04, 0, 0, 0, 0, 0x00]);
    frame[28..].copy_from_slice(&udp);
    Ipv4Packet::new_unchecked(&mut frame[..]).fill_checksum();
    b.receive(Instant::ZERO, &frame);
    let mut buf = [0u8; 64];
    let (n, _, from) = b
        .udp_recv_from(s, &mut buf)
        .expect("delivered despite options");
    assert_eq!((&buf[..n], from), (&payload[..], sa(A, 1000)));
}

#[test]
fn icmp_error_about_a_reassembled_datagram_quotes_its_whole_header() {
    let mut p = Pair::new(Medium::Ip);
    let c = p.a.udp_open();
    p.a.udp_send_to(c, &[5u8; 3000], Some(sa(B, 4444))).unwrap();
    p.pump();
    assert_eq!(p.b.counters().udp.no_ports, 1);
    let (_, _, icmp) = p.trace.iter().rev().find(|(_, from_a, _)| !from_a).unwrap();
    let ip = Ipv4Packet::new_checked(&icmp[..]).unwrap();
    assert_eq!(ip.protocol(), IpProtocol::Icmp);
    let quoted = &ip.payload()[8..];
    assert!(
        quoted.len() <= 576 - 28,
        "ICMP error within 576 bytes: {}",
        quoted.len()
    );
    let q = ustack_core::wire::icmpv4::parse_invoking(quoted).unwrap();
    assert_eq!(
        (q.src_addr, q.dst_addr, q.protocol),
        (A, B, IpProtocol::Udp)
    );
    // The header quoted is the datagram's: no MF, offset 0, full length.
    let total_len = u16::from_be_bytes([quoted[2], quoted[3]]);
    let frag = u16::from_be_bytes([quoted[6], quoted[7]]);
    assert_eq!(total_len, 20 + 8 + 3000);
    assert_eq!(frag & 0x3fff, 0, "MF clear, offset 0");
}

/// The next frame `from` owes, as bytes.
fn next_frame(from: &mut Stack, now: Instant) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let n = from.transmit(now, &mut buf).expect("a frame owed");
    buf.truncate(n);
    buf
}

#[test]
fn a_device_that_vouches_for_checksums_gets_the_frame_through_unverified() {
    let trusted = RxMeta { csum_ok: true };
    let mut p = Pair::new(Medium::Ip);
    // UDP: a flipped payload bit only the checksum can tell.
    let s = p.b.udp_open();
    p.b.udp_bind(s, sa(B, 53)).unwrap();
    let c = p.a.udp_open();
    p.a.udp_send_to(c, b"vouched", Some(sa(B, 53))).unwrap();
    let mut f = next_frame(&mut p.a, p.now);
    let last = f.len() - 1;
    f[last] ^= 0x01;
    let mut buf = [0u8; 100];
    p.b.receive(p.now, &f);
    assert_eq!(p.b.udp_recv_from(s, &mut buf), Err(Errno::EAGAIN));
    assert_eq!(p.b.counters().udp.in_csum_errors, 1);
    p.b.receive_with(p.now, &f, trusted);
    let (n, _, from) = p.b.udp_recv_from(s, &mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"vouchee"[..], sa(A, c_port(&p.a, c))));
    assert_eq!(p.b.counters().udp.in_csum_errors, 1);
    assert_eq!(p.b.counters().link.rx_csum_trusted, 1);
    // The word was for that frame only: the same frame plain is dropped again.
    p.b.receive(p.now, &f);
    assert_eq!(p.b.udp_recv_from(s, &mut buf), Err(Errno::EAGAIN));
    assert_eq!(p.b.counters().udp.in_csum_errors, 2);

    // TCP: a data segment whose checksum field is wrong (a partial sum, as
    // a TUN hands over with NEEDS_CSUM).
    let l = p.b.tcp_open();
    p.b.tcp_bind(l, sa(B, 80)).unwrap();
    p.b.tcp_listen(l, 4).unwrap();
    let k = p.a.tcp_open();
    assert_eq!(
        p.a.tcp_connect(p.now, k, sa(B, 80)),
        Err(Errno::EINPROGRESS)
    );
    p.pump();
    let (srv, _) = p.b.tcp_accept(l).unwrap();
    assert_eq!(p.a.tcp_send(p.now, k, b"hello"), Ok(5));
    let mut seg = next_frame(&mut p.a, p.now);
    let ihl = usize::from(seg[0] & 0x0f) * 4;
    seg[ihl + 16] ^= 0x5a;
    p.b.receive(p.now, &seg);
    assert_eq!(p.b.tcp_recv(srv, &mut buf), Err(Errno::EAGAIN));
    assert_eq!(p.b.counters().tcp.in_csum_errors, 1);
    p.b.receive_with(p.now, &seg, trusted);
    assert_eq!(p.b.tcp_recv(srv, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(p.b.counters().tcp.in_csum_errors, 1);
    assert_eq!(p.b.counters().link.rx_csum_trusted, 2);
}

fn c_port(st: &Stack, h: ustack_core::SocketHandle) -> u16 {
    st.local_addr(h).unwrap().expect("bound").port()
}
