//! The context a protocol is driven with: what `Tcp`, `Udp` and `Icmp`
//! may use of the stack around them, and nothing else. None of them
//! names `Stack`; a test can build a `Cx` from parts and drive one alone.

use crate::config::StackConfig;
use crate::counters::Counters;
use crate::event::{EventKind, Events};
use crate::ipv4::output::IpOut;
use crate::ipv6::Ipv6;
use crate::ports::PortAllocator;
use crate::rng::Rng;
use crate::socket::Handles;
use crate::time::Instant;

/// `now`, the configuration, and the stack's shared mutable parts.
/// Three words, built for every datagram in and every frame out.
pub struct Cx<'a> {
    pub now: Instant,
    pub cfg: &'a StackConfig,
    pub sh: &'a mut Shared,
}

/// What the protocols share, besides the configuration: the counters and
/// the RNG, the handle table (readiness changes), the ephemeral port
/// allocator, the IP output path and the event queue.
pub struct Shared {
    pub counters: Counters,
    pub rng: Rng,
    pub handles: Handles,
    pub ports: PortAllocator,
    pub ip: IpOut,
    /// The IPv6 layer: its output queue carries TCP and UDP over IPv6 too.
    pub ip6: Ipv6,
    pub events: Events,
    /// The datagram being delivered came marked Congestion Experienced
    /// (RFC 3168 §5), for TCP's ECN (`tcp/ecn.rs`).
    pub rx_ce: bool,
}

impl Shared {
    pub fn new(cfg: &StackConfig) -> Shared {
        let mut rng = Rng::new(cfg.seed);
        let ident = rng.next_u64() as u16;
        Shared {
            counters: Counters::default(),
            handles: Handles::default(),
            ports: PortAllocator::new(cfg.ephemeral_ports.clone()),
            ip: IpOut::new(cfg, ident),
            ip6: Ipv6::new(cfg),
            events: Events::new(cfg.max_events),
            rx_ce: false,
            rng,
        }
    }
}

impl Cx<'_> {
    /// Records an event at `now`.
    #[inline]
    pub fn event(&mut self, kind: EventKind) {
        self.sh.events.push(self.now, kind);
    }
}

/// The owned parts a [`Cx`] borrows, for driving one protocol without a
/// stack (unit tests).
pub struct Parts {
    pub cfg: StackConfig,
    pub sh: Shared,
}

impl Parts {
    pub fn new(cfg: StackConfig) -> Parts {
        Parts {
            sh: Shared::new(&cfg),
            cfg,
        }
    }

    /// A context at `now`.
    pub fn cx(&mut self, now: Instant) -> Cx<'_> {
        Cx {
            now,
            cfg: &self.cfg,
            sh: &mut self.sh,
        }
    }
}
