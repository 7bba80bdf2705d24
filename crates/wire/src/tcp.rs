//! TCP segments (RFC 9293 §3.1), options (RFC 9293 §3.2; window scale and
//! timestamps RFC 7323; SACK RFC 2018).

use core::{cmp, fmt, ops};

use crate::checksum;
use crate::field::{read_u16, read_u32, write_u16, write_u32};
use crate::{ChecksumCaps, Error, IpProtocol, Ipv4Addr, Result};

/// A TCP sequence number with RFC 9293 §3.4 modular comparison.
///
/// Ordering is by the wrapping difference `(a - b) as i32`, so it is only
/// meaningful between numbers less than 2^31 apart (it is not transitive
/// across the whole space). `Ord::max`/`Ord::min` follow the same rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// `self - other` as a signed wrapping difference.
    pub const fn diff(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }
}

impl ops::Add<usize> for SeqNumber {
    type Output = SeqNumber;
    /// Wrapping addition (`rhs` is taken modulo 2^32).
    fn add(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl ops::Sub<usize> for SeqNumber {
    type Output = SeqNumber;
    /// Wrapping subtraction (`rhs` is taken modulo 2^32).
    fn sub(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs as u32))
    }
}

impl ops::AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl ops::SubAssign<usize> for SeqNumber {
    fn sub_assign(&mut self, rhs: usize) {
        *self = *self - rhs;
    }
}

