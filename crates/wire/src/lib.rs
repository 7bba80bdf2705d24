//! Wire formats: typed views over byte buffers (parse never panics, emit never allocates).
//!
//! Each protocol module has two layers, in the style of smoltcp's `wire`:
//!
//! * `XPacket<T>` / `XFrame<T>`: a zero-copy view over a byte buffer with
//!   getters and setters for every header field. `new_checked` verifies that
//!   the buffer is long enough for the fixed header and for any length the
//!   header claims, so no getter can then read out of bounds.
//! * `XRepr`: a high-level, validated representation with `parse` and `emit`.
//!
//! `emit` functions write into caller-provided buffers and never allocate.
//! They panic only if the caller's buffer is shorter than documented (a
//! programming error, never a consequence of wire input).
#![forbid(unsafe_code)]

use core::fmt;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod ndp;
pub mod tcp;
pub mod udp;
pub mod virtio;

pub use std::net::{Ipv4Addr, Ipv6Addr};

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use icmpv4::{DstUnreachable, Icmpv4Packet, Icmpv4Repr, InvokingPacket};
pub use icmpv6::{Icmpv6Packet, Icmpv6Repr};
pub use ipv4::{CidrParseError, Ipv4Cidr, Ipv4Fast, Ipv4Packet, Ipv4Repr};
pub use ipv6::{ExtError, ExtWalk, FragmentHeader, Ipv6Cidr, Ipv6Packet, Ipv6Repr};
pub use ndp::{NdpPrefixInfo, NdpRepr};
pub use tcp::{
    SackBlocks, SeqNumber, TcpFast, TcpFlags, TcpOption, TcpPacket, TcpRepr, TcpTimestamp,
};
pub use udp::{UdpPacket, UdpRepr};
pub use virtio::{GsoType, VirtioError, VirtioNetHdr};

/// Why a buffer could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the header, or than a length the header claims.
    Truncated,
    /// A field holds a value the protocol forbids.
    Malformed,
    /// The checksum does not verify.
    Checksum,
    /// Well-formed, but a variant this stack does not handle.
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::Checksum => "checksum mismatch",
            Error::Unsupported => "unsupported packet",
        })
    }
}

impl std::error::Error for Error {}

/// Result type of this crate.
pub type Result<T> = core::result::Result<T, Error>;

/// Which checksums to verify on receive and fill on transmit (false = offloaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumCaps {
    /// Verify checksums of received packets.
    pub rx: bool,
    /// Fill checksums of transmitted packets.
    pub tx: bool,
}

impl ChecksumCaps {
    /// Both directions offloaded: nothing verified, nothing filled.
    pub const OFFLOAD: ChecksumCaps = ChecksumCaps {
        rx: false,
        tx: false,
    };
    /// Both directions done in software.
    pub const SOFTWARE: ChecksumCaps = ChecksumCaps { rx: true, tx: true };
}

impl Default for ChecksumCaps {
    fn default() -> Self {
        ChecksumCaps::SOFTWARE
    }
}

/// IP protocol number (RFC 790, IANA "Assigned Internet Protocol Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    Icmp,
    Tcp,
    Udp,
    /// ICMP for IPv6 (RFC 4443), 58.
    Icmpv6,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            58 => IpProtocol::Icmpv6,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(p: IpProtocol) -> u8 {
        match p {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::Icmp => f.write_str("ICMP"),
            IpProtocol::Tcp => f.write_str("TCP"),
            IpProtocol::Udp => f.write_str("UDP"),
            IpProtocol::Icmpv6 => f.write_str("ICMPv6"),
            IpProtocol::Unknown(v) => write!(f, "0x{v:02x}"),
        }
    }
}

/// Big-endian field helpers shared by the protocol modules. Callers guarantee bounds.
pub(crate) mod field {
    pub type Field = core::ops::Range<usize>;

    #[inline]
    pub fn read_u16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }
    #[inline]
    pub fn read_u32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
    #[inline]
    pub fn write_u16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }
    #[inline]
    pub fn write_u32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_protocol_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
    }

    #[test]
    fn caps_default() {
        assert_eq!(ChecksumCaps::default(), ChecksumCaps { rx: true, tx: true });
        assert_eq!(
            ChecksumCaps::OFFLOAD,
            ChecksumCaps {
                rx: false,
                tx: false
            }
        );
    }

    #[test]
    fn error_display() {
        assert_eq!(Error::Checksum.to_string(), "checksum mismatch");
    }
}
