//! Protocol counters in the spirit of `netstat -s` (names after the MIBs of
//! RFC 4293 (IP), RFC 4022 (TCP) and RFC 4113 (UDP), plus drop reasons).

use core::fmt;

macro_rules! counters {
    ($(#[$meta:meta])* $name:ident { $( $field:ident : $desc:literal ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name {
            $( #[doc = $desc] pub $field: u64, )*
        }

        impl $name {
            /// `(field name, description, value)` for every counter.
            pub fn entries(&self) -> Vec<$crate::counters::Entry> {
                vec![$( (stringify!($field), $desc, self.$field) ),*]
            }
        }
    };
}

counters!(
    /// Link layer (frames as the device hands them to us).
    LinkCounters {
        rx_frames: "frames received",
        tx_frames: "frames sent",
        rx_malformed: "frames too short or malformed",
        rx_csum_trusted: "frames whose checksums the device vouched for (not verified here)",
        rx_placed: "segments read straight into a receive buffer and taken there (no copy)",
        rx_placed_fallback: "frames read for the in-place path but taken the usual way (copied)",
        rx_not_for_us: "frames addressed to another host",
        rx_unknown_ethertype: "frames with an unknown ethertype",
        tx_dropped_too_big: "frames dropped: larger than the caller's buffer",
    }
);

counters!(
    /// ARP (RFC 826).
    ArpCounters {
        rx_requests: "requests received",
        rx_replies: "replies received",
        tx_requests: "requests sent",
        tx_replies: "replies sent",
        rx_malformed: "malformed packets",
        resolution_failures: "resolutions that timed out",
        pending_dropped: "packets dropped while awaiting resolution",
        cache_evictions: "cache entries evicted to stay within the limit",
    }
);

counters!(
    /// IPv4 (RFC 4293 ipSystemStats).
    IpCounters {
        in_receives: "total packets received",
        in_hdr_errors: "with invalid headers",
        in_csum_errors: "with bad header checksum",
        in_truncated: "truncated packets",
        in_addr_errors: "with invalid addresses (not for us; we do not forward)",
        in_unknown_protos: "with unknown protocol",
        in_discards: "incoming packets discarded",
        in_delivers: "incoming packets delivered",
        out_requests: "requests sent out",
        out_discards: "outgoing packets dropped",
        out_no_routes: "dropped because of missing route",
        reasm_reqds: "fragments received",
        reasm_oks: "datagrams reassembled",
        reasm_fails: "fragments dropped after timeout or overlap",
        reasm_timeout: "reassemblies timed out",
        reasm_overlaps: "reassemblies dropped for overlapping fragments",
        reasm_too_many: "reassemblies dropped: more fragments than the per-datagram limit",
        reasm_oversize: "fragments dropped: datagram would exceed 65535 bytes",
        reasm_memory_drops: "reassemblies dropped to stay within the memory limit",
        frag_oks: "datagrams fragmented",
        frag_fails: "datagrams that needed fragmenting but had DF set",
        frag_creates: "fragments created",
        pmtu_lowered: "path MTUs lowered by Fragmentation Needed (RFC 1191)",
        pmtu_expired: "lowered path MTUs forgotten after 10 minutes (RFC 1191 §6.3)",
    }
);

counters!(
    /// ICMP (RFC 792).
    IcmpCounters {
        in_msgs: "ICMP messages received",
        in_errors: "input ICMP message failed (malformed)",
        in_csum_errors: "with bad checksum",
        in_echos: "echo requests received",
        in_echo_reps: "echo replies received",
        in_dest_unreachs: "destination unreachable received",
        in_time_excds: "time exceeded received",
        in_unsupported: "of unsupported type",
        out_msgs: "ICMP messages sent",
        out_echos: "echo requests sent",
        out_echo_reps: "echo replies sent",
        out_dest_unreachs: "destination unreachable sent",
        out_time_excds: "time exceeded sent",
        out_rate_limited: "ICMP errors suppressed by the rate limit",
        echo_broadcast_ignored: "echo requests to a broadcast address ignored",
    }
);

counters!(
    /// UDP (RFC 4113).
    UdpCounters {
        in_datagrams: "packets received",
        no_ports: "packets to unknown port received",
        in_errors: "packet receive errors",
        in_csum_errors: "with bad checksum",
        rcvbuf_errors: "receive buffer errors (socket queue full)",
        out_datagrams: "packets sent",
        sndbuf_errors: "send buffer errors (EAGAIN)",
    }
);

counters!(
    /// TCP (RFC 4022 tcp MIB; the extras after Linux's `TcpExt` as `nstat` names them).
    TcpCounters {
        active_opens: "active connection openings",
        passive_opens: "passive connection openings",
        attempt_fails: "failed connection attempts",
        estab_resets: "connection resets received",
        curr_estab: "connections established",
        curr_time_wait: "connections in TIME_WAIT",
        in_segs: "segments received",
        out_segs: "segments sent out",
        retrans_segs: "segments retransmitted",
        in_errs: "bad segments received",
        in_csum_errors: "segments with bad checksum",
        out_rsts: "resets sent",
        listen_overflows: "times the listen queue of a socket overflowed",
        listen_drops: "SYNs to LISTEN sockets dropped",
        syncookies_sent: "SYN cookies sent",
        syncookies_recv: "SYN cookies received",
        syncookies_failed: "invalid SYN cookies received",
        challenge_acks: "challenge ACKs sent (RFC 5961)",
        syn_challenge: "SYNs in a synchronized state answered by a challenge ACK",
        challenge_ack_limited: "challenge ACKs suppressed by the rate limit",
        timeouts: "other TCP timeouts (retransmission timer expiries)",
        syn_timeouts: "connections that timed out in SYN_SENT",
        keepalive_probes: "keepalive probes sent",
        keepalive_timeouts: "connections dropped: keepalive probes unanswered",
        abort_on_timeout: "connections aborted due to timeout",
        abort_on_data: "connections reset due to unexpected data",
        abort_on_close: "connections reset due to early user close",
        abort_on_linger: "connections aborted due to linger timeout 0",
        hp_hits: "packet headers predicted (in-order data on the fast path)",
        burst_segs: "segments sent from a burst's headers (software segmentation)",
        tso_sends: "bursts handed to the device as one super-segment (TSO)",
        ofo_queued: "out-of-order segments queued",
        ofo_drops: "out-of-order segments dropped (queue range limit)",
        ofo_merged: "out-of-order bytes already held (duplicates)",
        paws_drops: "segments dropped by PAWS (RFC 7323 §5)",
        oow_rst_drops: "out-of-window RSTs ignored (RFC 9293 §3.10.7.4)",
        oow_ack_limited: "out-of-window segments not answered (ACK rate limit)",
        no_ack_drops: "segments without ACK dropped in a synchronized state",
        delayed_acks: "delayed ACKs sent",
        quick_acks: "ACKs sent at once (quick-ack, out of order, hole filled)",
        fast_retrans: "fast retransmits",
        reno_recovery: "times recovered from loss by NewReno fast recovery",
        sack_recovery: "times recovered from loss by SACK recovery",
        partial_acks: "partial ACKs during recovery",
        sack_blocks_recv: "SACK blocks received",
        sack_retrans: "segments retransmitted from the SACK scoreboard",
        rto_retrans: "segments retransmitted after a timeout",
        lost_retransmits: "retransmissions judged lost and sent again",
        rack_lost: "segments judged lost by RACK (RFC 8985)",
        rack_reo_timeouts: "RACK reordering timer expiries",
        tlp_probes: "tail loss probes sent (RFC 8985)",
        ecn_reductions: "congestion windows reduced for an ECN echo (RFC 3168)",
        window_probes: "zero-window probes sent",
        dup_acks_recv: "duplicate ACKs received",
        rcvbuf_grown: "times receive-buffer autotuning grew a buffer",
        idle_restarts: "congestion windows restarted after idle",
        rcv_pruned: "segments dropped: no receive buffer space",
        time_wait_recycled: "TIME_WAIT connections reused by a new SYN (RFC 6191)",
        time_wait_old_syns: "SYNs refused by a TIME_WAIT connection: not newer than it (RFC 6191)",
        time_wait_reused: "TIME_WAIT 4-tuples taken over by an outgoing connection (tcp_tw_reuse)",
        time_wait_overflows: "closing connections that skipped TIME_WAIT: max_time_wait reached",
        fin_wait2_timeouts: "orphaned FIN_WAIT_2 connections timed out",
        rx_direct_bytes: "bytes received straight into a posted buffer (no ring copy)",
        tx_zc_bytes: "bytes queued for sending from lent buffers (no ring copy)",
        time_waits_done: "TIME_WAIT connections ended",
        ack_dropped_overflow: "final handshake ACKs dropped: accept queue full",
        icmp_out_of_window: "ICMP errors ignored: quoted segment not in flight (RFC 5927)",
        mss_reductions: "send MSS lowered to a smaller path MTU (RFC 1191 §6.4)",
        mtu_blackholes: "send MSS lowered after timeouts of full segments (RFC 4821 §7.7)",
    }
);

/// One counter: `(field name, description, value)`.
pub type Entry = (&'static str, &'static str, u64);

/// Every counter of one stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub link: LinkCounters,
    pub arp: ArpCounters,
    pub ip: IpCounters,
    pub icmp: IcmpCounters,
    pub udp: UdpCounters,
    pub tcp: TcpCounters,
}

