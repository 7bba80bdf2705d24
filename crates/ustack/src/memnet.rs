//! Runtimes on an in-memory network: hosts on one [`SharedLink`] (seeded
//! impairments, real time), for examples, tests and benchmarks that need
//! no root and no device; [`mq_pair`] puts runtime groups on a
//! multiqueue link.

use crate::group::RuntimeGroup;
use crate::runtime::{Mode, Runtime};
use std::io;
use std::net::Ipv4Addr;
use ustack_core::wire::Ipv4Cidr;
use ustack_core::{Medium, Stack, StackConfig};
use ustack_devices::{Impairments, MqLink, QueueCounters, SharedLink};

/// A link and the runtimes on it.
pub struct MemNet {
    pub link: SharedLink,
    seed: u64,
    mtu: usize,
}

impl MemNet {
    /// A link with these impairments; `seed` drives them and the stacks.
    pub fn new(seed: u64, imp: Impairments) -> MemNet {
        MemNet {
            link: SharedLink::new(seed, imp),
            seed,
            mtu: 1500,
        }
    }

    pub fn with_mtu(mut self, mtu: usize) -> MemNet {
        self.mtu = mtu;
        self
    }

    /// A host at `addr`/24 with the default configuration.
    pub fn host(&self, addr: Ipv4Addr, mode: Mode) -> io::Result<Runtime> {
        self.host_with(addr, mode, |c| c)
    }

    /// A host whose configuration `tweak` adjusts first.
    pub fn host_with(
        &self,
        addr: Ipv4Addr,
        mode: Mode,
        tweak: impl FnOnce(StackConfig) -> StackConfig,
    ) -> io::Result<Runtime> {
        let seed = self.seed ^ u64::from(u32::from(addr));
        let cfg = StackConfig::new(Medium::Ip, Ipv4Cidr::new(addr, 24))
            .with_seed(seed)
            .with_mtu(self.mtu);
        let stack =
            Stack::new(tweak(cfg)).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let port = self.link.port(Medium::Ip, self.mtu)?;
        Runtime::new(stack, port, self.link.clock(), mode)
    }
}

/// Two hosts, 10.0.0.1 and 10.0.0.2, on a clean link, both with a stack thread.
pub fn pair() -> io::Result<(Runtime, Runtime)> {
    let net = MemNet::new(1, Impairments::none());
    Ok((
        net.host(Ipv4Addr::new(10, 0, 0, 1), Mode::Thread)?,
        net.host(Ipv4Addr::new(10, 0, 0, 2), Mode::Thread)?,
    ))
}

/// Two runtime groups on a multiqueue link, and the link's queue
/// counters ([`mq_pair`]).
pub struct MqPair {
    /// 10.0.0.1.
    pub a: RuntimeGroup,
    /// 10.0.0.2.
    pub b: RuntimeGroup,
    /// Frames delivered to and dropped at each of a's receive queues.
    pub a_queues: Vec<QueueCounters>,
    pub b_queues: Vec<QueueCounters>,
}

/// Two hosts, 10.0.0.1 with `a` stacks and 10.0.0.2 with `b`, on a
/// multiqueue in-memory link ([`MqLink`]: one queue per stack, RSS
/// steering, `queue_limit` frames per queue, 0 for the default): runtime
/// groups for multi-stack tests and benchmarks that need no root.
/// `tweak` adjusts both hosts' configuration; `pin` pins thread-mode stacks.
pub fn mq_pair(
    a: usize,
    b: usize,
    queue_limit: usize,
    mode: Mode,
    pin: bool,
    tweak: impl Fn(StackConfig) -> StackConfig,
) -> io::Result<MqPair> {
    let mtu = 1500;
    let (qa, qb) = MqLink::pair(Medium::Ip, mtu, a, b, queue_limit)?;
    let a_queues = qa.iter().map(|q| q.counters()).collect();
    let b_queues = qb.iter().map(|q| q.counters()).collect();
    let clock = ustack_devices::Clock::new();
    let group = |addr: Ipv4Addr, qs: Vec<ustack_devices::MqQueue>| {
        let cfg = StackConfig::new(Medium::Ip, Ipv4Cidr::new(addr, 24))
            .with_seed(0x6d5a ^ u64::from(u32::from(addr)))
            .with_mtu(mtu);
        let devices = qs
            .into_iter()
            .map(|q| Box::new(q) as Box<dyn ustack_devices::Device + Send>)
            .collect();
        RuntimeGroup::new(tweak(cfg), devices, clock, mode, pin)
    };
    Ok(MqPair {
        a: group(Ipv4Addr::new(10, 0, 0, 1), qa)?,
        b: group(Ipv4Addr::new(10, 0, 0, 2), qb)?,
        a_queues,
        b_queues,
    })
}
