//! Round-trip time and retransmission time-out estimation (RFC 6298).
//!
//! `srtt` and `rttvar` are smoothed from samples taken only on packets sent once (Karn's
//! rule: an acknowledgement of a retransmitted packet cannot say which copy it answers).
//! The time-out is `srtt + 4·rttvar`, clamped to `[min_rto, max_rto]`, and doubled for each
//! consecutive time-out (the back-off), until an acknowledgement of new data resets it.

use std::time::Duration;

/// The RTT estimator of one connection.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    backoff: u32,
    initial_rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
}

impl RttEstimator {
    /// An estimator with no sample yet: its time-out is `initial_rto` until the first one.
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            backoff: 0,
            initial_rto,
            min_rto,
            max_rto: max_rto.max(min_rto),
        }
    }

    /// Feeds one round-trip measurement.
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + err) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The current time-out, back-off included.
    pub fn rto(&self) -> Duration {
        let base = match self.srtt {
            None => self.initial_rto,
            Some(srtt) => srtt + self.rttvar * 4,
        }
        .clamp(self.min_rto, self.max_rto);
        // 2^16 is plenty: `max_rto` caps the result long before.
        base.saturating_mul(1 << self.backoff.min(16))
            .min(self.max_rto)
    }

    /// One more consecutive time-out: the next one waits twice as long.
    pub fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// New data was acknowledged: the back-off ends.
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn initial_then_smoothed() {
        let mut r = RttEstimator::new(ms(1000), ms(500), ms(60_000));
        assert_eq!(r.rto(), ms(1000));
        r.sample(ms(100));
        // 100 + 4·50 = 300, clamped up to the 500 ms floor.
        assert_eq!(r.rto(), ms(500));
        for _ in 0..50 {
            r.sample(ms(400));
        }
        let srtt = r.srtt().unwrap();
        assert!(srtt > ms(390) && srtt <= ms(400), "{srtt:?}");
        assert!(r.rto() >= ms(500) && r.rto() < ms(700), "{:?}", r.rto());
    }

    #[test]
    fn back_off_doubles_up_to_the_cap() {
        let mut r = RttEstimator::new(ms(1000), ms(500), ms(8_000));
        r.sample(ms(10));
        let mut last = r.rto();
        assert_eq!(last, ms(500));
        for _ in 0..3 {
            r.back_off();
            assert_eq!(r.rto(), last * 2);
            last = r.rto();
        }
        for _ in 0..40 {
            r.back_off();
        }
        assert_eq!(r.rto(), ms(8_000));
        r.reset_backoff();
        assert_eq!(r.rto(), ms(500));
    }
}
