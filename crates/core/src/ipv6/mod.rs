//! The IPv6 layer (RFC 8200) beside the IPv4 one: input (extension-header
//! walk, our addresses and multicast groups), ICMPv6 (RFC 4443: echo,
//! errors within a rate limit), Neighbor Discovery answers (RFC 4861
//! §7.2.4) and the output queue of whole IPv6 packets.
//!
//! TCP and UDP datagrams go up to the transports through the stack
//! (`In6::Upper`); their segments come back as whole packets on `out`.

pub mod neighbor;
pub mod reassembly;

use crate::config::{Medium, StackConfig};
use crate::errno::Errno;
use crate::ratelimit::TokenBucket;
use crate::time::Instant;
use neighbor::{NdConfig, NeighborCache, Solicit};
use reassembly::{Reasm, Reassembler6};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use ustack_wire::icmpv6::{self, unreachable};
use ustack_wire::ipv6::{self, next_header, ExtError};
use ustack_wire::ndp::na_flags;
use ustack_wire::{
    EthernetAddress, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv6Packet, Ipv6Repr, NdpRepr,
};

/// What the IPv6 layer counted (RFC 4293 ipIfStatsTable / icmpStatsTable, v6 rows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ipv6Counters {
    pub in_receives: u64,
    pub in_hdr_errors: u64,
    pub in_truncated: u64,
    pub in_addr_errors: u64,
    pub in_unknown_protos: u64,
    pub in_discards: u64,
    pub in_delivers: u64,
    pub reasm_reqds: u64,
    pub reasm_oks: u64,
    pub reasm_fails: u64,
    pub reasm_timeout: u64,
    pub frag_creates: u64,
    /// Path MTUs lowered by Packet Too Big (RFC 8201).
    pub pmtu_lowered: u64,
    pub out_requests: u64,
    pub out_discards: u64,
    pub icmp_in_msgs: u64,
    pub icmp_in_errors: u64,
    pub icmp_in_csum_errors: u64,
    pub icmp_in_echos: u64,
    pub icmp_in_echo_reps: u64,
    pub icmp_out_msgs: u64,
    pub icmp_out_echo_reps: u64,
    pub icmp_out_errors: u64,
    pub icmp_out_param_probs: u64,
    pub icmp_out_dest_unreachs: u64,
    pub icmp_out_rate_limited: u64,
    pub nd_in_solicits: u64,
    pub nd_in_adverts: u64,
    pub nd_out_solicits: u64,
    pub nd_out_adverts: u64,
    /// Packets dropped because their neighbour never answered.
    pub nd_resolution_failures: u64,
    /// Our addresses found held by another node (RFC 4862 §5.4.4).
    pub dad_duplicates: u64,
}

/// The link-scope all-nodes group ff02::1 (RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// An echo reply from an IPv6 peer, for a ping socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EchoReply6 {
    pub from: Ipv6Addr,
    pub ident: u16,
    pub seq_no: u16,
    pub data: Vec<u8>,
}

/// What an IPv6 packet in leaves for the stack to deliver.
#[derive(Debug)]
pub(crate) enum In6 {
    /// An echo reply, for a ping socket.
    Echo(EchoReply6),
    /// A TCP or UDP datagram (`proto`), its upper-layer header `at` bytes
    /// into the packet: `packet` when reassembled, else the bytes handed
    /// to `input` (up to the payload length).
    Upper {
        proto: u8,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        multicast: bool,
        at: usize,
        packet: Option<Vec<u8>>,
    },
    /// The path MTU towards `dst` was lowered to `mtu` (RFC 8201 §4): its
    /// TCP connections resegment.
    PathMtu { dst: Ipv6Addr, mtu: usize },
    /// An ICMPv6 error about a TCP or UDP datagram we sent from `local` to
    /// `remote` (RFC 4443 §2.4 (d)), named as the IPv4 side names them.
    Error {
        proto: IpProtocol,
        local: SocketAddr,
        remote: SocketAddr,
        err: Errno,
    },
}

