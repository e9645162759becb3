//! The receiving half of the reliable mode: in-order delivery, duplicates dropped,
//! out-of-order frames held (within the window), acknowledgements.

use crate::frame::{Ack, Frame};
use crate::time::Instant;
use alloc::collections::{BTreeMap, VecDeque};
use core::time::Duration;

/// Orders sequenced frames and decides when to acknowledge.
#[derive(Clone, Debug)]
pub struct Receiver {
    window: usize,
    ack_delay: Duration,
    /// Absolute sequence number expected next (= frames delivered in order).
    expected: u64,
    held: BTreeMap<u64, Frame>,
    ack_now: bool,
    ack_due: Option<Instant>,
    duplicates: u64,
}

impl Receiver {
    /// A receiver accepting frames up to `window` ahead of the next expected one
    /// and acknowledging in-order frames within `ack_delay` (out-of-order frames and
    /// duplicates at once).
    pub fn new(window: usize, ack_delay: Duration) -> Receiver {
        Receiver {
            window: window.clamp(1, 64),
            ack_delay,
            expected: 0,
            held: BTreeMap::new(),
            ack_now: false,
            ack_due: None,
            duplicates: 0,
        }
    }

    /// Frames received in order so far.
    pub fn received_total(&self) -> u64 {
        self.expected
    }

    /// Duplicate frames dropped so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// A sequenced frame arrived; frames now deliverable in order are appended to
    /// `deliver`.
    pub fn on_frame(&mut self, seq: u8, frame: Frame, now: Instant, deliver: &mut VecDeque<Frame>) {
        let offset = u64::from(seq.wrapping_sub(self.expected as u8));
        if offset >= self.window as u64 {
            // Behind the window: a duplicate of something delivered (its ACK was
            // lost), or a frame the peer could not have sent. Drop, ack at once.
            self.duplicates += 1;
            self.ack_now = true;
            return;
        }
        let abs = self.expected + offset;
        if offset > 0 {
            if self.held.insert(abs, frame).is_some() {
                self.duplicates += 1;
            }
            self.ack_now = true;
            return;
        }
        deliver.push_back(frame);
        self.expected += 1;
        while let Some(next) = self.held.remove(&self.expected) {
            deliver.push_back(next);
            self.expected += 1;
        }
        if !self.held.is_empty() {
            self.ack_now = true;
        } else if self.ack_due.is_none() {
            self.ack_due = Some(now + self.ack_delay);
        }
    }

    /// An acknowledgement to send now, if one is due.
    pub fn poll_ack(&mut self, now: Instant) -> Option<Ack> {
        let due = self.ack_now || self.ack_due.is_some_and(|t| t <= now);
        if !due {
            return None;
        }
        self.ack_now = false;
        self.ack_due = None;
        let mut selective = 0u128;
        for &abs in self.held.keys() {
            let bit = abs - self.expected - 1;
            if bit < 128 {
                selective |= 1 << bit;
            }
        }
        Some(Ack {
            next: self.expected as u8,
            selective,
        })
    }

    /// When [`Receiver::poll_ack`] has something next, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ack_due
    }
}
