//! A stub DNS resolver on ustack (RFC 1034 §5.3.1): the hosts map, then a
//! cache that honours TTLs and caches negative answers (RFC 2308), then
//! recursive servers, several, with retries and timeouts, over UDP with a
//! fallback to TCP when the answer is truncated (RFC 7766). Queries have
//! random IDs and source ports, and a reply must match the question and
//! come from the server asked (RFC 5452).
//!
//! The wire format is `hickory-proto`'s. The logic ([`Resolver`],
//! [`Resolution`]) is sans-IO; [`Resolver::lookup`] drives it over a
//! ustack [`ustack::Runtime`], [`AsyncResolver::lookup`] drives it from
//! tokio tasks (feature `tokio`, on by default), and [`getaddrinfo`] puts
//! a POSIX face on it.

#[cfg(feature = "tokio")]
pub mod async_tokio;
pub mod cache;
pub mod gai;
pub mod hosts;
pub mod message;
pub mod resolv_conf;
pub mod resolve;
pub mod sync;

#[cfg(feature = "tokio")]
pub use async_tokio::AsyncResolver;
pub use gai::{getaddrinfo, AddrInfo, AddrInfoHints, GaiError};
pub use hosts::Hosts;
pub use message::{Family, Question};
pub use resolve::{Answer, Attempt, Config, Error, Resolution, Resolver, Source, Step, Transport};
