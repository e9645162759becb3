//! [`LinkId`]: names a link within the process.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Identifies a link within the process (unique, never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct LinkId(pub u64);

impl LinkId {
    /// The next unused id.
    pub(crate) fn next() -> LinkId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        LinkId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link-{}", self.0)
    }
}
