//! The stack: one interface, its sockets, and the packet paths between them.
//!
//! Input: [`Stack::receive`] takes one frame as the device delivered it.
//! Output: [`Stack::transmit`] writes the next frame the stack owes into the
//! caller's buffer. [`Stack::poll_at`] says when to call `transmit` again if
//! nothing arrives. Nothing here reads a clock or touches a device.

use crate::arp::{ArpAction, ArpCache};
use crate::config::{Medium, StackConfig};
use crate::counters::Counters;
use crate::errno::{Errno, Result};
use crate::icmp::{EchoReply, TokenBucket};
use crate::ipv4::fragment::Fragmenter;
use crate::ipv4::reassembly::{DropReason, Outcome, Reassembler};
use crate::ports::PortAllocator;
use crate::rng::Rng;
use crate::socket::{Readiness, Socket, SocketHandle, SocketSet};
use crate::tcp::{TcpState, TcpTx};
use crate::time::Instant;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use tracing::debug;
use ustack_wire::{
    ArpOperation, ArpPacket, ArpRepr, DstUnreachable, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Addr, Ipv4Packet, Ipv4Repr, UdpPacket,
    UdpRepr,
};

/// The most of an offending datagram quoted in an ICMP error, so the error
/// stays within 576 bytes (RFC 1812 §4.3.2.3).
const ICMP_QUOTE_MAX: usize = 576 - 20 - 8;

/// A datagram waiting to go out: header fields, transport payload, next hop.
#[derive(Debug)]
pub(crate) struct OutPacket {
    pub next_hop: Ipv4Addr,
    pub repr: Ipv4Repr,
    pub payload: Vec<u8>,
    /// The socket charged for it, and how much, released once it leaves.
    pub owner: Option<(SocketHandle, usize)>,
}

/// A datagram being cut into fragments: the fragmenter, the link
/// destination (Ethernet), and the owner to release when done.
pub(crate) type Fragmenting = (
    Fragmenter,
    Option<EthernetAddress>,
    Option<(SocketHandle, usize)>,
);

/// An invalid configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid stack configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A sans-IO IPv4 stack bound to one interface.
pub struct Stack {
    pub(crate) cfg: StackConfig,
    pub(crate) rng: Rng,
    pub(crate) counters: Counters,
    pub(crate) arp: ArpCache<OutPacket>,
    pub(crate) reasm: Reassembler,
    pub(crate) egress: VecDeque<OutPacket>,
    /// Ready link-layer frames (ARP), sent before IP traffic.
    pub(crate) link_out: VecDeque<Vec<u8>>,
    /// A datagram being cut into fragments: the fragmenter, the link
    /// destination, and the owner to release when done.
    pub(crate) frag: Option<Fragmenting>,
    pub(crate) sockets: SocketSet,
    pub(crate) udp_ports: HashMap<u16, Vec<SocketHandle>>,
    pub(crate) icmp_idents: HashMap<u16, SocketHandle>,
    pub(crate) icmp_limiter: TokenBucket,
    pub(crate) ports: PortAllocator,
    pub(crate) tcp: TcpState,
    ip_ident: u16,
    /// Earliest ARP/reassembly deadline; recomputed when `timers_dirty`.
    next_timer: Option<Instant>,
    pub(crate) timers_dirty: bool,
}

