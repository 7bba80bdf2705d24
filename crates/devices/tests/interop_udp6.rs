//! UDP over IPv6 between Linux kernel sockets (python3) and ustack over a
//! TUN, in a namespace of the test's own: the kernel's datagrams echoed
//! by ustack and ustack's echoed by the kernel, fragmented ones too
//! (RFC 8200 §4.5), checksums over the IPv6 pseudo-header (§8.1).

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use ustack_core::Stack;

/// Sends datagrams of `sizes` to [HOST]:PORT and checks each comes back
/// byte for byte from the same address.
const ECHO_CLIENT6: &str = r#"
import os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
sizes = [int(x) for x in sys.argv[3].split(",")]
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(3)
for i, size in enumerate(sizes):
    data = os.urandom(size)
    s.sendto(data, (host, port))
    got, addr = s.recvfrom(65535)
    if addr[:2] != (host, port):
        sys.exit("datagram %d: reply from %r" % (i, addr))
    if got != data:
        sys.exit("datagram %d: sent %d bytes, got %d back, differing" % (i, size, len(got)))
print("echoed", len(sizes))
"#;

/// Echoes datagrams on [ADDR]:PORT until idle for 5 s.
const ECHO_SERVER6: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(5)
while True:
    try:
        d, a = s.recvfrom(65535)
    except socket.timeout:
        break
    s.sendto(d, a)
"#;

fn kernel6(subnet: u8) -> Ipv6Addr {
    format!("fd00:233:{subnet}::1").parse().unwrap()
}

fn ours6(subnet: u8) -> Ipv6Addr {
    format!("fd00:233:{subnet}::2").parse().unwrap()
}

/// A TUN lab with IPv6 on both sides: the kernel's address without DAD
/// (`nodad`), ustack's stack rebuilt with its own.
fn lab6(subnet: u8) -> Option<Lab<ustack_devices::Tun>> {
    let mut lab = tun_lab(subnet, &["python3"])?;
    let sysctl = format!("echo 0 > /proc/sys/net/ipv6/conf/{IFNAME}/disable_ipv6");
    let ok = lab
        .ns
        .command("sh")
        .args(["-c", &sysctl])
        .status()
        .unwrap()
        .success();
    assert!(ok, "{sysctl}");
    let a6 = format!("{}/64", kernel6(subnet));
    lab.ns
        .ip(["-6", "addr", "add", a6.as_str(), "dev", IFNAME, "nodad"])
        .unwrap();
    let cfg = lab
        .stack
        .config()
        .clone()
        .with_addr6(format!("{}/64", ours6(subnet)).parse().unwrap());
    lab.stack = Stack::new(cfg).unwrap();
    Some(lab)
}

#[test]
fn kernel_udp6_datagrams_echoed_by_ustack_fragmented_too() {
    let Some(mut lab) = lab6(17) else {
        return;
    };
    let sock = lab.stack.udp_open();
    lab.stack
        .udp_bind(sock, SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 7))
        .unwrap();
    // Up to the largest unfragmented payload at MTU 1500 (1452), then
    // fragmented both ways.
    let sizes = "0,1,100,1452,1453,3000,20000";
    let cmd = lab.python(
        ECHO_CLIENT6,
        &[ours6(17).to_string(), "7".into(), sizes.into()],
    );
    let out = lab.drive_while(cmd, Duration::from_secs(20), |s: &mut Stack| {
        udp_echo(s, sock)
    });
    assert_success(&out, "python AF_INET6 echo client");
    assert!(
        text(&out.stdout).contains("echoed 7"),
        "{}",
        text(&out.stdout)
    );
    let c = lab.stack.counters();
    assert_eq!(c.udp.in_datagrams, 7, "{:?}", c.udp);
    assert_eq!(c.udp.in_csum_errors, 0);
    let v6 = lab.stack.ipv6_counters();
    assert!(v6.reasm_oks >= 3 && v6.frag_creates > 0, "{v6:?}");
}

#[test]
fn ustack_udp6_datagrams_echoed_by_the_kernel() {
    let Some(mut lab) = lab6(18) else {
        return;
    };
    let server = SocketAddr::new(IpAddr::V6(kernel6(18)), 7007);
    let mut child = lab
        .python(ECHO_SERVER6, &[kernel6(18).to_string(), "7007".into()])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn python echo server");
    let sock = lab.stack.udp_open();
    lab.stack.udp_connect(sock, server).unwrap();
    let mut buf = vec![0u8; 65536];
    for (i, size) in [1usize, 1452, 20_000].into_iter().enumerate() {
        let data: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
        let mut sent_at: Option<Instant> = None;
        let mut got = None;
        // Resend every 300 ms: the server may not be bound yet.
        lab.drive_until(Duration::from_secs(10), |s: &mut Stack| {
            if let Ok((n, _, from)) = s.udp_recv_from(sock, &mut buf) {
                got = Some((buf[..n].to_vec(), from));
                return true;
            }
            if sent_at.is_none_or(|t| t.elapsed() > Duration::from_millis(300)) {
                let _ = s.udp_send_to(sock, &data, None);
                sent_at = Some(Instant::now());
            }
            false
        });
        let (reply, from) = got.unwrap();
        assert_eq!(from, server);
        assert!(
            reply == data,
            "datagram {i} ({size} bytes) came back altered"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
