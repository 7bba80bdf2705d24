//! `ustack plot` of a capture of the Linux kernel talking to itself: a
//! python3 client sends 2 MB to a python3 server over the loopback of a
//! namespace, tshark captures it, and the time-sequence graph is drawn
//! from it (no trace: only what the capture shows).

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const TRANSFER: &str = r#"
import socket, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 5555)); srv.listen(1)
got = [0]
def serve():
    c, _ = srv.accept()
    while True:
        b = c.recv(65536)
        if not b: break
        got[0] += len(b)
    c.close()
t = threading.Thread(target=serve); t.start()
c = socket.create_connection(("127.0.0.1", 5555))
c.sendall(bytes(2_000_000)); c.close(); t.join(10)
assert got[0] == 2_000_000, got[0]
print("ok")
"#;

#[test]
fn plot_draws_a_kernel_to_kernel_capture() {
    let Some(mut lab) = Lab::new("plot", 41, &["tshark", "python3"]) else {
        return;
    };
    let pcap = lab.dir.join("kernel.pcap");
    let mut tshark = lab.cmd("tshark");
    // -l -P: each packet also printed at once, so the test sees when the
    // capture is live (the file itself is written in blocks).
    tshark.args([
        "-i",
        "lo",
        "-l",
        "-P",
        "-F",
        "pcap",
        "-f",
        "tcp port 5555",
        "-w",
    ]);
    tshark.arg(&pcap);
    let cap = lab.serve_with(tshark, false);
    // Knock on the closed port until tshark shows the knock.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cap.stdout().contains("5555") {
        assert!(
            Instant::now() < deadline,
            "tshark did not start capturing: {}",
            cap.stderr()
        );
        let mut knock = lab.cmd("python3");
        knock.args([
            "-c",
            "import socket\ntry: socket.create_connection(('127.0.0.1', 5555), 1)\nexcept OSError: pass",
        ]);
        run(knock, None, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut py = lab.cmd("python3");
    py.args(["-c", TRANSFER]);
    let out = run(py, None, Duration::from_secs(30));
    assert_success(&out, "python3 transfer");
    // Until tshark has shown the last segment (the final ACK after the FINs).
    let deadline = Instant::now() + Duration::from_secs(10);
    while cap.stdout().matches("FIN").count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    cap.signal("INT");
    lab.wait_exit(&cap, Duration::from_secs(10));
    let svg = lab.dir.join("kernel.svg");
    let mut plot = Command::new(env!("CARGO_BIN_EXE_ustack"));
    plot.arg("plot").arg(&pcap).arg("-o").arg(&svg);
    let out = run(plot, None, Duration::from_secs(30));
    assert_success(&out, "ustack plot");
    // The data went from the client's port to 5555.
    assert!(
        text(&out.stdout).contains("-> 127.0.0.1:5555"),
        "{}",
        text(&out.stdout)
    );
    let doc = std::fs::read_to_string(&svg).unwrap();
    let xml = roxmltree::Document::parse(&doc).expect("valid SVG");
    let texts: Vec<_> = xml
        .descendants()
        .filter(|n| n.is_text())
        .map(|n| n.text().unwrap().trim())
        .collect();
    for label in ["data sent", "ACK", "receive window edge"] {
        assert!(texts.contains(&label), "{label} in {texts:?}");
    }
    // Nothing is lost on a loopback: nothing is marked sent again (the
    // SYN below the first data byte is not a retransmission).
    assert!(!texts.contains(&"retransmission"), "{texts:?}");
    // Blue ticks: segments of data, at least a few (TSO on loopback makes
    // them up to 64 KiB).
    let ticks = xml
        .descendants()
        .filter(|n| n.attribute("stroke") == Some("#1E3CC8"))
        .count();
    assert!(ticks > 10, "{ticks} data segments drawn");
    // A capture has no cwnd: asking for it says so.
    let mut cw = Command::new(env!("CARGO_BIN_EXE_ustack"));
    cw.arg("plot").arg(&pcap).args(["--graph", "cwnd", "-o"]);
    cw.arg(lab.dir.join("c.svg"));
    let out = run(cw, None, Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("holds no congestion window"));
}

/// Waits (bounded) until something listens on the kernel's `port`.
fn wait_listening(lab: &Lab, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut ss = lab.cmd("ss");
        ss.args(["-Htln", &format!("sport = :{port}")]);
        let out = run(ss, None, Duration::from_secs(5));
        if text(&out.stdout).contains(&format!(":{port}")) {
            return;
        }
        assert!(Instant::now() < deadline, "nothing listens on :{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--trace` on a real command: `ustack get` from a kernel HTTP server
/// over a TUN writes the trace, and `ustack plot` draws the kernel's data
/// arriving (the data sender is the kernel's end).
#[test]
fn get_with_trace_over_tun_writes_a_trace_that_plots() {
    let Some(mut lab) = Lab::new("trace", 42, &["python3", "ss"]) else {
        return;
    };
    lab.persistent_tun();
    std::fs::create_dir_all(lab.dir.join("www")).unwrap();
    lab.random_file("www/f.bin", 1 << 20, 42);
    let mut py = lab.cmd("python3");
    py.args(["-m", "http.server", "8000", "--bind", &lab.kernel_ip()])
        .arg("--directory")
        .arg(lab.dir.join("www"));
    lab.spawn(py);
    wait_listening(&lab, 8000);
    let trace = lab.dir.join("get.jsonl");
    let dl = lab.dir.join("f.dl");
    let url = format!("http://{}:8000/f.bin", lab.kernel_ip());
    let get = lab.ustack(&[
        "--trace",
        trace.to_str().unwrap(),
        "get",
        &url,
        "-o",
        dl.to_str().unwrap(),
    ]);
    assert_success(&run(get, None, Duration::from_secs(60)), "ustack get");
    assert_eq!(std::fs::metadata(&dl).unwrap().len(), 1 << 20);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let received: u64 = lines
        .iter()
        .filter(|v| v["ev"] == "seg" && v["dir"] == "in")
        .map(|v| v["len"].as_u64().unwrap())
        .sum();
    assert!(received > 1 << 20, "{received} bytes of segments in");
    assert!(lines
        .iter()
        .any(|v| v["ev"] == "state" && v["to"] == "ESTAB"));
    let svg = lab.dir.join("get.svg");
    let mut plot = Command::new(env!("CARGO_BIN_EXE_ustack"));
    plot.arg("plot").arg(&trace).arg("-o").arg(&svg);
    let out = run(plot, None, Duration::from_secs(30));
    assert_success(&out, "ustack plot");
    let want = format!("connection 1 ({}:8000 -> ", lab.kernel_ip());
    assert!(text(&out.stdout).contains(&want), "{}", text(&out.stdout));
    roxmltree::Document::parse(&std::fs::read_to_string(&svg).unwrap()).expect("valid SVG");
}
