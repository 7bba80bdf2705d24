//! A runtime group: N share-nothing stacks, one per queue of a multiqueue
//! device (a multiqueue TUN, an [`MqLink`](ustack_devices::MqLink) end),
//! each on its own thread pinned to a core where allowed.
//!
//! Each stack is a [`Runtime`] of its own: its own TCBs, timers, buffers,
//! lock and device queue; nothing is shared on the packet path. A listener
//! opened through the group is opened in every stack (SO_REUSEPORT across
//! stacks: a SYN is answered by the stack whose queue it came in on), and
//! [`GroupListener::accept`] takes connections from all of them in turn.
//! Outgoing connections from stack `i` take only ephemeral ports whose
//! symmetric flow hash ([`ustack_devices::rss`]) picks queue `i` of `n`,
//! so the link steers the replies back to stack `i` (the receive-side
//! scaling trick of DPDK applications). A TUN's kernel side steers by
//! the queue a flow was last sent on, which is `i` by construction; a
//! flow the kernel starts goes, with no entry in tun's flow table, to the
//! queue its hash picks, the one its SYN came in on and whose stack
//! answered it. Not handled: a flow *we* started whose table entry expired
//! (tun forgets a flow after 3 s without a packet from us) may come back on
//! the queue of the kernel's hash, where another stack, knowing no such
//! connection, answers with a reset (counted in `out_rsts`); forwarding
//! such frames to their owner is not built.

use crate::net::{TcpListener, TcpStream};
use crate::runtime::{Interest, Mode, Runtime};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::task::{Wake, Waker};
use std::time::Duration;
use ustack_core::{Errno, Stack, StackConfig};
use ustack_devices::{affinity, rss, Clock, Device};

/// Where a stack's thread runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// Pinned to this CPU.
    Cpu(usize),
    /// Not pinned, and why (no thread in this mode, the call failed).
    NotPinned(String),
}

/// N runtimes, one per device queue; see the module docs.
#[derive(Debug)]
pub struct RuntimeGroup {
    stacks: Vec<Runtime>,
    pins: Vec<Pin>,
    next: AtomicUsize,
}

/// The CPU stack `i` of a group goes to: the allowed CPUs in turn.
fn cpu_for(i: usize, cpus: &[usize]) -> Option<usize> {
    (!cpus.is_empty()).then(|| cpus[i % cpus.len()])
}

