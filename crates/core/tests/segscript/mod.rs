//! Segment scripts: one stack under test, a made-up peer, a virtual clock.
//! A test reads like a packet trace: `s.inject(seg(SYN).seq(100))` at some
//! time, then `s.expect(t, seg(SYN | ACK).seq(iss).ack(101))`.
#![allow(dead_code)]

use std::net::SocketAddr;
use ustack_core::wire::{
    ChecksumCaps, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Addr, Ipv4Cidr, Ipv4Packet, Ipv4Repr,
    SeqNumber, TcpFlags, TcpPacket, TcpRepr, TcpTimestamp,
};
use ustack_core::{Duration, Instant, Medium, Stack, StackConfig};

/// The stack under test.
pub const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The scripted peer.
pub const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const US_PORT: u16 = 80;
pub const PEER_PORT: u16 = 40000;

pub const SYN: TcpFlags = TcpFlags::SYN;
pub const ACK: TcpFlags = TcpFlags::ACK;
pub const FIN: TcpFlags = TcpFlags::FIN;
pub const RST: TcpFlags = TcpFlags::RST;
pub const PSH: TcpFlags = TcpFlags::PSH;

/// A segment as the script sees it. Fields left `None` in an expectation
/// are not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seg {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub flags: TcpFlags,
    pub seq: u32,
    pub ack: u32,
    pub win: u16,
    pub mss: Option<u16>,
    pub ws: Option<u8>,
    pub sack_perm: bool,
    pub ts: Option<(u32, u32)>,
    /// SACK blocks `(left, right)` in option order (RFC 2018: the first is
    /// the most recently received).
    pub sack: Vec<(u32, u32)>,
    pub payload: Vec<u8>,
}

/// A segment from the peer (PEER:PEER_PORT -> US:US_PORT), window 65535.
pub fn seg(flags: TcpFlags) -> Seg {
    Seg {
        src: SocketAddr::from((PEER, PEER_PORT)),
        dst: SocketAddr::from((US, US_PORT)),
        flags,
        seq: 0,
        ack: 0,
        win: 65535,
        mss: None,
        ws: None,
        sack_perm: false,
        ts: None,
        sack: Vec::new(),
        payload: Vec::new(),
    }
}

impl Seg {
    pub fn seq(mut self, v: u32) -> Self {
        self.seq = v;
        self
    }
    pub fn ack(mut self, v: u32) -> Self {
        self.ack = v;
        self
    }
    pub fn win(mut self, v: u16) -> Self {
        self.win = v;
        self
    }
    pub fn mss(mut self, v: u16) -> Self {
        self.mss = Some(v);
        self
    }
    pub fn ws(mut self, v: u8) -> Self {
        self.ws = Some(v);
        self
    }
    pub fn sack_perm(mut self) -> Self {
        self.sack_perm = true;
        self
    }
    pub fn ts(mut self, val: u32, ecr: u32) -> Self {
        self.ts = Some((val, ecr));
        self
    }
    /// SACK blocks `(left, right)`, at most 4 (fewer fit beside timestamps).
    pub fn sack(mut self, blocks: &[(u32, u32)]) -> Self {
        assert!(blocks.len() <= 4, "at most 4 SACK blocks");
        self.sack = blocks.to_vec();
        self
    }
    pub fn data(mut self, d: &[u8]) -> Self {
        self.payload = d.to_vec();
        self
    }
    pub fn sport(mut self, p: u16) -> Self {
        self.src.set_port(p);
        self
    }
    pub fn from(mut self, a: SocketAddr) -> Self {
        self.src = a;
        self
    }
    pub fn dport(mut self, p: u16) -> Self {
        self.dst.set_port(p);
        self
    }
    /// The peer's view reversed: what we expect the stack to send.
    pub fn reply(mut self) -> Self {
        core::mem::swap(&mut self.src, &mut self.dst);
        self
    }

