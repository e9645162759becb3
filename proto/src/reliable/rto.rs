//! Retransmission timeout from measured round trips, as RFC 6298 computes it.

use core::time::Duration;

/// Bounds and the starting value of the retransmission timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtoConfig {
    /// Before the first round trip is measured (RFC 6298 says 1 s; a serial link's
    /// runtime sets it from the line rate).
    pub initial: Duration,
    /// Never below this (RFC 6298 recommends 1 s for the Internet; a direct
    /// serial link can go much lower).
    pub min: Duration,
    /// Never above this, backoff included.
    pub max: Duration,
}

impl Default for RtoConfig {
    fn default() -> Self {
        RtoConfig {
            initial: Duration::from_millis(500),
            min: Duration::from_millis(20),
            max: Duration::from_secs(10),
        }
    }
}

/// RFC 6298 estimator: smoothed RTT, RTT variance, exponential backoff.
#[derive(Clone, Copy, Debug)]
pub struct RtoEstimator {
    config: RtoConfig,
    srtt: Option<Duration>,
    rttvar: Duration,
    backoff: u32,
}

impl RtoEstimator {
    /// An estimator with no sample yet.
    pub fn new(config: RtoConfig) -> RtoEstimator {
        RtoEstimator {
            config,
            srtt: None,
            rttvar: Duration::ZERO,
            backoff: 0,
        }
    }

    /// Takes a round-trip sample (never from a retransmitted frame: Karn's rule is
    /// the caller's) and clears the backoff.
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                // RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|; SRTT = 7/8 SRTT + 1/8 R'
                self.rttvar = self.rttvar * 3 / 4 + delta / 4;
                self.srtt = Some(srtt * 7 / 8 + rtt / 8);
            }
        }
        self.backoff = 0;
    }

    /// Forgets the timeouts counted so far (the path they were counted on is gone).
    pub fn clear_backoff(&mut self) {
        self.backoff = 0;
    }

    /// A retransmission timer expired: doubles the timeout (up to `max`).
    pub fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1).min(16);
    }

    /// Consecutive backoffs since the last sample.
    pub fn backoffs(&self) -> u32 {
        self.backoff
    }

    /// The smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The round-trip time variance (RTTVAR), zero before the first sample.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// The current timeout: `SRTT + max(1 ms, 4 RTTVAR)`, doubled per backoff,
    /// clamped to `[min, max]`.
    pub fn rto(&self) -> Duration {
        let base = match self.srtt {
            None => self.config.initial,
            Some(srtt) => srtt + (self.rttvar * 4).max(Duration::from_millis(1)),
        };
        let backed_off = base
            .checked_mul(1u32 << self.backoff.min(16))
            .unwrap_or(self.config.max);
        backed_off.clamp(self.config.min, self.config.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn follows_rfc_6298() {
        let mut rto = RtoEstimator::new(RtoConfig {
            initial: ms(1000),
            min: ms(1),
            max: ms(60_000),
        });
        assert_eq!(rto.rto(), ms(1000));
        rto.sample(ms(100));
        // SRTT = 100, RTTVAR = 50: RTO = 100 + 200
        assert_eq!(rto.rto(), ms(300));
        rto.sample(ms(100));
        // RTTVAR = 37.5, SRTT = 100: RTO = 250
        assert_eq!(rto.rto(), ms(250));
        rto.back_off();
        assert_eq!(rto.rto(), ms(500));
        rto.back_off();
        assert_eq!(rto.rto(), ms(1000));
        rto.sample(ms(100));
        assert!(rto.rto() < ms(300));
    }

    #[test]
    fn clamps_and_never_overflows() {
        let mut rto = RtoEstimator::new(RtoConfig::default());
        rto.sample(ms(1));
        assert_eq!(rto.rto(), RtoConfig::default().min);
        for _ in 0..100 {
            rto.back_off();
        }
        assert_eq!(rto.rto(), RtoConfig::default().max);
    }
}
