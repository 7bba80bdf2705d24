//! TCP (RFC 9293): connection state machine, listeners, timers, buffers.
//!
//! Layout: TCBs live in a slab owned by the stack's TCP state and are found by
//! their 4-tuple in a hash map (the protocol is implied: this is the TCP
//! table). A socket handle points at its TCB; the TCB outlives the handle
//! after `close` until its state machine finishes (FIN_WAIT, TIME_WAIT).
//!
//! Timers are deadlines kept in a min-heap of `(deadline, tcb, generation)`
//! with lazy invalidation: a TCB remembers the one heap entry that is live
//! for it, a later deadline is noticed when the entry fires, an earlier one
//! pushes a new entry. Output is pulled: TCBs that owe a segment sit on a
//! ready list and `Stack::transmit` writes their next segment straight
//! into the caller's buffer. RSTs without a TCB and SYN cookies go through
//! a small bounded control queue.
//!
//! Decisions worth knowing:
//! - Ethernet with an unresolved next hop: the segment is copied onto the
//!   ARP queue like any datagram; if resolution fails the RTO resends it.
//! - Listen queues as Linux: the accept queue holds at most `backlog`
//!   (Linux allows one more), the SYN queue at most `max_syn_backlog`;
//!   beyond it SYN cookies (RFC 4987) carry only the MSS, so cookie
//!   connections have no window scaling, SACK or timestamps.
//! - `tcp_connect` returns EINPROGRESS like a non-blocking connect.
//! - SO_LINGER with a non-zero timeout cannot block a sans-IO `close`: it
//!   behaves like a normal close. Zero aborts with RST.
//! - A SYN with a higher sequence number ends a TIME_WAIT (RFC 6191 style).
//! - ISNs and cookies are keyed by secrets drawn from the stack's seeded
//!   RNG: random per seed, reproducible per run.
//!
//! Data transfer (`data.rs`): out-of-order data is written straight into
//! the receive ring past RCV.NXT and SACKed (RFC 2018); the sender keeps a
//! SACK scoreboard and recovers per RFC 6675, with RACK's time-based loss
//! detection (`rack.rs`, RFC 8985 §6) and the tail loss probe, or NewReno
//! (RFC 6582) without SACK; congestion control is a trait (`cc.rs`:
//! NewReno, CUBIC).
//! Delayed ACK, Nagle, SWS avoidance, PAWS and buffer autotuning as Linux
//! does them. Not here: path MTU discovery, ECN, pacing.

mod api;
mod buffer;
mod cc;
mod data;
mod input;
mod output;
mod rack;
mod secret;
mod timer;

pub use api::{Shutdown, SocketRow, TcpInfo};
pub use buffer::Ring;
pub use cc::{new_controller, CongestionControl, Cubic, NewReno};
pub(crate) use data::{CaState, OfoRange, Span};
pub(crate) use output::TcpTx;

use crate::config::TcpConfig;
use crate::errno::Errno;
use crate::ratelimit::TokenBucket;
use crate::rng::Rng;
use crate::socket::{Slab, SocketHandle};
use crate::time::{Duration, Instant};
use core::fmt;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddrV4;
use ustack_wire::SeqNumber;

/// Connection states (RFC 9293 §3.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Closed,
    Listen,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl State {
    /// The name `ss` prints.
    pub fn ss_name(self) -> &'static str {
        match self {
            State::Closed => "CLOSE",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECV",
            State::Established => "ESTAB",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        }
    }

    /// Whether a SYN has been exchanged both ways (RFC 9293 §3.3.2).
    pub fn synchronized(self) -> bool {
        !matches!(
            self,
            State::Closed | State::Listen | State::SynSent | State::SynReceived
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ss_name())
    }
}

/// Names a TCB; stale ids (after the TCB is freed) resolve to nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TcbId {
    index: u32,
    generation: u32,
}

