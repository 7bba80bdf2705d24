//! The sans-IO protocol core of ustack.
//!
//! The core is fed `(now, packet)` and drained for outgoing packets; it says
//! when it next needs to run with `poll_at()`. It reads no clock, spawns no
//! thread and owns no file descriptor.
#![forbid(unsafe_code)]

pub mod arp;
pub mod config;
pub mod counters;
pub mod errno;
pub mod icmp;
pub mod ipv4;
pub mod ports;
pub mod rng;
pub mod socket;
pub mod stack;
pub mod tcp;
pub mod time;
pub mod udp;

pub use config::{Medium, StackConfig, TcpConfig};
pub use counters::Counters;
pub use errno::Errno;
pub use socket::{Readiness, SocketHandle};
pub use stack::{ConfigError, Stack};
pub use tcp::{Shutdown, SocketRow, State as TcpState, TcpInfo, TcpOptions};
pub use time::{Duration, Instant};
pub use ustack_wire as wire;
