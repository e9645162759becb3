//! [`SchedulerActor`]: one per link; owns the protocol core's
//! [`Transmitter`] (priority scheduler, chunking, encoder) and hands encoded
//! bytes to the link's writer exactly when the writer asks for them.
//!
//! Data path hops: the writer sends one `Pull` per write and gets up to
//! `batch_budget` wire bytes back (one frame on a slow link, so an urgent message
//! waits at most one chunk; a few hundred KiB on fast links, so a write carries
//! many chunks). Nothing is encoded ahead of the writer, so memory stays at one
//! batch and priorities stay honest.

use crate::charges::Charges;
use crate::clock::now;
use crate::deadline::Deadline;
use crate::error::CallError;
use crate::messages::{
    Apply, Close, Flush, Progress, Pull, PushBody, TransmitStats, TransmitterFailed, Unpark,
    WatchProgress, Watchdog,
};
use crate::one_way_queue::OneWayQueue;
use crate::work_budget::WorkShare;
use actix::prelude::*;
use netcore_proto::framing::WireBatch;
use netcore_proto::link::{Command, LinkConfig, Transmitter};
use netcore_proto::scheduler::SchedulerEvent;
use netcore_proto::StreamId;
use std::collections::HashMap;
use tokio::sync::{oneshot, watch};

/// How long a failed link's writer may take to write the GOAWAY saying why
/// before the transport is closed anyway (a peer that does not read).
const FAILED_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// [`Close`] came after the session failed: the writer still gets the
    /// GOAWAY saying why (and the control frames before it), then the actor stops.
    closing: bool,
    /// Told once everything handed out was written and nothing more is queued
    /// ([`Flush`]; frames the pacer holds back count as queued).
    flushed: Vec<oneshot::Sender<()>>,
    /// The retransmission timer and its handle.
    timer: Deadline,
    /// Told when the reliable mode gives up on the peer.
    watchdog: Option<Recipient<TransmitterFailed>>,
    /// The transmitter's current failure was reported (once per failure: a
    /// supervised link's reliable mode gives up, is revived when the silent
    /// peer is heard, and may give up again).
    failure_reported: bool,
    /// Charges of the queued one-way messages, given back as they leave.
    one_way: Option<Charges<OneWayQueue>>,
    /// Charges of the queued answers to the link's work share, given back once
    /// their last frame was written.
    answers: Option<Charges<WorkShare>>,
    /// Answers whose last frame is in the batch the writer holds: their charges
    /// go back when it pulls again (a peer that does not read keeps a batch of
    /// up to `batch_budget` bytes in the writer, and the share counts it).
    writing: Vec<StreamId>,
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
            closing: false,
            flushed: Vec::new(),
            timer: Deadline::default(),
            watchdog: None,
            failure_reported: false,
            one_way: None,
            answers: None,
            writing: Vec::new(),
        }
    }

    /// Gives the charges of queued one-way messages back to `queue` as they
    /// leave (see [`crate::one_way_queue`]).
    pub fn with_one_way_queue(mut self, queue: OneWayQueue) -> SchedulerActor {
        self.one_way = Some(Charges::new(queue));
        self
    }

    /// Charges queued answers to the link's `work` share until they leave (see
    /// [`crate::work_budget`]).
    pub fn with_work_share(mut self, work: WorkShare) -> SchedulerActor {
        self.answers = Some(Charges::new(work));
        self
    }

    /// The message on `stream` left or was dropped: its charges go back.
    fn release_charges(&mut self, stream: StreamId) {
        if let Some(charges) = &mut self.one_way {
            charges.release(stream);
        }
        if let Some(charges) = &mut self.answers {
            charges.release(stream);
        }
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
        match self.transmitter.failure() {
            Some(error) if !self.failure_reported => {
                self.failure_reported = true;
                if let Some(watchdog) = &self.watchdog {
                    watchdog.do_send(TransmitterFailed(error));
                }
            }
            Some(_) => {}
            None => self.failure_reported = false,
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
                    if self.answers.is_some() {
                        self.writing.push(stream);
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
        if let Some(charges) = &mut self.answers {
            charges.release_all();
        }
    }
}

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
            let one_way = self.one_way.as_mut().and_then(|c| c.note(&command));
            let answer = self.answers.as_mut().and_then(|c| c.note(&command));
            self.transmitter.apply(command);
            if let Some(stream) = one_way.or(answer) {
                // Refused by the transmitter (a bug; the peer is told): never sent.
                if self.transmitter.progress(stream).is_none() {
                    self.release_charges(stream);
                }
            }
        }
        self.after_transmit();
        self.serve_puller();
        self.arm_timer(ctx);
    }
}

