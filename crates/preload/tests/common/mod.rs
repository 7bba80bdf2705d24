//! Helpers for the preload interop tests: each test makes its own network
//! namespace (`ustack-pl-<pid>-<tag>`, deleted on drop even when the test
//! fails) with a persistent TUN whose kernel side is 10.232.N.1/24, and runs
//! Debian's programs there, some under `LD_PRELOAD=libustack_preload.so`
//! (ustack at 10.232.N.2). Without root, /dev/net/tun or a tool the tests
//! print SKIPPED and pass, unless USTACK_REQUIRE_TOOLS=1.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};
use ustack_devices::kernel::ip;
use ustack_devices::NetNs;

pub const IFNAME: &str = "ustk0";

fn skip(why: &str) -> bool {
    if std::env::var("USTACK_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{why}, and USTACK_REQUIRE_TOOLS=1");
    }
    eprintln!("SKIPPED: {why}; the interop test did not run");
    false
}

pub fn on_path(tool: &str) -> bool {
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

/// The library under test, built first (`cargo build -p ustack-preload`,
/// same profile and target directory as this test): cargo does not rebuild
/// a cdylib for its package's integration tests.
pub fn library() -> PathBuf {
    static BUILD: Once = Once::new();
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test binary>
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let lib = profile_dir.join("libustack_preload.so");
    BUILD.call_once(|| {
        let target_dir = profile_dir.parent().unwrap();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", "ustack-preload", "--target-dir"])
            .arg(target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build -p ustack-preload");
        assert!(status.success(), "cargo build -p ustack-preload failed");
    });
    assert!(lib.exists(), "{} is missing after the build", lib.display());
    lib
}

/// Whether the interop tests can run here with `tools` (besides `ip`).
pub fn available(tools: &[&str]) -> bool {
    if !is_root() {
        return skip("not root (TUN devices and network namespaces need root or CAP_NET_ADMIN)");
    }
    if !Path::new("/dev/net/tun").exists() {
        return skip("/dev/net/tun is missing (modprobe tun)");
    }
    for tool in std::iter::once(&"ip").chain(tools) {
        if !on_path(tool) {
            return skip(&format!(
                "`{tool}` is not on PATH (apt-get install iproute2 python3 curl netcat-openbsd redis-server redis-tools nginx-light wrk iperf3)"
            ));
        }
    }
    true
}

fn remove_stale_namespaces() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(list) = ip(["netns", "list"]) else {
            return;
        };
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(pid) = name
                .strip_prefix("ustack-pl-")
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

/// A test's namespace, subnet, scratch directory, and the processes it
/// started (killed on drop, before the namespace goes).
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
    /// A namespace with a persistent TUN `ustk0` (kernel side
    /// 10.232.`subnet`.1/24, up), or None after SKIPPED.
    pub fn new(tag: &str, subnet: u8, tools: &[&str]) -> Option<Lab> {
        Lab::with_device(tag, subnet, tools, false)
    }

    /// Like [`Lab::new`], with a TAP when `tap`.
    pub fn with_device(tag: &str, subnet: u8, tools: &[&str], tap: bool) -> Option<Lab> {
        if !available(tools) {
            return None;
        }
        remove_stale_namespaces();
        let name = format!("ustack-pl-{}-{tag}", std::process::id());
        let ns = NetNs::create(&name).expect("create a network namespace");
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Lab {
            children: Vec::new(),
            dir,
            subnet,
            tap,
            ns,
        };
        let mode = if tap { "tap" } else { "tun" };
        lab.ns
            .ip(["tuntap", "add", "dev", IFNAME, "mode", mode])
            .unwrap();
        lab.ns
            .ip([
                "addr",
                "add",
                &format!("{}/24", lab.kernel_ip()),
                "dev",
                IFNAME,
            ])
            .unwrap();
        lab.ns.ip(["link", "set", "dev", IFNAME, "up"]).unwrap();
        lab.ns.ip(["link", "set", "dev", "lo", "up"]).unwrap();
        Some(lab)
    }

    pub fn kernel_ip(&self) -> String {
        format!("10.232.{}.1", self.subnet)
    }

    pub fn our_ip(&self) -> String {
        format!("10.232.{}.2", self.subnet)
    }

    /// `program args...` on the kernel's stack in the namespace.
    pub fn kernel(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = self.ns.command(debian(program));
        cmd.args(args).current_dir(&self.dir);
        cmd
    }

    /// `program args...` on ustack: in the namespace, under LD_PRELOAD with
    /// the USTACK_* variables set for this lab's TUN.
    pub fn preloaded(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = self.ns.command("env");
        cmd.arg(format!("LD_PRELOAD={}", library().display()))
            .arg(format!(
                "{}={IFNAME}",
                if self.tap { "USTACK_TAP" } else { "USTACK_TUN" }
            ))
            .arg(format!("USTACK_ADDR={}/24", self.our_ip()))
            .arg(format!("USTACK_KERNEL_ADDR={}/24", self.kernel_ip()))
            .arg(debian(program))
            .args(args)
            .current_dir(&self.dir);
        cmd
    }

    /// Starts a long-running program (its output goes to files in the lab
    /// directory named after `tag`).
    pub fn spawn(&mut self, tag: &str, mut cmd: Command) {
        let out = std::fs::File::create(self.dir.join(format!("{tag}.out"))).unwrap();
        let err = std::fs::File::create(self.dir.join(format!("{tag}.err"))).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        self.children.push(child);
    }

    /// What a spawned program printed so far.
    pub fn log(&self, tag: &str) -> String {
        let out = std::fs::read_to_string(self.dir.join(format!("{tag}.out"))).unwrap_or_default();
        let err = std::fs::read_to_string(self.dir.join(format!("{tag}.err"))).unwrap_or_default();
        format!("{tag} stdout: {out}\n{tag} stderr: {err}")
    }

    /// Waits (bounded) until a kernel-side TCP connect to `ip:port` succeeds.
    pub fn wait_listening(&self, ip: &str, port: u16, tag: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let ok = self
                .kernel("nc", &["-z", "-w", "1", ip, &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "nothing listens on {ip}:{port} after 20 s\n{}",
            self.log(tag)
        );
    }

    /// A file of `len` pseudo-random bytes in the lab directory.
    pub fn random_file(&self, name: &str, len: usize, seed: u64) -> PathBuf {
        let mut x = seed | 1;
        let mut data = Vec::with_capacity(len + 8);
        while data.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.extend_from_slice(&x.to_le_bytes());
        }
        data.truncate(len);
        let path = self.dir.join(name);
        std::fs::write(&path, &data).unwrap();
        path
    }
}

/// Debian's own python3 when there is one (PATH may have another first).
fn debian(program: &str) -> &str {
    if program == "python3" && Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        program
    }
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
    let done = Instant::now() + Duration::from_secs(5);
    while (Arc::strong_count(&out) > 1 || Arc::strong_count(&err) > 1) && Instant::now() < done {
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

/// Panics with the program's output unless it exited 0.
pub fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(4000)]),
        String::from_utf8_lossy(&out.stderr)
    );
}
