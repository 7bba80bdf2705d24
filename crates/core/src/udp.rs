//! UDP sockets (RFC 768; socket behaviour after Linux `net/ipv4/udp.c`).

use crate::cx::Cx;
use crate::errno::{Errno, Result};
use crate::ipv4::output::{route, Addrs};
use crate::socket::{Handles, Proto, Readiness, Slab, SocketHandle};
use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;
use std::net::{IpAddr, SocketAddr};
use ustack_wire::{checksum, IpProtocol, Ipv4Addr, Ipv6Packet, Ipv6Repr, UdpPacket, UdpRepr};

/// Bytes charged per queued datagram on top of its payload, so a flood of
/// empty datagrams still fills the receive buffer (Linux charges skb truesize).
pub const DATAGRAM_OVERHEAD: usize = 64;
/// Largest UDP payload in an IPv4 datagram.
pub const MAX_PAYLOAD: usize = 65535 - 20 - 8;

/// One received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddr,
    /// The address it was sent to (in transparent mode, not ours).
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

/// A UDP socket's state.
#[derive(Debug)]
pub struct UdpSocket {
    pub(crate) local: Option<SocketAddr>,
    pub(crate) remote: Option<SocketAddr>,
    pub(crate) rx: VecDeque<Datagram>,
    pub(crate) rx_bytes: usize,
    pub(crate) rcvbuf: usize,
    pub(crate) tx_bytes: usize,
    pub(crate) sndbuf: usize,
    pub(crate) error: Option<Errno>,
    /// Datagrams dropped because the receive queue was full.
    pub(crate) drops: u64,
    /// IPV6_V6ONLY: an IPv6 wildcard bind takes no IPv4 (RFC 3493 §5.3).
    pub(crate) v6only: bool,
    /// IPV6_UNICAST_HOPS: the hop limit of our IPv6 datagrams.
    pub(crate) unicast_hops: Option<u8>,
}

impl UdpSocket {
    pub(crate) fn new(rcvbuf: usize, sndbuf: usize) -> Self {
        UdpSocket {
            local: None,
            remote: None,
            rx: VecDeque::new(),
            rx_bytes: 0,
            rcvbuf,
            tx_bytes: 0,
            sndbuf,
            error: None,
            drops: 0,
            v6only: false,
            unicast_hops: None,
        }
    }

    pub(crate) fn readiness(&self) -> Readiness {
        Readiness {
            readable: !self.rx.is_empty() || self.error.is_some(),
            // Linux `sock_writeable`: less than half the send buffer in use.
            writable: self.tx_bytes < self.sndbuf / 2,
            error: self.error.is_some(),
            hangup: false,
            read_hangup: false,
        }
    }

    /// Whether a datagram from `from` to `to` may be delivered here, and how
    /// well it matches (Linux `compute_score`: exact beats wildcard).
    pub(crate) fn score(&self, to: SocketAddr, from: SocketAddr) -> Option<u8> {
        let local = self.local?;
        if local.port() != to.port() {
            return None;
        }
        let mut score = 1;
        if crate::addr::takes(local.ip(), self.v6only, to.ip())? {
            score += 2;
        }
        if let Some(remote) = self.remote {
            if remote != from {
                return None;
            }
            score += 4;
        }
        Some(score)
    }

    /// Bytes waiting to be read.
    pub fn rx_queued(&self) -> usize {
        self.rx.iter().map(|d| d.data.len()).sum()
    }

    pub fn drops(&self) -> u64 {
        self.drops
    }
}

/// UDP: the sockets and the port table. Datagrams in through `process`,
/// out through the IP layer's egress queue.
#[derive(Default)]
pub struct Udp {
    pub(crate) socks: Slab<UdpSocket>,
    ports: HashMap<u16, Vec<SocketHandle>>,
    /// The any-destination socket ([`Udp::udp_bind_any`]): datagrams no
    /// other socket takes.
    any: Option<SocketHandle>,
}

/// What became of a datagram handed to [`Udp::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UdpIn {
    /// Delivered, or dropped and counted.
    Done,
    /// No socket for its port (counted): the IP layer may answer with
    /// ICMP port unreachable (RFC 1122 §4.1.3.1).
    NoPort,
}

impl Udp {
    fn udp(&self, h: SocketHandle) -> Result<&UdpSocket> {
        self.socks.get(h).ok_or(Errno::EBADF)
    }

