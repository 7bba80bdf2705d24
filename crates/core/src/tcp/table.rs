//! `Tcp`: the connection table (a slab of TCBs found by 4-tuple), the
//! listeners and sockets, the port buckets, the timer heap and the ready
//! list.

use super::buffer::Ring;
use super::options::TcpOptions;
use super::plan::Ctl;
use super::state::State;
use super::tcb::{PortClass, Tcb, TcbId, CORK_CEILING};
use crate::config::TcpConfig;
use crate::errno::Errno;
use crate::ratelimit::TokenBucket;
use crate::rng::Rng;
use crate::socket::{Slab, SocketHandle};
use crate::time::Instant;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;

/// A listening socket's queues (RFC 9293 §3.10.7.2; sizes as Linux).
#[derive(Debug)]
pub(crate) struct Listener {
    pub backlog: usize,
    /// Half-open connections (SYN_RECEIVED) counted against the SYN queue.
    pub syn_count: usize,
    /// Completed connections not yet accepted.
    pub accept: VecDeque<TcbId>,
    /// A SYN was answered with a cookie recently; ACKs may carry one.
    pub cookies_since: Option<Instant>,
    /// Deferred connections waiting for the application's answer (the
    /// any-destination listener, `forward.rs`); counted in `syn_count`.
    pub pending: VecDeque<TcbId>,
}
/// The state of a TCP socket handle.
#[derive(Debug)]
pub(crate) enum Kind {
    /// Not connected: fresh, bound, or after the connection ended.
    Closed {
        was_connected: bool,
    },
    /// Boxed: a connection's socket does not carry a listener's queues.
    Listen(Box<Listener>),
    Conn(TcbId),
}
/// The any-destination listener's state beside its socket (`forward.rs`).
#[derive(Debug)]
pub(crate) struct Forward {
    pub lh: SocketHandle,
    pub defer: bool,
    pub max_conns: usize,
    /// The TCBs it made that are alive; `true` while deferred.
    pub conns: HashMap<TcbId, bool>,
}

/// A TCP socket as the socket table holds it. Connected, it is 32 bytes:
/// the TCB owns the addresses and options then (issue 19, item 4).
#[derive(Debug)]
pub struct TcpSocket {
    pub(crate) kind: Kind,
    /// SO_ERROR.
    pub(crate) error: Option<Errno>,
    /// Counted among the port's bound sockets (bound, not connected).
    pub(crate) in_ports: bool,
    /// Connected without `own`: the socket was bound to the wildcard
    /// address of the TCB's family and port, not to the TCB's address.
    pub(crate) bound_any: bool,
    /// Not connected (`Closed`, `Listen`): always here. Connected: `None`,
    /// unless the bound address cannot be told from the TCB's or the last
    /// connection left something to hand back; its `opts` are then stale,
    /// the TCB's are the socket's (`Tcp::sock_opts`).
    pub(crate) own: Option<Box<Own>>,
}

/// What a socket holds of its own while it has no TCB.
#[derive(Debug)]
pub(crate) struct Own {
    pub local: Option<SocketAddr>,
    pub opts: TcpOptions,
    /// Received data still unread when the connection ended (TIME_WAIT
    /// expiry, RST): readable until drained, like Linux's receive queue.
    /// Boxed, and only when something is left.
    pub leftover: Option<Box<Ring>>,
    /// What the connection held of the application's when it ended:
    /// lent send buffers and posted receive buffers, to hand back.
    pub zc: Option<Box<Orphans>>,
}
impl Own {
    pub(crate) fn new(local: Option<SocketAddr>, opts: TcpOptions) -> Box<Own> {
        Box::new(Own {
            local,
            opts,
            leftover: None,
            zc: None,
        })
    }

    /// Nothing to keep but the address and options.
    fn bare(&self) -> bool {
        self.leftover.is_none() && self.zc.is_none()
    }
}
impl TcpSocket {
    /// A socket for a TCB that has just been made (connect, accept).
    pub(crate) fn connected(id: TcbId) -> TcpSocket {
        TcpSocket {
            kind: Kind::Conn(id),
            error: None,
            in_ports: false,
            bound_any: false,
            own: None,
        }
    }
}
/// `ip`'s family's wildcard address with `port`.
fn any_of(ip: std::net::IpAddr, port: u16) -> SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    match ip {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
    }
}

