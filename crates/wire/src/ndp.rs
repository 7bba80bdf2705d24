//! Neighbor Discovery messages (RFC 4861 §4): Router Solicitation and
//! Advertisement, Neighbor Solicitation and Advertisement, with the
//! link-layer address, prefix information and MTU options (§4.6).
//! These are ICMPv6 messages: [`crate::Icmpv6Repr::Ndp`] wraps them.

use crate::field::{read_u16, read_u32, write_u16, write_u32};
use crate::icmpv6::msg_type;
use crate::{Error, EthernetAddress, Ipv6Addr, Result};

/// Option types (RFC 4861 §4.6).
pub mod option {
    pub const SOURCE_LLADDR: u8 = 1;
    pub const TARGET_LLADDR: u8 = 2;
    pub const PREFIX_INFO: u8 = 3;
    pub const MTU: u8 = 5;
}

/// Neighbor Advertisement flags (RFC 4861 §4.4).
pub mod na_flags {
    pub const ROUTER: u8 = 0x80;
    pub const SOLICITED: u8 = 0x40;
    pub const OVERRIDE: u8 = 0x20;
}

/// A Prefix Information option (RFC 4861 §4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdpPrefixInfo {
    pub prefix_len: u8,
    /// L (0x80) and A (0x40) bits.
    pub flags: u8,
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
    pub prefix: Ipv6Addr,
}

/// A Neighbor Discovery message. Only the options this stack uses are
/// kept; others are skipped (§4.6: "receivers MUST silently ignore any
/// options they do not recognize").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpRepr<'a> {
    RouterSolicit {
        lladdr: Option<EthernetAddress>,
    },
    RouterAdvert {
        hop_limit: u8,
        /// M (0x80) and O (0x40) bits.
        flags: u8,
        router_lifetime: u16,
        reachable_time: u32,
        retrans_time: u32,
        lladdr: Option<EthernetAddress>,
        mtu: Option<u32>,
        /// The first Prefix Information option.
        prefix: Option<NdpPrefixInfo>,
        /// All options, as sent (for further prefixes).
        options: &'a [u8],
    },
    NeighborSolicit {
        target: Ipv6Addr,
        /// Source link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
    NeighborAdvert {
        /// [`na_flags`].
        flags: u8,
        target: Ipv6Addr,
        /// Target link-layer address option.
        lladdr: Option<EthernetAddress>,
    },
}

/// What the options area held.
#[derive(Default)]
struct Options {
    src_ll: Option<EthernetAddress>,
    dst_ll: Option<EthernetAddress>,
    mtu: Option<u32>,
    prefix: Option<NdpPrefixInfo>,
}

/// Walks the options; an option of length 0 is `Malformed` (§4.6), one
/// longer than the message `Truncated`.
fn parse_options(mut o: &[u8]) -> Result<Options> {
    let mut out = Options::default();
    while !o.is_empty() {
        if o.len() < 2 {
            return Err(Error::Truncated);
        }
        let len = usize::from(o[1]) * 8;
        if len == 0 {
            return Err(Error::Malformed);
        }
        let opt = o.get(..len).ok_or(Error::Truncated)?;
        match opt[0] {
            // Length 1 is the Ethernet form (RFC 2464 §6); others are other links'.
            option::SOURCE_LLADDR if len == 8 => {
                out.src_ll = EthernetAddress::from_bytes(&opt[2..8])
            }
            option::TARGET_LLADDR if len == 8 => {
                out.dst_ll = EthernetAddress::from_bytes(&opt[2..8])
            }
            option::MTU if len == 8 => out.mtu = Some(read_u32(opt, 4)),
            option::PREFIX_INFO if len == 32 && out.prefix.is_none() => {
                let p: [u8; 16] = opt[16..32].try_into().unwrap();
                out.prefix = Some(NdpPrefixInfo {
                    prefix_len: opt[2],
                    flags: opt[3],
                    valid_lifetime: read_u32(opt, 4),
                    preferred_lifetime: read_u32(opt, 8),
                    prefix: Ipv6Addr::from(p),
                })
            }
            _ => {}
        }
        o = &o[len..];
    }
    Ok(out)
}

fn addr_at(b: &[u8], at: usize) -> Ipv6Addr {
    let a: [u8; 16] = b[at..at + 16].try_into().unwrap();
    Ipv6Addr::from(a)
}

fn emit_lladdr(b: &mut [u8], kind: u8, ll: EthernetAddress) {
    b[0] = kind;
    b[1] = 1;
    b[2..8].copy_from_slice(&ll.0);
}

