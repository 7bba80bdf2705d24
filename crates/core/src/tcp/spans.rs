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

/// A list that is one null pointer while empty, as the SACK scoreboard
/// and the out-of-order queue are for most connections most of the time:
/// boxed on the first entry, given back when the last one goes (an idle
/// connection keeps 8 bytes for each instead of a 24-byte `Vec`).
/// (The box is the point: 8 bytes in the TCB rather than 24.)
#[derive(Debug)]
#[allow(clippy::box_collection)]
pub(crate) struct Sparse<T>(Option<Box<Vec<T>>>);
impl<T> Default for Sparse<T> {
    fn default() -> Self {
        Sparse(None)
    }
}
impl<T> core::ops::Deref for Sparse<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        match self.0.as_deref() {
            Some(v) => v,
            None => &[],
        }
    }
}
impl<T> Sparse<T> {
    /// Gives the box back if the list is empty.
    #[inline]
    fn tidy(&mut self) {
        if self.0.as_deref().is_some_and(Vec::is_empty) {
            self.0 = None;
        }
    }

    /// Changes the list through `f` (boxing it first if empty).
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut Vec<T>) -> R) -> R {
        let r = f(self.0.get_or_insert_with(Box::default));
        self.tidy();
        r
    }

    pub fn insert(&mut self, at: usize, x: T) {
        self.edit(|v| v.insert(at, x));
    }

    pub fn remove(&mut self, at: usize) -> Option<T> {
        let v = self.0.as_deref_mut()?;
        let x = (at < v.len()).then(|| v.remove(at));
        self.tidy();
        x
    }

    #[inline]
    pub fn retain_mut(&mut self, f: impl FnMut(&mut T) -> bool) {
        if let Some(v) = self.0.as_deref_mut() {
            v.retain_mut(f);
            self.tidy();
        }
    }
}

#[cfg(test)]
mod sparse_tests {
    use super::Sparse;

    #[test]
    fn boxed_only_while_something_is_held() {
        let mut s = Sparse::<u32>::default();
        assert!(s.is_empty() && s.0.is_none());
        s.retain_mut(|_| true);
        assert!(s.0.is_none(), "no box for an edit of nothing");
        s.insert(0, 2);
        s.insert(0, 1);
        s.edit(|v| v.push(3));
        assert_eq!(&*s, &[1, 2, 3]);
        assert_eq!(s.remove(0), Some(1));
        assert_eq!(s.remove(5), None);
        s.retain_mut(|x| *x != 2);
        assert_eq!(&*s, &[3]);
        s.retain_mut(|_| false);
        assert!(s.0.is_none(), "emptied: the box is given back");
    }
}
