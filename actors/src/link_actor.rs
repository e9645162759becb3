//! [`LinkActor`]: one per link. Owns the transport and the inbound half of the
//! protocol ([`Session`]: framing decoder, handshake, ids, reassembly and its
//! limits), forwards the session's [`Command`]s to the link's
//! [`SchedulerActor`], resolves the answers of calls made on this link, and hands
//! inbound requests and one-way messages to the router.
//!
//! I/O runs in two tasks spawned on the link's arbiter when the actor starts:
//! - the reader reads up to 256 KiB at a time and sends it as `Input`, awaiting
//!   each send, so a busy actor slows the reader instead of queueing bytes (the
//!   buffer comes back with the start of the next frame: frames are never copied);
//! - the writer sends `Pull` to the scheduler actor and writes what comes back,
//!   one batch at a time, so nothing is encoded before the transport can take it.
//!
//! When a connector reopens the transport, both tasks are spawned again on the
//! new one (tagged with a generation, so what the old tasks still send is ignored).

use crate::body::{Body, Payload, SpooledFile};
use crate::body_stream::BodyStream;
use crate::deadline::Deadline;
use crate::error::{CallError, DownReason};
use crate::one_way_queue::OneWayQueue;
use crate::router_actor::{Canceled as RouterCanceled, Incoming};
use crate::scheduler_actor::{feed_body, Apply, Close, Flush, Pull, SchedulerActor};
use crate::stream_actor::{SpoolFactory, SpoolLimits, StreamedAnswers};
use crate::transport::BoxedTransport;
use actix::prelude::*;
use bytes::BytesMut;
use netcore_proto::link::{Command, Keepalive, LinkConfig, LinkEvent, Message, Session};
use netcore_proto::reassembly::MessageHead;
use netcore_proto::{ErrorCode, Instant, MessageKind, StreamId};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

/// Identifies a link within the process (unique, never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

impl LinkId {
    fn next() -> LinkId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        LinkId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link-{}", self.0)
    }
}

/// How a link runs: protocol settings plus the runtime's.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    /// Framing, chunk size, windows and limits (see [`LinkConfig::serial`] and
    /// [`LinkConfig::stream`]); the nonce is drawn at random when the link starts.
    pub config: LinkConfig,
    /// Wire bytes the writer takes per pull: about one chunk on slow links (an
    /// urgent message waits at most one chunk), large on fast ones (fewer writes).
    pub batch_budget: usize,
    /// Where large inbound messages spool.
    pub spool: SpoolLimits,
    /// Flush the transport after each batch (off for serial ports, where flushing
    /// blocks until the UART drained).
    pub flush: bool,
    /// Reopens the transport after it breaks (reopen the serial device, reconnect
    /// TCP). With one, a broken transport does not end the link: it reconnects
    /// with exponential backoff and jitter and resumes the session (reliable mode),
    /// or fails the calls in flight with `PeerReset` if the peer lost it.
    pub connector: Option<Connector>,
    /// Without a connector (the accepting side of TCP): how long a link whose
    /// transport broke waits for the peer to come back on a new connection (the
    /// endpoint routes it here by session id) before going down.
    pub resume_window: Option<std::time::Duration>,
    /// The arbiter (thread) the link's actors run on; `None`: the current one.
    /// The endpoint spreads its links over a small pool of arbiters so the two
    /// directions of a busy link, or several busy links, use several cores.
    pub arbiter: Option<actix::ArbiterHandle>,
    /// Bytes of one-way messages with in-memory bodies the link queues ahead of
    /// its wire (each counts its body and route plus 64 bytes); `Link::send` waits
    /// while they are over it, so a fast producer is paced by the wire (see
    /// [`crate::one_way_queue`]).
    pub one_way_queue: usize,
}

impl LinkOptions {
    /// A serial or radio link at `baud`: COBS framing, ~10 ms chunks, one frame per
    /// write, the reliable mode, a keepalive PING after 5 s of silence (down after 3
    /// unanswered), one-way messages queued up to about a second of the line (at
    /// least 16 KiB: enough to keep the line busy, little enough for a gateway
    /// with hundreds of links).
    pub fn serial(baud: u32) -> LinkOptions {
        let mut config = LinkConfig::serial(baud, 0);
        config.keepalive = Some(Keepalive {
            interval: std::time::Duration::from_secs(5),
            max_missed: 3,
        });
        LinkOptions {
            config,
            batch_budget: 1,
            spool: SpoolLimits::default(),
            flush: false,
            connector: None,
            resume_window: None,
            arbiter: None,
            one_way_queue: (netcore_proto::config::serial_bytes_per_sec(baud) as usize)
                .max(16 * 1024),
        }
    }

