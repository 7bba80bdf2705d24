//! The link flags of the `ustack` command (`--tun NAME --addr CIDR
//! --kernel-addr CIDR --mtu N`), for the examples: a TUN device whose
//! kernel side gets `--kernel-addr`, and a runtime with a stack thread.
#![allow(dead_code)]

use std::io;
use ustack::{Mode, Runtime};
use ustack_core::wire::Ipv4Cidr;
use ustack_core::{Medium, Stack, StackConfig};
use ustack_devices::kernel::ip;
use ustack_devices::{Clock, KernelIf, TunOptions};

#[derive(clap::Args, Debug, Clone)]
pub struct Link {
    /// Create (or attach to) this TUN device (root or CAP_NET_ADMIN).
    #[arg(long, value_name = "NAME")]
    pub tun: String,
    /// ustack's address on the link.
    #[arg(long, value_name = "CIDR", default_value = "10.200.0.2/24")]
    pub addr: Ipv4Cidr,
    /// The kernel's address on the link (set on the device, which is brought up).
    #[arg(long, value_name = "CIDR", default_value = "10.200.0.1/24")]
    pub kernel_addr: Ipv4Cidr,
    /// MTU of the link.
    #[arg(long, default_value_t = 1500)]
    pub mtu: usize,
}

impl Link {
    /// Opens the TUN, configures its kernel side, starts the runtime.
    pub fn start(&self) -> io::Result<Runtime> {
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        if !self.kernel_addr.contains_addr(&self.addr.address())
            || self.kernel_addr.address() == self.addr.address()
        {
            return Err(bad(format!(
                "--addr {} and --kernel-addr {} must be different addresses on the same subnet",
                self.addr, self.kernel_addr
            )));
        }
        let tun = TunOptions::new(&self.tun)
            .mtu(self.mtu)
            .open_tun()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot open TUN {}: {e}", self.tun)))?;
        // A persistent device may carry its address already: then just bring it up.
        let configured = ip(["-o", "-4", "addr", "show", "dev", self.tun.as_str()])
            .is_ok_and(|out| out.contains(&format!("inet {} ", self.kernel_addr)));
        if configured {
            ip(["link", "set", "dev", self.tun.as_str(), "up"])?;
        } else {
            KernelIf::new(&self.tun, self.kernel_addr)
                .mtu(self.mtu)
                .apply(None)?;
        }
        // A seed of its own per run: a second run with the same ephemeral
        // port and initial sequence number as the last one would meet the
        // kernel's TIME-WAIT for that connection.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        let cfg = StackConfig::new(Medium::Ip, self.addr)
            .with_seed(seed)
            .with_mtu(self.mtu)
            .with_gateway(self.kernel_addr.address());
        let stack = Stack::new(cfg).map_err(|e| bad(e.to_string()))?;
        Runtime::new(stack, tun, Clock::new(), Mode::Thread)
    }
}
