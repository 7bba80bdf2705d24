//! Configuration of one stack (one interface). Every limit is explicit.

use crate::time::Duration;
use core::ops::RangeInclusive;
use ustack_wire::{ChecksumCaps, EthernetAddress, Ipv4Addr, Ipv4Cidr, Ipv6Cidr};

/// What the device carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// Bare IPv4 packets (TUN, or an IP MemLink).
    Ip,
    /// Ethernet II frames (TAP), with ARP.
    Ethernet,
}

/// ARP cache and resolution (RFC 826; timings after Linux's neighbour defaults).
#[derive(Debug, Clone)]
pub struct ArpConfig {
    /// How long a learned entry stays usable.
    pub entry_ttl: Duration,
    /// Time between requests for an unresolved address.
    pub retry_interval: Duration,
    /// Requests sent before giving up (Linux `mcast_solicit` = 3).
    pub max_requests: u32,
    /// Packets held per unresolved address; older ones are dropped (Linux `unres_qlen`).
    pub max_pending_per_neighbor: usize,
    /// Entries in the cache; the oldest is evicted beyond this.
    pub max_entries: usize,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            entry_ttl: Duration::from_secs(60),
            retry_interval: Duration::from_secs(1),
            max_requests: 3,
            max_pending_per_neighbor: 101,
            max_entries: 1024,
        }
    }
}

/// IPv4 fragment reassembly (RFC 791 §3.2, RFC 815; limits after Linux `ipfrag_*`).
#[derive(Debug, Clone)]
pub struct ReassemblyConfig {
    /// A partial datagram is dropped this long after its first fragment (Linux `ipfrag_time` = 30 s).
    pub timeout: Duration,
    /// Bytes held across all partial datagrams (Linux `ipfrag_high_thresh` = 4 MiB).
    pub max_bytes: usize,
    /// Partial datagrams held at once.
    pub max_datagrams: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            timeout: Duration::from_secs(30),
            max_bytes: 4 << 20,
            max_datagrams: 1024,
        }
    }
}

