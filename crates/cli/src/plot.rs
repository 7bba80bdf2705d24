//! `ustack plot`: graphs of a TCP connection from a ustack trace
//! (docs/trace.md) or from a pcap/pcapng capture of any TCP stack: the
//! tcptrace-style time-sequence graph, cwnd/ssthresh/bytes in flight, and
//! RTT samples with SRTT and RTO (the last two need a trace: a capture
//! does not hold a sender's congestion window or estimator).

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use ustack_core::wire::ipv4::Ipv4Packet;
use ustack_core::wire::tcp::{TcpOption, TcpPacket};
use ustack_core::wire::{IpProtocol, TcpFlags};

/// Which graph to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Graph {
    /// Sequence numbers over time: data sent, ACKs, SACK blocks, the
    /// receive window's edge, retransmissions.
    Timeseq,
    /// Congestion window, slow-start threshold and bytes in flight.
    Cwnd,
    /// RTT samples, smoothed RTT and the retransmission timeout.
    Rtt,
}

/// One segment, seen from the data sender: `out` if it sent it.
#[derive(Debug, Clone)]
struct Seg {
    t: f64,
    out: bool,
    seq: u32,
    ack: u32,
    len: u32,
    flags: TcpFlags,
    win: u16,
    wscale: Option<u8>,
    sack: Vec<(u32, u32)>,
}

/// A connection seen from its data sender.
#[derive(Debug, Default)]
pub struct Conn {
    pub id: u64,
    /// "local -> remote", local the data sender.
    pub label: String,
    segs: Vec<Seg>,
    /// (time, seq, len, cause)
    rtx: Vec<(f64, u32, u32, String)>,
    /// (time, cwnd, ssthresh)
    cwnd: Vec<(f64, f64, f64)>,
    /// (time, sample, srtt, rto) in milliseconds.
    rtt: Vec<(f64, f64, f64, f64)>,
    /// Times the retransmission timer fired, and the (backed-off) timer
    /// then running, in milliseconds.
    rto: Vec<(f64, f64)>,
    /// From a ustack trace (with the sender's own events), not a capture.
    pub traced: bool,
}

impl Conn {
    fn data_bytes(&self) -> u64 {
        self.segs
            .iter()
            .filter(|s| s.out)
            .map(|s| u64::from(s.len))
            .sum()
    }
}

/// Reads a trace or a capture (told apart by the first bytes).
pub fn load(path: &Path) -> Result<Vec<Conn>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let magic = bytes.get(..4).unwrap_or_default();
    let pcap = [
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x4d, 0x3c, 0xb2, 0xa1],
    ];
    let conns = if pcap.iter().any(|m| m == magic) {
        from_pcap(&bytes, false)
    } else if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        from_pcap(&bytes, true)
    } else {
        from_trace(&bytes)
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    if conns.is_empty() {
        return Err(format!(
            "{}: no TCP connection in it (record one with --trace FILE or a capture)",
            path.display()
        ));
    }
    Ok(conns)
}

