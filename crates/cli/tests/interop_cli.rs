//! The `ustack` command on a real TUN device, against the Linux kernel, in a
//! network namespace of its own. Needs root and /dev/net/tun: without them
//! the tests print SKIPPED, unless USTACK_REQUIRE_TOOLS=1 makes that a failure.

use std::path::Path;
use std::process::{Command, Output};
use ustack_devices::NetNs;

fn can_run() -> bool {
    // Root: the effective uid, read from /proc.
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    let ok =
        root && Path::new("/dev/net/tun").exists() && Command::new("ip").arg("-V").output().is_ok();
    if !ok {
        if std::env::var("USTACK_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("interop tests need root, /dev/net/tun and iproute2 (USTACK_REQUIRE_TOOLS=1)");
        }
        eprintln!("SKIPPED: interop tests need root, /dev/net/tun and iproute2");
    }
    ok
}

fn ns(tag: &str) -> NetNs {
    NetNs::create(&format!("ustack-cli-{}-{tag}", std::process::id()))
        .expect("create a network namespace")
}

fn ustack_in(ns: &NetNs, args: &[&str]) -> Output {
    let out = ns
        .command(env!("CARGO_BIN_EXE_ustack"))
        .args(args)
        .output()
        .expect("run ustack");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn ping_the_kernel_over_tun_with_stats() {
    if !can_run() {
        return;
    }
    let ns = ns("ping");
    let out = ustack_in(
        &ns,
        &[
            "--tun",
            "ustk0",
            "--addr",
            "10.230.1.2/24",
            "--kernel-addr",
            "10.230.1.1/24",
            "--stats",
            "ping",
            "10.230.1.1",
            "-c",
            "3",
            "-i",
            "0.1",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{text}"
    );
    assert!(text.contains("icmp_seq=3"), "{text}");
    assert!(
        text.contains("Icmp:") && text.contains("3 echo replies received"),
        "--stats: {text}"
    );
}

#[test]
fn ping_over_tap_resolves_the_kernel_with_arp() {
    if !can_run() {
        return;
    }
    let ns = ns("tap");
    let out = ustack_in(
        &ns,
        &[
            "--tap",
            "ustk1",
            "--addr",
            "10.230.2.2/24",
            "--kernel-addr",
            "10.230.2.1/24",
            "--stats",
            "ping",
            "10.230.2.1",
            "-c",
            "2",
            "-i",
            "0.1",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("2 received"), "{text}");
    assert!(
        text.contains("    1 replies received\n"),
        "one ARP reply from the kernel: {text}"
    );
}

#[test]
fn errors_are_one_line_and_exit_2() {
    if !can_run() {
        return;
    }
    let ns = ns("err");
    // Not root: a clear message, no panic.
    let out = ns
        .command("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_ustack"),
        ])
        .args(["--tun", "ustk2", "ping", "10.200.0.1", "-c", "1"])
        .output()
        .expect("run setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("root or CAP_NET_ADMIN"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"));
    // Addresses that cannot work together.
    let out = ustack_in(
        &ns,
        &[
            "--tun",
            "ustk3",
            "--addr",
            "10.1.0.2/24",
            "--kernel-addr",
            "10.2.0.1/24",
            "ping",
            "10.2.0.1",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("same subnet"), "{err}");
}

#[test]
fn delay_in_the_device_layer_shows_in_the_rtt() {
    if !can_run() {
        return;
    }
    let ns = ns("delay");
    let out = ustack_in(
        &ns,
        &[
            "--tun",
            "ustk4",
            "--addr",
            "10.230.4.2/24",
            "--kernel-addr",
            "10.230.4.1/24",
            "--delay",
            "20",
            "--reorder",
            "0.5",
            "ping",
            "10.230.4.1",
            "-c",
            "3",
            "-i",
            "0.2",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let min: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("rtt min/avg/max/mdev = "))
        .and_then(|v| v.split('/').next())
        .and_then(|v| v.parse().ok())
        .expect("an rtt line");
    assert!(min >= 40.0, "20 ms each way: rtt min {min} ms");
}
