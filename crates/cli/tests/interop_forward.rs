//! `ustack forward` between two namespaces: the client's namespace has the
//! TUN's kernel side (`--netns`) and the routes into it; ustack, its relay
//! sockets and the servers (python3, on 198.18.0.1 on the loopback) are in
//! the lab's namespace. Kernel programs on both ends: curl, nc -N, python3
//! sockets, and a small python SOCKS5 server (CONNECT and UDP ASSOCIATE).

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use ustack_devices::NetNs;

const SERVER: &str = "198.18.0.1";

/// A threaded echo server that echoes until EOF, then shuts its write side.
const ECHO_PY: &str = r#"
import socket, socketserver, sys
class H(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(65536)
            if not d:
                break
            self.request.sendall(d)
        self.request.shutdown(socket.SHUT_WR)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024
S((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"#;

const UDP_ECHO_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    d, a = s.recvfrom(65535)
    s.sendto(b"echo:" + d, a)
"#;

/// RFC 1928 without authentication: CONNECT and UDP ASSOCIATE, IPv4.
const SOCKS5_PY: &str = r#"
import select, socket, socketserver, struct, sys, threading
def recvn(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
class H(socketserver.BaseRequestHandler):
    def handle(self):
        c = self.request
        ver, n = recvn(c, 2)
        recvn(c, n)
        c.sendall(b"\x05\x00")
        ver, cmd, _, atyp = recvn(c, 4)
        addr = socket.inet_ntoa(recvn(c, 4))
        port = struct.unpack(">H", recvn(c, 2))[0]
        if cmd == 1:
            try:
                r = socket.create_connection((addr, port), timeout=5)
            except ConnectionRefusedError:
                c.sendall(b"\x05\x05\x00\x01" + bytes(6))
                return
            c.sendall(b"\x05\x00\x00\x01" + bytes(6))
            t = threading.Thread(target=pipe, args=(r, c), daemon=True)
            t.start()
            pipe(c, r)
            t.join()
        elif cmd == 3:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", 0))
            o = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            c.sendall(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", u.getsockname()[1]))
            client = None
            while True:
                rd, _, _ = select.select([c, u, o], [], [], 60)
                if c in rd or not rd:
                    return
                if u in rd:
                    d, client = u.recvfrom(65535)
                    dst = (socket.inet_ntoa(d[4:8]), struct.unpack(">H", d[8:10])[0])
                    o.sendto(d[10:], dst)
                if o in rd:
                    d, src = o.recvfrom(65535)
                    if client:
                        u.sendto(b"\x00\x00\x00\x01" + socket.inet_aton(src[0]) + struct.pack(">H", src[1]) + d, client)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// 200 connections open at once, then each echoes its own message.
const PARALLEL_PY: &str = r#"
import socket, sys, threading
N = 200
ok = [0]
lock = threading.Lock()
barrier = threading.Barrier(N, timeout=30)
def one(i):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
        barrier.wait()
        m = ("hello %d\n" % i).encode() * 100
        s.sendall(m)
        s.shutdown(socket.SHUT_WR)
        b = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            b += d
        if b == m:
            with lock:
                ok[0] += 1
    except Exception as e:
        print("error", i, e, file=sys.stderr)
ts = [threading.Thread(target=one, args=(i,)) for i in range(N)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("ok", ok[0])
"#;

const REFUSED_PY: &str = r#"
import socket, sys, time
t = time.time()
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    print("connected")
except ConnectionRefusedError:
    print("refused %.2f" % (time.time() - t))
except Exception as e:
    print("other", e)
"#;

/// A server that reads one byte, then aborts (SO_LINGER 0: a RST).
const RST_SERVER_PY: &str = r#"
import socket, struct, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
while True:
    c, _ = s.accept()
    c.recv(1)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
"#;

/// Sends a byte and waits: a reset from the far side must arrive as one.
const RST_CLIENT_PY: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"x")
try:
    d = s.recv(10)
    print("eof" if not d else "data")
except ConnectionResetError:
    print("reset")
except Exception as e:
    print("other", e)
"#;

const UDP_CLIENT_PY: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
d, a = s.recvfrom(100)
print(d.decode(), a[0], a[1])
"#;

/// The client's namespace, the servers, and ustack forwarding between.
struct Fwd {
    lab: Lab,
    client: NetNs,
    ustack: Server,
}

impl Fwd {
    fn start(tag: &str, subnet: u8, socks: bool) -> Option<Fwd> {
        let mut lab = Lab::new(tag, subnet, &["python3", "curl", "nc", "sha256sum", "ping"])?;
        let client = NetNs::create(&format!("ustack-cli-{}-{tag}c", std::process::id()))
            .expect("create the client namespace");
        lab.ns
            .ip(["addr", "add", &format!("{SERVER}/32"), "dev", "lo"])
            .unwrap();
        for (name, body) in [
            ("echo.py", ECHO_PY),
            ("udp_echo.py", UDP_ECHO_PY),
            ("socks5.py", SOCKS5_PY),
            ("parallel.py", PARALLEL_PY),
            ("refused.py", REFUSED_PY),
            ("udp_client.py", UDP_CLIENT_PY),
            ("rst_server.py", RST_SERVER_PY),
            ("rst_client.py", RST_CLIENT_PY),
        ] {
            std::fs::write(lab.dir.join(name), body).unwrap();
        }
        let py = |lab: &Lab, script: &str, args: &[&str]| {
            let mut c = lab.cmd("python3");
            c.arg(lab.dir.join(script)).args(args);
            c
        };
        let c = py(&lab, "echo.py", &[SERVER, "7"]);
        lab.spawn(c);
        let c = py(&lab, "udp_echo.py", &[SERVER, "5353"]);
        lab.spawn(c);
        let c = py(&lab, "rst_server.py", &[SERVER, "8"]);
        lab.spawn(c);
        let mut c = lab.cmd("python3");
        c.args(["-m", "http.server", "8000", "--bind", SERVER, "--directory"])
            .arg(&lab.dir);
        lab.spawn(c);
        if socks {
            let c = py(&lab, "socks5.py", &["1080"]);
            lab.spawn(c);
        }
        for port in [7u16, 8, 8000].into_iter().chain(socks.then_some(1080)) {
            let host = if port == 1080 { "127.0.0.1" } else { SERVER };
            wait_listening(&lab, host, port);
        }
        let mut cmd = lab.ns.command(env!("CARGO_BIN_EXE_ustack"));
        cmd.args(lab.link())
            .args(["--netns", client.name(), "--stats", "forward"])
            .args(["--route", "198.18.0.0/24", "--udp-timeout", "1"]);
        if socks {
            cmd.args(["--socks5", "127.0.0.1:1080"]);
        }
        let ustack = lab.serve_with(cmd, false);
        ustack.wait_for_stderr("forwarding", Duration::from_secs(10));
        Some(Fwd {
            lab,
            client,
            ustack,
        })
    }

    /// A program in the client's namespace.
    fn client(&self, program: &str) -> Command {
        self.client.command(program)
    }

    fn py(&self, script: &str, args: &[&str]) -> String {
        let mut c = self.client("python3");
        c.arg(self.lab.dir.join(script)).args(args);
        let out = run(c, None, Duration::from_secs(60));
        assert_success(&out, script);
        text(&out.stdout)
    }
}

/// Waits until something listens on `host:port` in the lab's namespace.
fn wait_listening(lab: &Lab, host: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = lab.cmd("python3");
        c.args([
            "-c",
            &format!("import socket; socket.create_connection(('{host}', {port}), timeout=1)"),
        ]);
        if c.output().is_ok_and(|o| o.status.success()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing listens on {host}:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn forward_direct_relays_tcp_and_udp_to_their_original_destinations() {
    let Some(f) = Fwd::start("fwd", 60, false) else {
        return;
    };
    // The route into the TUN is in the client's namespace only.
    let routes = f.client.ip(["route", "show", "198.18.0.0/24"]).unwrap();
    assert!(routes.contains(IFNAME), "route into the TUN: {routes}");

    // 100 MiB through the relay, intact.
    let file = f.lab.random_file("big", 100 << 20, 60);
    let out_path = f.lab.dir.join("big.out");
    let mut curl = f.client("curl");
    curl.args(["-sS", "--max-time", "120", "-o"])
        .arg(&out_path)
        .arg(format!("http://{SERVER}:8000/big"));
    assert_success(&run(curl, None, Duration::from_secs(150)), "curl 100 MiB");
    assert_eq!(sha256(&out_path), sha256(&file), "downloaded bytes differ");
    std::fs::remove_file(&out_path).unwrap();

    // 200 connections open at once, each echoed intact.
    let out = f.py("parallel.py", &[SERVER, "7"]);
    assert_eq!(out.trim(), "ok 200");

    // Half-close both ways: nc -N sends, shuts its write side (FIN to the
    // relay, shutdown(SHUT_WR) on to the server) and still reads the echo,
    // which the server's FIN ends.
    let msg: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut nc = f.client("nc");
    nc.args(["-N", SERVER, "7"]);
    let out = run(nc, Some(msg.clone()), Duration::from_secs(30));
    assert_success(&out, "nc -N");
    assert!(
        out.stdout == msg,
        "echo differs ({} of {} bytes)",
        out.stdout.len(),
        msg.len()
    );

    // A closed destination port: refused at once (a RST), not a timeout.
    let out = f.py("refused.py", &[SERVER, "9"]);
    let secs: f64 = out
        .trim()
        .strip_prefix("refused ")
        .unwrap_or_else(|| panic!("not refused: {out}"))
        .parse()
        .unwrap();
    assert!(secs < 2.0, "refused after {secs} s");

    // A UDP request and its answer, from the address asked.
    let out = f.py("udp_client.py", &[SERVER, "5353"]);
    assert_eq!(out.trim(), format!("echo:ping {SERVER} 5353"));

    // A ping to any routed address is answered, from that address.
    let mut ping = f.client("ping");
    ping.args(["-c", "1", "-W", "5", "198.18.0.77"]);
    let out = run(ping, None, Duration::from_secs(10));
    assert_success(&out, "ping 198.18.0.77");
    assert!(
        text(&out.stdout).contains("from 198.18.0.77"),
        "{}",
        text(&out.stdout)
    );

    // The server's reset reaches the client as a reset, not as EOF.
    let out = f.py("rst_client.py", &[SERVER, "8"]);
    assert_eq!(out.trim(), "reset");

    // --stats on SIGUSR1: the relayed flows; the UDP flow has timed out
    // (--udp-timeout 1).
    std::thread::sleep(Duration::from_millis(1500));
    f.ustack.signal("USR1");
    f.ustack
        .wait_for_stdout("relayed: tcp", Duration::from_secs(5));
    let stats = f.ustack.stdout();
    assert!(
        stats.contains(", 1 refused, 1 reset; udp 1 flows ended"),
        "{stats}"
    );
    assert!(stats.contains("open flows: 0"), "{stats}");
    let _ = &f.lab;
}

#[test]
fn forward_through_socks5_connect_and_udp_associate() {
    let Some(f) = Fwd::start("fwds", 61, true) else {
        return;
    };
    let file = f.lab.random_file("small", 1 << 20, 61);
    let out_path = f.lab.dir.join("small.out");
    let mut curl = f.client("curl");
    curl.args(["-sS", "--max-time", "60", "-o"])
        .arg(&out_path)
        .arg(format!("http://{SERVER}:8000/small"));
    assert_success(&run(curl, None, Duration::from_secs(90)), "curl via SOCKS5");
    assert_eq!(sha256(&out_path), sha256(&file));

    let msg: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
    let mut nc = f.client("nc");
    nc.args(["-N", SERVER, "7"]);
    let out = run(nc, Some(msg.clone()), Duration::from_secs(30));
    assert_success(&out, "nc -N via SOCKS5");
    assert!(out.stdout == msg, "echo via SOCKS5 differs");

    // The proxy's "connection refused" reply becomes a RST to the client.
    let out = f.py("refused.py", &[SERVER, "9"]);
    assert!(out.starts_with("refused "), "{out}");

    let out = f.py("udp_client.py", &[SERVER, "5353"]);
    assert_eq!(out.trim(), format!("echo:ping {SERVER} 5353"));
    let _ = &f.ustack;
}
