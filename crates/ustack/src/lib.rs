//! ustack for applications: POSIX-like sockets on integer descriptors, an
//! epoll, and `std::net`-like types, on a runtime that drives the sans-IO
//! core over a device.
//!
//! This crate re-exports what a program needs besides the sockets (the
//! stack's configuration, the devices, the clock), so it is the only
//! dependency the common case needs. A TCP echo server on a TUN device
//! (root or CAP_NET_ADMIN; `examples/tun_echo_server.rs` is the runnable
//! version):
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use ustack::net::TcpListener;
//! use ustack::{KernelIf, Medium, Mode, Runtime, StackConfig, TunOptions};
//!
//! let tun = TunOptions::new("ustk0").open_tun()?;
//! KernelIf::new("ustk0", "10.202.0.1/24".parse().unwrap()).apply(None)?;
//! let cfg = StackConfig::new(Medium::Ip, "10.202.0.2/24".parse().unwrap())
//!     .with_seed(ustack::os_seed()?);
//! let rt = Runtime::with_config(cfg, tun, Mode::Thread)?;
//! let listener = TcpListener::bind(&rt, "10.202.0.2:7")?;
//! let (mut conn, _peer) = listener.accept()?;
//! let mut buf = [0u8; 4096];
//! loop {
//!     match conn.read(&mut buf)? {
//!         0 => break,
//!         n => conn.write_all(&buf[..n])?,
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Without a device, [`memnet`] puts runtimes on an in-memory link; the
//! examples on [`Runtime`], [`posix`], [`epoll`] and [`net`] use it.
#![deny(unsafe_code)]

pub mod epoll;
pub mod fd;
pub mod forward;
pub mod group;
pub mod link;
pub mod mapped;
pub mod memnet;
pub mod net;
pub mod posix;
pub mod proactor;
pub mod runtime;
// The only module with `unsafe`: the signal system calls.
#[allow(unsafe_code)]
pub mod signal;
pub mod stats;
mod sys;
pub mod trace;

pub use epoll::EpollEvent;
pub use group::{GroupListener, Pin, RuntimeGroup};
pub use posix::OptVal;
pub use runtime::{Interest, Mode, Runtime};
pub use ustack_core::errno;
pub use ustack_core::Errno;

// What a program needs besides the sockets, so that this one crate is
// enough for the common case: a stack's configuration, a device, the clock.
/// The sans-IO protocol core, for what the re-exports above leave out.
pub use ustack_core;
pub use ustack_core::wire::{CidrParseError, EthernetAddress, Ipv4Cidr};
pub use ustack_core::{
    ConfigError, Congestion, Counters, Medium, Stack, StackConfig, TcpConfig, TcpInfo, TcpState,
};
/// Devices and links, for what the re-exports above leave out.
pub use ustack_devices;
pub use ustack_devices::{
    Captured, Clock, Device, Impaired, Impairments, KernelIf, LinkKind, NetNs, PcapSink,
    SharedLink, Tap, Tun, TunOptions,
};

/// 64 bits from the operating system's randomness (getrandom(2)), to seed a
/// stack on a real device: [`StackConfig::with_seed`]. A fixed seed makes
/// every run choose the same ephemeral ports (RFC 6056), ISNs (RFC 6528)
/// and timestamp offsets (RFC 7323 §5.4), which a peer still holding the
/// previous run's connection in TIME-WAIT takes for an old duplicate.
pub fn os_seed() -> std::io::Result<u64> {
    getrandom::u64().map_err(|e| std::io::Error::other(format!("getrandom: {e}")))
}
