//! The library's state: the stack (started on first use), the table from
//! kernel descriptor numbers to ustack sockets, and the readiness mirror.

use crate::real;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use ustack::epoll::{EpollEvent, EPOLLET, EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLL_CTL_ADD};
use ustack::fd::Kind;
use ustack::link::LinkConfig;
use ustack::posix::{PollFd, POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDHUP};
use ustack::Runtime;
use ustack_core::tcp::State as TcpState;

/// The stack and what the library keeps beside it.
pub struct Global {
    pub rt: Runtime,
    /// A ustack epoll (edge-triggered) watching every mirrored socket: the
    /// mirror thread learns there what the network changed.
    mirror_ep: i32,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();
/// Set in a child after fork(2): the stack lives in the parent.
static FORKED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread is inside the library's own setup: its socket calls go
    /// to libc.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

pub fn busy() -> bool {
    BUSY.with(|b| b.get())
}

pub fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}

/// The running stack, started on the first call that needs it. A bad
/// setting ends the process with one line on stderr and status 2.
pub fn global() -> &'static Global {
    if let Some(g) = GLOBAL.get() {
        return g;
    }
    GLOBAL.get_or_init(|| {
        BUSY.with(|b| b.set(true));
        let g = start().unwrap_or_else(|e| {
            eprintln!("ustack-preload: {e}");
            std::process::exit(2);
        });
        BUSY.with(|b| b.set(false));
        g
    })
}

/// The `USTACK_*` variables, meaning what the `ustack` command's flags do.
pub fn config_from_env(get: impl Fn(&str) -> Option<String>) -> Result<(LinkConfig, bool), String> {
    let parse_cidr = |var: &str, default: &str| {
        let v = get(var).unwrap_or_else(|| default.to_string());
        v.parse().map_err(|_| {
            format!("{var}={v} is not an IPv4 address with a prefix length (like 10.200.0.2/24)")
        })
    };
    let tun = get("USTACK_TUN").filter(|s| !s.is_empty());
    let tap = get("USTACK_TAP").filter(|s| !s.is_empty());
    if tun.is_none() && tap.is_none() {
        return Err(
            "set USTACK_TUN=NAME (or USTACK_TAP=NAME) to the device ustack should use".into(),
        );
    }
    if tun.is_some() && tap.is_some() {
        return Err("USTACK_TUN and USTACK_TAP are both set: choose one".into());
    }
    for name in tun.iter().chain(tap.iter()) {
        if name.len() > 15 || name.contains(['/', ' ']) {
            return Err(format!(
                "device name {name:?} is not a valid interface name (at most 15 characters, no '/' or spaces)"
            ));
        }
    }
    let addr: ustack_core::wire::Ipv4Cidr = parse_cidr("USTACK_ADDR", "10.200.0.2/24")?;
    let kernel_addr: ustack_core::wire::Ipv4Cidr =
        parse_cidr("USTACK_KERNEL_ADDR", "10.200.0.1/24")?;
    if !kernel_addr.contains_addr(&addr.address()) || kernel_addr.address() == addr.address() {
        return Err(format!(
            "USTACK_ADDR={addr} and USTACK_KERNEL_ADDR={kernel_addr} must be different addresses on the same subnet"
        ));
    }
    let mtu = match get("USTACK_MTU") {
        None => 1500,
        Some(v) => match v.parse::<u32>() {
            Ok(m) if (68..=65535).contains(&m) => m,
            _ => return Err(format!("USTACK_MTU={v} is not a number from 68 to 65535")),
        },
    };
    let stats = match get("USTACK_STATS").as_deref() {
        None | Some("") | Some("0") => false,
        Some("1") => true,
        Some(v) => {
            return Err(format!(
                "USTACK_STATS={v}: use 1 (print counters at exit) or 0"
            ))
        }
    };
    let offload = match get("USTACK_OFFLOAD").as_deref() {
        None | Some("") | Some("on") => true,
        Some("off") => false,
        Some(v) => {
            return Err(format!(
                "USTACK_OFFLOAD={v}: use on (the TUN's offloads, the default) or off"
            ))
        }
    };
    let cfg = LinkConfig {
        tun,
        tap,
        addr,
        kernel_addr,
        mtu,
        loss: None,
        reorder: None,
        delay: None,
        pcap: get("USTACK_PCAP").filter(|s| !s.is_empty()).map(Into::into),
        hop_mtu: None,
        hop_blackhole: false,
        mtu_probing: false,
        seed: ustack::os_seed()
            .map_err(|e| format!("cannot seed the stack from the OS's randomness: {e}"))?,
        offload,
        addr6: None,
        kernel_addr6: None,
        netns: None,
    };
    Ok((cfg, stats))
}