    /// A link over a byte channel of `bytes_per_sec` with the serial framing,
    /// flushed after each write (an in-process throttled link or a pipe).
    ///
    /// Chunks take ~15 ms rather than 10: the writer pulls the next frame only once
    /// the last one drained, and that wake-up (tokio's 1 ms timer) leaves the line
    /// idle up to ~1 ms per frame. Longer chunks keep it busy (the `serial_hol`
    /// benchmark at 115200 baud: bulk utilization 0.74–0.84 with 10 ms chunks,
    /// ~0.89 with 15 ms) while an urgent message still waits at most one chunk.
    pub fn serial_framed_rate(bytes_per_sec: u32) -> LinkOptions {
        let mut options = LinkOptions::serial(bytes_per_sec.saturating_mul(10));
        options.config.chunk_len = netcore_proto::config::chunk_len_for_rate(bytes_per_sec, 15);
        options.flush = true;
        options
    }

    /// A reliable stream (TCP, Unix socket): length framing, 64 KiB chunks,
    /// writes of up to 1 MiB, 64 MiB link window, 2 MiB stream windows, a keepalive PING
    /// after 10 s of silence (down after 3 unanswered), one-way messages queued up
    /// to 512 MiB (eight link windows: a flood of small messages is still paced,
    /// while many large messages sent at once all share the wire: a message
    /// admitted only as an earlier one finishes would be sent alone at the end,
    /// held to its stream window).
    pub fn stream() -> LinkOptions {
        let mut config = LinkConfig::stream(0);
        config.link_window = 64 * 1024 * 1024;
        // 2 MiB per stream keeps loopback and LAN links busy (a CREDIT every 512 KiB)
        // and bounds what 64 spooling streams can hold (see `stream_actor`).
        config.stream_window = 2 * 1024 * 1024;
        config.keepalive = Some(Keepalive {
            interval: std::time::Duration::from_secs(10),
            max_missed: 3,
        });
        LinkOptions {
            config,
            batch_budget: 1024 * 1024,
            spool: SpoolLimits::default(),
            flush: true,
            connector: None,
            resume_window: None,
            arbiter: None,
            one_way_queue: 512 * 1024 * 1024,
        }
    }
}

/// Opens a fresh transport for a link whose transport broke.
#[derive(Clone)]
pub struct Connector(
    pub  std::sync::Arc<
        dyn Fn() -> futures_util::future::BoxFuture<'static, std::io::Result<BoxedTransport>>
            + Send
            + Sync,
    >,
);

impl Connector {
    /// A connector from an async function.
    pub fn new<F, Fut>(f: F) -> Connector
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = std::io::Result<BoxedTransport>> + Send + 'static,
    {
        Connector(std::sync::Arc::new(move || Box::pin(f())))
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connector")
    }
}

/// A handle on a running link: its id and its actor.
#[derive(Clone, Debug)]
pub struct LinkRef {
    /// The link's id.
    pub id: LinkId,
    /// The link's actor.
    pub addr: Addr<LinkActor>,
    /// The link's scheduler actor.
    pub scheduler: Addr<SchedulerActor>,
}

/// An answer to a call.
#[derive(Debug)]
pub struct Response {
    /// Kind, headers and stream of the answer.
    pub head: MessageHead,
    /// The answer's body.
    pub body: Body,
}

/// Whether a link is usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Handshake in progress (also while reconnecting).
    Connecting,
    /// Messages flow.
    Up,
    /// Closed or failed, with the reason.
    Down(DownReason),
}

type CallReply = oneshot::Sender<Result<Response, CallError>>;

/// Owns one link's transport and inbound protocol state.
pub struct LinkActor {
    id: LinkId,
    session: Session,
    scheduler: Addr<SchedulerActor>,
    router: Recipient<Incoming>,
    router_cancel: Recipient<RouterCanceled>,
    transport: Option<BoxedTransport>,
    flush: bool,
    chunk_len: usize,
    /// Bytes the reader asks for at a time (see [`read_size`]).
    read_size: usize,
    /// Our calls whose answer streams (shared with the session's sink factory).
    streamed_answers: StreamedAnswers,
    calls: HashMap<StreamId, CallReply>,
    /// Inbound requests handed to the router and not yet answered; those the peer
    /// canceled (its handler is aborted) leave too, so a drain never waits for them.
    serving: HashSet<StreamId>,
    /// Heads of inbound messages spooling in stream actors.
    spooling: HashMap<StreamId, MessageHead>,
    state: watch::Sender<LinkState>,
    /// The session's next timer (delayed ACK, keepalive) and its handle.
    timer: Deadline,
    connector: Option<Connector>,
    resume_window: Option<std::time::Duration>,
    /// Counts transports: messages from the tasks of an older one are ignored.
    generation: u64,
    reconnecting: bool,
    /// The code of the peer's GOAWAY, once received: the end of its transport is
    /// then the peer going away, not a mere end of stream.
    peer_going_away: Option<ErrorCode>,
    /// The bound on queued one-way messages (shared with the scheduler actor).
    one_way: OneWayQueue,
}