impl ops::Sub<SeqNumber> for SeqNumber {
    type Output = i32;
    /// Wrapping difference, same as [`SeqNumber::diff`].
    fn sub(self, rhs: SeqNumber) -> i32 {
        self.diff(rhs)
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SeqNumber {
    /// Modular comparison (RFC 9293 §3.4), valid within 2^31.
    fn cmp(&self, other: &SeqNumber) -> cmp::Ordering {
        self.diff(*other).cmp(&0)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// TCP control bits (RFC 9293 §3.1, RFC 3168 for ECE/CWR) as a bitset.
///
/// Holds the 8 flags of byte 13; the reserved bits (including the historic NS
/// bit) are ignored on receive and sent as zero (RFC 9293 §3.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);

    const NAMES: [(TcpFlags, &'static str); 8] = [
        (TcpFlags::FIN, "FIN"),
        (TcpFlags::SYN, "SYN"),
        (TcpFlags::RST, "RST"),
        (TcpFlags::PSH, "PSH"),
        (TcpFlags::ACK, "ACK"),
        (TcpFlags::URG, "URG"),
        (TcpFlags::ECE, "ECE"),
        (TcpFlags::CWR, "CWR"),
    ];

    /// No flags.
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
    /// Whether any flag in `other` is set.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
    /// Inserts or removes `other`.
    pub fn set(&mut self, other: TcpFlags, on: bool) {
        if on {
            self.insert(other)
        } else {
            self.remove(other)
        }
    }
}

impl ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl ops::BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl ops::BitAndAssign for TcpFlags {
    fn bitand_assign(&mut self, rhs: TcpFlags) {
        self.0 &= rhs.0;
    }
}

impl fmt::Debug for TcpFlags {
    /// Prints like `SYN|ACK`; `(empty)` for no flags; unknown bits in hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(empty)");
        }
        let mut first = true;
        let mut rest = self.0;
        for (flag, name) in TcpFlags::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !flag.0;
            }
        }
        if rest != 0 {
            if !first {
                f.write_str("|")?;
            }
            write!(f, "{rest:#x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Up to four SACK blocks as (left edge, right edge) (RFC 2018 §3).
pub type SackBlocks = [Option<(SeqNumber, SeqNumber)>; 4];

/// Timestamps option values (RFC 7323 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpTimestamp {
    pub tsval: u32,
    pub tsecr: u32,
}

/// Option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).
mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WS: u8 = 3;
    pub const SACK_PERM: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TS: u8 = 8;
}

/// A TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOperation,
    MaxSegmentSize(u16),
    WindowScale(u8),
    SackPermitted,
    /// 1 to 4 blocks; `None` entries are not written.
    SackRange(SackBlocks),
    Timestamp(TcpTimestamp),
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

impl<'a> TcpOption<'a> {
    /// Returns the rest of the options area and the option at its start.
    /// Unknown options are skipped by their length; a length < 2 or beyond the
    /// area, or a known option with the wrong length, is `Malformed` (RFC 9293
    /// §3.2). An empty buffer is `Truncated`.
    pub fn parse(buffer: &'a [u8]) -> Result<(&'a [u8], TcpOption<'a>)> {
        let (&k, after_kind) = buffer.split_first().ok_or(Error::Truncated)?;
        match k {
            kind::END => return Ok((after_kind, TcpOption::EndOfList)),
            kind::NOP => return Ok((after_kind, TcpOption::NoOperation)),
            _ => {}
        }
        let len = *after_kind.first().ok_or(Error::Malformed)? as usize;
        if len < 2 || len > buffer.len() {
            return Err(Error::Malformed);
        }
        let data = &buffer[2..len];
        let rest = &buffer[len..];
        let opt = match (k, len) {
            (kind::MSS, 4) => TcpOption::MaxSegmentSize(read_u16(data, 0)),
            (kind::WS, 3) => TcpOption::WindowScale(data[0]),
            (kind::SACK_PERM, 2) => TcpOption::SackPermitted,
            (kind::SACK, 10 | 18 | 26 | 34) => {
                let mut blocks: SackBlocks = [None; 4];
                for (slot, chunk) in blocks.iter_mut().zip(data.chunks_exact(8)) {
                    *slot = Some((SeqNumber(read_u32(chunk, 0)), SeqNumber(read_u32(chunk, 4))));
                }
                TcpOption::SackRange(blocks)
            }
            (kind::TS, 10) => TcpOption::Timestamp(TcpTimestamp {
                tsval: read_u32(data, 0),
                tsecr: read_u32(data, 4),
            }),
            (kind::MSS | kind::WS | kind::SACK_PERM | kind::SACK | kind::TS, _) => {
                return Err(Error::Malformed)
            }
            (kind, _) => TcpOption::Unknown { kind, data },
        };
        Ok((rest, opt))
    }

    /// Bytes this option occupies on the wire.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::SackRange(blocks) => 2 + 8 * blocks.iter().flatten().count(),
            TcpOption::Timestamp(_) => 10,
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// Writes the option at the start of `buffer` and returns the rest.
    /// Panics if `buffer` is shorter than `buffer_len()` (or an `Unknown`
    /// option's data exceeds 253 bytes).
    pub fn emit<'b>(&self, buffer: &'b mut [u8]) -> &'b mut [u8] {
        let len = self.buffer_len();
        let (out, rest) = buffer.split_at_mut(len);
        match *self {
            TcpOption::EndOfList => out[0] = kind::END,
            TcpOption::NoOperation => out[0] = kind::NOP,
            _ => {
                out[1] = u8::try_from(len).expect("TCP option too long");
                match *self {
                    TcpOption::MaxSegmentSize(mss) => {
                        out[0] = kind::MSS;
                        write_u16(out, 2, mss);
                    }
                    TcpOption::WindowScale(shift) => {
                        out[0] = kind::WS;
                        out[2] = shift;
                    }
                    TcpOption::SackPermitted => out[0] = kind::SACK_PERM,
                    TcpOption::SackRange(blocks) => {
                        out[0] = kind::SACK;
                        for (chunk, (l, r)) in
                            out[2..].chunks_exact_mut(8).zip(blocks.iter().flatten())
                        {
                            write_u32(chunk, 0, l.0);
                            write_u32(chunk, 4, r.0);
                        }
                    }
                    TcpOption::Timestamp(ts) => {
                        out[0] = kind::TS;
                        write_u32(out, 2, ts.tsval);
                        write_u32(out, 6, ts.tsecr);
                    }
                    TcpOption::Unknown { kind, data } => {
                        out[0] = kind;
                        out[2..].copy_from_slice(data);
                    }
                    TcpOption::EndOfList | TcpOption::NoOperation => unreachable!(),
                }
            }
        }
        rest
    }
}

