//! Pacing: data leaves no faster than a rate, in bursts of about a
//! millisecond of it (Linux `tcp_tso_autosize`, at least two segments),
//! on the sans-IO timer. As Linux's internal pacing (`tcp_internal_pacing`,
//! the path without the fq qdisc): a connection paces when its congestion
//! control sets a rate (BBR), when the stack paces every flow
//! (`TcpConfig::pacing`), or when SO_MAX_PACING_RATE is set.
//!
//! The time a send may go only moves forward by what was sent; an
//! application that sends less than the rate finds it in the past and is
//! never held, and nothing is armed unless data is waiting.

use super::rate::Delivery;
use crate::time::Instant;

/// Linux `sk_pacing_shift` = 10: a burst is about 1/1024 s of data.
const BURST_SHIFT: u32 = 10;
/// How far behind its schedule a late, held sender may catch up, in gaps
/// (bursts) of data sent at once.
const CATCH_UP_GAPS: u64 = 4;
/// Linux `tcp_pacing_ss_ratio` and `tcp_pacing_ca_ratio`, in percent.
const SS_RATIO: u64 = 200;
const CA_RATIO: u64 = 120;

/// A paced connection's state, boxed in its TCB (made on the first send
/// that needs it), with delivery-rate sampling beside it.
#[derive(Debug)]
pub(crate) struct Paced {
    pub rate: Delivery,
    /// When the next data may leave (µs; Linux `tcp_wstamp_ns`).
    pub next: u64,
    /// The pacing timer: armed only while a send is held.
    pub timer: Option<Instant>,
    /// A send was held since the last one left: its lateness is jitter.
    held: bool,
}

impl Paced {
    pub fn new() -> Paced {
        Paced {
            rate: Delivery::new(),
            next: 0,
            timer: None,
            held: false,
        }
    }

    /// `len` bytes left at `now` at `rate` bytes/s (Linux
    /// `tcp_update_skb_after_send`). A send that was held and leaves late
    /// (the timer or the thread woke after `next`: jitter) keeps its
    /// schedule: the lateness, up to [`CATCH_UP_GAPS`] gaps, is made up by
    /// the sends that follow at once. Otherwise each late wake-up lowers
    /// the rate, and BBR, which paces at what it measured, spirals down.
    /// Linux credits up to half a gap, its hrtimers being late by
    /// microseconds; a user-space stack thread on a loaded machine is late
    /// by milliseconds. No credit builds up while idle.
    pub fn sent(&mut self, now: Instant, len: usize, rate: u64) {
        let gap = (len as u64).saturating_mul(1_000_000) / rate.max(1);
        let now = now.total_micros();
        let from = if self.held {
            self.next.max(now.saturating_sub(gap * CATCH_UP_GAPS))
        } else {
            self.next.max(now)
        };
        self.next = from.saturating_add(gap);
        // Still behind: the next send (at once) is part of the catch-up.
        self.held = self.held && self.next < now;
    }

    /// Whether a send must wait at `now`; arms the timer if so.
    pub fn hold(&mut self, now: Instant) -> bool {
        if now.total_micros() >= self.next {
            self.timer = None;
            return false;
        }
        self.timer = Some(Instant::from_micros(self.next));
        self.held = true;
        true
    }
}

/// Linux `tcp_update_pacing_rate`: cwnd per smoothed RTT, twice that in
/// slow start (cwnd below half ssthresh), 1.2 times after. Bytes/s.
pub(crate) fn default_rate(cwnd: u32, ssthresh: u32, srtt_us: u64) -> Option<u64> {
    if srtt_us == 0 {
        return None;
    }
    let ratio = if cwnd < ssthresh / 2 {
        SS_RATIO
    } else {
        CA_RATIO
    };
    Some(u64::from(cwnd) * 1_000_000 / srtt_us * ratio / 100)
}

