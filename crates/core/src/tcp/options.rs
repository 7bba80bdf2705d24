//! A TCP socket's options (setsockopt/getsockopt), copied into its TCB.

use crate::config::TcpConfig;
use crate::time::Duration;

/// A TCP socket's options (setsockopt/getsockopt), copied into its TCB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpOptions {
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub keepalive: bool,
    pub keep_idle: Duration,
    pub keep_intvl: Duration,
    pub keep_cnt: u32,
    /// SO_LINGER: `Some(0)` aborts with RST on close.
    pub linger: Option<Duration>,
    pub sndbuf: usize,
    pub rcvbuf: usize,
    /// TCP_MAXSEG: clamps the MSS we announce and use.
    pub maxseg: Option<u16>,
    /// TCP_USER_TIMEOUT (RFC 5482).
    pub user_timeout: Option<Duration>,
    /// TCP_NODELAY: turns Nagle's algorithm (RFC 896) off.
    pub nodelay: bool,
    /// TCP_CORK: hold partial segments until uncorked, a FIN, or 200 ms
    /// (`CORK_CEILING`, as Linux).
    pub cork: bool,
    /// SO_RCVBUF / SO_SNDBUF was set: that buffer is not autotuned.
    pub rcvbuf_locked: bool,
    pub sndbuf_locked: bool,
    /// TCP_CONGESTION.
    pub congestion: crate::config::Congestion,
    /// IPV6_V6ONLY: an IPv6 wildcard bind takes no IPv4 (RFC 3493 §5.3).
    pub v6only: bool,
    /// IPV6_UNICAST_HOPS: the hop limit of our IPv6 packets (else the stack's).
    pub unicast_hops: Option<u8>,
    /// SO_MAX_PACING_RATE (bytes/s): a ceiling on the pacing rate; set,
    /// it also makes the connection pace (as Linux's internal pacing).
    pub max_pacing_rate: Option<u64>,
}
impl TcpOptions {
    /// The defaults a new socket gets from the stack's configuration.
    pub fn new(cfg: &TcpConfig) -> TcpOptions {
        TcpOptions {
            reuseaddr: false,
            reuseport: false,
            keepalive: false,
            keep_idle: cfg.keepalive_time,
            keep_intvl: cfg.keepalive_intvl,
            keep_cnt: cfg.keepalive_probes,
            linger: None,
            sndbuf: cfg.sndbuf,
            rcvbuf: cfg.rcvbuf,
            maxseg: None,
            user_timeout: None,
            nodelay: false,
            cork: false,
            rcvbuf_locked: false,
            sndbuf_locked: false,
            congestion: cfg.congestion,
            v6only: false,
            unicast_hops: None,
            max_pacing_rate: None,
        }
    }
}
