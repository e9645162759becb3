//! Sharing the link between priority classes: stride scheduling over four
//! classes, and each class's two queues of streams.

use crate::ids::{Priority, StreamId};
use alloc::collections::VecDeque;

/// Fixed-point scale of the stride passes: a frame of cost `n` advances its
/// class's pass by `n * SCALE / weight`. With weights that divide `SCALE` the
/// arithmetic is exact.
pub(super) const SCALE: u64 = 1 << 16;

/// Above this virtual time every pass is shifted down, so passes never overflow
/// on a long-lived link (the order of the passes is unchanged).
const RENORMALIZE_AT: u64 = 1 << 62;

/// Nominal wire bytes of a frame head, added to the payload when charging a
/// class: it keeps empty frames (OPEN without payload, END) from being free.
pub(super) const HEAD_COST: u64 = 8;

/// A queue entry: the stream and the serial of the message it was queued for.
pub(super) type Entry = (StreamId, u64);

/// One class's streams that have something to send.
#[derive(Debug, Default)]
pub(super) struct ClassQueues {
    /// Streams whose next frame needs no credit (OPEN without sendable bytes,
    /// END), FIFO. They go before the ring: their frames are heads only.
    pub free: VecDeque<Entry>,
    /// Streams whose next frame carries body bytes, served by deficit round
    /// robin. The front is the stream whose turn it is.
    pub ring: VecDeque<Entry>,
    /// Entries of `free` that are not stale (a cancel leaves its entry behind).
    pub live_free: usize,
    /// Entries of `ring` that are not stale.
    pub live_ring: usize,
}

impl ClassQueues {
    /// Whether this class can send now, given whether the link window is open.
    pub(super) fn ready(&self, link_open: bool) -> bool {
        self.live_free > 0 || (link_open && self.live_ring > 0)
    }
}

/// Stride scheduling (WF2Q-lite) over the classes.
///
/// Each class has a `pass`; the ready class with the smallest pass sends next
/// (ties to the more urgent class) and its pass grows by `cost * SCALE / weight`.
/// A class that becomes ready again starts at `max(pass, vtime)`: it gets no
/// credit for the time it was idle but keeps any debt.
#[derive(Debug)]
pub(super) struct Stride {
    pass: [u64; Priority::COUNT],
    weight: [u64; Priority::COUNT],
    /// Which classes were ready at the previous pick.
    was_ready: [bool; Priority::COUNT],
    /// The pass of the class picked last: the minimum pass among ready classes.
    vtime: u64,
}

impl Stride {
    /// Weights of 0 count as 1.
    pub(super) fn new(weights: [u32; Priority::COUNT]) -> Self {
        Stride {
            pass: [0; Priority::COUNT],
            weight: weights.map(|w| u64::from(w.max(1))),
            was_ready: [false; Priority::COUNT],
            vtime: 0,
        }
    }

    /// Picks the class to send next among `ready`, or `None` if none is.
    pub(super) fn pick(&mut self, ready: [bool; Priority::COUNT]) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (class, &is_ready) in ready.iter().enumerate() {
            if !is_ready {
                continue;
            }
            if !self.was_ready[class] {
                self.pass[class] = self.pass[class].max(self.vtime);
            }
            // Strictly smaller: ties stay with the more urgent (lower) class.
            if best.is_none_or(|b| self.pass[class] < self.pass[b]) {
                best = Some(class);
            }
        }
        self.was_ready = ready;
        let class = best?;
        self.vtime = self.pass[class];
        if self.vtime >= RENORMALIZE_AT {
            let base = self.vtime;
            for pass in &mut self.pass {
                *pass = pass.saturating_sub(base);
            }
            self.vtime = 0;
        }
        Some(class)
    }

    /// Charges `class` for a frame of `cost` nominal wire bytes.
    pub(super) fn charge(&mut self, class: usize, cost: u64) {
        if let (Some(pass), Some(weight)) = (self.pass.get_mut(class), self.weight.get(class)) {
            *pass = pass.saturating_add(cost.saturating_mul(SCALE) / weight);
        }
    }

    #[cfg(test)]
    pub(super) fn passes(&self) -> ([u64; Priority::COUNT], u64) {
        (self.pass, self.vtime)
    }

    #[cfg(test)]
    pub(super) fn set_passes(&mut self, pass: [u64; Priority::COUNT], vtime: u64) {
        self.pass = pass;
        self.vtime = vtime;
    }
}
