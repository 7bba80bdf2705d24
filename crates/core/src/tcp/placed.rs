//! Receiving in place: the device reads a segment's payload straight into
//! the free space at the tail of a connection's receive ring, and header
//! prediction makes it readable where it landed (no copy). The stack side
//! is `Stack::receive_placed`.

use super::state::State;
use super::table::Tcp;
use super::tcb::{Tcb, TcbId};

/// The TCP header a bulk sender's segments carry: 20 bytes, plus 12 for
/// the timestamp option (NOP, NOP, TS) when negotiated.
const fn tcp_header_len(ts: bool) -> usize {
    if ts {
        32
    } else {
        20
    }
}

/// A ring's free tail, as two writable slices (the second after the wrap).
pub(crate) type Tail<'a> = (&'a mut [u8], &'a mut [u8]);

impl Tcp {
    /// The connection header prediction last took, if its next in-order
    /// data can go straight into its ring: its id, the TCP header length
    /// its segments carry, and the ring's free tail (at most `max` bytes,
    /// as two slices). `None` when it has data queued out of order or is
    /// not ESTABLISHED with a socket.
    pub(crate) fn placed_slot(&mut self, max: usize) -> Option<(TcbId, usize, Tail<'_>)> {
        let id = self.last_conn()?;
        let t = self.get_mut(id)?;
        if t.state != State::Established
            || !t.rcv.ofo.is_empty()
            || t.rcv.ofo_fin.is_some()
            || t.socket.is_none()
            || t.rcv.posted.as_ref().is_some_and(|q| !q.is_empty())
        {
            return None;
        }
        let hl = tcp_header_len(t.neg.ts);
        let tail = t.rcv.q.tail_mut(max);
        if tail.0.is_empty() {
            return None;
        }
        Some((id, hl, tail))
    }

    /// The first `n` bytes past the readable end of `id`'s receive ring
    /// (what the device wrote there), as two slices.
    pub(crate) fn placed_bytes(&self, id: TcbId, n: usize) -> (&[u8], &[u8]) {
        match self.get(id) {
            Some(t) => t.rcv.q.tail(n),
            None => (&[], &[]),
        }
    }
}

impl Tcb {
    /// Makes `n` bytes already written at the ring's tail readable as the
    /// next in-order data (nothing is queued out of order: header
    /// prediction checked). Returns the bytes taken (clipped to the free
    /// space).
    pub(crate) fn take_placed(&mut self, n: usize) -> usize {
        let n = n.min(self.rcv.q.free());
        self.rcv.q.commit(n);
        self.rcv.nxt = self.ofo_advance(self.rcv.nxt + n);
        n
    }
}
