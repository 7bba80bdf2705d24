//! TCP and the path MTU: ICMP errors checked against the connection
//! (RFC 5927 §4.1), the send MSS following the path MTU with what is in
//! flight sent again at the new size (RFC 1191 §6.4; Linux
//! `tcp_v4_mtu_reduced`, `tcp_simple_retransmit`), and black-hole
//! detection for paths that drop ICMP (RFC 4821 §7.7, an option).

use super::cc::CaState;
use super::state::State;
use super::table::Tcp;
use super::tcb::{Tcb, TcbId};
use crate::cx::Cx;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use ustack_wire::{Ipv4Addr, SeqNumber};

/// IPv4 and TCP headers without options (RFC 9293 §3.7.1).
const HEADERS: u16 = 40;
/// What the IPv6 header adds to the IPv4 one (RFC 8200 §3: 40 bytes, not 20).
pub(crate) const V6_EXTRA: usize = 20;
/// The lowest send MSS either mechanism leaves (Linux `tcp_min_snd_mss`).
const MIN_MSS: u16 = 48;
/// Where black-hole detection first puts the MSS (RFC 4821 §7.2; Linux
/// `tcp_base_mss`).
const BASE_MSS: u16 = 1024;
/// Consecutive timeouts after which a black hole is suspected (Linux
/// `tcp_retries1` = 3).
pub(crate) const BLACKHOLE_RETRIES: u32 = 3;

fn can_send(state: State) -> bool {
    matches!(
        state,
        State::Established | State::CloseWait | State::FinWait1 | State::Closing | State::LastAck
    )
}

impl Tcb {
    /// The send MSS for path MTU `pmtu` and black-hole ceiling, within
    /// what the handshake agreed on.
    fn pmtu_mss(&mut self) -> u16 {
        if self.pmtu.mss_max == 0 {
            self.pmtu.mss_max = self.snd.mss;
        }
        let mut mss = self.pmtu.mss_max;
        if self.pmtu.pmtu > 0 {
            let ts = if self.neg.ts { 12 } else { 0 };
            mss = mss.min(self.pmtu.pmtu.saturating_sub(HEADERS + ts));
        }
        if self.pmtu.probe_mss > 0 {
            mss = mss.min(self.pmtu.probe_mss);
        }
        mss.max(MIN_MSS.min(self.pmtu.mss_max))
    }

    /// Takes path MTU `pmtu` (below the link's) as known from the start.
    pub(crate) fn pmtu_apply(&mut self, pmtu: usize) {
        self.pmtu.pmtu = u16::try_from(pmtu).unwrap_or(u16::MAX);
        self.snd.mss = self.pmtu_mss();
    }

    /// RFC 4821 §7.7 black-hole detection on a timeout: the MSS drops to
    /// [`BASE_MSS`], then halves on each later one. True if it dropped.
    pub(crate) fn mtu_blackhole(&mut self) -> bool {
        let cur = self.pmtu_mss();
        let next = match self.pmtu.probe_mss {
            0 => BASE_MSS,
            p => p / 2,
        }
        .max(MIN_MSS);
        if next >= cur {
            // Not below the MSS in use: start halving from there.
            if self.pmtu.probe_mss == 0 {
                self.pmtu.probe_mss = cur;
            }
            return false;
        }
        self.pmtu.probe_mss = next;
        self.snd.mss = self.pmtu_mss();
        true
    }
}

impl Tcp {
    /// RFC 5927 §4.1 (Linux `tcp_v4_err`): an ICMP error is taken only if
    /// it quotes a connection of ours and a sequence number in flight
    /// (SND.UNA..=SND.NXT); else it is counted and dropped.
    pub(crate) fn tcp_icmp_valid(
        &self,
        cx: &mut Cx<'_>,
        local: SocketAddr,
        remote: SocketAddr,
        seq: SeqNumber,
    ) -> bool {
        let ok = self
            .find(local, remote)
            .and_then(|id| self.get(id))
            .is_some_and(|t| seq.diff(t.snd.una) >= 0 && seq.diff(t.snd.max) <= 0);
        if !ok {
            cx.sh.counters.tcp.icmp_out_of_window += 1;
        }
        ok
    }

