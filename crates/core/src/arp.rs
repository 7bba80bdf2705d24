//! The ARP cache and address resolution for Ethernet links (RFC 826,
//! RFC 1122 §2.3.2.2: hold at least one packet per unresolved address).
//!
//! Pure bookkeeping: the stack asks it what to send and when; it never sends.

use crate::config::ArpConfig;
use crate::time::Instant;
use std::collections::{HashMap, VecDeque};
use ustack_wire::{EthernetAddress, Ipv4Addr};

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: EthernetAddress,
    expires_at: Instant,
    learned_at: Instant,
}

#[derive(Debug)]
struct Pending<T> {
    packets: VecDeque<T>,
    requests_sent: u32,
    next_request_at: Instant,
}

/// What a timer run or a lookup asks the stack to do.
#[derive(Debug, PartialEq, Eq)]
pub enum ArpAction {
    /// Broadcast a request for this address.
    Request(Ipv4Addr),
}

/// Result of giving up on an address: the packets that were waiting for it.
pub struct Failed<T> {
    pub addr: Ipv4Addr,
    pub packets: VecDeque<T>,
}

/// The neighbour table, with bounded queues of packets awaiting resolution.
#[derive(Debug)]
pub struct ArpCache<T> {
    cfg: ArpConfig,
    entries: HashMap<Ipv4Addr, Entry>,
    pending: HashMap<Ipv4Addr, Pending<T>>,
}

impl<T> ArpCache<T> {
    pub fn new(cfg: ArpConfig) -> Self {
        ArpCache {
            cfg,
            entries: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    /// The hardware address of `ip` if known and fresh.
    pub fn lookup(&self, now: Instant, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.entries
            .get(&ip)
            .filter(|e| e.expires_at > now)
            .map(|e| e.mac)
    }

    /// Number of cached (possibly stale) entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Fresh entries, for display.
    pub fn entries(&self, now: Instant) -> Vec<(Ipv4Addr, EthernetAddress)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at > now)
            .map(|(ip, e)| (*ip, e.mac))
            .collect();
        v.sort();
        v
    }

    /// Records `ip → mac` and returns the packets that were waiting for it.
    /// Returns the number of entries evicted to make room (0 or 1).
    pub fn learn(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        mac: EthernetAddress,
    ) -> (VecDeque<T>, u64) {
        let mut evicted = 0;
        if !self.entries.contains_key(&ip) && self.entries.len() >= self.cfg.max_entries {
            // Evict the stalest entry; the table stays bounded whatever the wire sends.
            if let Some(victim) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.learned_at)
                .map(|(ip, _)| *ip)
            {
                self.entries.remove(&victim);
                evicted = 1;
            }
        }
        self.entries.insert(
            ip,
            Entry {
                mac,
                expires_at: now + self.cfg.entry_ttl,
                learned_at: now,
            },
        );
        let waiting = self
            .pending
            .remove(&ip)
            .map(|p| p.packets)
            .unwrap_or_default();
        (waiting, evicted)
    }

    /// Whether we already have an entry for `ip` (RFC 826 "merge" rule: only
    /// entries that exist are updated by packets not addressed to us).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.entries.contains_key(&ip)
    }

    /// Parks `packet` until `ip` resolves. Returns a request to send if none
    /// is outstanding, and the packet dropped to stay within the limit.
    pub fn enqueue(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        packet: T,
    ) -> (Option<ArpAction>, Option<T>) {
        let max = self.cfg.max_pending_per_neighbor.max(1);
        let retry = self.cfg.retry_interval;
        let mut action = None;
        let p = self.pending.entry(ip).or_insert_with(|| {
            action = Some(ArpAction::Request(ip));
            Pending {
                packets: VecDeque::new(),
                requests_sent: 1,
                next_request_at: now + retry,
            }
        });
        p.packets.push_back(packet);
        let dropped = if p.packets.len() > max {
            p.packets.pop_front()
        } else {
            None
        };
        (action, dropped)
    }

    /// Earliest time a retry or give-up is due.
    pub fn poll_at(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.next_request_at).min()
    }

    /// Runs retries due at `now`: returns requests to send and the
    /// resolutions that failed (after `max_requests` requests).
    pub fn poll(&mut self, now: Instant) -> (Vec<ArpAction>, Vec<Failed<T>>) {
        let mut actions = Vec::new();
        let mut failed_addrs = Vec::new();
        for (ip, p) in self.pending.iter_mut() {
            if p.next_request_at > now {
                continue;
            }
            if p.requests_sent >= self.cfg.max_requests {
                failed_addrs.push(*ip);
            } else {
                p.requests_sent += 1;
                p.next_request_at = now + self.cfg.retry_interval;
                actions.push(ArpAction::Request(*ip));
            }
        }
        failed_addrs.sort();
        actions.sort_by_key(|ArpAction::Request(ip)| *ip);
        let failed = failed_addrs
            .into_iter()
            .filter_map(|addr| {
                self.pending.remove(&addr).map(|p| Failed {
                    addr,
                    packets: p.packets,
                })
            })
            .collect();
        (actions, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    #[test]
    fn resolves_and_flushes_waiting_packets() {
        let mut c: ArpCache<u32> = ArpCache::new(ArpConfig::default());
        let t0 = Instant::from_secs(1);
        assert_eq!(c.enqueue(t0, IP, 1), (Some(ArpAction::Request(IP)), None));
        assert_eq!(c.enqueue(t0, IP, 2), (None, None));
        let (waiting, _) = c.learn(t0, IP, MAC);
        assert_eq!(waiting, vec![1, 2]);
        assert_eq!(c.lookup(t0, IP), Some(MAC));
        assert_eq!(
            c.lookup(t0 + Duration::from_secs(61), IP),
            None,
            "entries expire"
        );
    }

    #[test]
    fn retries_then_gives_up() {
        let cfg = ArpConfig {
            max_requests: 3,
            ..Default::default()
        };
        let mut c: ArpCache<u32> = ArpCache::new(cfg);
        let t0 = Instant::from_secs(0);
        c.enqueue(t0, IP, 7);
        assert_eq!(c.poll_at(), Some(Instant::from_secs(1)));
        let (a, f) = c.poll(Instant::from_millis(999));
        assert!(a.is_empty() && f.is_empty());
        let (a, f) = c.poll(Instant::from_secs(1));
        assert_eq!((a.len(), f.len()), (1, 0));
        let (a, f) = c.poll(Instant::from_secs(2));
        assert_eq!((a.len(), f.len()), (1, 0));
        let (a, f) = c.poll(Instant::from_secs(3));
        assert_eq!(a.len(), 0);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].packets, vec![7]);
        assert_eq!(c.poll_at(), None);
    }

    #[test]
    fn pending_queue_and_table_are_bounded() {
        let cfg = ArpConfig {
            max_pending_per_neighbor: 2,
            max_entries: 2,
            ..Default::default()
        };
        let mut c: ArpCache<u32> = ArpCache::new(cfg);
        let t = Instant::ZERO;
        c.enqueue(t, IP, 1);
        c.enqueue(t, IP, 2);
        assert_eq!(c.enqueue(t, IP, 3).1, Some(1), "oldest dropped");
        for i in 0..10u8 {
            c.learn(
                t + Duration::from_secs(i as u64),
                Ipv4Addr::new(10, 0, 1, i),
                MAC,
            );
        }
        assert_eq!(c.len(), 2);
    }
}
