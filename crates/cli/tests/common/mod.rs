//! Helpers for the `ustack` command's interop tests: each test makes its own
//! network namespace (`ustack-cli-<pid>-<tag>`, deleted on drop even when the
//! test fails) with its own subnet 10.231.N.0/24, runs `ustack` inside it, and
//! kills whatever it started when it ends. Without root, /dev/net/tun or a
//! needed tool the tests print SKIPPED and pass, unless USTACK_REQUIRE_TOOLS=1.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ustack_devices::NetNs;

/// The interface name inside each namespace.
pub const IFNAME: &str = "ustk0";

#[allow(unused_imports)]
pub use ustack_testkit::{assert_success, run, say_skipped, sha256, text};

/// Whether the interop tests can run here with `tools` (besides `ip`).
pub fn available(tools: &[&str]) -> bool {
    ustack_testkit::lab_available(
        tools,
        "apt-get install iproute2 iputils-ping python3 curl netcat-openbsd tshark wrk",
    )
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
        ustack_testkit::remove_stale_namespaces("ustack-cli-");
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

    /// Starts a client whose standard input the test writes (and whose
    /// output it watches); it is killed at the end if still running.
    pub fn client(&mut self, mut cmd: Command) -> (Server, std::process::ChildStdin) {
        cmd.stdin(Stdio::piped());
        let server = self.start(cmd, false, true);
        let stdin = self.children[server.index].stdin.take().unwrap();
        (server, stdin)
    }

    pub fn serve_with(&mut self, cmd: Command, wait_ready: bool) -> Server {
        self.start(cmd, wait_ready, false)
    }

    fn start(&mut self, mut cmd: Command, wait_ready: bool, stdin: bool) -> Server {
        if !stdin {
            cmd.stdin(Stdio::null());
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let out = ustack_testkit::collect_lines(child.stdout.take().unwrap());
        let err = ustack_testkit::collect_lines(child.stderr.take().unwrap());
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
        ustack_testkit::write_random_file(&path, len, seed);
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
            // One lock at a time: `buf` and `err` are the same for stderr.
            let seen = buf.lock().unwrap().clone();
            let stderr = err.lock().unwrap().clone();
            panic!("no '{needle}' on {what} within {timeout:?}: {seen}\nstderr: {stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
