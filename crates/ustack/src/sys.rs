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

/// Most fds one [`poll`] takes.
pub const MAX_POLL_FDS: usize = 4;

/// Waits until one of `fds` (at most [`MAX_POLL_FDS`]) is ready or
/// `timeout` passes (None: forever). Returns which are ready, bit `i` for
/// `fds[i]` (any event, errors included). EINTR counts as a wake-up with
/// nothing ready.
pub fn poll(fds: &[PollFd], timeout: Option<Duration>) -> io::Result<u32> {
    assert!(
        fds.len() <= MAX_POLL_FDS,
        "poll takes at most {MAX_POLL_FDS} fds"
    );
    let mut raw = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; MAX_POLL_FDS];
    for (r, p) in raw.iter_mut().zip(fds) {
        r.fd = p.fd;
        r.events =
            (if p.read { libc::POLLIN } else { 0 }) | (if p.write { libc::POLLOUT } else { 0 });
    }
    let raw = &mut raw[..fds.len()];
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
        return Ok(0);
    }
    Ok(raw
        .iter()
        .enumerate()
        .filter(|(_, r)| r.revents != 0)
        .fold(0, |m, (i, _)| m | 1 << i))
}