impl LinkActor {
    /// Starts a link over `transport` with its scheduler actor; inbound requests
    /// and one-way messages go to `router`.
    pub fn start(
        transport: BoxedTransport,
        options: LinkOptions,
        router: Recipient<Incoming>,
        router_cancel: Recipient<RouterCanceled>,
    ) -> LinkRef {
        let mut config = options.config;
        config.nonce = random_nonce();
        config.session_id = random_nonce();
        let id = LinkId::next();
        let one_way = OneWayQueue::new(options.one_way_queue);
        let scheduler_actor =
            SchedulerActor::new(&config, options.batch_budget).with_one_way_queue(one_way.clone());
        let scheduler = match &options.arbiter {
            Some(arbiter) => SchedulerActor::start_in_arbiter(arbiter, move |_| scheduler_actor),
            None => scheduler_actor.start(),
        };
        let chunk_len = config.chunk_len;
        let (state, _) = watch::channel(LinkState::Connecting);
        let sched = scheduler.clone();
        let (spool, flush, connector) = (options.spool, options.flush, options.connector);
        let resume_window = options.resume_window;
        let read_size = read_size(options.batch_budget);
        let build = move |ctx: &mut Context<LinkActor>| {
            let streamed_answers = StreamedAnswers::default();
            let factory = SpoolFactory {
                link: ctx.address(),
                limits: spool,
                live: Arc::new(AtomicUsize::new(0)),
                release_every: config.stream_window / 4,
                streamed_answers: streamed_answers.clone(),
            };
            let mut session = Session::new(config, Some(Box::new(factory)));
            session.set_read_ahead(read_size);
            LinkActor {
                id,
                session,
                scheduler: sched,
                router,
                router_cancel,
                transport: Some(transport),
                flush,
                chunk_len,
                read_size,
                streamed_answers,
                calls: HashMap::new(),
                serving: HashSet::new(),
                spooling: HashMap::new(),
                state,
                timer: Deadline::default(),
                connector,
                resume_window,
                generation: 0,
                reconnecting: false,
                peer_going_away: None,
                one_way,
            }
        };
        let addr = match &options.arbiter {
            Some(arbiter) => LinkActor::start_in_arbiter(arbiter, build),
            None => LinkActor::create(build),
        };
        LinkRef {
            id,
            addr,
            scheduler,
        }
    }

