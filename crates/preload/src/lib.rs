//! `libustack_preload.so`: run unmodified programs on ustack with
//! `LD_PRELOAD`. It interposes libc's socket calls; `AF_INET` stream and
//! datagram sockets are served by a ustack [`Runtime`](ustack::Runtime) on a
//! TUN or TAP device, everything else (files, pipes, AF_UNIX, AF_INET6,
//! raw sockets) goes to libc unchanged.
//!
//! # Descriptors
//!
//! Each ustack socket is named by a real kernel descriptor: one end of an
//! `AF_UNIX` socketpair. The kernel allocated the number, so it can never
//! clash with the program's files, pipes or timerfds, and a table maps it
//! to the ustack socket. The library keeps the other end (`b`) and a dup of
//! the program's end (`a`), both close-on-exec, and drives the program's
//! end's readiness from the ustack socket's:
//!
//! - readable: one byte written into `b` (the end reads as POLLIN); read
//!   back out through `a` when the socket stops being readable;
//! - not writable: `a`'s send buffer shrunk to the minimum and filled
//!   (POLLOUT clears); `b` emptied when the socket is writable again;
//! - FIN or reset: `shutdown(b, SHUT_WR)`: POLLIN|POLLRDHUP, for good.
//!
//! So the kernel's own poll, select and epoll (level or edge triggered) see
//! ustack sockets beside pipes, timerfds, eventfds and signalfds, and
//! `epoll_wait` needs no interposing. An eventfd could not show "neither
//! readable nor writable" (a connecting socket), which the pair can.
//!
//! Keeping the mirror costs system calls, so it is kept only for sockets
//! the program has shown to `poll`, `ppoll`, `select`, `pselect` or
//! `epoll_ctl` (those calls are interposed for that, then go to libc):
//! after each of the program's calls on such a socket the calling thread
//! updates the mirror (its own reads and writes change readiness), and a
//! mirror thread waits on an edge-triggered ustack epoll for what the
//! network changes. Each update reads the readiness under the socket's
//! mirror lock, so the last update always writes the latest state.
//! ustack reports freed send space only after a send found its buffer full
//! (Linux's SOCK_NOSPACE, which Linux's poll also sets), so a stream shows
//! writable while any space is free, and the mirror thread re-reads
//! mirrors showing "not writable" every millisecond (backing off to 20 ms
//! while nothing changes). A `dup2` onto one of
//! the library's descriptors moves that descriptor first; `close` of one
//! is EBADF (the program never had it).
//!
//! # Start, threads, fork and exec
//!
//! The stack starts on the first `socket(AF_INET, ...)` call, not in a
//! constructor: a shell or wrapper that inherits `LD_PRELOAD` and never
//! opens an AF_INET socket leaves the device alone for the program that
//! does, and no thread exists before the program's own `fork`s. A bad
//! `USTACK_*` setting is reported then, in one line, with exit status 2.
//!
//! The runtime runs a stack thread; a blocking call waits on the runtime's
//! condition variable, so it blocks only its own thread, and calls from any
//! number of threads are safe. (A blocking call is not interrupted by a
//! signal: use a timeout or non-blocking sockets where that matters.)
//!
//! After `fork` the child has copies of the descriptors but not the stack
//! (its threads stay in the parent): in the child, ustack descriptors can
//! only be closed (other calls fail with EBADF) and new AF_INET sockets
//! fail with EAFNOSUPPORT. Servers must not fork workers that share a
//! listening socket (nginx: `master_process off`). After `exec` the new
//! program loads the library afresh; descriptors inherited without
//! `FD_CLOEXEC` are plain AF_UNIX sockets there. `SOCK_CLOEXEC`,
//! `accept4(SOCK_CLOEXEC)` and `fcntl(F_SETFD, FD_CLOEXEC)` act on the
//! program's end as usual; the library's own ends are always close-on-exec.
//!
//! At exit the library closes what the program left open and waits (up to
//! 10 s) until the peer has acknowledged every byte and FIN, as the kernel
//! keeps sending for a process that has gone; then, with `USTACK_STATS=1`,
//! prints the counters and socket table on stderr.
//!
//! # Re-entrancy
//!
//! Rust code in the library (std, the runtime, the device) calls `read`,
//! `write`, `poll`, `close`... on its own kernel descriptors; those calls
//! resolve to the interposers too, which pass any descriptor not in the
//! table straight to libc after one atomic load, taking no lock. The
//! library's own calls on the pair go to libc's functions directly
//! (`dlsym(RTLD_NEXT)`), and the setup sets a thread-local flag so that a
//! socket it opens itself is the kernel's. Kernel-side setup commands (`ip`)
//! run without `LD_PRELOAD`.
//!
//! glibc's own internal socket calls (its DNS resolver, say) use private
//! aliases that no preload can interpose: they stay on the kernel's stack.
#![allow(unsafe_code)]

