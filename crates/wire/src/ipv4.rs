//! IPv4 packets (RFC 791) and CIDR prefixes (RFC 4632).

use core::fmt;
use core::str::FromStr;

use crate::checksum;
use crate::field::{read_u16, write_u16};
use crate::{ChecksumCaps, Error, IpProtocol, Ipv4Addr, Result};

/// An IPv4 address with a prefix length (RFC 4632 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    /// Builds a CIDR. Panics if `prefix_len > 32`; see [`Ipv4Cidr::try_new`].
    pub const fn new(addr: Ipv4Addr, prefix_len: u8) -> Ipv4Cidr {
        assert!(prefix_len <= 32, "IPv4 prefix length must be at most 32");
        Ipv4Cidr { addr, prefix_len }
    }

    /// Builds a CIDR; `None` if `prefix_len > 32`.
    pub const fn try_new(addr: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Cidr> {
        if prefix_len <= 32 {
            Some(Ipv4Cidr { addr, prefix_len })
        } else {
            None
        }
    }

    pub const fn address(&self) -> Ipv4Addr {
        self.addr
    }

    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask_bits(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - self.prefix_len as u32)
            .unwrap_or(0)
    }

    /// The netmask, e.g. 255.255.255.0 for /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    /// The network address with host bits cleared, as a CIDR of the same length.
    pub fn network(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask_bits()),
            prefix_len: self.prefix_len,
        }
    }

    /// The directed broadcast address (all host bits set); `None` for /31 and /32
    /// (RFC 3021: /31 links have no broadcast).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        if self.prefix_len >= 31 {
            return None;
        }
        Some(Ipv4Addr::from(u32::from(self.addr) | !self.mask_bits()))
    }

    /// Whether `addr` lies in this prefix.
    pub fn contains_addr(&self, addr: &Ipv4Addr) -> bool {
        let m = self.mask_bits();
        u32::from(*addr) & m == u32::from(self.addr) & m
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Why a string is not an IPv4 CIDR; its message names the problem and
/// shows the form expected (`ADDRESS/PREFIX`, e.g. `10.200.0.2/24`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrParseError {
    /// No `/PREFIX` part.
    NoPrefix(String),
    /// The part before `/` is not a dotted-quad IPv4 address.
    BadAddress(String),
    /// The part after `/` is not a number from 0 to 32 (RFC 4632 §3.1).
    BadPrefix(String),
}

impl fmt::Display for CidrParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrParseError::NoPrefix(s) => write!(
                f,
                "'{s}' has no prefix length; write ADDRESS/PREFIX, e.g. {s}/24"
            ),
            CidrParseError::BadAddress(a) => write!(
                f,
                "'{a}' is not an IPv4 address (four numbers 0-255 separated by dots); write ADDRESS/PREFIX, e.g. 10.200.0.2/24"
            ),
            CidrParseError::BadPrefix(l) => write!(
                f,
                "prefix length '/{l}' is not a number from 0 to 32; write ADDRESS/PREFIX, e.g. 10.200.0.2/24"
            ),
        }
    }
}

impl std::error::Error for CidrParseError {}

impl FromStr for Ipv4Cidr {
    type Err = CidrParseError;
    /// Parses "a.b.c.d/len" (len 0 to 32).
    fn from_str(s: &str) -> core::result::Result<Self, CidrParseError> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| CidrParseError::NoPrefix(s.to_owned()))?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| CidrParseError::BadAddress(a.to_owned()))?;
        let bad_len = || CidrParseError::BadPrefix(l.to_owned());
        if l.is_empty() || l.len() > 2 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_len());
        }
        let len: u8 = l.parse().map_err(|_| bad_len())?;
        Ipv4Cidr::try_new(addr, len).ok_or_else(bad_len)
    }
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

