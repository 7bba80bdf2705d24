//! Path MTU discovery against the kernel over a TUN: `curl` downloads from
//! `ustack serve http` through `--hop-mtu 1000`, a router hop in ustack's
//! own device layer, with ICMP (RFC 1191) and as a black hole (RFC 4821).

mod common;

use common::*;
use std::time::Duration;

const HOP: &str = "1000";
const SIZE: usize = 4 << 20;

/// Serves a 4 MiB file with `extra` link options and fetches it with curl
/// (`max_time` seconds); whether it arrived intact, and the server's
/// `--stats` after it.
fn download(tag: &str, subnet: u8, extra: &[&str], max_time: u64) -> Option<(bool, String)> {
    let mut lab = Lab::new(tag, subnet, &["curl"])?;
    std::fs::create_dir_all(lab.dir.join("www")).unwrap();
    let file = lab.random_file("www/big", SIZE, 7);
    let root = lab.dir.join("www").to_str().unwrap().to_owned();
    let mut args = vec!["--stats", "serve", "http", "--root", &root, "--port", "80"];
    args.extend_from_slice(extra);
    let cmd = lab.ustack(&args);
    let server = lab.serve(cmd);
    let got = lab.dir.join("got");
    let mut curl = lab.cmd("curl");
    curl.args(["-sS", "--max-time", &max_time.to_string(), "-o"])
        .arg(&got)
        .arg(format!("http://{}/big", lab.our_ip()));
    let out = run(curl, None, Duration::from_secs(max_time + 10));
    let intact = out.status.success() && sha256(&got) == sha256(&file);
    server.signal("USR1");
    server.wait_for_stdout("Tcp:", Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(200));
    Some((intact, server.stdout()))
}

/// The count on the `--stats` line that contains `what`, or 0.
fn count(stats: &str, what: &str) -> u64 {
    stats
        .lines()
        .find(|l| l.contains(what))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn curl_downloads_through_a_small_mtu_hop() {
    let Some((intact, stats)) = download("pmtu", 61, &["--hop-mtu", HOP], 30) else {
        return;
    };
    assert!(intact, "download failed or differs\n{stats}");
    assert_eq!(
        count(&stats, "lowered by Fragmentation Needed"),
        1,
        "{stats}"
    );
    assert!(count(&stats, "to a smaller path MTU") >= 1, "{stats}");
}

#[test]
fn curl_downloads_through_a_black_hole_with_mtu_probing_only() {
    let Some((intact, stats)) = download(
        "pmtu-bh",
        62,
        &["--hop-mtu", HOP, "--hop-mtu-blackhole", "--mtu-probing"],
        60,
    ) else {
        return;
    };
    assert!(intact, "download failed or differs\n{stats}");
    assert!(count(&stats, "after timeouts of full") >= 1, "{stats}");
    let Some((intact, stats)) = download(
        "pmtu-bh0",
        63,
        &["--hop-mtu", HOP, "--hop-mtu-blackhole"],
        8,
    ) else {
        return;
    };
    assert!(!intact, "crossed a black hole without probing\n{stats}");
}
