//! The core's own clock type. The core never reads a clock: callers pass `now`.
//!
//! An [`Instant`] is a count of microseconds since an arbitrary epoch chosen
//! by whoever drives the stack (a virtual clock in tests, a monotonic clock in
//! a runtime). Durations are `std::time::Duration`.

use core::fmt;
use core::num::NonZeroU64;
use core::ops::{Add, AddAssign, Sub};
pub use std::time::Duration;

/// A point in time, in microseconds since the driver's epoch (at most
/// 2^64 − 2). Stored plus one in a `NonZeroU64`, so that an
/// `Option<Instant>` (every timer of a TCB) is 8 bytes, not 16.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    repr: NonZeroU64,
}

impl Default for Instant {
    fn default() -> Instant {
        Instant::ZERO
    }
}

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant::from_micros(0);
    /// Later than every real instant; used for "no deadline".
    pub const MAX: Instant = Instant::from_micros(u64::MAX);

    /// Saturates at [`Instant::MAX`].
    pub const fn from_micros(micros: u64) -> Instant {
        Instant {
            repr: NonZeroU64::MIN.saturating_add(micros),
        }
    }
    pub const fn from_millis(millis: u64) -> Instant {
        Instant::from_micros(millis.saturating_mul(1000))
    }
    pub const fn from_secs(secs: u64) -> Instant {
        Instant::from_micros(secs.saturating_mul(1_000_000))
    }
    pub const fn total_micros(self) -> u64 {
        self.repr.get() - 1
    }
    pub const fn total_millis(self) -> u64 {
        self.total_micros() / 1000
    }
    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.total_micros().saturating_sub(earlier.total_micros()))
    }
    pub fn checked_sub(self, d: Duration) -> Option<Instant> {
        let d = u64::try_from(d.as_micros()).ok()?;
        self.total_micros().checked_sub(d).map(Instant::from_micros)
    }
}

fn dur_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant::from_micros(self.total_micros().saturating_add(dur_micros(d)))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, d: Duration) -> Instant {
        Instant::from_micros(self.total_micros().saturating_sub(dur_micros(d)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturating: an earlier minus a later instant is zero.
    fn sub(self, other: Instant) -> Duration {
        self.saturating_duration_since(other)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.total_micros() / 1_000_000,
            self.total_micros() % 1_000_000
        )
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(1500);
        assert_eq!((t + Duration::from_millis(500)).total_millis(), 2000);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Instant::from_secs(1), Duration::from_millis(500));
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(format!("{t}"), "1.500000s");
        assert_eq!(Instant::from_micros(7).total_micros(), 7);
        assert!(Instant::from_micros(u64::MAX - 2) < Instant::MAX);
        assert_eq!(core::mem::size_of::<Option<Instant>>(), 8);
    }
}
