//! Transfer-rate measurement: a sliding-window byte counter with fixed memory.
//!
//! A [`RateMeter`] is told how many bytes moved at which instant and answers with bytes per
//! second averaged over a sliding window. The window is a parameter: the choker ranks peers by
//! BitTorrent's classic rolling 20-second average ([`CHOKE_WINDOW`]); request pipelines follow
//! a shorter one ([`PIPELINE_WINDOW`]) so they react quickly to a link speeding up.
//!
//! # How it measures
//!
//! The window is split into [`BUCKETS`] equal buckets (1 s each for a 20 s window), kept in a
//! fixed ring: memory is constant whatever the traffic. The rate at `now` is the sum of the
//! buckets that overlap the last window divided by the time they span, which runs from the
//! start of the oldest bucket still in the window to `now` (so a steady rate is reported
//! exactly, not diluted by the unfinished current bucket). A meter younger than its window
//! divides by its age instead, so 1 MiB/s for 10 s reads 1 MiB/s, not half that. The divisor is
//! never less than one bucket, so a single block just after creation does not read as an
//! absurd rate.
//!
//! Time going backwards is a caller bug; it must not panic, so bytes recorded "in the past" are
//! counted in the newest bucket and rates are computed as of the newest bucket.

use std::time::Duration;

use crate::time::Instant;

/// Number of buckets a window is divided into; the window's resolution is `window / BUCKETS`.
pub const BUCKETS: usize = 20;

/// The window peers are ranked by for choking: BitTorrent's rolling 20-second average.
pub const CHOKE_WINDOW: Duration = Duration::from_secs(20);

/// A shorter window that follows rate changes quickly, for sizing request pipelines.
pub const PIPELINE_WINDOW: Duration = Duration::from_secs(5);

/// Bytes per second over a sliding window, plus the total ever recorded.
#[derive(Clone, Debug)]
pub struct RateMeter {
    /// Instant bucket 0 starts at (the meter's creation).
    start: Instant,
    /// Width of one bucket in microseconds, at least 1.
    bucket_micros: u64,
    /// Ring of byte counts; absolute bucket `i` lives at `buckets[i % BUCKETS]`.
    buckets: [u64; BUCKETS],
    /// Absolute index (counted from `start`) of the newest bucket in the ring.
    head: u64,
    /// Bytes recorded since creation (saturating).
    total: u64,
    /// The sum of every bucket in the ring, kept as buckets change, so that a rate read
    /// right after a record adds nothing up (the choker reads every interested peer's
    /// rates at every refill and round). Meaningful while `ring_sum_exact`.
    ring_sum: u64,
    /// `ring_sum` is the sum (false only after it would have overflowed: then `rate`
    /// adds the buckets up, as it always did).
    ring_sum_exact: bool,
}

impl RateMeter {
    /// A meter averaging over `window`, created at `now` (its age counts from here).
    ///
    /// Windows shorter than [`BUCKETS`] microseconds are raised to that minimum.
    pub fn new(window: Duration, now: Instant) -> Self {
        let micros = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        RateMeter {
            start: now,
            bucket_micros: (micros / BUCKETS as u64).max(1),
            buckets: [0; BUCKETS],
            head: 0,
            total: 0,
            ring_sum: 0,
            ring_sum_exact: true,
        }
    }

    /// The window actually used (a whole number of buckets).
    pub fn window(&self) -> Duration {
        Duration::from_micros(self.bucket_micros.saturating_mul(BUCKETS as u64))
    }

    /// Records that `bytes` moved at `now`.
    pub fn record(&mut self, now: Instant, bytes: u64) {
        let idx = self.index(now);
        self.advance(idx);
        let slot = self.slot(self.head);
        let before = self.buckets[slot];
        let after = before.saturating_add(bytes);
        self.buckets[slot] = after;
        self.total = self.total.saturating_add(bytes);
        self.ring_sum_changed(before, after);
    }