/// A TCP socket's options (setsockopt/getsockopt), copied into its TCB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpOptions {
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub keepalive: bool,
    pub keep_idle: Duration,
    pub keep_intvl: Duration,
    pub keep_cnt: u32,
    /// SO_LINGER: `Some(0)` aborts with RST on close.
    pub linger: Option<Duration>,
    pub sndbuf: usize,
    pub rcvbuf: usize,
    /// TCP_MAXSEG: clamps the MSS we announce and use.
    pub maxseg: Option<u16>,
    /// TCP_USER_TIMEOUT (RFC 5482).
    pub user_timeout: Option<Duration>,
    /// TCP_NODELAY: turns Nagle's algorithm (RFC 896) off.
    pub nodelay: bool,
    /// TCP_CORK: hold partial segments until uncorked, a FIN, or 200 ms
    /// (`CORK_CEILING`, as Linux).
    pub cork: bool,
    /// SO_RCVBUF / SO_SNDBUF was set: that buffer is not autotuned.
    pub rcvbuf_locked: bool,
    pub sndbuf_locked: bool,
    /// TCP_CONGESTION.
    pub congestion: crate::config::Congestion,
}

impl TcpOptions {
    /// The defaults a new socket gets from the stack's configuration.
    pub fn new(cfg: &TcpConfig) -> TcpOptions {
        TcpOptions {
            reuseaddr: false,
            reuseport: false,
            keepalive: false,
            keep_idle: cfg.keepalive_time,
            keep_intvl: cfg.keepalive_intvl,
            keep_cnt: cfg.keepalive_probes,
            linger: None,
            sndbuf: cfg.sndbuf,
            rcvbuf: cfg.rcvbuf,
            maxseg: None,
            user_timeout: None,
            nodelay: false,
            cork: false,
            rcvbuf_locked: false,
            sndbuf_locked: false,
            congestion: cfg.congestion,
        }
    }
}

/// RFC 6298 round-trip estimator, in microseconds. SRTT is kept times 8
/// and RTTVAR times 4 (as BSD and Linux do), so the 1/8 and 1/4 gains do
/// not truncate small RTTs to zero.
#[derive(Debug, Clone)]
pub(crate) struct Rtt {
    pub srtt8: u64,
    pub rttvar4: u64,
    pub rto: u64,
    pub have_sample: bool,
    /// The segment being timed (Karn: never a retransmitted one).
    pub timing: Option<(SeqNumber, Instant)>,
}

impl Rtt {
    fn new(initial: Duration) -> Rtt {
        Rtt {
            srtt8: 0,
            rttvar4: 0,
            rto: initial.as_micros() as u64,
            have_sample: false,
            timing: None,
        }
    }

    pub fn srtt(&self) -> Duration {
        Duration::from_micros(self.srtt8 / 8)
    }

    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar4 / 4)
    }

    /// RFC 6298 §2.2/§2.3, clock granularity 1 ms, clamped to [min, max].
    pub fn sample(&mut self, r: Duration, min: Duration, max: Duration) {
        let r = u64::try_from(r.as_micros()).unwrap_or(u64::MAX / 16);
        if !self.have_sample {
            // SRTT = R, RTTVAR = R/2.
            self.srtt8 = r.saturating_mul(8);
            self.rttvar4 = r.saturating_mul(2);
            self.have_sample = true;
        } else {
            // RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|; SRTT = 7/8 SRTT + 1/8 R.
            let err = (self.srtt8 / 8).abs_diff(r);
            self.rttvar4 = self.rttvar4 - self.rttvar4 / 4 + err;
            self.srtt8 = self.srtt8 - self.srtt8 / 8 + r;
        }
        // RTO = SRTT + max(G, 4 RTTVAR).
        let rto = self.srtt8 / 8 + self.rttvar4.max(1000);
        self.rto = rto.clamp(min.as_micros() as u64, max.as_micros() as u64);
    }
}

/// Where a TCB counts in its port's bind bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortClass {
    Live { reuseaddr: bool, reuseport: bool },
    TimeWait,
}

/// A transmission control block (RFC 9293 §3.3.1).
#[derive(Debug)]
pub(crate) struct Tcb {
    pub state: State,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// The user's handle; `None` once closed (orphaned) or before accept.
    pub socket: Option<SocketHandle>,
    /// The listener a passive connection belongs to until accepted.
    pub listener: Option<SocketHandle>,
    pub in_accept_queue: bool,
    pub opts: TcpOptions,
    pub port_class: PortClass,