/// The socket error of an ICMPv6 error: port unreachable (RFC 4443 §3.1
/// code 4) refuses, no route (code 0) is the network's, the rest the host's.
fn error_errno(repr: &Icmpv6Repr) -> Option<Errno> {
    Some(match repr {
        Icmpv6Repr::DstUnreachable { code, .. } => match *code {
            0 => Errno::ENETUNREACH,
            unreachable::PORT_UNREACHABLE => Errno::ECONNREFUSED,
            _ => Errno::EHOSTUNREACH,
        },
        Icmpv6Repr::TimeExceeded { .. } | Icmpv6Repr::ParamProblem { .. } => Errno::EHOSTUNREACH,
        _ => return None,
    })
}

/// The IPv6 layer's state: the output queue and the ICMPv6 error limiter.
pub struct Ipv6 {
    /// Whole IPv6 packets (no link header) waiting for `transmit`.
    pub(crate) out: VecDeque<Vec<u8>>,
    limiter: TokenBucket,
    pub counters: Ipv6Counters,
    /// Link-layer addresses of neighbours (Ethernet medium, RFC 4861 §7.3).
    pub(crate) neigh: NeighborCache,
    pub(crate) reasm: Reassembler6,
    /// Identification of the next datagram we fragment (RFC 8200 §4.5).
    frag_ident: u32,
    /// Path MTUs lowered by Packet Too Big, per destination, with when
    /// they expire (RFC 8201 §4, §5.3).
    pmtu: HashMap<Ipv6Addr, (usize, Instant)>,
    /// Keys the flow-label hash (RFC 6437 §3); from the seed, so that runs
    /// repeat (the stack's RNG draws are TCP's).
    flow_secret: u64,
    /// Our addresses another node on the link also holds (DAD, RFC 4862
    /// §5.4.4): no longer used.
    pub(crate) duplicates: Vec<Ipv6Addr>,
}

/// How long a lowered path MTU holds before the link MTU is tried again
/// (RFC 8201 §4: at least 5 minutes, 10 recommended).
pub const PMTU_TIMEOUT: crate::time::Duration = crate::time::Duration::from_secs(600);

/// Destinations whose path MTU is remembered (the cache's bound).
const PMTU_MAX_ENTRIES: usize = 1024;

/// The largest ICMPv6 error: the IPv6 minimum MTU (RFC 4443 §2.4 (c)).
const ERROR_MAX: usize = icmpv6::MIN_MTU;

/// Our link-local address: modified EUI-64 of the MAC (RFC 4291 §2.5.6).
pub fn link_local(cfg: &StackConfig) -> Ipv6Addr {
    ipv6::link_local_from_mac(cfg.mac.0)
}

/// Whether `a` is one of our unicast addresses.
pub fn is_ours(cfg: &StackConfig, a: &Ipv6Addr) -> bool {
    *a == link_local(cfg) || cfg.addrs6.iter().any(|c| c.address() == *a)
}

/// Whether we listen to multicast group `a`: all-nodes, or the
/// solicited-node group of one of our addresses (RFC 4861 §7.2.1).
fn in_group(cfg: &StackConfig, a: &Ipv6Addr) -> bool {
    *a == ALL_NODES
        || ipv6::solicited_node(&link_local(cfg)) == *a
        || cfg
            .addrs6
            .iter()
            .any(|c| ipv6::solicited_node(&c.address()) == *a)
}

/// The source for a packet to `dst` (RFC 6724 §5 reduced to scope): the
/// link-local address for link-local or multicast peers, else the first
/// configured address whose prefix holds `dst`, else the first configured.
pub fn source_for(cfg: &StackConfig, dst: &Ipv6Addr) -> Ipv6Addr {
    if dst.is_unicast_link_local() || dst.is_multicast() {
        return link_local(cfg);
    }
    cfg.addrs6
        .iter()
        .find(|c| c.contains_addr(dst))
        .or(cfg.addrs6.first())
        .map(|c| c.address())
        .unwrap_or_else(|| link_local(cfg))
}