mod field {
    use crate::field::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// A view over an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checks; getters may panic if it is short.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// RFC 791 §3.1: buffer >= 20 bytes (`Truncated`), version 4 and IHL >= 5
    /// and header_len <= total_len (`Malformed`), total_len <= buffer length
    /// (`Truncated`). Bytes past total_len (link padding) are allowed.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = self.header_len() as usize;
        let tl = self.total_len() as usize;
        if hl < HEADER_LEN || hl > tl {
            return Err(Error::Malformed);
        }
        if tl > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.b()[field::VER_IHL] >> 4
    }
    /// Header length in bytes (IHL * 4).
    pub fn header_len(&self) -> u8 {
        (self.b()[field::VER_IHL] & 0x0f) * 4
    }
    /// Differentiated Services code point (RFC 2474).
    pub fn dscp(&self) -> u8 {
        self.b()[field::DSCP_ECN] >> 2
    }
    /// ECN bits (RFC 3168).
    pub fn ecn(&self) -> u8 {
        self.b()[field::DSCP_ECN] & 0x03
    }
    pub fn total_len(&self) -> u16 {
        read_u16(self.b(), field::LENGTH)
    }
    pub fn ident(&self) -> u16 {
        read_u16(self.b(), field::IDENT)
    }
    pub fn dont_frag(&self) -> bool {
        read_u16(self.b(), field::FLG_OFF) & 0x4000 != 0
    }
    pub fn more_frags(&self) -> bool {
        read_u16(self.b(), field::FLG_OFF) & 0x2000 != 0
    }
    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.b(), field::FLG_OFF) & 0x1fff) << 3
    }
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }
    pub fn protocol(&self) -> IpProtocol {
        self.b()[field::PROTOCOL].into()
    }
    pub fn checksum(&self) -> u16 {
        read_u16(self.b(), field::CHECKSUM)
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.b()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.b()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    /// The options area (bytes 20..header_len).
    pub fn options(&self) -> &[u8] {
        &self.b()[HEADER_LEN..self.header_len() as usize]
    }
    /// Bytes from header_len to total_len; anything past total_len (e.g.
    /// Ethernet padding) is ignored.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len() as usize..self.total_len() as usize]
    }
    /// Whether the header checksum verifies (RFC 791 §3.1, RFC 1071).
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.b()[..self.header_len() as usize]) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Sets the version nibble.
    pub fn set_version(&mut self, v: u8) {
        let b = self.bm();
        b[field::VER_IHL] = (b[field::VER_IHL] & 0x0f) | (v << 4);
    }
    /// Sets the header length in bytes (must be a multiple of 4, at most 60).
    pub fn set_header_len(&mut self, len: u8) {
        let b = self.bm();
        b[field::VER_IHL] = (b[field::VER_IHL] & 0xf0) | ((len / 4) & 0x0f);
    }
    pub fn set_dscp(&mut self, v: u8) {
        let b = self.bm();
        b[field::DSCP_ECN] = (b[field::DSCP_ECN] & 0x03) | (v << 2);
    }
    pub fn set_ecn(&mut self, v: u8) {
        let b = self.bm();
        b[field::DSCP_ECN] = (b[field::DSCP_ECN] & 0xfc) | (v & 0x03);
    }
    pub fn set_total_len(&mut self, v: u16) {
        write_u16(self.bm(), field::LENGTH, v)
    }
    pub fn set_ident(&mut self, v: u16) {
        write_u16(self.bm(), field::IDENT, v)
    }
    fn set_flg_off(&mut self, mask: u16, v: u16) {
        let raw = read_u16(self.bm(), field::FLG_OFF);
        write_u16(self.bm(), field::FLG_OFF, (raw & !mask) | (v & mask))
    }
    /// Clears the reserved flag, DF, MF and the fragment offset.
    pub fn clear_flags(&mut self) {
        self.set_flg_off(0xe000, 0)
    }
    pub fn set_dont_frag(&mut self, v: bool) {
        self.set_flg_off(0x4000, if v { 0x4000 } else { 0 })
    }
    pub fn set_more_frags(&mut self, v: bool) {
        self.set_flg_off(0x2000, if v { 0x2000 } else { 0 })
    }
    /// Sets the fragment offset in bytes (low 3 bits dropped: must be a multiple of 8).
    pub fn set_frag_offset(&mut self, bytes: u16) {
        self.set_flg_off(0x1fff, bytes >> 3)
    }
    pub fn set_ttl(&mut self, v: u8) {
        self.bm()[field::TTL] = v
    }
    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.bm()[field::PROTOCOL] = v.into()
    }
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.bm(), field::CHECKSUM, v)
    }
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.bm()[field::SRC_ADDR].copy_from_slice(&a.octets())
    }
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.bm()[field::DST_ADDR].copy_from_slice(&a.octets())
    }
    /// Computes and stores the header checksum over header_len bytes.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len() as usize;
        let c = checksum::checksum(&self.b()[..hl]);
        self.set_checksum(c)
    }
    /// Mutable options area (bytes 20..header_len).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        &mut self.bm()[HEADER_LEN..hl]
    }
    /// Mutable bytes from header_len to total_len.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len() as usize, self.total_len() as usize);
        &mut self.bm()[hl..tl]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// High-level representation of an IPv4 header (options are not represented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Bytes after the header (of THIS packet/fragment).
    pub payload_len: usize,
    pub ttl: u8,
    /// dscp << 2 | ecn.
    pub tos: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// Fragment offset in bytes, a multiple of 8.
    pub frag_offset: u16,
}

