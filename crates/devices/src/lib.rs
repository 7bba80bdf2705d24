//! Links for ustack: an in-memory link with seeded impairments on a virtual
//! clock, a simulator driving hosts over it, pcap capture, and real-time
//! devices (TUN/TAP) with kernel-side setup helpers.
#![deny(unsafe_code)]

pub mod device;
pub mod memlink;
pub mod pcap;
pub mod shared;
pub mod sim;

pub use device::{Clock, Device, DeviceStats, MemDevice, PacketBatch, MAX_FRAME};
pub use memlink::{Impairments, LinkStats, MemLink, PortId};
pub use pcap::{LinkKind, PcapSink};
pub use shared::{LinkPort, SharedLink};
pub use sim::{Sim, SimHost};
