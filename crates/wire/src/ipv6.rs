//! IPv6 packets (RFC 8200 §3), prefixes (RFC 4291 §2.3) and the walk of
//! extension headers (RFC 8200 §4).

use core::fmt;
use core::str::FromStr;

use crate::field::{read_u16, read_u32, write_u16, write_u32};
use crate::{Error, IpProtocol, Ipv6Addr, Result};

/// An IPv6 address with a prefix length (RFC 4291 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Cidr {
    addr: Ipv6Addr,
    prefix_len: u8,
}

impl Ipv6Cidr {
    /// Builds a CIDR; `None` if `prefix_len > 128`.
    pub const fn try_new(addr: Ipv6Addr, prefix_len: u8) -> Option<Ipv6Cidr> {
        if prefix_len <= 128 {
            Some(Ipv6Cidr { addr, prefix_len })
        } else {
            None
        }
    }

    pub const fn address(&self) -> Ipv6Addr {
        self.addr
    }

    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    fn mask_bits(&self) -> u128 {
        u128::MAX
            .checked_shl(128 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    /// Whether `addr` lies in this prefix.
    pub fn contains_addr(&self, addr: &Ipv6Addr) -> bool {
        let m = self.mask_bits();
        u128::from(*addr) & m == u128::from(self.addr) & m
    }

    /// The network address with the host bits cleared.
    pub fn network(&self) -> Ipv6Cidr {
        Ipv6Cidr {
            addr: Ipv6Addr::from(u128::from(self.addr) & self.mask_bits()),
            prefix_len: self.prefix_len,
        }
    }
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Ipv6Cidr {
    type Err = Error;
    /// Parses "addr/len" (len 0..=128); anything else is `Malformed`.
    fn from_str(s: &str) -> Result<Self> {
        let (a, l) = s.split_once('/').ok_or(Error::Malformed)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| Error::Malformed)?;
        if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::Malformed);
        }
        if l.len() > 1 && l.starts_with('0') {
            return Err(Error::Malformed);
        }
        let len: u8 = l.parse().map_err(|_| Error::Malformed)?;
        Ipv6Cidr::try_new(addr, len).ok_or(Error::Malformed)
    }
}

/// The link-local address fe80::/64 with a modified EUI-64 interface
/// identifier from a MAC address (RFC 4291 §2.5.6, appendix A).
pub fn link_local_from_mac(mac: [u8; 6]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o[0] = 0xfe;
    o[1] = 0x80;
    o[8] = mac[0] ^ 0x02;
    o[9] = mac[1];
    o[10] = mac[2];
    o[11] = 0xff;
    o[12] = 0xfe;
    o[13] = mac[3];
    o[14] = mac[4];
    o[15] = mac[5];
    Ipv6Addr::from(o)
}

/// The solicited-node multicast address ff02::1:ffXX:XXXX of `addr`
/// (RFC 4291 §2.7.1).
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let a = addr.octets();
    let mut o = [0u8; 16];
    o[0] = 0xff;
    o[1] = 0x02;
    o[11] = 0x01;
    o[12] = 0xff;
    o[13..].copy_from_slice(&a[13..]);
    Ipv6Addr::from(o)
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Next Header values of the extension headers (RFC 8200 §4, IANA).
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT: u8 = 59;
    pub const DEST_OPTS: u8 = 60;
}

