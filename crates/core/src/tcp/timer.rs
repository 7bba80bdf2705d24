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
use crate::time::Duration;
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
            if t.timer.sched != Some(at) {
                continue;
            }
            t.timer.sched = None;
            self.tcp_on_timer(cx, id);
            self.arm(id);
            self.schedule(cx.now, id);
        }
        // A burst of handshakes leaves the heap far larger than what it
        // then holds (each armed a retransmission timer): give it back
        // once an eighth full, as `Tcp::shrink` does for the tables.
        let (len, cap) = (self.timers.len(), self.timers.capacity());
        if cap > 64 && len < cap / 8 {
            self.timers.shrink_to(len * 2);
        }
    }

    fn tcp_on_timer(&mut self, cx: &mut Cx<'_>, id: TcbId) {
        let now = cx.now;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        if t.timer.linger.is_some_and(|d| d <= now) {
            t.timer.linger = None;
            match t.state {
                State::TimeWait if t.owed.ack => {
                    // The ACK it owes (a cut-short TIME_WAIT's last) goes
                    // out first; the end comes right after.
                    t.timer.linger = Some(now + Duration::from_millis(1));
                }
                State::TimeWait => {
                    cx.sh.counters.tcp.time_waits_done += 1;
                    self.tcp_free(cx, id);
                    return;
                }
                State::FinWait2 => {
                    debug!(local = %t.local, remote = %t.remote, "tcp FIN_WAIT_2 timeout");
                    cx.sh.counters.tcp.fin_wait2_timeouts += 1;
                    self.tcp_free(cx, id);
                    return;
                }
                _ => {}
            }
        }
        if t.timer.keepalive.is_some_and(|d| d <= now) {
            t.timer.keepalive = None;
            self.tcp_keepalive_timer(cx, id);
        }
        let Some(t) = self.get_mut(id) else {
            return;
        };
        if t.timer.delack.is_some_and(|d| d <= now) {
            // The delayed-ACK timer (RFC 9293 §3.8.6.3).
            t.timer.delack = None;
            t.owed.ack = true;
            cx.sh.counters.tcp.delayed_acks += 1;
        }
        if t.timer.cork.is_some_and(|d| d <= now) {
            // TCP_CORK's ceiling: what it held goes now.
            t.timer.cork = None;
            t.snd.cork_release = Some(t.snd.cork_end);
        }
        if t.cong.pace_timer {
            // Pacing's timer: the held data may go (`schedule` after this).
            t.pace_timer_due(now);
        }
        if t.timer.tlp.is_some_and(|d| d <= now) {
            t.timer.tlp = None;
            if t.cong.ca == super::cc::CaState::Open && t.snd.una != t.snd.max && !t.cong.tlp_out {
                t.cong.tlp_out = true;
                t.cong.tlp_pending = true;
            }
        }
        if t.cong.rack_timer
            && t.cong
                .rack
                .as_deref()
                .and_then(|r| r.timer)
                .is_some_and(|d| d <= now)
        {
            self.tcp_rack_timer(cx, id);
        }
        let Some(t) = self.get_mut(id) else {
            return;
        };
        if t.timer.rexmit.is_some_and(|d| d <= now) {
            t.timer.rexmit = None;
            t.timer.tlp = None;
            t.cong.tlp_pending = false;
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
        cx.sh.counters.tcp.rack_reo_timeouts += 1;
        let d = t.rack_detect(now);
        cx.sh.counters.tcp.rack_lost += u64::from(d.lost);
        cx.sh.counters.tcp.lost_retransmits += u64::from(d.lost_rtx);
        if t.cong.ca == super::cc::CaState::Open && t.snd.una != t.snd.max && t.rack_lost() {
            t.cong.trigger = crate::event::RetransmitCause::Rack;
            t.enter_recovery(now);
            cx.sh.counters.tcp.fast_retrans += 1;
            debug!(local = %t.local, remote = %t.remote, cwnd = t.cong.cc.window(), "tcp RACK reordering timeout: recovery");
            if cx.cfg.trace {
                t.trace(cx, Tcb::cwnd_event);
            }
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
        if t.snd.una != t.snd.max || t.unsent() > 0 || t.snd.fin_queued && !t.fin_acked() {
            // Data in flight: the retransmission timer watches the peer.
            t.timer.keepalive = Some(now + t.opts.keep_idle);
            return;
        }
        let idle = now - t.timer.last_rcv;
        if let Some(ut) = t.opts.user_timeout {
            if t.timer.probes_out > 0 && idle >= ut {
                cx.sh.counters.tcp.abort_on_timeout += 1;
                cx.sh.counters.tcp.keepalive_timeouts += 1;
                self.tcp_abort(cx, id, Some(Errno::ETIMEDOUT), true);
                return;
            }
        }
        if due > now {
            t.timer.keepalive = Some(due);
            return;
        }
        if t.timer.probes_out >= t.opts.keep_cnt {
            debug!(local = %t.local, remote = %t.remote, "tcp keepalive timeout");
            cx.sh.counters.tcp.abort_on_timeout += 1;
            cx.sh.counters.tcp.keepalive_timeouts += 1;
            self.tcp_abort(cx, id, Some(Errno::ETIMEDOUT), true);
            return;
        }
        t.timer.probes_out += 1;
        t.owed.probe = true;
        t.timer.keepalive = Some(now + t.opts.keep_intvl);
        cx.sh.counters.tcp.keepalive_probes += 1;
    }

    fn tcp_rexmit_timer(&mut self, cx: &mut Cx<'_>, id: TcbId) {
        let now = cx.now;
        let cfg = &cx.cfg.tcp;
        let Some(t) = self.get_mut(id) else {
            return;
        };
        match t.state {
            State::SynSent | State::SynReceived => {
                t.timer.retries += 1;
                let limit = if t.state == State::SynSent {
                    cfg.syn_retries
                } else {
                    cfg.synack_retries
                };
                if t.timer.retries > limit {
                    debug!(local = %t.local, remote = %t.remote, state = %t.state, "tcp handshake timeout");
                    if t.listener.is_some() {
                        self.tcp_free(cx, id);
                    } else {
                        let err = t.soft_error.unwrap_or(Errno::ETIMEDOUT);
                        cx.sh.counters.tcp.syn_timeouts += 1;
                        cx.sh.counters.tcp.attempt_fails += 1;
                        self.tcp_abort(cx, id, Some(err), false);
                    }
                    return;
                }
                cx.sh.counters.tcp.timeouts += 1;
                t.timer.backoff += 1;
                t.owed.syn = true;
                t.snd.nxt = t.snd.iss;
                t.rtt.timing = None;
                t.timer.rexmit = Some(t.rto_deadline(now, cfg));
                cx.sh.events.push(now, rto_event(t, cfg));
            }
            State::Closed | State::Listen | State::TimeWait => {}
            _ => {
                if t.snd.una == t.snd.max {
                    // Nothing in flight: a zero window holds data back (persist).
                    if t.unsent() > 0 && t.choose_send().is_none() {
                        t.owed.force_probe = true;
                        t.timer.backoff = (t.timer.backoff + 1).min(16);
                        t.timer.rexmit = Some(t.rto_deadline(now, cfg));
                    }
                    return;
                }
                if t.snd.wnd == 0 && t.flight() <= 1 && t.unsent() > 0 {
                    // Only a window probe is out (the peer's window is
                    // closed): probe again with backoff (RFC 9293 §3.8.6.1;
                    // an answering peer resets the count in `tcp_ack`).
                    t.timer.retries += 1;
                    if t.timer.retries > cfg.retries2 {
                        let err = t.soft_error.unwrap_or(Errno::ETIMEDOUT);
                        cx.sh.counters.tcp.abort_on_timeout += 1;
                        self.tcp_abort(cx, id, Some(err), false);
                        return;
                    }
                    t.owed.force_probe = true;
                    t.snd.nxt = t.snd.una;
                    t.timer.backoff = (t.timer.backoff + 1).min(16);
                    t.timer.rexmit = Some(t.rto_deadline(now, cfg));
                    return;
                }
                t.timer.retries += 1;
                cx.sh.counters.tcp.timeouts += 1;
                let ut_expired = t
                    .opts
                    .user_timeout
                    .is_some_and(|ut| now - t.timer.una_since >= ut);
                let limit = if t.socket.is_none() && t.listener.is_none() {
                    cfg.orphan_retries.min(cfg.retries2)
                } else {
                    cfg.retries2
                };
                if t.timer.retries > limit || ut_expired {
                    debug!(local = %t.local, remote = %t.remote, retries = t.timer.retries, "tcp retransmission timeout");
                    let err = t.soft_error.unwrap_or(Errno::ETIMEDOUT);
                    cx.sh.counters.tcp.abort_on_timeout += 1;
                    self.tcp_abort(cx, id, Some(err), false);
                    return;
                }
                let blackhole = cfg.mtu_probing
                    && t.timer.retries >= super::pmtu::BLACKHOLE_RETRIES
                    && t.mtu_blackhole();
                if blackhole {
                    cx.sh.counters.tcp.mtu_blackholes += 1;
                }
                let flight = t.flight();
                let mss = u32::from(t.snd.mss);
                // RFC 5681 §3.1: a repeated timeout of the same data holds ssthresh.
                let first = t.cong.ca != super::cc::CaState::Loss;
                t.cong.cc.on_rto(now, flight, mss, first);
                // Loss state until what was sent is ACKed; go back N from
                // SND.UNA (RFC 6298 §5.4), skipping what the peer SACKed.
                t.cong.ca = super::cc::CaState::Loss;
                if let Some(r) = t.cong.rack.as_deref_mut() {
                    r.on_rto();
                    t.cong.rack_timer = false;
                }
                t.cong.recover = t.snd.max;
                t.cong.high_rxt = t.snd.una;
                t.cong.rtx_now = false;
                t.cong.dupacks = 0;
                t.snd.nxt = t.snd.una;
                t.rtt.timing = None;
                t.timer.backoff += 1;
                t.timer.rexmit = Some(t.rto_deadline(now, cfg));
                cx.sh.events.push(now, rto_event(t, cfg));
                if cx.cfg.trace {
                    t.trace(cx, Tcb::cwnd_event);
                }
                if blackhole {
                    self.tcp_blackhole_share(cx, id);
                }
            }
        }
    }
}

/// The event for a retransmission timeout just taken (RFC 6298 §5.4-5.6).
fn rto_event(t: &Tcb, cfg: &TcpConfig) -> EventKind {
    EventKind::TcpRto {
        local: t.local,
        remote: t.remote,
        backoff: t.timer.backoff,
        rto: t.current_rto(cfg),
    }
}