/// The connections of a JSON-lines trace, each from the host that sent
/// the most data on it.
pub fn from_trace(text: &[u8]) -> Result<Vec<Conn>, String> {
    let text = std::str::from_utf8(text)
        .map_err(|_| "neither a ustack trace (JSON lines) nor a pcap/pcapng capture".to_string())?;
    // (conn, host) -> events
    let mut by: HashMap<(u64, String), Conn> = HashMap::new();
    let mut order: Vec<u64> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| {
            format!(
                "line {}: not a trace line ({e}); give a file written by --trace or a capture",
                i + 1
            )
        })?;
        let Some(conn) = v["conn"].as_u64().filter(|&c| c > 0) else {
            continue;
        };
        let host = v["host"].as_str().unwrap_or("").to_string();
        let t = v["t"].as_f64().unwrap_or(0.0);
        let u32f = |k: &str| v[k].as_u64().unwrap_or(0) as u32;
        let ms = |k: &str| v[k].as_u64().unwrap_or(0) as f64 / 1000.0;
        if !order.contains(&conn) {
            order.push(conn);
        }
        let c = by.entry((conn, host)).or_insert_with(|| Conn {
            id: conn,
            label: format!(
                "{} -> {}",
                v["local"].as_str().unwrap_or("?"),
                v["remote"].as_str().unwrap_or("?")
            ),
            traced: true,
            ..Default::default()
        });
        match v["ev"].as_str().unwrap_or("") {
            "seg" => {
                let mut flags = TcpFlags::empty();
                for f in v["flags"].as_array().into_iter().flatten() {
                    flags.insert(match f.as_str().unwrap_or("") {
                        "SYN" => TcpFlags::SYN,
                        "FIN" => TcpFlags::FIN,
                        "ACK" => TcpFlags::ACK,
                        "RST" => TcpFlags::RST,
                        _ => TcpFlags::empty(),
                    });
                }
                let sack = v["sack"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| Some((b[0].as_u64()? as u32, b[1].as_u64()? as u32)))
                    .collect();
                c.segs.push(Seg {
                    t,
                    out: v["dir"] == "out",
                    seq: u32f("seq"),
                    ack: u32f("ack"),
                    len: u32f("len"),
                    flags,
                    win: u32f("win") as u16,
                    wscale: v["wscale"].as_u64().map(|w| w as u8),
                    sack,
                });
            }
            "rtx" => c.rtx.push((
                t,
                u32f("seq"),
                u32f("len"),
                v["cause"].as_str().unwrap_or("").to_string(),
            )),
            "cwnd" => c
                .cwnd
                .push((t, f64::from(u32f("cwnd")), f64::from(u32f("ssthresh")))),
            "rtt" => c.rtt.push((t, ms("rtt_us"), ms("srtt_us"), ms("rto_us"))),
            "rto" => c.rto.push((t, ms("rto_us"))),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for id in order {
        let best = by
            .keys()
            .filter(|(c, _)| *c == id)
            .max_by_key(|k| (by[*k].data_bytes(), std::cmp::Reverse(k.1.clone())))
            .cloned();
        if let Some(k) = best {
            let mut c = by.remove(&k).expect("key just found");
            let got: u64 = c
                .segs
                .iter()
                .filter(|s| !s.out)
                .map(|s| u64::from(s.len))
                .sum();
            if got > c.data_bytes() {
                // Traced at the receiver only: its view of the data coming
                // in, as a capture would show it (its own cwnd and RTT are
                // not the data's).
                for s in &mut c.segs {
                    s.out = !s.out;
                }
                if let Some((l, r)) = c.label.split_once(" -> ") {
                    c.label = format!("{r} -> {l}");
                }
                c.rtx.clear();
                c.cwnd.clear();
                c.rtt.clear();
                c.rto.clear();
                c.traced = false;
            }
            out.push(c);
        }
    }
    Ok(out)
}

