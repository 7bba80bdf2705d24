//! Debian's unmodified programs on ustack under `LD_PRELOAD`, with the
//! kernel's programs as their peers, each test in its own namespace.

mod common;

use common::{check, run, Lab};
use std::time::Duration;

const MIB: usize = 1 << 20;

/// `python3 -m http.server` on ustack serves 100 MiB intact to the kernel's curl.
#[test]
fn python_http_server_serves_100_mib_to_kernel_curl() {
    let Some(mut lab) = Lab::new("py", 1, &["python3", "curl", "nc"]) else {
        return;
    };
    let file = lab.random_file("big.bin", 100 * MIB, 21);
    let ip = lab.our_ip();
    let server = lab.preloaded("python3", &["-m", "http.server", "--bind", &ip, "8000"]);
    lab.spawn("http", server);
    lab.wait_listening(&ip, 8000, "http");
    let got = lab.dir.join("got.bin");
    let out = run(
        lab.kernel(
            "curl",
            &["-sS", "--max-time", "120", "-o", got.to_str().unwrap(), &format!("http://{ip}:8000/big.bin")],
        ),
        None,
        Duration::from_secs(150),
    );
    check("kernel curl from python3 on ustack", &out);
    let want = std::fs::read(&file).unwrap();
    let have = std::fs::read(&got).unwrap();
    assert_eq!(have.len(), want.len(), "length of the download\n{}", lab.log("http"));
    assert!(have == want, "the 100 MiB arrived with different bytes");
}

/// `curl` on ustack downloads from the kernel's http.server, and with
/// USTACK_STATS=1 prints the counters and socket table at exit.
#[test]
fn curl_on_ustack_downloads_from_kernel_server() {
    let Some(mut lab) = Lab::new("curl", 2, &["python3", "curl", "nc"]) else {
        return;
    };
    let file = lab.random_file("page.bin", 5 * MIB, 22);
    let kip = lab.kernel_ip();
    let server = lab.kernel("python3", &["-m", "http.server", "--bind", &kip, "8001"]);
    lab.spawn("http", server);
    lab.wait_listening(&kip, 8001, "http");
    let got = lab.dir.join("got.bin");
    let mut curl = lab.preloaded(
        "curl",
        &["-sS", "--max-time", "60", "-o", got.to_str().unwrap(), &format!("http://{kip}:8001/page.bin")],
    );
    curl.env("USTACK_STATS", "1");
    let out = run(curl, None, Duration::from_secs(90));
    check("curl on ustack", &out);
    assert!(std::fs::read(&got).unwrap() == std::fs::read(&file).unwrap(), "download differs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 active connection openings") && stderr.contains("Local Address:Port"),
        "USTACK_STATS=1 printed no counters and socket table with curl's connection: {stderr}"
    );
}

/// `nc` both ways with half-close: each side sends its file, shuts its
/// writing side (`-N`), and still receives the other's whole file.
#[test]
fn nc_both_ways_with_half_close() {
    let Some(mut lab) = Lab::new("nc", 3, &["nc"]) else {
        return;
    };
    let a = std::fs::read(lab.random_file("a.bin", 3 * MIB, 31)).unwrap();
    let b = std::fs::read(lab.random_file("b.bin", 2 * MIB + 7, 32)).unwrap();
    let (ip, kip) = (lab.our_ip(), lab.kernel_ip());
    // ustack listens: it sends b and receives a.
    let server = lab.preloaded("sh", &["-c", "nc -N -l $0 9000 < b.bin > got-a.bin", &ip]);
    lab.spawn("ncl", server);
    let out = retry_refused(|| run(lab.kernel("nc", &["-N", &ip, "9000"]), Some(a.clone()), Duration::from_secs(60)));
    check("kernel nc to ustack nc -l", &out);
    assert!(out.stdout == b, "kernel side got {} bytes, not ustack's file of {}", out.stdout.len(), b.len());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read(lab.dir.join("got-a.bin")).unwrap_or_default().len() < a.len()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(std::fs::read(lab.dir.join("got-a.bin")).unwrap() == a, "ustack nc -l got a different file\n{}", lab.log("ncl"));

    // The kernel listens: ustack's nc connects, sends a, receives b.
    let server = lab.kernel("sh", &["-c", "nc -N -l $0 9001 < b.bin > kgot-a.bin", &kip]);
    lab.spawn("kncl", server);
    let out = retry_refused(|| run(lab.preloaded("nc", &["-N", &kip, "9001"]), Some(a.clone()), Duration::from_secs(60)));
    check("ustack nc to kernel nc -l", &out);
    assert!(out.stdout == b, "ustack side got {} bytes, not the kernel's file of {}", out.stdout.len(), b.len());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read(lab.dir.join("kgot-a.bin")).unwrap_or_default().len() < a.len()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(std::fs::read(lab.dir.join("kgot-a.bin")).unwrap() == a, "kernel nc -l got a different file");
}

/// Runs `f` again (up to 100 times, 100 ms apart) while the connection is
/// refused because the server has not started listening yet.
fn retry_refused(mut f: impl FnMut() -> std::process::Output) -> std::process::Output {
    for _ in 0..100 {
        let out = f();
        if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("refused") {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}
