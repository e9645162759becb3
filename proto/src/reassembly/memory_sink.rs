//! A `Vec`-backed [`BodySink`] and its factory, for tests and simulations.
//!
//! Every sink a [`MemorySinkFactory`] opens logs into a table the factory (and its
//! clones) can read back, so a test hands one clone to the [`Reassembly`] and keeps
//! another to inspect what arrived, release pending bytes, and see aborts.
//!
//! [`Reassembly`]: super::Reassembly

use super::sink::{Accepted, BodySink, SinkError, SinkFactory};
use super::MessageHead;
use crate::error::ErrorCode;
use crate::ids::StreamId;
use alloc::boxed::Box;
use alloc::vec::Vec;
use bytes::Bytes;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// What one [`MemorySink`] received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkRecord {
    /// The stream the sink was opened for.
    pub stream: StreamId,
    /// Every byte written, in order.
    pub body: Vec<u8>,
    /// Number of `write` calls.
    pub writes: usize,
    /// Bytes answered `Pending` and not yet taken by
    /// [`MemorySinkFactory::take_unreleased`].
    pub unreleased: u64,
    /// `finish` succeeded.
    pub finished: bool,
    /// `abort` was called, with this code.
    pub aborted: Option<ErrorCode>,
}

/// How the sinks of a [`MemorySinkFactory`] behave.
#[derive(Clone, Copy, Debug, Default)]
struct Behavior {
    pending: bool,
    refuse: bool,
    fail_after: Option<u64>,
    fail_finish: bool,
    prefer: bool,
}

/// Opens [`MemorySink`]s; clones share the log. For tests and simulations.
#[derive(Clone, Debug, Default)]
pub struct MemorySinkFactory {
    log: Arc<Mutex<Vec<SinkRecord>>>,
    behavior: Behavior,
}

impl MemorySinkFactory {
    /// Sinks that consume every chunk at once.
    pub fn new() -> MemorySinkFactory {
        MemorySinkFactory::default()
    }

    /// Sinks that answer [`Accepted::Pending`]: the test releases bytes with
    /// [`MemorySinkFactory::take_unreleased`] and `Reassembly::release`.
    pub fn pending() -> MemorySinkFactory {
        let mut f = MemorySinkFactory::default();
        f.behavior.pending = true;
        f
    }

    /// A factory whose `open` always returns `None` (no spooling possible).
    pub fn refusing() -> MemorySinkFactory {
        let mut f = MemorySinkFactory::default();
        f.behavior.refuse = true;
        f
    }

    /// Sinks whose `write` fails once they would hold more than `bytes`.
    pub fn failing_after(mut self, bytes: u64) -> MemorySinkFactory {
        self.behavior.fail_after = Some(bytes);
        self
    }

    /// Asks for a sink from OPEN for every multi-frame message
    /// ([`SinkFactory::prefers_sink`]).
    pub fn preferred(mut self) -> MemorySinkFactory {
        self.behavior.prefer = true;
        self
    }

    /// Sinks whose `finish` fails.
    pub fn failing_finish(mut self) -> MemorySinkFactory {
        self.behavior.fail_finish = true;
        self
    }

    /// Boxed, ready for [`Reassembly::new`](super::Reassembly::new).
    pub fn boxed(&self) -> Box<dyn SinkFactory> {
        Box::new(self.clone())
    }

    /// Every sink opened so far, in order.
    pub fn records(&self) -> Vec<SinkRecord> {
        lock(&self.log).clone()
    }

    /// The last sink opened for `stream`.
    pub fn record(&self, stream: StreamId) -> Option<SinkRecord> {
        lock(&self.log)
            .iter()
            .rev()
            .find(|r| r.stream == stream)
            .cloned()
    }

    /// Pending bytes of `stream`'s last sink not yet released, now marked
    /// released: pass them to `Reassembly::release`.
    pub fn take_unreleased(&self, stream: StreamId) -> u64 {
        lock(&self.log)
            .iter_mut()
            .rev()
            .find(|r| r.stream == stream)
            .map_or(0, |r| core::mem::take(&mut r.unreleased))
    }
}

impl SinkFactory for MemorySinkFactory {
    fn prefers_sink(&self, _: &MessageHead) -> bool {
        self.behavior.prefer
    }

    fn open(&mut self, head: &MessageHead) -> Option<Box<dyn BodySink>> {
        if self.behavior.refuse {
            return None;
        }
        let mut log = lock(&self.log);
        log.push(SinkRecord {
            stream: head.stream,
            body: Vec::new(),
            writes: 0,
            unreleased: 0,
            finished: false,
            aborted: None,
        });
        Some(Box::new(MemorySink {
            log: Arc::clone(&self.log),
            index: log.len() - 1,
            behavior: self.behavior,
        }))
    }
}

/// A sink that appends to a shared [`SinkRecord`]. For tests and simulations.
#[derive(Debug)]
pub struct MemorySink {
    log: Arc<Mutex<Vec<SinkRecord>>>,
    index: usize,
    behavior: Behavior,
}

impl MemorySink {
    fn with_record<T>(&self, f: impl FnOnce(&mut SinkRecord) -> T) -> Option<T> {
        lock(&self.log).get_mut(self.index).map(f)
    }
}

impl BodySink for MemorySink {
    fn write(&mut self, chunk: Bytes) -> Result<Accepted, SinkError> {
        let behavior = self.behavior;
        self.with_record(|r| {
            let len = r.body.len() as u64 + chunk.len() as u64;
            if behavior.fail_after.is_some_and(|max| len > max) {
                return Err(SinkError::new("memory sink full"));
            }
            r.body.extend_from_slice(&chunk);
            r.writes += 1;
            if behavior.pending {
                r.unreleased += chunk.len() as u64;
                Ok(Accepted::Pending)
            } else {
                Ok(Accepted::Consumed)
            }
        })
        .unwrap_or(Err(SinkError::new("memory sink record missing")))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if self.behavior.fail_finish {
            return Err(SinkError::new("memory sink finish failed"));
        }
        self.with_record(|r| r.finished = true);
        Ok(())
    }

    fn abort(&mut self, code: ErrorCode) {
        self.with_record(|r| r.aborted = Some(code));
    }
}

fn lock(log: &Mutex<Vec<SinkRecord>>) -> MutexGuard<'_, Vec<SinkRecord>> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}
