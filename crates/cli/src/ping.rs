//! `ustack ping HOST [-c N]`: ICMP echo from ustack, printed like ping(8).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as StdInstant};
use ustack::Runtime;
use ustack_core::Errno;

/// How often a wait looks at the interrupt flag.
const TICK: Duration = Duration::from_millis(50);

/// Sends `count` echo requests `interval` apart, printing as ping(8) does,
/// statistics included when `stop` (Ctrl-C) ends it early; returns whether
/// any reply came back.
pub fn run(
    rt: &Runtime,
    host: IpAddr,
    count: u32,
    interval: Duration,
    size: usize,
    stop: &AtomicBool,
) -> Result<bool, String> {
    let h = rt.with_stack(|s, _| s.icmp_open());
    println!("PING {host}: {size} data bytes");
    let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut rtts: Vec<f64> = Vec::new();
    let start = StdInstant::now();
    let mut transmitted = 0u32;
    let stopped = || stop.load(Ordering::Relaxed);
    for seq in 0..count {
        if stopped() {
            break;
        }
        let seq16 = (seq + 1) as u16;
        let sent = rt.with_stack(|s, now| {
            match host {
                IpAddr::V4(a) => s.icmp_send_echo(h, a, seq16, &data),
                IpAddr::V6(a) => s.icmp_send_echo6(h, a, seq16, &data),
            }
            .map(|_| now)
        });
        let sent = match sent {
            Ok(t) => t,
            Err(e) => return Err(format!("ping {host}: {e}")),
        };
        transmitted += 1;
        let slot_end = StdInstant::now() + interval;
        loop {
            let left = slot_end.saturating_duration_since(StdInstant::now());
            if left.is_zero() || stopped() {
                break;
            }
            match rt.wait_stack(Some(left.min(TICK)), |s, _| s.icmp_recv(h)) {
                Ok(reply) if reply.seq_no == seq16 && reply.from == host => {
                    let ms = (reply.at - sent).as_secs_f64() * 1000.0;
                    rtts.push(ms);
                    let line = format!(
                        "{} bytes from {}: icmp_seq={} time={ms:.3} ms",
                        reply.data.len() + 8,
                        reply.from,
                        reply.seq_no
                    );
                    println!("{line}");
                    while seq + 1 < count && !stopped() && StdInstant::now() < slot_end {
                        std::thread::sleep(
                            slot_end
                                .saturating_duration_since(StdInstant::now())
                                .min(TICK),
                        );
                    }
                    break;
                }
                Ok(_) => continue,
                Err(Errno::EAGAIN) => continue,
                Err(e) => return Err(format!("ping {host}: {e}")),
            }
        }
    }
    let elapsed = start.elapsed().as_millis();
    let loss = 100.0 * (1.0 - rtts.len() as f64 / f64::from(transmitted.max(1)));
    let mut tail = format!(
        "--- {host} ping statistics ---\n{transmitted} packets transmitted, {} received, {loss:.0}% packet loss, time {elapsed}ms\n",
        rtts.len()
    );
    if !rtts.is_empty() {
        let min = rtts.iter().copied().fold(f64::MAX, f64::min);
        let max = rtts.iter().copied().fold(0.0, f64::max);
        let avg = rtts.iter().sum::<f64>() / rtts.len() as f64;
        let mdev = (rtts.iter().map(|r| (r - avg).powi(2)).sum::<f64>() / rtts.len() as f64).sqrt();
        let _ = writeln!(
            tail,
            "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
        );
    }
    print!("{tail}");
    let _ = rt.with_stack(|s, _| s.close(h));
    Ok(!rtts.is_empty())
}
