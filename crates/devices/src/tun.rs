//! TUN and TAP devices through `/dev/net/tun`, and the few system calls the
//! device layer needs (poll, setns). All of the crate's `unsafe` is here.
//!
//! A device is opened with `IFF_NO_PI` (frames carry no packet-information
//! prefix) and `O_NONBLOCK`. It lives as long as its fd: dropping the
//! [`Tun`]/[`Tap`] removes the interface. The fd keeps working if the
//! interface is later moved to another network namespace.
//!
//! [`TunOptions::netns`] opens the device from a short-lived thread that has
//! joined a named network namespace (setns(2)), so the interface is born
//! there and never appears in the caller's namespace.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ustack_core::time::Instant;
use ustack_core::{Medium, RxMeta};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::device::{Device, DeviceStats, RxHalf, MAX_FRAME};
use crate::offload::{rx_check, rx_fixup, tx_header, Offloads};
use std::io::IoSlice;
use ustack_core::wire::virtio;

/// The clone device.
pub const TUN_PATH: &str = "/dev/net/tun";
/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// How to open a TUN or TAP device.
#[derive(Debug, Clone)]
pub struct TunOptions {
    name: String,
    mtu: usize,
    netns: Option<PathBuf>,
    napi: bool,
    offload: bool,
    multi_queue: bool,
}

impl TunOptions {
    /// `name` may be empty or a pattern such as `"ust%d"` to let the kernel
    /// choose. The MTU defaults to 1500; it is what [`Device::mtu`] reports,
    /// and should match the kernel side (see [`crate::kernel`]).
    pub fn new(name: &str) -> Self {
        TunOptions {
            name: name.to_owned(),
            mtu: 1500,
            netns: None,
            napi: false,
            offload: false,
            multi_queue: false,
        }
    }

    /// Asks for `IFF_MULTI_QUEUE`: the same name opened again attaches
    /// another queue, each fd its own; the kernel sends a flow's packets to
    /// the queue it last received that flow on (tun's flow table), else by
    /// its flow hash. See [`open_tun_queues`](Self::open_tun_queues).
    pub fn multi_queue(mut self, on: bool) -> Self {
        self.multi_queue = on;
        self
    }

    /// Opens `n` queues of one multiqueue TUN (`IFF_MULTI_QUEUE`), the
    /// first naming the device (a pattern such as `"ust%d"` is resolved
    /// once); `n` of 1 opens a plain single-queue device unless
    /// [`multi_queue`](Self::multi_queue) was asked for.
    pub fn open_tun_queues(&self, n: usize) -> io::Result<Vec<Tun>> {
        if n <= 1 && !self.multi_queue {
            return Ok(vec![self.open_tun()?]);
        }
        let mut opts = self.clone().multi_queue(true);
        let first = opts.open_tun()?;
        opts.name = first.name().to_owned();
        let mut queues = vec![first];
        for _ in 1..n {
            queues.push(opts.open_tun()?);
        }
        Ok(queues)
    }

    /// Asks for the kernel's offloads (off by default): the device is
    /// opened with `IFF_VNET_HDR` (header size 12, `TUNSETVNETHDRSZ`) and
    /// `TUNSETOFFLOAD` is tried with CSUM, TSO4, TSO6 and USO, then with
    /// less, step by step, down to none; without `IFF_VNET_HDR` at all
    /// when the kernel refuses it. [`Device::offloads`] says what was
    /// agreed; see [`crate::offload`] for what travels then.
    pub fn offload(mut self, on: bool) -> Self {
        self.offload = on;
        self
    }

    /// Asks for `IFF_NAPI`: the kernel takes the frames we write through a
    /// NAPI context, as it does a NIC's, so its GRO can merge consecutive
    /// segments of a flow before TCP sees them (only if GRO holds packets
    /// between polls: see [`crate::KernelIf::gro_flush_timeout`]). The
    /// frames we write and read are unchanged: 1500-byte packets, our own
    /// checksums, no virtio header. Needs CAP_NET_ADMIN.
    pub fn napi(mut self, on: bool) -> Self {
        self.napi = on;
        self
    }

