//! State transitions are traced at debug level (the `tracing` crate): a
//! recording subscriber checks the RFC 9293 paths through the diagram.

mod common;

use common::{Pair, A, B};
use std::fmt;
use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::{span, Event, Metadata, Subscriber};
use ustack_core::{Duration, Medium};

/// (local address, from, to) of every "tcp state" event.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(String, String, String)>>>);

#[derive(Default)]
struct Fields {
    message: String,
    local: String,
    from: String,
    to: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let v = format!("{value:?}");
        match field.name() {
            "message" => self.message = v,
            "local" => self.local = v,
            "from" => self.from = v,
            "to" => self.to = v,
            _ => {}
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::DEBUG
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, e: &Event<'_>) {
        let mut f = Fields::default();
        e.record(&mut f);
        if f.message == "tcp state" {
            self.0.lock().unwrap().push((f.local, f.from, f.to));
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

fn path(rec: &Recorder, local: &str) -> Vec<String> {
    let all = rec.0.lock().unwrap();
    let mine: Vec<_> = all.iter().filter(|(l, _, _)| l == local).collect();
    let mut p = vec![mine[0].1.clone()];
    for (_, from, to) in mine {
        assert_eq!(p.last().unwrap(), from, "transitions chain");
        p.push(to.clone());
    }
    p
}

#[test]
fn four_way_close_follows_the_diagram() {
    let rec = Recorder::default();
    let (client, server) = tracing::subscriber::with_default(rec.clone(), || {
        let mut p = Pair::new(Medium::Ip);
        let l = p.b.tcp_open();
        p.b.tcp_bind(l, SocketAddrV4::new(B, 80)).unwrap();
        p.b.tcp_listen(l, 1).unwrap();
        let c = p.a.tcp_open();
        let _ = p.a.tcp_connect(p.now, c, SocketAddrV4::new(B, 80));
        p.pump();
        let (s, _) = p.b.tcp_accept(l).unwrap();
        p.a.close(c).unwrap();
        p.pump();
        p.b.close(s).unwrap();
        p.pump();
        p.advance(Duration::from_secs(61));
        let local = p.a.socket_table(p.now);
        assert!(local.is_empty());
        (
            format!("{A}:{}", p.trace_port_a()),
            SocketAddrV4::new(B, 80).to_string(),
        )
    });
    assert_eq!(
        path(&rec, &client),
        [
            "CLOSE",
            "SYN-SENT",
            "ESTAB",
            "FIN-WAIT-1",
            "FIN-WAIT-2",
            "TIME-WAIT",
            "CLOSE"
        ]
    );
    assert_eq!(
        path(&rec, &server),
        [
            "CLOSE",
            "LISTEN",
            "SYN-RECV",
            "ESTAB",
            "CLOSE-WAIT",
            "LAST-ACK",
            "CLOSE"
        ]
    );
}

/// Sends what each side owes, both before either receives (crossing segments).
fn cross(p: &mut Pair) {
    let mut buf = vec![0u8; 2048];
    let mut from_a = Vec::new();
    while let Some(n) = p.a.transmit(p.now, &mut buf) {
        from_a.push(buf[..n].to_vec());
    }
    let mut from_b = Vec::new();
    while let Some(n) = p.b.transmit(p.now, &mut buf) {
        from_b.push(buf[..n].to_vec());
    }
    for f in from_b {
        p.a.receive(p.now, &f);
    }
    for f in from_a {
        p.b.receive(p.now, &f);
    }
}

#[test]
fn simultaneous_open_and_close_follow_the_diagram() {
    let rec = Recorder::default();
    tracing::subscriber::with_default(rec.clone(), || {
        let mut p = Pair::new(Medium::Ip);
        let a = p.a.tcp_open();
        p.a.tcp_bind(a, SocketAddrV4::new(A, 5000)).unwrap();
        let b = p.b.tcp_open();
        p.b.tcp_bind(b, SocketAddrV4::new(B, 6000)).unwrap();
        let _ = p.a.tcp_connect(p.now, a, SocketAddrV4::new(B, 6000));
        let _ = p.b.tcp_connect(p.now, b, SocketAddrV4::new(A, 5000));
        cross(&mut p);
        cross(&mut p);
        p.pump();
        p.a.tcp_shutdown(p.now, a, ustack_core::Shutdown::Write)
            .unwrap();
        p.b.tcp_shutdown(p.now, b, ustack_core::Shutdown::Write)
            .unwrap();
        cross(&mut p);
        p.pump();
        p.advance(Duration::from_secs(61));
    });
    let want = [
        "CLOSE",
        "SYN-SENT",
        "SYN-RECV",
        "ESTAB",
        "FIN-WAIT-1",
        "CLOSING",
        "TIME-WAIT",
        "CLOSE",
    ];
    assert_eq!(path(&rec, &format!("{A}:5000")), want);
    assert_eq!(path(&rec, &format!("{B}:6000")), want);
}

trait PortOfA {
    fn trace_port_a(&self) -> u16;
}

impl PortOfA for Pair {
    /// The client's ephemeral port, from the first frame A sent.
    fn trace_port_a(&self) -> u16 {
        let f = &self.trace.iter().find(|(_, from_a, _)| *from_a).unwrap().2;
        u16::from_be_bytes([f[20], f[21]])
    }
}
