//! One outbound message: its unsent body, its credit, its place in its class.
//!
//! The body is kept as the `Bytes` it was handed in; a chunk is a slice of the
//! front buffer (`split_to`), so payload bytes are never copied. A chunk never
//! spans two pushed buffers.

use crate::frame::{Data, End, Frame, Open};
use crate::ids::StreamId;
use alloc::collections::VecDeque;
use bytes::Bytes;

/// Which of its class's queues a stream sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// In no queue: blocked (no credit, no bytes) or not yet allowed to start.
    Idle,
    /// In the class's free queue: the next frame needs no credit (OPEN without
    /// sendable bytes, or END).
    Free,
    /// In the class's DRR ring: the next frame carries body bytes.
    Ring,
}

/// State of one queued outbound message.
#[derive(Debug)]
pub(super) struct OutStream {
    /// Distinguishes this message from an earlier one on the same id, so queue
    /// entries left behind by a cancel are recognized as stale.
    pub serial: u64,
    /// Priority class index.
    pub class: usize,
    /// The OPEN, until it is handed out.
    pub head: Option<Open>,
    /// The buffer being chunked; empty only when `rest` is empty too.
    front: Bytes,
    /// Further pushed buffers, in order.
    rest: VecDeque<Bytes>,
    /// Unsent body bytes (`front` plus `rest`).
    pub queued: u64,
    /// The body is complete: no more bytes will be pushed.
    pub fin_queued: bool,
    /// Body given with `Body::Streaming` (accepts `push_body`).
    pub streaming: bool,
    /// Full bodies: their length. Streaming bodies: the announced total, if any.
    pub total_len: Option<u64>,
    /// Body bytes handed to the scheduler so far.
    pub pushed: u64,
    /// Body bytes the peer still lets this stream send.
    pub credit: u64,
    /// The peer's initial window has been applied (streams wait for it).
    pub credit_known: bool,
    /// Deficit round robin: payload bytes this stream may still send in its turn.
    pub deficit: u64,
    /// Deficit round robin: the stream's turn has begun (quantum added).
    pub in_turn: bool,
    /// Which queue of its class holds it.
    pub place: Place,
    /// A `WantsBody` was raised since the last `push_body`.
    pub asked: bool,
}

impl OutStream {
    pub(super) fn new(serial: u64, head: Open, streaming: bool, total_len: Option<u64>) -> Self {
        OutStream {
            serial,
            class: head.priority.index(),
            head: Some(head),
            front: Bytes::new(),
            rest: VecDeque::new(),
            queued: 0,
            fin_queued: false,
            streaming,
            total_len,
            pushed: 0,
            credit: 0,
            credit_known: false,
            deficit: 0,
            in_turn: false,
            place: Place::Idle,
            asked: false,
        }
    }

    /// Appends body bytes (empty buffers are dropped).
    pub(super) fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        let len = bytes.len() as u64;
        self.queued = self.queued.saturating_add(len);
        self.pushed = self.pushed.saturating_add(len);
        if self.front.is_empty() {
            self.front = bytes;
        } else {
            self.rest.push_back(bytes);
        }
    }

    /// Which queue the stream belongs in now, ignoring the link window (the
    /// scheduler checks that once for all streams).
    pub(super) fn need(&self) -> Place {
        if !self.credit_known {
            return Place::Idle;
        }
        let has_sendable = self.queued > 0 && self.credit > 0;
        if self.head.is_some() {
            if has_sendable {
                Place::Ring
            } else {
                Place::Free
            }
        } else if has_sendable {
            Place::Ring
        } else if self.queued == 0 && self.fin_queued {
            Place::Free
        } else {
            Place::Idle
        }
    }

    /// Payload length of the next frame: chunk length, both credits and the
    /// current buffer all bound it.
    pub(super) fn sendable_len(&self, chunk_len: usize, link_credit: u64) -> usize {
        chunk_len
            .min(saturating_usize(self.credit))
            .min(saturating_usize(link_credit))
            .min(self.front.len())
    }

    /// Takes up to `len` bytes off the front buffer, without copying.
    fn take(&mut self, len: usize) -> Bytes {
        let out = if len >= self.front.len() {
            let out = core::mem::take(&mut self.front);
            if let Some(next) = self.rest.pop_front() {
                self.front = next;
            }
            out
        } else {
            self.front.split_to(len)
        };
        let n = out.len() as u64;
        self.queued = self.queued.saturating_sub(n);
        self.credit = self.credit.saturating_sub(n);
        out
    }

    /// Builds the next frame of this message with `len` payload bytes (the caller
    /// has checked `len` against [`OutStream::sendable_len`] and charges the link
    /// window). Returns the frame and whether it is the message's last, or `None`
    /// when the message has nothing to send without bytes.
    pub(super) fn next_frame(&mut self, stream: StreamId, len: usize) -> Option<(Frame, bool)> {
        if len == 0 && self.head.is_none() && !(self.queued == 0 && self.fin_queued) {
            return None;
        }
        let payload = self.take(len);
        let fin = self.fin_queued && self.queued == 0;
        if let Some(mut open) = self.head.take() {
            open.payload = payload;
            open.fin = fin;
            // A total on a FIN-carrying OPEN says nothing the frame does not.
            open.total_len = if fin { None } else { self.total_len };
            Some((Frame::Open(open), fin))
        } else if !payload.is_empty() {
            Some((
                Frame::Data(Data {
                    stream,
                    payload,
                    fin,
                }),
                fin,
            ))
        } else {
            // The last bytes left before the body was known to be complete.
            Some((Frame::End(End { stream }), true))
        }
    }
}

/// `u64` to `usize`, saturating on 32-bit targets.
pub(super) fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
