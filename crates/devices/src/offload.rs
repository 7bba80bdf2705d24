//! TUN/TAP offloads: what a device negotiated, and the virtio-net header
//! of each frame it reads or writes (see `ustack_core::wire::virtio`).
//!
//! Send: the stack hands the device plain frames, and, when told the
//! device takes TSO (`StackConfig::tso`), TCP super-segments longer than
//! the MTU whose checksum field holds only the pseudo-header sum. The
//! device recognises one by its length and writes it with `gso_type`
//! TCPV4 (TCPV6 for an IPv6 packet), `gso_size` = MTU − IP header − TCP
//! header (the stack makes super-segments only of segments that fill
//! the MTU), `hdr_len`, and `NEEDS_CSUM` with `csum_start`/`csum_offset`:
//! the kernel cuts it into segments and finishes their checksums. Every
//! other frame goes with an all-zero header (checksums complete).
//!
//! Receive: a super-packet from the kernel (GSO, up to 64 KiB) reaches
//! the stack whole, as one large TCP segment. Read through `recv_with`
//! (as the runtime and the driver do), a frame flagged `NEEDS_CSUM` or
//! `DATA_VALID` comes with `RxMeta::csum_ok`: the stack takes its
//! checksums as good without summing them, and a partial checksum stays
//! partial in the frame. Read through plain `recv`, a partial checksum
//! is completed here, so the stack's own verification holds. A header
//! that does not fit its frame is counted and the frame dropped.

use std::fmt;
use ustack_core::wire::virtio::{self, GsoType, VirtioError, VirtioNetHdr};
use ustack_core::Medium;

/// The offloads a device negotiated with the kernel (`TUNSETOFFLOAD`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offloads {
    /// Frames carry a virtio-net header (`IFF_VNET_HDR`).
    pub vnet_hdr: bool,
    /// `TUN_F_CSUM`: partial checksums both ways.
    pub csum: bool,
    /// `TUN_F_TSO4`: TCP/IPv4 super-segments both ways.
    pub tso4: bool,
    /// `TUN_F_TSO6`: TCP/IPv6 super-segments both ways.
    pub tso6: bool,
    /// `TUN_F_USO4 | TUN_F_USO6`: UDP segmentation (accepted, not used to send).
    pub uso: bool,
}

impl Offloads {
    pub const NONE: Offloads = Offloads {
        vnet_hdr: false,
        csum: false,
        tso4: false,
        tso6: false,
        uso: false,
    };

    /// Whether the stack may hand this device TCP/IPv4 super-segments.
    pub fn tso(&self) -> bool {
        self.vnet_hdr && self.csum && self.tso4
    }
}

impl fmt::Display for Offloads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.vnet_hdr {
            return f.write_str("none (plain frames)");
        }
        let mut on = vec!["vnet-hdr"];
        for (b, n) in [
            (self.csum, "csum"),
            (self.tso4, "tso4"),
            (self.tso6, "tso6"),
            (self.uso, "uso"),
        ] {
            if b {
                on.push(n);
            }
        }
        f.write_str(&on.join(" "))
    }
}

/// What the device did with one received frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RxInfo {
    pub gso: bool,
    /// NEEDS_CSUM (completed here) or DATA_VALID.
    pub csum_offloaded: bool,
}

/// Where the IP packet starts in a frame of `medium`, and its version.
fn ip_start(medium: Medium, frame: &[u8]) -> Option<(usize, u8)> {
    let at = match medium {
        Medium::Ip => 0,
        Medium::Ethernet => {
            let et = frame.get(12..14)?;
            if et != [0x08, 0x00] && et != [0x86, 0xdd] {
                return None;
            }
            14
        }
    };
    Some((at, frame.get(at)? >> 4))
}

/// Checks a received frame's header and, with `complete`, completes a
/// partial checksum (without, the caller tells the stack the device
/// vouches for it: `RxMeta::csum_ok`).
pub(crate) fn rx_fixup(
    hdr: &[u8],
    frame: &mut [u8],
    complete: bool,
) -> Result<RxInfo, VirtioError> {
    let h = VirtioNetHdr::parse(hdr)?;
    let gso = h.check(frame.len())?;
    if complete && h.needs_csum() {
        virtio::complete_checksum(frame, usize::from(h.csum_start), usize::from(h.csum_offset))?;
    }
    Ok(RxInfo {
        gso: gso != GsoType::None,
        csum_offloaded: h.needs_csum() || h.data_valid(),
    })
}

