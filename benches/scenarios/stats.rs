//! Summaries of measurements: throughput, medians of rounds, paired ratios,
//! latency percentiles.

use std::time::Duration;

/// Megabytes (10^6 bytes) per second.
pub fn mbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
}

/// The median of a few values (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// A comparison of two systems measured in the same rounds: the ratio of their
/// figures in each round (`ours[i] / theirs[i]`), so a round in which the machine
/// was slow for both cancels out, and the median of those ratios with their spread.
#[derive(Clone, Debug)]
pub struct PairedRatio {
    /// `ours[i] / theirs[i]`, round by round.
    pub rounds: Vec<f64>,
    /// The median of `rounds`.
    pub median: f64,
    /// The smallest and largest of `rounds`.
    pub spread: (f64, f64),
}

impl PairedRatio {
    /// The ratios of round-by-round figures (rounds missing on either side are left out).
    pub fn of(ours: &[f64], theirs: &[f64]) -> PairedRatio {
        let rounds: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a / b).collect();
        let finite = rounds.iter().copied().filter(|r| r.is_finite());
        let spread = finite.fold((f64::NAN, f64::NAN), |(lo, hi), r| (lo.min(r), hi.max(r)));
        PairedRatio {
            median: median(&rounds),
            rounds,
            spread,
        }
    }

    /// `0.94 (0.90–0.97)`: the median and the spread, for rows and goals.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}–{})",
            fmt_ratio(self.median),
            fmt_ratio(self.spread.0),
            fmt_ratio(self.spread.1)
        )
    }
}

/// The `p`-th percentile (0..=100) of `samples` by nearest rank;
/// `Duration::MAX` (reported as NaN) if there are none.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::MAX;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Microseconds, for reports.
pub fn us(d: Duration) -> f64 {
    if d == Duration::MAX {
        return f64::NAN;
    }
    d.as_secs_f64() * 1e6
}

/// Milliseconds, for reports.
pub fn ms(d: Duration) -> f64 {
    if d == Duration::MAX {
        return f64::NAN;
    }
    d.as_secs_f64() * 1e3
}

/// A ratio for reports, with two decimals.
pub fn fmt_ratio(r: f64) -> String {
    format!("{r:.2}")
}
