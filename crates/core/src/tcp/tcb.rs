//! The transmission control block (RFC 9293 §3.3.1): one connection's
//! state, and its id in the connection table.

use super::buffer::Ring;
use super::cc::{CaState, CongestionControl};
use super::controllers::new_controller;
use super::options::TcpOptions;
use super::rtt::Rtt;
use super::sendq::{PostedQueue, SendQueue};
use super::spans::{OfoRange, Span, Sparse};
use super::state::State;
use crate::config::TcpConfig;
use crate::errno::Errno;
use crate::event::RetransmitCause;
use crate::socket::SocketHandle;
use crate::time::{Duration, Instant};
use std::net::SocketAddr;
use ustack_wire::SeqNumber;

/// Names a TCB; stale ids (after the TCB is freed) resolve to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TcbId {
    pub(super) index: u32,
    pub(super) generation: u32,
}
/// Where a TCB counts in its port's bind bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortClass {
    Live { reuseaddr: bool, reuseport: bool },
    TimeWait,
}
/// Send sequence space (RFC 9293 §3.3.1, Figure 4) and the send queue.
#[derive(Debug)]
pub(crate) struct SendSeq {
    pub iss: SeqNumber,
    pub una: SeqNumber,
    pub nxt: SeqNumber,
    /// Highest sequence number sent (`nxt` goes back on a timeout).
    pub max: SeqNumber,
    pub wnd: u32,
    pub max_wnd: u32,
    pub wl1: SeqNumber,
    pub wl2: SeqNumber,
    pub wscale: u8,
    /// Payload bytes per segment (peer's MSS, our MTU, options).
    pub mss: u16,
    pub q: SendQueue,
    /// Sequence number of the first byte in `q`.
    pub q_front: SeqNumber,
    /// A send found the buffer full; the next freeing ACK wakes the writer.
    pub nospace: bool,
    /// The user has shut the sending side; a FIN follows the data.
    pub fin_queued: bool,
    /// End of the last segment shorter than the MSS we sent (Nagle, Minshall).
    pub sml: SeqNumber,
    /// When data was last sent (restart after idle, RFC 5681 §4.1).
    pub last_send: Instant,
    /// TCP_CORK's ceiling (`Timers::cork`): where the data held ended
    /// when the hold began, and, once the ceiling has come, how far data
    /// may go.
    pub cork_end: SeqNumber,
    pub cork_release: Option<SeqNumber>,
}

/// Receive sequence space (RFC 9293 §3.3.1, Figure 5), the receive queue with its
/// out-of-order ranges, and the ACK policy.
#[derive(Debug)]
pub(crate) struct RecvSeq {
    pub irs: SeqNumber,
    pub nxt: SeqNumber,
    pub wscale: u8,
    /// Right edge of the window we last advertised.
    pub adv: SeqNumber,
    pub mss: u16,
    pub q: Ring,
    /// Buffers the application posted for the next in-order data, in
    /// order. Boxed: one pointer in every TCB instead of a 40-byte queue.
    pub posted: Option<Box<PostedQueue>>,
    pub fin_received: bool,
    pub shut_rd: bool,
    pub ofo: Sparse<OfoRange>,
    /// A FIN that arrived out of order, at this sequence number.
    pub ofo_fin: Option<SeqNumber>,
    pub ofo_stamp: u32,
    /// Bytes received since our last ACK; the largest segment seen.
    pub unacked: u32,
    pub seg_max: u16,
    /// Segments still to ACK at once (quick-ACK mode at the start).
    pub quickack: u32,
    /// RCV.NXT in the last ACK we sent (RFC 7323 §4.3 Last.ACK.sent).
    pub last_ack_sent: SeqNumber,
    /// Receive autotuning: bytes read since, and the receiver's RTT estimate.
    pub copied: usize,
    pub copied_since: Instant,
    pub rtt_us: u32,
}

/// Options the handshake agreed on (RFC 7323, RFC 2018).
#[derive(Debug)]
pub(crate) struct Negotiated {
    pub ws: bool,
    pub sack: bool,
    pub ts: bool,
    pub ts_recent: u32,
    pub ts_offset: u32,
    /// ECN (RFC 3168 §6.1): agreed, and what it owes.
    pub ecn: super::ecn::Ecn,
}

/// Output owed: what the next turn on the ready list must send.
#[derive(Debug)]
pub(crate) struct Owed {
    pub syn: bool,
    pub ack: bool,
    pub probe: bool,
    pub force_probe: bool,
    pub in_ready: bool,
}