mod cabi;
mod real;
mod state;

use cabi::{fail, read_addr, write_addr};
use libc::{
    c_int, c_uint, c_ulong, c_void, iovec, msghdr, nfds_t, pollfd, size_t, sockaddr, socklen_t,
    ssize_t,
};
use state::{busy, forked, global, hidden, lookup, new_sock, Sock};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use ustack::fd::Kind;
use ustack::{Errno, OptVal};

pub use state::config_from_env;

fn err<T: From<i8>>(e: Errno) -> T {
    fail(e.raw())
}

/// The socket behind `fd`, or Err(EBADF) in a forked child.
fn ours(fd: c_int) -> Option<Result<Arc<Sock>, c_int>> {
    let s = lookup(fd)?;
    if forked() {
        return Some(Err(libc::EBADF));
    }
    Some(Ok(s))
}

/// Linux raises SIGPIPE on a write to a stream whose writing side is shut,
/// unless MSG_NOSIGNAL.
fn epipe(e: Errno, flags: c_int) {
    if e == Errno::EPIPE && flags & libc::MSG_NOSIGNAL == 0 {
        // SAFETY: raising a signal in this thread.
        unsafe { libc::raise(libc::SIGPIPE) };
    }
}

/// # Safety
/// `p` must have `n` readable bytes (or n == 0).
unsafe fn slice<'a>(p: *const c_void, n: size_t) -> &'a [u8] {
    if n == 0 || p.is_null() {
        &[]
    } else {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts(p.cast(), n) }
    }
}

/// # Safety
/// `p` must have `n` writable bytes (or n == 0).
unsafe fn slice_mut<'a>(p: *mut c_void, n: size_t) -> &'a mut [u8] {
    if n == 0 || p.is_null() {
        &mut []
    } else {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts_mut(p.cast(), n) }
    }
}

fn send_impl(s: &Sock, buf: &[u8], flags: c_int, to: Option<SocketAddrV4>) -> ssize_t {
    let r = global().rt.sendto(
        s.ufd,
        buf,
        flags & !libc::MSG_NOSIGNAL,
        to.map(SocketAddr::V4),
    );
    s.changed();
    match r {
        Ok(n) => n as ssize_t,
        Err(e) => {
            epipe(e, flags);
            err(e)
        }
    }
}

/// Receives into `buf`; returns (bytes, datagram's full length, sender).
fn recv_impl(
    s: &Sock,
    buf: &mut [u8],
    flags: c_int,
) -> Result<(usize, usize, Option<SocketAddr>), Errno> {
    let rt = &global().rt;
    let r = if s.kind == Kind::Datagram {
        // Ask for the real length too (MSG_TRUNC), to report truncation.
        rt.recvfrom(s.ufd, buf, flags | libc::MSG_TRUNC)
            .map(|(full, from)| {
                let n = full.min(buf.len());
                (
                    if flags & libc::MSG_TRUNC != 0 {
                        full
                    } else {
                        n
                    },
                    full,
                    from,
                )
            })
    } else {
        rt.recvfrom(s.ufd, buf, flags).map(|(n, from)| (n, n, from))
    };
    s.changed();
    r
}

