//! The one system call the runtime makes itself: poll(2) on a few fds.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// What to wait for on one fd.
#[derive(Debug, Clone, Copy)]
pub struct PollFd {
    pub fd: RawFd,
    pub read: bool,
    pub write: bool,
}

/// Waits until one of `fds` is ready or `timeout` passes (None: forever).
/// EINTR counts as a wake-up.
pub fn poll(fds: &[PollFd], timeout: Option<Duration>) -> io::Result<()> {
    let mut raw: Vec<libc::pollfd> = fds
        .iter()
        .map(|p| libc::pollfd {
            fd: p.fd,
            events: (if p.read { libc::POLLIN } else { 0 })
                | (if p.write { libc::POLLOUT } else { 0 }),
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        // Round up so a deadline is never woken before it is due.
        Some(d) => i32::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i32::MAX),
    };
    // SAFETY: `raw` is a valid, initialised array of `raw.len()` pollfd
    // structs that lives across the call; poll only writes `revents`.
    let rc = unsafe { libc::poll(raw.as_mut_ptr(), raw.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}
