//! Collects the core's TCP state-transition events
//! ([`EventKind::TcpState`], drained with `Stack::take_events`) so the
//! demo can show each end's path through RFC 9293's state diagram.

use std::fmt::Write as _;
use ustack_core::{Event, EventKind};

/// One transition: the connection's local and remote address, from, to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transition {
    pub local: String,
    pub remote: String,
    pub from: String,
    pub to: String,
}

/// Every TCP state transition seen, in the order recorded.
#[derive(Default)]
pub struct Recorder {
    pub seen: Vec<Transition>,
    /// Every event as a JSON-lines trace (docs/trace.md), if asked for.
    pub trace: Option<ustack::trace::TraceWriter<Vec<u8>>>,
}

impl Recorder {
    /// Keeps the events of `host`: all in the trace, the state transitions.
    pub fn record_from(&mut self, host: &str, events: Vec<Event>) {
        if let Some(w) = self.trace.as_mut() {
            // A Vec<u8> takes every write.
            let _ = w.write(host, &events);
        }
        self.record(events);
    }

    /// Keeps the state transitions among `events`.
    pub fn record(&mut self, events: impl IntoIterator<Item = Event>) {
        for e in events {
            if let EventKind::TcpState {
                local,
                remote,
                from,
                to,
            } = e.kind
            {
                self.seen.push(Transition {
                    local: local.to_string(),
                    remote: remote.map(|r| r.to_string()).unwrap_or_default(),
                    from: from.to_string(),
                    to: to.to_string(),
                });
            }
        }
    }

    /// Each connection's path, one line per (local, remote), in order of
    /// first appearance: `local → remote: CLOSED → SYN-SENT → ESTAB → ...`.
    pub fn paths(&self) -> Vec<String> {
        let mut order: Vec<(String, String)> = Vec::new();
        let mut paths: Vec<Vec<String>> = Vec::new();
        for t in &self.seen {
            // A listener's transitions have no remote.
            let key = (t.local.clone(), t.remote.clone());
            let i = match order.iter().position(|k| *k == key) {
                Some(i) => i,
                None => {
                    order.push(key);
                    paths.push(vec![t.from.clone()]);
                    order.len() - 1
                }
            };
            paths[i].push(t.to.clone());
        }
        order
            .iter()
            .zip(paths)
            .map(|((l, r), p)| {
                let mut line = String::new();
                let _ = write!(line, "{l}");
                if !r.is_empty() {
                    let _ = write!(line, " <-> {r}");
                }
                let _ = write!(line, ": {}", p.join(" -> "));
                line
            })
            .collect()
    }
}
