//! Names to addresses for the commands: `ustack resolve NAME`, and the
//! host names `get` and `connect` accept, through ustack-dns on the
//! command's own link. The server is `--dns`, by default the kernel's
//! address on the link (dnsmasq or any resolver listening there).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use ustack::Runtime;
use ustack_dns::{Config, Family, Hosts, Resolver, Source};

/// A resolver asking `server` on port 53, after the `--hosts` map if given.
pub fn resolver(server: Ipv4Addr, hosts: Option<Hosts>) -> Resolver {
    let cfg = Config::new(vec![SocketAddr::V4(SocketAddrV4::new(server, 53))]);
    Resolver::new(match hosts {
        Some(h) => cfg.with_hosts(h),
        None => cfg,
    })
}

/// `--hosts FILE`: read at once, so a bad file is reported before any link
/// is opened.
pub fn hosts_file(path: &str) -> Result<Hosts, String> {
    Hosts::load(std::path::Path::new(path))
}

/// Checks that `host` is an IP literal (IPv6 in brackets or bare) or a
/// host name, for the parsers.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() || v6_literal(host).is_some() {
        return Ok(());
    }
    ustack_dns::resolve::parse_name(host)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The address in an IPv6 literal written in brackets, `[fd00::1]` (RFC 3986 §3.2.2).
pub fn v6_literal(host: &str) -> Option<Ipv6Addr> {
    host.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// `host`'s address, with `port`: an IPv6 literal as it is, else the
/// first IPv4 address of the literal or name.
pub fn socket_addr(
    rt: &Runtime,
    r: &Resolver,
    host: &str,
    port: u16,
) -> Result<SocketAddr, String> {
    if let Some(ip) = v6_literal(host).or_else(|| host.parse().ok()) {
        return Ok(SocketAddr::new(IpAddr::V6(ip), port));
    }
    let ips = r.lookup_ipv4(rt, host).map_err(|e| e.to_string())?;
    ips.first()
        .map(|ip| SocketAddr::V4(SocketAddrV4::new(*ip, port)))
        .ok_or_else(|| format!("{host}: no IPv4 address"))
}

/// `ustack resolve NAME`: like host(1), one line per address.
pub fn run(rt: &Runtime, r: &Resolver, name: &str) -> Result<String, String> {
    let a = r.lookup(rt, name, Family::V4).map_err(|e| e.to_string())?;
    let mut out = String::new();
    let asked = name.trim_end_matches('.').to_ascii_lowercase();
    if a.canonical != asked && a.source != Source::Literal {
        out.push_str(&format!("{asked} is an alias for {}.\n", a.canonical));
    }
    let from = match a.source {
        Source::Literal => "literal".to_string(),
        Source::Hosts => "hosts".to_string(),
        Source::Cache => "cache".to_string(),
        Source::Server(s) => format!("server {}", s.ip()),
    };
    for ip in &a.addrs {
        let kind = match ip {
            IpAddr::V4(_) => "address",
            IpAddr::V6(_) => "IPv6 address",
        };
        out.push_str(&format!(
            "{} has {kind} {ip} (ttl {}, from {from})\n",
            a.canonical, a.ttl
        ));
    }
    Ok(out)
}
