//! The Internet checksum (RFC 1071).
//!
//! [`sum`] takes the data in 96-byte steps, split so that both the vector
//! and the integer units have work:
//!
//! - 64 bytes as sixteen native-order `u32` words into sixteen `u32`
//!   lanes. Each lane keeps two sums: `all`, of the words themselves
//!   (wrapping), and `hi`, of their high halves (`w >> 16`). For fewer
//!   than 65536 words the exact sum of the low halves is below 2^32, so it
//!   is `all - (hi << 16)` modulo 2^32. The data is taken in blocks of
//!   4095 steps (384 KiB), at whose end the lanes are added together
//!   (65520 words) and reduced that way into a `u64`. Per 16 bytes that is
//!   a shift and two adds, which the compiler vectorises for baseline
//!   x86-64 (SSE2) without the shuffles that widening each word into a
//!   `u64` lane costs.
//! - 32 bytes as four native-order `u64` words into two `u128` sums: an add
//!   and an add-with-carry per word, on the integer side.
//!
//! Inputs under two steps, and what is left after the steps, are summed
//! the simpler way (words widened into `u64` lanes), which needs no
//! set-up. [`copy_and_sum`] copies, then sums.
//!
//! On x86-64 CPUs with AVX2 (checked once at run time by `multiversion`,
//! see `simd`), the same
//! code built for AVX2 takes the data in 128-byte steps, all of them in
//! 32 lanes (four 256-bit vectors) and none on the integer side: 25 ns
//! for 1448 bytes against 33 (a segment's payload, in L1).
//!
//! The total is folded to 16 bits and swapped to network order: the
//! one's-complement sum is byte-order independent (RFC 1071 §2(B)), and a
//! native 32- or 64-bit word adds the same as its 16-bit pieces (2^16 is 1
//! modulo 0xffff). The result is at most 0xffff, so partial sums of
//! separate pieces may be added together freely and then passed to
//! [`fold`]. Pieces must be split at **even** byte offsets: the checksum
//! works on 16-bit words, and an odd-length piece pads its last byte as the
//! high half of a word (RFC 1071 §4.1).

use crate::{IpProtocol, Ipv4Addr, Ipv6Addr};

mod simd;

/// `u32` lanes: 64 bytes, four SSE2 vectors.
const LANES: usize = 16;
/// Bytes the lanes take per step.
const VEC: usize = 4 * LANES;
/// `u64` words per step for the integer units: four (a third of the step)
/// was the fastest `sum` on its own; end to end (tcp_bulk) two to eight
/// measured alike, in `copy_and_sum` too, and none at all was slower there.
const WORDS: usize = 4;
/// Bytes per step.
const STEP: usize = VEC + 8 * WORDS;
/// Words per block in all lanes together (see `Lanes::total`): under the
/// 65536 that keep a sum of low halves or of high halves (at most 65535 ×
/// 0xffff) below 2^32. With `L` lanes a block is `BLOCK_WORDS / L` steps:
/// 4095 for the sixteen of the baseline build.
const BLOCK_WORDS: usize = 65520;

#[inline(always)]
fn word(w: &[u8]) -> u32 {
    u32::from_ne_bytes([w[0], w[1], w[2], w[3]])
}

/// The sums of one block of at most `BLOCK_WORDS / L` steps (see the module
/// doc).
struct Lanes<const L: usize> {
    all: [u32; L],
    hi: [u32; L],
    /// Two chains of u64 words summed in u128 (an add and an add-with-carry
    /// per word).
    wide: [u128; 2],
}

impl<const L: usize> Lanes<L> {
    #[inline(always)]
    fn new() -> Self {
        Lanes {
            all: [0; L],
            hi: [0; L],
            wide: [0; 2],
        }
    }

    /// Adds `VEC` bytes to the lanes.
    #[inline(always)]
    fn add_vec(&mut self, v: &[u8]) {
        for i in 0..L {
            // A whole-word load: `word`'s byte array made LLVM load the
            // high half a second time, byte by byte, for `w >> 16`.
            let w = u32::from_ne_bytes(v[4 * i..4 * i + 4].try_into().unwrap());
            self.all[i] = self.all[i].wrapping_add(w);
            // Cannot wrap (see `BLOCK_WORDS`); wrapping only so that debug
            // builds need no overflow check here.
            self.hi[i] = self.hi[i].wrapping_add(w >> 16);
        }
    }

