//! The link a program runs on: a TUN or TAP device whose kernel side gets
//! an address, with optional impairments and capture, driven by a runtime
//! in thread mode. The `ustack` command's link flags and the preload
//! library's `USTACK_*` variables both fill a [`LinkConfig`].

use crate::{Mode, Runtime, RuntimeGroup};
use std::path::PathBuf;
use ustack_core::wire::{EthernetAddress, Ipv4Cidr, Ipv6Cidr};
use ustack_core::Duration;
use ustack_core::{Medium, Stack, StackConfig};
use ustack_devices::kernel::ip;
use ustack_devices::{
    Captured, Clock, Device, Impaired, Impairments, KernelIf, LinkKind, PcapSink, TunOptions,
};

/// Where and how to put the stack on a link (the CLI's link flags).
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Create (or attach to) a TUN device with this name (IP packets).
    pub tun: Option<String>,
    /// Create (or attach to) a TAP device with this name (Ethernet, ARP).
    pub tap: Option<String>,
    /// ustack's address on the link.
    pub addr: Ipv4Cidr,
    /// The kernel's address on the link (set on the device, brought up).
    pub kernel_addr: Ipv4Cidr,
    pub mtu: u32,
    /// Fraction of frames dropped in each direction.
    pub loss: Option<f64>,
    /// Fraction of frames held back 5 ms in each direction.
    pub reorder: Option<f64>,
    /// One-way delay in milliseconds.
    pub delay: Option<u64>,
    /// Capture every frame to this pcap file.
    pub pcap: Option<PathBuf>,
    /// A router hop of this MTU in ustack's device layer, both ways: DF
    /// packets over it are answered with ICMP Fragmentation Needed (IPv6:
    /// Packet Too Big) and dropped (RFC 1191 §4). Turns offloads off.
    pub hop_mtu: Option<u32>,
    /// The hop drops those packets without answering (an ICMP black hole).
    pub hop_blackhole: bool,
    /// TCP black-hole detection, RFC 4821 (`TcpConfig::mtu_probing`).
    pub mtu_probing: bool,
    /// Seed of the stack's random choices.
    pub seed: u64,
    /// Use the TUN/TAP's offloads (virtio-net header, TSO/GSO, checksums)
    /// as far as the kernel accepts them; `false` for plain frames.
    pub offload: bool,
    /// ustack's IPv6 address on the link (besides its link-local one).
    pub addr6: Option<Ipv6Cidr>,
    /// The kernel's IPv6 address on the link, added with `nodad`.
    pub kernel_addr6: Option<Ipv6Cidr>,
    /// Put the device's kernel side in this network namespace (an `ip
    /// netns` name); the stack and its program stay in the current one.
    pub netns: Option<String>,
}

/// A one-line reason the link could not be set up.
pub type LinkError = String;

impl LinkConfig {
    /// Opens the device, configures the kernel side, and starts a runtime
    /// with a stack thread.
    pub fn start(&self, what: &str) -> Result<Runtime, LinkError> {
        self.start_with(what, Mode::Thread)
    }

    /// Like [`start`](Self::start), the runtime in `mode` (servers on tokio
    /// use [`Mode::External`] and drive it from their reactor).
    pub fn start_with(&self, what: &str, mode: Mode) -> Result<Runtime, LinkError> {
        self.start_tweaked(what, mode, |c| c)
    }

    /// Like [`start_with`](Self::start_with), the stack's configuration
    /// adjusted by `tweak` (`forward` turns transparent mode on).
    pub fn start_tweaked(
        &self,
        what: &str,
        mode: Mode,
        tweak: impl FnOnce(StackConfig) -> StackConfig,
    ) -> Result<Runtime, LinkError> {
        let (mut devices, cfg) = self.open(what, 1)?;
        let device = devices.pop().ok_or("no device")?;
        let stack = Stack::new(tweak(cfg)).map_err(|e| e.to_string())?;
        Runtime::new(stack, device, Clock::new(), mode)
            .map_err(|e| format!("cannot start the runtime: {e}"))
    }

    /// A runtime group of `queues` stacks on `queues` queues of one
    /// multiqueue TUN (`IFF_MULTI_QUEUE`), each stack thread pinned to a
    /// core where allowed (see [`RuntimeGroup`]). One queue is a plain TUN.
    pub fn start_group(
        &self,
        what: &str,
        mode: Mode,
        queues: usize,
        tweak: impl FnOnce(StackConfig) -> StackConfig,
    ) -> Result<RuntimeGroup, LinkError> {
        let (devices, cfg) = self.open(what, queues)?;
        RuntimeGroup::new(tweak(cfg), devices, Clock::new(), mode, true)
            .map_err(|e| format!("cannot start the runtimes: {e}"))
    }

