//! The link a command runs on: a TUN or TAP device whose kernel side gets
//! an address, with optional impairments and capture, driven by a runtime.

use clap::Args;
use std::path::PathBuf;
use ustack::{Mode, Runtime};
use ustack_core::wire::{EthernetAddress, Ipv4Cidr};
use ustack_core::Duration;
use ustack_core::{Medium, Stack, StackConfig};
use ustack_devices::kernel::ip;
use ustack_devices::{
    Captured, Clock, Device, Impaired, Impairments, KernelIf, LinkKind, PcapSink, TunOptions,
};

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
    /// Write a JSON-lines trace of the TCP events (segments, retransmissions,
    /// cwnd, RTT, states: docs/trace.md) to this file; `ustack plot` draws it.
    #[arg(long, value_name = "FILE", global = true)]
    pub trace: Option<PathBuf>,
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
        let (name, medium) = match (&self.tun, &self.tap) {
            (Some(n), _) => (n.clone(), Medium::Ip),
            (None, Some(n)) => (n.clone(), Medium::Ethernet),
            (None, None) => {
                return Err(format!(
                    "{what} needs a link: give --tun NAME or --tap NAME (and run as root), \
                     or try `ustack demo` for the in-memory network"
                ))
            }
        };
        if !self.kernel_addr.contains_addr(&self.addr.address())
            || self.kernel_addr.address() == self.addr.address()
        {
            return Err(format!(
                "--addr {} and --kernel-addr {} must be different addresses on the same subnet",
                self.addr, self.kernel_addr
            ));
        }
        let mtu = self.mtu as usize;
        let opts = TunOptions::new(&name).mtu(mtu);
        let device: Box<dyn Device + Send> = match medium {
            Medium::Ip => Box::new(opts.open_tun().map_err(|e| open_error("TUN", &name, &e))?),
            Medium::Ethernet => {
                Box::new(opts.open_tap().map_err(|e| open_error("TAP", &name, &e))?)
            }
        };
        // A persistent device (`ip tuntap add`) may have its address already,
        // and the kernel's servers be bound to it: then just bring it up.
        let configured = ip(["-o", "-4", "addr", "show", "dev", name.as_str()])
            .is_ok_and(|out| out.contains(&format!("inet {} ", self.kernel_addr)));
        if configured {
            ip(["link", "set", "dev", name.as_str(), "up"])
                .map_err(|e| format!("cannot bring {name} up: {e}"))?;
        } else {
            KernelIf::new(&name, self.kernel_addr)
                .mtu(mtu)
                .apply(None)
                .map_err(|e| format!("cannot configure the kernel side of {name}: {e}"))?;
        }
        let imp = Impairments::none()
            .with_loss(self.loss.unwrap_or(0.0))
            .with_reorder(self.reorder.unwrap_or(0.0), Duration::from_millis(5))
            .with_delay(Duration::from_millis(self.delay.unwrap_or(0)));
        let impaired = self.loss.is_some_and(|p| p > 0.0)
            || self.reorder.is_some_and(|p| p > 0.0)
            || self.delay.is_some_and(|d| d > 0);
        let device: Box<dyn Device + Send> = if impaired {
            Box::new(Impaired::new(device, self.seed, imp, imp))
        } else {
            device
        };
        let device: Box<dyn Device + Send> = match &self.pcap {
            Some(path) => {
                let kind = if medium == Medium::Ip {
                    LinkKind::Ip
                } else {
                    LinkKind::Ethernet
                };
                let sink = PcapSink::create(path, kind)
                    .map_err(|e| format!("cannot write pcap file {}: {e}", path.display()))?;
                Box::new(Captured::new(device, sink))
            }
            None => device,
        };
        let mac = EthernetAddress([0x02, 0x75, 0x73, 0x74, 0x6b, 0x01]);
        // The kernel is also the way to anywhere off the link.
        let cfg = StackConfig::new(medium, self.addr)
            .with_mtu(mtu)
            .with_seed(self.seed)
            .with_mac(mac)
            .with_gateway(self.kernel_addr.address());
        let stack = Stack::new(cfg).map_err(|e| e.to_string())?;
        let trace = match &self.trace {
            Some(path) => Some(ustack::trace::TraceWriter::create(path)?),
            None => None,
        };
        let rt = Runtime::new(stack, device, Clock::new(), mode)
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        if let Some(w) = trace {
            rt.trace_to(Box::new(w.into_inner()), &self.addr.address().to_string());
        }
        Ok(rt)
    }
}

/// Why a device would not open, and what to do about it.
fn open_error(kind: &str, name: &str, e: &std::io::Error) -> LinkError {
    let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
        "; is another ustack running on it? Stop it or choose another name"
    } else {
        ""
    };
    format!("cannot open {kind} device {name}: {e}{hint}")
}