/// Gathers an iovec array into one buffer.
///
/// # Safety
/// `iov` must point to `n` valid iovecs.
unsafe fn gather(iov: *const iovec, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        // SAFETY: the caller promises n iovecs, each with iov_len bytes.
        let v = unsafe { *iov.add(i) };
        out.extend_from_slice(unsafe { slice(v.iov_base, v.iov_len) });
    }
    out
}

/// Scatters `data` over an iovec array.
///
/// # Safety
/// `iov` must point to `n` valid, writable iovecs.
unsafe fn scatter(iov: *const iovec, n: usize, mut data: &[u8]) {
    for i in 0..n {
        if data.is_empty() {
            break;
        }
        // SAFETY: as the caller promises.
        let v = unsafe { *iov.add(i) };
        let k = v.iov_len.min(data.len());
        let dst = unsafe { slice_mut(v.iov_base, k) };
        dst.copy_from_slice(&data[..k]);
        data = &data[k..];
    }
}

/// # Safety
/// `iov` must point to `n` valid iovecs.
unsafe fn iov_len(iov: *const iovec, n: usize) -> usize {
    // SAFETY: as the caller promises.
    (0..n).map(|i| unsafe { (*iov.add(i)).iov_len }).sum()
}

// ---- creating, naming, connecting ----

