//! Transmitting a batch (sans-IO): several frames per call into the
//! buffers a device's transmit ring lends, as that many
//! [`Stack::transmit`] calls would write them, with the per-frame
//! bookkeeping of a burst of one connection's segments (the TCB's
//! lookup and checks, the timer and queue checks, the counters) done
//! once per batch.

use crate::stack::{split, Stack};
use crate::time::Instant;

impl Stack {
    /// Writes the next frames the stack owes into `bufs` in order, each
    /// one's length into `lens` at the same index, and returns how many
    /// (at most the shorter of the two; fewer when nothing more is owed
    /// now). The frames, and everything else, are exactly what as many
    /// [`transmit`](Self::transmit) calls would give; the rest of a burst
    /// of full segments (`TcpConfig::gso`) is written without going
    /// through the per-frame path.
    pub fn transmit_burst<B: AsMut<[u8]>>(
        &mut self,
        now: Instant,
        bufs: &mut [B],
        lens: &mut [usize],
    ) -> usize {
        let max = bufs.len().min(lens.len());
        let mut i = 0;
        while i < max {
            match self.transmit(now, bufs[i].as_mut()) {
                Some(n) => lens[i] = n,
                None => break,
            }
            i += 1;
            // `transmit` ran the timers at `now`: while nothing else is
            // owed, its next calls would only take the burst further.
            if i < max && !self.cfg.trace && self.tcp.burst.is_some() && self.ip_quiet(now) {
                let (tcp, mut cx) = split!(self, tcp, now);
                i += tcp.burst_run(&mut cx, &mut bufs[i..max], &mut lens[i..max]);
            }
        }
        i
    }
}
