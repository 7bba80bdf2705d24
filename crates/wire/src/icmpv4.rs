//! ICMPv4 messages (RFC 792): echo, destination unreachable, time exceeded.

use crate::checksum;
use crate::field::{read_u16, write_u16};
use crate::{ChecksumCaps, Error, IpProtocol, Ipv4Addr, Result};

/// ICMP message types (RFC 792).
pub mod msg_type {
    pub const ECHO_REPLY: u8 = 0;
    pub const DST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
}

/// Destination Unreachable codes (RFC 792; 4 with next-hop MTU per RFC 1191;
/// 13 per RFC 1812 §5.2.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DstUnreachable {
    NetUnreachable,
    HostUnreachable,
    ProtoUnreachable,
    PortUnreachable,
    FragRequired,
    SrcRouteFailed,
    AdminProhibited,
    Other(u8),
}

impl From<u8> for DstUnreachable {
    fn from(v: u8) -> Self {
        match v {
            0 => DstUnreachable::NetUnreachable,
            1 => DstUnreachable::HostUnreachable,
            2 => DstUnreachable::ProtoUnreachable,
            3 => DstUnreachable::PortUnreachable,
            4 => DstUnreachable::FragRequired,
            5 => DstUnreachable::SrcRouteFailed,
            13 => DstUnreachable::AdminProhibited,
            other => DstUnreachable::Other(other),
        }
    }
}

impl From<DstUnreachable> for u8 {
    fn from(v: DstUnreachable) -> u8 {
        match v {
            DstUnreachable::NetUnreachable => 0,
            DstUnreachable::HostUnreachable => 1,
            DstUnreachable::ProtoUnreachable => 2,
            DstUnreachable::PortUnreachable => 3,
            DstUnreachable::FragRequired => 4,
            DstUnreachable::SrcRouteFailed => 5,
            DstUnreachable::AdminProhibited => 13,
            DstUnreachable::Other(other) => other,
        }
    }
}

/// Length of the ICMP header (type, code, checksum, 4 type-specific bytes).
pub const HEADER_LEN: usize = 8;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const MTU: usize = 6;
    pub const UNUSED: core::ops::Range<usize> = 4..8;
    pub const DATA: usize = 8;
}

/// A view over an ICMPv4 message (the whole IP payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checks; getters may panic if it is short.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
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
        self.buffer.as_ref()[field::TYPE]
    }
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Echo identifier (bytes 4..6).
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }
    /// Echo sequence number (bytes 6..8).
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }
    /// Next-hop MTU of a "fragmentation needed" message (bytes 6..8, RFC 1191 §4).
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::MTU)
    }
    /// Bytes after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
    /// Whether the checksum over the whole message verifies (RFC 792).
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Icmpv4Packet<&'a T> {
    fn data_ref(&self) -> &'a [u8] {
        let b: &'a [u8] = T::as_ref(self.buffer);
        &b[field::DATA..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v
    }
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v
    }
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    pub fn set_echo_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, v)
    }
    pub fn set_echo_seq_no(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, v)
    }
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::MTU, v)
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
    /// Computes the checksum over the whole buffer and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// High-level representation of the ICMPv4 messages this stack handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
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
    /// `invoking` = the offending datagram's IP header + at least the first 8
    /// bytes of its payload (RFC 792; RFC 1812 §4.3.2.3 allows more).
    /// `next_hop_mtu` is meaningful for `FragRequired` (RFC 1191 §4), else 0.
    DstUnreachable {
        reason: DstUnreachable,
        next_hop_mtu: u16,
        invoking: &'a [u8],
    },
    /// Code 0: TTL exceeded in transit; 1: fragment reassembly time exceeded (RFC 792).
    TimeExceeded { code: u8, invoking: &'a [u8] },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses a message, verifying the checksum if `caps.rx`. Unknown types are
    /// `Unsupported`. `invoking` is not validated here; see [`parse_invoking`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Icmpv4Packet<&'a T>,
        caps: &ChecksumCaps,
    ) -> Result<Self> {
        packet.check_len()?;
        if caps.rx && !packet.verify_checksum() {
            return Err(Error::Checksum);
        }
        let data = packet.data_ref();
        match packet.msg_type() {
            msg_type::ECHO_REQUEST => Ok(Icmpv4Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            msg_type::ECHO_REPLY => Ok(Icmpv4Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            msg_type::DST_UNREACHABLE => Ok(Icmpv4Repr::DstUnreachable {
                reason: packet.msg_code().into(),
                next_hop_mtu: packet.next_hop_mtu(),
                invoking: data,
            }),
            msg_type::TIME_EXCEEDED => Ok(Icmpv4Repr::TimeExceeded {
                code: packet.msg_code(),
                invoking: data,
            }),
            _ => Err(Error::Unsupported),
        }
    }

    /// 8 + data/invoking length.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => {
                    data.len()
                }
                Icmpv4Repr::DstUnreachable { invoking, .. }
                | Icmpv4Repr::TimeExceeded { invoking, .. } => invoking.len(),
            }
    }

    /// Writes the message, copying data/invoking, and fills the checksum
    /// (over `buffer_len()` bytes) if `caps.tx`. Panics if the buffer is shorter
    /// than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Icmpv4Packet<T>,
        caps: &ChecksumCaps,
    ) {
        let body = match *self {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                let t = if matches!(self, Icmpv4Repr::EchoRequest { .. }) {
                    msg_type::ECHO_REQUEST
                } else {
                    msg_type::ECHO_REPLY
                };
                packet.set_msg_type(t);
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                data
            }
            Icmpv4Repr::DstUnreachable {
                reason,
                next_hop_mtu,
                invoking,
            } => {
                packet.set_msg_type(msg_type::DST_UNREACHABLE);
                packet.set_msg_code(reason.into());
                packet.buffer.as_mut()[field::UNUSED].fill(0);
                packet.set_next_hop_mtu(next_hop_mtu);
                invoking
            }
            Icmpv4Repr::TimeExceeded { code, invoking } => {
                packet.set_msg_type(msg_type::TIME_EXCEEDED);
                packet.set_msg_code(code);
                packet.buffer.as_mut()[field::UNUSED].fill(0);
                invoking
            }
        };
        packet.data_mut()[..body.len()].copy_from_slice(body);
        packet.set_checksum(0);
        if caps.tx {
            let c = checksum::checksum(&packet.buffer.as_ref()[..HEADER_LEN + body.len()]);
            packet.set_checksum(c);
        }
    }
}

