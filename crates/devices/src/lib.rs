//! Links for ustack: an in-memory link with seeded impairments on a virtual
//! clock, a simulator driving hosts over it, and pcap capture.
#![deny(unsafe_code)]

pub mod pcap;
#[allow(dead_code)] // used by memlink, next commit
mod rng;

pub use pcap::{LinkKind, PcapSink};
