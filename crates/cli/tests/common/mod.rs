//! Helpers for the `ustack` command's interop tests: each test makes its own
//! network namespace (`ustack-cli-<pid>-<tag>`, deleted on drop even when the
//! test fails) with its own subnet 10.231.N.0/24, runs `ustack` inside it, and
//! kills whatever it started when it ends. Without root, /dev/net/tun or a
//! needed tool the tests print SKIPPED and pass, unless USTACK_REQUIRE_TOOLS=1.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};
use ustack_devices::kernel::ip;
use ustack_devices::NetNs;

/// The interface name inside each namespace.
pub const IFNAME: &str = "ustk0";

fn skip(why: &str) -> bool {
    if std::env::var("USTACK_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{why}, and USTACK_REQUIRE_TOOLS=1");
    }
    eprintln!("SKIPPED: {why}; the interop test did not run");
    false
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(d.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Whether the interop tests can run here with `tools` (besides `ip`).
pub fn available(tools: &[&str]) -> bool {
    if !is_root() {
        return skip("not root (TUN/TAP and network namespaces need root or CAP_NET_ADMIN)");
    }
    if !Path::new("/dev/net/tun").exists() {
        return skip("/dev/net/tun is missing (modprobe tun)");
    }
    for tool in std::iter::once(&"ip").chain(tools) {
        if !on_path(tool) {
            return skip(&format!(
                "`{tool}` is not on PATH (apt-get install iproute2 iputils-ping python3 curl netcat-openbsd tshark)"
            ));
        }
    }
    true
}

/// Deletes namespaces of earlier test processes that died before their guards ran.
fn remove_stale_namespaces() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(list) = ip(["netns", "list"]) else {
            return;
        };
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(pid) = name
                .strip_prefix("ustack-cli-")
                .and_then(|r| r.split('-').next())
            else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = ip(["netns", "delete", name]);
            }
        }
    });
}

/// A test's namespace, its subnet, and everything it started (killed on drop,
/// before the namespace goes).
pub struct Lab {
    pub children: Vec<Child>,
    pub dir: PathBuf,
    pub subnet: u8,
    /// A TAP (Ethernet, ARP) instead of a TUN.
    pub tap: bool,
    pub ns: NetNs,
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

impl Lab {
    /// A namespace `ustack-cli-<pid>-<tag>` on subnet 10.231.`subnet`.0/24,
    /// or None after SKIPPED.
    pub fn new(tag: &str, subnet: u8, tools: &[&str]) -> Option<Lab> {
        if !available(tools) {
            return None;
        }
        remove_stale_namespaces();
        let name = format!("ustack-cli-{}-{tag}", std::process::id());
        let ns = NetNs::create(&name).expect("create a network namespace");
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        Some(Lab {
            children: Vec::new(),
            dir,
            subnet,
            tap: false,
            ns,
        })
    }

    pub fn kernel_ip(&self) -> String {
        format!("10.231.{}.1", self.subnet)
    }

    pub fn our_ip(&self) -> String {
        format!("10.231.{}.2", self.subnet)
    }

    /// The link options for `ustack`.
    pub fn link(&self) -> Vec<String> {
        vec![
            if self.tap { "--tap" } else { "--tun" }.into(),
            IFNAME.into(),
            "--addr".into(),
            format!("{}/24", self.our_ip()),
            "--kernel-addr".into(),
            format!("{}/24", self.kernel_ip()),
        ]
    }

    /// Makes the TUN device persistent, with the kernel's address, so a
    /// kernel server can bind to that address before ustack starts.
    pub fn persistent_tun(&self) {
        self.ns
            .ip([
                "tuntap",
                "add",
                "dev",
                IFNAME,
                "mode",
                if self.tap { "tap" } else { "tun" },
            ])
            .unwrap();
        self.ns
            .ip([
                "addr",
                "add",
                &format!("{}/24", self.kernel_ip()),
                "dev",
                IFNAME,
            ])
            .unwrap();
        self.ns.ip(["link", "set", "dev", IFNAME, "up"]).unwrap();
    }

