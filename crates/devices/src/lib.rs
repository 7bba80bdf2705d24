//! Links for ustack: an in-memory link with seeded impairments on a virtual
//! clock, a simulator driving hosts over it, pcap capture, and real-time
//! devices (TUN/TAP) with kernel-side setup helpers.
#![deny(unsafe_code)]

// FFI: sched_setaffinity(2).
#[allow(unsafe_code)]
pub mod affinity;
pub mod capture;
pub mod device;
pub mod driver;
pub mod hop;
pub mod impaired;
pub mod kernel;
pub mod memlink;
pub mod mqlink;
pub mod offload;
pub mod pcap;
pub mod rss;
pub mod shared;
pub mod sim;
// `unsafe` here and in `affinity` only: the ioctl, poll and setns calls.
#[allow(unsafe_code)]
pub mod tun;

pub use capture::Captured;
pub use device::{Clock, Device, DeviceStats, MemDevice, PacketBatch, RxHalf, MAX_FRAME};
pub use driver::{Driver, DriverStats};
pub use hop::SmallMtuHop;
pub use impaired::{Impaired, QueueDelay};
pub use kernel::{KernelIf, NetNs, DEFAULT_TXQUEUELEN};
pub use memlink::{Impairments, LinkStats, MemLink, PortId};
pub use mqlink::{MqLink, MqQueue, QueueCounters, QueueStats};
pub use offload::Offloads;
pub use pcap::{LinkKind, PcapSink};
pub use shared::{LinkPort, SharedLink};
pub use sim::{Sim, SimHost};
pub use tun::{
    poll, poll_fd, poll_ready, PollFd, PollReady, Tap, Tun, TunOptions, TunRx, MAX_POLL_FDS,
};
