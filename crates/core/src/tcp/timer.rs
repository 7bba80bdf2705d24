//! TCP timers: retransmission (RFC 6298), SYN/SYN-ACK retries, TIME_WAIT
//! and orphaned FIN_WAIT_2, keepalive (RFC 1122 §4.2.3.6), user timeout
//! (RFC 5482).

use super::state::State;
use super::table::Tcp;
use super::tcb::{Tcb, TcbId};

use crate::config::TcpConfig;
use crate::cx::Cx;
use crate::errno::Errno;
use crate::event::EventKind;
use core::cmp::Reverse;
use tracing::debug;

impl Tcp {
    /// Runs every TCP timer due at `now`.
    #[inline(always)]
    pub(crate) fn tcp_run_timers(&mut self, cx: &mut Cx<'_>) {
        // Checked inline: on most calls nothing is due.
        if self.timers.peek().is_none_or(|r| r.0 .0 > cx.now) {
            return;
        }
        self.run_due_timers(cx);
    }

    fn run_due_timers(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        while let Some(&Reverse((at, index, generation))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let id = TcbId { index, generation };
            let Some(t) = self.get_mut(id) else {
                continue;
            };
            if t.timer_sched != Some(at) {
                continue;
            }
            t.timer_sched = None;
            self.tcp_on_timer(cx, id);
            self.arm(id);
            self.schedule(cx.now, id);
        }
    }

    fn tcp_on_timer(&mut self, cx: &mut Cx<'_>, id: TcbId) {
        let now = cx.now;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        if t.linger_at.is_some_and(|d| d <= now) {
            t.linger_at = None;
            match t.state {
                State::TimeWait => {
                    cx.counters.tcp.time_waits_done += 1;
                    self.tcp_free(cx, id);
                    return;
                }
                State::FinWait2 => {
                    debug!(local = %t.local, remote = %t.remote, "tcp FIN_WAIT_2 timeout");
                    cx.counters.tcp.fin_wait2_timeouts += 1;
                    self.tcp_free(cx, id);
                    return;
                }
                _ => {}
            }
        }
        if t.keepalive_at.is_some_and(|d| d <= now) {
            t.keepalive_at = None;
            self.tcp_keepalive_timer(cx, id);
        }
        let Some(t) = self.get_mut(id) else {
            return;
        };
        if t.delack_at.is_some_and(|d| d <= now) {
            // The delayed-ACK timer (RFC 9293 §3.8.6.3).
            t.delack_at = None;
            t.ack_pending = true;
            cx.counters.tcp.delayed_acks += 1;
        }
        if t.cork_at.is_some_and(|d| d <= now) {
            // TCP_CORK's ceiling: what it held goes now.
            t.cork_at = None;
            t.cork_release = Some(t.cork_end);
        }
        if t.tlp_at.is_some_and(|d| d <= now) {
            t.tlp_at = None;
            if t.ca == super::cc::CaState::Open && t.snd_una != t.snd_max && !t.tlp_out {
                t.tlp_out = true;
                t.tlp_pending = true;
            }
        }
        if t.rack_timer
            && t.rack
                .as_deref()
                .and_then(|r| r.timer)
                .is_some_and(|d| d <= now)
        {
            self.tcp_rack_timer(cx, id);
        }
        let Some(t) = self.get_mut(id) else {
            return;
        };
        if t.rexmit_at.is_some_and(|d| d <= now) {
            t.rexmit_at = None;
            t.tlp_at = None;
            t.tlp_pending = false;
            self.tcp_rexmit_timer(cx, id);
        }
    }

    /// The RACK reordering timer (RFC 8985 §6.2 step 5): segments that
    /// were within the reordering window at the last ACK are looked at
    /// again; any now lost start recovery (or are repaired in it).
    fn tcp_rack_timer(&mut self, cx: &mut Cx<'_>, id: TcbId) {
        let now = cx.now;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        cx.counters.tcp.rack_reo_timeouts += 1;
        let d = t.rack_detect(now);
        cx.counters.tcp.rack_lost += u64::from(d.lost);
        cx.counters.tcp.lost_retransmits += u64::from(d.lost_rtx);
        if t.ca == super::cc::CaState::Open && t.snd_una != t.snd_max && t.rack_lost() {
            t.enter_recovery(now);
            cx.counters.tcp.fast_retrans += 1;
            debug!(local = %t.local, remote = %t.remote, cwnd = t.cc.window(), "tcp RACK reordering timeout: recovery");
        }
    }

    fn tcp_keepalive_timer(&mut self, cx: &mut Cx<'_>, id: TcbId) {
        let now = cx.now;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        let Some(due) = t.keepalive_deadline() else {
            return;
        };
        if t.snd_una != t.snd_max || t.unsent() > 0 || t.fin_queued && !t.fin_acked() {
            // Data in flight: the retransmission timer watches the peer.
            t.keepalive_at = Some(now + t.opts.keep_idle);
            return;
        }
        let idle = now - t.last_rcv;
        if let Some(ut) = t.opts.user_timeout {
            if t.probes_out > 0 && idle >= ut {
                cx.counters.tcp.abort_on_timeout += 1;
                cx.counters.tcp.keepalive_timeouts += 1;
                self.tcp_abort(cx, id, Some(Errno::ETIMEDOUT), true);
                return;
            }
        }
        if due > now {
            t.keepalive_at = Some(due);
            return;
        }
        if t.probes_out >= t.opts.keep_cnt {
            debug!(local = %t.local, remote = %t.remote, "tcp keepalive timeout");
            cx.counters.tcp.abort_on_timeout += 1;
            cx.counters.tcp.keepalive_timeouts += 1;
            self.tcp_abort(cx, id, Some(Errno::ETIMEDOUT), true);
            return;
        }
        t.probes_out += 1;
        t.probe_pending = true;
        t.keepalive_at = Some(now + t.opts.keep_intvl);
        cx.counters.tcp.keepalive_probes += 1;
    }