/// Lent and posted buffers of a connection that has ended.
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    pub done: Vec<super::sendq::ZcDone>,
    pub posted: super::sendq::PostedQueue,
}
/// Who uses a local port: bound sockets (not connected) and the TCBs,
/// counted by the reuse options they were made with.
#[derive(Debug, Default)]
pub(crate) struct PortUse {
    pub sockets: Vec<SocketHandle>,
    pub live: u32,
    pub live_reuseaddr: u32,
    pub live_reuseport: u32,
    pub live_both: u32,
    pub time_wait: u32,
}
impl PortUse {
    fn is_empty(&self) -> bool {
        self.sockets.is_empty() && self.live == 0 && self.time_wait == 0
    }

    /// Adds (`delta` = 1) or removes (-1) a TCB of class `c`.
    pub(crate) fn count(&mut self, c: PortClass, delta: i32) {
        let add = |x: &mut u32| *x = x.wrapping_add_signed(delta);
        match c {
            PortClass::TimeWait => add(&mut self.time_wait),
            PortClass::Live {
                reuseaddr,
                reuseport,
            } => {
                add(&mut self.live);
                if reuseaddr {
                    add(&mut self.live_reuseaddr);
                }
                if reuseport {
                    add(&mut self.live_reuseport);
                }
                if reuseaddr && reuseport {
                    add(&mut self.live_both);
                }
            }
        }
    }

