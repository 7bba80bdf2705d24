//! Signal-driven I/O: the signal a socket with `O_ASYNC` raises at its
//! owner (`fcntl(F_SETOWN)`, `F_SETOWN_EX`, `F_SETSIG`) when it turns
//! readable or writable, as Linux's `send_sigio` (fs/fcntl.c) does; and
//! the calls a program needs to wait for such signals without a handler
//! ([`block`], [`wait`]). The only module of this crate with `unsafe`: the
//! signal system calls.
//!
//! What is raised, as Linux:
//! - no `F_SETSIG` (or 0): `SIGIO`, without saying which descriptor;
//! - `F_SETSIG` with a signal: that signal, queued with `si_fd` (the
//!   descriptor) and `si_band` (its poll bits: `POLLIN|POLLRDNORM` for
//!   new data, `POLLOUT|POLLWRNORM|POLLWRBAND` for send space, ...). If
//!   the queue is full (RLIMIT_SIGPENDING), `SIGIO` instead, so the
//!   owner knows to look at every descriptor.
//!
//! One difference: `si_code` is `POLL_IN`, `POLL_OUT`, ... only when the
//! thread that notices the event is the owner itself; otherwise it is
//! `SI_QUEUE`, because Linux lets a user-space sender put a kernel
//! `si_code` only on a signal to its own thread (`rt_tgsigqueueinfo(2)`).
//! `si_fd` and `si_band` are there either way; [`SigInfo::reason`] reads
//! the reason from `si_band`.

use std::io;
use std::time::Duration;

/// `fcntl` commands Linux has and the `libc` crate does not name.
pub const F_SETSIG: i32 = 10;
pub const F_GETSIG: i32 = 11;
pub const F_SETOWN_EX: i32 = 15;
pub const F_GETOWN_EX: i32 = 16;
/// `struct f_owner_ex` types.
pub const F_OWNER_TID: i32 = 0;
pub const F_OWNER_PID: i32 = 1;
pub const F_OWNER_PGRP: i32 = 2;
/// `si_code` reasons of a `SIGIO`-like signal (asm-generic/siginfo.h).
pub const POLL_IN: i32 = 1;
pub const POLL_OUT: i32 = 2;
pub const POLL_MSG: i32 = 3;
pub const POLL_ERR: i32 = 4;
pub const POLL_PRI: i32 = 5;
pub const POLL_HUP: i32 = 6;

/// `si_band` of each reason, Linux's `band_table` (fs/fcntl.c).
fn band(reason: i32) -> i64 {
    let b = match reason {
        POLL_IN => libc::POLLIN | libc::POLLRDNORM,
        POLL_OUT => libc::POLLOUT | libc::POLLWRNORM | libc::POLLWRBAND,
        POLL_MSG => libc::POLLIN | libc::POLLRDNORM | 0x400, // POLLMSG
        POLL_ERR => libc::POLLERR,
        POLL_PRI => libc::POLLPRI | libc::POLLRDBAND,
        POLL_HUP => libc::POLLHUP | libc::POLLERR,
        _ => 0,
    };
    i64::from(b)
}

/// Who receives a socket's signals (`F_SETOWN`, `F_SETOWN_EX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Owner {
    /// Nobody (owner 0): no signal is raised.
    #[default]
    None,
    /// A process (`F_SETOWN` with a positive pid, `F_OWNER_PID`).
    Process(i32),
    /// A process group (`F_SETOWN` with a negative number, `F_OWNER_PGRP`).
    Group(i32),
    /// One thread (`F_OWNER_TID`).
    Thread(i32),
}

impl Owner {
    /// The owner `F_SETOWN` takes: `arg` > 0 a process, < 0 a group.
    pub fn from_setown(arg: i32) -> Owner {
        match arg {
            0 => Owner::None,
            a if a > 0 => Owner::Process(a),
            a => a.checked_neg().map_or(Owner::None, Owner::Group),
        }
    }

    /// What `F_GETOWN` reports: a group negative, a thread as its id.
    pub fn getown(self) -> i32 {
        match self {
            Owner::None => 0,
            Owner::Process(p) | Owner::Thread(p) => p,
            Owner::Group(g) => -g,
        }
    }

    /// `struct f_owner_ex` as (type, pid), for `F_GETOWN_EX`.
    pub fn to_ex(self) -> (i32, i32) {
        match self {
            Owner::None => (F_OWNER_PID, 0),
            Owner::Process(p) => (F_OWNER_PID, p),
            Owner::Group(g) => (F_OWNER_PGRP, g),
            Owner::Thread(t) => (F_OWNER_TID, t),
        }
    }

