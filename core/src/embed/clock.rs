//! The std clock adapter: real time in, the core's [`Instant`] out.
//!
//! The core never reads a clock (that is what makes it deterministic and simulable); a driver
//! reads one here and passes the result as `now`. Measuring from a fixed origin keeps the
//! core's time monotonic because `std::time::Instant` is.

use std::time::{Duration, Instant as StdInstant};

use crate::time::Instant;

/// Converts `std::time::Instant` into the core's [`Instant`] (microseconds since `origin`)
/// and back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StdClock {
    /// The real instant that is the core's [`Instant::ZERO`].
    pub origin: StdInstant,
}

impl StdClock {
    /// A clock whose zero is the moment of the call.
    pub fn start() -> Self {
        StdClock {
            origin: StdInstant::now(),
        }
    }

    /// The core's "now": the time elapsed since the origin.
    pub fn now(&self) -> Instant {
        self.to_core(StdInstant::now())
    }

    /// The core instant for the real instant `at` ([`Instant::ZERO`] if `at` is before the
    /// origin, so the core's time never goes below zero).
    pub fn to_core(&self, at: StdInstant) -> Instant {
        let micros = at.saturating_duration_since(self.origin).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// The real instant at which core time `at` falls — e.g. to turn
    /// [`crate::session::Session::poll_timeout`] into a `std` deadline. Saturates at the
    /// far future rather than overflowing.
    pub fn to_std(&self, at: Instant) -> StdInstant {
        let after = Duration::from_micros(at.as_micros());
        self.origin
            .checked_add(after)
            // About 136 years: far enough to mean "never" and representable on every platform.
            .unwrap_or_else(|| self.origin + Duration::from_secs(u64::from(u32::MAX)))
    }

    /// How long to wait from `now_std` until core time `deadline` (zero if it has passed):
    /// the value for a `poll`/`select` time-out.
    pub fn until(&self, deadline: Instant, now_std: StdInstant) -> Duration {
        self.to_std(deadline).saturating_duration_since(now_std)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways_from_the_origin() {
        let origin = StdInstant::now();
        let clock = StdClock { origin };
        let later = origin + Duration::from_millis(1500);
        assert_eq!(clock.to_core(later), Instant::from_millis(1500));
        assert_eq!(clock.to_std(Instant::from_millis(1500)), later);
        assert_eq!(clock.to_core(origin), Instant::ZERO);
    }

    #[test]
    fn before_the_origin_is_zero_and_waits_are_never_negative() {
        let clock = StdClock::start();
        let earlier = clock
            .origin
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(clock.origin);
        assert_eq!(clock.to_core(earlier), Instant::ZERO);
        let at = clock.origin + Duration::from_secs(3);
        assert_eq!(clock.until(Instant::from_secs(2), at), Duration::ZERO);
        assert_eq!(
            clock.until(Instant::from_secs(5), at),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn now_is_monotonic() {
        let clock = StdClock::start();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
    }
}
