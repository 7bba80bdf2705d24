//! Many connections between two core stacks on a virtual clock (issue 19,
//! item 4): what an idle established connection costs, and whether 10⁶
//! short connections give back all they took. Heap figures come from the
//! caller (a counting global allocator in the binary or test), so the
//! stacks' own bytes are measured, not the process's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{Ipv4Addr as StdIpv4, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use ustack_core::wire::Ipv4Cidr;
use ustack_core::{Duration, Instant, Medium, SocketHandle, Stack, StackConfig};

/// Client address, server address.
pub const CLIENT: StdIpv4 = StdIpv4::new(10, 0, 0, 1);
pub const SERVER: StdIpv4 = StdIpv4::new(10, 0, 0, 2);

/// Two stacks on a lossless in-memory IP link, on a virtual clock.
pub struct Pair {
    pub client: Stack,
    pub server: Stack,
    pub now: Instant,
    buf: Vec<u8>,
    /// Listening sockets on the server, one per port.
    pub listeners: Vec<SocketHandle>,
    /// Server ports, from 1000 up.
    pub ports: Vec<u16>,
}

fn config(addr: StdIpv4, seed: u64, time_wait: Duration) -> StackConfig {
    let a = ustack_core::wire::Ipv4Addr::from(addr.octets());
    let mut c = StackConfig::new(Medium::Ip, Ipv4Cidr::new(a, 24)).with_seed(seed);
    // Every port above the well-known ones, so that 10⁶ four-tuples fit
    // in fewer server ports (RFC 6056 §2.1 allows 1024–65535).
    c.ephemeral_ports = 1024..=65535;
    c.tcp.time_wait = time_wait;
    // The event log is a fixed 65 536 events deep by default (some MiB
    // once full, whatever the connections): smaller, so that what the
    // connections hold is what shows (a warm-up fills it).
    c.max_events = 64;
    c
}

impl Pair {
    /// Two stacks; the server listens on `ports` ports with room for
    /// `backlog` unaccepted connections each.
    pub fn new(ports: usize, backlog: usize, time_wait: Duration) -> Pair {
        let mut server = Stack::new(config(SERVER, 2, time_wait)).expect("server config");
        let client = Stack::new(config(CLIENT, 1, time_wait)).expect("client config");
        let ports: Vec<u16> = (0..ports).map(|i| 1000 + i as u16).collect();
        let listeners = ports
            .iter()
            .map(|&p| {
                let l = server.tcp_open();
                server
                    .tcp_bind(l, SocketAddrV4::new(SERVER, p))
                    .expect("bind");
                server.tcp_listen(l, backlog).expect("listen");
                l
            })
            .collect();
        Pair {
            client,
            server,
            now: Instant::from_secs(1),
            buf: vec![0; 65536],
            listeners,
            ports,
        }
    }

    /// Moves packets both ways until neither stack has one to send now.
    pub fn pump(&mut self) {
        for _ in 0..1_000_000 {
            let mut any = false;
            while let Some(n) = self.client.transmit(self.now, &mut self.buf) {
                any = true;
                self.server.receive(self.now, &self.buf[..n]);
            }
            while let Some(n) = self.server.transmit(self.now, &mut self.buf) {
                any = true;
                self.client.receive(self.now, &self.buf[..n]);
            }
            if !any {
                // What a runtime takes after each turn: readiness changes
                // and the event log (bounded, but 65 536 events deep).
                for st in [&mut self.client, &mut self.server] {
                    drop(st.take_readiness_changes());
                    drop(st.take_events());
                }
                return;
            }
        }
        panic!("pump did not settle");
    }