    /// The IPv4 datagram carrying this segment.
    pub fn to_ip(&self) -> Vec<u8> {
        let mut sack_ranges = [None; 4];
        for (slot, &(l, r)) in sack_ranges.iter_mut().zip(&self.sack) {
            *slot = Some((SeqNumber(l), SeqNumber(r)));
        }
        let repr = TcpRepr {
            src_port: self.src.port(),
            dst_port: self.dst.port(),
            flags: self.flags,
            seq_number: SeqNumber(self.seq),
            ack_number: SeqNumber(self.ack),
            window_len: self.win,
            urgent_pointer: 0,
            max_seg_size: self.mss,
            window_scale: self.ws,
            sack_permitted: self.sack_perm,
            sack_ranges,
            timestamp: self.ts.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr }),
            payload: &self.payload,
        };
        let len = repr.buffer_len();
        let ip = Ipv4Repr {
            src_addr: v4(self.src.ip()),
            dst_addr: v4(self.dst.ip()),
            protocol: IpProtocol::Tcp,
            payload_len: len,
            ttl: 64,
            tos: 0,
            ident: 1,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        };
        let mut buf = vec![0u8; 20 + len];
        ip.emit(
            &mut Ipv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCaps::default(),
        );
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut buf[20..]),
            v4(self.src.ip()),
            v4(self.dst.ip()),
            &ChecksumCaps::default(),
        );
        buf
    }

    /// Parses an IPv4 datagram carrying TCP.
    pub fn parse(bytes: &[u8]) -> Option<Seg> {
        let ip = Ipv4Packet::new_checked(bytes).ok()?;
        let ipr = Ipv4Repr::parse(&ip, &ChecksumCaps::default()).ok()?;
        if ipr.protocol != IpProtocol::Tcp {
            return None;
        }
        assert!(ipr.dont_frag, "TCP segments go out with DF");
        let payload = &ip.payload()[..ipr.payload_len];
        let tcp = TcpPacket::new_checked(payload).ok()?;
        let r = TcpRepr::parse(&tcp, ipr.src_addr, ipr.dst_addr, &ChecksumCaps::default())
            .expect("the stack emits valid TCP");
        Some(Seg {
            src: SocketAddr::from((ipr.src_addr, r.src_port)),
            dst: SocketAddr::from((ipr.dst_addr, r.dst_port)),
            flags: r.flags,
            seq: r.seq_number.0,
            ack: r.ack_number.0,
            win: r.window_len,
            mss: r.max_seg_size,
            ws: r.window_scale,
            sack_perm: r.sack_permitted,
            ts: r.timestamp.map(|t| (t.tsval, t.tsecr)),
            sack: r
                .sack_ranges
                .iter()
                .flatten()
                .map(|(l, r)| (l.0, r.0))
                .collect(),
            payload: r.payload.to_vec(),
        })
    }
}

/// Short form for traces: `SYN|ACK 100:105 ack 7 win 512 [mss 1460]`.
impl std::fmt::Display for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} > {} {:?} seq {} ack {} win {} len {}",
            self.src,
            self.dst,
            self.flags,
            self.seq,
            self.ack,
            self.win,
            self.payload.len()
        )?;
        if let Some(m) = self.mss {
            write!(f, " mss {m}")?;
        }
        if let Some(w) = self.ws {
            write!(f, " ws {w}")?;
        }
        if self.sack_perm {
            write!(f, " sackOK")?;
        }
        if let Some((v, e)) = self.ts {
            write!(f, " ts {v}/{e}")?;
        }
        for (l, r) in &self.sack {
            write!(f, " sack {l}:{r}")?;
        }
        Ok(())
    }
}

/// The scripts' stack. The tail loss probe is off, so that timeouts come
/// exactly at the RTO; `tcp_data.rs` turns it on where it tests it.
pub fn config() -> StackConfig {
    let mut c = StackConfig::new(Medium::Ip, Ipv4Cidr::new(US, 24)).with_seed(7);
    c.tcp.tail_loss_probe = false;
    c
}

/// One stack, driven by hand.
pub struct Script {
    pub stack: Stack,
    pub now: Instant,
    /// Everything the stack sent, with the time.
    pub sent: Vec<(Instant, Seg)>,
    /// The same frames as bytes.
    pub raw: Vec<Vec<u8>>,
    /// Sent but not yet taken by `expect`/`take`.
    pending: std::collections::VecDeque<(Instant, Seg)>,
}

impl Script {
    pub fn new() -> Script {
        Script::with(config())
    }

    pub fn with(cfg: StackConfig) -> Script {
        Script {
            stack: Stack::new(cfg).unwrap(),
            now: Instant::from_secs(100),
            sent: Vec::new(),
            raw: Vec::new(),
            pending: Default::default(),
        }
    }

    /// Seconds since the script started (t = 0 at 100 s on the stack clock).
    pub fn t(&self) -> f64 {
        (self.now - Instant::from_secs(100)).as_secs_f64()
    }

    fn drain(&mut self) {
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        while let Some(len) = self.stack.transmit(self.now, &mut buf) {
            n += 1;
            assert!(n < 1_000_000, "transmit does not settle");
            self.raw.push(buf[..len].to_vec());
            if let Some(s) = Seg::parse(&buf[..len]) {
                self.sent.push((self.now, s.clone()));
                self.pending.push_back((self.now, s));
            }
        }
    }

    /// Delivers a segment from the peer now, and collects the response.
    pub fn inject(&mut self, s: Seg) {
        self.stack.receive(self.now, &s.to_ip());
        self.drain();
    }