/// The upper layer behind the extension headers, skipped by their lengths
/// alone (the packet may be the one whose options were refused).
fn skip_ext_headers(mut nh: u8, mut b: &[u8]) -> Option<(u8, &[u8])> {
    loop {
        let len = match nh {
            next_header::HOP_BY_HOP | next_header::ROUTING | next_header::DEST_OPTS => {
                (usize::from(*b.get(1)?) + 1) * 8
            }
            next_header::FRAGMENT => 8,
            _ => return Some((nh, b)),
        };
        nh = *b.first()?;
        b = b.get(len..)?;
    }
}

/// The flow label of packets from `src` to `dst` of `proto` (RFC 6437 §3):
/// a keyed hash of the flow, the same for all its packets, never 0 (0 is
/// "unlabelled").
pub fn flow_label(secret: u64, src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (secret, src, dst, proto).hash(&mut h);
    let v = h.finish();
    let label = ((v ^ (v >> 32)) as u32) & 0x000f_ffff;
    label.max(1)
}

/// The Ethernet address of an IPv6 multicast group (RFC 2464 §7).
pub fn multicast_mac(a: &Ipv6Addr) -> EthernetAddress {
    let o = a.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

impl Ipv6 {
    pub(crate) fn new(cfg: &StackConfig) -> Ipv6 {
        let rate = cfg.icmp_errors_per_sec;
        let mut me = Ipv6 {
            out: VecDeque::new(),
            limiter: TokenBucket::new(rate, rate.max(1)),
            counters: Ipv6Counters::default(),
            neigh: NeighborCache::new(NdConfig::default()),
            reasm: Reassembler6::new(cfg.reassembly.clone()),
            frag_ident: (cfg.seed as u32).wrapping_mul(0x9e37_79b9) | 1,
            flow_secret: cfg.seed ^ 0x6a09_e667_f3bc_c909,
            pmtu: HashMap::new(),
            duplicates: Vec::new(),
        };
        if cfg.medium == Medium::Ethernet && !cfg.addrs6.is_empty() {
            me.start_dad(cfg);
        }
        me
    }

    /// Duplicate Address Detection (RFC 4862 §5.4.2): a solicitation from
    /// the unspecified address for each of our addresses. They are used at
    /// once, optimistically (RFC 4429 §3.3); an advertisement for one of
    /// them marks it duplicate and it is dropped (§5.4.4).
    fn start_dad(&mut self, cfg: &StackConfig) {
        let mut addrs = vec![link_local(cfg)];
        addrs.extend(cfg.addrs6.iter().map(|c| c.address()));
        for a in addrs {
            let ns = Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
                target: a,
                lladdr: None,
            });
            self.counters.nd_out_solicits += 1;
            self.queue_icmp(
                cfg,
                Ipv6Addr::UNSPECIFIED,
                ipv6::solicited_node(&a),
                255,
                &ns,
            );
        }
    }

    /// Whether `a` is one of our addresses in use (not found duplicate).
    fn ours(&self, cfg: &StackConfig, a: &Ipv6Addr) -> bool {
        is_ours(cfg, a) && !self.duplicates.contains(a)
    }

    /// Builds an IPv6 packet with header `repr` around `repr.payload_len`
    /// upper-layer bytes (written by `fill`) and queues it.
    fn queue(&mut self, cfg: &StackConfig, repr: Ipv6Repr, fill: impl FnOnce(&mut [u8])) {
        if self.out.len() >= cfg.max_egress_packets {
            self.counters.out_discards += 1;
            return;
        }
        let mut b = vec![0u8; ipv6::HEADER_LEN + repr.payload_len];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
        fill(&mut b[ipv6::HEADER_LEN..]);
        self.counters.out_requests += 1;
        self.out.push_back(b);
    }

    /// Queues an ICMPv6 message.
    fn queue_icmp(
        &mut self,
        cfg: &StackConfig,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        repr: &Icmpv6Repr,
    ) {
        self.counters.icmp_out_msgs += 1;
        let caps = cfg.checksums;
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Icmpv6,
            payload_len: repr.buffer_len(),
            hop_limit,
            traffic_class: 0,
            flow_label: flow_label(self.flow_secret, &src, &dst, next_header::ICMPV6),
        };
        self.queue(cfg, ip, |b| {
            repr.emit(src, dst, &mut Icmpv6Packet::new_unchecked(b), &caps)
        });
    }

    /// Sends an echo request (RFC 4443 §4.1).
    pub(crate) fn send_echo(
        &mut self,
        cfg: &StackConfig,
        dst: Ipv6Addr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) {
        let src = source_for(cfg, &dst);
        let repr = Icmpv6Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        self.queue_icmp(cfg, src, dst, cfg.hop_limit6, &repr);
    }

    /// Sends an ICMPv6 error about `invoking` (the offending packet from its
    /// IPv6 header on), if RFC 4443 §2.4 (e) allows: never to a multicast
    /// or unspecified source, never about an ICMPv6 error, never about a
    /// packet to a multicast group (but Packet Too Big, or Parameter
    /// Problem code 2 for an option of action 10), and within the rate
    /// limit (§2.4 (f)). Cut to the minimum MTU (§2.4 (c)).
    pub(crate) fn send_error(
        &mut self,
        cfg: &StackConfig,
        now: Instant,
        invoking: &[u8],
        make: impl FnOnce(&[u8]) -> Icmpv6Repr<'_>,
    ) {
        let Ok(p) = Ipv6Packet::new_checked(invoking) else {
            return;
        };
        let (src, dst) = (p.src_addr(), p.dst_addr());
        if src.is_multicast() || src.is_unspecified() {
            return;
        }
        if let Some((next_header::ICMPV6, upper)) = skip_ext_headers(p.next_header(), p.payload()) {
            if upper.first().is_some_and(|t| *t < 128) {
                return;
            }
        }
        let quote = &invoking[..invoking.len().min(ERROR_MAX - ipv6::HEADER_LEN - 8)];
        let repr = make(quote);
        let allowed_to_group = matches!(
            repr,
            Icmpv6Repr::PacketTooBig { .. }
                | Icmpv6Repr::ParamProblem {
                    code: ipv6::param_problem::UNRECOGNIZED_OPTION,
                    ..
                }
        );
        if dst.is_multicast() && !allowed_to_group {
            return;
        }
        if !self.limiter.take(now) {
            self.counters.icmp_out_rate_limited += 1;
            return;
        }
        self.counters.icmp_out_errors += 1;
        match repr {
            Icmpv6Repr::ParamProblem { .. } => self.counters.icmp_out_param_probs += 1,
            Icmpv6Repr::DstUnreachable { .. } => self.counters.icmp_out_dest_unreachs += 1,
            _ => {}
        }
        let from = if dst.is_multicast() {
            source_for(cfg, &src)
        } else {
            dst
        };
        self.queue_icmp(cfg, from, src, cfg.hop_limit6, &repr);
    }

    /// One IPv6 packet from the link (RFC 8200). Echo replies for our ping
    /// sockets, and TCP and UDP for the transports, come back out.
    pub(crate) fn input(&mut self, cfg: &StackConfig, now: Instant, bytes: &[u8]) -> Option<In6> {
        self.counters.in_receives += 1;
        let packet = match Ipv6Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(ustack_wire::Error::Truncated) => {
                self.counters.in_truncated += 1;
                return None;
            }
            Err(_) => {
                self.counters.in_hdr_errors += 1;
                return None;
            }
        };
        let (src, dst) = (packet.src_addr(), packet.dst_addr());
        // RFC 4291 §2.7: a multicast address is never a source.
        if src.is_multicast() {
            self.counters.in_addr_errors += 1;
            return None;
        }
        let multicast = dst.is_multicast();
        if !(self.ours(cfg, &dst) || (multicast && in_group(cfg, &dst))) {
            // A host, not a router (RFC 8200 §4: "a node that is not a router").
            self.counters.in_addr_errors += 1;
            return None;
        }
        let whole = &bytes[..ipv6::HEADER_LEN + usize::from(packet.payload_len())];
        let payload = packet.payload();
        let walk = match ipv6::walk_ext_headers(packet.next_header(), payload, multicast) {
            Ok(w) => w,
            Err(ExtError::ParamProblem { code, pointer }) => {
                self.counters.in_hdr_errors += 1;
                self.send_error(cfg, now, whole, |q| Icmpv6Repr::ParamProblem {
                    code,
                    pointer,
                    invoking: q,
                });
                return None;
            }
            Err(ExtError::Truncated) => {
                self.counters.in_truncated += 1;
                return None;
            }
            Err(ExtError::Discard) => {
                self.counters.in_discards += 1;
                return None;
            }
        };
        if let Some(f) = walk.fragment.filter(|f| !f.is_atomic()) {
            self.counters.reasm_reqds += 1;
            let at = ipv6::HEADER_LEN + walk.fragment_offset;
            let named = walk.fragment_pointer as usize;
            return match self.reasm.add(now, whole, f, at, named) {
                Reasm::Held => None,
                Reasm::Dropped => {
                    self.counters.reasm_fails += 1;
                    None
                }
                Reasm::ParamProblem(pointer) => {
                    self.counters.reasm_fails += 1;
                    self.send_error(cfg, now, whole, |q| Icmpv6Repr::ParamProblem {
                        code: ipv6::param_problem::ERRONEOUS_FIELD,
                        pointer,
                        invoking: q,
                    });
                    None
                }
                Reasm::Complete(full) => {
                    self.counters.reasm_oks += 1;
                    self.counters.in_receives -= 1;
                    match self.input(cfg, now, &full) {
                        Some(In6::Upper {
                            proto,
                            src,
                            dst,
                            multicast,
                            at,
                            packet: None,
                        }) => Some(In6::Upper {
                            proto,
                            src,
                            dst,
                            multicast,
                            at,
                            packet: Some(full),
                        }),
                        other => other,
                    }
                }
            };
        }
        let upper = &payload[walk.offset..];
        match walk.upper {
            next_header::ICMPV6 => {
                self.counters.in_delivers += 1;
                self.icmp_input(cfg, now, src, dst, packet.hop_limit(), upper)
            }
            next_header::NO_NEXT => None,
            6 | 17 => {
                self.counters.in_delivers += 1;
                Some(In6::Upper {
                    proto: walk.upper,
                    src,
                    dst,
                    multicast,
                    at: ipv6::HEADER_LEN + walk.offset,
                    packet: None,
                })
            }
            _ => {
                // RFC 8200 §4: an unrecognised Next Header is answered with
                // Parameter Problem code 1 pointing at the field.
                self.counters.in_unknown_protos += 1;
                let pointer = walk.upper_pointer;
                self.send_error(cfg, now, whole, |q| Icmpv6Repr::ParamProblem {
                    code: ipv6::param_problem::UNRECOGNIZED_NEXT_HEADER,
                    pointer,
                    invoking: q,
                });
                None
            }
        }
    }

    fn icmp_input(
        &mut self,
        cfg: &StackConfig,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        msg: &[u8],
    ) -> Option<In6> {
        self.counters.icmp_in_msgs += 1;
        let Ok(packet) = Icmpv6Packet::new_checked(msg) else {
            self.counters.icmp_in_errors += 1;
            return None;
        };
        let repr = match Icmpv6Repr::parse(&packet, src, dst, &cfg.checksums) {
            Ok(r) => r,
            Err(ustack_wire::Error::Checksum) => {
                self.counters.icmp_in_csum_errors += 1;
                self.counters.icmp_in_errors += 1;
                return None;
            }
            // Unknown informational messages are dropped, unknown errors
            // go up (RFC 4443 §2.4 (a), (b)): nothing above wants them yet.
            Err(_) => {
                self.counters.icmp_in_errors += 1;
                return None;
            }
        };
        match repr {
            Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                // RFC 4443 §4.2: the reply's source is the request's
                // destination if unicast, else one of ours.
                self.counters.icmp_in_echos += 1;
                let from = if dst.is_multicast() {
                    source_for(cfg, &src)
                } else {
                    dst
                };
                let reply = Icmpv6Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                self.counters.icmp_out_echo_reps += 1;
                self.queue_icmp(cfg, from, src, cfg.hop_limit6, &reply);
                None
            }
            Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                self.counters.icmp_in_echo_reps += 1;
                Some(In6::Echo(EchoReply6 {
                    from: src,
                    ident,
                    seq_no,
                    data: data.to_vec(),
                }))
            }
            Icmpv6Repr::PacketTooBig { mtu, invoking } => self
                .packet_too_big(cfg, now, mtu, invoking)
                .map(|(dst, mtu)| In6::PathMtu { dst, mtu }),
            Icmpv6Repr::Ndp(ndp) => {
                // RFC 4861 §7.1: hop limit 255, else not from the link.
                if hop_limit != 255 {
                    self.counters.icmp_in_errors += 1;
                    return None;
                }
                self.ndp_input(cfg, now, src, ndp);
                None
            }
            Icmpv6Repr::DstUnreachable { invoking, .. }
            | Icmpv6Repr::TimeExceeded { invoking, .. }
            | Icmpv6Repr::ParamProblem { invoking, .. } => {
                let err = error_errno(&repr)?;
                let q = icmpv6::parse_invoking(invoking).ok()?;
                if !is_ours(cfg, &q.src_addr) || q.transport.len() < 4 {
                    return None;
                }
                let t = q.transport;
                let port = |at: usize| u16::from_be_bytes([t[at], t[at + 1]]);
                Some(In6::Error {
                    proto: q.protocol,
                    local: SocketAddr::new(IpAddr::V6(q.src_addr), port(0)),
                    remote: SocketAddr::new(IpAddr::V6(q.dst_addr), port(2)),
                    err,
                })
            }
        }
    }

    /// Neighbor Discovery in (RFC 4861): a solicitation for one of our
    /// addresses is answered with a solicited advertisement (§7.2.4; to
    /// ff02::1 when it came from the unspecified address, DAD) and teaches
    /// the cache its sender's address (§7.2.3); an advertisement updates
    /// the cache (§7.2.5). Packets held for the neighbour go out.
    fn ndp_input(&mut self, cfg: &StackConfig, now: Instant, src: Ipv6Addr, ndp: NdpRepr) {
        let released = match ndp {
            NdpRepr::NeighborSolicit { target, lladdr } => {
                self.counters.nd_in_solicits += 1;
                if !self.ours(cfg, &target) {
                    return;
                }
                // §7.1.1: from the unspecified address, no source link-layer option.
                if src.is_unspecified() && lladdr.is_some() {
                    return;
                }
                let (dst, flags) = if src.is_unspecified() {
                    (ALL_NODES, na_flags::OVERRIDE)
                } else {
                    (src, na_flags::SOLICITED | na_flags::OVERRIDE)
                };
                let released = match (cfg.medium, lladdr) {
                    (Medium::Ethernet, Some(mac)) if !src.is_unspecified() => {
                        self.neigh.learn_from_solicit(src, mac)
                    }
                    _ => None,
                };
                let na = Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
                    flags,
                    target,
                    lladdr: (cfg.medium == Medium::Ethernet).then_some(cfg.mac),
                });
                self.counters.nd_out_adverts += 1;
                self.queue_icmp(cfg, target, dst, 255, &na);
                released
            }
            NdpRepr::NeighborAdvert {
                flags,
                target,
                lladdr,
            } => {
                self.counters.nd_in_adverts += 1;
                if cfg.medium != Medium::Ethernet {
                    return;
                }
                if self.ours(cfg, &target) && lladdr != Some(cfg.mac) {
                    // RFC 4862 §5.4.4: someone else holds our address.
                    self.counters.dad_duplicates += 1;
                    self.duplicates.push(target);
                    return;
                }
                self.neigh.advert(
                    now,
                    target,
                    lladdr,
                    flags & na_flags::SOLICITED != 0,
                    flags & na_flags::OVERRIDE != 0,
                )
            }
            _ => None,
        };
        if let Some((_, packets)) = released {
            for p in packets.into_iter().rev() {
                self.out.push_front(p);
            }
        }
    }

    /// Sends a Neighbor Solicitation (RFC 4861 §7.2.2, §7.3.3).
    pub(crate) fn solicit(&mut self, cfg: &StackConfig, s: Solicit) {
        let (target, dst) = match s {
            Solicit::Multicast(ip) => (ip, ipv6::solicited_node(&ip)),
            Solicit::Unicast(ip, _) => (ip, ip),
        };
        let ns = Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
            target,
            lladdr: Some(cfg.mac),
        });
        self.counters.nd_out_solicits += 1;
        let src = source_for(cfg, &target);
        self.queue_icmp(cfg, src, dst, 255, &ns);
    }

    /// The earliest timer (neighbour cache, reassembly).
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        match (self.neigh.poll_at(), self.reasm.poll_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The path MTU towards `dst`: the link's, or lower after Packet Too
    /// Big until it expires (RFC 8201 §4).
    pub fn path_mtu(&self, cfg: &StackConfig, now: Instant, dst: &Ipv6Addr) -> usize {
        match self.pmtu.get(dst) {
            Some(&(mtu, until)) if until > now => mtu.min(cfg.mtu),
            _ => cfg.mtu,
        }
    }

    /// RFC 8201 §4: a Packet Too Big about a packet we sent lowers the path
    /// MTU of its destination, never below 1280 (RFC 8200 §5), never
    /// above the current value.
    /// Returns the destination and its new path MTU when it was lowered.
    fn packet_too_big(
        &mut self,
        cfg: &StackConfig,
        now: Instant,
        mtu: u32,
        invoking: &[u8],
    ) -> Option<(Ipv6Addr, usize)> {
        let Ok(q) = icmpv6::parse_invoking(invoking) else {
            // A quote too short for a transport header still names the path.
            if invoking.len() < ipv6::HEADER_LEN {
                return None;
            }
            let p = Ipv6Packet::new_unchecked(invoking);
            return self.lower_pmtu(cfg, now, p.src_addr(), p.dst_addr(), mtu);
        };
        self.lower_pmtu(cfg, now, q.src_addr, q.dst_addr, mtu)
    }

    fn lower_pmtu(
        &mut self,
        cfg: &StackConfig,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        mtu: u32,
    ) -> Option<(Ipv6Addr, usize)> {
        if !is_ours(cfg, &src) {
            return None;
        }
        let new = (mtu as usize).max(icmpv6::MIN_MTU);
        if new >= self.path_mtu(cfg, now, &dst) {
            return None;
        }
        if self.pmtu.len() >= PMTU_MAX_ENTRIES {
            self.pmtu.retain(|_, (_, until)| *until > now);
            if self.pmtu.len() >= PMTU_MAX_ENTRIES {
                return None;
            }
        }
        self.counters.pmtu_lowered += 1;
        self.pmtu.insert(dst, (new, now + PMTU_TIMEOUT));
        Some((dst, new.min(cfg.mtu)))
    }

    /// The flow label of a transport flow, its ports hashed in too
    /// (RFC 6437 §3: the same for all packets of a connection).
    pub(crate) fn transport_label(
        &self,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        proto: u8,
        sport: u16,
        dport: u16,
    ) -> u32 {
        let ports = (u64::from(sport) << 16) | u64::from(dport);
        flow_label(self.flow_secret ^ ports.rotate_left(40), src, dst, proto)
    }

    /// Cuts a packet over `mtu` into fragments, queued first (RFC 8200 §4.5).
    pub(crate) fn fragment_front(&mut self, bytes: &[u8], mtu: usize) {
        self.frag_ident = self.frag_ident.wrapping_add(1);
        let frags = reassembly::fragment(bytes, mtu, self.frag_ident);
        self.counters.frag_creates += frags.len() as u64;
        for f in frags.into_iter().rev() {
            self.out.push_front(f);
        }
    }

    /// Runs the neighbour cache's and reassembly's timers.
    pub(crate) fn run_timers(&mut self, cfg: &StackConfig, now: Instant) {
        for first in self.reasm.poll(now) {
            // RFC 8200 §4.5: Time Exceeded code 1, if the first fragment came.
            self.counters.reasm_timeout += 1;
            self.counters.reasm_fails += 1;
            self.send_error(cfg, now, &first, |q| Icmpv6Repr::TimeExceeded {
                code: 1,
                invoking: q,
            });
        }
        let e = self.neigh.poll(now);
        for s in e.solicits {
            self.solicit(cfg, s);
        }
        for (_, packets) in e.failed {
            self.counters.nd_resolution_failures += packets.len() as u64;
            self.counters.out_discards += packets.len() as u64;
        }
    }
}
