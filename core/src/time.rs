//! The core's own notion of time: a monotonic instant injected by the caller.
//!
//! The core never reads a clock. Drivers convert `std::time::Instant` into [`Instant`] by
//! measuring from an origin of their choosing; the simulator and tests advance it by hand.
//! Durations are plain [`std::time::Duration`].

use std::ops::{Add, AddAssign, Sub};
use std::time::Duration;

/// A point in time: microseconds since an arbitrary origin chosen by the driver.
///
/// Microseconds keep rate arithmetic exact enough for 16 KiB blocks at loopback speeds and
/// last for 584,000 years before overflowing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1000))
    }

    /// An instant `secs` seconds after the origin.
    pub const fn from_secs(secs: u64) -> Self {
        Instant(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, or `None` on overflow.
    pub fn checked_add(self, d: Duration) -> Option<Instant> {
        u64::try_from(d.as_micros())
            .ok()
            .and_then(|us| self.0.checked_add(us))
            .map(Instant)
    }
}

/// The earliest of `times`, ignoring the `None`s; `None` when all are. A plain loop: the
/// session computes its next deadline after every input, and an array's
/// `into_iter().flatten().min()` cost several times the instructions.
pub fn earliest<const N: usize>(times: [Option<Instant>; N]) -> Option<Instant> {
    let mut best: Option<Instant> = None;
    for t in times {
        best = match (best, t) {
            (Some(b), Some(t)) => Some(b.min(t)),
            (None, t) => t,
            (b, None) => b,
        };
    }
    best
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at the far future instead of overflowing.
    fn add(self, d: Duration) -> Instant {
        self.checked_add(d).unwrap_or(Instant(u64::MAX))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at zero when `rhs` is later than `self`.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_ignores_nones() {
        let t = Instant::from_secs;
        assert_eq!(
            earliest([None, Some(t(3)), None, Some(t(2)), Some(t(5))]),
            Some(t(2))
        );
        assert_eq!(earliest([Some(t(1)), None]), Some(t(1)));
        assert_eq!(earliest::<2>([None, None]), None);
        assert_eq!(earliest::<0>([]), None);
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_secs(10);
        assert_eq!(
            t + Duration::from_millis(1500),
            Instant::from_micros(11_500_000)
        );
        assert_eq!(t - Instant::from_secs(4), Duration::from_secs(6));
        assert_eq!(Instant::from_secs(4) - t, Duration::ZERO);
        assert_eq!(t + Duration::MAX, Instant::from_micros(u64::MAX));
        assert_eq!(t.checked_add(Duration::MAX), None);
    }
}
