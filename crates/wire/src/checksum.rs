//! The Internet checksum (RFC 1071).
//!
//! [`sum`] adds the data as 32-bit words in native byte order into a `u64`
//! (no carries to propagate until 2^32 words, i.e. 16 GiB, and a loop the
//! compiler vectorises), folds that to 16 bits and swaps it to network
//! order: the one's-complement sum is byte-order independent (RFC 1071
//! §2(B)). The result is at most 0xffff, so partial sums of separate pieces
//! may be added together freely and then passed to [`fold`]. Pieces must be
//! split at **even** byte offsets: the checksum works on 16-bit words, and
//! an odd-length piece pads its last byte as the high half of a word
//! (RFC 1071 §4.1).

use crate::{IpProtocol, Ipv4Addr};

/// One's-complement sum of `data` as big-endian 16-bit words, folded to at
/// most 0xffff (not complemented).
///
/// Sums of pieces may be added together (split only at even offsets: an
/// odd trailing byte is padded with a zero low byte, RFC 1071 §4.1).
pub fn sum(data: &[u8]) -> u64 {
    #[inline(always)]
    fn word(w: &[u8]) -> u64 {
        u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
    }
    let mut acc: u64 = 0;
    // 32 bytes per step into a local sum: LLVM turns this into wide adds.
    let mut blocks = data.chunks_exact(32);
    for b in &mut blocks {
        acc += b.chunks_exact(4).map(word).sum::<u64>();
    }
    let mut words = blocks.remainder().chunks_exact(4);
    for w in &mut words {
        acc += word(w);
    }
    // 0 to 3 bytes left, as 16-bit words in native order (a u32 word's
    // two halves sum to the same thing, 2^16 being 1 modulo 0xffff); an odd
    // last byte is padded with zero. No memcpy call for a variable tail.
    let half = |a: u8, b: u8| u64::from(u16::from_ne_bytes([a, b]));
    acc += match *words.remainder() {
        [a, b, c] => half(a, b) + half(c, 0),
        [a, b] => half(a, b),
        [a] => half(a, 0),
        _ => 0,
    };
    // Native-order sum → network order (the identity on big-endian targets).
    u64::from(u16::from_be(fold(acc)))
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
        fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
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
