//! What ustack's test suites share, so each suite keeps only what is its
//! own (its lab, its subnets, its programs):
//! - [`skip`]: a test that cannot run here says so on a line of its own
//!   (`SKIPPED <test>: <why>`), or fails when `USTACK_REQUIRE_TOOLS=1` (CI);
//! - [`lab_available`]: root, `/dev/net/tun` and the tools an interop test needs;
//! - [`run`]: a program run to completion under a deadline, its output kept;
//! - [`remove_stale_namespaces`]: namespaces of test processes that died
//!   before their guards ran;
//! - [`random_bytes`]/[`write_random_file`]: reproducible payloads.
//!
//! It depends on nothing of ustack's, so any crate's tests can use it.

pub mod process;
pub mod skip;

pub use process::{assert_success, collect_bytes, collect_lines, run, sha256, text};
pub use skip::{is_root, lab_available, on_path, require_tools, say_skipped, skip};

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// Deletes the network namespaces named `<prefix><pid>-…` whose process is
/// gone: they belong to earlier test runs that were killed before their
/// Drop guards ran. Once per prefix and process.
pub fn remove_stale_namespaces(prefix: &str) {
    static DONE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    {
        let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
        if done.iter().any(|p| p == prefix) {
            return;
        }
        done.push(prefix.to_owned());
    }
    let Ok(out) = Command::new("ip")
        .args(["netns", "list"])
        .env_remove("LD_PRELOAD")
        .output()
    else {
        return;
    };
    for name in text(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
    {
        let Some(pid) = name.strip_prefix(prefix).and_then(|r| r.split('-').next()) else {
            continue;
        };
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip")
                .args(["netns", "delete", name])
                .env_remove("LD_PRELOAD")
                .status();
        }
    }
}

/// `len` pseudo-random bytes from `seed` (xorshift64, little-endian words):
/// the same bytes for the same seed, in every suite.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    data
}

/// Writes [`random_bytes`]`(len, seed)` to `path`, 64 KiB at a time (the
/// files reach hundreds of MiB).
pub fn write_random_file(path: &Path, len: usize, seed: u64) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display())),
    );
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
        f.write_all(&block[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_the_same_bytes_as_random_bytes() {
        let dir = std::env::temp_dir().join(format!("ustack-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r");
        let len = (1 << 16) * 2 + 13;
        write_random_file(&path, len, 7);
        let got = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got, random_bytes(len, 7));
        assert_ne!(random_bytes(64, 7), random_bytes(64, 8));
    }
}
