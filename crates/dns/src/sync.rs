//! The blocking driver: each [`Attempt`] over ustack's UDP (a fresh socket
//! on a random port, RFC 5452 §4.5) or TCP, on a [`Runtime`].

use crate::message::Family;
use crate::resolve::{Answer, Attempt, Error, Resolver, Step, Transport};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use ustack::net::{TcpStream, UdpSocket};
use ustack::Runtime;
use ustack_core::Duration;

/// Datagrams read per attempt at most (spoofed or stray ones are skipped).
const MAX_READS: usize = 256;

/// Binds a UDP socket on a random port in 1024..=65535, trying a few.
pub(crate) fn random_port_socket(rt: &Runtime) -> io::Result<UdpSocket> {
    for _ in 0..16 {
        let port = 1024 + crate::resolve::random_u16() % (65535 - 1024 + 1);
        match UdpSocket::bind(rt, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    // The ephemeral range is random too.
    UdpSocket::bind(rt, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
}

impl Resolver {
    /// Looks `name` up, blocking; every packet goes through `rt`.
    pub fn lookup(&self, rt: &Runtime, name: &str, family: Family) -> Result<Answer, Error> {
        let (mut res, mut step) = self.start(name, family, rt.now());
        // Each attempt either ends or moves on; bound them all the same.
        for _ in 0..1024 {
            let att = match step {
                Step::Done(r) => return r,
                Step::Send(att) => att,
            };
            step = match exchange(rt, &att) {
                Exchange::Replies(replies) => {
                    let mut next = None;
                    for (from, bytes) in replies {
                        if let Some(s) = res.on_reply(self, from, &bytes, rt.now()) {
                            next = Some(s);
                            break;
                        }
                    }
                    next.unwrap_or_else(|| res.on_timeout(self, rt.now()))
                }
                Exchange::Waiting(sock) => wait_udp(self, rt, &mut res, &att, &sock),
                Exchange::Failed => res.on_error(self, rt.now()),
            };
        }
        Err(Error::NoServers)
    }

    /// The IPv4 addresses of `name`.
    pub fn lookup_ipv4(&self, rt: &Runtime, name: &str) -> Result<Vec<Ipv4Addr>, Error> {
        let a = self.lookup(rt, name, Family::V4)?;
        Ok(a.addrs
            .into_iter()
            .filter_map(|ip| match ip {
                std::net::IpAddr::V4(v4) => Some(v4),
                std::net::IpAddr::V6(_) => None,
            })
            .collect())
    }
}

enum Exchange {
    /// A UDP query is out; wait on this socket.
    Waiting(UdpSocket),
    /// TCP's one reply.
    Replies(Vec<(SocketAddr, Vec<u8>)>),
    Failed,
}

fn exchange(rt: &Runtime, att: &Attempt) -> Exchange {
    let SocketAddr::V4(server) = att.server else {
        // ustack is IPv4 only for now: an IPv6 server is a silent one.
        return Exchange::Failed;
    };
    match att.transport {
        Transport::Udp => {
            let Ok(sock) = random_port_socket(rt) else {
                return Exchange::Failed;
            };
            match sock.send_to(&att.message, server) {
                Ok(_) => Exchange::Waiting(sock),
                Err(_) => Exchange::Failed,
            }
        }
        Transport::Tcp => match tcp_query(rt, server, &att.message, att.timeout) {
            Ok(reply) => Exchange::Replies(vec![(att.server, reply)]),
            Err(_) => Exchange::Failed,
        },
    }
}

/// RFC 1035 §4.2.2: a two-byte length, then the message, each way.
fn tcp_query(
    rt: &Runtime,
    server: SocketAddrV4,
    msg: &[u8],
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let start = rt.now();
    let mut s = TcpStream::connect_timeout(rt, &SocketAddr::V4(server), timeout)?;
    let left = timeout
        .checked_sub(rt.now().saturating_duration_since(start))
        .filter(|d| !d.is_zero())
        .ok_or(io::ErrorKind::TimedOut)?;
    s.set_read_timeout(Some(left))?;
    s.set_write_timeout(Some(left))?;
    let len = u16::try_from(msg.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    s.write_all(&framed)?;
    let mut l = [0u8; 2];
    s.read_exact(&mut l)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(l))];
    s.read_exact(&mut reply)?;
    Ok(reply)
}

/// Reads datagrams until one answers the question or the time is up.
fn wait_udp(
    r: &Resolver,
    rt: &Runtime,
    res: &mut crate::resolve::Resolution,
    att: &Attempt,
    sock: &UdpSocket,
) -> Step {
    let deadline = rt.now() + att.timeout;
    let mut buf = vec![0u8; 65535];
    for _ in 0..MAX_READS {
        let now = rt.now();
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            break;
        }
        if sock
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .is_err()
        {
            break;
        }
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Some(step) = res.on_reply(r, from, &buf[..n], rt.now()) {
                    return step;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return res.on_error(r, rt.now()),
        }
    }
    res.on_timeout(r, rt.now())
}
