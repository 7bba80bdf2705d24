//! The link a command runs on: a TUN or TAP device whose kernel side gets
//! an address, with optional impairments and capture, driven by a runtime
//! (set up by `ustack::link`, shared with the preload library).

use clap::Args;
use std::path::PathBuf;
use ustack::{Mode, Runtime};
use ustack_core::wire::Ipv4Cidr;

/// Options that put the stack on a TUN/TAP link.
#[derive(Args, Debug, Clone)]
pub struct LinkArgs {
    /// Create (or attach to) a TUN device with this name (IP packets).
    #[arg(long, value_name = "NAME", conflicts_with = "tap")]
    pub tun: Option<String>,
    /// Create (or attach to) a TAP device with this name (Ethernet frames, ARP).
    #[arg(long, value_name = "NAME")]
    pub tap: Option<String>,
    /// ustack's address on the link.
    #[arg(long, value_name = "CIDR", default_value = "10.200.0.2/24")]
    pub addr: Ipv4Cidr,
    /// The kernel's address on the link (set on the device, which is brought up).
    #[arg(long, value_name = "CIDR", default_value = "10.200.0.1/24")]
    pub kernel_addr: Ipv4Cidr,
    /// MTU of the link.
    #[arg(long, default_value_t = 1500, value_parser = clap::value_parser!(u32).range(68..=65535))]
    pub mtu: u32,
    /// Drop this fraction of frames in each direction (ustack's own device layer).
    #[arg(long, value_name = "P", value_parser = crate::probability)]
    pub loss: Option<f64>,
    /// Hold back this fraction of frames by 5 ms in each direction, so later
    /// ones overtake them (reordering in ustack's own device layer).
    #[arg(long, value_name = "P", value_parser = crate::probability)]
    pub reorder: Option<f64>,
    /// Add this one-way delay, in milliseconds, in each direction.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub delay: Option<u64>,
    /// Write every frame ustack sends and receives to this pcap file.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Seed of the stack's random choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The TUN/TAP's offloads (virtio-net header, TSO/GSO, checksums):
    /// `on` uses what the kernel accepts, `off` plain frames (old
    /// kernels, comparisons).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = ["on", "off"])]
    pub offload: String,
}

/// A one-line reason the link could not be set up.
pub type LinkError = String;

impl LinkArgs {
    /// Whether any link option was given (the demo takes none).
    pub fn given(&self) -> bool {
        self.tun.is_some()
            || self.tap.is_some()
            || self.loss.is_some()
            || self.reorder.is_some()
            || self.delay.is_some()
            || self.pcap.is_some()
    }

    /// Opens the device, configures the kernel side, and starts a runtime
    /// with a stack thread.
    pub fn start(&self, what: &str) -> Result<Runtime, LinkError> {
        self.start_with(what, Mode::Thread)
    }

    /// Like [`start`](Self::start), the runtime in `mode` (the servers use
    /// [`Mode::External`], driven from their tokio runtime).
    pub fn start_with(&self, what: &str, mode: Mode) -> Result<Runtime, LinkError> {
        ustack::link::LinkConfig {
            tun: self.tun.clone(),
            tap: self.tap.clone(),
            addr: self.addr,
            kernel_addr: self.kernel_addr,
            mtu: self.mtu,
            loss: self.loss,
            reorder: self.reorder,
            delay: self.delay,
            pcap: self.pcap.clone(),
            seed: self.seed,
            offload: self.offload == "on",
        }
        .start_with(what, mode)
    }
}
