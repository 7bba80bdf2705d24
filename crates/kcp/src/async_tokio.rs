//! KCP for tokio tasks over ustack-tokio's UDP: [`KcpSession`]. A driver
//! task owns the socket: it hands the peer's datagrams to [`Kcp::input`]
//! and sleeps (`tokio::time`) until the time [`Kcp::check`] gives, or
//! until a datagram or a `send` comes, then runs [`Kcp::update`]. Nothing
//! polls in a loop. `send`, `recv` and `flush` take `&self`, so one task
//! may send while another receives (share the session in an `Arc`).
//! It is also `AsyncRead`/`AsyncWrite`, for stream mode: use one face or
//! the other for reading, as bytes a short read left are kept for the
//! next `poll_read` only.

use crate::proto::{Config, Kcp, RecvError};
use crate::socket::Ignored;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use ustack::Runtime;
use ustack_core::Instant;
use ustack_tokio::UdpSocket;

#[derive(Debug)]
struct State {
    kcp: Kcp,
    ignored: Ignored,
    /// `send` queued data: flush it now rather than at the next interval.
    flush_now: bool,
    /// Why the driver stopped (the socket failed).
    failed: Option<(io::ErrorKind, String)>,
    /// The task in `poll_read`/`poll_write`/`poll_flush`, woken as the
    /// `Notify`s are.
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// What `poll_read` took from KCP and could not hand over yet.
    leftover: Vec<u8>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// A message arrived, or the session failed.
    readable: Notify,
    /// The send queue shrank, or the session failed.
    writable: Notify,
    /// Wakes the driver (a `send`, or a `recv` that opened the window).
    kick: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// KCP with one peer over ustack-tokio's UDP, in message or stream mode
/// as [`Config::stream`] says. Dropping it stops its driver task (data not
/// yet acknowledged is lost: `flush` first).
#[derive(Debug)]
pub struct KcpSession {
    shared: Arc<Shared>,
    driver: JoinHandle<()>,
    local: SocketAddr,
    /// `send` waits while more segments than this are queued or in flight.
    queue_limit: usize,
}

impl Drop for KcpSession {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn dead() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the peer stopped acknowledging (dead link)",
    )
}

impl State {
    /// The error every call returns once the session cannot go on.
    fn broken(&self) -> Option<io::Error> {
        if let Some((kind, why)) = &self.failed {
            return Some(io::Error::new(*kind, why.clone()));
        }
        self.kcp.is_dead().then(dead)
    }
}

impl KcpSession {
    /// Binds `local` on `rt` and talks conversation `conv` with `peer`;
    /// spawns the driver on the current tokio runtime.
    pub async fn bind(
        rt: &Runtime,
        local: impl ToSocketAddrs,
        peer: SocketAddr,
        conv: u32,
        cfg: Config,
    ) -> io::Result<KcpSession> {
        let sock = UdpSocket::bind(rt, local).await?;
        let local = sock.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                kcp: Kcp::new(conv, cfg),
                ignored: Ignored::default(),
                flush_now: false,
                failed: None,
                reader: None,
                writer: None,
                leftover: Vec::new(),
            }),
            readable: Notify::new(),
            writable: Notify::new(),
            kick: Notify::new(),
        });
        let driver = tokio::spawn(drive(shared.clone(), sock, peer, rt.clone()));
        Ok(KcpSession {
            shared,
            driver,
            local,
            queue_limit: 2 * usize::from(cfg.snd_wnd.max(1)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Runs `f` on the protocol state (stats, `wait_snd`, `rto`...).
    pub fn with_kcp<R>(&self, f: impl FnOnce(&Kcp) -> R) -> R {
        f(&self.shared.lock().kcp)
    }

    /// Datagrams that were not KCP for this conversation.
    pub fn ignored(&self) -> Ignored {
        self.shared.lock().ignored
    }

    /// Queues a message (or stream bytes), waiting first while twice the
    /// send window is already queued, and has it sent at once. Cancel-safe:
    /// nothing is queued unless it returns.
    pub async fn send(&self, data: &[u8]) -> io::Result<usize> {
        loop {
            let ready = self.shared.writable.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut st = self.shared.lock();
                if let Some(e) = st.broken() {
                    return Err(e);
                }
                if st.kcp.wait_snd() < self.queue_limit {
                    let n = st
                        .kcp
                        .send(data)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
                    st.flush_now = true;
                    drop(st);
                    self.shared.kick.notify_one();
                    return Ok(n);
                }
            }
            ready.await;
        }
    }

    /// The next message (stream mode: the bytes of the next segments) into
    /// `buf`. A message larger than `buf` is an `InvalidInput` error and
    /// stays queued. Cancel-safe (wrap it in `tokio::time::timeout`).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let ready = self.shared.readable.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut st = self.shared.lock();
                match st.kcp.recv(buf) {
                    Ok(n) => {
                        drop(st);
                        // The window may have reopened: the driver tells the peer.
                        self.shared.kick.notify_one();
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
                if let Some(e) = st.broken() {
                    return Err(e);
                }
            }
            ready.await;
        }
    }

    /// Waits until everything sent is acknowledged.
    pub async fn flush(&self) -> io::Result<()> {
        loop {
            let ready = self.shared.writable.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let st = self.shared.lock();
                if st.kcp.wait_snd() == 0 {
                    return Ok(());
                }
                if let Some(e) = st.broken() {
                    return Err(e);
                }
            }
            ready.await;
        }
    }
}

