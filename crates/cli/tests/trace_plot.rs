//! `--trace` and `ustack plot` as a user runs them: the demo's trace is
//! the same for the same seed, its lines are the documented JSON
//! (docs/trace.md), and the graphs are valid SVG holding the series the
//! legend names.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ustack(args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ustack"))
        .args(args)
        .output()
        .expect("run ustack");
    assert!(
        out.status.success(),
        "ustack {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ustack-trace-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The demo with one lost segment or more, its fast retransmit and RTO.
const DEMO: [&str; 9] = [
    "demo", "--loss", "0.03", "--bytes", "200000", "--seed", "83", "--count", "5",
];

#[test]
fn the_same_seed_gives_the_same_trace() {
    let d = tmp("same");
    let (t1, t2, t3) = (d.join("1.jsonl"), d.join("2.jsonl"), d.join("3.jsonl"));
    for t in [&t1, &t2] {
        let mut args = DEMO.to_vec();
        args.extend(["--trace", t.to_str().unwrap()]);
        ustack(&args);
    }
    // `--trace` is global: before the subcommand too.
    let mut args = vec!["--trace", t3.to_str().unwrap()];
    args.extend(DEMO);
    args[8] = "46";
    ustack(&args);
    let (a, b, c) = (
        std::fs::read(&t1).unwrap(),
        std::fs::read(&t2).unwrap(),
        std::fs::read(&t3).unwrap(),
    );
    assert!(a.len() > 10_000, "a trace of a transfer");
    assert_eq!(a, b, "same seed, same trace");
    assert_ne!(a, c, "another seed, another run");
    // Every line is an object with the common keys; the kinds are there.
    let mut kinds = std::collections::BTreeSet::new();
    for line in String::from_utf8(a).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for k in ["t", "host", "conn", "ev", "local"] {
            assert!(!v[k].is_null(), "{k} in {line}");
        }
        kinds.insert(v["ev"].as_str().unwrap().to_string());
        if v["ev"] == "rtx" {
            let cause = v["cause"].as_str().unwrap();
            assert!(
                ["fast_retransmit", "rack", "rto", "tlp"].contains(&cause),
                "{line}"
            );
        }
    }
    for k in [
        "state",
        "seg",
        "rtx",
        "cwnd",
        "rtt",
        "rto",
        "wnd",
        "established",
    ] {
        assert!(kinds.contains(k), "{k} events in the trace: {kinds:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// The text nodes of an SVG (it must parse as XML) and the number of
/// drawn elements stroked in `color`.
fn svg(path: &Path, color: &str) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not valid XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts = doc
        .descendants()
        .filter(|n| n.is_text())
        .map(|n| n.text().unwrap().trim().to_string())
        .collect();
    let stroked = doc
        .descendants()
        .filter(|n| {
            matches!(n.tag_name().name(), "polyline" | "line" | "path")
                && n.attribute("stroke") == Some(color)
        })
        .count();
    (texts, stroked)
}

#[test]
fn demo_plot_writes_three_valid_svgs_with_their_series() {
    let d = tmp("plot");
    let dir = d.join("graphs");
    let mut args = DEMO.to_vec();
    args.extend(["--plot", dir.to_str().unwrap()]);
    ustack(&args);
    // data sent in blue, one tick per segment: 200000 bytes are > 130.
    let (texts, ticks) = svg(&dir.join("timeseq.svg"), "#1E3CC8");
    for label in [
        "data sent",
        "ACK",
        "SACKed range",
        "receive window edge",
        "fast retransmit",
        "RTO retransmit",
    ] {
        assert!(texts.iter().any(|t| t == label), "{label} in {texts:?}");
    }
    assert!(ticks > 130, "{ticks} data ticks");
    let (texts, _) = svg(&dir.join("cwnd.svg"), "");
    for label in ["cwnd", "ssthresh", "bytes in flight"] {
        assert!(texts.iter().any(|t| t == label), "{label} in {texts:?}");
    }
    let (texts, _) = svg(&dir.join("rtt.svg"), "");
    for label in ["RTT sample", "srtt", "rto"] {
        assert!(texts.iter().any(|t| t == label), "{label} in {texts:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn plot_reads_a_trace_and_draws_png_and_svg() {
    let d = tmp("png");
    let trace = d.join("t.jsonl");
    let mut args = DEMO.to_vec();
    args.extend(["--trace", trace.to_str().unwrap()]);
    ustack(&args);
    let png = d.join("rtt.png");
    ustack(&[
        "plot",
        trace.to_str().unwrap(),
        "--conn",
        "1",
        "--graph",
        "rtt",
        "-o",
        png.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // A wrong connection or output name is a clear error.
    let out = Command::new(env!("CARGO_BIN_EXE_ustack"))
        .args(["plot", trace.to_str().unwrap(), "--conn", "9", "-o"])
        .arg(d.join("x.svg"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--conn 9: no such connection"));
    let out = Command::new(env!("CARGO_BIN_EXE_ustack"))
        .args(["plot", trace.to_str().unwrap(), "-o"])
        .arg(d.join("x.gif"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains(".svg or .png"));
    let _ = std::fs::remove_dir_all(&d);
}
