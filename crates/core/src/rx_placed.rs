//! Receiving in place (sans-IO): the stack lays out where the next frame
//! should be read, the device layer reads it there (one readv(2)), and
//! the stack either makes the payload readable where it landed (the next
//! in-order data of the connection header prediction last took, with the
//! headers that connection's segments carry) or puts the frame back
//! together and takes the usual path.

use crate::config::Medium;
use crate::ipv4::output::IpPair;
use crate::stack::{split, RxMeta, Stack};
use crate::time::Instant;
use std::net::{Ipv4Addr, SocketAddrV4};
use ustack_wire::{IpProtocol, TcpFast};

/// IPv4 header without options, as the in-place path takes it.
const IP_HEADER: usize = 20;
/// Longest TCP header the in-place path lays out (20 + timestamps).
const TCP_HEADER_MAX: usize = 32;
/// Most payload bytes one read may put in a ring (a GSO super-packet).
const MAX_PLACED: usize = 65536;

/// What [`Stack::receive_placed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// No connection to read into: read the usual way (nothing was read).
    NoSlot,
    /// The read found nothing waiting.
    Empty,
    /// A frame was read and its payload made readable where it landed.
    InPlace,
    /// A frame was read but did not qualify: it was put back together
    /// and taken the usual way (counted in `link.rx_placed_fallback`).
    Copied,
}

impl Stack {
    /// Reads the next frame straight into a receive ring, if there is one
    /// to read into: `read` gets four buffers to fill in order, as one
    /// readv(2) would (a header slot, the free tail of the ring of the
    /// connection header prediction last took as two slices, and `rest`
    /// for whatever does not fit), and returns the frame's length and
    /// what the device knows of it, or `None` if nothing was waiting.
    /// `rest` should hold the longest frame the device gives. The
    /// payload becomes readable only if the frame is that connection's
    /// next in-order segment with the expected headers and a checksum
    /// the device vouched for (`link.rx_placed`); anything else is put
    /// back together in `rest` and received as by
    /// [`receive_with`](Self::receive_with) (`link.rx_placed_fallback`).
    /// Bytes read into the ring but not taken stay unreadable.
    pub fn receive_placed<E>(
        &mut self,
        now: Instant,
        rest: &mut [u8],
        read: impl FnOnce(&mut [&mut [u8]; 4]) -> Result<Option<(usize, RxMeta)>, E>,
    ) -> Result<Placed, E> {
        if self.cfg.medium != Medium::Ip || !self.cfg.tcp.header_prediction || self.cfg.trace {
            return Ok(Placed::NoSlot);
        }
        let mut head = [0u8; IP_HEADER + TCP_HEADER_MAX];
        let Some((id, tcp_hl, (a, b))) = self.tcp.placed_slot(MAX_PLACED) else {
            return Ok(Placed::NoSlot);
        };
        let hl = IP_HEADER + tcp_hl;
        let room = a.len() + b.len();
        let got = {
            let mut bufs: [&mut [u8]; 4] = [&mut head[..hl], a, b, &mut *rest];
            read(&mut bufs)?
        };
        let Some((n, meta)) = got else {
            return Ok(Placed::Empty);
        };
        let placed = n.saturating_sub(hl).min(room);
        let spill = n.saturating_sub(hl + placed);
        if spill == 0 && placed > 0 && self.take_placed(now, &head[..hl], id, placed, meta) {
            return Ok(Placed::InPlace);
        }
        // Put the frame back together in `rest`: header, ring bytes, spill.
        self.sh.counters.link.rx_placed_fallback += 1;
        let front = n.min(hl) + placed;
        if n > rest.len() {
            // Longer than the caller said frames can be: cut short by the
            // read, so not a frame to take.
            self.sh.counters.link.rx_frames += 1;
            self.sh.counters.link.rx_malformed += 1;
            return Ok(Placed::Copied);
        }
        rest.copy_within(..spill, front);
        rest[..n.min(hl)].copy_from_slice(&head[..n.min(hl)]);
        let (pa, pb) = self.tcp.placed_bytes(id, placed);
        let at = n.min(hl);
        rest[at..at + pa.len()].copy_from_slice(pa);
        rest[at + pa.len()..at + pa.len() + pb.len()].copy_from_slice(pb);
        self.receive_with(now, &rest[..n], meta);
        Ok(Placed::Copied)
    }

    /// The in-place commit: `head` the frame's IPv4 and TCP headers,
    /// `placed` payload bytes at the tail of `id`'s ring. Returns false,
    /// having changed nothing, unless they were taken.
    fn take_placed(
        &mut self,
        now: Instant,
        head: &[u8],
        id: crate::tcp::TcbId,
        placed: usize,
        meta: RxMeta,
    ) -> bool {
        let Some(ip) = head.get(..IP_HEADER) else {
            return false;
        };
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        // Version 4, IHL 5, not a fragment, the length read, TCP, to us;
        // checksums the device vouched for (else the usual path sums them).
        let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        if ip[0] != 0x45
            || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0
            || total != head.len() + placed
            || ip[9] != u8::from(IpProtocol::Tcp)
            || !(dst == self.cfg.addr.address() || self.cfg.transparent)
            || (self.cfg.checksums.rx && !meta.csum_ok)
        {
            return false;
        }
        // The TCP header, read with a stand-in payload byte: it must be
        // exactly the expected length (the byte is then the payload).
        let mut tcp = [0u8; TCP_HEADER_MAX + 1];
        let th = &head[IP_HEADER..];
        tcp[..th.len()].copy_from_slice(th);
        let Some(seg) = TcpFast::new(&tcp[..th.len() + 1]) else {
            return false;
        };
        if seg.payload.len() != 1 {
            return false;
        }
        let pair = IpPair {
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst,
        };
        let local = SocketAddrV4::new(pair.dst, seg.dst_port);
        let remote = SocketAddrV4::new(pair.src, seg.src_port);
        if self.tcp.cached(local.into(), remote.into()) != Some(id) {
            return false;
        }
        let (tcp, mut cx) = split!(self, tcp, now);
        if !tcp.process_placed(&mut cx, id, &seg, placed) {
            return false;
        }
        if now > self.clock {
            self.clock = now;
        }
        let c = &mut self.sh.counters;
        c.link.rx_frames += 1;
        c.link.rx_placed += 1;
        if meta.csum_ok && self.cfg.checksums.rx {
            c.link.rx_csum_trusted += 1;
        }
        c.ip.in_receives += 1;
        true
    }
}
