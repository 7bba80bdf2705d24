//! Which congestion controller a connection runs (`TcpConfig::congestion`,
//! TCP_CONGESTION), made here so the controllers need not know each other.

use super::bbr::Bbr;
use super::cc::{CongestionControl, Cubic, NewReno};
use crate::config::Congestion;

/// The controller a connection starts with: IW = `iw_segments` × MSS
/// (RFC 6928); CUBIC's slow start with HyStart++ if `hystart` (RFC 9406).
pub fn new_controller(
    kind: Congestion,
    mss: u32,
    iw_segments: u32,
    hystart: bool,
) -> Box<dyn CongestionControl> {
    let iw = iw_segments.max(1).saturating_mul(mss);
    match kind {
        Congestion::NewReno => Box::new(NewReno::new(iw)),
        Congestion::Cubic if hystart => Box::new(Cubic::new(iw)),
        Congestion::Cubic => Box::new(Cubic::without_hystart(iw)),
        Congestion::Bbr => Box::new(Bbr::new(iw, mss)),
    }
}
