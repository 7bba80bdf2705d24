//! The stack: one interface, the IP layer, and the transports above it.
//!
//! Input: [`Stack::receive`] takes one frame as the device delivered it;
//! the IP layer checks and reassembles it and hands the datagram to
//! `Tcp::process`, `Udp::process` or `Icmp::process` with a [`Cx`](crate::cx::Cx).
//! Output: [`Stack::transmit`] writes the next frame the stack owes into
//! the caller's buffer, from the IP layer's queues ([`IpOut`](crate::ipv4::output::IpOut)) or from
//! `Tcp::dispatch` (through the same `IpOut`). [`Stack::poll_at`] says when
//! to call `transmit` again if nothing arrives; [`Stack::take_events`]
//! drains the typed events. Nothing here reads a clock or touches a device.

use crate::arp::ArpAction;
use crate::config::{Medium, StackConfig};
use crate::counters::Counters;
use crate::cx::Shared;
use crate::errno::{Errno, Result};
use crate::event::Event;
use crate::icmp::{Icmp, IcmpIn};
use crate::ipv4::output::{is_broadcast, Addrs, IpPair, Queued};
use crate::ipv4::reassembly::{DropReason, Outcome, Reassembler};
use crate::ipv6::{In6, Ipv6Counters};
use crate::socket::{Proto, Readiness, SocketHandle};
use crate::tcp::{Tcp, TcpTx};
use crate::time::Instant;
use crate::udp::{Udp, UdpIn};
use std::net::Ipv6Addr;
use std::net::{IpAddr, SocketAddr};
use tracing::debug;
use ustack_wire::{
    ArpOperation, ArpPacket, ArpRepr, DstUnreachable, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, Icmpv4Repr, IpProtocol, Ipv4Addr, Ipv4Fast, Ipv4Packet, Ipv4Repr, Ipv6Packet,
};

/// The most of an offending datagram quoted in an ICMP error, so the error
/// stays within 576 bytes (RFC 1812 §4.3.2.3).
const ICMP_QUOTE_MAX: usize = 576 - 20 - 8;

/// An invalid configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "invalid stack configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// What the device knows about one received frame, beside its bytes
/// ([`Stack::receive_with`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// The device vouches for the frame's checksums: a TUN/TAP's
    /// virtio-net header said `DATA_VALID` (the kernel checked them) or
    /// `NEEDS_CSUM` (the local kernel built the packet and left its
    /// checksum partial, which a receiver may take as good: virtio 1.2
    /// §5.1.6.4). The stack then skips its own verification of them.
    pub csum_ok: bool,
}

/// A sans-IO IPv4 stack bound to one interface: the IP layer (input,
/// reassembly, the one output path) and the transports above it, each
/// its own type driven through a [`Cx`](crate::cx::Cx).
pub struct Stack {
    pub(crate) cfg: StackConfig,
    /// Counters, RNG, handles, ports, the IP output path, events: what a
    /// [`Cx`](crate::cx::Cx) lends the protocols.
    pub(crate) sh: Shared,
    pub(crate) reasm: Reassembler,
    pub(crate) tcp: Tcp,
    pub(crate) udp: Udp,
    pub(crate) icmp: Icmp,
    /// The IPv6 layer (RFC 8200): input, ICMPv6, its output queue.
    /// The latest `now` the stack was given: the time of socket calls that
    /// take none (`close`, `tcp_recv`, the setters).
    pub(crate) clock: Instant,
    /// Earliest ARP/reassembly deadline; recomputed when `ip.timers_dirty`.
    next_timer: Option<Instant>,
}

