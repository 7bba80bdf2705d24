//! Runtimes on an in-memory network: hosts on one [`SharedLink`] (seeded
//! impairments, real time), for examples, tests and benchmarks that need
//! no root and no device.

use crate::runtime::{Mode, Runtime};
use std::io;
use std::net::Ipv4Addr;
use ustack_core::wire::Ipv4Cidr;
use ustack_core::{Medium, Stack, StackConfig};
use ustack_devices::{Impairments, SharedLink};

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
