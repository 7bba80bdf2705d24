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
        say_skipped("interop tests need root, /dev/net/tun and iproute2");
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
        text.contains("Arp:\n    1 reply received\n"),
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

#[test]
fn an_address_clash_with_another_interface_is_named_with_its_fix() {
    if !can_run() {
        return;
    }
    let ns = ns("clash");
    // Another device (a leftover TUN) already holds the kernel's address.
    ns.ip(["tuntap", "add", "dev", "clash0", "mode", "tun"])
        .unwrap();
    ns.ip(["addr", "add", "10.230.9.1/24", "dev", "clash0"])
        .unwrap();
    ns.ip(["link", "set", "clash0", "up"]).unwrap();
    let link = [
        "--tun",
        "ustk9",
        "--addr",
        "10.230.9.2/24",
        "--kernel-addr",
        "10.230.9.1/24",
    ];
    let ping = |extra: &[&str]| {
        let mut args = link.to_vec();
        args.extend(extra);
        args.extend(["ping", "10.230.9.1", "-c", "1", "-i", "0.2"]);
        let out = ustack_in(&ns, &args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = ping(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "the kernel address 10.230.9.1 is already on interface clash0 (10.230.9.1/24); \
             remove it (`ip addr del 10.230.9.1/24 dev clash0`, or `ip link delete clash0` \
             if it is a leftover device) or put ustack on another subnet with --addr and --kernel-addr"
        ),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // Another address on the same subnet: the kernel may route there.
    ns.ip(["addr", "flush", "dev", "clash0"]).unwrap();
    ns.ip(["addr", "add", "10.230.9.7/24", "dev", "clash0"])
        .unwrap();
    let (code, err) = ping(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("interface clash0 has 10.230.9.7/24, on the same subnet as 10.230.9.1/24"),
        "{err}"
    );
    // ustack's own address on another interface: the kernel keeps its packets.
    ns.ip(["addr", "flush", "dev", "clash0"]).unwrap();
    ns.ip(["addr", "add", "10.230.9.2/32", "dev", "clash0"])
        .unwrap();
    let (code, err) = ping(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("ustack's address 10.230.9.2 is already on interface clash0"),
        "{err}"
    );
    // A route alone (no address) that takes the subnet elsewhere.
    ns.ip(["addr", "flush", "dev", "clash0"]).unwrap();
    ns.ip(["route", "add", "10.230.9.0/25", "dev", "clash0"])
        .unwrap();
    let (code, err) = ping(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("the kernel routes 10.230.9.2 through clash0, not ustk9"),
        "{err}"
    );
    // With the clash gone, the same command works.
    ns.ip(["link", "delete", "clash0"]).unwrap();
    let (code, err) = ping(&[]);
    assert_eq!(code, Some(0), "{err}");
}

use ustack_testkit::say_skipped;
