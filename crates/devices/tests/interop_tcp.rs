//! TCP between Linux kernel sockets (python3) and ustack over TUN and TAP,
//! each test in its own network namespace (see common/mod.rs): both
//! directions of a transfer, refused connections, and resets.

mod common;

use std::net::SocketAddrV4;
use std::time::Duration;

use common::*;
use ustack_core::{Errno, Shutdown, SocketHandle, Stack, TcpState};
use ustack_devices::Device;

/// Connects to HOST:PORT, sends N pattern bytes, half-closes, reads the
/// echo to EOF and checks it.
const KERNEL_CLIENT: &str = r#"
import socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = bytes((i * 7 + i // 251) % 256 for i in range(n))
s = socket.create_connection((host, port), timeout=20)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
if bytes(got) != data:
    sys.exit("echo differs: sent %d, got %d" % (n, len(got)))
print("echoed", n)
"#;

/// Listens on PORT, reads one connection to EOF, answers "<bytes> <sum>".
const KERNEL_SERVER: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
s.settimeout(20)
c, _ = s.accept()
c.settimeout(20)
n, total = 0, 0
while True:
    d = c.recv(65536)
    if not d:
        break
    n += len(d)
    total = (total + sum(d)) % (1 << 32)
c.sendall(("%d %d" % (n, total)).encode())
c.close()
print("served", n)
"#;

/// Connects to HOST:PORT and expects ECONNREFUSED.
const REFUSED_CLIENT: &str = r#"
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    sys.exit("connected to a closed port")
except ConnectionRefusedError:
    print("ECONNREFUSED")
"#;

/// Connects, sends a few bytes, then aborts with SO_LINGER 0 (RST).
const RESETTING_CLIENT: &str = r#"
import socket, struct, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"bye")
time.sleep(0.3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
print("reset")
"#;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + i / 251) % 256) as u8).collect()
}

/// Our echo server on port 80: echoes everything, closes after the peer's FIN.
struct Echo {
    listener: SocketHandle,
    conn: Option<SocketHandle>,
    pending: Vec<u8>,
    eof: bool,
    done: bool,
    echoed: usize,
}

impl Echo {
    fn new(stack: &mut Stack) -> Echo {
        let l = stack.tcp_open();
        stack
            .tcp_bind(l, SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 80))
            .unwrap();
        stack.tcp_listen(l, 4).unwrap();
        Echo {
            listener: l,
            conn: None,
            pending: Vec::new(),
            eof: false,
            done: false,
            echoed: 0,
        }
    }

    fn run(&mut self, stack: &mut Stack, now: ustack_core::Instant) {
        if self.conn.is_none() {
            self.conn = stack.tcp_accept(self.listener).ok().map(|(h, _)| h);
        }
        let Some(c) = self.conn else { return };
        let mut buf = vec![0u8; 65536];
        while !self.eof && self.pending.len() < 1 << 20 {
            match stack.tcp_recv(c, &mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        while !self.pending.is_empty() {
            match stack.tcp_send(now, c, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                    self.echoed += n;
                }
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        if self.eof && self.pending.is_empty() && !self.done {
            stack.close(c).unwrap();
            self.done = true;
        }
    }
}

fn kernel_client_echo<D: Device>(lab: &mut Lab<D>, n: usize) {
    let mut echo = Echo::new(&mut lab.stack);
    let clock = lab.driver.clock();
    let cmd = lab.python(
        KERNEL_CLIENT,
        &[lab.our_ip.to_string(), "80".into(), n.to_string()],
    );
    let out = lab.drive_while(cmd, Duration::from_secs(30), |s| echo.run(s, clock.now()));
    assert_success(&out, "python TCP client");
    assert!(text(&out.stdout).contains(&format!("echoed {n}")));
    assert_eq!(echo.echoed, n);
    let t = lab.stack.counters().tcp;
    assert_eq!(
        (t.passive_opens, t.in_csum_errors, t.in_errs),
        (1, 0, 0),
        "{t:?}"
    );
}

#[test]
fn kernel_client_echo_over_tun() {
    let Some(mut lab) = tun_lab(31, &["python3"]) else {
        return;
    };
    kernel_client_echo(&mut lab, 2 << 20);
}

#[test]
fn kernel_client_echo_over_tap() {
    let Some(mut lab) = tap_lab(32, &["python3"]) else {
        return;
    };
    kernel_client_echo(&mut lab, 300_000);
}

fn ustack_client_to_kernel_server<D: Device>(lab: &mut Lab<D>, n: usize) {
    let data = pattern(n);
    let want_sum = data
        .iter()
        .fold(0u64, |a, &b| (a + u64::from(b)) % (1 << 32));
    let server = SocketAddrV4::new(lab.kernel_ip, 8080);
    let clock = lab.driver.clock();
    let cmd = lab.python(KERNEL_SERVER, &["8080".into()]);
    let mut c: Option<SocketHandle> = None;
    let mut sent = 0;
    let mut reply = Vec::new();
    let mut shut = false;
    let out = lab.drive_while(cmd, Duration::from_secs(30), |s| {
        let now = clock.now();
        let h = match c {
            Some(h) => h,
            None => {
                let h = s.tcp_open();
                let _ = s.tcp_connect(now, h, server);
                c = Some(h);
                h
            }
        };
        match s.tcp_state(h) {
            Ok(TcpState::Closed) => {
                // The server was not listening yet: try again.
                let _ = s.take_error(h);
                s.close(h).unwrap();
                c = None;
                return;
            }
            Ok(TcpState::SynSent) => return,
            _ => {}
        }
        while sent < data.len() {
            match s.tcp_send(now, h, &data[sent..]) {
                Ok(k) => sent += k,
                Err(Errno::EAGAIN) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        if sent == data.len() && !shut {
            s.tcp_shutdown(now, h, Shutdown::Write).unwrap();
            shut = true;
        }
        let mut buf = [0u8; 256];
        while let Ok(k) = s.tcp_recv(h, &mut buf) {
            if k == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..k]);
        }
    });
    assert_success(&out, "python TCP server");
    // The server has exited; its reply may still need a retransmission.
    let h = c.expect("connected");
    lab.drive_until(Duration::from_secs(10), |s| {
        let mut buf = [0u8; 256];
        loop {
            match s.tcp_recv(h, &mut buf) {
                Ok(0) => return true,
                Ok(k) => reply.extend_from_slice(&buf[..k]),
                Err(_) => return false,
            }
        }
    });
    assert_eq!(text(&reply), format!("{n} {want_sum}"));
    let t = lab.stack.counters().tcp;
    assert_eq!((t.in_csum_errors, t.in_errs), (0, 0), "{t:?}");
}

#[test]
fn ustack_client_to_kernel_server_over_tun() {
    let Some(mut lab) = tun_lab(33, &["python3"]) else {
        return;
    };
    ustack_client_to_kernel_server(&mut lab, 2 << 20);
}

#[test]
fn ustack_client_to_kernel_server_over_tap() {
    let Some(mut lab) = tap_lab(34, &["python3"]) else {
        return;
    };
    ustack_client_to_kernel_server(&mut lab, 300_000);
}

#[test]
fn refused_both_ways_over_tun() {
    let Some(mut lab) = tun_lab(35, &["python3"]) else {
        return;
    };
    // The kernel connects to a closed ustack port: our RST refuses it.
    let cmd = lab.python(REFUSED_CLIENT, &[lab.our_ip.to_string(), "81".into()]);
    let out = lab.drive_while(cmd, Duration::from_secs(10), |_| {});
    assert_success(&out, "python refused client");
    assert_eq!(lab.stack.counters().tcp.out_rsts, 1);
    // We connect to a closed kernel port: its RST refuses us.
    let h = lab.stack.tcp_open();
    let now = lab.driver.now();
    let _ = lab
        .stack
        .tcp_connect(now, h, SocketAddrV4::new(lab.kernel_ip, 9));
    lab.drive_until(Duration::from_secs(5), |s| {
        s.tcp_state(h) == Ok(TcpState::Closed)
    });
    assert_eq!(lab.stack.take_error(h), Ok(Some(Errno::ECONNREFUSED)));
}

#[test]
fn kernel_reset_gives_econnreset_over_tun() {
    let Some(mut lab) = tun_lab(36, &["python3"]) else {
        return;
    };
    let l = lab.stack.tcp_open();
    lab.stack
        .tcp_bind(l, SocketAddrV4::new(lab.our_ip, 80))
        .unwrap();
    lab.stack.tcp_listen(l, 1).unwrap();
    let cmd = lab.python(RESETTING_CLIENT, &[lab.our_ip.to_string(), "80".into()]);
    let mut conn = None;
    let out = lab.drive_while(cmd, Duration::from_secs(10), |s| {
        if conn.is_none() {
            conn = s.tcp_accept(l).ok().map(|(h, _)| h);
        }
    });
    assert_success(&out, "python resetting client");
    let c = conn.expect("accepted");
    lab.drive_until(Duration::from_secs(2), |s| {
        s.tcp_state(c) == Ok(TcpState::Closed)
    });
    let mut buf = [0u8; 8];
    assert_eq!(lab.stack.tcp_recv(c, &mut buf), Err(Errno::ECONNRESET));
    assert_eq!(
        lab.stack.tcp_recv(c, &mut buf),
        Ok(3),
        "the data before the RST"
    );
    assert_eq!(&buf[..3], b"bye");
    assert_eq!(lab.stack.counters().tcp.estab_resets, 1);
}

/// A TUN lab whose device loses `loss` of the frames each way, with 2 ms delay.
fn lossy_lab(subnet: u8, loss: f64) -> Option<Lab<ustack_devices::Impaired<ustack_devices::Tun>>> {
    let lab = tun_lab(subnet, &["python3"])?;
    let imp =
        ustack_devices::Impairments::lossy(loss).with_delay(ustack_core::Duration::from_millis(2));
    let Lab {
        driver,
        stack,
        ns,
        kernel_ip,
        our_ip,
    } = lab;
    let clock = driver.clock();
    let device = ustack_devices::Impaired::new(driver.into_device(), u64::from(subnet), imp, imp);
    Some(Lab {
        driver: ustack_devices::Driver::with_clock(device, clock),
        stack,
        ns,
        kernel_ip,
        our_ip,
    })
}

#[test]
fn both_directions_survive_loss_against_the_kernel() {
    let Some(mut lab) = lossy_lab(37, 0.02) else {
        return;
    };
    kernel_client_echo(&mut lab, 256 << 10);
    ustack_client_to_kernel_server(&mut lab, 256 << 10);
    let dev = lab.driver.device();
    assert!(
        dev.tx_stats().dropped_loss + dev.rx_stats().dropped_loss > 0,
        "frames were lost"
    );
    assert!(lab.stack.counters().tcp.retrans_segs > 0);
}

/// With offloads: the kernel's data arrives as GSO super-packets, ours
/// leaves as TSO super-segments; every byte intact both ways.
fn offloads_were_used<D: Device>(lab: &Lab<D>, tx: bool) {
    let d = lab.driver.device().stats();
    let o = lab.driver.device().offloads();
    assert!(o.tso(), "offloads negotiated: {o}");
    assert!(d.rx_gso_frames > 0, "super-packets received: {d:?}");
    assert!(d.rx_csum_offloaded > 0, "{d:?}");
    assert_eq!(d.rx_bad_vnet_hdr, 0, "{d:?}");
    // The device vouched for those checksums and the stack took its word
    // (the partial ones were left partial: verified, they would be lost).
    let link = lab.stack.counters().link;
    assert_eq!(link.rx_csum_trusted, d.rx_csum_offloaded, "{link:?}");
    if tx {
        assert!(d.tx_gso_frames > 0, "super-segments sent: {d:?}");
        assert!(lab.stack.counters().tcp.tso_sends > 0);
    }
}

#[test]
fn kernel_client_echo_over_tun_with_offloads() {
    let Some(mut lab) = tun_lab_offload(40, &["python3"]) else {
        return;
    };
    kernel_client_echo(&mut lab, 2 << 20);
    offloads_were_used(&lab, true);
}

#[test]
fn kernel_client_echo_over_tap_with_offloads() {
    let Some(mut lab) = tap_lab_offload(41, &["python3"]) else {
        return;
    };
    kernel_client_echo(&mut lab, 2 << 20);
    offloads_were_used(&lab, true);
}

#[test]
fn ustack_client_to_kernel_server_over_tun_with_offloads() {
    let Some(mut lab) = tun_lab_offload(42, &["python3"]) else {
        return;
    };

    ustack_client_to_kernel_server(&mut lab, 8 << 20);
    let d = lab.driver.device().stats();
    assert!(d.tx_gso_frames > 0, "super-segments sent: {d:?}");
}