    // Send sequence space (RFC 9293 §3.3.1, Figure 4).
    pub iss: SeqNumber,
    pub snd_una: SeqNumber,
    pub snd_nxt: SeqNumber,
    /// Highest sequence number sent (snd_nxt goes back on a timeout).
    pub snd_max: SeqNumber,
    pub snd_wnd: u32,
    pub max_snd_wnd: u32,
    pub snd_wl1: SeqNumber,
    pub snd_wl2: SeqNumber,
    pub snd_wscale: u8,
    /// Payload bytes per segment (peer's MSS, our MTU, options).
    pub snd_mss: u16,
    pub sndq: Ring,
    /// Sequence number of the first byte in `sndq`.
    pub sndq_front: SeqNumber,
    /// A send found the buffer full; the next freeing ACK wakes the writer.
    pub nospace: bool,
    /// The user has shut the sending side; a FIN follows the data.
    pub fin_queued: bool,

    // Receive sequence space.
    pub irs: SeqNumber,
    pub rcv_nxt: SeqNumber,
    pub rcv_wscale: u8,
    /// Right edge of the window we last advertised.
    pub rcv_adv: SeqNumber,
    pub rcv_mss: u16,
    pub rcvq: Ring,
    pub fin_received: bool,
    pub shut_rd: bool,

    // Negotiated options.
    pub ws_ok: bool,
    pub sack_ok: bool,
    pub ts_ok: bool,
    pub ts_recent: u32,
    pub ts_offset: u32,

    // Output owed.
    pub syn_pending: bool,
    pub ack_pending: bool,
    pub probe_pending: bool,
    pub force_probe: bool,
    pub in_ready: bool,

    // Timers.
    pub rtt: Rtt,
    pub backoff: u32,
    pub retries: u32,
    pub total_retrans: u64,
    pub rexmit_at: Option<Instant>,
    /// TIME_WAIT end or orphaned FIN_WAIT_2 timeout.
    pub linger_at: Option<Instant>,
    pub keepalive_at: Option<Instant>,
    pub probes_out: u32,
    pub last_rcv: Instant,
    /// When the oldest unacknowledged data was sent (user timeout).
    pub una_since: Instant,
    pub last_oow_ack: Option<Instant>,
    /// The deadline of this TCB's live heap entry.
    pub timer_sched: Option<Instant>,

    /// Last ICMP error (RFC 1122 §4.2.3.9), reported if the connection times out.
    pub soft_error: Option<Errno>,
    pub cc: Box<dyn CongestionControl>,

    // Receiver: out-of-order queue (data lives in `rcvq`) and ACK policy.
    pub ofo: Vec<OfoRange>,
    /// A FIN that arrived out of order, at this sequence number.
    pub ofo_fin: Option<SeqNumber>,
    pub ofo_stamp: u32,
    pub delack_at: Option<Instant>,
    /// Bytes received since our last ACK; the largest segment seen.
    pub rcv_unacked: u32,
    pub rcv_seg_max: u16,
    /// Segments still to ACK at once (quick-ACK mode at the start).
    pub quickack: u32,
    /// RCV.NXT in the last ACK we sent (RFC 7323 §4.3 Last.ACK.sent).
    pub last_ack_sent: SeqNumber,
    /// Receive autotuning: bytes read since, and the receiver's RTT estimate.
    pub rcv_copied: usize,
    pub rcv_copied_since: Instant,
    pub rcv_rtt_us: u32,

    // Sender: SACK scoreboard and loss recovery.
    pub sacked: Vec<Span>,
    pub dupacks: u32,
    pub ca: CaState,
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
    /// When data was last sent (restart after idle, RFC 5681 §4.1).
    pub last_send: Instant,
    /// End of the last segment shorter than the MSS we sent (Nagle, Minshall).
    pub snd_sml: SeqNumber,
    /// SND.MAX when the latest recovery retransmission went out.
    pub rtx_fence: SeqNumber,
    /// Tail loss probe (RFC 8985 §7): its timer, one owed now, one out.
    pub tlp_at: Option<Instant>,
    pub tlp_pending: bool,
    pub tlp_out: bool,
    /// RACK (RFC 8985 §6): per-segment send times and marks, and the
    /// reordering timer; made on the first data sent with SACK on.
    pub rack: Option<Box<rack::Rack>>,
    /// Whether RACK's reordering timer is armed (so `deadline` need not
    /// look into the box on every segment).
    pub rack_timer: bool,
    /// TCP_CORK's ceiling (Linux, tcp(7)): while the cork holds a partial
    /// segment, when it goes anyway and where the data held then ended;
    /// once that time has come, data up to `cork_release` may go.
    pub cork_at: Option<Instant>,
    pub cork_end: SeqNumber,
    pub cork_release: Option<SeqNumber>,
}

