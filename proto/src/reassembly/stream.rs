//! One inbound stream being reassembled: its window, and where its body goes.

use super::credit::Window;
use super::sink::BodySink;
use super::stall::StreamClock;
use super::MessageHead;
use alloc::boxed::Box;
use alloc::vec::Vec;

/// Where a live inbound stream's body is going (see the diagram in the
/// [module doc](super)). Complete, refused and canceled streams are no longer live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamState {
    /// The body is collected in memory; it comes out as one
    /// [`InboundEvent::Message`](super::InboundEvent::Message).
    Buffering,
    /// The body goes chunk by chunk to a [`BodySink`].
    Spooling,
}

/// A live inbound stream.
pub(super) struct Inbound {
    /// The stream's flow-control window; `received` is the body length so far.
    pub(super) window: Window,
    /// The body length announced by OPEN.
    pub(super) total_len: Option<u64>,
    /// Where the body goes.
    pub(super) body: Body,
    /// Its stall timeout's state.
    pub(super) stall: StreamClock,
}

impl Inbound {
    pub(super) fn state(&self) -> StreamState {
        match self.body {
            Body::Memory(_) => StreamState::Buffering,
            Body::Sink(_) => StreamState::Spooling,
        }
    }
}

/// Where the body goes.
pub(super) enum Body {
    /// Collected in memory.
    Memory(MemoryBody),
    /// Handed to a sink.
    Sink(SinkBody),
}

/// A body collected in memory, with the head it will be delivered with.
pub(super) struct MemoryBody {
    pub(super) head: MessageHead,
    pub(super) buf: Vec<u8>,
}

impl MemoryBody {
    /// Bytes held.
    pub(super) fn len(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Bytes allocated.
    pub(super) fn capacity(&self) -> u64 {
        self.buf.capacity() as u64
    }
}

/// A body handed to a sink.
pub(super) struct SinkBody {
    pub(super) sink: Box<dyn BodySink>,
    /// Bytes the sink answered `Pending` for and has not released yet.
    pub(super) pending: u64,
    /// Of `pending`, the leading bytes whose stream credit was already returned
    /// (they were buffered in memory before the stream moved to the sink).
    pub(super) precredited: u64,
}

impl SinkBody {
    pub(super) fn new(sink: Box<dyn BodySink>) -> SinkBody {
        SinkBody {
            sink,
            pending: 0,
            precredited: 0,
        }
    }

    /// The consumer finished `n` pending bytes (clamped to what is pending).
    /// Returns the stream credit this frees. Sinks consume in order, so the
    /// precredited bytes, written first, are released first.
    pub(super) fn release(&mut self, n: u64) -> u64 {
        let n = n.min(self.pending);
        self.pending -= n;
        let precredited = n.min(self.precredited);
        self.precredited -= precredited;
        n - precredited
    }
}

/// `x` as a `usize`, saturating (limits are `u64`; 32-bit targets exist).
pub(super) fn to_usize(x: u64) -> usize {
    usize::try_from(x).unwrap_or(usize::MAX)
}

/// The capacity to grow a buffer of capacity `cap` to so it holds `needed` bytes:
/// doubling (amortized copies) but never above `limit` (what the message may reach
/// in memory) nor `room` (what the memory budget has left for this buffer).
/// `None` if `needed` does not fit in `room`.
pub(super) fn grow_target(cap: u64, needed: u64, limit: u64, room: u64) -> Option<u64> {
    if needed > room {
        return None;
    }
    Some(cap.saturating_mul(2).min(limit).min(room).max(needed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_doubles_within_limit_and_room() {
        assert_eq!(grow_target(0, 10, 1000, 1000), Some(10));
        assert_eq!(grow_target(10, 11, 1000, 1000), Some(20));
        assert_eq!(grow_target(600, 601, 1000, 1000), Some(1000));
        assert_eq!(grow_target(600, 601, 1000, 700), Some(700));
        assert_eq!(grow_target(600, 601, 300, 700), Some(601));
        assert_eq!(grow_target(600, 801, 1000, 700), None);
    }
}
