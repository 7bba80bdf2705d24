//! `stack_ip_input` / `stack_eth_input`: one stack fed a sequence of frames
//! on an advancing virtual clock, with its invariants checked after each.
//!
//! Input format (simple, so seeds can be written by hand or by `seedgen`):
//!
//! ```text
//! input := flags:u8 step*
//! step  := dt_ms:u16be len:u16be frame[len & 0x7fff]
//! ```
//!
//! * `flags` bit 0: receive checksums offloaded (not verified), so mutated
//!   frames get past the checksum checks. Transmit checksums are always
//!   computed, so every frame the stack sends can be verified.
//! * `dt_ms`: how far the clock moves before the frame arrives; the stack is
//!   run at every deadline (`poll_at`) on the way.
//! * `len` bit 15: before the frame, the application sends a ping and a UDP
//!   datagram to the peer (ARP resolution, fragmentation, queue limits).
//! * A frame cut short by the end of the input is delivered as it is; an
//!   empty one is not delivered (the step only moves the clock).

use std::net::SocketAddrV4;
pub use ustack_core::Medium;
use ustack_core::{Counters, Duration, Instant, SocketHandle, Stack, StackConfig};
use ustack_wire::{
    ArpOperation, ArpPacket, ArpRepr, ChecksumCaps, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Addr, Ipv4Cidr, Ipv4Packet, Ipv4Repr,
    TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};

/// The peer (sender of the seed frames).
pub const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The stack under test.
pub const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The UDP port the bound socket listens on.
pub const PORT: u16 = 9;
/// The peer port the connected socket sends to.
pub const PEER_PORT: u16 = 7;
/// Virtual time of the first step.
pub const START: Instant = Instant::from_secs(1);

/// Bits of the leading flags byte.
pub const FLAG_RX_OFFLOAD: u8 = 0x01;
/// Bit of a step's length field: the application sends before the frame.
pub const LEN_APP_SEND: u16 = 0x8000;

/// Most frames one `transmit` drain may yield before we call it a livelock.
const MAX_TX_PER_DRAIN: usize = 10_000;
/// Most deadlines visited while the clock moves by one step's `dt`.
const MAX_DEADLINES_PER_STEP: usize = 64;

pub fn mac_of(ip: Ipv4Addr) -> EthernetAddress {
    EthernetAddress([2, 0, 0, 0, 0, ip.octets()[3]])
}

/// The peer's configuration (Linux-like defaults), used by `seedgen`.
pub fn peer_config(medium: Medium) -> StackConfig {
    StackConfig::new(medium, Ipv4Cidr::new(PEER, 24))
        .with_seed(1)
        .with_mac(mac_of(PEER))
}

/// The configuration of the stack under test: small limits, so that the
/// fuzzer can reach every "full" path with a few frames.
pub fn subject_config(medium: Medium, flags: u8) -> StackConfig {
    let mut cfg = StackConfig::new(medium, Ipv4Cidr::new(ME, 24))
        .with_seed(2)
        .with_mac(mac_of(ME))
        .with_mtu(576);
    cfg.checksums = ChecksumCaps {
        rx: flags & FLAG_RX_OFFLOAD == 0,
        tx: true,
    };
    cfg.reassembly.max_bytes = 16 * 1024;
    cfg.reassembly.max_datagrams = 4;
    cfg.arp.max_entries = 4;
    cfg.arp.max_pending_per_neighbor = 3;
    cfg.max_egress_packets = 32;
    cfg.icmp_errors_per_sec = 20;
    cfg.udp_rcvbuf = 4096;
    cfg.udp_sndbuf = 4096;
    cfg
}

/// The stack under test, its sockets, and its virtual clock.
pub struct Subject {
    pub stack: Stack,
    pub now: Instant,
    pub udp: SocketHandle,
    pub connected: SocketHandle,
    pub ping: SocketHandle,
    /// A TCP listener on `ME:80` and a client connecting to `PEER:80`.
    pub listener: SocketHandle,
    pub client: SocketHandle,
    /// Connections accepted from the listener and still open.
    accepted: Vec<SocketHandle>,
    seq: u16,
    counters: Counters,
    buf: Vec<u8>,
    /// Frames sent since the last `take_sent`, when recording.
    sent: Option<Vec<Vec<u8>>>,
}

