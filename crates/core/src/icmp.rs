//! ICMP (RFC 792): echo sockets for ping, and the rate limit on the errors
//! we send (RFC 1812 §4.3.2.8).

use crate::errno::{Errno, Result};
use crate::socket::{Readiness, Socket, SocketHandle};
use crate::stack::{OutPacket, Stack};
use crate::time::{Duration, Instant};
use std::collections::VecDeque;
use ustack_wire::{Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Addr};

/// One echo reply received by a ping socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    pub from: Ipv4Addr,
    pub seq_no: u16,
    pub data: Vec<u8>,
    /// When the stack received it.
    pub at: Instant,
}

/// A ping socket (like Linux's `SOCK_DGRAM, IPPROTO_ICMP`): sends echo
/// requests with its identifier and receives the matching replies.
#[derive(Debug)]
pub struct IcmpSocket {
    pub(crate) ident: u16,
    pub(crate) rx: VecDeque<EchoReply>,
    pub(crate) max_queued: usize,
    pub(crate) drops: u64,
}

impl IcmpSocket {
    pub(crate) fn new(ident: u16, max_queued: usize) -> Self {
        IcmpSocket {
            ident,
            rx: VecDeque::new(),
            max_queued,
            drops: 0,
        }
    }

    pub(crate) fn readiness(&self) -> Readiness {
        Readiness {
            readable: !self.rx.is_empty(),
            writable: true,
            ..Readiness::default()
        }
    }

    pub fn ident(&self) -> u16 {
        self.ident
    }
}

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: u32,
    burst: u32,
    tokens: u32,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: Instant::ZERO,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        if self.rate > 0 {
            let per_token = Duration::from_micros(1_000_000 / u64::from(self.rate).max(1));
            let elapsed = now - self.last;
            let new = (elapsed.as_micros() / per_token.as_micros().max(1)) as u64;
            if new > 0 {
                self.tokens = (u64::from(self.tokens) + new).min(u64::from(self.burst)) as u32;
                self.last = if self.tokens == self.burst {
                    now
                } else {
                    self.last + per_token * new as u32
                };
            }
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            false
        }
    }
}

impl Stack {
    fn icmp_mut(&mut self, h: SocketHandle) -> Result<&mut IcmpSocket> {
        match self.sockets.get_mut(h) {
            Some(Socket::Icmp(s)) => Ok(s),
            Some(_) => Err(Errno::EOPNOTSUPP),
            None => Err(Errno::EBADF),
        }
    }

    /// Opens a ping socket with a random free identifier.
    pub fn icmp_open(&mut self) -> SocketHandle {
        let mut ident = self.rng.next_u64() as u16;
        while self.icmp_idents.contains_key(&ident) {
            ident = ident.wrapping_add(1);
        }
        let h = self
            .sockets
            .insert(Socket::Icmp(IcmpSocket::new(ident, 128)));
        self.icmp_idents.insert(ident, h);
        h
    }

    /// Sends an echo request (RFC 792) to `dst`.
    pub fn icmp_send_echo(
        &mut self,
        h: SocketHandle,
        dst: Ipv4Addr,
        seq_no: u16,
        data: &[u8],
    ) -> Result<()> {
        let ident = self.icmp_mut(h)?.ident;
        if data.len() > 65535 - 20 - 8 {
            return Err(Errno::EMSGSIZE);
        }
        let next_hop = self.route(dst)?;
        if self.egress_full() {
            return Err(Errno::ENOBUFS);
        }
        let repr = Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        self.counters.icmp.out_echos += 1;
        self.queue_icmp(next_hop, dst, &repr);
        Ok(())
    }

    /// Takes the oldest echo reply; EAGAIN when none.
    pub fn icmp_recv(&mut self, h: SocketHandle) -> Result<EchoReply> {
        self.icmp_mut(h)?.rx.pop_front().ok_or(Errno::EAGAIN)
    }

    pub(crate) fn icmp_deliver_reply(&mut self, ident: u16, reply: EchoReply) {
        let Some(&h) = self.icmp_idents.get(&ident) else {
            return;
        };
        if let Some(Socket::Icmp(s)) = self.sockets.get_mut(h) {
            if s.rx.len() >= s.max_queued {
                s.drops += 1;
                return;
            }
            s.rx.push_back(reply);
            self.sockets.mark_changed(h);
        }
    }

    /// Builds and queues an ICMP message to `dst` via `next_hop`.
    pub(crate) fn queue_icmp(&mut self, next_hop: Ipv4Addr, dst: Ipv4Addr, repr: &Icmpv4Repr) {
        let mut payload = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(&mut payload[..]),
            &self.cfg.checksums,
        );
        self.counters.icmp.out_msgs += 1;
        let ip = self.ip_repr(dst, IpProtocol::Icmp, payload.len(), false);
        self.egress.push_back(OutPacket {
            next_hop,
            repr: ip,
            payload,
            owner: None,
        });
    }

    /// Sends an ICMP error about a datagram from `to`, if the rules allow:
    /// never about an ICMP error, a broadcast, a non-initial fragment, or a
    /// non-unicast source (RFC 1122 §3.2.2), and within the rate limit.
    pub(crate) fn send_icmp_error(&mut self, now: Instant, to: Ipv4Addr, repr: Icmpv4Repr) {
        if to.is_unspecified() || to.is_broadcast() || to.is_multicast() || self.is_broadcast(to) {
            return;
        }
        if !self.icmp_limiter.take(now) {
            self.counters.icmp.out_rate_limited += 1;
            return;
        }
        let Ok(next_hop) = self.route(to) else { return };
        if self.egress_full() {
            self.counters.ip.out_discards += 1;
            return;
        }
        match repr {
            Icmpv4Repr::DstUnreachable { .. } => self.counters.icmp.out_dest_unreachs += 1,
            Icmpv4Repr::TimeExceeded { .. } => self.counters.icmp.out_time_excds += 1,
            _ => {}
        }
        self.queue_icmp(next_hop, to, &repr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_limits_rate() {
        let mut b = TokenBucket::new(10, 5);
        let t = Instant::from_secs(10);
        let granted = (0..20).filter(|_| b.take(t)).count();
        assert_eq!(granted, 5, "burst");
        assert!(!b.take(t + Duration::from_millis(50)));
        assert!(
            b.take(t + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!b.take(t + Duration::from_millis(150)));
        let later = t + Duration::from_secs(60);
        assert_eq!(
            (0..20).filter(|_| b.take(later)).count(),
            5,
            "refill capped at burst"
        );
    }
}
