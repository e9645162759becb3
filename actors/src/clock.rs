//! The runtime's clock and randomness: [`now`] is the protocol core's clock for
//! every actor of a link, [`random_u64`] draws HELLO nonces, session ids and
//! reconnection jitter.

use netcore_proto::Instant;

/// Microseconds since the process's first call: the protocol core's clock, shared
/// by the link and scheduler actors.
pub(crate) fn now() -> Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    Instant::from_micros(start.elapsed().as_micros() as u64)
}

/// A random 64-bit value (a HELLO nonce: random per link, so two sides never
/// pick the same).
pub(crate) fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}
