//! C structures in and out: `sockaddr_in`, option values, `struct tcp_info`.

use libc::{c_int, c_void, sockaddr, socklen_t};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use ustack::OptVal;
use ustack_core::tcp::{State, TcpInfo};

/// Sets errno and returns -1 (as the C calls do on failure).
pub fn fail<T: From<i8>>(e: i32) -> T {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() = e };
    T::from(-1)
}

/// Reads a `sockaddr_in` (EINVAL if short, EAFNOSUPPORT if not AF_INET).
///
/// # Safety
/// `addr` must point to `len` readable bytes (or be null).
pub unsafe fn read_addr(addr: *const sockaddr, len: socklen_t) -> Result<SocketAddrV4, i32> {
    if addr.is_null() {
        return Err(libc::EFAULT);
    }
    if (len as usize) < std::mem::size_of::<libc::sa_family_t>() {
        return Err(libc::EINVAL);
    }
    // SAFETY: at least the family field is readable (checked above).
    let family = unsafe { std::ptr::read_unaligned(addr.cast::<libc::sa_family_t>()) } as c_int;
    if family != libc::AF_INET {
        return Err(libc::EAFNOSUPPORT);
    }
    if (len as usize) < std::mem::size_of::<libc::sockaddr_in>() {
        return Err(libc::EINVAL);
    }
    // SAFETY: `len` covers a sockaddr_in; read_unaligned allows any alignment.
    let sin = unsafe { std::ptr::read_unaligned(addr.cast::<libc::sockaddr_in>()) };
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
        u16::from_be(sin.sin_port),
    ))
}

/// Writes `a` as a `sockaddr_in` (or `sockaddr_in6`) into `addr`
/// (truncated to `*len`, which is set to the full size, as the kernel
/// does). Null pointers: nothing.
///
/// # Safety
/// `addr` must have `*len` writable bytes; `len` valid or null.
pub unsafe fn write_addr(a: SocketAddr, addr: *mut sockaddr, len: *mut socklen_t) {
    if addr.is_null() || len.is_null() {
        return;
    }
    let (bytes, full) = match a {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: plain old data, read as bytes.
            let b: [u8; std::mem::size_of::<libc::sockaddr_in>()] =
                unsafe { std::mem::transmute(sin) };
            (b.to_vec(), b.len())
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo().to_be(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: plain old data, read as bytes.
            let b: [u8; std::mem::size_of::<libc::sockaddr_in6>()] =
                unsafe { std::mem::transmute(sin6) };
            (b.to_vec(), b.len())
        }
    };
    // SAFETY: the caller gives `*len` writable bytes at `addr`.
    unsafe {
        let n = (*len as usize).min(full);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr.cast::<u8>(), n);
        *len = full as socklen_t;
    }
}

/// Options Linux accepts that ustack has no use for: accepted, remembered
/// for getsockopt, without effect (listed in the README).
pub fn noop_option(level: c_int, name: c_int) -> bool {
    matches!(
        (level, name),
        (
            libc::SOL_SOCKET,
            libc::SO_BROADCAST
                | libc::SO_OOBINLINE
                | libc::SO_PRIORITY
                | libc::SO_REUSEADDR
                | libc::SO_REUSEPORT
                | libc::SO_KEEPALIVE
        ) | (
            libc::IPPROTO_IP,
            libc::IP_TOS
                | libc::IP_TTL
                | libc::IP_RECVERR
                | libc::IP_MTU_DISCOVER
                | libc::IP_BIND_ADDRESS_NO_PORT
                | libc::IP_PKTINFO
                | libc::IP_FREEBIND
        ) | (
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK
                | libc::TCP_DEFER_ACCEPT
                | libc::TCP_FASTOPEN
                | libc::TCP_FASTOPEN_CONNECT
                | libc::TCP_NOTSENT_LOWAT
                | libc::TCP_WINDOW_CLAMP
        )
    )
}

/// The option value a setsockopt call passes, shaped as ustack takes it.
///
/// # Safety
/// `val` must have `len` readable bytes.
pub unsafe fn read_opt(
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> Result<OptVal, i32> {
    if val.is_null() {
        return Err(libc::EFAULT);
    }
    let len = len as usize;
    // SAFETY (reads below): each checks `len` covers the C type first.
    match (level, name) {
        (libc::SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_SNDTIMEO) => {
            if len < std::mem::size_of::<libc::timeval>() {
                return Err(libc::EINVAL);
            }
            let tv = unsafe { std::ptr::read_unaligned(val.cast::<libc::timeval>()) };
            if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
                return Err(libc::EDOM);
            }
            let d = Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
            Ok(OptVal::Time((!d.is_zero()).then_some(d)))
        }
        (libc::SOL_SOCKET, libc::SO_LINGER) => {
            if len < std::mem::size_of::<libc::linger>() {
                return Err(libc::EINVAL);
            }
            let l = unsafe { std::ptr::read_unaligned(val.cast::<libc::linger>()) };
            Ok(OptVal::Linger {
                onoff: l.l_onoff != 0,
                secs: l.l_linger,
            })
        }
        (libc::IPPROTO_TCP, libc::TCP_CONGESTION) => {
            let bytes = unsafe { std::slice::from_raw_parts(val.cast::<u8>(), len) };
            let end = bytes.iter().position(|&b| b == 0).unwrap_or(len);
            Ok(OptVal::Name(
                String::from_utf8_lossy(&bytes[..end]).into_owned(),
            ))
        }
        _ => {
            if len >= 4 {
                Ok(OptVal::Int(unsafe {
                    std::ptr::read_unaligned(val.cast::<i32>())
                }))
            } else if len >= 1 {
                // Linux takes a one-byte int for some options.
                Ok(OptVal::Int(i32::from(unsafe { *val.cast::<u8>() })))
            } else {
                Err(libc::EINVAL)
            }
        }
    }
}

