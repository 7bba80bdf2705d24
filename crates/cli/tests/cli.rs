//! The `ustack` command as a user runs it.

use std::process::Command;

fn ustack(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ustack"))
        .args(args)
        .output()
        .expect("run ustack")
}

fn tshark_available() -> bool {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("USTACK_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("tshark is required (USTACK_REQUIRE_TOOLS=1) but not installed");
        }
        say_skipped("tshark not found; install it (apt-get install tshark) to check captures");
    }
    found
}

#[test]
fn demo_prints_a_summary_and_is_reproducible() {
    let out = ustack(&["demo", "--loss", "0.2", "--count", "40", "--seed", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ping 10.0.0.2: 40 sent,"), "{text}");
    assert!(
        text.contains("udp echo 10.0.0.2:7: 40 datagrams of 3000 bytes sent,"),
        "{text}"
    );
    assert!(text.contains(" 0 damaged,"), "{text}");
    assert!(text.contains("datagrams reassembled"), "{text}");
    assert!(text.contains("every byte intact and in order"), "{text}");
    assert!(
        text.contains(
            "CLOSE -> SYN-SENT -> ESTAB -> FIN-WAIT-1 -> FIN-WAIT-2 -> TIME-WAIT -> CLOSE"
        ),
        "the active closer's path: {text}"
    );
    assert!(
        text.contains("LISTEN -> SYN-RECV -> ESTAB -> CLOSE-WAIT -> LAST-ACK -> CLOSE"),
        "the passive side's path: {text}"
    );
    let again = ustack(&["demo", "--loss", "0.2", "--count", "40", "--seed", "3"]);
    assert_eq!(
        String::from_utf8(again.stdout).unwrap(),
        text,
        "same seed, same run"
    );
    let lossless = String::from_utf8(
        ustack(&["demo", "--loss", "0", "--corrupt", "0", "--count", "10"]).stdout,
    )
    .unwrap();
    assert!(
        lossless.contains("10 sent, 10 received, 0% packet loss"),
        "{lossless}"
    );
    assert!(
        lossless.contains("10 echoed back intact, 0 damaged, 0 lost"),
        "{lossless}"
    );
}

#[test]
fn demo_with_queues_spreads_connections_over_stacks() {
    let out = ustack(&["demo", "--queues", "2", "--count", "5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("8 TCP echoes, all intact"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("connections per server stack"))
        .unwrap_or_else(|| panic!("{text}"));
    let counts: Vec<u32> = line
        .split(['[', ']'])
        .nth(1)
        .unwrap()
        .split(", ")
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 2, "{line}");
    assert_eq!(counts.iter().sum::<u32>(), 8, "{line}");
    assert!(counts.iter().all(|&c| c > 0), "{line}");
}

#[test]
fn bad_arguments_name_the_problem_and_exit_2() {
    for (args, needle) in [
        (&["demo", "--loss", "1.5"][..], "not a probability"),
        (&["demo", "--loss", "lots"][..], "not a number"),
        (&["demo", "--count", "0"][..], "--count"),
        (&["demo", "--queues", "0"][..], "0 queues: give 1 to 64"),
        (&["demo", "--queues", "many"][..], "not a number of queues or `auto`"),
        (
            &["ping", "10.200.0.1", "--tun", "x", "--queues", "2"][..],
            "runs one stack; --queues is for serve and demo",
        ),
        (&["frobnicate"][..], "unrecognized subcommand"),
        (
            &["demo", "--cc", "vegas"][..],
            "unknown congestion control \"vegas\" (use newreno, cubic or bbr)",
        ),
        (&["demo", "--ecn", "maybe"][..], "--ecn"),
        (
            &["demo", "--pcap", "/nonexistent-dir/x.pcap"][..],
            "cannot write pcap file /nonexistent-dir/x.pcap",
        ),
        (
            &["serve", "http", "--root", "/nonexistent-dir"][..],
            "--root /nonexistent-dir: no such directory; give an existing directory",
        ),
        (
            &["serve", "http", "--root", "/etc/hostname"][..],
            "is not a directory",
        ),
        (&["serve", "http"][..], "--root"),
        (&["serve", "echo", "--port", "0"][..], "not a port number"),
        (
            &["serve", "echo", "--duration", "soon"][..],
            "not a number of seconds",
        ),
        (&["get", "ftp://10.0.0.1/"][..], "only http:// URLs"),
        (&["get", "http://bad..name/"][..], "not a valid host name"),
        (
            &["get", "http://example.com/"][..],
            "get needs a link: give --tun NAME",
        ),
        (&["get", "http://10.0.0.1:99999/"][..], "not a port number"),
        (&["connect", "example.com"][..], "HOST:PORT"),
        (&["connect", "bad..name:80"][..], "not a valid host name"),
        (&["resolve", "example.com"][..], "resolve needs a link"),
        (&["--dns", "dns.example", "resolve", "x"][..], "--dns"),
        (
            &["--hosts", "/nonexistent-dir/hosts", "resolve", "x"][..],
            "cannot read hosts file /nonexistent-dir/hosts",
        ),
        (
            &["--hosts", "/proc/self/status", "resolve", "x"][..],
            "line 1",
        ),
        (
            &["connect", "10.0.0.1:80"][..],
            "connect needs a link: give --tun NAME or --tap NAME",
        ),
        (
            &["--tun", "a", "--tap", "b", "serve", "echo"][..],
            "cannot be used with",
        ),
        // Address errors say what is wrong and show the form (issue 16).
        (
            &["--addr", "10.200.0.2", "ping", "10.200.0.1"][..],
            "'10.200.0.2' has no prefix length; write ADDRESS/PREFIX, e.g. 10.200.0.2/24",
        ),
        (
            &["ping", "10.200.0.1", "--addr", "10.200.0.300/24"][..],
            "'10.200.0.300' is not an IPv4 address",
        ),
        (
            &["ping", "10.200.0.1", "--kernel-addr", "10.200.0.1/33"][..],
            "prefix length '/33' is not a number from 0 to 32",
        ),
        // Link options are global: after the subcommand they reach the link.
        (
            &["ping", "10.200.0.1", "--tun", "x", "--kernel-addr", "10.9.0.1/24"][..],
            "--addr 10.200.0.2/24 and --kernel-addr 10.9.0.1/24 must be different addresses on the same subnet",
        ),
        (
            &["demo", "--tun", "x", "--mtu", "1400"][..],
            "demo runs on the in-memory network and takes no --tun, --mtu;",
        ),
        // A bad host's hint suggests the kernel's address on this link.
        (
            &["get", "http://bad..name/", "--kernel-addr", "10.9.0.1/24"][..],
            "give an IP address ([v6] in brackets) or a host name, e.g. http://10.9.0.1/",
        ),
    ] {
        let out = ustack(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        let error_lines = err
            .lines()
            .filter(|l| l.starts_with("error:") || l.starts_with("ustack:"))
            .count();
        assert_eq!(error_lines, 1, "one line names the problem: {err}");
    }
}

#[test]
fn demo_pcap_reads_clean_in_tshark() {
    let dir = std::env::temp_dir().join(format!("ustack-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("demo.pcap");
    // No corruption: every frame in the capture must be well formed with good checksums.
    let demo = |pcap: &std::path::Path| {
        ustack(&[
            "demo",
            "--loss",
            "0.2",
            "--corrupt",
            "0",
            "--count",
            "30",
            "--pcap",
            pcap.to_str().unwrap(),
        ])
    };
    let out = demo(&pcap);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The simulation's capture is stamped with its own clock: the same
    // seed writes the same file.
    let again = dir.join("again.pcap");
    assert!(demo(&again).status.success());
    assert!(
        std::fs::read(&pcap).unwrap() == std::fs::read(&again).unwrap(),
        "same seed, same capture"
    );
    if !tshark_available() {
        return;
    }
    let fields = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap()])
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
        ])
        .args([
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "frame.protocols",
            "-e",
            "ip.checksum.status",
        ])
        .args([
            "-e",
            "udp.checksum.status",
            "-e",
            "icmp.checksum.status",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert",
            "-e",
            "tcp.checksum.status",
        ])
        .output()
        .unwrap();
    assert!(
        fields.status.success(),
        "{}",
        String::from_utf8_lossy(&fields.stderr)
    );
    let text = String::from_utf8(fields.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(';').collect()).collect();
    // 30 pings and 30 datagrams of 3000 bytes (3 fragments each), and what came back.
    assert!(rows.len() > 100, "{} frames", rows.len());
    for row in &rows {
        assert!(row[0].starts_with("raw:ip"), "{text}");
        // A field lists one status per header of its kind (an ICMP error
        // quotes an IP header): 1 good, 0 bad, 2 unverified (a quoted or
        // non-first fragment).
        let statuses = |i: usize| {
            row[i]
                .split(',')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        };
        assert_eq!(statuses(1)[0], "1", "IP header checksum good: {row:?}");
        assert!(!statuses(1).contains(&"0"), "IP header checksum: {row:?}");
        assert!(!statuses(2).contains(&"0"), "UDP checksum: {row:?}");
        assert!(!statuses(3).contains(&"0"), "ICMP checksum: {row:?}");
        assert!(!statuses(6).contains(&"0"), "TCP checksum: {row:?}");
        assert_eq!(row[4], "", "malformed: {row:?}");
    }
    assert!(
        rows.iter().any(|r| r[2] == "1") && rows.iter().any(|r| r[3] == "1"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_runs_its_transfer_with_each_congestion_control() {
    for cc in ["newreno", "cubic", "bbr"] {
        let out = ustack(&["demo", "--cc", cc, "--ecn", "on", "--bytes", "300000"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cc}: {text}");
        assert!(
            text.contains("every byte intact and in order"),
            "{cc}: {text}"
        );
    }
}

#[test]
fn link_options_are_listed_in_every_subcommands_help() {
    for cmd in [
        &["ping", "--help"][..],
        &["get", "--help"],
        &["connect", "--help"],
        &["serve", "--help"],
        &["serve", "echo", "--help"],
        &["serve", "http", "--help"],
        &["demo", "--help"],
    ] {
        let out = ustack(cmd);
        assert_eq!(out.status.code(), Some(0), "{cmd:?}");
        let help = String::from_utf8(out.stdout).unwrap();
        if cmd[0] == "serve" && cmd.len() == 3 {
            assert!(
                help.contains("The TCP port to listen on [default: "),
                "{help}"
            );
        }
        if cmd[0] == "demo" {
            assert!(help.contains("TCP transfer"), "{help}");
        }
        let (_, link) = help
            .split_once("Link options:")
            .unwrap_or_else(|| panic!("{cmd:?}: no link options: {help}"));
        for opt in [
            "--tun <NAME>",
            "--tap <NAME>",
            "--addr <CIDR>",
            "--kernel-addr <CIDR>",
            "--mtu",
            "--loss <P>",
            "--delay <MS>",
            "--pcap <FILE>",
            "--seed <N>",
            "--cc <NAME>",
            "--ecn <on|passive|off>",
        ] {
            assert!(link.contains(opt), "{cmd:?} lacks {opt}: {help}");
        }
    }
}

use ustack_testkit::say_skipped;

#[test]
fn a_bad_rust_log_is_named_with_an_example() {
    let out = Command::new(env!("CARGO_BIN_EXE_ustack"))
        .args(["demo", "--count", "1", "--bytes", "0"])
        .env("RUST_LOG", "ustack=loud")
        .output()
        .expect("run ustack");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ustack: RUST_LOG='ustack=loud' is not a log filter (")
            && err.contains("write e.g. RUST_LOG=debug or RUST_LOG=ustack_core=trace"),
        "{err}"
    );
}

#[test]
fn the_readmes_demo_output_is_what_the_demo_prints() {
    let readme = include_str!("../../../README.md");
    let cmd = "$ cargo run --release -- demo --pcap demo.pcap\n";
    let start = readme.find(cmd).expect("the README shows the demo") + cmd.len();
    let shown = &readme[start..start + readme[start..].find("...\n").expect("...")];
    let dir = std::env::temp_dir().join(format!("ustack-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("demo.pcap");
    let out = ustack(&["demo", "--pcap", pcap.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(shown),
        "update the README's demo output to:\n{text}"
    );
}

#[test]
fn demo_logs_with_v_and_is_quiet_without() {
    let quiet = ustack(&["demo", "--count", "2", "--bytes", "20000"]);
    assert!(quiet.status.success());
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "");
    let loud = ustack(&["demo", "--count", "2", "--bytes", "20000", "-vv"]);
    assert!(loud.status.success());
    let err = String::from_utf8_lossy(&loud.stderr);
    assert!(
        err.contains("DEBUG") && err.contains("tcp state") && err.contains("to=TIME-WAIT"),
        "{err}"
    );
    assert_eq!(loud.stdout, quiet.stdout, "the log goes to stderr only");
}
