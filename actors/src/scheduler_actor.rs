//! [`SchedulerActor`]: one per link; owns the protocol core's
//! [`Transmitter`] (priority scheduler, chunking, encoder) and hands encoded
//! bytes to the link's writer exactly when the writer asks for them.
//!
//! Data path hops: the writer sends one `Pull` per write and gets up to
//! `batch_budget` wire bytes back (one frame on a slow link, so an urgent message
//! waits at most one chunk; a few hundred KiB on fast links, so a write carries
//! many chunks). Nothing is encoded ahead of the writer, so memory stays at one
//! batch and priorities stay honest.

use crate::body::Payload;
use crate::deadline::Deadline;
use crate::error::{CallError, DownReason};
use crate::link_actor::{now, PeerUnresponsive};
use crate::one_way_queue::{Charges, OneWayQueue};
use crate::transport::with_context;
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use netcore_proto::framing::WireBatch;
use netcore_proto::link::{Command, LinkConfig, Transmitter};
use netcore_proto::scheduler::SchedulerEvent;
use netcore_proto::StreamId;
use std::collections::HashMap;
use std::io;
use tokio::sync::{oneshot, watch};

pub use netcore_proto::link::Progress;

/// Owns the outbound half of one link.
pub struct SchedulerActor {
    transmitter: Transmitter,
    batch_budget: usize,
    /// The writer's parked [`Pull`], answered as soon as a frame is ready.
    puller: Option<oneshot::Sender<Option<WireBatch>>>,
    /// The writer's last batch, written out: its buffer serves the next batch.
    spare: Option<WireBatch>,
    /// Feeders of streamed bodies waiting until their queue runs low.
    feeders: HashMap<StreamId, oneshot::Sender<()>>,
    /// Transfers whose progress someone watches.
    watched: HashMap<StreamId, watch::Sender<Progress>>,
    closed: bool,
    /// Told once everything handed out was written and nothing more is ready
    /// ([`Flush`]).
    flushed: Vec<oneshot::Sender<()>>,
    /// The retransmission timer and its handle.
    timer: Deadline,
    /// Told when the reliable mode gives up on the peer.
    watchdog: Option<Recipient<PeerUnresponsive>>,
    /// Charges of the queued one-way messages, given back as they leave.
    one_way: Option<Charges>,
}

impl SchedulerActor {
    /// A scheduler for a link set up with `config`, answering each pull with at
    /// most about `batch_budget` wire bytes (at least one frame).
    pub fn new(config: &LinkConfig, batch_budget: usize) -> SchedulerActor {
        SchedulerActor {
            transmitter: Transmitter::new(config),
            batch_budget: batch_budget.max(1),
            puller: None,
            spare: None,
            feeders: HashMap::new(),
            watched: HashMap::new(),
            closed: false,
            flushed: Vec::new(),
            timer: Deadline::default(),
            watchdog: None,
            one_way: None,
        }
    }

    /// Gives the charges of queued one-way messages back to `queue` as they
    /// leave (see [`crate::one_way_queue`]).
    pub fn with_one_way_queue(mut self, queue: OneWayQueue) -> SchedulerActor {
        self.one_way = Some(Charges::new(queue));
        self
    }

    /// Encodes the next batch, or `None` if nothing may be sent now.
    fn next_batch(&mut self) -> Option<WireBatch> {
        self.transmitter.set_now(now());
        let mut batch = self
            .spare
            .take()
            .map(WireBatch::recycle)
            .unwrap_or_default();
        self.transmitter
            .poll_transmit_batch(&mut batch, self.batch_budget);
        self.after_transmit();
        if batch.is_empty() {
            // Nothing to send: the buffer waits for the next batch.
            self.spare = Some(batch);
            return None;
        }
        Some(batch)
    }

    /// Serves a parked pull if a frame is ready.
    fn serve_puller(&mut self) {
        if self.puller.is_none() {
            return;
        }
        if let Some(batch) = self.next_batch() {
            if let Some(puller) = self.puller.take() {
                let _ = puller.send(Some(batch));
            }
        }
    }

