//! IPv4 (RFC 791) pieces that stand apart from the stack: reassembly and
//! fragmentation, path MTU.

pub mod fragment;
pub mod output;
pub mod pmtu;
pub mod reassembly;
