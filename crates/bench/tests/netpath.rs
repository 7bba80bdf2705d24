//! `netpath` (issue #20's comparison tool) runs end to end on one small
//! path: both namespaces, the impaired bridge, a kernel and a ustack
//! sender, the kernel receiving. Root only; no timing is checked.

use std::process::Command;
use std::time::Duration;

#[test]
fn netpath_moves_bytes_for_a_kernel_and_a_ustack_sender_and_cleans_up() {
    if !ustack_testkit::lab_available(&["sh"], "apt-get install iproute2") {
        return;
    }
    // Its namespaces go even if netpath is killed at the deadline below.
    let prefix = format!("npath-test-{}", std::process::id());
    struct Guard(String);
    impl Drop for Guard {
        fn drop(&mut self) {
            for side in ["a", "b"] {
                let name = format!("{}-{side}", self.0);
                let _ = Command::new("ip").args(["netns", "delete", &name]).output();
            }
        }
    }
    let _guard = Guard(prefix.clone());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_netpath"));
    cmd.args([
        "--netns-prefix",
        &prefix,
        "--bytes",
        "300000",
        "--secs",
        "15",
        "--paths",
        "bneck100",
        "--senders",
        "kernel:cubic,ustack:cubic",
    ]);
    let out = ustack_testkit::run(cmd, None, Duration::from_secs(120));
    ustack_testkit::assert_success(&out, "netpath");
    let text = String::from_utf8_lossy(&out.stdout);
    for sender in ["Linux cubic", "ustack cubic"] {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("| {sender} |")))
            .unwrap_or_else(|| panic!("no row for {sender}:\n{text}"));
        // Every byte arrived at the kernel receiver.
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[3], "300000", "{row}");
        // It crossed the bottleneck queue: its waits were recorded.
        assert_ne!(cells[5], "–", "{row}");
    }
    assert!(
        text.contains("ratio ustack cubic / Linux cubic: "),
        "{text}"
    );
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ns.stdout).contains(&prefix),
        "netpath left its namespaces behind"
    );
}