    /// Adds whole `u64` words to the add-with-carry chains.
    #[inline(always)]
    fn add_wide(&mut self, w: &[u8]) {
        for (j, x) in w.chunks_exact(8).enumerate() {
            let x = u64::from_ne_bytes(x.try_into().unwrap());
            self.wide[j % 2] += u128::from(x);
        }
    }

    /// The block's sum, not folded: under 2^35, so `u64` totals of blocks
    /// cannot overflow.
    #[inline(always)]
    fn total(&self) -> u64 {
        // The lanes added together first, a few vector adds: 65520 words
        // at most in each of the two sums (see `BLOCK_WORDS`).
        let mut all = 0u32;
        let mut hi = 0u32;
        for i in 0..L {
            all = all.wrapping_add(self.all[i]);
            hi = hi.wrapping_add(self.hi[i]);
        }
        let lo = all.wrapping_sub(hi << 16);
        u64::from(lo) + u64::from(hi) + self.wide_total()
    }

    #[inline(always)]
    fn wide_total(&self) -> u64 {
        let mut t = 0;
        for &w in &self.wide {
            // 2^64 and 2^32 are both 1 modulo 0xffff. The high half
            // counts carries: at most one per word added.
            let (lo, carries) = (w as u64, (w >> 64) as u64);
            t += (lo >> 32) + (lo & 0xffff_ffff) + carries;
        }
        t
    }
}

/// The native-order sum (not folded) of a short piece: fewer than two
/// steps, or what is left after the steps. Words widened into eight `u64`
/// lanes, 32 bytes at a time: more work per byte than the steps, but no
/// set-up or reduction to speak of, which is what counts for so few bytes.
#[inline(always)]
fn sum_short(data: &[u8]) -> u64 {
    let mut lanes = [0u64; 8];
    let mut blocks = data.chunks_exact(32);
    for b in &mut blocks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            *lane += u64::from(word(&b[4 * i..4 * i + 4]));
        }
    }
    let mut acc: u64 = lanes.iter().sum();
    let mut words = blocks.remainder().chunks_exact(4);
    for w in &mut words {
        acc += u64::from(word(w));
    }
    // 0 to 3 bytes left, as 16-bit words in native order (a u32 word's
    // two halves sum to the same thing, 2^16 being 1 modulo 0xffff); an odd
    // last byte is padded with zero. No memcpy call for a variable tail.
    let half = |a: u8, b: u8| u64::from(u16::from_ne_bytes([a, b]));
    acc + match *words.remainder() {
        [a, b, c] => half(a, b) + half(c, 0),
        [a, b] => half(a, b),
        [a] => half(a, 0),
        _ => 0,
    }
}

/// One's-complement sum of `data` as big-endian 16-bit words, folded to at
/// most 0xffff (not complemented).
///
/// Sums of pieces may be added together (split only at even offsets: an
/// odd trailing byte is padded with a zero low byte, RFC 1071 §4.1).
pub fn sum(data: &[u8]) -> u64 {
    simd::sum(data)
}

/// [`sum`] with `L` lanes and `W` wide words a step of `S` bytes
/// (`4 * L + 8 * W`): the baseline build's, and inlined into `simd`'s.
#[inline(always)]
fn sum_with<const L: usize, const W: usize, const S: usize>(data: &[u8]) -> u64 {
    const { assert!(S == 4 * L + 8 * W) };
    let mut acc = 0u64;
    let mut rest = data;
    // Under two steps, the steps' set-up and reduction cost more than they
    // save.
    let block_steps = BLOCK_WORDS / L;
    if data.len() >= 2 * S {
        while rest.len() >= S {
            let n = rest.len().min(S * block_steps) / S * S;
            let (block, r) = rest.split_at(n);
            let mut lanes = Lanes::<L>::new();
            for s in block.chunks_exact(S) {
                let (v, w) = s.split_at(4 * L);
                lanes.add_vec(v);
                lanes.add_wide(w);
            }
            acc += lanes.total();
            rest = r;
        }
    }
    // What is left starts at a multiple of `STEP`, an even offset, so its
    // sum adds.
    acc += sum_short(rest);
    // Native-order sum → network order (the identity on big-endian targets).
    u64::from(u16::from_be(fold(acc)))
}

