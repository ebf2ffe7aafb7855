//! The one place the driver and the runtimes' client code read the wall clock:
//! `std::time::Instant` → the core's [`unchoke_core::time::Instant`] (microseconds since
//! the client started), how long to sleep until a core deadline, and elapsed times.

use std::time::{Duration, Instant as StdInstant};

use unchoke_core::time::Instant;

/// Converts real time into core time and back, from a fixed origin.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: StdInstant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn start() -> Self {
        Clock {
            origin: StdInstant::now(),
        }
    }

    /// The core's "now".
    pub fn now(&self) -> Instant {
        let micros = self.origin.elapsed().as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// The real instant at which core time `at` falls.
    pub fn to_std(self, at: Instant) -> StdInstant {
        self.origin + std::time::Duration::from_micros(at.as_micros())
    }

    /// How long from now until core time `at` (zero if it is past), at most `cap`; `cap`
    /// when nothing is scheduled.
    pub fn until(&self, at: Option<Instant>, cap: Duration) -> Duration {
        match at {
            Some(at) => {
                let micros = at.as_micros().saturating_sub(self.now().as_micros());
                Duration::from_micros(micros).min(cap)
            }
            None => cap,
        }
    }

    /// Real time since the clock started (a stopwatch for reports).
    pub fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }
}
