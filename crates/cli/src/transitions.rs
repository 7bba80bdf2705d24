//! Collects the core's `tcp state` trace events (one per TCP state
//! transition) so the demo can show each end's path through RFC 9293's
//! state diagram.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// One transition: the connection's local and remote address, from, to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transition {
    pub local: String,
    pub remote: String,
    pub from: String,
    pub to: String,
}

/// A tracing layer that keeps every `tcp state` event.
#[derive(Clone, Default)]
pub struct Recorder {
    pub seen: Arc<Mutex<Vec<Transition>>>,
}

struct Fields<'a> {
    t: &'a mut Transition,
    message: String,
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}");
        match field.name() {
            "message" => self.message = v,
            "local" => self.t.local = v,
            "remote" => self.t.remote = v,
            "from" => self.t.from = v,
            "to" => self.t.to = v,
            _ => {}
        }
    }
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut t = Transition::default();
        let mut f = Fields {
            t: &mut t,
            message: String::new(),
        };
        event.record(&mut f);
        if f.message == "tcp state" {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push(t);
            }
        }
    }
}

impl Recorder {
    /// Each connection's path, one line per (local, remote), in order of
    /// first appearance: `local → remote: CLOSED → SYN-SENT → ESTAB → ...`.
    pub fn paths(&self) -> Vec<String> {
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        let mut order: Vec<(String, String)> = Vec::new();
        let mut paths: Vec<Vec<String>> = Vec::new();
        for t in seen {
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
            paths[i].push(t.to);
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