    /// Keeps `ring_sum` equal to the buckets' sum after one bucket went from `before` to
    /// `after`.
    fn ring_sum_changed(&mut self, before: u64, after: u64) {
        if self.ring_sum_exact {
            // `ring_sum` includes `before`, so the subtraction cannot underflow.
            match (self.ring_sum - before).checked_add(after) {
                Some(sum) => self.ring_sum = sum,
                None => self.ring_sum_exact = false,
            }
        } else {
            self.recount_ring_sum();
        }
    }

    /// Adds the ring up again (after an overflow, once buckets were cleared).
    fn recount_ring_sum(&mut self) {
        let sum = self
            .buckets
            .iter()
            .try_fold(0u64, |acc, &b| acc.checked_add(b));
        self.ring_sum_exact = sum.is_some();
        self.ring_sum = sum.unwrap_or(u64::MAX);
    }

    /// Average bytes per second over the window ending at `now`; 0 after a window of silence.
    pub fn rate(&self, now: Instant) -> u64 {
        let Some((oldest, span)) = self.window_at(now) else {
            return 0;
        };
        let sum = if self.ring_sum_exact {
            // The ring holds the buckets `head - (BUCKETS - 1) ..= head` (zeros before the
            // first): the window's sum is the ring's less those older than `oldest`. Exact,
            // as adding up is whenever it does not saturate, and the ring's sum did not.
            let ring_first = self.head.saturating_sub(BUCKETS as u64 - 1);
            (ring_first..oldest).fold(self.ring_sum, |acc, i| acc - self.buckets[self.slot(i)])
        } else {
            self.adding_up(oldest)
        };
        // In 64 bits when the product fits (always, below 18 TB in a window): the same
        // quotient without a 128-bit division.
        match sum.checked_mul(1_000_000) {
            Some(scaled) => scaled / span,
            None => per_second_wide(sum, span),
        }
    }

    /// The window ending at `now`: the oldest absolute bucket that still overlaps it and
    /// the microseconds from that bucket's start to `now` (at least one bucket); `None`
    /// after a window of silence. Never looks at a time before the newest bucket (time
    /// going backwards).
    fn window_at(&self, now: Instant) -> Option<(u64, u64)> {
        let now_micros = self
            .micros_since_start(now)
            .max(self.head * self.bucket_micros);
        let idx = now_micros / self.bucket_micros;
        let oldest = idx.saturating_sub(BUCKETS as u64 - 1);
        if oldest > self.head {
            return None;
        }
        let span = (now_micros - oldest * self.bucket_micros).max(self.bucket_micros);
        Some((oldest, span))
    }

    /// The buckets from `oldest` to the newest, added up (saturating).
    fn adding_up(&self, oldest: u64) -> u64 {
        (oldest..=self.head).fold(0u64, |acc, i| {
            acc.saturating_add(self.buckets[self.slot(i)])
        })
    }

    /// [`Self::rate`] by adding the window's buckets up and dividing in 128 bits, as it was
    /// computed before the ring's sum was kept: what the property test holds `rate` to.
    #[cfg(test)]
    fn rate_by_adding_up(&self, now: Instant) -> u64 {
        self.window_at(now).map_or(0, |(oldest, span)| {
            per_second_wide(self.adding_up(oldest), span)
        })
    }

    /// Total bytes recorded since creation (saturating at `u64::MAX`).
    pub fn total(&self) -> u64 {
        self.total
    }

    fn micros_since_start(&self, now: Instant) -> u64 {
        now.as_micros().saturating_sub(self.start.as_micros())
    }

    fn index(&self, now: Instant) -> u64 {
        self.micros_since_start(now) / self.bucket_micros
    }

    fn slot(&self, index: u64) -> usize {
        // The remainder is below BUCKETS, so the cast cannot truncate.
        (index % BUCKETS as u64) as usize
    }

    /// Moves the newest bucket to `idx`, clearing the buckets skipped over. Never moves back.
    fn advance(&mut self, idx: u64) {
        if idx <= self.head {
            return;
        }
        if idx - self.head >= BUCKETS as u64 {
            self.buckets = [0; BUCKETS];
            self.ring_sum = 0;
            self.ring_sum_exact = true;
        } else {
            for i in self.head + 1..=idx {
                let slot = self.slot(i);
                let before = std::mem::take(&mut self.buckets[slot]);
                self.ring_sum_changed(before, 0);
            }
        }
        self.head = idx;
    }
}

