//! A blocking KCP endpoint over a ustack UDP socket: the datagrams of one
//! peer go to [`Kcp::input`], and [`Kcp::update`] runs at the times
//! [`Kcp::check`] asks for, on the runtime's clock.

use crate::proto::{Config, Kcp, RecvError};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use ustack::net::UdpSocket;
use ustack::Runtime;
use ustack_core::Instant;

/// Datagrams read per step at most, so a flood cannot starve the timers.
const MAX_BATCH: usize = 256;

/// Counts of what arrived but was not KCP for this conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ignored {
    /// From another address than the peer.
    pub stray: u64,
    /// Rejected by [`Kcp::input`] (wrong conv, malformed).
    pub malformed: u64,
}

/// KCP with one peer over ustack's UDP.
#[derive(Debug)]
pub struct KcpSocket {
    rt: Runtime,
    sock: UdpSocket,
    peer: SocketAddr,
    kcp: Kcp,
    epoch: Instant,
    buf: Vec<u8>,
    ignored: Ignored,
}

impl KcpSocket {
    /// Binds `local` on `rt` and talks conversation `conv` with `peer`.
    pub fn bind(
        rt: &Runtime,
        local: impl ToSocketAddrs,
        peer: SocketAddr,
        conv: u32,
        cfg: Config,
    ) -> io::Result<KcpSocket> {
        let sock = UdpSocket::bind(rt, local)?;
        Ok(KcpSocket {
            rt: rt.clone(),
            sock,
            peer,
            kcp: Kcp::new(conv, cfg),
            epoch: rt.now(),
            buf: vec![0u8; 65536],
            ignored: Ignored::default(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    pub fn kcp(&self) -> &Kcp {
        &self.kcp
    }

    pub fn ignored(&self) -> Ignored {
        self.ignored
    }

    fn now_ms(&self) -> u32 {
        self.rt
            .now()
            .saturating_duration_since(self.epoch)
            .as_millis() as u32
    }

    fn update(&mut self) {
        let now = self.now_ms();
        let (sock, peer) = (&self.sock, self.peer);
        // A full device queue drops the datagram: KCP retransmits it.
        self.kcp.update(now, &mut |d| {
            let _ = sock.send_to(d, peer);
        });
    }

    /// Queues a message (or stream bytes) and sends what the windows allow.
    pub fn send(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self
            .kcp
            .send(data)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // Send now rather than at the next interval.
        let now = self.now_ms();
        self.update();
        let (sock, peer) = (&self.sock, self.peer);
        if self.kcp.check(now) != now {
            self.kcp.flush(&mut |d| {
                let _ = sock.send_to(d, peer);
            });
        }
        Ok(n)
    }

    /// Waits up to `wait` (or until KCP's next timer) for datagrams, takes
    /// them, and runs KCP's timers.
    pub fn poll(&mut self, wait: Duration) -> io::Result<()> {
        let now = self.now_ms();
        let due = self.kcp.check(now).wrapping_sub(now);
        let wait = wait.min(Duration::from_millis(u64::from(due)));
        let mut got = 0;
        if !wait.is_zero() {
            self.sock.set_nonblocking(false)?;
            self.sock.set_read_timeout(Some(wait))?;
            match self.sock.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    self.take(n, from);
                    got += 1;
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if got > 0 || wait.is_zero() {
            self.sock.set_nonblocking(true)?;
            for _ in 0..MAX_BATCH {
                match self.sock.recv_from(&mut self.buf) {
                    Ok((n, from)) => self.take(n, from),
                    Err(e) if is_timeout(&e) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        self.update();
        Ok(())
    }

    fn take(&mut self, n: usize, from: SocketAddr) {
        if from != self.peer {
            self.ignored.stray += 1;
            return;
        }
        if self.kcp.input(&self.buf[..n]).is_err() {
            self.ignored.malformed += 1;
        }
    }

    /// Receives the next message into `buf`, waiting up to `timeout`
    /// (TimedOut then). A message larger than `buf` is an error and stays queued.
    pub fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let deadline = self.rt.now() + timeout;
        loop {
            match self.kcp.recv(buf) {
                Ok(n) => {
                    // The window may have reopened: tell the peer soon.
                    self.update();
                    return Ok(n);
                }
                Err(RecvError::BufferTooSmall { need }) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("the next message is {need} bytes, larger than the buffer"),
                    ))
                }
                Err(RecvError::Empty) => {}
            }
            let left = deadline.saturating_duration_since(self.rt.now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            if self.kcp.is_dead() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the peer stopped acknowledging (dead link)",
                ));
            }
            self.poll(left)?;
        }
    }

    /// Runs until everything sent is acknowledged, up to `timeout`.
    pub fn flush(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = self.rt.now() + timeout;
        while self.kcp.wait_snd() > 0 {
            let left = deadline.saturating_duration_since(self.rt.now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            if self.kcp.is_dead() {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the peer stopped acknowledging (dead link)",
                ));
            }
            self.poll(left)?;
        }
        Ok(())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