/// The connections of a capture, numbered in order of appearance, each
/// from the end that sent the most data.
fn from_pcap(bytes: &[u8], ng: bool) -> Result<Vec<Conn>, String> {
    use pcap_file::DataLink;
    let mut frames: Vec<(f64, DataLink, Vec<u8>)> = Vec::new();
    if ng {
        let mut r = pcap_file::pcapng::PcapNgReader::new(bytes)
            .map_err(|e| format!("not a pcapng capture: {e}"))?;
        let mut links = Vec::new();
        while let Some(b) = r.next_block() {
            match b.map_err(|e| format!("bad pcapng block: {e}"))? {
                pcap_file::pcapng::Block::InterfaceDescription(i) => links.push(i.linktype),
                pcap_file::pcapng::Block::EnhancedPacket(p) => {
                    let lt = links
                        .get(p.interface_id as usize)
                        .copied()
                        .unwrap_or(DataLink::ETHERNET);
                    frames.push((p.timestamp.as_secs_f64(), lt, p.data.to_vec()));
                }
                _ => {}
            }
        }
    } else {
        let mut r = pcap_file::pcap::PcapReader::new(bytes)
            .map_err(|e| format!("not a pcap capture: {e}"))?;
        let lt = r.header().datalink;
        while let Some(p) = r.next_packet() {
            let p = p.map_err(|e| format!("bad pcap record: {e}"))?;
            frames.push((p.timestamp.as_secs_f64(), lt, p.data.to_vec()));
        }
    }
    let t0 = frames.first().map_or(0.0, |f| f.0);
    // Unordered address pair -> (its number, segments as (from the lower end?, seg)).
    type Key = ((std::net::Ipv4Addr, u16), (std::net::Ipv4Addr, u16));
    let mut conns: HashMap<Key, (u64, Vec<(bool, Seg)>)> = HashMap::new();
    for (t, lt, data) in &frames {
        let ip = match *lt {
            DataLink::ETHERNET if data.len() > 14 && data[12..14] == [8, 0] => &data[14..],
            DataLink::RAW | DataLink::IPV4 => &data[..],
            DataLink::LINUX_SLL if data.len() > 16 && data[14..16] == [8, 0] => &data[16..],
            DataLink::LINUX_SLL2 if data.len() > 20 && data[0..2] == [8, 0] => &data[20..],
            DataLink::NULL | DataLink::LOOP if data.len() > 4 => &data[4..],
            _ => continue,
        };
        let Some((src, dst, seg)) = parse_ip_tcp(ip, t - t0) else {
            continue;
        };
        let low = src <= dst;
        let key = if low { (src, dst) } else { (dst, src) };
        let next = conns.len() as u64 + 1;
        conns
            .entry(key)
            .or_insert((next, Vec::new()))
            .1
            .push((low, seg));
    }
    let mut out: Vec<Conn> = conns
        .into_iter()
        .map(|(key, (id, segs))| {
            let low_bytes: u64 = segs
                .iter()
                .filter(|s| s.0)
                .map(|s| u64::from(s.1.len))
                .sum();
            let high_bytes: u64 = segs
                .iter()
                .filter(|s| !s.0)
                .map(|s| u64::from(s.1.len))
                .sum();
            let sender_low = low_bytes >= high_bytes;
            let (a, b) = if sender_low { key } else { (key.1, key.0) };
            Conn {
                id,
                label: format!("{}:{} -> {}:{}", a.0, a.1, b.0, b.1),
                segs: segs
                    .into_iter()
                    .map(|(low, mut s)| {
                        s.out = low == sender_low;
                        s
                    })
                    .collect(),
                ..Default::default()
            }
        })
        .collect();
    out.sort_by_key(|c| c.id);
    Ok(out)
}

type Addr = (std::net::Ipv4Addr, u16);

/// An IPv4 datagram's TCP segment (checksums not checked: a capture of
/// a sender with checksum offload holds them unfilled).
fn parse_ip_tcp(ip: &[u8], t: f64) -> Option<(Addr, Addr, Seg)> {
    let p = Ipv4Packet::new_checked(ip).ok()?;
    if p.protocol() != IpProtocol::Tcp || p.frag_offset() != 0 {
        return None;
    }
    let tcp = TcpPacket::new_checked(p.payload()).ok()?;
    let mut wscale = None;
    let mut sack = Vec::new();
    let mut opts = tcp.options();
    while !opts.is_empty() {
        let Ok((rest, opt)) = TcpOption::parse(opts) else {
            break;
        };
        match opt {
            TcpOption::EndOfList => break,
            TcpOption::WindowScale(w) => wscale = Some(w),
            TcpOption::SackRange(b) => sack.extend(b.iter().flatten().map(|&(l, r)| (l.0, r.0))),
            _ => {}
        }
        opts = rest;
    }
    Some((
        (p.src_addr(), tcp.src_port()),
        (p.dst_addr(), tcp.dst_port()),
        Seg {
            t,
            out: false,
            seq: tcp.seq_number().0,
            ack: tcp.ack_number().0,
            len: tcp.payload().len() as u32,
            flags: tcp.flags(),
            win: tcp.window_len(),
            wscale,
            sack,
        },
    ))
}

