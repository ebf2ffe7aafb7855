//! The one place the driver reads the wall clock: `std::time::Instant` → the core's
//! [`unchoke_core::time::Instant`] (microseconds since the client started).

use std::time::Instant as StdInstant;

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
}
