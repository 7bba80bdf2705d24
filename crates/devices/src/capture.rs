//! A device wrapper that writes every frame, received and sent, to a pcap
//! file (readable by tshark and Wireshark).
//!
//! With TSO a capture shows what ustack hands the kernel: a super-segment
//! as ONE TCP segment of up to 64 KiB (as tcpdump on a TSO interface
//! shows it), its checksum completed in the copy written (the frame
//! itself carries only the pseudo-header sum); received GSO super-packets
//! likewise, as one segment each.

use crate::device::{Device, DeviceStats};
use crate::pcap::PcapSink;
use std::io;
use std::os::fd::RawFd;
use ustack_core::time::Instant;
use ustack_core::Medium;

/// Captures the frames crossing `D`. A failed write stops the capture and is
/// kept for [`error`](Self::error); the device keeps working.
pub struct Captured<D> {
    inner: D,
    sink: Option<PcapSink>,
    error: Option<io::Error>,
}

impl<D: Device> Captured<D> {
    pub fn new(inner: D, sink: PcapSink) -> Self {
        Captured {
            inner,
            sink: Some(sink),
            error: None,
        }
    }

    /// The first write error, if capturing stopped.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }

    fn write(&mut self, now: Instant, frame: &[u8]) {
        if let Some(sink) = &mut self.sink {
            if let Err(e) = sink.write(now, frame).and_then(|_| sink.flush()) {
                self.error = Some(e);
                self.sink = None;
            }
        }
    }
}

impl<D: Device> Device for Captured<D> {
    fn medium(&self) -> Medium {
        self.inner.medium()
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn max_frame_len(&self) -> usize {
        self.inner.max_frame_len()
    }
    fn offloads(&self) -> crate::offload::Offloads {
        self.inner.offloads()
    }
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let got = self.inner.recv(now, buf)?;
        if let Some(n) = got {
            self.write(now, &buf[..n]);
        }
        Ok(got)
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.inner.send(now, frame)?;
        match crate::offload::tx_header(self.inner.medium(), self.inner.mtu(), frame) {
            Some(h) if h.needs_csum() => {
                let mut copy = frame.to_vec();
                let _ = ustack_core::wire::virtio::complete_checksum(
                    &mut copy,
                    usize::from(h.csum_start),
                    usize::from(h.csum_offset),
                );
                self.write(now, &copy);
            }
            _ => self.write(now, frame),
        }
        Ok(())
    }
    fn poll_at(&self) -> Option<Instant> {
        self.inner.poll_at()
    }
    fn service(&mut self, now: Instant) -> io::Result<()> {
        self.inner.service(now)
    }
    fn as_raw_fd(&self) -> Option<RawFd> {
        self.inner.as_raw_fd()
    }
    fn stats(&self) -> DeviceStats {
        self.inner.stats()
    }
}