    /// `struct f_owner_ex` for `F_SETOWN_EX`: EINVAL for an unknown type
    /// or a negative id, as Linux.
    pub fn from_ex(ty: i32, pid: i32) -> Option<Owner> {
        if pid < 0 {
            return None;
        }
        if pid == 0 {
            return matches!(ty, F_OWNER_TID | F_OWNER_PID | F_OWNER_PGRP).then_some(Owner::None);
        }
        match ty {
            F_OWNER_TID => Some(Owner::Thread(pid)),
            F_OWNER_PID => Some(Owner::Process(pid)),
            F_OWNER_PGRP => Some(Owner::Group(pid)),
            _ => None,
        }
    }
}

/// Whether `owner` names a live process, group or thread (kill(2) with
/// signal 0: EPERM still means it exists), as `F_SETOWN` checks.
pub(crate) fn exists(owner: Owner) -> bool {
    let id = match owner {
        Owner::None => return true,
        Owner::Process(p) | Owner::Thread(p) => p,
        Owner::Group(g) => -g,
    };
    // SAFETY: kill with signal 0 sends nothing; no memory is passed.
    let r = unsafe { libc::kill(id, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A signal due: raised once the stack lock is let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Raise {
    pub owner: Owner,
    /// `F_SETSIG`'s signal; 0 for plain `SIGIO`.
    pub sig: i32,
    pub fd: i32,
    /// `POLL_IN`, `POLL_OUT`, ...
    pub reason: i32,
}

/// The head of `siginfo_t` for `SIGIO`-like signals (`_sigpoll`), padded
/// to the kernel's 128 bytes. `repr(C)` puts `band` where the C union
/// puts it (after padding on 64-bit targets).
#[repr(C)]
#[derive(Clone, Copy)]
struct SigPoll {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    band: libc::c_long,
    fd: libc::c_int,
}

#[repr(C)]
union RawSigInfo {
    poll: SigPoll,
    raw: [u64; 16],
    info: libc::siginfo_t,
}

const SI_QUEUE: i32 = -1;

/// The calling thread's id (gettid(2)).
pub fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

fn getpid() -> i32 {
    // SAFETY: getpid has no arguments and cannot fail.
    unsafe { libc::getpid() }
}

fn check(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Raises `r`. Failures are ignored, as the kernel ignores them (an owner
/// that exited, a group it may not signal).
pub(crate) fn raise(r: Raise) {
    if r.sig != 0 && queue(r).is_ok() {
        return;
    }
    // Plain SIGIO: F_SETSIG unset, or the realtime queue full.
    let _ = send_plain(r.owner, libc::SIGIO);
}

/// `sig` without data, to a thread, process or group.
fn send_plain(owner: Owner, sig: i32) -> io::Result<()> {
    match owner {
        Owner::None => Ok(()),
        // SAFETY: plain system calls on integers; no memory is passed.
        Owner::Thread(t) => check(unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                libc::c_long::from(getpid()),
                libc::c_long::from(t),
                libc::c_long::from(sig),
            )
        }),
        // SAFETY: as above.
        Owner::Process(p) => check(unsafe { libc::kill(p, sig) }.into()),
        // SAFETY: as above.
        Owner::Group(g) => check(unsafe { libc::kill(-g, sig) }.into()),
    }
}

/// `r.sig` queued with `si_fd` and `si_band` (rt_sigqueueinfo(2)), to a
/// thread or this process; to another process or a group it goes
/// without them (Linux refuses to forge a queued signal's sender there).
fn queue(r: Raise) -> io::Result<()> {
    let me = gettid();
    let to_self = match r.owner {
        Owner::Thread(t) => t == me,
        Owner::Process(p) => p == me,
        _ => false,
    };
    let mut info = RawSigInfo { raw: [0; 16] };
    info.poll = SigPoll {
        signo: r.sig,
        errno: 0,
        code: if to_self { r.reason } else { SI_QUEUE },
        band: band(r.reason) as libc::c_long,
        fd: r.fd,
    };
    let pid = libc::c_long::from(getpid());
    let ptr = &raw const info;
    match r.owner {
        Owner::None => Ok(()),
        // SAFETY: `info` is a zeroed 128-byte siginfo_t that outlives the
        // call; the kernel only reads it.
        Owner::Thread(t) => check(unsafe {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                pid,
                libc::c_long::from(t),
                libc::c_long::from(r.sig),
                ptr,
            )
        }),
        // SAFETY: as above.
        Owner::Process(p) if libc::c_long::from(p) == pid => check(unsafe {
            libc::syscall(
                libc::SYS_rt_sigqueueinfo,
                pid,
                libc::c_long::from(r.sig),
                ptr,
            )
        }),
        Owner::Process(_) | Owner::Group(_) => send_plain(r.owner, r.sig),
    }
}

/// A signal taken by [`wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: i32,
    /// `si_code`: `POLL_IN`..., `SI_QUEUE`, or `SI_USER`/`SI_TKILL` for a
    /// plain `SIGIO`.
    pub code: i32,
    /// `si_fd` (meaningful for an `F_SETSIG` signal).
    pub fd: i32,
    /// `si_band`: poll bits.
    pub band: i64,
}

impl SigInfo {
    /// The reason of a queued signal, from `si_code` when it is one, else
    /// from `si_band` (see the module docs); None for a plain signal.
    pub fn reason(&self) -> Option<i32> {
        if (POLL_IN..=POLL_HUP).contains(&self.code) {
            return Some(self.code);
        }
        if self.code != SI_QUEUE {
            return None;
        }
        [POLL_HUP, POLL_ERR, POLL_OUT, POLL_PRI, POLL_IN]
            .into_iter()
            .find(|&r| self.band == band(r))
            .or(Some(POLL_IN).filter(|_| self.band == band(POLL_MSG)))
    }
}

fn sigset(sigs: &[i32]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned here.
    check(unsafe { libc::sigemptyset(&mut set) }.into())?;
    for &s in sigs {
        // SAFETY: as above; an invalid signal number is EINVAL.
        check(unsafe { libc::sigaddset(&mut set, s) }.into())?;
    }
    Ok(set)
}

/// Blocks `sigs` in the calling thread (pthread_sigmask), so that they
/// wait for [`wait`] instead of running their default action (SIGIO's
/// terminates the process). Threads started afterwards inherit the mask.
pub fn block(sigs: &[i32]) -> io::Result<()> {
    let set = sigset(sigs)?;
    // SAFETY: `set` is initialised; the old mask is not asked for.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// Takes one of `sigs` (blocked with [`block`]) pending for the calling
/// thread or the process, waiting up to `timeout` (sigtimedwait(2)); None
/// when the time passes first. EINTR (another signal's handler ran) is
/// retried within the same time.
// `c_long` is `i64` on 64-bit targets only.
#[allow(clippy::useless_conversion)]
pub fn wait(sigs: &[i32], timeout: Duration) -> io::Result<Option<SigInfo>> {
    let set = sigset(sigs)?;
    let end = std::time::Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(left.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
        };
        let mut info = RawSigInfo { raw: [0; 16] };
        // SAFETY: `set`, `info` (128 bytes, the kernel's siginfo size) and
        // `ts` are valid for the call; the kernel writes only `info`.
        let r = unsafe { libc::sigtimedwait(&set, &raw mut info.info, &ts) };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(None),
                Some(libc::EINTR) if !left.is_zero() => continue,
                Some(libc::EINTR) => return Ok(None),
                _ => return Err(e),
            }
        }
        // SAFETY: every field of the union is plain data the kernel filled
        // (or left zero); `poll` reads the `_sigpoll` view of it.
        let p = unsafe { info.poll };
        return Ok(Some(SigInfo {
            signo: r,
            code: p.code,
            fd: p.fd,
            band: i64::from(p.band),
        }));
    }
}

