//! State transitions and what an application may watch (established,
//! reset, closed, retransmission timeouts) come out of the core as typed
//! events the caller drains: the RFC 9293 paths through the diagram.

mod common;

use common::{Pair, A, B};
use std::net::SocketAddr;
use ustack_core::{Duration, Event, EventKind, Medium, Stack};

/// (local address, from, to) of every state-transition event, both stacks.
#[derive(Default)]
struct Recorder(Vec<(String, String, String)>);

impl Recorder {
    fn drain(&mut self, stacks: [&mut Stack; 2]) -> Vec<Event> {
        let mut all = Vec::new();
        for s in stacks {
            for e in s.take_events() {
                if let EventKind::TcpState {
                    local, from, to, ..
                } = &e.kind
                {
                    self.0
                        .push((local.to_string(), from.to_string(), to.to_string()));
                }
                all.push(e);
            }
        }
        all
    }
}

fn path(rec: &Recorder, local: &str) -> Vec<String> {
    let mine: Vec<_> = rec.0.iter().filter(|(l, _, _)| l == local).collect();
    let mut p = vec![mine[0].1.clone()];
    for (_, from, to) in mine {
        assert_eq!(p.last().unwrap(), from, "transitions chain");
        p.push(to.clone());
    }
    p
}

#[test]
fn four_way_close_follows_the_diagram() {
    let mut rec = Recorder::default();
    let (client, server) = {
        let mut p = Pair::new(Medium::Ip);
        let l = p.b.tcp_open();
        p.b.tcp_bind(l, SocketAddr::from((B, 80))).unwrap();
        p.b.tcp_listen(l, 1).unwrap();
        let c = p.a.tcp_open();
        let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((B, 80)));
        p.pump();
        let (s, _) = p.b.tcp_accept(l).unwrap();
        p.a.close(c).unwrap();
        p.pump();
        p.b.close(s).unwrap();
        p.pump();
        p.advance(Duration::from_secs(61));
        let local = p.a.socket_table(p.now);
        assert!(local.is_empty());
        let events = rec.drain([&mut p.a, &mut p.b]);
        let estab = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TcpEstablished { .. }))
            .count();
        let closed = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::TcpClosed { .. }))
            .count();
        assert_eq!((estab, closed), (2, 2), "both ends established and closed");
        (
            format!("{A}:{}", p.trace_port_a()),
            SocketAddr::from((B, 80)).to_string(),
        )
    };
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
    let mut rec = Recorder::default();
    {
        let mut p = Pair::new(Medium::Ip);
        let a = p.a.tcp_open();
        p.a.tcp_bind(a, SocketAddr::from((A, 5000))).unwrap();
        let b = p.b.tcp_open();
        p.b.tcp_bind(b, SocketAddr::from((B, 6000))).unwrap();
        let _ = p.a.tcp_connect(p.now, a, SocketAddr::from((B, 6000)));
        let _ = p.b.tcp_connect(p.now, b, SocketAddr::from((A, 5000)));
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
        rec.drain([&mut p.a, &mut p.b]);
    }
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

#[test]
fn a_reset_and_a_timeout_are_events() {
    let mut p = Pair::new(Medium::Ip);
    let l = p.b.tcp_open();
    p.b.tcp_bind(l, SocketAddr::from((B, 80))).unwrap();
    p.b.tcp_listen(l, 1).unwrap();
    let c = p.a.tcp_open();
    let _ = p.a.tcp_connect(p.now, c, SocketAddr::from((B, 80)));
    p.pump();
    let (s, _) = p.b.tcp_accept(l).unwrap();
    p.a.take_events();
    p.b.take_events();
    // Data into a black hole: the RTO fires, with its backoff.
    p.filter = Box::new(|_, _| None);
    p.a.tcp_send(p.now, c, b"lost").unwrap();
    p.pump();
    let sent_at = p.now;
    p.advance(Duration::from_millis(1500));
    let rtos: Vec<_> =
        p.a.take_events()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::TcpRto { backoff, .. } => Some((e.at, backoff)),
                _ => None,
            })
            .collect();
    // RTO floor 200 ms, doubled each time (RFC 6298 §5.5), stamped when
    // the timer fired.
    let ms = Duration::from_millis;
    assert_eq!(
        rtos,
        [
            (sent_at + ms(200), 1),
            (sent_at + ms(600), 2),
            (sent_at + ms(1400), 3)
        ]
    );
    // The server aborts (SO_LINGER 0): the client sees a reset, then the end.
    p.filter = Box::new(|_, f| Some(f));
    p.b.tcp_set_linger(s, Some(Duration::ZERO)).unwrap();
    p.b.close(s).unwrap();
    p.pump();
    let kinds: Vec<_> = p.a.take_events().into_iter().map(|e| e.kind).collect();
    let local = p.a.local_addr(c).unwrap().unwrap();
    let reset = kinds
        .iter()
        .position(|k| matches!(k, EventKind::TcpReset { local: l, socket: Some(h), .. } if *l == local && *h == c));
    let closed = kinds
        .iter()
        .position(|k| matches!(k, EventKind::TcpClosed { local: l, .. } if *l == local));
    assert!(
        reset.is_some() && closed.is_some() && reset < closed,
        "{kinds:?}"
    );
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