/// Checks a received frame's header against the frame's length alone
/// (the frame is not in one piece: its partial checksum, if any, is left
/// partial, and the caller tells the stack the device vouches for it).
pub(crate) fn rx_check(hdr: &[u8], frame_len: usize) -> Result<RxInfo, VirtioError> {
    let h = VirtioNetHdr::parse(hdr)?;
    let gso = h.check(frame_len)?;
    Ok(RxInfo {
        gso: gso != GsoType::None,
        csum_offloaded: h.needs_csum() || h.data_valid(),
    })
}

/// The header for a frame the stack sends: TSO for a TCP super-segment
/// (longer than `mtu`), else plain. `None` for a frame over the MTU that
/// is not a TCP segment this can describe (the caller refuses it).
pub(crate) fn tx_header(medium: Medium, mtu: usize, frame: &[u8]) -> Option<VirtioNetHdr> {
    let (ip, version) = match ip_start(medium, frame) {
        Some(x) => x,
        None => {
            return (frame.len() <= mtu + 14).then_some(VirtioNetHdr::PLAIN);
        }
    };
    if frame.len() - ip <= mtu {
        return Some(VirtioNetHdr::PLAIN);
    }
    let (ihl, proto, gso) = match version {
        4 => (
            usize::from(frame.get(ip)? & 0x0f) * 4,
            *frame.get(ip + 9)?,
            GsoType::TcpV4,
        ),
        // RFC 8200: a TCP segment right after the fixed header (ustack
        // sends no extension headers).
        6 => (40, *frame.get(ip + 6)?, GsoType::TcpV6),
        _ => return None,
    };
    if proto != 6 {
        return None;
    }
    let tcp = ip + ihl;
    let thl = usize::from(frame.get(tcp + 12)? >> 4) * 4;
    let hdr_len = tcp + thl;
    let gso_size = mtu.checked_sub(ihl + thl)?;
    if thl < 20 || gso_size == 0 || hdr_len >= frame.len() {
        return None;
    }
    Some(VirtioNetHdr {
        flags: virtio::F_NEEDS_CSUM,
        gso_type: gso.raw(),
        hdr_len: u16::try_from(hdr_len).ok()?,
        gso_size: u16::try_from(gso_size).ok()?,
        csum_start: u16::try_from(tcp).ok()?,
        csum_offset: 16,
    })
}

