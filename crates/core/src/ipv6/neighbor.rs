//! The neighbour cache of Neighbor Discovery (RFC 4861 §7.3): link-layer
//! addresses of on-link IPv6 neighbours, with the reachability states
//! INCOMPLETE, REACHABLE, STALE, DELAY and PROBE, and the packets held
//! while an address is resolved. Sans-IO: it says which solicitations to
//! send; the IPv6 layer builds them.

use crate::time::{Duration, Instant};
use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;
use ustack_wire::EthernetAddress;

/// RFC 4861 §7.3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighborState {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
}

/// The protocol constants of RFC 4861 §10 (host variables).
#[derive(Debug, Clone)]
pub struct NdConfig {
    /// REACHABLE_TIME (30 s; not randomised here: the stack is deterministic by seed).
    pub reachable_time: Duration,
    /// RETRANS_TIMER (1 s).
    pub retrans_timer: Duration,
    /// DELAY_FIRST_PROBE_TIME (5 s).
    pub delay_first_probe: Duration,
    /// MAX_MULTICAST_SOLICIT (3).
    pub max_multicast_solicit: u8,
    /// MAX_UNICAST_SOLICIT (3).
    pub max_unicast_solicit: u8,
    /// Packets held per INCOMPLETE entry (§7.2.2: "SHOULD retain ... at least one"; Linux: 3).
    pub max_pending: usize,
    /// Entries kept; beyond it new resolutions are refused.
    pub max_entries: usize,
}

impl Default for NdConfig {
    fn default() -> Self {
        NdConfig {
            reachable_time: Duration::from_secs(30),
            retrans_timer: Duration::from_secs(1),
            delay_first_probe: Duration::from_secs(5),
            max_multicast_solicit: 3,
            max_unicast_solicit: 3,
            max_pending: 3,
            max_entries: 256,
        }
    }
}

#[derive(Debug)]
struct Entry {
    state: NeighborState,
    mac: Option<EthernetAddress>,
    /// When the state's timer fires (REACHABLE: turns STALE; INCOMPLETE,
    /// PROBE: next solicitation; DELAY: turns PROBE). STALE has none.
    deadline: Option<Instant>,
    /// Solicitations sent in this INCOMPLETE or PROBE run.
    probes: u8,
    pending: VecDeque<Vec<u8>>,
}

/// A solicitation to send: to the solicited-node group (resolution) or
/// unicast to the cached address (reachability probe, §7.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solicit {
    Multicast(Ipv6Addr),
    Unicast(Ipv6Addr, EthernetAddress),
}

/// What to do with a packet for a neighbour.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Send it to this address now.
    Send(EthernetAddress),
    /// Held until resolution; solicit if `Some`. A packet pushed out of
    /// the full queue comes back in `dropped`.
    Held {
        solicit: Option<Solicit>,
        dropped: bool,
    },
    /// The cache is full: dropped.
    Refused,
}

/// What a timer run gives back.
#[derive(Debug, Default)]
pub struct Expired {
    pub solicits: Vec<Solicit>,
    /// Addresses given up on, with the packets that were waiting.
    pub failed: Vec<(Ipv6Addr, Vec<Vec<u8>>)>,
}

/// The neighbour cache.
#[derive(Debug, Default)]
pub struct NeighborCache {
    cfg: NdConfig,
    entries: HashMap<Ipv6Addr, Entry>,
    next: Option<Instant>,
}

impl NeighborCache {
    pub fn new(cfg: NdConfig) -> Self {
        NeighborCache {
            cfg,
            entries: HashMap::new(),
            next: None,
        }
    }

    fn recompute(&mut self) {
        self.next = self.entries.values().filter_map(|e| e.deadline).min();
    }

    /// The earliest timer.
    pub fn poll_at(&self) -> Option<Instant> {
        self.next
    }

