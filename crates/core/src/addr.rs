//! Version-generic addressing for the transports: which of our addresses
//! a socket may bind, which bound address takes a datagram (dual-stack
//! wildcards, RFC 3493 §5.3), and the source towards a peer.

use crate::config::StackConfig;
use crate::errno::{Errno, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The unspecified address of `addr`'s version, port 0.
pub fn unspecified_like(addr: &SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// Whether `ip` is one of our unicast addresses (IPv6: in use, RFC 4862).
pub fn is_local(cfg: &StackConfig, ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a == cfg.addr.address(),
        IpAddr::V6(a) => crate::ipv6::is_ours(cfg, &a),
    }
}

/// How a socket bound to `bound` takes a datagram to `to`: `Some(true)`
/// exactly, `Some(false)` as a wildcard (an IPv6 wildcard takes IPv4 too
/// unless `v6only`, RFC 3493 §5.3), `None` not at all.
#[inline]
pub fn takes(bound: IpAddr, v6only: bool, to: IpAddr) -> Option<bool> {
    if bound == to {
        return Some(true);
    }
    match (bound, to) {
        (IpAddr::V4(b), IpAddr::V4(_)) if b.is_unspecified() => Some(false),
        (IpAddr::V6(b), IpAddr::V6(_)) if b.is_unspecified() => Some(false),
        (IpAddr::V6(b), IpAddr::V4(_)) if b.is_unspecified() && !v6only => Some(false),
        _ => None,
    }
}

/// Whether two bindings of one port overlap (EADDRINUSE without reuse).
pub fn overlap(a: IpAddr, a_v6only: bool, b: IpAddr, b_v6only: bool) -> bool {
    takes(a, a_v6only, b).is_some() || takes(b, b_v6only, a).is_some()
}

/// The source address for a connection or datagram to `dst`.
pub fn source_for(cfg: &StackConfig, dst: IpAddr) -> IpAddr {
    match dst {
        IpAddr::V4(_) => IpAddr::V4(cfg.addr.address()),
        IpAddr::V6(d) => IpAddr::V6(crate::ipv6::source_for(cfg, &d)),
    }
}

/// Whether `dst` can be sent to: IPv4 through the route table, IPv6 to
/// any unicast address (every destination is on-link, no routers yet).
pub fn check_route(cfg: &StackConfig, dst: IpAddr) -> Result<()> {
    match dst {
        IpAddr::V4(d) => crate::ipv4::output::route(cfg, d).map(|_| ()),
        IpAddr::V6(d) if d.is_unspecified() => Err(Errno::EINVAL),
        IpAddr::V6(d) if d.is_multicast() => Err(Errno::ENETUNREACH),
        IpAddr::V6(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_stack_wildcard() {
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let v6 = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
        assert_eq!(takes(any6, false, v4), Some(false));
        assert_eq!(takes(any6, true, v4), None);
        assert_eq!(takes(any6, true, v6), Some(false));
        assert_eq!(takes(v6, false, v6), Some(true));
        assert_eq!(takes(IpAddr::V4(Ipv4Addr::UNSPECIFIED), false, v6), None);
        assert!(overlap(
            any6,
            false,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            false
        ));
        assert!(!overlap(
            any6,
            true,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            false
        ));
    }
}