    /// Delivers raw IP bytes.
    pub fn inject_raw(&mut self, bytes: &[u8]) {
        self.stack.receive(self.now, bytes);
        self.drain();
    }

    /// Delivers raw IP frames, with what the device knows of each, one
    /// `receive_with` after another, then collects the response.
    pub fn inject_each(&mut self, frames: &[(Vec<u8>, ustack_core::RxMeta)]) {
        for (f, meta) in frames {
            self.stack.receive_with(self.now, f, *meta);
        }
        self.drain();
    }

    /// Delivers raw IP frames in one `receive_burst`, then collects the
    /// response.
    pub fn inject_burst(&mut self, frames: &[(Vec<u8>, ustack_core::RxMeta)]) {
        self.stack
            .receive_burst(self.now, frames.iter().map(|(f, m)| (&f[..], *m)));
        self.drain();
    }

    /// An ICMP destination unreachable from `from` quoting `quoted`.
    pub fn inject_icmp_unreach(&mut self, quoted: &Seg, reason: ustack_core::wire::DstUnreachable) {
        let q = quoted.to_ip();
        let quote = &q[..28.min(q.len())];
        let icmp = Icmpv4Repr::DstUnreachable {
            reason,
            next_hop_mtu: 0,
            invoking: quote,
        };
        let len = icmp.buffer_len();
        let ip = Ipv4Repr {
            src_addr: PEER,
            dst_addr: US,
            protocol: IpProtocol::Icmp,
            payload_len: len,
            ttl: 64,
            tos: 0,
            ident: 2,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        };
        let mut buf = vec![0u8; 20 + len];
        ip.emit(
            &mut Ipv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCaps::default(),
        );
        icmp.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[20..]),
            &ChecksumCaps::default(),
        );
        self.inject_raw(&buf);
    }

    /// Runs the clock to script time `t` seconds, sending at every deadline.
    pub fn run_to(&mut self, t: f64) {
        let end = Instant::from_secs(100) + Duration::from_secs_f64(t);
        assert!(end >= self.now, "time goes forward");
        self.drain();
        for _ in 0..10_000_000 {
            let Some(d) = self.stack.poll_at() else { break };
            if d > end {
                break;
            }
            self.now = if d > self.now {
                d
            } else {
                self.now + Duration::from_micros(1)
            };
            if self.now > end {
                break;
            }
            self.drain();
        }
        self.now = end;
        self.drain();
    }

    /// Runs the clock forward by `d` seconds.
    pub fn wait(&mut self, d: f64) {
        let t = self.t() + d;
        self.run_to(t);
    }

    /// Takes every segment sent so far and not yet taken.
    pub fn take(&mut self) -> Vec<(Instant, Seg)> {
        self.drain();
        self.pending.drain(..).collect()
    }

    /// Takes the next segment sent; panics if there is none.
    pub fn next(&mut self) -> Seg {
        self.drain();
        match self.pending.pop_front() {
            Some((_, s)) => s,
            None => panic!("at t={}: expected a segment, none sent", self.t()),
        }
    }

    /// Asserts the stack sent nothing not yet taken.
    pub fn expect_silence(&mut self) {
        self.drain();
        if let Some((at, s)) = self.pending.front() {
            panic!("at t={}: expected silence, got at {at}: {s}", self.t());
        }
    }

    /// Takes the next segment and asserts its addresses, flags, seq and
    /// ack. An expected SYN with seq 0 matches any ISN (the stack picks it).
    pub fn expect(&mut self, want: &Seg) -> Seg {
        let got = self.next();
        let any_isn = want.flags.contains(SYN) && want.seq == 0;
        let want_seq = if any_isn { got.seq } else { want.seq };
        assert_eq!(
            (got.src, got.dst, got.flags, got.seq, got.ack),
            (want.src, want.dst, want.flags, want_seq, want.ack),
            "\n at t={}\n got  {got}\n want {want}",
            self.t()
        );
        got
    }

    /// Takes the next segment and asserts when it was sent (script seconds).
    pub fn expect_at(&mut self, t: f64, want: &Seg) -> Seg {
        self.drain();
        let at = self.pending.front().map(|(at, _)| *at);
        let got = self.expect(want);
        let at = at.unwrap();
        let want_at = Instant::from_secs(100) + Duration::from_secs_f64(t);
        assert_eq!(at, want_at, "segment {got} sent at the wrong time");
        got
    }
}

/// The IPv4 address of a script's endpoint (scripts are IPv4).
fn v4(ip: std::net::IpAddr) -> Ipv4Addr {
    match ip {
        std::net::IpAddr::V4(a) => a,
        std::net::IpAddr::V6(_) => panic!("segment scripts are IPv4"),
    }
}
