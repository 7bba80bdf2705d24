//! IPv4 (RFC 791) pieces that stand apart from the stack: reassembly and
//! fragmentation.

pub mod fragment;
pub mod output;
pub mod reassembly;
