//! Two runtimes on one in-memory link, in real time.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddrV4};
use ustack::{Mode, Runtime};
use ustack_core::wire::Ipv4Cidr;
use ustack_core::{Medium, Stack, StackConfig};
use ustack_devices::{Impairments, SharedLink};

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub fn sa(ip: Ipv4Addr, port: u16) -> std::net::SocketAddr {
    SocketAddrV4::new(ip, port).into()
}

/// Runtimes for A and B in the given modes. A runtime in inline mode moves
/// only while one of its callers waits, so a peer that must answer on its
/// own (ICMP, ACKs) should run in thread mode.
pub fn pair_modes(a: Mode, b: Mode, imp: Impairments) -> (Runtime, Runtime, SharedLink) {
    pair_config(a, b, imp, |c| c)
}

/// Like [`pair_modes`], with each stack's config adjusted by `tweak`.
pub fn pair_config(
    a: Mode,
    b: Mode,
    imp: Impairments,
    tweak: impl Fn(StackConfig) -> StackConfig,
) -> (Runtime, Runtime, SharedLink) {
    let link = SharedLink::new(1, imp);
    let rt = |addr: Ipv4Addr, seed, mode| {
        let cfg = tweak(StackConfig::new(Medium::Ip, Ipv4Cidr::new(addr, 24)).with_seed(seed));
        let port = link.port(Medium::Ip, 1500).unwrap();
        Runtime::new(Stack::new(cfg).unwrap(), port, link.clock(), mode).unwrap()
    };
    (rt(A, 1, a), rt(B, 2, b), link)
}

pub fn pair_with(mode: Mode, imp: Impairments) -> (Runtime, Runtime, SharedLink) {
    pair_modes(mode, mode, imp)
}

pub fn pair(mode: Mode) -> (Runtime, Runtime) {
    let (a, b, _) = pair_with(mode, Impairments::none());
    (a, b)
}
