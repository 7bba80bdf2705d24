//! The bulk transfer on ustack: the same in-memory [`Wire`], the same
//! application loop as the smoltcp half, and a lossy variant on the
//! devices crate's simulator (virtual time).

use crate::{BulkOptions, BulkResult, Source, Wire};
use std::net::SocketAddrV4;
use std::sync::Arc;
use ustack_core::wire::{ChecksumCaps, Ipv4Addr, Ipv4Cidr};
use ustack_core::{
    Congestion, Duration, Errno, Instant, Medium, RxMeta, SocketHandle, Stack, StackConfig,
    TcpState,
};
use ustack_devices::{Impairments, MemLink, Sim};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PORT: u16 = 5001;

fn config(addr: Ipv4Addr, seed: u64, mtu: usize, offload: bool) -> StackConfig {
    let caps = if offload {
        ChecksumCaps::OFFLOAD
    } else {
        ChecksumCaps::SOFTWARE
    };
    StackConfig::new(Medium::Ip, Ipv4Cidr::new(addr, 24))
        .with_seed(seed)
        .with_mtu(mtu)
        .with_checksums(caps)
}

/// A listener on the server and a connecting client socket with `buf`-byte
/// buffers (set before the handshake, so the window scale fits them).
fn open_pair(
    client: &mut Stack,
    server: &mut Stack,
    now: Instant,
    buf: usize,
) -> Result<(SocketHandle, SocketHandle), String> {
    let l = server.tcp_open();
    server
        .tcp_set_buffers(l, Some(buf), Some(buf))
        .map_err(|e| format!("server buffers: {e}"))?;
    server
        .tcp_bind(l, SocketAddrV4::new(SERVER, PORT))
        .map_err(|e| format!("bind: {e}"))?;
    server
        .tcp_listen(l, 4)
        .map_err(|e| format!("listen: {e}"))?;
    let c = client.tcp_open();
    client
        .tcp_set_buffers(c, Some(buf), Some(buf))
        .map_err(|e| format!("client buffers: {e}"))?;
    match client.tcp_connect(now, c, SocketAddrV4::new(SERVER, PORT)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok((l, c)),
        Err(e) => Err(format!("connect: {e}")),
    }
}

/// Hands every frame waiting on direction `1 - i` to stack `i` (one
/// burst, as a device loop hands it what one poll read; `rx` is room for
/// them), then puts everything stack `i` owes on direction `i`.
fn exchange(
    stack: &mut Stack,
    wire: &mut Wire,
    rx: &mut Vec<Vec<u8>>,
    i: usize,
    now: Instant,
    mtu: usize,
) {
    while let Some(f) = wire.pop(1 - i) {
        rx.push(f);
    }
    stack.receive_burst(now, rx.iter().map(|f| (&f[..], RxMeta::default())));
    for f in rx.drain(..) {
        wire.recycle(f);
    }
    transmit_all(stack, wire, i, now, mtu);
}

/// Frames one `transmit_burst` call may write.
const TX_BATCH: usize = 32;

/// Everything `stack` owes onto direction `i`, a batch of the wire's
/// buffers at a time (`Stack::transmit_burst`, as a device's transmit
/// ring would lend them).
fn transmit_all(stack: &mut Stack, wire: &mut Wire, i: usize, now: Instant, mtu: usize) {
    let mut bufs: [Vec<u8>; TX_BATCH] = std::array::from_fn(|_| wire.buffer(mtu));
    let mut lens = [0usize; TX_BATCH];
    loop {
        let n = stack.transmit_burst(now, &mut bufs, &mut lens);
        for (b, &len) in bufs.iter_mut().zip(&lens).take(n) {
            let mut f = std::mem::replace(b, wire.buffer(mtu));
            f.truncate(len);
            wire.push(i, f);
        }
        if n < TX_BATCH {
            break;
        }
    }
    for b in bufs {
        wire.recycle(b);
    }
}