impl Tcb {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: &TcpConfig,
        state: State,
        local: SocketAddrV4,
        remote: SocketAddrV4,
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
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            snd_wscale: 0,
            snd_mss: 536,
            sndq: Ring::new(opts.sndbuf),
            sndq_front: iss + 1,
            nospace: false,
            fin_queued: false,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_wscale,
            rcv_adv: SeqNumber(0),
            rcv_mss,
            rcvq: Ring::new(opts.rcvbuf),
            fin_received: false,
            shut_rd: false,
            ws_ok: false,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            ts_offset,
            syn_pending: false,
            ack_pending: false,
            probe_pending: false,
            force_probe: false,
            in_ready: false,
            rtt: Rtt::new(cfg.rto_initial),
            backoff: 0,
            retries: 0,
            total_retrans: 0,
            rexmit_at: None,
            linger_at: None,
            keepalive_at: None,
            probes_out: 0,
            last_rcv: now,
            una_since: now,
            last_oow_ack: None,
            timer_sched: None,
            soft_error: None,
            cc: new_controller(opts.congestion, 536, cfg.initial_window),
            ofo: Vec::new(),
            ofo_fin: None,
            ofo_stamp: 0,
            delack_at: None,
            rcv_unacked: 0,
            rcv_seg_max: 536,
            quickack: cfg.quickack_segments,
            last_ack_sent: SeqNumber(0),
            rcv_copied: 0,
            rcv_copied_since: now,
            rcv_rtt_us: 0,
            sacked: Vec::new(),
            dupacks: 0,
            ca: CaState::Open,
            rec_sack: false,
            recover: iss,
            rec_cwnd: 0,
            high_rxt: iss,
            rtx_now: false,
            last_send: now,
            snd_sml: iss,
            rtx_fence: iss,
            tlp_at: None,
            tlp_pending: false,
            cork_at: None,
            cork_end: SeqNumber(0),
            cork_release: None,
            tlp_out: false,
            rack: None,
            rack_timer: false,
            opts,
        }
    }

    /// Sequence number of the first byte in the send buffer.
    pub fn sndq_seq(&self) -> SeqNumber {
        self.sndq_front
    }

    /// Sequence number just past the queued data (where a FIN goes).
    pub fn data_end(&self) -> SeqNumber {
        self.sndq_seq() + self.sndq.len()
    }

    /// Whether our FIN has been acknowledged.
    pub fn fin_acked(&self) -> bool {
        self.fin_queued && self.snd_una.diff(self.data_end()) > 0
    }

    /// Bytes of receive window we can offer.
    pub fn rcv_space(&self) -> usize {
        self.rcvq.free()
    }

    /// The current RTO with exponential backoff (RFC 6298 §5.5).
    pub fn current_rto(&self, cfg: &TcpConfig) -> Duration {
        let base = Duration::from_micros(self.rtt.rto);
        let shifted = base.saturating_mul(1u32 << self.backoff.min(20));
        shifted.min(cfg.rto_max)
    }

    /// `now + current_rto(cfg)`, in integer microseconds: set on every
    /// segment sent and every ACK, where the `Duration` arithmetic showed.
    pub(crate) fn rto_deadline(&self, now: Instant, cfg: &TcpConfig) -> Instant {
        let max = u64::try_from(cfg.rto_max.as_micros()).unwrap_or(u64::MAX);
        let rto = self
            .rtt
            .rto
            .saturating_mul(1u64 << self.backoff.min(20))
            .min(max);
        Instant::from_micros(now.total_micros().saturating_add(rto))
    }

    /// Unsent payload bytes past SND.NXT.
    pub fn unsent(&self) -> usize {
        self.data_end().diff(self.snd_nxt).max(0) as usize
    }

    /// Whether the next call to `next_segment` would produce something.
    pub fn wants_output(&self) -> bool {
        match self.state {
            State::Closed | State::Listen | State::TimeWait => self.ack_pending,
            State::SynSent | State::SynReceived => self.syn_pending,
            _ => self.ack_pending || self.probe_pending || self.choose_send().is_some(),
        }
    }

    /// With data waiting, nothing in flight and nothing we may send (a
    /// closed or silly window), probe on the RTO (the persist timer,
    /// RFC 9293 §3.8.6.1).
    #[inline(always)]
    pub fn maybe_arm_persist(&mut self, now: Instant, cfg: &TcpConfig) {
        if self.unsent() > 0
            && self.snd_una == self.snd_max
            && self.rexmit_at.is_none()
            && self.choose_send().is_none()
        {
            self.rexmit_at = Some(self.rto_deadline(now, cfg));
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
            min(min(self.rexmit_at, self.tlp_at), self.linger_at),
            min(min(self.keepalive_at, self.delack_at), self.cork_at),
        );
        if self.rack_timer {
            min(d, self.rack.as_deref().and_then(|r| r.timer))
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
        Some(self.last_rcv + self.opts.keep_idle)
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

/// A listening socket's queues (RFC 9293 §3.10.7.2; sizes as Linux).
#[derive(Debug)]
pub(crate) struct Listener {
    pub backlog: usize,
    /// Half-open connections (SYN_RECEIVED) counted against the SYN queue.
    pub syn_count: usize,
    /// Completed connections not yet accepted.
    pub accept: VecDeque<TcbId>,
    /// A SYN was answered with a cookie recently; ACKs may carry one.
    pub cookies_since: Option<Instant>,
}

/// The state of a TCP socket handle.
#[derive(Debug)]
pub(crate) enum Kind {
    /// Not connected: fresh, bound, or after the connection ended.
    Closed {
        was_connected: bool,
    },
    Listen(Listener),
    Conn(TcbId),
}

/// A TCP socket as the socket table holds it.
#[derive(Debug)]
pub struct TcpSocket {
    pub(crate) local: Option<SocketAddrV4>,
    pub(crate) remote: Option<SocketAddrV4>,
    pub(crate) opts: TcpOptions,
    pub(crate) kind: Kind,
    /// SO_ERROR.
    pub(crate) error: Option<Errno>,
    /// Counted among the port's bound sockets (bound, not connected).
    pub(crate) in_ports: bool,
    /// Received data still unread when the connection ended (TIME_WAIT
    /// expiry, RST): readable until drained, like Linux's receive queue.
    pub(crate) leftover: Ring,
}

/// Who uses a local port: bound sockets (not connected) and the TCBs,
/// counted by the reuse options they were made with.
#[derive(Debug, Default)]
pub(crate) struct PortUse {
    pub sockets: Vec<SocketHandle>,
    pub live: u32,
    pub live_reuseaddr: u32,
    pub live_reuseport: u32,
    pub live_both: u32,
    pub time_wait: u32,
}

impl PortUse {
    fn is_empty(&self) -> bool {
        self.sockets.is_empty() && self.live == 0 && self.time_wait == 0
    }

    /// Adds (`delta` = 1) or removes (-1) a TCB of class `c`.
    pub(crate) fn count(&mut self, c: PortClass, delta: i32) {
        let add = |x: &mut u32| *x = x.wrapping_add_signed(delta);
        match c {
            PortClass::TimeWait => add(&mut self.time_wait),
            PortClass::Live {
                reuseaddr,
                reuseport,
            } => {
                add(&mut self.live);
                if reuseaddr {
                    add(&mut self.live_reuseaddr);
                }
                if reuseport {
                    add(&mut self.live_reuseport);
                }
                if reuseaddr && reuseport {
                    add(&mut self.live_both);
                }
            }
        }
    }

    /// Live TCBs a new bind with these options would clash with (Linux
    /// `inet_csk_bind_conflict`: both SO_REUSEADDR, or both SO_REUSEPORT).
    pub(crate) fn live_conflicts(&self, reuseaddr: bool, reuseport: bool) -> u32 {
        match (reuseaddr, reuseport) {
            (true, true) => self.live + self.live_both - self.live_reuseaddr - self.live_reuseport,
            (true, false) => self.live - self.live_reuseaddr,
            (false, true) => self.live - self.live_reuseport,
            (false, false) => self.live,
        }
    }
}

/// A segment without a TCB behind it: RSTs, cookie SYN-ACKs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctl {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub flags: ustack_wire::TcpFlags,
    pub window: u16,
    pub mss: Option<u16>,
}

struct Slot {
    generation: u32,
    tcb: Option<Tcb>,
}

/// TCP: the connection table, the listeners and sockets, the timers and
/// the ready list. Driven through a [`Cx`](crate::cx::Cx): segments in
/// (`process`), segments out (`dispatch`), `poll_at`, and the socket calls.
pub struct Tcp {
    slots: Vec<Slot>,
    free: Vec<u32>,
    pub(crate) count: usize,
    pub(crate) conns: HashMap<(SocketAddrV4, SocketAddrV4), TcbId>,
    pub(crate) listeners: HashMap<u16, Vec<SocketHandle>>,
    pub(crate) bind_ports: HashMap<u16, PortUse>,
    /// The TCP sockets, by handle.
    pub(crate) socks: Slab<TcpSocket>,
    pub(crate) timers: BinaryHeap<core::cmp::Reverse<(Instant, u32, u32)>>,
    pub(crate) ready: VecDeque<TcbId>,
    /// The TCB the last segment was for: bulk traffic skips the keyed hash.
    last_conn: Option<TcbId>,
    pub(crate) ctl: VecDeque<Ctl>,
    /// What is left of the last burst planned (`TcpConfig::gso`): sent
    /// before anything else.
    pub(crate) burst: Option<output::Burst>,
    pub(crate) secret: secret::Secret,
    pub(crate) challenge: TokenBucket,
}

/// The timer heap and the ready list, borrowed beside a TCB.
pub(crate) struct Queues<'a> {
    timers: &'a mut BinaryHeap<core::cmp::Reverse<(Instant, u32, u32)>>,
    ready: &'a mut VecDeque<TcbId>,
}