/// TCP (RFC 9293); defaults after Linux's `net.ipv4.tcp_*` sysctls.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// SYN retransmissions before connect fails with ETIMEDOUT (`tcp_syn_retries` = 6).
    pub syn_retries: u32,
    /// SYN-ACK retransmissions before a half-open connection is dropped (`tcp_synack_retries` = 5).
    pub synack_retries: u32,
    /// Upper bound on a listener's SYN queue (`tcp_max_syn_backlog`).
    pub max_syn_backlog: usize,
    /// Upper bound on `listen`'s backlog (`somaxconn` = 4096).
    pub somaxconn: usize,
    /// Reset a connection whose final ACK finds the accept queue full (`tcp_abort_on_overflow`).
    pub abort_on_overflow: bool,
    /// Answer SYNs with SYN cookies (RFC 4987) when the SYN queue is full (`tcp_syncookies` = 1).
    pub syncookies: bool,
    /// TIME_WAIT lasts this long, i.e. 2×MSL (Linux `TCP_TIMEWAIT_LEN` = 60 s).
    pub time_wait: Duration,
    /// TIME_WAIT connections held at most (Linux `tcp_max_tw_buckets`);
    /// beyond it a closing connection skips TIME_WAIT (after its last
    /// ACK) and `time_wait_overflows` counts it.
    pub max_time_wait: usize,
    /// An outgoing connection may take over a 4-tuple in TIME_WAIT that
    /// used timestamps and has been there 1 s or more (Linux
    /// `tcp_tw_reuse`; safe as the new incarnation's TSval and ISN, both
    /// clock-driven with the same per-4-tuple offset, are larger).
    pub tw_reuse: bool,
    /// An orphaned FIN_WAIT_2 connection is dropped after this (`tcp_fin_timeout` = 60 s).
    pub fin_timeout: Duration,
    /// Retransmissions of established data before ETIMEDOUT (`tcp_retries2` = 15).
    pub retries2: u32,
    /// Retransmissions before an orphaned (closed by the user) connection
    /// is dropped (`tcp_orphan_retries`; Linux's 0 means 8).
    pub orphan_retries: u32,
    /// Keepalive idle time, probe interval and probe count (7200 s / 75 s / 9).
    pub keepalive_time: Duration,
    pub keepalive_intvl: Duration,
    pub keepalive_probes: u32,
    /// RTO bounds and initial value (RFC 6298 §2: 1 s initial; Linux min 200 ms, max 120 s).
    pub rto_min: Duration,
    pub rto_max: Duration,
    pub rto_initial: Duration,
    /// Challenge ACKs per second across the stack (RFC 5961 §7; `tcp_challenge_ack_limit` = 1000),
    /// on top of one per connection per 500 ms.
    pub challenge_ack_limit: u32,
    /// Default send and receive buffer sizes in bytes (`tcp_wmem[1]` = 16 KiB, `tcp_rmem[1]` = 128 KiB).
    pub sndbuf: usize,
    pub rcvbuf: usize,
    /// Largest buffer a socket option may request.
    pub max_buf: usize,
    /// RSTs and challenge ACKs queued for output before more are dropped.
    pub max_ctl_queue: usize,
    /// Congestion control for new connections (Linux default: CUBIC).
    pub congestion: Congestion,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_window: u32,
    /// Delayed-ACK timer (RFC 9293 §3.8.6.3 allows up to 500 ms; RFC 1122
    /// asks for less than 0.5 s; Linux's minimum and our default is 40 ms).
    pub delayed_ack: Duration,
    /// Segments ACKed at once at connection start (Linux quick-ack mode).
    pub quickack_segments: u32,
    /// Offer and use SACK (RFC 2018), timestamps (RFC 7323), window scaling.
    pub sack: bool,
    pub timestamps: bool,
    pub window_scaling: bool,
    /// Receive-buffer autotuning: a socket without an explicit SO_RCVBUF
    /// grows its buffer up to this as the application keeps up
    /// (`tcp_rmem[2]` = 6 MiB); the send buffer likewise to `max_sndbuf`
    /// (`tcp_wmem[2]` = 4 MiB). Set to the defaults to disable growth.
    pub max_rcvbuf: usize,
    pub max_sndbuf: usize,
    /// Byte ranges held in the out-of-order queue at most; a segment that
    /// would need more is dropped (the memory is bounded by the window anyway).
    pub max_ofo_ranges: usize,
    /// Collapse cwnd to the initial window after an idle period longer than
    /// the RTO (RFC 5681 §4.1; Linux `tcp_slow_start_after_idle` = 1).
    pub slow_start_after_idle: bool,
    /// Tail loss probe (RFC 8985 §7): with data outstanding and no ACK for
    /// two smoothed RTTs, send one segment (new data, else the last one) so
    /// a lost tail is repaired by SACK recovery rather than by the RTO.
    pub tail_loss_probe: bool,
    /// Packetization-layer path MTU discovery for paths that drop ICMP
    /// (RFC 4821 §7.7 black-hole detection; Linux `tcp_mtu_probing` = 1):
    /// after repeated timeouts the send MSS drops to 1024, then halves; the
    /// value found goes into the path MTU cache (RFC 4821 §4), so the full
    /// size is tried again when it expires. No RFC 4821 §7.3 probe segments.
    pub mtu_probing: bool,
    /// Header prediction from the raw datagram: in-order data for the last
    /// connection recognised before general parsing (after Linux
    /// `tcp_rcv_established`). Off, every segment takes the full path, to
    /// the same outcome; the switch exists to compare the two in tests.
    pub header_prediction: bool,
    /// RACK (RFC 8985 §6; Linux `tcp_recovery` = 1): with SACK, segments
    /// are judged lost by their send times (a later one was delivered and
    /// they are older than an RTT plus a reordering window), which also
    /// finds lost retransmissions; off leaves RFC 6675 DupThresh alone.
    pub rack: bool,
    /// Segmentation in software (Linux's TSO/GSO `sk_buff`s): when the
    /// windows allow several full segments of new data at once, TCP
    /// plans them as one burst of up to 64 KiB, with its bookkeeping
    /// (SND.NXT, RTT timing, RACK, timers) done once, and the output path
    /// cuts it into MSS-sized segments on later `transmit` calls. On the
    /// wire nothing differs; off, each segment is planned on its own.
    pub gso: bool,
    /// Pace every connection (`pacing.rs`; Linux paces only with the fq
    /// qdisc or when a flow asks: BBR, SO_MAX_PACING_RATE). Off: only
    /// those that ask are paced.
    pub pacing: bool,
    /// ECN (RFC 3168, `tcp/ecn.rs`): accepted when asked by default.
    pub ecn: EcnMode,
    /// HyStart++ (RFC 9406) in CUBIC's initial slow start: leave it when
    /// the RTT rises (Linux's CUBIC runs HyStart by default).
    pub hystart: bool,
}