    /// Live TCBs a new bind with these options would clash with (Linux
    /// `inet_csk_bind_conflict`: both SO_REUSEADDR, or both SO_REUSEPORT).
    pub(crate) fn live_conflicts(&self, reuseaddr: bool, reuseport: bool) -> u32 {
        match (reuseaddr, reuseport) {
            (true, true) => self.live + self.live_both - self.live_reuseaddr - self.live_reuseport,
            (true, false) => self.live - self.live_reuseaddr,
            (false, true) => self.live - self.live_reuseport,
            (false, false) => self.live,
        }
    }
}
/// The 4-tuple index: slot indices of the live TCBs, hashed from the
/// TCB's own addresses (`Secret::table`), so an entry is 4 bytes plus
/// hashbrown's control byte rather than a copy of both addresses (issue
/// 19: ~10 B per connection at 10⁶ instead of ~146).
#[derive(Default)]
pub(crate) struct Conns {
    table: hashbrown::HashTable<u32>,
}
impl Conns {
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}
/// The TCB in slot `i` has this 4-tuple.
#[inline]
fn slot_is(slots: &[Slot], i: u32, local: SocketAddr, remote: SocketAddr) -> bool {
    slots
        .get(i as usize)
        .and_then(|s| s.tcb.as_deref())
        .is_some_and(|t| t.local == local && t.remote == remote)
}
/// The table hash of the TCB in slot `i` (when the table grows).
fn slot_hash(slots: &[Slot], secret: &super::secret::Secret, i: u32) -> u64 {
    slots
        .get(i as usize)
        .and_then(|s| s.tcb.as_deref())
        .map_or(0, |t| secret.table(t.local, t.remote))
}
/// Boxed, so a slot is 16 bytes and a freed TCB gives its memory back
/// (the slot vector keeps its high-water length, not 850 bytes a slot).
struct Slot {
    generation: u32,
    tcb: Option<Box<Tcb>>,
}
/// TCP: the connection table, the listeners and sockets, the timers and
/// the ready list. Driven through a [`Cx`](crate::cx::Cx): segments in
/// (`process`), segments out (`dispatch`), `poll_at`, and the socket calls.
pub struct Tcp {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The generation new slots start at: past every slot trimmed, so an
    /// id from before the trim never resolves (`shrink`).
    gen_base: u32,
    pub(crate) count: usize,
    conns: Conns,
    pub(crate) listeners: HashMap<u16, Vec<SocketHandle>>,
    pub(crate) bind_ports: HashMap<u16, PortUse>,
    /// The TCP sockets, by handle.
    pub(crate) socks: Slab<TcpSocket>,
    pub(crate) timers: BinaryHeap<core::cmp::Reverse<(Instant, u32, u32)>>,
    pub(crate) ready: VecDeque<TcbId>,
    /// The TCB the last segment was for: bulk traffic skips the keyed hash.
    last_conn: Option<TcbId>,
    /// The TCB whose header prediction `process_fast` just tried and
    /// missed: the full path for the same segment does not try again.
    pub(crate) fast_missed: Option<TcbId>,
    pub(crate) ctl: VecDeque<Ctl>,
    /// What is left of the last burst planned (`TcpConfig::gso`): sent
    /// before anything else.
    pub(crate) burst: Option<super::plan::Burst>,
    pub(crate) secret: super::secret::Secret,
    pub(crate) challenge: TokenBucket,
    /// The any-destination listener (`forward.rs`).
    pub(crate) fwd: Option<Forward>,
    /// A new socket's options (what `sock_opts` gives for a socket with
    /// none, which a consistent table never has).
    defaults: TcpOptions,
}
/// The timer heap and the ready list, borrowed beside a TCB.
pub(crate) struct Queues<'a> {
    timers: &'a mut BinaryHeap<core::cmp::Reverse<(Instant, u32, u32)>>,
    ready: &'a mut VecDeque<TcbId>,
}
impl Queues<'_> {
    /// `TcpState::arm` for a TCB in hand.
    #[inline]
    pub(crate) fn arm(&mut self, id: TcbId, t: &mut Tcb) {
        let Some(d) = t.deadline() else { return };
        if t.timer.sched.is_none_or(|s| d < s) {
            t.timer.sched = Some(d);
            self.timers
                .push(core::cmp::Reverse((d, id.index, id.generation)));
        }
    }

    /// Puts the TCB on the ready list if it owes output; false if it is
    /// not there and owes nothing (then a corked one may need its hold
    /// armed: `TcpState::schedule`).
    #[inline]
    pub(crate) fn schedule(&mut self, id: TcbId, t: &mut Tcb) -> bool {
        if t.owed.in_ready {
            return true;
        }
        if t.wants_output() {
            t.owed.in_ready = true;
            self.ready.push_back(id);
            return true;
        }
        false
    }
}
impl Tcp {
    pub fn new(cfg: &TcpConfig, rng: &mut Rng) -> Tcp {
        Tcp {
            slots: Vec::new(),
            free: Vec::new(),
            gen_base: 0,
            count: 0,
            conns: Conns::default(),
            listeners: HashMap::new(),
            bind_ports: HashMap::new(),
            socks: Slab::default(),
            timers: BinaryHeap::new(),
            ready: VecDeque::new(),
            last_conn: None,
            fast_missed: None,
            ctl: VecDeque::new(),
            burst: None,
            secret: super::secret::Secret::new(rng),
            challenge: TokenBucket::new(cfg.challenge_ack_limit, cfg.challenge_ack_limit.max(1)),
            fwd: None,
            defaults: TcpOptions::new(cfg),
        }
    }

    /// A socket's options: its TCB's while connected (the TCB owns them),
    /// else its own.
    pub(crate) fn sock_opts<'a>(&'a self, s: &'a TcpSocket) -> &'a TcpOptions {
        if let Kind::Conn(id) = s.kind {
            if let Some(t) = self.get(id) {
                return &t.opts;
            }
        }
        match s.own.as_deref() {
            Some(o) => &o.opts,
            None => {
                debug_assert!(false, "a socket with neither a TCB nor options");
                &self.defaults
            }
        }
    }

    /// A socket's address (getsockname): while connected without `own`,
    /// its TCB's, or the wildcard it was bound to.
    pub(crate) fn sock_local(&self, s: &TcpSocket) -> Option<SocketAddr> {
        if let Some(o) = s.own.as_deref() {
            return o.local;
        }
        let Kind::Conn(id) = s.kind else { return None };
        let t = self.get(id)?;
        Some(if s.bound_any {
            any_of(t.local.ip(), t.local.port())
        } else {
            t.local
        })
    }

