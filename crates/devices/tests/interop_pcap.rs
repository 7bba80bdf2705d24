//! A capture of a real session with the kernel (pings both ways, UDP echo
//! with fragmented datagrams, a port unreachable) is read back by tshark:
//! nothing malformed, every IPv4/ICMP/UDP checksum good.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use ustack_core::Stack;
use ustack_devices::{Device, LinkKind, PcapSink};

const SESSION_CLIENT: &str = r#"
import os, socket, sys
host = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for size in (5, 1472, 20000):
    data = os.urandom(size)
    s.sendto(data, (host, 7))
    got, _ = s.recvfrom(65535)
    assert got == data, size
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(3)
c.connect((host, 9))
c.send(b"closed?")
try:
    c.recv(10)
    sys.exit("no port unreachable")
except ConnectionRefusedError:
    print("done")
"#;

fn temp_pcap(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ustack-interop-{}-{name}.pcap", std::process::id()))
}

/// Runs the session on `lab` while capturing to `path`.
fn capture_session<D: Device>(lab: &mut Lab<D>, path: &Path, kind: LinkKind) {
    lab.driver
        .set_capture(Some(PcapSink::create(path, kind).unwrap()));
    // The kernel pings us.
    let mut ping = lab.ns.command("ping");
    ping.args(["-c", "2", "-i", "0.2", "-W", "1", "-n", "-s", "100"])
        .arg(lab.our_ip.to_string());
    let out = lab.drive_while(ping, Duration::from_secs(10), |_| {});
    assert_success(&out, "ping");
    // We ping the kernel.
    let icmp = lab.stack.icmp_open();
    lab.stack
        .icmp_send_echo(icmp, lab.kernel_ip, 1, b"ustack ping")
        .unwrap();
    lab.drive_until(Duration::from_secs(5), |s: &mut Stack| {
        s.icmp_recv(icmp).is_ok()
    });
    // UDP echo, a fragmented datagram each way, and a closed port.
    let sock = udp_echo_socket(&mut lab.stack);
    let cmd = lab.python(SESSION_CLIENT, &[lab.our_ip.to_string()]);
    let out = lab.drive_while(cmd, Duration::from_secs(15), |s: &mut Stack| {
        udp_echo(s, sock)
    });
    assert_success(&out, "python session client");
    let mut cap = lab.driver.take_capture().unwrap();
    cap.flush().unwrap();
    let d = lab.driver.stats();
    assert_eq!(cap.frames(), d.rx_frames + d.tx_frames);
}

/// tshark's verdict, one tab-separated row per frame.
fn tshark_rows(path: &Path) -> Vec<Vec<String>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-o", "ip.check_checksum:TRUE"])
        .args(["-o", "udp.check_checksum:TRUE"])
        .args(["-T", "fields", "-E", "occurrence=a", "-E", "separator=\t"])
        .args(["-e", "frame.number", "-e", "frame.protocols"])
        .args(["-e", "ip.checksum.status", "-e", "icmp.checksum.status"])
        .args(["-e", "udp.checksum.status", "-e", "_ws.malformed"])
        .args(["-e", "_ws.expert.severity", "-e", "_ws.expert.message"])
        .args(["-e", "ip.fragment.count"])
        .output()
        .expect("run tshark");
    assert_success(&out, "tshark");
    text(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

fn check_capture(path: &Path) -> Vec<Vec<String>> {
    let rows = tshark_rows(path);
    let dump = rows
        .iter()
        .map(|r| r.join(" | "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!rows.is_empty());
    for r in &rows {
        let (protocols, ip_ck, icmp_ck, udp_ck, malformed) = (&r[1], &r[2], &r[3], &r[4], &r[5]);
        assert!(
            malformed.is_empty() && !protocols.contains("malformed"),
            "{dump}"
        );
        // Wireshark's checksum status: 1 = good, 0 = bad, 2 = not checked.
        for ck in [ip_ck, icmp_ck, udp_ck] {
            assert!(
                ck.split(',').all(|v| v.is_empty() || v == "1"),
                "frame {}: bad checksum\n{dump}",
                r[0]
            );
        }
        // Expert info above "note" (warnings, errors) is a finding.
        let severity: Vec<u32> = r[6].split(',').filter_map(|v| v.parse().ok()).collect();
        assert!(
            severity.iter().all(|&s| s <= 0x0040_0000),
            "frame {}: {}\n{dump}",
            r[0],
            r[7]
        );
    }
    let count = |proto: &str| rows.iter().filter(|r| r[1].contains(proto)).count();
    assert!(
        count("icmp") >= 7,
        "pings both ways and an unreachable\n{dump}"
    );
    assert!(count("udp") >= 8, "\n{dump}");
    // Each 20 000-byte datagram went as 14 fragments, and tshark put
    // them back together into one good UDP datagram.
    let reassembled: Vec<&Vec<String>> = rows.iter().filter(|r| r[8] == "14").collect();
    assert_eq!(reassembled.len(), 2, "\n{dump}");
    assert!(
        reassembled
            .iter()
            .all(|r| r[1].contains("udp") && r[4] == "1"),
        "\n{dump}"
    );
    rows
}

#[test]
fn tshark_reads_a_tun_session_cleanly() {
    let Some(mut lab) = tun_lab(21, &["ping", "python3", "tshark"]) else {
        return;
    };
    let path = temp_pcap("tun");
    capture_session(&mut lab, &path, LinkKind::Ip);
    let rows = check_capture(&path);
    let _ = std::fs::remove_file(&path);
    assert!(rows.iter().all(|r| r[1].starts_with("raw:ip")), "{rows:?}");
}

#[test]
fn tshark_reads_a_tap_session_cleanly() {
    let Some(mut lab) = tap_lab(22, &["ping", "python3", "tshark"]) else {
        return;
    };
    let path = temp_pcap("tap");
    capture_session(&mut lab, &path, LinkKind::Ethernet);
    let rows = check_capture(&path);
    let _ = std::fs::remove_file(&path);
    assert!(rows.iter().any(|r| r[1].contains("arp")), "{rows:?}");
}