/// Runs one transfer client (10.0.0.1) → server (10.0.0.2) on the lossless
/// wire, the clock being real elapsed time.
pub fn run(opts: &BulkOptions) -> Result<BulkResult, String> {
    let epoch = std::time::Instant::now();
    let clock = || Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let mut stacks = [
        Stack::new(config(CLIENT, 1, opts.mtu, opts.offload)).map_err(|e| e.to_string())?,
        Stack::new(config(SERVER, 2, opts.mtu, opts.offload)).map_err(|e| e.to_string())?,
    ];
    let mut wire = Wire::default();
    let mut rx = Vec::new();
    let (client_stack, server_stack) = stacks.split_at_mut(1);
    let (listener, client) = open_pair(
        &mut client_stack[0],
        &mut server_stack[0],
        clock(),
        opts.buf,
    )?;

    let src = Source::new(opts.chunk);
    let mut sink = vec![0u8; opts.chunk];
    let (mut sent, mut received) = (0u64, 0u64);
    let mut server: Option<SocketHandle> = None;
    let start = std::time::Instant::now();
    let deadline = start + opts.timeout;
    while received < opts.bytes {
        let now = clock();
        for (i, stack) in stacks.iter_mut().enumerate() {
            exchange(stack, &mut wire, &mut rx, i, now, opts.mtu);
        }
        let c = &mut stacks[0];
        while sent < opts.bytes {
            let chunk = src.chunk(sent, opts.bytes - sent);
            match c.tcp_send(now, client, chunk) {
                Ok(n) => sent += n as u64,
                Err(Errno::EAGAIN) => break,
                Err(e) => return Err(format!("send: {e}")),
            }
        }
        let s = &mut stacks[1];
        if server.is_none() {
            server = s.tcp_accept(listener).ok().map(|(h, _)| h);
        }
        if let Some(h) = server {
            loop {
                match s.tcp_recv(h, &mut sink) {
                    Ok(0) => return Err(format!("ustack: early EOF at {received}")),
                    Ok(n) => {
                        if !src.verify(&sink[..n], received) {
                            return Err(format!(
                                "ustack delivered wrong bytes at offset {received}"
                            ));
                        }
                        received += n as u64;
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(e) => return Err(format!("recv: {e}")),
                }
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "ustack transfer stalled: {received} of {} bytes",
                opts.bytes
            ));
        }
    }
    let frames = wire.frames;
    Ok(BulkResult {
        bytes: received,
        secs: start.elapsed().as_secs_f64(),
        frames,
    })
}

/// A transfer over an impaired link on virtual time.
#[derive(Debug, Clone)]
pub struct LossyOptions {
    pub bytes: u64,
    pub mtu: usize,
    pub buf: usize,
    pub chunk: usize,
    /// Loss probability, each direction.
    pub loss: f64,
    /// One-way delay.
    pub delay: Duration,
    pub congestion: Congestion,
    pub seed: u64,
    /// Virtual time after which the run is declared stalled.
    pub limit: Duration,
    /// A bottleneck: serialization rate each way, and its queue in frames
    /// (0: the link's default); `None`: no bottleneck.
    pub bandwidth_bps: Option<u64>,
    pub queue_limit: usize,
}

#[derive(Debug, Clone)]
pub struct LossyResult {
    pub bytes: u64,
    /// Virtual time from connect to the last byte read.
    pub virtual_secs: f64,
    pub wall_secs: f64,
    pub frames_sent: u64,
    pub frames_lost: u64,
    pub retrans_segs: u64,
    pub timeouts: u64,
    pub fast_retrans: u64,
    /// Out-of-order segments the receiver queued.
    pub ofo_queued: u64,
    /// Frames the bottleneck's queue dropped.
    pub queue_drops: u64,
    /// The sender's smoothed RTT, mean over the transfer (sampled every
    /// millisecond of virtual time), and the least seen.
    pub mean_srtt: Duration,
    pub min_srtt: Duration,
}

impl LossyResult {
    /// Goodput in Mbit/s of virtual time.
    pub fn mbps(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.virtual_secs / 1e6
    }
}

