//! The virtio-net header a TUN/TAP opened with `IFF_VNET_HDR` puts before
//! every frame (virtio 1.2 §5.1.6 "Device Operation", `struct
//! virtio_net_hdr`; Linux `include/uapi/linux/virtio_net.h`).
//!
//! It says whether the frame is a GSO super-packet (`gso_type`,
//! `gso_size`: the frame is cut into `gso_size`-byte segments after
//! `hdr_len` bytes of headers) and whether its checksum is partial
//! (`NEEDS_CSUM`: the field at `csum_start + csum_offset` holds only the
//! pseudo-header sum; the sum over `csum_start..` completes it) or was
//! already checked (`DATA_VALID`).
//!
//! Fields are little-endian (virtio 1.0 and a TUN on a little-endian host;
//! `TUNSETVNETBE` is never used here). [`VirtioNetHdr::parse`] never panics:
//! [`VirtioNetHdr::check`] names what is wrong with a header for a frame.

use core::fmt;

/// The 10-byte header (`struct virtio_net_hdr`).
pub const HDR_LEN: usize = 10;
/// With `num_buffers` (`struct virtio_net_hdr_mrg_rxbuf`): the size
/// ustack sets with `TUNSETVNETHDRSZ`.
pub const HDR_LEN_MRG: usize = 12;

/// `flags`: the checksum from `csum_start` on is partial.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum was verified.
pub const F_DATA_VALID: u8 = 2;
/// `flags`: receive-segment-coalescing information (not used by a TUN).
pub const F_RSC_INFO: u8 = 4;

/// What kind of GSO super-packet a frame is (`gso_type` without the ECN bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoType {
    None,
    TcpV4,
    /// UFO (IP fragmentation of a UDP datagram; no longer produced by Linux).
    Udp,
    TcpV6,
    /// USO (`VIRTIO_NET_HDR_GSO_UDP_L4`): UDP segmentation, IPv4 or IPv6.
    UdpL4,
}

impl GsoType {
    /// The value of `gso_type` (without the ECN bit).
    pub fn raw(self) -> u8 {
        match self {
            GsoType::None => 0,
            GsoType::TcpV4 => 1,
            GsoType::Udp => 3,
            GsoType::TcpV6 => 4,
            GsoType::UdpL4 => 5,
        }
    }

    fn from_raw(v: u8) -> Option<GsoType> {
        Some(match v {
            0 => GsoType::None,
            1 => GsoType::TcpV4,
            3 => GsoType::Udp,
            4 => GsoType::TcpV6,
            5 => GsoType::UdpL4,
            _ => return None,
        })
    }
}

/// `gso_type`: the sender set ECN CWR on the super-packet (RFC 3168).
pub const GSO_ECN: u8 = 0x80;

/// Why a virtio-net header is unusable for its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtioError {
    /// Fewer bytes than the header.
    Truncated,
    /// A `gso_type` this code does not know.
    UnknownGsoType(u8),
    /// Flag bits other than NEEDS_CSUM and DATA_VALID.
    UnknownFlags(u8),
    /// A GSO frame with `gso_size` 0.
    GsoSizeZero,
    /// `hdr_len` at or past the end of the frame (a GSO frame must carry payload).
    HdrLenPastEnd,
    /// NEEDS_CSUM with `csum_start + csum_offset + 2` past the end.
    CsumPastEnd,
}

impl fmt::Display for VirtioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VirtioError::Truncated => f.write_str("shorter than a virtio-net header"),
            VirtioError::UnknownGsoType(t) => write!(f, "unknown gso_type {t}"),
            VirtioError::UnknownFlags(x) => write!(f, "unknown flags {x:#x}"),
            VirtioError::GsoSizeZero => f.write_str("GSO frame with gso_size 0"),
            VirtioError::HdrLenPastEnd => f.write_str("hdr_len at or past the end of the frame"),
            VirtioError::CsumPastEnd => f.write_str("csum_start/csum_offset past the end"),
        }
    }
}

impl std::error::Error for VirtioError {}