impl<'a> NdpRepr<'a> {
    /// Parses the whole ICMPv6 message `b` of type `t` and code `code`.
    /// A code other than 0, a message shorter than its type's fixed
    /// part, or a multicast target is refused (RFC 4861 §6.1, §7.1.1, §7.1.2);
    /// the IP hop limit of 255 is the caller's to check.
    pub fn parse(t: u8, code: u8, b: &'a [u8]) -> Result<NdpRepr<'a>> {
        if code != 0 {
            return Err(Error::Malformed);
        }
        let fixed = match t {
            msg_type::ROUTER_SOLICIT => 8,
            msg_type::ROUTER_ADVERT => 16,
            msg_type::NEIGHBOR_SOLICIT | msg_type::NEIGHBOR_ADVERT => 24,
            _ => return Err(Error::Unsupported),
        };
        if b.len() < fixed {
            return Err(Error::Truncated);
        }
        let options = &b[fixed..];
        let o = parse_options(options)?;
        Ok(match t {
            msg_type::ROUTER_SOLICIT => NdpRepr::RouterSolicit { lladdr: o.src_ll },
            msg_type::ROUTER_ADVERT => NdpRepr::RouterAdvert {
                hop_limit: b[4],
                flags: b[5],
                router_lifetime: read_u16(b, 6),
                reachable_time: read_u32(b, 8),
                retrans_time: read_u32(b, 12),
                lladdr: o.src_ll,
                mtu: o.mtu,
                prefix: o.prefix,
                options,
            },
            _ => {
                let target = addr_at(b, 8);
                if target.is_multicast() {
                    return Err(Error::Malformed);
                }
                if t == msg_type::NEIGHBOR_SOLICIT {
                    NdpRepr::NeighborSolicit {
                        target,
                        lladdr: o.src_ll,
                    }
                } else {
                    NdpRepr::NeighborAdvert {
                        flags: b[4] & 0xe0,
                        target,
                        lladdr: o.dst_ll,
                    }
                }
            }
        })
    }

    /// The ICMPv6 type.
    pub fn msg_type(&self) -> u8 {
        match self {
            NdpRepr::RouterSolicit { .. } => msg_type::ROUTER_SOLICIT,
            NdpRepr::RouterAdvert { .. } => msg_type::ROUTER_ADVERT,
            NdpRepr::NeighborSolicit { .. } => msg_type::NEIGHBOR_SOLICIT,
            NdpRepr::NeighborAdvert { .. } => msg_type::NEIGHBOR_ADVERT,
        }
    }

    /// Whole ICMPv6 message length.
    pub fn buffer_len(&self) -> usize {
        let ll = |l: &Option<EthernetAddress>| if l.is_some() { 8 } else { 0 };
        match self {
            NdpRepr::RouterSolicit { lladdr } => 8 + ll(lladdr),
            NdpRepr::RouterAdvert { options, .. } => 16 + options.len(),
            NdpRepr::NeighborSolicit { lladdr, .. } | NdpRepr::NeighborAdvert { lladdr, .. } => {
                24 + ll(lladdr)
            }
        }
    }

    /// Writes the message (type, code 0, checksum 0, body, options) into
    /// `b`, of exactly `buffer_len()` bytes or more. A Router
    /// Advertisement is written with its `options` bytes as given.
    pub fn emit(&self, b: &mut [u8]) {
        let len = self.buffer_len();
        let b = &mut b[..len];
        b.fill(0);
        b[0] = self.msg_type();
        match *self {
            NdpRepr::RouterSolicit { lladdr } => {
                if let Some(ll) = lladdr {
                    emit_lladdr(&mut b[8..], option::SOURCE_LLADDR, ll);
                }
            }
            NdpRepr::RouterAdvert {
                hop_limit,
                flags,
                router_lifetime,
                reachable_time,
                retrans_time,
                options,
                ..
            } => {
                b[4] = hop_limit;
                b[5] = flags;
                write_u16(b, 6, router_lifetime);
                write_u32(b, 8, reachable_time);
                write_u32(b, 12, retrans_time);
                b[16..].copy_from_slice(options);
            }
            NdpRepr::NeighborSolicit { target, lladdr } => {
                b[8..24].copy_from_slice(&target.octets());
                if let Some(ll) = lladdr {
                    emit_lladdr(&mut b[24..], option::SOURCE_LLADDR, ll);
                }
            }
            NdpRepr::NeighborAdvert {
                flags,
                target,
                lladdr,
            } => {
                b[4] = flags & 0xe0;
                b[8..24].copy_from_slice(&target.octets());
                if let Some(ll) = lladdr {
                    emit_lladdr(&mut b[24..], option::TARGET_LLADDR, ll);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChecksumCaps, Icmpv6Packet, Icmpv6Repr};
    use proptest::prelude::*;

    const MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);

    #[test]
    fn neighbor_solicit_as_linux_sends_it() {
        // NS for fd00::2 with source link-layer option 02:00:00:00:00:01.
        let mut b = vec![135u8, 0, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
        let r = NdpRepr::parse(135, 0, &b).unwrap();
        assert_eq!(
            r,
            NdpRepr::NeighborSolicit {
                target: "fd00::2".parse().unwrap(),
                lladdr: Some(MAC)
            }
        );
        let mut out = vec![0xffu8; r.buffer_len()];
        r.emit(&mut out);
        assert_eq!(out, b);
        // Code not 0, zero-length option, multicast target: refused.
        assert_eq!(NdpRepr::parse(135, 1, &b), Err(Error::Malformed));
        let mut z = b.clone();
        z[25] = 0;
        assert_eq!(NdpRepr::parse(135, 0, &z), Err(Error::Malformed));
        let mut m = b.clone();
        m[8] = 0xff;
        assert_eq!(NdpRepr::parse(135, 0, &m), Err(Error::Malformed));
        assert_eq!(NdpRepr::parse(135, 0, &b[..23]), Err(Error::Truncated));
        assert_eq!(NdpRepr::parse(135, 0, &b[..30]), Err(Error::Truncated));
    }

    #[test]
    fn router_advert_options() {
        let mut b = vec![
            134u8, 0, 0, 0, 64, 0x40, 0x07, 0x08, 0, 0, 0x75, 0x30, 0, 0, 0x03, 0xe8,
        ];
        b.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]); // SLLA
        b.extend_from_slice(&[5, 1, 0, 0, 0, 0, 0x05, 0xdc]); // MTU 1500
        b.extend_from_slice(&[26, 1, 0, 0, 0, 0, 0, 0]); // unknown: ignored
        let mut pi = vec![
            3u8, 4, 64, 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x07, 0x08, 0, 0, 0, 0,
        ];
        pi.extend_from_slice(&"2001:db8::".parse::<Ipv6Addr>().unwrap().octets());
        b.extend_from_slice(&pi);
        let r = NdpRepr::parse(134, 0, &b).unwrap();
        let NdpRepr::RouterAdvert {
            hop_limit,
            flags,
            router_lifetime,
            reachable_time,
            retrans_time,
            lladdr,
            mtu,
            prefix,
            ..
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!((hop_limit, flags, router_lifetime), (64, 0x40, 1800));
        assert_eq!((reachable_time, retrans_time), (30000, 1000));
        assert_eq!((lladdr, mtu), (Some(MAC), Some(1500)));
        let p = prefix.unwrap();
        assert_eq!((p.prefix_len, p.flags), (64, 0xc0));
        assert_eq!((p.valid_lifetime, p.preferred_lifetime), (3600, 1800));
        assert_eq!(p.prefix, "2001:db8::".parse::<Ipv6Addr>().unwrap());
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out);
        assert_eq!(out, b);
    }

    fn arb_ndp(target: u128, flags: u8, ll: Option<[u8; 6]>, kind: u8) -> NdpRepr<'static> {
        let target = Ipv6Addr::from(target & !(0xff << 120));
        let lladdr = ll.map(EthernetAddress);
        match kind % 3 {
            0 => NdpRepr::RouterSolicit { lladdr },
            1 => NdpRepr::NeighborSolicit { target, lladdr },
            _ => NdpRepr::NeighborAdvert {
                flags: flags & 0xe0,
                target,
                lladdr,
            },
        }
    }

    proptest! {
        #[test]
        fn round_trip_through_icmpv6(target in any::<u128>(), flags in any::<u8>(), ll in proptest::option::of(any::<[u8; 6]>()), kind in any::<u8>()) {
            let n = arb_ndp(target, flags, ll, kind);
            let r = Icmpv6Repr::Ndp(n);
            let (s, d) = (Ipv6Addr::LOCALHOST, "ff02::1".parse().unwrap());
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(s, d, &mut Icmpv6Packet::new_unchecked(&mut out[..]), &ChecksumCaps::default());
            let p = Icmpv6Packet::new_checked(&out[..]).unwrap();
            prop_assert_eq!(Icmpv6Repr::parse(&p, s, d, &ChecksumCaps::default()).unwrap(), r);
        }

        #[test]
        fn random_never_panics(t in 133u8..137, data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = NdpRepr::parse(t, 0, &data);
        }
    }
}
