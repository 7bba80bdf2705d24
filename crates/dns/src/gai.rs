//! `getaddrinfo` in the POSIX shape (POSIX.1-2017 getaddrinfo(3), RFC 3493
//! §6.1), over the resolver: a node name and a service give socket addresses.

use crate::message::Family;
use crate::resolve::{Error, Resolver};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use ustack::Runtime;

pub use libc::{
    AF_INET, AF_INET6, AF_UNSPEC, AI_CANONNAME, AI_NUMERICHOST, AI_NUMERICSERV, AI_PASSIVE,
    EAI_AGAIN, EAI_FAIL, EAI_FAMILY, EAI_NONAME, EAI_SERVICE, EAI_SOCKTYPE, IPPROTO_TCP,
    IPPROTO_UDP, SOCK_DGRAM, SOCK_STREAM,
};

/// The `hints` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrInfoHints {
    pub flags: i32,
    pub family: i32,
    pub socktype: i32,
    pub protocol: i32,
}

impl Default for AddrInfoHints {
    fn default() -> Self {
        AddrInfoHints {
            flags: 0,
            family: AF_UNSPEC,
            socktype: 0,
            protocol: 0,
        }
    }
}

/// One result, like `struct addrinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    pub family: i32,
    pub socktype: i32,
    pub protocol: i32,
    pub addr: SocketAddr,
    /// With AI_CANONNAME, on the first result.
    pub canonname: Option<String>,
}

/// An `EAI_*` code with a message saying what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaiError {
    pub code: i32,
    pub message: String,
}

impl fmt::Display for GaiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GaiError {}

fn gai(code: i32, message: impl Into<String>) -> GaiError {
    GaiError {
        code,
        message: message.into(),
    }
}

impl From<Error> for GaiError {
    fn from(e: Error) -> GaiError {
        let code = match e {
            Error::InvalidName { .. } | Error::NxDomain { .. } | Error::NoData { .. } => EAI_NONAME,
            Error::Timeout { .. } => EAI_AGAIN,
            Error::ServerError {
                rcode: hickory_proto::op::ResponseCode::ServFail,
                ..
            } => EAI_AGAIN,
            Error::ServerError { .. } | Error::TooManyAliases { .. } | Error::NoServers => EAI_FAIL,
        };
        gai(code, e.to_string())
    }
}

/// Well-known services (a few of /etc/services).
const SERVICES: &[(&str, u16)] = &[
    ("echo", 7),
    ("discard", 9),
    ("chargen", 19),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("http", 80),
    ("pop3", 110),
    ("ntp", 123),
    ("imap", 143),
    ("https", 443),
];

fn port_of(service: Option<&str>, flags: i32) -> Result<u16, GaiError> {
    let Some(s) = service else { return Ok(0) };
    if let Ok(p) = s.parse::<u16>() {
        return Ok(p);
    }
    if flags & AI_NUMERICSERV != 0 {
        return Err(gai(
            EAI_NONAME,
            format!("service '{s}' is not a port number (AI_NUMERICSERV)"),
        ));
    }
    SERVICES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|(_, p)| *p)
        .ok_or_else(|| {
            gai(
                EAI_SERVICE,
                format!("unknown service '{s}'; give a port number"),
            )
        })
}

