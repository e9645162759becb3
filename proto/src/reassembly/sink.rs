//! Where large bodies go, chunk by chunk: the runtime's side of spooling.

use super::MessageHead;
use crate::error::ErrorCode;
use alloc::boxed::Box;
use bytes::Bytes;
use core::fmt;

/// What a [`BodySink`] did with a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Done with it: its stream credit goes back to the peer at once.
    Consumed,
    /// Taken, still being processed: the consumer calls
    /// [`Reassembly::release`](super::Reassembly::release) with its length when done.
    /// Until then the stream's credit stays spent, which is how a slow consumer of a
    /// big message pushes back on its sender (and only on that sender's stream).
    Pending,
}

/// A body sink failed (disk full, handler gone). The stream is refused: the sink
/// is aborted and the peer gets a CANCEL with [`SinkError::code`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkError {
    /// The code sent to the peer.
    pub code: ErrorCode,
    /// What failed, for logs.
    pub reason: &'static str,
}

impl SinkError {
    /// A local failure: the peer is told [`ErrorCode::Internal`].
    pub const fn new(reason: &'static str) -> SinkError {
        SinkError {
            code: ErrorCode::Internal,
            reason,
        }
    }

    /// A failure with a specific code for the peer (e.g. [`ErrorCode::TooLarge`]
    /// when the disk is full).
    pub const fn with_code(code: ErrorCode, reason: &'static str) -> SinkError {
        SinkError { code, reason }
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "body sink failed ({}): {}", self.code, self.reason)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SinkError {}

/// Takes a large body chunk by chunk (the runtime spools it to a temp file or
/// streams it to a handler).
///
/// Calls arrive in order: any number of `write`, then exactly one of `finish` or
/// `abort` (also `abort` after a failed `write` or `finish`).
pub trait BodySink: Send {
    /// Takes the next chunk (never empty).
    fn write(&mut self, chunk: Bytes) -> Result<Accepted, SinkError>;
    /// All chunks were written: the message is complete.
    fn finish(&mut self) -> Result<(), SinkError>;
    /// The stream failed or was canceled: discard what was written.
    fn abort(&mut self, code: ErrorCode);
}

/// Opens a [`BodySink`] for a message too large for memory.
pub trait SinkFactory: Send {
    /// A sink for the message `head` describes, or `None` if it cannot be spooled
    /// now (e.g. too many messages spooling): then the stream is refused with
    /// `Refused` (only a receiver without a factory refuses a message too large for
    /// memory with `TooLarge`). It is never kept in memory
    /// instead, so the memory bounds hold whatever the factory does.
    fn open(&mut self, head: &MessageHead) -> Option<Box<dyn BodySink>>;

    /// Whether the message `head` describes should go to a sink from its OPEN even
    /// below the spool threshold (its consumer wants the chunks as they arrive).
    /// If [`SinkFactory::open`] then returns `None`, a message below the threshold
    /// is kept in memory as usual. Default: no.
    fn prefers_sink(&self, head: &MessageHead) -> bool {
        let _ = head;
        false
    }
}
