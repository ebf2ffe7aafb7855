//! LEDBAT congestion control as BEP 29 describes it (and RFC 6817 refines it).
//!
//! The peer tells us, in every packet's `timestamp_difference_microseconds`, how long our
//! last packet took to reach it — plus the unknown offset between the two clocks. The
//! minimum of those samples over the last two minutes (the *base delay*, kept as one
//! minimum per minute so old minima age out) cancels the offset; a sample minus the base is
//! the queuing delay our traffic causes. The window grows while that is below the target
//! (100 ms) and shrinks above it, in proportion to how far off target it is:
//!
//! ```text
//! off_target = (target − queuing_delay) / target          clamped to [−1, 1]
//! cwnd      += gain · off_target · bytes_acked · mss / cwnd
//! ```
//!
//! so the window changes by at most one `mss` per round trip, as fast as TCP's congestion
//! avoidance and never faster (gain 1). Before the first loss or the first time the delay
//! reaches the target the window doubles per round trip (slow start, like TCP's, capped by
//! `ssthresh`). A loss halves it; a time-out drops it to one packet. It never goes below one
//! packet (`mss`).
//!
//! Timestamps wrap at 2³² µs (71 minutes): every comparison of delays is a wrapping one.

use std::time::Duration;

use crate::time::Instant;

/// How long a per-minute minimum of the delay counts towards the base delay.
const BASE_DELAY_SLOT: Duration = Duration::from_secs(60);

/// The minimum one-way delay over the last two minutes, kept as two per-minute minima.
#[derive(Clone, Debug, Default)]
struct BaseDelay {
    /// The minimum of the minute that started at `slot_start`.
    current: Option<u32>,
    /// The minimum of the minute before it.
    previous: Option<u32>,
    slot_start: Option<Instant>,
}

