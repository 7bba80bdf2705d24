//! A token bucket, for the rate limits on what we send unasked: ICMP
//! errors (RFC 1812 §4.3.2.8) and TCP challenge ACKs (RFC 5961 §7).

use crate::time::{Duration, Instant};

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u32,
    burst: u32,
    tokens: u32,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: Instant::ZERO,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.rate > 0 {
            let per_token = Duration::from_micros(1_000_000 / u64::from(self.rate).max(1));
            let elapsed = now - self.last;
            let new = (elapsed.as_micros() / per_token.as_micros().max(1)) as u64;
            if new > 0 {
                self.tokens = (u64::from(self.tokens) + new).min(u64::from(self.burst)) as u32;
                self.last = if self.tokens == self.burst {
                    now
                } else {
                    self.last + per_token * new as u32
                };
            }
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_limits_rate() {
        let mut b = TokenBucket::new(10, 5);
        let t = Instant::from_secs(10);
        let granted = (0..20).filter(|_| b.take(t)).count();
        assert_eq!(granted, 5, "burst");
        assert!(!b.take(t + Duration::from_millis(50)));
        assert!(
            b.take(t + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!b.take(t + Duration::from_millis(150)));
        let later = t + Duration::from_secs(60);
        assert_eq!(
            (0..20).filter(|_| b.take(later)).count(),
            5,
            "refill capped at burst"
        );
    }
}
