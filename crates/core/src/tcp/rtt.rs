//! Round-trip time estimation and the retransmission timeout (RFC 6298).

use crate::time::{Duration, Instant};
use ustack_wire::SeqNumber;

/// RFC 6298 round-trip estimator, in microseconds. SRTT is kept times 8
/// and RTTVAR times 4 (as BSD and Linux do), so the 1/8 and 1/4 gains do
/// not truncate small RTTs to zero.
#[derive(Debug, Clone)]
pub(crate) struct Rtt {
    pub srtt8: u64,
    pub rttvar4: u64,
    pub rto: u64,
    pub have_sample: bool,
    /// The segment being timed (Karn: never a retransmitted one).
    pub timing: Option<(SeqNumber, Instant)>,
}
impl Rtt {
    pub(super) fn new(initial: Duration) -> Rtt {
        Rtt {
            srtt8: 0,
            rttvar4: 0,
            rto: initial.as_micros() as u64,
            have_sample: false,
            timing: None,
        }
    }

    pub fn srtt(&self) -> Duration {
        Duration::from_micros(self.srtt8 / 8)
    }

    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar4 / 4)
    }

    /// RFC 6298 §2.2/§2.3, clock granularity 1 ms, clamped to [min, max].
    pub fn sample(&mut self, r: Duration, min: Duration, max: Duration) {
        let r = u64::try_from(r.as_micros()).unwrap_or(u64::MAX / 16);
        if !self.have_sample {
            // SRTT = R, RTTVAR = R/2.
            self.srtt8 = r.saturating_mul(8);
            self.rttvar4 = r.saturating_mul(2);
            self.have_sample = true;
        } else {
            // RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|; SRTT = 7/8 SRTT + 1/8 R.
            let err = (self.srtt8 / 8).abs_diff(r);
            self.rttvar4 = self.rttvar4 - self.rttvar4 / 4 + err;
            self.srtt8 = self.srtt8 - self.srtt8 / 8 + r;
        }
        // RTO = SRTT + max(G, 4 RTTVAR), where, as in Linux
        // (`tcp_rtt_estimator`: mdev_max >= tcp_rto_min), the variance term
        // is at least `min`: an RTO clamped to `min` alone would fire at
        // 2 RTTs on a 100 ms path, before the tail-loss probe (2 SRTT)
        // and before a retransmission's SACK could come back.
        let min = min.as_micros() as u64;
        let rto = self.srtt8 / 8 + self.rttvar4.max(1000).max(min);
        self.rto = rto.clamp(min, max.as_micros() as u64);
    }
}
#[cfg(test)]
mod rtt_tests {
    use super::*;

    #[test]
    fn small_rtts_do_not_truncate_to_zero() {
        let mut r = Rtt::new(Duration::from_secs(1));
        let (min, max) = (Duration::from_millis(200), Duration::from_secs(120));
        for _ in 0..20 {
            r.sample(Duration::from_micros(5), min, max);
        }
        assert_eq!(r.srtt(), Duration::from_micros(5));
        r.sample(Duration::ZERO, min, max);
        assert!(r.srtt() > Duration::ZERO);
        assert!((200_000..200_010).contains(&r.rto), "SRTT plus the floor");
    }

    #[test]
    fn the_floor_is_added_to_srtt_as_linux() {
        // A steady 100 ms path: Linux's RTO is SRTT + 200 ms = 300 ms, so
        // the tail-loss probe (2 SRTT = 200 ms) goes before it.
        let mut r = Rtt::new(Duration::from_secs(1));
        let (min, max) = (Duration::from_millis(200), Duration::from_secs(120));
        for _ in 0..50 {
            r.sample(Duration::from_millis(100), min, max);
        }
        assert_eq!(r.rto, 300_000);
        // A large variance still counts in full.
        r.sample(Duration::from_millis(500), min, max);
        assert!(r.rto > 450_000, "{}", r.rto);
    }
}
