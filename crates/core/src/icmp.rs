//! ICMP (RFC 792): echo sockets for ping, and the rate limit on the errors
//! we send (RFC 1812 §4.3.2.8).

use crate::cx::Cx;
use crate::errno::{Errno, Result};
use crate::ipv4::output::{is_broadcast, route, IpPair};
use crate::ratelimit::TokenBucket;
use crate::socket::{Proto, Readiness, Slab, SocketHandle};
use crate::time::Instant;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use ustack_wire::{DstUnreachable, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Addr};

/// One echo reply received by a ping socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    pub from: IpAddr,
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

/// What became of an ICMP message handed to [`Icmp::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IcmpIn<'a> {
    /// Answered, delivered, or dropped and counted.
    Done,
    /// An error about a datagram we sent (`invoking`, its quoted header
    /// and leading bytes), for the transport that sent it (RFC 1122
    /// §3.2.2.1, §4.1.3.3, §4.2.3.9); `mtu`: the next-hop MTU of a
    /// Fragmentation Needed (`EMSGSIZE`, RFC 1191 §4), else 0.
    Error {
        invoking: &'a [u8],
        err: Errno,
        mtu: u16,
    },
}

/// ICMP: echo sockets by identifier, and the rate limit on the errors
/// we send.
pub struct Icmp {
    pub(crate) socks: Slab<IcmpSocket>,
    idents: HashMap<u16, SocketHandle>,
    limiter: TokenBucket,
}

impl Icmp {
    pub(crate) fn new(errors_per_sec: u32) -> Icmp {
        Icmp {
            socks: Slab::default(),
            idents: HashMap::new(),
            limiter: TokenBucket::new(errors_per_sec, errors_per_sec.max(1)),
        }
    }