/// Resolves `node` and `service` to addresses for sockets (RFC 3493 §6.1).
/// At least one of the two must be given. Without `node`, the addresses are
/// the wildcard (AI_PASSIVE) or the loopback.
pub fn getaddrinfo(
    rt: &Runtime,
    resolver: &Resolver,
    node: Option<&str>,
    service: Option<&str>,
    hints: Option<&AddrInfoHints>,
) -> Result<Vec<AddrInfo>, GaiError> {
    let h = hints.copied().unwrap_or_default();
    if node.is_none() && service.is_none() {
        return Err(gai(EAI_NONAME, "neither a node name nor a service given"));
    }
    let families: &[Family] = match h.family {
        AF_UNSPEC => &[Family::V4, Family::V6],
        AF_INET => &[Family::V4],
        AF_INET6 => &[Family::V6],
        f => {
            return Err(gai(
                EAI_FAMILY,
                format!("address family {f} is not supported (AF_INET, AF_INET6 or AF_UNSPEC)"),
            ))
        }
    };
    let kinds: Vec<(i32, i32)> = match (h.socktype, h.protocol) {
        (0, 0) => vec![(SOCK_STREAM, IPPROTO_TCP), (SOCK_DGRAM, IPPROTO_UDP)],
        (0, IPPROTO_TCP) | (SOCK_STREAM, 0) | (SOCK_STREAM, IPPROTO_TCP) => {
            vec![(SOCK_STREAM, IPPROTO_TCP)]
        }
        (0, IPPROTO_UDP) | (SOCK_DGRAM, 0) | (SOCK_DGRAM, IPPROTO_UDP) => {
            vec![(SOCK_DGRAM, IPPROTO_UDP)]
        }
        (t, p) => {
            return Err(gai(
                EAI_SOCKTYPE,
                format!(
                "socket type {t} with protocol {p} is not supported (SOCK_STREAM or SOCK_DGRAM)"
            ),
            ))
        }
    };
    let port = port_of(service, h.flags)?;
    let mut addrs: Vec<IpAddr> = Vec::new();
    let mut canon = None;
    match node {
        None => {
            for f in families {
                addrs.push(match (f, h.flags & AI_PASSIVE != 0) {
                    (Family::V4, true) => Ipv4Addr::UNSPECIFIED.into(),
                    (Family::V4, false) => Ipv4Addr::LOCALHOST.into(),
                    (Family::V6, true) => Ipv6Addr::UNSPECIFIED.into(),
                    (Family::V6, false) => Ipv6Addr::LOCALHOST.into(),
                });
            }
        }
        Some(n) => {
            if let Ok(ip) = n.parse::<IpAddr>() {
                let ok = families.iter().any(|f| {
                    matches!(
                        (f, ip),
                        (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
                    )
                });
                if !ok {
                    return Err(gai(
                        EAI_FAMILY,
                        format!("{n} is not of the family asked for"),
                    ));
                }
                addrs.push(ip);
                canon = Some(n.to_string());
            } else if h.flags & AI_NUMERICHOST != 0 {
                return Err(gai(
                    EAI_NONAME,
                    format!("'{n}' is not a numeric address (AI_NUMERICHOST)"),
                ));
            } else {
                let mut first_err = None;
                for &f in families {
                    match resolver.lookup(rt, n, f) {
                        Ok(a) => {
                            canon.get_or_insert(a.canonical);
                            addrs.extend(a.addrs);
                        }
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                if addrs.is_empty() {
                    return Err(first_err
                        .map(GaiError::from)
                        .unwrap_or_else(|| gai(EAI_NONAME, format!("{n}: no address"))));
                }
            }
        }
    }
    let mut out = Vec::new();
    for ip in addrs {
        for &(socktype, protocol) in &kinds {
            out.push(AddrInfo {
                family: if ip.is_ipv4() { AF_INET } else { AF_INET6 },
                socktype,
                protocol,
                addr: SocketAddr::new(ip, port),
                canonname: None,
            });
        }
    }
    if h.flags & AI_CANONNAME != 0 {
        if let Some(first) = out.first_mut() {
            first.canonname = canon.or_else(|| node.map(str::to_string));
        }
    }
    Ok(out)
}

/// The message of an `EAI_*` code, like gai_strerror(3).
pub fn gai_strerror(code: i32) -> &'static str {
    match code {
        EAI_AGAIN => "Temporary failure in name resolution",
        EAI_FAIL => "Non-recoverable failure in name resolution",
        EAI_FAMILY => "ai_family not supported",
        EAI_NONAME => "Name or service not known",
        EAI_SERVICE => "Servname not supported for ai_socktype",
        EAI_SOCKTYPE => "ai_socktype not supported",
        _ => "Unknown error",
    }
}
