//! TCP over IPv6 against the kernel over a TUN, in a namespace of the
//! test's own: `curl -6` downloads 100 MiB from `ustack serve http`
//! intact, the same listener takes IPv4 too (dual stack), `ustack get`
//! downloads from python3's http.server on the kernel's IPv6 address,
//! `ustack connect [v6]:port` talks to a kernel peer both ways, and a
//! closed port is refused (RST, curl exit 7).

mod common;

use common::*;
use std::time::{Duration, Instant};

/// fd00:232:N::/64, the kernel ::1 and ustack ::2.
fn v6(lab: &Lab, host: u8) -> String {
    format!("fd00:232:{}::{host}", lab.subnet)
}

/// `ustack` with the lab's link and the IPv6 addresses.
fn ustack6(lab: &Lab, args: &[&str]) -> std::process::Command {
    let (us, kernel) = (format!("{}/64", v6(lab, 2)), format!("{}/64", v6(lab, 1)));
    let mut a = vec!["--addr6", us.as_str(), "--kernel-addr6", kernel.as_str()];
    a.extend_from_slice(args);
    lab.ustack(&a)
}

const BIG_MIB: usize = 100;

#[test]
fn curl_6_downloads_100_mib_from_serve_http_and_ipv4_reaches_the_same_listener() {
    let Some(mut lab) = Lab::new("h6big", 46, &["curl", "sha256sum"]) else {
        return;
    };
    std::fs::create_dir_all(lab.dir.join("www")).unwrap();
    let file = lab.random_file("www/big", BIG_MIB << 20, 46);
    let small = lab.random_file("www/small", 100_000, 47);
    let root = lab.dir.join("www");
    let cmd = ustack6(
        &lab,
        &[
            "serve",
            "http",
            "--root",
            root.to_str().unwrap(),
            "--port",
            "80",
        ],
    );
    let server = lab.serve(cmd);
    assert!(
        server.stderr().contains(&format!("[{}]:80", v6(&lab, 2))),
        "{}",
        server.stderr()
    );
    let dl = lab.dir.join("big.dl");
    let url = format!("http://[{}]:80/big", v6(&lab, 2));
    let mut curl = lab.cmd("curl");
    curl.args(["-6", "-sS", "-g", "--max-time", "60", "-o"])
        .arg(&dl)
        .arg(&url);
    let start = Instant::now();
    let out = run(curl, None, Duration::from_secs(70));
    assert_success(&out, "curl -6 of 100 MiB");
    eprintln!("100 MiB over IPv6 in {:?}", start.elapsed());
    assert_eq!(
        std::fs::metadata(&dl).unwrap().len(),
        (BIG_MIB << 20) as u64
    );
    assert_eq!(sha256(&dl), sha256(&file), "the download differs");
    // The same dual-stack listener over IPv4.
    let dl4 = lab.dir.join("small.dl");
    let mut curl = lab.cmd("curl");
    curl.args(["-4", "-sS", "--max-time", "20", "-o"])
        .arg(&dl4)
        .arg(format!("http://{}:80/small", lab.our_ip()));
    let out = run(curl, None, Duration::from_secs(30));
    assert_success(&out, "curl -4 to the dual-stack listener");
    assert_eq!(sha256(&dl4), sha256(&small));
}

#[test]
fn curl_6_over_tap_resolves_ustack_by_neighbour_discovery() {
    let Some(mut lab) = Lab::new("h6tap", 50, &["curl", "sha256sum"]) else {
        return;
    };
    lab.tap = true;
    std::fs::create_dir_all(lab.dir.join("www")).unwrap();
    let file = lab.random_file("www/ten", 10 << 20, 50);
    let root = lab.dir.join("www");
    let cmd = ustack6(
        &lab,
        &[
            "serve",
            "http",
            "--root",
            root.to_str().unwrap(),
            "--port",
            "80",
        ],
    );
    let _server = lab.serve(cmd);
    let dl = lab.dir.join("ten.dl");
    let mut curl = lab.cmd("curl");
    curl.args(["-6", "-sS", "-g", "--max-time", "30", "-o"])
        .arg(&dl)
        .arg(format!("http://[{}]:80/ten", v6(&lab, 2)));
    let out = run(curl, None, Duration::from_secs(40));
    assert_success(&out, "curl -6 over TAP");
    assert_eq!(sha256(&dl), sha256(&file), "the download differs");
}