impl Handler<Pull> for SchedulerActor {
    type Result = ResponseFuture<Option<WireBatch>>;

    fn handle(&mut self, Pull(written): Pull, ctx: &mut Self::Context) -> Self::Result {
        if self.closed {
            return Box::pin(async { None });
        }
        if let Some(written) = written {
            self.spare = Some(written);
        }
        // The last batch was written (or, after a reconnection, dropped).
        if let Some(charges) = &mut self.answers {
            for stream in self.writing.drain(..) {
                charges.release(stream);
            }
        }
        let batch = self.next_batch();
        self.arm_timer(ctx);
        if let Some(batch) = batch {
            return Box::pin(async move { Some(batch) });
        }
        if self.closing {
            // The last frames were written: the writer shuts the transport down.
            self.closed = true;
            ctx.stop();
            return Box::pin(async { None });
        }
        let (tx, rx) = oneshot::channel();
        self.puller = Some(tx);
        // The writer wrote everything it was given and nothing more is queued
        // (frames the pacer holds back are queued: a flush waits for them).
        if self.transmitter.is_idle() {
            for flushed in self.flushed.drain(..) {
                let _ = flushed.send(());
            }
        }
        Box::pin(async move { rx.await.ok().flatten() })
    }
}

impl Handler<Flush> for SchedulerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        if self.closed || (self.puller.is_some() && self.transmitter.is_idle()) {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.flushed.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Close> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, _: Close, ctx: &mut Self::Context) {
        self.feeders.clear();
        self.watched.clear();
        if self.closing {
            // Already writing its last frames (the link sends `Close` as it goes
            // down and again as its actor stops).
            return;
        }
        if self.transmitter.is_failed() && !self.closed {
            // A failed session's GOAWAY explains the close (a refused handshake, a
            // protocol error): it reaches the peer before the transport closes,
            // unless the peer does not read it within `FAILED_LINGER`.
            self.closing = true;
            if let Some(puller) = self.puller.take() {
                // The writer waits: it gets the last frames, or the end at once.
                let batch = self.next_batch();
                let done = batch.is_none();
                let _ = puller.send(batch);
                if done {
                    self.closed = true;
                    ctx.stop();
                    return;
                }
            }
            ctx.run_later(FAILED_LINGER, |act, ctx| {
                act.closed = true;
                act.release_puller();
                ctx.stop();
            });
            return;
        }
        self.closed = true;
        self.release_puller();
        ctx.stop();
    }
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

impl Handler<Unpark> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, _: Unpark, _: &mut Self::Context) {
        // Nothing but the next HELLO may go out on the new transport.
        self.transmitter.apply(Command::Reconnect);
        self.release_puller();
    }
}

impl Handler<Watchdog> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: Watchdog, _: &mut Self::Context) {
        self.watchdog = Some(msg.0);
    }
}

impl Handler<TransmitStats> for SchedulerActor {
    type Result = MessageResult<TransmitStats>;

    fn handle(&mut self, _: TransmitStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.transmitter.stats())
    }
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

