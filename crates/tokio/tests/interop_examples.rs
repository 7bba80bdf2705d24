//! The examples against the kernel over a TUN in a namespace of the test's
//! own (`ustack-tokio-<pid>-<tag>`, deleted on drop): curl and python
//! fetch from `hello_axum`, `hyper_get` fetches from python's
//! http.server. Without root, /dev/net/tun or a tool they print SKIPPED
//! and pass, unless USTACK_REQUIRE_TOOLS=1.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ustack_devices::NetNs;

fn available(tools: &[&str]) -> bool {
    ustack_testkit::lab_available(tools, "apt-get install iproute2 python3 curl")
}

/// An example binary, built by `cargo test` beside the test's own.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let p = dir.join(name);
    assert!(p.exists(), "{} not built", p.display());
    p
}

struct Lab {
    children: Vec<Child>,
    dir: PathBuf,
    ns: NetNs,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const KERNEL: &str = "10.232.0.1";
const OURS: &str = "10.232.0.2";

impl Lab {
    fn new(tag: &str, tools: &[&str]) -> Option<Lab> {
        if !available(tools) {
            return None;
        }
        ustack_testkit::remove_stale_namespaces("ustack-tokio-");
        let name = format!("ustack-tokio-{}-{tag}", std::process::id());
        let ns = NetNs::create(&name).expect("create a network namespace");
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        Some(Lab {
            children: Vec::new(),
            dir,
            ns,
        })
    }

    fn link() -> [String; 6] {
        [
            "--tun".into(),
            "ustk0".into(),
            "--addr".into(),
            format!("{OURS}/24"),
            "--kernel-addr".into(),
            format!("{KERNEL}/24"),
        ]
    }

    /// Starts `cmd` in the background; returns its stderr as it comes.
    fn start(&mut self, cmd: &mut Command) -> Arc<Mutex<String>> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let err = ustack_testkit::collect_lines(child.stderr.take().unwrap());
        self.children.push(child);
        err
    }
}

fn wait_for(buf: &Mutex<String>, needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !buf.lock().unwrap().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no '{needle}' within {timeout:?}: {}",
            buf.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to completion, killed (and the test failed) after `timeout`.
fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("{cmd:?} still running after {timeout:?}");
        }
    }
}

use ustack_testkit::text;

const PY_CONCURRENT: &str = r#"
import asyncio, resource, sys
host, n = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
async def one(i):
    r, w = await asyncio.wait_for(asyncio.open_connection(host, 8080), 30)
    w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = await asyncio.wait_for(r.read(), 60)
    w.close()
    return data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nhello from ustack")
async def main():
    res = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    print("answered %d of %d" % (sum(1 for x in res if x is True), n))
    print("failures:", [x for x in res if x is not True][:5])
asyncio.run(main())
"#;

#[test]
fn curl_and_a_thousand_concurrent_clients_get_pages_from_hello_axum() {
    let Some(mut lab) = Lab::new("axum", &["curl", "python3"]) else {
        return;
    };
    let www = lab.dir.join("www");
    std::fs::create_dir_all(www.join("sub")).unwrap();
    std::fs::write(www.join("sub/file.txt"), "static bytes\n").unwrap();
    let mut cmd = lab.ns.command(example("hello_axum"));
    cmd.args(Lab::link())
        .args(["--port", "8080", "--static-dir"])
        .arg(&www);
    let err = lab.start(&mut cmd);
    wait_for(&err, "serving on", Duration::from_secs(20));
    let base = format!("http://{OURS}:8080");
    let out = run(
        lab.ns
            .command("curl")
            .args(["-sS", "--max-time", "10", &format!("{base}/")]),
        Duration::from_secs(20),
    );
    assert_eq!(
        text(&out.stdout),
        "hello from ustack",
        "{}",
        text(&out.stderr)
    );
    let out = run(
        lab.ns
            .command("curl")
            .args(["-sS", "--max-time", "10", &format!("{base}/sub/file.txt")]),
        Duration::from_secs(20),
    );
    assert_eq!(text(&out.stdout), "static bytes\n", "{}", text(&out.stderr));
    let out = run(
        lab.ns.command("curl").args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}/missing"),
        ]),
        Duration::from_secs(20),
    );
    assert_eq!(text(&out.stdout), "404");
    let start = Instant::now();
    let out = run(
        lab.ns
            .command("python3")
            .args(["-c", PY_CONCURRENT, OURS, "1000"]),
        Duration::from_secs(120),
    );
    let said = text(&out.stdout);
    eprintln!("{said} in {:.2} s", start.elapsed().as_secs_f64());
    assert!(
        said.contains("answered 1000 of 1000"),
        "{said}{}",
        text(&out.stderr)
    );
}

#[test]
fn hyper_get_fetches_from_a_kernel_http_server() {
    let Some(mut lab) = Lab::new("get", &["python3"]) else {
        return;
    };
    let www = lab.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(www.join("blob"), &body).unwrap();
    // Bound to every address, so it listens before the TUN exists.
    // Its banner goes to stdout: sent to stderr, unbuffered.
    let mut server = lab.ns.command("sh");
    server
        .args([
            "-c",
            "exec python3 -u -m http.server 8000 --bind 0.0.0.0 --directory \"$0\" 1>&2",
        ])
        .arg(&www);
    let err = lab.start(&mut server);
    wait_for(&err, "Serving HTTP", Duration::from_secs(20));
    let dl = lab.dir.join("blob.dl");
    let out = run(
        lab.ns
            .command(example("hyper_get"))
            .args(Lab::link())
            .arg(format!("http://{KERNEL}:8000/blob"))
            .arg("-o")
            .arg(&dl),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("200 OK"),
        "{}",
        text(&out.stderr)
    );
    assert!(std::fs::read(&dl).unwrap() == body, "the body differs");
    // A missing page: the status, and exit 1.
    let out = run(
        lab.ns
            .command(example("hyper_get"))
            .args(Lab::link())
            .arg(format!("http://{KERNEL}:8000/missing")),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));
}