/// Copies `src` into `dst` (of the same length; panics otherwise) and
/// returns `sum(src)`.
///
/// The copy and the sum are two passes: the copy is the C library's
/// (`memcpy`, built for the CPU at hand) and the sum reads the source
/// again, from L1 for a segment's payload. A fused loop, each step
/// loaded once then stored and summed, was slower: 60 ns against 45-52
/// for 1448 bytes, and end to end (tcp_bulk) too (BENCHMARKS.md).
pub fn copy_and_sum(dst: &mut [u8], src: &[u8]) -> u64 {
    assert_eq!(dst.len(), src.len(), "copy_and_sum: lengths differ");
    dst.copy_from_slice(src);
    sum(src)
}

/// The sum of a 20-byte header (an IPv4 header without options): five
/// words, without `sum`'s loop set-up, which dominates for so few bytes.
#[inline]
fn sum20(h: &[u8; 20]) -> u64 {
    let w = |i: usize| u64::from(word(&h[i..i + 4]));
    let acc = w(0) + w(4) + w(8) + w(12) + w(16);
    u64::from(u16::from_be(fold(acc)))
}

/// The one's-complement sum of a 20-byte IPv4 header (no options),
/// folded, not complemented: five `u32` loads, adds and a fold, inlined
/// into the caller (no call, no dispatch). The header's checksum verifies
/// iff this is `0xffff` (RFC 1071 §1(2), RFC 791 §3.1); with the checksum
/// field zero, `!ipv4_header_sum(h)` is the value to write there.
/// Headers with options: [`checksum`].
#[inline(always)]
pub fn ipv4_header_sum(h: &[u8; 20]) -> u16 {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    u16::from_be(fold(w(0) + w(4) + w(8) + w(12) + w(16)))
}

/// [`sum`] of a short piece whose length is a multiple of 4 (a TCP
/// header, 20 to 60 bytes), inlined into the caller: `u32` words added,
/// without `sum`'s call, CPU dispatch and loop set-up, which dominate for
/// so few bytes. Another length: [`sum`].
#[inline(always)]
pub fn sum_words(data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    let mut acc = 0u64;
    for w in &mut words {
        acc += u64::from(word(w));
    }
    if !words.remainder().is_empty() {
        return sum(data);
    }
    u64::from(u16::from_be(fold(acc)))
}

/// Folds an accumulated sum to 16 bits with end-around carry (NOT
/// complemented): the value in 1..=0xffff congruent to `sum` modulo 0xffff,
/// or 0 for 0.
#[inline]
pub fn fold(sum: u64) -> u16 {
    // 64 → 32 → 16 bits, each a single add with the carry put back (no
    // data-dependent loop to mispredict). A carry leaves at most 2^n - 2,
    // so adding it back cannot carry again.
    let (s, c) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let s = s + u32::from(c);
    let (s, c) = (s as u16).overflowing_add((s >> 16) as u16);
    s + u16::from(c)
}

/// The checksum of `data`: `!fold(sum(data))`, the value to put in a header.
pub fn checksum(data: &[u8]) -> u16 {
    if let Ok(h) = <&[u8; 20]>::try_from(data) {
        return !fold(sum20(h));
    }
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

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1): addresses, upper-layer
/// length (32 bits) and next header.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: IpProtocol, len: u32) -> u64 {
    let words = |a: Ipv6Addr| -> u64 { a.segments().iter().map(|&w| u64::from(w)).sum() };
    words(src)
        + words(dst)
        + u64::from(u8::from(proto))
        + u64::from(len >> 16)
        + u64::from(len & 0xffff)
}

