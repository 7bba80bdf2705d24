//! Two stacks wired back to back, pumped on a virtual clock.
#![allow(dead_code)]

use ustack_core::wire::{EthernetAddress, Ipv4Addr, Ipv4Cidr, Ipv4Packet, TcpPacket};
use ustack_core::{Duration, Errno, Instant, Medium, SocketHandle, Stack, StackConfig};

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub fn config(medium: Medium, addr: Ipv4Addr, seed: u64) -> StackConfig {
    let mac = EthernetAddress([2, 0, 0, 0, 0, addr.octets()[3]]);
    StackConfig::new(medium, Ipv4Cidr::new(addr, 24))
        .with_seed(seed)
        .with_mac(mac)
}

/// Frames that crossed the wire, as (time, from A?, bytes).
pub type Trace = Vec<(Instant, bool, Vec<u8>)>;

/// Applied to every frame in flight (`true` when sent by A); `None` drops it.
pub type Filter = Box<dyn FnMut(bool, Vec<u8>) -> Option<Vec<u8>>>;

pub struct Pair {
    pub a: Stack,
    pub b: Stack,
    pub now: Instant,
    pub trace: Trace,
    pub filter: Filter,
}

impl Pair {
    pub fn new(medium: Medium) -> Pair {
        Pair::with(config(medium, A, 1), config(medium, B, 2))
    }

    pub fn with(a: StackConfig, b: StackConfig) -> Pair {
        Pair {
            a: Stack::new(a).unwrap(),
            b: Stack::new(b).unwrap(),
            now: Instant::from_secs(1),
            trace: Vec::new(),
            filter: Box::new(|_, f| Some(f)),
        }
    }

    /// Moves frames both ways until neither stack has anything to send now.
    pub fn pump(&mut self) -> usize {
        let mut buf = vec![0u8; 65536];
        let mut moved = 0;
        for _ in 0..100_000 {
            let mut any = false;
            while let Some(n) = self.a.transmit(self.now, &mut buf) {
                any = true;
                moved += 1;
                self.trace.push((self.now, true, buf[..n].to_vec()));
                if let Some(f) = (self.filter)(true, buf[..n].to_vec()) {
                    self.b.receive(self.now, &f);
                }
            }
            while let Some(n) = self.b.transmit(self.now, &mut buf) {
                any = true;
                moved += 1;
                self.trace.push((self.now, false, buf[..n].to_vec()));
                if let Some(f) = (self.filter)(false, buf[..n].to_vec()) {
                    self.a.receive(self.now, &f);
                }
            }
            if !any {
                return moved;
            }
        }
        panic!("pump did not settle");
    }

    /// B listens on `port`, A connects, B accepts:
    /// (A's socket, B's accepted one), both established.
    pub fn connect(&mut self, port: u16) -> (ustack_core::SocketHandle, ustack_core::SocketHandle) {
        use std::net::SocketAddr;
        let l = self.b.tcp_open();
        self.b.tcp_bind(l, SocketAddr::from((B, port))).unwrap();
        self.b.tcp_listen(l, 8).unwrap();
        let c = self.a.tcp_open();
        assert_eq!(
            self.a.tcp_connect(self.now, c, SocketAddr::from((B, port))),
            Err(ustack_core::Errno::EINPROGRESS)
        );
        self.pump();
        assert_eq!(self.a.tcp_state(c), Ok(ustack_core::TcpState::Established));
        let (s, _) = self.b.tcp_accept(l).unwrap();
        (c, s)
    }

    /// Advances the clock by `d`, stopping at every deadline on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            self.pump();
            let next = [self.a.poll_at(), self.b.poll_at()]
                .into_iter()
                .flatten()
                .filter(|t| *t > self.now)
                .min();
            match next {
                Some(t) if t <= end => self.now = t,
                _ => {
                    self.now = end;
                    self.pump();
                    return;
                }
            }
        }
        panic!("advance did not settle");
    }
}

