//! UDP between Linux kernel sockets (python3) and ustack over TUN and TAP,
//! each test in its own network namespace (see common/mod.rs).

mod common;

use std::net::SocketAddrV4;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use ustack_core::Stack;
use ustack_devices::Device;

/// Sends datagrams of `sizes` to HOST:PORT one at a time and checks each
/// comes back byte for byte from the same address.
const ECHO_CLIENT: &str = r#"
import os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
sizes = [int(x) for x in sys.argv[3].split(",")]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for i, size in enumerate(sizes):
    data = os.urandom(size)
    s.sendto(data, (host, port))
    got, addr = s.recvfrom(65535)
    if addr != (host, port):
        sys.exit("datagram %d: reply from %r" % (i, addr))
    if got != data:
        sys.exit("datagram %d: sent %d bytes, got %d back, differing" % (i, size, len(got)))
print("echoed", len(sizes))
"#;

/// A connected socket sends to a closed port; the ICMP port unreachable
/// must surface as ECONNREFUSED on the next receive.
const CLOSED_PORT_CLIENT: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"anyone there?")
try:
    s.recv(100)
    sys.exit("got a reply from a closed port")
except ConnectionRefusedError:
    print("ECONNREFUSED")
except socket.timeout:
    sys.exit("timed out: no ICMP port unreachable")
"#;

/// Echoes datagrams on ADDR:PORT until idle for 5 s.
const ECHO_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(5)
while True:
    try:
        d, a = s.recvfrom(65535)
    except socket.timeout:
        break
    s.sendto(d, a)
"#;

fn kernel_echoes_through_ustack<D: Device>(lab: &mut Lab<D>, sizes: &[usize]) {
    let sock = udp_echo_socket(&mut lab.stack);
    let list = sizes
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let cmd = lab.python(ECHO_CLIENT, &[lab.our_ip.to_string(), "7".into(), list]);
    let out = lab.drive_while(cmd, Duration::from_secs(20), |s: &mut Stack| {
        udp_echo(s, sock)
    });
    assert_success(&out, "python echo client");
    assert!(
        text(&out.stdout).contains(&format!("echoed {}", sizes.len())),
        "{}",
        text(&out.stdout)
    );
    let c = lab.stack.counters();
    assert_eq!(c.udp.in_datagrams, sizes.len() as u64, "{:?}", c.udp);
    assert_eq!(c.udp.in_csum_errors, 0);
}

#[test]
fn kernel_udp_echo_over_tun() {
    let Some(mut lab) = tun_lab(11, &["python3"]) else {
        return;
    };
    // Empty, odd, and the largest unfragmented payload at MTU 1500.
    kernel_echoes_through_ustack(&mut lab, &[0, 1, 7, 100, 513, 1000, 1471, 1472]);
    assert_eq!(lab.stack.counters().ip.frag_oks, 0);
}

#[test]
fn kernel_udp_echo_over_tap() {
    let Some(mut lab) = tap_lab(12, &["python3"]) else {
        return;
    };
    kernel_echoes_through_ustack(&mut lab, &[0, 1, 64, 1472]);
}

#[test]
fn kernel_gets_econnrefused_from_a_closed_ustack_port() {
    let Some(mut lab) = tun_lab(13, &["python3"]) else {
        return;
    };
    let cmd = lab.python(CLOSED_PORT_CLIENT, &[lab.our_ip.to_string(), "9".into()]);
    let out = lab.drive_while(cmd, Duration::from_secs(10), |_| {});
    assert_success(&out, "python closed-port client");
    assert!(text(&out.stdout).contains("ECONNREFUSED"));
    let c = lab.stack.counters();
    assert_eq!(c.udp.no_ports, 1);
    assert_eq!(c.icmp.out_dest_unreachs, 1);
}

/// 20 KB from the kernel: it fragments, we reassemble; our echo: we
/// fragment, the kernel reassembles.
#[test]
fn fragmented_20k_datagram_each_way_over_tun() {
    let Some(mut lab) = tun_lab(14, &["python3"]) else {
        return;
    };
    kernel_echoes_through_ustack(&mut lab, &[20_000, 20_001]);
    let ip = lab.stack.counters().ip;
    assert_eq!(ip.reasm_oks, 2, "{ip:?}");
    assert_eq!(ip.frag_oks, 2, "{ip:?}");
    // 20 008 bytes of UDP in 1480-byte fragments: 14 each.
    assert_eq!(ip.frag_creates, 28, "{ip:?}");
    assert_eq!(lab.stack.reassembly_bytes(), 0);
}

#[test]
fn fragmented_20k_datagram_each_way_over_tap() {
    let Some(mut lab) = tap_lab(15, &["python3"]) else {
        return;
    };
    kernel_echoes_through_ustack(&mut lab, &[20_000]);
    let ip = lab.stack.counters().ip;
    assert_eq!((ip.reasm_oks, ip.frag_oks), (1, 1), "{ip:?}");
}

/// ustack is the client: datagrams up to 20 KB to a kernel echo server.
#[test]
fn ustack_udp_to_kernel_echo_server() {
    let Some(mut lab) = tun_lab(16, &["python3"]) else {
        return;
    };
    let server = SocketAddrV4::new(lab.kernel_ip, 7007);
    let mut child = lab
        .python(
            ECHO_SERVER,
            &[lab.kernel_ip.to_string(), server.port().to_string()],
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn python echo server");
    let sock = lab.stack.udp_open();
    lab.stack.udp_connect(sock, server).unwrap();
    let mut buf = vec![0u8; 65536];
    for (i, size) in [1usize, 1472, 20_000].into_iter().enumerate() {
        let data: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
        let start = Instant::now();
        let mut sent_at: Option<Instant> = None;
        let mut got = None;
        // Resend every 300 ms: the server may not be bound yet.
        lab.drive_until(Duration::from_secs(10), |s: &mut Stack| {
            if let Ok((n, full, from)) = s.udp_recv_from(sock, &mut buf) {
                got = Some((buf[..n].to_vec(), full, from));
                return true;
            }
            if sent_at.is_none_or(|t| t.elapsed() > Duration::from_millis(300)) {
                // ECONNREFUSED from a not-yet-bound server is expected here.
                let _ = s.udp_send_to(sock, &data, None);
                sent_at = Some(Instant::now());
            }
            false
        });
        let (reply, full, from) = got.unwrap();
        assert_eq!(from, server.into());
        assert_eq!(full, size);
        assert!(
            reply == data,
            "datagram {i} ({size} bytes) came back altered"
        );
        assert!(start.elapsed() < Duration::from_secs(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    let ip = lab.stack.counters().ip;
    assert!(ip.frag_oks >= 1 && ip.reasm_oks >= 1, "{ip:?}");
}
