//! Congestion control seam (RFC 5681). The data-transfer work plugs NewReno
//! and CUBIC in here; for now a minimal slow start / congestion avoidance
//! with the RTO response of RFC 5681 §3.1.

use core::fmt;

/// What the sender asks of a congestion controller.
pub trait CongestionControl: fmt::Debug + Send {
    /// Congestion window in bytes.
    fn window(&self) -> u32;
    /// Slow-start threshold in bytes.
    fn ssthresh(&self) -> u32;
    /// `acked` new bytes were acknowledged.
    fn on_ack(&mut self, acked: u32, mss: u32);
    /// The retransmission timer expired with `flight` bytes outstanding.
    fn on_rto(&mut self, flight: u32, mss: u32);
}

/// RFC 5681 slow start and congestion avoidance, no fast recovery.
#[derive(Debug, Clone)]
pub struct SlowStart {
    cwnd: u32,
    ssthresh: u32,
}

impl SlowStart {
    /// Initial window per RFC 6928 (the caller passes 10 × MSS).
    pub fn new(initial: u32) -> SlowStart {
        SlowStart {
            cwnd: initial,
            ssthresh: u32::MAX,
        }
    }
}

impl CongestionControl for SlowStart {
    fn window(&self) -> u32 {
        self.cwnd
    }
    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
    fn on_ack(&mut self, acked: u32, mss: u32) {
        let inc = if self.cwnd < self.ssthresh {
            acked.min(mss)
        } else {
            (mss as u64 * mss as u64 / self.cwnd.max(1) as u64).max(1) as u32
        };
        self.cwnd = self.cwnd.saturating_add(inc);
    }
    fn on_rto(&mut self, flight: u32, mss: u32) {
        self.ssthresh = (flight / 2).max(2 * mss);
        self.cwnd = mss;
    }
}