    /// Keeps one timer armed at the transmitter's next deadline (retransmission).
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        if self.transmitter.is_dead() {
            if let Some(watchdog) = self.watchdog.take() {
                watchdog.do_send(PeerUnresponsive);
            }
        }
        let next = self.transmitter.poll_timeout();
        self.timer.arm(next, ctx, |act, ctx, at| {
            act.timer.fired(at);
            act.transmitter.handle_timeout(now());
            act.serve_puller();
            act.arm_timer(ctx);
        });
    }

    /// Ends the writer's parked pull with `None` (the link closes or reconnects).
    fn release_puller(&mut self) {
        if let Some(puller) = self.puller.take() {
            let _ = puller.send(None);
        }
    }

    fn after_transmit(&mut self) {
        for (stream, tx) in &self.watched {
            if let Some(progress) = self.transmitter.progress(*stream) {
                tx.send_if_modified(|p| {
                    let changed = *p != progress;
                    *p = progress;
                    changed
                });
            }
        }
        while let Some(event) = self.transmitter.poll_event() {
            match event {
                SchedulerEvent::WantsBody { stream } => {
                    if let Some(feeder) = self.feeders.remove(&stream) {
                        let _ = feeder.send(());
                    }
                }
                SchedulerEvent::Sent { stream } => {
                    if let Some(charges) = &mut self.one_way {
                        charges.release(stream);
                    }
                    if let Some(tx) = self.watched.remove(&stream) {
                        tx.send_modify(|p| p.sent = p.total.unwrap_or(p.sent));
                    }
                }
            }
        }
    }
}

impl Actor for SchedulerActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        self.release_puller();
        if let Some(charges) = &mut self.one_way {
            charges.release_all();
        }
    }
}

/// Commands from the link's session, applied in order.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Apply(pub Vec<Command>);

impl Handler<Apply> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: Apply, ctx: &mut Self::Context) {
        self.transmitter.set_now(now());
        for command in msg.0 {
            if let Command::Cancel { stream, .. } = &command {
                // Dropping the feeder's sender tells it the stream is gone.
                self.feeders.remove(stream);
                self.watched.remove(stream);
            }
            let charged = self.one_way.as_mut().and_then(|c| c.note(&command));
            self.transmitter.apply(command);
            if let (Some(stream), Some(charges)) = (charged, &mut self.one_way) {
                // Refused by the transmitter (a bug; the peer is told): never sent.
                if self.transmitter.progress(stream).is_none() {
                    charges.release(stream);
                }
            }
        }
        self.after_transmit();
        self.serve_puller();
        self.arm_timer(ctx);
    }
}

/// The writer can take more bytes: answered with the next batch once one is
/// ready, or `None` when the link is closing. Carries the writer's previous batch,
/// written out, so its buffer serves the next one (no allocation per write).
#[derive(Message)]
#[rtype(result = "Option<WireBatch>")]
pub(crate) struct Pull(pub Option<WireBatch>);

impl Handler<Pull> for SchedulerActor {
    type Result = ResponseFuture<Option<WireBatch>>;

    fn handle(&mut self, Pull(written): Pull, ctx: &mut Self::Context) -> Self::Result {
        if self.closed {
            return Box::pin(async { None });
        }
        if let Some(written) = written {
            self.spare = Some(written);
        }
        let batch = self.next_batch();
        self.arm_timer(ctx);
        if let Some(batch) = batch {
            return Box::pin(async move { Some(batch) });
        }
        let (tx, rx) = oneshot::channel();
        self.puller = Some(tx);
        // The writer wrote everything it was given and nothing more is ready.
        for flushed in self.flushed.drain(..) {
            let _ = flushed.send(());
        }
        Box::pin(async move { rx.await.ok().flatten() })
    }
}

/// Resolves once every frame queued so far was written to the transport: the
/// writer is waiting for more and nothing more is ready. A link flushes before it
/// closes, so answers given at the last moment are not lost. Resolves at once on
/// a closed scheduler; a writer stuck on a peer that does not read never flushes,
/// so whoever waits bounds the wait.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Handler<Flush> for SchedulerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        if self.closed || self.puller.is_some() {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.flushed.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// The link is going down: the writer's pull returns `None` from now on and what
/// is still queued is dropped ([`Flush`] first to have it written).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Close;

impl Handler<Close> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Self::Context) {
        self.closed = true;
        self.feeders.clear();
        self.watched.clear();
        self.release_puller();
        ctx.stop();
    }
}

/// Appends bytes to a streamed body; resolves when the stream wants more (its
/// queue ran low), so a feeder reading a file stays a few chunks ahead of the wire.
#[derive(Message)]
#[rtype(result = "Result<(), CallError>")]
pub(crate) struct PushBody {
    /// The outbound stream.
    pub stream: StreamId,
    /// The next bytes of the body.
    pub bytes: Bytes,
    /// Whether they are the last.
    pub fin: bool,
}

impl Handler<PushBody> for SchedulerActor {
    type Result = ResponseFuture<Result<(), CallError>>;

