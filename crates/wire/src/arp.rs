//! ARP packets (RFC 826). Only Ethernet hardware with IPv4 protocol addresses
//! is supported by [`ArpRepr`]; the packet view handles any address lengths.

use crate::field::{read_u16, write_u16};
use crate::{Error, EtherType, EthernetAddress, Ipv4Addr, Result};

/// ARP opcode (RFC 826; IANA "ARP Parameters").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(op: ArpOperation) -> u16 {
        match op {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

/// ar$hrd value for Ethernet (RFC 826).
pub const HARDWARE_ETHERNET: u16 = 1;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
}

/// Fixed part of the ARP header, before the variable-length addresses.
pub const FIXED_LEN: usize = 8;

/// A view over an ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checks; getters may panic if it is short.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer, checking it holds the fixed header and the four
    /// addresses whose lengths the header claims.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Err(Truncated)` unless the buffer covers header and all addresses.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < FIXED_LEN {
            return Err(Error::Truncated);
        }
        let need = FIXED_LEN + 2 * (self.hardware_len() as usize + self.protocol_len() as usize);
        if b.len() < need {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }
    pub fn protocol_type(&self) -> EtherType {
        read_u16(self.buffer.as_ref(), field::PTYPE).into()
    }
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    pub fn operation(&self) -> ArpOperation {
        read_u16(self.buffer.as_ref(), field::OPER).into()
    }

    fn sha_range(&self) -> core::ops::Range<usize> {
        field::SHA..field::SHA + self.hardware_len() as usize
    }
    fn spa_range(&self) -> core::ops::Range<usize> {
        let s = self.sha_range().end;
        s..s + self.protocol_len() as usize
    }
    fn tha_range(&self) -> core::ops::Range<usize> {
        let s = self.spa_range().end;
        s..s + self.hardware_len() as usize
    }
    fn tpa_range(&self) -> core::ops::Range<usize> {
        let s = self.tha_range().end;
        s..s + self.protocol_len() as usize
    }

    /// Sender hardware address (ar$sha), `hardware_len` bytes.
    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.sha_range()]
    }
    /// Sender protocol address (ar$spa), `protocol_len` bytes.
    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.spa_range()]
    }
    /// Target hardware address (ar$tha).
    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tha_range()]
    }
    /// Target protocol address (ar$tpa).
    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tpa_range()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    pub fn set_hardware_type(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, v)
    }
    pub fn set_protocol_type(&mut self, v: EtherType) {
        write_u16(self.buffer.as_mut(), field::PTYPE, v.into())
    }
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v
    }
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v
    }
    pub fn set_operation(&mut self, v: ArpOperation) {
        write_u16(self.buffer.as_mut(), field::OPER, v.into())
    }
    /// Sets ar$sha; `addr` must be `hardware_len` bytes long (else panics).
    pub fn set_source_hardware_addr(&mut self, addr: &[u8]) {
        let r = self.sha_range();
        self.buffer.as_mut()[r].copy_from_slice(addr)
    }
    /// Sets ar$spa; `addr` must be `protocol_len` bytes long (else panics).
    pub fn set_source_protocol_addr(&mut self, addr: &[u8]) {
        let r = self.spa_range();
        self.buffer.as_mut()[r].copy_from_slice(addr)
    }
    /// Sets ar$tha; `addr` must be `hardware_len` bytes long (else panics).
    pub fn set_target_hardware_addr(&mut self, addr: &[u8]) {
        let r = self.tha_range();
        self.buffer.as_mut()[r].copy_from_slice(addr)
    }
    /// Sets ar$tpa; `addr` must be `protocol_len` bytes long (else panics).
    pub fn set_target_protocol_addr(&mut self, addr: &[u8]) {
        let r = self.tpa_range();
        self.buffer.as_mut()[r].copy_from_slice(addr)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for ArpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: ArpOperation,
    pub source_hardware_addr: EthernetAddress,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn mac(b: &[u8]) -> EthernetAddress {
    EthernetAddress([b[0], b[1], b[2], b[3], b[4], b[5]])
}

impl ArpRepr {
    /// Parses an Ethernet/IPv4 ARP packet. Other hardware/protocol types or
    /// address lengths are `Unsupported` (RFC 826 allows them; we do not).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &ArpPacket<&T>) -> Result<Self> {
        packet.check_len()?;
        if packet.hardware_type() != HARDWARE_ETHERNET
            || packet.protocol_type() != EtherType::Ipv4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: mac(packet.source_hardware_addr()),
            source_protocol_addr: ipv4(packet.source_protocol_addr()),
            target_hardware_addr: mac(packet.target_hardware_addr()),
            target_protocol_addr: ipv4(packet.target_protocol_addr()),
        })
    }

    /// Length of an Ethernet/IPv4 ARP packet: 28.
    pub const fn buffer_len(&self) -> usize {
        FIXED_LEN + 2 * (6 + 4)
    }

    /// Writes the packet. Panics if the buffer is shorter than 28 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // "Who has 192.168.1.1? Tell 192.168.1.100", laid out as on the wire (RFC 826).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0xc0,
        0xa8, 0x01, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x01,
    ];

    #[test]
    fn parse_captured_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::Ipv4);
        assert_eq!(p.operation(), ArpOperation::Request);
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            ArpRepr {
                operation: ArpOperation::Request,
                source_hardware_addr: EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                source_protocol_addr: Ipv4Addr::new(192, 168, 1, 100),
                target_hardware_addr: EthernetAddress([0; 6]),
                target_protocol_addr: Ipv4Addr::new(192, 168, 1, 1),
            }
        );
        let mut buf = [0u8; 28];
        r.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REQUEST);
        assert_eq!(r.buffer_len(), 28);
    }

    #[test]
    fn rejects() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..5]).unwrap_err(),
            Error::Truncated
        );
        let mut other = REQUEST;
        other[1] = 6; // IEEE 802 hardware
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&other[..]).unwrap()),
            Err(Error::Unsupported)
        );
        let mut big = REQUEST;
        big[4] = 200;
        assert_eq!(
            ArpPacket::new_checked(&big[..]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_unchecked(&big[..])),
            Err(Error::Truncated)
        );
    }

    fn arb_repr() -> impl Strategy<Value = ArpRepr> {
        (
            any::<u16>(),
            any::<[u8; 6]>(),
            any::<u32>(),
            any::<[u8; 6]>(),
            any::<u32>(),
        )
            .prop_map(|(op, sha, spa, tha, tpa)| ArpRepr {
                operation: op.into(),
                source_hardware_addr: EthernetAddress(sha),
                source_protocol_addr: spa.into(),
                target_hardware_addr: EthernetAddress(tha),
                target_protocol_addr: tpa.into(),
            })
    }

    proptest! {
        #[test]
        fn round_trip(r in arb_repr()) {
            let mut buf = [0u8; 28];
            r.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
            prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }

        #[test]
        fn random_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..64), fix in any::<bool>()) {
            if fix && data.len() >= 6 {
                // Bias towards Ethernet/IPv4 with small address lengths so deeper paths run.
                data[..4].copy_from_slice(&[0, 1, 8, 0]);
                data[4] %= 8;
                data[5] %= 8;
            }
            if let Ok(p) = ArpPacket::new_checked(&data[..]) {
                let _ = (p.source_hardware_addr(), p.source_protocol_addr());
                let _ = (p.target_hardware_addr(), p.target_protocol_addr());
                let _ = ArpRepr::parse(&p);
            }
            let _ = ArpRepr::parse(&ArpPacket::new_unchecked(&data[..]));
        }
    }
}
