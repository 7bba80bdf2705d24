//! The sans-IO protocol core of ustack.
//!
//! The core is fed `(now, packet)` and drained for outgoing packets; it says
//! when it next needs to run with `poll_at()`. It reads no clock, spawns no
//! thread and owns no file descriptor.
//!
//! [`Stack`] is the interface, the IP layer (`ipv4`: input, reassembly, the
//! one output path) and the socket calls by handle; the transports are
//! their own types ([`tcp::Tcp`], [`udp::Udp`], [`icmp::Icmp`]) driven
//! through a [`cx::Cx`] and never naming `Stack`. What an application may
//! watch comes out as [`Event`]s (`Stack::take_events`).
//!
//! ```
//! use ustack_core::{Instant, Medium, Stack, StackConfig};
//! let cfg = StackConfig::new(Medium::Ip, "10.0.0.1/24".parse().unwrap());
//! let mut stack = Stack::new(cfg).unwrap();
//! let sock = stack.udp_open();
//! stack.udp_bind(sock, "0.0.0.0:7".parse::<std::net::SocketAddr>().unwrap()).unwrap();
//! // A device hands frames to `receive`; `transmit` fills frames for it;
//! // `poll_at` says when to call again if nothing arrives.
//! let mut buf = [0u8; 1500];
//! assert_eq!(stack.transmit(Instant::ZERO, &mut buf), None);
//! assert_eq!(stack.poll_at(), None);
//! ```
#![forbid(unsafe_code)]

pub mod addr;
pub mod arp;
mod calls;
pub mod config;
pub mod counters;
pub mod cx;
pub mod errno;
pub mod event;
pub mod forward;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod ports;
pub mod ratelimit;
pub mod rng;
mod rx_burst;
mod rx_placed;
pub mod socket;
pub mod stack;
pub mod tcp;
pub mod time;
mod tx_burst;
pub mod udp;

pub use config::{Congestion, EcnMode, Medium, StackConfig, TcpConfig};
pub use counters::Counters;
pub use errno::Errno;
pub use event::{Event, EventKind, RetransmitCause};
pub use rx_placed::Placed;
pub use socket::{Readiness, SocketHandle};
pub use stack::{ConfigError, RxMeta, Stack};
pub use tcp::{
    RecvDone, SendBuf, Shutdown, SocketRow, State as TcpState, TcpInfo, TcpOptions, ZcDone,
};
pub use time::{Duration, Instant};
pub use ustack_wire as wire;