fn start() -> Result<Global, String> {
    let (cfg, stats) = config_from_env(|k| std::env::var(k).ok())?;
    let rt = cfg.start("the preload library")?;
    let mirror_ep = rt
        .epoll_create1(0)
        .map_err(|e| format!("cannot create the mirror's epoll: {e:?}"))?;
    let thread_rt = rt.clone();
    std::thread::Builder::new()
        .name("ustack-mirror".into())
        .spawn(move || mirror_thread(thread_rt, mirror_ep))
        .map_err(|e| format!("cannot start the mirror thread: {e}"))?;
    if stats {
        STATS.store(true, Ordering::Relaxed);
    }
    // SAFETY: registering plain extern "C" functions that take no arguments.
    unsafe {
        libc::atexit(at_exit);
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_parent),
            Some(after_fork_child),
        );
    }
    Ok(Global { rt, mirror_ep })
}

static STATS: AtomicBool = AtomicBool::new(false);

type TableGuards = (
    MutexGuard<'static, BTreeMap<i32, Arc<Sock>>>,
    MutexGuard<'static, BTreeMap<i32, Arc<Sock>>>,
    MutexGuard<'static, BTreeMap<i32, std::sync::Weak<Sock>>>,
    MutexGuard<'static, BTreeMap<i32, ()>>,
);

thread_local! {
    /// The library's table locks, held by the forking thread across fork(2)
    /// so that no other thread is halfway through them when the child's
    /// copy is taken (the child has only the forking thread).
    static FORK_GUARDS: std::cell::RefCell<Option<TableGuards>> =
        const { std::cell::RefCell::new(None) };
}

extern "C" fn before_fork() {
    // The same order everywhere; no other code holds two of these at once.
    let g = (lock(&TABLE), lock(&WATCHED), lock(&OWNERS), lock(&HIDDEN));
    FORK_GUARDS.with(|f| *f.borrow_mut() = Some(g));
}

extern "C" fn after_fork_parent() {
    FORK_GUARDS.with(|f| f.borrow_mut().take());
}

extern "C" fn after_fork_child() {
    FORKED.store(true, Ordering::Relaxed);
    FORK_GUARDS.with(|f| f.borrow_mut().take());
}

/// How long exit waits for data already written to reach the peer, as the
/// kernel would keep sending after the process is gone.
const EXIT_DRAIN: Duration = Duration::from_secs(10);

