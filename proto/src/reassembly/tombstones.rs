//! A bounded memory of streams this side refused or canceled, so the frames the
//! peer had in flight for them are ignored instead of starting a new message.

use crate::ids::StreamId;
use alloc::collections::{BTreeSet, VecDeque};

/// Fewest ids remembered, whatever `max_inbound_streams` says.
pub const MIN_TOMBSTONES: usize = 16;
/// Most ids remembered: the bound on this table's memory (about 100 KiB).
pub const MAX_TOMBSTONES: usize = 4096;

/// Recently refused ids, oldest evicted first.
pub(super) struct Tombstones {
    order: VecDeque<StreamId>,
    set: BTreeSet<StreamId>,
    cap: usize,
}

impl Tombstones {
    /// Room for twice `max_inbound_streams` ids, within
    /// [`MIN_TOMBSTONES`]..=[`MAX_TOMBSTONES`].
    pub(super) fn new(max_inbound_streams: usize) -> Tombstones {
        Tombstones {
            order: VecDeque::new(),
            set: BTreeSet::new(),
            cap: max_inbound_streams
                .saturating_mul(2)
                .clamp(MIN_TOMBSTONES, MAX_TOMBSTONES),
        }
    }

    pub(super) fn insert(&mut self, id: StreamId) {
        if !self.set.insert(id) {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > self.cap {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
    }

    pub(super) fn contains(&self, id: StreamId) -> bool {
        self.set.contains(&id)
    }

    pub(super) fn len(&self) -> usize {
        self.set.len()
    }

    pub(super) fn cap(&self) -> usize {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_is_evicted_beyond_capacity() {
        let mut t = Tombstones::new(1);
        assert_eq!(t.cap(), MIN_TOMBSTONES);
        for id in 0..MIN_TOMBSTONES as u64 + 1 {
            t.insert(StreamId(id));
            t.insert(StreamId(id)); // duplicates take no room
        }
        assert_eq!(t.len(), MIN_TOMBSTONES);
        assert!(!t.contains(StreamId(0)));
        assert!(t.contains(StreamId(1)));
        assert_eq!(Tombstones::new(usize::MAX).cap(), MAX_TOMBSTONES);
    }
}