mod field {
    use crate::field::Field;
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// A view over an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checks; getters may panic if it is short.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// RFC 8200 §3: buffer >= 40 bytes (`Truncated`), version 6
    /// (`Malformed`), 40 + payload length <= buffer (`Truncated`). Bytes
    /// past the payload length (link padding) are allowed. Jumbograms
    /// (RFC 2675, payload length 0 with a Jumbo option) are not supported:
    /// such a packet reads as an empty payload.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + usize::from(self.payload_len()) > len {
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
        self.b()[field::VER_TC_FLOW] >> 4
    }
    /// Traffic class (DSCP << 2 | ECN, RFC 8200 §7).
    pub fn traffic_class(&self) -> u8 {
        ((read_u16(self.b(), field::VER_TC_FLOW) >> 4) & 0xff) as u8
    }
    /// The 20-bit flow label (RFC 6437).
    pub fn flow_label(&self) -> u32 {
        read_u32(self.b(), field::VER_TC_FLOW) & 0x000f_ffff
    }
    pub fn payload_len(&self) -> u16 {
        read_u16(self.b(), field::LENGTH)
    }
    /// The Next Header field of the fixed header (raw value).
    pub fn next_header(&self) -> u8 {
        self.b()[field::NXT_HDR]
    }
    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }
    pub fn src_addr(&self) -> Ipv6Addr {
        let a: [u8; 16] = self.b()[field::SRC_ADDR].try_into().unwrap();
        Ipv6Addr::from(a)
    }
    pub fn dst_addr(&self) -> Ipv6Addr {
        let a: [u8; 16] = self.b()[field::DST_ADDR].try_into().unwrap();
        Ipv6Addr::from(a)
    }
    /// Bytes 40..40 + payload length (extension headers included).
    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_version(&mut self, v: u8) {
        let b = self.bm();
        b[0] = (b[0] & 0x0f) | (v << 4);
    }
    pub fn set_traffic_class(&mut self, tc: u8) {
        let raw = read_u16(self.bm(), 0);
        write_u16(self.bm(), 0, (raw & 0xf00f) | (u16::from(tc) << 4));
    }
    /// Sets the flow label (the low 20 bits of `v`).
    pub fn set_flow_label(&mut self, v: u32) {
        let raw = read_u32(self.bm(), 0);
        write_u32(self.bm(), 0, (raw & 0xfff0_0000) | (v & 0x000f_ffff));
    }
    pub fn set_payload_len(&mut self, v: u16) {
        write_u16(self.bm(), field::LENGTH, v)
    }
    pub fn set_next_header(&mut self, v: u8) {
        self.bm()[field::NXT_HDR] = v
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        self.bm()[field::HOP_LIMIT] = v
    }
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.bm()[field::SRC_ADDR].copy_from_slice(&a.octets())
    }
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.bm()[field::DST_ADDR].copy_from_slice(&a.octets())
    }
    /// Mutable bytes 40..40 + payload length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.bm()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv6Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// High-level representation of the fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    /// The fixed header's Next Header: an extension header or the upper layer.
    pub next_header: IpProtocol,
    /// Bytes after the fixed header (extension headers included).
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits (RFC 6437).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Parses the fixed header (RFC 8200 §3). There is no header checksum.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv6Packet<&T>) -> Result<Self> {
        packet.check_len()?;
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header().into(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Header length: 40.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the 40-byte header; does not touch the payload. Panics if the
    /// buffer is shorter than 40 bytes or `payload_len` exceeds 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        let len = u16::try_from(self.payload_len).expect("IPv6 payload too long");
        let mut h = [0u8; HEADER_LEN];
        let word = 6u32 << 28 | u32::from(self.traffic_class) << 20 | (self.flow_label & 0xf_ffff);
        write_u32(&mut h, 0, word);
        write_u16(&mut h, field::LENGTH, len);
        h[field::NXT_HDR] = self.next_header.into();
        h[field::HOP_LIMIT] = self.hop_limit;
        h[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        h[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        packet.bm()[..HEADER_LEN].copy_from_slice(&h);
    }
}

/// The Fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader {
    /// Next Header of the fragmentable part.
    pub next_header: u8,
    /// Offset in bytes (a multiple of 8).
    pub offset: u16,
    pub more_frags: bool,
    pub ident: u32,
}

/// Length of the Fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

impl FragmentHeader {
    /// Parses 8 bytes; fewer is `Truncated`.
    pub fn parse(b: &[u8]) -> Result<FragmentHeader> {
        if b.len() < FRAGMENT_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let off = read_u16(b, 2);
        Ok(FragmentHeader {
            next_header: b[0],
            offset: off & 0xfff8,
            more_frags: off & 1 != 0,
            ident: read_u32(b, 4),
        })
    }

    /// Writes 8 bytes (reserved fields zero). Panics if `b` is shorter.
    pub fn emit(&self, b: &mut [u8]) {
        b[0] = self.next_header;
        b[1] = 0;
        write_u16(b, 2, (self.offset & 0xfff8) | u16::from(self.more_frags));
        write_u32(b, 4, self.ident);
    }

    /// Offset 0 and no more fragments: an atomic fragment, processed in
    /// isolation from any reassembly (RFC 8200 §4.5, RFC 6946).
    pub fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more_frags
    }
}

/// How a walk of the extension headers ended without reaching the upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtError {
    /// Shorter than a header claims: discard silently.
    Truncated,
    /// Discard silently (an option of action 01, RFC 8200 §4.2, or the
    /// answer of action 11 to a multicast destination).
    Discard,
    /// Discard and send ICMPv6 Parameter Problem with this code and
    /// pointer (an offset from the start of the IPv6 header; RFC 8200 §4).
    ParamProblem { code: u8, pointer: u32 },
}

