//! A cache of answers that honours their TTLs (RFC 1035 §3.2.1), negative
//! answers included (RFC 2308 §5), on the caller's clock.

use crate::message::Family;
use std::collections::HashMap;
use std::net::IpAddr;
use ustack_core::{Duration, Instant};

/// What the cache holds for a name and family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    Addresses {
        canonical: String,
        addrs: Vec<IpAddr>,
    },
    /// RFC 2308 §5: the name does not exist.
    NxDomain,
    /// RFC 2308 §5: no record of that type.
    NoData,
}

#[derive(Debug, Clone)]
struct Entry {
    value: Cached,
    expires: Instant,
}

/// Entries keyed by lower-case fully qualified name and family.
#[derive(Debug)]
pub struct Cache {
    map: HashMap<(String, Family), Entry>,
    capacity: usize,
    /// Cap on any TTL (RFC 2308 §5 suggests one to three hours for negative ones).
    max_ttl: u32,
    max_negative_ttl: u32,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            map: HashMap::new(),
            capacity,
            max_ttl: 86_400,
            max_negative_ttl: 3_600,
        }
    }

    /// The entry for `name`, if its TTL has not run out, with the seconds left.
    pub fn get(&mut self, name: &str, family: Family, now: Instant) -> Option<(Cached, u32)> {
        let key = (name.to_ascii_lowercase(), family);
        let e = self.map.get(&key)?;
        if e.expires <= now {
            self.map.remove(&key);
            return None;
        }
        let left = e.expires.saturating_duration_since(now).as_secs() as u32;
        Some((e.value.clone(), left))
    }

    /// Stores `value` for `ttl` seconds; a TTL of 0 stores nothing
    /// (RFC 1035 §3.2.1: use for this transaction only).
    pub fn put(&mut self, name: &str, family: Family, value: Cached, ttl: u32, now: Instant) {
        let cap = match value {
            Cached::Addresses { .. } => self.max_ttl,
            _ => self.max_negative_ttl,
        };
        let ttl = ttl.min(cap);
        if ttl == 0 || self.capacity == 0 {
            return;
        }
        if self.map.len() >= self.capacity {
            self.map.retain(|_, e| e.expires > now);
            if self.map.len() >= self.capacity {
                // Still full: drop the entry closest to expiry.
                if let Some(k) = self
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone())
                {
                    self.map.remove(&k);
                }
            }
        }
        self.map.insert(
            (name.to_ascii_lowercase(), family),
            Entry {
                value,
                expires: now + Duration::from_secs(u64::from(ttl)),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}
