//! The link a command runs on: a TUN or TAP device whose kernel side gets
//! an address, with optional impairments and capture, driven by a runtime
//! (set up by `ustack::link`, shared with the preload library).

use clap::Args;
use std::path::PathBuf;
use ustack::{Mode, Runtime};
use ustack_core::wire::{Ipv4Cidr, Ipv6Cidr};

/// ustack's address on the link unless `--addr` says otherwise.
pub const DEFAULT_ADDR: &str = "10.200.0.2/24";
/// The kernel's address on the link unless `--kernel-addr` says otherwise.
pub const DEFAULT_KERNEL_ADDR: &str = "10.200.0.1/24";

/// Options that put the stack on a TUN/TAP link. They are global: accepted
/// before or after the subcommand, and listed in every subcommand's help.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Link options")]
pub struct LinkArgs {
    /// Create (or attach to) a TUN device with this name (IP packets).
    #[arg(long, global = true, value_name = "NAME", conflicts_with = "tap")]
    pub tun: Option<String>,
    /// Create (or attach to) a TAP device with this name (Ethernet frames, ARP).
    #[arg(long, global = true, value_name = "NAME")]
    pub tap: Option<String>,
    /// ustack's address on the link [default: 10.200.0.2/24].
    #[arg(long, global = true, value_name = "CIDR")]
    pub addr: Option<Ipv4Cidr>,
    /// The kernel's address on the link (set on the device, which is brought
    /// up) [default: 10.200.0.1/24].
    #[arg(long, global = true, value_name = "CIDR")]
    pub kernel_addr: Option<Ipv4Cidr>,
    /// ustack's IPv6 address on the link (besides its link-local one).
    #[arg(long, global = true, value_name = "CIDR")]
    pub addr6: Option<Ipv6Cidr>,
    /// The kernel's IPv6 address on the link (added with `nodad`: usable at once).
    #[arg(long, global = true, value_name = "CIDR")]
    pub kernel_addr6: Option<Ipv6Cidr>,
    /// MTU of the link [default: 1500].
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(68..=65535))]
    pub mtu: Option<u32>,
    /// Drop this fraction of frames in each direction (ustack's own device
    /// layer; for `demo`, the in-memory link's loss, default 0.05).
    #[arg(long, global = true, value_name = "P", value_parser = crate::probability)]
    pub loss: Option<f64>,
    /// Hold back this fraction of frames by 5 ms in each direction, so later
    /// ones overtake them (reordering in ustack's own device layer).
    #[arg(long, global = true, value_name = "P", value_parser = crate::probability)]
    pub reorder: Option<f64>,
    /// Add this one-way delay, in milliseconds, in each direction (for
    /// `demo`, the in-memory link's delay, default 10).
    #[arg(long, global = true, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub delay: Option<u64>,
    /// Write every frame ustack sends and receives to this pcap file.
    #[arg(long, global = true, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// A router hop of this MTU in ustack's device layer, both ways: bigger
    /// packets with DF set are answered with ICMP Fragmentation Needed
    /// (IPv6: Packet Too Big) and dropped, for path MTU discovery. Turns
    /// the offloads off.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(68..=65535))]
    pub hop_mtu: Option<u32>,
    /// The --hop-mtu hop drops without answering (an ICMP black hole).
    #[arg(long, global = true, requires = "hop_mtu")]
    pub hop_mtu_blackhole: bool,
    /// TCP packetization-layer path MTU discovery (RFC 4821 black-hole
    /// detection, Linux tcp_mtu_probing=1): repeated timeouts lower the MSS.
    #[arg(long, global = true)]
    pub mtu_probing: bool,
    /// Seed of the stack's random choices (ISNs, ephemeral ports, timestamp
    /// offsets): the same seed makes the same choices. Without it a device's
    /// stack is seeded from the OS's randomness; `demo` uses 1.
    #[arg(long, global = true, value_name = "N")]
    pub seed: Option<u64>,
    /// The TUN/TAP's offloads (virtio-net header, TSO/GSO, checksums):
    /// `on` uses what the kernel accepts, `off` plain frames (old
    /// kernels, comparisons).
    #[arg(long, global = true, value_name = "on|off", default_value = "on", value_parser = ["on", "off"])]
    pub offload: String,
    /// Put the device's kernel side in this network namespace (`ip netns`
    /// name); ustack and its sockets stay in the current one.
    #[arg(long, global = true, value_name = "NS")]
    pub netns: Option<String>,
    /// Congestion control of every TCP socket: newreno, cubic (the
    /// default, as Linux) or bbr (paced).
    #[arg(long = "cc", global = true, value_name = "NAME")]
    pub cc: Option<ustack_core::Congestion>,
    /// ECN (RFC 3168) for TCP: `on` asks for it on SYNs, `passive` (the
    /// default, as Linux's tcp_ecn=2) accepts it when asked, `off` never.
    #[arg(long, global = true, value_name = "on|passive|off", value_parser = ["on", "passive", "off"])]
    pub ecn: Option<String>,
    /// Stacks to run, one per queue of a multiqueue TUN and per thread
    /// (pinned to a core where allowed): a number, or `auto` for one per
    /// core. `serve` listens in every stack. [default: 1]
    #[arg(long, global = true, value_name = "N|auto", value_parser = parse_queues)]
    pub queues: Option<usize>,
    /// Write a JSON-lines trace of the TCP events (segments, retransmissions,
    /// cwnd, RTT, states: docs/trace.md) to this file; `ustack plot` draws it.
    #[arg(long, value_name = "FILE", global = true)]
    pub trace: Option<PathBuf>,
}

