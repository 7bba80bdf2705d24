//! `ustack forward`: ustack as the engine of a TUN proxy. The kernel side
//! routes the given prefixes into the TUN; ustack, in transparent mode,
//! terminates every TCP connection and UDP flow whatever its destination
//! (`ustack_tokio::forward`), and relays each to its original destination
//! through a kernel socket, or through a SOCKS5 proxy (RFC 1928: CONNECT,
//! and UDP ASSOCIATE for UDP).
//!
//! - Connect-before-accept: the client's SYN is answered only once the
//!   destination accepted; a refused (or unreachable) destination is a RST
//!   to the client, not an accepted connection that dies.
//! - Half-close both ways: EOF on one side is `shutdown(SHUT_WR)` on the
//!   other (`copy_bidirectional`); the relay ends when both directions have.
//! - A reset on one side resets the other (SO_LINGER 0, then close).
//! - UDP flows (client, destination) end after `--udp-timeout` idle.
//! - Pings to routed addresses are answered by ustack (`--no-echo`: not).
//! - `--mark N` sets SO_MARK on every relay socket, for policy routing
//!   when the TUN's routes are in the namespace the relay runs in: put
//!   them in a table of their own (`ip route add 0.0.0.0/0 dev TUN table
//!   100`) and keep marked traffic out of it (`ip rule add not fwmark N
//!   lookup 100`), so the relay's own packets do not loop into the TUN.
//!   `--netns` avoids that: the TUN's kernel side lives in another
//!   namespace.
//!
//! One thread: a current-thread tokio runtime that also drives the stack.

use crate::serve::Signals;
use crate::stats;
use crate::{fail, seconds};
use socket2::{Domain, SockRef, Socket, Type};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ustack::Runtime;
use ustack_core::wire::Ipv4Cidr;
use ustack_tokio::forward::{ForwardOptions, PendingTcp, TcpForwarder, UdpForwarder};

/// How `forward` relays.
#[derive(Debug, Clone)]
pub struct Config {
    pub socks5: Option<SocketAddr>,
    pub mark: Option<u32>,
    pub udp_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_connections: usize,
    pub stats: bool,
}

/// The relayed flows, for `--stats`.
#[derive(Default)]
struct Flows {
    next: u64,
    open: HashMap<u64, (&'static str, SocketAddr, SocketAddr, Instant)>,
    tcp_done: u64,
    tcp_refused: u64,
    tcp_reset: u64,
    udp_done: u64,
    bytes_up: u64,
    bytes_down: u64,
}

type Shared = Arc<Mutex<Flows>>;

/// A flow in the table while it lives.
struct FlowGuard(Shared, u64);

impl FlowGuard {
    fn new(f: &Shared, proto: &'static str, src: SocketAddr, dst: SocketAddr) -> FlowGuard {
        let mut t = f.lock().unwrap();
        t.next += 1;
        let id = t.next;
        t.open.insert(id, (proto, src, dst, Instant::now()));
        FlowGuard(f.clone(), id)
    }
}

impl Drop for FlowGuard {
    fn drop(&mut self) {
        if let Ok(mut t) = self.0.lock() {
            if let Some((proto, ..)) = t.open.remove(&self.1) {
                if proto == "udp" {
                    t.udp_done += 1;
                } else {
                    t.tcp_done += 1;
                }
            }
        }
    }
}

fn render_flows(f: &Shared) -> String {
    let t = f.lock().unwrap();
    let mut s = format!(
        "relayed: tcp {} done, {} refused, {} reset; udp {} flows ended; {} bytes up, {} bytes down\n",
        t.tcp_done, t.tcp_refused, t.tcp_reset, t.udp_done, t.bytes_up, t.bytes_down
    );
    s += &format!("open flows: {}\n", t.open.len());
    let mut rows: Vec<_> = t.open.values().collect();
    rows.sort_by_key(|r| r.3);
    for (proto, src, dst, since) in rows.iter().take(1000) {
        s += &format!(
            "  {proto} {src} -> {dst} for {:.1} s\n",
            since.elapsed().as_secs_f64()
        );
    }
    s
}

/// Runs the relay until told to stop.
pub fn run(rt: &Runtime, cfg: Config, signals: &Signals) -> Result<(), String> {
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    tokio_rt.block_on(main_loop(rt, cfg, signals))
}

async fn main_loop(rt: &Runtime, cfg: Config, signals: &Signals) -> Result<(), String> {
    if rt.mode() == ustack::Mode::External {
        let driver = rt.clone();
        tokio::spawn(async move {
            if let Err(e) = ustack_tokio::drive(driver).await {
                eprintln!("ustack: the stack's driver stopped: {e}");
            }
        });
    }
    let opts = ForwardOptions {
        max_conns: cfg.max_connections,
        ..ForwardOptions::default()
    };
    let tcp = TcpForwarder::bind(rt, opts).map_err(|e| format!("cannot take TCP: {e}"))?;
    let udp = Arc::new(UdpForwarder::bind(rt).map_err(|e| format!("cannot take UDP: {e}"))?);
    let flows: Shared = Arc::default();
    let cfg = Arc::new(cfg);
    tokio::spawn(udp_loop(udp, cfg.clone(), flows.clone()));
    eprintln!(
        "ustack: forwarding TCP and UDP {}",
        match cfg.socks5 {
            Some(p) => format!("through the SOCKS5 proxy {p}"),
            None => "directly".to_string(),
        }
    );
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !signals.should_stop() {
        tokio::select! {
            r = tcp.next() => match r {
                Ok(p) => {
                    tokio::spawn(relay_tcp(p, cfg.clone(), flows.clone()));
                }
                Err(e) => eprintln!("ustack: forward: {e}"),
            },
            _ = tick.tick() => {
                if cfg.stats && signals.take_usr1() {
                    print_all(rt, &flows);
                }
            }
        }
    }
    if cfg.stats {
        print_all(rt, &flows);
    }
    Ok(())
}

fn print_all(rt: &Runtime, flows: &Shared) {
    use std::io::Write;
    let mut out = io::stdout().lock();
    let _ = out.write_all(render_flows(flows).as_bytes());
    let _ = out.write_all(stats::render(rt).as_bytes());
    let _ = out.flush();
}

/// A kernel socket with SO_MARK, if asked.
fn socket(ty: Type, mark: Option<u32>) -> io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, ty, None)?;
    if let Some(m) = mark {
        s.set_mark(m)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

async fn connect_kernel(to: SocketAddr, mark: Option<u32>) -> io::Result<tokio::net::TcpStream> {
    let s = socket(Type::STREAM, mark)?;
    let s = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(s));
    s.connect(to).await
}

