//! A JSON-lines trace of the core's events (docs/trace.md): one object a
//! line, with the time, the host, the connection and the event's fields.
//! [`Runtime::trace_to`](crate::Runtime::trace_to) writes one for a
//! running stack; a simulation calls [`TraceWriter::write`] itself.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use ustack_core::wire::TcpFlags;
use ustack_core::{Event, EventKind};

/// Writes events as JSON lines, numbering connections (a local and
/// remote address pair, either way round) from 1 in order of appearance;
/// 0 is a listener's (no remote).
pub struct TraceWriter<W: Write> {
    out: W,
    conns: HashMap<(SocketAddr, SocketAddr), u64>,
}

impl TraceWriter<io::BufWriter<std::fs::File>> {
    /// A trace to a new file at `path`.
    pub fn create(path: &std::path::Path) -> Result<Self, String> {
        let f = std::fs::File::create(path)
            .map_err(|e| format!("cannot write trace file {}: {e}", path.display()))?;
        Ok(TraceWriter::new(io::BufWriter::new(f)))
    }
}

impl<W: Write> TraceWriter<W> {
    pub fn new(out: W) -> Self {
        TraceWriter {
            out,
            conns: HashMap::new(),
        }
    }

    /// The connection number of a pair of addresses.
    fn conn(&mut self, a: SocketAddr, b: Option<SocketAddr>) -> u64 {
        let Some(b) = b else { return 0 };
        let key = if (a.ip(), a.port()) <= (b.ip(), b.port()) {
            (a, b)
        } else {
            (b, a)
        };
        let next = self.conns.len() as u64 + 1;
        *self.conns.entry(key).or_insert(next)
    }

    /// One event as its JSON object; `host` names the stack it came from.
    pub fn line(&mut self, host: &str, e: &Event) -> Value {
        let mut m = Map::new();
        let us = |d: ustack_core::Duration| d.as_micros() as u64;
        let (local, remote, ev, fields) = match &e.kind {
            EventKind::TcpState {
                local,
                remote,
                from,
                to,
            } => (
                *local,
                *remote,
                "state",
                json!({"from": from.to_string(), "to": to.to_string()}),
            ),
            EventKind::TcpEstablished { local, remote, .. } => {
                (*local, Some(*remote), "established", json!({}))
            }
            EventKind::TcpReset { local, remote, .. } => {
                (*local, Some(*remote), "reset", json!({}))
            }
            EventKind::TcpClosed { local, remote, .. } => {
                (*local, Some(*remote), "closed", json!({}))
            }
            EventKind::TcpRto {
                local,
                remote,
                backoff,
                rto,
            } => (
                *local,
                Some(*remote),
                "rto",
                json!({"backoff": backoff, "rto_us": us(*rto)}),
            ),
            EventKind::TcpSegment {
                local,
                remote,
                sent,
                seq,
                ack,
                len,
                flags,
                window,
                wscale,
                sack,
            } => (
                *local,
                Some(*remote),
                "seg",
                json!({
                    "dir": if *sent { "out" } else { "in" },
                    "seq": seq, "ack": ack, "len": len,
                    "flags": flag_names(*flags),
                    "win": window, "wscale": wscale,
                    "sack": sack.iter().map(|&(l, r)| [l, r]).collect::<Vec<_>>(),
                }),
            ),
            EventKind::TcpRetransmit {
                local,
                remote,
                seq,
                len,
                cause,
            } => (
                *local,
                Some(*remote),
                "rtx",
                json!({"seq": seq, "len": len, "cause": cause.name()}),
            ),
            EventKind::TcpCwnd {
                local,
                remote,
                cwnd,
                ssthresh,
                in_flight,
            } => (
                *local,
                Some(*remote),
                "cwnd",
                json!({"cwnd": cwnd, "ssthresh": ssthresh, "in_flight": in_flight}),
            ),
            EventKind::TcpRtt {
                local,
                remote,
                rtt,
                srtt,
                rto,
            } => (
                *local,
                Some(*remote),
                "rtt",
                json!({"rtt_us": us(*rtt), "srtt_us": us(*srtt), "rto_us": us(*rto)}),
            ),
            EventKind::TcpWindow {
                local,
                remote,
                una,
                wnd,
            } => (
                *local,
                Some(*remote),
                "wnd",
                json!({"una": una, "wnd": wnd}),
            ),
            other => {
                m.insert("t".into(), json!(e.at.total_micros() as f64 / 1e6));
                m.insert("host".into(), json!(host));
                m.insert("ev".into(), json!("other"));
                m.insert("debug".into(), json!(format!("{other:?}")));
                return Value::Object(m);
            }
        };
        m.insert("t".into(), json!(e.at.total_micros() as f64 / 1e6));
        m.insert("host".into(), json!(host));
        m.insert("conn".into(), json!(self.conn(local, remote)));
        m.insert("ev".into(), json!(ev));
        m.insert("local".into(), json!(local.to_string()));
        m.insert("remote".into(), json!(remote.map(|r| r.to_string())));
        if let Value::Object(f) = fields {
            m.extend(f);
        }
        Value::Object(m)
    }

    /// Writes `events` of `host`, one line each.
    pub fn write<'a>(
        &mut self,
        host: &str,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> io::Result<()> {
        for e in events {
            let v = self.line(host, e);
            serde_json::to_writer(&mut self.out, &v)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The names of the flags set, in header order (`["SYN", "ACK"]`).
pub fn flag_names(bits: u16) -> Vec<&'static str> {
    [
        (TcpFlags::FIN, "FIN"),
        (TcpFlags::SYN, "SYN"),
        (TcpFlags::RST, "RST"),
        (TcpFlags::PSH, "PSH"),
        (TcpFlags::ACK, "ACK"),
        (TcpFlags::URG, "URG"),
        (TcpFlags::ECE, "ECE"),
        (TcpFlags::CWR, "CWR"),
    ]
    .into_iter()
    .filter(|(f, _)| TcpFlags(bits).contains(*f))
    .map(|(_, n)| n)
    .collect()
}
