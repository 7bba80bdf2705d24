//! Segments planned for output: one segment or a burst of full ones
//! (`Plan`), what is left of a burst (`Burst`), and segments without a
//! TCB (`Ctl`: RSTs, cookie SYN-ACKs).

use super::tcb::TcbId;
use std::net::SocketAddr;
use ustack_wire::{SeqNumber, TcpFlags, TcpRepr};

/// A segment without a TCB behind it: RSTs, cookie SYN-ACKs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctl {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub flags: ustack_wire::TcpFlags,
    pub window: u16,
    pub mss: Option<u16>,
}
/// Full segments a burst holds at most: 64 KiB at MSS 1460 (Linux's
/// `GSO_MAX_SIZE`), so one connection delays the others by little.
pub(super) const BURST_SEGMENTS: usize = 44;
/// One segment to write, or a burst of full segments (see
/// `TcpConfig::gso`): the header as `TcpRepr` (built in place, so emitting
/// it copies nothing) and where its payload is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(super) id: Option<TcbId>,
    pub(super) local: SocketAddr,
    pub(super) remote: SocketAddr,
    pub(super) repr: TcpRepr<'static>,
    /// Payload: offset into the send ring and length.
    pub(super) off: usize,
    pub(super) len: usize,
    /// Payload per segment when `len` is a burst of several; else `len`.
    pub(super) seg: usize,
    /// ECN-capable transport: ECT(0) in the IP header (RFC 3168 §6.1.2).
    pub(super) ect: bool,
}
/// What is left of a burst, and the headers of its first segment (link,
/// IP, TCP) when that one went out whole: the next ones are that copy with
/// the sequence number, IP ident, PSH and checksums changed. Kept in place
/// and updated field by field (copying a `Plan` per segment stalled on
/// store forwarding).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Burst {
    pub(super) id: TcbId,
    /// The next segment's sequence number, and the bytes left from it.
    pub(super) seq: SeqNumber,
    pub(super) left: usize,
    pub(super) seg: usize,
    /// PSH on the last segment.
    pub(super) psh: bool,
    pub(super) hdr: [u8; BURST_HEADER_MAX],
    pub(super) hdr_len: usize,
    /// The whole burst as planned, for segments that cannot reuse the
    /// headers (the first did not go out whole: ARP, loopback).
    pub(super) plan: Plan,
}
/// Ethernet, IPv4 without options, TCP with the most options.
pub(super) const BURST_HEADER_MAX: usize = 14 + 20 + 60;
impl Plan {
    pub(super) fn new(
        id: Option<TcbId>,
        local: SocketAddr,
        remote: SocketAddr,
        flags: TcpFlags,
        seq: SeqNumber,
        ack: SeqNumber,
    ) -> Plan {
        Plan {
            id,
            local,
            remote,
            repr: TcpRepr {
                src_port: local.port(),
                dst_port: remote.port(),
                flags,
                seq_number: seq,
                ack_number: ack,
                window_len: 0,
                urgent_pointer: 0,
                max_seg_size: None,
                window_scale: None,
                sack_permitted: false,
                sack_ranges: [None; 4],
                timestamp: None,
                payload: &[],
            },
            off: 0,
            len: 0,
            seg: 0,
            ect: false,
        }
    }

    pub(super) fn from_ctl(c: Ctl) -> Plan {
        let mut p = Plan::new(None, c.local, c.remote, c.flags, c.seq, c.ack);
        p.repr.window_len = c.window;
        p.repr.max_seg_size = c.mss;
        p.finish();
        p
    }

    /// The acknowledgment field is zero without ACK.
    pub(super) fn finish(&mut self) {
        if !self.repr.flags.contains(TcpFlags::ACK) {
            self.repr.ack_number = SeqNumber(0);
        }
    }
}