/// Timers (RFC 6298 retransmission with its backoff, RFC 9293 TIME_WAIT and
/// FIN_WAIT_2, RFC 1122 keepalive, delayed ACK, tail loss probe, TCP_CORK)
/// and what they count.
#[derive(Debug)]
pub(crate) struct Timers {
    pub backoff: u32,
    pub retries: u32,
    pub rexmit: Option<Instant>,
    /// TIME_WAIT end or orphaned FIN_WAIT_2 timeout.
    pub linger: Option<Instant>,
    pub keepalive: Option<Instant>,
    pub probes_out: u32,
    pub last_rcv: Instant,
    /// When the oldest unacknowledged data was sent (user timeout).
    pub una_since: Instant,
    pub last_oow_ack: Option<Instant>,
    /// The deadline of this TCB's live heap entry.
    pub sched: Option<Instant>,
    pub delack: Option<Instant>,
    /// Tail loss probe (RFC 8985 §7): its timer, one owed now, one out.
    pub tlp: Option<Instant>,
    /// TCP_CORK's ceiling (Linux, tcp(7)): while the cork holds a partial
    /// segment, when it goes anyway and where the data held then ended;
    /// once that time has come, data up to `snd.cork_release` may go.
    pub cork: Option<Instant>,
}

/// Congestion control (RFC 5681) and loss recovery: the SACK scoreboard
/// (RFC 6675), NewReno (RFC 6582), RACK and TLP (RFC 8985).
#[derive(Debug)]
pub(crate) struct Congestion {
    pub cc: Box<dyn CongestionControl>,
    pub ca: CaState,
    pub sacked: Sparse<Span>,
    pub dupacks: u32,
    /// This recovery is SACK-based (RFC 6675), not NewReno (RFC 6582).
    pub rec_sack: bool,
    /// SND.MAX when recovery began (RFC 6582 `recover`, RFC 6675 RecoveryPoint).
    pub recover: SeqNumber,
    /// NewReno's inflated window during recovery.
    pub rec_cwnd: u32,
    /// Highest sequence retransmitted in this recovery (RFC 6675 HighRxt).
    pub high_rxt: SeqNumber,
    /// Retransmit the first unacknowledged segment now, whatever the window.
    pub rtx_now: bool,
    /// SND.MAX when the latest recovery retransmission went out.
    pub rtx_fence: SeqNumber,
    pub tlp_pending: bool,
    pub tlp_out: bool,
    /// RACK (RFC 8985 §6): per-segment send times and marks, and the
    /// reordering timer; made on the first data sent with SACK on.
    pub rack: Option<Box<super::rack::Rack>>,
    /// Whether RACK's reordering timer is armed (so `deadline` need not
    /// look into the box on every segment).
    pub rack_timer: bool,
    /// What started the current recovery (for the trace's retransmissions).
    pub trigger: RetransmitCause,
    /// Pacing and delivery-rate sampling (`pacing.rs`, `rate.rs`): made
    /// on the first send of a connection that paces or samples.
    pub paced: Option<Box<super::pacing::Paced>>,
    /// Whether the pacing timer is armed (as `rack_timer`).
    pub pace_timer: bool,
    /// SND.MAX when the sender was last seen to fill cwnd: ACKs up to it
    /// grow cwnd (RFC 7661 §4.1; Linux `cwnd_usage_seq`).
    pub cwnd_full_until: SeqNumber,
}