impl Queues<'_> {
    /// `TcpState::arm` for a TCB in hand.
    #[inline]
    pub(crate) fn arm(&mut self, id: TcbId, t: &mut Tcb) {
        let Some(d) = t.deadline() else { return };
        if t.timer_sched.is_none_or(|s| d < s) {
            t.timer_sched = Some(d);
            self.timers
                .push(core::cmp::Reverse((d, id.index, id.generation)));
        }
    }

    /// Puts the TCB on the ready list if it owes output; false if it is
    /// not there and owes nothing (then a corked one may need its hold
    /// armed: `TcpState::schedule`).
    #[inline]
    pub(crate) fn schedule(&mut self, id: TcbId, t: &mut Tcb) -> bool {
        if t.in_ready {
            return true;
        }
        if t.wants_output() {
            t.in_ready = true;
            self.ready.push_back(id);
            return true;
        }
        false
    }
}

impl Tcp {
    pub fn new(cfg: &TcpConfig, rng: &mut Rng) -> Tcp {
        Tcp {
            slots: Vec::new(),
            free: Vec::new(),
            count: 0,
            conns: HashMap::new(),
            listeners: HashMap::new(),
            bind_ports: HashMap::new(),
            socks: Slab::default(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            last_conn: None,
            ctl: VecDeque::new(),
            burst: None,
            secret: secret::Secret::new(rng),
            challenge: TokenBucket::new(cfg.challenge_ack_limit, cfg.challenge_ack_limit.max(1)),
        }
    }

    pub(crate) fn get(&self, id: TcbId) -> Option<&Tcb> {
        let s = self.slots.get(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        s.tcb.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: TcbId) -> Option<&mut Tcb> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        s.tcb.as_mut()
    }

    /// The TCB for a 4-tuple. The one-entry cache needs no invalidation:
    /// a stale id resolves to nothing, and a live TCB with this 4-tuple is
    /// the one `conns` maps it to.
    pub(crate) fn lookup(&mut self, local: SocketAddrV4, remote: SocketAddrV4) -> Option<TcbId> {
        if let Some(id) = self.cached(local, remote) {
            return Some(id);
        }
        let id = *self.conns.get(&(local, remote))?;
        self.last_conn = Some(id);
        Some(id)
    }

    /// The cached TCB if it has this 4-tuple (no table lookup).
    #[inline]
    pub(crate) fn cached(&self, local: SocketAddrV4, remote: SocketAddrV4) -> Option<TcbId> {
        let id = self.last_conn?;
        self.get(id)
            .is_some_and(|t| t.local == local && t.remote == remote)
            .then_some(id)
    }

    pub(crate) fn insert(&mut self, tcb: Tcb) -> TcbId {
        self.count += 1;
        let key = (tcb.local, tcb.remote);
        let id = if let Some(index) = self.free.pop() {
            let s = &mut self.slots[index as usize];
            s.generation = s.generation.wrapping_add(1);
            s.tcb = Some(tcb);
            TcbId {
                index,
                generation: s.generation,
            }
        } else {
            let index = self.slots.len() as u32;
            self.slots.push(Slot {
                generation: 0,
                tcb: Some(tcb),
            });
            TcbId {
                index,
                generation: 0,
            }
        };
        let old = self.conns.insert(key, id);
        debug_assert!(old.is_none(), "two TCBs for one 4-tuple");
        id
    }

    pub(crate) fn remove(&mut self, id: TcbId) -> Option<Tcb> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        let tcb = s.tcb.take()?;
        self.free.push(id.index);
        self.count -= 1;
        self.conns.remove(&(tcb.local, tcb.remote));
        Some(tcb)
    }

