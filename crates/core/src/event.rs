//! Typed events the core reports and the caller drains
//! ([`Stack::take_events`](crate::Stack::take_events)): what an
//! application or a tool may watch (state transitions, established,
//! reset, closed, retransmission timeouts). `tracing` stays for humans;
//! programs read these. New kinds may be added: match with a wildcard.

use crate::socket::SocketHandle;
use crate::tcp::state::State;
use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// One event, stamped with the `now` of the call that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Instant,
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A TCP connection or listener moved through RFC 9293's state
    /// diagram (§3.3.2). A listener has no `remote`.
    TcpState {
        local: SocketAddr,
        remote: Option<SocketAddr>,
        from: State,
        to: State,
    },
    /// The handshake completed (RFC 9293 §3.5); `socket` is the handle
    /// (`None` for a passive connection not yet accepted).
    TcpEstablished {
        local: SocketAddr,
        remote: SocketAddr,
        socket: Option<SocketHandle>,
    },
    /// The peer reset the connection (RFC 9293 §3.10.7.4).
    TcpReset {
        local: SocketAddr,
        remote: SocketAddr,
        socket: Option<SocketHandle>,
    },
    /// The connection's TCB is gone (after TIME_WAIT, a reset, an abort
    /// or a timeout).
    TcpClosed {
        local: SocketAddr,
        remote: SocketAddr,
        socket: Option<SocketHandle>,
    },
    /// The retransmission timer fired (RFC 6298 §5.4); `backoff` counts
    /// the consecutive timeouts, `rto` is the timer now running.
    TcpRto {
        local: SocketAddr,
        remote: SocketAddr,
        backoff: u32,
        rto: Duration,
    },
    /// A TCP segment went out (`sent`) or came in, as on the wire (a GSO
    /// burst is one event). Only with [`StackConfig::trace`](crate::StackConfig::trace).
    /// `window` is the raw header field; `wscale` the SYN's option (RFC
    /// 7323 §2.2); `sack` the SACK blocks (RFC 2018 §3).
    TcpSegment {
        local: SocketAddr,
        remote: SocketAddr,
        sent: bool,
        seq: u32,
        ack: u32,
        len: u32,
        flags: u16,
        window: u16,
        wscale: Option<u8>,
        sack: Vec<(u32, u32)>,
    },
    /// Data sent again ([`StackConfig::trace`](crate::StackConfig::trace)).
    TcpRetransmit {
        local: SocketAddr,
        remote: SocketAddr,
        seq: u32,
        len: u32,
        cause: RetransmitCause,
    },
    /// The congestion window or slow-start threshold changed (RFC 5681
    /// §3), with the bytes in flight then ([`StackConfig::trace`](crate::StackConfig::trace)).
    TcpCwnd {
        local: SocketAddr,
        remote: SocketAddr,
        cwnd: u32,
        ssthresh: u32,
        in_flight: u32,
    },
    /// A round-trip time sample and the estimator after it (RFC 6298 §2)
    /// ([`StackConfig::trace`](crate::StackConfig::trace)).
    TcpRtt {
        local: SocketAddr,
        remote: SocketAddr,
        rtt: Duration,
        srtt: Duration,
        rto: Duration,
    },
    /// The peer's window (scaled, SND.WND) changed (RFC 9293 §3.10.7.4)
    /// ([`StackConfig::trace`](crate::StackConfig::trace)).
    TcpWindow {
        local: SocketAddr,
        remote: SocketAddr,
        una: u32,
        wnd: u32,
    },
}

/// Why data was sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetransmitCause {
    /// Duplicate ACKs or the SACK scoreboard (RFC 5681 §3.2, RFC 6675),
    /// or a NewReno partial ACK (RFC 6582).
    FastRetransmit,
    /// RACK judged it lost by time (RFC 8985 §6.2).
    Rack,
    /// The retransmission timer expired (RFC 6298 §5.4), or a SYN's.
    Rto,
    /// A tail loss probe (RFC 8985 §7).
    Tlp,
}

