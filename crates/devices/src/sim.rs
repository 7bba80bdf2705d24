//! Drives several hosts over one [`MemLink`] on a virtual clock.
//!
//! A round at time `now`: every host drains its frames onto the link (a
//! batch per [`SimHost::transmit_burst`] call), then every frame due at
//! `now` is handed to its host. The clock then jumps to the next event: the
//! earliest pending delivery or host `poll_at`.
//!
//! Past deadlines: a host's `poll_at() <= now` counts as "now" only if the
//! host received a frame this round (or hit the burst cap); otherwise it was
//! just polled at `now`, emitted nothing, and its stale deadline is ignored
//! until something else happens. So a host that never clears an old
//! deadline cannot stall the clock.

use ustack_core::time::{Duration, Instant};

use crate::memlink::{MemLink, PortId};

/// Size of the buffer handed to [`SimHost::transmit`].
pub const FRAME_BUF: usize = 65_536;
/// Frames a host may emit in one round before the rest wait for the next round.
pub const MAX_BURST: usize = 1 << 16;
/// Frames one [`SimHost::transmit_burst`] call may write.
pub const TX_BATCH: usize = 8;
/// Rounds one `run_until` call may take before giving up.
pub const MAX_STEPS: u64 = 50_000_000;

/// Anything the simulator can drive (the core's stack, test hosts).
pub trait SimHost {
    fn receive(&mut self, now: Instant, frame: &[u8]);
    /// `receive` with what the device said of the frame; hosts that make
    /// nothing of it take it as `receive`.
    fn receive_with(&mut self, now: Instant, frame: &[u8], meta: ustack_core::RxMeta) {
        let _ = meta;
        self.receive(now, frame);
    }
    /// The frames a device poll read, in order, as `receive_with` one
    /// after another would take them (the core's stack takes them as one
    /// burst: `Stack::receive_burst`).
    fn receive_burst(
        &mut self,
        now: Instant,
        frames: &mut dyn Iterator<Item = (&[u8], ustack_core::RxMeta)>,
    ) {
        for (frame, meta) in frames {
            self.receive_with(now, frame, meta);
        }
    }
    /// Writes one outgoing frame into `buf` and returns its length; `None` when nothing is owed now.
    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize>;
    /// Writes up to `bufs.len()` frames in order (each one's length into
    /// `lens`), what as many `transmit` calls would; returns how many.
    fn transmit_burst(&mut self, now: Instant, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> usize {
        let mut n = 0;
        while n < bufs.len().min(lens.len()) {
            match self.transmit(now, &mut bufs[n]) {
                Some(len) => lens[n] = len,
                None => break,
            }
            n += 1;
        }
        n
    }
    /// When `transmit` must next be called even if no frame arrives.
    fn poll_at(&self) -> Option<Instant>;
}

impl<H: SimHost + ?Sized> SimHost for Box<H> {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        (**self).receive(now, frame)
    }
    fn receive_with(&mut self, now: Instant, frame: &[u8], meta: ustack_core::RxMeta) {
        (**self).receive_with(now, frame, meta)
    }
    fn receive_burst(
        &mut self,
        now: Instant,
        frames: &mut dyn Iterator<Item = (&[u8], ustack_core::RxMeta)>,
    ) {
        (**self).receive_burst(now, frames)
    }
    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        (**self).transmit(now, buf)
    }
    fn transmit_burst(&mut self, now: Instant, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> usize {
        (**self).transmit_burst(now, bufs, lens)
    }
    fn poll_at(&self) -> Option<Instant> {
        (**self).poll_at()
    }
}

impl SimHost for ustack_core::Stack {
    fn receive(&mut self, now: Instant, frame: &[u8]) {
        ustack_core::Stack::receive(self, now, frame)
    }
    fn receive_with(&mut self, now: Instant, frame: &[u8], meta: ustack_core::RxMeta) {
        ustack_core::Stack::receive_with(self, now, frame, meta)
    }
    fn receive_burst(
        &mut self,
        now: Instant,
        frames: &mut dyn Iterator<Item = (&[u8], ustack_core::RxMeta)>,
    ) {
        ustack_core::Stack::receive_burst(self, now, frames)
    }
    fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        ustack_core::Stack::transmit(self, now, buf)
    }
    fn transmit_burst(&mut self, now: Instant, bufs: &mut [Vec<u8>], lens: &mut [usize]) -> usize {
        ustack_core::Stack::transmit_burst(self, now, bufs, lens)
    }
    fn poll_at(&self) -> Option<Instant> {
        ustack_core::Stack::poll_at(self)
    }
}

