//! ustack for applications: POSIX-like sockets on integer descriptors, an
//! epoll, and `std::net`-like types, on a runtime that drives the sans-IO
//! core over a device.
#![deny(unsafe_code)]

pub mod epoll;
pub mod fd;
pub mod memnet;
pub mod net;
pub mod posix;
pub mod runtime;
mod sys;
pub mod trace;

pub use epoll::EpollEvent;
pub use posix::OptVal;
pub use runtime::{Interest, Mode, Runtime};
pub use ustack_core::errno;
pub use ustack_core::Errno;
