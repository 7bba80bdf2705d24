//! Server lists in the format of /etc/resolv.conf (resolv.conf(5)):
//! `nameserver ADDRESS` lines and `options timeout:N attempts:N`. Other
//! keywords (`search`, `domain`, `sortlist`, other options) are read past,
//! as the C library does; this resolver has no search list.

use crate::resolve::Config;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use ustack_core::Duration;

/// resolv.conf(5): at most MAXNS (3) servers are used; later ones are ignored.
pub const MAXNS: usize = 3;
/// resolv.conf(5) caps `timeout:` at 30 s and `attempts:` at 5.
const MAX_TIMEOUT: u64 = 30;
const MAX_ATTEMPTS: u32 = 5;

/// Parses resolv.conf text into a [`Config`] (defaults where the text says
/// nothing: 5 s and 2 attempts, as resolv.conf(5)). An address that does
/// not parse, or no `nameserver` at all, is an error naming the problem.
pub fn parse(text: &str) -> Result<Config, String> {
    let mut servers = Vec::new();
    let mut timeout = Duration::from_secs(5);
    let mut attempts = 2;
    for (i, line) in text.lines().enumerate() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                let Some(addr) = words.next() else {
                    return Err(format!(
                        "resolv.conf line {}: 'nameserver' without an address; write nameserver ADDRESS",
                        i + 1
                    ));
                };
                let ip: IpAddr = addr.parse().map_err(|_| {
                    format!(
                        "resolv.conf line {}: '{addr}' is not an IP address; write nameserver ADDRESS",
                        i + 1
                    )
                })?;
                if servers.len() < MAXNS {
                    servers.push(SocketAddr::new(ip, 53));
                }
            }
            Some("options") => {
                for opt in words {
                    let num = |v: &str| {
                        v.parse::<u64>().map_err(|_| {
                            format!(
                                "resolv.conf line {}: '{opt}' needs a whole number after the colon",
                                i + 1
                            )
                        })
                    };
                    if let Some(v) = opt.strip_prefix("timeout:") {
                        timeout = Duration::from_secs(num(v)?.clamp(1, MAX_TIMEOUT));
                    } else if let Some(v) = opt.strip_prefix("attempts:") {
                        attempts = (num(v)?.clamp(1, u64::from(MAX_ATTEMPTS))) as u32;
                    }
                }
            }
            _ => {}
        }
    }
    if servers.is_empty() {
        return Err("resolv.conf has no 'nameserver ADDRESS' line".to_string());
    }
    Ok(Config::new(servers)
        .with_timeout(timeout)
        .with_attempts(attempts))
}

/// Reads and parses a resolv.conf file; errors name the file.
pub fn load(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}
