//! [`WorkShare`]: the memory one link's served requests hold, within the
//! endpoint's work budget.
//!
//! A request's body stays in memory from its delivery until its handler is done
//! (waiting in the router's queue, then running), and its answer until the writer
//! took its last frame. A peer that sends requests faster than it reads the
//! answers would grow both without end. So each link charges them to its share of
//! a budget shared by the endpoint's links (a [`MemoryBudget`]: a link may hold
//! twice its fair share, and 16 KiB always), and a request or one-way message that
//! does not fit is refused before a handler sees it (a request gets CANCEL
//! `Refused`), unless the link has fewer than [`ALWAYS_ADMITTED`] messages in
//! progress (so any message the inbound limits let in can be served, and a large
//! answer being written does not get the link's next small request refused).
//!
//! The link actor admits and charges each inbound message ([`WorkShare::admit`]),
//! handing the router a [`WorkCharge`] it drops when the handler is done; the
//! scheduler actor charges each answer when it is queued and gives the charge back
//! when its last frame was handed to the writer or it was canceled
//! ([`crate::charges::Charges`]). Answers are charged whatever the share holds
//! (they exist already); the next request then waits for room.

use crate::charges::Pool;
use netcore_proto::frame::Open;
use netcore_proto::reassembly::{MemoryBudget, Share};
use netcore_proto::scheduler::Body;
use netcore_proto::MessageKind;
use std::sync::{Arc, Mutex, PoisonError};

/// What a message costs beyond its body: its head, route and headers, its
/// entries in the link's, router's and scheduler's queues.
pub const PER_MESSAGE: u64 = 256;

/// Messages (inbound ones served, answers queued) a link may have in progress
/// whatever their size.
pub const ALWAYS_ADMITTED: usize = 16;

/// A link's share and the messages it holds.
#[derive(Debug)]
struct Held {
    share: Share,
    messages: usize,
}

/// One link's share of the work budget (cheap to clone; the link and scheduler
/// actors hold the same share). Without a budget, everything is admitted.
#[derive(Clone, Debug, Default)]
pub struct WorkShare {
    share: Option<Arc<Mutex<Held>>>,
}

impl WorkShare {
    /// A new link's share of `budget` (none: unlimited).
    pub fn new(budget: Option<MemoryBudget>) -> WorkShare {
        WorkShare {
            share: budget.map(|budget| {
                Arc::new(Mutex::new(Held {
                    share: Share::new(Some(budget)),
                    messages: 0,
                }))
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Held) -> R) -> Option<R> {
        let share = self.share.as_ref()?;
        let mut share = share.lock().unwrap_or_else(PoisonError::into_inner);
        Some(f(&mut share))
    }

    /// Charges an inbound message with `body_len` bytes in memory if it fits
    /// (or the link holds nothing); `None`: refuse it.
    pub fn admit(&self, body_len: u64) -> Option<WorkCharge> {
        let cost = body_len.saturating_add(PER_MESSAGE);
        let admitted = self
            .with(|held| {
                let fits = held.messages < ALWAYS_ADMITTED || held.share.room() >= cost;
                if fits {
                    held.share.add(cost);
                    held.messages += 1;
                }
                fits
            })
            .unwrap_or(true);
        admitted.then(|| WorkCharge {
            share: self.clone(),
            cost,
        })
    }

    /// Charges one message of `n` bytes whatever the share holds.
    pub fn charge(&self, n: u64) {
        self.with(|held| {
            held.share.add(n);
            held.messages += 1;
        });
    }

    /// Gives one message of `n` bytes back.
    pub fn release(&self, n: u64) {
        self.with(|held| {
            held.share.sub(n);
            held.messages = held.messages.saturating_sub(1);
        });
    }

    /// Bytes the link holds now (0 without a budget).
    pub fn held(&self) -> u64 {
        self.with(|held| held.share.held()).unwrap_or(0)
    }
}

/// An admitted inbound message's charge, given back when dropped (the router
/// drops it when the message's handler is done).
#[derive(Debug, Default)]
pub struct WorkCharge {
    share: WorkShare,
    cost: u64,
}

impl WorkCharge {
    /// A charge on nothing (a message that bypasses the budget, in tests).
    pub fn none() -> WorkCharge {
        WorkCharge::default()
    }
}

impl Drop for WorkCharge {
    fn drop(&mut self) {
        self.share.release(self.cost);
    }
}

/// The scheduler's side: an answer is charged its body (in memory) and its
/// bookkeeping while queued.
impl Pool for WorkShare {
    fn charge_of(&self, open: &Open, body: &Body) -> Option<u64> {
        if self.share.is_none()
            || !matches!(
                open.kind,
                MessageKind::Response | MessageKind::ErrorResponse
            )
        {
            return None;
        }
        let body_len = match body {
            Body::Full(bytes) => bytes.len() as u64,
            Body::Streaming { .. } => 0,
        };
        let charge = body_len.saturating_add(PER_MESSAGE);
        self.charge(charge);
        Some(charge)
    }

    fn refund(&self, charge: u64) {
        self.release(charge);
    }
}
