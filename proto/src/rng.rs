//! [`SplitMix64`]: the one seeded pseudo-random generator of the test tooling
//! (feature `test-util`): the fault injector's decisions, the simulator's faults,
//! test data and the benchmarks' data all draw from it, so a seed means the same
//! thing everywhere and a failure replays. Small and fast, every state valid; not
//! cryptographic.

use alloc::vec::Vec;

/// splitmix64 (Steele, Lea and Flood; the seeding generator of xoshiro).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed` (any value, zero included).
    pub const fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` ≥ 1), without the bias of `%`.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let last = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&last[..rest.len()]);
        }
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = alloc::vec![0u8; len];
        self.fill(&mut bytes);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_sequence() {
        // splitmix64 from seed 0 (the published reference values).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn below_and_unit_stay_in_range() {
        let mut rng = SplitMix64::new(7);
        for bound in [1, 2, 3, 1000, u64::MAX] {
            assert!((0..1000).all(|_| rng.below(bound) < bound));
        }
        assert!((0..1000)
            .map(|_| rng.unit())
            .all(|u| (0.0..1.0).contains(&u)));
        let bytes = rng.bytes(13);
        assert_eq!(bytes.len(), 13);
    }
}