    /// Opens `queues` queues of the device, configures the kernel side;
    /// returns them (wrapped in the impairments and capture asked for) and
    /// the stack's configuration.
    fn open(
        &self,
        what: &str,
        queues: usize,
    ) -> Result<(Vec<Box<dyn Device + Send>>, StackConfig), LinkError> {
        let queues = queues.max(1);
        if queues > 1 && self.tun.is_none() {
            return Err(format!(
                "{what}: more than one queue needs --tun (a multiqueue TUN); TAP takes one"
            ));
        }
        if queues > 1 && self.pcap.is_some() {
            return Err(format!(
                "{what}: --pcap captures one queue; use it with one queue"
            ));
        }
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
        // A hop judges frames whole: no super-packets either way.
        let offload = self.offload && self.hop_mtu.is_none();
        let mut opts = TunOptions::new(&name).mtu(mtu).offload(offload);
        if let Some(ns) = &self.netns {
            let path = std::path::Path::new("/run/netns").join(ns);
            if !path.exists() {
                return Err(format!(
                    "--netns {ns}: no such network namespace ({} is missing); create it with `ip netns add {ns}`",
                    path.display()
                ));
            }
            opts = opts.netns(path);
        }
        let devices: Vec<Box<dyn Device + Send>> = match medium {
            Medium::Ip => opts
                .open_tun_queues(queues)
                .map_err(|e| open_error("TUN", &name, &e))?
                .into_iter()
                .map(|t| Box::new(t) as Box<dyn Device + Send>)
                .collect(),
            Medium::Ethernet => vec![Box::new(
                opts.open_tap().map_err(|e| open_error("TAP", &name, &e))?,
            )],
        };
        // A persistent device (`ip tuntap add`) may have its address already,
        // and the kernel's servers be bound to it: then just bring it up.
        let configured = self
            .ip(&["-o", "-4", "addr", "show", "dev", name.as_str()])
            .is_ok_and(|out| out.contains(&format!("inet {} ", self.kernel_addr)));
        if configured {
            self.ip(&["link", "set", "dev", name.as_str(), "up"])
                .map_err(|e| format!("cannot bring {name} up: {e}"))?;
        } else if let Some(ns) = &self.netns {
            // A namespace of its own: no other interface there to clash with.
            let mtu = mtu.to_string();
            let kaddr = self.kernel_addr.to_string();
            for args in [
                &["link", "set", "dev", name.as_str(), "mtu", mtu.as_str()][..],
                &["addr", "add", kaddr.as_str(), "dev", name.as_str()],
                &["link", "set", "dev", name.as_str(), "up"],
            ] {
                self.ip(args).map_err(|e| {
                    format!("cannot configure the kernel side of {name} in namespace {ns}: {e}")
                })?;
            }
        } else {
            check_clash(&name, self.addr, self.kernel_addr)?;
            let mut kif = KernelIf::new(&name, self.kernel_addr).mtu(mtu);
            // IPv6 stays on when the link carries it.
            kif.disable_ipv6 = self.kernel_addr6.is_none();
            kif.apply(None)
                .map_err(|e| format!("cannot configure the kernel side of {name}: {e}"))?;
        }
        if let Some(a6) = self.kernel_addr6 {
            // `nodad`: no duplicate address detection wait (RFC 4862 §5.4)
            // before the kernel may use it; `replace` for a persistent device.
            let a6 = a6.to_string();
            self.ip(&[
                "-6",
                "addr",
                "replace",
                a6.as_str(),
                "dev",
                name.as_str(),
                "nodad",
            ])
            .map_err(|e| format!("cannot add {a6} to {name}: {e}"))?;
        }
        if self.netns.is_none() {
            check_route(&name, self.addr)?;
        }
        let mut imp = Impairments::none()
            .with_loss(self.loss.unwrap_or(0.0))
            .with_reorder(self.reorder.unwrap_or(0.0), Duration::from_millis(5))
            .with_delay(Duration::from_millis(self.delay.unwrap_or(0)));
        if let Some(n) = self.hop_mtu {
            imp = match self.hop_blackhole {
                false => imp.with_hop_mtu(n as usize),
                true => imp.with_blackhole_hop_mtu(n as usize),
            };
        }
        let impaired = self.loss.is_some_and(|p| p > 0.0)
            || self.reorder.is_some_and(|p| p > 0.0)
            || self.delay.is_some_and(|d| d > 0)
            || self.hop_mtu.is_some();
        tracing::info!(offloads = %devices[0].offloads(), queues, "device {name}");
        let mut wrapped: Vec<Box<dyn Device + Send>> = Vec::with_capacity(devices.len());
        for (i, device) in devices.into_iter().enumerate() {
            let device: Box<dyn Device + Send> = if impaired {
                Box::new(Impaired::new(device, self.seed ^ i as u64, imp, imp))
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
            wrapped.push(device);
        }
        let tso = wrapped.iter().all(|d| d.offloads().tso());
        let mac = EthernetAddress([0x02, 0x75, 0x73, 0x74, 0x6b, 0x01]);
        // The kernel is also the way to anywhere off the link.
        let mut cfg = StackConfig::new(medium, self.addr)
            .with_mtu(mtu)
            .with_seed(self.seed)
            .with_mac(mac)
            .with_gateway(self.kernel_addr.address())
            .with_tso(tso);
        cfg.addrs6.extend(self.addr6);
        cfg.tcp.mtu_probing = self.mtu_probing;
        Ok((wrapped, cfg))
    }
}
impl LinkConfig {
    /// Runs `ip ARGS` where the device's kernel side is (`netns`).
    pub fn ip(&self, args: &[&str]) -> std::io::Result<String> {
        ip_in(self.netns.as_deref(), args)
    }
}

/// Runs `ip ARGS` in network namespace `netns`, or in the current one.
pub fn ip_in(netns: Option<&str>, args: &[&str]) -> std::io::Result<String> {
    match netns {
        Some(ns) => ip(["-n", ns].iter().chain(args)),
        None => ip(args),
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
