//! `--stats`: the counters (`netstat -s` style) and a socket table (`ss -tan`
//! style), printed at exit and, for servers, on SIGUSR1.

use crate::Runtime;
use std::fmt::Write as _;

/// The counters, then the socket table.
pub fn render(rt: &Runtime) -> String {
    let mut out = rt.counters().to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&socket_table(rt));
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