/// RFC 1928 §3-§6: no authentication, then `cmd` for `addr`; returns the
/// bound address of the reply. A refusal is `ConnectionRefused`.
async fn socks5_request(
    s: &mut tokio::net::TcpStream,
    cmd: u8,
    addr: SocketAddr,
) -> io::Result<SocketAddr> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("SOCKS5: {what}"));
    s.write_all(&[5, 1, 0]).await?;
    let mut m = [0u8; 2];
    s.read_exact(&mut m).await?;
    if m != [5, 0] {
        return Err(bad(
            "the proxy wants authentication (only none is supported)",
        ));
    }
    let IpAddr::V4(ip) = addr.ip() else {
        return Err(bad("IPv4 only"));
    };
    let mut req = vec![5, cmd, 0, 1];
    req.extend_from_slice(&ip.octets());
    req.extend_from_slice(&addr.port().to_be_bytes());
    s.write_all(&req).await?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    if head[0] != 5 {
        return Err(bad("not a SOCKS5 reply"));
    }
    // REP 5: connection refused; anything else that is not 0 is a failure.
    match head[1] {
        0 => {}
        5 => return Err(io::ErrorKind::ConnectionRefused.into()),
        3 | 4 => return Err(io::ErrorKind::HostUnreachable.into()),
        r => return Err(bad(&format!("request failed (reply {r})"))),
    }
    let bound = match head[3] {
        1 => {
            let mut a = [0u8; 6];
            s.read_exact(&mut a).await?;
            SocketAddr::from((
                Ipv4Addr::new(a[0], a[1], a[2], a[3]),
                u16::from_be_bytes([a[4], a[5]]),
            ))
        }
        4 => {
            let mut a = [0u8; 18];
            s.read_exact(&mut a).await?;
            SocketAddr::from(([0u8; 4], u16::from_be_bytes([a[16], a[17]])))
        }
        3 => {
            let mut n = [0u8; 1];
            s.read_exact(&mut n).await?;
            let mut a = vec![0u8; n[0] as usize + 2];
            s.read_exact(&mut a).await?;
            let l = a.len();
            SocketAddr::from(([0u8; 4], u16::from_be_bytes([a[l - 2], a[l - 1]])))
        }
        _ => return Err(bad("bad address type in the reply")),
    };
    Ok(bound)
}