impl Ipv4Repr {
    /// Parses the header. Options are skipped (their length is honoured); the
    /// checksum is verified if `caps.rx` (RFC 791 §3.1).
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Ipv4Packet<&T>,
        caps: &ChecksumCaps,
    ) -> Result<Self> {
        packet.check_len()?;
        if caps.rx && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len() as usize - packet.header_len() as usize,
            ttl: packet.ttl(),
            tos: packet.b()[field::DSCP_ECN],
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// Header length: 20 (options are never emitted).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 20-byte header (total_len = 20 + payload_len) and fills the
    /// checksum if `caps.tx`; does not touch the payload. Panics if the buffer
    /// is shorter than 20 bytes. `payload_len` must be at most 65515.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
        caps: &ChecksumCaps,
    ) {
        debug_assert!(
            self.payload_len <= usize::from(u16::MAX) - HEADER_LEN,
            "IPv4 payload too long"
        );
        // Every bit of the 20 bytes is set here, so the header is built in
        // a local array and copied once (one bounds check, no
        // read-modify-write of the shared bytes, every segment sent).
        let mut h = [0u8; HEADER_LEN];
        let ver_ihl = 0x40 | (HEADER_LEN / 4) as u8;
        let total_len = (HEADER_LEN + self.payload_len) as u16;
        h[field::VER_IHL] = ver_ihl;
        h[field::DSCP_ECN] = self.tos;
        write_u16(&mut h, field::LENGTH, total_len);
        write_u16(&mut h, field::IDENT, self.ident);
        let flg_off = if self.dont_frag { 0x4000 } else { 0 }
            | if self.more_frags { 0x2000 } else { 0 }
            | (self.frag_offset >> 3);
        write_u16(&mut h, field::FLG_OFF, flg_off);
        h[field::TTL] = self.ttl;
        h[field::PROTOCOL] = self.protocol.into();
        h[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        h[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        if caps.tx {
            // Summed from the field values, not read back from `h`: loading
            // words just stored byte by byte stalls store forwarding.
            let (src, dst) = (u32::from(self.src_addr), u32::from(self.dst_addr));
            let sum = (u64::from(ver_ihl) << 8 | u64::from(self.tos))
                + u64::from(total_len)
                + u64::from(self.ident)
                + u64::from(flg_off)
                + (u64::from(self.ttl) << 8 | u64::from(u8::from(self.protocol)))
                + u64::from(src >> 16)
                + u64::from(src & 0xffff)
                + u64::from(dst >> 16)
                + u64::from(dst & 0xffff);
            write_u16(&mut h, field::CHECKSUM, !checksum::fold(sum));
        }
        packet.bm()[..HEADER_LEN].copy_from_slice(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The well-known example UDP/IPv4 datagram header (192.168.0.1 -> 192.168.0.199,
    // total length 0x73, DF, TTL 64, checksum 0xb861), plus 95 payload bytes.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet_bytes() -> Vec<u8> {
        let mut v = HEADER.to_vec();
        v.extend((0..95u8).map(|i| i.wrapping_mul(7)));
        v
    }

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 0, 1),
            dst_addr: Ipv4Addr::new(192, 168, 0, 199),
            protocol: IpProtocol::Udp,
            payload_len: 95,
            ttl: 64,
            tos: 0,
            ident: 0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        }
    }

    #[test]
    fn parse_captured() {
        let bytes = packet_bytes();
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x73);
        assert!(p.dont_frag() && !p.more_frags());
        assert_eq!(p.checksum(), 0xb861);
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 95);
        assert_eq!(
            Ipv4Repr::parse(&p, &ChecksumCaps::default()).unwrap(),
            repr()
        );
    }

    #[test]
    fn emit_matches_known_good() {
        let mut buf = vec![0xa5u8; 20];
        repr().emit(
            &mut Ipv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCaps::default(),
        );
        assert_eq!(buf, HEADER);
        repr().emit(
            &mut Ipv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCaps::OFFLOAD,
        );
        assert_eq!(Ipv4Packet::new_unchecked(&buf[..]).checksum(), 0);
    }

    #[test]
    fn padding_ignored_and_checks() {
        let mut bytes = packet_bytes();
        bytes.extend([0u8; 10]);
        let p = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.payload().len(), 95);

        let bytes = packet_bytes();
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..100]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..19]).unwrap_err(),
            Error::Truncated
        );
        let mut v6 = bytes.clone();
        v6[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v6[..]).unwrap_err(),
            Error::Malformed
        );
        let mut ihl = bytes.clone();
        ihl[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&ihl[..]).unwrap_err(),
            Error::Malformed
        );
        let mut short_total = bytes.clone();
        short_total[0] = 0x4f; // 60-byte header
        short_total[3] = 40;
        assert_eq!(
            Ipv4Packet::new_checked(&short_total[..]).unwrap_err(),
            Error::Malformed
        );
        let mut bad = bytes.clone();
        bad[8] = 63;
        let p = Ipv4Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(
            Ipv4Repr::parse(&p, &ChecksumCaps::default()),
            Err(Error::Checksum)
        );
        assert!(Ipv4Repr::parse(&p, &ChecksumCaps::OFFLOAD).is_ok());
    }

    #[test]
    fn options_honoured() {
        // IHL 6: one 4-byte option (NOP NOP NOP EOL).
        let mut b = [0u8; 28];
        b[0] = 0x46;
        b[3] = 28;
        b[8] = 1;
        b[9] = 1;
        b[20..24].copy_from_slice(&[1, 1, 1, 0]);
        b[24..28].copy_from_slice(&[9, 9, 9, 9]);
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.fill_checksum();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[9, 9, 9, 9]);
        let r = Ipv4Repr::parse(&p, &ChecksumCaps::default()).unwrap();
        assert_eq!(r.payload_len, 4);
        assert_eq!(r.protocol, IpProtocol::Icmp);
    }

    #[test]
    fn fragments() {
        let mut b = [0u8; 20];
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_frag_offset(1480);
        p.set_more_frags(true);
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.more_frags() && !p.dont_frag());
        assert_eq!(&b[6..8], &[0x20, 0xb9]);
    }

    #[test]
    fn cidr() {
        let c: Ipv4Cidr = "10.0.0.1/24".parse().unwrap();
        assert_eq!(c.address(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.network(), Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 0), 24));
        assert_eq!(c.broadcast(), Some(Ipv4Addr::new(10, 0, 0, 255)));
        assert!(c.contains_addr(&Ipv4Addr::new(10, 0, 0, 200)));
        assert!(!c.contains_addr(&Ipv4Addr::new(10, 0, 1, 1)));
        assert_eq!(c.to_string(), "10.0.0.1/24");
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert_eq!(all.netmask(), Ipv4Addr::new(0, 0, 0, 0));
        assert!(all.contains_addr(&Ipv4Addr::new(8, 8, 8, 8)));
        let host = Ipv4Cidr::new(Ipv4Addr::new(1, 2, 3, 4), 32);
        assert_eq!(host.netmask(), Ipv4Addr::BROADCAST);
        assert_eq!(host.broadcast(), None);
        assert!(Ipv4Cidr::try_new(Ipv4Addr::UNSPECIFIED, 33).is_none());
        // Each message names what is wrong and shows the expected form.
        for (bad, msg) in [
            (
                "10.0.0.1",
                "'10.0.0.1' has no prefix length; write ADDRESS/PREFIX, e.g. 10.0.0.1/24",
            ),
            (
                "10.0.0.1/33",
                "prefix length '/33' is not a number from 0 to 32; write ADDRESS/PREFIX, e.g. 10.200.0.2/24",
            ),
            ("10.0.0.1/", "prefix length '/' is not a number"),
            ("10.0.0.1/+4", "prefix length '/+4' is not a number"),
            ("10.0.0.1/024", "prefix length '/024' is not a number"),
            (
                "10.0.0.300/24",
                "'10.0.0.300' is not an IPv4 address (four numbers 0-255 separated by dots); write ADDRESS/PREFIX",
            ),
            ("x/24", "'x' is not an IPv4 address"),
        ] {
            let e = bad.parse::<Ipv4Cidr>().unwrap_err();
            assert!(e.to_string().starts_with(msg), "{bad}: {e}");
        }
    }

    #[test]
    #[should_panic]
    fn cidr_new_panics_over_32() {
        let _ = Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 33);
    }

    fn arb_repr() -> impl Strategy<Value = Ipv4Repr> {
        (
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            0usize..200,
            any::<u8>(),
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
            any::<bool>(),
            0u16..0x2000,
        )
            .prop_map(|(s, d, proto, payload_len, ttl, tos, ident, df, mf, off)| {
                Ipv4Repr {
                    src_addr: s.into(),
                    dst_addr: d.into(),
                    protocol: proto.into(),
                    payload_len,
                    ttl,
                    tos,
                    ident,
                    dont_frag: df,
                    more_frags: mf,
                    frag_offset: off << 3,
                }
            })
    }

    proptest! {
        #[test]
        fn round_trip(r in arb_repr()) {
            let mut buf = vec![0u8; r.buffer_len() + r.payload_len];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), &ChecksumCaps::default());
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv4Repr::parse(&p, &ChecksumCaps::default()).unwrap(), r);
        }

        #[test]
        fn random_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..100), fix in any::<bool>()) {
            if fix && !data.is_empty() {
                // Bias towards passing the version check so deeper paths run.
                data[0] = 0x40 | (data[0] & 0x0f);
            }
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                let _ = (p.options(), p.payload(), p.verify_checksum());
                let _ = Ipv4Repr::parse(&p, &ChecksumCaps::default());
                let _ = Ipv4Repr::parse(&p, &ChecksumCaps::OFFLOAD);
            }
            let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&data[..]), &ChecksumCaps::OFFLOAD);
        }
    }
}

