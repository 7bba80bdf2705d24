//! KCP on ustack: the protocol of skywind3000/kcp as a sans-IO type
//! ([`Kcp`]), a blocking endpoint over ustack's UDP ([`KcpSocket`]), and
//! an async one for tokio tasks ([`KcpSession`], feature `tokio`, on by
//! default).
//! Segments carry conv, cmd, frg, wnd, ts, sn, una and len; ACKs are
//! selective, a segment skipped by `resend` later ACKs is sent again at
//! once, and in nodelay mode the RTO grows by half instead of doubling.

#[cfg(feature = "tokio")]
pub mod async_tokio;
pub mod proto;
pub mod socket;

#[cfg(feature = "tokio")]
pub use async_tokio::KcpSession;
pub use proto::{conv_of, Config, InputError, Kcp, RecvError, SendError, Stats, OVERHEAD};
pub use socket::{Ignored, KcpSocket};