/// `sum` bytes over `span` microseconds, per second, in 128 bits (saturating).
fn per_second_wide(sum: u64, span: u64) -> u64 {
    let rate = u128::from(sum) * 1_000_000 / u128::from(span);
    u64::try_from(rate).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const BLOCK: u64 = 16 * 1024;

    /// Records 16 KiB blocks at `per_sec` blocks per second from `from` (exclusive) for `secs`.
    fn feed(m: &mut RateMeter, from: Instant, secs: u64, per_sec: u64) -> Instant {
        let step = 1_000_000 / per_sec;
        let mut t = from;
        for _ in 0..secs * per_sec {
            t = Instant::from_micros(t.as_micros() + step);
            m.record(t, BLOCK);
        }
        t
    }

    fn assert_near(got: u64, want: u64, tolerance_permille: u64) {
        let diff = got.abs_diff(want);
        assert!(
            diff * 1000 <= want * tolerance_permille,
            "rate {got} is not within {tolerance_permille}‰ of {want}"
        );
    }

    #[test]
    fn the_kept_sum_gives_the_rate_adding_up_gives() {
        let mut rng = fastrand::Rng::with_seed(9);
        for round in 0..300 {
            let window = [CHOKE_WINDOW, PIPELINE_WINDOW, Duration::from_micros(7)][round % 3];
            let mut now = Instant::from_micros(rng.u64(0..1_000_000_000));
            let mut m = RateMeter::new(window, now);
            for step in 0..400 {
                // Mostly forward by up to a few buckets, sometimes a long silence, now and
                // then backwards; bytes mostly block-sized, sometimes absurd (saturation).
                let micros = match rng.u8(0..20) {
                    0 => rng.u64(0..100_000_000),
                    1 => 0,
                    _ => rng.u64(0..3_000_000),
                };
                now = if rng.u8(0..50) == 0 {
                    Instant::from_micros(now.as_micros().saturating_sub(micros))
                } else {
                    now + Duration::from_micros(micros)
                };
                let bytes = match rng.u8(0..40) {
                    0 => u64::MAX - rng.u64(0..3),
                    1 => rng.u64(..),
                    _ => rng.u64(0..=BLOCK),
                };
                if rng.bool() {
                    m.record(now, bytes);
                }
                let at = now + Duration::from_micros(rng.u64(0..30_000_000));
                assert_eq!(
                    m.rate(at),
                    m.rate_by_adding_up(at),
                    "round {round}, step {step}"
                );
            }
        }
    }

    #[test]
    fn young_meter_divides_by_its_age() {
        // 1 MiB/s for 10 s in a 20 s window must read 1 MiB/s, not 0.5.
        let mut m = RateMeter::new(CHOKE_WINDOW, Instant::ZERO);
        let t = feed(&mut m, Instant::ZERO, 10, 64);
        assert_eq!(t, Instant::from_secs(10));
        assert_near(m.rate(t), MIB, 10);
        assert_eq!(m.total(), 10 * MIB);
    }

    #[test]
    fn steady_rate_is_exact_past_the_window() {
        let mut m = RateMeter::new(CHOKE_WINDOW, Instant::ZERO);
        let t = feed(&mut m, Instant::ZERO, 45, 64);
        assert_near(m.rate(t), MIB, 5);
        // Half-way through a bucket the partial bucket must not dilute the figure.
        let t = feed(&mut m, t, 1, 64);
        let mid = Instant::from_micros(t.as_micros() + 500_000);
        for i in 1..=32 {
            m.record(Instant::from_micros(t.as_micros() + i * 15_625), BLOCK);
        }
        assert_near(m.rate(mid), MIB, 5);
    }

    #[test]
    fn follows_a_rate_change_within_one_window() {
        let mut m = RateMeter::new(CHOKE_WINDOW, Instant::ZERO);
        let t = feed(&mut m, Instant::ZERO, 30, 64);
        let t = feed(&mut m, t, 10, 32);
        // Half the window at 1 MiB/s, half at 0.5 MiB/s.
        assert_near(m.rate(t), 3 * MIB / 4, 30);
        let t = feed(&mut m, t, 20, 32);
        assert_near(m.rate(t), MIB / 2, 10);
    }

    #[test]
    fn idle_for_a_window_reads_zero() {
        let mut m = RateMeter::new(CHOKE_WINDOW, Instant::ZERO);
        let t = feed(&mut m, Instant::ZERO, 10, 64);
        assert!(m.rate(t + Duration::from_secs(15)) > 0);
        assert!(m.rate(t + Duration::from_secs(19)) > 0);
        assert_eq!(m.rate(t + Duration::from_secs(21)), 0);
        assert_eq!(m.rate(t + Duration::from_secs(10_000)), 0);
        // Recording after a long silence starts from a clean window.
        let later = t + Duration::from_secs(100);
        m.record(later, MIB);
        // The window ending 10 s later starts 9 buckets before `later`: 1 MiB over 19 s.
        assert_eq!(m.rate(later + Duration::from_secs(10)), MIB / 19);
        assert_eq!(m.total(), 11 * MIB);
    }

    #[test]
    fn window_is_a_parameter() {
        let mut slow = RateMeter::new(CHOKE_WINDOW, Instant::ZERO);
        let mut fast = RateMeter::new(PIPELINE_WINDOW, Instant::ZERO);
        assert_eq!(fast.window(), PIPELINE_WINDOW);
        assert_eq!(slow.window(), CHOKE_WINDOW);
        let t = feed(&mut slow, Instant::ZERO, 10, 64);
        feed(&mut fast, Instant::ZERO, 10, 64);
        assert_near(fast.rate(t), MIB, 10);
        let later = t + Duration::from_secs(6);
        assert_eq!(fast.rate(later), 0);
        assert!(slow.rate(later) > MIB / 4);
    }

    #[test]
    fn one_block_at_creation_is_not_an_absurd_rate() {
        let mut m = RateMeter::new(CHOKE_WINDOW, Instant::ZERO);
        m.record(Instant::from_micros(1), BLOCK);
        // Divided by at least one bucket (1 s), not by 1 µs.
        assert_eq!(m.rate(Instant::from_micros(1)), BLOCK);
        assert_eq!(
            RateMeter::new(CHOKE_WINDOW, Instant::ZERO).rate(Instant::ZERO),
            0
        );
    }

    #[test]
    fn time_going_backwards_does_not_panic() {
        let start = Instant::from_secs(100);
        let mut m = RateMeter::new(CHOKE_WINDOW, start);
        m.record(Instant::from_secs(110), MIB);
        // Before the newest bucket, and even before the meter's creation.
        m.record(Instant::from_secs(105), MIB);
        m.record(Instant::ZERO, MIB);
        assert_eq!(m.total(), 3 * MIB);
        // Rates are computed as of the newest bucket: 3 MiB over 10 s.
        assert_eq!(m.rate(Instant::from_secs(50)), 3 * MIB / 10);
        assert_eq!(m.rate(Instant::from_secs(110)), 3 * MIB / 10);
    }

    #[test]
    fn extreme_inputs_saturate() {
        let mut m = RateMeter::new(Duration::ZERO, Instant::ZERO);
        assert_eq!(m.window(), Duration::from_micros(BUCKETS as u64));
        m.record(Instant::from_micros(u64::MAX), u64::MAX);
        m.record(Instant::from_micros(u64::MAX), u64::MAX);
        assert_eq!(m.total(), u64::MAX);
        assert_eq!(m.rate(Instant::from_micros(u64::MAX)), u64::MAX);
        let huge = RateMeter::new(Duration::MAX, Instant::ZERO);
        assert_eq!(huge.rate(Instant::from_micros(u64::MAX)), 0);
    }
}