    /// The state and address of `ip`, if cached.
    pub fn get(&self, ip: &Ipv6Addr) -> Option<(NeighborState, Option<EthernetAddress>)> {
        self.entries.get(ip).map(|e| (e.state, e.mac))
    }

    /// A packet (whole IPv6 packet) for `ip` (RFC 4861 §7.2.2, §7.3.3).
    pub fn lookup(&mut self, now: Instant, ip: Ipv6Addr, packet: &[u8]) -> Lookup {
        let cfg = &self.cfg;
        let out = match self.entries.get_mut(&ip) {
            None => {
                if self.entries.len() >= cfg.max_entries {
                    return Lookup::Refused;
                }
                let mut pending = VecDeque::new();
                pending.push_back(packet.to_vec());
                self.entries.insert(
                    ip,
                    Entry {
                        state: NeighborState::Incomplete,
                        mac: None,
                        deadline: Some(now + cfg.retrans_timer),
                        probes: 1,
                        pending,
                    },
                );
                Lookup::Held {
                    solicit: Some(Solicit::Multicast(ip)),
                    dropped: false,
                }
            }
            Some(e) => {
                if e.state == NeighborState::Reachable && e.deadline.is_some_and(|d| d <= now) {
                    e.state = NeighborState::Stale;
                    e.deadline = None;
                }
                match (e.state, e.mac) {
                    (NeighborState::Incomplete, _) | (_, None) => {
                        let dropped = e.pending.len() >= cfg.max_pending;
                        if dropped {
                            e.pending.pop_front();
                        }
                        e.pending.push_back(packet.to_vec());
                        Lookup::Held {
                            solicit: None,
                            dropped,
                        }
                    }
                    (NeighborState::Stale, Some(mac)) => {
                        // §7.3.3: first use of a STALE entry starts DELAY.
                        e.state = NeighborState::Delay;
                        e.deadline = Some(now + cfg.delay_first_probe);
                        Lookup::Send(mac)
                    }
                    (_, Some(mac)) => Lookup::Send(mac),
                }
            }
        };
        self.recompute();
        out
    }

    /// The link-layer address a Neighbor Solicitation (or Router
    /// Solicitation/Advertisement) carried for its sender (§7.2.3): a new
    /// or changed address is STALE; held packets go out.
    pub fn learn_from_solicit(
        &mut self,
        ip: Ipv6Addr,
        mac: EthernetAddress,
    ) -> Option<(EthernetAddress, Vec<Vec<u8>>)> {
        let released = match self.entries.get_mut(&ip) {
            None => {
                if self.entries.len() >= self.cfg.max_entries {
                    return None;
                }
                self.entries.insert(ip, stale(mac));
                None
            }
            Some(e) if e.mac != Some(mac) => {
                let pending = std::mem::take(&mut e.pending);
                *e = stale(mac);
                Some((mac, pending.into()))
            }
            Some(_) => None,
        };
        self.recompute();
        released.filter(|(_, p): &(EthernetAddress, Vec<Vec<u8>>)| !p.is_empty())
    }

    /// A Neighbor Advertisement for `target` (§7.2.5). Returns the held
    /// packets to send now, with the address.
    pub fn advert(
        &mut self,
        now: Instant,
        target: Ipv6Addr,
        mac: Option<EthernetAddress>,
        solicited: bool,
        override_: bool,
    ) -> Option<(EthernetAddress, Vec<Vec<u8>>)> {
        let reach = now + self.cfg.reachable_time;
        // No entry: the advertisement is silently discarded (§7.2.5).
        let e = self.entries.get_mut(&target)?;
        let mut released = None;
        if e.state == NeighborState::Incomplete {
            let mac = mac?;
            e.mac = Some(mac);
            if solicited {
                e.state = NeighborState::Reachable;
                e.deadline = Some(reach);
            } else {
                e.state = NeighborState::Stale;
                e.deadline = None;
            }
            e.probes = 0;
            released = Some((mac, e.pending.drain(..).collect()));
        } else {
            let differs = mac.is_some_and(|m| Some(m) != e.mac);
            if !override_ && differs {
                // §7.2.5: a REACHABLE entry turns STALE; nothing else changes.
                if e.state == NeighborState::Reachable {
                    e.state = NeighborState::Stale;
                    e.deadline = None;
                }
            } else {
                if let Some(m) = mac {
                    e.mac = Some(m);
                }
                if solicited {
                    e.state = NeighborState::Reachable;
                    e.deadline = Some(reach);
                    e.probes = 0;
                } else if differs {
                    e.state = NeighborState::Stale;
                    e.deadline = None;
                }
            }
        }
        self.recompute();
        released
    }