    /// One ICMP message for us (RFC 792): echo requests answered, echo
    /// replies to their socket, errors handed back for the transports.
    pub(crate) fn process<'p>(
        &mut self,
        cx: &mut Cx<'_>,
        ip: IpPair,
        payload: &'p [u8],
        broadcast: bool,
    ) -> IcmpIn<'p> {
        let now = cx.now;
        cx.sh.counters.icmp.in_msgs += 1;
        let Ok(packet) = Icmpv4Packet::new_checked(payload) else {
            cx.sh.counters.icmp.in_errors += 1;
            return IcmpIn::Done;
        };
        let repr = match Icmpv4Repr::parse(&packet, &cx.cfg.checksums) {
            Ok(r) => r,
            Err(ustack_wire::Error::Checksum) => {
                cx.sh.counters.icmp.in_csum_errors += 1;
                cx.sh.counters.icmp.in_errors += 1;
                return IcmpIn::Done;
            }
            Err(ustack_wire::Error::Unsupported) => {
                cx.sh.counters.icmp.in_unsupported += 1;
                return IcmpIn::Done;
            }
            Err(_) => {
                cx.sh.counters.icmp.in_errors += 1;
                return IcmpIn::Done;
            }
        };
        cx.sh.counters.ip.in_delivers += 1;
        match repr {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                cx.sh.counters.icmp.in_echos += 1;
                if broadcast && !cx.cfg.echo_broadcasts {
                    cx.sh.counters.icmp.echo_broadcast_ignored += 1;
                    return IcmpIn::Done;
                }
                // Transparent mode: an echo to another address is answered
                // from that address, or ignored (`transparent_echo`).
                let ours = cx.cfg.addr.address();
                let from = if broadcast { ours } else { ip.dst };
                if from != ours && !cx.cfg.transparent_echo {
                    return IcmpIn::Done;
                }
                let Ok(next_hop) = route(cx.cfg, ip.src) else {
                    cx.sh.counters.ip.out_no_routes += 1;
                    return IcmpIn::Done;
                };
                if cx.sh.ip.egress_full(cx.cfg) {
                    cx.sh.counters.ip.out_discards += 1;
                    return IcmpIn::Done;
                }
                cx.sh.counters.icmp.out_echo_reps += 1;
                let reply = Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                let mut payload = vec![0u8; reply.buffer_len()];
                reply.emit(
                    &mut Icmpv4Packet::new_unchecked(&mut payload[..]),
                    &cx.cfg.checksums,
                );
                cx.sh.counters.icmp.out_msgs += 1;
                cx.sh.ip.queue_from(
                    cx.cfg,
                    from,
                    next_hop,
                    ip.src,
                    IpProtocol::Icmp,
                    payload,
                    None,
                );
                IcmpIn::Done
            }
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                cx.sh.counters.icmp.in_echo_reps += 1;
                let reply = EchoReply {
                    from: IpAddr::V4(ip.src),
                    seq_no,
                    data: data.to_vec(),
                    at: now,
                };
                self.icmp_deliver_reply(cx, ident, reply);
                IcmpIn::Done
            }
            Icmpv4Repr::DstUnreachable {
                reason,
                invoking,
                next_hop_mtu,
            } => {
                cx.sh.counters.icmp.in_dest_unreachs += 1;
                let err = match reason {
                    DstUnreachable::PortUnreachable | DstUnreachable::ProtoUnreachable => {
                        Errno::ECONNREFUSED
                    }
                    DstUnreachable::NetUnreachable => Errno::ENETUNREACH,
                    DstUnreachable::FragRequired => Errno::EMSGSIZE,
                    _ => Errno::EHOSTUNREACH,
                };
                let mtu = if err == Errno::EMSGSIZE {
                    next_hop_mtu
                } else {
                    0
                };
                IcmpIn::Error { invoking, err, mtu }
            }
            Icmpv4Repr::TimeExceeded { invoking, .. } => {
                cx.sh.counters.icmp.in_time_excds += 1;
                IcmpIn::Error {
                    invoking,
                    err: Errno::EHOSTUNREACH,
                    mtu: 0,
                }
            }
        }
    }

    pub(crate) fn close(&mut self, h: SocketHandle) {
        if let Some(s) = self.socks.remove(h) {
            self.idents.remove(&s.ident);
        }
    }

    fn icmp_mut(&mut self, h: SocketHandle) -> Result<&mut IcmpSocket> {
        self.socks.get_mut(h).ok_or(Errno::EBADF)
    }

    /// Opens a ping socket with a random free identifier.
    pub fn icmp_open(&mut self, cx: &mut Cx<'_>) -> SocketHandle {
        let mut ident = cx.sh.rng.next_u64() as u16;
        while self.idents.contains_key(&ident) {
            ident = ident.wrapping_add(1);
        }
        let h = cx.sh.handles.insert(Proto::Icmp);
        self.socks.insert(h, IcmpSocket::new(ident, 128));
        self.idents.insert(ident, h);
        h
    }

    /// Sends an echo request (RFC 792) to `dst`.
    pub fn icmp_send_echo(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        dst: Ipv4Addr,
        seq_no: u16,
        data: &[u8],
    ) -> Result<()> {
        let ident = self.icmp_mut(h)?.ident;
        if data.len() > 65535 - 20 - 8 {
            return Err(Errno::EMSGSIZE);
        }
        let next_hop = route(cx.cfg, dst)?;
        if cx.sh.ip.egress_full(cx.cfg) {
            return Err(Errno::ENOBUFS);
        }
        let repr = Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        cx.sh.counters.icmp.out_echos += 1;
        self.queue_icmp(cx, next_hop, dst, &repr);
        Ok(())
    }

    /// Sends an ICMPv6 echo request (RFC 4443 §4.1) to `dst`, with the
    /// socket's identifier; the reply comes back like an IPv4 one.
    pub(crate) fn icmp_send_echo6(
        &mut self,
        cfg: &crate::config::StackConfig,
        ip6: &mut crate::ipv6::Ipv6,
        h: SocketHandle,
        dst: Ipv6Addr,
        seq_no: u16,
        data: &[u8],
    ) -> Result<()> {
        let ident = self.icmp_mut(h)?.ident;
        if data.len() > 65535 - 8 {
            return Err(Errno::EMSGSIZE);
        }
        if dst.is_unspecified() {
            return Err(Errno::EINVAL);
        }
        if ip6.out.len() >= cfg.max_egress_packets {
            return Err(Errno::ENOBUFS);
        }
        ip6.send_echo(cfg, dst, ident, seq_no, data);
        Ok(())
    }

    /// Takes the oldest echo reply; EAGAIN when none.
    pub fn icmp_recv(&mut self, h: SocketHandle) -> Result<EchoReply> {
        self.icmp_mut(h)?.rx.pop_front().ok_or(Errno::EAGAIN)
    }

    pub(crate) fn icmp_deliver_reply(&mut self, cx: &mut Cx<'_>, ident: u16, reply: EchoReply) {
        let Some(&h) = self.idents.get(&ident) else {
            return;
        };
        if let Some(s) = self.socks.get_mut(h) {
            if s.rx.len() >= s.max_queued {
                s.drops += 1;
                return;
            }
            s.rx.push_back(reply);
            cx.sh.handles.mark_changed(h);
        }
    }

    /// Builds and queues an ICMP message to `dst` via `next_hop`.
    pub(crate) fn queue_icmp(
        &mut self,
        cx: &mut Cx<'_>,
        next_hop: Ipv4Addr,
        dst: Ipv4Addr,
        repr: &Icmpv4Repr,
    ) {
        let mut payload = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(&mut payload[..]),
            &cx.cfg.checksums,
        );
        cx.sh.counters.icmp.out_msgs += 1;
        cx.sh
            .ip
            .queue(cx.cfg, next_hop, dst, IpProtocol::Icmp, payload, None);
    }

    /// Sends an ICMP error about a datagram from `to`, if the rules allow:
    /// never about an ICMP error, a broadcast, a non-initial fragment, or a
    /// non-unicast source (RFC 1122 §3.2.2), and within the rate limit.
    pub(crate) fn send_icmp_error(&mut self, cx: &mut Cx<'_>, to: Ipv4Addr, repr: Icmpv4Repr) {
        if to.is_unspecified() || to.is_broadcast() || to.is_multicast() || is_broadcast(cx.cfg, to)
        {
            return;
        }
        if !self.limiter.take(cx.now) {
            cx.sh.counters.icmp.out_rate_limited += 1;
            return;
        }
        let Ok(next_hop) = route(cx.cfg, to) else {
            return;
        };
        if cx.sh.ip.egress_full(cx.cfg) {
            cx.sh.counters.ip.out_discards += 1;
            return;
        }
        match repr {
            Icmpv4Repr::DstUnreachable { .. } => cx.sh.counters.icmp.out_dest_unreachs += 1,
            Icmpv4Repr::TimeExceeded { .. } => cx.sh.counters.icmp.out_time_excds += 1,
            _ => {}
        }
        self.queue_icmp(cx, next_hop, to, &repr);
    }
}