/// Whether TCP uses ECN (RFC 3168; Linux `tcp_ecn`: 0, 2 the default, 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EcnMode {
    /// Never: SYNs asking for it are answered without.
    Off,
    /// Accept it when the peer asks, never ask (Linux `tcp_ecn` = 2).
    #[default]
    Passive,
    /// Ask for it on our SYNs too (`tcp_ecn` = 1).
    On,
}

/// Which congestion controller a connection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Congestion {
    /// RFC 5681 / RFC 6582.
    NewReno,
    /// RFC 9438 (the default, as Linux).
    #[default]
    Cubic,
    /// BBR v1 (draft-cardwell-iccrg-bbr-congestion-control-00); paces.
    Bbr,
}

impl Congestion {
    /// The name TCP_CONGESTION takes and shows (Linux's: `reno`, `cubic`, `bbr`).
    pub fn name(self) -> &'static str {
        match self {
            Congestion::NewReno => "reno",
            Congestion::Cubic => "cubic",
            Congestion::Bbr => "bbr",
        }
    }
}

impl core::fmt::Display for Congestion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Congestion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "reno" | "newreno" => Ok(Congestion::NewReno),
            "cubic" => Ok(Congestion::Cubic),
            "bbr" => Ok(Congestion::Bbr),
            _ => Err(format!(
                "unknown congestion control {s:?} (use newreno, cubic or bbr)"
            )),
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            syn_retries: 6,
            synack_retries: 5,
            max_syn_backlog: 1024,
            somaxconn: 4096,
            abort_on_overflow: false,
            syncookies: true,
            time_wait: Duration::from_secs(60),
            max_time_wait: 262_144,
            tw_reuse: true,
            fin_timeout: Duration::from_secs(60),
            retries2: 15,
            orphan_retries: 8,
            keepalive_time: Duration::from_secs(7200),
            keepalive_intvl: Duration::from_secs(75),
            keepalive_probes: 9,
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(120),
            rto_initial: Duration::from_secs(1),
            challenge_ack_limit: 1000,
            sndbuf: 16 * 1024,
            rcvbuf: 128 * 1024,
            max_buf: 4 << 20,
            max_ctl_queue: 1024,
            congestion: Congestion::Cubic,
            initial_window: 10,
            delayed_ack: Duration::from_millis(40),
            quickack_segments: 16,
            sack: true,
            timestamps: true,
            window_scaling: true,
            max_rcvbuf: 6 << 20,
            max_sndbuf: 4 << 20,
            max_ofo_ranges: 64,
            slow_start_after_idle: true,
            tail_loss_probe: true,
            mtu_probing: false,
            header_prediction: true,
            rack: true,
            gso: true,
            pacing: false,
            ecn: EcnMode::Passive,
            hystart: true,
        }
    }
}