/// `a < b` for wrapping microsecond values less than 35 minutes apart.
fn wrapping_less(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

impl BaseDelay {
    fn add(&mut self, sample: u32, now: Instant) {
        match self.slot_start {
            Some(start) if now - start < BASE_DELAY_SLOT => {}
            Some(start) if now - start < BASE_DELAY_SLOT * 2 => {
                self.previous = self.current.take();
                self.slot_start = Some(start + BASE_DELAY_SLOT);
            }
            _ => {
                // The first sample, or a silence of two minutes or more: both slots expired.
                self.previous = None;
                self.current = None;
                self.slot_start = Some(now);
            }
        }
        if self.current.is_none_or(|c| wrapping_less(sample, c)) {
            self.current = Some(sample);
        }
    }

    fn base(&self) -> Option<u32> {
        match (self.current, self.previous) {
            (Some(c), Some(p)) => Some(if wrapping_less(p, c) { p } else { c }),
            (c, p) => c.or(p),
        }
    }
}

/// One connection's congestion window.
#[derive(Clone, Debug)]
pub struct Ledbat {
    cwnd: usize,
    /// Slow start runs until the first loss or the delay reaching the target, and again
    /// after a time-out up to `ssthresh`.
    slow_start: bool,
    ssthresh: usize,
    mss: usize,
    target: Duration,
    base: BaseDelay,
    /// The last queuing delay measured (sample minus base).
    queuing_delay: Duration,
}

impl Ledbat {
    /// A window of `initial_packets` packets of `mss` payload bytes.
    pub fn new(mss: usize, initial_packets: usize, target: Duration) -> Self {
        let mss = mss.max(1);
        Ledbat {
            cwnd: mss * initial_packets.max(1),
            slow_start: true,
            ssthresh: usize::MAX,
            mss,
            target: target.max(Duration::from_millis(1)),
            base: BaseDelay::default(),
            queuing_delay: Duration::ZERO,
        }
    }

    /// The window, in payload bytes.
    pub fn cwnd(&self) -> usize {
        self.cwnd
    }

    /// The last measured queuing delay (the delay sample minus the base delay).
    pub fn queuing_delay(&self) -> Duration {
        self.queuing_delay
    }

    /// `true` while the window still doubles per round trip.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start && self.cwnd < self.ssthresh
    }

    /// A `timestamp_difference_microseconds` from the peer (zero means "none yet").
    pub fn on_delay_sample(&mut self, sample: u32, now: Instant) {
        if sample == 0 {
            return;
        }
        self.base.add(sample, now);
        let base = self.base.base().unwrap_or(sample);
        let queued = sample.wrapping_sub(base);
        // A sample "below" the base (by wrapping comparison) is no queuing at all.
        let queued = if queued >= 0x8000_0000 { 0 } else { queued };
        self.queuing_delay = Duration::from_micros(u64::from(queued));
    }

    /// `bytes_acked` payload bytes newly acknowledged. `window_limited`: the sender was
    /// using (nearly) the whole window, so the window is what limits it and may grow; an
    /// application-limited sender's window stays put.
    pub fn on_ack(&mut self, bytes_acked: usize, window_limited: bool) {
        if bytes_acked == 0 {
            return;
        }
        let target = self.target.as_micros() as f64;
        let delay = self.queuing_delay.as_micros() as f64;
        let off_target = ((target - delay) / target).clamp(-1.0, 1.0);
        if off_target < 0.0 && self.in_slow_start() {
            // The delay reached the target: slow start is over.
            self.slow_start = false;
        }
        if off_target > 0.0 && !window_limited {
            return;
        }
        if self.in_slow_start() {
            // TCP's slow start: one byte of window per byte acknowledged.
            self.cwnd = self.cwnd.saturating_add(bytes_acked).min(self.ssthresh);
            return;
        }
        let delta = off_target * bytes_acked as f64 * self.mss as f64 / self.cwnd as f64;
        let next = (self.cwnd as f64 + delta).max(self.mss as f64);
        // `next` is finite and at least `mss`; saturate far above any real window.
        self.cwnd = if next >= usize::MAX as f64 {
            usize::MAX
        } else {
            next as usize
        };
    }

    /// A packet was lost (duplicate ACKs or selective ACKs): halve the window.
    pub fn on_loss(&mut self) {
        self.cwnd = (self.cwnd / 2).max(self.mss);
        self.slow_start = false;
    }

    /// The last cut was for a loss that did not happen (the packet was only reordered):
    /// back to the window before it.
    pub fn restore(&mut self, cwnd: usize) {
        self.cwnd = cwnd.max(self.cwnd);
    }

    /// The retransmission timer expired: one packet, and slow start back to half of what
    /// the window was.
    pub fn on_timeout(&mut self) {
        self.ssthresh = (self.cwnd / 2).max(self.mss * 2);
        self.cwnd = self.mss;
        self.slow_start = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    #[test]
    fn slow_start_doubles_until_the_delay_reaches_the_target() {
        let mut l = Ledbat::new(MSS, 2, Duration::from_millis(100));
        let now = Instant::ZERO;
        l.on_delay_sample(50_000, now);
        for _ in 0..4 {
            let w = l.cwnd();
            l.on_ack(w, true);
            assert_eq!(l.cwnd(), w * 2);
        }
        // 150 ms of queuing: above target, the window shrinks, and slow start is over.
        l.on_delay_sample(200_000, now);
        let w = l.cwnd();
        l.on_ack(MSS, true);
        assert!(l.cwnd() < w);
        assert!(!l.in_slow_start());
    }

    #[test]
    fn congestion_avoidance_grows_at_most_one_mss_per_window() {
        let mut l = Ledbat::new(MSS, 10, Duration::from_millis(100));
        l.on_loss();
        let w = l.cwnd();
        l.on_delay_sample(10_000, Instant::ZERO);
        // One window's worth of acks with no queuing at all.
        for _ in 0..(w / MSS) {
            l.on_ack(MSS, true);
        }
        assert!(l.cwnd() > w && l.cwnd() <= w + MSS, "{} vs {w}", l.cwnd());
        // Application-limited: no growth.
        let w = l.cwnd();
        l.on_ack(MSS, false);
        assert_eq!(l.cwnd(), w);
    }

    #[test]
    fn loss_halves_and_timeout_resets_never_below_one_packet() {
        let mut l = Ledbat::new(MSS, 8, Duration::from_millis(100));
        l.on_loss();
        assert_eq!(l.cwnd(), 4 * MSS);
        for _ in 0..10 {
            l.on_loss();
        }
        assert_eq!(l.cwnd(), MSS);
        l.on_timeout();
        assert_eq!(l.cwnd(), MSS);
    }

    #[test]
    fn base_delay_is_a_two_minute_minimum_and_wraps() {
        let mut b = BaseDelay::default();
        b.add(5_000, Instant::from_secs(0));
        b.add(9_000, Instant::from_secs(30));
        assert_eq!(b.base(), Some(5_000));
        b.add(7_000, Instant::from_secs(70));
        assert_eq!(b.base(), Some(5_000), "last minute's minimum still counts");
        b.add(8_000, Instant::from_secs(130));
        assert_eq!(b.base(), Some(7_000), "the first minute aged out");
        // Across the 2^32 wrap, a small value is "after" a huge one.
        let mut b = BaseDelay::default();
        b.add(u32::MAX - 10, Instant::ZERO);
        b.add(20, Instant::ZERO);
        assert_eq!(b.base(), Some(u32::MAX - 10));
        let mut l = Ledbat::new(MSS, 2, Duration::from_millis(100));
        l.on_delay_sample(u32::MAX - 10, Instant::ZERO);
        l.on_delay_sample(20, Instant::ZERO);
        assert_eq!(l.queuing_delay(), Duration::from_micros(31));
    }
}
