//! KCP, sans-IO, as the reference implementation (skywind3000/kcp,
//! `ikcp.c`) defines it: [`Kcp::input`] takes datagrams, [`Kcp::update`]
//! takes the time in milliseconds and hands datagrams to a callback,
//! [`Kcp::check`] says when to call it next. Segment layout, little-endian:
//! conv u32, cmd u8, frg u8, wnd u16, ts u32, sn u32, una u32, len u32, data.

use std::collections::VecDeque;
use std::fmt;

/// Header bytes of every segment.
pub const OVERHEAD: usize = 24;
const CMD_PUSH: u8 = 81;
const CMD_ACK: u8 = 82;
const CMD_WASK: u8 = 83;
const CMD_WINS: u8 = 84;
const ASK_SEND: u32 = 1;
const ASK_TELL: u32 = 2;
const RTO_NDL: u32 = 30;
const RTO_MIN: u32 = 100;
const RTO_DEF: u32 = 200;
const RTO_MAX: u32 = 60_000;
const WND_SND: u16 = 32;
const WND_RCV: u16 = 128;
const MTU_DEF: usize = 1400;
const INTERVAL: u32 = 100;
const DEADLINK: u32 = 20;
const THRESH_INIT: u32 = 2;
const THRESH_MIN: u32 = 2;
const PROBE_INIT: u32 = 5000;
const PROBE_LIMIT: u32 = 120_000;
const FASTACK_LIMIT: u32 = 5;

/// `a - b` on the 32-bit millisecond and sequence spaces.
fn diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// The tunables of `ikcp_nodelay`, `ikcp_wndsize`, `ikcp_setmtu`, stream mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// 0: normal (RTO doubles on timeout, minimum 100 ms); 1: the RTO grows
    /// by half of itself; 2: by half of the current RTO estimate (min 30 ms).
    pub nodelay: u32,
    /// Flush interval in ms (10..=5000).
    pub interval: u32,
    /// Fast retransmit after this many ACKs of later segments (0: off).
    pub resend: u32,
    /// Turn the congestion window off (only the send/receive windows count).
    pub no_cwnd: bool,
    pub snd_wnd: u16,
    /// At least 128 (the largest message's fragment count).
    pub rcv_wnd: u16,
    /// Largest datagram, header included (50 at least).
    pub mtu: usize,
    /// Stream mode: one byte stream, segments filled up to the MSS; message
    /// mode (false) keeps each `send` a message, fragments numbered in frg.
    pub stream: bool,
    /// Fast retransmits per segment at most (0: unlimited).
    pub fast_limit: u32,
    /// Transmissions of one segment after which the link counts as dead.
    pub dead_link: u32,
}

impl Config {
    /// `ikcp_create`'s defaults: interval 100 ms, no fast resend, windows 32/128.
    pub fn normal() -> Config {
        Config {
            nodelay: 0,
            interval: INTERVAL,
            resend: 0,
            no_cwnd: false,
            snd_wnd: WND_SND,
            rcv_wnd: WND_RCV,
            mtu: MTU_DEF,
            stream: false,
            fast_limit: FASTACK_LIMIT,
            dead_link: DEADLINK,
        }
    }

    /// The reference's "fastest" setting: `ikcp_nodelay(kcp, 1, 10, 2, 1)`.
    pub fn fast() -> Config {
        Config {
            nodelay: 1,
            interval: 10,
            resend: 2,
            no_cwnd: true,
            ..Config::normal()
        }
    }

    pub fn with_windows(mut self, snd: u16, rcv: u16) -> Config {
        self.snd_wnd = snd;
        self.rcv_wnd = rcv;
        self
    }

    pub fn with_mtu(mut self, mtu: usize) -> Config {
        self.mtu = mtu;
        self
    }

    pub fn with_stream(mut self, on: bool) -> Config {
        self.stream = on;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::normal()
    }
}

/// Why `input` rejected (the rest of) a datagram. Segments before the bad
/// one were taken, as in ikcp_input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// Shorter than one header (24 bytes).
    TooShort(usize),
    /// Another conversation's segment.
    WrongConv {
        expected: u32,
        got: u32,
    },
    /// `len` says more data than the datagram holds.
    Truncated {
        len: u32,
        left: usize,
    },
    UnknownCmd(u8),
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::TooShort(n) => {
                write!(f, "a {n}-byte datagram is shorter than a KCP header (24)")
            }
            InputError::WrongConv { expected, got } => {
                write!(f, "segment of conversation {got}, this one is {expected}")
            }
            InputError::Truncated { len, left } => {
                write!(
                    f,
                    "segment says {len} data bytes, {left} left in the datagram"
                )
            }
            InputError::UnknownCmd(c) => write!(f, "unknown KCP command {c}"),
        }
    }
}