    /// Advances the clock by `d`, stopping at every deadline on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..10_000_000 {
            self.pump();
            let next = [self.client.poll_at(), self.server.poll_at()]
                .into_iter()
                .flatten()
                .filter(|t| *t > self.now)
                .min();
            match next {
                Some(t) if t <= end => self.now = t,
                _ => {
                    self.now = end;
                    self.pump();
                    return;
                }
            }
        }
        panic!("advance did not settle");
    }

    fn remote(&self, i: usize) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(SERVER, self.ports[i % self.ports.len()]))
    }

    /// Opens `n` connections, `batch` at a time, and accepts them all.
    /// Returns (client, server) handles.
    pub fn open(&mut self, n: usize, batch: usize) -> Vec<(SocketHandle, SocketHandle)> {
        let mut clients = Vec::with_capacity(n);
        let mut servers = Vec::with_capacity(n);
        while clients.len() < n {
            let k = batch.min(n - clients.len());
            for _ in 0..k {
                let c = self.client.tcp_open();
                let r = self.remote(clients.len());
                connect(&mut self.client, self.now, c, r);
                clients.push(c);
            }
            self.pump();
            for &l in &self.listeners {
                while let Ok((s, _)) = self.server.tcp_accept(l) {
                    servers.push(s);
                }
            }
        }
        assert_eq!(servers.len(), n, "every connection accepted");
        for &c in &clients {
            assert_eq!(
                self.client.tcp_state(c).expect("client socket"),
                ustack_core::TcpState::Established
            );
        }
        // Pair each server end with its client by 4-tuple.
        type Tuple = (SocketAddr, SocketAddr);
        let mut by_tuple: std::collections::HashMap<Tuple, SocketHandle> = servers
            .into_iter()
            .map(|s| {
                let peer = self.server.peer_addr(s).expect("server peer");
                let local = self.server.local_addr(s).expect("server addr");
                ((peer, local.expect("bound")), s)
            })
            .collect();
        clients
            .into_iter()
            .map(|c| {
                let local = self.client.local_addr(c).expect("client addr");
                let peer = self.client.peer_addr(c).expect("client peer");
                let key = (local.expect("bound"), peer);
                (c, by_tuple.remove(&key).expect("its server end"))
            })
            .collect()
    }

    /// Sends `msg` each way on every connection and reads it, so each has
    /// had data queued and drained.
    pub fn exchange(&mut self, conns: &[(SocketHandle, SocketHandle)], msg: &[u8]) {
        let mut got = [0u8; 256];
        for chunk in conns.chunks(500) {
            for &(c, _) in chunk {
                assert_eq!(self.client.tcp_send(self.now, c, msg), Ok(msg.len()));
            }
            self.pump();
            for &(_, s) in chunk {
                let n = self.server.tcp_recv(s, &mut got).expect("request");
                assert_eq!(&got[..n], msg);
                assert_eq!(self.server.tcp_send(self.now, s, msg), Ok(msg.len()));
            }
            self.pump();
            for &(c, _) in chunk {
                let n = self.client.tcp_recv(c, &mut got).expect("response");
                assert_eq!(&got[..n], msg);
            }
        }
        // Delayed ACKs go out.
        self.advance(Duration::from_secs(1));
    }

    /// Closes both ends of every connection (the client first: the
    /// client's ends go to TIME_WAIT).
    pub fn close(&mut self, conns: Vec<(SocketHandle, SocketHandle)>) {
        for (i, (c, s)) in conns.into_iter().enumerate() {
            self.client.close(c).expect("close client");
            self.server.close(s).expect("close server");
            if i % 1000 == 999 {
                self.pump();
            }
        }
        self.pump();
    }

    /// One short connection: connect, `req` bytes up, the same back, the
    /// client closes, then the server. The clock moves `step` afterwards.
    pub fn short(&mut self, i: usize, req: &[u8], step: Duration) {
        let c = self.client.tcp_open();
        let r = self.remote(i);
        connect(&mut self.client, self.now, c, r);
        self.pump();
        let l = self.listeners[i % self.listeners.len()];
        let (s, _) = self.server.tcp_accept(l).expect("accepted");
        assert_eq!(self.client.tcp_send(self.now, c, req), Ok(req.len()));
        self.pump();
        let mut got = [0u8; 256];
        let n = self.server.tcp_recv(s, &mut got).expect("request");
        assert_eq!(&got[..n], req);
        assert_eq!(self.server.tcp_send(self.now, s, req), Ok(req.len()));
        self.pump();
        let n = self.client.tcp_recv(c, &mut got).expect("response");
        assert_eq!(&got[..n], req);
        self.client.close(c).expect("close client");
        self.pump();
        self.server.close(s).expect("close server");
        self.pump();
        self.advance(step);
    }

    /// TCBs held by both stacks (TIME_WAIT ones included).
    pub fn tcbs(&self) -> usize {
        self.client.tcp_tcb_count() + self.server.tcp_tcb_count()
    }
}

fn connect(st: &mut Stack, now: Instant, c: SocketHandle, r: SocketAddr) {
    match st.tcp_connect(now, c, r) {
        Ok(()) | Err(ustack_core::Errno::EINPROGRESS) => {}
        Err(e) => panic!("connect to {r}: {e:?}"),
    }
}

/// Resident set size of this process, bytes (/proc/self/statm).
pub fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A global allocator that counts the bytes live on the heap; a binary
/// or test installs it with `#[global_allocator]`.
pub struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
impl Counting {
    /// Bytes allocated and not yet freed, in the whole process.
    pub fn live() -> usize {
        LIVE.load(Ordering::Relaxed)
    }
}
// An allocator is unsafe by contract; this one forwards every call to the
// system allocator unchanged and only counts sizes.
#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the caller's arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on as is.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `System` with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `System` with layout `l`; `new` is the
        // caller's valid size.
        unsafe { System.realloc(p, l, new) }
    }
}
