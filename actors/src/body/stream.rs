//! [`BodyStream`]: an inbound body handed to its handler as it arrives, chunk by
//! chunk, instead of being reassembled in memory or spooled to a file first
//! (routes listed in
//! `SpoolLimits::stream_routes`).
//!
//! The handler runs as soon as the message opens. Every chunk holds its stream's
//! credit until the handler took it, so a slow handler pushes back on the sender
//! (flow control) and the link never holds more than the stream window of a
//! streamed body, whatever the peer does. Credit goes back in batches of a quarter
//! window, and at once whenever the handler caught up (waits for more), so the
//! sender never stalls on credit the handler already freed.
//!
//! A handler that drops the stream before its end cancels the message: the peer
//! gets a CANCEL and stops sending (its call fails with `Canceled`, unless the
//! handler's answer reached it first).

use crate::error::{CallError, DownReason};
use actix::prelude::*;
use bytes::Bytes;
use netcore_proto::reassembly::{Accepted, BodySink, MessageHead, SinkError};
use netcore_proto::{ErrorCode, StreamId};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What travels from the protocol core to the handler.
enum Item {
    Chunk(Bytes),
    End,
    Aborted(ErrorCode),
}

/// Bytes of a stream's body that were consumed (written to disk, taken by the
/// handler): their credit goes back to the peer. Sent to the stream's link actor.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Release {
    /// The stream.
    pub stream: StreamId,
    /// Bytes consumed.
    pub len: u64,
}

/// Opens the channel of one streamed body: the sink goes into the protocol core,
/// the stream to whoever hands it to the router with the head (the link actor).
/// Credit of consumed chunks goes to `release`.
pub(crate) fn open(
    head: &MessageHead,
    release: Recipient<Release>,
    live: Arc<AtomicUsize>,
    release_every: u64,
) -> (BodyStream, Box<dyn BodySink>) {
    // Unbounded, but what it holds is bounded by the stream's credit (chunks are
    // `Pending` until taken).
    let (tx, rx) = mpsc::unbounded_channel();
    live.fetch_add(1, Ordering::Relaxed);
    let stream = BodyStream {
        rx,
        release,
        stream: head.stream,
        total: head.total_len,
        received: 0,
        unreleased: 0,
        release_every: release_every.max(1),
        live,
        finished: false,
    };
    (stream, Box::new(ChannelSink { tx }))
}

/// The protocol core's side: forwards chunks, the end or the abort.
struct ChannelSink {
    tx: mpsc::UnboundedSender<Item>,
}

impl ChannelSink {
    fn send(&self, item: Item) -> Result<(), SinkError> {
        self.tx.send(item).map_err(|_| {
            SinkError::with_code(ErrorCode::Canceled, "the handler dropped the body stream")
        })
    }
}

impl BodySink for ChannelSink {
    fn write(&mut self, chunk: Bytes) -> Result<Accepted, SinkError> {
        self.send(Item::Chunk(chunk))?;
        Ok(Accepted::Pending)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.send(Item::End)
    }

    fn abort(&mut self, code: ErrorCode) {
        let _ = self.send(Item::Aborted(code));
    }
}

/// A large inbound body, delivered as it arrives (see the [module docs](self)).
pub struct BodyStream {
    rx: mpsc::UnboundedReceiver<Item>,
    release: Recipient<Release>,
    stream: StreamId,
    total: Option<u64>,
    received: u64,
    /// Bytes taken by the handler whose credit has not gone back yet.
    unreleased: u64,
    release_every: u64,
    live: Arc<AtomicUsize>,
    finished: bool,
}

impl BodyStream {
    /// The next chunk, `None` after the last one. An error if the sender canceled
    /// the message ([`CallError::Canceled`]) or the link went down before its end
    /// ([`CallError::LinkDown`]), inside an [`io::Error`] (`ConnectionAborted`).
    pub async fn next(&mut self) -> io::Result<Option<Bytes>> {
        if self.finished {
            return Ok(None);
        }
        let item = match self.rx.try_recv() {
            Ok(item) => Some(item),
            Err(_) => {
                // Caught up: give all credit back before waiting, or the sender
                // may be waiting for it.
                self.release();
                self.rx.recv().await
            }
        };
        let Some(item) = item else {
            // The protocol core dropped its side without an end: the link is gone.
            self.finished = true;
            let error = CallError::LinkDown(DownReason::ActorStopped);
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, error));
        };
        match item {
            Item::Chunk(chunk) => {
                self.received += chunk.len() as u64;
                self.unreleased += chunk.len() as u64;
                if self.unreleased >= self.release_every {
                    self.release();
                }
                Ok(Some(chunk))
            }
            Item::End => {
                self.finished = true;
                self.release();
                Ok(None)
            }
            Item::Aborted(code) => {
                self.finished = true;
                let error = CallError::Canceled(code);
                Err(io::Error::new(io::ErrorKind::ConnectionAborted, error))
            }
        }
    }

    /// The body's length as the sender announced it, if it did.
    pub fn total_len(&self) -> Option<u64> {
        self.total
    }

    /// Bytes handed out so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    fn release(&mut self) {
        if self.unreleased > 0 {
            self.release.do_send(Release {
                stream: self.stream,
                len: self.unreleased,
            });
            self.unreleased = 0;
        }
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyStream")
            .field("stream", &self.stream.0)
            .field("total", &self.total)
            .field("received", &self.received)
            .field("finished", &self.finished)
            .finish()
    }
}
