//! The context a protocol is driven with: what `Tcp`, `Udp` and `Icmp`
//! may use of the stack around them, and nothing else. None of them
//! names `Stack`; a test can build a `Cx` from parts and drive one alone.

use crate::config::StackConfig;
use crate::counters::Counters;
use crate::event::{EventKind, Events};
use crate::ipv4::output::IpOut;
use crate::ports::PortAllocator;
use crate::rng::Rng;
use crate::socket::Handles;
use crate::time::Instant;

/// `now`, the configuration, the counters and the RNG, plus the shared
/// pieces the transports meet in: the handle table (readiness changes),
/// the ephemeral port allocator, the IP output path and the event queue.
pub struct Cx<'a> {
    pub now: Instant,
    pub cfg: &'a StackConfig,
    pub counters: &'a mut Counters,
    pub rng: &'a mut Rng,
    pub handles: &'a mut Handles,
    pub ports: &'a mut PortAllocator,
    pub ip: &'a mut IpOut,
    pub events: &'a mut Events,
}

impl Cx<'_> {
    /// Records an event at `now`.
    #[inline]
    pub fn event(&mut self, kind: EventKind) {
        self.events.push(self.now, kind);
    }
}

/// The owned parts a [`Cx`] borrows, for driving one protocol without a
/// stack (unit tests).
pub struct Parts {
    pub cfg: StackConfig,
    pub counters: Counters,
    pub rng: Rng,
    pub handles: Handles,
    pub ports: PortAllocator,
    pub ip: IpOut,
    pub events: Events,
}

impl Parts {
    pub fn new(cfg: StackConfig) -> Parts {
        let mut rng = Rng::new(cfg.seed);
        let ident = rng.next_u64() as u16;
        Parts {
            counters: Counters::default(),
            handles: Handles::default(),
            ports: PortAllocator::new(cfg.ephemeral_ports.clone()),
            ip: IpOut::new(&cfg, ident),
            events: Events::new(cfg.max_events),
            rng,
            cfg,
        }
    }

    /// A context at `now`.
    pub fn cx(&mut self, now: Instant) -> Cx<'_> {
        Cx {
            now,
            cfg: &self.cfg,
            counters: &mut self.counters,
            rng: &mut self.rng,
            handles: &mut self.handles,
            ports: &mut self.ports,
            ip: &mut self.ip,
            events: &mut self.events,
        }
    }
}