    /// Every live TCB.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TcbId, &Tcb)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let tcb = s.tcb.as_ref()?;
            Some((
                TcbId {
                    index: i as u32,
                    generation: s.generation,
                },
                tcb,
            ))
        })
    }

    /// Puts `id` on the ready list if it owes output.
    pub(crate) fn schedule(&mut self, now: Instant, id: TcbId) {
        let Some((t, mut q)) = self.split_mut(id) else {
            return;
        };
        if !q.schedule(id, t) && t.opts.cork {
            // Only corked sockets look further (this runs per segment).
            self.arm_cork(now, id);
        }
    }

    /// Starts TCP_CORK's ceiling if the cork (not the window, cwnd or
    /// Nagle) is what holds data back and no hold is running.
    pub(crate) fn arm_cork(&mut self, now: Instant, id: TcbId) {
        let Some(t) = self.get_mut(id) else { return };
        if t.opts.cork && t.cork_at.is_none() && t.cork_holds() {
            t.cork_at = Some(now + CORK_CEILING);
            t.cork_end = t.data_end();
            self.arm(id);
        }
    }

    /// Puts `id` on the ready list whether or not it owes output (its turn
    /// finds out); for a TCB that most likely does.
    pub(crate) fn requeue(&mut self, id: TcbId) {
        if let Some(t) = self.get_mut(id) {
            if !t.in_ready {
                t.in_ready = true;
                self.ready.push_back(id);
            }
        }
    }

    /// Makes sure the heap holds an entry no later than the TCB's deadline.
    pub(crate) fn arm(&mut self, id: TcbId) {
        let Some((t, mut q)) = self.split_mut(id) else {
            return;
        };
        q.arm(id, t);
    }

    /// A TCB and, beside it, the timer heap and ready list: the
    /// per-segment path arms and schedules it without a second lookup.
    pub(crate) fn split_mut(&mut self, id: TcbId) -> Option<(&mut Tcb, Queues<'_>)> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        let t = s.tcb.as_mut()?;
        Some((
            t,
            Queues {
                timers: &mut self.timers,
                ready: &mut self.ready,
            },
        ))
    }

    /// Earliest TCP deadline (may be a stale one: an early wakeup is harmless).
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        if !self.ready.is_empty() || !self.ctl.is_empty() || self.burst.is_some() {
            return Some(Instant::ZERO);
        }
        self.timers.peek().map(|r| r.0 .0)
    }

    pub(crate) fn port_use(&mut self, port: u16) -> &mut PortUse {
        self.bind_ports.entry(port).or_default()
    }

    pub(crate) fn port_release_if_empty(&mut self, port: u16) {
        if self.bind_ports.get(&port).is_some_and(PortUse::is_empty) {
            self.bind_ports.remove(&port);
        }
    }
}