/// The connection out, to `dst` or through the proxy.
async fn connect_out(dst: SocketAddr, cfg: &Config) -> io::Result<tokio::net::TcpStream> {
    match cfg.socks5 {
        None => connect_kernel(dst, cfg.mark).await,
        Some(proxy) => {
            let mut s = connect_kernel(proxy, cfg.mark).await?;
            socks5_request(&mut s, 1, dst).await?;
            Ok(s)
        }
    }
}

async fn relay_tcp(p: PendingTcp, cfg: Arc<Config>, flows: Shared) {
    let (src, dst) = (p.src(), p.dst());
    let out = tokio::time::timeout(cfg.connect_timeout, connect_out(dst, &cfg)).await;
    let mut out = match out {
        Ok(Ok(s)) => s,
        _ => {
            // Refused, unreachable or no answer: the client gets a RST.
            flows.lock().unwrap().tcp_refused += 1;
            p.refuse();
            return;
        }
    };
    let Ok(mut conn) = p.accept().await else {
        return; // the client went away
    };
    let _ = out.set_nodelay(true);
    let _ = conn.set_nodelay(true);
    let guard = FlowGuard::new(&flows, "tcp", src, dst);
    match tokio::io::copy_bidirectional(&mut conn, &mut out).await {
        Ok((up, down)) => {
            let mut t = flows.lock().unwrap();
            t.bytes_up += up;
            t.bytes_down += down;
        }
        Err(_) => {
            // A reset (or another error) on one side: reset both.
            flows.lock().unwrap().tcp_reset += 1;
            let _ = SockRef::from(&out).set_linger(Some(Duration::ZERO));
            let _ = conn.set_linger(Some(Duration::ZERO));
        }
    }
    drop(guard);
}

/// One UDP flow's way out.
struct UdpFlow {
    sock: Arc<tokio::net::UdpSocket>,
    /// SOCKS5 UDP ASSOCIATE: the header to put before each datagram.
    socks_header: Option<Vec<u8>>,
    last: Arc<AtomicU64>,
}

/// The UDP flows by (client, destination).
type UdpTable = Arc<Mutex<HashMap<(SocketAddr, SocketAddr), Arc<UdpFlow>>>>;

fn ms_since(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

async fn udp_loop(fwd: Arc<UdpForwarder>, cfg: Arc<Config>, flows: Shared) {
    let t0 = Instant::now();
    let table: UdpTable = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, src, dst)) = fwd.recv_from_to(&mut buf).await else {
            continue;
        };
        let existing = table.lock().unwrap().get(&(src, dst)).cloned();
        let flow = match existing {
            Some(f) => f,
            None => match open_udp_flow(&fwd, &cfg, &flows, &table, src, dst, t0).await {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("ustack: udp {src} -> {dst}: {e}");
                    continue;
                }
            },
        };
        flow.last.store(ms_since(t0), Ordering::Relaxed);
        let r = match &flow.socks_header {
            None => flow.sock.send(&buf[..n]).await,
            Some(h) => {
                let mut d = h.clone();
                d.extend_from_slice(&buf[..n]);
                flow.sock.send(&d).await
            }
        };
        if r.is_ok() {
            flows.lock().unwrap().bytes_up += n as u64;
        }
    }
}

