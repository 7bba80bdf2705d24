//! Receiving a burst of frames at once (sans-IO), as a device loop has
//! them after one poll: the per-call entry work is done once, and a run
//! of consecutive in-order segments of one connection that header
//! prediction takes shares one lookup and one tail (its timers, its
//! place on the ready list, its socket's readiness), after Linux's GRO
//! and one ACK decision per NAPI poll. Each frame still has its IPv4
//! header and TCP checksum verified and its payload placed on its own.

use crate::config::Medium;
use crate::stack::{split, RxMeta, Stack};
use crate::tcp::Run;
use crate::time::Instant;
use ustack_wire::{IpProtocol, Ipv4Fast};

impl Stack {
    /// Processes `frames` in order, with what the device knows of each,
    /// as [`receive_with`](Self::receive_with) one after another would:
    /// the application and the peer see the same. The only difference
    /// is internal: a timer deadline set and cleared again within a run
    /// of one connection's segments leaves no stale entry in the timer
    /// heap (which could only have made [`poll_at`](Self::poll_at) early).
    pub fn receive_burst<'f>(
        &mut self,
        now: Instant,
        frames: impl IntoIterator<Item = (&'f [u8], RxMeta)>,
    ) {
        if self.cfg.medium != Medium::Ip || !self.cfg.tcp.header_prediction || self.cfg.trace {
            for (frame, meta) in frames {
                self.receive_with(now, frame, meta);
            }
            return;
        }
        if now > self.clock {
            self.clock = now;
        }
        let mut run: Option<Run> = None;
        let (mut taken, mut trusted) = (0u64, 0u64);
        for (frame, meta) in frames {
            if self.burst_fast(now, frame, meta, &mut run) {
                taken += 1;
                trusted += u64::from(meta.csum_ok && self.cfg.checksums.rx);
                continue;
            }
            let (tcp, mut cx) = split!(self, tcp, now);
            tcp.end_run(&mut cx, &mut run);
            self.receive_with(now, frame, meta);
        }
        let (tcp, mut cx) = split!(self, tcp, now);
        tcp.end_run(&mut cx, &mut run);
        let c = &mut self.sh.counters;
        c.link.rx_frames += taken;
        c.link.rx_csum_trusted += trusted;
        c.ip.in_receives += taken;
    }

    /// One frame of a burst through header prediction: a plain IPv4
    /// header to us (checksum good unless the device vouched for it), TCP,
    /// no CE mark (ECN takes the full path), and a segment
    /// `Tcp::process_fast_run` takes. False, nothing taken, otherwise.
    #[inline(always)]
    fn burst_fast(
        &mut self,
        now: Instant,
        frame: &[u8],
        meta: RxMeta,
        run: &mut Option<Run>,
    ) -> bool {
        let Some(v) = Ipv4Fast::new(frame) else {
            return false;
        };
        let csum = self.cfg.checksums.rx && !meta.csum_ok;
        if v.protocol_raw() != u8::from(IpProtocol::Tcp)
            || frame[1] & 3 == 3
            || !(v.dst_is(self.cfg.addr.address()) || self.cfg.transparent)
            || (csum && !v.checksum_ok())
        {
            return false;
        }
        let (tcp, mut cx) = split!(self, tcp, now);
        tcp.process_fast_run(&mut cx, v.header(), v.payload(), csum, run)
    }
}