/// Length of the TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Largest options area (data offset 15, RFC 9293 §3.1).
pub const MAX_OPTIONS_LEN: usize = 40;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const OFF_RSV: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// A view over a TCP segment (the whole IP payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checks; getters may panic if it is short.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Buffer >= 20 (`Truncated`), data offset >= 5 (`Malformed`), header
    /// length <= buffer length (`Truncated`) (RFC 9293 §3.1).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len() as usize;
        if hl < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if hl > len {
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

    pub fn src_port(&self) -> u16 {
        read_u16(self.b(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        read_u16(self.b(), field::DST_PORT)
    }
    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(read_u32(self.b(), field::SEQ_NUM))
    }
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(read_u32(self.b(), field::ACK_NUM))
    }
    /// Header length in bytes (data offset * 4).
    pub fn header_len(&self) -> u8 {
        (self.b()[field::OFF_RSV] >> 4) * 4
    }
    /// The 8 control bits; reserved bits are ignored (RFC 9293 §3.1).
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.b()[field::FLAGS] as u16)
    }
    pub fn window_len(&self) -> u16 {
        read_u16(self.b(), field::WIN_SIZE)
    }
    pub fn checksum(&self) -> u16 {
        read_u16(self.b(), field::CHECKSUM)
    }
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.b(), field::URGENT)
    }
    /// The options area (bytes 20..header_len).
    pub fn options(&self) -> &[u8] {
        &self.b()[HEADER_LEN..self.header_len() as usize]
    }
    /// Bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len() as usize..]
    }
    /// Sequence space the segment occupies: payload + SYN + FIN (RFC 9293 §3.4).
    pub fn segment_len(&self) -> usize {
        let f = self.flags();
        self.payload().len()
            + f.contains(TcpFlags::SYN) as usize
            + f.contains(TcpFlags::FIN) as usize
    }
    /// Whether the checksum over pseudo-header and segment verifies (RFC 9293 §3.1).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        checksum::transport(src, dst, IpProtocol::Tcp, self.b()) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    fn buf_ref(&self) -> &'a [u8] {
        T::as_ref(self.buffer)
    }
    /// The payload with the lifetime of the underlying buffer.
    pub fn payload_ref(&self) -> &'a [u8] {
        &self.buf_ref()[self.header_len() as usize..]
    }
    /// The options area with the lifetime of the underlying buffer.
    pub fn options_ref(&self) -> &'a [u8] {
        &self.buf_ref()[HEADER_LEN..self.header_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.bm(), field::SRC_PORT, v)
    }
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.bm(), field::DST_PORT, v)
    }
    pub fn set_seq_number(&mut self, v: SeqNumber) {
        write_u32(self.bm(), field::SEQ_NUM, v.0)
    }
    pub fn set_ack_number(&mut self, v: SeqNumber) {
        write_u32(self.bm(), field::ACK_NUM, v.0)
    }
    /// Sets the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_header_len(&mut self, len: u8) {
        let b = self.bm();
        b[field::OFF_RSV] = (b[field::OFF_RSV] & 0x0f) | ((len / 4) << 4);
    }
    /// Sets the 8 control bits and clears the reserved bits (RFC 9293 §3.1).
    pub fn set_flags(&mut self, flags: TcpFlags) {
        let b = self.bm();
        b[field::OFF_RSV] &= 0xf0;
        b[field::FLAGS] = flags.0 as u8;
    }
    pub fn set_window_len(&mut self, v: u16) {
        write_u16(self.bm(), field::WIN_SIZE, v)
    }
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.bm(), field::CHECKSUM, v)
    }
    pub fn set_urgent_at(&mut self, v: u16) {
        write_u16(self.bm(), field::URGENT, v)
    }
    /// Mutable options area (bytes 20..header_len).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        &mut self.bm()[HEADER_LEN..hl]
    }
    /// Mutable bytes after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        &mut self.bm()[hl..]
    }
    /// Computes the checksum over pseudo-header and the whole buffer and stores it.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let c = checksum::transport(src, dst, IpProtocol::Tcp, self.b());
        self.set_checksum(c)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// High-level representation of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    /// All flags as on the wire (SYN, FIN, RST, PSH, ACK, ...).
    pub flags: TcpFlags,
    pub seq_number: SeqNumber,
    /// Meaningful when `flags` has ACK; parse keeps the raw field.
    pub ack_number: SeqNumber,
    /// Raw field, unscaled.
    pub window_len: u16,
    pub urgent_pointer: u16,
    pub max_seg_size: Option<u16>,
    /// Parse clamps a received shift > 14 to 14 (RFC 7323 §2.3).
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    /// At most 4 blocks; emit writes as many as fit with the other options in 40 bytes.
    pub sack_ranges: SackBlocks,
    pub timestamp: Option<TcpTimestamp>,
    pub payload: &'a [u8],
}

