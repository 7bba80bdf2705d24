//! The per-segment trace events of a connection ([`StackConfig::trace`](crate::StackConfig::trace)):
//! built here from the TCB, pushed where the change happens.

use super::cc::CaState;
use super::data::SendKind;
use super::tcb::Tcb;
use crate::cx::Cx;
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

    #[cold]
    #[inline(never)]
    pub(crate) fn trace_rtt(&self, cx: &mut Cx<'_>, rtt: Duration) {
        cx.event(self.rtt_event(rtt));
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn trace_window(&self, cx: &mut Cx<'_>, wnd: u32) {
        cx.event(self.window_event(wnd));
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

    /// Records `len` bytes from `seq` sent again as `kind`: a repair has
    /// the cause that started the recovery. Out of line: the send path
    /// stays small when tracing is off.
    #[cold]
    #[inline(never)]
    pub(crate) fn trace_retransmit(
        &self,
        cx: &mut Cx<'_>,
        seq: SeqNumber,
        len: usize,
        kind: SendKind,
    ) {
        let cause = match kind {
            _ if self.cong.tlp_pending => RetransmitCause::Tlp,
            SendKind::Resend => RetransmitCause::Rto,
            _ if self.cong.ca == CaState::Recovery => self.cong.trigger,
            _ => RetransmitCause::FastRetransmit,
        };
        cx.event(self.retransmit_event(seq, len, cause));
    }

    /// Records an event built from the TCB, out of line (see above).
    #[cold]
    #[inline(never)]
    pub(crate) fn trace(&self, cx: &mut Cx<'_>, f: fn(&Tcb) -> EventKind) {
        cx.event(f(self));
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