#[cfg(test)]
mod tests {
    //! `Icmp` driven alone, with a context built from parts.
    use super::*;
    use crate::config::{Medium, StackConfig};
    use crate::cx::Parts;
    use ustack_wire::{ChecksumCaps, Ipv4Cidr};

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn message(repr: &Icmpv4Repr) -> Vec<u8> {
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(&mut b[..]),
            &ChecksumCaps::default(),
        );
        b
    }

    #[test]
    fn answers_echo_and_hands_back_errors_without_a_stack() {
        let mut p = Parts::new(StackConfig::new(Medium::Ip, Ipv4Cidr::new(US, 24)));
        let mut icmp = Icmp::new(10);
        let now = Instant::from_secs(1);
        let ip = IpPair { src: PEER, dst: US };
        let req = message(&Icmpv4Repr::EchoRequest {
            ident: 1,
            seq_no: 2,
            data: b"abc",
        });
        assert_eq!(icmp.process(&mut p.cx(now), ip, &req, false), IcmpIn::Done);
        let reply = p.sh.ip.egress.pop_front().expect("the echo reply, queued");
        assert_eq!(reply.repr.dst_addr, PEER);
        assert_eq!(p.sh.counters.icmp.out_echo_reps, 1);
        // An error about a datagram we sent goes back to the caller.
        let quote = [0x45u8; 28];
        let err = message(&Icmpv4Repr::DstUnreachable {
            reason: DstUnreachable::PortUnreachable,
            next_hop_mtu: 0,
            invoking: &quote,
        });
        match icmp.process(&mut p.cx(now), ip, &err, false) {
            IcmpIn::Error { err, .. } => assert_eq!(err, Errno::ECONNREFUSED),
            other => panic!("{other:?}"),
        }
    }
}