impl Subject {
    /// A stack with a UDP socket bound to `ME:9`, one connected to
    /// `PEER:7`, and a ping socket; it has pinged the peer and sent it a
    /// datagram (nothing is transmitted yet).
    pub fn new(medium: Medium, flags: u8) -> Subject {
        let mut stack = Stack::new(subject_config(medium, flags)).expect("subject config");
        let udp = stack.udp_open();
        stack
            .udp_bind(udp, SocketAddrV4::new(ME, PORT))
            .expect("bind");
        let connected = stack.udp_open();
        stack
            .udp_connect(connected, SocketAddrV4::new(PEER, PEER_PORT))
            .expect("connect");
        let ping = stack.icmp_open();
        let listener = stack.tcp_open();
        stack
            .tcp_bind(listener, SocketAddrV4::new(ME, 80))
            .expect("tcp bind");
        stack.tcp_listen(listener, 4).expect("listen");
        let client = stack.tcp_open();
        let _ = stack.tcp_connect(START, client, SocketAddrV4::new(PEER, 80)); // EINPROGRESS
        let counters = *stack.counters();
        let mut s = Subject {
            stack,
            now: START,
            udp,
            connected,
            ping,
            listener,
            client,
            accepted: Vec::new(),
            seq: 0,
            counters,
            buf: vec![0u8; 2048],
            sent: None,
        };
        s.app_send();
        s
    }

    /// Keeps every transmitted frame for `take_sent` (used by `seedgen`).
    pub fn record(&mut self) {
        self.sent = Some(Vec::new());
    }