impl Counters {
    /// `(section, entries)` in display order.
    pub fn sections(&self) -> Vec<(&'static str, Vec<Entry>)> {
        vec![
            ("Link", self.link.entries()),
            ("Arp", self.arp.entries()),
            ("Ip", self.ip.entries()),
            ("Icmp", self.icmp.entries()),
            ("Udp", self.udp.entries()),
            ("Tcp", self.tcp.entries()),
        ]
    }
}

/// `netstat -s` style: one section per protocol, only non-zero counters
/// unless `{:#}` (alternate) is used.
/// `desc` for a count of one: its first plural word made singular
/// ("1 packet sent", "1 echo reply received", "1 time the listen queue").
fn singular(desc: &str) -> String {
    let head = desc.find(['(', ':']).unwrap_or(desc.len());
    let mut at = 0;
    for word in desc[..head].split(' ') {
        let w = word.trim_end_matches(|c: char| !c.is_alphanumeric());
        if w.ends_with('s') && !w.ends_with("ss") && w.len() > 2 {
            let stem = if w.ends_with("sses") {
                &w[..w.len() - 2]
            } else if w.ends_with("ies") && w != "cookies" {
                return format!(
                    "{}{}y{}",
                    &desc[..at],
                    &w[..w.len() - 3],
                    &desc[at + w.len()..]
                );
            } else {
                &w[..w.len() - 1]
            };
            return format!("{}{stem}{}", &desc[..at], &desc[at + w.len()..]);
        }
        at += word.len() + 1;
    }
    desc.to_owned()
}

