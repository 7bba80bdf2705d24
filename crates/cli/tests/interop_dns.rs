//! Host names on the command line: `ustack resolve NAME` and `ustack get
//! http://NAME:PORT/` with `--dns`, against the kernel's dnsmasq and
//! python3's http.server in the test's own namespace, over a TUN.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn dnsmasq_path() -> &'static str {
    ["/usr/sbin/dnsmasq", "/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .unwrap_or("dnsmasq")
}

#[test]
fn get_and_resolve_a_host_name_through_dnsmasq() {
    let tools: &[&str] = if dnsmasq_path() == "dnsmasq" {
        &["python3", "dnsmasq"]
    } else {
        &["python3"]
    };
    let Some(mut lab) = Lab::new("dns", 41, tools) else {
        return;
    };
    lab.persistent_tun();
    let kernel = lab.kernel_ip();
    let mut dns = lab.cmd(dnsmasq_path());
    dns.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--pid-file=",
        "--user=root",
        "--bind-interfaces",
        "--log-queries",
        "--log-facility=-",
        "--auth-zone=lab.test",
        &format!("--auth-server=ns.lab.test,{IFNAME}"),
        &format!("--listen-address={kernel}"),
        &format!("--host-record=web.lab.test,{kernel}"),
        "--cname=www.lab.test,web.lab.test",
    ]);
    let dnsmasq = lab.serve_with(dns, false);
    dnsmasq.wait_for_stderr("started", Duration::from_secs(10));

    let www = lab.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("hello.txt"), "hello from the kernel, by name\n").unwrap();
    let mut py = lab.cmd("python3");
    py.args(["-u", "-m", "http.server", "8000", "--bind", &kernel])
        .arg("--directory")
        .arg(&www);
    let http = lab.serve_with(py, false);
    http.wait_for_stdout("Serving HTTP", Duration::from_secs(10));

    // The default server is the kernel's address.
    let out = run(
        lab.ustack(&["resolve", "www.lab.test"]),
        None,
        Duration::from_secs(30),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("www.lab.test is an alias for web.lab.test.")
            && stdout.contains(&format!("web.lab.test has address {kernel}")),
        "{stdout}"
    );

    let start = Instant::now();
    let out = run(
        lab.ustack(&[
            "--dns",
            &kernel,
            "get",
            "http://web.lab.test:8000/hello.txt",
        ]),
        None,
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from the kernel, by name\n");
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(
        dnsmasq.stderr().contains("[A] web.lab.test"),
        "{}",
        dnsmasq.stderr()
    );

    // --hosts: a name from the file, no server asked; get accepts it too.
    let hosts = lab.dir.join("hosts");
    std::fs::write(&hosts, format!("# lab\n{kernel} files.lab.test files\n")).unwrap();
    let hosts = hosts.to_str().unwrap();
    let asked = dnsmasq.stderr().matches("files.lab.test").count();
    let out = run(
        lab.ustack(&["--hosts", hosts, "resolve", "FILES"]),
        None,
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("files has address {kernel} (ttl 0, from hosts)\n")
    );
    let out = run(
        lab.ustack(&[
            "--hosts",
            hosts,
            "get",
            "http://files.lab.test:8000/hello.txt",
        ]),
        None,
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from the kernel, by name\n");
    assert_eq!(
        dnsmasq.stderr().matches("files.lab.test").count(),
        asked,
        "names in --hosts never reach the server"
    );

    // A name that does not exist: one line saying so, exit 1 (the fetch
    // failed; 2 is for usage errors).
    let out = run(
        lab.ustack(&["--dns", &kernel, "get", "http://nope.lab.test:8000/"]),
        None,
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nope.lab.test: no such host (NXDOMAIN)"),
        "{}",
        text(&out.stderr)
    );
}