    pub fn mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }

    /// Creates the interface inside the network namespace at `path` (for
    /// `ip netns` names: `/run/netns/NAME`, see [`crate::kernel::NetNs::path`]).
    pub fn netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.netns = Some(path.into());
        self
    }

    pub fn open_tun(&self) -> io::Result<Tun> {
        let (file, name, off) = self.open_negotiated(libc::IFF_TUN)?;
        Ok(Tun(Inner::new(file, name, self.mtu, Medium::Ip, off)))
    }

    pub fn open_tap(&self) -> io::Result<Tap> {
        let (file, name, off) = self.open_negotiated(libc::IFF_TAP)?;
        Ok(Tap(Inner::new(file, name, self.mtu, Medium::Ethernet, off)))
    }

    /// Opens with `IFF_VNET_HDR` when offloads are asked for (without, if
    /// the kernel refuses it), then negotiates them.
    fn open_negotiated(&self, kind: libc::c_int) -> io::Result<(File, String, Offloads)> {
        if !self.offload {
            let (f, n) = self.open(kind)?;
            return Ok((f, n, Offloads::NONE));
        }
        let (file, name) = match self.open(kind | libc::IFF_VNET_HDR) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                tracing::info!("the kernel refused IFF_VNET_HDR ({e}); plain frames, no offloads");
                let (f, n) = self.open(kind)?;
                return Ok((f, n, Offloads::NONE));
            }
            Err(e) => return Err(e),
        };
        let off = negotiate(&file)?;
        tracing::info!(interface = %name, offloads = %off, "TUN/TAP offloads");
        Ok((file, name, off))
    }

    fn open(&self, kind: libc::c_int) -> io::Result<(File, String)> {
        let kind = if self.napi {
            kind | libc::IFF_NAPI
        } else {
            kind
        };
        let kind = if self.multi_queue {
            kind | libc::IFF_MULTI_QUEUE
        } else {
            kind
        };
        let req = ifreq_for(&self.name, kind)?;
        if !(68..=65535).contains(&self.mtu) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("MTU {} is outside 68..=65535", self.mtu),
            ));
        }
        match &self.netns {
            None => open_clone_device(req),
            Some(ns) => {
                let ns_file = File::open(ns).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot open network namespace {}: {e}", ns.display()),
                    )
                })?;
                let ns_path = ns.clone();
                std::thread::spawn(move || {
                    setns_net(ns_file.as_fd()).map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!(
                                "cannot enter network namespace {}: {e}{}",
                                ns_path.display(),
                                if e.kind() == io::ErrorKind::PermissionDenied {
                                    " (needs root or CAP_SYS_ADMIN)"
                                } else {
                                    ""
                                }
                            ),
                        )
                    })?;
                    // This thread now lives in the namespace; the device is
                    // created in the namespace of the thread that opens it.
                    open_clone_device(req)
                })
                .join()
                .map_err(|_| io::Error::other("the thread opening the TUN device panicked"))?
            }
        }
    }
}

/// Sets the virtio-net header size to 12 and asks for the most offloads
/// the kernel takes, falling back step by step (USO arrived in Linux 6.2;
/// TSO6 may be refused alone). With none accepted the header stays, all
/// zero.
fn negotiate(file: &File) -> io::Result<Offloads> {
    let sz: libc::c_int = virtio::HDR_LEN_MRG as libc::c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer; `sz`
    // lives across the call and the fd is an open TUN/TAP.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETVNETHDRSZ, &sz) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("TUNSETVNETHDRSZ {sz} failed: {e}"),
        ));
    }
    const USO: libc::c_uint = libc::TUN_F_USO4 | libc::TUN_F_USO6;
    let tso = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;
    let steps = [
        tso | USO,
        tso,
        libc::TUN_F_CSUM | libc::TUN_F_TSO4,
        libc::TUN_F_CSUM,
        0,
    ];
    for flags in steps {
        // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned
        // long of TUN_F_* bits); no memory is passed.
        let rc = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                libc::TUNSETOFFLOAD,
                flags as libc::c_ulong,
            )
        };
        if rc == 0 {
            return Ok(Offloads {
                vnet_hdr: true,
                csum: flags & libc::TUN_F_CSUM != 0,
                tso4: flags & libc::TUN_F_TSO4 != 0,
                tso6: flags & libc::TUN_F_TSO6 != 0,
                uso: flags & USO == USO,
            });
        }
        tracing::debug!(
            flags,
            err = %io::Error::last_os_error(),
            "TUNSETOFFLOAD refused; trying fewer offloads"
        );
    }
    Ok(Offloads {
        vnet_hdr: true,
        ..Offloads::NONE
    })
}