impl std::error::Error for InputError {}

/// Why `send` refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// A message needs as many fragments as the receive window (128) or more.
    TooLarge { len: usize, max: usize },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::TooLarge { len, max } => write!(
                f,
                "a {len}-byte message is over KCP's {max}-byte limit (127 fragments); split it or use stream mode"
            ),
        }
    }
}

impl std::error::Error for SendError {}

/// Why `recv` gave nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecvError {
    /// No complete message yet.
    Empty,
    /// The next message is larger than the buffer (it stays queued).
    BufferTooSmall { need: usize },
}

#[derive(Debug, Clone, Default)]
struct Segment {
    cmd: u8,
    frg: u8,
    wnd: u16,
    ts: u32,
    sn: u32,
    una: u32,
    resendts: u32,
    rto: u32,
    fastack: u32,
    xmit: u32,
    data: Vec<u8>,
}

/// Counters, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Retransmissions on timeout.
    pub timeout_retransmits: u64,
    pub fast_retransmits: u64,
    pub segments_sent: u64,
    pub datagrams_sent: u64,
}

/// One KCP endpoint (`ikcpcb`).
pub struct Kcp {
    conv: u32,
    cfg: Config,
    mss: usize,
    dead: bool,
    snd_una: u32,
    snd_nxt: u32,
    rcv_nxt: u32,
    ssthresh: u32,
    rx_rttval: i32,
    rx_srtt: i32,
    rx_rto: u32,
    rx_minrto: u32,
    rmt_wnd: u32,
    cwnd: u32,
    incr: u32,
    probe: u32,
    current: u32,
    ts_flush: u32,
    updated: bool,
    ts_probe: u32,
    probe_wait: u32,
    snd_queue: VecDeque<Segment>,
    rcv_queue: VecDeque<Segment>,
    snd_buf: VecDeque<Segment>,
    rcv_buf: VecDeque<Segment>,
    acklist: Vec<(u32, u32)>,
    buffer: Vec<u8>,
    stats: Stats,
}

impl fmt::Debug for Kcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kcp")
            .field("conv", &self.conv)
            .field("snd_una", &self.snd_una)
            .field("snd_nxt", &self.snd_nxt)
            .field("rcv_nxt", &self.rcv_nxt)
            .field("cwnd", &self.cwnd)
            .field("rx_rto", &self.rx_rto)
            .finish()
    }
}