/// Largest window shift (RFC 7323 §2.3).
pub const MAX_WINDOW_SCALE: u8 = 14;

impl<'a> TcpRepr<'a> {
    /// Parses a segment. Verifies the checksum if `caps.rx`; source or
    /// destination port 0 is `Malformed`; a malformed options area is
    /// `Malformed`. Options after End of Option List are ignored.
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCaps,
    ) -> Result<Self> {
        packet.check_len()?;
        if packet.src_port() == 0 || packet.dst_port() == 0 {
            return Err(Error::Malformed);
        }
        if caps.rx && !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        let mut repr = TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            flags: packet.flags(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            window_len: packet.window_len(),
            urgent_pointer: packet.urgent_at(),
            payload: packet.payload_ref(),
            ..TcpRepr::default()
        };
        let opts = packet.options_ref();
        // The options of nearly every segment of a connection with
        // timestamps: NOP NOP TS (the layout Linux and `emit` use).
        if let [kind::NOP, kind::NOP, kind::TS, 10, ts @ ..] = opts {
            if ts.len() == 8 {
                repr.timestamp = Some(TcpTimestamp {
                    tsval: read_u32(ts, 0),
                    tsecr: read_u32(ts, 4),
                });
                return Ok(repr);
            }
        }
        repr.parse_options(opts)?;
        Ok(repr)
    }

    /// The general options walk, out of line so that `parse` (inlined
    /// into the receive path, its result not copied about) stays small.
    #[inline(never)]
    fn parse_options(&mut self, mut opts: &'a [u8]) -> Result<()> {
        let repr = self;
        while !opts.is_empty() {
            let (rest, opt) = TcpOption::parse(opts)?;
            match opt {
                TcpOption::EndOfList => break,
                TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
                TcpOption::MaxSegmentSize(mss) => repr.max_seg_size = Some(mss),
                TcpOption::WindowScale(shift) => {
                    repr.window_scale = Some(shift.min(MAX_WINDOW_SCALE))
                }
                TcpOption::SackPermitted => repr.sack_permitted = true,
                TcpOption::SackRange(blocks) => repr.sack_ranges = blocks,
                TcpOption::Timestamp(ts) => repr.timestamp = Some(ts),
            }
            opts = rest;
        }
        Ok(())
    }

    /// Bytes of options other than SACK blocks, in the layout `emit` uses.
    #[inline]
    fn fixed_options_len(&self) -> usize {
        let mut len = 0;
        if self.max_seg_size.is_some() {
            len += 4; // MSS
        }
        if self.window_scale.is_some() {
            len += 4; // NOP WS
        }
        len += match (self.sack_permitted, self.timestamp.is_some()) {
            (true, true) => 12,  // SACK-permitted TS
            (false, true) => 12, // NOP NOP TS
            (true, false) => 4,  // NOP NOP SACK-permitted
            (false, false) => 0,
        };
        len
    }

    /// Number of SACK blocks emit writes: as many as fit (NOP NOP SACK) in 40 bytes.
    #[inline]
    fn sack_blocks_to_emit(&self) -> usize {
        let want = self.sack_ranges.iter().flatten().count();
        let room = MAX_OPTIONS_LEN - self.fixed_options_len();
        want.min(room.saturating_sub(4) / 8)
    }

    #[inline]
    fn options_len(&self) -> usize {
        let n = self.sack_blocks_to_emit();
        self.fixed_options_len() + if n > 0 { 4 + 8 * n } else { 0 }
    }

    /// 20 + options (always a multiple of 4, at most 60).
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// header_len + payload.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Sequence space: payload + SYN + FIN (RFC 9293 §3.4).
    pub fn segment_len(&self) -> usize {
        self.payload.len()
            + self.flags.contains(TcpFlags::SYN) as usize
            + self.flags.contains(TcpFlags::FIN) as usize
    }

    /// Writes header, options (order: MSS, NOP WS, SACK-permitted + TS or
    /// NOP NOP TS / NOP NOP SACK-permitted, NOP NOP SACK, like Linux),
    /// payload; fills the checksum (over `buffer_len()` bytes) if `caps.tx`,
    /// else writes 0. Reserved bits are sent as zero. The buffer should be
    /// exactly `buffer_len()` long; panics if it is shorter.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        caps: &ChecksumCaps,
    ) {
        let hl = self.header_len();
        // The fixed header, every bit of it, built locally and copied once
        // (reserved bits zero, checksum zero until filled below).
        let mut h = [0u8; HEADER_LEN];
        write_u16(&mut h, field::SRC_PORT, self.src_port);
        write_u16(&mut h, field::DST_PORT, self.dst_port);
        write_u32(&mut h, field::SEQ_NUM, self.seq_number.0);
        write_u32(&mut h, field::ACK_NUM, self.ack_number.0);
        h[field::OFF_RSV] = ((hl / 4) as u8) << 4;
        h[field::FLAGS] = self.flags.0 as u8;
        write_u16(&mut h, field::WIN_SIZE, self.window_len);
        write_u16(&mut h, field::URGENT, self.urgent_pointer);
        packet.bm()[..HEADER_LEN].copy_from_slice(&h);

        let mut opts = packet.options_mut();
        if let Some(mss) = self.max_seg_size {
            opts = TcpOption::MaxSegmentSize(mss).emit(opts);
        }
        if let Some(shift) = self.window_scale {
            opts = TcpOption::NoOperation.emit(opts);
            opts = TcpOption::WindowScale(shift).emit(opts);
        }
        match (self.sack_permitted, self.timestamp) {
            (true, Some(ts)) => {
                opts = TcpOption::SackPermitted.emit(opts);
                opts = TcpOption::Timestamp(ts).emit(opts);
            }
            (false, Some(ts)) => {
                // NOP NOP TS: the options of nearly every segment, written directly.
                let (out, rest) = opts.split_at_mut(12);
                out[..4].copy_from_slice(&[kind::NOP, kind::NOP, kind::TS, 10]);
                write_u32(out, 4, ts.tsval);
                write_u32(out, 8, ts.tsecr);
                opts = rest;
            }
            (true, None) => {
                opts = TcpOption::NoOperation.emit(opts);
                opts = TcpOption::NoOperation.emit(opts);
                opts = TcpOption::SackPermitted.emit(opts);
            }
            (false, None) => {}
        }
        let n = self.sack_blocks_to_emit();
        if n > 0 {
            let mut blocks: SackBlocks = [None; 4];
            for (slot, b) in blocks
                .iter_mut()
                .zip(self.sack_ranges.iter().flatten().take(n))
            {
                *slot = Some(*b);
            }
            opts = TcpOption::NoOperation.emit(opts);
            opts = TcpOption::NoOperation.emit(opts);
            opts = TcpOption::SackRange(blocks).emit(opts);
        }
        debug_assert!(opts.is_empty());

        packet.payload_mut()[..self.payload.len()].copy_from_slice(self.payload);
        if caps.tx {
            let len = hl + self.payload.len();
            let c = checksum::transport(src, dst, IpProtocol::Tcp, &packet.b()[..len]);
            packet.set_checksum(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    // A Linux-style SYN 10.0.0.1:40000 -> 10.0.0.2:80, seq 0x12345678,
    // window 64240, options MSS 1460, SACK-permitted, TS(1, 0), NOP, WS 7.
    // Checksum 0x33cf cross-checked with an independent RFC 1071 sum.
    const SYN: [u8; 40] = [
        0x9c, 0x40, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0x33, 0xcf, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
    ];

    #[test]
    fn parse_linux_syn() {
        let p = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), TcpFlags::SYN);
        assert_eq!(p.segment_len(), 1);
        assert!(p.verify_checksum(SRC, DST));
        let r = TcpRepr::parse(&p, SRC, DST, &ChecksumCaps::default()).unwrap();
        assert_eq!(
            r,
            TcpRepr {
                src_port: 40000,
                dst_port: 80,
                flags: TcpFlags::SYN,
                seq_number: SeqNumber(0x12345678),
                window_len: 64240,
                max_seg_size: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamp: Some(TcpTimestamp { tsval: 1, tsecr: 0 }),
                ..Default::default()
            }
        );
        assert_eq!(
            TcpRepr::parse(&p, DST, DST, &ChecksumCaps::default()),
            Err(Error::Checksum)
        );
        // Our own layout of the same SYN is also 40 bytes and verifies.
        let mut buf = [0u8; 40];
        r.emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            &ChecksumCaps::default(),
        );
        assert_eq!(
            &buf[20..],
            &[2, 4, 5, 180, 1, 3, 3, 7, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]
        );
        let q = TcpPacket::new_checked(&buf[..]).unwrap();
        assert!(q.verify_checksum(SRC, DST));
        assert_eq!(
            TcpRepr::parse(&q, SRC, DST, &ChecksumCaps::default()).unwrap(),
            r
        );
    }

    #[test]
    fn data_segment_with_sack() {
        let r = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            flags: TcpFlags::ACK | TcpFlags::PSH,
            seq_number: SeqNumber(1000),
            ack_number: SeqNumber(2000),
            window_len: 500,
            timestamp: Some(TcpTimestamp { tsval: 5, tsecr: 6 }),
            sack_ranges: [
                Some((SeqNumber(3000), SeqNumber(4000))),
                Some((SeqNumber(5000), SeqNumber(6000))),
                Some((SeqNumber(7000), SeqNumber(8000))),
                Some((SeqNumber(9000), SeqNumber(10000))),
            ],
            payload: b"hi",
            ..Default::default()
        };
        // TS (12) leaves room for 3 SACK blocks (4 + 24).
        assert_eq!(r.header_len(), 60);
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            SRC,
            DST,
            &ChecksumCaps::default(),
        );
        assert_eq!(&buf[20..24], &[1, 1, 8, 10]);
        assert_eq!(&buf[32..36], &[1, 1, 5, 26]);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        let parsed = TcpRepr::parse(&p, SRC, DST, &ChecksumCaps::default()).unwrap();
        assert_eq!(parsed.sack_ranges[..3], r.sack_ranges[..3]);
        assert_eq!(parsed.sack_ranges[3], None);
        assert_eq!(parsed.payload, b"hi");
        assert_eq!(p.segment_len(), 2);
    }

    #[test]
    fn rejects() {
        assert_eq!(
            TcpPacket::new_checked(&SYN[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            TcpPacket::new_checked(&SYN[..39]).unwrap_err(),
            Error::Truncated
        );
        let mut off = SYN;
        off[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&off[..]).unwrap_err(),
            Error::Malformed
        );
        let mut port = SYN;
        port[2] = 0;
        port[3] = 0;
        let p = TcpPacket::new_checked(&port[..]).unwrap();
        assert_eq!(
            TcpRepr::parse(&p, SRC, DST, &ChecksumCaps::OFFLOAD),
            Err(Error::Malformed)
        );
        let mut opt = SYN;
        opt[21] = 5; // MSS with length 5
        let p = TcpPacket::new_checked(&opt[..]).unwrap();
        assert_eq!(
            TcpRepr::parse(&p, SRC, DST, &ChecksumCaps::OFFLOAD),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn window_scale_clamped() {
        let mut b = SYN;
        b[39] = 20;
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            TcpRepr::parse(&p, SRC, DST, &ChecksumCaps::OFFLOAD)
                .unwrap()
                .window_scale,
            Some(14)
        );
    }

    #[test]
    fn reserved_bits_ignored() {
        let mut b = SYN;
        b[12] |= 0x0f;
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.flags(), TcpFlags::SYN);
    }

    #[test]
    fn option_parse_edges() {
        assert_eq!(TcpOption::parse(&[]), Err(Error::Truncated));
        assert_eq!(
            TcpOption::parse(&[0, 9]),
            Ok((&[9u8][..], TcpOption::EndOfList))
        );
        assert_eq!(
            TcpOption::parse(&[1]),
            Ok((&[][..], TcpOption::NoOperation))
        );
        assert_eq!(TcpOption::parse(&[2]), Err(Error::Malformed));
        assert_eq!(TcpOption::parse(&[30, 1]), Err(Error::Malformed));
        assert_eq!(TcpOption::parse(&[30, 5, 0, 0]), Err(Error::Malformed));
        assert_eq!(
            TcpOption::parse(&[30, 3, 7, 1]),
            Ok((
                &[1u8][..],
                TcpOption::Unknown {
                    kind: 30,
                    data: &[7]
                }
            ))
        );
        assert_eq!(TcpOption::parse(&[5, 2]), Err(Error::Malformed));
        assert_eq!(TcpOption::parse(&[3, 4, 0, 0]), Err(Error::Malformed));
    }

    #[test]
    fn seq_number_arith() {
        let a = SeqNumber(u32::MAX - 1);
        let b = a + 4;
        assert_eq!(b, SeqNumber(2));
        assert!(b > a);
        assert!(a < SeqNumber(1));
        assert_eq!(b - a, 4);
        assert_eq!(a - b, -4);
        assert_eq!(b - 4, a);
        assert_eq!(cmp::max(a, b), b);
        assert_eq!(a.min(b), a);
        let mut c = a;
        c += 10;
        assert_eq!(c.diff(a), 10);
    }

    #[test]
    fn flags_fmt_and_ops() {
        assert_eq!(format!("{:?}", TcpFlags::SYN | TcpFlags::ACK), "SYN|ACK");
        assert_eq!(format!("{:?}", TcpFlags::empty()), "(empty)");
        assert_eq!(format!("{:?}", TcpFlags(0x101)), "FIN|0x100");
        let mut f = TcpFlags::FIN;
        f.insert(TcpFlags::ACK);
        assert!(f.contains(TcpFlags::ACK) && f.contains(TcpFlags::FIN | TcpFlags::ACK));
        f.remove(TcpFlags::FIN);
        assert_eq!(f, TcpFlags::ACK);
        assert_eq!(f & TcpFlags::SYN, TcpFlags::empty());
    }

    fn arb_seq() -> impl Strategy<Value = SeqNumber> {
        any::<u32>().prop_map(SeqNumber)
    }

    fn arb_sack() -> impl Strategy<Value = SackBlocks> {
        (
            0usize..=4,
            proptest::array::uniform4((arb_seq(), arb_seq())),
        )
            .prop_map(|(n, bs)| {
                let mut out: SackBlocks = [None; 4];
                for i in 0..n {
                    out[i] = Some(bs[i]);
                }
                out
            })
    }

    fn arb_repr(payload: &[u8]) -> impl Strategy<Value = TcpRepr<'_>> {
        (
            (
                1u16..,
                1u16..,
                0u16..0x100,
                arb_seq(),
                arb_seq(),
                any::<u16>(),
                any::<u16>(),
            ),
            (
                proptest::option::of(any::<u16>()),
                proptest::option::of(0u8..=14),
                any::<bool>(),
                arb_sack(),
                proptest::option::of((any::<u32>(), any::<u32>())),
                0..=payload.len(),
            ),
        )
            .prop_map(
                move |((sp, dp, fl, seq, ack, win, urg), (mss, ws, sp_ok, sack, ts, plen))| {
                    TcpRepr {
                        src_port: sp,
                        dst_port: dp,
                        flags: TcpFlags(fl),
                        seq_number: seq,
                        ack_number: ack,
                        window_len: win,
                        urgent_pointer: urg,
                        max_seg_size: mss,
                        window_scale: ws,
                        sack_permitted: sp_ok,
                        sack_ranges: sack,
                        timestamp: ts.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr }),
                        payload: &payload[..plen],
                    }
                },
            )
    }

    static PAYLOAD: [u8; 64] = [0x5a; 64];

    proptest! {
        #[test]
        fn round_trip(r in arb_repr(&PAYLOAD)) {
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST, &ChecksumCaps::default());
            prop_assert!(r.header_len() <= 60 && r.header_len() % 4 == 0);
            let p = TcpPacket::new_checked(&buf[..]).unwrap();
            let parsed = TcpRepr::parse(&p, SRC, DST, &ChecksumCaps::default()).unwrap();
            // Emit drops SACK blocks that do not fit; compare against that.
            let mut expected = r;
            let n = r.sack_blocks_to_emit();
            for slot in expected.sack_ranges.iter_mut().skip(n) {
                *slot = None;
            }
            prop_assert_eq!(parsed, expected);
            prop_assert_eq!(p.segment_len(), r.segment_len());
        }

        #[test]
        fn option_round_trip(kind in 9u8..=255, data in proptest::collection::vec(any::<u8>(), 0..38)) {
            let opt = TcpOption::Unknown { kind, data: &data };
            let mut buf = [0u8; 40];
            let rest_len = opt.emit(&mut buf).len();
            prop_assert_eq!(rest_len, 40 - opt.buffer_len());
            prop_assert_eq!(TcpOption::parse(&buf[..opt.buffer_len()]).unwrap(), (&[][..], opt));
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = TcpPacket::new_checked(&data[..]) {
                let _ = (p.options(), p.payload(), p.segment_len(), p.verify_checksum(SRC, DST));
                let _ = TcpRepr::parse(&p, SRC, DST, &ChecksumCaps::default());
                let _ = TcpRepr::parse(&p, SRC, DST, &ChecksumCaps::OFFLOAD);
            }
            let _ = TcpRepr::parse(&TcpPacket::new_unchecked(&data[..]), SRC, DST, &ChecksumCaps::OFFLOAD);
        }

        #[test]
        fn random_options_never_panic(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut opts = &data[..];
            while let Ok((rest, _)) = TcpOption::parse(opts) {
                prop_assert!(rest.len() < opts.len());
                opts = rest;
            }
        }
    }
}