    pub fn take_sent(&mut self) -> Vec<Vec<u8>> {
        self.sent.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The application pings the peer and sends it a datagram; errors
    /// (full queues, pending ICMP errors) are expected and ignored.
    pub fn app_send(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        let _ = self
            .stack
            .icmp_send_echo(self.ping, PEER, self.seq, b"fuzz ping");
        let _ = self
            .stack
            .udp_send_to(self.connected, b"fuzz datagram", None);
        let _ = self.stack.tcp_send(self.now, self.client, b"fuzz stream");
    }

    /// One step: move the clock by `dt` (running every deadline on the
    /// way), optionally let the application send, deliver `frame` (unless
    /// empty), drain.
    pub fn step(&mut self, dt: Duration, app_send: bool, frame: &[u8]) {
        let end = self.now + dt;
        for _ in 0..MAX_DEADLINES_PER_STEP {
            match self.stack.poll_at() {
                Some(t) if t > self.now && t <= end => {
                    self.now = t;
                    self.drain();
                }
                _ => break,
            }
        }
        self.now = end;
        self.drain();
        if app_send {
            self.app_send();
            self.drain();
        }
        if !frame.is_empty() {
            self.stack.receive(self.now, frame);
            self.drain();
        }
        self.read_sockets();
        self.check_state();
    }

    /// Calls `transmit` until it has nothing more, checking each frame.
    pub fn drain(&mut self) {
        let mut n = 0;
        while let Some(len) = self.stack.transmit(self.now, &mut self.buf) {
            n += 1;
            assert!(
                n <= MAX_TX_PER_DRAIN,
                "transmit did not run dry after {MAX_TX_PER_DRAIN} frames"
            );
            assert!(len <= self.buf.len(), "transmit length {len} > buffer");
            let frame = self.buf[..len].to_vec();
            check_output(self.stack.config(), &frame);
            if let Some(sent) = &mut self.sent {
                sent.push(frame);
            }
        }
        // Nothing left to send now, so the stack must not ask to be polled
        // now (a driver looping on poll_at would spin).
        if let Some(t) = self.stack.poll_at() {
            assert!(
                t > self.now,
                "poll_at {t:?} <= now {:?} after transmit ran dry",
                self.now
            );
        }
        self.check_counters();
    }

    fn read_sockets(&mut self) {
        let mut buf = [0u8; 2048];
        for h in [self.udp, self.connected] {
            for _ in 0..1000 {
                match self.stack.udp_recv_from(h, &mut buf) {
                    Ok((n, full, _)) => assert!(n <= full && n <= buf.len()),
                    Err(ustack_core::Errno::EAGAIN) => break,
                    Err(_) => {} // a pending error, reported once
                }
            }
            assert!(matches!(
                self.stack.udp_recv_from(h, &mut buf),
                Err(ustack_core::Errno::EAGAIN)
            ));
        }
        while self.stack.icmp_recv(self.ping).is_ok() {}
        // TCP: accept (keeping at most 8 open), read, close at EOF or error.
        while let Ok((h, _)) = self.stack.tcp_accept(self.listener) {
            self.accepted.push(h);
            if self.accepted.len() > 8 {
                let old = self.accepted.remove(0);
                self.stack.close(old).expect("close an accepted socket");
            }
        }
        let mut keep = Vec::new();
        for h in std::mem::take(&mut self.accepted) {
            let open = (0..1000).find_map(|_| match self.stack.tcp_recv(h, &mut buf) {
                Ok(0) => Some(false),
                Ok(n) => {
                    assert!(n <= buf.len());
                    None
                }
                Err(ustack_core::Errno::EAGAIN) => Some(true),
                Err(_) => Some(false),
            });
            if open == Some(false) {
                self.stack.close(h).expect("close an accepted socket");
            } else {
                keep.push(h);
            }
        }
        self.accepted = keep;
        for _ in 0..1000 {
            match self.stack.tcp_recv(self.client, &mut buf) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let _ = self.stack.take_readiness_changes();
    }

    fn check_state(&mut self) {
        let s = &self.stack;
        assert!(
            s.reassembly_bytes() <= s.config().reassembly.max_bytes,
            "reassembly holds {} bytes > max {}",
            s.reassembly_bytes(),
            s.config().reassembly.max_bytes
        );
        assert_eq!(
            s.socket_count(),
            5 + self.accepted.len(),
            "sockets appeared or vanished"
        );
        s.tcp_check_invariants();
        if s.config().medium == Medium::Ethernet {
            let entries = s.arp_entries(self.now);
            assert!(entries.len() <= s.config().arp.max_entries);
            for (ip, mac) in entries {
                assert!(mac.is_unicast(), "ARP learned non-unicast {mac} for {ip}");
                assert_ne!(ip, ME, "ARP learned our own address");
            }
        }
    }

    /// Counters only grow.
    fn check_counters(&mut self) {
        let now = *self.stack.counters();
        for ((section, before), (_, after)) in
            self.counters.sections().into_iter().zip(now.sections())
        {
            for ((name, _, b), (_, _, a)) in before.into_iter().zip(after) {
                assert!(a >= b, "counter {section}.{name} went from {b} to {a}");
            }
        }
        self.counters = now;
    }
}

/// Runs one fuzz input (see the module docs for its format).
pub fn run(medium: Medium, data: &[u8]) {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut s = Subject::new(medium, flags);
    s.drain();
    while rest.len() >= 4 {
        let dt = u16::from_be_bytes([rest[0], rest[1]]);
        let len_field = u16::from_be_bytes([rest[2], rest[3]]);
        rest = &rest[4..];
        let len = usize::from(len_field & !LEN_APP_SEND).min(rest.len());
        let (frame, tail) = rest.split_at(len);
        rest = tail;
        s.step(
            Duration::from_millis(dt.into()),
            len_field & LEN_APP_SEND != 0,
            frame,
        );
    }
}

/// Appends one step to an input being built.
pub fn encode_step(out: &mut Vec<u8>, dt_ms: u16, app_send: bool, frame: &[u8]) {
    assert!(frame.len() < usize::from(LEN_APP_SEND));
    let mut len = frame.len() as u16;
    if app_send {
        len |= LEN_APP_SEND;
    }
    out.extend_from_slice(&dt_ms.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(frame);
}

/// Every frame the stack sends must be well formed: our addresses, within
/// the MTU, checksums right, ICMP errors within 576 bytes.
fn check_output(cfg: &StackConfig, frame: &[u8]) {
    let ip = match cfg.medium {
        Medium::Ip => frame,
        Medium::Ethernet => {
            let eth = EthernetFrame::new_checked(frame).expect("sent a runt Ethernet frame");
            let repr = EthernetRepr::parse(&eth).unwrap();
            assert_eq!(repr.src_addr, cfg.mac, "sent with a foreign source MAC");
            assert!(
                !repr.dst_addr.is_multicast() || repr.dst_addr.is_broadcast(),
                "sent to a multicast MAC {}",
                repr.dst_addr
            );
            match repr.ethertype {
                EtherType::Arp => {
                    let p = ArpPacket::new_checked(eth.payload()).expect("sent a short ARP");
                    let arp = ArpRepr::parse(&p).expect("sent a bad ARP");
                    assert_eq!(eth.payload().len(), arp.buffer_len());
                    assert!(matches!(
                        arp.operation,
                        ArpOperation::Request | ArpOperation::Reply
                    ));
                    assert_eq!(arp.source_hardware_addr, cfg.mac);
                    assert_eq!(arp.source_protocol_addr, cfg.addr.address());
                    if arp.operation == ArpOperation::Reply {
                        assert!(
                            arp.target_hardware_addr.is_unicast(),
                            "ARP reply to a group MAC"
                        );
                        assert_eq!(repr.dst_addr, arp.target_hardware_addr);
                    }
                    return;
                }
                EtherType::Ipv4 => &frame[ustack_wire::ethernet::HEADER_LEN..],
                other => panic!("sent ethertype {other}"),
            }
        }
    };
    let packet = Ipv4Packet::new_checked(ip).expect("sent a bad IPv4 packet");
    let repr = Ipv4Repr::parse(&packet, &ChecksumCaps::SOFTWARE).expect("sent a bad IPv4 header");
    assert_eq!(
        packet.total_len() as usize,
        ip.len(),
        "IPv4 packet with trailing bytes"
    );
    assert!(
        ip.len() <= cfg.mtu,
        "sent {} bytes > MTU {}",
        ip.len(),
        cfg.mtu
    );
    assert_eq!(
        repr.src_addr,
        cfg.addr.address(),
        "sent from a foreign address"
    );
    assert!(!repr.dst_addr.is_unspecified(), "sent to 0.0.0.0");
    assert!(repr.ttl > 0);
    if repr.more_frags || repr.frag_offset != 0 {
        assert!(
            !repr.more_frags || repr.payload_len.is_multiple_of(8),
            "non-final fragment of {} bytes",
            repr.payload_len
        );
        return;
    }
    let payload = packet.payload();
    match repr.protocol {
        IpProtocol::Icmp => {
            let p = Icmpv4Packet::new_checked(payload).expect("sent a short ICMP");
            let icmp =
                Icmpv4Repr::parse(&p, &ChecksumCaps::SOFTWARE).expect("sent a bad ICMP message");
            if let Icmpv4Repr::DstUnreachable { invoking, .. }
            | Icmpv4Repr::TimeExceeded { invoking, .. } = icmp
            {
                assert!(ip.len() <= 576, "ICMP error of {} bytes > 576", ip.len());
                // The quote is the offending header and up to 8+ bytes of
                // its payload; a datagram with less payload is quoted whole
                // (RFC 792), so parse_invoking may find it short.
                assert!(
                    invoking.len() >= 20 && invoking[0] >> 4 == 4,
                    "ICMP error quotes no IPv4 header: {invoking:02x?}"
                );
                let hl = usize::from(invoking[0] & 0x0f) * 4;
                assert!(
                    hl >= 20 && invoking.len() >= hl,
                    "ICMP error quotes a cut header"
                );
                let src = Ipv4Addr::new(invoking[12], invoking[13], invoking[14], invoking[15]);
                let dst = Ipv4Addr::new(invoking[16], invoking[17], invoking[18], invoking[19]);
                assert_eq!(
                    dst,
                    cfg.addr.address(),
                    "ICMP error about a datagram not for us"
                );
                assert_eq!(src, repr.dst_addr, "ICMP error sent to someone else");
                // RFC 1122 §3.2.2: never an ICMP error about an ICMP error.
                if IpProtocol::from(invoking[9]) == IpProtocol::Icmp && invoking.len() > hl {
                    assert!(
                        !matches!(invoking[hl], 3 | 4 | 5 | 11 | 12),
                        "ICMP error about an ICMP message of type {}",
                        invoking[hl]
                    );
                }
            }
        }
        IpProtocol::Udp => {
            let p = UdpPacket::new_checked(payload).expect("sent a short UDP");
            assert_eq!(p.len() as usize, payload.len(), "UDP length vs IP length");
            UdpRepr::parse(&p, repr.src_addr, repr.dst_addr, &ChecksumCaps::SOFTWARE)
                .expect("sent a bad UDP datagram");
        }
        IpProtocol::Tcp => {
            // RSTs for closed ports, challenge ACKs, SYN-ACKs: well formed.
            let p = TcpPacket::new_checked(payload).expect("sent a short TCP segment");
            TcpRepr::parse(&p, repr.src_addr, repr.dst_addr, &ChecksumCaps::SOFTWARE)
                .expect("sent a bad TCP segment");
        }
        other => panic!("sent IP protocol {other}"),
    }
}