    /// Moves the session's commands to the scheduler and handles its events.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        loop {
            let mut commands: Vec<Command> = Vec::new();
            while let Some(command) = self.session.poll_command() {
                commands.push(command);
            }
            if !commands.is_empty() {
                self.scheduler.do_send(Apply(commands));
            }
            let Some(event) = self.session.poll_event() else {
                break;
            };
            self.on_event(event, ctx);
        }
        self.arm_timer(ctx);
    }

    /// Keeps one timer armed at the session's next deadline.
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let next = self.session.poll_timeout();
        self.timer.arm(next, ctx, |act, ctx, at| {
            act.timer.fired(at);
            act.session.handle_timeout(now());
            act.pump(ctx);
        });
    }

    fn on_event(&mut self, event: LinkEvent, ctx: &mut Context<Self>) {
        match event {
            LinkEvent::Connected { parity, .. } => {
                tracing::debug!(link = %self.id, ?parity, "link up");
                self.state.send_replace(LinkState::Up);
            }
            LinkEvent::Message { head, body } => self.deliver(head, Body::Bytes(body), ctx),
            LinkEvent::Streaming { head } => {
                tracing::debug!(link = %self.id, stream = head.stream.0, total = ?head.total_len, "spooling inbound message");
                self.spooling.insert(head.stream, head);
            }
            LinkEvent::StreamFinished { .. } => {
                // The stream actor reports the complete file with `Spooled`.
            }
            LinkEvent::Canceled { stream, code } => {
                self.spooling.remove(&stream);
                if let Some(reply) = self.forget_call(stream) {
                    let error = match code {
                        ErrorCode::PeerReset => CallError::PeerReset,
                        code => CallError::Canceled(code),
                    };
                    let _ = reply.send(Err(error));
                } else if self.session.is_ours(stream) {
                    // A one-way message of ours (or a transfer) the peer refused or
                    // canceled: not silent, whoever watches the link sees it.
                    tracing::warn!(link = %self.id, stream = stream.0, %code, "the peer canceled an outbound message");
                } else {
                    self.serving.remove(&stream);
                    self.router_cancel.do_send(RouterCanceled {
                        link: self.id,
                        stream,
                    });
                }
            }
            LinkEvent::Refused { stream, error } => {
                tracing::warn!(link = %self.id, stream = stream.0, %error, "refused inbound stream");
                self.spooling.remove(&stream);
                if let Some(reply) = self.forget_call(stream) {
                    let _ = reply.send(Err(CallError::AnswerRefused(error)));
                }
            }
            LinkEvent::Pong { .. } | LinkEvent::Sent { .. } | LinkEvent::WantsBody { .. } => {}
            LinkEvent::Resumed => {
                tracing::info!(link = %self.id, "reconnected; session resumed");
                self.state.send_replace(LinkState::Up);
            }
            LinkEvent::PeerReset => {
                tracing::warn!(link = %self.id, "reconnected to a peer that lost the session");
                self.state.send_replace(LinkState::Up);
            }
            LinkEvent::GoAway { code, reason, .. } => {
                tracing::info!(link = %self.id, %code, %reason, "peer is going away");
                self.peer_going_away = Some(code);
            }
            LinkEvent::FrameDropped { error } => {
                tracing::debug!(link = %self.id, %error, "dropped a damaged frame");
            }
            LinkEvent::Failed { error } => {
                tracing::warn!(link = %self.id, %error, "link failed");
                self.go_down(DownReason::from_protocol(error), ctx);
            }
            _ => {}
        }
    }

    /// Routes a complete inbound message: answers to their calls, the rest to the router.
    fn deliver(&mut self, head: MessageHead, body: Body, ctx: &mut Context<Self>) {
        match head.kind {
            MessageKind::Response | MessageKind::ErrorResponse => {
                let Some(reply) = self.forget_call(head.stream) else {
                    return;
                };
                let result = if head.kind == MessageKind::Response {
                    Ok(Response { head, body })
                } else {
                    let message = match &body {
                        Body::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        Body::File(file) => format!("({} byte explanation)", file.len()),
                        Body::Stream(_) => "(streamed explanation)".to_string(),
                    };
                    Err(CallError::Remote {
                        code: head.code.unwrap_or(ErrorCode::Internal),
                        message,
                    })
                };
                let _ = reply.send(result);
            }
            _ => {
                if head.kind == MessageKind::Request {
                    self.serving.insert(head.stream);
                }
                let incoming = Incoming {
                    link: LinkRef {
                        id: self.id,
                        addr: ctx.address(),
                        scheduler: self.scheduler.clone(),
                    },
                    head,
                    body,
                };
                // The router moves requests from its mailbox into its bounded
                // queue (refusing beyond it) as fast as they come.
                self.router.do_send(incoming);
            }
        }
    }

    /// Our call on `stream` is over (answered, canceled, refused): its reply
    /// channel, and whether its answer streams, are forgotten together.
    fn forget_call(&mut self, stream: StreamId) -> Option<CallReply> {
        self.streamed_answers.remove(stream);
        self.calls.remove(&stream)
    }

    /// Abandons our side of `stream` (a call's reply channel, a spooling body)
    /// and cancels it on the wire with `code`; returns the call's reply channel,
    /// if it was a call, for whoever has a better error than a dropped channel.
    fn abandon(
        &mut self,
        stream: StreamId,
        code: ErrorCode,
        ctx: &mut Context<Self>,
    ) -> Option<CallReply> {
        let reply = self.forget_call(stream);
        self.spooling.remove(&stream);
        self.session.cancel(stream, code);
        self.pump(ctx);
        reply
    }

    /// Every call in flight fails with [`CallError::LinkDown`].
    fn fail_calls(&mut self, reason: &DownReason) {
        self.streamed_answers.clear();
        for (_, reply) in self.calls.drain() {
            let _ = reply.send(Err(CallError::LinkDown(reason.clone())));
        }
    }

    fn go_down(&mut self, reason: DownReason, ctx: &mut Context<Self>) {
        if matches!(*self.state.borrow(), LinkState::Down(_)) {
            return;
        }
        self.fail_calls(&reason);
        self.state.send_replace(LinkState::Down(reason));
        self.scheduler.do_send(Close);
        ctx.stop();
    }

    fn send_message(
        &mut self,
        message: Message,
        payload: Option<Payload>,
        kind: Outbound,
        ctx: &mut Context<Self>,
    ) -> Result<StreamId, CallError> {
        // A streamed body announced as 0 bytes is complete from the start: its
        // OPEN carries FIN and the scheduler forgets the stream once it left, so
        // there is nothing to feed (a feeder's final push would find the stream
        // gone, fail, and cancel the message).
        let nothing_to_feed = message.body.is_none() && message.streamed_len == Some(0);
        let announced = message.streamed_len;
        let result = match kind {
            Outbound::Request(reply) => self.session.request(message).inspect(|&stream| {
                self.calls.insert(stream, reply);
            }),
            Outbound::OneWay => self.session.one_way(message),
            Outbound::Answer(stream, outcome) => self
                .session
                .respond(stream, outcome, message)
                .map(|()| stream),
        };
        let stream = result?;
        self.pump(ctx);
        if let Some(payload) = payload.filter(|p| p.is_streamed() && !nothing_to_feed) {
            let scheduler = self.scheduler.clone();
            let link = ctx.address();
            let chunk_len = self.chunk_len;
            actix_rt::spawn(async move {
                match feed_body(scheduler, stream, payload, announced, chunk_len).await {
                    Ok(()) => {}
                    // The stream was canceled (by the user or the peer): nothing to do.
                    Err(CallError::Canceled(_)) => {}
                    Err(error) => {
                        tracing::warn!(stream = stream.0, %error, "streaming a body failed");
                        link.do_send(BodyFailed { stream, error });
                    }
                }
            });
        }
        Ok(stream)
    }
}

