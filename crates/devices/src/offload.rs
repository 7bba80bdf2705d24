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
//! the stack whole, as one large TCP segment; a partial checksum
//! (`NEEDS_CSUM`) is completed here, so the stack's own verification
//! holds. A header that does not fit its frame is counted and the frame
//! dropped.

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

/// Checks a received frame's header and completes a partial checksum.
pub(crate) fn rx_fixup(hdr: &[u8], frame: &mut [u8]) -> Result<RxInfo, VirtioError> {
    let h = VirtioNetHdr::parse(hdr)?;
    let gso = h.check(frame.len())?;
    if h.needs_csum() {
        virtio::complete_checksum(frame, usize::from(h.csum_start), usize::from(h.csum_offset))?;
    }
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
        assert_eq!(rx_fixup(&hdr, &mut f), Err(VirtioError::GsoSizeZero));
        assert_eq!(rx_fixup(&hdr[..3], &mut f), Err(VirtioError::Truncated));
        let mut ok = [0u8; 12];
        ok[1] = 1;
        ok[4] = 100;
        ok[2] = 40;
        assert_eq!(
            rx_fixup(&ok, &mut f),
            Ok(RxInfo {
                gso: true,
                csum_offloaded: false
            })
        );
    }
}
