//! A minimal blocking loop that runs one host (a [`Stack`](ustack_core::Stack))
//! on one real-time [`Device`], for tests and examples. The multi-threaded
//! runtime is elsewhere; this is the same cycle, on the caller's thread, and
//! both take its steps from here ([`receive_batch`], [`retry_held`],
//! [`send_next`]):
//!
//! 1. read a batch of frames from the device and hand each to `receive`;
//! 2. let the device do its due timed work ([`Device::service`]);
//! 3. drain `transmit` to the device, a batch at most; a frame the device
//!    refuses with `WouldBlock` is kept and offered again first, once the
//!    fd is writable (nothing is dropped);
//! 4. sleep in poll(2) on the device fd until it is readable (or writable,
//!    if a frame waits), or until the earliest of the host's and the device's
//!    deadlines, or the caller's timeout.
//!
//! Time is a [`Clock`]: a monotonic clock mapped onto the core's `Instant`.
//! Keep one driver (and so one clock) per stack for its whole life.

use std::io;
use std::time::Duration;

use ustack_core::time::Instant;

use crate::device::{Clock, Device, PacketBatch, MAX_FRAME};
use crate::pcap::PcapSink;
use crate::sim::SimHost;
use crate::tun::poll_fd;

/// Frames moved each way per wake-up, at most.
pub const DEFAULT_BATCH: usize = 64;
/// Longest sleep without an fd to wait on (a device with no fd).
const NO_FD_NAP: Duration = Duration::from_millis(1);
/// Longest single wait by default, so an `until` condition that depends on
/// the world outside the stack (a child process exiting) is seen promptly.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(20);
/// Sleep when a deadline has passed but nothing could be done about it
/// (the device refused frames): long enough not to spin.
const STALE_NAP: Duration = Duration::from_millis(1);

/// What the driver did over its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Times round the loop.
    pub turns: u64,
    /// poll(2) calls (or naps without an fd).
    pub waits: u64,
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Frames the device refused with `WouldBlock` (each retried later).
    pub tx_deferred: u64,
}

/// What [`send_next`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStep {
    /// A frame went to the device.
    Sent,
    /// The device refused it (`WouldBlock`): it is kept in `held`.
    Blocked,
    /// The host owes nothing now.
    Idle,
}