impl LinkActor {
    /// Spawns the reader and writer tasks of a (new) transport.
    fn run_transport(&mut self, transport: BoxedTransport, ctx: &mut Context<Self>) {
        self.generation += 1;
        let generation = self.generation;
        let (mut reader, mut writer) = tokio::io::split(transport);
        let link = ctx.address();
        let read_size = self.read_size;
        actix_rt::spawn(async move {
            // Large reads on fast links: one syscall and one `Input` message per
            // ~256 KiB. The buffer goes to the actor and comes back holding the
            // start of the next frame, with room behind it: frames are split off it
            // without a copy.
            let mut buf = BytesMut::new();
            let reason = loop {
                if buf.capacity() - buf.len() < read_size / 16 {
                    buf.reserve(read_size);
                }
                match reader.read_buf(&mut buf).await {
                    Ok(0) => break DownReason::EndOfStream,
                    Ok(_) => match link.send(Input(buf, generation)).await {
                        Ok(rest) => buf = rest,
                        Err(_) => return,
                    },
                    Err(error) => {
                        tracing::debug!(%error, "transport read failed");
                        break DownReason::Transport(Arc::new(error));
                    }
                }
            };
            link.do_send(TransportClosed(reason, generation));
        });
        let scheduler = self.scheduler.clone();
        let link = ctx.address();
        let flush = self.flush;
        actix_rt::spawn(async move {
            let mut written = None;
            while let Ok(Some(mut batch)) = scheduler.send(Pull(written.take())).await {
                // Vectored: large payloads go from the message body to the socket.
                let mut result = writer.write_all_buf(&mut batch).await;
                written = Some(batch);
                if flush && result.is_ok() {
                    result = writer.flush().await;
                }
                if let Err(error) = result {
                    tracing::debug!(%error, "transport write failed");
                    link.do_send(TransportClosed(
                        DownReason::Transport(Arc::new(error)),
                        generation,
                    ));
                    return;
                }
            }
            let _ = writer.shutdown().await;
        });
    }

    /// The transport broke on the accepting side: wait `window` for the peer to
    /// reconnect (the endpoint hands its new connection over with `Reconnected`).
    fn await_peer(
        &mut self,
        reason: DownReason,
        window: std::time::Duration,
        ctx: &mut Context<Self>,
    ) {
        if self.reconnecting {
            return;
        }
        self.reconnecting = true;
        self.state.send_replace(LinkState::Connecting);
        tracing::info!(link = %self.id, %reason, ?window, "transport broke; waiting for the peer to reconnect");
        self.scheduler.do_send(crate::scheduler_actor::Unpark);
        let generation = self.generation;
        ctx.run_later(window, move |act, ctx| {
            if act.reconnecting && act.generation == generation {
                act.go_down(DownReason::ResumeWindowElapsed(window), ctx);
            }
        });
    }