/// At exit: close what the program left open (FIN, as the kernel does when a
/// process ends), wait (bounded) until every byte and FIN is acknowledged,
/// and print the statistics if USTACK_STATS=1.
extern "C" fn at_exit() {
    if forked() {
        return;
    }
    let Some(g) = GLOBAL.get() else {
        return;
    };
    let open: std::collections::BTreeSet<i32> = all_ufds().into_iter().collect();
    for ufd in open {
        let _ = g.rt.close(ufd);
    }
    let deadline = Instant::now() + EXIT_DRAIN;
    while Instant::now() < deadline {
        let pending = g.rt.with_stack(|s, now| {
            s.socket_table(now).iter().any(|r| {
                r.send_q > 0
                    || matches!(
                        r.state,
                        TcpState::SynSent
                            | TcpState::FinWait1
                            | TcpState::Closing
                            | TcpState::LastAck
                    )
            })
        });
        if !pending {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if STATS.load(Ordering::Relaxed) {
        eprint!("{}", ustack::stats::render(&g.rt));
    }
}

/// One ustack socket, named by one or more kernel descriptors (dups) that
/// are ends of an AF_UNIX socketpair mirroring its readiness.
pub struct Sock {
    /// The runtime's descriptor.
    pub ufd: i32,
    pub kind: Kind,
    /// Descriptors in the table naming this socket.
    refs: AtomicUsize,
    /// The program has shown it in poll/select/epoll: keep the mirror exact.
    watched: AtomicBool,
    /// connect/listen/accept happened (a fresh socket's HUP is not mirrored).
    pub started: AtomicBool,
    pub listening: AtomicBool,
    /// The mirror shows "not writable" (read without the mirror's lock).
    shows_not_writable: AtomicBool,
    mirror: Mutex<Mirror>,
    /// Options accepted without effect, remembered for getsockopt.
    pub noop_opts: Mutex<HashMap<(i32, i32), i32>>,
}

/// What the program's end shows now, and the library's descriptors that
/// drive it (under the same lock: `dup2` onto one of them moves it).
#[derive(Default)]
struct Mirror {
    /// The library's end of the pair: writing a byte to it makes the
    /// program's end readable; reading from it makes that end writable.
    b: i32,
    /// The library's own dup of the program's end: reading it empties the
    /// readable byte; writing it until EAGAIN makes the end not writable.
    a: i32,
    readable: bool,
    /// Starts writable (an empty socketpair is).
    not_writable: bool,
    /// shutdown(b, SHUT_WR) done: the end reads as POLLIN|POLLRDHUP for good.
    hup: bool,
    small_sndbuf: bool,
    /// The pair is closed: nothing more to mirror.
    closed: bool,
}

/// fd number -> 0 (not ours), 1 (a ustack socket), 2 (the library's own).
const FAST: usize = 1 << 16;
static KIND: [AtomicU8; FAST] = [const { AtomicU8::new(0) }; FAST];
static HIGH: AtomicBool = AtomicBool::new(false);
static TABLE: Mutex<BTreeMap<i32, Arc<Sock>>> = Mutex::new(BTreeMap::new());
static HIDDEN: Mutex<BTreeMap<i32, ()>> = Mutex::new(BTreeMap::new());
/// Mirrors showing "not writable" now. ustack wakes epoll for freed send
/// space only after a send found the buffer full (Linux's SOCK_NOSPACE,
/// which Linux's poll also sets and ustack's readiness does not): a
/// socket that stopped being writable after a send that fit would get no
/// event, so while any mirror shows "not writable" the mirror thread also
/// looks at those every millisecond.
static NOT_WRITABLE: AtomicUsize = AtomicUsize::new(0);
/// How often the mirror thread re-reads mirrors showing "not writable".
const NOT_WRITABLE_RECHECK_MS: i32 = 1;
/// How long the mirror thread waits for an event before it looks whether a
/// mirror turned "not writable" meanwhile.
const IDLE_RECHECK_MS: i32 = 20;

/// The socket each of the library's own descriptors belongs to.
static OWNERS: Mutex<BTreeMap<i32, std::sync::Weak<Sock>>> = Mutex::new(BTreeMap::new());

/// The program is about to `dup2` onto `fd`, one of the library's own
/// descriptors: move it to another number first, so the mirror never
/// writes into what the program puts there.
pub fn move_hidden(fd: i32) -> Result<(), i32> {
    let Some(s) = lock(&OWNERS).get(&fd).and_then(|w| w.upgrade()) else {
        return Ok(());
    };
    let mut m = lock(&s.mirror);
    if m.closed {
        return Ok(());
    }
    // SAFETY: duplicating and closing the library's own descriptor.
    let new = unsafe { real::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(errno());
    }
    if m.a == fd {
        m.a = new;
    } else if m.b == fd {
        m.b = new;
    }
    hide(new);
    {
        let mut owners = lock(&OWNERS);
        owners.remove(&fd);
        owners.insert(new, Arc::downgrade(&s));
    }
    unhide(fd);
    // SAFETY: the old number of the descriptor just moved.
    unsafe { real::close(fd) };
    Ok(())
}

/// Mirrored sockets by runtime descriptor, for the mirror thread.
static WATCHED: Mutex<BTreeMap<i32, Arc<Sock>>> = Mutex::new(BTreeMap::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn table() -> MutexGuard<'static, BTreeMap<i32, Arc<Sock>>> {
    lock(&TABLE)
}

fn set_kind(fd: i32, k: u8) {
    match usize::try_from(fd) {
        Ok(i) if i < FAST => KIND[i].store(k, Ordering::Release),
        Ok(_) => HIGH.store(true, Ordering::Release),
        Err(_) => {}
    }
}

/// The ustack socket behind kernel descriptor `fd`, if it is one. Costs one
/// atomic load for descriptors that are not.
pub fn lookup(fd: i32) -> Option<Arc<Sock>> {
    let i = usize::try_from(fd).ok()?;
    if i < FAST {
        if KIND[i].load(Ordering::Acquire) != 1 {
            return None;
        }
    } else if !HIGH.load(Ordering::Acquire) {
        return None;
    }
    table().get(&fd).cloned()
}

/// Whether `fd` is one of the library's own descriptors (the hidden ends).
pub fn hidden(fd: i32) -> bool {
    match usize::try_from(fd) {
        Ok(i) if i < FAST => KIND[i].load(Ordering::Acquire) == 2,
        Ok(_) => HIGH.load(Ordering::Acquire) && lock(&HIDDEN).contains_key(&fd),
        Err(_) => false,
    }
}

fn hide(fd: i32) {
    set_kind(fd, 2);
    if fd as usize >= FAST {
        lock(&HIDDEN).insert(fd, ());
    }
}

fn unhide(fd: i32) {
    set_kind(fd, 0);
    lock(&HIDDEN).remove(&fd);
}

/// Names `s` by `fd` too (a new descriptor, or a dup).
pub fn insert(fd: i32, s: &Arc<Sock>) {
    s.refs.fetch_add(1, Ordering::AcqRel);
    table().insert(fd, s.clone());
    set_kind(fd, 1);
}

/// Forgets `fd` (before the kernel descriptor is closed, so its number is
/// free only once the table no longer has it). Returns its socket.
pub fn remove(fd: i32) -> Option<Arc<Sock>> {
    match usize::try_from(fd) {
        Ok(i) if i < FAST && KIND[i].load(Ordering::Acquire) != 1 => return None,
        Ok(i) if i >= FAST && !HIGH.load(Ordering::Acquire) => return None,
        Err(_) => return None,
        _ => {}
    }
    let s = table().remove(&fd)?;
    set_kind(fd, 0);
    Some(s)
}

/// A descriptor naming `s` went away: the last one closes the socket.
pub fn release(s: &Arc<Sock>) {
    if s.refs.fetch_sub(1, Ordering::AcqRel) != 1 || forked() {
        return;
    }
    let g = global();
    lock(&WATCHED).remove(&s.ufd);
    let _ = g.rt.close(s.ufd);
    // Under the mirror's lock: a mirror update still holding the socket
    // must not touch these numbers once they are free for reuse.
    let mut m = lock(&s.mirror);
    m.closed = true;
    if m.not_writable {
        m.not_writable = false;
        s.shows_not_writable.store(false, Ordering::Release);
        NOT_WRITABLE.fetch_sub(1, Ordering::AcqRel);
    }
    unhide(m.a);
    unhide(m.b);
    lock(&OWNERS).remove(&m.a);
    lock(&OWNERS).remove(&m.b);
    // SAFETY: the library's own descriptors, closed once here.
    unsafe {
        real::close(m.a);
        real::close(m.b);
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Wraps runtime socket `ufd` in a fresh socketpair and returns the
/// program's end, a new kernel descriptor (close-on-exec and non-blocking
/// as `flags` say, SOCK_* bits).
pub fn new_sock(ufd: i32, kind: Kind, flags: i32, started: bool) -> Result<i32, i32> {
    let mut sv = [0; 2];
    // SAFETY: `sv` has room for the two descriptors socketpair writes.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    } < 0
    {
        return Err(errno());
    }
    let (end, b) = (sv[0], sv[1]);
    // SAFETY: fcntl on the two descriptors just made.
    let a = unsafe {
        if flags & libc::SOCK_CLOEXEC == 0 {
            real::fcntl(end, libc::F_SETFD, 0);
        }
        if flags & libc::SOCK_NONBLOCK != 0 {
            real::fcntl(end, libc::F_SETFL, libc::O_NONBLOCK as libc::c_ulong);
        }
        real::fcntl(b, libc::F_SETFL, libc::O_NONBLOCK as libc::c_ulong);
        real::fcntl(end, libc::F_DUPFD_CLOEXEC, 3)
    };
    if a < 0 {
        let e = errno();
        // SAFETY: closing the pair just made.
        unsafe {
            real::close(end);
            real::close(b);
        }
        return Err(e);
    }
    hide(a);
    hide(b);
    let s = Arc::new(Sock {
        ufd,
        kind,
        refs: AtomicUsize::new(0),
        watched: AtomicBool::new(false),
        started: AtomicBool::new(started),
        listening: AtomicBool::new(false),
        shows_not_writable: AtomicBool::new(false),
        mirror: Mutex::new(Mirror {
            a,
            b,
            ..Mirror::default()
        }),
        noop_opts: Mutex::new(HashMap::new()),
    });
    lock(&OWNERS).insert(a, Arc::downgrade(&s));
    lock(&OWNERS).insert(b, Arc::downgrade(&s));
    insert(end, &s);
    Ok(end)
}

/// Every descriptor of the table (for the at-exit close).
pub fn all_ufds() -> Vec<i32> {
    table().values().map(|s| s.ufd).collect()
}

impl Sock {
    /// The program is about to wait on this socket in poll/select/epoll:
    /// from now on the mirror follows the socket's readiness.
    pub fn watch(self: &Arc<Self>) {
        let g = global();
        if !self.watched.swap(true, Ordering::AcqRel) {
            lock(&WATCHED).insert(self.ufd, self.clone());
            let _ = g.rt.epoll_ctl(
                g.mirror_ep,
                EPOLL_CTL_ADD,
                self.ufd,
                Some(EpollEvent::new(
                    EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                    self.ufd as u64,
                )),
            );
        }
        self.sync();
    }

    /// After a call that may have changed readiness.
    pub fn changed(&self) {
        if self.watched.load(Ordering::Acquire) {
            self.sync();
        }
    }

    /// Makes the program's end show the socket's readiness now. Under the
    /// mirror's lock, so the last to look wins with what it saw last.
    pub fn sync(&self) {
        let mut m = lock(&self.mirror);
        let Some(g) = GLOBAL.get() else { return };
        if m.closed {
            return;
        }
        let mut p = [PollFd::new(self.ufd, POLLIN | POLLOUT | POLLRDHUP)];
        if g.rt.poll(&mut p, 0).is_err() {
            return;
        }
        let mut r = p[0].revents;
        if !self.started.load(Ordering::Acquire) {
            // A socket not yet connected or listening reads as hung up.
            r &= !(POLLHUP | POLLRDHUP | POLLERR);
        }
        let hup = r & (POLLHUP | POLLRDHUP | POLLERR) != 0;
        let readable = r & (POLLIN | POLLHUP | POLLERR | POLLRDHUP) != 0;
        let listening = self.listening.load(Ordering::Acquire);
        // Below Linux's threshold (a third free) a stream still shows
        // writable while any space is free: the program's next send then
        // finds the buffer full, which is what makes ustack report the
        // space it frees later (see NOT_WRITABLE).
        let writable = !listening
            && (r & (POLLOUT | POLLERR | POLLHUP) != 0
                || (self.kind == Kind::Stream
                    && self.started.load(Ordering::Acquire)
                    && send_space(g, self.ufd)));
        let mut buf = [0u8; 4096];
        // SAFETY (whole block): send/recv/shutdown/setsockopt with MSG_DONTWAIT
        // on the library's own ends of the pair, with valid local buffers.
        unsafe {
            if writable == m.not_writable {
                if writable {
                    // Empty what the program's end sent: its send space returns.
                    for _ in 0..1024 {
                        if real::recv(m.b, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                            <= 0
                        {
                            break;
                        }
                    }
                    m.not_writable = false;
                    self.shows_not_writable.store(false, Ordering::Release);
                    NOT_WRITABLE.fetch_sub(1, Ordering::AcqRel);
                } else {
                    if !m.small_sndbuf {
                        let one: libc::c_int = 1;
                        real::setsockopt(
                            m.a,
                            libc::SOL_SOCKET,
                            libc::SO_SNDBUF,
                            (&one as *const libc::c_int).cast(),
                            4,
                        );
                        m.small_sndbuf = true;
                    }
                    for _ in 0..1024 {
                        if real::send(
                            m.a,
                            buf.as_ptr().cast(),
                            buf.len(),
                            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                        ) <= 0
                        {
                            break;
                        }
                    }
                    m.not_writable = true;
                    self.shows_not_writable.store(true, Ordering::Release);
                    NOT_WRITABLE.fetch_add(1, Ordering::AcqRel);
                }
            }
            if m.hup {
                return;
            }
            if hup {
                real::shutdown(m.b, libc::SHUT_WR);
                m.hup = true;
                m.readable = true;
            } else if readable != m.readable {
                if readable {
                    real::send(
                        m.b,
                        buf.as_ptr().cast(),
                        1,
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    );
                } else {
                    for _ in 0..1024 {
                        if real::recv(m.a, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                            <= 0
                        {
                            break;
                        }
                    }
                }
                m.readable = readable;
            }
        }
    }
}

/// Whether a connected stream's send buffer has any free space.
fn send_space(g: &Global, ufd: i32) -> bool {
    match g.rt.getsockopt(ufd, libc::IPPROTO_TCP, libc::TCP_INFO) {
        Ok(ustack::OptVal::TcpInfo(i)) => {
            use ustack_core::tcp::State;
            matches!(i.state, State::Established | State::CloseWait) && i.send_queue < i.sndbuf
        }
        _ => false,
    }
}

/// Waits on the mirror's epoll for what the network changed and brings the
/// mirrors up to date.
fn mirror_thread(rt: Runtime, ep: i32) {
    let mut evs = [EpollEvent::new(0, 0); 256];
    // The re-read interval doubles (up to the idle one) while the same
    // mirrors stay "not writable", so a peer that stops reading costs
    // little; any change starts it over.
    let mut interval = NOT_WRITABLE_RECHECK_MS;
    loop {
        let stuck_before = NOT_WRITABLE.load(Ordering::Acquire);
        // Not forever: a mirror may turn "not writable" while this waits.
        let timeout = if stuck_before > 0 {
            interval
        } else {
            IDLE_RECHECK_MS
        };
        let n = match rt.epoll_wait(ep, &mut evs, timeout) {
            Ok(n) => n,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        for ev in &evs[..n] {
            let s = lock(&WATCHED).get(&(ev.data as i32)).cloned();
            if let Some(s) = s {
                s.sync();
            }
        }
        if NOT_WRITABLE.load(Ordering::Acquire) > 0 {
            let stuck: Vec<Arc<Sock>> = lock(&WATCHED)
                .values()
                .filter(|s| s.shows_not_writable.load(Ordering::Acquire))
                .cloned()
                .collect();
            for s in &stuck {
                s.sync();
            }
            let after = NOT_WRITABLE.load(Ordering::Acquire);
            interval = if n == 0 && after == stuck_before && after == stuck.len() {
                (interval * 2).min(IDLE_RECHECK_MS)
            } else {
                NOT_WRITABLE_RECHECK_MS
            };
        } else {
            interval = NOT_WRITABLE_RECHECK_MS;
        }
    }
}