/// Two stacks joined by a path of `owd` each way, on the virtual clock.
pub struct Delayed {
    pub p: Pair,
    pub owd: Duration,
    /// Frames in flight: (arrival, to B?, frame).
    pub wire: std::collections::VecDeque<(Instant, bool, Vec<u8>)>,
    /// A's data segments: (time, payload bytes).
    pub sent: Vec<(Instant, usize)>,
}

impl Delayed {
    pub fn new(cc: ustack_core::Congestion, sndbuf: usize) -> Delayed {
        Delayed::with_rcvbuf(cc, sndbuf, None)
    }

    /// As `new`, B's receive buffer fixed at `rcvbuf` (no autotuning).
    pub fn with_rcvbuf(
        cc: ustack_core::Congestion,
        sndbuf: usize,
        rcvbuf: Option<usize>,
    ) -> Delayed {
        let mut ca = config(Medium::Ip, A, 1);
        ca.tcp.congestion = cc;
        ca.tcp.sndbuf = sndbuf;
        let mut cb = config(Medium::Ip, B, 2);
        if let Some(r) = rcvbuf {
            cb.tcp.rcvbuf = r;
            cb.tcp.max_rcvbuf = r;
        }
        Delayed::with(ca, cb)
    }

    /// A and B as configured, 50 ms apart.
    pub fn with(a: StackConfig, b: StackConfig) -> Delayed {
        Delayed {
            p: Pair::with(a, b),
            owd: Duration::from_millis(50),
            wire: Default::default(),
            sent: Vec::new(),
        }
    }

    /// Moves frames and time until `done` or `limit` has passed.
    pub fn run(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) {
        let end = self.p.now + limit;
        let mut buf = vec![0u8; 65536];
        for _ in 0..1_000_000 {
            let p = &mut self.p;
            while self.wire.front().is_some_and(|w| w.0 <= p.now) {
                let (_, to_b, f) = self.wire.pop_front().unwrap();
                if to_b {
                    p.b.receive(p.now, &f);
                } else {
                    p.a.receive(p.now, &f);
                }
            }
            while let Some(n) = p.a.transmit(p.now, &mut buf) {
                let f = buf[..n].to_vec();
                let ip = Ipv4Packet::new_checked(&f[..]).unwrap();
                let len = TcpPacket::new_checked(ip.payload()).map_or(0, |t| t.payload().len());
                if len > 0 {
                    self.sent.push((p.now, len));
                }
                self.wire.push_back((p.now + self.owd, true, f));
            }
            while let Some(n) = p.b.transmit(p.now, &mut buf) {
                self.wire
                    .push_back((p.now + self.owd, false, buf[..n].to_vec()));
            }
            if done(p) || p.now >= end {
                return;
            }
            let next = [p.a.poll_at(), p.b.poll_at(), self.wire.front().map(|w| w.0)]
                .into_iter()
                .flatten()
                .filter(|t| *t > p.now)
                .min();
            p.now = next.map_or(end, |t| t.min(end));
        }
        panic!("the run did not settle");
    }

    /// A connects to B through the delay: (A's socket, B's accepted one).
    pub fn connect(&mut self) -> (SocketHandle, SocketHandle) {
        use std::net::SocketAddr;
        let p = &mut self.p;
        let l = p.b.tcp_open();
        p.b.tcp_bind(l, SocketAddr::from((B, 80))).unwrap();
        p.b.tcp_listen(l, 8).unwrap();
        let c = p.a.tcp_open();
        let to = SocketAddr::from((B, 80));
        assert_eq!(p.a.tcp_connect(p.now, c, to), Err(Errno::EINPROGRESS));
        let mut s = None;
        self.run(Duration::from_secs(1), |p| {
            s = s.or_else(|| p.b.tcp_accept(l).ok().map(|x| x.0));
            s.is_some()
        });
        (c, s.expect("accepted"))
    }
}
