//! `Runtime::trace_to`: a running stack writes its events as JSON lines
//! (docs/trace.md), the segments of a transfer among them.

mod common;

use common::{pair, B};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use ustack::net::{TcpListener, TcpStream};
use ustack::Mode;

/// A writer the test can read while the runtime holds it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_traced_runtime_writes_every_segment_of_a_transfer() {
    let (a, b) = pair(Mode::Thread);
    let out = Shared::default();
    a.trace_to(Box::new(out.clone()), "a");
    let listener = TcpListener::bind(&b, "10.0.0.2:9").unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut n = 0;
        let mut buf = [0u8; 8192];
        while let Ok(k) = s.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    });
    let mut c = TcpStream::connect(&a, (B, 9)).unwrap();
    c.write_all(&vec![7u8; 100_000]).unwrap();
    drop(c);
    assert_eq!(server.join().unwrap(), 100_000);
    // The events the trace took still count in --stats' tally.
    let tally = ustack::stats::events(&a);
    let established: u64 = tally
        .lines()
        .find(|l| l.ends_with("connections established"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(established >= 1, "{tally}");
    drop(a); // the last events go out when the runtime stops
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let payload: u64 = lines
        .iter()
        .filter(|v| v["ev"] == "seg" && v["dir"] == "out")
        .map(|v| v["len"].as_u64().unwrap())
        .sum();
    // Every byte, once at least (GSO bursts count as one segment).
    assert!(payload >= 100_000, "{payload} bytes of segments traced");
    assert!(lines.iter().all(|v| v["host"] == "a"));
    assert!(lines.iter().any(|v| v["ev"] == "seg"
        && v["dir"] == "in"
        && v["flags"].as_array().unwrap().iter().any(|f| f == "SYN")));
    assert!(lines
        .iter()
        .any(|v| v["ev"] == "state" && v["to"] == "ESTAB"));
    assert!(lines.iter().any(|v| v["ev"] == "rtt"));
}
