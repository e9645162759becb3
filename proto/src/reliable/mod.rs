//! The reliable mode for lossy links (serial, radio): sequence numbers,
//! acknowledgements, selective retransmission with an RFC 6298 timeout, a bounded
//! window, duplicates dropped. Sans-IO like the rest of the core: time is a
//! parameter, so every loss pattern is tested deterministically.
//!
//! ```text
//!   sender (Transmitter)                              receiver (Session)
//!   frame ─► seq = next ─► keep (head, payload) ─► wire ─► seq in window? ─► in order: deliver
//!             window full: wait                        ahead: hold (≤ window)   behind: duplicate, drop
//!   ACK(next, sack) ◄─────────────────────────────────────  cumulative + selective, delayed ≤ ack_delay
//!   drop acked, RTT sample (Karn), fast-retransmit holes below the highest sacked frame,
//!   timer: resend the oldest unacked frame, RTO doubles; max_sends reached: link failed
//! ```
//!
//! With pacing on ([`PacingConfig`], the serial framing's default), the sender also
//! learns the rate the path delivers from the ACKs and paces new frames to it
//! ([`Pacer`], whose module docs give the algorithm).
//!
//! Sequence numbers are one byte on the wire (the `SEQ` flag of the type byte); the
//! window (≤ 64) is below half the space, so every byte maps to one absolute
//! number. ACK frames carry no sequence number and are never retransmitted: the
//! receiver acknowledges again whenever a duplicate shows an ACK was lost.

mod pacer;
mod receiver;
mod rto;
mod sender;

pub use pacer::{Pacer, PacingConfig, SendStamp};
pub use receiver::Receiver;
pub use rto::{RtoConfig, RtoEstimator};
pub use sender::Sender;

use core::time::Duration;

/// Settings of the reliable mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReliableConfig {
    /// Most frames in flight unacknowledged (1..=64).
    pub window: usize,
    /// Longest wait before acknowledging in-order frames.
    pub ack_delay: Duration,
    /// Transmissions of one frame before the link is declared dead.
    pub max_sends: u32,
    /// The retransmission timeout's start and bounds.
    pub rto: RtoConfig,
}

impl Default for ReliableConfig {
    fn default() -> Self {
        ReliableConfig {
            window: 32,
            ack_delay: Duration::from_millis(5),
            max_sends: 12,
            rto: RtoConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests;
