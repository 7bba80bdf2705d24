//! `--pcap` of a real session (the kernel pings ustack and fetches pages
//! with curl from `ustack serve http`), read back by tshark: no malformed
//! frames, every IPv4, TCP and ICMP checksum good.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn tshark_reads_a_serve_http_capture_cleanly() {
    capture_read_cleanly("off", 31);
}

/// With TSO the capture holds super-segments (one TCP segment of up to
/// 64 KiB each, checksum completed in the copy written): still no
/// malformed frame, every checksum good.
#[test]
fn tshark_reads_a_capture_with_tso_super_segments_cleanly() {
    capture_read_cleanly("on", 32);
}

fn capture_read_cleanly(offload: &str, subnet: u8) {
    let Some(mut lab) = Lab::new(
        if offload == "on" { "pcap-tso" } else { "pcap" },
        subnet,
        &["curl", "ping", "tshark"],
    ) else {
        return;
    };
    std::fs::create_dir_all(lab.dir.join("www")).unwrap();
    lab.random_file("www/page.bin", 300_000, 31);
    std::fs::write(lab.dir.join("www/index.html"), "<h1>ustack</h1>\n").unwrap();
    let pcap = lab.dir.join("session.pcap");
    let root = lab.dir.join("www");
    let cmd = lab.ustack(&[
        "--offload",
        offload,
        "--pcap",
        pcap.to_str().unwrap(),
        "serve",
        "http",
        "--root",
        root.to_str().unwrap(),
        "--port",
        "80",
    ]);
    let server = lab.serve(cmd);
    let mut ping = lab.cmd("ping");
    ping.args(["-c", "2", "-i", "0.2", "-W", "2", "-n", &lab.our_ip()]);
    assert_success(&run(ping, None, Duration::from_secs(10)), "ping");
    let base = format!("http://{}", lab.our_ip());
    let mut curl = lab.cmd("curl");
    curl.args([
        "-sS",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
    ])
    .args([
        format!("{base}/"),
        format!("{base}/page.bin"),
        format!("{base}/missing"),
    ]);
    assert_success(&run(curl, None, Duration::from_secs(20)), "curl");
    server.signal("TERM");
    assert_eq!(
        lab.wait_exit(&server, Duration::from_secs(10)).code(),
        Some(0)
    );

    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-o", "ip.check_checksum:TRUE"])
        .args(["-o", "tcp.check_checksum:TRUE"])
        .args(["-T", "fields", "-E", "occurrence=a", "-E", "separator=\t"])
        .args(["-e", "frame.number", "-e", "frame.protocols"])
        .args(["-e", "ip.checksum.status", "-e", "tcp.checksum.status"])
        .args(["-e", "icmp.checksum.status", "-e", "_ws.malformed"])
        .args(["-e", "_ws.expert.severity", "-e", "_ws.expert.message"])
        .args(["-e", "http.response.code", "-e", "frame.len"])
        .output()
        .expect("run tshark");
    assert_success(&out, "tshark");
    let dump = text(&out.stdout);
    let rows: Vec<Vec<&str>> = dump.lines().map(|l| l.split('\t').collect()).collect();
    let big = rows
        .iter()
        .filter(|r| r[9].parse::<usize>().unwrap_or(0) > 1500)
        .count();
    if offload == "on" {
        assert!(big > 0, "super-segments in the capture\n{dump}");
        assert!(rows.len() > 20, "{} frames\n{dump}", rows.len());
    } else {
        assert_eq!(big, 0, "{dump}");
        assert!(rows.len() > 200, "{} frames\n{dump}", rows.len());
    }
    for r in &rows {
        assert!(r[1].starts_with("raw:ip"), "frame {}: {}", r[0], r[1]);
        assert!(r[5].is_empty() && !r[1].contains("malformed"), "{dump}");
        // Wireshark's checksum status: 1 good, 0 bad, 2 unverified.
        for ck in &r[2..5] {
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
    let count = |p: &str| rows.iter().filter(|r| r[1].contains(p)).count();
    assert!(count("icmp") >= 4, "{dump}");
    assert!(
        count("tcp") > if offload == "on" { 20 } else { 200 },
        "{dump}"
    );
    let codes: Vec<&str> = rows
        .iter()
        .map(|r| r[8])
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(codes, ["200", "200", "404"], "{dump}");
}