impl RetransmitCause {
    /// The name in traces: `fast_retransmit`, `rack`, `rto`, `tlp`.
    pub fn name(self) -> &'static str {
        match self {
            RetransmitCause::FastRetransmit => "fast_retransmit",
            RetransmitCause::Rack => "rack",
            RetransmitCause::Rto => "rto",
            RetransmitCause::Tlp => "tlp",
        }
    }
}

/// The segment event for an IP datagram carrying TCP, if `ip` is one
/// (fragments, IPv6 extension headers and malformed input are skipped).
pub(crate) fn segment_event(ip: &[u8], sent: bool) -> Option<EventKind> {
    use ustack_wire::ipv4::Ipv4Packet;
    use ustack_wire::tcp::{TcpOption, TcpPacket};
    let (src_ip, dst_ip, payload) = if ip.first()? >> 4 == 6 {
        let p = ustack_wire::Ipv6Packet::new_checked(ip).ok()?;
        if p.next_header() != u8::from(ustack_wire::IpProtocol::Tcp) {
            return None;
        }
        let (s, d) = (IpAddr::V6(p.src_addr()), IpAddr::V6(p.dst_addr()));
        let len = p.payload().len();
        (s, d, ip.get(ustack_wire::ipv6::HEADER_LEN..)?.get(..len)?)
    } else {
        let p = Ipv4Packet::new_checked(ip).ok()?;
        if p.protocol() != ustack_wire::IpProtocol::Tcp || p.more_frags() || p.frag_offset() != 0 {
            return None;
        }
        let (s, d) = (IpAddr::V4(p.src_addr()), IpAddr::V4(p.dst_addr()));
        let (hl, len) = (usize::from(p.header_len()), p.payload().len());
        (s, d, ip.get(hl..)?.get(..len)?)
    };
    let t = TcpPacket::new_checked(payload).ok()?;
    let (src, dst) = (
        SocketAddr::new(src_ip, t.src_port()),
        SocketAddr::new(dst_ip, t.dst_port()),
    );
    let (local, remote) = if sent { (src, dst) } else { (dst, src) };
    let mut wscale = None;
    let mut sack = Vec::new();
    let mut opts = t.options();
    while !opts.is_empty() {
        let Ok((rest, opt)) = TcpOption::parse(opts) else {
            break;
        };
        match opt {
            TcpOption::EndOfList => break,
            TcpOption::WindowScale(w) => wscale = Some(w),
            TcpOption::SackRange(blocks) => {
                sack.extend(blocks.iter().flatten().map(|&(a, b)| (a.0, b.0)));
            }
            _ => {}
        }
        opts = rest;
    }
    Some(EventKind::TcpSegment {
        local,
        remote,
        sent,
        seq: t.seq_number().0,
        ack: t.ack_number().0,
        len: t.payload().len() as u32,
        flags: t.flags().0,
        window: t.window_len(),
        wscale,
        sack,
    })
}

/// The queue of events not yet drained, bounded so that a caller that
/// never drains it does not grow it without end (the oldest are dropped
/// and counted).
#[derive(Debug)]
pub struct Events {
    queue: VecDeque<Event>,
    cap: usize,
    dropped: u64,
}

impl Events {
    pub fn new(cap: usize) -> Events {
        Events {
            queue: VecDeque::new(),
            cap,
            dropped: 0,
        }
    }

    /// Records an event at `at`.
    pub fn push(&mut self, at: Instant, kind: EventKind) {
        if self.cap == 0 {
            self.dropped += 1;
            return;
        }
        if self.queue.len() >= self.cap {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(Event { at, kind });
    }

    /// Takes every event recorded so far, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.queue.drain(..)
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rto(backoff: u32) -> EventKind {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        EventKind::TcpRto {
            local: a,
            remote: a,
            backoff,
            rto: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let mut q = Events::new(2);
        for b in 1..=3 {
            q.push(Instant::from_secs(u64::from(b)), rto(b));
        }
        assert_eq!(q.dropped(), 1);
        let kept: Vec<_> = q.drain().map(|e| e.kind).collect();
        assert_eq!(kept, [rto(2), rto(3)], "the newest two, in order");
        let mut off = Events::new(0);
        off.push(Instant::ZERO, rto(1));
        assert_eq!((off.drain().count(), off.dropped()), (0, 1));
    }
}
