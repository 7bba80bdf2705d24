//! Tests that need root, a TUN or an outside program skip visibly where
//! those are missing, and fail instead under `USTACK_REQUIRE_TOOLS=1`, so
//! CI cannot pass a test that did not run.

use std::path::Path;

/// Whether a skip must be a failure (`USTACK_REQUIRE_TOOLS=1`, as CI sets).
pub fn require_tools() -> bool {
    std::env::var("USTACK_REQUIRE_TOOLS").as_deref() == Ok("1")
}

/// Says the calling test did not run, and why; returns false so callers can
/// `return skip(..)` from an availability check. Panics under
/// [`require_tools`].
pub fn skip(why: &str) -> bool {
    if require_tools() {
        panic!("{why}, and USTACK_REQUIRE_TOOLS=1");
    }
    say_skipped(&format!("{why}; the test did not run"));
    false
}

/// Tells whoever runs `cargo test` that a test did not run. Written to the
/// process's stderr directly: libtest captures only `print!`/`eprint!`, so
/// this line shows in the normal output, not just under `--nocapture`.
pub fn say_skipped(why: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}

/// Whether an executable `tool` is on PATH (or in /usr/sbin, /sbin, where
/// Debian puts daemons such as dnsmasq).
pub fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let paths = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&paths)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| {
            std::fs::metadata(d.join(tool))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether this process runs as uid 0.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Whether an interop test can run: root, `/dev/net/tun`, `ip` and `tools`
/// on PATH. Otherwise it [`skip`]s, naming what is missing and
/// `install` (the packages that bring the tools).
pub fn lab_available(tools: &[&str], install: &str) -> bool {
    if !is_root() {
        return skip("not root (TUN/TAP and network namespaces need root or CAP_NET_ADMIN)");
    }
    if !Path::new("/dev/net/tun").exists() {
        return skip("/dev/net/tun is missing (modprobe tun, or docker run --device /dev/net/tun)");
    }
    for tool in std::iter::once(&"ip").chain(tools) {
        if !on_path(tool) {
            return skip(&format!("`{tool}` is not on PATH ({install})"));
        }
    }
    true
}