    /// Connects socket `h` to TCB `id` (whose address is `local`): the
    /// TCB has the options now, and the socket keeps its own state only
    /// if something is left in it or its bound address cannot be told
    /// from the TCB's (then `own.opts` is stale until the connection ends).
    pub(crate) fn attach(&mut self, h: SocketHandle, id: TcbId, local: SocketAddr) {
        let Some(s) = self.socks.get_mut(h) else {
            return;
        };
        s.kind = Kind::Conn(id);
        s.bound_any = false;
        let Some(o) = s.own.as_deref_mut() else {
            return;
        };
        let bound = o.local;
        o.local = Some(bound.unwrap_or(local));
        if !o.bare() {
            return;
        }
        match bound {
            None => {}
            Some(b) if b == local => {}
            Some(b) if b == any_of(local.ip(), local.port()) => s.bound_any = true,
            Some(_) => return,
        }
        s.own = None;
    }

    /// The connection of socket `h` has ended (its TCB, taken out of the
    /// table, had address `local` and `opts`): the socket takes them back.
    pub(crate) fn detach(
        &mut self,
        h: SocketHandle,
        local: SocketAddr,
        opts: TcpOptions,
    ) -> Option<&mut TcpSocket> {
        let s = self.socks.get_mut(h)?;
        s.kind = Kind::Closed {
            was_connected: true,
        };
        let local = if std::mem::take(&mut s.bound_any) {
            any_of(local.ip(), local.port())
        } else {
            local
        };
        match s.own.as_deref_mut() {
            Some(o) => o.opts = opts,
            None => s.own = Some(Own::new(Some(local), opts)),
        }
        Some(s)
    }

    pub(crate) fn get(&self, id: TcbId) -> Option<&Tcb> {
        let s = self.slots.get(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        s.tcb.as_deref()
    }

    pub(crate) fn get_mut(&mut self, id: TcbId) -> Option<&mut Tcb> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        s.tcb.as_deref_mut()
    }

    /// The TCB for a 4-tuple. The one-entry cache needs no invalidation:
    /// a stale id resolves to nothing, and a live TCB with this 4-tuple is
    /// the one `conns` maps it to.
    pub(crate) fn lookup(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<TcbId> {
        if let Some(id) = self.cached(local, remote) {
            return Some(id);
        }
        let id = self.find(local, remote)?;
        self.last_conn = Some(id);
        Some(id)
    }

    /// The TCB for a 4-tuple, by the table alone (no cache).
    #[inline]
    pub(crate) fn find(&self, local: SocketAddr, remote: SocketAddr) -> Option<TcbId> {
        let slots = &self.slots;
        let hash = self.secret.table(local, remote);
        let &index = self
            .conns
            .table
            .find(hash, |&i| slot_is(slots, i, local, remote))?;
        Some(TcbId {
            index,
            generation: slots[index as usize].generation,
        })
    }

    /// Whether a TCB has this 4-tuple.
    pub(crate) fn has_conn(&self, local: SocketAddr, remote: SocketAddr) -> bool {
        self.find(local, remote).is_some()
    }

    /// The TCB the last segment was for.
    pub(crate) fn last_conn(&self) -> Option<TcbId> {
        self.last_conn
    }

    /// The cached TCB if it has this 4-tuple (no table lookup).
    #[inline]
    pub(crate) fn cached(&self, local: SocketAddr, remote: SocketAddr) -> Option<TcbId> {
        let id = self.last_conn?;
        self.get(id)
            .is_some_and(|t| t.local == local && t.remote == remote)
            .then_some(id)
    }

    pub(crate) fn insert(&mut self, tcb: Tcb) -> TcbId {
        self.count += 1;
        debug_assert!(
            self.find(tcb.local, tcb.remote).is_none(),
            "two TCBs for one 4-tuple"
        );
        let hash = self.secret.table(tcb.local, tcb.remote);
        let id = if let Some(index) = self.free.pop() {
            let s = &mut self.slots[index as usize];
            s.generation = s.generation.wrapping_add(1);
            s.tcb = Some(Box::new(tcb));
            TcbId {
                index,
                generation: s.generation,
            }
        } else {
            let index = self.slots.len() as u32;
            self.slots.push(Slot {
                generation: self.gen_base,
                tcb: Some(Box::new(tcb)),
            });
            TcbId {
                index,
                generation: self.gen_base,
            }
        };
        let (slots, secret) = (&self.slots, &self.secret);
        self.conns
            .table
            .insert_unique(hash, id.index, |&i| slot_hash(slots, secret, i));
        id
    }

    pub(crate) fn remove(&mut self, id: TcbId) -> Option<Tcb> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        let tcb = *s.tcb.take()?;
        self.free.push(id.index);
        self.count -= 1;
        let hash = self.secret.table(tcb.local, tcb.remote);
        if let Ok(e) = self.conns.table.find_entry(hash, |&i| i == id.index) {
            e.remove();
        }
        self.shrink();
        Some(tcb)
    }

