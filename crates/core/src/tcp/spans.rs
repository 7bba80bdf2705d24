//! Ranges of sequence space: SACK scoreboard spans and out-of-order
//! queue ranges.

use ustack_wire::SeqNumber;

/// A contiguous range of sequence space `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: SeqNumber,
    pub end: SeqNumber,
}
impl Span {
    pub fn len(&self) -> u32 {
        self.end.diff(self.start).max(0) as u32
    }
}
/// A range held in the out-of-order queue, with the order in which it was
/// last extended (the most recent goes first in SACK blocks, RFC 2018 §4).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OfoRange {
    pub span: Span,
    pub stamp: u32,
}
