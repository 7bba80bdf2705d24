//! A hosts-file map (the format of /etc/hosts, hosts(5)): consulted before
//! any server.

use crate::message::Family;
use std::collections::HashMap;
use std::net::IpAddr;

/// Names to addresses; names are matched without case and without a final dot.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    map: HashMap<String, Vec<IpAddr>>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Hosts {
    pub fn new() -> Hosts {
        Hosts::default()
    }

    /// Parses hosts(5) text: `ADDRESS NAME [ALIAS...]`, `#` comments.
    /// A bad address is an error naming its line.
    pub fn parse(text: &str) -> Result<Hosts, String> {
        let mut h = Hosts::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(addr) = words.next() else { continue };
            let ip: IpAddr = addr.parse().map_err(|_| {
                format!(
                    "hosts line {}: '{addr}' is not an IP address; write ADDRESS NAME [ALIAS...]",
                    i + 1
                )
            })?;
            let mut any = false;
            for name in words {
                h.insert(name, ip);
                any = true;
            }
            if !any {
                return Err(format!(
                    "hosts line {}: address {addr} has no name; write ADDRESS NAME [ALIAS...]",
                    i + 1
                ));
            }
        }
        Ok(h)
    }

    /// Reads and parses a hosts file (`/etc/hosts` or another); errors name
    /// the file and the line.
    pub fn load(path: &std::path::Path) -> Result<Hosts, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read hosts file {}: {e}", path.display()))?;
        Hosts::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn insert(&mut self, name: &str, ip: IpAddr) {
        let v = self.map.entry(key(name)).or_default();
        if !v.contains(&ip) {
            v.push(ip);
        }
    }

    /// The addresses of `name` in `family`, if the map has any.
    pub fn lookup(&self, name: &str, family: Family) -> Option<Vec<IpAddr>> {
        let v: Vec<IpAddr> = self
            .map
            .get(&key(name))?
            .iter()
            .copied()
            .filter(|ip| match family {
                Family::V4 => ip.is_ipv4(),
                Family::V6 => ip.is_ipv6(),
            })
            .collect();
        (!v.is_empty()).then_some(v)
    }

    /// Whether the map knows `name` in any family (then no server is asked).
    pub fn knows(&self, name: &str) -> bool {
        self.map.contains_key(&key(name))
    }
}