    fn tcp_rexmit_timer(&mut self, cx: &mut Cx<'_>, id: TcbId) {
        let now = cx.now;
        let cfg = &cx.cfg.tcp;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        match t.state {
            State::SynSent | State::SynReceived => {
                t.retries += 1;
                let limit = if t.state == State::SynSent {
                    cfg.syn_retries
                } else {
                    cfg.synack_retries
                };
                if t.retries > limit {
                    debug!(local = %t.local, remote = %t.remote, state = %t.state, "tcp handshake timeout");
                    if t.listener.is_some() {
                        self.tcp_free(cx, id);
                    } else {
                        let err = t.soft_error.unwrap_or(Errno::ETIMEDOUT);
                        cx.counters.tcp.syn_timeouts += 1;
                        cx.counters.tcp.attempt_fails += 1;
                        self.tcp_abort(cx, id, Some(err), false);
                    }
                    return;
                }
                cx.counters.tcp.timeouts += 1;
                t.backoff += 1;
                t.syn_pending = true;
                t.snd_nxt = t.iss;
                t.rtt.timing = None;
                t.rexmit_at = Some(t.rto_deadline(now, cfg));
                cx.events.push(now, rto_event(t, cfg));
            }
            State::Closed | State::Listen | State::TimeWait => {}
            _ => {
                if t.snd_una == t.snd_max {
                    // Nothing in flight: a zero window holds data back (persist).
                    if t.unsent() > 0 && t.choose_send().is_none() {
                        t.force_probe = true;
                        t.backoff = (t.backoff + 1).min(16);
                        t.rexmit_at = Some(t.rto_deadline(now, cfg));
                    }
                    return;
                }
                if t.snd_wnd == 0 && t.flight() <= 1 && t.unsent() > 0 {
                    // Only a window probe is out (the peer's window is
                    // closed): probe again with backoff (RFC 9293 §3.8.6.1;
                    // an answering peer resets the count in `tcp_ack`).
                    t.retries += 1;
                    if t.retries > cfg.retries2 {
                        let err = t.soft_error.unwrap_or(Errno::ETIMEDOUT);
                        cx.counters.tcp.abort_on_timeout += 1;
                        self.tcp_abort(cx, id, Some(err), false);
                        return;
                    }
                    t.force_probe = true;
                    t.snd_nxt = t.snd_una;
                    t.backoff = (t.backoff + 1).min(16);
                    t.rexmit_at = Some(t.rto_deadline(now, cfg));
                    return;
                }
                t.retries += 1;
                cx.counters.tcp.timeouts += 1;
                let ut_expired = t
                    .opts
                    .user_timeout
                    .is_some_and(|ut| now - t.una_since >= ut);
                let limit = if t.socket.is_none() && t.listener.is_none() {
                    cfg.orphan_retries.min(cfg.retries2)
                } else {
                    cfg.retries2
                };
                if t.retries > limit || ut_expired {
                    debug!(local = %t.local, remote = %t.remote, retries = t.retries, "tcp retransmission timeout");
                    let err = t.soft_error.unwrap_or(Errno::ETIMEDOUT);
                    cx.counters.tcp.abort_on_timeout += 1;
                    self.tcp_abort(cx, id, Some(err), false);
                    return;
                }
                let flight = t.flight();
                let mss = u32::from(t.snd_mss);
                // RFC 5681 §3.1: a repeated timeout of the same data holds ssthresh.
                let first = t.ca != super::cc::CaState::Loss;
                t.cc.on_rto(now, flight, mss, first);
                // Loss state until what was sent is ACKed; go back N from
                // SND.UNA (RFC 6298 §5.4), skipping what the peer SACKed.
                t.ca = super::cc::CaState::Loss;
                if let Some(r) = t.rack.as_deref_mut() {
                    r.on_rto();
                    t.rack_timer = false;
                }
                t.recover = t.snd_max;
                t.high_rxt = t.snd_una;
                t.rtx_now = false;
                t.dupacks = 0;
                t.snd_nxt = t.snd_una;
                t.rtt.timing = None;
                t.backoff += 1;
                t.rexmit_at = Some(t.rto_deadline(now, cfg));
                cx.events.push(now, rto_event(t, cfg));
            }
        }
    }
}

/// The event for a retransmission timeout just taken (RFC 6298 §5.4-5.6).
fn rto_event(t: &Tcb, cfg: &TcpConfig) -> EventKind {
    EventKind::TcpRto {
        local: t.local,
        remote: t.remote,
        backoff: t.backoff,
        rto: t.current_rto(cfg),
    }
}