/// A one-line reason the link could not be set up.
pub type LinkError = String;

/// Most queues `--queues` takes (Linux's tun allows 256).
pub const MAX_QUEUES: usize = 64;

/// `--queues`: 1..=64, or `auto` (the CPUs this process may run on).
fn parse_queues(s: &str) -> Result<usize, String> {
    let n = match s {
        "auto" => ustack::ustack_devices::affinity::allowed_cpus()
            .len()
            .max(1),
        _ => s
            .parse::<usize>()
            .map_err(|_| format!("{s:?} is not a number of queues or `auto`"))?,
    };
    if !(1..=MAX_QUEUES).contains(&n) {
        return Err(format!("{n} queues: give 1 to {MAX_QUEUES}"));
    }
    Ok(n.min(MAX_QUEUES))
}

impl LinkArgs {
    /// The options that only apply to a device, by name, if given (the
    /// demo takes none of them).
    pub fn device_options(&self) -> Vec<&'static str> {
        [
            ("--tun", self.tun.is_some()),
            ("--tap", self.tap.is_some()),
            ("--addr", self.addr.is_some()),
            ("--kernel-addr", self.kernel_addr.is_some()),
            ("--mtu", self.mtu.is_some()),
            ("--reorder", self.reorder.is_some()),
            ("--hop-mtu", self.hop_mtu.is_some()),
            ("--mtu-probing", self.mtu_probing),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    /// `--ecn` as the core takes it.
    pub fn ecn_mode(&self) -> Option<ustack_core::EcnMode> {
        self.ecn.as_deref().map(|e| match e {
            "on" => ustack_core::EcnMode::On,
            "off" => ustack_core::EcnMode::Off,
            _ => ustack_core::EcnMode::Passive,
        })
    }

    /// ustack's address on the link.
    pub fn addr(&self) -> Ipv4Cidr {
        self.addr
            .unwrap_or_else(|| DEFAULT_ADDR.parse().expect("default address"))
    }

    /// The kernel's address on the link.
    pub fn kernel_addr(&self) -> Ipv4Cidr {
        self.kernel_addr
            .unwrap_or_else(|| DEFAULT_KERNEL_ADDR.parse().expect("default address"))
    }

    /// `--seed`, else 64 bits from the OS (getrandom(2)), so that runs one
    /// after another pick different ephemeral ports (RFC 6056), ISN secrets
    /// (RFC 6528) and timestamp offsets (RFC 7323 §5.4): a new run must not
    /// look like an old duplicate to a peer still in TIME-WAIT.
    pub fn seed(&self) -> Result<u64, LinkError> {
        match self.seed {
            Some(s) => Ok(s),
            None => getrandom::u64().map_err(|e| {
                format!("cannot read the OS's randomness for the seed: {e}; give --seed N")
            }),
        }
    }

    /// Opens the device, configures the kernel side, and starts a runtime
    /// with a stack thread.
    pub fn start(&self, what: &str) -> Result<Runtime, LinkError> {
        self.start_with(what, Mode::Thread)
    }

    /// Like [`start`](Self::start), the runtime in `mode` (the servers use
    /// [`Mode::External`], driven from their tokio runtime).
    pub fn start_with(&self, what: &str, mode: Mode) -> Result<Runtime, LinkError> {
        self.start_tweaked(what, mode, |c| c)
    }

    /// Like [`start_with`](Self::start_with), the stack's configuration
    /// adjusted by `tweak` (`forward` turns transparent mode on).
    pub fn start_tweaked(
        &self,
        what: &str,
        mode: Mode,
        tweak: impl FnOnce(ustack_core::StackConfig) -> ustack_core::StackConfig,
    ) -> Result<Runtime, LinkError> {
        if self.queues() > 1 {
            return Err(format!(
                "{what} runs one stack; --queues is for serve and demo"
            ));
        }
        let trace = match &self.trace {
            Some(path) => Some(ustack::trace::TraceWriter::create(path)?),
            None => None,
        };
        let tcp = self.tcp_choices();
        let rt = self
            .config()?
            .start_tweaked(what, mode, move |c| tcp(tweak(c)))?;
        if let Some(w) = trace {
            rt.trace_to(Box::new(w.into_inner()), &self.addr().address().to_string());
        }
        Ok(rt)
    }

    /// What `--cc` and `--ecn` change in a stack's configuration.
    fn tcp_choices(&self) -> impl FnOnce(ustack_core::StackConfig) -> ustack_core::StackConfig {
        let (cc, ecn) = (self.cc, self.ecn_mode());
        move |mut c| {
            if let Some(cc) = cc {
                c.tcp.congestion = cc;
            }
            if let Some(e) = ecn {
                c.tcp.ecn = e;
            }
            c
        }
    }

    /// Stacks asked for with `--queues` (1 without it).
    pub fn queues(&self) -> usize {
        self.queues.unwrap_or(1)
    }

    /// `--queues` stacks on as many queues of a multiqueue TUN, in `mode`.
    pub fn start_group(&self, what: &str, mode: Mode) -> Result<ustack::RuntimeGroup, LinkError> {
        if self.trace.is_some() && self.queues() > 1 {
            return Err(format!(
                "{what}: --trace follows one stack; use it with one queue"
            ));
        }
        self.config()?
            .start_group(what, mode, self.queues(), self.tcp_choices())
    }

    /// The link as `ustack::link` takes it.
    fn config(&self) -> Result<ustack::link::LinkConfig, LinkError> {
        Ok(ustack::link::LinkConfig {
            tun: self.tun.clone(),
            tap: self.tap.clone(),
            addr: self.addr(),
            kernel_addr: self.kernel_addr(),
            mtu: self.mtu.unwrap_or(1500),
            loss: self.loss,
            reorder: self.reorder,
            delay: self.delay,
            pcap: self.pcap.clone(),
            hop_mtu: self.hop_mtu,
            hop_blackhole: self.hop_mtu_blackhole,
            mtu_probing: self.mtu_probing,
            seed: self.seed()?,
            offload: self.offload == "on",
            addr6: self.addr6,
            kernel_addr6: self.kernel_addr6,
            netns: self.netns.clone(),
        })
    }

    /// Runs `ip ARGS` where the device's kernel side is (`--netns`).
    pub fn ip(&self, args: &[&str]) -> std::io::Result<String> {
        ustack::link::ip_in(self.netns.as_deref(), args)
    }
}