    fn handle(&mut self, msg: PushBody, ctx: &mut Self::Context) -> Self::Result {
        let PushBody { stream, bytes, fin } = msg;
        if let Err(error) = self.transmitter.push_body(stream, bytes, fin) {
            return Box::pin(async move { Err(CallError::from(error)) });
        }
        let (tx, rx) = oneshot::channel();
        if !fin {
            self.feeders.insert(stream, tx);
        }
        self.after_transmit();
        self.serve_puller();
        self.arm_timer(ctx);
        if fin {
            return Box::pin(async { Ok(()) });
        }
        Box::pin(async move {
            rx.await
                .map_err(|_| CallError::Canceled(netcore_proto::ErrorCode::Canceled))
        })
    }
}

/// Streams a file or channel `payload` into `stream`, a few chunks ahead of the
/// wire (files are read through the blocking pool). Returns when the last byte
/// was queued.
///
/// `announced` is the body length the message's OPEN announced (for a file, its
/// length when the message was queued): the peer expects exactly that many
/// bytes, so a file is sent up to that length, and one that has fewer bytes by
/// the time they are read fails with [`CallError::Io`], as does a channel body
/// longer or shorter than its `total`.
pub async fn feed_body(
    scheduler: Addr<SchedulerActor>,
    stream: StreamId,
    payload: Payload,
    announced: Option<u64>,
    chunk_len: usize,
) -> Result<(), CallError> {
    let push = |bytes: Bytes, fin: bool| {
        let scheduler = scheduler.clone();
        async move {
            scheduler
                .send(PushBody { stream, bytes, fin })
                .await
                .map_err(|_| CallError::LinkDown(DownReason::ActorStopped))?
        }
    };
    match payload {
        Payload::Bytes(_) => Ok(()),
        Payload::File(path) => {
            let io = |e: std::io::Error| {
                CallError::from(with_context(e, format_args!("{}", path.display())))
            };
            let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
            let len = match announced {
                Some(len) => len,
                None => file.metadata().await.map_err(io)?.len(),
            };
            let read_len = chunk_len.clamp(4096, 1 << 20);
            let mut sent = 0u64;
            loop {
                let want = read_len.min((len - sent) as usize);
                let mut buf = BytesMut::zeroed(want);
                let n = if want == 0 {
                    0
                } else {
                    tokio::io::AsyncReadExt::read(&mut file, &mut buf)
                        .await
                        .map_err(io)?
                };
                if n == 0 && sent < len {
                    return Err(CallError::from(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} shrank while being sent ({sent} of {len} bytes)",
                            path.display()
                        ),
                    )));
                }
                buf.truncate(n);
                sent += n as u64;
                let fin = sent == len;
                push(buf.freeze(), fin).await?;
                if fin {
                    return Ok(());
                }
            }
        }
        Payload::Stream { mut chunks, total } => {
            let mut sent = 0u64;
            while let Some(bytes) = chunks.recv().await {
                if bytes.is_empty() {
                    continue;
                }
                sent += bytes.len() as u64;
                if total.is_some_and(|t| sent > t) {
                    return Err(CallError::from(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the stream produced more than its announced {} bytes",
                            total.unwrap_or(0)
                        ),
                    )));
                }
                let fin = total == Some(sent);
                push(bytes, fin).await?;
                if fin {
                    return Ok(());
                }
            }
            if total.is_some_and(|t| sent != t) {
                return Err(CallError::from(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the stream ended after {sent} of its announced {} bytes",
                        total.unwrap_or(0)
                    ),
                )));
            }
            push(Bytes::new(), true).await
        }
    }
}

/// The transport broke: the old writer's parked pull gets `None` (it exits); a
/// new writer pulls after the reconnection.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Unpark;

impl Handler<Unpark> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, _: Unpark, _: &mut Self::Context) {
        // Nothing but the next HELLO may go out on the new transport.
        self.transmitter.apply(Command::Reconnect);
        self.release_puller();
    }
}

/// Who to tell when the reliable mode gives up on the peer (the link actor).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Watchdog(pub Recipient<PeerUnresponsive>);

impl Handler<Watchdog> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: Watchdog, _: &mut Self::Context) {
        self.watchdog = Some(msg.0);
    }
}

/// Subscribes to the progress of an outbound stream.
#[derive(Message)]
#[rtype(result = "watch::Receiver<Progress>")]
pub struct WatchProgress {
    /// The outbound stream.
    pub stream: StreamId,
    /// Its total length, if known.
    pub total: Option<u64>,
}

impl Handler<WatchProgress> for SchedulerActor {
    type Result = MessageResult<WatchProgress>;

    fn handle(&mut self, msg: WatchProgress, _: &mut Self::Context) -> Self::Result {
        let start = self.transmitter.progress(msg.stream).unwrap_or(Progress {
            sent: msg.total.unwrap_or(0),
            total: msg.total,
        });
        let (tx, rx) = watch::channel(start);
        if self.transmitter.progress(msg.stream).is_some() {
            self.watched.insert(msg.stream, tx);
        }
        MessageResult(rx)
    }
}