#[test]
fn closed_ipv6_port_is_refused() {
    let Some(mut lab) = Lab::new("h6rst", 47, &["curl"]) else {
        return;
    };
    let cmd = ustack6(&lab, &["serve", "echo", "--port", "7"]);
    let _server = lab.serve(cmd);
    let mut curl = lab.cmd("curl");
    curl.args(["-6", "-sS", "-g", "--max-time", "10"])
        .arg(format!("http://[{}]:81/", v6(&lab, 2)));
    let out = run(curl, None, Duration::from_secs(20));
    // curl: 7 "Failed to connect" (ECONNREFUSED from ustack's RST).
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refused") || text(&out.stderr).contains("Couldn't connect"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn ustack_get_downloads_from_a_kernel_server_on_ipv6() {
    let Some(mut lab) = Lab::new("h6get", 48, &["python3", "sha256sum", "ss"]) else {
        return;
    };
    std::fs::create_dir_all(lab.dir.join("www")).unwrap();
    let file = lab.random_file("www/bulk", 20 << 20, 48);
    let dl = lab.dir.join("bulk.dl");
    let url = format!("http://[{}]:8000/bulk", v6(&lab, 1));
    let www = lab.dir.join("www");
    let kernel = v6(&lab, 1);
    // The TUN and the kernel's addresses first, so the server can bind
    // (`nodad`: usable at once, as ustack's --kernel-addr6 does it).
    lab.persistent_tun();
    let a6 = format!("{kernel}/64");
    lab.ns
        .ip(["-6", "addr", "add", a6.as_str(), "dev", IFNAME, "nodad"])
        .unwrap();
    let mut py = lab.cmd("python3");
    py.args(["-m", "http.server", "8000", "--bind", &kernel])
        .arg("--directory")
        .arg(&www);
    lab.spawn(py);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut ss = lab.cmd("ss");
        ss.args(["-Htln", "sport = :8000"]);
        if text(&run(ss, None, Duration::from_secs(5)).stdout).contains(":8000") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "python3 http.server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let get = ustack6(&lab, &["get", &url, "-o", dl.to_str().unwrap()]);
    let out = run(get, None, Duration::from_secs(60));
    assert_success(&out, "ustack get over IPv6");
    assert_eq!(sha256(&dl), sha256(&file), "the download differs");
}

/// Listens on [ADDR]:9000, sends FILE and half-closes, while writing what
/// it receives to OUT until the other side's FIN.
const PEER6: &str = r#"
import socket, sys, threading
addr, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
l = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((addr, 9000))
l.listen(1)
c, _ = l.accept()
def recv_all():
    with open(dst, "wb") as f:
        while True:
            d = c.recv(65536)
            if not d:
                break
            f.write(d)
t = threading.Thread(target=recv_all)
t.start()
with open(src, "rb") as f:
    c.sendall(f.read())
c.shutdown(socket.SHUT_WR)
t.join()
c.close()
"#;

#[test]
fn ustack_connect_to_a_bracketed_ipv6_address_talks_to_a_kernel_peer() {
    let Some(mut lab) = Lab::new("h6nc", 49, &["python3", "ss"]) else {
        return;
    };
    let kernel = v6(&lab, 1);
    lab.persistent_tun();
    let a6 = format!("{kernel}/64");
    lab.ns
        .ip(["-6", "addr", "add", a6.as_str(), "dev", IFNAME, "nodad"])
        .unwrap();
    let from_kernel = lab.random_file("from_kernel", 200_000, 49);
    let got = lab.dir.join("got_by_kernel");
    // A kernel peer that sends its file and reads ours independently:
    // OpenBSD nc stops sending when the other side's FIN comes first, which
    // cut its output short when ustack finished sending before nc did.
    let mut peer = lab.cmd("python3");
    peer.arg("-c").arg(PEER6).args([
        kernel.to_string(),
        from_kernel.display().to_string(),
        got.display().to_string(),
    ]);
    lab.spawn(peer);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut ss = lab.cmd("ss");
        ss.args(["-Htln", "sport = :9000"]);
        if text(&run(ss, None, Duration::from_secs(5)).stdout).contains(":9000") {
            break;
        }
        assert!(Instant::now() < deadline, "the kernel peer did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let to_kernel: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let target = format!("[{kernel}]:9000");
    let out = run(
        ustack6(&lab, &["connect", &target]),
        Some(to_kernel.clone()),
        Duration::from_secs(30),
    );
    assert_success(&out, "ustack connect [v6]:port");
    assert!(
        out.stdout == std::fs::read(&from_kernel).unwrap(),
        "{} bytes from the kernel",
        out.stdout.len()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&got).map_or(0, |m| m.len()) < to_kernel.len() as u64
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(std::fs::read(&got).unwrap() == to_kernel);
}
