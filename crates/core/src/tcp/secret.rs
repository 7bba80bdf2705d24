//! Keyed hashes: initial sequence numbers (RFC 6528), SYN cookies
//! (RFC 4987 §3.6), and the SO_REUSEPORT spread.

use crate::rng::Rng;
use crate::time::Instant;
use core::hash::Hasher;
use siphasher::sip::SipHasher13;
use std::net::{IpAddr, SocketAddr};
use ustack_wire::SeqNumber;

/// MSS values a cookie can carry (3 bits), ascending.
const COOKIE_MSS: [u16; 8] = [536, 1200, 1300, 1400, 1440, 1460, 4312, 8960];
/// A cookie's time counter ticks every 64 s; one tick back is accepted.
const COOKIE_TICK_SECS: u64 = 64;

/// Per-stack random keys.
#[derive(Debug, Clone)]
pub(crate) struct Secret {
    isn: (u64, u64),
    cookie: (u64, u64),
}

fn hash(key: (u64, u64), local: SocketAddr, remote: SocketAddr, extra: &[u32]) -> u64 {
    let mut h = SipHasher13::new_with_keys(key.0, key.1);
    for ip in [local.ip(), remote.ip()] {
        match ip {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
    }
    h.write_u16(local.port());
    h.write_u16(remote.port());
    for e in extra {
        h.write_u32(*e);
    }
    h.finish()
}

impl Secret {
    pub(crate) fn new(rng: &mut Rng) -> Secret {
        Secret {
            isn: (rng.next_u64(), rng.next_u64()),
            cookie: (rng.next_u64(), rng.next_u64()),
        }
    }

    /// RFC 6528 §3: ISN = M + F(4-tuple, secret), M a 4 µs clock.
    pub(crate) fn isn(&self, local: SocketAddr, remote: SocketAddr, now: Instant) -> SeqNumber {
        let f = hash(self.isn, local, remote, &[]) as u32;
        SeqNumber(f.wrapping_add((now.total_micros() / 4) as u32))
    }

    /// A per-connection timestamp offset (RFC 7323 §5.4).
    pub(crate) fn ts_offset(&self, local: SocketAddr, remote: SocketAddr) -> u32 {
        (hash(self.isn, local, remote, &[1]) >> 32) as u32
    }

    /// The connection table's hash of a 4-tuple (keyed, so a peer cannot
    /// aim many 4-tuples at one bucket).
    /// IPv4 in two 64-bit words (this runs for every segment the
    /// one-entry cache misses).
    #[inline]
    pub(crate) fn table(&self, local: SocketAddr, remote: SocketAddr) -> u64 {
        match (local.ip(), remote.ip()) {
            (IpAddr::V4(l), IpAddr::V4(r)) => {
                let mut h = SipHasher13::new_with_keys(self.isn.0, self.isn.1);
                h.write_u64(u64::from(u32::from(l)) << 32 | u64::from(u32::from(r)));
                let ports = u64::from(local.port()) << 16 | u64::from(remote.port());
                // The 3 keeps it apart from `isn`'s hash of the same tuple.
                h.write_u64(ports << 32 | 3);
                h.finish()
            }
            _ => hash(self.isn, local, remote, &[3]),
        }
    }

    /// Picks one of `n` SO_REUSEPORT listeners for a 4-tuple.
    pub(crate) fn spread(&self, local: SocketAddr, remote: SocketAddr, n: usize) -> usize {
        (hash(self.isn, local, remote, &[2]) % n.max(1) as u64) as usize
    }

    /// The cookie ISN for a SYN: 5 bits of time, 3 bits of MSS index, 24 bits of MAC.
    pub(crate) fn cookie(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        client_isn: SeqNumber,
        peer_mss: u16,
        now: Instant,
    ) -> (SeqNumber, u16) {
        let idx = COOKIE_MSS.iter().rposition(|&m| m <= peer_mss).unwrap_or(0) as u32;
        let t = (now.total_micros() / 1_000_000 / COOKIE_TICK_SECS) as u32;
        let mac = hash(self.cookie, local, remote, &[client_isn.0, t, idx]) as u32;
        let c = ((t & 0x1f) << 27) | (idx << 24) | (mac & 0x00ff_ffff);
        (SeqNumber(c), COOKIE_MSS[idx as usize])
    }

    /// Checks the cookie an ACK returns; the MSS it carried if valid.
    pub(crate) fn check_cookie(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        client_isn: SeqNumber,
        cookie: SeqNumber,
        now: Instant,
    ) -> Option<u16> {
        let c = cookie.0;
        let idx = (c >> 24) & 7;
        let cur = (now.total_micros() / 1_000_000 / COOKIE_TICK_SECS) as u32;
        (0..2u32).find_map(|back| {
            let t = cur.checked_sub(back)?;
            if t & 0x1f != c >> 27 {
                return None;
            }
            let mac = hash(self.cookie, local, remote, &[client_isn.0, t, idx]) as u32;
            (mac & 0x00ff_ffff == c & 0x00ff_ffff).then_some(COOKIE_MSS[idx as usize])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn cookies_round_trip_and_expire() {
        let s = Secret::new(&mut Rng::new(1));
        let l = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80);
        let r = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
        let now = Instant::from_secs(1000);
        let (c, mss) = s.cookie(l, r, SeqNumber(7), 1460, now);
        assert_eq!(mss, 1460);
        assert_eq!(s.check_cookie(l, r, SeqNumber(7), c, now), Some(1460));
        assert_eq!(
            s.check_cookie(
                l,
                r,
                SeqNumber(7),
                c,
                now + core::time::Duration::from_secs(64)
            ),
            Some(1460)
        );
        assert_eq!(
            s.check_cookie(
                l,
                r,
                SeqNumber(7),
                c,
                now + core::time::Duration::from_secs(200)
            ),
            None
        );
        assert_eq!(s.check_cookie(l, r, SeqNumber(8), c, now), None);
        assert_eq!(s.check_cookie(l, r, SeqNumber(7), c + 1, now), None);
        let r2 = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40001);
        assert_eq!(s.check_cookie(l, r2, SeqNumber(7), c, now), None);
        // ISNs differ per 4-tuple and advance with time (RFC 6528).
        assert_ne!(s.isn(l, r, now), s.isn(l, r2, now));
        assert_eq!(
            s.isn(l, r, now + core::time::Duration::from_micros(4)).0,
            s.isn(l, r, now).0.wrapping_add(1)
        );
    }

    #[test]
    fn ipv6_isns_hash_the_whole_address() {
        // RFC 6528 §3 over IPv6: every byte of the 4-tuple counts, and a
        // v4-mapped peer is not its IPv4 self.
        let s = Secret::new(&mut Rng::new(1));
        let v6 = |a: &str, port| SocketAddr::new(a.parse().unwrap(), port);
        let l = v6("fd00::2", 80);
        let now = Instant::from_secs(1000);
        let isn = |r| s.isn(l, r, now).0;
        let base = isn(v6("fd00::1", 40000));
        assert_ne!(base, isn(v6("fd01::1", 40000)), "the first bytes");
        assert_ne!(base, isn(v6("fd00::1:0:0:1", 40000)), "the middle bytes");
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000);
        assert_ne!(
            s.isn(l, v4, now),
            s.isn(l, v6("::ffff:10.0.0.1", 40000), now)
        );
    }
}
