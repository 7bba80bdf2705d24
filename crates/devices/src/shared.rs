//! A [`MemLink`] shared between threads: each port is a real-time
//! [`Device`] whose fd becomes readable when a peer sends, so runtimes on
//! different threads can talk over one in-memory link, with its seeded
//! impairments, in real time.

use crate::device::{Clock, Device, DeviceStats};
use crate::memlink::{Impairments, LinkStats, MemLink, PortId};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex, MutexGuard};
use ustack_core::time::Instant;
use ustack_core::Medium;

struct Inner {
    link: MemLink,
    /// The sending side of each port's wake socket, and whether a wake-up
    /// byte is pending in it: a sender writes one only if none is, so a
    /// burst of frames costs one write(2), and a receiver drains only
    /// after a recv found the queue empty with one pending.
    wakers: Vec<(UnixDatagram, bool)>,
}

/// An in-memory link for real-time runtimes; see the module docs.
#[derive(Clone)]
pub struct SharedLink {
    inner: Arc<Mutex<Inner>>,
    clock: Clock,
}

impl SharedLink {
    pub fn new(seed: u64, imp: Impairments) -> SharedLink {
        let mut link = MemLink::new(seed);
        link.set_impairments(imp);
        SharedLink {
            inner: Arc::new(Mutex::new(Inner {
                link,
                wakers: Vec::new(),
            })),
            clock: Clock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The clock every port's `now` must come from (the link's time base).
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// A new port on the link.
    pub fn port(&self, medium: Medium, mtu: usize) -> io::Result<LinkPort> {
        let (tx, rx) = UnixDatagram::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        let mut inner = self.lock();
        let port = inner.link.add_port();
        inner.wakers.push((tx, false));
        Ok(LinkPort {
            link: self.clone(),
            port,
            wake: rx,
            medium,
            mtu,
            stats: DeviceStats::default(),
        })
    }

    pub fn stats(&self) -> LinkStats {
        self.lock().link.stats()
    }
}

/// One port of a [`SharedLink`].
pub struct LinkPort {
    link: SharedLink,
    port: PortId,
    wake: UnixDatagram,
    medium: Medium,
    mtu: usize,
    stats: DeviceStats,
}

impl Device for LinkPort {
    fn medium(&self) -> Medium {
        self.medium
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut copy = |f: &[u8]| {
            let n = f.len().min(buf.len());
            buf[..n].copy_from_slice(&f[..n]);
            n
        };
        let mut inner = self.link.lock();
        let mut got = inner.link.recv_with(now, self.port, &mut copy);
        if got.is_none() && inner.wakers[self.port.0].1 {
            // Queue empty: consume the wake-up, so the fd polls readable
            // again only for a later frame, whose sender sees no byte
            // pending and writes one. Then look once more, for a frame
            // queued between the look and the drain (its byte may be the
            // one drained).
            inner.wakers[self.port.0].1 = false;
            drop(inner);
            let mut drain = [0u8; 8];
            let _ = self.wake.recv(&mut drain);
            inner = self.link.lock();
            got = inner.link.recv_with(now, self.port, &mut copy);
        }
        drop(inner);
        if let Some(n) = got {
            self.stats.rx_frames += 1;
            self.stats.rx_bytes += n as u64;
        }
        Ok(got)
    }

    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        if frame.len() > self.max_frame_len() {
            self.stats.tx_errors += 1;
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes exceeds the link's {}",
                    frame.len(),
                    self.max_frame_len()
                ),
            ));
        }
        let inner = &mut *self.link.lock();
        inner.link.send(now, self.port, frame);
        for (i, (w, pending)) in inner.wakers.iter_mut().enumerate() {
            if i != self.port.0 && !*pending {
                *pending = true;
                // A full wake socket already means "wake up": ignore WouldBlock.
                let _ = w.send(&[1]);
            }
        }
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        Ok(())
    }

    fn poll_at(&self) -> Option<Instant> {
        self.link.lock().link.poll_at_port(self.port)
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.wake.as_raw_fd())
    }

    fn stats(&self) -> DeviceStats {
        self.stats
    }
}