/// Hosts on one link, and the virtual clock; see the module docs.
#[derive(Debug)]
pub struct Sim<H: SimHost> {
    pub link: MemLink,
    pub hosts: Vec<H>,
    ports: Vec<PortId>,
    dirty: Vec<bool>,
    now: Instant,
    next_event: Option<Instant>,
    steps: u64,
    /// What a host writes its frames into, a batch at a time.
    bufs: Vec<Vec<u8>>,
    lens: [usize; TX_BATCH],
}

impl<H: SimHost> Sim<H> {
    /// Starts at `Instant::ZERO`.
    pub fn new(link: MemLink) -> Self {
        Sim {
            link,
            hosts: Vec::new(),
            ports: Vec::new(),
            dirty: Vec::new(),
            now: Instant::ZERO,
            next_event: None,
            steps: 0,
            bufs: vec![vec![0; FRAME_BUF]; TX_BATCH],
            lens: [0; TX_BATCH],
        }
    }

    /// Adds `host` on a new link port; returns its index in `hosts`.
    pub fn add_host(&mut self, host: H) -> usize {
        self.ports.push(self.link.add_port());
        self.hosts.push(host);
        self.dirty.push(false);
        self.hosts.len() - 1
    }

    /// The link port of host `i`.
    pub fn port(&self, i: usize) -> PortId {
        self.ports[i]
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    /// Rounds run so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// One round at `now`, then advance the clock to the next event, never
    /// backwards nor past `limit`. Returns false when nothing is pending.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.steps += 1;
        let now = self.now;
        for (i, host) in self.hosts.iter_mut().enumerate() {
            self.dirty[i] = false;
            let mut n = 0;
            loop {
                let max = TX_BATCH.min(MAX_BURST - n);
                let k = host.transmit_burst(now, &mut self.bufs[..max], &mut self.lens[..max]);
                for (b, &len) in self.bufs.iter().zip(&self.lens).take(k) {
                    self.link.send(now, self.ports[i], &b[..len]);
                }
                n += k;
                if n == MAX_BURST {
                    self.dirty[i] = true;
                    break;
                }
                if k < max {
                    break;
                }
            }
        }
        for (i, host) in self.hosts.iter_mut().enumerate() {
            while self
                .link
                .recv_with(now, self.ports[i], |f| host.receive(now, f))
                .is_some()
            {
                self.dirty[i] = true;
            }
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for (i, host) in self.hosts.iter().enumerate() {
            if let Some(t) = self.link.poll_at_port(self.ports[i]) {
                consider(t.max(now));
            }
            if let Some(t) = host.poll_at() {
                if t > now || self.dirty[i] {
                    consider(t.max(now));
                }
            }
        }
        self.next_event = next;
        match next {
            Some(t) => {
                self.now = self.now.max(t.min(limit));
                true
            }
            None => false,
        }
    }

    /// Steps until `done` holds (returns true), or nothing is pending by
    /// `deadline` (clock left at `deadline`), or the link goes idle (clock
    /// left at the last event), or [`MAX_STEPS`] rounds pass.
    pub fn run_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> bool {
        let first = self.steps;
        loop {
            if done(self) {
                return true;
            }
            if self.steps - first >= MAX_STEPS {
                return false;
            }
            let pending = self.step(deadline);
            if !pending || self.next_event.is_some_and(|t| t > deadline) {
                return done(self);
            }
        }
    }

    /// Runs to exactly `t`, calling `apps` before every round: the place
    /// where simulated applications read and write their sockets.
    pub fn run_to(&mut self, t: Instant, mut apps: impl FnMut(&mut Self)) {
        self.run_until(t, |s| {
            apps(s);
            false
        });
        self.now = self.now.max(t);
        apps(self);
    }

    /// Runs for `d` of virtual time; the clock ends exactly `d` later.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end, |_| false);
        self.now = self.now.max(end);
    }
}