/// The scheduler actor alone: its link actor is a test driving a protocol
/// core's session, its watchdog a stand-in recording what it is told.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::stub;
    use bytes::Buf;
    use netcore_proto::link::Session;

    /// A scheduler for a stream link, and the commands of a fresh session (its HELLO).
    fn start() -> (Addr<SchedulerActor>, Vec<Command>) {
        let config = LinkConfig::stream(1);
        let mut session = Session::new(config.clone(), None);
        let commands = std::iter::from_fn(|| session.poll_command()).collect();
        (SchedulerActor::new(&config, 1 << 20).start(), commands)
    }

    #[actix_rt::test]
    async fn a_pull_gets_what_the_session_queued_then_parks_until_more_is_applied() {
        let (scheduler, hello) = start();
        scheduler.send(Apply(hello)).await.unwrap();
        let batch = scheduler.send(Pull(None)).await.unwrap().unwrap();
        assert!(batch.remaining() > 0);
        // Nothing more is ready: the next pull parks, and flushing resolves at once.
        let parked = scheduler.send(Pull(Some(batch)));
        let parked = actix_rt::spawn(parked);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!parked.is_finished());
        scheduler.send(Flush).await.unwrap();
        // Closing ends the parked pull with `None`.
        scheduler.send(Close).await.unwrap();
        assert!(parked.await.unwrap().unwrap().is_none());
    }

    #[actix_rt::test]
    async fn flush_waits_for_the_writer_to_take_what_was_queued() {
        let (scheduler, hello) = start();
        scheduler.send(Apply(hello)).await.unwrap();
        let flushed = actix_rt::spawn(scheduler.send(Flush));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!flushed.is_finished(), "flushed before the writer pulled");
        let batch = scheduler.send(Pull(None)).await.unwrap();
        assert!(batch.is_some());
        // The writer comes back for more: everything was written.
        let _parked = actix_rt::spawn(scheduler.send(Pull(batch)));
        flushed.await.unwrap().unwrap();
    }

    #[actix_rt::test]
    async fn unpark_releases_the_writer_and_a_closed_scheduler_refuses_pulls() {
        let (scheduler, hello) = start();
        let (watchdog, told) = stub(|_: &TransmitterFailed| ());
        scheduler.send(Watchdog(watchdog)).await.unwrap();
        scheduler.send(Apply(hello)).await.unwrap();
        let _ = scheduler.send(Pull(None)).await.unwrap();
        let parked = actix_rt::spawn(scheduler.send(Pull(None)));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        scheduler.send(Unpark).await.unwrap();
        assert!(parked.await.unwrap().unwrap().is_none());
        assert_eq!(told.len(), 0, "a healthy link is not reported");
        let progress = scheduler
            .send(WatchProgress {
                stream: StreamId(1),
                total: Some(3),
            })
            .await
            .unwrap();
        assert_eq!(progress.borrow().total, Some(3));
        scheduler.send(Close).await.unwrap();
        // Closed (or stopped already): no more bytes for any writer.
        let pull = scheduler.send(Pull(None)).await;
        assert!(!matches!(pull, Ok(Some(_))));
    }

    /// The session failed while the writer was busy: `Close` (sent twice, as the
    /// link actor does) still lets the writer take the HELLO and the GOAWAY saying
    /// why, then ends its pulls.
    #[actix_rt::test]
    async fn a_failed_links_goaway_outlives_close() {
        let (scheduler, hello) = start();
        scheduler.send(Apply(hello)).await.unwrap();
        let goaway = netcore_proto::frame::GoAway {
            last_stream: StreamId(0),
            code: netcore_proto::ErrorCode::Version,
            reason: "peer speaks protocol version 2, this build 1".into(),
        };
        scheduler
            .send(Apply(vec![Command::Fail(goaway.clone())]))
            .await
            .unwrap();
        scheduler.send(Close).await.unwrap();
        scheduler.send(Close).await.unwrap();
        let mut batch = scheduler.send(Pull(None)).await.unwrap().unwrap();
        let mut wire = bytes::BytesMut::new();
        while batch.has_remaining() {
            let chunk = batch.chunk();
            wire.extend_from_slice(chunk);
            let n = chunk.len();
            batch.advance(n);
        }
        let mut decoder = netcore_proto::framing::Length::new(1 << 20);
        let mut frames = Vec::new();
        while let Some(raw) =
            netcore_proto::framing::Framing::decode(&mut decoder, &mut wire).unwrap()
        {
            frames.push(netcore_proto::Envelope::decode(raw).unwrap().frame);
        }
        assert!(matches!(
            frames.as_slice(),
            [netcore_proto::Frame::Hello(_), netcore_proto::Frame::GoAway(g)] if *g == goaway
        ));
        // Written: the next pull ends the writer.
        let pull = scheduler.send(Pull(Some(batch))).await;
        assert!(!matches!(pull, Ok(Some(_))));
    }
}