/// The header of a datagram quoted in an ICMP error (it is truncated, so
/// `Ipv4Packet::new_checked` would reject it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvokingPacket<'a> {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Bytes after the quoted IP header (at least 8, RFC 792).
    pub transport: &'a [u8],
}

/// Parses the quoted datagram of an ICMP error: an IPv4 header (version 4,
/// IHL >= 5, else `Malformed`) followed by at least 8 bytes (else
/// `Truncated`). Its total length and checksum are not checked.
pub fn parse_invoking(bytes: &[u8]) -> Result<InvokingPacket<'_>> {
    if bytes.len() < crate::ipv4::HEADER_LEN {
        return Err(Error::Truncated);
    }
    if bytes[0] >> 4 != 4 {
        return Err(Error::Malformed);
    }
    let hl = (bytes[0] & 0x0f) as usize * 4;
    if hl < crate::ipv4::HEADER_LEN {
        return Err(Error::Malformed);
    }
    if bytes.len() < hl + 8 {
        return Err(Error::Truncated);
    }
    Ok(InvokingPacket {
        src_addr: Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]),
        dst_addr: Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]),
        protocol: bytes[9].into(),
        transport: &bytes[hl..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // `ping` echo request (ident 0x1234, seq 1, 8 data bytes), checksum 0x5435.
    const ECHO: [u8; 16] = [
        0x08, 0x00, 0x54, 0x35, 0x12, 0x34, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68,
    ];

    #[test]
    fn parse_captured_echo() {
        let p = Icmpv4Packet::new_checked(&ECHO[..]).unwrap();
        assert!(p.verify_checksum());
        let r = Icmpv4Repr::parse(&p, &ChecksumCaps::default()).unwrap();
        assert_eq!(
            r,
            Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcdefgh"
            }
        );
        let mut buf = [0u8; 16];
        r.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCaps::default(),
        );
        assert_eq!(buf, ECHO);
        let mut bad = ECHO;
        bad[15] ^= 1;
        let p = Icmpv4Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&p, &ChecksumCaps::default()),
            Err(Error::Checksum)
        );
        assert!(Icmpv4Repr::parse(&p, &ChecksumCaps::OFFLOAD).is_ok());
    }

    #[test]
    fn port_unreachable_round_trip() {
        // Quoted UDP datagram: 10.0.0.1:1234 -> 10.0.0.2:53.
        let mut quoted = [0u8; 28];
        quoted[..20].copy_from_slice(&[
            0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        quoted[20..24].copy_from_slice(&[0x04, 0xd2, 0x00, 0x35]);
        let r = Icmpv4Repr::DstUnreachable {
            reason: DstUnreachable::PortUnreachable,
            next_hop_mtu: 0,
            invoking: &quoted,
        };
        let mut buf = vec![0xffu8; r.buffer_len()];
        r.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCaps::default(),
        );
        assert_eq!(&buf[..2], &[3, 3]);
        assert_eq!(&buf[4..8], &[0, 0, 0, 0]);
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum());
        let parsed = Icmpv4Repr::parse(&p, &ChecksumCaps::default()).unwrap();
        assert_eq!(parsed, r);
        let Icmpv4Repr::DstUnreachable { invoking, .. } = parsed else {
            unreachable!()
        };
        let inv = parse_invoking(invoking).unwrap();
        assert_eq!(inv.src_addr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(inv.dst_addr, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(inv.protocol, IpProtocol::Udp);
        assert_eq!(&inv.transport[..4], &[0x04, 0xd2, 0x00, 0x35]);
        assert_eq!(parse_invoking(&quoted[..27]), Err(Error::Truncated));
        let mut v6 = quoted;
        v6[0] = 0x60;
        assert_eq!(parse_invoking(&v6), Err(Error::Malformed));
        let mut ihl = quoted;
        ihl[0] = 0x44;
        assert_eq!(parse_invoking(&ihl), Err(Error::Malformed));
    }

    #[test]
    fn unknown_type() {
        let mut b = [13u8, 0, 0, 0, 0, 0, 0, 0];
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Icmpv4Repr::parse(&p, &ChecksumCaps::default()),
            Err(Error::Unsupported)
        );
        assert_eq!(
            Icmpv4Packet::new_checked(&b[..7]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn dst_unreachable_codes() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(DstUnreachable::from(v)), v);
        }
        assert_eq!(DstUnreachable::from(13), DstUnreachable::AdminProhibited);
    }

    fn arb_repr(data: &[u8]) -> impl Strategy<Value = Icmpv4Repr<'_>> {
        let n = data.len();
        prop_oneof![
            (any::<u16>(), any::<u16>(), 0..=n).prop_map(move |(ident, seq_no, l)| {
                Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data: &data[..l],
                }
            }),
            (any::<u16>(), any::<u16>(), 0..=n).prop_map(move |(ident, seq_no, l)| {
                Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data: &data[..l],
                }
            }),
            (any::<u8>(), any::<u16>(), 0..=n).prop_map(move |(c, mtu, l)| {
                Icmpv4Repr::DstUnreachable {
                    reason: c.into(),
                    next_hop_mtu: mtu,
                    invoking: &data[..l],
                }
            }),
            (any::<u8>(), 0..=n).prop_map(move |(code, l)| Icmpv4Repr::TimeExceeded {
                code,
                invoking: &data[..l]
            }),
        ]
    }

    static DATA: [u8; 64] = {
        let mut d = [0u8; 64];
        let mut i = 0;
        while i < 64 {
            d[i] = (i as u8).wrapping_mul(37).wrapping_add(11);
            i += 1;
        }
        d
    };

    proptest! {
        #[test]
        fn round_trip(r in arb_repr(&DATA), slack in 0usize..4) {
            let mut buf = vec![0u8; r.buffer_len() + slack];
            r.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]), &ChecksumCaps::default());
            buf.truncate(r.buffer_len());
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Icmpv4Repr::parse(&p, &ChecksumCaps::default()).unwrap(), r);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Icmpv4Packet::new_checked(&data[..]) {
                let _ = (p.data(), p.verify_checksum(), p.next_hop_mtu());
                let _ = Icmpv4Repr::parse(&p, &ChecksumCaps::default());
                if let Ok(Icmpv4Repr::DstUnreachable { invoking, .. } | Icmpv4Repr::TimeExceeded { invoking, .. }) =
                    Icmpv4Repr::parse(&p, &ChecksumCaps::OFFLOAD)
                {
                    let _ = parse_invoking(invoking);
                }
            }
            let _ = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(&data[..]), &ChecksumCaps::OFFLOAD);
            let _ = parse_invoking(&data);
        }
    }
}
