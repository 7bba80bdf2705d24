//! The tokio driver: each [`Attempt`] over ustack-tokio's UDP (a fresh
//! socket on a random port, RFC 5452 §4.5) or TCP (RFC 7766 §5, with the
//! length prefix of RFC 1035 §4.2.2), its time bounded by `tokio::time`.
//! What to ask, what a reply means and the cache stay in
//! [`Resolver`]/[`crate::Resolution`]: this only moves bytes.

use crate::message::Family;
use crate::resolve::{Answer, Attempt, Error, Resolution, Resolver, Step, Transport};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout, timeout_at, Instant as TokioInstant};
use ustack::Runtime;
use ustack_tokio::{TcpStream, UdpSocket};

/// Datagrams read per attempt at most (spoofed or stray ones are skipped).
const MAX_READS: usize = 256;

/// A [`Resolver`] for tokio tasks on a ustack [`Runtime`] (one in
/// `Mode::Thread`, or driven by `ustack_tokio::drive`). Cheap to clone:
/// clones share the settings and the cache.
#[derive(Debug, Clone)]
pub struct AsyncResolver {
    inner: Arc<Resolver>,
    rt: Runtime,
}

impl AsyncResolver {
    /// Looks names up with `resolver`'s settings and cache, through `rt`.
    pub fn new(rt: &Runtime, resolver: Resolver) -> AsyncResolver {
        AsyncResolver::from_shared(rt, Arc::new(resolver))
    }

    /// Shares a resolver (and its cache) with sync callers.
    pub fn from_shared(rt: &Runtime, resolver: Arc<Resolver>) -> AsyncResolver {
        AsyncResolver {
            inner: resolver,
            rt: rt.clone(),
        }
    }

    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.inner
    }

    /// Looks `name` up; each try waits at most the configured timeout.
    /// Dropping the future abandons the lookup (answers already taken in
    /// stay cached).
    pub async fn lookup(&self, name: &str, family: Family) -> Result<Answer, Error> {
        let r = &*self.inner;
        let rt = &self.rt;
        let (mut res, mut step) = r.start(name, family, rt.now());
        // Each attempt either ends or moves on; bound them all the same.
        for _ in 0..1024 {
            let att = match step {
                Step::Done(result) => return result,
                Step::Send(att) => att,
            };
            step = match att.transport {
                Transport::Udp => udp_attempt(r, rt, &mut res, &att).await,
                Transport::Tcp => match tcp_query(rt, &att).await {
                    Ok(reply) => res
                        .on_reply(r, att.server, &reply, rt.now())
                        .unwrap_or_else(|| res.on_timeout(r, rt.now())),
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => res.on_timeout(r, rt.now()),
                    Err(_) => res.on_error(r, rt.now()),
                },
            };
        }
        Err(Error::NoServers)
    }

    /// The IPv4 addresses of `name`.
    pub async fn lookup_ipv4(&self, name: &str) -> Result<Vec<Ipv4Addr>, Error> {
        let a = self.lookup(name, Family::V4).await?;
        Ok(a.addrs
            .into_iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect())
    }
}

/// Binds a UDP socket on a random port in 1024..=65535, trying a few.
async fn random_port_socket(rt: &Runtime) -> io::Result<UdpSocket> {
    for _ in 0..16 {
        let port = 1024 + crate::resolve::random_u16() % (65535 - 1024 + 1);
        match UdpSocket::bind(rt, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    // The ephemeral range is random too.
    UdpSocket::bind(rt, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).await
}

/// Sends the query and reads datagrams until one answers the question in
/// flight or the attempt's time is up.
async fn udp_attempt(r: &Resolver, rt: &Runtime, res: &mut Resolution, att: &Attempt) -> Step {
    let SocketAddr::V4(server) = att.server else {
        // ustack is IPv4 only for now: an IPv6 server is a silent one.
        return res.on_error(r, rt.now());
    };
    let deadline = TokioInstant::now() + att.timeout;
    let Ok(sock) = random_port_socket(rt).await else {
        return res.on_error(r, rt.now());
    };
    match timeout_at(deadline, sock.send_to(&att.message, server)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return res.on_error(r, rt.now()),
        Err(_) => return res.on_timeout(r, rt.now()),
    }
    let mut buf = vec![0u8; 65535];
    for _ in 0..MAX_READS {
        match timeout_at(deadline, sock.recv_from(&mut buf)).await {
            Err(_) => break,
            Ok(Ok((n, from))) => {
                if let Some(step) = res.on_reply(r, from, &buf[..n], rt.now()) {
                    return step;
                }
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            // ICMP port unreachable and the like: that server is silent.
            Ok(Err(_)) => return res.on_error(r, rt.now()),
        }
    }
    res.on_timeout(r, rt.now())
}

/// RFC 1035 §4.2.2: a two-byte length, then the message, each way; the
/// whole exchange within the attempt's timeout.
async fn tcp_query(rt: &Runtime, att: &Attempt) -> io::Result<Vec<u8>> {
    let SocketAddr::V4(server) = att.server else {
        return Err(io::ErrorKind::AddrNotAvailable.into());
    };
    let len = u16::try_from(att.message.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let exchange = async {
        let mut s = TcpStream::connect(rt, server).await?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&att.message);
        s.write_all(&framed).await?;
        let mut l = [0u8; 2];
        s.read_exact(&mut l).await?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(l))];
        s.read_exact(&mut reply).await?;
        Ok(reply)
    };
    timeout(att.timeout, exchange)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}
