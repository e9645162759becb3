//! [`SpoolBacklog`]: the body bytes a link received and has not yet written to
//! their spool files (or handed to a streaming handler's reader), and the pause
//! of the link's reader while they are too many.
//!
//! Stream credit bounds what one spooling stream holds, but a peer opening many
//! streams on many links can have all of them waiting for the disk at once, and
//! every one of those bytes is in memory (pinning the read buffer it arrived in).
//! So each chunk handed to a sink takes a [`SpoolCharge`]: it counts in the link's
//! backlog and in the endpoint's [`MemoryBudget`] for inbound bodies, and gives
//! both back when it is dropped (written, aborted, or its actor gone). The link's
//! reader waits ([`SpoolBacklog::wait_room`]) before its next read while the
//! backlog is over [`SpoolBacklog::FLOOR`] and either over the link's cap in the
//! budget or the whole budget is spent: the bytes stay in the kernel's socket
//! buffer and the peer is paced by TCP, until the disk catches up. A link whose
//! backlog is small never waits, so one peer cannot stop another's reading.

use netcore_proto::reassembly::MemoryBudget;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// One link's backlog of body bytes on their way to a sink (cheap to clone).
#[derive(Clone, Debug)]
pub struct SpoolBacklog {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pending: AtomicU64,
    budget: Option<MemoryBudget>,
    drained: Notify,
}

impl SpoolBacklog {
    /// A backlog never pauses its reader below this many bytes (one chunk and a
    /// little: enough to keep a single spooling stream's disk writes going).
    pub const FLOOR: u64 = 128 * 1024;

    /// A backlog charging `budget` (none: counted, never paused).
    pub fn new(budget: Option<MemoryBudget>) -> SpoolBacklog {
        SpoolBacklog {
            shared: Arc::new(Shared {
                pending: AtomicU64::new(0),
                budget,
                drained: Notify::new(),
            }),
        }
    }

    /// Bytes received and not yet written.
    pub fn pending(&self) -> u64 {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// Charges `len` bytes handed to a sink, given back when the charge drops.
    pub fn charge(&self, len: u64) -> SpoolCharge {
        self.shared.pending.fetch_add(len, Ordering::Relaxed);
        if let Some(budget) = &self.shared.budget {
            budget.charge(len);
        }
        SpoolCharge {
            backlog: self.clone(),
            len,
        }
    }

    /// Whether the link's reader should wait for the disk before reading more.
    pub fn over(&self) -> bool {
        let pending = self.pending();
        pending > Self::FLOOR
            && self
                .shared
                .budget
                .as_ref()
                .is_some_and(|b| pending > b.link_cap() || b.used() > b.limit())
    }

    /// Returns once the backlog is no longer [over](Self::over) its bound.
    pub async fn wait_room(&self) {
        loop {
            let drained = self.shared.drained.notified();
            if !self.over() {
                return;
            }
            drained.await;
        }
    }

    fn give_back(&self, len: u64) {
        let _ = self
            .shared
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(len))
            });
        if let Some(budget) = &self.shared.budget {
            budget.release(len);
        }
        self.shared.drained.notify_waiters();
    }
}

/// The charge of one chunk in its link's [`SpoolBacklog`]; given back on drop.
#[derive(Debug)]
pub struct SpoolCharge {
    backlog: SpoolBacklog,
    len: u64,
}

impl Drop for SpoolCharge {
    fn drop(&mut self) {
        self.backlog.give_back(self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn charges_count_in_the_budget_until_dropped() {
        let budget = MemoryBudget::new(1 << 20);
        let backlog = SpoolBacklog::new(Some(budget.clone()));
        let a = backlog.charge(1000);
        let b = backlog.charge(24);
        assert_eq!((backlog.pending(), budget.used()), (1024, 1024));
        drop(a);
        assert_eq!((backlog.pending(), budget.used()), (24, 24));
        drop(b);
        assert_eq!((backlog.pending(), budget.used()), (0, 0));
    }

    #[test]
    fn a_small_backlog_never_pauses_even_with_the_budget_spent() {
        let budget = MemoryBudget::new(64 * 1024);
        let backlog = SpoolBacklog::new(Some(budget));
        let _held = backlog.charge(SpoolBacklog::FLOOR);
        assert!(!backlog.over());
        let _more = backlog.charge(1);
        assert!(backlog.over(), "over the floor and over the budget");
    }

    #[test]
    fn over_the_floor_pauses_only_past_the_link_cap_or_a_spent_budget() {
        let budget = MemoryBudget::new(64 << 20);
        let backlog = SpoolBacklog::new(Some(budget.clone()));
        let _held = backlog.charge(2 * SpoolBacklog::FLOOR);
        assert!(!backlog.over(), "within the cap and the budget");
        let other = SpoolBacklog::new(Some(budget));
        let _spent = other.charge(64 << 20);
        assert!(backlog.over(), "the budget is spent");
    }

    #[test]
    fn without_a_budget_the_reader_never_waits() {
        let backlog = SpoolBacklog::new(None);
        let _held = backlog.charge(u64::from(u32::MAX));
        assert!(!backlog.over());
    }

    #[tokio::test]
    async fn the_reader_resumes_when_the_disk_catches_up() {
        let budget = MemoryBudget::new(256 * 1024);
        let backlog = SpoolBacklog::new(Some(budget));
        let held = backlog.charge(512 * 1024);
        let waiting = tokio::spawn({
            let backlog = backlog.clone();
            async move { backlog.wait_room().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "over the budget: the reader waits");
        drop(held);
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the reader resumes once the backlog is written")
            .expect("the waiting task ends normally");
    }
}