    /// Runs the timers due at `now` (§7.3.3, §7.2.2).
    pub fn poll(&mut self, now: Instant) -> Expired {
        let mut out = Expired::default();
        if self.next.is_none_or(|t| t > now) {
            return out;
        }
        let cfg = self.cfg.clone();
        let mut gone = Vec::new();
        for (ip, e) in self.entries.iter_mut() {
            if e.deadline.is_none_or(|d| d > now) {
                continue;
            }
            match e.state {
                NeighborState::Reachable => {
                    e.state = NeighborState::Stale;
                    e.deadline = None;
                }
                NeighborState::Delay => {
                    e.state = NeighborState::Probe;
                    e.probes = 1;
                    e.deadline = Some(now + cfg.retrans_timer);
                    if let Some(mac) = e.mac {
                        out.solicits.push(Solicit::Unicast(*ip, mac));
                    }
                }
                NeighborState::Incomplete if e.probes < cfg.max_multicast_solicit => {
                    e.probes += 1;
                    e.deadline = Some(now + cfg.retrans_timer);
                    out.solicits.push(Solicit::Multicast(*ip));
                }
                NeighborState::Probe if e.probes < cfg.max_unicast_solicit => {
                    e.probes += 1;
                    e.deadline = Some(now + cfg.retrans_timer);
                    if let Some(mac) = e.mac {
                        out.solicits.push(Solicit::Unicast(*ip, mac));
                    }
                }
                NeighborState::Incomplete | NeighborState::Probe => gone.push(*ip),
                NeighborState::Stale => e.deadline = None,
            }
        }
        for ip in gone {
            if let Some(e) = self.entries.remove(&ip) {
                out.failed.push((ip, e.pending.into()));
            }
        }
        self.recompute();
        out
    }
}