    /// The transport broke and a connector is set: reopen it with exponential
    /// backoff (10 ms doubling to 5 s) and ±50% jitter, until it works.
    fn reconnect(&mut self, reason: DownReason, ctx: &mut Context<Self>) {
        let Some(connector) = self.connector.clone() else {
            return;
        };
        if self.reconnecting {
            return;
        }
        self.reconnecting = true;
        self.state.send_replace(LinkState::Connecting);
        tracing::info!(link = %self.id, %reason, "transport broke; reconnecting");
        // The old writer's parked pull ends; the new writer pulls afresh.
        self.scheduler.do_send(crate::scheduler_actor::Unpark);
        let link = ctx.address();
        let id = self.id;
        actix_rt::spawn(async move {
            let mut backoff = std::time::Duration::from_millis(10);
            loop {
                match (connector.0)().await {
                    Ok(transport) => {
                        link.do_send(Reconnected(transport));
                        return;
                    }
                    Err(error) => {
                        let jitter = 0.5 + (random_nonce() % 1000) as f64 / 1000.0;
                        let wait = backoff.mul_f64(jitter);
                        tracing::debug!(link = %id, %error, ?wait, "reconnect failed; retrying");
                        tokio::time::sleep(wait).await;
                        backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                    }
                }
            }
        });
    }
}

/// A new transport for this link: opened by its connector, or a connection the
/// endpoint accepted from the same peer session (its HELLO already in the stream).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Reconnected(pub BoxedTransport);

/// Asks for the link's [`PeerSessionState`].
#[derive(Message)]
#[rtype(result = "PeerSessionState")]
pub struct PeerSession;

/// The answer to [`PeerSession`]: whose session the link carries, and whether it
/// waits for that peer to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerSessionState {
    /// The peer's session id, once its HELLO arrived (reliable mode only).
    pub id: Option<u64>,
    /// The transport broke and the link waits for a new one (reconnecting, or
    /// within the resume window).
    pub reconnecting: bool,
}

impl Handler<PeerSession> for LinkActor {
    type Result = MessageResult<PeerSession>;

    fn handle(&mut self, _: PeerSession, _: &mut Self::Context) -> Self::Result {
        MessageResult(PeerSessionState {
            id: self.session.peer_session_id(),
            reconnecting: self.reconnecting,
        })
    }
}

impl Handler<Reconnected> for LinkActor {
    type Result = ();

    fn handle(&mut self, Reconnected(transport): Reconnected, ctx: &mut Self::Context) {
        // The old transport may not have reported its end yet (the peer noticed the
        // break first): retire its writer and hold output until the new HELLO.
        if !self.reconnecting {
            self.scheduler.do_send(crate::scheduler_actor::Unpark);
        }
        self.reconnecting = false;
        self.session.reconnect();
        self.run_transport(transport, ctx);
        self.pump(ctx);
    }
}

enum Outbound {
    Request(CallReply),
    OneWay,
    Answer(StreamId, Result<(), ErrorCode>),
}

impl Actor for LinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.scheduler
            .do_send(crate::scheduler_actor::Watchdog(ctx.address().recipient()));
        if let Some(transport) = self.transport.take() {
            self.run_transport(transport, ctx);
        }
        self.pump(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Calls made while the actor was stopping fail for the reason it went down.
        let reason = match &*self.state.borrow() {
            LinkState::Down(why) => why.clone(),
            _ => DownReason::ActorStopped,
        };
        self.fail_calls(&reason);
        self.one_way.close();
        self.scheduler.do_send(Close);
        tracing::debug!(link = %self.id, "link actor stopped");
    }
}

/// How many bytes a link's reader asks the transport for at a time: its write
/// batch size (the runtime's measure of the link's speed), from 16 KiB (serial
/// lines, whose reads are short anyway: a gateway with many of them keeps small
/// buffers) up to 256 KiB (TCP: larger reads measured no faster, and a gateway's
/// TCP links keep 256 KiB buffers each). With less than a sixteenth of that left,
/// the reader gets a new buffer before reading.
fn read_size(batch_budget: usize) -> usize {
    batch_budget.clamp(16 * 1024, 256 * 1024)
}

/// Bytes read from the transport, in the reader's buffer (see
/// [`Session::handle_input_buf`]); answered with the buffer, holding the start of a
/// frame still arriving.
#[derive(Message)]
#[rtype(result = "BytesMut")]
pub(crate) struct Input(pub BytesMut, pub u64);

impl Handler<Input> for LinkActor {
    type Result = MessageResult<Input>;

    fn handle(
        &mut self,
        Input(mut buf, generation): Input,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        if generation != self.generation {
            return MessageResult(BytesMut::new()); // a read of a transport that was replaced
        }
        // A protocol error arrives as `LinkEvent::Failed` too; `pump` handles it.
        let _ = self.session.handle_input_buf(&mut buf, now());
        self.pump(ctx);
        MessageResult(buf)
    }
}

/// The transport ended (`EndOfStream`) or failed (`Transport`).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct TransportClosed(pub DownReason, pub u64);

impl Handler<TransportClosed> for LinkActor {
    type Result = ();

