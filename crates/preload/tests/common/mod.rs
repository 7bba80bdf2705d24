//! Helpers for the preload interop tests: each test makes its own network
//! namespace (`ustack-pl-<pid>-<tag>`, deleted on drop even when the test
//! fails) with a persistent TUN whose kernel side is 10.232.N.1/24, and runs
//! Debian's programs there, some under `LD_PRELOAD=libustack_preload.so`
//! (ustack at 10.232.N.2). Without root, /dev/net/tun or a tool the tests
//! print SKIPPED and pass, unless USTACK_REQUIRE_TOOLS=1.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};
use ustack_devices::NetNs;

pub const IFNAME: &str = "ustk0";

#[allow(unused_imports)]
pub use ustack_testkit::{on_path, run};

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
    ustack_testkit::lab_available(
        tools,
        "apt-get install iproute2 python3 curl netcat-openbsd redis-server redis-tools nginx-light wrk iperf3",
    )
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
        ustack_testkit::remove_stale_namespaces("ustack-pl-");
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
        let path = self.dir.join(name);
        ustack_testkit::write_random_file(&path, len, seed);
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

/// Panics with the program's output unless it exited 0.
pub fn check(what: &str, out: &Output) {
    ustack_testkit::assert_success(out, what);
}
