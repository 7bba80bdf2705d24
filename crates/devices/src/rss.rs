//! Receive-side scaling: which queue of a multiqueue link a frame goes to.
//!
//! The hash is Toeplitz, as NICs compute it (Microsoft's RSS
//! specification), over the IPv4 or IPv6 source and destination
//! addresses and, for TCP and UDP (unfragmented), the ports. With the key
//! [`SYMMETRIC_KEY`] (the 16-bit pattern 0x6d5a repeated, Woo and Park,
//! "Scalable TCP Session Monitoring with Symmetric Receive-side Scaling",
//! 2012) it is symmetric: both directions of a flow hash the same, so one
//! flow's frames land on the same queue index at both ends of a link.
//! Frames that are not IP hash to 0.

use std::net::{IpAddr, SocketAddr};
use ustack_core::Medium;

/// The 0x6d5a key, long enough for an IPv6 4-tuple (36 bytes + 4).
pub const SYMMETRIC_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// The Toeplitz hash of `input` under `key` (which must be at least 4
/// bytes longer than `input`; extra input bytes are ignored).
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    let mut hash = 0u32;
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    let n = input.len().min(key.len().saturating_sub(4));
    for (i, &byte) in input[..n].iter().enumerate() {
        let next = key[i + 4];
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    hash
}

/// The symmetric hash of the flow `a` <-> `b` (either order gives the
/// same value). Addresses of different families hash their bytes as given.
pub fn flow_hash(a: SocketAddr, b: SocketAddr) -> u32 {
    let mut input = [0u8; 36];
    let mut n = 0;
    for ip in [a.ip(), b.ip()] {
        match ip {
            IpAddr::V4(v4) => {
                input[n..n + 4].copy_from_slice(&v4.octets());
                n += 4;
            }
            IpAddr::V6(v6) => {
                input[n..n + 16].copy_from_slice(&v6.octets());
                n += 16;
            }
        }
    }
    input[n..n + 2].copy_from_slice(&a.port().to_be_bytes());
    input[n + 2..n + 4].copy_from_slice(&b.port().to_be_bytes());
    toeplitz(&SYMMETRIC_KEY, &input[..n + 4])
}

/// The queue among `queues` that the flow `a` <-> `b` belongs to.
pub fn flow_queue(a: SocketAddr, b: SocketAddr, queues: usize) -> usize {
    if queues <= 1 {
        return 0;
    }
    flow_hash(a, b) as usize % queues
}

/// The flow of a frame: (source, destination) with ports for unfragmented
/// TCP and UDP, port 0 otherwise. `None` for what is not IP or is too short.
pub fn frame_flow(medium: Medium, frame: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let ip = match medium {
        Medium::Ip => frame,
        Medium::Ethernet => match frame.get(12..14)? {
            [0x08, 0x00] | [0x86, 0xdd] => frame.get(14..)?,
            _ => return None,
        },
    };
    let (src, dst, proto, l4): (IpAddr, IpAddr, u8, Option<&[u8]>) = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let hdr = ip.get(..20)?;
            let s: [u8; 4] = hdr[12..16].try_into().ok()?;
            let d: [u8; 4] = hdr[16..20].try_into().ok()?;
            // Fragments (MF set or an offset) carry no ports to hash.
            let frag = u16::from_be_bytes([hdr[6], hdr[7]]) & 0x3fff != 0;
            let l4 = if frag || ihl < 20 {
                None
            } else {
                ip.get(ihl..)
            };
            (s.into(), d.into(), hdr[9], l4)
        }
        6 => {
            let hdr = ip.get(..40)?;
            let s: [u8; 16] = hdr[8..24].try_into().ok()?;
            let d: [u8; 16] = hdr[24..40].try_into().ok()?;
            (s.into(), d.into(), hdr[6], ip.get(40..))
        }
        _ => return None,
    };
    let (sp, dp) = match (proto, l4) {
        (6 | 17, Some(l4)) if l4.len() >= 4 => (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        ),
        _ => (0, 0),
    };
    Some((SocketAddr::new(src, sp), SocketAddr::new(dst, dp)))
}

/// The queue among `queues` a frame goes to (0 for what is not IP).
pub fn frame_queue(medium: Medium, frame: &[u8], queues: usize) -> usize {
    match frame_flow(medium, frame) {
        Some((s, d)) => flow_queue(s, d, queues),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verification suite of Microsoft's RSS specification, IPv4 with
    /// TCP ports, under its published key.
    #[test]
    fn matches_the_rss_specification_vectors() {
        let key: [u8; 40] = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
        ];
        // Destination 161.142.100.80:1766, source 66.9.149.187:2794.
        let input = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
        assert_eq!(toeplitz(&key, &input), 0x51cc_c178);
        // IPv4 addresses only.
        assert_eq!(toeplitz(&key, &input[..8]), 0x323e_8fc2);
    }

    #[test]
    fn both_directions_hash_alike() {
        let a: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        assert_eq!(flow_hash(a, b), flow_hash(b, a));
        let a6: SocketAddr = "[fd00::1]:40000".parse().unwrap();
        let b6: SocketAddr = "[fd00::2]:443".parse().unwrap();
        assert_eq!(flow_hash(a6, b6), flow_hash(b6, a6));
        // And ports spread over two queues.
        let on1 = (40000..40100)
            .filter(|&p| flow_queue(SocketAddr::new(a.ip(), p), b, 2) == 1)
            .count();
        assert!((25..=75).contains(&on1), "{on1}");
    }

    #[test]
    fn frame_flow_reads_ipv4_tcp() {
        let mut f = [0u8; 40];
        f[0] = 0x45;
        f[9] = 6;
        f[12..16].copy_from_slice(&[10, 0, 0, 1]);
        f[16..20].copy_from_slice(&[10, 0, 0, 2]);
        f[20..22].copy_from_slice(&40000u16.to_be_bytes());
        f[22..24].copy_from_slice(&80u16.to_be_bytes());
        let (s, d) = frame_flow(Medium::Ip, &f).unwrap();
        assert_eq!(s, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(d, "10.0.0.2:80".parse().unwrap());
        assert_eq!(frame_flow(Medium::Ip, &f[..10]), None);
        f[6] = 0x20; // MF: a fragment hashes on addresses alone.
        assert_eq!(frame_flow(Medium::Ip, &f).unwrap().0.port(), 0);
    }
}
