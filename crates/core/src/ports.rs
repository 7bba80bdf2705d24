//! Ephemeral port selection (RFC 6056).

use crate::errno::{Errno, Result};
use crate::rng::Rng;
use core::ops::RangeInclusive;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Accepts or refuses a candidate local address for a connection to a
/// remote one: `(local, remote) -> ok`. One stack of several sharing a
/// multiqueue link takes only ports whose flow hash lands on its own queue,
/// so that the replies come back to it.
pub type PortFilter = Arc<dyn Fn(SocketAddr, SocketAddr) -> bool + Send + Sync>;

/// Picks local ports from a range.
#[derive(Clone)]
pub struct PortAllocator {
    range: RangeInclusive<u16>,
    filter: Option<PortFilter>,
}

impl core::fmt::Debug for PortAllocator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PortAllocator")
            .field("range", &self.range)
            .field("filter", &self.filter.is_some())
            .finish()
    }
}

impl PortAllocator {
    pub fn new(range: RangeInclusive<u16>) -> Self {
        PortAllocator {
            range,
            filter: None,
        }
    }

    /// Ephemeral ports of outgoing connections must pass `filter` from now
    /// on ([`pick_flow`](Self::pick_flow)); `None` lifts it.
    pub fn set_filter(&mut self, filter: Option<PortFilter>) {
        self.filter = filter;
    }

    /// [`pick`](Self::pick) for a connection from `ip` to `remote`: also
    /// skips the ports the filter refuses. EADDRINUSE when none is left.
    pub fn pick_flow(
        &self,
        rng: &mut Rng,
        ip: IpAddr,
        remote: SocketAddr,
        in_use: impl Fn(u16) -> bool,
    ) -> Result<u16> {
        match &self.filter {
            None => self.pick(rng, in_use),
            Some(f) => self.pick(rng, |p| in_use(p) || !f(SocketAddr::new(ip, p), remote)),
        }
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

    #[test]
    fn filter_narrows_outgoing_ports() {
        let mut a = PortAllocator::new(40000..=40099);
        let mut rng = Rng::new(2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let remote: SocketAddr = "10.0.0.2:80".parse().unwrap();
        a.set_filter(Some(Arc::new(|l: SocketAddr, r: SocketAddr| {
            r.port() == 80 && l.port() % 4 == 1
        })));
        for _ in 0..50 {
            let p = a.pick_flow(&mut rng, ip, remote, |_| false).unwrap();
            assert_eq!(p % 4, 1, "{p}");
        }
        let busy = |p: u16| p != 40001;
        assert_eq!(a.pick_flow(&mut rng, ip, remote, busy), Ok(40001));
        assert_eq!(
            a.pick_flow(&mut rng, ip, remote, |p| p % 4 == 1),
            Err(Errno::EADDRINUSE)
        );
    }
}