/// A `struct ifreq` is plain data (a name and a union); copying it into a
/// thread is sound. Kept as bytes-level data behind this wrapper.
struct IfReq(libc::ifreq);

// SAFETY: `ifreq` holds a raw pointer variant (`ifru_data`) only as a union
// member we never set; the value is plain bytes and safe to move to a thread.
unsafe impl Send for IfReq {}

fn ifreq_for(name: &str, kind: libc::c_int) -> io::Result<IfReq> {
    if name.len() > MAX_NAME_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "interface name {name:?} is {} bytes; Linux allows at most {MAX_NAME_LEN}",
                name.len()
            ),
        ));
    }
    if name
        .bytes()
        .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace())
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} contains NUL, '/' or whitespace"),
        ));
    }
    // SAFETY: `ifreq` is a C struct of integers, arrays and a union of such
    // (and one pointer); all-zero bytes are a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (kind | libc::IFF_NO_PI) as libc::c_short;
    Ok(IfReq(req))
}

fn open_clone_device(mut req: IfReq) -> io::Result<(File, String)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(TUN_PATH)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{TUN_PATH} does not exist: load the tun module (modprobe tun), \
                     or in a container pass the device in (docker run --device {TUN_PATH} --cap-add NET_ADMIN)"
                ),
            ),
            Some(libc::ENODEV) | Some(libc::ENXIO) => io::Error::new(
                io::ErrorKind::NotFound,
                format!("{TUN_PATH} has no driver behind it: load the tun module (modprobe tun)"),
            ),
            Some(libc::EPERM) | Some(libc::EACCES) => permission(&format!("opening {TUN_PATH}")),
            _ => io::Error::new(e.kind(), format!("cannot open {TUN_PATH}: {e}")),
        })?;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req.0` is a
    // valid, initialized ifreq that outlives the call, and the fd is open.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req.0) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        let name = name_of(&req.0);
        return Err(match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => {
                permission(&format!("creating interface {name:?}"))
            }
            Some(libc::EBUSY) => io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("interface {name:?} exists and is busy or is not a TUN/TAP of this kind"),
            ),
            Some(libc::EINVAL) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TUNSETIFF rejected interface {name:?}: {e} (name in use by another device kind?)"),
            ),
            _ => io::Error::new(e.kind(), format!("TUNSETIFF for {name:?} failed: {e}")),
        });
    }
    Ok((file, name_of(&req.0)))
}

fn permission(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{what}: permission denied; TUN/TAP devices need root or CAP_NET_ADMIN"),
    )
}

fn name_of(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Joins the calling thread to the network namespace open as `ns`.
fn setns_net(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns takes an fd, borrowed and open for the call, and a
    // namespace type; it changes only the calling thread's namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Readiness of one fd after [`poll_fd`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollReady {
    pub readable: bool,
    pub writable: bool,
    /// POLLERR, POLLHUP or POLLNVAL.
    pub error: bool,
}

/// What to wait for on one fd, for [`poll`].
#[derive(Debug, Clone, Copy)]
pub struct PollFd {
    pub fd: RawFd,
    pub read: bool,
    pub write: bool,
}

/// Most fds one [`poll`] takes.
pub const MAX_POLL_FDS: usize = 4;

/// ppoll(2) on at most [`MAX_POLL_FDS`] fds, up to `timeout` (`None`:
/// forever): the one poll wrapper of ustack (the runtime and the devices'
/// `Driver` both wait here). Returns each fd's readiness, in order; EINTR
/// counts as a wake-up with nothing ready.
pub fn poll_ready(
    fds: &[PollFd],
    timeout: Option<Duration>,
) -> io::Result<[PollReady; MAX_POLL_FDS]> {
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
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `raw` is a valid, initialised array of `raw.len()` pollfd
    // structs that lives across the call (ppoll only writes `revents`); the
    // timespec pointer is null or points at a live timespec; no signal mask.
    let rc = unsafe {
        libc::ppoll(
            raw.as_mut_ptr(),
            raw.len() as libc::nfds_t,
            ts_ptr,
            std::ptr::null(),
        )
    };
    let mut out = [PollReady::default(); MAX_POLL_FDS];
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(out);
        }
        return Err(e);
    }
    for (o, r) in out.iter_mut().zip(raw.iter()) {
        *o = PollReady {
            readable: r.revents & libc::POLLIN != 0,
            writable: r.revents & libc::POLLOUT != 0,
            error: r.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0,
        };
    }
    Ok(out)
}

/// [`poll_ready`] as a bit mask: bit `i` set when `fds[i]` has any event
/// (errors included).
pub fn poll(fds: &[PollFd], timeout: Option<Duration>) -> io::Result<u32> {
    let ready = poll_ready(fds, timeout)?;
    Ok(ready[..fds.len()]
        .iter()
        .enumerate()
        .filter(|(_, r)| r.readable || r.writable || r.error)
        .fold(0, |m, (i, _)| m | 1 << i))
}

/// Waits up to `timeout` (`None`: forever) for `fd` to become readable
/// (or writable, if `want_write`). EINTR counts as a timeout.
pub fn poll_fd(fd: RawFd, want_write: bool, timeout: Option<Duration>) -> io::Result<PollReady> {
    let pfd = PollFd {
        fd,
        read: true,
        write: want_write,
    };
    Ok(poll_ready(&[pfd], timeout)?[0])
}

/// Receive counters, shared with a split-off [`TunRx`].
#[derive(Debug, Default)]
struct RxCounters {
    frames: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    gso: AtomicU64,
    csum_offloaded: AtomicU64,
    csum_software: AtomicU64,
    bad_vnet_hdr: AtomicU64,
}

impl RxCounters {
    /// Counts what a good virtio-net header said of its frame.
    fn note(&self, info: &crate::offload::RxInfo) {
        if info.gso {
            self.gso.fetch_add(1, Ordering::Relaxed);
        }
        let c = if info.csum_offloaded {
            &self.csum_offloaded
        } else {
            &self.csum_software
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Most frames with a bad virtio header one `recv` skips before saying
/// "nothing waiting" (the fd stays readable; the next call goes on).
const MAX_BAD_SKIPPED: usize = 64;

/// One read(2) of a frame (after its virtio-net header with `vnet`),
/// counted. A frame whose header does not fit it is counted in
/// `bad_vnet_hdr` and dropped. `trust`: the caller passes the returned
/// [`RxMeta`] to the stack, so a partial checksum is left partial (the
/// meta vouches for it); otherwise it is completed here.
fn read_frame(
    mut file: &File,
    rx: &RxCounters,
    buf: &mut [u8],
    vnet: bool,
    trust: bool,
) -> io::Result<Option<(usize, RxMeta)>> {
    let mut bad = 0;
    loop {
        let mut hdr = [0u8; virtio::HDR_LEN_MRG];
        let r = if vnet {
            readv2(file, &mut hdr, buf)
                .map(|n| n.saturating_sub(virtio::HDR_LEN_MRG).min(buf.len()))
        } else {
            file.read(buf)
        };
        match r {
            Ok(n) => {
                rx.frames.fetch_add(1, Ordering::Relaxed);
                rx.bytes.fetch_add(n as u64, Ordering::Relaxed);
                let mut meta = RxMeta::default();
                if vnet {
                    match rx_fixup(&hdr, &mut buf[..n], !trust) {
                        Ok(info) => {
                            meta.csum_ok = trust && info.csum_offloaded;
                            rx.note(&info);
                        }
                        Err(e) => {
                            rx.bad_vnet_hdr.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!("dropped a received frame: bad virtio-net header: {e}");
                            bad += 1;
                            if bad >= MAX_BAD_SKIPPED {
                                return Ok(None);
                            }
                            continue;
                        }
                    }
                }
                return Ok(Some((n, meta)));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                rx.errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
}

/// Most buffers [`read_scattered`] takes after the virtio-net header.
const MAX_SCATTER: usize = 7;

/// One readv(2) of a frame after its virtio-net header, scattered over
/// `bufs` in order; counted like [`read_frame`]. The partial checksum of
/// a frame flagged `NEEDS_CSUM` is left partial: the returned meta
/// vouches for it.
fn read_scattered(
    file: &File,
    rx: &RxCounters,
    bufs: &mut [&mut [u8]],
) -> io::Result<Option<(usize, RxMeta)>> {
    let mut bad = 0;
    let cap: usize = bufs.iter().map(|b| b.len()).sum();
    loop {
        let mut hdr = [0u8; virtio::HDR_LEN_MRG];
        match readv_into(file, &mut hdr, bufs) {
            Ok(n) => {
                let n = n.saturating_sub(virtio::HDR_LEN_MRG).min(cap);
                rx.frames.fetch_add(1, Ordering::Relaxed);
                rx.bytes.fetch_add(n as u64, Ordering::Relaxed);
                match rx_check(&hdr, n) {
                    Ok(info) => {
                        rx.note(&info);
                        let meta = RxMeta {
                            csum_ok: info.csum_offloaded,
                        };
                        return Ok(Some((n, meta)));
                    }
                    Err(e) => {
                        rx.bad_vnet_hdr.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("dropped a received frame: bad virtio-net header: {e}");
                        bad += 1;
                        if bad >= MAX_BAD_SKIPPED {
                            return Ok(None);
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                rx.errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
}

/// readv(2) of a virtio-net header and a frame scattered over `bufs`
/// (at most [`MAX_SCATTER`] of them; more is invalid input).
fn readv_into(file: &File, hdr: &mut [u8], bufs: &mut [&mut [u8]]) -> io::Result<usize> {
    if bufs.len() > MAX_SCATTER {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut iov = [empty; MAX_SCATTER + 1];
    iov[0] = libc::iovec {
        iov_base: hdr.as_mut_ptr().cast(),
        iov_len: hdr.len(),
    };
    for (v, b) in iov[1..].iter_mut().zip(bufs.iter_mut()) {
        *v = libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        };
    }
    let count = 1 + bufs.len();
    // SAFETY: the first `count` iovecs point at live, writable buffers of
    // the stated lengths (`hdr` and each of `bufs`), all borrowed mutably
    // for the call and not overlapping (distinct `&mut` slices); the fd is
    // open. The kernel writes at most those lengths.
    let n = unsafe { libc::readv(file.as_raw_fd(), iov.as_ptr(), count as libc::c_int) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// readv(2) of a virtio-net header and the frame after it.
fn readv2(file: &File, hdr: &mut [u8], buf: &mut [u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: hdr.as_mut_ptr().cast(),
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        },
    ];
    // SAFETY: both iovecs point at live, writable buffers of the stated
    // lengths, borrowed mutably for the call; the fd is open.
    let n = unsafe { libc::readv(file.as_raw_fd(), iov.as_ptr(), 2) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[derive(Debug)]
struct Inner {
    file: File,
    name: String,
    mtu: usize,
    medium: Medium,
    offloads: Offloads,
    /// Transmit counters (the rx ones are in `rx`).
    stats: DeviceStats,
    rx: Arc<RxCounters>,
}

impl Inner {
    fn new(file: File, name: String, mtu: usize, medium: Medium, offloads: Offloads) -> Self {
        Inner {
            file,
            name,
            mtu,
            medium,
            offloads,
            stats: DeviceStats::default(),
            rx: Arc::default(),
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let r = read_frame(&self.file, &self.rx, buf, self.offloads.vnet_hdr, false)?;
        Ok(r.map(|(n, _)| n))
    }

    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        read_frame(&self.file, &self.rx, buf, self.offloads.vnet_hdr, true)
    }

    /// With TSO the kernel hands over (and takes) super-packets of up
    /// to 64 KiB.
    fn max_frame_len(&self) -> usize {
        if self.offloads.tso4 || self.offloads.tso6 {
            return MAX_FRAME;
        }
        match self.medium {
            Medium::Ip => self.mtu,
            Medium::Ethernet => self.mtu + ustack_core::wire::ethernet::HEADER_LEN,
        }
    }

    fn stats(&self) -> DeviceStats {
        DeviceStats {
            rx_frames: self.rx.frames.load(Ordering::Relaxed),
            rx_bytes: self.rx.bytes.load(Ordering::Relaxed),
            rx_errors: self.rx.errors.load(Ordering::Relaxed),
            rx_gso_frames: self.rx.gso.load(Ordering::Relaxed),
            rx_csum_offloaded: self.rx.csum_offloaded.load(Ordering::Relaxed),
            rx_csum_software: self.rx.csum_software.load(Ordering::Relaxed),
            rx_bad_vnet_hdr: self.rx.bad_vnet_hdr.load(Ordering::Relaxed),
            ..self.stats
        }
    }

    fn rx_half(&self) -> Option<Box<dyn RxHalf>> {
        let file = self.file.try_clone().ok()?;
        Some(Box::new(TunRx {
            file,
            rx: self.rx.clone(),
            max: self.max_frame_len(),
            vnet: self.offloads.vnet_hdr,
        }))
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        let mut hdr = [0u8; virtio::HDR_LEN_MRG];
        let vnet = self.offloads.vnet_hdr;
        if vnet {
            let h = match tx_header(self.medium, self.mtu, frame) {
                Some(h) if h.gso_type == 0 || self.offloads.tso() => h,
                _ => {
                    self.stats.tx_errors += 1;
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "{}: a frame of {} bytes is over the MTU {} and not a TCP super-segment the device takes",
                            self.name,
                            frame.len(),
                            self.mtu
                        ),
                    ));
                }
            };
            h.emit(&mut hdr);
        }
        let want = frame.len() + if vnet { hdr.len() } else { 0 };
        loop {
            let r = if vnet {
                (&self.file).write_vectored(&[IoSlice::new(&hdr), IoSlice::new(frame)])
            } else {
                self.file.write(frame)
            };
            match r {
                Ok(n) if n == want => {
                    self.stats.tx_frames += 1;
                    self.stats.tx_bytes += frame.len() as u64;
                    if hdr[1] != 0 {
                        self.stats.tx_gso_frames += 1;
                    }
                    return Ok(());
                }
                Ok(n) => {
                    self.stats.tx_errors += 1;
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("{}: short write, {n} of {} bytes", self.name, frame.len()),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.stats.tx_would_block += 1;
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        format!("{}: device queue full", self.name),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.stats.tx_errors += 1;
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{}: write of {} bytes: {e}", self.name, frame.len()),
                    ));
                }
            }
        }
    }
}

/// The receive side of a [`Tun`] or [`Tap`] ([`Device::rx_half`]): a
/// duplicate of its fd, read from another thread while the device writes.
/// Its frames count in the device's stats.
#[derive(Debug)]
pub struct TunRx {
    file: File,
    rx: Arc<RxCounters>,
    max: usize,
    vnet: bool,
}

impl RxHalf for TunRx {
    fn max_frame_len(&self) -> usize {
        self.max
    }
    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let r = read_frame(&self.file, &self.rx, buf, self.vnet, false)?;
        Ok(r.map(|(n, _)| n))
    }
    fn recv_with(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, RxMeta)>> {
        read_frame(&self.file, &self.rx, buf, self.vnet, true)
    }
    fn can_scatter(&self) -> bool {
        self.vnet
    }
    fn recv_scattered(&mut self, bufs: &mut [&mut [u8]]) -> io::Result<Option<(usize, RxMeta)>> {
        if !self.vnet {
            return Err(io::Error::from(io::ErrorKind::Unsupported));
        }
        read_scattered(&self.file, &self.rx, bufs)
    }
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

macro_rules! tun_device {
    ($ty:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $ty(Inner);

        impl $ty {
            /// The interface name the kernel gave the device.
            pub fn name(&self) -> &str {
                &self.0.name
            }

            /// Changes the MTU this side reports (the kernel side is set
            /// separately, see [`crate::kernel`]).
            pub fn set_mtu(&mut self, mtu: usize) {
                self.0.mtu = mtu;
            }
        }

        impl Device for $ty {
            fn medium(&self) -> Medium {
                self.0.medium
            }
            fn mtu(&self) -> usize {
                self.0.mtu
            }
            fn max_frame_len(&self) -> usize {
                self.0.max_frame_len()
            }
            fn offloads(&self) -> Offloads {
                self.0.offloads
            }
            fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
                self.0.recv(buf)
            }
            fn recv_with(
                &mut self,
                _now: Instant,
                buf: &mut [u8],
            ) -> io::Result<Option<(usize, RxMeta)>> {
                self.0.recv_with(buf)
            }
            fn send(&mut self, _now: Instant, frame: &[u8]) -> io::Result<()> {
                self.0.send(frame)
            }
            fn as_raw_fd(&self) -> Option<RawFd> {
                Some(self.0.file.as_raw_fd())
            }
            fn stats(&self) -> DeviceStats {
                self.0.stats()
            }
            fn rx_half(&mut self) -> Option<Box<dyn RxHalf>> {
                self.0.rx_half()
            }
        }

        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.file.as_fd()
            }
        }
    };
}

tun_device!(
    Tun,
    "A TUN device (`IFF_TUN | IFF_NO_PI`): frames are bare IP packets."
);
tun_device!(
    Tap,
    "A TAP device (`IFF_TAP | IFF_NO_PI`): frames are Ethernet II frames."
);

impl Tun {
    /// Opens (creating if needed) TUN interface `name` in this thread's namespace.
    pub fn open(name: &str) -> io::Result<Tun> {
        TunOptions::new(name).open_tun()
    }
}

impl Tap {
    /// Opens (creating if needed) TAP interface `name` in this thread's namespace.
    pub fn open(name: &str) -> io::Result<Tap> {
        TunOptions::new(name).open_tap()
    }
}

/// Whether `/dev/net/tun` exists (a cheap check before trying to open it).
pub fn tun_device_present() -> bool {
    Path::new(TUN_PATH).exists()
}

/// Whether Linux would accept `name` as an interface name (length, characters).
pub fn valid_ifname(name: &str) -> bool {
    ifreq_for(name, libc::IFF_TUN).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_or_odd_names_are_invalid_input() {
        let e = Tun::open("a-name-longer-than-15").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("at most 15"), "{e}");
        for bad in ["a/b", "sp ace", "nul\0"] {
            let e = Tap::open(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(valid_ifname("exactly15chars_"));
    }

    #[test]
    fn bad_mtu_is_invalid_input() {
        let e = TunOptions::new("x").mtu(20).open_tun().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn missing_namespace_is_reported() {
        let e = TunOptions::new("x")
            .netns("/nonexistent/netns/ustack")
            .open_tun()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("network namespace"), "{e}");
    }

    #[test]
    fn poll_times_out_on_a_quiet_fd() {
        let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
        let t0 = std::time::Instant::now();
        let ready = poll_fd(r.as_raw_fd(), false, Some(Duration::from_millis(20))).unwrap();
        assert_eq!(ready, PollReady::default());
        assert!(t0.elapsed() >= Duration::from_millis(19));
        let ready = poll_fd(r.as_raw_fd(), true, Some(Duration::ZERO)).unwrap();
        assert!(ready.writable && !ready.readable);
    }
}
