//! The Internet checksum (RFC 1071).
//!
//! [`sum`] accumulates 32-bit words in native byte order into independent
//! `u64` accumulators (no carry chain); the result is folded to 16 bits, so
//! partial sums of separate pieces may be added together freely and then
//! passed to [`fold`]. Pieces must be split at **even** byte offsets: the
//! checksum works on 16-bit words, and an odd-length piece pads its last
//! byte as the high half of a word (RFC 1071 §4.1).

use crate::{IpProtocol, Ipv4Addr};

/// One's-complement sum of `data` as big-endian 16-bit words, folded to at
/// most 16 bits (so below 2^33, and sums of pieces may be added together;
/// split only at even offsets: an odd trailing byte is padded with a zero
/// low byte, RFC 1071 §4.1).
///
/// The words are summed in native byte order, 32 bits at a time into four
/// independent 64-bit accumulators that cannot overflow for any slice a
/// frame can be (no carry chain between additions, so the loop runs at
/// several words per cycle); byte order is restored once at the end
/// (RFC 1071 §2(B): the sum is byte-order independent).
pub fn sum(data: &[u8]) -> u64 {
    let mut acc = [0u64; 4];
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        for (k, a) in acc.iter_mut().enumerate() {
            let w = [c[4 * k], c[4 * k + 1], c[4 * k + 2], c[4 * k + 3]];
            *a += u64::from(u32::from_ne_bytes(w));
        }
    }
    // Each accumulator holds at most 2^32 * len/16; for any len below
    // 2^36 bytes the four fit in a u64 after one halving fold each.
    let mut total: u64 = acc.iter().map(|&a| (a & 0xffff_ffff) + (a >> 32)).sum();
    let mut rest = chunks.remainder();
    while rest.len() >= 4 {
        total += u64::from(u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]));
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        total += u64::from(u16::from_ne_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let Some(&b) = rest.first() {
        // The odd byte is the first (high, in network order) byte of a word.
        total += u64::from(u16::from_ne_bytes([b, 0]));
    }
    // Native-order 16-bit one's-complement sum, then back to network order.
    u64::from(u16::from_be(fold(total)))
}

/// Folds an accumulated sum to 16 bits with end-around carry (NOT complemented).
pub fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The checksum of `data`: `!fold(sum(data))`, the value to put in a header.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Sum of the IPv4 pseudo-header (RFC 793 §3.1, RFC 768): addresses,
/// protocol and upper-layer length.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, len: u32) -> u64 {
    let s = u32::from_be_bytes(src.octets()) as u64;
    let d = u32::from_be_bytes(dst.octets()) as u64;
    (s >> 16)
        + (s & 0xffff)
        + (d >> 16)
        + (d & 0xffff)
        + u8::from(proto) as u64
        + (len >> 16) as u64
        + (len & 0xffff) as u64
}

/// Transport checksum over pseudo-header and `segment`:
/// `!fold(pseudo + sum(segment))`. A segment whose checksum field is correct gives 0.
pub fn transport(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    !fold(pseudo_header(src, dst, proto, len) + sum(segment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward RFC 1071 reference implementation.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                (c[0] as u16) << 8
            };
            acc += w as u32;
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn ipv4_header_known_good() {
        // The well-known example IPv4 header (192.168.0.1 -> 192.168.0.199) with checksum 0xb861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0);
        let mut zeroed = hdr;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(checksum(&zeroed), 0xb861);
    }

    #[test]
    fn empty_and_odd() {
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(fold(sum(&[0x12])), 0x1200);
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn all_ones_does_not_overflow() {
        let data = [0xffu8; 4096];
        assert_eq!(fold(sum(&data)), 0xffff);
        assert_eq!(checksum(&data), reference(&data));
    }

    #[test]
    fn pseudo_header_len_high_bits() {
        let a = Ipv4Addr::new(0, 0, 0, 0);
        assert_eq!(fold(pseudo_header(a, a, IpProtocol::Udp, 0x1_0002)), 17 + 3);
    }

    proptest! {
        #[test]
        fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(checksum(&data), reference(&data));
        }

        #[test]
        fn matches_reference_frame_sized(data in proptest::collection::vec(any::<u8>(), 1400..9100)) {
            prop_assert_eq!(checksum(&data), reference(&data));
        }

        #[test]
        fn split_at_even_offset(data in proptest::collection::vec(any::<u8>(), 0..300), at in 0usize..150) {
            let at = (at * 2).min(data.len() & !1);
            let (a, b) = data.split_at(at);
            prop_assert_eq!(fold(sum(a) + sum(b)), fold(sum(&data)));
        }
    }
}
