//! Links for ustack: an in-memory link with seeded impairments on a virtual
//! clock, a simulator driving hosts over it, and pcap capture.
#![deny(unsafe_code)]

pub mod memlink;
pub mod pcap;
pub mod sim;

pub use memlink::{Impairments, LinkStats, MemLink, PortId};
pub use pcap::{LinkKind, PcapSink};
pub use sim::{Sim, SimHost};