    /// The cached path MTU towards `dst` changed to `pmtu` (lowered, or
    /// back to the link's after the timeout): every connection to it
    /// follows. A scan of all connections, so only on a change.
    pub(crate) fn tcp_pmtu_changed(&mut self, cx: &mut Cx<'_>, dst: Ipv4Addr, pmtu: usize) {
        let ids: Vec<TcbId> = self
            .iter()
            .filter(|(_, t)| t.remote.ip() == IpAddr::V4(dst))
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            self.tcp_sync_mss(cx, id, pmtu);
        }
    }

    /// The IPv6 path MTU towards `dst` is now `pmtu` (Packet Too Big,
    /// RFC 8201 §5.4): its connections resegment as IPv4 ones do, with
    /// the IPv6 header's 20 more bytes taken off.
    pub(crate) fn tcp_pmtu_changed6(&mut self, cx: &mut Cx<'_>, dst: Ipv6Addr, pmtu: usize) {
        let ids: Vec<TcbId> = self
            .iter()
            .filter(|(_, t)| t.remote.ip() == IpAddr::V6(dst))
            .map(|(id, _)| id)
            .collect();
        for id in ids {
            self.tcp_sync_mss(cx, id, pmtu.saturating_sub(V6_EXTRA));
        }
    }

    /// A checked Fragmentation Needed for this connection, the path MTU
    /// now `pmtu` (Linux `tcp_v4_mtu_reduced`).
    pub(crate) fn tcp_mtu_reduced(
        &mut self,
        cx: &mut Cx<'_>,
        local: SocketAddr,
        remote: SocketAddr,
        pmtu: usize,
    ) {
        if let Some(id) = self.find(local, remote) {
            self.tcp_sync_mss(cx, id, pmtu);
        }
    }

    /// Connection `id` takes path MTU `pmtu` (Linux `tcp_sync_mss`); if
    /// its MSS drops, what is in flight goes again at the new size.
    fn tcp_sync_mss(&mut self, cx: &mut Cx<'_>, id: TcbId, pmtu: usize) {
        let Some(t) = self.get_mut(id) else { return };
        if !can_send(t.state) {
            return;
        }
        if pmtu >= cx.cfg.mtu {
            // Expired: the full size is tried again, also after black-hole
            // detection (RFC 4821 §7.8 re-probing, crudely).
            t.pmtu.pmtu = 0;
            t.pmtu.probe_mss = 0;
        } else {
            t.pmtu.pmtu = u16::try_from(pmtu).unwrap_or(u16::MAX);
        }
        let old = t.snd.mss;
        t.snd.mss = t.pmtu_mss();
        if t.snd.mss < old {
            cx.sh.counters.tcp.mss_reductions += 1;
            self.tcp_simple_retransmit(id);
        }
    }

    /// RFC 4821 §4: what black-hole detection found for connection `id`
    /// goes into the IP layer's path MTU cache, so the destination's other
    /// connections (and new ones) take it at once, and it expires as an
    /// ICMP-learned value does.
    pub(crate) fn tcp_blackhole_share(&mut self, cx: &mut Cx<'_>, id: TcbId) {
        let Some(t) = self.get(id) else { return };
        let ts = if t.neg.ts { 12 } else { 0 };
        // The IPv4 path MTU cache (IPv6 keeps its own, from Packet Too Big).
        let IpAddr::V4(dst) = t.remote.ip() else {
            return;
        };
        let mtu = usize::from(t.snd.mss) + usize::from(HEADERS + ts);
        if cx.sh.ip.pmtu.lower(cx.now, dst, mtu, cx.cfg.mtu).is_some() {
            cx.sh.ip.timers_dirty = true;
            let pmtu = cx.sh.ip.pmtu.get(cx.now, dst, cx.cfg.mtu);
            self.tcp_pmtu_changed(cx, dst, pmtu);
        }
    }

    /// After the MSS dropped: what is in flight goes again from SND.UNA at
    /// the new size now, not after a timeout, and as no congestion signal
    /// (cwnd kept; Linux `tcp_simple_retransmit`).
    pub(crate) fn tcp_simple_retransmit(&mut self, id: TcbId) {
        if self.burst.as_ref().is_some_and(|b| b.id == id) {
            self.burst = None;
        }
        let Some(t) = self.get_mut(id) else { return };
        if t.snd.una != t.snd.max {
            if t.cong.ca != CaState::Loss {
                t.cong.ca = CaState::Loss;
                t.cong.recover = t.snd.max;
            }
            if let Some(r) = t.cong.rack.as_deref_mut() {
                r.on_rto();
                t.cong.rack_timer = false;
            }
            t.cong.high_rxt = t.snd.una;
            t.cong.rtx_now = false;
            t.cong.dupacks = 0;
            t.cong.tlp_pending = false;
            t.snd.nxt = t.snd.una;
            t.rtt.timing = None;
        }
        self.requeue(id);
    }
}