    fn handle(
        &mut self,
        TransportClosed(reason, generation): TransportClosed,
        ctx: &mut Self::Context,
    ) {
        if generation != self.generation {
            return;
        }
        let reason = match (reason, self.peer_going_away) {
            (DownReason::EndOfStream, Some(code)) => DownReason::PeerWentAway(code),
            (reason, _) => reason,
        };
        if self.connector.is_some() && !self.session.is_failed() {
            return self.reconnect(reason, ctx);
        }
        if let (Some(window), false) = (self.resume_window, self.session.is_failed()) {
            return self.await_peer(reason, window, ctx);
        }
        tracing::info!(link = %self.id, %reason, "transport closed");
        self.go_down(reason, ctx);
    }
}

/// Sends a request; the answer (or the failure) arrives on `reply`. Answered
/// with the request's stream id, to cancel it.
#[derive(Message)]
#[rtype(result = "Result<StreamId, CallError>")]
pub struct Call {
    /// Route, priority, headers; for a file payload, `body: None` and the length.
    pub message: Message,
    /// A file to stream as the body, if any.
    pub payload: Option<Payload>,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Response, CallError>>,
    /// Hand a multi-frame answer over as a [`Body::Stream`] as soon as it opens,
    /// instead of reassembling or spooling it first.
    pub stream_answer: bool,
}

impl Handler<Call> for LinkActor {
    type Result = Result<StreamId, CallError>;

    fn handle(&mut self, msg: Call, ctx: &mut Self::Context) -> Self::Result {
        let stream =
            self.send_message(msg.message, msg.payload, Outbound::Request(msg.reply), ctx)?;
        if msg.stream_answer {
            self.streamed_answers.insert(stream);
        }
        Ok(stream)
    }
}

/// Sends a one-way message; answered with its stream id.
#[derive(Message)]
#[rtype(result = "Result<StreamId, CallError>")]
pub struct SendOneWay {
    /// Route, priority, headers, body.
    pub message: Message,
    /// A file to stream as the body, if any.
    pub payload: Option<Payload>,
}

impl Handler<SendOneWay> for LinkActor {
    type Result = ActorResponse<Self, Result<StreamId, CallError>>;

    /// Queues the message at once if the link's one-way queue has room for it;
    /// else waits for room (the mailbox goes on meanwhile).
    fn handle(&mut self, msg: SendOneWay, ctx: &mut Self::Context) -> Self::Result {
        let charge = self.one_way.charge_of(&msg.message);
        if self.one_way.try_take(charge) {
            return ActorResponse::reply(self.send_one_way(msg, charge, ctx));
        }
        let room = self.one_way.clone().take(charge);
        ActorResponse::r#async(actix::fut::wrap_future(room).map(
            move |taken, act: &mut Self, ctx| {
                if !taken {
                    // The queue closes when the link goes down.
                    let reason = match &*act.state.borrow() {
                        LinkState::Down(why) => why.clone(),
                        _ => DownReason::ActorStopped,
                    };
                    return Err(CallError::LinkDown(reason));
                }
                act.send_one_way(msg, charge, ctx)
            },
        ))
    }
}

impl LinkActor {
    /// Queues a one-way message whose `charge` was taken from the one-way queue
    /// (given back if it cannot be queued).
    fn send_one_way(
        &mut self,
        msg: SendOneWay,
        charge: u32,
        ctx: &mut Context<Self>,
    ) -> Result<StreamId, CallError> {
        let result = self.send_message(msg.message, msg.payload, Outbound::OneWay, ctx);
        if result.is_err() {
            self.one_way.refund(charge);
        }
        result
    }
}

/// Answers an inbound request.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Respond {
    /// The request's stream.
    pub stream: StreamId,
    /// `Ok` for a response, `Err(code)` for an error response.
    pub outcome: Result<(), ErrorCode>,
    /// Headers, priority and body.
    pub message: Message,
    /// A file to stream as the body, if any.
    pub payload: Option<Payload>,
}

impl Handler<Respond> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: Respond, ctx: &mut Self::Context) {
        self.serving.remove(&msg.stream);
        let outbound = Outbound::Answer(msg.stream, msg.outcome);
        if let Err(error) = self.send_message(msg.message, msg.payload, outbound, ctx) {
            // Canceled by the peer meanwhile, or the link is closing.
            tracing::debug!(link = %self.id, stream = msg.stream.0, %error, "answer not sent");
        }
    }
}

/// Abandons a stream either way and tells the peer (a canceled or timed-out call,
/// a failed spool, a canceled transfer).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CancelStream {
    /// The stream.
    pub stream: StreamId,
    /// The code the peer gets.
    pub code: ErrorCode,
}