/// Picks connection `n` (1-based), or the one with the most data.
pub fn pick(conns: Vec<Conn>, n: Option<u64>) -> Result<Conn, String> {
    match n {
        Some(n) => {
            let ids: Vec<String> = conns.iter().map(|c| c.id.to_string()).collect();
            conns.into_iter().find(|c| c.id == n).ok_or_else(|| {
                format!(
                    "--conn {n}: no such connection; there are: {}",
                    ids.join(", ")
                )
            })
        }
        None => conns
            .into_iter()
            .max_by_key(|c| (c.data_bytes(), std::cmp::Reverse(c.id)))
            .ok_or_else(|| "no TCP connection".to_string()),
    }
}

/// Sequence numbers relative to the sender's first, unwrapped.
struct Rel {
    base: u32,
    last: i64,
}

impl Rel {
    fn new(c: &Conn) -> Rel {
        let first = c.segs.iter().find(|s| s.out);
        let base = match first {
            Some(s) if s.flags.contains(TcpFlags::SYN) => s.seq.wrapping_add(1),
            Some(s) => s.seq,
            None => 0,
        };
        Rel { base, last: 0 }
    }
    /// Nearest to the last value seen (over 2^31 apart they are taken
    /// as wrapped).
    fn at(&mut self, x: u32) -> f64 {
        let r = x.wrapping_sub(self.base);
        let d = r.wrapping_sub(self.last as u32) as i32;
        let v = self.last + i64::from(d);
        self.last = self.last.max(v);
        v as f64
    }
}

type Res = Result<(), String>;
fn e2s<E: std::fmt::Display>(e: E) -> String {
    format!("cannot draw: {e}")
}

/// A chart with time and value axes, as every graph here draws.
type Chart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One step line (a value held until the next sample), with its legend.
fn step_series<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    pts: &[(f64, f64)],
    name: &str,
    color: RGBColor,
) -> Res {
    chart
        .draw_series(step(pts).map(|p| PathElement::new(p, color.stroke_width(2))))
        .map_err(e2s)?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    Ok(())
}

/// The legend box, upper left, then the picture written out.
fn legend_and_present<'a, DB: DrawingBackend + 'a>(
    root: &DrawingArea<DB, Shift>,
    chart: &mut Chart<'a, DB>,
) -> Res {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(e2s)?;
    root.present().map_err(e2s)
}

/// Colours of the retransmission marks, by cause.
fn cause_style(cause: &str) -> (RGBColor, &'static str) {
    match cause {
        "fast_retransmit" => (RGBColor(220, 20, 20), "fast retransmit"),
        "rack" => (RGBColor(230, 120, 0), "RACK retransmit"),
        "rto" => (RGBColor(200, 0, 200), "RTO retransmit"),
        "tlp" => (RGBColor(0, 160, 170), "tail loss probe"),
        _ => (RGBColor(220, 20, 20), "retransmission"),
    }
}

