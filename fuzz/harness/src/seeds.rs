//! Seed inputs: valid traffic between a peer stack and the stack under test.
//!
//! The subject is the very `Subject` the stack targets build, driven through
//! the same `step`, so a seed replays exactly: its echo replies carry the
//! subject's ping identifier, its ARP replies answer the subject's requests.

use crate::stack::{encode_step, peer_config, Medium, Subject, FLAG_RX_OFFLOAD, ME, PEER, PORT};
use std::net::SocketAddrV4;
use ustack_core::{Duration, Stack};
use ustack_wire::{
    ChecksumCaps, EtherType, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Addr, Ipv4Packet,
    Ipv4Repr, SeqNumber, TcpFlags, TcpPacket, TcpRepr, TcpTimestamp,
};

/// The seeds of one medium.
pub struct Seeds {
    /// Inputs for the stack target of this medium (`stack::run` format).
    pub stack: Vec<(String, Vec<u8>)>,
    /// Raw frames and packets seen in both directions, for `wire_parse`.
    pub wire: Vec<Vec<u8>>,
}

struct Session {
    s: Subject,
    peer: Stack,
    medium: Medium,
    /// (dt_ms, app_send, frame) fed to the subject.
    steps: Vec<(u16, bool, Vec<u8>)>,
    /// Every frame in either direction.
    seen: Vec<Vec<u8>>,
}

impl Session {
    /// Delivers the subject's output to the peer and the peer's output to
    /// the subject (as steps) until both are quiet.
    fn pump(&mut self) {
        let mut buf = vec![0u8; 65536];
        for _ in 0..100 {
            let out = self.s.take_sent();
            let quiet_s = out.is_empty();
            for f in out {
                self.peer.receive(self.s.now, &f);
                self.seen.push(f);
            }
            let mut from_peer = Vec::new();
            while let Some(n) = self.peer.transmit(self.s.now, &mut buf) {
                from_peer.push(buf[..n].to_vec());
            }
            if quiet_s && from_peer.is_empty() {
                return;
            }
            for f in from_peer {
                self.feed(0, false, f);
            }
        }
        panic!("seed session did not settle");
    }

    fn feed(&mut self, dt_ms: u16, app_send: bool, frame: Vec<u8>) {
        self.s
            .step(Duration::from_millis(dt_ms.into()), app_send, &frame);
        self.seen.push(frame.clone());
        self.steps.push((dt_ms, app_send, frame));
    }

    /// Takes the peer's pending output without delivering it.
    fn peer_output(&mut self) -> Vec<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        let mut v = Vec::new();
        while let Some(n) = self.peer.transmit(self.s.now, &mut buf) {
            v.push(buf[..n].to_vec());
        }
        v
    }

    /// Wraps an IP packet from the peer for the medium.
    fn wrap_from_peer(&self, ip: Vec<u8>) -> Vec<u8> {
        match self.medium {
            Medium::Ip => ip,
            Medium::Ethernet => {
                let mut f = vec![0u8; 14 + ip.len()];
                EthernetRepr {
                    src_addr: crate::stack::mac_of(PEER),
                    dst_addr: crate::stack::mac_of(ME),
                    ethertype: EtherType::Ipv4,
                }
                .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
                f[14..].copy_from_slice(&ip);
                f
            }
        }
    }
}

/// An IPv4 packet from the peer to us around `payload`.
fn ip_packet(protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: PEER,
        dst_addr: ME,
        protocol,
        payload_len: payload.len(),
        ttl: 64,
        tos: 0,
        ident: 0x4242,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    };
    let mut v = vec![0u8; 20 + payload.len()];
    let mut p = Ipv4Packet::new_unchecked(&mut v[..]);
    repr.emit(&mut p, &ChecksumCaps::SOFTWARE);
    p.payload_mut().copy_from_slice(payload);
    v
}

