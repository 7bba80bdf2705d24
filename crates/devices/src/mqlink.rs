//! A multiqueue in-memory link between two hosts, each end with its own
//! number of queues, each queue a [`Device`] for one stack: a wire between
//! two NICs with receive-side scaling. A frame sent on any queue of one
//! end goes to the queue of the other end that its flow hashes to
//! ([`crate::rss`], symmetric): a flow's frames take the same queue index
//! in both directions, and a stack that sends a flow on its own queue
//! (with as many queues at both ends) gets the replies there.
//!
//! Each receive queue has its own lock and its own wake socket, touched
//! only by the stacks that send to it and the one that reads it: stacks
//! whose flows stay on their lane share nothing. A queue holds at most
//! `queue_limit` frames; a frame beyond is dropped and counted, as a NIC's
//! full ring drops (TCP retransmits it). Real time, no impairments.

use crate::device::{Device, DeviceStats};
use crate::rss;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use ustack_core::time::Instant;
use ustack_core::Medium;

/// Default frames a queue holds.
pub const DEFAULT_QUEUE_FRAMES: usize = 4096;

/// One receive queue: frames in, a wake socket to say so. Aligned to two
/// cache lines so that queues of different lanes never share one.
#[repr(align(128))]
struct RxQueue {
    frames: Mutex<VecDeque<Vec<u8>>>,
    limit: usize,
    wake_tx: UnixDatagram,
    /// Frames dropped because the queue was full.
    dropped: AtomicU64,
    /// Frames delivered here.
    delivered: AtomicU64,
}

impl RxQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Vec<u8>>> {
        self.frames.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counters of one queue, as seen from its receiving side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub delivered: u64,
    pub dropped: u64,
}

/// Reads one queue's [`QueueStats`]; see [`MqQueue::counters`].
#[derive(Clone)]
pub struct QueueCounters(Arc<RxQueue>);