/// Copies `bytes` into the caller's option buffer, truncated to `*len`.
///
/// # Safety
/// `val` must have `*len` writable bytes; `len` valid.
pub unsafe fn write_opt_bytes(
    bytes: &[u8],
    val: *mut c_void,
    len: *mut socklen_t,
) -> Result<(), i32> {
    if val.is_null() || len.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: as the caller promises.
    unsafe {
        let n = (*len as usize).min(bytes.len());
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), val.cast::<u8>(), n);
        *len = n as socklen_t;
    }
    Ok(())
}

/// An option value as the C caller expects its bytes.
pub fn opt_bytes(v: &OptVal) -> Vec<u8> {
    match v {
        OptVal::Int(i) => i.to_ne_bytes().to_vec(),
        OptVal::Linger { onoff, secs } => {
            let l = libc::linger {
                l_onoff: c_int::from(*onoff),
                l_linger: *secs,
            };
            struct_bytes(&l)
        }
        OptVal::Time(t) => {
            let t = t.unwrap_or_default();
            let tv = libc::timeval {
                tv_sec: t.as_secs() as libc::time_t,
                tv_usec: t.subsec_micros() as libc::suseconds_t,
            };
            struct_bytes(&tv)
        }
        OptVal::TcpInfo(i) => struct_bytes(&tcp_info(i)),
        OptVal::Name(n) => {
            let mut b = n.as_bytes().to_vec();
            b.push(0);
            b
        }
    }
}

fn struct_bytes<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: `v` is a plain C struct of size_of::<T>() initialised bytes
    // (built field by field from zeroed memory where it has padding).
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
        .to_vec()
}

/// Linux's `tcp_states.h` numbering.
fn linux_state(s: State) -> u8 {
    match s {
        State::Established => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::FinWait1 => 4,
        State::FinWait2 => 5,
        State::TimeWait => 6,
        State::Closed => 7,
        State::CloseWait => 8,
        State::LastAck => 9,
        State::Listen => 10,
        State::Closing => 11,
    }
}

/// `struct tcp_info` in Linux's layout (include/uapi/linux/tcp.h): counts
/// of segments where Linux counts segments, times in microseconds.
pub fn tcp_info(i: &TcpInfo) -> libc::tcp_info {
    // SAFETY: tcp_info is plain integers; all-zero is a valid value.
    let mut t: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mss = u32::from(i.snd_mss.max(1));
    let us = |d: ustack_core::Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    t.tcpi_state = linux_state(i.state);
    t.tcpi_ca_state = match i.ca_state {
        "Disorder" => 1,
        "CWR" => 2,
        "Recovery" => 3,
        "Loss" => 4,
        _ => 0,
    };
    t.tcpi_retransmits = i.retransmits.min(255) as u8;
    t.tcpi_probes = i.probes.min(255) as u8;
    t.tcpi_backoff = i.backoff.min(255) as u8;
    t.tcpi_options = u8::from(i.timestamps)
        | (u8::from(i.sack) << 1)
        | (u8::from(i.snd_wscale > 0 || i.rcv_wscale > 0) << 2);
    t.tcpi_snd_rcv_wscale = (i.snd_wscale & 0xf) | ((i.rcv_wscale & 0xf) << 4);
    t.tcpi_rto = us(i.rto);
    t.tcpi_snd_mss = u32::from(i.snd_mss);
    t.tcpi_rcv_mss = u32::from(i.rcv_mss);
    t.tcpi_unacked = i.unacked.div_ceil(mss);
    t.tcpi_sacked = i.sacked.div_ceil(mss);
    t.tcpi_lost = i.lost.div_ceil(mss);
    t.tcpi_pmtu = u32::from(i.snd_mss) + 40;
    t.tcpi_rcv_ssthresh = i.rcv_wnd;
    t.tcpi_rtt = us(i.rtt);
    t.tcpi_rttvar = us(i.rttvar);
    t.tcpi_snd_ssthresh = i.ssthresh / mss;
    t.tcpi_snd_cwnd = i.cwnd / mss;
    t.tcpi_advmss = u32::from(i.rcv_mss);
    t.tcpi_reordering = 3;
    t.tcpi_rcv_space = i.rcv_wnd;
    t.tcpi_total_retrans = u32::try_from(i.total_retrans).unwrap_or(u32::MAX);
    t
}