impl Stack {
    /// Builds a stack; the MTU must be at least 68 (RFC 791) and the
    /// ephemeral port range non-empty.
    pub fn new(cfg: StackConfig) -> core::result::Result<Stack, ConfigError> {
        if cfg.mtu < 68 || cfg.mtu > 65535 {
            return Err(ConfigError(format!(
                "MTU {} is outside 68..=65535 (RFC 791)",
                cfg.mtu
            )));
        }
        if cfg.ephemeral_ports.is_empty() || *cfg.ephemeral_ports.start() == 0 {
            return Err(ConfigError(format!(
                "ephemeral port range {:?} is empty",
                cfg.ephemeral_ports
            )));
        }
        if cfg.addr.address().is_unspecified() {
            return Err(ConfigError(
                "the interface address is unspecified (0.0.0.0)".into(),
            ));
        }
        let t = &cfg.tcp;
        if t.rto_min.is_zero() || t.rto_min > t.rto_max || t.rto_initial.is_zero() {
            return Err(ConfigError(format!(
                "TCP RTO bounds need 0 < rto_min <= rto_max and rto_initial > 0 (got {:?}, {:?}, {:?})",
                t.rto_min, t.rto_max, t.rto_initial
            )));
        }
        if t.sndbuf == 0 || t.rcvbuf == 0 || t.max_syn_backlog == 0 {
            return Err(ConfigError(
                "TCP buffers and max_syn_backlog must be non-zero".into(),
            ));
        }
        let mut rng = Rng::new(cfg.seed);
        let ip_ident = rng.next_u64() as u16;
        let burst = cfg.icmp_errors_per_sec.max(1);
        let tcp = TcpState::new(&cfg.tcp, &mut rng);
        Ok(Stack {
            tcp,
            arp: ArpCache::new(cfg.arp.clone()),
            reasm: Reassembler::new(cfg.reassembly.clone()),
            icmp_limiter: TokenBucket::new(cfg.icmp_errors_per_sec, burst),
            ports: PortAllocator::new(cfg.ephemeral_ports.clone()),
            cfg,
            rng,
            counters: Counters::default(),
            egress: VecDeque::new(),
            link_out: VecDeque::new(),
            frag: None,
            sockets: SocketSet::default(),
            udp_ports: HashMap::new(),
            icmp_idents: HashMap::new(),
            ip_ident,
            next_timer: None,
            timers_dirty: false,
        })
    }

    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// Our interface address.
    pub fn address(&self) -> Ipv4Addr {
        self.cfg.addr.address()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Fresh ARP entries (Ethernet medium).
    pub fn arp_entries(&self, now: Instant) -> Vec<(Ipv4Addr, EthernetAddress)> {
        self.arp.entries(now)
    }

    /// Bytes held by partially reassembled datagrams.
    pub fn reassembly_bytes(&self) -> usize {
        self.reasm.bytes_held()
    }

    /// Number of open sockets.
    pub fn socket_count(&self) -> usize {
        self.sockets.len()
    }

    // ----- sockets, generic -----

    /// Closes a socket and frees its port. EBADF for an unknown handle.
    /// A TCP connection carries on without the handle until its state
    /// machine finishes (FIN, TIME_WAIT), or is reset if unread data is left.
    pub fn close(&mut self, h: SocketHandle) -> Result<()> {
        let s = self.sockets.remove(h).ok_or(Errno::EBADF)?;
        match s {
            Socket::Udp(u) => self.udp_close(h, &u),
            Socket::Icmp(i) => {
                self.icmp_idents.remove(&i.ident);
            }
            Socket::Tcp(t) => self.tcp_close(h, t),
        }
        Ok(())
    }

    /// The conditions epoll would report for `h`.
    pub fn readiness(&self, h: SocketHandle) -> Result<Readiness> {
        match self.sockets.get(h).ok_or(Errno::EBADF)? {
            Socket::Udp(s) => Ok(s.readiness()),
            Socket::Icmp(s) => Ok(s.readiness()),
            Socket::Tcp(s) => Ok(self.tcp_readiness(s)),
        }
    }

    /// Sockets whose readiness may have changed since the last call.
    pub fn take_readiness_changes(&mut self) -> Vec<SocketHandle> {
        self.sockets.take_changed()
    }

    /// The local address of a socket (getsockname).
    pub fn local_addr(&self, h: SocketHandle) -> Result<Option<SocketAddrV4>> {
        match self.sockets.get(h).ok_or(Errno::EBADF)? {
            Socket::Udp(s) => Ok(s.local),
            Socket::Icmp(_) => Ok(None),
            Socket::Tcp(s) => Ok(self.tcp_local_addr(s)),
        }
    }

    /// The peer address of a socket (getpeername); ENOTCONN if none.
    pub fn peer_addr(&self, h: SocketHandle) -> Result<SocketAddrV4> {
        match self.sockets.get(h).ok_or(Errno::EBADF)? {
            Socket::Udp(s) => s.remote.ok_or(Errno::ENOTCONN),
            Socket::Icmp(_) => Err(Errno::ENOTCONN),
            Socket::Tcp(s) => self.tcp_peer_addr(s),
        }
    }

    /// Takes a socket's pending error (SO_ERROR).
    pub fn take_error(&mut self, h: SocketHandle) -> Result<Option<Errno>> {
        let e = match self.sockets.get_mut(h).ok_or(Errno::EBADF)? {
            Socket::Udp(s) => s.error.take(),
            Socket::Icmp(_) => None,
            Socket::Tcp(s) => s.error.take(),
        };
        if e.is_some() {
            self.sockets.mark_changed(h);
        }
        Ok(e)
    }

    // ----- routing and output helpers -----

    /// Whether `ip` is the limited or our subnet's directed broadcast.
    pub(crate) fn is_broadcast(&self, ip: Ipv4Addr) -> bool {
        ip.is_broadcast() || self.cfg.addr.broadcast() == Some(ip)
    }

    /// The next hop for `dst`: itself when on-link (or broadcast), else the
    /// gateway; ENETUNREACH without one.
    pub(crate) fn route(&self, dst: Ipv4Addr) -> Result<Ipv4Addr> {
        if dst.is_unspecified() {
            return Err(Errno::EINVAL);
        }
        if dst.is_broadcast() || self.cfg.addr.contains_addr(&dst) || dst == self.address() {
            return Ok(dst);
        }
        self.cfg.gateway.ok_or(Errno::ENETUNREACH)
    }

    pub(crate) fn egress_full(&self) -> bool {
        self.egress.len() >= self.cfg.max_egress_packets
    }

    /// A header for a datagram we originate.
    pub(crate) fn ip_repr(
        &mut self,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        payload_len: usize,
        df: bool,
    ) -> Ipv4Repr {
        let ident = self.next_ip_ident();
        Ipv4Repr {
            src_addr: self.address(),
            dst_addr: dst,
            protocol,
            payload_len,
            ttl: self.cfg.ttl,
            tos: 0,
            ident,
            dont_frag: df,
            more_frags: false,
            frag_offset: 0,
        }
    }

    /// The IP identification for the next datagram sent.
    pub(crate) fn next_ip_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// Gives back the send-buffer space a departed (or dropped) packet held.
    fn release(&mut self, owner: Option<(SocketHandle, usize)>) {
        let Some((h, charge)) = owner else { return };
        if let Some(Socket::Udp(s)) = self.sockets.get_mut(h) {
            s.tx_bytes = s.tx_bytes.saturating_sub(charge);
            self.sockets.mark_changed(h);
        }
    }

    /// Sets a connected socket's error after its packet could not be sent
    /// (Linux reports a failed neighbour resolution as EHOSTUNREACH).
    fn fail_owner(&mut self, owner: Option<(SocketHandle, usize)>, err: Errno) {
        if let Some((h, _)) = owner {
            if let Some(Socket::Udp(s)) = self.sockets.get_mut(h) {
                if s.remote.is_some() {
                    s.error = Some(err);
                }
            }
        }
        self.release(owner);
    }

    // ----- timers -----

    /// When `transmit` should next be called even if no frame arrives.
    /// A time at or before `now` means at once.
    pub fn poll_at(&self) -> Option<Instant> {
        if !self.link_out.is_empty() || !self.egress.is_empty() || self.frag.is_some() {
            return Some(Instant::ZERO);
        }
        let tcp = self.tcp.poll_at();
        if self.timers_dirty {
            return min_opt(min_opt(self.arp.poll_at(), self.reasm.poll_at()), tcp);
        }
        min_opt(self.next_timer, tcp)
    }

    fn run_timers(&mut self, now: Instant) {
        self.tcp_run_timers(now);
        if self.timers_dirty {
            self.next_timer = min_opt(self.arp.poll_at(), self.reasm.poll_at());
            self.timers_dirty = false;
        }
        match self.next_timer {
            Some(t) if t <= now => {}
            _ => return,
        }
        let (actions, failed) = self.arp.poll(now);
        for ArpAction::Request(ip) in actions {
            self.queue_arp_request(ip);
        }
        for f in failed {
            debug!(addr = %f.addr, packets = f.packets.len(), "ARP resolution failed");
            self.counters.arp.resolution_failures += 1;
            self.counters.arp.pending_dropped += f.packets.len() as u64;
            self.counters.ip.out_discards += f.packets.len() as u64;
            for p in f.packets {
                self.fail_owner(p.owner, Errno::EHOSTUNREACH);
            }
        }
        for e in self.reasm.poll(now) {
            self.counters.ip.reasm_timeout += 1;
            self.counters.ip.reasm_fails += 1;
            // RFC 1122 §3.2.2: no ICMP error about a datagram sent to a
            // broadcast address (Linux's ip_expire only answers for local).
            if self.is_broadcast(e.dst) {
                continue;
            }
            if let Some(invoking) = e.invoking {
                // RFC 792: code 1, fragment reassembly time exceeded.
                self.send_icmp_error(
                    now,
                    e.src,
                    Icmpv4Repr::TimeExceeded {
                        code: 1,
                        invoking: &invoking,
                    },
                );
            }
        }
        self.next_timer = min_opt(self.arp.poll_at(), self.reasm.poll_at());
    }

    // ----- output -----

    /// Writes the next frame the stack owes into `buf` and returns its
    /// length; `None` when there is nothing to send now. Runs due timers.
    pub fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if now > self.tcp.now {
            self.tcp.now = now;
        }
        self.run_timers(now);
        let hl = self.cfg.link_header_len();
        loop {
            if let Some((f, mac, owner)) = &mut self.frag {
                if !f.is_done() {
                    let need = hl + f.next_len();
                    if buf.len() < need {
                        self.counters.link.tx_dropped_too_big += 1;
                        let owner = *owner;
                        self.frag = None;
                        self.release(owner);
                        continue;
                    }
                    if let Some(mac) = *mac {
                        write_eth_header(buf, self.cfg.mac, mac, EtherType::Ipv4);
                    }
                    let n = f
                        .emit_next(&mut buf[hl..], &self.cfg.checksums)
                        .unwrap_or(0);
                    self.counters.ip.frag_creates += 1;
                    self.counters.link.tx_frames += 1;
                    return Some(hl + n);
                }
                let owner = *owner;
                self.frag = None;
                self.release(owner);
            }
            if let Some(frame) = self.link_out.pop_front() {
                if buf.len() < frame.len() {
                    self.counters.link.tx_dropped_too_big += 1;
                    continue;
                }
                buf[..frame.len()].copy_from_slice(&frame);
                self.counters.link.tx_frames += 1;
                return Some(frame.len());
            }
            let Some(pkt) = self.egress.pop_front() else {
                // Then TCP writes its next segment straight into `buf`.
                match self.tcp_transmit(now, buf) {
                    TcpTx::Sent(n) => return Some(n),
                    TcpTx::Again => continue,
                    TcpTx::Idle => return None,
                }
            };
            if pkt.repr.dst_addr == self.address() {
                self.loopback(now, pkt);
                continue;
            }
            let mac = match self.cfg.medium {
                Medium::Ip => None,
                Medium::Ethernet => {
                    if self.is_broadcast(pkt.next_hop) {
                        Some(EthernetAddress::BROADCAST)
                    } else if let Some(mac) = self.arp.lookup(now, pkt.next_hop) {
                        Some(mac)
                    } else {
                        let hop = pkt.next_hop;
                        let (action, dropped) = self.arp.enqueue(now, hop, pkt);
                        self.timers_dirty = true;
                        if let Some(ArpAction::Request(ip)) = action {
                            self.queue_arp_request(ip);
                        }
                        if let Some(d) = dropped {
                            self.counters.arp.pending_dropped += 1;
                            self.counters.ip.out_discards += 1;
                            self.release(d.owner);
                        }
                        continue;
                    }
                }
            };
            self.counters.ip.out_requests += 1;
            let total = ustack_wire::ipv4::HEADER_LEN + pkt.payload.len();
            if total > self.cfg.mtu {
                if pkt.repr.dont_frag {
                    self.counters.ip.frag_fails += 1;
                    self.counters.ip.out_discards += 1;
                    self.fail_owner(pkt.owner, Errno::EMSGSIZE);
                    continue;
                }
                self.counters.ip.frag_oks += 1;
                self.frag = Some((
                    Fragmenter::new(pkt.repr, pkt.payload, self.cfg.mtu),
                    mac,
                    pkt.owner,
                ));
                continue;
            }
            if buf.len() < hl + total {
                self.counters.link.tx_dropped_too_big += 1;
                self.release(pkt.owner);
                continue;
            }
            if let Some(mac) = mac {
                write_eth_header(buf, self.cfg.mac, mac, EtherType::Ipv4);
            }
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[hl..hl + total]);
            pkt.repr.emit(&mut ip, &self.cfg.checksums);
            ip.payload_mut()[..pkt.payload.len()].copy_from_slice(&pkt.payload);
            self.release(pkt.owner);
            self.counters.link.tx_frames += 1;
            return Some(hl + total);
        }
    }

    /// Delivers a datagram addressed to ourselves, as if it had arrived.
    fn loopback(&mut self, now: Instant, pkt: OutPacket) {
        let mut bytes = vec![0u8; ustack_wire::ipv4::HEADER_LEN + pkt.payload.len()];
        let mut ip = Ipv4Packet::new_unchecked(&mut bytes[..]);
        pkt.repr
            .emit(&mut ip, &ustack_wire::ChecksumCaps::default());
        ip.payload_mut()[..pkt.payload.len()].copy_from_slice(&pkt.payload);
        self.release(pkt.owner);
        self.ip_input(now, &bytes);
    }

    fn queue_arp(
        &mut self,
        operation: ArpOperation,
        target_mac: EthernetAddress,
        target_ip: Ipv4Addr,
        dst: EthernetAddress,
    ) {
        let arp = ArpRepr {
            operation,
            source_hardware_addr: self.cfg.mac,
            source_protocol_addr: self.address(),
            target_hardware_addr: target_mac,
            target_protocol_addr: target_ip,
        };
        let hl = ustack_wire::ethernet::HEADER_LEN;
        let mut frame = vec![0u8; hl + arp.buffer_len()];
        write_eth_header(&mut frame, self.cfg.mac, dst, EtherType::Arp);
        arp.emit(&mut ArpPacket::new_unchecked(&mut frame[hl..]));
        match operation {
            ArpOperation::Request => self.counters.arp.tx_requests += 1,
            _ => self.counters.arp.tx_replies += 1,
        }
        self.link_out.push_back(frame);
    }

    pub(crate) fn queue_arp_request(&mut self, ip: Ipv4Addr) {
        self.queue_arp(
            ArpOperation::Request,
            EthernetAddress([0; 6]),
            ip,
            EthernetAddress::BROADCAST,
        );
    }

    // ----- input -----

    /// Processes one frame as the device delivered it. Anything malformed
    /// is counted and dropped; nothing here panics on wire input.
    pub fn receive(&mut self, now: Instant, frame: &[u8]) {
        if now > self.tcp.now {
            self.tcp.now = now;
        }
        self.counters.link.rx_frames += 1;
        match self.cfg.medium {
            Medium::Ip => self.ip_input(now, frame),
            Medium::Ethernet => self.eth_input(now, frame),
        }
    }

    fn eth_input(&mut self, now: Instant, frame: &[u8]) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.counters.link.rx_malformed += 1;
            return;
        };
        let Ok(repr) = EthernetRepr::parse(&eth) else {
            self.counters.link.rx_malformed += 1;
            return;
        };
        if repr.dst_addr != self.cfg.mac && !repr.dst_addr.is_broadcast() {
            self.counters.link.rx_not_for_us += 1;
            return;
        }
        match repr.ethertype {
            EtherType::Arp => self.arp_input(now, eth.payload()),
            EtherType::Ipv4 => self.ip_input(now, eth.payload()),
            _ => self.counters.link.rx_unknown_ethertype += 1,
        }
    }

    /// RFC 826 "Packet Reception".
    fn arp_input(&mut self, now: Instant, bytes: &[u8]) {
        let repr = match ArpPacket::new_checked(bytes).and_then(|p| ArpRepr::parse(&p)) {
            Ok(r) => r,
            Err(_) => {
                self.counters.arp.rx_malformed += 1;
                return;
            }
        };
        let for_us = repr.target_protocol_addr == self.address();
        match repr.operation {
            ArpOperation::Request => self.counters.arp.rx_requests += 1,
            ArpOperation::Reply => self.counters.arp.rx_replies += 1,
            ArpOperation::Unknown(_) => {
                self.counters.arp.rx_malformed += 1;
                return;
            }
        }
        let sender = repr.source_protocol_addr;
        let sender_ok = !sender.is_unspecified()
            && !sender.is_broadcast()
            && !sender.is_multicast()
            && sender != self.address()
            && repr.source_hardware_addr.is_unicast();
        // Merge: update an existing entry; add one only if the packet is for us.
        if sender_ok && (for_us || self.arp.contains(sender)) {
            let (waiting, evicted) = self.arp.learn(now, sender, repr.source_hardware_addr);
            self.counters.arp.cache_evictions += evicted;
            self.timers_dirty = true;
            for p in waiting.into_iter().rev() {
                self.egress.push_front(p);
            }
        }
        if for_us
            && repr.operation == ArpOperation::Request
            && repr.source_hardware_addr.is_unicast()
        {
            self.queue_arp(
                ArpOperation::Reply,
                repr.source_hardware_addr,
                sender,
                repr.source_hardware_addr,
            );
        }
    }

    pub(crate) fn ip_input(&mut self, now: Instant, bytes: &[u8]) {
        self.counters.ip.in_receives += 1;
        if self.tcp_input_fast(now, bytes) {
            return;
        }
        let packet = match Ipv4Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(ustack_wire::Error::Truncated) => {
                self.counters.ip.in_truncated += 1;
                return;
            }
            Err(_) => {
                self.counters.ip.in_hdr_errors += 1;
                return;
            }
        };
        let repr = match Ipv4Repr::parse(&packet, &self.cfg.checksums) {
            Ok(r) => r,
            Err(ustack_wire::Error::Checksum) => {
                self.counters.ip.in_csum_errors += 1;
                self.counters.ip.in_hdr_errors += 1;
                return;
            }
            Err(_) => {
                self.counters.ip.in_hdr_errors += 1;
                return;
            }
        };
        // RFC 1122 §3.2.1.3: discard datagrams from a non-unicast source.
        if repr.src_addr.is_broadcast()
            || repr.src_addr.is_multicast()
            || self.is_broadcast(repr.src_addr)
        {
            self.counters.ip.in_addr_errors += 1;
            return;
        }
        let broadcast = self.is_broadcast(repr.dst_addr);
        if repr.dst_addr != self.address() && !broadcast {
            // We are a host, not a router (RFC 1122 §3.3.1).
            self.counters.ip.in_addr_errors += 1;
            return;
        }
        let header_len = packet.header_len() as usize;
        if repr.more_frags || repr.frag_offset != 0 {
            self.counters.ip.reasm_reqds += 1;
            let outcome = self
                .reasm
                .add(now, &repr, &bytes[..header_len], packet.payload());
            self.timers_dirty = true;
            match outcome {
                Outcome::Held | Outcome::Duplicate => {}
                Outcome::Complete(full, data) => {
                    self.counters.ip.reasm_oks += 1;
                    // Quote the reassembled datagram's header, not the last fragment's.
                    let hl = ustack_wire::ipv4::HEADER_LEN;
                    let take = data.len().min(ICMP_QUOTE_MAX - hl);
                    let mut quote = vec![0u8; hl + take];
                    full.emit(
                        &mut Ipv4Packet::new_unchecked(&mut quote[..hl]),
                        &ustack_wire::ChecksumCaps::default(),
                    );
                    quote[hl..].copy_from_slice(&data[..take]);
                    self.dispatch(now, &full, &data, &quote, broadcast);
                }
                Outcome::Dropped(reason) => {
                    self.counters.ip.reasm_fails += 1;
                    match reason {
                        DropReason::Overlap => self.counters.ip.reasm_overlaps += 1,
                        DropReason::Oversize => self.counters.ip.reasm_oversize += 1,
                        DropReason::Memory => self.counters.ip.reasm_memory_drops += 1,
                        DropReason::Malformed => self.counters.ip.in_hdr_errors += 1,
                    }
                }
            }
            self.counters.ip.reasm_memory_drops += std::mem::take(&mut self.reasm.evicted);
            return;
        }
        let quote_len = bytes
            .len()
            .min(header_len + repr.payload_len)
            .min(ICMP_QUOTE_MAX);
        self.dispatch(now, &repr, packet.payload(), &bytes[..quote_len], broadcast);
    }

    /// Hands a whole datagram to its protocol. `quote` is the datagram's
    /// header and leading payload, for an ICMP error about it.
    fn dispatch(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        payload: &[u8],
        quote: &[u8],
        broadcast: bool,
    ) {
        match ip.protocol {
            IpProtocol::Icmp => self.icmp_input(now, ip, payload, broadcast),
            IpProtocol::Udp => self.udp_input(now, ip, payload, quote, broadcast),
            IpProtocol::Tcp => self.tcp_input(now, ip, payload, broadcast),
            _ => {
                self.counters.ip.in_unknown_protos += 1;
                if !broadcast {
                    let repr = Icmpv4Repr::DstUnreachable {
                        reason: DstUnreachable::ProtoUnreachable,
                        next_hop_mtu: 0,
                        invoking: quote,
                    };
                    self.send_icmp_error(now, ip.src_addr, repr);
                }
            }
        }
    }

    fn icmp_input(&mut self, now: Instant, ip: &Ipv4Repr, payload: &[u8], broadcast: bool) {
        self.counters.icmp.in_msgs += 1;
        let Ok(packet) = Icmpv4Packet::new_checked(payload) else {
            self.counters.icmp.in_errors += 1;
            return;
        };
        let repr = match Icmpv4Repr::parse(&packet, &self.cfg.checksums) {
            Ok(r) => r,
            Err(ustack_wire::Error::Checksum) => {
                self.counters.icmp.in_csum_errors += 1;
                self.counters.icmp.in_errors += 1;
                return;
            }
            Err(ustack_wire::Error::Unsupported) => {
                self.counters.icmp.in_unsupported += 1;
                return;
            }
            Err(_) => {
                self.counters.icmp.in_errors += 1;
                return;
            }
        };
        self.counters.ip.in_delivers += 1;
        match repr {
            Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                self.counters.icmp.in_echos += 1;
                if broadcast && !self.cfg.echo_broadcasts {
                    self.counters.icmp.echo_broadcast_ignored += 1;
                    return;
                }
                let Ok(next_hop) = self.route(ip.src_addr) else {
                    self.counters.ip.out_no_routes += 1;
                    return;
                };
                if self.egress_full() {
                    self.counters.ip.out_discards += 1;
                    return;
                }
                self.counters.icmp.out_echo_reps += 1;
                let reply = Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                self.queue_icmp(next_hop, ip.src_addr, &reply);
            }
            Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                self.counters.icmp.in_echo_reps += 1;
                let reply = EchoReply {
                    from: ip.src_addr,
                    seq_no,
                    data: data.to_vec(),
                    at: now,
                };
                self.icmp_deliver_reply(ident, reply);
            }
            Icmpv4Repr::DstUnreachable {
                reason, invoking, ..
            } => {
                self.counters.icmp.in_dest_unreachs += 1;
                let err = match reason {
                    DstUnreachable::PortUnreachable | DstUnreachable::ProtoUnreachable => {
                        Errno::ECONNREFUSED
                    }
                    DstUnreachable::NetUnreachable => Errno::ENETUNREACH,
                    DstUnreachable::FragRequired => Errno::EMSGSIZE,
                    _ => Errno::EHOSTUNREACH,
                };
                self.icmp_error_input(invoking, err);
            }
            Icmpv4Repr::TimeExceeded { invoking, .. } => {
                self.counters.icmp.in_time_excds += 1;
                self.icmp_error_input(invoking, Errno::EHOSTUNREACH);
            }
        }
    }

    /// Routes an ICMP error to the socket that sent the quoted datagram.
    fn icmp_error_input(&mut self, invoking: &[u8], err: Errno) {
        let Ok(quoted) = ustack_wire::icmpv4::parse_invoking(invoking) else {
            self.counters.icmp.in_errors += 1;
            return;
        };
        if quoted.src_addr != self.address() || quoted.transport.len() < 4 {
            return;
        }
        let src_port = u16::from_be_bytes([quoted.transport[0], quoted.transport[1]]);
        let dst_port = u16::from_be_bytes([quoted.transport[2], quoted.transport[3]]);
        let local = SocketAddrV4::new(quoted.src_addr, src_port);
        let remote = SocketAddrV4::new(quoted.dst_addr, dst_port);
        match quoted.protocol {
            IpProtocol::Udp => self.udp_icmp_error(local, remote, err),
            IpProtocol::Tcp => self.tcp_icmp_error(local, remote, err),
            _ => {}
        }
    }

    fn udp_input(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        payload: &[u8],
        quote: &[u8],
        broadcast: bool,
    ) {
        let Ok(packet) = UdpPacket::new_checked(payload) else {
            self.counters.udp.in_errors += 1;
            return;
        };
        let repr = match UdpRepr::parse(&packet, ip.src_addr, ip.dst_addr, &self.cfg.checksums) {
            Ok(r) => r,
            Err(ustack_wire::Error::Checksum) => {
                self.counters.udp.in_csum_errors += 1;
                self.counters.udp.in_errors += 1;
                return;
            }
            Err(_) => {
                self.counters.udp.in_errors += 1;
                return;
            }
        };
        self.counters.ip.in_delivers += 1;
        let to = SocketAddrV4::new(ip.dst_addr, repr.dst_port);
        let from = SocketAddrV4::new(ip.src_addr, repr.src_port);
        let lookup_to = if broadcast {
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, repr.dst_port)
        } else {
            to
        };
        match self.udp_lookup(lookup_to, from) {
            Some(h) => self.udp_deliver(h, from, packet.payload()),
            None => {
                self.counters.udp.no_ports += 1;
                if !broadcast {
                    let repr = Icmpv4Repr::DstUnreachable {
                        reason: DstUnreachable::PortUnreachable,
                        next_hop_mtu: 0,
                        invoking: quote,
                    };
                    self.send_icmp_error(now, ip.src_addr, repr);
                }
            }
        }
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn write_eth_header(
    buf: &mut [u8],
    src: EthernetAddress,
    dst: EthernetAddress,
    ethertype: EtherType,
) {
    let repr = EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype,
    };
    repr.emit(&mut EthernetFrame::new_unchecked(
        &mut buf[..ustack_wire::ethernet::HEADER_LEN],
    ));
}
