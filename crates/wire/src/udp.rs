//! UDP datagrams (RFC 768).

use crate::checksum;
use crate::field::{read_u16, write_u16};
use crate::{ChecksumCaps, Error, IpProtocol, Ipv4Addr, Result};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A view over a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checks; getters may panic if it is short.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// RFC 768: buffer >= 8 (`Truncated`), length field >= 8 (`Malformed`)
    /// and <= buffer length (`Truncated`).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = self.len() as usize;
        if field_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if field_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// The length field: header plus payload.
    pub fn len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }
    /// Whether the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Payload, limited by the length field (trailing bytes are ignored).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    /// Whether the checksum verifies; a zero checksum means none was sent and
    /// is accepted (RFC 768).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let seg = &self.buffer.as_ref()[..self.len() as usize];
        checksum::transport(src, dst, IpProtocol::Udp, seg) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpPacket<&'a T> {
    /// The payload with the lifetime of the underlying buffer.
    pub fn payload_ref(&self) -> &'a [u8] {
        let b: &'a [u8] = T::as_ref(self.buffer);
        &b[HEADER_LEN..self.len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, v)
    }
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, v)
    }
    pub fn set_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, v)
    }
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }
    /// Mutable payload, limited by the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len() as usize;
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }
    /// Computes the checksum over the length field's extent; a computed 0 is
    /// sent as 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len() as usize;
        let c = checksum::transport(src, dst, IpProtocol::Udp, &self.buffer.as_ref()[..len]);
        self.set_checksum(if c == 0 { 0xffff } else { c })
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// High-level representation of a UDP header (the payload is passed separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    /// Verifies the checksum when `caps.rx` (a zero checksum means none was
    /// sent: accepted, RFC 768); destination port 0 is `Malformed`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &UdpPacket<&T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCaps,
    ) -> Result<Self> {
        packet.check_len()?;
        if packet.dst_port() == 0 {
            return Err(Error::Malformed);
        }
        if caps.rx && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
        })
    }

    /// Header length: 8.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes header and copies `payload`; fills the checksum if `caps.tx` (a
    /// computed 0 is sent as 0xffff, RFC 768), else writes 0. Panics if the
    /// buffer is shorter than `8 + payload.len()` or the payload exceeds 65527 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
        caps: &ChecksumCaps,
    ) {
        let len = u16::try_from(HEADER_LEN + payload.len()).expect("UDP payload too long");
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.payload_mut().copy_from_slice(payload);
        if caps.tx {
            packet.fill_checksum(src, dst);
        } else {
            packet.set_checksum(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
    const DST: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);

    // DNS-style datagram 192.168.1.10:54321 -> 8.8.8.8:53 with payload
    // "hello"; checksum 0x15d9 cross-checked with an independent RFC 1071 sum.
    const DGRAM: [u8; 13] = [
        0xd4, 0x31, 0x00, 0x35, 0x00, 0x0d, 0x15, 0xd9, b'h', b'e', b'l', b'l', b'o',
    ];

    #[test]
    fn parse_known_good() {
        let p = UdpPacket::new_checked(&DGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 54321);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.len(), 13);
        assert_eq!(p.payload(), b"hello");
        assert!(p.verify_checksum(SRC, DST));
        let r = UdpRepr::parse(&p, SRC, DST, &ChecksumCaps::default()).unwrap();
        assert_eq!(
            r,
            UdpRepr {
                src_port: 54321,
                dst_port: 53
            }
        );
        let mut buf = [0u8; 13];
        r.emit(
            &mut UdpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            b"hello",
            &ChecksumCaps::default(),
        );
        assert_eq!(buf, DGRAM);
        // Wrong pseudo-header.
        assert_eq!(
            UdpRepr::parse(&p, SRC, SRC, &ChecksumCaps::default()),
            Err(Error::Checksum)
        );
        assert!(UdpRepr::parse(&p, SRC, SRC, &ChecksumCaps::OFFLOAD).is_ok());
    }

    #[test]
    fn zero_checksum_and_lengths() {
        let mut d = DGRAM;
        d[6] = 0;
        d[7] = 0;
        assert!(UdpRepr::parse(
            &UdpPacket::new_checked(&d[..]).unwrap(),
            SRC,
            SRC,
            &ChecksumCaps::default()
        )
        .is_ok());
        let mut padded = DGRAM.to_vec();
        padded.extend([0xee; 5]);
        assert_eq!(
            UdpPacket::new_checked(&padded[..]).unwrap().payload(),
            b"hello"
        );
        assert_eq!(
            UdpPacket::new_checked(&DGRAM[..12]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            UdpPacket::new_checked(&DGRAM[..7]).unwrap_err(),
            Error::Truncated
        );
        let mut short = DGRAM;
        short[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&short[..]).unwrap_err(),
            Error::Malformed
        );
        let mut port0 = DGRAM;
        port0[2] = 0;
        port0[3] = 0;
        let p = UdpPacket::new_checked(&port0[..]).unwrap();
        assert_eq!(
            UdpRepr::parse(&p, SRC, DST, &ChecksumCaps::OFFLOAD),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn computed_zero_sent_as_ffff() {
        // Choose a payload word that makes the sum 0xffff, so the checksum is 0.
        let r = UdpRepr {
            src_port: 1,
            dst_port: 2,
        };
        let a = Ipv4Addr::new(0, 0, 0, 0);
        let base = checksum::fold(checksum::pseudo_header(a, a, IpProtocol::Udp, 10) + 1 + 2 + 10);
        let word = (0xffff - base).to_be_bytes();
        let mut buf = [0u8; 10];
        r.emit(
            &mut UdpPacket::new_unchecked(&mut buf[..]),
            a,
            a,
            &word,
            &ChecksumCaps::default(),
        );
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(a, a));
    }

    proptest! {
        #[test]
        fn round_trip(src_port in any::<u16>(), dst_port in 1u16.., s in any::<u32>(), d in any::<u32>(),
                      payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let r = UdpRepr { src_port, dst_port };
            let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
            let mut buf = vec![0u8; r.header_len() + payload.len()];
            r.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), s, d, &payload, &ChecksumCaps::default());
            let p = UdpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(UdpRepr::parse(&p, s, d, &ChecksumCaps::default()).unwrap(), r);
            prop_assert_eq!(p.payload(), &payload[..]);
            prop_assert_eq!(p.payload_ref(), &payload[..]);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64), hi in any::<bool>()) {
            let mut data = data;
            if hi && data.len() >= 6 {
                // Bias the length field into range so deeper paths run.
                data[4] = 0;
                data[5] = (data[5] as usize % (data.len() + 1)) as u8;
            }
            if let Ok(p) = UdpPacket::new_checked(&data[..]) {
                let _ = (p.payload(), p.verify_checksum(DST, SRC));
                let _ = UdpRepr::parse(&p, SRC, DST, &ChecksumCaps::default());
            }
            let _ = UdpRepr::parse(&UdpPacket::new_unchecked(&data[..]), SRC, DST, &ChecksumCaps::default());
        }
    }
}
