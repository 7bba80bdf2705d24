//! Fragmentation of datagrams we originate (RFC 791 §3.2, "fragmentation").

use ustack_wire::{ChecksumCaps, Ipv4Packet, Ipv4Repr};

/// Payload bytes per fragment for an IP MTU: the largest multiple of 8 that
/// fits after a 20-byte header.
pub fn fragment_payload(mtu: usize) -> usize {
    (mtu.saturating_sub(ustack_wire::ipv4::HEADER_LEN)) & !7
}

/// Cuts one datagram into fragments, one per call.
#[derive(Debug)]
pub struct Fragmenter {
    repr: Ipv4Repr,
    payload: Vec<u8>,
    offset: usize,
    step: usize,
}

impl Fragmenter {
    /// `repr.payload_len` must equal `payload.len()`; the MTU must leave room
    /// for at least 8 payload bytes (the stack checks MTU ≥ 68, RFC 791).
    pub fn new(repr: Ipv4Repr, payload: Vec<u8>, mtu: usize) -> Fragmenter {
        let step = fragment_payload(mtu).max(8);
        Fragmenter {
            repr,
            payload,
            offset: 0,
            step,
        }
    }

    pub fn is_done(&self) -> bool {
        self.offset >= self.payload.len()
    }

    /// Number of fragments this datagram makes.
    pub fn count(&self) -> usize {
        self.payload.len().div_ceil(self.step)
    }

    /// Bytes the next fragment needs.
    pub fn next_len(&self) -> usize {
        ustack_wire::ipv4::HEADER_LEN + (self.payload.len() - self.offset).min(self.step)
    }

    /// Writes the next fragment (IP header and payload) at the start of
    /// `buf`, which must hold [`next_len`](Self::next_len) bytes.
    pub fn emit_next(&mut self, buf: &mut [u8], caps: &ChecksumCaps) -> Option<usize> {
        if self.is_done() {
            return None;
        }
        let len = (self.payload.len() - self.offset).min(self.step);
        let last = self.offset + len == self.payload.len();
        let mut repr = self.repr;
        repr.payload_len = len;
        repr.frag_offset = u16::try_from(self.offset).unwrap_or(u16::MAX) & !7;
        repr.more_frags = !last;
        repr.dont_frag = false;
        let total = repr.buffer_len() + len;
        let mut packet = Ipv4Packet::new_unchecked(&mut buf[..total]);
        repr.emit(&mut packet, caps);
        packet.payload_mut()[..len].copy_from_slice(&self.payload[self.offset..self.offset + len]);
        self.offset += len;
        Some(total)
    }
}