/// Transport checksum over the IPv6 pseudo-header and `segment`.
pub fn transport_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: IpProtocol, segment: &[u8]) -> u16 {
    let len = u32::try_from(segment.len()).unwrap_or(u32::MAX);
    !fold(pseudo_header_v6(src, dst, proto, len) + sum(segment))
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

    /// The baseline build's sum, whatever the CPU.
    fn portable(data: &[u8]) -> u64 {
        sum_with::<LANES, WORDS, STEP>(data)
    }

    /// The baseline build and the one `sum` takes on this CPU (AVX2 where
    /// the CPU has it), by name.
    #[allow(clippy::type_complexity)]
    fn builds() -> Vec<(&'static str, fn(&[u8]) -> u64)> {
        vec![("portable", portable), (simd::build(), simd::sum)]
    }

    #[test]
    fn long_all_ones_spans_blocks() {
        // Past one block (4095 steps of 96 bytes, 384 KiB; 2047 of 128
        // for AVX2) with every word 0xffffffff: a plain u32 lane would
        // have wrapped after two words, and `all - (hi << 16)` is exact
        // only within a block.
        for block in [STEP * (BLOCK_WORDS / LANES), 128 * (BLOCK_WORDS / 32)] {
            for len in [
                block - 2,
                block,
                block + 1,
                block + STEP + 37,
                2 * block + 3,
            ] {
                let data = vec![0xffu8; len];
                let want = reference(&data);
                assert_eq!(checksum(&data), want, "len {len}");
                for (name, f) in builds() {
                    assert_eq!(!fold(f(&data)), want, "{name}, len {len}");
                }
                let mut out = vec![0u8; len];
                assert_eq!(fold(copy_and_sum(&mut out, &data)), fold(sum(&data)));
                assert!(out == data);
            }
        }
    }

    #[test]
    fn this_cpu_takes_the_avx2_build_when_it_has_avx2() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            simd::build() == "avx2",
            std::is_x86_feature_detected!("avx2")
        );
    }

    #[test]
    fn fold_matches_the_loop() {
        fn slow(mut s: u64) -> u16 {
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            s as u16
        }
        for s in [
            0,
            1,
            0xffff,
            0x1_0000,
            0x1_fffe,
            0xffff_ffff,
            0x1_0000_0000,
            0xffff_0000_ffff_0000,
            0xffff_ffff_0000_0001,
            u64::MAX,
        ] {
            assert_eq!(fold(s), slow(s), "{s:#x}");
        }
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
        fn every_build_matches_reference(
            data in proptest::collection::vec(any::<u8>(), 0..3000),
            start in 0usize..4,
        ) {
            // Each build this CPU runs (baseline, AVX2), unaligned starts.
            let d = &data[start.min(data.len())..];
            for (name, f) in builds() {
                let s = f(d);
                prop_assert_eq!(!fold(s), reference(d), "{}", name);
                prop_assert!(s <= 0xffff);
            }
        }

        #[test]
        fn any_start_matches_reference(
            data in proptest::collection::vec(any::<u8>(), 0..700),
            start in 0usize..16,
        ) {
            // Unaligned starts, odd ones included (a piece of its own).
            let d = &data[start.min(data.len())..];
            prop_assert_eq!(checksum(d), reference(d));
            let mut out = vec![0u8; d.len() + 3];
            prop_assert_eq!(fold(copy_and_sum(&mut out[3..], d)), fold(sum(d)));
            prop_assert_eq!(&out[3..], d);
        }

        #[test]
        fn copy_and_sum_matches(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
            let mut out = vec![0u8; data.len()];
            let s = copy_and_sum(&mut out, &data);
            prop_assert_eq!(&out, &data);
            prop_assert_eq!(fold(s), fold(sum(&data)));
        }

        #[test]
        fn long_inputs_match_reference(
            len in 256 * 1024usize..300 * 1024,
            byte in prop_oneof![Just(0xffu8), any::<u8>()],
            seed in any::<u64>(),
        ) {
            // Mostly `byte`, with a sprinkling of others; any length, odd or
            // even, well past what a u32 lane could hold for all-0xff data.
            let mut data = vec![byte; len];
            let mut x = seed | 1;
            for _ in 0..64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data[(x % len as u64) as usize] = x as u8;
            }
            prop_assert_eq!(checksum(&data), reference(&data));
            for (name, f) in builds() {
                prop_assert_eq!(!fold(f(&data)), reference(&data), "{}", name);
            }
            let mut out = vec![0u8; len];
            prop_assert_eq!(fold(copy_and_sum(&mut out, &data)), fold(sum(&data)));
            prop_assert!(out == data);
        }

        #[test]
        fn fold_is_the_folding_loop(s in any::<u64>()) {
            let mut t = s;
            while t >> 16 != 0 {
                t = (t & 0xffff) + (t >> 16);
            }
            prop_assert_eq!(fold(s), t as u16);
        }

        #[test]
        fn sum_words_matches_sum(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(sum_words(&data), sum(&data));
        }

        #[test]
        fn twenty_bytes_match_reference(data in proptest::array::uniform20(any::<u8>())) {
            prop_assert_eq!(checksum(&data), reference(&data));
            prop_assert_eq!(!ipv4_header_sum(&data), reference(&data));
        }

        #[test]
        fn split_at_even_offset(data in proptest::collection::vec(any::<u8>(), 0..600), at in 0usize..300) {
            let at = (at * 2).min(data.len() & !1);
            let (a, b) = data.split_at(at);
            prop_assert_eq!(fold(sum(a) + sum(b)), fold(sum(&data)));
            prop_assert!(sum(a) <= 0xffff && sum(b) <= 0xffff);
        }
    }
}