/// Configuration of a [`Stack`](crate::Stack).
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub medium: Medium,
    /// Our hardware address (Ethernet medium only).
    pub mac: EthernetAddress,
    /// Our address and the on-link prefix.
    pub addr: Ipv4Cidr,
    /// Next hop for destinations off the prefix; without one they are ENETUNREACH.
    pub gateway: Option<Ipv4Addr>,
    /// Our IPv6 addresses with their on-link prefixes, besides the
    /// link-local one every interface has (fe80::/64 from `mac`, RFC 4291 §2.5.6).
    pub addrs6: Vec<Ipv6Cidr>,
    /// Hop limit of IPv6 packets we originate (Linux `hop_limit` = 64).
    pub hop_limit6: u8,
    /// IP MTU of the link (bytes of IP packet, not counting the Ethernet header).
    pub mtu: usize,
    /// Seeds every random choice (ports, ISNs, IP idents): same seed, same run.
    pub seed: u64,
    /// Checksums verified on receive / filled on transmit (false = offloaded).
    pub checksums: ChecksumCaps,
    /// TTL of datagrams we originate (Linux `ip_default_ttl` = 64).
    pub ttl: u8,
    pub arp: ArpConfig,
    pub reassembly: ReassemblyConfig,
    /// Local ports chosen for port 0 and connect (Linux `ip_local_port_range`).
    pub ephemeral_ports: RangeInclusive<u16>,
    /// Default receive buffer of a UDP socket in bytes (Linux `rmem_default`).
    pub udp_rcvbuf: usize,
    /// Default send buffer of a UDP socket in bytes (Linux `wmem_default`).
    pub udp_sndbuf: usize,
    /// ICMP error messages allowed per second, with a burst of as many (Linux `icmp_msgs_per_sec`/`icmp_msgs_burst`).
    pub icmp_errors_per_sec: u32,
    /// Answer echo requests sent to a broadcast address (Linux default: ignore).
    pub echo_broadcasts: bool,
    /// Datagrams queued for transmission across the stack before sends get ENOBUFS.
    pub max_egress_packets: usize,
    /// Events ([`crate::event::Event`]) kept until drained; beyond it the
    /// oldest are dropped (and counted).
    pub max_events: usize,
    /// The device takes TCP super-segments (TSO over a TUN/TAP's
    /// virtio-net header): a burst of full segments of new data leaves as
    /// ONE frame of up to 64 KiB, IP total length covering it all, whose
    /// TCP checksum field holds only the pseudo-header sum (the device
    /// cuts it into MSS segments and finishes each checksum). Only bursts
    /// whose segments fill the MTU are sent so (the device reads the
    /// segment size as MTU − headers); per-segment accounting is as
    /// without it. Off by default: only a device that negotiated TSO may
    /// be given such frames.
    pub tso: bool,
    /// Transparent mode (forwarding engines, like Linux IP_TRANSPARENT):
    /// unicast datagrams to any address are taken as ours, so a
    /// [`Tcp`](crate::tcp::Tcp) any-destination listener and a UDP
    /// any-destination socket see them. Off by default (RFC 1122 §3.3.1: a
    /// host drops datagrams not addressed to it).
    pub transparent: bool,
    /// In transparent mode, answer ICMP echo requests to any address
    /// (from that address); when false only our own address answers.
    pub transparent_echo: bool,
    /// Also record the per-segment TCP events (segments, retransmissions,
    /// cwnd, RTT, window: [`crate::event::EventKind::TcpSegment`] and
    /// after). Off by default: they cost a branch per segment when off.
    pub trace: bool,
    pub tcp: TcpConfig,
}

impl StackConfig {
    /// A config with Linux-like defaults for `addr` on `medium`.
    pub fn new(medium: Medium, addr: Ipv4Cidr) -> StackConfig {
        StackConfig {
            medium,
            mac: EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]),
            addr,
            gateway: None,
            addrs6: Vec::new(),
            hop_limit6: 64,
            mtu: 1500,
            seed: 0,
            checksums: ChecksumCaps::default(),
            ttl: 64,
            arp: ArpConfig::default(),
            reassembly: ReassemblyConfig::default(),
            ephemeral_ports: 32768..=60999,
            udp_rcvbuf: 212_992,
            udp_sndbuf: 212_992,
            icmp_errors_per_sec: 1000,
            echo_broadcasts: false,
            max_egress_packets: 4096,
            max_events: 65536,
            tso: false,
            transparent: false,
            transparent_echo: true,
            trace: false,
            tcp: TcpConfig::default(),
        }
    }

    /// Records the per-segment TCP events ([`StackConfig::trace`]).
    pub fn with_trace(mut self, on: bool) -> Self {
        self.trace = on;
        self
    }
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn with_mac(mut self, mac: EthernetAddress) -> Self {
        self.mac = mac;
        self
    }
    pub fn with_gateway(mut self, gw: Ipv4Addr) -> Self {
        self.gateway = Some(gw);
        self
    }
    /// Adds an IPv6 address (and its on-link prefix).
    pub fn with_addr6(mut self, addr: Ipv6Cidr) -> Self {
        self.addrs6.push(addr);
        self
    }
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = mtu;
        self
    }
    pub fn with_tso(mut self, on: bool) -> Self {
        self.tso = on;
        self
    }
    pub fn with_checksums(mut self, caps: ChecksumCaps) -> Self {
        self.checksums = caps;
        self
    }

    /// Bytes of link header in front of each IP packet.
    pub fn link_header_len(&self) -> usize {
        match self.medium {
            Medium::Ip => 0,
            Medium::Ethernet => ustack_wire::ethernet::HEADER_LEN,
        }
    }
}
