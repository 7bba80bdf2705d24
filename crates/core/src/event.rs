//! Typed events the core reports and the caller drains
//! ([`Stack::take_events`](crate::Stack::take_events)): what an
//! application or a tool may watch (state transitions, established,
//! reset, closed, retransmission timeouts). `tracing` stays for humans;
//! programs read these. New kinds may be added: match with a wildcard.

use crate::socket::SocketHandle;
use crate::tcp::state::State;
use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use std::net::SocketAddrV4;

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
        local: SocketAddrV4,
        remote: Option<SocketAddrV4>,
        from: State,
        to: State,
    },
    /// The handshake completed (RFC 9293 §3.5); `socket` is the handle
    /// (`None` for a passive connection not yet accepted).
    TcpEstablished {
        local: SocketAddrV4,
        remote: SocketAddrV4,
        socket: Option<SocketHandle>,
    },
    /// The peer reset the connection (RFC 9293 §3.10.7.4).
    TcpReset {
        local: SocketAddrV4,
        remote: SocketAddrV4,
        socket: Option<SocketHandle>,
    },
    /// The connection's TCB is gone (after TIME_WAIT, a reset, an abort
    /// or a timeout).
    TcpClosed {
        local: SocketAddrV4,
        remote: SocketAddrV4,
        socket: Option<SocketHandle>,
    },
    /// The retransmission timer fired (RFC 6298 §5.4); `backoff` counts
    /// the consecutive timeouts, `rto` is the timer now running.
    TcpRto {
        local: SocketAddrV4,
        remote: SocketAddrV4,
        backoff: u32,
        rto: Duration,
    },
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
        let a: SocketAddrV4 = "10.0.0.1:1".parse().unwrap();
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
