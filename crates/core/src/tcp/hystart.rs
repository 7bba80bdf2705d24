//! HyStart++ (RFC 9406): leaves slow start when the RTT rises, before
//! the queue overflows. Per round (ACKs up to SND.NXT at its start) the
//! least RTT is kept; once a round with at least 8 samples has its
//! minimum a threshold (1/8 of the last round's, within 4..16 ms) above
//! the last round's, slow start turns into Conservative Slow Start
//! (growth / 4); five rounds of CSS lead to congestion avoidance, an RTT
//! back below the baseline to slow start again (§4.2).

use ustack_wire::SeqNumber;

/// RFC 9406 §4.3 constants.
const MIN_RTT_THRESH_US: u64 = 4_000;
const MAX_RTT_THRESH_US: u64 = 16_000;
const MIN_RTT_DIVISOR: u64 = 8;
const N_RTT_SAMPLE: u32 = 8;
/// cwnd grows by this fraction of the bytes ACKed in CSS.
pub(crate) const CSS_GROWTH_DIVISOR: u32 = 4;
const CSS_ROUNDS: u32 = 5;

/// Where slow start stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Standard slow start.
    SlowStart,
    /// Conservative Slow Start (§4.2).
    Css,
    /// HyStart++ ended slow start: congestion avoidance from here on.
    Exit,
}

/// The per-connection HyStart++ state.
#[derive(Debug, Clone, Copy)]
pub struct HyStart {
    phase: Phase,
    /// SND.NXT when the current round began; `None` before the first.
    window_end: Option<SeqNumber>,
    last_round_min: u64,
    cur_round_min: u64,
    samples: u32,
    css_baseline: u64,
    css_rounds: u32,
}

impl Default for HyStart {
    fn default() -> Self {
        HyStart {
            phase: Phase::SlowStart,
            window_end: None,
            last_round_min: u64::MAX,
            cur_round_min: u64::MAX,
            samples: 0,
            css_baseline: u64::MAX,
            css_rounds: 0,
        }
    }
}

impl HyStart {
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Slow start ended otherwise (loss, ECN, timeout): HyStart++ is done.
    pub fn stop(&mut self) {
        self.phase = Phase::Exit;
    }

    /// An ACK of `ack` in slow start, SND.NXT `snd_nxt`, with its RTT
    /// sample in µs if any (§4.2). Returns the phase to grow by.
    pub fn on_ack(&mut self, ack: SeqNumber, snd_nxt: SeqNumber, rtt_us: Option<u64>) -> Phase {
        if self.phase == Phase::Exit {
            return Phase::Exit;
        }
        let round_over = self.window_end.is_none_or(|end| ack.diff(end) >= 0);
        if round_over {
            if self.phase == Phase::Css {
                self.css_rounds += 1;
                if self.css_rounds >= CSS_ROUNDS {
                    self.phase = Phase::Exit;
                    return Phase::Exit;
                }
            }
            self.window_end = Some(snd_nxt);
            self.last_round_min = self.cur_round_min;
            self.cur_round_min = u64::MAX;
            self.samples = 0;
        }
        let Some(rtt) = rtt_us else {
            return self.phase;
        };
        self.cur_round_min = self.cur_round_min.min(rtt);
        self.samples += 1;
        match self.phase {
            Phase::SlowStart
                if self.samples >= N_RTT_SAMPLE
                    && self.cur_round_min != u64::MAX
                    && self.last_round_min != u64::MAX =>
            {
                let thresh = (self.last_round_min / MIN_RTT_DIVISOR)
                    .clamp(MIN_RTT_THRESH_US, MAX_RTT_THRESH_US);
                if self.cur_round_min >= self.last_round_min.saturating_add(thresh) {
                    self.css_baseline = self.cur_round_min;
                    self.css_rounds = 0;
                    self.phase = Phase::Css;
                }
            }
            Phase::Css
                if self.samples >= N_RTT_SAMPLE && self.cur_round_min < self.css_baseline =>
            {
                // The RTT came back down: the rise was spurious (§4.2).
                self.css_baseline = u64::MAX;
                self.phase = Phase::SlowStart;
            }
            _ => {}
        }
        self.phase
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounds of 10 ACKs, 1000 bytes each, at `rtts` (µs) per round.
    fn play(h: &mut HyStart, rtts: &[u64]) -> Vec<Phase> {
        let mut seq = 0u32;
        let mut out = Vec::new();
        for &rtt in rtts {
            for _ in 0..10 {
                seq += 1000;
                h.on_ack(SeqNumber(seq), SeqNumber(seq + 10_000), Some(rtt));
            }
            out.push(h.phase());
        }
        out
    }

    #[test]
    fn a_rising_rtt_leads_through_css_to_avoidance() {
        let mut h = HyStart::default();
        // 40 ms, then 42 (below the 5 ms threshold), then 50: CSS; five
        // rounds of CSS with the RTT staying up: congestion avoidance.
        let mut rtts = vec![40_000, 40_000, 42_000];
        rtts.extend([50_000; 6]);
        let p = play(&mut h, &rtts);
        assert_eq!(p[..3], [Phase::SlowStart; 3]);
        assert_eq!(p[3..8], [Phase::Css; 5]);
        assert_eq!(p[8], Phase::Exit);
    }

    #[test]
    fn an_rtt_back_below_the_baseline_resumes_slow_start() {
        let mut h = HyStart::default();
        let p = play(&mut h, &[20_000, 30_000, 25_000]);
        assert_eq!(p, [Phase::SlowStart, Phase::Css, Phase::SlowStart]);
    }
}