/// `netstat -s` style: each section with what it counted (`{:#}`: every
/// counter, zeros and empty sections too).
impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = f.alternate();
        for (section, entries) in self.sections() {
            if !all && entries.iter().all(|e| e.2 == 0) {
                continue;
            }
            writeln!(f, "{section}:")?;
            for (_, desc, value) in entries {
                if value == 1 {
                    writeln!(f, "    1 {}", singular(desc))?;
                } else if all || value != 0 {
                    writeln!(f, "    {value} {desc}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_nonzero() {
        let mut c = Counters::default();
        c.udp.no_ports = 3;
        let s = c.to_string();
        assert!(
            s.contains("Udp:\n    3 packets to unknown port received"),
            "{s}"
        );
        assert!(!s.contains("packets sent"));
        assert!(format!("{c:#}").contains("0 packets sent"));
        // No heading without a count under it; one of a thing is singular.
        assert!(!s.contains("Arp:") && !s.contains("Icmp:"), "{s}");
        assert!(format!("{c:#}").contains("Arp:\n"));
        for (desc, one) in [
            ("packets sent", "packet sent"),
            ("echo replies received", "echo reply received"),
            ("SYN cookies sent", "SYN cookie sent"),
            (
                "tail loss probes sent (RFC 8985)",
                "tail loss probe sent (RFC 8985)",
            ),
            (
                "with invalid addresses (not for us; we do not forward)",
                "with invalid address (not for us; we do not forward)",
            ),
            (
                "RACK reordering timer expiries",
                "RACK reordering timer expiry",
            ),
            ("active connection openings", "active connection opening"),
            (
                "SYNs to LISTEN sockets dropped",
                "SYN to LISTEN sockets dropped",
            ),
            (
                "destination unreachable received",
                "destination unreachable received",
            ),
            (
                "final handshake ACKs dropped: accept queue full",
                "final handshake ACK dropped: accept queue full",
            ),
        ] {
            assert_eq!(singular(desc), one);
        }
        c.udp.no_ports = 1;
        assert!(c
            .to_string()
            .contains("    1 packet to unknown port received\n"));
        c.tcp.listen_overflows = 2;
        c.tcp.listen_drops = 5;
        let s = c.to_string();
        assert!(
            s.contains("Tcp:\n    2 times the listen queue of a socket overflowed\n    5 SYNs to LISTEN sockets dropped"),
            "{s}"
        );
    }
}
