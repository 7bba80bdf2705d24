//! Path MTU per IPv4 destination (RFC 1191): lowered by a validated ICMP
//! Fragmentation Needed, forgotten after [`PMTU_TIMEOUT`] (§6.3).

use crate::time::{Duration, Instant};
use std::collections::HashMap;
use ustack_wire::Ipv4Addr;

/// The lowest path MTU taken from an ICMP message: Linux's `min_pmtu`
/// (552), so a forged or broken message cannot make us send tiny
/// segments (RFC 1191 §3 allows 68; RFC 5927 §7.2 warns against it).
pub const MIN_PMTU: usize = 552;

/// How long a lowered path MTU holds (RFC 1191 §6.3: 10 minutes).
pub const PMTU_TIMEOUT: Duration = Duration::from_secs(600);

/// Destinations remembered at most; a full cache takes no new ones.
const MAX_ENTRIES: usize = 1024;

/// RFC 1191 §7 plateau table, for routers that send a next-hop MTU of 0.
const PLATEAUS: [usize; 10] = [32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68];

/// RFC 1191 §5: the estimate for an old-style message (next-hop MTU 0),
/// the largest plateau below the quoted datagram's total length.
pub fn plateau_below(total_len: usize) -> usize {
    PLATEAUS
        .iter()
        .copied()
        .find(|&p| p < total_len)
        .unwrap_or(68)
}

/// Lowered path MTUs, each with when it expires.
#[derive(Debug, Default)]
pub(crate) struct PmtuCache {
    map: HashMap<Ipv4Addr, (usize, Instant)>,
}

impl PmtuCache {
    /// The path MTU towards `dst`: `link_mtu`, or lower until expiry.
    #[inline]
    pub fn get(&self, now: Instant, dst: Ipv4Addr, link_mtu: usize) -> usize {
        if self.map.is_empty() {
            return link_mtu;
        }
        match self.map.get(&dst) {
            Some(&(mtu, until)) if until > now => mtu.min(link_mtu),
            _ => link_mtu,
        }
    }

    /// Lowers the path MTU of `dst` to `mtu` (at least [`MIN_PMTU`]), never
    /// raising it (RFC 1191 §6.3); the new value if it went down.
    pub fn lower(
        &mut self,
        now: Instant,
        dst: Ipv4Addr,
        mtu: usize,
        link_mtu: usize,
    ) -> Option<usize> {
        let new = mtu.max(MIN_PMTU);
        if new >= self.get(now, dst, link_mtu) {
            return None;
        }
        if self.map.len() >= MAX_ENTRIES && !self.map.contains_key(&dst) {
            self.map.retain(|_, (_, until)| *until > now);
            if self.map.len() >= MAX_ENTRIES {
                return None;
            }
        }
        self.map.insert(dst, (new, now + PMTU_TIMEOUT));
        Some(new)
    }

    /// The earliest expiry.
    pub fn poll_at(&self) -> Option<Instant> {
        self.map.values().map(|&(_, until)| until).min()
    }

    /// Forgets the entries due by `now`; their destinations.
    pub fn expire(&mut self, now: Instant) -> Vec<Ipv4Addr> {
        let mut gone = Vec::new();
        self.map.retain(|dst, (_, until)| {
            let keep = *until > now;
            if !keep {
                gone.push(*dst);
            }
            keep
        });
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    #[test]
    fn lowers_never_raises_floors_and_expires() {
        let mut c = PmtuCache::default();
        let t0 = Instant::from_secs(1);
        assert_eq!(c.get(t0, D, 1500), 1500);
        assert_eq!(c.lower(t0, D, 1000, 1500), Some(1000));
        assert_eq!(c.lower(t0, D, 1200, 1500), None);
        assert_eq!(c.lower(t0, D, 100, 1500), Some(MIN_PMTU));
        assert_eq!(c.get(t0, D, 1500), MIN_PMTU);
        assert_eq!(c.poll_at(), Some(t0 + PMTU_TIMEOUT));
        assert!(c
            .expire(t0 + PMTU_TIMEOUT - Duration::from_millis(1))
            .is_empty());
        assert_eq!(c.expire(t0 + PMTU_TIMEOUT), vec![D]);
        assert_eq!(c.get(t0 + PMTU_TIMEOUT, D, 1500), 1500);
    }

    #[test]
    fn plateaus() {
        assert_eq!(plateau_below(1500), 1492);
        assert_eq!(plateau_below(1492), 1006);
        assert_eq!(plateau_below(576), 508);
        assert_eq!(plateau_below(20), 68);
    }
}
