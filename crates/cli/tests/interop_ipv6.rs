//! IPv6 against the kernel over TUN and TAP, in a namespace of the test's
//! own: the kernel's `ping -6` reaches ustack (also with fragmented
//! echoes), ustack pings the kernel, neighbour discovery works both ways
//! over TAP, and a UDP datagram over IPv6 to a port no ustack socket
//! holds is refused.

mod common;

use common::*;
use std::time::Duration;

/// fd00:231:N::/64, the kernel ::1 and ustack ::2.
fn v6(lab: &Lab, host: u8) -> String {
    format!("fd00:231:{}::{host}", lab.subnet)
}

/// `ustack` with the lab's link and the IPv6 addresses.
fn ustack6(lab: &Lab, args: &[&str]) -> std::process::Command {
    let (us, kernel) = (format!("{}/64", v6(lab, 2)), format!("{}/64", v6(lab, 1)));
    let mut a = vec!["--addr6", us.as_str(), "--kernel-addr6", kernel.as_str()];
    a.extend_from_slice(args);
    lab.ustack(&a)
}

fn kernel_pings_ustack(tap: bool, tag: &str, subnet: u8) {
    let Some(mut lab) = Lab::new(tag, subnet, &["ping"]) else {
        return;
    };
    lab.tap = tap;
    let cmd = ustack6(&lab, &["--stats", "serve", "echo", "--port", "7"]);
    let _server = lab.serve(cmd);
    let mut ping = lab.cmd("ping");
    ping.args(["-6", "-c", "3", "-i", "0.2", "-W", "2", "-n", &v6(&lab, 2)]);
    let out = run(ping, None, Duration::from_secs(15));
    assert_success(&out, "ping -6");
    let t = text(&out.stdout);
    assert!(t.contains("3 packets transmitted, 3 received"), "{t}");
    assert!(t.contains(&format!("from {}", v6(&lab, 2))), "{t}");
    // 3000 bytes: the kernel fragments the request, ustack reassembles it
    // and fragments its reply (RFC 8200 §4.5) for the kernel to reassemble.
    let mut ping = lab.cmd("ping");
    ping.args([
        "-6",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "2",
        "-n",
        "-s",
        "3000",
        &v6(&lab, 2),
    ]);
    let out = run(ping, None, Duration::from_secs(15));
    assert_success(&out, "ping -6 -s 3000");
    let t = text(&out.stdout);
    assert!(t.contains("2 packets transmitted, 2 received"), "{t}");
    assert!(t.contains("3008 bytes from"), "{t}");
    if tap {
        // The kernel resolved ustack with a solicitation ustack answered.
        let mut neigh = lab.cmd("ip");
        neigh.args(["-6", "neigh", "show", &v6(&lab, 2), "dev", IFNAME]);
        let out = run(neigh, None, Duration::from_secs(5));
        let n = text(&out.stdout);
        assert!(
            n.contains("lladdr 02:75:73:74:6b:01") && n.contains("REACHABLE"),
            "{n}"
        );
    }
}

#[test]
fn kernel_ping6_reaches_ustack_over_tun() {
    kernel_pings_ustack(false, "p6tun", 40);
}

#[test]
fn kernel_ping6_reaches_ustack_over_tap() {
    // The kernel resolves ustack with Neighbor Solicitations (RFC 4861):
    // ustack's advertisement is what lets the echo through.
    kernel_pings_ustack(true, "p6tap", 41);
}

fn ustack_pings_the_kernel(tap: bool, tag: &str, subnet: u8) {
    let Some(mut lab) = Lab::new(tag, subnet, &[]) else {
        return;
    };
    lab.tap = tap;
    let kernel = v6(&lab, 1);
    // Half a second apart: a solicitation sent while the kernel's side is
    // still coming up is repeated after RetransTimer (1 s, RFC 4861 §10),
    // so the first request may be late; the later ones are not.
    let cmd = ustack6(&lab, &["ping", &kernel, "-c", "5", "-i", "0.5"]);
    let out = run(cmd, None, Duration::from_secs(20));
    let t = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{t}\n{}", text(&out.stderr));
    assert!(t.contains("5 packets transmitted"), "{t}");
    for seq in 3..=5 {
        assert!(t.contains(&format!("from {kernel}: icmp_seq={seq}")), "{t}");
    }
}

#[test]
fn ustack_pings_the_kernel_over_ipv6_tun() {
    ustack_pings_the_kernel(false, "u6tun", 42);
}

#[test]
fn ustack_pings_the_kernel_over_ipv6_tap() {
    // ustack resolves the kernel with its own solicitations first.
    ustack_pings_the_kernel(true, "u6tap", 44);
}

#[test]
fn udp_to_ustack_over_ipv6_is_refused() {
    let Some(mut lab) = Lab::new("u6ref", 43, &["python3"]) else {
        return;
    };
    let cmd = ustack6(&lab, &["serve", "echo", "--port", "7"]);
    let _server = lab.serve(cmd);
    // A connected UDP socket sees the ICMPv6 port unreachable as ECONNREFUSED.
    let py = "import socket,sys\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.settimeout(3)\ns.connect((sys.argv[1],9))\ns.send(b'x')\ntry:\n  s.recv(10); print('answered')\nexcept ConnectionRefusedError: print('refused')\nexcept socket.timeout: print('timeout')";
    let mut c = lab.cmd("python3");
    c.args(["-c", py, &v6(&lab, 2)]);
    let out = run(c, None, Duration::from_secs(15));
    assert_eq!(text(&out.stdout).trim(), "refused", "{}", text(&out.stderr));
}