fn stale(mac: EthernetAddress) -> Entry {
    Entry {
        state: NeighborState::Stale,
        mac: Some(mac),
        deadline: None,
        probes: 0,
        pending: VecDeque::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const MAC2: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 3]);

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn incomplete_reachable_stale_delay_probe_reachable() {
        let mut c = NeighborCache::new(NdConfig::default());
        // Unknown: INCOMPLETE, packet held, a multicast solicitation.
        assert_eq!(
            c.lookup(t(0), IP, b"p1"),
            Lookup::Held {
                solicit: Some(Solicit::Multicast(IP)),
                dropped: false
            }
        );
        assert_eq!(c.get(&IP), Some((NeighborState::Incomplete, None)));
        assert_eq!(c.poll_at(), Some(t(1000)));
        // A solicited advertisement: REACHABLE, the packet released.
        let (mac, held) = c.advert(t(10), IP, Some(MAC), true, true).unwrap();
        assert_eq!((mac, held), (MAC, vec![b"p1".to_vec()]));
        assert_eq!(c.get(&IP), Some((NeighborState::Reachable, Some(MAC))));
        assert_eq!(c.lookup(t(20), IP, b"p2"), Lookup::Send(MAC));
        // ReachableTime later: STALE.
        assert!(c.poll(t(30_010)).solicits.is_empty());
        assert_eq!(c.get(&IP).unwrap().0, NeighborState::Stale);
        // Used while STALE: sent at once, DELAY for 5 s, then PROBE (unicast).
        assert_eq!(c.lookup(t(31_000), IP, b"p3"), Lookup::Send(MAC));
        assert_eq!(c.get(&IP).unwrap().0, NeighborState::Delay);
        assert!(c.poll(t(35_999)).solicits.is_empty());
        assert_eq!(c.poll(t(36_000)).solicits, vec![Solicit::Unicast(IP, MAC)]);
        assert_eq!(c.get(&IP).unwrap().0, NeighborState::Probe);
        // The probe answered: REACHABLE again.
        assert!(c.advert(t(36_100), IP, Some(MAC), true, false).is_none());
        assert_eq!(c.get(&IP).unwrap().0, NeighborState::Reachable);
    }

    #[test]
    fn unanswered_resolution_gives_up_after_three() {
        let mut c = NeighborCache::new(NdConfig::default());
        c.lookup(t(0), IP, b"p1");
        for i in 0..5 {
            c.lookup(t(1), IP, &[i]);
        }
        // Three held at most: the oldest went.
        assert_eq!(c.poll(t(1000)).solicits, vec![Solicit::Multicast(IP)]);
        assert_eq!(c.poll(t(2000)).solicits, vec![Solicit::Multicast(IP)]);
        let e = c.poll(t(3000));
        assert!(e.solicits.is_empty());
        assert_eq!(e.failed, vec![(IP, vec![vec![2], vec![3], vec![4]])]);
        assert_eq!(c.get(&IP), None);
        assert_eq!(c.poll_at(), None);
    }

    #[test]
    fn probe_unanswered_deletes_the_entry() {
        let mut c = NeighborCache::new(NdConfig::default());
        assert!(c.learn_from_solicit(IP, MAC).is_none());
        assert_eq!(c.get(&IP), Some((NeighborState::Stale, Some(MAC))));
        c.lookup(t(0), IP, b"x");
        assert_eq!(c.poll(t(5000)).solicits.len(), 1);
        assert_eq!(c.poll(t(6000)).solicits.len(), 1);
        assert_eq!(c.poll(t(7000)).solicits.len(), 1);
        let e = c.poll(t(8000));
        assert_eq!(e.failed.len(), 1);
        assert_eq!(c.get(&IP), None);
    }

    #[test]
    fn advert_rules_of_section_7_2_5() {
        let mut c = NeighborCache::new(NdConfig::default());
        // No entry: ignored (no entry created).
        assert!(c.advert(t(0), IP, Some(MAC), true, true).is_none());
        assert_eq!(c.get(&IP), None);
        c.lookup(t(0), IP, b"x");
        // INCOMPLETE, no address in the advert: ignored.
        assert!(c.advert(t(1), IP, None, true, true).is_none());
        assert_eq!(c.get(&IP).unwrap().0, NeighborState::Incomplete);
        // Unsolicited with an address: STALE.
        c.advert(t(2), IP, Some(MAC), false, true);
        assert_eq!(c.get(&IP), Some((NeighborState::Stale, Some(MAC))));
        c.advert(t(3), IP, Some(MAC), true, false);
        assert_eq!(c.get(&IP).unwrap().0, NeighborState::Reachable);
        // Another address without override: REACHABLE turns STALE, address kept.
        c.advert(t(4), IP, Some(MAC2), true, false);
        assert_eq!(c.get(&IP), Some((NeighborState::Stale, Some(MAC))));
        // With override: the new address, REACHABLE when solicited.
        c.advert(t(5), IP, Some(MAC2), true, true);
        assert_eq!(c.get(&IP), Some((NeighborState::Reachable, Some(MAC2))));
        // A solicitation from it with yet another address: STALE, updated.
        c.learn_from_solicit(IP, MAC);
        assert_eq!(c.get(&IP), Some((NeighborState::Stale, Some(MAC))));
    }
}