async fn open_udp_flow(
    fwd: &Arc<UdpForwarder>,
    cfg: &Arc<Config>,
    flows: &Shared,
    table: &UdpTable,
    src: SocketAddr,
    dst: SocketAddr,
    t0: Instant,
) -> io::Result<Arc<UdpFlow>> {
    let s = socket(Type::DGRAM, cfg.mark)?;
    s.bind(&SocketAddr::from(([0u8; 4], 0)).into())?;
    let sock = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(s))?;
    let (control, socks_header) = match cfg.socks5 {
        None => {
            sock.connect(dst).await?;
            (None, None)
        }
        Some(proxy) => {
            let mut c = connect_kernel(proxy, cfg.mark).await?;
            let mut relay = socks5_request(&mut c, 3, SocketAddr::from(([0u8; 4], 0))).await?;
            if relay.ip().is_unspecified() {
                relay.set_ip(proxy.ip());
            }
            sock.connect(relay).await?;
            let IpAddr::V4(ip) = dst.ip() else {
                return Err(io::ErrorKind::InvalidInput.into());
            };
            // RFC 1928 §7: RSV RSV FRAG ATYP DST.ADDR DST.PORT.
            let mut h = vec![0, 0, 0, 1];
            h.extend_from_slice(&ip.octets());
            h.extend_from_slice(&dst.port().to_be_bytes());
            (Some(c), Some(h))
        }
    };
    let flow = Arc::new(UdpFlow {
        sock: Arc::new(sock),
        socks_header,
        last: Arc::new(AtomicU64::new(ms_since(t0))),
    });
    table.lock().unwrap().insert((src, dst), flow.clone());
    let guard = FlowGuard::new(flows, "udp", src, dst);
    let (fwd, flow2, table, flows, idle) = (
        fwd.clone(),
        flow.clone(),
        table.clone(),
        flows.clone(),
        cfg.udp_timeout,
    );
    tokio::spawn(async move {
        let _control = control; // the association lives while this TCP does
        let mut buf = vec![0u8; 65536];
        loop {
            let since = Duration::from_millis(
                ms_since(t0).saturating_sub(flow2.last.load(Ordering::Relaxed)),
            );
            if since >= idle {
                break;
            }
            let r = tokio::time::timeout(idle - since, flow2.sock.recv(&mut buf)).await;
            let Ok(Ok(n)) = r else { continue };
            let data = match &flow2.socks_header {
                None => &buf[..n],
                // The reply's header is as long as ours (IPv4 address).
                Some(h) if n >= h.len() => &buf[h.len()..n],
                Some(_) => continue,
            };
            flow2.last.store(ms_since(t0), Ordering::Relaxed);
            if fwd.send_from_to(data, dst, src).await.is_ok() {
                flows.lock().unwrap().bytes_down += data.len() as u64;
            }
        }
        table.lock().unwrap().remove(&(src, dst));
        drop(guard);
    });
    Ok(flow)
}

// ----- the command -----

/// `ustack forward`'s options.
#[derive(clap::Args, Debug)]
pub struct ForwardArgs {
    /// Prefixes the kernel side routes into the TUN (repeatable).
    #[arg(long, value_name = "CIDR", required = true, num_args = 1..)]
    route: Vec<Ipv4Cidr>,
    /// Relay through this SOCKS5 proxy (CONNECT; UDP ASSOCIATE for UDP).
    #[arg(long, value_name = "HOST:PORT")]
    socks5: Option<std::net::SocketAddr>,
    /// SO_MARK on every relay socket, for policy routing: keep marked
    /// packets out of the TUN's table (`ip rule add not fwmark N lookup 100`).
    #[arg(long, value_name = "N")]
    mark: Option<u32>,
    /// Seconds a UDP flow may stay idle before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, value_parser = seconds)]
    udp_timeout: f64,
    /// Seconds to wait for a destination to accept before refusing the client.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = seconds)]
    connect_timeout: f64,
    /// Connections relayed at once; past it new SYNs are dropped.
    #[arg(long, value_name = "N", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Leave pings to the routed addresses unanswered (by default ustack
    /// answers them itself, from the address pinged).
    #[arg(long)]
    no_echo: bool,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    duration: Option<f64>,
}

/// `ustack forward`: the link in transparent mode, the routes, the relay.
pub fn run_command(link: &crate::link::LinkArgs, a: ForwardArgs, stats: bool) -> ExitCode {
    let Some(tun) = link.tun.clone() else {
        return fail("forward needs --tun NAME (the kernel routes IP packets into it)");
    };
    let signals =
        match crate::serve::Signals::install(a.duration.map(std::time::Duration::from_secs_f64)) {
            Ok(s) => s,
            Err(e) => return fail(format_args!("cannot catch signals: {e}")),
        };
    let rt = match link.start_tweaked("forward", ustack::Mode::External, |mut c| {
        c.transparent = true;
        c.transparent_echo = !a.no_echo;
        c
    }) {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    for r in &a.route {
        let cidr = r.to_string();
        if let Err(e) = link.ip(&["route", "replace", cidr.as_str(), "dev", tun.as_str()]) {
            return fail(format_args!("cannot route {cidr} into {tun}: {e}"));
        }
    }
    let cfg = crate::forward::Config {
        socks5: a.socks5,
        mark: a.mark,
        udp_timeout: std::time::Duration::from_secs_f64(a.udp_timeout.max(0.001)),
        connect_timeout: std::time::Duration::from_secs_f64(a.connect_timeout.max(0.001)),
        max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
        stats,
    };
    match crate::forward::run(&rt, cfg, &signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