impl QueueCounters {
    pub fn get(&self) -> QueueStats {
        QueueStats {
            delivered: self.0.delivered.load(Ordering::Relaxed),
            dropped: self.0.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Builds the two ends; see the module docs.
pub struct MqLink;

impl MqLink {
    /// A link with `a` queues at one end and `b` at the other, each queue
    /// holding at most `queue_limit` frames (0: [`DEFAULT_QUEUE_FRAMES`]).
    pub fn pair(
        medium: Medium,
        mtu: usize,
        a: usize,
        b: usize,
        queue_limit: usize,
    ) -> io::Result<(Vec<MqQueue>, Vec<MqQueue>)> {
        let limit = if queue_limit == 0 {
            DEFAULT_QUEUE_FRAMES
        } else {
            queue_limit
        };
        let end = |n: usize| -> io::Result<(Vec<Arc<RxQueue>>, Vec<UnixDatagram>)> {
            let mut qs = Vec::new();
            let mut rxs = Vec::new();
            for _ in 0..n.max(1) {
                let (tx, rx) = UnixDatagram::pair()?;
                tx.set_nonblocking(true)?;
                rx.set_nonblocking(true)?;
                qs.push(Arc::new(RxQueue {
                    frames: Mutex::new(VecDeque::new()),
                    limit,
                    wake_tx: tx,
                    dropped: AtomicU64::new(0),
                    delivered: AtomicU64::new(0),
                }));
                rxs.push(rx);
            }
            Ok((qs, rxs))
        };
        let (qa, wa) = end(a)?;
        let (qb, wb) = end(b)?;
        let qa: Arc<[Arc<RxQueue>]> = qa.into();
        let qb: Arc<[Arc<RxQueue>]> = qb.into();
        let make = |own: &Arc<[Arc<RxQueue>]>, peer: &Arc<[Arc<RxQueue>]>, wakes| {
            let wakes: Vec<UnixDatagram> = wakes;
            wakes
                .into_iter()
                .enumerate()
                .map(|(i, wake)| MqQueue {
                    index: i,
                    own: own[i].clone(),
                    peer: peer.clone(),
                    wake,
                    medium,
                    mtu,
                    stats: DeviceStats::default(),
                })
                .collect::<Vec<_>>()
        };
        Ok((make(&qa, &qb, wa), make(&qb, &qa, wb)))
    }
}

/// One queue of one end of an [`MqLink`]: the device of one stack.
pub struct MqQueue {
    index: usize,
    own: Arc<RxQueue>,
    /// The other end's receive queues.
    peer: Arc<[Arc<RxQueue>]>,
    wake: UnixDatagram,
    medium: Medium,
    mtu: usize,
    stats: DeviceStats,
}

impl MqQueue {
    /// This queue's index at its end.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Frames delivered to and dropped at this queue.
    pub fn queue_stats(&self) -> QueueStats {
        self.counters().get()
    }

    /// A handle on this queue's counters that stays readable once the
    /// queue is handed to a runtime.
    pub fn counters(&self) -> QueueCounters {
        QueueCounters(self.own.clone())
    }

    /// Takes one frame, or learns that none is waiting (then a later
    /// delivery wakes the fd: the wake socket is drained before the
    /// queue is looked at a second time).
    fn pop(&mut self) -> Option<Vec<u8>> {
        if let Some(f) = self.own.lock().pop_front() {
            return Some(f);
        }
        let mut drain = [0u8; 64];
        while self.wake.recv(&mut drain).is_ok() {}
        self.own.lock().pop_front()
    }
}

impl Device for MqQueue {
    fn medium(&self) -> Medium {
        self.medium
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(f) = self.pop() else {
            return Ok(None);
        };
        let n = f.len().min(buf.len());
        buf[..n].copy_from_slice(&f[..n]);
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += n as u64;
        Ok(Some(n))
    }

    fn send(&mut self, _now: Instant, frame: &[u8]) -> io::Result<()> {
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
        let q = &self.peer[rss::frame_queue(self.medium, frame, self.peer.len())];
        self.stats.tx_frames += 1;
        self.stats.tx_bytes += frame.len() as u64;
        let was_empty = {
            let mut frames = q.lock();
            if frames.len() >= q.limit {
                drop(frames);
                q.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            frames.push_back(frame.to_vec());
            frames.len() == 1
        };
        q.delivered.fetch_add(1, Ordering::Relaxed);
        if was_empty {
            // A full wake socket already means "wake up".
            let _ = q.wake_tx.send(&[1]);
        }
        Ok(())
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.wake.as_raw_fd())
    }

    fn stats(&self) -> DeviceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
        let mut f = vec![0u8; 40];
        f[0] = 0x45;
        f[9] = 6;
        f[12..16].copy_from_slice(&src);
        f[16..20].copy_from_slice(&dst);
        f[20..22].copy_from_slice(&sp.to_be_bytes());
        f[22..24].copy_from_slice(&dp.to_be_bytes());
        f
    }

    #[test]
    fn a_flow_takes_one_queue_index_both_ways_and_full_queues_drop() {
        let (mut a, mut b) = MqLink::pair(Medium::Ip, 1500, 2, 2, 3).unwrap();
        let now = Instant::ZERO;
        let mut buf = [0u8; 1500];
        for sp in 40000..40040u16 {
            let out = tcp([10, 0, 0, 1], sp, [10, 0, 0, 2], 80);
            a[0].send(now, &out).unwrap();
            let got: Vec<usize> = (0..2)
                .filter(|&i| b[i].recv(now, &mut buf).unwrap().is_some())
                .collect();
            assert_eq!(got.len(), 1);
            let back = tcp([10, 0, 0, 2], 80, [10, 0, 0, 1], sp);
            b[got[0]].send(now, &back).unwrap();
            assert!(a[got[0]].recv(now, &mut buf).unwrap().is_some(), "{sp}");
            assert!(a[1 - got[0]].recv(now, &mut buf).unwrap().is_none());
        }
        let f = tcp([10, 0, 0, 1], 1, [10, 0, 0, 2], 80);
        let q = rss::frame_queue(Medium::Ip, &f, 2);
        for _ in 0..5 {
            a[0].send(now, &f).unwrap();
        }
        assert_eq!(b[q].queue_stats().dropped, 2);
        let n = (0..5)
            .filter(|_| b[q].recv(now, &mut buf).unwrap().is_some())
            .count();
        assert_eq!(n, 3);
    }
}
