//! Bulk transfers both ways, 100 MiB each, with 1% of the frames dropped and
//! 1% held back by 5 ms (so later ones overtake them) in ustack's own device
//! layer, in each direction (`--loss 0.01 --reorder 0.01`; there is no netem
//! here): the data must still arrive intact (sha256). Each transfer has a
//! time limit (`LIMIT`), and the namespace is removed whatever happens.
//! Each runs with the TUN's offloads on (TSO/GSO super-segments, impaired
//! whole: a lost one is 44 segments lost) and off.

mod common;

use common::*;
use std::time::{Duration, Instant};

const SIZE_MIB: usize = 100;
/// Longest a transfer may take. With SACK, the out-of-order queue and fast
/// recovery each takes about 2 s here (it was 170 s and 580 s before them).
const LIMIT: Duration = Duration::from_secs(120);
/// The impairments, in each direction.
const IMPAIRED: [&str; 4] = ["--loss", "0.01", "--reorder", "0.01"];

/// The count before `what` in a `--stats` report.
fn stat(report: &str, what: &str) -> u64 {
    report
        .lines()
        .find(|l| l.trim_end().ends_with(what))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {what:?} in\n{report}"))
}

#[test]
fn curl_downloads_100_mib_from_ustack_with_1pct_loss_and_reordering() {
    curl_download("off", 21);
}

#[test]
fn curl_downloads_100_mib_from_ustack_with_offloads_1pct_loss_and_reordering() {
    curl_download("on", 23);
}

fn curl_download(offload: &str, subnet: u8) {
    let tag = format!("loss-srv-{offload}");
    let Some(mut lab) = Lab::new(&tag, subnet, &["curl", "sha256sum"]) else {
        return;
    };
    std::fs::create_dir_all(lab.dir.join("www")).unwrap();
    let file = lab.random_file("www/bulk", SIZE_MIB << 20, 21);
    let root = lab.dir.join("www");
    let cmd = lab.ustack(&[
        "--offload",
        offload,
        IMPAIRED[0],
        IMPAIRED[1],
        IMPAIRED[2],
        IMPAIRED[3],
        "--stats",
        "serve",
        "http",
        "--root",
        root.to_str().unwrap(),
        "--port",
        "80",
    ]);
    let server = lab.serve(cmd);
    let dl = lab.dir.join("bulk.dl");
    let mut curl = lab.cmd("curl");
    curl.args(["-sS", "--fail", "-o"])
        .arg(&dl)
        .arg(format!("http://{}/bulk", lab.our_ip()));
    let start = Instant::now();
    let out = run(curl, None, LIMIT);
    let took = start.elapsed().as_secs_f64();
    assert_success(&out, "curl with loss and reordering");
    eprintln!(
        "curl: {SIZE_MIB} MiB from ustack (offload {offload}) with 1% loss and 1% reordering in {took:.1} s ({:.2} MiB/s)",
        SIZE_MIB as f64 / took
    );
    assert_eq!(sha256(&dl), sha256(&file));
    server.signal("TERM");
    lab.wait_exit(&server, Duration::from_secs(10));
    server.wait_for_stdout("LISTEN", Duration::from_secs(5));
    let report = server.stdout();
    assert!(stat(&report, "segments retransmitted") > 0, "{report}");
    let tso = stat(&report, "TSO super-segments sent (checksum offloaded)");
    assert_eq!(tso > 0, offload == "on", "{report}");
}

#[test]
fn ustack_get_downloads_100_mib_from_the_kernel_with_1pct_loss_and_reordering() {
    get_download("off", 22);
}

#[test]
fn ustack_get_downloads_100_mib_from_the_kernel_with_offloads_1pct_loss_and_reordering() {
    get_download("on", 24);
}

fn get_download(offload: &str, subnet: u8) {
    let tag = format!("loss-get-{offload}");
    let Some(mut lab) = Lab::new(&tag, subnet, &["python3", "sha256sum", "ss"]) else {
        return;
    };
    lab.persistent_tun();
    std::fs::create_dir_all(lab.dir.join("www")).unwrap();
    let file = lab.random_file("www/bulk", SIZE_MIB << 20, 22);
    let mut py = lab.cmd("python3");
    py.args(["-m", "http.server", "8000", "--bind", &lab.kernel_ip()])
        .arg("--directory")
        .arg(lab.dir.join("www"));
    lab.spawn(py);
    // Bounded wait for the server: ustack get retries a refused connect as an error.
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
    let dl = lab.dir.join("bulk.dl");
    let url = format!("http://{}:8000/bulk", lab.kernel_ip());
    let get = lab.ustack(&[
        "--offload",
        offload,
        IMPAIRED[0],
        IMPAIRED[1],
        IMPAIRED[2],
        IMPAIRED[3],
        "--stats",
        "get",
        &url,
        "-o",
        dl.to_str().unwrap(),
    ]);
    let start = Instant::now();
    let out = run(get, None, LIMIT);
    let took = start.elapsed().as_secs_f64();
    assert_success(&out, "ustack get with loss and reordering");
    // The impairments were at work: segments arrived out of order (dropped
    // or held back) and were queued.
    let stats = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(stats.contains("out-of-order segments queued"), "{stats}");
    let gso = stat(&stats, "GSO super-packets received");
    assert_eq!(gso > 0, offload == "on", "{stats}");
    eprintln!(
        "ustack get: {SIZE_MIB} MiB from the kernel (offload {offload}) with 1% loss and 1% reordering in {took:.1} s ({:.2} MiB/s)",
        SIZE_MIB as f64 / took
    );
    assert_eq!(sha256(&dl), sha256(&file));
}