fn timeseq<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &Conn) -> Res {
    let mut rel = Rel::new(c);
    let mut data: Vec<(f64, f64, f64)> = Vec::new();
    let mut rtx_marks: Vec<(f64, f64, String)> = Vec::new();
    let mut acks: Vec<(f64, f64)> = Vec::new();
    let mut wnd: Vec<(f64, f64)> = Vec::new();
    let mut sacks: Vec<(f64, f64, f64)> = Vec::new();
    let mut wscale_out = None;
    let mut wscale_in = None;
    let mut sent_max = f64::NEG_INFINITY;
    let mut traced_rtx = c.rtx.clone();
    for s in &c.segs {
        if s.flags.contains(TcpFlags::SYN) {
            if s.out {
                wscale_out = Some(s.wscale.unwrap_or(0));
            } else {
                wscale_in = Some(s.wscale.unwrap_or(0));
            }
        }
        if s.out {
            let len = s.len + u32::from(s.flags.intersects(TcpFlags::SYN | TcpFlags::FIN));
            if len == 0 {
                continue;
            }
            let a = rel.at(s.seq);
            let b = a + f64::from(len);
            data.push((s.t, a, b));
            // A retransmission: from the trace's own event, or (capture)
            // data below what was already sent.
            if c.traced {
                if let Some(i) = traced_rtx
                    .iter()
                    .position(|r| r.1 == s.seq && (r.0 - s.t).abs() < 1e-9)
                {
                    let r = traced_rtx.remove(i);
                    rtx_marks.push((s.t, a, r.3));
                }
            } else if a < sent_max {
                rtx_marks.push((s.t, a, String::new()));
            }
            sent_max = sent_max.max(b);
        } else if s.flags.contains(TcpFlags::ACK) {
            let a = rel.at(s.ack);
            // Window scaling applies only once both SYNs carried it
            // (RFC 7323 §2.2), and never to a SYN's own window.
            let shift = match (wscale_out, wscale_in) {
                (Some(_), Some(w)) if !s.flags.contains(TcpFlags::SYN) => w.min(14),
                _ => 0,
            };
            acks.push((s.t, a));
            wnd.push((s.t, a + f64::from(u32::from(s.win) << shift)));
            for &(l, r) in &s.sack {
                let (l, r) = (rel.at(l), rel.at(r));
                sacks.push((s.t, l, r));
            }
        }
    }
    let (t_min, t_max) = span(c);
    let y_max = data
        .iter()
        .map(|d| d.2)
        .chain(wnd.iter().map(|w| w.1))
        .fold(1.0, f64::max);
    root.fill(&WHITE).map_err(e2s)?;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("time-sequence graph, connection {}: {}", c.id, c.label),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(t_min..t_max, 0f64..y_max * 1.05)
        .map_err(e2s)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("relative sequence number (bytes)")
        .draw()
        .map_err(e2s)?;
    let blue = RGBColor(30, 60, 200);
    let green = RGBColor(20, 150, 40);
    let gold = RGBColor(200, 160, 0);
    let purple = RGBColor(130, 50, 170);
    chart
        .draw_series(step(&wnd).map(|p| PathElement::new(p, gold)))
        .map_err(e2s)?
        .label("receive window edge")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], gold));
    chart
        .draw_series(step(&acks).map(|p| PathElement::new(p, green)))
        .map_err(e2s)?
        .label("ACK")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], green));
    chart
        .draw_series(
            sacks
                .iter()
                .map(|&(t, l, r)| PathElement::new(vec![(t, l), (t, r)], purple.stroke_width(3))),
        )
        .map_err(e2s)?
        .label("SACKed range")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], purple.stroke_width(3)));
    chart
        .draw_series(
            data.iter()
                .map(|&(t, a, b)| PathElement::new(vec![(t, a), (t, b)], blue.stroke_width(2))),
        )
        .map_err(e2s)?
        .label("data sent")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(2)));
    let mut causes: Vec<&str> = rtx_marks.iter().map(|m| m.2.as_str()).collect();
    causes.sort_unstable();
    causes.dedup();
    for cause in causes {
        let (color, name) = cause_style(cause);
        chart
            .draw_series(
                rtx_marks
                    .iter()
                    .filter(|m| m.2 == cause)
                    .map(|&(t, a, _)| Cross::new((t, a), 6, color.stroke_width(2))),
            )
            .map_err(e2s)?
            .label(name)
            .legend(move |(x, y)| Cross::new((x + 10, y), 5, color.stroke_width(2)));
    }
    legend_and_present(root, &mut chart)
}

/// The time axis: the connection's first to last segment, with a margin.
fn span(c: &Conn) -> (f64, f64) {
    let a = c.segs.first().map_or(0.0, |s| s.t);
    let b = c.segs.last().map_or(1.0, |s| s.t).max(a + 1e-3);
    let m = (b - a) * 0.02;
    ((a - m).max(0.0), b + m)
}

/// A step line through `pts`: each value holds until the next.
fn step(pts: &[(f64, f64)]) -> impl Iterator<Item = Vec<(f64, f64)>> {
    let mut line = Vec::with_capacity(pts.len() * 2);
    for (i, &(t, y)) in pts.iter().enumerate() {
        if i > 0 {
            line.push((t, pts[i - 1].1));
        }
        line.push((t, y));
    }
    (!line.is_empty()).then_some(line).into_iter()
}