fn put_header(out: &mut Vec<u8>, conv: u32, s: &Segment) {
    out.extend_from_slice(&conv.to_le_bytes());
    out.push(s.cmd);
    out.push(s.frg);
    out.extend_from_slice(&s.wnd.to_le_bytes());
    out.extend_from_slice(&s.ts.to_le_bytes());
    out.extend_from_slice(&s.sn.to_le_bytes());
    out.extend_from_slice(&s.una.to_le_bytes());
    out.extend_from_slice(&(s.data.len() as u32).to_le_bytes());
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// The conversation ID of a datagram (`ikcp_getconv`), if it is long enough.
pub fn conv_of(datagram: &[u8]) -> Option<u32> {
    (datagram.len() >= 4).then(|| u32_at(datagram, 0))
}

impl Kcp {
    /// An endpoint of conversation `conv` (both ends use the same).
    pub fn new(conv: u32, cfg: Config) -> Kcp {
        let mut cfg = cfg;
        cfg.interval = cfg.interval.clamp(10, 5000);
        cfg.mtu = cfg.mtu.max(50);
        cfg.rcv_wnd = cfg.rcv_wnd.max(WND_RCV);
        cfg.snd_wnd = cfg.snd_wnd.max(1);
        Kcp {
            conv,
            mss: cfg.mtu - OVERHEAD,
            dead: false,
            snd_una: 0,
            snd_nxt: 0,
            rcv_nxt: 0,
            ssthresh: THRESH_INIT,
            rx_rttval: 0,
            rx_srtt: 0,
            rx_rto: RTO_DEF,
            rx_minrto: if cfg.nodelay > 0 { RTO_NDL } else { RTO_MIN },
            rmt_wnd: u32::from(WND_RCV),
            cwnd: 0,
            incr: 0,
            probe: 0,
            current: 0,
            ts_flush: cfg.interval,
            updated: false,
            ts_probe: 0,
            probe_wait: 0,
            snd_queue: VecDeque::new(),
            rcv_queue: VecDeque::new(),
            snd_buf: VecDeque::new(),
            rcv_buf: VecDeque::new(),
            acklist: Vec::new(),
            buffer: Vec::with_capacity(cfg.mtu * 2),
            stats: Stats::default(),
            cfg,
        }
    }

    pub fn conv(&self) -> u32 {
        self.conv
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Largest payload of one segment.
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// The current retransmission timeout estimate, ms.
    pub fn rto(&self) -> u32 {
        self.rx_rto
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Some segment was sent `dead_link` times without an ACK.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Segments queued or unacknowledged (`ikcp_waitsnd`).
    pub fn wait_snd(&self) -> usize {
        self.snd_buf.len() + self.snd_queue.len()
    }

    /// The largest message `send` takes in message mode.
    pub fn max_message(&self) -> usize {
        (usize::from(WND_RCV) - 1) * self.mss
    }

    /// The size of the next complete message (`ikcp_peeksize`).
    pub fn peek_size(&self) -> Option<usize> {
        let first = self.rcv_queue.front()?;
        if first.frg == 0 {
            return Some(first.data.len());
        }
        if self.rcv_queue.len() < usize::from(first.frg) + 1 {
            return None;
        }
        let mut n = 0;
        for s in &self.rcv_queue {
            n += s.data.len();
            if s.frg == 0 {
                break;
            }
        }
        Some(n)
    }

    /// Takes the next message (message mode) or segment's bytes (stream
    /// mode) into `buf` (`ikcp_recv`).
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let size = self.peek_size().ok_or(RecvError::Empty)?;
        if size > buf.len() {
            return Err(RecvError::BufferTooSmall { need: size });
        }
        let recover = self.rcv_queue.len() >= usize::from(self.cfg.rcv_wnd);
        let mut n = 0;
        while let Some(seg) = self.rcv_queue.pop_front() {
            buf[n..n + seg.data.len()].copy_from_slice(&seg.data);
            n += seg.data.len();
            if seg.frg == 0 {
                break;
            }
        }
        self.move_to_queue();
        // Tell the peer the window opened again (fast recover).
        if self.rcv_queue.len() < usize::from(self.cfg.rcv_wnd) && recover {
            self.probe |= ASK_TELL;
        }
        Ok(n)
    }

    /// Queues `data` (`ikcp_send`): one message, cut into at most 127
    /// fragments, or appended to the stream.
    pub fn send(&mut self, mut data: &[u8]) -> Result<usize, SendError> {
        let mut sent = 0;
        if self.cfg.stream {
            if let Some(old) = self.snd_queue.back_mut() {
                if old.data.len() < self.mss {
                    let extend = data.len().min(self.mss - old.data.len());
                    old.data.extend_from_slice(&data[..extend]);
                    old.frg = 0;
                    data = &data[extend..];
                    sent = extend;
                }
            }
            if data.is_empty() {
                return Ok(sent);
            }
        }
        let count = if data.len() <= self.mss {
            1
        } else {
            data.len().div_ceil(self.mss)
        };
        if count >= usize::from(WND_RCV) {
            if self.cfg.stream && sent > 0 {
                return Ok(sent);
            }
            return Err(SendError::TooLarge {
                len: data.len(),
                max: self.max_message(),
            });
        }
        for i in 0..count {
            let size = data.len().min(self.mss);
            self.snd_queue.push_back(Segment {
                frg: if self.cfg.stream {
                    0
                } else {
                    (count - i - 1) as u8
                },
                data: data[..size].to_vec(),
                ..Segment::default()
            });
            data = &data[size..];
            sent += size;
        }
        Ok(sent)
    }

    fn update_ack(&mut self, rtt: i32) {
        if self.rx_srtt == 0 {
            self.rx_srtt = rtt;
            self.rx_rttval = rtt / 2;
        } else {
            let delta = (rtt - self.rx_srtt).abs();
            self.rx_rttval = (3 * self.rx_rttval + delta) / 4;
            self.rx_srtt = ((7 * self.rx_srtt + rtt) / 8).max(1);
        }
        let rto = self.rx_srtt as u32 + self.cfg.interval.max(4 * self.rx_rttval as u32);
        self.rx_rto = rto.clamp(self.rx_minrto, RTO_MAX);
    }

    fn shrink_buf(&mut self) {
        self.snd_una = self.snd_buf.front().map_or(self.snd_nxt, |s| s.sn);
    }

    fn parse_ack(&mut self, sn: u32) {
        if diff(sn, self.snd_una) < 0 || diff(sn, self.snd_nxt) >= 0 {
            return;
        }
        for i in 0..self.snd_buf.len() {
            let s = self.snd_buf[i].sn;
            if s == sn {
                self.snd_buf.remove(i);
                break;
            }
            if diff(sn, s) < 0 {
                break;
            }
        }
    }

    fn parse_una(&mut self, una: u32) {
        while self.snd_buf.front().is_some_and(|s| diff(una, s.sn) > 0) {
            self.snd_buf.pop_front();
        }
    }

    /// IKCP_FASTACK_CONSERVE: only segments sent before the ACKed one count it.
    fn parse_fastack(&mut self, sn: u32, ts: u32) {
        if diff(sn, self.snd_una) < 0 || diff(sn, self.snd_nxt) >= 0 {
            return;
        }
        for s in self.snd_buf.iter_mut() {
            if diff(sn, s.sn) < 0 {
                break;
            } else if sn != s.sn && diff(ts, s.ts) >= 0 {
                s.fastack += 1;
            }
        }
    }

    fn parse_data(&mut self, seg: Segment) {
        let sn = seg.sn;
        if diff(sn, self.rcv_nxt.wrapping_add(u32::from(self.cfg.rcv_wnd))) >= 0
            || diff(sn, self.rcv_nxt) < 0
        {
            return;
        }
        // Insert in order, from the back; a duplicate is dropped.
        let mut at = self.rcv_buf.len();
        let mut repeat = false;
        while at > 0 {
            let s = self.rcv_buf[at - 1].sn;
            if s == sn {
                repeat = true;
                break;
            }
            if diff(sn, s) > 0 {
                break;
            }
            at -= 1;
        }
        if !repeat {
            self.rcv_buf.insert(at, seg);
        }
        self.move_to_queue();
    }

    /// rcv_buf → rcv_queue while in order and the queue has room.
    fn move_to_queue(&mut self) {
        while let Some(s) = self.rcv_buf.front() {
            if s.sn == self.rcv_nxt && self.rcv_queue.len() < usize::from(self.cfg.rcv_wnd) {
                let s = self.rcv_buf.pop_front().unwrap_or_default();
                self.rcv_queue.push_back(s);
                self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            } else {
                break;
            }
        }
    }

    /// Takes one datagram from the peer (`ikcp_input`).
    pub fn input(&mut self, data: &[u8]) -> Result<(), InputError> {
        if data.len() < OVERHEAD {
            return Err(InputError::TooShort(data.len()));
        }
        let prev_una = self.snd_una;
        let mut maxack: Option<(u32, u32)> = None;
        let mut rest = data;
        let mut result = Ok(());
        while rest.len() >= OVERHEAD {
            let conv = u32_at(rest, 0);
            if conv != self.conv {
                result = Err(InputError::WrongConv {
                    expected: self.conv,
                    got: conv,
                });
                break;
            }
            let cmd = rest[4];
            let frg = rest[5];
            let wnd = u16::from_le_bytes([rest[6], rest[7]]);
            let ts = u32_at(rest, 8);
            let sn = u32_at(rest, 12);
            let una = u32_at(rest, 16);
            let len = u32_at(rest, 20);
            rest = &rest[OVERHEAD..];
            if (rest.len() as u64) < u64::from(len) {
                result = Err(InputError::Truncated {
                    len,
                    left: rest.len(),
                });
                break;
            }
            if !matches!(cmd, CMD_PUSH | CMD_ACK | CMD_WASK | CMD_WINS) {
                result = Err(InputError::UnknownCmd(cmd));
                break;
            }
            let len = len as usize;
            self.rmt_wnd = u32::from(wnd);
            self.parse_una(una);
            self.shrink_buf();
            match cmd {
                CMD_ACK => {
                    if diff(self.current, ts) >= 0 {
                        self.update_ack(diff(self.current, ts));
                    }
                    self.parse_ack(sn);
                    self.shrink_buf();
                    maxack = match maxack {
                        None => Some((sn, ts)),
                        Some((m, t)) if diff(sn, m) > 0 && diff(ts, t) > 0 => Some((sn, ts)),
                        keep => keep,
                    };
                }
                CMD_PUSH
                    if diff(sn, self.rcv_nxt.wrapping_add(u32::from(self.cfg.rcv_wnd))) < 0 =>
                {
                    self.acklist.push((sn, ts));
                    if diff(sn, self.rcv_nxt) >= 0 {
                        self.parse_data(Segment {
                            cmd,
                            frg,
                            wnd,
                            ts,
                            sn,
                            una,
                            data: rest[..len].to_vec(),
                            ..Segment::default()
                        });
                    }
                }
                // Beyond the receive window: dropped, not acknowledged.
                CMD_PUSH => {}
                CMD_WASK => self.probe |= ASK_TELL,
                _ => {} // WINS: the window was read above.
            }
            rest = &rest[len..];
        }
        if let Some((sn, ts)) = maxack {
            self.parse_fastack(sn, ts);
        }
        if diff(self.snd_una, prev_una) > 0 && self.cwnd < self.rmt_wnd {
            // Slow start, then congestion avoidance in bytes (ikcp_input).
            let mss = self.mss as u32;
            if self.cwnd < self.ssthresh {
                self.cwnd += 1;
                self.incr += mss;
            } else {
                if self.incr < mss {
                    self.incr = mss;
                }
                self.incr += (mss * mss) / self.incr + mss / 16;
                if (self.cwnd + 1) * mss <= self.incr {
                    self.cwnd = self.incr.div_ceil(mss.max(1));
                }
            }
            if self.cwnd > self.rmt_wnd {
                self.cwnd = self.rmt_wnd;
                self.incr = self.rmt_wnd * mss;
            }
        }
        result
    }

    fn wnd_unused(&self) -> u16 {
        let q = self.rcv_queue.len();
        let w = usize::from(self.cfg.rcv_wnd);
        if q < w {
            (w - q) as u16
        } else {
            0
        }
    }

    /// Appends a segment to the datagram being built, emitting it first if
    /// the segment would not fit in the MTU.
    fn emit(&mut self, seg: &Segment, out: &mut dyn FnMut(&[u8])) {
        if self.buffer.len() + OVERHEAD + seg.data.len() > self.cfg.mtu {
            out(&self.buffer);
            self.stats.datagrams_sent += 1;
            self.buffer.clear();
        }
        let conv = self.conv;
        put_header(&mut self.buffer, conv, seg);
        self.buffer.extend_from_slice(&seg.data);
    }

    /// Sends what is due now: ACKs, window probes, new and retransmitted
    /// data (`ikcp_flush`). Each datagram goes to `out`.
    pub fn flush(&mut self, out: &mut dyn FnMut(&[u8])) {
        if !self.updated {
            return;
        }
        let current = self.current;
        let prior_cwnd = self.cwnd;
        self.buffer.clear();
        let wnd = self.wnd_unused();
        let mut ctl = Segment {
            cmd: CMD_ACK,
            wnd,
            una: self.rcv_nxt,
            ..Segment::default()
        };
        for (sn, ts) in std::mem::take(&mut self.acklist) {
            ctl.sn = sn;
            ctl.ts = ts;
            self.emit(&ctl, out);
        }
        ctl.sn = 0;
        ctl.ts = 0;
        // Probe a zero remote window, backing off (ikcp_flush).
        if self.rmt_wnd == 0 {
            if self.probe_wait == 0 {
                self.probe_wait = PROBE_INIT;
                self.ts_probe = current.wrapping_add(self.probe_wait);
            } else if diff(current, self.ts_probe) >= 0 {
                self.probe_wait = self.probe_wait.max(PROBE_INIT);
                self.probe_wait += self.probe_wait / 2;
                self.probe_wait = self.probe_wait.min(PROBE_LIMIT);
                self.ts_probe = current.wrapping_add(self.probe_wait);
                self.probe |= ASK_SEND;
            }
        } else {
            self.ts_probe = 0;
            self.probe_wait = 0;
        }
        if self.probe & ASK_SEND != 0 {
            ctl.cmd = CMD_WASK;
            self.emit(&ctl, out);
        }
        if self.probe & ASK_TELL != 0 {
            ctl.cmd = CMD_WINS;
            self.emit(&ctl, out);
        }
        self.probe = 0;

        let mut cwnd = u32::from(self.cfg.snd_wnd).min(self.rmt_wnd);
        if !self.cfg.no_cwnd {
            cwnd = cwnd.min(self.cwnd);
        }
        while diff(self.snd_nxt, self.snd_una.wrapping_add(cwnd)) < 0 {
            let Some(mut s) = self.snd_queue.pop_front() else {
                break;
            };
            s.cmd = CMD_PUSH;
            s.wnd = wnd;
            s.ts = current;
            s.sn = self.snd_nxt;
            self.snd_nxt = self.snd_nxt.wrapping_add(1);
            s.una = self.rcv_nxt;
            s.resendts = current;
            s.rto = self.rx_rto;
            s.fastack = 0;
            s.xmit = 0;
            self.snd_buf.push_back(s);
        }

        let resent = if self.cfg.resend > 0 {
            self.cfg.resend
        } else {
            u32::MAX
        };
        let rtomin = if self.cfg.nodelay == 0 {
            self.rx_rto >> 3
        } else {
            0
        };
        let mut change = 0;
        let mut lost = false;
        let mut bufs = std::mem::take(&mut self.snd_buf);
        for s in bufs.iter_mut() {
            let mut needsend = false;
            if s.xmit == 0 {
                needsend = true;
                s.xmit += 1;
                s.rto = self.rx_rto;
                s.resendts = current.wrapping_add(s.rto + rtomin);
            } else if diff(current, s.resendts) >= 0 {
                // RTO: doubles in normal mode; grows by half in nodelay
                // mode (of itself for 1, of the estimate for 2).
                needsend = true;
                s.xmit += 1;
                self.stats.timeout_retransmits += 1;
                if self.cfg.nodelay == 0 {
                    s.rto += s.rto.max(self.rx_rto);
                } else {
                    let step = if self.cfg.nodelay < 2 {
                        s.rto
                    } else {
                        self.rx_rto
                    };
                    s.rto += step / 2;
                }
                s.resendts = current.wrapping_add(s.rto);
                lost = true;
            } else if s.fastack >= resent
                && (s.xmit <= self.cfg.fast_limit || self.cfg.fast_limit == 0)
            {
                needsend = true;
                s.xmit += 1;
                s.fastack = 0;
                s.resendts = current.wrapping_add(s.rto);
                self.stats.fast_retransmits += 1;
                change += 1;
            }
            if needsend {
                s.ts = current;
                s.wnd = wnd;
                s.una = self.rcv_nxt;
                self.stats.segments_sent += 1;
                self.emit(s, out);
                if s.xmit >= self.cfg.dead_link {
                    self.dead = true;
                }
            }
        }
        self.snd_buf = bufs;
        if !self.buffer.is_empty() {
            out(&self.buffer);
            self.stats.datagrams_sent += 1;
            self.buffer.clear();
        }
        if change > 0 {
            let inflight = self.snd_nxt.wrapping_sub(self.snd_una);
            self.ssthresh = (inflight / 2).max(THRESH_MIN);
            self.cwnd = self.ssthresh + resent.min(1 << 16);
            self.incr = self.cwnd * self.mss as u32;
        }
        if lost {
            self.ssthresh = (prior_cwnd / 2).max(THRESH_MIN);
            self.cwnd = 1;
            self.incr = self.mss as u32;
        }
        if self.cwnd < 1 {
            self.cwnd = 1;
            self.incr = self.mss as u32;
        }
    }

    /// Advances the clock to `now` (ms) and flushes when the interval is up
    /// (`ikcp_update`).
    pub fn update(&mut self, now: u32, out: &mut dyn FnMut(&[u8])) {
        self.current = now;
        if !self.updated {
            self.updated = true;
            self.ts_flush = now;
        }
        let mut slap = diff(now, self.ts_flush);
        if !(-10000..10000).contains(&slap) {
            self.ts_flush = now;
            slap = 0;
        }
        if slap >= 0 {
            self.ts_flush = self.ts_flush.wrapping_add(self.cfg.interval);
            if diff(now, self.ts_flush) >= 0 {
                self.ts_flush = now.wrapping_add(self.cfg.interval);
            }
            self.flush(out);
        }
    }

    /// When `update` is next due, given no input or send before (`ikcp_check`).
    pub fn check(&self, now: u32) -> u32 {
        if !self.updated {
            return now;
        }
        let mut ts_flush = self.ts_flush;
        if !(-10000..10000).contains(&diff(now, ts_flush)) {
            ts_flush = now;
        }
        if diff(now, ts_flush) >= 0 {
            return now;
        }
        let tm_flush = diff(ts_flush, now);
        let mut tm_packet = i32::MAX;
        for s in &self.snd_buf {
            let d = diff(s.resendts, now);
            if d <= 0 {
                return now;
            }
            tm_packet = tm_packet.min(d);
        }
        let minimal = (tm_packet.min(tm_flush) as u32).min(self.cfg.interval);
        now.wrapping_add(minimal)
    }
}