/// Client → server over a [`MemLink`] with `loss` and `delay` each way,
/// driven by [`Sim`] on its virtual clock; every byte verified on arrival.
pub fn run_lossy(opts: &LossyOptions) -> Result<LossyResult, String> {
    let wall = std::time::Instant::now();
    let mut link = MemLink::new(opts.seed);
    let mut imp = Impairments::none()
        .with_loss(opts.loss)
        .with_delay(opts.delay)
        .with_queue_limit(opts.queue_limit);
    if let Some(bps) = opts.bandwidth_bps {
        imp = imp.with_bandwidth(bps);
    }
    link.set_impairments(imp);
    let mut sim = Sim::new(link);
    for (addr, seed) in [(CLIENT, opts.seed), (SERVER, opts.seed + 1)] {
        let mut cfg = config(addr, seed, opts.mtu, false);
        cfg.tcp.congestion = opts.congestion;
        sim.add_host(Stack::new(cfg).map_err(|e| e.to_string())?);
    }
    let now = sim.now();
    let (a, b) = sim.hosts.split_at_mut(1);
    let (listener, client) = open_pair(&mut a[0], &mut b[0], now, opts.buf)?;
    sim.hosts[0]
        .tcp_set_congestion(client, opts.congestion)
        .map_err(|e| format!("congestion: {e}"))?;

    let src = Source::new(opts.chunk);
    let mut sink = vec![0u8; opts.chunk];
    let (mut sent, mut received) = (0u64, 0u64);
    let mut server: Option<SocketHandle> = None;
    let mut error: Option<String> = None;
    let start = sim.now();
    let end = start + opts.limit;
    let (mut srtt_sum, mut srtt_n, mut srtt_min) = (0u128, 0u128, Duration::MAX);
    let mut next_sample = start;
    let done = sim.run_until(end, |s| {
        let now = s.now();
        let c = &mut s.hosts[0];
        if now >= next_sample {
            next_sample = now + Duration::from_millis(1);
            if let Ok(i) = c.tcp_info(client) {
                if !i.rtt.is_zero() {
                    srtt_sum += i.rtt.as_micros();
                    srtt_n += 1;
                    srtt_min = srtt_min.min(i.rtt);
                }
            }
        }
        if c.tcp_state(client) == Ok(TcpState::Established) {
            while sent < opts.bytes {
                match c.tcp_send(now, client, src.chunk(sent, opts.bytes - sent)) {
                    Ok(n) => sent += n as u64,
                    Err(Errno::EAGAIN) => break,
                    Err(e) => {
                        error = Some(format!("send: {e}"));
                        return true;
                    }
                }
            }
        }
        let srv = &mut s.hosts[1];
        if server.is_none() {
            server = srv.tcp_accept(listener).ok().map(|(h, _)| h);
        }
        if let Some(h) = server {
            loop {
                match srv.tcp_recv(h, &mut sink) {
                    Ok(0) => {
                        error = Some(format!("early EOF at {received}"));
                        return true;
                    }
                    Ok(n) => {
                        if !src.verify(&sink[..n], received) {
                            error = Some(format!("wrong bytes at offset {received}"));
                            return true;
                        }
                        received += n as u64;
                    }
                    Err(Errno::EAGAIN) => break,
                    Err(e) => {
                        error = Some(format!("recv: {e}"));
                        return true;
                    }
                }
            }
        }
        received >= opts.bytes
    });
    if let Some(e) = error {
        return Err(format!("ustack lossy transfer: {e}"));
    }
    if !done {
        return Err(format!(
            "ustack lossy transfer stalled: {received} of {} bytes after {:?} virtual",
            opts.bytes,
            sim.now() - start
        ));
    }
    let stats = sim.link.stats();
    let tcp = sim.hosts[0].counters().tcp;
    Ok(LossyResult {
        bytes: received,
        virtual_secs: (sim.now() - start).as_secs_f64(),
        wall_secs: wall.elapsed().as_secs_f64(),
        frames_sent: stats.sent,
        frames_lost: stats.dropped_loss,
        retrans_segs: tcp.retrans_segs,
        timeouts: tcp.timeouts,
        fast_retrans: tcp.fast_retrans,
        ofo_queued: sim.hosts[1].counters().tcp.ofo_queued,
        queue_drops: stats.dropped_queue,
        mean_srtt: Duration::from_micros((srtt_sum / srtt_n.max(1)) as u64),
        min_srtt: if srtt_n > 0 { srtt_min } else { Duration::ZERO },
    })
}

/// Sends (and recvs) kept in flight by the zero-copy transfer.
const ZC_DEPTH: usize = 8;

