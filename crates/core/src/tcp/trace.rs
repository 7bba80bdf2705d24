//! The per-segment trace events of a connection ([`StackConfig::trace`](crate::StackConfig::trace)):
//! built here from the TCB, pushed where the change happens.

use super::tcb::Tcb;
use crate::event::{EventKind, RetransmitCause};
use crate::time::Duration;
use ustack_wire::SeqNumber;

impl Tcb {
    /// cwnd, ssthresh (RFC 5681 §3) and the pipe (RFC 6675 §2) now.
    pub(crate) fn cwnd_event(&self) -> EventKind {
        EventKind::TcpCwnd {
            local: self.local,
            remote: self.remote,
            cwnd: self.cong.cc.window(),
            ssthresh: self.cong.cc.ssthresh(),
            in_flight: self.pipe(),
        }
    }

    /// The sample just taken and the estimator after it (RFC 6298 §2).
    pub(crate) fn rtt_event(&self, rtt: Duration) -> EventKind {
        EventKind::TcpRtt {
            local: self.local,
            remote: self.remote,
            rtt,
            srtt: self.rtt.srtt(),
            rto: Duration::from_micros(self.rtt.rto),
        }
    }

    /// SND.UNA and the new SND.WND.
    pub(crate) fn window_event(&self, wnd: u32) -> EventKind {
        EventKind::TcpWindow {
            local: self.local,
            remote: self.remote,
            una: self.snd.una.0,
            wnd,
        }
    }

    /// `len` bytes from `seq` sent again for `cause`.
    pub(crate) fn retransmit_event(
        &self,
        seq: SeqNumber,
        len: usize,
        cause: RetransmitCause,
    ) -> EventKind {
        EventKind::TcpRetransmit {
            local: self.local,
            remote: self.remote,
            seq: seq.0,
            len: len as u32,
            cause,
        }
    }
}
