//! The USTACK_* settings: a bad one is one line on stderr and exit status 2,
//! reported when the program first opens an AF_INET socket; programs that
//! never do are not disturbed. No root needed.

mod common;

use std::process::Command;

fn python_socket(vars: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM); print('opened')",
    ])
    .env("LD_PRELOAD", common::library())
    .env_remove("USTACK_TUN")
    .env_remove("USTACK_TAP");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("run python3")
}

#[test]
fn bad_settings_exit_2_with_one_line() {
    if !common::on_path("python3") {
        eprintln!("SKIPPED: python3 is not on PATH");
        assert_ne!(std::env::var("USTACK_REQUIRE_TOOLS").as_deref(), Ok("1"));
        return;
    }
    for (vars, needle) in [
        (
            vec![("USTACK_TUN", "ustk9"), ("USTACK_MTU", "abc")],
            "USTACK_MTU=abc",
        ),
        (
            vec![("USTACK_TUN", "ustk9"), ("USTACK_MTU", "40")],
            "USTACK_MTU=40",
        ),
        (
            vec![("USTACK_TUN", "ustk9"), ("USTACK_ADDR", "10.0.0.300/24")],
            "USTACK_ADDR=10.0.0.300/24",
        ),
        (
            vec![
                ("USTACK_TUN", "ustk9"),
                ("USTACK_ADDR", "10.9.0.2/24"),
                ("USTACK_KERNEL_ADDR", "10.8.0.1/24"),
            ],
            "same subnet",
        ),
        (vec![("USTACK_TUN", "a"), ("USTACK_TAP", "b")], "both set"),
        (vec![], "USTACK_TUN"),
        (
            vec![("USTACK_TUN", "ustk9"), ("USTACK_STATS", "yes")],
            "USTACK_STATS=yes",
        ),
    ] {
        let out = python_socket(&vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{vars:?}: status {} stderr {stderr}",
            out.status
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "{vars:?}: not one line: {stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{vars:?}: {stderr:?} does not name {needle}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("opened"));
    }
}

#[test]
fn programs_without_inet_sockets_ignore_the_settings() {
    let out = Command::new("sh")
        .args(["-c", "echo hi | cat"])
        .env("LD_PRELOAD", common::library())
        .env("USTACK_MTU", "abc")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"hi\n");
}