/// TCP segments with every option the wire crate knows.
pub fn tcp_segments(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<Vec<u8>> {
    let syn = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        flags: TcpFlags::SYN,
        seq_number: SeqNumber(0x1234_5678),
        window_len: 64240,
        max_seg_size: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamp: Some(TcpTimestamp { tsval: 1, tsecr: 0 }),
        ..TcpRepr::default()
    };
    let ack = TcpRepr {
        flags: TcpFlags(TcpFlags::ACK.0 | TcpFlags::PSH.0),
        ack_number: SeqNumber(99),
        max_seg_size: None,
        window_scale: None,
        sack_permitted: false,
        timestamp: Some(TcpTimestamp { tsval: 7, tsecr: 5 }),
        sack_ranges: [
            Some((SeqNumber(200), SeqNumber(300))),
            Some((SeqNumber(400), SeqNumber(500))),
            Some((SeqNumber(600), SeqNumber(700))),
            None,
        ],
        payload: b"GET / HTTP/1.0\r\n\r\n",
        ..syn
    };
    [syn, ack]
        .iter()
        .map(|r| {
            let mut v = vec![0u8; r.buffer_len()];
            r.emit(
                &mut TcpPacket::new_unchecked(&mut v[..]),
                src,
                dst,
                &ChecksumCaps::SOFTWARE,
            );
            v
        })
        .collect()
}

pub fn generate(medium: Medium) -> Seeds {
    let mut s = Subject::new(medium, 0);
    s.record();
    s.drain();
    let mut x = Session {
        s,
        peer: Stack::new(peer_config(medium)).expect("peer config"),
        medium,
        steps: Vec::new(),
        seen: Vec::new(),
    };
    let to_me = |port| Some(SocketAddrV4::new(ME, port).into());
    let bcast = Ipv4Addr::new(10, 0, 0, 255);

    // The subject's ping and datagram go out (ARP first on Ethernet); the
    // peer answers with an echo reply and a port unreachable.
    x.pump();

    // Datagrams: plain, fragmented, to a closed port, to the broadcast.
    let u = x.peer.udp_open();
    x.peer.udp_send_to(u, b"datagram", to_me(PORT)).unwrap();
    x.peer.udp_send_to(u, &[7u8; 3000], to_me(PORT)).unwrap();
    x.peer.udp_send_to(u, b"closed", to_me(10)).unwrap();
    x.peer
        .udp_send_to(u, b"broadcast", Some(SocketAddrV4::new(bcast, PORT).into()))
        .unwrap();
    // Pings: small, one that our 576-byte MTU must fragment, to the broadcast.
    let h = x.peer.icmp_open();
    x.peer.icmp_send_echo(h, ME, 1, b"ping").unwrap();
    x.peer.icmp_send_echo(h, ME, 2, &[0x5a; 1000]).unwrap();
    x.peer.icmp_send_echo(h, bcast, 3, b"all").unwrap();
    x.pump();

    // A protocol we do not speak (TCP): protocol unreachable.
    for seg in tcp_segments(PEER, ME) {
        let f = x.wrap_from_peer(ip_packet(IpProtocol::Tcp, &seg));
        x.feed(0, false, f);
    }
    x.pump();

    // The first fragment of a datagram whose rest never comes: after 30 s
    // reassembly times out and we send time exceeded.
    x.peer.udp_send_to(u, &[9u8; 2000], to_me(PORT)).unwrap();
    let frags = x.peer_output();
    x.feed(0, false, frags[0].clone());
    x.feed(31_000, false, Vec::new());
    x.pump();

    // The application sends while time passes: ARP entries age out (60 s)
    // and are resolved again.
    x.feed(1_500, true, Vec::new());
    x.pump();
    x.feed(u16::MAX, true, Vec::new());
    x.pump();

    let mut stack = Vec::new();
    for (flags, name) in [(0u8, "session"), (FLAG_RX_OFFLOAD, "session-rx-offload")] {
        let mut input = vec![flags];
        for (dt, app, f) in &x.steps {
            encode_step(&mut input, *dt, *app, f);
        }
        stack.push((name.to_string(), input));
    }
    let mut singles: Vec<&Vec<u8>> = x
        .steps
        .iter()
        .map(|(_, _, f)| f)
        .filter(|f| !f.is_empty())
        .collect();
    singles.dedup();
    for (i, f) in singles.into_iter().enumerate() {
        let mut input = vec![0u8];
        encode_step(&mut input, 0, false, f);
        stack.push((format!("frame-{i:02}"), input));
    }

    if std::env::var_os("SEEDGEN_VERBOSE").is_some() {
        eprintln!("{medium:?} after the session:\n{}", x.s.stack.counters());
    }
    let mut wire = x.seen;
    wire.retain(|f| !f.is_empty());
    wire.extend(tcp_segments(PEER, ME));
    wire.dedup();
    Seeds { stack, wire }
}
