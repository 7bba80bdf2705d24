//! TCP (RFC 9293): connection state machine, listeners, timers, buffers.
//!
//! [`Tcp`] is its own type, driven through a [`Cx`](crate::cx::Cx) (now,
//! configuration, counters, RNG, the handle table, the IP output path, the
//! event queue) and never through `Stack`: `process(cx, ip, segment)`
//! takes one segment with its IP addresses (`process_fast` the one header
//! prediction takes), `dispatch(cx, buf)` writes the next segment owed
//! through the IP layer (`IpOut::emit_with`), `poll_at()` is its next
//! deadline, and the socket calls take a handle. A TCB can be driven in a
//! unit test with no stack (`unit_tests.rs`).
//!
//! Files, by concern: `state.rs` (the eleven states), `tcb.rs` (a
//! connection: send and receive sequence space, negotiated options,
//! output owed, timers, congestion control, each a struct of its own),
//! `rtt.rs` (RFC 6298), `options.rs` (socket options), `table.rs` (the
//! connection table, listeners, sockets, port buckets, timer heap, ready
//! list), `input.rs` (segment arrival, handshakes, RFC 5961), `data.rs`
//! (what to send, SACK scoreboard, out-of-order queue), `rack.rs`,
//! `cc.rs`, `output.rs` and `plan.rs` (segments and bursts out),
//! `timer.rs`, `api.rs` (socket calls), `forward.rs` (the any-destination
//! listener, connect-before-accept), `secret.rs` (ISNs, cookies),
//! `buffer.rs` (the rings), `sendq.rs` (the send queue: the ring and the
//! buffers lent whole for zero-copy sends; posted receive buffers),
//! `zc.rs` (the zero-copy socket calls). No file imports one that
//! imports it back (`.ci/core-import-cycles`).
//!
//! Layout: TCBs live in a slab owned by `Tcp` and are found by their
//! 4-tuple in a hash map (the protocol is implied: this is the TCP table).
//! A socket handle points at its TCB; the TCB outlives the handle after
//! `close` until its state machine finishes (FIN_WAIT, TIME_WAIT).
//!
//! Timers are deadlines kept in a min-heap of `(deadline, tcb, generation)`
//! with lazy invalidation: a TCB remembers the one heap entry that is live
//! for it, a later deadline is noticed when the entry fires, an earlier one
//! pushes a new entry. Output is pulled: TCBs that owe a segment sit on a
//! ready list and `dispatch` writes their next segment straight into the
//! caller's buffer. RSTs without a TCB and SYN cookies go through a small
//! bounded control queue. State transitions, established, reset, closed
//! and retransmission timeouts are typed events (`crate::event`).
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
//! NewReno, CUBIC with HyStart++ (`hystart.rs`), BBR v1 (`bbr.rs`), made
//! in `controllers.rs`), fed delivery-rate samples (`rate.rs`) by those
//! that ask; pacing on the TCB's timer (`pacing.rs`, `delivery.rs`); ECN
//! (`ecn.rs`, RFC 3168).
//! Delayed ACK, Nagle, SWS avoidance, PAWS and buffer autotuning as Linux
//! does them; path MTU discovery in `pmtu.rs`.

mod api;
mod bbr;
mod buffer;
mod cc;
mod controllers;
mod data;
mod delivery;
mod ecn;
mod forward;
mod hystart;
mod input;
mod options;
mod output;
mod pacing;
mod placed;
mod plan;
mod pmtu;
mod rack;
mod rate;
mod rtt;
mod secret;
mod sendq;
mod spans;
pub mod state;
mod table;
mod tcb;
mod timer;
mod trace;
mod zc;

pub use api::{Shutdown, SocketRow, TcpInfo};
pub use bbr::Bbr;
pub use buffer::Ring;
pub use cc::{CongestionControl, Cubic, NewReno};
pub use controllers::new_controller;
pub(crate) use input::Run;
pub use options::TcpOptions;
pub(crate) use output::TcpTx;
pub use rate::RateSample;
pub use sendq::{SendBuf, ZcDone, ZC_DETACHED};
pub use state::State;
pub use table::{Tcp, TcpSocket};
pub(crate) use tcb::TcbId;
pub use zc::{RecvDone, MAX_POSTED};

#[cfg(test)]
mod unit_tests;
