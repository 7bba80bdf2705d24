//! Captures must be readable by tshark. Skips (loudly) without tshark,
//! unless USTACK_REQUIRE_TOOLS=1.

use std::path::{Path, PathBuf};
use std::process::Command;

use ustack_core::time::Instant;
use ustack_devices::{LinkKind, PcapSink};

fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        match odd.take() {
            Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
            None => odd = Some(b),
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4/UDP packet with correct checksums, optionally a wrong UDP one.
fn ipv4_udp(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
    bad: bool,
) -> Vec<u8> {
    let udp_len = (8 + payload.len()) as u16;
    let mut udp = Vec::with_capacity(udp_len as usize);
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    let mut c = internet_checksum(&[&pseudo, &udp]);
    if c == 0 {
        c = 0xffff;
    }
    if bad {
        c ^= 0x0101;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());

    let total = 20 + udp_len;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 17, 0, 0]); // id, DF, ttl, proto
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let hc = internet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&hc.to_be_bytes());
    assert_eq!(internet_checksum(&[&ip]), 0, "header checksum self-check");
    ip.extend_from_slice(&udp);
    ip
}

fn ethernet(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(ip);
    f
}

fn good_packets() -> Vec<Vec<u8>> {
    let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    vec![
        ipv4_udp(a, b, 40000, 7, b"hello", false), // odd length: checksum padding
        ipv4_udp(b, a, 7, 40000, b"hello!", false),
        ipv4_udp(a, b, 40001, 9, b"", false),
        ipv4_udp(a, b, 40002, 9, &[0xff; 1400], false),
    ]
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ustack-devices-{}-{name}.pcap", std::process::id()))
}

fn write_pcap(path: &Path, kind: LinkKind, frames: &[Vec<u8>]) {
    let mut sink = PcapSink::create(path, kind).unwrap();
    for (i, f) in frames.iter().enumerate() {
        sink.write(Instant::from_micros(1_000_000 + 1500 * i as u64), f)
            .unwrap();
    }
    sink.flush().unwrap();
    // Whatever tshark says, the file must parse back to the same frames.
    let file = std::fs::File::open(path).unwrap();
    let mut r = pcap_file::pcap::PcapReader::new(file).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet() {
        assert_eq!(p.unwrap().data[..], frames[n][..]);
        n += 1;
    }
    assert_eq!(n, frames.len());
}

fn tshark_available() -> bool {
    let ok = Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("USTACK_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("tshark not found on PATH and USTACK_REQUIRE_TOOLS=1");
        }
        say_skipped("tshark not on PATH; pcap files not checked by Wireshark's dissectors");
    }
    ok
}

/// One line per packet: frame number, ip.src, udp.dstport, ip/udp checksum status, expert info.
fn tshark_fields(path: &Path) -> (Vec<Vec<String>>, String) {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
        ])
        .args(["-T", "fields", "-E", "occurrence=a"])
        .args(["-e", "frame.number", "-e", "ip.src", "-e", "udp.dstport"])
        .args([
            "-e",
            "ip.checksum.status",
            "-e",
            "udp.checksum.status",
            "-e",
            "_ws.expert",
        ])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows = text
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    (rows, text)
}

/// Wireshark's checksum status: 1 = good, 0 = bad.
const GOOD: &str = "1";

#[test]
fn tshark_decodes_ip_and_ethernet_captures_cleanly() {
    if !tshark_available() {
        return;
    }
    let good = good_packets();
    for (kind, frames) in [
        (LinkKind::Ip, good.clone()),
        (
            LinkKind::Ethernet,
            good.iter().map(|p| ethernet(p)).collect(),
        ),
    ] {
        let path = temp_path(&format!("{kind:?}"));
        write_pcap(&path, kind, &frames);
        let (rows, text) = tshark_fields(&path);
        let _ = std::fs::remove_file(&path);
        assert!(!text.contains("Malformed"), "{kind:?}: {text}");
        assert_eq!(rows.len(), frames.len(), "{kind:?}: {text}");
        let dports = ["7", "40000", "9", "9"];
        for (row, dport) in rows.iter().zip(dports) {
            assert_eq!(
                row[1],
                if dport == "40000" {
                    "10.0.0.2"
                } else {
                    "10.0.0.1"
                },
                "{text}"
            );
            assert_eq!(row[2], dport, "{kind:?}: not decoded as IPv4/UDP: {text}");
            assert_eq!((row[3].as_str(), row[4].as_str()), (GOOD, GOOD), "{text}");
            assert_eq!(row[5], "", "expert info: {text}");
        }
    }
}

#[test]
fn tshark_check_catches_a_bad_checksum() {
    // The control: proves the check above can fail.
    if !tshark_available() {
        return;
    }
    let path = temp_path("bad");
    let frames = vec![ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, b"x", true)];
    write_pcap(&path, LinkKind::Ip, &frames);
    let (rows, text) = tshark_fields(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][3], GOOD, "{text}");
    assert_eq!(rows[0][4], "0", "{text}");
    assert!(text.contains("Bad checksum"), "{text}");
}

use ustack_testkit::say_skipped;