impl Handler<CancelStream> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: CancelStream, ctx: &mut Self::Context) {
        self.abandon(msg.stream, msg.code, ctx);
    }
}

/// Feeding a streamed outbound body failed (its file could not be read or shrank,
/// its channel broke its announced length): a call fails with that error (not
/// with `LinkDown`: the link is fine), and the stream is canceled on the wire
/// (the peer gets CANCEL `Internal` and drops what arrived of the body).
#[derive(Message)]
#[rtype(result = "()")]
struct BodyFailed {
    stream: StreamId,
    error: CallError,
}

impl Handler<BodyFailed> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: BodyFailed, ctx: &mut Self::Context) {
        if let Some(reply) = self.abandon(msg.stream, ErrorCode::Internal, ctx) {
            let _ = reply.send(Err(msg.error));
        }
    }
}

/// A stream actor wrote `len` bytes: their credit goes back to the peer.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Release {
    /// The stream.
    pub stream: StreamId,
    /// Bytes written.
    pub len: u64,
}

impl Handler<Release> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: Release, ctx: &mut Self::Context) {
        self.session.release(msg.stream, msg.len);
        self.pump(ctx);
    }
}

/// A stream actor finished spooling a message.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Spooled {
    /// The stream.
    pub stream: StreamId,
    /// The complete body.
    pub file: SpooledFile,
}

/// A streamed inbound body opened (see [`crate::body_stream`]): the message goes
/// to the router now, its body arriving as the handler reads it.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct StreamOpened {
    /// The stream.
    pub stream: StreamId,
    /// Its body.
    pub body: BodyStream,
}

impl Handler<StreamOpened> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: StreamOpened, ctx: &mut Self::Context) {
        // Not there if the stream was canceled meanwhile: the body is dropped.
        if let Some(head) = self.spooling.remove(&msg.stream) {
            self.deliver(head, Body::Stream(msg.body), ctx);
        }
    }
}

impl Handler<Spooled> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: Spooled, ctx: &mut Self::Context) {
        if let Some(head) = self.spooling.remove(&msg.stream) {
            self.deliver(head, Body::File(msg.file), ctx);
        }
    }
}

/// The scheduler actor's reliable mode gave up on a frame: the peer is gone.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct PeerUnresponsive;

impl Handler<PeerUnresponsive> for LinkActor {
    type Result = ();

    fn handle(&mut self, _: PeerUnresponsive, ctx: &mut Self::Context) {
        self.session.transmitter_failed();
        self.pump(ctx);
    }
}

/// Subscribes to the link's state.
#[derive(Message)]
#[rtype(result = "watch::Receiver<LinkState>")]
pub struct WatchState;

impl Handler<WatchState> for LinkActor {
    type Result = MessageResult<WatchState>;

    fn handle(&mut self, _: WatchState, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.state.subscribe())
    }
}

/// Starts an orderly shutdown: GOAWAY to the peer; in-flight messages go on.
/// Answered with the number of calls and served requests still in flight.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct GoAway {
    /// Why.
    pub code: ErrorCode,
}

impl Handler<GoAway> for LinkActor {
    type Result = usize;

    fn handle(&mut self, msg: GoAway, ctx: &mut Self::Context) -> usize {
        self.session.go_away(msg.code, "endpoint stopping");
        self.pump(ctx);
        self.calls.len() + self.serving.len()
    }
}

/// Calls and served requests in flight.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct InFlight;

impl Handler<InFlight> for LinkActor {
    type Result = usize;

    fn handle(&mut self, _: InFlight, _: &mut Self::Context) -> usize {
        self.calls.len() + self.serving.len()
    }
}

/// Resolves once what the link queued so far was written to its transport (see
/// the scheduler's [`Flush`]); the caller bounds the wait.
impl Handler<Flush> for LinkActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, _: &mut Self::Context) -> Self::Result {
        let scheduler = self.scheduler.clone();
        Box::pin(async move {
            let _ = scheduler.send(Flush).await;
        })
    }
}

/// Closes the link now, for this reason: pending calls fail with
/// [`CallError::LinkDown`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown(pub DownReason);

impl Handler<Shutdown> for LinkActor {
    type Result = ();

    fn handle(&mut self, Shutdown(reason): Shutdown, ctx: &mut Self::Context) {
        self.go_down(reason, ctx);
    }
}

/// A HELLO nonce: random per link, so two sides never pick the same.
fn random_nonce() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Microseconds since the process's first call: the protocol core's clock, shared
/// by the link and scheduler actors.
pub(crate) fn now() -> Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    Instant::from_micros(start.elapsed().as_micros() as u64)
}