impl RuntimeGroup {
    /// Starts one runtime per device (queue `i` = stack `i`), each with
    /// `cfg` (the seed varied per stack) and the port filter of its queue.
    /// `pin`: pin stack `i`'s thread to the `i`-th allowed CPU (thread
    /// mode; failure is reported by [`pins`](Self::pins), not an error).
    pub fn new(
        cfg: StackConfig,
        devices: Vec<Box<dyn Device + Send>>,
        clock: Clock,
        mode: Mode,
        pin: bool,
    ) -> io::Result<RuntimeGroup> {
        let n = devices.len();
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a runtime group needs at least one device queue",
            ));
        }
        let cpus = affinity::allowed_cpus();
        let mut stacks = Vec::with_capacity(n);
        let mut pins = Vec::with_capacity(n);
        for (i, device) in devices.into_iter().enumerate() {
            let mut c = cfg.clone();
            c.seed = cfg.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut stack =
                Stack::new(c).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            if n > 1 {
                stack.set_port_filter(Some(Arc::new(move |l: SocketAddr, r: SocketAddr| {
                    rss::flow_queue(l, r, n) == i
                })));
            }
            let (tx, rx) = mpsc::channel();
            let cpu = cpu_for(i, &cpus).filter(|_| pin && mode == Mode::Thread);
            let init = move || {
                let p = match cpu {
                    Some(c) => match affinity::pin_current_thread(c) {
                        Ok(()) => Pin::Cpu(c),
                        Err(e) => Pin::NotPinned(format!("cpu {c}: {e}")),
                    },
                    None => Pin::NotPinned("not asked".into()),
                };
                let _ = tx.send(p);
            };
            let rt = Runtime::new_with_init(stack, device, clock, mode, init)?;
            pins.push(match mode {
                Mode::Thread => rx
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_else(|_| Pin::NotPinned("the stack thread did not say".into())),
                _ => Pin::NotPinned("no stack thread in this mode".into()),
            });
            stacks.push(rt);
        }
        Ok(RuntimeGroup {
            stacks,
            pins,
            next: AtomicUsize::new(0),
        })
    }

    /// How many stacks.
    pub fn len(&self) -> usize {
        self.stacks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }

    /// Stack `i`'s runtime.
    pub fn stack(&self, i: usize) -> &Runtime {
        &self.stacks[i]
    }

    pub fn stacks(&self) -> &[Runtime] {
        &self.stacks
    }

    /// Where each stack's thread runs.
    pub fn pins(&self) -> &[Pin] {
        &self.pins
    }

    /// Listens on `addr` in every stack (backlog 128 each).
    pub fn listen(&self, addr: impl ToSocketAddrs) -> io::Result<GroupListener> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
        let listeners = self
            .stacks
            .iter()
            .map(|rt| TcpListener::bind(rt, addr))
            .collect::<io::Result<Vec<_>>>()?;
        for l in &listeners {
            l.set_nonblocking(true)?;
        }
        Ok(GroupListener {
            stacks: self.stacks.clone(),
            listeners,
            next: AtomicUsize::new(0),
            notify: Arc::new(Notify::default()),
        })
    }

    /// Connects from the stacks in turn (each picks a port of its queue).
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<(usize, TcpStream)> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.stacks.len();
        Ok((i, TcpStream::connect(&self.stacks[i], addr)?))
    }

    /// Runs `f(i, stack i)` on one thread per stack (pinned like the stacks
    /// when `pin`), for one-loop-per-thread programs; returns their results
    /// in stack order. With [`Mode::Inline`] runtimes this is
    /// run-to-completion: each thread drives its own stack and nothing else.
    pub fn run_per_stack<R: Send>(
        &self,
        pin: bool,
        f: impl Fn(usize, &Runtime) -> R + Sync,
    ) -> Vec<R> {
        let cpus = affinity::allowed_cpus();
        std::thread::scope(|s| {
            let handles: Vec<_> = self
                .stacks
                .iter()
                .enumerate()
                .map(|(i, rt)| {
                    let f = &f;
                    let cpu = cpu_for(i, &cpus).filter(|_| pin);
                    s.spawn(move || {
                        if let Some(c) = cpu {
                            // Advice only: unpinned still runs, and says so.
                            if let Err(e) = affinity::pin_current_thread(c) {
                                tracing::warn!(stack = i, cpu = c, error = %e, "not pinned");
                            }
                        }
                        f(i, rt)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }
}

/// Wakes a thread waiting in [`GroupListener::accept`].
#[derive(Default)]
struct Notify {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *self.woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }
}

/// A listener open in every stack of a group; see the module docs.
pub struct GroupListener {
    stacks: Vec<Runtime>,
    listeners: Vec<TcpListener>,
    next: AtomicUsize,
    notify: Arc<Notify>,
}

impl GroupListener {
    /// Stack `i`'s listener (non-blocking), for a loop per stack.
    pub fn listener(&self, i: usize) -> &TcpListener {
        &self.listeners[i]
    }

    /// How many stacks it listens in.
    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listeners[0].local_addr()
    }

    /// A connection from stack `i`, without waiting (WouldBlock if none).
    pub fn accept_on(&self, i: usize) -> io::Result<(TcpStream, SocketAddr)> {
        self.listeners[i].accept()
    }

    /// The next connection from any stack, with the stack it lives in,
    /// blocking. Fair: each call starts looking at the stack after the one
    /// the previous call started at. Waits on the stacks' wakers (thread
    /// mode) or drives them in turn every 200 µs (inline mode).
    pub fn accept(&self) -> io::Result<(usize, TcpStream, SocketAddr)> {
        let n = self.listeners.len();
        let waker = Waker::from(self.notify.clone());
        loop {
            let start = self.next.fetch_add(1, Ordering::Relaxed);
            for j in 0..n {
                let i = (start + j) % n;
                let rt = &self.stacks[i];
                let fd = self.listeners[i].as_raw_fd();
                let got = match rt.mode() {
                    Mode::Inline => rt.accept4(fd, 0),
                    _ => rt.accept4_or_wake(fd, 0, &waker),
                };
                match got {
                    Ok((fd, peer)) => return Ok((i, TcpStream::from_fd(rt, fd), peer)),
                    Err(Errno::EAGAIN) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let mut woken = self.notify.woken.lock().unwrap_or_else(|e| e.into_inner());
            let wait = match self.stacks[0].mode() {
                Mode::Inline => Duration::from_micros(200),
                _ => Duration::from_millis(100),
            };
            if !*woken {
                woken = self
                    .notify
                    .cv
                    .wait_timeout(woken, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            *woken = false;
        }
    }

    /// Registers for readability of every stack's listener (an async
    /// accept loop: wake, then [`accept_on`](Self::accept_on) each).
    pub fn register_waker(&self, waker: &Waker) -> Result<(), Errno> {
        for (rt, l) in self.stacks.iter().zip(&self.listeners) {
            rt.register_waker(l.as_raw_fd(), Interest::Read, waker)?;
        }
        Ok(())
    }
}
