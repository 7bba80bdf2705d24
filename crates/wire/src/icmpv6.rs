//! ICMPv6 messages (RFC 4443): echo, destination unreachable, packet too
//! big, time exceeded, parameter problem; Neighbor Discovery messages are
//! read and written by [`crate::ndp`].

use crate::checksum;
use crate::field::{read_u16, read_u32, write_u16, write_u32};
use crate::ndp::NdpRepr;
use crate::{ChecksumCaps, Error, IpProtocol, Ipv6Addr, Result};

/// ICMPv6 message types (RFC 4443 §2.1, RFC 4861 §4).
pub mod msg_type {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PKT_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

/// Destination Unreachable codes (RFC 4443 §3.1).
pub mod unreachable {
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const BEYOND_SCOPE: u8 = 2;
    pub const ADDR_UNREACHABLE: u8 = 3;
    pub const PORT_UNREACHABLE: u8 = 4;
}

/// Length of the ICMPv6 header (type, code, checksum, 4 type-specific bytes).
pub const HEADER_LEN: usize = 8;

/// The least IPv6 MTU (RFC 8200 §5): an ICMPv6 error is cut to fit it
/// (RFC 4443 §2.4 (c)).
pub const MIN_MTU: usize = 1280;

/// A view over an ICMPv6 message (the whole upper-layer payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Wraps a buffer, checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Err(Truncated)` if shorter than 8 bytes.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 4)
    }
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 6)
    }
    /// The MTU of Packet Too Big, or the pointer of Parameter Problem (bytes 4..8).
    pub fn word(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 4)
    }
    /// Bytes after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// Whether the checksum over pseudo-header and message verifies (RFC 4443 §2.3).
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::transport_v6(src, dst, IpProtocol::Icmpv6, self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[0] = v
    }
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[1] = v
    }
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), 2, v)
    }
    pub fn set_word(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), 4, v)
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
    /// Computes the checksum over pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let c = checksum::transport_v6(src, dst, IpProtocol::Icmpv6, self.buffer.as_ref());
        self.set_checksum(c)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv6Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// High-level representation of the ICMPv6 messages this stack handles.
/// `invoking` is as much of the offending packet as was quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    /// Codes in [`unreachable`] (RFC 4443 §3.1).
    DstUnreachable { code: u8, invoking: &'a [u8] },
    /// The MTU of the next hop (RFC 4443 §3.2, RFC 8201).
    PacketTooBig { mtu: u32, invoking: &'a [u8] },
    /// Code 0: hop limit exceeded; 1: reassembly time exceeded (RFC 4443 §3.3).
    TimeExceeded { code: u8, invoking: &'a [u8] },
    /// Codes in [`crate::ipv6::param_problem`]; `pointer` is an offset into
    /// the invoking packet (RFC 4443 §3.4).
    ParamProblem {
        code: u8,
        pointer: u32,
        invoking: &'a [u8],
    },
    /// Neighbor Discovery (RFC 4861 §4).
    Ndp(NdpRepr<'a>),
}

impl<'a> Icmpv6Repr<'a> {
    /// Parses a message sent from `src` to `dst`, verifying the checksum if
    /// `caps.rx`. Types this stack does not handle are `Unsupported` (the
    /// caller tells errors, type < 128, from informational messages, RFC 4443 §2.4).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Icmpv6Packet<&'a T>,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        caps: &ChecksumCaps,
    ) -> Result<Self> {
        packet.check_len()?;
        if caps.rx && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        let b: &'a [u8] = T::as_ref(packet.buffer);
        let data = &b[HEADER_LEN..];
        let code = packet.msg_code();
        Ok(match packet.msg_type() {
            msg_type::ECHO_REQUEST => Icmpv6Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            },
            msg_type::ECHO_REPLY => Icmpv6Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            },
            msg_type::DST_UNREACHABLE => Icmpv6Repr::DstUnreachable {
                code,
                invoking: data,
            },
            msg_type::PKT_TOO_BIG => Icmpv6Repr::PacketTooBig {
                mtu: packet.word(),
                invoking: data,
            },
            msg_type::TIME_EXCEEDED => Icmpv6Repr::TimeExceeded {
                code,
                invoking: data,
            },
            msg_type::PARAM_PROBLEM => Icmpv6Repr::ParamProblem {
                code,
                pointer: packet.word(),
                invoking: data,
            },
            t @ msg_type::ROUTER_SOLICIT..=msg_type::NEIGHBOR_ADVERT => {
                Icmpv6Repr::Ndp(NdpRepr::parse(t, code, b)?)
            }
            _ => return Err(Error::Unsupported),
        })
    }

    /// Whole message length.
    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::EchoRequest { data, .. } | Icmpv6Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Icmpv6Repr::DstUnreachable { invoking, .. }
            | Icmpv6Repr::PacketTooBig { invoking, .. }
            | Icmpv6Repr::TimeExceeded { invoking, .. }
            | Icmpv6Repr::ParamProblem { invoking, .. } => HEADER_LEN + invoking.len(),
            Icmpv6Repr::Ndp(n) => n.buffer_len(),
        }
    }

    /// Writes the message and fills the checksum (pseudo-header of `src`,
    /// `dst`) if `caps.tx`. Panics if the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        packet: &mut Icmpv6Packet<T>,
        caps: &ChecksumCaps,
    ) {
        let len = self.buffer_len();
        let (t, code, word, body) = match *self {
            Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => (
                msg_type::ECHO_REQUEST,
                0,
                u32::from(ident) << 16 | u32::from(seq_no),
                data,
            ),
            Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => (
                msg_type::ECHO_REPLY,
                0,
                u32::from(ident) << 16 | u32::from(seq_no),
                data,
            ),
            Icmpv6Repr::DstUnreachable { code, invoking } => {
                (msg_type::DST_UNREACHABLE, code, 0, invoking)
            }
            Icmpv6Repr::PacketTooBig { mtu, invoking } => (msg_type::PKT_TOO_BIG, 0, mtu, invoking),
            Icmpv6Repr::TimeExceeded { code, invoking } => {
                (msg_type::TIME_EXCEEDED, code, 0, invoking)
            }
            Icmpv6Repr::ParamProblem {
                code,
                pointer,
                invoking,
            } => (msg_type::PARAM_PROBLEM, code, pointer, invoking),
            Icmpv6Repr::Ndp(n) => {
                n.emit(&mut packet.buffer.as_mut()[..len]);
                (n.msg_type(), 0, 0, &[][..])
            }
        };
        packet.set_msg_type(t);
        packet.set_msg_code(code);
        if !matches!(self, Icmpv6Repr::Ndp(_)) {
            packet.set_word(word);
            packet.data_mut()[..body.len()].copy_from_slice(body);
        }
        packet.set_checksum(0);
        if caps.tx {
            let c = checksum::transport_v6(
                src,
                dst,
                IpProtocol::Icmpv6,
                &packet.buffer.as_ref()[..len],
            );
            packet.set_checksum(c);
        }
    }
}

