//! `ustack --queues 2 serve http` on a multiqueue TUN (issue 19): two
//! stacks, one per queue and thread, both listening; 8 kernel `curl`
//! downloads at once, every file intact; 16 more small requests; each
//! stack served some, and no stack answered a frame of another's flow
//! with a reset (a flow the kernel moved to the other queue would meet one).

mod common;

use common::*;
use std::time::Duration;

#[test]
fn eight_parallel_curl_downloads_from_two_stacks() {
    let Some(mut lab) = Lab::new("mq", 97, &["curl"]) else {
        return;
    };
    let www = lab.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let files: Vec<_> = (0..8)
        .map(|i| lab.random_file(&format!("www/f{i}"), 3 << 20, 100 + i))
        .collect();
    let root = www.to_str().unwrap().to_owned();
    let cmd = lab.ustack(&[
        "--queues", "2", "--stats", "serve", "http", "--root", &root, "--port", "80",
    ]);
    let server = lab.serve(cmd);
    server.wait_for_stderr("2 stacks on 2 queues", Duration::from_secs(10));
    // Both stacks listen before the clients come.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.stderr().matches("serving http").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", server.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The kernel sees one device with two queues.
    let queues = run(
        {
            let mut c = lab.cmd("ls");
            c.arg(format!("/sys/class/net/{IFNAME}/queues"));
            c
        },
        None,
        Duration::from_secs(10),
    );
    let queues = text(&queues.stdout);
    assert!(
        queues.contains("rx-0") && queues.contains("rx-1"),
        "{queues}"
    );
    let base = format!("http://{}", lab.our_ip());
    let outs: Vec<_> = (0..8).map(|i| lab.dir.join(format!("got{i}"))).collect();
    std::thread::scope(|s| {
        let hs: Vec<_> = outs
            .iter()
            .enumerate()
            .map(|(i, out)| {
                let mut c = lab.cmd("curl");
                c.args(["-sS", "--max-time", "60", "-o"])
                    .arg(out)
                    .arg(format!("{base}/f{i}"));
                s.spawn(move || run(c, None, Duration::from_secs(90)))
            })
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            assert_success(&h.join().unwrap(), &format!("curl {i}"));
        }
    });
    for (want, got) in files.iter().zip(&outs) {
        assert_eq!(sha256(got), sha256(want), "{}", got.display());
    }
    for i in 0..16 {
        let mut c = lab.cmd("curl");
        c.args(["-sS", "--max-time", "10", "-o", "/dev/null"])
            .arg(format!("{base}/f{}", i % 8));
        assert_success(&run(c, None, Duration::from_secs(20)), "small curl");
    }
    // SIGTERM: each stack's stats at exit.
    server.signal("TERM");
    let status = lab.wait_exit(&server, Duration::from_secs(10));
    assert!(status.success(), "{}", server.stderr());
    let stats = server.stdout();
    let sections: Vec<&str> = stats.split("== stack ").skip(1).collect();
    assert_eq!(sections.len(), 2, "{stats}");
    let count = |section: &str, what: &str| -> u64 {
        section
            .lines()
            .find(|l| l.contains(what))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let opens: Vec<u64> = sections
        .iter()
        .map(|s| count(s, "passive connection opening"))
        .collect();
    eprintln!("connections per stack: {opens:?}");
    assert_eq!(opens.iter().sum::<u64>(), 24, "{stats}");
    assert!(opens.iter().all(|&n| n > 0), "{opens:?}");
    for s in &sections {
        assert_eq!(count(s, "reset"), 0, "{s}");
    }
}
