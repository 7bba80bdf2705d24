//! KCP on ustack: the protocol of skywind3000/kcp as a sans-IO type
//! ([`Kcp`]), and a blocking endpoint over ustack's UDP ([`KcpSocket`]).
//! Segments carry conv, cmd, frg, wnd, ts, sn, una and len; ACKs are
//! selective, a segment skipped by `resend` later ACKs is sent again at
//! once, and in nodelay mode the RTO grows by half instead of doubling.

pub mod proto;
pub mod socket;

pub use proto::{conv_of, Config, InputError, Kcp, RecvError, SendError, Stats, OVERHEAD};
pub use socket::KcpSocket;