fn cwnd<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &Conn) -> Res {
    // Bytes in flight, SND.MAX - SND.UNA, after every segment.
    let mut rel = Rel::new(c);
    let (mut max, mut una) = (0f64, 0f64);
    let mut flight = Vec::new();
    for s in &c.segs {
        if s.out {
            let len = s.len + u32::from(s.flags.intersects(TcpFlags::SYN | TcpFlags::FIN));
            max = max.max(rel.at(s.seq) + f64::from(len));
        } else if s.flags.contains(TcpFlags::ACK) && !s.flags.contains(TcpFlags::SYN) {
            una = una.max(rel.at(s.ack));
        }
        flight.push((s.t, (max - una).max(0.0)));
    }
    let cw: Vec<(f64, f64)> = c.cwnd.iter().map(|x| (x.0, x.1)).collect();
    let top = cw.iter().chain(&flight).map(|p| p.1).fold(1.0, f64::max);
    // ssthresh starts "infinite" (RFC 5681 §3.1): drawn once it means something.
    let ss: Vec<(f64, f64)> = c
        .cwnd
        .iter()
        .map(|x| (x.0, x.2))
        .skip_while(|p| p.1 > top * 4.0)
        .collect();
    let (t_min, t_max) = span(c);
    root.fill(&WHITE).map_err(e2s)?;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "cwnd, ssthresh and bytes in flight, connection {}: {}",
                c.id, c.label
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(t_min..t_max, 0f64..top * 1.1)
        .map_err(e2s)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("bytes")
        .draw()
        .map_err(e2s)?;
    for (pts, name, color) in [
        (&flight, "bytes in flight", RGBColor(20, 150, 40)),
        (&cw, "cwnd", RGBColor(30, 60, 200)),
        (&ss, "ssthresh", RGBColor(220, 20, 20)),
    ] {
        step_series(&mut chart, pts, name, color)?;
    }
    legend_and_present(root, &mut chart)
}

fn rtt<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &Conn) -> Res {
    let (t_min, t_max) = span(c);
    let top = c
        .rtt
        .iter()
        .map(|r| r.1.max(r.2).max(r.3))
        .chain(c.rto.iter().map(|r| r.1))
        .fold(1.0, f64::max);
    root.fill(&WHITE).map_err(e2s)?;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("RTT, SRTT and RTO, connection {}: {}", c.id, c.label),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(t_min..t_max, 0f64..top * 1.1)
        .map_err(e2s)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("milliseconds")
        .draw()
        .map_err(e2s)?;
    let red = RGBColor(220, 20, 20);
    chart
        .draw_series(
            c.rtt
                .iter()
                .map(|r| Circle::new((r.0, r.1), 3, red.filled())),
        )
        .map_err(e2s)?
        .label("RTT sample")
        .legend(move |(x, y)| Circle::new((x + 10, y), 3, red.filled()));
    if !c.rto.is_empty() {
        let magenta = RGBColor(200, 0, 200);
        chart
            .draw_series(
                c.rto
                    .iter()
                    .map(|&(t, ms)| Cross::new((t, ms), 6, magenta.stroke_width(2))),
            )
            .map_err(e2s)?
            .label("RTO fired (timer now, backed off)")
            .legend(move |(x, y)| Cross::new((x + 10, y), 5, magenta.stroke_width(2)));
    }
    for (k, name, color) in [
        (2, "srtt", RGBColor(30, 60, 200)),
        (3, "rto", RGBColor(200, 0, 200)),
    ] {
        let pts: Vec<(f64, f64)> = c
            .rtt
            .iter()
            .map(|r| (r.0, if k == 2 { r.2 } else { r.3 }))
            .collect();
        step_series(&mut chart, &pts, name, color)?;
    }
    legend_and_present(root, &mut chart)
}

const SIZE: (u32, u32) = (1100, 650);

