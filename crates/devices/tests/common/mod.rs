//! A lab for interop tests: a fresh network namespace holding a TUN or TAP
//! interface whose kernel side is 10.200.N.1/24, with a ustack stack at
//! 10.200.N.2/24 on the other end of the device, driven in real time.
//!
//! Each test uses its own N (distinct subnets) and its own namespace
//! (`ustack-t-<pid>-<n>`), removed by a Drop guard even when the test
//! panics. Without root, /dev/net/tun or a needed tool the tests print
//! SKIPPED and pass, unless USTACK_REQUIRE_TOOLS=1 (CI) makes them fail.
#![allow(dead_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ustack_core::{Medium, SocketHandle, Stack, StackConfig};
use ustack_devices::{Device, Driver, KernelIf, NetNs, Tap, Tun, TunOptions};

/// The interface name inside each lab's namespace (namespaces keep names apart).
pub const IFNAME: &str = "ust0";
/// Our MAC on TAP links.
pub const OUR_MAC: [u8; 6] = [0x02, 0x55, 0x53, 0x54, 0x00, 0x02];

#[allow(unused_imports)]
pub use ustack_testkit::{assert_success, say_skipped, skip, text};

/// Whether the lab can run here with `tools` (besides `ip`) on PATH.
pub fn lab_available(tools: &[&str]) -> bool {
    ustack_testkit::lab_available(
        tools,
        "apt-get install iproute2 iputils-ping python3 tshark",
    )
}

fn unique_ns_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "ustack-t-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A namespace, a device into it, and a stack on the device. Fields drop
/// in order: the driver (closing the device) before the namespace.
pub struct Lab<D: Device> {
    pub driver: Driver<D>,
    pub stack: Stack,
    pub ns: NetNs,
    /// The kernel's address on the link.
    pub kernel_ip: Ipv4Addr,
    /// Ours.
    pub our_ip: Ipv4Addr,
}

/// A lab on subnet 10.200.`subnet`.0/24, or None (after SKIPPED) when the
/// machine cannot host it.
pub fn lab<D: Device>(
    subnet: u8,
    medium: Medium,
    tools: &[&str],
    open: impl FnOnce(&TunOptions) -> io::Result<D>,
) -> Option<Lab<D>> {
    if !lab_available(tools) {
        return None;
    }
    ustack_testkit::remove_stale_namespaces("ustack-t-");
    let ns = match NetNs::create(&unique_ns_name()) {
        Ok(ns) => ns,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            skip(&format!("cannot create a network namespace: {e}"));
            return None;
        }
        Err(e) => panic!("creating a network namespace: {e}"),
    };
    let opts = TunOptions::new(IFNAME).mtu(1500).netns(ns.path());
    let device = open(&opts).unwrap_or_else(|e| panic!("opening {IFNAME} in {}: {e}", ns.name()));
    let kernel_ip = Ipv4Addr::new(10, 200, subnet, 1);
    let our_ip = Ipv4Addr::new(10, 200, subnet, 2);
    KernelIf::new(IFNAME, format!("{kernel_ip}/24").parse().unwrap())
        .mtu(1500)
        .apply(Some(&ns))
        .unwrap_or_else(|e| panic!("configuring the kernel side: {e}"));
    let cfg = StackConfig::new(medium, format!("{our_ip}/24").parse().unwrap())
        .with_seed(u64::from(subnet))
        .with_mac(ustack_core::wire::EthernetAddress(OUR_MAC))
        .with_mtu(device.mtu())
        .with_tso(device.offloads().tso());
    let stack = Stack::new(cfg).unwrap();
    Some(Lab {
        driver: Driver::new(device),
        stack,
        ns,
        kernel_ip,
        our_ip,
    })
}

pub fn tun_lab(subnet: u8, tools: &[&str]) -> Option<Lab<Tun>> {
    lab(subnet, Medium::Ip, tools, |o| o.open_tun())
}

pub fn tap_lab(subnet: u8, tools: &[&str]) -> Option<Lab<Tap>> {
    lab(subnet, Medium::Ethernet, tools, |o| o.open_tap())
}

/// A TUN lab with the kernel's offloads (virtio-net header, TSO/GSO).
pub fn tun_lab_offload(subnet: u8, tools: &[&str]) -> Option<Lab<Tun>> {
    lab(subnet, Medium::Ip, tools, |o| {
        o.clone().offload(true).open_tun()
    })
}

/// A TAP lab with the kernel's offloads.
pub fn tap_lab_offload(subnet: u8, tools: &[&str]) -> Option<Lab<Tap>> {
    lab(subnet, Medium::Ethernet, tools, |o| {
        o.clone().offload(true).open_tap()
    })
}

impl<D: Device> Lab<D> {
    /// Runs `cmd` (built with `self.ns.command`) while driving the stack,
    /// calling `app` each turn; kills it after `timeout`. Returns its output.
    pub fn drive_while(
        &mut self,
        mut cmd: Command,
        timeout: Duration,
        mut app: impl FnMut(&mut Stack),
    ) -> Output {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let finished = self
            .driver
            .run_until(&mut self.stack, timeout, |s| {
                app(s);
                child.try_wait().expect("try_wait").is_some()
            })
            .expect("driver");
        if !finished {
            let _ = child.kill();
        }
        let out = child.wait_with_output().expect("wait for child");
        assert!(
            finished,
            "{cmd:?} still running after {timeout:?}; stdout: {}; stderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs the stack until `done`, failing after `timeout`.
    pub fn drive_until(&mut self, timeout: Duration, done: impl FnMut(&mut Stack) -> bool) {
        let ok = self
            .driver
            .run_until(&mut self.stack, timeout, done)
            .expect("driver");
        assert!(ok, "condition not reached within {timeout:?}");
    }

    /// A python3 one-shot run in the namespace.
    pub fn python(&self, script: &str, args: &[String]) -> Command {
        let mut cmd = self.ns.command("python3");
        cmd.arg("-c").arg(script).args(args);
        cmd
    }
}

/// Echoes every datagram waiting on `sock` back to its sender.
pub fn udp_echo(stack: &mut Stack, sock: SocketHandle) {
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _, from)) = stack.udp_recv_from(sock, &mut buf) {
        stack
            .udp_send_to(sock, &buf[..n], Some(from))
            .expect("echo send");
    }
}

/// A UDP echo socket bound on port 7.
pub fn udp_echo_socket(stack: &mut Stack) -> SocketHandle {
    let s = stack.udp_open();
    stack
        .udp_bind(s, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7))
        .unwrap();
    s
}
