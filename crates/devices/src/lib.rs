//! Links for ustack: an in-memory link with seeded impairments on a virtual
//! clock, a simulator driving hosts over it, and pcap capture.
#![deny(unsafe_code)]

pub mod memlink;
pub mod pcap;
mod rng;

pub use memlink::{Impairments, LinkStats, MemLink, PortId};
pub use pcap::{LinkKind, PcapSink};
