//! Explicit Congestion Notification for TCP (RFC 3168 §6.1): what one
//! connection agreed and owes. Negotiated on the SYN (ECE and CWR) and
//! SYN-ACK (ECE); data segments leave ECT(0); a receiver that gets CE
//! sets ECE on its ACKs until a segment with CWR comes; a sender that
//! gets ECE reduces cwnd as for a loss, once per window, and sets CWR on
//! its next new data.

pub use crate::config::EcnMode;
use ustack_wire::{Ipv4Packet, SeqNumber};

/// ECT(0) in the IP header's ECN field (RFC 3168 §5).
pub(crate) const ECT0: u8 = 0b10;

/// One connection's ECN state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ecn {
    /// Both ends agreed (RFC 3168 §6.1.1).
    pub ok: bool,
    /// Receiver: CE arrived; ECE on every ACK until CWR (§6.1.3).
    pub ece: bool,
    /// Sender: cwnd was reduced; CWR goes on the next new data (§6.1.2).
    pub cwr: bool,
    /// Sender: no second reduction until SND.UNA reaches this (once per window).
    pub high: SeqNumber,
}

impl Ecn {
    pub fn new(iss: SeqNumber) -> Ecn {
        Ecn {
            ok: false,
            ece: false,
            cwr: false,
            high: iss,
        }
    }

    /// Whether the SYN (or SYN-ACK, `active`) `ece`/`cwr` flags agree to
    /// ECN under `mode` (§6.1.1: a SYN with both, a SYN-ACK with ECE only).
    pub fn negotiate(mode: EcnMode, active: bool, ece: bool, cwr: bool) -> bool {
        if active {
            mode == EcnMode::On && ece && !cwr
        } else {
            mode != EcnMode::Off && ece && cwr
        }
    }

    /// A segment arrived: CWR ends the echo, CE (on data) starts it.
    /// True when a CE mark must be ACKed at once.
    pub fn on_segment(&mut self, ce: bool, cwr: bool, data: bool) -> bool {
        if !self.ok {
            return false;
        }
        if cwr {
            self.ece = false;
        }
        if ce && data {
            self.ece = true;
            return true;
        }
        false
    }

    /// An ACK with ECE: whether cwnd is to be reduced now (not already
    /// this window); `una` and `max` are SND.UNA and SND.MAX.
    pub fn on_ece(&mut self, una: SeqNumber, max: SeqNumber) -> bool {
        if !self.ok || una.diff(self.high) < 0 {
            return false;
        }
        self.high = max;
        self.cwr = true;
        true
    }
}

/// Marks an IPv4 datagram written at `ip` ECT(0), the header checksum
/// made again if `checksum` (else the device's offload makes it).
pub(crate) fn mark_ect(ip: &mut [u8], checksum: bool) {
    if ip.len() < ustack_wire::ipv4::HEADER_LEN {
        return;
    }
    let mut p = Ipv4Packet::new_unchecked(ip);
    p.set_ecn(ECT0);
    if checksum {
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_as_rfc_3168() {
        use EcnMode::*;
        assert!(Ecn::negotiate(Passive, false, true, true));
        assert!(!Ecn::negotiate(Off, false, true, true));
        assert!(!Ecn::negotiate(Passive, false, true, false));
        assert!(Ecn::negotiate(On, true, true, false));
        assert!(
            !Ecn::negotiate(Passive, true, true, false),
            "we did not ask"
        );
        assert!(
            !Ecn::negotiate(On, true, true, true),
            "ECE and CWR is not an answer"
        );
    }

    #[test]
    fn once_per_window() {
        let mut e = Ecn::new(SeqNumber(0));
        e.ok = true;
        assert!(e.on_ece(SeqNumber(1), SeqNumber(100)));
        assert!(!e.on_ece(SeqNumber(50), SeqNumber(150)));
        assert!(e.on_ece(SeqNumber(100), SeqNumber(200)));
        assert!(e.on_segment(true, false, true));
        assert!(e.ece);
        e.on_segment(false, true, true);
        assert!(!e.ece, "CWR ends the echo");
    }
}