/// A fixed-layout view of the common IPv4 datagram: a 20-byte header
/// (version 4, IHL 5, no options) that is not a fragment (DF may be set),
/// read at fixed offsets of a known-length array so the per-packet path
/// has no bounds checks and no accessor calls. Anything else is `None`:
/// take [`Ipv4Packet`] and [`Ipv4Repr`], which validate and say why.
/// The header checksum is not checked here ([`Ipv4Fast::checksum_ok`]).
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Fast<'a> {
    header: &'a [u8; HEADER_LEN],
    /// The payload, cut to the header's total length.
    payload: &'a [u8],
}

impl<'a> Ipv4Fast<'a> {
    /// The view, if `bytes` is such a datagram whole (trailing bytes past
    /// the total length, as Ethernet padding, are cut off).
    #[inline(always)]
    pub fn new(bytes: &'a [u8]) -> Option<Ipv4Fast<'a>> {
        let header: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        let total = usize::from(u16::from_be_bytes([header[2], header[3]]));
        // Version 4, IHL 5; no MF, fragment offset 0 (RFC 791 §3.1).
        if header[0] != 0x45
            || u16::from_be_bytes([header[6], header[7]]) & 0x3fff != 0
            || total < HEADER_LEN
            || total > bytes.len()
        {
            return None;
        }
        Some(Ipv4Fast {
            header,
            payload: &bytes[HEADER_LEN..total],
        })
    }

    #[inline(always)]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.header[9])
    }

    /// The protocol number as sent (no conversion).
    #[inline(always)]
    pub fn protocol_raw(&self) -> u8 {
        self.header[9]
    }

    #[inline(always)]
    pub fn src_addr(&self) -> Ipv4Addr {
        let h = self.header;
        Ipv4Addr::new(h[12], h[13], h[14], h[15])
    }

    #[inline(always)]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let h = self.header;
        Ipv4Addr::new(h[16], h[17], h[18], h[19])
    }

    /// Whether the destination is `addr` (compared as bytes).
    #[inline(always)]
    pub fn dst_is(&self, addr: Ipv4Addr) -> bool {
        let h = self.header;
        [h[16], h[17], h[18], h[19]] == addr.octets()
    }

    /// Whether the header checksum verifies (RFC 1071).
    #[inline(always)]
    pub fn checksum_ok(&self) -> bool {
        checksum::ipv4_header_sum(self.header) == 0xffff
    }

    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The 20-byte header.
    #[inline(always)]
    pub fn header(&self) -> &'a [u8; HEADER_LEN] {
        self.header
    }
}