    /// Gives back what the tables grew to at a peak: the 4-tuple and port
    /// maps, the timer heap and the ready list once they are an eighth full, the slots once no TCB
    /// is left. Each costs O(size) after O(size) removals.
    fn shrink(&mut self) {
        fn sparse(len: usize, cap: usize) -> bool {
            cap > 64 && len < cap / 8
        }
        if sparse(self.conns.len(), self.conns.table.capacity()) {
            let (slots, secret) = (&self.slots, &self.secret);
            let len = self.conns.len();
            self.conns
                .table
                .shrink_to(len * 2, |&i| slot_hash(slots, secret, i));
        }
        if sparse(self.bind_ports.len(), self.bind_ports.capacity()) {
            self.bind_ports.shrink_to(self.bind_ports.len() * 2);
        }
        if sparse(self.timers.len(), self.timers.capacity()) {
            self.timers.shrink_to(self.timers.len() * 2);
        }
        if sparse(self.ready.len(), self.ready.capacity()) {
            self.ready.shrink_to(self.ready.len() * 2);
        }
        if self.count == 0 && !self.slots.is_empty() {
            let top = self.slots.iter().map(|s| s.generation).max().unwrap_or(0);
            self.gen_base = self.gen_base.max(top.wrapping_add(1));
            self.slots = Vec::new();
            self.free = Vec::new();
        }
    }