impl Tcp {
    /// Checks the TCP tables' invariants and panics with a description if
    /// one is broken. For tests and fuzzing; O(connections).
    #[doc(hidden)]
    pub fn check_invariants(&self, cfg: &TcpConfig) {
        let tcp = self;
        assert_eq!(tcp.conns.len(), tcp.count, "lookup table and slab agree");
        let mut per_port: HashMap<u16, (u32, u32)> = HashMap::new();
        let mut half_open: HashMap<SocketHandle, usize> = HashMap::new();
        for (id, t) in tcp.iter() {
            let ctx = || format!("{} {} -> {}", t.state, t.local, t.remote);
            assert_eq!(tcp.conns.get(&(t.local, t.remote)), Some(&id), "{}", ctx());
            assert!(
                t.snd_nxt.diff(t.snd_una) >= 0,
                "SND.UNA <= SND.NXT: {}",
                ctx()
            );
            assert!(
                t.snd_max.diff(t.snd_nxt) >= 0,
                "SND.NXT <= SND.MAX: {}",
                ctx()
            );
            assert!(
                (t.snd_max.diff(t.snd_una) as i64) <= t.sndq.len() as i64 + 2,
                "in flight fits the send queue: {}",
                ctx()
            );
            assert!(
                (-1..=1).contains(&t.snd_una.diff(t.sndq_front)),
                "acked data leaves the send queue: {}",
                ctx()
            );
            if let Some(r) = t.rack.as_deref() {
                if let Err(e) = r.check(t.snd_una, t.snd_max) {
                    panic!("RACK log: {e}: {}", ctx());
                }
                assert_eq!(t.rack_timer, r.timer.is_some(), "RACK timer: {}", ctx());
            }
            if let Some(d) = t.deadline() {
                assert!(
                    t.timer_sched.is_some_and(|s| s <= d),
                    "a timer is armed for the deadline: {}",
                    ctx()
                );
            }
            if t.wants_output() {
                assert!(t.in_ready, "output owed is on the ready list: {}", ctx());
            }
            let e = per_port.entry(t.local.port()).or_default();
            match t.port_class {
                PortClass::Live { .. } => e.0 += 1,
                PortClass::TimeWait => e.1 += 1,
            }
            assert_eq!(
                t.port_class == PortClass::TimeWait,
                t.state == State::TimeWait,
                "TIME_WAIT bucket: {}",
                ctx()
            );
            if let Some(l) = t.listener {
                if !t.in_accept_queue {
                    *half_open.entry(l).or_default() += 1;
                }
            }
            if let Some(h) = t.socket {
                match self.socks.get(h) {
                    Some(s) => {
                        assert!(matches!(s.kind, Kind::Conn(x) if x == id), "{}", ctx())
                    }
                    _ => panic!("TCB points at a socket that is not its own: {}", ctx()),
                }
            }
        }
        for (port, pu) in &tcp.bind_ports {
            let (live, tw) = per_port.get(port).copied().unwrap_or_default();
            assert_eq!((pu.live, pu.time_wait), (live, tw), "port {port} counts");
        }
        for (h, s) in self.socks.iter() {
            {
                if let Kind::Listen(l) = &s.kind {
                    assert!(l.accept.len() <= l.backlog, "accept queue within backlog");
                    assert_eq!(
                        l.syn_count,
                        half_open.get(&h).copied().unwrap_or(0),
                        "SYN queue count"
                    );
                    assert!(l.syn_count <= cfg.max_syn_backlog);
                }
            }
        }
    }
}

#[cfg(test)]
mod rtt_tests {
    use super::*;

    #[test]
    fn small_rtts_do_not_truncate_to_zero() {
        let mut r = Rtt::new(Duration::from_secs(1));
        let (min, max) = (Duration::from_millis(200), Duration::from_secs(120));
        for _ in 0..20 {
            r.sample(Duration::from_micros(5), min, max);
        }
        assert_eq!(r.srtt(), Duration::from_micros(5));
        r.sample(Duration::ZERO, min, max);
        assert!(r.srtt() > Duration::ZERO);
        assert_eq!(r.rto, 200_000, "clamped to the floor");
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn tcb_stays_small() {
        // Half-open and idle connections hold no buffer memory, so this is
        // most of what 100 000 connections cost (plus the boxed controller).
        // 712 since TCP_CORK's ceiling and RACK's (boxed) state.
        let size = core::mem::size_of::<super::Tcb>();
        assert!(size <= 712, "Tcb is {size} bytes");
    }
}

#[cfg(test)]
mod unit_tests;