/// The header of a packet quoted in an ICMPv6 error (cut short, so
/// `Ipv6Packet::new_checked` would reject it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvokingPacketV6<'a> {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    /// The upper layer after the quoted extension headers.
    pub protocol: IpProtocol,
    /// The quoted upper-layer bytes (at least 8).
    pub transport: &'a [u8],
}

/// Parses the quoted packet of an ICMPv6 error: a 40-byte IPv6 header
/// (version 6, else `Malformed`), its extension headers walked, then at
/// least 8 upper-layer bytes (else `Truncated`). A quoted non-first
/// fragment is `Unsupported` (its upper-layer header is elsewhere).
pub fn parse_invoking(bytes: &[u8]) -> Result<InvokingPacketV6<'_>> {
    use crate::ipv6::{walk_ext_headers, ExtError, HEADER_LEN as IP6};
    if bytes.len() < IP6 {
        return Err(Error::Truncated);
    }
    if bytes[0] >> 4 != 6 {
        return Err(Error::Malformed);
    }
    let p = crate::ipv6::Ipv6Packet::new_unchecked(bytes);
    let rest = &bytes[IP6..];
    let w =
        walk_ext_headers(p.next_header(), rest, p.dst_addr().is_multicast()).map_err(
            |e| match e {
                ExtError::Truncated => Error::Truncated,
                _ => Error::Malformed,
            },
        )?;
    if w.fragment.is_some_and(|f| f.offset != 0) {
        return Err(Error::Unsupported);
    }
    let transport = &rest[w.offset..];
    if transport.len() < 8 {
        return Err(Error::Truncated);
    }
    Ok(InvokingPacketV6 {
        src_addr: p.src_addr(),
        dst_addr: p.dst_addr(),
        protocol: w.upper.into(),
        transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

    // Echo request fd00::1 -> fd00::2, ident 0x1234, seq 1, "abcdefgh";
    // checksum from an independent RFC 1071 sum over the pseudo-header
    // (below, `reference`).
    fn echo_bytes() -> Vec<u8> {
        let mut v = vec![128, 0, 0, 0, 0x12, 0x34, 0, 1];
        v.extend_from_slice(b"abcdefgh");
        let c = reference(&v);
        v[2..4].copy_from_slice(&c.to_be_bytes());
        v
    }

    /// Straightforward pseudo-header + RFC 1071 sum.
    fn reference(msg: &[u8]) -> u16 {
        let mut all = Vec::new();
        all.extend_from_slice(&SRC.octets());
        all.extend_from_slice(&DST.octets());
        all.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        all.extend_from_slice(&[0, 0, 0, 58]);
        all.extend_from_slice(msg);
        let mut acc = 0u32;
        for c in all.chunks(2) {
            acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn echo_parse_emit_checksum() {
        let bytes = echo_bytes();
        let p = Icmpv6Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        // The pseudo-header counts: the same bytes between other addresses fail.
        assert!(!p.verify_checksum(DST, SRC.to_bits().wrapping_add(1).into()));
        let r = Icmpv6Repr::parse(&p, SRC, DST, &ChecksumCaps::default()).unwrap();
        assert_eq!(
            r,
            Icmpv6Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcdefgh"
            }
        );
        let mut out = vec![0xffu8; r.buffer_len()];
        r.emit(
            SRC,
            DST,
            &mut Icmpv6Packet::new_unchecked(&mut out[..]),
            &ChecksumCaps::default(),
        );
        assert_eq!(out, bytes);
        let mut bad = bytes.clone();
        bad[9] ^= 1;
        let p = Icmpv6Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(
            Icmpv6Repr::parse(&p, SRC, DST, &ChecksumCaps::default()),
            Err(Error::Checksum)
        );
        let p = Icmpv6Packet::new_checked(&bytes[..7]);
        assert_eq!(p.unwrap_err(), Error::Truncated);
    }

    #[test]
    fn errors_carry_their_word() {
        let quoted = [0x60u8; 48];
        for r in [
            Icmpv6Repr::PacketTooBig {
                mtu: 1280,
                invoking: &quoted,
            },
            Icmpv6Repr::ParamProblem {
                code: 2,
                pointer: 43,
                invoking: &quoted,
            },
            Icmpv6Repr::DstUnreachable {
                code: unreachable::PORT_UNREACHABLE,
                invoking: &quoted,
            },
            Icmpv6Repr::TimeExceeded {
                code: 1,
                invoking: &quoted,
            },
        ] {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(
                SRC,
                DST,
                &mut Icmpv6Packet::new_unchecked(&mut out[..]),
                &ChecksumCaps::default(),
            );
            let p = Icmpv6Packet::new_checked(&out[..]).unwrap();
            assert_eq!(
                Icmpv6Repr::parse(&p, SRC, DST, &ChecksumCaps::default()).unwrap(),
                r
            );
        }
        let ptb = Icmpv6Repr::PacketTooBig {
            mtu: 1400,
            invoking: &[],
        };
        let mut out = [0u8; 8];
        ptb.emit(
            SRC,
            DST,
            &mut Icmpv6Packet::new_unchecked(&mut out[..]),
            &ChecksumCaps::default(),
        );
        assert_eq!(&out[..2], &[2, 0]);
        assert_eq!(&out[4..], &1400u32.to_be_bytes());
    }

    #[test]
    fn invoking_walks_extension_headers() {
        let mut q = vec![0u8; 40];
        q[0] = 0x60;
        q[6] = 60; // destination options
        q[8..24].copy_from_slice(&SRC.octets());
        q[24..40].copy_from_slice(&DST.octets());
        q.extend([17, 0, 1, 4, 0, 0, 0, 0]);
        q.extend([0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        let inv = parse_invoking(&q).unwrap();
        assert_eq!(inv.protocol, IpProtocol::Udp);
        assert_eq!((inv.src_addr, inv.dst_addr), (SRC, DST));
        assert_eq!(&inv.transport[..4], &[0x30, 0x39, 0, 53]);
        assert_eq!(parse_invoking(&q[..55]), Err(Error::Truncated));
        q[0] = 0x45;
        assert_eq!(parse_invoking(&q), Err(Error::Malformed));
    }

    proptest! {
        #[test]
        fn echo_round_trip(reply in any::<bool>(), ident in any::<u16>(), seq_no in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = if reply {
                Icmpv6Repr::EchoReply { ident, seq_no, data: &data }
            } else {
                Icmpv6Repr::EchoRequest { ident, seq_no, data: &data }
            };
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(SRC, DST, &mut Icmpv6Packet::new_unchecked(&mut out[..]), &ChecksumCaps::default());
            prop_assert_eq!(reference(&out), 0);
            let p = Icmpv6Packet::new_checked(&out[..]).unwrap();
            prop_assert_eq!(Icmpv6Repr::parse(&p, SRC, DST, &ChecksumCaps::default()).unwrap(), r);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..120), t in 126u8..140) {
            let mut d = data.clone();
            if !d.is_empty() { d[0] = t; }
            for b in [&data, &d] {
                if let Ok(p) = Icmpv6Packet::new_checked(&b[..]) {
                    let _ = Icmpv6Repr::parse(&p, SRC, DST, &ChecksumCaps::OFFLOAD);
                }
                let _ = parse_invoking(b);
            }
        }
    }
}