/// A parsed virtio-net header (the fields as numbers; see [`check`](Self::check)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VirtioNetHdr {
    pub flags: u8,
    /// Raw `gso_type`, ECN bit included.
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VirtioNetHdr {
    /// A plain frame: no GSO, checksum complete.
    pub const PLAIN: VirtioNetHdr = VirtioNetHdr {
        flags: 0,
        gso_type: 0,
        hdr_len: 0,
        gso_size: 0,
        csum_start: 0,
        csum_offset: 0,
    };

    /// Reads the first [`HDR_LEN`] bytes of `buf` (a 12-byte header's
    /// `num_buffers` is ignored). Only `Truncated` is checked here.
    pub fn parse(buf: &[u8]) -> Result<VirtioNetHdr, VirtioError> {
        let b = buf.get(..HDR_LEN).ok_or(VirtioError::Truncated)?;
        let u = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Ok(VirtioNetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    /// Writes the header into `buf[..HDR_LEN]` (and zeroes `num_buffers`
    /// when `buf` holds [`HDR_LEN_MRG`] bytes). Panics if `buf` is shorter
    /// than [`HDR_LEN`] (a caller's error).
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0] = self.flags;
        buf[1] = self.gso_type;
        buf[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        buf[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        buf[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        buf[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        if let Some(nb) = buf.get_mut(HDR_LEN..HDR_LEN_MRG) {
            nb.fill(0);
        }
    }

    /// The GSO type, `Err` when unknown.
    pub fn gso(&self) -> Result<GsoType, VirtioError> {
        GsoType::from_raw(self.gso_type & !GSO_ECN)
            .ok_or(VirtioError::UnknownGsoType(self.gso_type))
    }

    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    pub fn data_valid(&self) -> bool {
        self.flags & F_DATA_VALID != 0
    }

    /// Checks the header against the `frame_len` bytes that follow it:
    /// a known `gso_type` and flags; for GSO, `gso_size` > 0 and `hdr_len`
    /// inside the frame; for NEEDS_CSUM, the checksum field inside the
    /// frame. Returns the GSO type.
    pub fn check(&self, frame_len: usize) -> Result<GsoType, VirtioError> {
        let gso = self.gso()?;
        if self.flags & !(F_NEEDS_CSUM | F_DATA_VALID) != 0 {
            return Err(VirtioError::UnknownFlags(self.flags));
        }
        if gso != GsoType::None {
            if self.gso_size == 0 {
                return Err(VirtioError::GsoSizeZero);
            }
            if usize::from(self.hdr_len) >= frame_len {
                return Err(VirtioError::HdrLenPastEnd);
            }
        }
        if self.needs_csum()
            && usize::from(self.csum_start) + usize::from(self.csum_offset) + 2 > frame_len
        {
            return Err(VirtioError::CsumPastEnd);
        }
        Ok(gso)
    }
}

/// Completes a partial checksum in place (what a NIC does for
/// NEEDS_CSUM): the one's complement of the sum over `frame[start..]`,
/// whose field at `start + offset` holds the pseudo-header sum, is stored
/// in that field. `Err(CsumPastEnd)` when the field is not inside `frame`.
pub fn complete_checksum(frame: &mut [u8], start: usize, offset: usize) -> Result<(), VirtioError> {
    let at = start.checked_add(offset).ok_or(VirtioError::CsumPastEnd)?;
    if at.checked_add(2).is_none_or(|e| e > frame.len()) {
        return Err(VirtioError::CsumPastEnd);
    }
    // The field (pseudo-header sum) is summed with the rest, the range
    // taken from `start` as offset 0 (RFC 1071).
    let s = crate::checksum::fold(crate::checksum::sum(&frame[start..]));
    let c = !s;
    // Written as a TCP/UDP checksum field is (network byte order).
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(flags: u8, gso: u8, hdr_len: u16, size: u16, cs: u16, co: u16) -> VirtioNetHdr {
        VirtioNetHdr {
            flags,
            gso_type: gso,
            hdr_len,
            gso_size: size,
            csum_start: cs,
            csum_offset: co,
        }
    }

    #[test]
    fn round_trip_little_endian() {
        let h = hdr(F_NEEDS_CSUM, 1, 40, 1460, 20, 16);
        let mut b = [0xffu8; HDR_LEN_MRG];
        h.emit(&mut b);
        assert_eq!(b, [1, 1, 40, 0, 0xb4, 0x05, 20, 0, 16, 0, 0, 0]);
        assert_eq!(VirtioNetHdr::parse(&b), Ok(h));
        assert_eq!(VirtioNetHdr::parse(&b[..9]), Err(VirtioError::Truncated));
    }

    #[test]
    fn bad_headers_are_named() {
        let len = 30_040;
        assert_eq!(hdr(1, 1, 40, 1460, 20, 16).check(len), Ok(GsoType::TcpV4));
        assert_eq!(hdr(1, 4, 60, 1440, 40, 16).check(len), Ok(GsoType::TcpV6));
        assert_eq!(
            hdr(1, 0x81, 40, 1460, 20, 16).check(len),
            Ok(GsoType::TcpV4)
        );
        assert_eq!(hdr(0, 0, 0, 0, 0, 0).check(0), Ok(GsoType::None));
        assert_eq!(
            hdr(1, 1, 40, 0, 20, 16).check(len),
            Err(VirtioError::GsoSizeZero)
        );
        assert_eq!(
            hdr(1, 1, 40_000, 1460, 20, 16).check(len),
            Err(VirtioError::HdrLenPastEnd)
        );
        assert_eq!(
            hdr(1, 1, 40, 1460, 30_030, 16).check(len),
            Err(VirtioError::CsumPastEnd)
        );
        assert_eq!(
            hdr(1, 0, 0, 0, 0xffff, 0xffff).check(len),
            Err(VirtioError::CsumPastEnd)
        );
        assert_eq!(
            hdr(1, 2, 40, 1460, 20, 16).check(len),
            Err(VirtioError::UnknownGsoType(2))
        );
        assert_eq!(
            hdr(8, 0, 0, 0, 0, 0).check(len),
            Err(VirtioError::UnknownFlags(8))
        );
        // Without NEEDS_CSUM the csum fields mean nothing.
        assert_eq!(hdr(0, 0, 0, 0, 0xffff, 0xffff).check(10), Ok(GsoType::None));
    }

    #[test]
    fn completing_a_partial_checksum_gives_the_full_one() {
        use crate::{ChecksumCaps, IpProtocol, Ipv4Addr, TcpPacket, TcpRepr};
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let payload: Vec<u8> = (0..3001u32).map(|i| (i * 7) as u8).collect();
        let repr = TcpRepr {
            src_port: 5001,
            dst_port: 40000,
            flags: crate::TcpFlags::ACK | crate::TcpFlags::PSH,
            seq_number: crate::SeqNumber(12345),
            ack_number: crate::SeqNumber(678),
            window_len: 512,
            urgent_pointer: 0,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamp: None,
            payload: &payload,
        };
        let mut full = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut full[..]),
            src,
            dst,
            &ChecksumCaps::SOFTWARE,
        );
        // Partial: the pseudo-header sum only, as a sender with NEEDS_CSUM writes it.
        let mut part = full.clone();
        let pseudo = crate::checksum::pseudo_header(src, dst, IpProtocol::Tcp, part.len() as u32);
        TcpPacket::new_unchecked(&mut part[..]).set_checksum(crate::checksum::fold(pseudo));
        assert_ne!(part, full);
        // Behind a 7-byte prefix, so the start is odd.
        let mut framed = vec![9u8; 7];
        framed.extend_from_slice(&part);
        complete_checksum(&mut framed, 7, 16).unwrap();
        assert_eq!(&framed[7..], &full[..]);
        assert_eq!(
            complete_checksum(&mut framed, 7, full.len() - 1),
            Err(VirtioError::CsumPastEnd)
        );
        assert_eq!(
            complete_checksum(&mut framed, usize::MAX, 1),
            Err(VirtioError::CsumPastEnd)
        );
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// Hostile input: any header before any frame is parsed,
            /// checked and (if it passed) its checksum completed without a
            /// panic; a header that passed `check` always has its checksum
            /// field inside the frame; emit/parse round-trips.
            #[test]
            fn any_header_on_any_frame(
                hdr in proptest::collection::vec(any::<u8>(), 0..14),
                // Small fields often, so checks pass as well as fail.
                small in proptest::option::of((0u8..3, 0u8..6, 0u16..80, 0u16..1500, 0u16..60, 0u16..40)),
                mut frame in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                let mut bytes = hdr.clone();
                if let Some((f, g, hl, gs, cs, co)) = small {
                    let h = VirtioNetHdr { flags: f, gso_type: g, hdr_len: hl, gso_size: gs, csum_start: cs, csum_offset: co };
                    bytes = vec![0; HDR_LEN];
                    h.emit(&mut bytes);
                }
                let Ok(h) = VirtioNetHdr::parse(&bytes) else {
                    prop_assert!(bytes.len() < HDR_LEN);
                    return Ok(());
                };
                let mut again = [0u8; HDR_LEN_MRG];
                h.emit(&mut again);
                prop_assert_eq!(VirtioNetHdr::parse(&again), Ok(h));
                if let Ok(gso) = h.check(frame.len()) {
                    if gso != GsoType::None {
                        prop_assert!(h.gso_size > 0 && usize::from(h.hdr_len) < frame.len());
                    }
                    if h.needs_csum() {
                        let (start, at) = (usize::from(h.csum_start), usize::from(h.csum_start) + usize::from(h.csum_offset));
                        // The pseudo-header sum the field held.
                        let pseudo = u16::from_be_bytes([frame[at], frame[at + 1]]);
                        prop_assert!(complete_checksum(&mut frame, start, h.csum_offset.into()).is_ok());
                        // Completed: the range plus the pseudo-header sums
                        // to all ones (RFC 1071), as a receiver verifies.
                        if h.csum_offset % 2 == 0 {
                            let s = crate::checksum::fold(crate::checksum::sum(&frame[start..]) + u64::from(pseudo));
                            prop_assert!(s == 0xffff || s == 0, "sum {:#x}", s);
                        }
                    }
                } else {
                    let _ = complete_checksum(&mut frame, h.csum_start.into(), h.csum_offset.into());
                }
            }
        }
    }
}
