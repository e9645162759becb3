//! One receive window as the receiver keeps it, and when freed bytes are granted back.
//!
//! The receiver counts what the peer sent (`received`) against what the peer was
//! allowed to send (`limit` = the advertised window plus every increment granted so
//! far). Bytes that leave this side's hands are *freed*; freed bytes accumulate in
//! `unreported` and are granted back as one CREDIT once they reach
//! [`batch_threshold`]. From the peer's side:
//!
//! ```text
//! available = limit - received = window - held - unreported
//! ```
//!
//! where `held` is what the receiver still holds. `unreported < threshold ≤ window/4`
//! (or 1 for windows under 4 bytes), so once `held` is 0 the peer has more than
//! three quarters of its window: batching never leaves a sender stuck.

/// Freed bytes are granted back once they add up to this many: a quarter of the
/// window, at least 1 byte.
///
/// A quarter keeps a bulk transfer of 64 KiB chunks through a 4 MiB window to one
/// CREDIT per 16 chunks while leaving the sender three quarters of its window.
pub const fn batch_threshold(window: u64) -> u64 {
    let quarter = window / 4;
    if quarter == 0 {
        1
    } else {
        quarter
    }
}

/// A receive window (one stream's, or the link's).
#[derive(Clone, Debug)]
pub(super) struct Window {
    /// Cumulative bytes the peer may have sent: the window plus all grants.
    limit: u64,
    /// Cumulative bytes received.
    received: u64,
    /// Freed bytes not yet granted back.
    unreported: u64,
    /// Grant once `unreported` reaches this.
    threshold: u64,
}

impl Window {
    /// A fresh window of `window` bytes, nothing received.
    pub(super) fn new(window: u64) -> Window {
        Window {
            limit: window,
            received: 0,
            unreported: 0,
            threshold: batch_threshold(window),
        }
    }

    /// Counts `n` received bytes. `Err(excess)` if they go beyond the credit
    /// granted; then nothing is counted.
    pub(super) fn receive(&mut self, n: u64) -> Result<(), u64> {
        let total = self.received.saturating_add(n);
        if total > self.limit {
            return Err(total - self.limit);
        }
        self.received = total;
        Ok(())
    }

    /// Marks `n` received bytes as freed. Returns the increment to grant when the
    /// freed bytes reach the batching threshold.
    pub(super) fn free(&mut self, n: u64) -> Option<u64> {
        self.unreported = self.unreported.saturating_add(n);
        if self.unreported >= self.threshold {
            self.flush()
        } else {
            None
        }
    }

    /// Grants every freed byte now, whatever the threshold.
    pub(super) fn flush(&mut self) -> Option<u64> {
        if self.unreported == 0 {
            return None;
        }
        let increment = core::mem::take(&mut self.unreported);
        self.limit = self.limit.saturating_add(increment);
        Some(increment)
    }

    /// Bytes the peer may still send (counting grants queued but not yet sent).
    pub(super) fn available(&self) -> u64 {
        self.limit.saturating_sub(self.received)
    }

    /// Cumulative bytes received.
    pub(super) fn received(&self) -> u64 {
        self.received
    }

    /// Freed bytes waiting for the threshold.
    pub(super) fn unreported(&self) -> u64 {
        self.unreported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_a_quarter_and_never_zero() {
        assert_eq!(batch_threshold(4 * 1024 * 1024), 1024 * 1024);
        assert_eq!(batch_threshold(3), 1);
        assert_eq!(batch_threshold(0), 1);
    }

    #[test]
    fn receive_beyond_limit_reports_excess_and_counts_nothing() {
        let mut w = Window::new(100);
        assert_eq!(w.receive(60), Ok(()));
        assert_eq!(w.receive(50), Err(10));
        assert_eq!(w.received(), 60);
        assert_eq!(w.available(), 40);
    }

    #[test]
    fn grants_are_batched_at_the_threshold() {
        let mut w = Window::new(100);
        w.receive(100).expect("within window");
        assert_eq!(w.free(10), None);
        assert_eq!(w.free(14), None);
        assert_eq!(w.free(1), Some(25));
        assert_eq!(w.available(), 25);
        assert_eq!(w.free(3), None);
        assert_eq!(w.flush(), Some(3));
        assert_eq!(w.flush(), None);
        assert_eq!(w.available(), 28);
    }

    /// The no-stall argument of the module doc, checked exhaustively for small
    /// windows: a peer that sends whatever it may, and a receiver that frees
    /// everything it gets, never leaves the peer at zero.
    #[test]
    fn sender_is_never_stuck_once_receiver_holds_nothing() {
        for window in 1..64u64 {
            for chunk in 1..=window {
                let mut w = Window::new(window);
                for _ in 0..200 {
                    let n = chunk.min(w.available());
                    assert!(n > 0, "window {window} chunk {chunk}: sender stuck");
                    w.receive(n).expect("within credit");
                    let _ = w.free(n);
                    assert!(w.available() > window - batch_threshold(window));
                }
            }
        }
    }
}
