//! Ephemeral port selection (RFC 6056).

use crate::errno::{Errno, Result};
use crate::rng::Rng;
use core::ops::RangeInclusive;

/// Picks local ports from a range.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    range: RangeInclusive<u16>,
}

impl PortAllocator {
    pub fn new(range: RangeInclusive<u16>) -> Self {
        PortAllocator { range }
    }

    pub fn range(&self) -> RangeInclusive<u16> {
        self.range.clone()
    }

    /// RFC 6056 §3.3.1 (Algorithm 1, simple port randomization): start at a
    /// random port of the range and take the first one not `in_use`.
    /// EADDRINUSE when every port is taken.
    pub fn pick(&self, rng: &mut Rng, in_use: impl Fn(u16) -> bool) -> Result<u16> {
        let (lo, hi) = (u32::from(*self.range.start()), u32::from(*self.range.end()));
        if lo > hi || lo == 0 {
            return Err(Errno::EADDRINUSE);
        }
        let n = hi - lo + 1;
        let start = rng.below(u64::from(n)) as u32;
        (0..n)
            .map(|i| (lo + (start + i) % n) as u16)
            .find(|&p| !in_use(p))
            .ok_or(Errno::EADDRINUSE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_within_range_and_exhaustion() {
        let a = PortAllocator::new(40000..=40009);
        let mut rng = Rng::new(1);
        let picks: Vec<u16> = (0..50)
            .map(|_| a.pick(&mut rng, |_| false).unwrap())
            .collect();
        assert!(picks.iter().all(|p| (40000..=40009).contains(p)));
        let distinct: std::collections::HashSet<_> = picks.iter().collect();
        assert!(distinct.len() > 5, "randomised: {picks:?}");
        assert_eq!(a.pick(&mut rng, |p| p != 40007), Ok(40007));
        assert_eq!(a.pick(&mut rng, |_| true), Err(Errno::EADDRINUSE));
    }
}