/// Draws `graph` of `c` to `out`: SVG, or PNG by the extension.
pub fn draw(c: &Conn, graph: Graph, out: &Path) -> Result<(), String> {
    if graph != Graph::Timeseq && !c.traced {
        return Err(format!(
            "a capture (or a trace of the receiving end) holds no {} of the sender: draw the \
             time-sequence graph (--graph timeseq), or trace the sending end with --trace FILE",
            if graph == Graph::Cwnd {
                "congestion window"
            } else {
                "RTT estimator"
            }
        ));
    }
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    fn with<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, c: &Conn, g: Graph) -> Res {
        match g {
            Graph::Timeseq => timeseq(root, c),
            Graph::Cwnd => cwnd(root, c),
            Graph::Rtt => rtt(root, c),
        }
    }
    match ext.as_deref() {
        Some("svg") => with(&SVGBackend::new(out, SIZE).into_drawing_area(), c, graph),
        Some("png") => {
            // Drawn as SVG, then rasterised (text in the system's fonts).
            let mut svg = String::new();
            with(
                &SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
                c,
                graph,
            )?;
            let png = rasterise(&svg)?;
            std::fs::write(out, png).map_err(|e| format!("cannot write {}: {e}", out.display()))
        }
        _ => Err(format!(
            "-o {}: give a file ending in .svg or .png",
            out.display()
        )),
    }
}

/// An SVG as PNG bytes.
fn rasterise(svg: &str) -> Result<Vec<u8>, String> {
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_system_fonts();
    // plotters asks for "sans-serif": the first sans face there is.
    let sans = db
        .faces()
        .flat_map(|f| f.families.iter().map(|(n, _)| n.clone()))
        .find(|n| n.contains("Sans") && !n.contains("Mono"));
    if let Some(name) = sans {
        db.set_sans_serif_family(name);
    }
    let tree =
        usvg::Tree::from_str(svg, &opt).map_err(|e| format!("cannot read the SVG drawn: {e}"))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or("cannot make a picture of that size")?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap
        .encode_png()
        .map_err(|e| format!("cannot encode PNG: {e}"))
}

/// The demo's three graphs of its transfer, from its trace, into `dir`.
pub fn demo_plots(trace: &[u8], dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    let c = pick(from_trace(trace)?, None)?;
    let mut out = Vec::new();
    for (g, name) in [
        (Graph::Timeseq, "timeseq.svg"),
        (Graph::Cwnd, "cwnd.svg"),
        (Graph::Rtt, "rtt.svg"),
    ] {
        let p = dir.join(name);
        draw(&c, g, &p)?;
        out.push(p);
    }
    Ok(out)
}

/// `ustack plot`.
pub fn run(input: &Path, conn: Option<u64>, graph: Graph, out: &Path) -> Result<String, String> {
    let c = pick(load(input)?, conn)?;
    draw(&c, graph, out)?;
    Ok(format!(
        "connection {} ({}): {:?} graph written to {}\n",
        c.id,
        c.label,
        graph,
        out.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(t: f64, out: bool, seq: u32, len: u32, flags: TcpFlags) -> Seg {
        Seg {
            t,
            out,
            seq,
            ack: 0,
            len,
            flags,
            win: 0,
            wscale: None,
            sack: Vec::new(),
        }
    }

    #[test]
    fn sequence_numbers_unwrap_across_2_to_the_32() {
        let isn = u32::MAX - 1000;
        let c = Conn {
            segs: vec![seg(0.0, true, isn, 0, TcpFlags::SYN)],
            ..Default::default()
        };
        let mut rel = Rel::new(&c);
        assert_eq!(rel.at(isn.wrapping_add(1)), 0.0);
        assert_eq!(rel.at(isn.wrapping_add(1001)), 1000.0);
        // Past the wrap: still increasing, not 4 GB back.
        assert_eq!(rel.at(isn.wrapping_add(3001)), 3000.0);
        // A retransmission below the highest seen stays below it.
        assert_eq!(rel.at(isn.wrapping_add(501)), 500.0);
        // A transfer of more than 4 GiB, a quarter of the space at a time.
        let gib = 1u64 << 30;
        for k in 1..=6u64 {
            let x = (u64::from(isn) + 1 + k * gib) as u32;
            assert_eq!(rel.at(x), (k * gib) as f64, "after {k} GiB");
        }
    }
}