/// Segments of `mss` a burst may hold at `rate` (Linux `tcp_tso_autosize`
/// with `tcp_min_tso_segs` = 2), at most `max`.
pub(crate) fn burst_segments(rate: u64, mss: usize, max: usize) -> usize {
    let bytes = (rate >> BURST_SHIFT) as usize;
    (bytes / mss.max(1)).clamp(2, max.max(2)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_send_moves_by_what_was_sent() {
        let mut p = Paced::new();
        let t = Instant::from_millis(10);
        assert!(!p.hold(t));
        // 1 MB/s: 2000 bytes are 2 ms.
        p.sent(t, 2000, 1_000_000);
        assert!(p.hold(t));
        assert_eq!(p.timer, Some(Instant::from_millis(12)));
        assert!(!p.hold(Instant::from_millis(12)));
        // Held, and sent on time: the whole gap.
        p.sent(Instant::from_millis(12), 2000, 1_000_000);
        assert_eq!(p.next, Instant::from_millis(14).total_micros());
        // Idle for a second: no credit, the next gap starts now.
        p.sent(Instant::from_secs(2), 1000, 1_000_000);
        assert_eq!(p.next, Instant::from_secs(2).total_micros() + 1000);
    }

    #[test]
    fn late_wake_ups_do_not_lower_the_rate() {
        // 10 MB/s in 10 000-byte bursts (1 ms each); every wake-up comes
        // late, as on a loaded machine: 0.3 ms (within Linux's half-gap
        // credit) and 2.5 ms (a thread that lost its CPU). The sender
        // catches up and the rate holds.
        let rate = 10_000_000;
        for late in [300, 2500] {
            let mut p = Paced::new();
            let start = Instant::from_millis(1);
            let mut now = start;
            let bursts = 1000u64;
            for _ in 0..bursts {
                if p.hold(now) {
                    now = p.timer.expect("armed") + crate::time::Duration::from_micros(late);
                    assert!(!p.hold(now));
                }
                p.sent(now, 10_000, rate);
            }
            let secs = (now.total_micros() - start.total_micros()) as f64 / 1e6;
            let achieved = (bursts - 1) as f64 * 10_000.0 / secs;
            assert!(
                achieved > 0.99 * rate as f64,
                "{late} us late: achieved {achieved:.0} B/s of {rate}"
            );
            // Never more than the catch-up ahead of the schedule.
            assert!(
                achieved < 1.01 * rate as f64,
                "{late} us late: {achieved:.0}"
            );
        }
    }

    #[test]
    fn catch_up_is_bounded() {
        // Held, then woken 100 ms late: at most CATCH_UP_GAPS bursts go at
        // once, then the pacer holds again.
        let mut p = Paced::new();
        let t = Instant::from_millis(10);
        p.sent(t, 1000, 1_000_000);
        assert!(p.hold(t));
        let late = Instant::from_millis(111);
        let mut at_once = 0;
        while !p.hold(late) {
            p.sent(late, 1000, 1_000_000);
            at_once += 1;
            assert!(at_once <= 10, "no bound");
        }
        assert_eq!(at_once, CATCH_UP_GAPS + 1);
    }

    #[test]
    fn rates_and_bursts_as_linux() {
        // 100 kB cwnd over 10 ms: 10 MB/s, doubled in slow start.
        assert_eq!(default_rate(100_000, u32::MAX, 10_000), Some(20_000_000));
        assert_eq!(default_rate(100_000, 100_000, 10_000), Some(12_000_000));
        assert_eq!(default_rate(100_000, 100_000, 0), None);
        // ~1 ms of data: 12.5 MB/s is 12 207 bytes, 8 segments of 1448.
        assert_eq!(burst_segments(12_500_000, 1448, 44), 8);
        assert_eq!(burst_segments(10_000, 1448, 44), 2, "at least two");
        assert_eq!(burst_segments(u64::MAX / 2, 1448, 44), 44);
    }
}