    fn udp_mut(&mut self, h: SocketHandle) -> Result<&mut UdpSocket> {
        self.socks.get_mut(h).ok_or(Errno::EBADF)
    }

    /// The socket behind a handle.
    pub(crate) fn socket(&self, h: SocketHandle) -> Option<&UdpSocket> {
        self.socks.get(h)
    }

    /// One datagram (`payload`: the UDP header and data) for us;
    /// `broadcast` when sent to a broadcast address.
    pub(crate) fn process(
        &mut self,
        cx: &mut Cx<'_>,
        ip: Addrs,
        payload: &[u8],
        broadcast: bool,
    ) -> UdpIn {
        let Ok(packet) = UdpPacket::new_checked(payload) else {
            cx.sh.counters.udp.in_errors += 1;
            return UdpIn::Done;
        };
        let parsed = match ip {
            Addrs::V4(ip) => UdpRepr::parse(&packet, ip.src, ip.dst, &cx.cfg.checksums),
            Addrs::V6 { .. } => {
                // RFC 8200 §8.1: the checksum is mandatory over IPv6 (zero
                // is no exemption), over the IPv6 pseudo-header.
                let len = payload.len().min(usize::from(packet.len()));
                let bytes = &payload[..len];
                let sum = ip.pseudo_sum(IpProtocol::Udp, len) + checksum::sum(bytes);
                if packet.checksum() == 0 || (cx.cfg.checksums.rx && checksum::fold(sum) != 0xffff)
                {
                    Err(ustack_wire::Error::Checksum)
                } else {
                    let caps = ustack_wire::ChecksumCaps::OFFLOAD;
                    UdpRepr::parse(&packet, Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, &caps)
                }
            }
        };
        let repr = match parsed {
            Ok(r) => r,
            Err(ustack_wire::Error::Checksum) => {
                cx.sh.counters.udp.in_csum_errors += 1;
                cx.sh.counters.udp.in_errors += 1;
                return UdpIn::Done;
            }
            Err(_) => {
                cx.sh.counters.udp.in_errors += 1;
                return UdpIn::Done;
            }
        };
        cx.sh.counters.ip.in_delivers += 1;
        let to = SocketAddr::new(ip.dst(), repr.dst_port);
        let from = SocketAddr::new(ip.src(), repr.src_port);
        let lookup_to = if broadcast {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), repr.dst_port)
        } else {
            to
        };
        let found = self
            .udp_lookup(lookup_to, from)
            // The any-destination socket forwards IPv4 only.
            .or(self.any.filter(|_| !broadcast && to.is_ipv4()));
        match found {
            Some(h) => {
                self.udp_deliver(cx, h, from, to, packet.payload());
                UdpIn::Done
            }
            None => {
                cx.sh.counters.udp.no_ports += 1;
                UdpIn::NoPort
            }
        }
    }

    /// Opens an unbound UDP socket.
    pub fn udp_open(&mut self, cx: &mut Cx<'_>) -> SocketHandle {
        let s = UdpSocket::new(cx.cfg.udp_rcvbuf, cx.cfg.udp_sndbuf);
        let h = cx.sh.handles.insert(Proto::Udp);
        self.socks.insert(h, s);
        h
    }

    /// Binds to `addr` (port 0: an ephemeral port, RFC 6056). The address
    /// must be ours or unspecified (EADDRNOTAVAIL); a port held by another
    /// socket with an overlapping address is EADDRINUSE.
    pub fn udp_bind(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        addr: SocketAddr,
    ) -> Result<SocketAddr> {
        if self.udp(h)?.local.is_some() {
            return Err(Errno::EINVAL);
        }
        let ip = addr.ip();
        if !ip.is_unspecified() && !crate::addr::is_local(cx.cfg, ip) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let v6only = self.udp(h)?.v6only;
        let port = if addr.port() == 0 {
            let ports = &self.ports;
            let sockets = &self.socks;
            let in_use = |p: u16| udp_port_conflicts(ports, sockets, p, ip, v6only);
            cx.sh.ports.pick(&mut cx.sh.rng, in_use)?
        } else {
            if udp_port_conflicts(&self.ports, &self.socks, addr.port(), ip, v6only) {
                return Err(Errno::EADDRINUSE);
            }
            addr.port()
        };
        let local = SocketAddr::new(ip, port);
        self.udp_mut(h)?.local = Some(local);
        self.ports.entry(port).or_default().push(h);
        Ok(local)
    }

    /// Sets the default destination and filters received datagrams to it.
    /// Binds an ephemeral port first if unbound.
    pub fn udp_connect(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        remote: SocketAddr,
    ) -> Result<()> {
        if remote.port() == 0 {
            return Err(Errno::EINVAL);
        }
        crate::addr::check_route(cx.cfg, remote.ip())?;
        if self.udp(h)?.local.is_none() {
            self.udp_bind(cx, h, crate::addr::unspecified_like(&remote))?;
        }
        let s = self.udp_mut(h)?;
        s.remote = Some(remote);
        s.error = None;
        Ok(())
    }

    /// Queues one datagram. `to` may be omitted on a connected socket
    /// (EDESTADDRREQ otherwise). A full send buffer is EAGAIN; a payload too
    /// large for IPv4 is EMSGSIZE. A pending error (SO_ERROR) is returned
    /// first, once.
    pub fn udp_send_to(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        data: &[u8],
        to: Option<SocketAddr>,
    ) -> Result<usize> {
        self.udp_send_inner(cx, h, data, None, to)
    }

    /// Queues one datagram from `from` (any address and port) to `to`, on
    /// the any-destination socket `h` ([`udp_bind_any`](Self::udp_bind_any)):
    /// a forwarded flow's reply comes from the address the client sent to.
    /// EINVAL on another socket.
    pub fn udp_send_from(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        data: &[u8],
        from: SocketAddr,
        to: SocketAddr,
    ) -> Result<usize> {
        self.udp(h)?;
        if self.any != Some(h) || from.port() == 0 || from.ip().is_unspecified() {
            return Err(Errno::EINVAL);
        }
        self.udp_send_inner(cx, h, data, Some(from), Some(to))
    }

    fn udp_send_inner(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        data: &[u8],
        from: Option<SocketAddr>,
        to: Option<SocketAddr>,
    ) -> Result<usize> {
        let s = self.udp_mut(h)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let dst = to.or(s.remote).ok_or(Errno::EDESTADDRREQ)?;
        if dst.port() == 0 {
            return Err(Errno::EINVAL);
        }
        if data.len() > MAX_PAYLOAD {
            return Err(Errno::EMSGSIZE);
        }
        let charge = data.len() + DATAGRAM_OVERHEAD;
        if s.tx_bytes > 0 && s.tx_bytes + charge > s.sndbuf {
            cx.sh.counters.udp.sndbuf_errors += 1;
            return Err(Errno::EAGAIN);
        }
        let dst4 = match dst.ip() {
            IpAddr::V4(d) => d,
            IpAddr::V6(d) => return self.udp_send6(cx, h, data, from, d, dst.port()),
        };
        let next_hop = route(cx.cfg, dst4)?;
        if from.is_none() && self.udp(h)?.local.is_none() {
            self.udp_bind(cx, h, SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))?;
        }
        if cx.sh.ip.egress_full(cx.cfg) {
            return Err(Errno::ENOBUFS);
        }
        let Some(local) = from.or(self.udp(h)?.local) else {
            return Err(Errno::EINVAL);
        };
        let src_ip = match from.map(|f| f.ip()) {
            Some(IpAddr::V4(a)) => a,
            Some(IpAddr::V6(_)) => return Err(Errno::EAFNOSUPPORT),
            None => cx.cfg.addr.address(),
        };
        let mut payload = vec![0u8; ustack_wire::udp::HEADER_LEN + data.len()];
        let repr = UdpRepr {
            src_port: local.port(),
            dst_port: dst.port(),
        };
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut payload[..]),
            src_ip,
            dst4,
            data,
            &cx.cfg.checksums,
        );
        let s = self.udp_mut(h)?;
        s.tx_bytes += charge;
        cx.sh.counters.udp.out_datagrams += 1;
        cx.sh.ip.queue_from(
            cx.cfg,
            src_ip,
            next_hop,
            dst4,
            IpProtocol::Udp,
            payload,
            Some((h, charge)),
        );
        Ok(data.len())
    }

    /// One datagram over IPv6, as a whole packet on the IPv6 layer's queue
    /// (fragmented there to the path MTU, RFC 8200 §4.5): the IPv6
    /// pseudo-header checksum (RFC 8200 §8.1), the flow's label (RFC 6437).
    fn udp_send6(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        data: &[u8],
        from: Option<SocketAddr>,
        dst: Ipv6Addr,
        dport: u16,
    ) -> Result<usize> {
        crate::addr::check_route(cx.cfg, IpAddr::V6(dst))?;
        if from.is_none() && self.udp(h)?.local.is_none() {
            self.udp_bind(cx, h, SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0))?;
        }
        if cx.sh.ip6.out.len() >= cx.cfg.max_egress_packets {
            return Err(Errno::ENOBUFS);
        }
        let s = self.udp(h)?;
        let Some(local) = from.or(s.local) else {
            return Err(Errno::EINVAL);
        };
        let src = match local.ip() {
            IpAddr::V6(a) if !a.is_unspecified() => a,
            IpAddr::V6(_) => crate::ipv6::source_for(cx.cfg, &dst),
            // A socket bound to an IPv4 address cannot reach an IPv6 peer.
            IpAddr::V4(_) => return Err(Errno::ENETUNREACH),
        };
        let len = ustack_wire::udp::HEADER_LEN + data.len();
        let ip6 = &mut cx.sh.ip6;
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Udp,
            payload_len: len,
            hop_limit: s.unicast_hops.unwrap_or(cx.cfg.hop_limit6),
            traffic_class: 0,
            flow_label: ip6.transport_label(&src, &dst, 17, local.port(), dport),
        };
        let hl = ustack_wire::ipv6::HEADER_LEN;
        let mut b = vec![0u8; hl + len];
        ip.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
        let repr = UdpRepr {
            src_port: local.port(),
            dst_port: dport,
        };
        let mut udp = UdpPacket::new_unchecked(&mut b[hl..]);
        repr.emit(
            &mut udp,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            data,
            &ustack_wire::ChecksumCaps::OFFLOAD,
        );
        udp.set_checksum(0);
        let c = !checksum::fold(
            checksum::pseudo_header_v6(src, dst, IpProtocol::Udp, len as u32)
                + checksum::sum(&b[hl..]),
        );
        // RFC 768 / RFC 8200 §8.1: a computed zero is sent as all ones.
        UdpPacket::new_unchecked(&mut b[hl..]).set_checksum(if c == 0 { 0xffff } else { c });
        ip6.counters.out_requests += 1;
        ip6.out.push_back(b);
        cx.sh.counters.udp.out_datagrams += 1;
        Ok(data.len())
    }

    /// Takes the oldest datagram, copying at most `buf.len()` bytes (the rest
    /// of a longer datagram is discarded, as POSIX says). Returns the bytes
    /// copied, the datagram's full length, and its source. EAGAIN when empty;
    /// a pending error is returned first, once.
    pub fn udp_recv_from(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> Result<(usize, usize, SocketAddr)> {
        let s = self.udp_mut(h)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let d = s.rx.pop_front().ok_or(Errno::EAGAIN)?;
        s.rx_bytes -= d.data.len() + DATAGRAM_OVERHEAD;
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        Ok((n, d.data.len(), d.from))
    }

    /// Like [`udp_recv_from`](Self::udp_recv_from), with the address the
    /// datagram was sent to as well (IP_PKTINFO / IP_ORIGDSTADDR).
    pub fn udp_recv_from_to(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> Result<(usize, usize, SocketAddr, SocketAddr)> {
        let s = self.udp_mut(h)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let d = s.rx.pop_front().ok_or(Errno::EAGAIN)?;
        s.rx_bytes -= d.data.len() + DATAGRAM_OVERHEAD;
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        Ok((n, d.data.len(), d.from, d.to))
    }

    /// Makes `h` (unbound) the any-destination socket: it receives every
    /// datagram no other socket takes, whatever its address and port
    /// (with [`StackConfig::transparent`](crate::StackConfig::transparent),
    /// those to other hosts too), read with
    /// [`udp_recv_from_to`](Self::udp_recv_from_to) and answered with
    /// [`udp_send_from`](Self::udp_send_from). EADDRINUSE if there is one
    /// already; EINVAL if `h` is bound.
    pub fn udp_bind_any(&mut self, h: SocketHandle) -> Result<()> {
        if self.udp(h)?.local.is_some() {
            return Err(Errno::EINVAL);
        }
        if self.any.is_some_and(|a| self.socks.get(a).is_some()) {
            return Err(Errno::EADDRINUSE);
        }
        self.any = Some(h);
        Ok(())
    }

    /// Like [`udp_recv_from`](Self::udp_recv_from) but leaves the datagram queued (MSG_PEEK).
    pub fn udp_peek_from(
        &mut self,
        h: SocketHandle,
        buf: &mut [u8],
    ) -> Result<(usize, usize, SocketAddr)> {
        let s = self.udp_mut(h)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let d = s.rx.front().ok_or(Errno::EAGAIN)?;
        let n = d.data.len().min(buf.len());
        buf[..n].copy_from_slice(&d.data[..n]);
        Ok((n, d.data.len(), d.from))
    }

    /// Sets SO_RCVBUF / SO_SNDBUF in bytes (clamped to at least 256 like Linux's minimum).
    /// IPV6_V6ONLY; EINVAL once bound (as Linux).
    pub fn udp_set_v6only(&mut self, h: SocketHandle, on: bool) -> Result<()> {
        let s = self.udp_mut(h)?;
        if s.local.is_some() {
            return Err(Errno::EINVAL);
        }
        s.v6only = on;
        Ok(())
    }

    /// IPV6_UNICAST_HOPS (`None`: the stack's default).
    pub fn udp_set_unicast_hops(&mut self, h: SocketHandle, hops: Option<u8>) -> Result<()> {
        self.udp_mut(h)?.unicast_hops = hops;
        Ok(())
    }

    /// IPV6_V6ONLY and IPV6_UNICAST_HOPS as set.
    pub fn udp_v6_options(&self, h: SocketHandle) -> Result<(bool, Option<u8>)> {
        let s = self.udp(h)?;
        Ok((s.v6only, s.unicast_hops))
    }

    pub fn udp_set_buffers(
        &mut self,
        h: SocketHandle,
        rcvbuf: Option<usize>,
        sndbuf: Option<usize>,
    ) -> Result<()> {
        let s = self.udp_mut(h)?;
        if let Some(r) = rcvbuf {
            s.rcvbuf = r.max(256);
        }
        if let Some(w) = sndbuf {
            s.sndbuf = w.max(256);
        }
        Ok(())
    }

    /// Datagrams this socket dropped because its receive queue was full.
    pub fn udp_drops(&self, h: SocketHandle) -> Result<u64> {
        Ok(self.udp(h)?.drops)
    }

    pub(crate) fn udp_close(&mut self, h: SocketHandle) {
        let Some(s) = self.socks.remove(h) else {
            return;
        };
        if self.any == Some(h) {
            self.any = None;
        }
        if let Some(local) = s.local {
            if let Some(v) = self.ports.get_mut(&local.port()) {
                v.retain(|x| *x != h);
                if v.is_empty() {
                    self.ports.remove(&local.port());
                }
            }
        }
    }

    /// Finds the best socket for a datagram (connected, then bound address, then wildcard).
    /// Gives back the send-buffer space a departed (or dropped) datagram held.
    pub(crate) fn release(&mut self, handles: &mut Handles, owner: Option<(SocketHandle, usize)>) {
        let Some((h, charge)) = owner else { return };
        if let Some(s) = self.socks.get_mut(h) {
            s.tx_bytes = s.tx_bytes.saturating_sub(charge);
            handles.mark_changed(h);
        }
    }

    /// Sets a connected socket's error after its datagram could not be
    /// sent (Linux reports a failed neighbour resolution as EHOSTUNREACH).
    pub(crate) fn fail_owner(
        &mut self,
        handles: &mut Handles,
        owner: Option<(SocketHandle, usize)>,
        err: Errno,
    ) {
        if let Some((h, _)) = owner {
            if let Some(s) = self.socks.get_mut(h) {
                if s.remote.is_some() {
                    s.error = Some(err);
                }
            }
        }
        self.release(handles, owner);
    }

    pub(crate) fn udp_lookup(&self, to: SocketAddr, from: SocketAddr) -> Option<SocketHandle> {
        let candidates = self.ports.get(&to.port())?;
        candidates
            .iter()
            .filter_map(|&h| {
                let s = self.socks.get(h)?;
                s.score(to, from).map(|score| (score, h))
            })
            .max_by_key(|(score, _)| *score)
            .map(|(_, h)| h)
    }

    /// Queues a received datagram on `h`, or drops it if the queue is full.
    pub(crate) fn udp_deliver(
        &mut self,
        cx: &mut Cx<'_>,
        h: SocketHandle,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
    ) {
        let Some(s) = self.socks.get_mut(h) else {
            return;
        };
        let charge = data.len() + DATAGRAM_OVERHEAD;
        if s.rx_bytes + charge > s.rcvbuf {
            s.drops += 1;
            cx.sh.counters.udp.rcvbuf_errors += 1;
            cx.sh.counters.udp.in_errors += 1;
            return;
        }
        s.rx_bytes += charge;
        s.rx.push_back(Datagram {
            from,
            to,
            data: data.to_vec(),
        });
        cx.sh.counters.udp.in_datagrams += 1;
        cx.sh.handles.mark_changed(h);
    }

    /// An ICMP error about a datagram we sent from `local` to `remote`: a
    /// connected socket gets it as its pending error (as Linux does).
    pub(crate) fn udp_icmp_error(
        &mut self,
        cx: &mut Cx<'_>,
        local: SocketAddr,
        remote: SocketAddr,
        err: Errno,
    ) {
        let Some(h) = self.udp_lookup(local, remote) else {
            return;
        };
        if let Some(s) = self.socks.get_mut(h) {
            if s.remote == Some(remote) {
                s.error = Some(err);
                cx.sh.handles.mark_changed(h);
            }
        }
    }
}

/// Whether binding `ip:port` would clash with a socket already bound there.
fn udp_port_conflicts(
    ports: &HashMap<u16, Vec<SocketHandle>>,
    sockets: &Slab<UdpSocket>,
    port: u16,
    ip: IpAddr,
    v6only: bool,
) -> bool {
    ports.get(&port).is_some_and(|v| {
        v.iter().any(|&h| match sockets.get(h) {
            Some(s) => s
                .local
                .is_some_and(|l| crate::addr::overlap(l.ip(), s.v6only, ip, v6only)),
            _ => false,
        })
    })
}

#[cfg(test)]
mod tests {
    //! `Udp` driven alone: datagrams in through `process`, out onto the
    //! IP layer's egress queue, with a context built from parts.
    use super::*;
    use crate::config::{Medium, StackConfig};
    use crate::cx::Parts;
    use crate::time::Instant;
    use ustack_wire::{ChecksumCaps, Ipv4Cidr};

    const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn datagram(src_port: u16, dst_port: u16, data: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; ustack_wire::udp::HEADER_LEN + data.len()];
        let repr = UdpRepr { src_port, dst_port };
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut b[..]),
            PEER,
            US,
            data,
            &ChecksumCaps::default(),
        );
        b
    }

    #[test]
    fn delivers_to_the_bound_socket_and_queues_the_answer_without_a_stack() {
        let mut p = Parts::new(StackConfig::new(Medium::Ip, Ipv4Cidr::new(US, 24)));
        let mut udp = Udp::default();
        let now = Instant::from_secs(1);
        let h = udp.udp_open(&mut p.cx(now));
        udp.udp_bind(&mut p.cx(now), h, SocketAddr::new(IpAddr::V4(US), 7))
            .unwrap();
        let ip = Addrs::V4(crate::ipv4::output::IpPair { src: PEER, dst: US });
        let d = datagram(5000, 7, b"ping");
        assert_eq!(udp.process(&mut p.cx(now), ip, &d, false), UdpIn::Done);
        assert_eq!(p.sh.handles.take_changed(), vec![h], "readable now");
        let mut buf = [0u8; 16];
        let (n, full, from) = udp.udp_recv_from(h, &mut buf).unwrap();
        assert_eq!((&buf[..n], full), (&b"ping"[..], 4));
        assert_eq!(from, SocketAddr::new(IpAddr::V4(PEER), 5000));
        // Nobody on port 9: the IP layer is told so (ICMP's to answer).
        let d = datagram(5000, 9, b"x");
        assert_eq!(udp.process(&mut p.cx(now), ip, &d, false), UdpIn::NoPort);
        assert_eq!(p.sh.counters.udp.no_ports, 1);
        // The answer waits on the IP layer's egress queue, charged to h.
        udp.udp_send_to(&mut p.cx(now), h, b"pong", Some(from))
            .unwrap();
        let pkt = p.sh.ip.egress.pop_front().expect("queued for the IP layer");
        assert_eq!((pkt.repr.dst_addr, pkt.next_hop), (PEER, PEER));
        assert_eq!(pkt.owner.map(|(o, _)| o), Some(h));
        assert_eq!(&pkt.payload[8..], b"pong");
    }
}