    /// `ustack LINK ARGS...` in the namespace.
    pub fn ustack(&self, args: &[&str]) -> Command {
        let mut cmd = self.ns.command(env!("CARGO_BIN_EXE_ustack"));
        cmd.args(self.link()).args(args);
        cmd
    }

    /// Starts a server (its stdout and stderr collected) and waits until it
    /// says it is serving.
    pub fn serve(&mut self, cmd: Command) -> Server {
        self.serve_with(cmd, true)
    }

    pub fn serve_with(&mut self, mut cmd: Command, wait_ready: bool) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        let pid = child.id();
        self.children.push(child);
        let server = Server {
            pid,
            index: self.children.len() - 1,
            stdout: out,
            stderr: err,
        };
        if wait_ready {
            server.wait_for_stderr("serving", Duration::from_secs(10));
        }
        server
    }

    /// Starts a background kernel program (killed at the end).
    pub fn spawn(&mut self, mut cmd: Command) -> u32 {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Waits for a server to exit by itself, up to `timeout`.
    pub fn wait_exit(&mut self, s: &Server, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.children[s.index].try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "server still running after {timeout:?}; stderr: {}",
                s.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A command in the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        self.ns.command(program)
    }

    /// A file of `len` pseudo-random bytes in the lab's directory.
    pub fn random_file(&self, name: &str, len: usize, seed: u64) -> PathBuf {
        let path = self.dir.join(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut x = seed | 1;
        let mut block = vec![0u8; 1 << 16];
        let mut left = len;
        while left > 0 {
            for chunk in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            let n = left.min(block.len());
            std::io::Write::write_all(&mut f, &block[..n]).unwrap();
            left -= n;
        }
        std::io::Write::flush(&mut f).unwrap();
        path
    }
}

/// A server started by [`Lab::serve`].
pub struct Server {
    pub pid: u32,
    index: usize,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn wait_for_stdout(&self, needle: &str, timeout: Duration) {
        wait_for(&self.stdout, needle, timeout, "stdout", &self.stderr);
    }

    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) {
        wait_for(&self.stderr, needle, timeout, "stderr", &self.stderr);
    }

    /// Sends a signal (by name, as kill(1) takes it).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid.to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {}", self.pid);
    }
}

fn wait_for(buf: &Mutex<String>, needle: &str, timeout: Duration, what: &str, err: &Mutex<String>) {
    let deadline = Instant::now() + timeout;
    while !buf.lock().unwrap().contains(needle) {
        if Instant::now() >= deadline {
            // One lock at a time: `buf` and `err` may be the same mutex.
            let seen = buf.lock().unwrap().clone();
            let err = err.lock().unwrap().clone();
            panic!("no '{needle}' on {what} within {timeout:?}: {seen}\nstderr: {err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a pipe into a shared string, line by line, on a thread of its own.
fn collect(r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let mut b = b.lock().unwrap();
            b.push_str(&line);
            b.push('\n');
        }
    });
    buf
}

/// Runs `cmd` to completion with stdin from `input`, killing it after
/// `timeout` (then panicking with what it printed).
pub fn run(mut cmd: Command, input: Option<Vec<u8>>, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    if let Some(data) = input {
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &data);
        });
    }
    let out = collect_bytes(child.stdout.take().unwrap());
    let err = collect_bytes(child.stderr.take().unwrap());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "{cmd:?} still running after {timeout:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.lock().unwrap()),
                String::from_utf8_lossy(&err.lock().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // The pipes close with the process; give the readers a moment to finish.
    let done = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&out) > 1 || Arc::strong_count(&err) > 1 {
        if Instant::now() > done {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let stdout = std::mem::take(&mut *out.lock().unwrap());
    let stderr = std::mem::take(&mut *err.lock().unwrap());
    Output {
        status,
        stdout,
        stderr,
    }
}

fn collect_bytes(mut r: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            match r.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => b.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
        drop(b);
    });
    buf
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts a command succeeded, showing its output if not.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// sha256sum of a file.
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert_success(&out, "sha256sum");
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}
