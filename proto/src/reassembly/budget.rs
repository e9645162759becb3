//! [`MemoryBudget`]: one memory limit for the inbound bodies of many links.
//!
//! Each link's [`Reassembly`](super::Reassembly) holds incomplete in-memory bodies
//! within its own `max_buffered_bytes`; a budget shared by the links of an
//! endpoint bounds their sum, so any number of peers cannot take the endpoint past
//! it. Every link gets [`MemoryBudget::GUARANTEED`] bytes whatever the others
//! hold (none starves), and may hold at most twice its fair share
//! (`2 × limit / links`) beyond that, so one link cannot take the whole budget
//! while others want some. Over its budget a link follows the existing rules: the
//! largest in-memory body moves to a sink, else it is refused (`Refused`).

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug)]
struct Shared {
    limit: u64,
    used: AtomicU64,
    links: AtomicUsize,
}

/// A memory limit shared by several links (cheap to clone: one `Arc`).
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    shared: Arc<Shared>,
}

impl PartialEq for MemoryBudget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for MemoryBudget {}

impl MemoryBudget {
    /// Bytes every link may hold whatever the others hold.
    pub const GUARANTEED: u64 = 16 * 1024;

    /// A budget of `limit` bytes for the links that will share it.
    pub fn new(limit: u64) -> MemoryBudget {
        MemoryBudget {
            shared: Arc::new(Shared {
                limit,
                used: AtomicU64::new(0),
                links: AtomicUsize::new(0),
            }),
        }
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.shared.limit
    }

    /// Bytes charged now, by all links.
    pub fn used(&self) -> u64 {
        self.shared.used.load(Ordering::Relaxed)
    }

    /// Links sharing the budget now.
    pub fn links(&self) -> usize {
        self.shared.links.load(Ordering::Relaxed)
    }

    /// Most a link may hold now: twice its fair share, at least [`Self::GUARANTEED`].
    pub fn link_cap(&self) -> u64 {
        let links = self.links().max(1) as u64;
        (self.shared.limit.saturating_mul(2) / links).max(Self::GUARANTEED)
    }

    /// How many more bytes a link that holds `held` may charge now.
    pub fn room(&self, held: u64) -> u64 {
        let own = self.link_cap().saturating_sub(held);
        let guaranteed = Self::GUARANTEED.saturating_sub(held);
        let free = self.shared.limit.saturating_sub(self.used());
        own.min(free).max(guaranteed)
    }

    pub(super) fn join(&self) {
        self.shared.links.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn leave(&self) {
        let _ = self
            .shared
            .links
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Charges `n` bytes held on a link's behalf outside its reassembly (bodies
    /// on their way to a spool file); give them back with [`Self::release`].
    pub fn charge(&self, n: u64) {
        self.shared.used.fetch_add(n, Ordering::Relaxed);
    }

    /// Gives back `n` bytes charged with [`Self::charge`].
    pub fn release(&self, n: u64) {
        let _ = self
            .shared
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(n))
            });
    }
}

/// One link's part of a budget: what it charged, given back when dropped (the
/// reassembly holds one for its in-memory bodies; the runtime one per link for the
/// requests it serves).
#[derive(Debug)]
pub struct Share {
    budget: Option<MemoryBudget>,
    held: u64,
}

impl Share {
    /// The part of `budget` (none: unlimited) a new link takes.
    pub fn new(budget: Option<MemoryBudget>) -> Share {
        if let Some(b) = &budget {
            b.join();
        }
        Share { budget, held: 0 }
    }

    /// How many more bytes this link may hold now (`u64::MAX` without a budget).
    pub fn room(&self) -> u64 {
        self.budget.as_ref().map_or(u64::MAX, |b| b.room(self.held))
    }

    /// Bytes this link holds now.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Records that the link now holds `n` more bytes.
    pub fn add(&mut self, n: u64) {
        self.set(self.held.saturating_add(n));
    }

    /// Records that the link gave `n` bytes back.
    pub fn sub(&mut self, n: u64) {
        self.set(self.held.saturating_sub(n));
    }

    /// Records that the link now holds `allocated` bytes.
    pub fn set(&mut self, allocated: u64) {
        if let Some(b) = &self.budget {
            if allocated > self.held {
                b.charge(allocated - self.held);
            } else {
                b.release(self.held - allocated);
            }
        }
        self.held = allocated;
    }

    pub(super) fn budget(&self) -> Option<MemoryBudget> {
        self.budget.clone()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.release(self.held);
            b.leave();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_share_the_limit_fairly_with_a_guaranteed_minimum() {
        let budget = MemoryBudget::new(1024 * 1024);
        let mut a = Share::new(Some(budget.clone()));
        assert_eq!(a.room(), 1024 * 1024, "one link: the whole limit");
        let mut others: alloc::vec::Vec<Share> =
            (0..3).map(|_| Share::new(Some(budget.clone()))).collect();
        assert_eq!(budget.links(), 4);
        assert_eq!(a.room(), 512 * 1024, "twice the fair share of four");
        a.set(512 * 1024);
        others[0].set(512 * 1024);
        assert_eq!(budget.used(), 1024 * 1024);
        // The budget is spent: the others keep their guaranteed bytes.
        assert_eq!(others[1].room(), MemoryBudget::GUARANTEED);
        assert_eq!(a.room(), 0);
        a.set(0);
        assert_eq!(budget.used(), 512 * 1024);
        drop(others);
        assert_eq!(budget.used(), 0, "a link gone gives its bytes back");
        assert_eq!(budget.links(), 1);
    }
}
