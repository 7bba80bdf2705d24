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
    /// Seed of the stack's random choices (ISNs, ephemeral ports, timestamp
    /// offsets): the same seed makes the same choices. Without it a device's
    /// stack is seeded from the OS's randomness; `demo` uses 1.
    #[arg(long, global = true, value_name = "N")]
    pub seed: Option<u64>,
}

/// A one-line reason the link could not be set up.
pub type LinkError = String;

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
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
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
        let (addr, kernel_addr) = (self.addr(), self.kernel_addr());
        if !kernel_addr.contains_addr(&addr.address()) || kernel_addr.address() == addr.address() {
            return Err(format!(
                "--addr {addr} and --kernel-addr {kernel_addr} must be different addresses on the same subnet"
            ));
        }
        let seed = self.seed()?;
        let mtu = self.mtu.unwrap_or(1500) as usize;
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
            .is_ok_and(|out| out.contains(&format!("inet {kernel_addr} ")));
        if configured {
            ip(["link", "set", "dev", name.as_str(), "up"])
                .map_err(|e| format!("cannot bring {name} up: {e}"))?;
        } else {
            check_clash(&name, addr, kernel_addr)?;
            KernelIf::new(&name, kernel_addr)
                .mtu(mtu)
                .apply(None)
                .map_err(|e| format!("cannot configure the kernel side of {name}: {e}"))?;
        }
        check_route(&name, addr)?;
        let imp = Impairments::none()
            .with_loss(self.loss.unwrap_or(0.0))
            .with_reorder(self.reorder.unwrap_or(0.0), Duration::from_millis(5))
            .with_delay(Duration::from_millis(self.delay.unwrap_or(0)));
        let impaired = self.loss.is_some_and(|p| p > 0.0)
            || self.reorder.is_some_and(|p| p > 0.0)
            || self.delay.is_some_and(|d| d > 0);
        let device: Box<dyn Device + Send> = if impaired {
            Box::new(Impaired::new(device, seed, imp, imp))
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
        let cfg = StackConfig::new(medium, addr)
            .with_mtu(mtu)
            .with_seed(seed)
            .with_mac(mac)
            .with_gateway(kernel_addr.address());
        let stack = Stack::new(cfg).map_err(|e| e.to_string())?;
        Runtime::new(stack, device, Clock::new(), mode)
            .map_err(|e| format!("cannot start the runtime: {e}"))
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

/// The fix for a clash with interface `other` holding `cidr`.
fn clash_fix(other: &str, cidr: &str) -> String {
    format!(
        "remove it (`ip addr del {cidr} dev {other}`, or `ip link delete {other}` if it is a \
         leftover device) or put ustack on another subnet with --addr and --kernel-addr"
    )
}

/// Refuses addresses that another interface already has, or a subnet that
/// overlaps another interface's: the kernel would then send ustack's
/// packets elsewhere (or keep them), and every ping would be lost unseen.
fn check_clash(name: &str, addr: Ipv4Cidr, kernel_addr: Ipv4Cidr) -> Result<(), LinkError> {
    let Ok(list) = ip(["-o", "-4", "addr", "show"]) else {
        return Ok(());
    };
    for line in list.lines() {
        let mut f = line.split_whitespace();
        let (Some(other), Some("inet"), Some(cidr)) = (f.nth(1), f.next(), f.next()) else {
            continue;
        };
        let Ok(c) = cidr.parse::<Ipv4Cidr>() else {
            continue;
        };
        if other == name {
            continue;
        }
        let why = if c.address() == kernel_addr.address() {
            format!(
                "the kernel address {} is already on interface {other} ({cidr})",
                kernel_addr.address()
            )
        } else if c.address() == addr.address() {
            format!("ustack's address {} is already on interface {other} ({cidr}), so the kernel keeps packets for it", addr.address())
        } else if c.contains_addr(&addr.address()) || kernel_addr.contains_addr(&c.address()) {
            format!("interface {other} has {cidr}, on the same subnet as {kernel_addr}, so the kernel may route ustack's packets through {other}")
        } else {
            continue;
        };
        return Err(format!("{why}; {}", clash_fix(other, cidr)));
    }
    Ok(())
}

/// Checks that the kernel now routes ustack's address through `name`.
fn check_route(name: &str, addr: Ipv4Cidr) -> Result<(), LinkError> {
    let a = addr.address().to_string();
    let Ok(route) = ip(["-o", "-4", "route", "get", a.as_str()]) else {
        return Ok(());
    };
    let mut words = route.split_whitespace();
    let dev = words.by_ref().skip_while(|w| *w != "dev").nth(1);
    match dev {
        Some(d) if d != name => Err(format!(
            "the kernel routes {a} through {d}, not {name}: another route covers the subnet \
             (see `ip route show`); delete it (`ip route del ... dev {d}`) or put ustack on \
             another subnet with --addr and --kernel-addr"
        )),
        _ => Ok(()),
    }
}
