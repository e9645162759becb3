//! [`OneWayQueue`]: the bound on one-way messages a link holds ahead of its wire.
//!
//! A call is paced by its answer and a streamed body by its feeder (`PushBody`
//! resolves when the scheduler's queue for the stream runs low), but a one-way
//! message with an in-memory body has nothing to wait for: queued at once, a
//! producer faster than the wire would grow the scheduler's queue without limit.
//! So each such message takes a charge (its body and route bytes plus [`PER_MESSAGE`] for its
//! bookkeeping, at most the whole bound) from the link's queue when it is
//! queued, and gives it back when its last frame was handed to the writer or it
//! was canceled: `SendOneWay` waits while the charges of the messages queued
//! exceed the bound, so a fast producer is paced by the wire and the queue stays
//! under `LinkOptions::one_way_queue` bytes (plus one message larger than it,
//! which is admitted alone).
//!
//! The link actor takes the charge (`OneWayQueue::try_take`, else it waits with
//! `OneWayQueue::take`, without blocking its mailbox); the scheduler actor sees
//! the message's `Command::Enqueue` and notes the same charge for its stream
//! (`Charges::note`), and gives it back on `Sent` or `Cancel`
//! (`Charges::release`), or all at once when the peer lost the session or the
//! link closes.

use crate::charges::Pool;
use netcore_proto::frame::Open;
use netcore_proto::link::Message;
use netcore_proto::scheduler::Body;
use netcore_proto::MessageKind;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What a queued message costs beyond its body and route: its stream's state in
/// the scheduler, its head, the boxed command.
pub const PER_MESSAGE: usize = 64;

/// One link's bound on queued one-way bytes, shared by its link and scheduler
/// actors (cheap to clone).
#[derive(Clone, Debug)]
pub struct OneWayQueue {
    room: Arc<Semaphore>,
    bound: usize,
}

impl OneWayQueue {
    /// A queue holding at most `bound` bytes of one-way messages (at least one
    /// message, whatever its size).
    pub fn new(bound: usize) -> OneWayQueue {
        let bound = bound.clamp(PER_MESSAGE, Semaphore::MAX_PERMITS);
        OneWayQueue {
            room: Arc::new(Semaphore::new(bound)),
            bound,
        }
    }

    fn charge(&self, route_len: usize, body_len: usize) -> u32 {
        let charge = body_len
            .saturating_add(route_len)
            .saturating_add(PER_MESSAGE)
            .min(self.bound);
        u32::try_from(charge).unwrap_or(u32::MAX)
    }

    /// The charge of an outbound one-way `message` (0 for a streamed body: its
    /// feeder is paced by the scheduler already).
    pub(crate) fn charge_of(&self, message: &Message) -> u32 {
        match &message.body {
            Some(body) => self.charge(message.route.len(), body.len()),
            None => 0,
        }
    }

    /// Takes `charge` now if there is room.
    pub(crate) fn try_take(&self, charge: u32) -> bool {
        charge == 0
            || self
                .room
                .try_acquire_many(charge)
                .map(|permit| permit.forget())
                .is_ok()
    }

    /// Waits until there is room for `charge` and takes it; `false` if the queue
    /// was closed (the link is down).
    pub(crate) async fn take(self, charge: u32) -> bool {
        match self.room.acquire_many(charge).await {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Gives back a charge taken for a message that was not queued after all.
    pub(crate) fn refund(&self, charge: u32) {
        self.room.add_permits(charge as usize);
    }

    /// Fails every sender waiting for room (the link is down).
    pub(crate) fn close(&self) {
        self.room.close();
    }
}

/// The scheduler's side: a one-way message with an in-memory body is charged its
/// bytes while queued.
impl Pool for OneWayQueue {
    fn charge_of(&self, open: &Open, body: &Body) -> Option<u64> {
        match body {
            Body::Full(body) if open.kind == MessageKind::OneWay => {
                Some(u64::from(self.charge(open.route.len(), body.len())))
            }
            _ => None,
        }
    }

    fn refund(&self, charge: u64) {
        OneWayQueue::refund(self, u32::try_from(charge).unwrap_or(u32::MAX));
    }
}
