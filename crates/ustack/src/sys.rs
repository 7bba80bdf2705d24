//! The one system call the runtime makes itself, poll(2) on a few fds:
//! the devices crate's wrapper (the only one in ustack).

pub use ustack_devices::{poll, PollFd};
