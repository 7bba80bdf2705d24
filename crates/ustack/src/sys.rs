//! The one system call the runtime makes itself, poll(2) on a few fds:
//! the devices crate's wrapper. (The signals of signal-driven I/O are the
//! other system calls of this crate, in [`crate::signal`].)

pub use ustack_devices::{poll, PollFd};
