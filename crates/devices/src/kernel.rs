//! Setting up the kernel's side of a TUN/TAP link with `ip` (iproute2):
//! network namespaces, addresses, MTU, link state.
//!
//! Each helper runs one `ip` command and, when it fails, returns an error
//! that quotes the command and its stderr.

use std::ffi::OsStr;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Output};

use ustack_core::wire::Ipv4Cidr;

/// Where `ip netns` keeps its namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Runs `ip ARGS...` and returns its stdout; a failure quotes the command
/// line and its stderr.
pub fn ip<I, S>(args: I) -> io::Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run(&mut cmd)
}

/// Runs `cmd`, returning its stdout, or an error with its stderr.
pub fn run(cmd: &mut Command) -> io::Result<String> {
    let line = format!("{cmd:?}").replace('"', "");
    // Kernel-side setup runs on the kernel's stack, even when called from
    // inside the preload library (`ip` must not load it again).
    cmd.env_remove("LD_PRELOAD");
    let out: Output = cmd.output().map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::NotFound {
            " (is iproute2 installed? apt-get install iproute2)"
        } else {
            ""
        };
        io::Error::new(e.kind(), format!("cannot run `{line}`: {e}{hint}"))
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let kind = if stderr.contains("Operation not permitted") {
            io::ErrorKind::PermissionDenied
        } else if stderr.contains("File exists") {
            io::ErrorKind::AlreadyExists
        } else {
            io::ErrorKind::Other
        };
        return Err(io::Error::new(
            kind,
            format!("`{line}` failed ({}): {}", out.status, stderr.trim()),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A named network namespace (`ip netns add`), deleted when dropped.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates namespace `name` and brings its loopback up.
    pub fn create(name: &str) -> io::Result<NetNs> {
        ip(["netns", "add", name])?;
        let ns = NetNs {
            name: name.to_owned(),
        };
        ns.ip(["link", "set", "dev", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file, for [`TunOptions::netns`](crate::TunOptions::netns).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// Runs `ip -n NAME ARGS...` (iproute2 inside the namespace).
    pub fn ip<I, S>(&self, args: I) -> io::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.arg("-n").arg(&self.name).args(args);
        run(&mut cmd)
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec"]).arg(&self.name).arg(program);
        cmd
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = ip(["netns", "delete", &self.name]) {
            eprintln!(
                "ustack: could not remove network namespace {}: {e}",
                self.name
            );
        }
    }
}

/// The transmit ring [`KernelIf::new`] asks for: room for a 4 MiB window of
/// full-sized segments (at MTU 1500), like a NIC ring of a few thousand
/// descriptors, so a kernel sender with a large window is not cut down by
/// drops at the TUN while ustack catches up.
pub const DEFAULT_TXQUEUELEN: u32 = 4096;

/// The kernel's side of a TUN/TAP interface.
#[derive(Debug, Clone)]
pub struct KernelIf {
    /// Interface name.
    pub name: String,
    /// The kernel's address and prefix on the link, e.g. `10.200.1.1/24`.
    pub addr: Ipv4Cidr,
    /// IP MTU; `None` leaves the kernel's (1500).
    pub mtu: Option<usize>,
    /// Length of the kernel's transmit ring toward us, in packets; `None`
    /// leaves the kernel's (500 for TUN/TAP). A TUN drops what does not fit
    /// (it has no qdisc back-pressure), so a window larger than the ring
    /// overflows it whenever we fall behind for a moment; see
    /// [`DEFAULT_TXQUEUELEN`].
    pub txqueuelen: Option<u32>,
    /// GRO flush timeout in nanoseconds (`/sys/class/net/NAME/gro_flush_timeout`);
    /// `None` leaves the kernel's (0: GRO flushes at the end of every NAPI
    /// poll). With a TUN opened with [`crate::TunOptions::napi`], every
    /// write(2) is one NAPI poll, so only a non-zero timeout lets GRO merge
    /// the segments of consecutive writes.
    pub gro_flush_timeout: Option<u64>,
    /// Turn IPv6 off on the interface, so the kernel sends no router
    /// solicitations or MLD reports into an IPv4-only stack.
    pub disable_ipv6: bool,
}

impl KernelIf {
    pub fn new(name: &str, addr: Ipv4Cidr) -> Self {
        KernelIf {
            name: name.to_owned(),
            addr,
            mtu: None,
            txqueuelen: Some(DEFAULT_TXQUEUELEN),
            gro_flush_timeout: None,
            disable_ipv6: true,
        }
    }

    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = Some(mtu);
        self
    }

    pub fn gro_flush_timeout(mut self, ns: Option<u64>) -> Self {
        self.gro_flush_timeout = ns;
        self
    }

    pub fn txqueuelen(mut self, len: Option<u32>) -> Self {
        self.txqueuelen = len;
        self
    }

    /// Configures the interface in `netns` (or the current namespace):
    /// IPv6 off (if asked), MTU, transmit ring, address, then up.
    pub fn apply(&self, netns: Option<&NetNs>) -> io::Result<()> {
        let ipn = |args: &[&str]| match netns {
            Some(ns) => ns.ip(args),
            None => ip(args),
        };
        if self.disable_ipv6 {
            let key = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", self.name);
            // /proc/sys/net shows the namespace of whoever opens it.
            let mut cmd = match netns {
                Some(ns) => ns.command("sh"),
                None => Command::new("sh"),
            };
            cmd.args(["-c", &format!("[ ! -e {key} ] || echo 1 > {key}")]);
            run(&mut cmd)?;
        }
        if let Some(mtu) = self.mtu {
            ipn(&["link", "set", "dev", &self.name, "mtu", &mtu.to_string()])?;
        }
        if let Some(ns) = self.gro_flush_timeout {
            // `ip netns exec` mounts the namespace's own /sys.
            let key = format!("/sys/class/net/{}/gro_flush_timeout", self.name);
            let mut cmd = match netns {
                Some(n) => n.command("sh"),
                None => Command::new("sh"),
            };
            cmd.args(["-c", &format!("echo {ns} > {key}")]);
            run(&mut cmd)?;
        }
        if let Some(len) = self.txqueuelen {
            ipn(&[
                "link",
                "set",
                "dev",
                &self.name,
                "txqueuelen",
                &len.to_string(),
            ])?;
        }
        ipn(&["addr", "add", &self.addr.to_string(), "dev", &self.name])?;
        ipn(&["link", "set", "dev", &self.name, "up"])?;
        Ok(())
    }
}