/// The driver: input, `update` at the times `check` says, output.
async fn drive(shared: Arc<Shared>, sock: UdpSocket, peer: SocketAddr, rt: Runtime) {
    let epoch: Instant = rt.now();
    let now_ms = || rt.now().saturating_duration_since(epoch).as_millis() as u32;
    let mut buf = vec![0u8; 65536];
    let mut out: Vec<Vec<u8>> = Vec::new();
    loop {
        let due;
        {
            let mut st = shared.lock();
            let now = now_ms();
            st.kcp.update(now, &mut |d| out.push(d.to_vec()));
            if std::mem::take(&mut st.flush_now) {
                st.kcp.flush(&mut |d| out.push(d.to_vec()));
            }
            due = st.kcp.check(now).wrapping_sub(now).max(1);
            if st.kcp.peek_size().is_some() || st.kcp.is_dead() {
                shared.readable.notify_waiters();
                if let Some(w) = st.reader.take() {
                    w.wake();
                }
            }
            // ACKs taken since the last turn may have shrunk the queue.
            shared.writable.notify_waiters();
            if let Some(w) = st.writer.take() {
                w.wake();
            }
        }
        for d in out.drain(..) {
            // A full device queue drops the datagram: KCP retransmits it.
            if let Err(e) = sock.send_to(&d, peer).await {
                if e.kind() != io::ErrorKind::ConnectionRefused {
                    return fail(&shared, e);
                }
            }
        }
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let mut st = shared.lock();
                    if from != peer {
                        st.ignored.stray += 1;
                    } else if st.kcp.input(&buf[..n]).is_err() {
                        st.ignored.malformed += 1;
                    }
                }
                // ICMP port unreachable: the peer is not up yet; KCP retries.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return fail(&shared, e),
            },
            _ = tokio::time::sleep(Duration::from_millis(u64::from(due))) => {}
            _ = shared.kick.notified() => {}
        }
    }
}

fn fail(shared: &Shared, e: io::Error) {
    let mut st = shared.lock();
    st.failed = Some((
        e.kind(),
        format!("the KCP session's UDP socket failed: {e}"),
    ));
    for w in [st.reader.take(), st.writer.take()].into_iter().flatten() {
        w.wake();
    }
    drop(st);
    shared.readable.notify_waiters();
    shared.writable.notify_waiters();
}

/// Bytes `poll_write` queues per call at most (in stream mode a larger
/// write is taken in parts; KCP cuts a write into 127 segments at most).
fn write_chunk(kcp: &Kcp) -> usize {
    kcp.mss() * 64
}

impl KcpSession {
    /// The bytes of the next messages (message mode: their boundaries are
    /// not kept) or of the stream, into `buf`, whatever its size.
    pub fn poll_read_bytes(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut st = self.shared.lock();
        if st.leftover.is_empty() {
            let Some(size) = st.kcp.peek_size() else {
                if let Some(e) = st.broken() {
                    return Poll::Ready(Err(e));
                }
                st.reader = Some(cx.waker().clone());
                return Poll::Pending;
            };
            let mut taken = vec![0u8; size];
            if let Ok(n) = st.kcp.recv(&mut taken) {
                taken.truncate(n);
                st.leftover = taken;
            }
            drop(st);
            // The window may have reopened: the driver tells the peer.
            self.shared.kick.notify_one();
            st = self.shared.lock();
        }
        let n = st.leftover.len().min(buf.remaining());
        buf.put_slice(&st.leftover[..n]);
        st.leftover.drain(..n);
        Poll::Ready(Ok(()))
    }

    /// Queues what of `data` fits (waiting while twice the send window is
    /// queued); stream mode suits this best.
    pub fn poll_write_bytes(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut st = self.shared.lock();
        if let Some(e) = st.broken() {
            return Poll::Ready(Err(e));
        }
        if st.kcp.wait_snd() >= self.queue_limit {
            st.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let chunk = write_chunk(&st.kcp);
        let n = st
            .kcp
            .send(&data[..data.len().min(chunk)])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        st.flush_now = true;
        drop(st);
        self.shared.kick.notify_one();
        Poll::Ready(Ok(n))
    }

    /// Ready once everything queued is acknowledged.
    pub fn poll_acked(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.shared.lock();
        if st.kcp.wait_snd() == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some(e) = st.broken() {
            return Poll::Ready(Err(e));
        }
        st.writer = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The bytes received, as a byte stream (use stream mode, or accept that
/// message boundaries are dropped).
impl AsyncRead for KcpSession {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.poll_read_bytes(cx, buf)
    }
}

/// Writes queue bytes for KCP; `flush` waits until the peer acknowledged
/// all of them, and `shutdown` is that flush (KCP has no FIN).
impl AsyncWrite for KcpSession {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_bytes(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_acked(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_acked(cx)
    }
}