/// `SIGRTMIN`, the first realtime signal this process may use (glibc
/// keeps a few below it for itself).
pub fn sigrtmin() -> i32 {
    libc::SIGRTMIN()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_encodings_round_trip() {
        assert_eq!(Owner::from_setown(42), Owner::Process(42));
        assert_eq!(Owner::from_setown(-7), Owner::Group(7));
        assert_eq!(Owner::from_setown(0), Owner::None);
        assert_eq!(Owner::Group(7).getown(), -7);
        assert_eq!(Owner::from_ex(F_OWNER_TID, 9), Some(Owner::Thread(9)));
        assert_eq!(Owner::from_ex(9, 9), None);
        assert_eq!(Owner::from_ex(F_OWNER_PID, -1), None);
        assert_eq!(Owner::Thread(9).to_ex(), (F_OWNER_TID, 9));
    }

    #[test]
    fn reason_read_back_from_band() {
        let s = |code, r| SigInfo {
            signo: 40,
            code,
            fd: 3,
            band: band(r),
        };
        assert_eq!(s(SI_QUEUE, POLL_OUT).reason(), Some(POLL_OUT));
        assert_eq!(s(SI_QUEUE, POLL_IN).reason(), Some(POLL_IN));
        assert_eq!(s(POLL_HUP, POLL_HUP).reason(), Some(POLL_HUP));
        assert_eq!(s(0, POLL_IN).reason(), None);
    }
}
