//! ICMP echo between the Linux kernel and ustack over TUN and TAP, each test
//! in its own network namespace (see common/mod.rs).

mod common;

use std::time::Duration;

use common::*;
use ustack_core::time::Duration as CoreDuration;
use ustack_core::Stack;
use ustack_devices::{Device, Impaired, Impairments};

/// `ping -c 3` from the kernel's namespace to ustack; every request answered.
fn kernel_pings<D: Device>(lab: &mut Lab<D>) -> String {
    let mut cmd = lab.ns.command("ping");
    cmd.args(["-c", "3", "-i", "0.2", "-W", "1", "-n"])
        .arg(lab.our_ip.to_string());
    let out = lab.drive_while(cmd, Duration::from_secs(15), |_| {});
    assert_success(&out, "ping");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("3 packets transmitted, 3 received"),
        "{stdout}"
    );
    stdout
}

/// ustack sends three echo requests to the kernel and gets three replies.
fn ustack_pings<D: Device>(lab: &mut Lab<D>) {
    let sock = lab.stack.icmp_open();
    let payload: Vec<u8> = (0..56u8).collect();
    let mut replies = Vec::new();
    for seq in 1..=3u16 {
        lab.stack
            .icmp_send_echo(sock, lab.kernel_ip, seq, &payload)
            .unwrap();
        lab.drive_until(Duration::from_secs(5), |s: &mut Stack| {
            while let Ok(r) = s.icmp_recv(sock) {
                replies.push(r);
            }
            replies.iter().any(|r| r.seq_no == seq)
        });
    }
    assert_eq!(replies.len(), 3, "{replies:?}");
    for (r, seq) in replies.iter().zip(1..) {
        assert_eq!(r.from, lab.kernel_ip);
        assert_eq!(r.seq_no, seq);
        assert_eq!(r.data, payload, "the kernel echoes the data back");
    }
    let c = lab.stack.counters();
    assert_eq!(c.icmp.out_echos, 3);
    assert_eq!(c.icmp.in_echo_reps, 3);
}

#[test]
fn kernel_pings_ustack_over_tun() {
    let Some(mut lab) = tun_lab(1, &["ping"]) else {
        return;
    };
    kernel_pings(&mut lab);
    let c = lab.stack.counters();
    assert_eq!(c.icmp.in_echos, 3);
    assert_eq!(c.icmp.out_echo_reps, 3);
    assert_eq!(c.ip.in_hdr_errors, 0, "IPv6 is off on the kernel side");
}

#[test]
fn kernel_pings_ustack_over_tap_with_arp() {
    let Some(mut lab) = tap_lab(2, &["ping"]) else {
        return;
    };
    kernel_pings(&mut lab);
    let c = lab.stack.counters();
    assert_eq!(c.icmp.out_echo_reps, 3);
    assert!(
        c.arp.rx_requests >= 1 && c.arp.tx_replies >= 1,
        "the kernel resolved us: {:?}",
        c.arp
    );
    // The kernel's neighbour table holds our MAC.
    let neigh = lab.ns.ip(["neigh", "show", "dev", IFNAME]).unwrap();
    assert!(
        neigh.contains(&lab.our_ip.to_string()) && neigh.contains("02:55:53:54:00:02"),
        "{neigh}"
    );
}

#[test]
fn ustack_pings_kernel_over_tun() {
    let Some(mut lab) = tun_lab(3, &[]) else {
        return;
    };
    ustack_pings(&mut lab);
}

#[test]
fn ustack_pings_kernel_over_tap_with_arp() {
    let Some(mut lab) = tap_lab(4, &[]) else {
        return;
    };
    ustack_pings(&mut lab);
    let c = lab.stack.counters();
    assert!(
        c.arp.tx_requests >= 1 && c.arp.rx_replies >= 1,
        "we resolved the kernel: {:?}",
        c.arp
    );
    let now = lab.driver.now();
    let kernel_mac = lab.ns.ip(["link", "show", "dev", IFNAME]).unwrap();
    let learned = lab.stack.arp_entries(now);
    assert_eq!(learned.len(), 1, "{learned:?}");
    assert_eq!(learned[0].0, lab.kernel_ip);
    assert!(
        kernel_mac.contains(&learned[0].1.to_string()),
        "learned {} but the link says {kernel_mac}",
        learned[0].1
    );
}

/// The Impaired wrapper works in real time: 40 ms each way shows in the
/// kernel's round-trip times, and nothing is lost.
#[test]
fn impaired_tun_delays_the_kernels_pings() {
    let Some(lab) = tun_lab(5, &["ping"]) else {
        return;
    };
    let delay = Impairments::none().with_delay(CoreDuration::from_millis(40));
    let Lab {
        driver,
        stack,
        ns,
        kernel_ip,
        our_ip,
    } = lab;
    let clock = driver.clock();
    let device = Impaired::new(driver.into_device(), 9, delay, delay);
    let mut lab = Lab {
        driver: ustack_devices::Driver::with_clock(device, clock),
        stack,
        ns,
        kernel_ip,
        our_ip,
    };
    let stdout = kernel_pings(&mut lab);
    let rtt_line = stdout
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .unwrap_or_else(|| panic!("no rtt summary: {stdout}"));
    let min: f64 = rtt_line
        .split('=')
        .nth(1)
        .and_then(|v| v.trim().split('/').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse {rtt_line:?}"));
    assert!(min >= 79.0, "40 ms each way, yet rtt min {min} ms");
    let dev = lab.driver.device();
    assert_eq!(dev.rx_stats().delivered, 3, "{:?}", dev.rx_stats());
    assert_eq!(dev.tx_stats().delivered, 3, "{:?}", dev.tx_stats());
}