/// Cuts a TCP super-segment (a frame [`tx_header`] gives a GSO header)
/// into the segments the kernel would put on the wire (Linux
/// `tcp_gso_segment`): the headers copied, IP total length, ident (+1
/// per segment) and header checksum set, the sequence number advanced,
/// FIN and PSH on the last only, each TCP checksum computed in full.
/// `None` for any other frame.
pub fn gso_segment(medium: Medium, mtu: usize, frame: &[u8]) -> Option<Vec<Vec<u8>>> {
    use ustack_core::wire::checksum;
    let h = tx_header(medium, mtu, frame)?;
    if h.gso_type != GsoType::TcpV4.raw() {
        return None;
    }
    let (ip, _) = ip_start(medium, frame)?;
    let tcp = usize::from(h.csum_start);
    let hl = usize::from(h.hdr_len);
    let gso = usize::from(h.gso_size);
    let payload = frame.get(hl..)?;
    let seq0 = u32::from_be_bytes(frame.get(tcp + 4..tcp + 8)?.try_into().ok()?);
    let ident0 = u16::from_be_bytes(frame.get(ip + 4..ip + 6)?.try_into().ok()?);
    let flags = *frame.get(tcp + 13)?;
    let src = std::net::Ipv4Addr::from(<[u8; 4]>::try_from(frame.get(ip + 12..ip + 16)?).ok()?);
    let dst = std::net::Ipv4Addr::from(<[u8; 4]>::try_from(frame.get(ip + 16..ip + 20)?).ok()?);
    let n = payload.len().div_ceil(gso);
    let mut out = Vec::with_capacity(n);
    for (i, chunk) in payload.chunks(gso).enumerate() {
        let mut f = Vec::with_capacity(hl + chunk.len());
        f.extend_from_slice(&frame[..hl]);
        f.extend_from_slice(chunk);
        let total = u16::try_from(f.len() - ip).ok()?;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        f[ip + 4..ip + 6].copy_from_slice(&ident0.wrapping_add(i as u16).to_be_bytes());
        f[ip + 10..ip + 12].fill(0);
        let c = !checksum::fold(checksum::sum(&f[ip..tcp]));
        f[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        let seq = seq0.wrapping_add((i * gso) as u32);
        f[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
        // FIN (0x01) and PSH (0x08) on the last segment only.
        f[tcp + 13] = if i + 1 == n { flags } else { flags & !0x09 };
        f[tcp + 16..tcp + 18].fill(0);
        let len = f.len() - tcp;
        let pseudo =
            checksum::pseudo_header(src, dst, ustack_core::wire::IpProtocol::Tcp, len as u32);
        let c = !checksum::fold(pseudo + checksum::sum(&f[tcp..]));
        f[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
        out.push(f);
    }
    Some(out)
}

/// Software GRO for links whose kernel side did not coalesce (plain TUN,
/// TAP, MemLink): within one receive batch, consecutive in-order TCP/IPv4
/// segments of one flow are merged into one datagram of up to 64 KiB
/// before the stack sees them, so TCP takes them in one step and ACKs
/// them once (as Linux's `tcp_gro_receive`). Merged only: segments with
/// a good checksum (a bad one passes through alone, for the stack to
/// count), no IP options or fragments, the same addresses, ports, ACK,
/// window, TCP options (timestamps included) and only ACK set, all of one
/// size but the last (which may be shorter, or carry PSH). The merged
/// datagram gets fresh IP and TCP checksums. Returns how many segments
/// went into merged datagrams.
pub fn gro(medium: Medium, input: &crate::PacketBatch, out: &mut crate::PacketBatch) -> u64 {
    let mut merged = 0u64;
    let mut cur: Option<Run> = None;
    for (frame, meta) in input.iter_with() {
        let seg = GroSeg::parse(medium, frame);
        if let (Some(run), Some(seg)) = (cur.as_mut(), seg.as_ref()) {
            if run.takes(frame, seg) {
                run.push(frame, seg);
                continue;
            }
        }
        if let Some(run) = cur.take() {
            merged += run.finish(out);
        }
        match seg {
            Some(seg) if seg.mergeable_start() => cur = Some(Run::new(frame, &seg)),
            // As it came, with what the device said of it (a partial
            // checksum the device vouches for fails GRO's check).
            _ => out.push_with(frame, meta),
        }
    }
    if let Some(run) = cur.take() {
        merged += run.finish(out);
    }
    merged
}

/// One TCP/IPv4 segment as GRO sees it.
struct GroSeg {
    ip: usize,
    tcp: usize,
    payload: usize,
    seq: u32,
    flags: u8,
    /// Sum of the payload (RFC 1071, unfolded).
    payload_sum: u64,
}

impl GroSeg {
    fn parse(medium: Medium, f: &[u8]) -> Option<GroSeg> {
        use ustack_core::wire::checksum;
        let (ip, v) = ip_start(medium, f)?;
        if v != 4 || *f.get(ip)? != 0x45 || *f.get(ip + 9)? != 6 {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([*f.get(ip + 2)?, *f.get(ip + 3)?]));
        let frag = u16::from_be_bytes([f[ip + 6], f[ip + 7]]);
        if ip + total != f.len() || frag & 0x3fff != 0 {
            return None;
        }
        let tcp = ip + 20;
        let thl = usize::from(*f.get(tcp + 12)? >> 4) * 4;
        let payload = tcp + thl;
        if thl < 20 || payload >= f.len() {
            return None;
        }
        if checksum::fold(checksum::sum(&f[ip..tcp])) != 0xffff {
            return None;
        }
        let src = std::net::Ipv4Addr::new(f[ip + 12], f[ip + 13], f[ip + 14], f[ip + 15]);
        let dst = std::net::Ipv4Addr::new(f[ip + 16], f[ip + 17], f[ip + 18], f[ip + 19]);
        let pseudo = checksum::pseudo_header(
            src,
            dst,
            ustack_core::wire::IpProtocol::Tcp,
            (f.len() - tcp) as u32,
        );
        let payload_sum = checksum::sum(&f[payload..]);
        if checksum::fold(pseudo + checksum::sum(&f[tcp..payload]) + payload_sum) != 0xffff {
            return None;
        }
        Some(GroSeg {
            ip,
            tcp,
            payload,
            seq: u32::from_be_bytes(f[tcp + 4..tcp + 8].try_into().ok()?),
            flags: f[tcp + 13],
            payload_sum,
        })
    }

    /// ACK alone (PSH ends a run, so it may only come last).
    fn mergeable_start(&self) -> bool {
        self.flags == 0x10
    }
}

/// A run of segments being merged: the first's headers and all payloads.
struct Run {
    bytes: Vec<u8>,
    ip: usize,
    tcp: usize,
    hdr_len: usize,
    /// The size of the first segment's payload: the others must match.
    seg: usize,
    next_seq: u32,
    count: u64,
    payload_sum: u64,
    /// Bytes of payload so far (an odd count swaps the next sum's bytes).
    payload_len: usize,
    done: bool,
}

impl Run {
    fn new(frame: &[u8], s: &GroSeg) -> Run {
        let seg = frame.len() - s.payload;
        let mut bytes = Vec::with_capacity(65_536);
        bytes.extend_from_slice(frame);
        Run {
            bytes,
            ip: s.ip,
            tcp: s.tcp,
            hdr_len: s.payload,
            seg,
            next_seq: s.seq.wrapping_add(seg as u32),
            count: 1,
            payload_sum: s.payload_sum,
            payload_len: seg,
            done: false,
        }
    }

    fn takes(&self, frame: &[u8], s: &GroSeg) -> bool {
        let len = frame.len() - s.payload;
        !self.done
            && s.payload == self.hdr_len
            && s.seq == self.next_seq
            && (s.flags == 0x10 || s.flags == 0x18)
            && len <= self.seg
            && self.bytes.len() + len <= self.ip + 65_535
            // Link header, IP addresses, ports, ACK, window, options.
            && frame[..self.ip] == self.bytes[..self.ip]
            && frame[self.ip + 12..self.ip + 20] == self.bytes[self.ip + 12..self.ip + 20]
            && frame[self.tcp..self.tcp + 4] == self.bytes[self.tcp..self.tcp + 4]
            && frame[self.tcp + 8..self.tcp + 12] == self.bytes[self.tcp + 8..self.tcp + 12]
            && frame[self.tcp + 14..self.tcp + 16] == self.bytes[self.tcp + 14..self.tcp + 16]
            && frame[self.tcp + 20..self.hdr_len] == self.bytes[self.tcp + 20..self.hdr_len]
    }

    fn push(&mut self, frame: &[u8], s: &GroSeg) {
        let len = frame.len() - s.payload;
        self.bytes.extend_from_slice(&frame[s.payload..]);
        // RFC 1071 §2(B): a sum taken from an odd offset is byte-swapped.
        let sum = if self.payload_len % 2 == 1 {
            swap_sum(s.payload_sum)
        } else {
            s.payload_sum
        };
        self.payload_sum += sum;
        self.payload_len += len;
        self.next_seq = self.next_seq.wrapping_add(len as u32);
        self.count += 1;
        if len < self.seg || s.flags & 0x08 != 0 {
            self.bytes[self.tcp + 13] |= s.flags & 0x08;
            self.done = true;
        }
    }

    /// Writes the run (merged, or the one segment as it was); returns the
    /// segments merged (0 for a run of one).
    fn finish(mut self, out: &mut crate::PacketBatch) -> u64 {
        use ustack_core::wire::checksum;
        if self.count == 1 {
            out.push(&self.bytes);
            return 0;
        }
        let (ip, tcp) = (self.ip, self.tcp);
        let total = (self.bytes.len() - ip) as u16;
        self.bytes[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        self.bytes[ip + 10..ip + 12].fill(0);
        let c = !checksum::fold(checksum::sum(&self.bytes[ip..tcp]));
        self.bytes[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
        self.bytes[tcp + 16..tcp + 18].fill(0);
        let b = &self.bytes;
        let src = std::net::Ipv4Addr::new(b[ip + 12], b[ip + 13], b[ip + 14], b[ip + 15]);
        let dst = std::net::Ipv4Addr::new(b[ip + 16], b[ip + 17], b[ip + 18], b[ip + 19]);
        let pseudo = checksum::pseudo_header(
            src,
            dst,
            ustack_core::wire::IpProtocol::Tcp,
            (b.len() - tcp) as u32,
        );
        let c = !checksum::fold(
            pseudo
                + checksum::sum(&b[tcp..self.hdr_len])
                + u64::from(checksum::fold(self.payload_sum)),
        );
        self.bytes[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
        out.push(&self.bytes);
        self.count
    }
}

/// The sum of bytes taken one offset later: each 16-bit word's bytes swapped.
fn swap_sum(s: u64) -> u64 {
    u64::from(ustack_core::wire::checksum::fold(s).swap_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_frame(total: usize, thl: usize) -> Vec<u8> {
        let mut f = vec![0u8; total];
        f[0] = 0x45;
        f[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        f[9] = 6;
        f[20 + 12] = ((thl / 4) as u8) << 4;
        f
    }

    #[test]
    fn a_super_segment_gets_a_tso_header_and_a_segment_a_plain_one() {
        let big = tcp_frame(20 + 32 + 44 * 1448, 32);
        let h = tx_header(Medium::Ip, 1500, &big).unwrap();
        assert_eq!(
            h,
            VirtioNetHdr {
                flags: virtio::F_NEEDS_CSUM,
                gso_type: 1,
                hdr_len: 52,
                gso_size: 1448,
                csum_start: 20,
                csum_offset: 16,
            }
        );
        let one = tcp_frame(1500, 32);
        assert_eq!(tx_header(Medium::Ip, 1500, &one), Some(VirtioNetHdr::PLAIN));
        // Over the MTU but not TCP: refused.
        let mut udp = tcp_frame(3000, 20);
        udp[9] = 17;
        assert_eq!(tx_header(Medium::Ip, 1500, &udp), None);
        // Ethernet: offsets move by the link header.
        let mut eth = vec![0u8; 14];
        eth[12..14].copy_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&tcp_frame(20 + 20 + 3 * 1460, 20));
        let h = tx_header(Medium::Ethernet, 1500, &eth).unwrap();
        assert_eq!((h.hdr_len, h.gso_size, h.csum_start), (54, 1460, 34));
    }

    /// Every combination of edge values in a received header, on frames
    /// of edge lengths, completing or not: an error or a header that fits
    /// the frame, never a panic.
    #[test]
    fn no_received_header_panics_or_points_past_the_frame() {
        let edges = [0u16, 1, 2, 19, 20, 34, 40, 54, 1460, 2999, 3000, 0xffff];
        for len in [0usize, 1, 20, 40, 54, 3000] {
            for flags in 0u8..4 {
                for gso_type in [0u8, 1, 3, 4, 5, 0x80, 0x81, 0xff] {
                    for &start in &edges {
                        for &off in &edges {
                            for &hl in &[0u16, 40, 3000] {
                                let mut hdr = [0u8; 12];
                                VirtioNetHdr {
                                    flags,
                                    gso_type,
                                    hdr_len: hl,
                                    gso_size: off,
                                    csum_start: start,
                                    csum_offset: off,
                                }
                                .emit(&mut hdr);
                                for complete in [true, false] {
                                    let mut f = vec![0x5au8; len];
                                    if let Ok(info) = rx_fixup(&hdr, &mut f, complete) {
                                        if flags & 1 != 0 {
                                            assert!(
                                                usize::from(start) + usize::from(off) + 2 <= len
                                            );
                                        }
                                        assert_eq!(info.csum_offloaded, flags != 0);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_bad_received_header_is_an_error_not_a_panic() {
        let mut f = tcp_frame(3000, 20);
        let mut hdr = [0u8; 12];
        VirtioNetHdr {
            flags: 1,
            gso_type: 1,
            hdr_len: 40,
            gso_size: 0,
            csum_start: 20,
            csum_offset: 16,
        }
        .emit(&mut hdr);
        // Whether or not the partial checksum is to be completed (left
        // partial when the stack is told the device vouches for it).
        for complete in [true, false] {
            assert_eq!(
                rx_fixup(&hdr, &mut f, complete),
                Err(VirtioError::GsoSizeZero)
            );
            assert_eq!(
                rx_fixup(&hdr[..3], &mut f, complete),
                Err(VirtioError::Truncated)
            );
            let mut past = [0u8; 12];
            VirtioNetHdr {
                flags: 1,
                gso_type: 0,
                hdr_len: 0,
                gso_size: 0,
                csum_start: 2990,
                csum_offset: 16,
            }
            .emit(&mut past);
            assert_eq!(
                rx_fixup(&past, &mut f, complete),
                Err(VirtioError::CsumPastEnd)
            );
            let mut ok = [0u8; 12];
            ok[1] = 1;
            ok[4] = 100;
            ok[2] = 40;
            assert_eq!(
                rx_fixup(&ok, &mut f, complete),
                Ok(RxInfo {
                    gso: true,
                    csum_offloaded: false
                })
            );
        }
    }

    /// A TCP/IPv4 segment with full checksums.
    fn segment(
        sport: u16,
        seq: u32,
        flags: ustack_core::wire::TcpFlags,
        payload: &[u8],
    ) -> Vec<u8> {
        use ustack_core::wire::*;
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let tcp = TcpRepr {
            src_port: sport,
            dst_port: 80,
            flags,
            seq_number: SeqNumber(seq),
            ack_number: SeqNumber(7),
            window_len: 1000,
            urgent_pointer: 0,
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            sack_ranges: [None; 4],
            timestamp: Some(TcpTimestamp { tsval: 5, tsecr: 6 }),
            payload,
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: IpProtocol::Tcp,
            payload_len: tcp.buffer_len(),
            ttl: 64,
            tos: 0,
            ident: seq as u16,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
        };
        let mut f = vec![0u8; 20 + tcp.buffer_len()];
        ip.emit(
            &mut Ipv4Packet::new_unchecked(&mut f[..]),
            &ChecksumCaps::SOFTWARE,
        );
        tcp.emit(
            &mut TcpPacket::new_unchecked(&mut f[20..]),
            src,
            dst,
            &ChecksumCaps::SOFTWARE,
        );
        f
    }

    /// Parses with every checksum verified: (sport, seq, flags, payload).
    fn parse(f: &[u8]) -> (u16, u32, ustack_core::wire::TcpFlags, Vec<u8>) {
        use ustack_core::wire::*;
        let ip = Ipv4Packet::new_checked(f).unwrap();
        let ipr = Ipv4Repr::parse(&ip, &ChecksumCaps::SOFTWARE).expect("IP checksum");
        let t = TcpPacket::new_checked(&ip.payload()[..ipr.payload_len]).unwrap();
        let r = TcpRepr::parse(&t, ipr.src_addr, ipr.dst_addr, &ChecksumCaps::SOFTWARE)
            .expect("TCP checksum");
        (r.src_port, r.seq_number.0, r.flags, r.payload.to_vec())
    }

    #[test]
    fn gro_merges_one_flows_in_order_segments_and_nothing_else() {
        use ustack_core::wire::TcpFlags;
        let ack = TcpFlags::ACK;
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 13 % 251) as u8).collect();
        // Odd-sized segments, so sums are taken from odd offsets too.
        let mss = 1447;
        let mut input = crate::PacketBatch::new();
        let mut seq = 1000u32;
        for (i, chunk) in data[..8 * mss].chunks(mss).enumerate() {
            let flags = if i == 7 { ack | TcpFlags::PSH } else { ack };
            input.push(&segment(5000, seq, flags, chunk));
            seq += chunk.len() as u32;
        }
        // Another flow, then ours again: not merged across the other.
        input.push(&segment(5001, 1, ack, &data[..100]));
        let mut bad = segment(5000, seq, ack, &data[8 * mss..9 * mss]);
        let n = bad.len();
        bad[n - 1] ^= 1;
        input.push(&bad);
        input.push(&segment(
            5000,
            seq + mss as u32,
            ack,
            &data[9 * mss..10 * mss],
        ));
        input.push(&segment(
            5000,
            seq + 2 * mss as u32,
            ack,
            &data[10 * mss..11 * mss],
        ));
        // A gap (a segment lost): not merged.
        input.push(&segment(
            5000,
            seq + 4 * mss as u32,
            ack,
            &data[12 * mss..13 * mss],
        ));
        let mut out = crate::PacketBatch::new();
        let merged = gro(Medium::Ip, &input, &mut out);
        assert_eq!(merged, 8 + 2);
        let frames: Vec<&[u8]> = out.iter().collect();
        assert_eq!(
            frames.len(),
            5,
            "8 merged, the other flow, the bad one, 2 merged, the one after a gap"
        );
        let (port, s0, flags, payload) = parse(frames[0]);
        assert_eq!((port, s0), (5000, 1000));
        assert!(flags.contains(TcpFlags::PSH), "PSH from the last");
        assert_eq!(payload, &data[..8 * mss]);
        assert_eq!(parse(frames[1]).0, 5001);
        assert_eq!(frames[2], &bad[..], "a bad checksum passes through, alone");
        let (_, s3, _, p3) = parse(frames[3]);
        assert_eq!(
            (s3, p3.as_slice()),
            (seq + mss as u32, &data[9 * mss..11 * mss])
        );
        assert_eq!(parse(frames[4]).1, seq + 4 * mss as u32);
    }
}