/// A transmission control block (RFC 9293 §3.3.1).
#[derive(Debug)]
pub(crate) struct Tcb {
    pub state: State,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// The user's handle; `None` once closed (orphaned) or before accept.
    pub socket: Option<SocketHandle>,
    /// The listener a passive connection belongs to until accepted.
    pub listener: Option<SocketHandle>,
    pub in_accept_queue: bool,
    pub opts: TcpOptions,
    pub port_class: PortClass,
    pub snd: SendSeq,
    pub rcv: RecvSeq,
    pub neg: Negotiated,
    pub owed: Owed,
    pub timer: Timers,
    pub cong: Congestion,
    pub rtt: Rtt,
    pub total_retrans: u64,
    /// Last ICMP error (RFC 1122 §4.2.3.9), reported if the connection times out.
    pub soft_error: Option<Errno>,
    /// What path MTU discovery changed of the send MSS.
    pub pmtu: PathMtu,
}
impl Tcb {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: &TcpConfig,
        state: State,
        local: SocketAddr,
        remote: SocketAddr,
        iss: SeqNumber,
        opts: TcpOptions,
        mtu_mss: u16,
        now: Instant,
        ts_offset: u32,
    ) -> Tcb {
        let rcv_mss = opts.maxseg.map_or(mtu_mss, |m| m.min(mtu_mss)).max(8);
        // The scale must cover what autotuning may grow the buffer to.
        let rcv_wscale = if !cfg.window_scaling {
            0
        } else if opts.rcvbuf_locked {
            window_scale_for(opts.rcvbuf)
        } else {
            window_scale_for(opts.rcvbuf.max(cfg.max_rcvbuf))
        };
        Tcb {
            state,
            local,
            remote,
            socket: None,
            listener: None,
            in_accept_queue: false,
            port_class: PortClass::Live {
                reuseaddr: opts.reuseaddr,
                reuseport: opts.reuseport,
            },
            rtt: Rtt::new(cfg.rto_initial),
            total_retrans: 0,
            soft_error: None,
            pmtu: Default::default(),
            snd: SendSeq {
                iss,
                una: iss,
                nxt: iss,
                max: iss,
                wnd: 0,
                max_wnd: 0,
                wl1: SeqNumber(0),
                wl2: iss,
                wscale: 0,
                mss: 536,
                q: SendQueue::new(opts.sndbuf),
                q_front: iss + 1,
                nospace: false,
                fin_queued: false,
                last_send: now,
                sml: iss,
                cork_end: SeqNumber(0),
                cork_release: None,
            },
            rcv: RecvSeq {
                irs: SeqNumber(0),
                nxt: SeqNumber(0),
                wscale: rcv_wscale,
                adv: SeqNumber(0),
                mss: rcv_mss,
                q: Ring::new(opts.rcvbuf),
                posted: None,
                fin_received: false,
                shut_rd: false,
                ofo: Sparse::default(),
                ofo_fin: None,
                ofo_stamp: 0,
                unacked: 0,
                seg_max: 536,
                quickack: cfg.quickack_segments,
                last_ack_sent: SeqNumber(0),
                copied: 0,
                copied_since: now,
                rtt_us: 0,
            },
            neg: Negotiated {
                ws: false,
                sack: false,
                ts: false,
                ts_recent: 0,
                ts_offset,
                ecn: super::ecn::Ecn::new(iss),
            },
            owed: Owed {
                syn: false,
                ack: false,
                probe: false,
                force_probe: false,
                in_ready: false,
            },
            timer: Timers {
                backoff: 0,
                retries: 0,
                rexmit: None,
                linger: None,
                keepalive: None,
                probes_out: 0,
                last_rcv: now,
                una_since: now,
                last_oow_ack: None,
                sched: None,
                delack: None,
                tlp: None,
                cork: None,
            },
            cong: Congestion {
                cc: new_controller(opts.congestion, 536, cfg.initial_window, cfg.hystart),
                sacked: Sparse::default(),
                dupacks: 0,
                ca: CaState::Open,
                rec_sack: false,
                recover: iss,
                rec_cwnd: 0,
                high_rxt: iss,
                rtx_now: false,
                rtx_fence: iss,
                tlp_pending: false,
                tlp_out: false,
                rack: None,
                rack_timer: false,
                trigger: RetransmitCause::FastRetransmit,
                paced: None,
                pace_timer: false,
                cwnd_full_until: iss,
            },
            opts,
        }
    }

    /// Sequence number of the first byte in the send buffer.
    pub fn sndq_seq(&self) -> SeqNumber {
        self.snd.q_front
    }

    /// Sequence number just past the queued data (where a FIN goes).
    pub fn data_end(&self) -> SeqNumber {
        self.sndq_seq() + self.snd.q.len()
    }

    /// Whether our FIN has been acknowledged.
    pub fn fin_acked(&self) -> bool {
        self.snd.fin_queued && self.snd.una.diff(self.data_end()) > 0
    }

    /// Bytes of receive window we can offer: the ring's free space only.
    /// Room in posted buffers is not added (as Linux offers its rcvbuf,
    /// not the reader's iovec): a posted buffer may be cancelled or fill
    /// up at any time, and what was offered must still be accepted then
    /// (RFC 9293 §3.8.6.2.2). Bytes placed there count as read for
    /// autotuning instead, which grows the ring (`rcv_space_adjust`).
    pub fn rcv_space(&self) -> usize {
        self.rcv.q.free()
    }

    /// The current RTO with exponential backoff (RFC 6298 §5.5).
    pub fn current_rto(&self, cfg: &TcpConfig) -> Duration {
        let base = Duration::from_micros(self.rtt.rto);
        let shifted = base.saturating_mul(1u32 << self.timer.backoff.min(20));
        shifted.min(cfg.rto_max)
    }

    /// `now + current_rto(cfg)`, in integer microseconds: set on every
    /// segment sent and every ACK, where the `Duration` arithmetic showed.
    pub(crate) fn rto_deadline(&self, now: Instant, cfg: &TcpConfig) -> Instant {
        let max = u64::try_from(cfg.rto_max.as_micros()).unwrap_or(u64::MAX);
        let rto = self
            .rtt
            .rto
            .saturating_mul(1u64 << self.timer.backoff.min(20))
            .min(max);
        Instant::from_micros(now.total_micros().saturating_add(rto))
    }

    /// Unsent payload bytes past SND.NXT.
    pub fn unsent(&self) -> usize {
        self.data_end().diff(self.snd.nxt).max(0) as usize
    }

    /// Whether the next call to `next_segment` would produce something.
    pub fn wants_output(&self) -> bool {
        match self.state {
            State::Closed | State::Listen | State::TimeWait => self.owed.ack,
            State::SynSent | State::SynReceived => self.owed.syn,
            _ => self.owed.ack || self.owed.probe || self.choose_send().is_some(),
        }
    }

    /// With data waiting, nothing in flight and nothing we may send (a
    /// closed or silly window), probe on the RTO (the persist timer,
    /// RFC 9293 §3.8.6.1).
    #[inline(always)]
    pub fn maybe_arm_persist(&mut self, now: Instant, cfg: &TcpConfig) {
        if self.unsent() > 0
            && self.snd.una == self.snd.max
            && self.timer.rexmit.is_none()
            && self.choose_send().is_none()
        {
            self.timer.rexmit = Some(self.rto_deadline(now, cfg));
        }
    }

    /// Earliest of this TCB's timers.
    pub fn deadline(&self) -> Option<Instant> {
        // Pairwise, not through an array: this runs for every segment, and
        // the array's stores and reloads cost more than the comparisons.
        let min = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, None) => x,
            (None, y) => y,
        };
        let d = min(
            min(min(self.timer.rexmit, self.timer.tlp), self.timer.linger),
            min(
                min(self.timer.keepalive, self.timer.delack),
                self.timer.cork,
            ),
        );
        let d = if self.cong.rack_timer {
            min(d, self.cong.rack.as_deref().and_then(|r| r.timer))
        } else {
            d
        };
        if self.cong.pace_timer {
            min(d, self.cong.paced.as_deref().and_then(|p| p.timer))
        } else {
            d
        }
    }

    /// The keepalive deadline per the socket options (RFC 1122 §4.2.3.6).
    pub fn keepalive_deadline(&self) -> Option<Instant> {
        if !self.opts.keepalive
            || !matches!(
                self.state,
                State::Established | State::CloseWait | State::FinWait2
            )
        {
            return None;
        }
        Some(self.timer.last_rcv + self.opts.keep_idle)
    }
}
/// How long TCP_CORK holds partial data at most (Linux, tcp(7)).
pub(crate) const CORK_CEILING: Duration = Duration::from_millis(200);
/// The smallest shift that lets a 16-bit window cover `rcvbuf` (RFC 7323 §2.2).
pub(crate) fn window_scale_for(rcvbuf: usize) -> u8 {
    let mut shift = 0u8;
    while shift < ustack_wire::tcp::MAX_WINDOW_SCALE && (65535usize << shift) < rcvbuf {
        shift += 1;
    }
    shift
}
#[cfg(test)]
mod size_tests {
    #[test]
    fn tcb_stays_small() {
        // Half-open and idle connections hold no buffer memory, so this is
        // most of what 100 000 connections cost (plus the boxed controller).
        // 712 since TCP_CORK's ceiling and RACK's (boxed) state; 736 since
        // the fields are grouped by concern (each group pads on its own);
        // 800 since the addresses are IPv6-sized (`SocketAddr`, 32 bytes
        // each) beside the path MTU state; 824 since pacing (its boxed
        // state, and SO_MAX_PACING_RATE among the options); 832 since ECN;
        // 848 since zero-copy sends and posted receives (a pointer each,
        // boxed); 776 since an `Option<Instant>` is 8 bytes (issue 19);
        // 696 since the rings are 32 bytes (a boxed slice, 32-bit
        // offsets) and the SACK scoreboard and out-of-order queue are a
        // pointer each while empty (`Sparse`).
        // The TCB is boxed in the table; `tests/conn_memory.rs` in the
        // bench crate counts the whole per-connection heap.
        let size = core::mem::size_of::<super::Tcb>();
        assert!(size <= 696, "Tcb is {size} bytes");
    }

    #[test]
    fn a_connected_socket_is_small() {
        // The socket slab's box per socket: connected, the TCB holds the
        // addresses and options (224 bytes before issue 19's item 4).
        let size = core::mem::size_of::<crate::tcp::table::TcpSocket>();
        assert!(size <= 32, "TcpSocket is {size} bytes");
        let ring = core::mem::size_of::<super::Ring>();
        assert!(ring <= 32, "Ring is {ring} bytes");
    }
}

/// What path MTU discovery did to one connection's send MSS.
#[derive(Debug, Default)]
pub(crate) struct PathMtu {
    /// The send MSS the handshake agreed on; 0 until first changed here.
    pub(super) mss_max: u16,
    /// The path MTU applied last; 0 for the link's.
    pub(super) pmtu: u16,
    /// Black-hole detection's ceiling on the MSS; 0 for none.
    pub(super) probe_mss: u16,
}
