//! Packet capture to classic pcap files readable by tshark/Wireshark.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use byteorder_slice::LittleEndian;
use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};
use ustack_core::time::Instant;

/// Largest frame stored whole; longer frames are truncated (original length kept).
pub const SNAPLEN: u32 = 262_144;

/// What the captured frames start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// Raw IP packets, no link header (LINKTYPE_RAW, 101).
    Ip,
    /// Ethernet II frames (LINKTYPE_ETHERNET, 1).
    Ethernet,
}

impl LinkKind {
    fn datalink(self) -> DataLink {
        match self {
            LinkKind::Ip => DataLink::RAW,
            LinkKind::Ethernet => DataLink::ETHERNET,
        }
    }
}

/// A pcap writer (little-endian, microsecond timestamps) over any `Write`.
///
/// The stack's clock starts at zero, so by default the first frame is
/// stamped with the wall-clock time it was written and every later frame
/// that plus its distance on the stack's clock: real dates in Wireshark,
/// exact spacing. [`PcapSink::with_epoch`] pins the stamps instead.
pub struct PcapSink {
    out: Box<dyn Write + Send>,
    kind: LinkKind,
    frames: u64,
    epoch: Epoch,
}

/// How a stack time becomes a pcap timestamp (time since the Unix epoch).
#[derive(Debug, Clone, Copy)]
enum Epoch {
    /// Stack time zero is this long after the Unix epoch.
    Fixed(Duration),
    /// Anchored to the wall clock at the first frame (stack time, wall time).
    Wall(Option<(Instant, Duration)>),
}

impl fmt::Debug for PcapSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PcapSink")
            .field("kind", &self.kind)
            .field("frames", &self.frames)
            .finish()
    }
}

fn to_io(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
    }
}

impl PcapSink {
    /// Creates (truncates) `path` and writes the pcap header, buffered.
    pub fn create(path: &Path, kind: LinkKind) -> io::Result<Self> {
        Self::new(BufWriter::new(File::create(path)?), kind)
    }

    /// Writes the pcap header to `w`.
    pub fn new<W: Write + Send + 'static>(w: W, kind: LinkKind) -> io::Result<Self> {
        let mut out: Box<dyn Write + Send> = Box::new(w);
        let header = PcapHeader {
            snaplen: SNAPLEN,
            datalink: kind.datalink(),
            ts_resolution: TsResolution::MicroSecond,
            endianness: Endianness::Little,
            ..PcapHeader::default()
        };
        header.write_to(&mut out).map_err(to_io)?;
        Ok(PcapSink {
            out,
            kind,
            frames: 0,
            epoch: Epoch::Wall(None),
        })
    }

    /// Stamps each frame `epoch + at` instead of anchoring to the wall
    /// clock (`Duration::ZERO`: the stack's own clock, for reproducible
    /// captures of simulated runs).
    pub fn with_epoch(mut self, epoch: Duration) -> Self {
        self.epoch = Epoch::Fixed(epoch);
        self
    }

    fn stamp(&mut self, at: Instant) -> Duration {
        let at_us = Duration::from_micros(at.total_micros());
        match &mut self.epoch {
            Epoch::Fixed(e) => *e + at_us,
            Epoch::Wall(anchor) => {
                let (t0, wall0) = *anchor.get_or_insert_with(|| {
                    let wall = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default();
                    (at, wall)
                });
                let since =
                    Duration::from_micros(at.total_micros().saturating_sub(t0.total_micros()));
                // A frame stamped before the first one (clocks may differ
                // between threads by a little) keeps the anchor's time.
                wall0 + since
            }
        }
    }

    /// Appends one frame stamped `at`.
    pub fn write(&mut self, at: Instant, frame: &[u8]) -> io::Result<()> {
        let orig_len = u32::try_from(frame.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame longer than 4 GiB"))?;
        let kept = &frame[..frame.len().min(SNAPLEN as usize)];
        let ts = self.stamp(at);
        PcapPacket::new(ts, orig_len, kept)
            .write_to::<_, LittleEndian>(&mut self.out, TsResolution::MicroSecond, SNAPLEN)
            .map_err(to_io)?;
        self.frames += 1;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    pub fn kind(&self) -> LinkKind {
        self.kind
    }
}