    /// Every live TCB.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (TcbId, &Tcb)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let tcb = s.tcb.as_deref()?;
            Some((
                TcbId {
                    index: i as u32,
                    generation: s.generation,
                },
                tcb,
            ))
        })
    }

    /// Puts `id` on the ready list if it owes output.
    pub(crate) fn schedule(&mut self, now: Instant, id: TcbId) {
        let Some((t, mut q)) = self.split_mut(id) else {
            return;
        };
        if !q.schedule(id, t) && t.opts.cork {
            // Only corked sockets look further (this runs per segment).
            self.arm_cork(now, id);
        }
    }

    /// Starts TCP_CORK's ceiling if the cork (not the window, cwnd or
    /// Nagle) is what holds data back and no hold is running.
    pub(crate) fn arm_cork(&mut self, now: Instant, id: TcbId) {
        let Some(t) = self.get_mut(id) else { return };
        if t.opts.cork && t.timer.cork.is_none() && t.cork_holds() {
            t.timer.cork = Some(now + CORK_CEILING);
            t.snd.cork_end = t.data_end();
            self.arm(id);
        }
    }

    /// Puts `id` on the ready list whether or not it owes output (its turn
    /// finds out); for a TCB that most likely does.
    pub(crate) fn requeue(&mut self, id: TcbId) {
        if let Some(t) = self.get_mut(id) {
            if !t.owed.in_ready {
                t.owed.in_ready = true;
                self.ready.push_back(id);
            }
        }
    }

    /// Makes sure the heap holds an entry no later than the TCB's deadline.
    pub(crate) fn arm(&mut self, id: TcbId) {
        let Some((t, mut q)) = self.split_mut(id) else {
            return;
        };
        q.arm(id, t);
    }

    /// A TCB and, beside it, the timer heap and ready list: the
    /// per-segment path arms and schedules it without a second lookup.
    pub(crate) fn split_mut(&mut self, id: TcbId) -> Option<(&mut Tcb, Queues<'_>)> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.generation != id.generation {
            return None;
        }
        let t = s.tcb.as_deref_mut()?;
        Some((
            t,
            Queues {
                timers: &mut self.timers,
                ready: &mut self.ready,
            },
        ))
    }

    /// Earliest TCP deadline (may be a stale one: an early wakeup is harmless).
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        if !self.ready.is_empty() || !self.ctl.is_empty() || self.burst.is_some() {
            return Some(Instant::ZERO);
        }
        self.timers.peek().map(|r| r.0 .0)
    }

    pub(crate) fn port_use(&mut self, port: u16) -> &mut PortUse {
        self.bind_ports.entry(port).or_default()
    }

    pub(crate) fn port_release_if_empty(&mut self, port: u16) {
        if self.bind_ports.get(&port).is_some_and(PortUse::is_empty) {
            self.bind_ports.remove(&port);
        }
    }
}
impl Tcp {
    /// Checks the TCP tables' invariants and panics with a description if
    /// one is broken. For tests and fuzzing; O(connections).
    #[doc(hidden)]
    pub fn check_invariants(&self, cfg: &TcpConfig) {
        let tcp = self;
        assert_eq!(tcp.conns.len(), tcp.count, "lookup table and slab agree");
        let mut per_port: HashMap<u16, (u32, u32)> = HashMap::new();
        let mut half_open: HashMap<SocketHandle, usize> = HashMap::new();
        for (id, t) in tcp.iter() {
            let ctx = || format!("{} {} -> {}", t.state, t.local, t.remote);
            assert_eq!(tcp.find(t.local, t.remote), Some(id), "{}", ctx());
            assert!(
                t.snd.nxt.diff(t.snd.una) >= 0,
                "SND.UNA <= SND.NXT: {}",
                ctx()
            );
            assert!(
                t.snd.max.diff(t.snd.nxt) >= 0,
                "SND.NXT <= SND.MAX: {}",
                ctx()
            );
            assert!(
                (t.snd.max.diff(t.snd.una) as i64) <= t.snd.q.len() as i64 + 2,
                "in flight fits the send queue: {}",
                ctx()
            );
            assert!(
                (-1..=1).contains(&t.snd.una.diff(t.snd.q_front)),
                "acked data leaves the send queue: {}",
                ctx()
            );
            if let Some(r) = t.cong.rack.as_deref() {
                if let Err(e) = r.check(t.snd.una, t.snd.max) {
                    panic!("RACK log: {e}: {}", ctx());
                }
                assert_eq!(
                    t.cong.rack_timer,
                    r.timer.is_some(),
                    "RACK timer: {}",
                    ctx()
                );
            }
            if let Some(d) = t.deadline() {
                assert!(
                    t.timer.sched.is_some_and(|s| s <= d),
                    "a timer is armed for the deadline: {}",
                    ctx()
                );
            }
            if t.wants_output() {
                assert!(
                    t.owed.in_ready,
                    "output owed is on the ready list: {}",
                    ctx()
                );
            }
            let e = per_port.entry(t.local.port()).or_default();
            match t.port_class {
                PortClass::Live { .. } => e.0 += 1,
                PortClass::TimeWait => e.1 += 1,
            }
            assert_eq!(
                t.port_class == PortClass::TimeWait,
                t.state == State::TimeWait,
                "TIME_WAIT bucket: {}",
                ctx()
            );
            if let Some(l) = t.listener {
                if !t.in_accept_queue {
                    *half_open.entry(l).or_default() += 1;
                }
            }
            if let Some(h) = t.socket {
                match self.socks.get(h) {
                    Some(s) => {
                        assert!(matches!(s.kind, Kind::Conn(x) if x == id), "{}", ctx())
                    }
                    _ => panic!("TCB points at a socket that is not its own: {}", ctx()),
                }
            }
        }
        for (port, pu) in &tcp.bind_ports {
            let (live, tw) = per_port.get(port).copied().unwrap_or_default();
            assert_eq!((pu.live, pu.time_wait), (live, tw), "port {port} counts");
        }
        for (h, s) in self.socks.iter() {
            if !matches!(s.kind, Kind::Conn(_)) {
                assert!(s.own.is_some(), "a socket without a TCB has its options");
            }
            {
                if let Kind::Listen(l) = &s.kind {
                    assert!(l.accept.len() <= l.backlog, "accept queue within backlog");
                    assert_eq!(
                        l.syn_count,
                        half_open.get(&h).copied().unwrap_or(0),
                        "SYN queue count"
                    );
                    assert!(l.syn_count <= cfg.max_syn_backlog);
                }
            }
        }
    }
}