/// Parameter Problem codes (RFC 4443 §3.4).
pub mod param_problem {
    pub const ERRONEOUS_FIELD: u8 = 0;
    pub const UNRECOGNIZED_NEXT_HEADER: u8 = 1;
    pub const UNRECOGNIZED_OPTION: u8 = 2;
}

/// Where the walk of the extension headers stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtWalk {
    /// The Next Header value that ends the walk: the upper layer, or
    /// 59 (No Next Header), or the next header after a non-atomic fragment.
    pub upper: u8,
    /// Offset in the payload (after the fixed header) where `upper` starts.
    pub offset: usize,
    /// Offset, from the start of the IPv6 header, of the Next Header field
    /// that named `upper` (the pointer of a Parameter Problem about it).
    pub upper_pointer: u32,
    /// A Fragment header met on the way. If it is not atomic the walk stops
    /// after it: the rest is fragmentable data (RFC 8200 §4.5); an atomic
    /// fragment is walked through.
    pub fragment: Option<FragmentHeader>,
    /// Offset in the payload of that Fragment header.
    pub fragment_offset: usize,
    /// Offset, from the start of the IPv6 header, of the Next Header field
    /// that named the Fragment header (rewritten on reassembly).
    pub fragment_pointer: u32,
}

/// Walks the extension headers of a payload whose fixed header named
/// `first`, as a host (RFC 8200 §4): Hop-by-Hop only first (§4.3, else
/// Parameter Problem code 1); options of Hop-by-Hop and Destination
/// Options headers by the two high bits of their type (§4.2; only Pad1
/// and PadN are recognised); a Routing header with segments left is
/// refused with code 0 pointing at its type (§4.4; this host knows no
/// routing type, RFC 5095 deprecates type 0), without is skipped.
/// `dst_multicast` selects the answer of option action 11.
pub fn walk_ext_headers(
    first: u8,
    payload: &[u8],
    dst_multicast: bool,
) -> core::result::Result<ExtWalk, ExtError> {
    use next_header::*;
    let mut nh = first;
    let mut at = 0usize;
    // The Next Header field of the fixed header is at byte 6.
    let mut nh_pointer = 6u32;
    let mut fragment = None;
    let mut fragment_offset = 0;
    let mut fragment_pointer = 0;
    // Every extension header takes at least 8 bytes: the loop ends.
    loop {
        let ptr_base = (HEADER_LEN + at) as u32;
        match nh {
            HOP_BY_HOP | DEST_OPTS => {
                if nh == HOP_BY_HOP && at != 0 {
                    return Err(ExtError::ParamProblem {
                        code: param_problem::UNRECOGNIZED_NEXT_HEADER,
                        pointer: nh_pointer,
                    });
                }
                let h = payload.get(at..at + 2).ok_or(ExtError::Truncated)?;
                let len = (usize::from(h[1]) + 1) * 8;
                let hdr = payload.get(at..at + len).ok_or(ExtError::Truncated)?;
                walk_options(&hdr[2..], ptr_base + 2, dst_multicast)?;
                nh = hdr[0];
                nh_pointer = ptr_base;
                at += len;
            }
            ROUTING => {
                let h = payload.get(at..at + 4).ok_or(ExtError::Truncated)?;
                let len = (usize::from(h[1]) + 1) * 8;
                if payload.len() < at + len {
                    return Err(ExtError::Truncated);
                }
                if h[3] != 0 {
                    return Err(ExtError::ParamProblem {
                        code: param_problem::ERRONEOUS_FIELD,
                        pointer: ptr_base + 2,
                    });
                }
                nh = h[0];
                nh_pointer = ptr_base;
                at += len;
            }
            FRAGMENT => {
                let f = FragmentHeader::parse(&payload[at.min(payload.len())..])
                    .map_err(|_| ExtError::Truncated)?;
                fragment = Some(f);
                fragment_offset = at;
                fragment_pointer = nh_pointer;
                nh = f.next_header;
                nh_pointer = ptr_base;
                at += FRAGMENT_HEADER_LEN;
                if !f.is_atomic() {
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(ExtWalk {
        upper: nh,
        offset: at,
        upper_pointer: nh_pointer,
        fragment,
        fragment_offset,
        fragment_pointer,
    })
}

/// The options of a Hop-by-Hop or Destination Options header (RFC 8200 §4.2).
fn walk_options(
    mut opts: &[u8],
    mut pointer: u32,
    dst_multicast: bool,
) -> core::result::Result<(), ExtError> {
    while let Some(&kind) = opts.first() {
        if kind == 0 {
            // Pad1.
            opts = &opts[1..];
            pointer += 1;
            continue;
        }
        let len = usize::from(*opts.get(1).ok_or(ExtError::Truncated)?) + 2;
        if opts.len() < len {
            return Err(ExtError::Truncated);
        }
        if kind != 1 {
            match kind >> 6 {
                0 => {}
                1 => return Err(ExtError::Discard),
                3 if dst_multicast => return Err(ExtError::Discard),
                _ => {
                    return Err(ExtError::ParamProblem {
                        code: param_problem::UNRECOGNIZED_OPTION,
                        pointer,
                    })
                }
            }
        }
        opts = &opts[len..];
        pointer += len as u32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);

    // An ICMPv6 echo request header as Linux sends it: tc 0, flow label
    // 0x12345, payload 16, next header 58, hop limit 64.
    const HEADER: [u8; 40] = [
        0x60, 0x01, 0x23, 0x45, 0x00, 0x10, 0x3a, 0x40, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 1, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    ];

    fn repr() -> Ipv6Repr {
        Ipv6Repr {
            src_addr: SRC,
            dst_addr: DST,
            next_header: IpProtocol::Icmpv6,
            payload_len: 16,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0x12345,
        }
    }

    #[test]
    fn parse_and_emit_known() {
        let mut bytes = HEADER.to_vec();
        bytes.extend([7u8; 16]);
        bytes.extend([0u8; 4]); // link padding
        let p = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload(), &[7u8; 16]);
        assert_eq!(Ipv6Repr::parse(&p).unwrap(), repr());
        let mut out = [0xa5u8; 40];
        repr().emit(&mut Ipv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, HEADER);
        let mut tc = [0u8; 40];
        let mut p = Ipv6Packet::new_unchecked(&mut tc[..]);
        p.set_version(6);
        p.set_traffic_class(0xb8);
        p.set_flow_label(0xfffff);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0xfffff);
        assert_eq!(&tc[..4], &[0x6b, 0x8f, 0xff, 0xff]);
    }

    #[test]
    fn checks() {
        let mut bytes = HEADER.to_vec();
        bytes.extend([7u8; 16]);
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..39]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..55]).unwrap_err(),
            Error::Truncated
        );
        let mut v4 = bytes.clone();
        v4[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&v4[..]).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn cidr_and_addresses() {
        let c: Ipv6Cidr = "2001:db8::1/64".parse().unwrap();
        assert!(c.contains_addr(&"2001:db8::ffff".parse().unwrap()));
        assert!(!c.contains_addr(&"2001:db9::1".parse().unwrap()));
        assert_eq!(c.network().to_string(), "2001:db8::/64");
        for bad in ["2001:db8::1", "2001:db8::1/129", "::/", "x/64", "::/064"] {
            assert_eq!(bad.parse::<Ipv6Cidr>(), Err(Error::Malformed), "{bad}");
        }
        assert_eq!(
            link_local_from_mac([0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]),
            "fe80::5eff:fe10:2030".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            solicited_node(&"2001:db8::12:3456".parse().unwrap()),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }

    fn opts_header(nh: u8, body: &[u8]) -> Vec<u8> {
        let mut h = vec![nh, ((body.len() + 2) / 8 - 1) as u8];
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn walk_hop_by_hop_dest_routing_to_upper() {
        let mut p = opts_header(next_header::DEST_OPTS, &[1, 4, 0, 0, 0, 0]); // PadN
        p.extend(opts_header(next_header::ROUTING, &[0, 0, 0, 0, 0, 0]));
        p.extend([6, 0, 4, 0, 0, 0, 0, 0]); // routing type 4, segments left 0
        p.extend([0u8; 20]);
        let w = walk_ext_headers(next_header::HOP_BY_HOP, &p, false).unwrap();
        assert_eq!(w.upper, 6);
        assert_eq!(w.offset, 24);
        assert_eq!(w.upper_pointer, 40 + 16);
        assert_eq!(w.fragment, None);
    }

    #[test]
    fn walk_answers_per_rfc8200_section4() {
        // Hop-by-Hop not first: code 1 pointing at the Next Header naming it.
        let mut p = opts_header(next_header::HOP_BY_HOP, &[0; 6]);
        p.extend(opts_header(17, &[0; 6]));
        assert_eq!(
            walk_ext_headers(next_header::DEST_OPTS, &p, false),
            Err(ExtError::ParamProblem {
                code: 1,
                pointer: 40
            })
        );
        // Routing header with segments left: code 0 at its type field.
        let p = [17u8, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(
            walk_ext_headers(next_header::ROUTING, &p, false),
            Err(ExtError::ParamProblem {
                code: 0,
                pointer: 42
            })
        );
        // Unknown options by their action bits, after a Pad1.
        for (kind, mcast, want) in [
            (0x1e, false, None),
            (0x5e, false, Some(ExtError::Discard)),
            (
                0x9e,
                true,
                Some(ExtError::ParamProblem {
                    code: 2,
                    pointer: 43,
                }),
            ),
            (
                0xde,
                false,
                Some(ExtError::ParamProblem {
                    code: 2,
                    pointer: 43,
                }),
            ),
            (0xde, true, Some(ExtError::Discard)),
        ] {
            let p = opts_header(17, &[0, kind, 2, 0, 0, 0]);
            let got = walk_ext_headers(next_header::DEST_OPTS, &p, mcast);
            match want {
                None => assert_eq!(got.unwrap().upper, 17, "{kind:x}"),
                Some(e) => assert_eq!(got, Err(e), "{kind:x}"),
            }
        }
        // An option longer than its header.
        let p = opts_header(17, &[5, 9, 0, 0, 0, 0]);
        assert_eq!(
            walk_ext_headers(next_header::DEST_OPTS, &p, false),
            Err(ExtError::Truncated)
        );
    }

    #[test]
    fn walk_fragments() {
        let f = FragmentHeader {
            next_header: 17,
            offset: 1232,
            more_frags: true,
            ident: 0xdead_beef,
        };
        let mut p = [0u8; 16];
        f.emit(&mut p);
        assert_eq!(&p[..8], &[17, 0, 0x04, 0xd1, 0xde, 0xad, 0xbe, 0xef]);
        let w = walk_ext_headers(next_header::FRAGMENT, &p, false).unwrap();
        assert_eq!((w.upper, w.offset), (17, 8));
        assert_eq!((w.fragment_offset, w.fragment_pointer), (0, 6));
        assert_eq!(w.fragment, Some(f));
        // Atomic: walked through to the header after it.
        let a = FragmentHeader {
            next_header: next_header::DEST_OPTS,
            offset: 0,
            more_frags: false,
            ident: 1,
        };
        let mut p = vec![0u8; 8];
        a.emit(&mut p);
        p.extend(opts_header(6, &[1, 4, 0, 0, 0, 0]));
        let w = walk_ext_headers(next_header::FRAGMENT, &p, false).unwrap();
        assert_eq!((w.upper, w.offset), (6, 16));
        assert!(w.fragment.unwrap().is_atomic());
    }

    fn arb_repr() -> impl Strategy<Value = Ipv6Repr> {
        (
            any::<u128>(),
            any::<u128>(),
            any::<u8>(),
            0usize..200,
            any::<u8>(),
            any::<u8>(),
            0u32..0x10_0000,
        )
            .prop_map(|(s, d, nh, payload_len, hop_limit, tc, fl)| Ipv6Repr {
                src_addr: s.into(),
                dst_addr: d.into(),
                next_header: nh.into(),
                payload_len,
                hop_limit,
                traffic_class: tc,
                flow_label: fl,
            })
    }

    proptest! {
        #[test]
        fn round_trip(r in arb_repr()) {
            let mut buf = vec![0u8; HEADER_LEN + r.payload_len];
            r.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
            let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Ipv6Repr::parse(&p).unwrap(), r);
        }

        #[test]
        fn fragment_round_trip(nh in any::<u8>(), off in 0u16..0x2000, m in any::<bool>(), id in any::<u32>()) {
            let f = FragmentHeader { next_header: nh, offset: off << 3, more_frags: m, ident: id };
            let mut b = [0u8; 8];
            f.emit(&mut b);
            prop_assert_eq!(FragmentHeader::parse(&b).unwrap(), f);
        }

        #[test]
        fn random_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..120), first in any::<u8>(), m in any::<bool>()) {
            if !data.is_empty() {
                data[0] = 0x60 | (data[0] & 0x0f);
            }
            if let Ok(p) = Ipv6Packet::new_checked(&data[..]) {
                let _ = (p.payload(), Ipv6Repr::parse(&p));
            }
            let _ = walk_ext_headers(first, &data, m);
            for nh in [0u8, 43, 44, 60] {
                if let Ok(w) = walk_ext_headers(nh, &data, m) {
                    prop_assert!(w.offset <= data.len());
                }
            }
        }
    }
}