/// A fixed-layout view of the segment header prediction takes (RFC 9293
/// §3.10.7.4 as BSD and Linux predict it, `tcp_rcv_established`): flags
/// ACK or ACK|PSH and no other bit, no options or exactly NOP NOP
/// Timestamps (the layout RFC 7323 Appendix A recommends), and data.
/// Read at fixed offsets of known-length arrays: no bounds checks, no
/// option parsing. Anything else is `None`: take [`TcpPacket`] and
/// [`TcpRepr`]. The checksum is not checked here.
#[derive(Debug, Clone, Copy)]
pub struct TcpFast<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: SeqNumber,
    pub ack_number: SeqNumber,
    pub window_len: u16,
    pub timestamp: Option<TcpTimestamp>,
    pub payload: &'a [u8],
}

impl<'a> TcpFast<'a> {
    #[inline(always)]
    pub fn new(segment: &'a [u8]) -> Option<TcpFast<'a>> {
        let h: &[u8; HEADER_LEN] = segment.get(..HEADER_LEN)?.try_into().ok()?;
        // The header-prediction word: data offset 5 or 8, reserved bits
        // zero, flags ACK or ACK|PSH.
        let (timestamp, hl) = match (h[12], h[13] & !(TcpFlags::PSH.0 as u8)) {
            (0x50, 0x10) => (None, HEADER_LEN),
            (0x80, 0x10) => {
                let o: &[u8; 12] = segment.get(HEADER_LEN..HEADER_LEN + 12)?.try_into().ok()?;
                if o[..4] != [kind::NOP, kind::NOP, kind::TS, 10] {
                    return None;
                }
                let ts = TcpTimestamp {
                    tsval: u32::from_be_bytes([o[4], o[5], o[6], o[7]]),
                    tsecr: u32::from_be_bytes([o[8], o[9], o[10], o[11]]),
                };
                (Some(ts), HEADER_LEN + 12)
            }
            _ => return None,
        };
        let payload = &segment[hl..];
        if payload.is_empty() {
            return None;
        }
        Some(TcpFast {
            src_port: u16::from_be_bytes([h[0], h[1]]),
            dst_port: u16::from_be_bytes([h[2], h[3]]),
            seq_number: SeqNumber(u32::from_be_bytes([h[4], h[5], h[6], h[7]])),
            ack_number: SeqNumber(u32::from_be_bytes([h[8], h[9], h[10], h[11]])),
            window_len: u16::from_be_bytes([h[14], h[15]]),
            timestamp,
            payload,
        })
    }
}