/// socket(2): AF_INET stream and datagram sockets come from ustack.
///
/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let base = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    let kind = match (base, protocol) {
        (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP) => Kind::Stream,
        (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) => Kind::Datagram,
        _ => return unsafe { real::socket(domain, ty, protocol) },
    };
    if domain != libc::AF_INET || busy() {
        // SAFETY: passing the call on unchanged.
        return unsafe { real::socket(domain, ty, protocol) };
    }
    if forked() {
        return fail(libc::EAFNOSUPPORT);
    }
    let rt = &global().rt;
    let ufd = match rt.socket(libc::AF_INET, ty & !libc::SOCK_CLOEXEC, protocol) {
        Ok(fd) => fd,
        Err(e) => return err(e),
    };
    match new_sock(ufd, kind, ty, kind == Kind::Datagram) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = rt.close(ufd);
            fail(e)
        }
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::bind(fd, addr, len) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    // SAFETY: the caller gives `len` bytes at `addr`.
    let a = match unsafe { read_addr(addr, len) } {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    match global().rt.bind(s.ufd, a) {
        Ok(()) => 0,
        Err(e) => err(e),
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::listen(fd, backlog) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    // Linux caps the backlog at somaxconn (4096); -1 means the maximum.
    let backlog = if backlog < 0 { 4096 } else { backlog.min(4096) };
    let r = global().rt.listen(s.ufd, backlog);
    if r.is_ok() {
        s.listening.store(true, Ordering::Release);
        s.started.store(true, Ordering::Release);
    }
    s.changed();
    match r {
        Ok(()) => 0,
        Err(e) => err(e),
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::accept4(fd, addr, len, flags) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return fail(libc::EINVAL);
    }
    let rt = &global().rt;
    let r = rt.accept4(s.ufd, flags & libc::SOCK_NONBLOCK);
    s.changed();
    let (nufd, peer) = match r {
        Ok(x) => x,
        Err(e) => return err(e),
    };
    match new_sock(nufd, Kind::Stream, flags, true) {
        Ok(nfd) => {
            // SAFETY: the caller gives `*len` bytes at `addr` (or nulls).
            unsafe { write_addr(peer, addr, len) };
            nfd
        }
        Err(e) => {
            let _ = rt.close(nufd);
            fail(e)
        }
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    if lookup(fd).is_none() {
        return unsafe { real::accept(fd, addr, len) };
    }
    // SAFETY: same contract.
    unsafe { accept4(fd, addr, len, 0) }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::connect(fd, addr, len) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    // SAFETY: the caller gives `len` bytes at `addr`.
    let a = match unsafe { read_addr(addr, len) } {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    s.started.store(true, Ordering::Release);
    let r = global().rt.connect(s.ufd, a);
    s.changed();
    match r {
        Ok(()) => 0,
        Err(e) => err(e),
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::shutdown(fd, how) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    let r = global().rt.shutdown(s.ufd, how);
    s.changed();
    match r {
        Ok(()) => 0,
        Err(e) => err(e),
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if hidden(fd) {
        // The library's own end: the program never opened it.
        return fail(libc::EBADF);
    }
    match state::remove(fd) {
        None => unsafe { real::close(fd) },
        Some(s) => {
            // SAFETY: the program's descriptor, now out of the table.
            unsafe { real::close(fd) };
            state::release(&s);
            0
        }
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::getsockname(fd, addr, len) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    match global().rt.getsockname(s.ufd) {
        Ok(a) => {
            // SAFETY: the caller gives `*len` bytes at `addr`.
            unsafe { write_addr(a, addr, len) };
            0
        }
        Err(e) => err(e),
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::getpeername(fd, addr, len) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    match global().rt.getpeername(s.ufd) {
        Ok(a) => {
            // SAFETY: the caller gives `*len` bytes at `addr`.
            unsafe { write_addr(a, addr, len) };
            0
        }
        Err(e) => err(e),
    }
}

// ---- data ----

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    let s = match ours(fd) {
        None => return unsafe { real::read(fd, buf, n) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    // SAFETY: the caller gives `n` writable bytes.
    match recv_impl(&s, unsafe { slice_mut(buf, n) }, 0) {
        Ok((k, _, _)) => k as ssize_t,
        Err(e) => err(e),
    }
}

/// _FORTIFY_SOURCE's read.
///
/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
) -> ssize_t {
    if n > buflen {
        // SAFETY: glibc's own overflow report.
        unsafe { libc::abort() };
    }
    unsafe { read(fd, buf, n) }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    let s = match ours(fd) {
        None => return unsafe { real::write(fd, buf, n) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    // SAFETY: the caller gives `n` readable bytes.
    send_impl(&s, unsafe { slice(buf, n) }, 0, None)
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    let s = match ours(fd) {
        None => return unsafe { real::readv(fd, iov, n) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    let n = usize::try_from(n).unwrap_or(0);
    // SAFETY: the caller gives `n` iovecs.
    let mut buf = vec![0u8; unsafe { iov_len(iov, n) }];
    match recv_impl(&s, &mut buf, 0) {
        Ok((k, _, _)) => {
            // SAFETY: as above.
            unsafe { scatter(iov, n, &buf[..k]) };
            k as ssize_t
        }
        Err(e) => err(e),
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    let s = match ours(fd) {
        None => return unsafe { real::writev(fd, iov, n) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    // SAFETY: the caller gives `n` iovecs.
    let buf = unsafe { gather(iov, usize::try_from(n).unwrap_or(0)) };
    send_impl(&s, &buf, 0, None)
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
    let s = match ours(fd) {
        None => return unsafe { real::send(fd, buf, n, flags) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    // SAFETY: the caller gives `n` readable bytes.
    send_impl(&s, unsafe { slice(buf, n) }, flags, None)
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    let s = match ours(fd) {
        None => return unsafe { real::recv(fd, buf, n, flags) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    // SAFETY: the caller gives `n` writable bytes.
    match recv_impl(&s, unsafe { slice_mut(buf, n) }, flags) {
        Ok((k, _, _)) => k as ssize_t,
        Err(e) => err(e),
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    if n > buflen {
        // SAFETY: glibc's own overflow report.
        unsafe { libc::abort() };
    }
    unsafe { recv(fd, buf, n, flags) }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    let s = match ours(fd) {
        None => return unsafe { real::sendto(fd, buf, n, flags, addr, len) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    let to = if addr.is_null() || s.kind == Kind::Stream {
        None
    } else {
        // SAFETY: the caller gives `len` bytes at `addr`.
        match unsafe { read_addr(addr, len) } {
            Ok(a) => Some(a),
            Err(e) => return fail(e),
        }
    };
    // SAFETY: the caller gives `n` readable bytes.
    send_impl(&s, unsafe { slice(buf, n) }, flags, to)
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    let s = match ours(fd) {
        None => return unsafe { real::recvfrom(fd, buf, n, flags, addr, len) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    // SAFETY: the caller gives `n` writable bytes.
    match recv_impl(&s, unsafe { slice_mut(buf, n) }, flags) {
        Ok((k, _, from)) => {
            if let Some(a) = from {
                // SAFETY: the caller gives `*len` bytes at `addr` (or nulls).
                unsafe { write_addr(a, addr, len) };
            }
            k as ssize_t
        }
        Err(e) => err(e),
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    if n > buflen {
        // SAFETY: glibc's own overflow report.
        unsafe { libc::abort() };
    }
    unsafe { recvfrom(fd, buf, n, flags, addr, len) }
}

/// # Safety
/// `msg` valid as for sendmsg(2).
unsafe fn sendmsg_impl(s: &Sock, msg: *const msghdr, flags: c_int) -> ssize_t {
    if msg.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: the caller gives a valid msghdr.
    let m = unsafe { &*msg };
    let to = if m.msg_name.is_null() || s.kind == Kind::Stream {
        None
    } else {
        // SAFETY: msg_name has msg_namelen bytes.
        match unsafe { read_addr(m.msg_name.cast(), m.msg_namelen) } {
            Ok(a) => Some(a),
            Err(e) => return fail(e),
        }
    };
    // SAFETY: msg_iov has msg_iovlen iovecs.
    let buf = unsafe { gather(m.msg_iov, m.msg_iovlen) };
    send_impl(s, &buf, flags, to)
}

/// # Safety
/// `msg` valid as for recvmsg(2).
unsafe fn recvmsg_impl(s: &Sock, msg: *mut msghdr, flags: c_int) -> ssize_t {
    if msg.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: the caller gives a valid msghdr.
    let m = unsafe { &mut *msg };
    // SAFETY: msg_iov has msg_iovlen iovecs.
    let mut buf = vec![0u8; unsafe { iov_len(m.msg_iov, m.msg_iovlen) }];
    match recv_impl(s, &mut buf, flags) {
        Ok((k, full, from)) => {
            let copied = k.min(buf.len());
            // SAFETY: as above.
            unsafe { scatter(m.msg_iov, m.msg_iovlen, &buf[..copied]) };
            m.msg_flags = if full > buf.len() { libc::MSG_TRUNC } else { 0 };
            m.msg_controllen = 0;
            match from {
                Some(a) if !m.msg_name.is_null() => {
                    // SAFETY: msg_name has msg_namelen writable bytes.
                    unsafe { write_addr(a, m.msg_name.cast(), &mut m.msg_namelen) };
                }
                _ => m.msg_namelen = 0,
            }
            k as ssize_t
        }
        Err(e) => err(e),
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    match ours(fd) {
        None => unsafe { real::sendmsg(fd, msg, flags) },
        Some(Err(e)) => fail(e),
        Some(Ok(s)) => unsafe { sendmsg_impl(&s, msg, flags) },
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    match ours(fd) {
        None => unsafe { real::recvmsg(fd, msg, flags) },
        Some(Err(e)) => fail(e),
        Some(Ok(s)) => unsafe { recvmsg_impl(&s, msg, flags) },
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn sendmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    n: c_uint,
    flags: c_int,
) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::sendmmsg(fd, msgs, n, flags) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    let mut done = 0;
    for i in 0..n as usize {
        // SAFETY: the caller gives `n` mmsghdrs.
        let m = unsafe { &mut *msgs.add(i) };
        let r = unsafe { sendmsg_impl(&s, &m.msg_hdr, flags) };
        if r < 0 {
            return if done > 0 { done } else { -1 };
        }
        m.msg_len = r as c_uint;
        done += 1;
    }
    done
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn recvmmsg(
    fd: c_int,
    msgs: *mut libc::mmsghdr,
    n: c_uint,
    flags: c_int,
    t: *mut libc::timespec,
) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::recvmmsg(fd, msgs, n, flags, t) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    let mut done = 0;
    for i in 0..n as usize {
        // After the first datagram, take only what is already there.
        let f = if i == 0 && flags & libc::MSG_WAITFORONE == 0 {
            flags
        } else {
            flags | libc::MSG_DONTWAIT
        };
        // SAFETY: the caller gives `n` mmsghdrs.
        let m = unsafe { &mut *msgs.add(i) };
        let r = unsafe { recvmsg_impl(&s, &mut m.msg_hdr, f & !libc::MSG_WAITFORONE) };
        if r < 0 {
            return if done > 0 { done } else { -1 };
        }
        m.msg_len = r as c_uint;
        done += 1;
    }
    done
}

fn sendfile_impl(s: &Sock, inp: c_int, off: *mut libc::off_t, count: size_t) -> ssize_t {
    let mut buf = vec![0u8; count.min(1 << 20)];
    if let Some(src) = lookup(inp) {
        // From another ustack socket (Linux allows any readable fd).
        if !off.is_null() {
            return fail(libc::ESPIPE);
        }
        return match recv_impl(&src, &mut buf, libc::MSG_DONTWAIT) {
            Ok((0, _, _)) => 0,
            Ok((n, _, _)) => send_impl(s, &buf[..n], 0, None),
            Err(e) => err(e),
        };
    }
    // SAFETY: reading the program's file into our buffer, at `*off` when
    // given (pread leaves the file offset alone, as sendfile does).
    let got = unsafe {
        if off.is_null() {
            real::read(inp, buf.as_mut_ptr().cast(), buf.len())
        } else {
            libc::pread(inp, buf.as_mut_ptr().cast(), buf.len(), *off)
        }
    };
    if got <= 0 {
        return got;
    }
    let sent = send_impl(s, &buf[..got as usize], 0, None);
    if sent < 0 {
        if off.is_null() {
            // Put the unsent bytes back: the file offset tells what was sent.
            // SAFETY: lseek on the program's file.
            unsafe { libc::lseek(inp, -(got as libc::off_t), libc::SEEK_CUR) };
        }
        return sent;
    }
    // SAFETY: as above.
    unsafe {
        if off.is_null() {
            libc::lseek(
                inp,
                sent as libc::off_t - got as libc::off_t,
                libc::SEEK_CUR,
            );
        } else {
            *off += sent as libc::off_t;
        }
    }
    sent
}

/// sendfile(2) from a file to a ustack socket (read, then send).
///
/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn sendfile(
    out: c_int,
    inp: c_int,
    off: *mut libc::off_t,
    count: size_t,
) -> ssize_t {
    match ours(out) {
        None => unsafe { real::sendfile(out, inp, off, count) },
        Some(Err(e)) => fail(e),
        Some(Ok(s)) => sendfile_impl(&s, inp, off, count),
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn sendfile64(
    out: c_int,
    inp: c_int,
    off: *mut libc::off_t,
    count: size_t,
) -> ssize_t {
    unsafe { sendfile(out, inp, off, count) }
}

// ---- options and control ----

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::setsockopt(fd, level, name, val, len) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    // SAFETY: the caller gives `len` bytes at `val`.
    let v = match unsafe { cabi::read_opt(level, name, val, len) } {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    match global().rt.setsockopt(s.ufd, level, name, v.clone()) {
        Ok(()) => 0,
        Err(Errno::ENOPROTOOPT) if cabi::noop_option(level, name) => {
            if let OptVal::Int(i) = v {
                s.noop_opts
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((level, name), i);
            }
            0
        }
        Err(e) => err(e),
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::getsockopt(fd, level, name, val, len) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    let rt = &global().rt;
    let stream = s.kind == Kind::Stream;
    let v = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_DOMAIN) => Ok(OptVal::Int(libc::AF_INET)),
        (libc::SOL_SOCKET, libc::SO_PROTOCOL) => Ok(OptVal::Int(if stream {
            libc::IPPROTO_TCP
        } else {
            libc::IPPROTO_UDP
        })),
        (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => {
            Ok(OptVal::Int(i32::from(s.listening.load(Ordering::Acquire))))
        }
        (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_SNDBUF) if stream => rt
            .getsockopt(s.ufd, libc::IPPROTO_TCP, libc::TCP_INFO)
            .and_then(|i| match i {
                OptVal::TcpInfo(i) => Ok(OptVal::Int(
                    i32::try_from(if name == libc::SO_RCVBUF {
                        i.rcvbuf
                    } else {
                        i.sndbuf
                    })
                    .unwrap_or(i32::MAX),
                )),
                _ => Err(Errno::ENOPROTOOPT),
            }),
        // ustack's UDP buffers: Linux's default size.
        (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_SNDBUF) => Ok(OptVal::Int(212_992)),
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) if stream => rt
            .getsockopt(s.ufd, libc::IPPROTO_TCP, libc::TCP_INFO)
            .map(|i| match i {
                OptVal::TcpInfo(i) => OptVal::Int(i32::from(i.snd_mss)),
                other => other,
            }),
        _ => rt.getsockopt(s.ufd, level, name),
    };
    let v = match v {
        Err(Errno::ENOPROTOOPT) if cabi::noop_option(level, name) => {
            let stored = s
                .noop_opts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(level, name))
                .copied();
            Ok(OptVal::Int(stored.unwrap_or(0)))
        }
        v => v,
    };
    match v {
        // SAFETY: the caller gives `*len` bytes at `val`.
        Ok(v) => match unsafe { cabi::write_opt_bytes(&cabi::opt_bytes(&v), val, len) } {
            Ok(()) => 0,
            Err(e) => fail(e),
        },
        Err(e) => err(e),
    }
}

fn set_nonblocking(s: &Sock, on: bool) {
    let _ = global()
        .rt
        .fcntl(s.ufd, libc::F_SETFL, if on { libc::O_NONBLOCK } else { 0 });
}

/// fcntl(2). Declared with one `unsigned long` argument in place of C's
/// `...`: on x86-64 and aarch64 Linux a variadic integer or pointer
/// argument travels where a fixed one does.
///
/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    let Some(s) = ours(fd) else {
        return unsafe { real::fcntl(fd, cmd, arg) };
    };
    let s = match s {
        Ok(s) => s,
        Err(_) if cmd == libc::F_GETFD || cmd == libc::F_SETFD => {
            return unsafe { real::fcntl(fd, cmd, arg) }
        }
        Err(e) => return fail(e),
    };
    // The program's end carries the flags (O_NONBLOCK is shared by dups,
    // as on a socket); ustack follows it.
    let r = unsafe { real::fcntl(fd, cmd, arg) };
    if r < 0 {
        return r;
    }
    match cmd {
        libc::F_SETFL => set_nonblocking(&s, arg as c_int & libc::O_NONBLOCK != 0),
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => state::insert(r, &s),
        _ => {}
    }
    r
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    unsafe { fcntl(fd, cmd, arg) }
}

/// ioctl(2): FIONBIO and FIONREAD on ustack sockets; other requests go to
/// the program's end (an AF_UNIX socket: interface ioctls work there).
///
/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: *mut c_void) -> c_int {
    let s = match ours(fd) {
        None => return unsafe { real::ioctl(fd, req, arg) },
        Some(Err(e)) => return fail(e),
        Some(Ok(s)) => s,
    };
    match req {
        libc::FIONBIO => {
            if arg.is_null() {
                return fail(libc::EFAULT);
            }
            let r = unsafe { real::ioctl(fd, req, arg) };
            if r == 0 {
                // SAFETY: FIONBIO takes an int*.
                set_nonblocking(
                    &s,
                    unsafe { std::ptr::read_unaligned(arg.cast::<c_int>()) } != 0,
                );
            }
            r
        }
        libc::FIONREAD => {
            if arg.is_null() {
                return fail(libc::EFAULT);
            }
            let rt = &global().rt;
            let n = if s.kind == Kind::Stream {
                match rt.getsockopt(s.ufd, libc::IPPROTO_TCP, libc::TCP_INFO) {
                    Ok(OptVal::TcpInfo(i)) if !s.listening.load(Ordering::Acquire) => i.recv_queue,
                    _ => 0,
                }
            } else {
                // The next datagram's size.
                rt.recvfrom(
                    s.ufd,
                    &mut [],
                    libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                )
                .map_or(0, |(n, _)| n)
            };
            // SAFETY: FIONREAD takes an int*.
            // (Unaligned: Python's fcntl.ioctl passes a byte buffer.)
            unsafe {
                std::ptr::write_unaligned(
                    arg.cast::<c_int>(),
                    c_int::try_from(n).unwrap_or(c_int::MAX),
                )
            };
            0
        }
        _ => unsafe { real::ioctl(fd, req, arg) },
    }
}

/// After the kernel made `new` a copy of `old`: the table follows.
fn after_dup(old: c_int, new: c_int, prev: Option<Arc<Sock>>) {
    if let Some(p) = prev {
        state::release(&p);
    }
    if let Some(s) = lookup(old) {
        state::insert(new, &s);
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    let r = unsafe { real::dup(fd) };
    if r >= 0 && !forked() {
        after_dup(fd, r, None);
    }
    r
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    if hidden(new) && !forked() {
        if let Err(e) = state::move_hidden(new) {
            return fail(e);
        }
    }
    if forked() || old == new {
        return unsafe { real::dup3(old, new, flags) };
    }
    let prev = state::remove(new);
    let r = unsafe { real::dup3(old, new, flags) };
    if r < 0 {
        if let Some(p) = prev {
            state::insert(new, &p);
            state::release(&p);
        }
        return r;
    }
    after_dup(old, new, prev);
    r
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    if old == new {
        return unsafe { real::dup2(old, new) };
    }
    if hidden(new) && !forked() {
        if let Err(e) = state::move_hidden(new) {
            return fail(e);
        }
    }
    if forked() {
        return unsafe { real::dup2(old, new) };
    }
    let prev = state::remove(new);
    let r = unsafe { real::dup2(old, new) };
    if r < 0 {
        if let Some(p) = prev {
            state::insert(new, &p);
            state::release(&p);
        }
        return r;
    }
    after_dup(old, new, prev);
    r
}

// ---- waiting: the kernel waits; the library first makes the mirror exact ----

fn watch(fd: c_int) {
    if let Some(Ok(s)) = ours(fd) {
        s.watch();
    }
}

/// # Safety
/// `fds` must hold `n` pollfds.
unsafe fn watch_pollfds(fds: *const pollfd, n: nfds_t) {
    if fds.is_null() {
        return;
    }
    for i in 0..n as usize {
        // SAFETY: as the caller promises.
        watch(unsafe { (*fds.add(i)).fd });
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    unsafe {
        watch_pollfds(fds, n);
        real::poll(fds, n, timeout)
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: c_int,
    len: size_t,
) -> c_int {
    if (n as usize).saturating_mul(std::mem::size_of::<pollfd>()) > len {
        // SAFETY: glibc's own overflow report.
        unsafe { libc::abort() };
    }
    unsafe { poll(fds, n, timeout) }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    t: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    unsafe {
        watch_pollfds(fds, n);
        real::ppoll(fds, n, t, mask)
    }
}

/// # Safety
/// The sets must be valid fd_sets (or null) covering `n` descriptors.
unsafe fn watch_sets(n: c_int, sets: [*mut libc::fd_set; 3]) {
    for set in sets.into_iter().filter(|s| !s.is_null()) {
        for fd in 0..n.clamp(0, libc::FD_SETSIZE as c_int) {
            // SAFETY: `set` is a valid fd_set and fd < FD_SETSIZE.
            if unsafe { libc::FD_ISSET(fd, set) } {
                watch(fd);
            }
        }
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn select(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    t: *mut libc::timeval,
) -> c_int {
    unsafe {
        watch_sets(n, [r, w, e]);
        real::select(n, r, w, e, t)
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn pselect(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    t: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    unsafe {
        watch_sets(n, [r, w, e]);
        real::pselect(n, r, w, e, t, mask)
    }
}

/// # Safety
/// As the C function.
#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(
    ep: c_int,
    op: c_int,
    fd: c_int,
    ev: *mut libc::epoll_event,
) -> c_int {
    if op != libc::EPOLL_CTL_DEL {
        watch(fd);
    }
    unsafe { real::epoll_ctl(ep, op, fd, ev) }
}
