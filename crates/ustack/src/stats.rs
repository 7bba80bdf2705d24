//! `--stats`: the counters (`netstat -s` style), a tally of the core's TCP
//! events, and a socket table (`ss -tan` style), printed at exit and, for
//! servers, on SIGUSR1. Shared by the CLI and the preload library.

use crate::Runtime;
use std::fmt::Write as _;
use std::sync::Mutex;
use ustack_core::{Event, EventKind};

/// The counters, the event tally, the device, then the socket table.
pub fn render(rt: &Runtime) -> String {
    let mut out = rt.counters().to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&events(rt));
    out.push_str(&device(rt));
    out.push_str(&socket_table(rt));
    out
}

/// The device's offloads and its frame and checksum counters.
pub fn device(rt: &Runtime) -> String {
    let d = rt.device_stats();
    let mut out = format!("Device:\n    offloads: {}\n", rt.device_offloads());
    for (n, what) in [
        (d.rx_frames, "frames received"),
        (d.rx_gso_frames, "GSO super-packets received"),
        (
            d.rx_csum_offloaded,
            "received with checksum offloaded (partial or validated by the kernel)",
        ),
        (
            d.rx_csum_software,
            "received with checksum left to verify in software",
        ),
        (d.rx_bad_vnet_hdr, "dropped for a bad virtio-net header"),
        (d.tx_frames, "frames sent"),
        (
            d.tx_gso_frames,
            "TSO super-segments sent (checksum offloaded)",
        ),
        (d.tx_would_block, "sends refused, device queue full"),
    ] {
        let _ = writeln!(out, "    {n} {what}");
    }
    out
}

/// TCP events drained from the stack so far, by kind.
#[derive(Default)]
struct Tally {
    transitions: u64,
    established: u64,
    resets: u64,
    closed: u64,
    rtos: u64,
}

/// The process's one runtime's tally, kept across reports (the events are
/// drained as they are counted).
static TALLY: Mutex<Tally> = Mutex::new(Tally {
    transitions: 0,
    established: 0,
    resets: 0,
    closed: 0,
    rtos: 0,
});

/// Counts drained events in the tally. Whoever drains the stack's events
/// calls it: this report, or the runtime writing them to a trace.
pub(crate) fn tally(events: &[Event]) {
    let mut t = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    for e in events {
        match e.kind {
            EventKind::TcpState { .. } => t.transitions += 1,
            EventKind::TcpEstablished { .. } => t.established += 1,
            EventKind::TcpReset { .. } => t.resets += 1,
            EventKind::TcpClosed { .. } => t.closed += 1,
            EventKind::TcpRto { .. } => t.rtos += 1,
            _ => {}
        }
    }
}

/// Drains the stack's events into the tally and renders it.
pub fn events(rt: &Runtime) -> String {
    let (events, dropped) = rt.with_stack(|s, _| (s.take_events(), s.events_dropped()));
    tally(&events);
    let t = TALLY.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::from("TcpEvents:\n");
    for (n, what) in [
        (t.transitions, "state transitions"),
        (t.established, "connections established"),
        (t.resets, "resets received"),
        (t.closed, "connections closed"),
        (t.rtos, "retransmission timeouts"),
        (dropped, "events dropped before they were read"),
    ] {
        let _ = writeln!(out, "    {n} {what}");
    }
    out
}

/// Every TCP socket, like `ss -tan` with rtt and cwnd (from TCP_INFO) where
/// the socket still has a handle.
pub fn socket_table(rt: &Runtime) -> String {
    let rows = rt.with_stack(|s, now| {
        s.socket_table(now)
            .into_iter()
            .map(|row| {
                let info = row.handle.and_then(|h| s.tcp_info(h).ok());
                (row, info)
            })
            .collect::<Vec<_>>()
    });
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<11} {:>6} {:>6} {:<21} {:<21} {:>9} {:>6}",
        "State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "rtt(ms)", "cwnd"
    );
    for (row, info) in rows {
        let peer = row
            .remote
            .map_or_else(|| "*:*".to_string(), |r| r.to_string());
        let (rtt, cwnd) = match &info {
            Some(i) if row.remote.is_some() => (
                format!("{:.3}", i.rtt.as_secs_f64() * 1000.0),
                i.cwnd.to_string(),
            ),
            _ => ("-".to_string(), "-".to_string()),
        };
        let _ = writeln!(
            out,
            "{:<11} {:>6} {:>6} {:<21} {:<21} {:>9} {:>6}",
            row.state.ss_name(),
            row.recv_q,
            row.send_q,
            row.local.to_string(),
            peer,
            rtt,
            cwnd
        );
    }
    out
}
