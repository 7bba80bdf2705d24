//! The kernel's programs (curl, nc, ping, python3) as clients of `ustack
//! serve ...` running over a TUN device in a namespace of the test's own.

mod common;

use common::*;
use std::time::{Duration, Instant};

const PY_CONCURRENT: &str = r#"
import sys, threading, urllib.request, hashlib
host, n, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
want = [line.split() for line in sys.stdin.read().splitlines()]
want = {name: digest for digest, name in want}
start = threading.Barrier(n, timeout=30)
results = [None] * n
def client(i):
    name = "small%d" % (i % files)
    try:
        start.wait()
        with urllib.request.urlopen("http://%s/%s" % (host, name), timeout=60) as r:
            body = r.read()
        results[i] = hashlib.sha256(body).hexdigest() == want[name]
    except Exception as e:
        results[i] = repr(e)
threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join(90)
bad = [(i, r) for i, r in enumerate(results) if r is not True]
print("intact %d of %d" % (n - len(bad), n))
if bad: sys.exit("failures: %r" % bad[:10])
"#;

const PY_SEQUENTIAL: &str = r#"
import socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
want = open(sys.argv[3], "rb").read()
deadline = time.time() + 100
for i in range(n):
    if time.time() > deadline: sys.exit("only %d connections in time" % i)
    s = socket.create_connection((host, 80), timeout=10)
    s.sendall(b"GET /small0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b: break
        data += b
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 ") or body != want:
        sys.exit("connection %d: %r" % (i, data[:200]))
print("done %d" % n)
"#;

fn http_server(lab: &mut Lab, extra: &[&str]) -> Server {
    let root = lab.dir.join("www");
    std::fs::create_dir_all(&root).unwrap();
    let root = root.to_str().unwrap().to_owned();
    let mut args = vec!["--stats"];
    args.extend_from_slice(extra);
    args.extend(["serve", "http", "--root", &root, "--port", "80"]);
    let cmd = lab.ustack(&args);
    lab.serve(cmd)
}

#[test]
fn curl_downloads_100_mib_from_serve_http() {
    let Some(mut lab) = Lab::new("big", 1, &["curl", "sha256sum"]) else {
        return;
    };
    std::fs::create_dir_all(lab.dir.join("www")).unwrap();
    let file = lab.random_file("www/big.bin", 100 << 20, 1);
    let server = http_server(&mut lab, &[]);
    let dl = lab.dir.join("big.dl");
    let mut curl = lab.cmd("curl");
    curl.args(["-sS", "--fail", "-o"])
        .arg(&dl)
        .args(["-w", "%{size_download} %{speed_download}"])
        .arg(format!("http://{}/big.bin", lab.our_ip()));
    let start = Instant::now();
    let out = run(curl, None, Duration::from_secs(90));
    let took = start.elapsed();
    assert_success(&out, "curl");
    eprintln!(
        "curl: 100 MiB from ustack in {:.2} s ({:.1} MiB/s); curl says: {}",
        took.as_secs_f64(),
        100.0 / took.as_secs_f64(),
        text(&out.stdout)
    );
    assert_eq!(sha256(&dl), sha256(&file));
    // SIGTERM: stats at exit, status 0.
    server.signal("TERM");
    let st = lab.wait_exit(&server, Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "{}", server.stderr());
    server.wait_for_stdout("LISTEN", Duration::from_secs(5));
    let stats = server.stdout();
    assert!(stats.contains("1 passive connection opening\n"), "{stats}");
    // The core's events, tallied by --stats.
    assert!(stats.contains("1 connections established"), "{stats}");
}

#[test]
fn two_hundred_concurrent_clients_get_intact_files() {
    let Some(mut lab) = Lab::new("conc", 2, &["python3", "sha256sum"]) else {
        return;
    };
    std::fs::create_dir_all(lab.dir.join("www")).unwrap();
    let mut sums = String::new();
    for i in 0..10 {
        let f = lab.random_file(&format!("www/small{i}"), 10_000 + 3_000 * i, 100 + i as u64);
        sums.push_str(&format!("{} small{i}\n", sha256(&f)));
    }
    let _server = http_server(&mut lab, &[]);
    let mut py = lab.cmd("python3");
    py.args(["-c", PY_CONCURRENT, &lab.our_ip(), "200", "10"]);
    let start = Instant::now();
    let out = run(py, Some(sums.into_bytes()), Duration::from_secs(120));
    assert_success(&out, "200 concurrent clients");
    assert!(text(&out.stdout).contains("intact 200 of 200"));
    eprintln!(
        "200 concurrent fetches in {:.2} s",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn a_thousand_sequential_short_connections() {
    let Some(mut lab) = Lab::new("seq", 3, &["python3"]) else {
        return;
    };
    std::fs::create_dir_all(lab.dir.join("www")).unwrap();
    let f = lab.random_file("www/small0", 2_000, 7);
    let server = http_server(&mut lab, &[]);
    let mut py = lab.cmd("python3");
    py.args(["-c", PY_SEQUENTIAL, &lab.our_ip(), "1000"])
        .arg(&f);
    let start = Instant::now();
    let out = run(py, None, Duration::from_secs(120));
    assert_success(&out, "1000 sequential connections");
    assert!(text(&out.stdout).contains("done 1000"));
    eprintln!(
        "1000 sequential connections in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    // SIGUSR1: the stats now, and the server goes on.
    server.signal("USR1");
    server.wait_for_stdout("Local Address", Duration::from_secs(5));
    assert!(
        server.stdout().contains("1000 passive connection openings"),
        "{}",
        server.stdout()
    );
}

#[test]
fn http_semantics_seen_by_curl() {
    let Some(mut lab) = Lab::new("sem", 4, &["curl", "nc"]) else {
        return;
    };
    let www = lab.dir.join("www");
    std::fs::create_dir_all(www.join("sub")).unwrap();
    std::fs::write(www.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(www.join("sub/index.html"), "<p>index</p>\n").unwrap();
    std::fs::write(lab.dir.join("secret"), "do not serve\n").unwrap();
    // A small MTU (the kernel side gets it too): more, smaller segments.
    let _server = http_server(&mut lab, &["--mtu", "576"]);
    let base = format!("http://{}", lab.our_ip());
    let curl = |args: &[&str]| {
        let mut c = lab.cmd("curl");
        c.args(["-sS", "--max-time", "10"]).args(args);
        run(c, None, Duration::from_secs(20))
    };
    let code = |args: &[&str]| {
        let mut a = vec!["-o", "/dev/null", "-w", "%{http_code}"];
        a.extend_from_slice(args);
        text(&curl(&a).stdout)
    };
    assert_eq!(text(&curl(&[&format!("{base}/a.txt")]).stdout), "alpha\n");
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(www.join("b.bin"), &body).unwrap();
    assert!(curl(&[&format!("{base}/b.bin")]).stdout == body);
    assert_eq!(
        text(&curl(&[&format!("{base}/sub/")]).stdout),
        "<p>index</p>\n"
    );
    assert_eq!(code(&[&format!("{base}/missing")]), "404");
    assert_eq!(code(&["-X", "POST", &format!("{base}/a.txt")]), "405");
    assert_eq!(code(&["--path-as-is", &format!("{base}/../secret")]), "400");
    assert_eq!(code(&[&format!("{base}/%2e%2e/secret")]), "400");
    // HEAD: the length, no body.
    let head = text(&curl(&["-I", &format!("{base}/a.txt")]).stdout);
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("Content-Length: 6"), "{head}");
    // Keep-alive: curl reuses the connection for a second URL.
    let out = curl(&["-v", &format!("{base}/a.txt"), &format!("{base}/a.txt")]);
    assert_eq!(text(&out.stdout), "alpha\nalpha\n");
    assert!(
        text(&out.stderr).contains("Re-using existing connection"),
        "{}",
        text(&out.stderr)
    );
    // A malformed request: 400 and the connection closed.
    let mut nc = lab.cmd("nc");
    nc.args(["-w", "5", &lab.our_ip(), "80"]);
    let out = run(
        nc,
        Some(b"\x01garbage\r\n\r\n".to_vec()),
        Duration::from_secs(10),
    );
    assert!(
        text(&out.stdout).starts_with("HTTP/1.1 400 Bad Request"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn kernel_pings_ustack_and_nc_half_closes_against_echo() {
    let Some(mut lab) = Lab::new("echo", 5, &["ping", "nc"]) else {
        return;
    };
    let cmd = lab.ustack(&["serve", "echo", "--port", "7"]);
    let _server = lab.serve(cmd);
    let mut ping = lab.cmd("ping");
    ping.args(["-c", "3", "-i", "0.2", "-W", "2", "-n", &lab.our_ip()]);
    let out = run(ping, None, Duration::from_secs(15));
    assert_success(&out, "ping");
    assert!(
        text(&out.stdout).contains("3 packets transmitted, 3 received"),
        "{}",
        text(&out.stdout)
    );
    // nc -N: shut down the write side at stdin's EOF; echo finishes and closes.
    let mut nc = lab.cmd("nc");
    nc.args(["-N", &lab.our_ip(), "7"]);
    let out = run(nc, Some(b"data".to_vec()), Duration::from_secs(15));
    assert_success(&out, "nc -N");
    assert_eq!(text(&out.stdout), "data");
    // More than a window's worth, so the echo is still flowing after the FIN.
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut nc = lab.cmd("nc");
    nc.args(["-N", &lab.our_ip(), "7"]);
    let out = run(nc, Some(big.clone()), Duration::from_secs(60));
    assert_success(&out, "nc -N (2 MB)");
    assert!(
        out.stdout == big,
        "{} of {} bytes echoed",
        out.stdout.len(),
        big.len()
    );
}

#[test]
fn closed_port_refuses_a_kernel_client_and_chargen_discard_serve() {
    let Some(mut lab) = Lab::new("refuse", 6, &["nc", "curl", "python3"]) else {
        return;
    };
    let cmd = lab.ustack(&["serve", "chargen", "--port", "19"]);
    let _server = lab.serve(cmd);
    let mut nc = lab.cmd("nc");
    nc.args(["-z", "-v", "-w", "5", &lab.our_ip(), "81"]);
    let out = run(nc, None, Duration::from_secs(15));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Connection refused"),
        "{}",
        text(&out.stderr)
    );
    let mut curl = lab.cmd("curl");
    curl.args(["-sS", &format!("http://{}:81/", lab.our_ip())]);
    let out = run(curl, None, Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    // curl 7.88 words a refusal "Couldn't connect to server" (exit 7).
    let err = text(&out.stderr);
    assert!(
        err.contains("Connection refused") || err.contains("Couldn't connect"),
        "{err}"
    );
    // chargen: RFC 864 lines of 72 characters.
    let mut py = lab.cmd("python3");
    py.args([
        "-c",
        "import socket,sys\ns=socket.create_connection((sys.argv[1],19),timeout=10)\nd=b''\nwhile len(d)<100000:\n  d+=s.recv(65536)\nls=d.split(b'\\r\\n')[:1000]\nassert all(len(l)==72 for l in ls), ls[:3]\nassert ls[0][:3]==b' !\"' and ls[1][:3]==b'!\"#'\nprint('ok')",
        &lab.our_ip(),
    ]);
    let out = run(py, None, Duration::from_secs(20));
    assert_success(&out, "chargen client");
}

#[test]
fn discard_takes_everything() {
    let Some(mut lab) = Lab::new("discard", 7, &["nc"]) else {
        return;
    };
    let cmd = lab.ustack(&[
        "--stats",
        "serve",
        "discard",
        "--port",
        "9",
        "--duration",
        "30",
    ]);
    let server = lab.serve(cmd);
    let mut nc = lab.cmd("nc");
    nc.args(["-N", &lab.our_ip(), "9"]);
    let out = run(nc, Some(vec![b'x'; 1_000_000]), Duration::from_secs(20));
    assert_success(&out, "nc to discard");
    assert!(out.stdout.is_empty());
    server.signal("INT");
    let st = lab.wait_exit(&server, Duration::from_secs(10));
    assert_eq!(st.code(), Some(0));
}

#[test]
fn serve_errors_are_one_line_and_exit_2() {
    let Some(mut lab) = Lab::new("errs", 8, &["setpriv", "unshare"]) else {
        return;
    };
    let one_line = |out: &std::process::Output, needle: &str| {
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(needle), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    // Not root.
    let mut cmd = lab.cmd("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_ustack"))
        .args(lab.link())
        .args(["serve", "echo"]);
    one_line(
        &run(cmd, None, Duration::from_secs(10)),
        "root or CAP_NET_ADMIN",
    );
    // No /dev/net/tun: hide it under a tmpfs in a mount namespace of its own.
    let mut cmd = lab.cmd("unshare");
    cmd.args([
        "-m",
        "sh",
        "-c",
        "mount -t tmpfs none /dev/net && exec \"$0\" \"$@\"",
    ])
    .arg(env!("CARGO_BIN_EXE_ustack"))
    .args(lab.link())
    .args(["serve", "echo"]);
    one_line(&run(cmd, None, Duration::from_secs(10)), "modprobe tun");
    // The TUN is taken by another ustack.
    let cmd = lab.ustack(&["serve", "discard"]);
    let _first = lab.serve(cmd);
    let out = run(
        lab.ustack(&["serve", "echo"]),
        None,
        Duration::from_secs(10),
    );
    one_line(&out, "another ustack");
}

#[test]
fn sigusr1_shows_an_established_connection_with_rtt_and_cwnd() {
    let Some(mut lab) = Lab::new("usr1", 9, &["python3"]) else {
        return;
    };
    let cmd = lab.ustack(&["--stats", "serve", "echo", "--port", "7"]);
    let server = lab.serve(cmd);
    // A client that exchanges a few bytes, then holds the connection open.
    let mut py = lab.cmd("python3");
    py.args([
        "-c",
        "import socket,sys,time\ns=socket.create_connection((sys.argv[1],7),timeout=10)\nfor i in range(5):\n  s.sendall(b'ping'); assert s.recv(4)==b'ping'\nprint('ready', flush=True)\ntime.sleep(20)",
        &lab.our_ip(),
    ]);
    let client = lab.serve_with(py, false);
    client.wait_for_stdout("ready", Duration::from_secs(10));
    server.signal("USR1");
    server.wait_for_stdout("ESTAB", Duration::from_secs(5));
    let table = server.stdout();
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("ESTAB"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[3], format!("{}:7", lab.our_ip()), "{table}");
    assert!(row[4].starts_with(&lab.kernel_ip()), "{table}");
    let rtt: f64 = row[5].parse().unwrap_or_else(|_| panic!("rtt: {table}"));
    let cwnd: u32 = row[6].parse().unwrap_or_else(|_| panic!("cwnd: {table}"));
    assert!(rtt < 1000.0 && cwnd > 0, "{table}");
    assert!(table.contains("LISTEN"), "{table}");
}