/// The same transfer as [`run`] through the completion API
/// (`ustack::proactor::Engine`) with zero copies: the client lends
/// `chunk`-byte buffers (segments read from them until ACKed, then they
/// come back and go out again), the server posts `chunk`-byte receive
/// buffers that payload lands in straight from the frames.
pub fn run_zerocopy(opts: &BulkOptions) -> Result<BulkResult, String> {
    use ustack::proactor::{CqeBuf, Engine, Op, Sqe};
    let epoch = std::time::Instant::now();
    let clock = || Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let mut stacks = [
        Stack::new(config(CLIENT, 1, opts.mtu, opts.offload)).map_err(|e| e.to_string())?,
        Stack::new(config(SERVER, 2, opts.mtu, opts.offload)).map_err(|e| e.to_string())?,
    ];
    let mut wire = Wire::default();
    let mut rx = Vec::new();
    let (client_stack, server_stack) = stacks.split_at_mut(1);
    let (listener, client) = open_pair(
        &mut client_stack[0],
        &mut server_stack[0],
        clock(),
        opts.buf,
    )?;
    let src = Source::new(opts.chunk);
    let (mut ce, mut se) = (Engine::new(4 * ZC_DEPTH), Engine::new(4 * ZC_DEPTH));
    let depth = std::env::var("TCP_BULK_ZC_DEPTH")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(ZC_DEPTH);
    // What the client lends: the pattern at a multiple of `chunk`, one
    // shared buffer (as the copy API's sends read the one pattern), and
    // the tail of the stream if it ends mid-chunk.
    let whole: Arc<[u8]> = Arc::from(src.chunk(0, opts.chunk as u64));
    let tail = (opts.bytes % opts.chunk as u64) as usize;
    let mut lent = 0usize;
    let mut recv_bufs: Vec<Vec<u8>> = (0..depth).map(|_| vec![0u8; opts.chunk]).collect();
    let (mut sent, mut received) = (0u64, 0u64);
    let mut server: Option<SocketHandle> = None;
    let mut next_ud = 0u64;
    let start = std::time::Instant::now();
    let deadline = start + opts.timeout;
    se.submit(
        &mut stacks[1],
        clock(),
        Sqe::new(u64::MAX, Op::Accept { sock: listener }),
    )
    .map_err(|(e, _)| format!("accept: {e}"))?;
    while received < opts.bytes {
        let now = clock();
        for (i, stack) in stacks.iter_mut().enumerate() {
            exchange(stack, &mut wire, &mut rx, i, now, opts.mtu);
        }
        // Client: reap the buffers ACKed, lend them again.
        let c = &mut stacks[0];
        ce.progress(c, now);
        while let Some(cqe) = ce.reap() {
            cqe.result.map_err(|e| format!("zero-copy send: {e}"))?;
            lent -= 1;
        }
        while sent < opts.bytes && lent < depth && ce.has_room() {
            let n = (opts.bytes - sent).min(opts.chunk as u64) as usize;
            let buf: Box<dyn ustack_core::SendBuf> = if n == opts.chunk {
                Box::new(whole.clone())
            } else {
                Box::new(whole[..tail].to_vec())
            };
            next_ud += 1;
            ce.submit(c, now, Sqe::new(next_ud, Op::Send { sock: client, buf }))
                .map_err(|(e, _)| format!("send: {e}"))?;
            lent += 1;
            sent += n as u64;
        }
        // Server: completed recvs are checked and posted again.
        let s = &mut stacks[1];
        se.progress(s, now);
        while let Some(mut cqe) = se.reap() {
            if cqe.user_data == u64::MAX {
                let h = cqe.accepted.ok_or("accept failed")?;
                server = Some(h);
                continue;
            }
            let n = cqe.result.map_err(|e| format!("recv: {e}"))?;
            if n == 0 {
                return Err(format!("ustack zerocopy: early EOF at {received}"));
            }
            let CqeBuf::Recv(b) = std::mem::replace(&mut cqe.buf, CqeBuf::None) else {
                return Err("recv without its buffer".into());
            };
            if !src.verify(&b[..n], received) {
                return Err(format!(
                    "ustack zerocopy delivered wrong bytes at offset {received}"
                ));
            }
            received += n as u64;
            recv_bufs.push(b);
        }
        if let Some(h) = server {
            while se.has_room() {
                let Some(b) = recv_bufs.pop() else { break };
                let op = Op::Recv {
                    sock: h,
                    buf: b,
                    waitall: true,
                };
                next_ud += 1;
                se.submit(s, now, Sqe::new(next_ud, op))
                    .map_err(|(e, _)| format!("recv: {e}"))?;
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "ustack zerocopy transfer stalled: {received} of {} bytes",
                opts.bytes
            ));
        }
    }
    if std::env::var_os("TCP_BULK_COUNTERS").is_some() {
        let (c, s) = (stacks[0].counters().tcp, stacks[1].counters().tcp);
        eprintln!(
            "zerocopy: {} bytes lent, {} received straight into posted buffers",
            c.tx_zc_bytes, s.rx_direct_bytes
        );
    }
    Ok(BulkResult {
        bytes: received,
        secs: start.elapsed().as_secs_f64(),
        frames: wire.frames,
    })
}