/// Borrows a stack's parts as a protocol and its context: `$p` is the
/// protocol field, the rest go into the `Cx`.
macro_rules! split {
    ($s:ident, $p:ident, $now:expr) => {
        (
            &mut $s.$p,
            $crate::cx::Cx {
                now: $now,
                cfg: &$s.cfg,
                sh: &mut $s.sh,
            },
        )
    };
}
pub(crate) use split;

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
        // The RNG draws the first IP identification, then TCP's secrets.
        let mut sh = Shared::new(&cfg);
        let tcp = Tcp::new(&cfg.tcp, &mut sh.rng);
        Ok(Stack {
            tcp,
            udp: Udp::default(),
            icmp: Icmp::new(cfg.icmp_errors_per_sec),
            sh,
            reasm: Reassembler::new(cfg.reassembly.clone()),
            cfg,
            clock: Instant::ZERO,
            next_timer: None,
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
        &self.sh.counters
    }

    /// The IPv6 layer's counters.
    pub fn ipv6_counters(&self) -> &Ipv6Counters {
        &self.sh.ip6.counters
    }

    /// The neighbour cache's state and address for `ip` (RFC 4861 §7.3.2).
    pub fn neighbor6(
        &self,
        ip: &std::net::Ipv6Addr,
    ) -> Option<(
        crate::ipv6::neighbor::NeighborState,
        Option<EthernetAddress>,
    )> {
        self.sh.ip6.neigh.get(ip)
    }

    /// The path MTU towards an IPv4 destination (RFC 1191).
    pub fn path_mtu(&self, now: Instant, dst: Ipv4Addr) -> usize {
        self.sh.ip.pmtu.get(now, dst, self.cfg.mtu)
    }

    /// The path MTU towards an IPv6 destination (RFC 8201).
    pub fn path_mtu6(&self, now: Instant, dst: &std::net::Ipv6Addr) -> usize {
        self.sh.ip6.path_mtu(&self.cfg, now, dst)
    }

    /// Our IPv6 addresses: the link-local one, then the configured ones.
    pub fn addresses6(&self) -> Vec<std::net::Ipv6Addr> {
        let mut v = vec![crate::ipv6::link_local(&self.cfg)];
        v.extend(self.cfg.addrs6.iter().map(|c| c.address()));
        v
    }

    /// Fresh ARP entries (Ethernet medium).
    pub fn arp_entries(&self, now: Instant) -> Vec<(Ipv4Addr, EthernetAddress)> {
        self.sh.ip.arp.entries(now)
    }

    /// Bytes held by partially reassembled datagrams.
    pub fn reassembly_bytes(&self) -> usize {
        self.reasm.bytes_held()
    }

    /// Number of open sockets.
    pub fn socket_count(&self) -> usize {
        self.sh.handles.len()
    }

    // ----- sockets, generic -----

    /// Closes a socket and frees its port. EBADF for an unknown handle.
    /// A TCP connection carries on without the handle until its state
    /// machine finishes (FIN, TIME_WAIT), or is reset if unread data is left.
    pub fn close(&mut self, h: SocketHandle) -> Result<()> {
        // The handle goes first: nothing marks it changed from here on.
        let proto = self.sh.handles.remove(h).ok_or(Errno::EBADF)?;
        match proto {
            Proto::Udp => self.udp.udp_close(h),
            Proto::Icmp => self.icmp.close(h),
            Proto::Tcp => {
                let (tcp, mut cx) = split!(self, tcp, self.clock);
                tcp.tcp_close(&mut cx, h);
            }
        }
        Ok(())
    }

    /// The protocol of a live handle: EBADF if none, EOPNOTSUPP if another.
    #[inline]
    pub(crate) fn expect(&self, h: SocketHandle, p: Proto) -> Result<()> {
        match self.sh.handles.proto(h) {
            Some(q) if q == p => Ok(()),
            Some(_) => Err(Errno::EOPNOTSUPP),
            None => Err(Errno::EBADF),
        }
    }

    /// The conditions epoll would report for `h`.
    pub fn readiness(&self, h: SocketHandle) -> Result<Readiness> {
        let r = match self.sh.handles.proto(h).ok_or(Errno::EBADF)? {
            Proto::Udp => self.udp.socket(h).map(|s| s.readiness()),
            Proto::Icmp => self.icmp.socks.get(h).map(|s| s.readiness()),
            Proto::Tcp => self.tcp.tcp_readiness(h),
        };
        r.ok_or(Errno::EBADF)
    }

    /// Sockets whose readiness may have changed since the last call.
    pub fn take_readiness_changes(&mut self) -> Vec<SocketHandle> {
        self.sh.handles.take_changed()
    }

    /// Takes the events recorded since the last call, oldest first
    /// (state transitions, established, reset, closed, RTO).
    pub fn take_events(&mut self) -> Vec<Event> {
        self.sh.events.drain().collect()
    }

    /// Turns the per-segment TCP events on or off ([`StackConfig::trace`]).
    pub fn set_trace(&mut self, on: bool) {
        self.cfg.trace = on;
    }

    /// Outgoing TCP connections take only ephemeral ports `filter` accepts
    /// (see [`crate::ports::PortFilter`]); `None` lifts it.
    pub fn set_port_filter(&mut self, filter: Option<crate::ports::PortFilter>) {
        self.sh.ports.set_filter(filter);
    }

    /// Events dropped because nobody drained them (`StackConfig::max_events`).
    pub fn events_dropped(&self) -> u64 {
        self.sh.events.dropped()
    }

    /// The local address of a socket (getsockname).
    pub fn local_addr(&self, h: SocketHandle) -> Result<Option<SocketAddr>> {
        match self.sh.handles.proto(h).ok_or(Errno::EBADF)? {
            Proto::Udp => Ok(self.udp.socket(h).ok_or(Errno::EBADF)?.local),
            Proto::Icmp => Ok(None),
            Proto::Tcp => self.tcp.tcp_local_addr(h),
        }
    }

    /// The peer address of a socket (getpeername); ENOTCONN if none.
    pub fn peer_addr(&self, h: SocketHandle) -> Result<SocketAddr> {
        match self.sh.handles.proto(h).ok_or(Errno::EBADF)? {
            Proto::Udp => self
                .udp
                .socket(h)
                .ok_or(Errno::EBADF)?
                .remote
                .ok_or(Errno::ENOTCONN),
            Proto::Icmp => Err(Errno::ENOTCONN),
            Proto::Tcp => self.tcp.tcp_peer_addr(h),
        }
    }

    /// Takes a socket's pending error (SO_ERROR).
    pub fn take_error(&mut self, h: SocketHandle) -> Result<Option<Errno>> {
        let e = match self.sh.handles.proto(h).ok_or(Errno::EBADF)? {
            Proto::Udp => self.udp.socks.get_mut(h).and_then(|s| s.error.take()),
            Proto::Icmp => None,
            Proto::Tcp => self.tcp.socks.get_mut(h).and_then(|s| s.error.take()),
        };
        if e.is_some() {
            self.sh.handles.mark_changed(h);
        }
        Ok(e)
    }

    /// Whether `ip` is the limited or our subnet's directed broadcast.
    pub(crate) fn is_broadcast(&self, ip: Ipv4Addr) -> bool {
        is_broadcast(&self.cfg, ip)
    }

    /// Sends an ICMP error (rate limited, RFC 1812 §4.3.2.8).
    fn send_icmp_error(&mut self, now: Instant, to: Ipv4Addr, repr: Icmpv4Repr) {
        let (icmp, mut cx) = split!(self, icmp, now);
        icmp.send_icmp_error(&mut cx, to, repr);
    }

    fn fail_owner(&mut self, owner: Option<(SocketHandle, usize)>, err: Errno) {
        self.udp.fail_owner(&mut self.sh.handles, owner, err);
    }

    // ----- timers -----

    /// When `transmit` should next be called even if no frame arrives.
    /// A time at or before `now` means at once.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.sh.ip.pending() || !self.sh.ip6.out.is_empty() {
            return Some(Instant::ZERO);
        }
        let tcp = min_opt(self.tcp.poll_at(), self.sh.ip6.poll_at());
        if self.sh.ip.timers_dirty {
            return min_opt(self.ip_timers(), tcp);
        }
        min_opt(self.next_timer, tcp)
    }

    /// The earliest ARP, reassembly or path MTU deadline.
    fn ip_timers(&self) -> Option<Instant> {
        min_opt(
            min_opt(self.sh.ip.arp.poll_at(), self.reasm.poll_at()),
            self.sh.ip.pmtu.poll_at(),
        )
    }

    fn run_timers(&mut self, now: Instant) {
        self.sh.ip6.run_timers(&self.cfg, now);
        {
            let (tcp, mut cx) = split!(self, tcp, now);
            tcp.tcp_run_timers(&mut cx);
        }
        if self.sh.ip.timers_dirty {
            self.next_timer = self.ip_timers();
            self.sh.ip.timers_dirty = false;
        }
        match self.next_timer {
            Some(t) if t <= now => {}
            _ => return,
        }
        let (actions, failed) = self.sh.ip.arp.poll(now);
        for ArpAction::Request(ip) in actions {
            self.sh
                .ip
                .queue_arp_request(&self.cfg, &mut self.sh.counters, ip);
        }
        for f in failed {
            debug!(addr = %f.addr, packets = f.packets.len(), "ARP resolution failed");
            self.sh.counters.arp.resolution_failures += 1;
            self.sh.counters.arp.pending_dropped += f.packets.len() as u64;
            self.sh.counters.ip.out_discards += f.packets.len() as u64;
            for p in f.packets {
                self.fail_owner(p.owner, Errno::EHOSTUNREACH);
            }
        }
        for dst in self.sh.ip.pmtu.expire(now) {
            // RFC 1191 §6.3: back to the link MTU, and TCP told.
            self.sh.counters.ip.pmtu_expired += 1;
            let mtu = self.cfg.mtu;
            let (tcp, mut cx) = split!(self, tcp, now);
            tcp.tcp_pmtu_changed(&mut cx, dst, mtu);
        }
        for e in self.reasm.poll(now) {
            self.sh.counters.ip.reasm_timeout += 1;
            self.sh.counters.ip.reasm_fails += 1;
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
        self.next_timer = self.ip_timers();
    }

    // ----- output -----

    /// Writes the next frame the stack owes into `buf` and returns its
    /// length; `None` when there is nothing to send now. Runs due timers.
    pub fn transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let n = self.transmit_frame(now, buf);
        if self.cfg.trace {
            if let Some(n) = n {
                self.trace_frame(now, &buf[..n], true);
            }
        }
        n
    }

    /// Records a TCP segment event for a frame out or in (`trace` only).
    #[cold]
    fn trace_frame(&mut self, now: Instant, frame: &[u8], sent: bool) {
        let ip = match self.cfg.medium {
            Medium::Ip => frame,
            Medium::Ethernet
                if frame.len() > 14
                    && (frame[12..14] == [0x08, 0x00] || frame[12..14] == [0x86, 0xdd]) =>
            {
                &frame[14..]
            }
            Medium::Ethernet => return,
        };
        if let Some(e) = crate::event::segment_event(ip, sent) {
            self.sh.events.push(now, e);
        }
    }

    #[inline]
    fn transmit_frame(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if now > self.clock {
            self.clock = now;
        }
        if self.ip_quiet(now) {
            // The common case, with one context for both steps: only TCP
            // has timers due or output owed (its timers queue nothing for
            // the IP layer; what it writes goes through `emit_with`).
            let (tcp, mut cx) = split!(self, tcp, now);
            tcp.tcp_run_timers(&mut cx);
            match tcp.dispatch(&mut cx, buf) {
                TcpTx::Sent(n) => return Some(n),
                TcpTx::Idle => return None,
                TcpTx::Again => return self.transmit_queued(now, buf),
            }
        }
        self.run_timers(now);
        self.transmit_queued(now, buf)
    }

    /// Whether only TCP may have timers due or output owed at `now`: the
    /// IP layers' queues empty, none of their timers due.
    #[inline(always)]
    pub(crate) fn ip_quiet(&self, now: Instant) -> bool {
        !self.sh.ip.pending()
            && self.sh.ip6.out.is_empty()
            && self.sh.ip6.poll_at().is_none_or(|t| t > now)
            && !self.sh.ip.timers_dirty
            && self.next_timer.is_none_or(|t| t > now)
    }

    /// `transmit` once the timers have run: the IP layer's queues first
    /// (loopback, fragments, link frames, egress), then TCP.
    fn transmit_queued(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        loop {
            if let Some(bytes) = self.sh.ip.loopback.pop_front() {
                // A datagram to ourselves arrives as if from the wire.
                self.ip_input(now, &bytes);
                continue;
            }
            if let Some(bytes) = self.sh.ip6.out.pop_front() {
                match self.ip6_frame(now, &bytes, buf) {
                    Some(n) => return Some(n),
                    None => continue,
                }
            }
            let (udp, handles) = (&mut self.udp, &mut self.sh.handles);
            let mut release = |owner, err| match err {
                None => udp.release(handles, owner),
                Some(e) => udp.fail_owner(handles, owner, e),
            };
            let q =
                self.sh
                    .ip
                    .next_queued(&self.cfg, &mut self.sh.counters, now, buf, &mut release);
            match q {
                Queued::Frame(n) => return Some(n),
                Queued::Looped => continue,
                Queued::Empty => {}
            }
            // Then TCP writes its next segment straight into `buf`.
            let (tcp, mut cx) = split!(self, tcp, now);
            match tcp.dispatch(&mut cx, buf) {
                TcpTx::Sent(n) => return Some(n),
                TcpTx::Again => continue,
                TcpTx::Idle => return None,
            }
        }
    }

    // ----- input -----

    /// Processes one frame as the device delivered it. Anything malformed
    /// is counted and dropped; nothing here panics on wire input.
    pub fn receive(&mut self, now: Instant, frame: &[u8]) {
        self.receive_with(now, frame, RxMeta::default());
    }

    /// [`receive`](Self::receive) with what the device knows of the frame.
    /// With [`RxMeta::csum_ok`] the frame's IPv4, TCP, UDP and ICMP
    /// checksums are taken as good without being summed (counted in
    /// `link.rx_csum_trusted`); without it they are verified as
    /// `StackConfig::checksums` says.
    pub fn receive_with(&mut self, now: Instant, frame: &[u8], meta: RxMeta) {
        if meta.csum_ok && self.cfg.checksums.rx {
            self.sh.counters.link.rx_csum_trusted += 1;
            // For this frame only: every input check reads the config.
            self.cfg.checksums.rx = false;
            self.receive_frame(now, frame);
            self.cfg.checksums.rx = true;
        } else {
            self.receive_frame(now, frame);
        }
    }

    fn receive_frame(&mut self, now: Instant, frame: &[u8]) {
        if now > self.clock {
            self.clock = now;
        }
        self.sh.counters.link.rx_frames += 1;
        if self.cfg.trace {
            self.trace_frame(now, frame, false);
        }
        match self.cfg.medium {
            Medium::Ip => self.ip_input(now, frame),
            Medium::Ethernet => self.eth_input(now, frame),
        }
    }

    fn eth_input(&mut self, now: Instant, frame: &[u8]) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.sh.counters.link.rx_malformed += 1;
            return;
        };
        let Ok(repr) = EthernetRepr::parse(&eth) else {
            self.sh.counters.link.rx_malformed += 1;
            return;
        };
        // IPv6 multicast groups map to 33:33:xx:xx:xx:xx (RFC 2464 §7).
        let v6_group = repr.ethertype == EtherType::Ipv6 && repr.dst_addr.0[..2] == [0x33, 0x33];
        if repr.dst_addr != self.cfg.mac && !repr.dst_addr.is_broadcast() && !v6_group {
            self.sh.counters.link.rx_not_for_us += 1;
            return;
        }
        match repr.ethertype {
            EtherType::Arp => self.arp_input(now, eth.payload()),
            EtherType::Ipv4 => self.ip_input(now, eth.payload()),
            EtherType::Ipv6 => self.ip6_input(now, eth.payload()),
            _ => self.sh.counters.link.rx_unknown_ethertype += 1,
        }
    }

    /// RFC 826 "Packet Reception".
    fn arp_input(&mut self, now: Instant, bytes: &[u8]) {
        let repr = match ArpPacket::new_checked(bytes).and_then(|p| ArpRepr::parse(&p)) {
            Ok(r) => r,
            Err(_) => {
                self.sh.counters.arp.rx_malformed += 1;
                return;
            }
        };
        let for_us = repr.target_protocol_addr == self.address();
        match repr.operation {
            ArpOperation::Request => self.sh.counters.arp.rx_requests += 1,
            ArpOperation::Reply => self.sh.counters.arp.rx_replies += 1,
            ArpOperation::Unknown(_) => {
                self.sh.counters.arp.rx_malformed += 1;
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
        if sender_ok && (for_us || self.sh.ip.arp.contains(sender)) {
            let (waiting, evicted) = self.sh.ip.arp.learn(now, sender, repr.source_hardware_addr);
            self.sh.counters.arp.cache_evictions += evicted;
            self.sh.ip.timers_dirty = true;
            for p in waiting.into_iter().rev() {
                self.sh.ip.egress.push_front(p);
            }
        }
        if for_us
            && repr.operation == ArpOperation::Request
            && repr.source_hardware_addr.is_unicast()
        {
            self.sh.ip.queue_arp(
                &self.cfg,
                &mut self.sh.counters,
                ArpOperation::Reply,
                repr.source_hardware_addr,
                sender,
                repr.source_hardware_addr,
            );
        }
    }

    pub(crate) fn ip_input(&mut self, now: Instant, bytes: &[u8]) {
        self.sh.counters.ip.in_receives += 1;
        // The common datagram first, through the wire crate's fixed-layout
        // view: a plain header to us, TCP, checksum good. What header
        // prediction does not take goes on through the checks below.
        if self.cfg.tcp.header_prediction {
            if let Some(v) = Ipv4Fast::new(bytes) {
                // A CE mark takes the full path (ECN, `tcp/ecn.rs`).
                if v.protocol_raw() == u8::from(IpProtocol::Tcp)
                    && bytes[1] & 3 != 3
                    && (v.dst_is(self.cfg.addr.address()) || self.cfg.transparent)
                    && (!self.cfg.checksums.rx || v.checksum_ok())
                {
                    let pair = IpPair {
                        src: v.src_addr(),
                        dst: v.dst_addr(),
                    };
                    let (tcp, mut cx) = split!(self, tcp, now);
                    if tcp.process_fast(&mut cx, pair, v.payload()) {
                        return;
                    }
                }
            }
        }
        // On a medium without link headers the version nibble says which
        // IP layer a packet is for.
        if bytes.first().is_some_and(|b| b >> 4 == 6) {
            self.sh.counters.ip.in_receives -= 1;
            return self.ip6_input(now, bytes);
        }
        let packet = match Ipv4Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(ustack_wire::Error::Truncated) => {
                self.sh.counters.ip.in_truncated += 1;
                return;
            }
            Err(_) => {
                self.sh.counters.ip.in_hdr_errors += 1;
                return;
            }
        };
        let repr = match Ipv4Repr::parse(&packet, &self.cfg.checksums) {
            Ok(r) => r,
            Err(ustack_wire::Error::Checksum) => {
                self.sh.counters.ip.in_csum_errors += 1;
                self.sh.counters.ip.in_hdr_errors += 1;
                return;
            }
            Err(_) => {
                self.sh.counters.ip.in_hdr_errors += 1;
                return;
            }
        };
        // RFC 1122 §3.2.1.3: discard datagrams from a non-unicast source.
        if repr.src_addr.is_broadcast()
            || repr.src_addr.is_multicast()
            || self.is_broadcast(repr.src_addr)
        {
            self.sh.counters.ip.in_addr_errors += 1;
            return;
        }
        let broadcast = self.is_broadcast(repr.dst_addr);
        // Transparent mode takes any unicast destination as ours.
        let foreign_ok = self.cfg.transparent
            && !repr.dst_addr.is_multicast()
            && !repr.dst_addr.is_unspecified();
        if repr.dst_addr != self.address() && !broadcast && !foreign_ok {
            // We are a host, not a router (RFC 1122 §3.3.1).
            self.sh.counters.ip.in_addr_errors += 1;
            return;
        }
        let header_len = packet.header_len() as usize;
        if repr.more_frags || repr.frag_offset != 0 {
            self.sh.counters.ip.reasm_reqds += 1;
            let outcome = self
                .reasm
                .add(now, &repr, &bytes[..header_len], packet.payload());
            self.sh.ip.timers_dirty = true;
            match outcome {
                Outcome::Held | Outcome::Duplicate => {}
                Outcome::Complete(full, data) => {
                    self.sh.counters.ip.reasm_oks += 1;
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
                    self.sh.counters.ip.reasm_fails += 1;
                    match reason {
                        DropReason::Overlap => self.sh.counters.ip.reasm_overlaps += 1,
                        DropReason::TooMany => self.sh.counters.ip.reasm_too_many += 1,
                        DropReason::Oversize => self.sh.counters.ip.reasm_oversize += 1,
                        DropReason::Memory => self.sh.counters.ip.reasm_memory_drops += 1,
                        DropReason::Malformed => self.sh.counters.ip.in_hdr_errors += 1,
                    }
                }
            }
            self.sh.counters.ip.reasm_memory_drops += std::mem::take(&mut self.reasm.evicted);
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
            IpProtocol::Udp => {
                let pair = IpPair {
                    src: ip.src_addr,
                    dst: ip.dst_addr,
                };
                let (udp, mut cx) = split!(self, udp, now);
                let pair = Addrs::V4(pair);
                if udp.process(&mut cx, pair, payload, broadcast) == UdpIn::NoPort && !broadcast {
                    let repr = Icmpv4Repr::DstUnreachable {
                        reason: DstUnreachable::PortUnreachable,
                        next_hop_mtu: 0,
                        invoking: quote,
                    };
                    self.send_icmp_error(now, ip.src_addr, repr);
                }
            }
            IpProtocol::Tcp => {
                let pair = IpPair {
                    src: ip.src_addr,
                    dst: ip.dst_addr,
                };
                self.sh.rx_ce = ip.tos & 3 == 3;
                let (tcp, mut cx) = split!(self, tcp, now);
                tcp.process(&mut cx, pair, payload, broadcast);
                self.sh.rx_ce = false;
            }
            _ => {
                self.sh.counters.ip.in_unknown_protos += 1;
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
        let pair = IpPair {
            src: ip.src_addr,
            dst: ip.dst_addr,
        };
        let (icmp, mut cx) = split!(self, icmp, now);
        if let IcmpIn::Error { invoking, err, mtu } =
            icmp.process(&mut cx, pair, payload, broadcast)
        {
            self.icmp_error_input(now, invoking, err, mtu);
        }
    }

    /// Routes an ICMP error to the socket that sent the quoted datagram;
    /// a Fragmentation Needed about a TCP segment lowers the path MTU
    /// (RFC 1191 §6.1), once TCP has checked the quote (RFC 5927 §4.1).
    fn icmp_error_input(&mut self, now: Instant, invoking: &[u8], err: Errno, mtu: u16) {
        let Ok(quoted) = ustack_wire::icmpv4::parse_invoking(invoking) else {
            self.sh.counters.icmp.in_errors += 1;
            return;
        };
        if quoted.src_addr != self.address() || quoted.transport.len() < 4 {
            return;
        }
        let src_port = u16::from_be_bytes([quoted.transport[0], quoted.transport[1]]);
        let dst_port = u16::from_be_bytes([quoted.transport[2], quoted.transport[3]]);
        let local = SocketAddr::new(IpAddr::V4(quoted.src_addr), src_port);
        let remote = SocketAddr::new(IpAddr::V4(quoted.dst_addr), dst_port);
        match quoted.protocol {
            IpProtocol::Udp => {
                let (udp, mut cx) = split!(self, udp, now);
                udp.udp_icmp_error(&mut cx, local, remote, err);
            }
            IpProtocol::Tcp => {
                let t = quoted.transport;
                let seq = ustack_wire::SeqNumber(u32::from_be_bytes([t[4], t[5], t[6], t[7]]));
                let (tcp, mut cx) = split!(self, tcp, now);
                if !tcp.tcp_icmp_valid(&mut cx, local, remote, seq) {
                    return;
                }
                if err != Errno::EMSGSIZE {
                    return tcp.tcp_icmp_error(&mut cx, local, remote, err);
                }
                // RFC 1191 §5: no next-hop MTU (an old router), so the
                // plateau below the quoted datagram's length.
                let mtu = match mtu {
                    0 => crate::ipv4::pmtu::plateau_below(usize::from(u16::from_be_bytes([
                        invoking[2],
                        invoking[3],
                    ]))),
                    m => usize::from(m),
                };
                let dst = quoted.dst_addr;
                let link = self.cfg.mtu;
                let lowered = self.sh.ip.pmtu.lower(now, dst, mtu, link).is_some();
                let pmtu = self.sh.ip.pmtu.get(now, dst, link);
                let (tcp, mut cx) = split!(self, tcp, now);
                if lowered {
                    // Every connection to the destination (once per change).
                    cx.sh.counters.ip.pmtu_lowered += 1;
                    cx.sh.ip.timers_dirty = true;
                    tcp.tcp_pmtu_changed(&mut cx, dst, pmtu);
                } else {
                    tcp.tcp_mtu_reduced(&mut cx, local, remote, pmtu);
                }
            }
            _ => {}
        }
    }
}

impl Stack {
    /// One IPv6 packet in; echo replies go to their ping socket.
    pub(crate) fn ip6_input(&mut self, now: Instant, bytes: &[u8]) {
        match self.sh.ip6.input(&self.cfg, now, bytes) {
            None => {}
            Some(In6::Echo(r)) => {
                let reply = crate::icmp::EchoReply {
                    from: std::net::IpAddr::V6(r.from),
                    seq_no: r.seq_no,
                    data: r.data,
                    at: now,
                };
                let (icmp, mut cx) = split!(self, icmp, now);
                icmp.icmp_deliver_reply(&mut cx, r.ident, reply);
            }
            Some(In6::Upper {
                proto,
                src,
                dst,
                multicast,
                at,
                packet,
            }) => {
                let b = packet.as_deref().unwrap_or(bytes);
                let end = ustack_wire::ipv6::HEADER_LEN
                    + usize::from(Ipv6Packet::new_unchecked(b).payload_len());
                let whole = &b[..end.min(b.len())];
                let Some(upper) = whole.get(at..) else {
                    return;
                };
                self.ip6_deliver(now, proto, src, dst, multicast, whole, upper);
            }
            Some(In6::PathMtu { dst, mtu }) => {
                let (tcp, mut cx) = split!(self, tcp, now);
                tcp.tcp_pmtu_changed6(&mut cx, dst, mtu);
            }
            Some(In6::Error {
                proto,
                local,
                remote,
                err,
            }) => match proto {
                IpProtocol::Udp => {
                    let (udp, mut cx) = split!(self, udp, now);
                    udp.udp_icmp_error(&mut cx, local, remote, err);
                }
                IpProtocol::Tcp => {
                    let (tcp, mut cx) = split!(self, tcp, now);
                    tcp.tcp_icmp_error(&mut cx, local, remote, err);
                }
                _ => {}
            },
        }
    }

    /// A TCP or UDP datagram over IPv6 to its transport; a UDP port no
    /// socket holds is answered Port Unreachable (RFC 4443 §3.1 code 4).
    #[allow(clippy::too_many_arguments)]
    fn ip6_deliver(
        &mut self,
        now: Instant,
        proto: u8,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        multicast: bool,
        whole: &[u8],
        upper: &[u8],
    ) {
        if proto == u8::from(IpProtocol::Tcp) {
            // RFC 9293 §3.10.7.1 for multicast, as RFC 1122 §4.2.3.10 for broadcast.
            if !multicast {
                // ECN: the low bits of the traffic class (RFC 3168 §5).
                self.sh.rx_ce = whole.get(1).is_some_and(|b| (b >> 4) & 3 == 3);
                let (tcp, mut cx) = split!(self, tcp, now);
                tcp.process6(&mut cx, src, dst, upper);
                self.sh.rx_ce = false;
            }
            return;
        }
        let (udp, mut cx) = split!(self, udp, now);
        let pair = Addrs::V6 { src, dst };
        if udp.process(&mut cx, pair, upper, multicast) == UdpIn::NoPort && !multicast {
            use ustack_wire::icmpv6::unreachable;
            self.sh.ip6.send_error(&self.cfg, now, whole, |q| {
                ustack_wire::Icmpv6Repr::DstUnreachable {
                    code: unreachable::PORT_UNREACHABLE,
                    invoking: q,
                }
            });
        }
    }

    /// Frames one queued IPv6 packet into `buf`; `None` if it went
    /// elsewhere (to ourselves) or was dropped (counted).
    fn ip6_frame(&mut self, now: Instant, bytes: &[u8], buf: &mut [u8]) -> Option<usize> {
        let dst = Ipv6Packet::new_unchecked(bytes).dst_addr();
        if crate::ipv6::is_ours(&self.cfg, &dst) {
            self.ip6_input(now, bytes);
            return None;
        }
        let hl = self.cfg.link_header_len();
        let mtu = self.sh.ip6.path_mtu(&self.cfg, now, &dst);
        if bytes.len() > mtu
            && Ipv6Packet::new_unchecked(bytes).next_header()
                != ustack_wire::ipv6::next_header::FRAGMENT
        {
            // We add no extension headers, so all after the fixed header is
            // fragmentable (RFC 8200 §4.5), to the path MTU (RFC 8201 §4).
            self.sh.ip6.fragment_front(bytes, mtu);
            return None;
        }
        if bytes.len() > self.cfg.mtu || buf.len() < hl + bytes.len() {
            self.sh.counters.link.tx_dropped_too_big += 1;
            self.sh.ip6.counters.out_discards += 1;
            return None;
        }
        if self.cfg.medium == Medium::Ethernet {
            let mac = if dst.is_multicast() {
                crate::ipv6::multicast_mac(&dst)
            } else {
                // Every destination is taken as on-link (no default router
                // yet): its own address is resolved (RFC 4861 §7.2.2).
                use crate::ipv6::neighbor::Lookup;
                match self.sh.ip6.neigh.lookup(now, dst, bytes) {
                    Lookup::Send(mac) => mac,
                    Lookup::Held { solicit, dropped } => {
                        if dropped {
                            self.sh.ip6.counters.out_discards += 1;
                        }
                        if let Some(s) = solicit {
                            self.sh.ip6.solicit(&self.cfg, s);
                        }
                        return None;
                    }
                    Lookup::Refused => {
                        self.sh.ip6.counters.out_discards += 1;
                        return None;
                    }
                }
            };
            crate::ipv4::output::write_eth_header(buf, self.cfg.mac, mac, EtherType::Ipv6);
        }
        buf[hl..hl + bytes.len()].copy_from_slice(bytes);
        self.sh.counters.link.tx_frames += 1;
        Some(hl + bytes.len())
    }
}

fn min_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
