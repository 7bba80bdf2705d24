//! UDP sockets (RFC 768; socket behaviour after Linux `net/ipv4/udp.c`).

use crate::cx::Cx;
use crate::errno::{Errno, Result};
use crate::ipv4::output::{route, IpPair};
use crate::socket::{Handles, Proto, Readiness, Slab, SocketHandle};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddrV4;
use ustack_wire::{IpProtocol, Ipv4Addr, UdpPacket, UdpRepr};

/// Bytes charged per queued datagram on top of its payload, so a flood of
/// empty datagrams still fills the receive buffer (Linux charges skb truesize).
pub const DATAGRAM_OVERHEAD: usize = 64;
/// Largest UDP payload in an IPv4 datagram.
pub const MAX_PAYLOAD: usize = 65535 - 20 - 8;

/// One received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddrV4,
    /// The address it was sent to (in transparent mode, not ours).
    pub to: SocketAddrV4,
    pub data: Vec<u8>,
}

/// A UDP socket's state.
#[derive(Debug)]
pub struct UdpSocket {
    pub(crate) local: Option<SocketAddrV4>,
    pub(crate) remote: Option<SocketAddrV4>,
    pub(crate) rx: VecDeque<Datagram>,
    pub(crate) rx_bytes: usize,
    pub(crate) rcvbuf: usize,
    pub(crate) tx_bytes: usize,
    pub(crate) sndbuf: usize,
    pub(crate) error: Option<Errno>,
    /// Datagrams dropped because the receive queue was full.
    pub(crate) drops: u64,
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
    pub(crate) fn score(&self, to: SocketAddrV4, from: SocketAddrV4) -> Option<u8> {
        let local = self.local?;
        if local.port() != to.port() {
            return None;
        }
        let mut score = 1;
        if !local.ip().is_unspecified() {
            if *local.ip() != *to.ip() {
                return None;
            }
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
        ip: IpPair,
        payload: &[u8],
        broadcast: bool,
    ) -> UdpIn {
        let Ok(packet) = UdpPacket::new_checked(payload) else {
            cx.sh.counters.udp.in_errors += 1;
            return UdpIn::Done;
        };
        let repr = match UdpRepr::parse(&packet, ip.src, ip.dst, &cx.cfg.checksums) {
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
        let to = SocketAddrV4::new(ip.dst, repr.dst_port);
        let from = SocketAddrV4::new(ip.src, repr.src_port);
        let lookup_to = if broadcast {
            SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, repr.dst_port)
        } else {
            to
        };
        let found = self
            .udp_lookup(lookup_to, from)
            .or(self.any.filter(|_| !broadcast));
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
        addr: SocketAddrV4,
    ) -> Result<SocketAddrV4> {
        if self.udp(h)?.local.is_some() {
            return Err(Errno::EINVAL);
        }
        let ip = *addr.ip();
        if !ip.is_unspecified() && ip != cx.cfg.addr.address() {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let port = if addr.port() == 0 {
            let ports = &self.ports;
            let sockets = &self.socks;
            let in_use = |p: u16| udp_port_conflicts(ports, sockets, p, ip);
            cx.sh.ports.pick(&mut cx.sh.rng, in_use)?
        } else {
            if udp_port_conflicts(&self.ports, &self.socks, addr.port(), ip) {
                return Err(Errno::EADDRINUSE);
            }
            addr.port()
        };
        let local = SocketAddrV4::new(ip, port);
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
        remote: SocketAddrV4,
    ) -> Result<()> {
        if remote.port() == 0 {
            return Err(Errno::EINVAL);
        }
        route(cx.cfg, *remote.ip())?;
        if self.udp(h)?.local.is_none() {
            self.udp_bind(cx, h, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
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
        to: Option<SocketAddrV4>,
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
        from: SocketAddrV4,
        to: SocketAddrV4,
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
        from: Option<SocketAddrV4>,
        to: Option<SocketAddrV4>,
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
        let next_hop = route(cx.cfg, *dst.ip())?;
        if from.is_none() && self.udp(h)?.local.is_none() {
            self.udp_bind(cx, h, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        }
        if cx.sh.ip.egress_full(cx.cfg) {
            return Err(Errno::ENOBUFS);
        }
        let Some(local) = from.or(self.udp(h)?.local) else {
            return Err(Errno::EINVAL);
        };
        let src_ip = from.map_or(cx.cfg.addr.address(), |f| *f.ip());
        let mut payload = vec![0u8; ustack_wire::udp::HEADER_LEN + data.len()];
        let repr = UdpRepr {
            src_port: local.port(),
            dst_port: dst.port(),
        };
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut payload[..]),
            src_ip,
            *dst.ip(),
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
            *dst.ip(),
            IpProtocol::Udp,
            payload,
            Some((h, charge)),
        );
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
    ) -> Result<(usize, usize, SocketAddrV4)> {
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
    ) -> Result<(usize, usize, SocketAddrV4, SocketAddrV4)> {
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
    ) -> Result<(usize, usize, SocketAddrV4)> {
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

    pub(crate) fn udp_lookup(&self, to: SocketAddrV4, from: SocketAddrV4) -> Option<SocketHandle> {
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
        from: SocketAddrV4,
        to: SocketAddrV4,
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
        local: SocketAddrV4,
        remote: SocketAddrV4,
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
    ip: Ipv4Addr,
) -> bool {
    ports.get(&port).is_some_and(|v| {
        v.iter().any(|&h| match sockets.get(h) {
            Some(s) => s
                .local
                .is_some_and(|l| l.ip().is_unspecified() || ip.is_unspecified() || *l.ip() == ip),
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
        udp.udp_bind(&mut p.cx(now), h, SocketAddrV4::new(US, 7))
            .unwrap();
        let ip = IpPair { src: PEER, dst: US };
        let d = datagram(5000, 7, b"ping");
        assert_eq!(udp.process(&mut p.cx(now), ip, &d, false), UdpIn::Done);
        assert_eq!(p.sh.handles.take_changed(), vec![h], "readable now");
        let mut buf = [0u8; 16];
        let (n, full, from) = udp.udp_recv_from(h, &mut buf).unwrap();
        assert_eq!((&buf[..n], full), (&b"ping"[..], 4));
        assert_eq!(from, SocketAddrV4::new(PEER, 5000));
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