/// The steps every loop that runs a host on a device takes (this
/// `Driver`, and the `ustack` runtime's stack thread and inline mode):
/// receive a batch, offer a refused frame again, send the next one.
///
/// Reads up to `max` frames into `rx` and hands them to the host as one
/// burst (`SimHost::receive_burst`), each `seen` first (e.g. a capture).
/// If `seen` fails for a frame, the host gets the frames before it, and
/// the error is returned. Returns how many were read.
pub fn receive_batch<H: SimHost + ?Sized, D: Device + ?Sized>(
    host: &mut H,
    device: &mut D,
    now: Instant,
    rx: &mut PacketBatch,
    max: usize,
    mut seen: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<usize> {
    rx.clear();
    let n = device.recv_batch(now, rx, max)?;
    let mut failed = None;
    let mut good = 0;
    for (frame, _) in rx.iter_with() {
        if let Err(e) = seen(frame) {
            failed = Some(e);
            break;
        }
        good += 1;
    }
    host.receive_burst(now, &mut rx.iter_with().take(good));
    match failed {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// Offers the frame the device refused last (if any) again. `Ok(false)`
/// while it still refuses; a frame that fails otherwise is dropped and the
/// error returned (a full queue is never a silent drop, a broken device
/// is the caller's to count).
pub fn retry_held<D: Device + ?Sized>(
    device: &mut D,
    now: Instant,
    held: &mut Option<Vec<u8>>,
    mut sent: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<bool> {
    let Some(frame) = held.take() else {
        return Ok(true);
    };
    match device.send(now, &frame) {
        Ok(()) => {
            sent(&frame)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            *held = Some(frame);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Writes the host's next frame into `buf` and sends it; a refused frame
/// is kept in `held` to go first next time (call [`retry_held`] first).
pub fn send_next<H: SimHost + ?Sized, D: Device + ?Sized>(
    host: &mut H,
    device: &mut D,
    now: Instant,
    held: &mut Option<Vec<u8>>,
    buf: &mut [u8],
    mut sent: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<TxStep> {
    let Some(len) = host.transmit(now, buf) else {
        return Ok(TxStep::Idle);
    };
    let frame = &buf[..len];
    match device.send(now, frame) {
        Ok(()) => {
            sent(frame)?;
            Ok(TxStep::Sent)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            *held = Some(frame.to_vec());
            Ok(TxStep::Blocked)
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tx {
    /// The host has nothing more to send now.
    Idle,
    /// The batch budget ran out; more may be waiting.
    Budget,
    /// The device refused a frame; it is held in `blocked`.
    Blocked,
}

/// Runs a host on a device; see the module docs.
#[derive(Debug)]
pub struct Driver<D: Device> {
    device: D,
    clock: Clock,
    batch: usize,
    max_wait: Duration,
    rx: PacketBatch,
    tx_buf: Vec<u8>,
    blocked: Option<Vec<u8>>,
    capture: Option<PcapSink>,
    stats: DriverStats,
}

impl<D: Device> Driver<D> {
    /// A driver with a clock starting now.
    pub fn new(device: D) -> Self {
        Self::with_clock(device, Clock::new())
    }

    pub fn with_clock(device: D, clock: Clock) -> Self {
        Driver {
            device,
            clock,
            batch: DEFAULT_BATCH,
            max_wait: DEFAULT_MAX_WAIT,
            rx: PacketBatch::new(),
            tx_buf: vec![0; MAX_FRAME],
            blocked: None,
            capture: None,
            stats: DriverStats::default(),
        }
    }

    /// Frames moved each way per wake-up (at least 1).
    pub fn set_batch(&mut self, n: usize) {
        self.batch = n.max(1);
    }

    /// The longest one wait may last before `until` is asked again
    /// ([`DEFAULT_MAX_WAIT`]); `Duration::MAX` waits for the fd or a deadline only.
    pub fn set_max_wait(&mut self, d: Duration) {
        self.max_wait = d;
    }

    /// Records every frame received from and sent to the device (after any
    /// impairments the device applies).
    pub fn set_capture(&mut self, cap: Option<PcapSink>) {
        self.capture = cap;
    }

    pub fn take_capture(&mut self) -> Option<PcapSink> {
        self.capture.take()
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    pub fn into_device(self) -> D {
        self.device
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The current time on the driver's clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    /// Runs until `until(host)` holds (returns true; it is checked before
    /// every wait), or `timeout` passes (returns false). Device errors other
    /// than `WouldBlock` end the run.
    pub fn run_until<H: SimHost + ?Sized>(
        &mut self,
        host: &mut H,
        timeout: Duration,
        mut until: impl FnMut(&mut H) -> bool,
    ) -> io::Result<bool> {
        let deadline = self.clock.now() + timeout;
        loop {
            if until(host) {
                return Ok(true);
            }
            let now = self.clock.now();
            if now >= deadline {
                return Ok(false);
            }
            let busy = self.turn(host, now)?;
            if until(host) {
                return Ok(true);
            }
            self.wait(host, busy, deadline)?;
        }
    }

    /// Runs for `d`, whatever happens.
    pub fn run_for<H: SimHost + ?Sized>(&mut self, host: &mut H, d: Duration) -> io::Result<()> {
        self.run_until(host, d, |_| false).map(|_| ())
    }

    /// One turn at `now`: receive a batch, service the device, send a
    /// batch. Returns whether work was left over (budget exhausted).
    fn turn<H: SimHost + ?Sized>(&mut self, host: &mut H, now: Instant) -> io::Result<bool> {
        self.stats.turns += 1;
        let capture = &mut self.capture;
        let got = receive_batch(host, &mut self.device, now, &mut self.rx, self.batch, |f| {
            capture.as_mut().map_or(Ok(()), |c| c.write(now, f))
        })?;
        self.stats.rx_frames += got as u64;
        self.device.service(now)?;
        let tx = self.flush(host, now)?;
        Ok(got == self.batch || tx == Tx::Budget)
    }

    fn flush<H: SimHost + ?Sized>(&mut self, host: &mut H, now: Instant) -> io::Result<Tx> {
        let (capture, stats) = (&mut self.capture, &mut self.stats);
        let mut sent = |f: &[u8]| {
            stats.tx_frames += 1;
            capture.as_mut().map_or(Ok(()), |c| c.write(now, f))
        };
        if !retry_held(&mut self.device, now, &mut self.blocked, &mut sent)? {
            self.stats.tx_deferred += 1;
            return Ok(Tx::Blocked);
        }
        for _ in 0..self.batch {
            let step = send_next(
                host,
                &mut self.device,
                now,
                &mut self.blocked,
                &mut self.tx_buf,
                &mut sent,
            )?;
            match step {
                TxStep::Sent => {}
                TxStep::Idle => return Ok(Tx::Idle),
                TxStep::Blocked => {
                    self.stats.tx_deferred += 1;
                    return Ok(Tx::Blocked);
                }
            }
        }
        Ok(Tx::Budget)
    }

    /// Sleeps until the device fd is ready or the next deadline.
    fn wait<H: SimHost + ?Sized>(
        &mut self,
        host: &H,
        busy: bool,
        deadline: Instant,
    ) -> io::Result<()> {
        let now = self.clock.now();
        let blocked = self.blocked.is_some();
        let mut wake = deadline;
        let mut stale = false;
        // While a frame is refused, the host's "send now" deadline is moot:
        // the fd's writability is what we wait for.
        let host_at = if blocked { None } else { host.poll_at() };
        for t in [host_at, self.device.poll_at()].into_iter().flatten() {
            if t <= now {
                stale = true;
            } else {
                wake = wake.min(t);
            }
        }
        let timeout = if busy {
            Duration::ZERO
        } else if stale {
            // A deadline is due but the last turn did all it could: nap
            // briefly rather than spin (the device refused frames).
            STALE_NAP.min(wake - now)
        } else {
            wake - now
        }
        .min(self.max_wait);
        self.stats.waits += 1;
        match self.device.as_raw_fd() {
            Some(fd) => {
                poll_fd(fd, blocked, Some(timeout))?;
            }
            None => std::thread::sleep(timeout.min(NO_FD_NAP)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;
    use ustack_core::{Medium, Stack, StackConfig};

    #[test]
    fn refused_frames_are_kept_and_sent_later_in_order() {
        // Capacity 1: every second frame is refused until the peer reads.
        let (dev, mut peer) = MemDevice::pair(Medium::Ip, 1500, 1);
        let mut driver = Driver::new(dev);
        let mut stack =
            Stack::new(StackConfig::new(Medium::Ip, "10.9.0.1/24".parse().unwrap())).unwrap();
        let s = stack.udp_open();
        for i in 0..5u8 {
            stack
                .udp_send_to(s, &[i; 10], Some("10.9.0.2:9".parse().unwrap()))
                .unwrap();
        }
        let mut got = Vec::new();
        let mut buf = vec![0; 2000];
        for _ in 0..50 {
            driver
                .run_until(&mut stack, Duration::from_millis(2), |_| false)
                .unwrap();
            while let Some(n) = peer.recv(Instant::ZERO, &mut buf).unwrap() {
                got.push(buf[n - 1]);
            }
            if got.len() == 5 {
                break;
            }
        }
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert!(driver.stats().tx_deferred >= 4, "{:?}", driver.stats());
        assert!(driver.device().stats().tx_would_block >= 4);
        assert_eq!(driver.device().stats().tx_frames, 5);
    }

    /// A host that records what it is handed, and how.
    #[derive(Default)]
    struct Log {
        frames: Vec<Vec<u8>>,
        bursts: usize,
    }

    impl SimHost for Log {
        fn receive(&mut self, _: Instant, frame: &[u8]) {
            self.frames.push(frame.to_vec());
        }
        fn receive_burst(
            &mut self,
            now: Instant,
            frames: &mut dyn Iterator<Item = (&[u8], ustack_core::RxMeta)>,
        ) {
            self.bursts += 1;
            for (f, _) in frames {
                self.receive(now, f);
            }
        }
        fn transmit(&mut self, _: Instant, _: &mut [u8]) -> Option<usize> {
            None
        }
        fn poll_at(&self) -> Option<Instant> {
            None
        }
    }

    #[test]
    fn a_batch_goes_to_the_host_as_one_burst_up_to_a_failed_seen() {
        let (mut dev, mut peer) = MemDevice::pair(Medium::Ip, 1500, 8);
        for i in 0..4u8 {
            peer.send(Instant::ZERO, &[i; 30]).unwrap();
        }
        let (mut host, mut rx) = (Log::default(), PacketBatch::new());
        let n = receive_batch(&mut host, &mut dev, Instant::ZERO, &mut rx, 2, |_| Ok(())).unwrap();
        assert_eq!((n, host.bursts), (2, 1));
        assert_eq!(host.frames, [[0u8; 30], [1; 30]]);
        // `seen` fails on the second frame: the first is delivered, the
        // error returned.
        let mut seen = 0;
        let err = receive_batch(&mut host, &mut dev, Instant::ZERO, &mut rx, 8, |_| {
            seen += 1;
            if seen == 2 {
                Err(io::Error::other("capture full"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "capture full");
        assert_eq!(host.frames, [[0u8; 30], [1; 30], [2; 30]]);
    }

    #[test]
    fn until_ends_the_run_and_timeout_is_kept() {
        let (dev, _peer) = MemDevice::pair(Medium::Ip, 1500, 8);
        let mut driver = Driver::new(dev);
        let mut stack =
            Stack::new(StackConfig::new(Medium::Ip, "10.9.0.1/24".parse().unwrap())).unwrap();
        assert!(driver
            .run_until(&mut stack, Duration::from_secs(5), |_| true)
            .unwrap());
        let t0 = std::time::Instant::now();
        assert!(!driver
            .run_until(&mut stack, Duration::from_millis(30), |_| false)
            .unwrap());
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(30) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
