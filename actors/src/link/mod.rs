//! [`LinkActor`]: one per link. Owns the transport and the inbound half of the
//! protocol ([`Session`]: framing decoder, handshake, ids, reassembly and its
//! limits), forwards the session's [`Command`]s to the link's
//! [`SchedulerActor`], resolves the answers of calls made on this link, and hands
//! inbound requests and one-way messages to the router.
//!
//! This file holds the actor, its start and its message handlers; the rest is
//! split by job: `options.rs` ([`LinkOptions`], [`Connector`]), `io.rs` (the
//! reader and writer tasks), `reconnect.rs` (reopening a broken transport, or
//! waiting for the peer to come back), `feed.rs` (feeding streamed outbound
//! bodies to the scheduler). The actor reaches its scheduler and the router
//! through recipients only, so a test starts it alone (`tests.rs`).

mod feed;
mod io;
mod options;
mod reconnect;
mod stats;

pub use options::{Connector, LinkOptions, ReconnectPolicy};

use crate::body::{Body, Payload, Release};
use crate::clock::{now, random_u64};
use crate::deadline::Deadline;
use crate::error::{CallError, DownReason};
use crate::ids::LinkId;
use crate::messages::{
    Apply, Call, CancelStream, Canceled as RouterCanceled, Close, Flush, GoAway, InFlight,
    Incoming, LinkHandle, LinkInbox, LinkRef, LinkState, Respond, Response, SchedulerInbox,
    SendOneWay, Shutdown, SpoolTarget, Spooled, StreamOpened, TransmitterFailed, WatchState,
    Watchdog,
};
use crate::one_way_queue::OneWayQueue;
use crate::scheduler_actor::SchedulerActor;
use crate::spool_backlog::SpoolBacklog;
use crate::stream_actor::{SpoolFactory, StreamedAnswers};
use crate::transport::{bridge_python, BoxedTransport, Dialect, PyWireCounters};
use crate::work_budget::WorkShare;
use actix::prelude::*;
use feed::feed_body;
use netcore_proto::link::{Command, LinkEvent, Message, Session};
use netcore_proto::reassembly::MessageHead;
use netcore_proto::{ErrorCode, MessageKind, StreamId};
use stats::StateCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tokio::sync::oneshot;

type CallReply = oneshot::Sender<Result<Response, CallError>>;

/// Owns one link's transport and inbound protocol state.
pub struct LinkActor {
    id: LinkId,
    session: Session,
    scheduler: SchedulerInbox,
    router: Recipient<Incoming>,
    router_cancel: Recipient<RouterCanceled>,
    transport: Option<BoxedTransport>,
    flush: bool,
    chunk_len: usize,
    /// Bytes the reader asks for at a time (see `io::read_size`).
    read_size: usize,
    /// Body bytes on their way to spool files (shared with the session's sink
    /// factory): the reader waits while they are too many.
    spool_backlog: SpoolBacklog,
    /// Our calls whose answer streams (shared with the session's sink factory).
    streamed_answers: StreamedAnswers,
    calls: HashMap<StreamId, CallReply>,
    /// Inbound requests handed to the router and not yet answered; those the peer
    /// canceled (its handler is aborted) leave too, so a drain never waits for them.
    serving: HashSet<StreamId>,
    /// Heads of inbound messages spooling in stream actors.
    spooling: HashMap<StreamId, MessageHead>,
    /// The link's state, watched by its owner, and since when it holds.
    state: StateCell,
    /// When the link started (its uptime's origin).
    started: std::time::Instant,
    /// The session's next timer (delayed ACK, keepalive) and its handle.
    timer: Deadline,
    connector: Option<Connector>,
    resume_window: Option<std::time::Duration>,
    /// How a lost peer is got back (see `reconnect.rs`).
    reconnect: ReconnectPolicy,
    /// Where outages are reported.
    events: Option<crate::event_bus::EventBus>,
    /// The peer is lost: since when, and the attempts so far.
    outage: Option<reconnect::Outage>,
    /// Counts probe loops: a probe timer armed by an earlier one is ignored.
    probes: u64,
    /// A HELLO may be repeated on a reopened transport (the reliable mode,
    /// without the authenticated mode's handshake).
    rehello: bool,
    /// Counts transports: messages from the tasks of an older one are ignored.
    generation: u64,
    reconnecting: bool,
    /// The code of the peer's GOAWAY, once received: the end of its transport is
    /// then the peer going away, not a mere end of stream.
    peer_going_away: Option<ErrorCode>,
    /// The bound on queued one-way messages (shared with the scheduler actor).
    one_way: OneWayQueue,
    /// The link's share of the endpoint's work budget (shared with the scheduler
    /// actor): inbound messages are admitted against it.
    work: WorkShare,
    /// The link's own handle, given to the router with every inbound request.
    handle: LinkRef,
    /// The authenticated peer, shared with every handle of the link.
    peer: Arc<std::sync::OnceLock<netcore_proto::secure::KeyId>>,
    /// A Python-dialect link: its wire's counters (its stats report them).
    py_wire: Option<Arc<PyWireCounters>>,
}

/// For a Python-dialect link: the transport run through a bridge, a connector
/// whose every new transport gets a bridge of its own, the wire's counters, and
/// the native settings the in-memory pipe to the bridge takes (stream framing, no
/// reliable mode, pacing, keepalive or authenticated mode). A native link's are
/// returned as they are.
fn python_wire(
    transport: BoxedTransport,
    connector: Option<Connector>,
    dialect: &Dialect,
    id: LinkId,
    config: &mut netcore_proto::link::LinkConfig,
) -> (
    BoxedTransport,
    Option<Connector>,
    Option<Arc<PyWireCounters>>,
) {
    let Dialect::Python(limits) = dialect else {
        return (transport, connector, None);
    };
    config.framing = netcore_proto::framing::FramingKind::Stream;
    config.reliable = None;
    config.pacing = None;
    config.keepalive = None;
    config.supervised = false;
    config.secure = None;
    let counters = Arc::new(PyWireCounters::default());
    let transport = bridge_python(transport, limits.clone(), id, counters.clone());
    let connector = connector.map(|inner| {
        let (limits, counters) = (limits.clone(), counters.clone());
        Connector::new(move || {
            let (open, limits, counters) = ((inner.0)(), limits.clone(), counters.clone());
            async move {
                let transport = open.await?;
                tracing::info!(link = %id, "python wire reopened; a new bridge starts");
                Ok(bridge_python(transport, limits, id, counters))
            }
        })
    });
    (transport, connector, Some(counters))
}

impl LinkActor {
    /// Starts a link over `transport` with its scheduler actor; inbound requests
    /// and one-way messages go to `router`, the peer's cancellations of them to
    /// `router_cancel`.
    pub fn start(
        transport: BoxedTransport,
        mut options: LinkOptions,
        router: Recipient<Incoming>,
        router_cancel: Recipient<RouterCanceled>,
    ) -> LinkHandle {
        options.config.nonce = random_u64();
        options.config.session_id = random_u64();
        let one_way = OneWayQueue::new(options.one_way_queue);
        let work = WorkShare::new(options.work_budget.clone());
        let scheduler_actor = SchedulerActor::new(&options.config, options.batch_budget)
            .with_one_way_queue(one_way.clone())
            .with_work_share(work.clone());
        let scheduler = match &options.arbiter {
            Some(arbiter) => SchedulerActor::start_in_arbiter(arbiter, move |_| scheduler_actor),
            None => scheduler_actor.start(),
        };
        let scheduler = SchedulerInbox::of(&scheduler);
        LinkActor::start_with(
            transport,
            options,
            (one_way, work),
            scheduler,
            router,
            router_cancel,
        )
    }

    /// Starts a link actor over `transport` whose scheduler is reached through
    /// `scheduler` (a stand-in, in tests), sharing the bound on queued one-way
    /// messages `one_way` and the link's share of the work budget `work` with it.
    pub(crate) fn start_with(
        transport: BoxedTransport,
        options: LinkOptions,
        (one_way, work): (OneWayQueue, WorkShare),
        scheduler: SchedulerInbox,
        router: Recipient<Incoming>,
        router_cancel: Recipient<RouterCanceled>,
    ) -> LinkHandle {
        let mut config = options.config;
        let id = LinkId::next();
        let (transport, connector, py_wire) = python_wire(
            transport,
            options.connector,
            &options.dialect,
            id,
            &mut config,
        );
        let chunk_len = config.chunk_len;
        let progress = scheduler.progress.clone();
        let (spool, flush) = (options.spool, options.flush);
        let resume_window = options.resume_window;
        let (reconnect, events) = (options.reconnect, options.events);
        let rehello = config.reliable.is_some() && config.secure.is_none();
        let read_size = io::read_size(options.batch_budget);
        let inbox_progress = progress.clone();
        let peer: Arc<std::sync::OnceLock<netcore_proto::secure::KeyId>> = Arc::default();
        let actor_peer = peer.clone();
        let build = move |ctx: &mut Context<LinkActor>| {
            let streamed_answers = StreamedAnswers::default();
            let spool_backlog = SpoolBacklog::new(config.budget.clone());
            let factory = SpoolFactory {
                link: SpoolTarget::of(&ctx.address()),
                limits: spool,
                live: Arc::new(AtomicUsize::new(0)),
                release_every: config.stream_window / 4,
                streamed_answers: streamed_answers.clone(),
                backlog: spool_backlog.clone(),
            };
            let mut session = Session::new(config, Some(Box::new(factory)));
            session.set_read_ahead(io::ReadSize::new(read_size).want);
            LinkActor {
                id,
                session,
                scheduler,
                router,
                router_cancel,
                transport: Some(transport),
                flush,
                chunk_len,
                read_size,
                spool_backlog,
                streamed_answers,
                calls: HashMap::new(),
                serving: HashSet::new(),
                spooling: HashMap::new(),
                state: StateCell::new(),
                started: std::time::Instant::now(),
                timer: Deadline::default(),
                connector,
                resume_window,
                reconnect,
                events,
                outage: None,
                probes: 0,
                rehello,
                generation: 0,
                reconnecting: false,
                peer_going_away: None,
                one_way,
                work,
                handle: LinkRef::new(
                    id,
                    LinkInbox::of(&ctx.address(), inbox_progress).sharing_peer(actor_peer.clone()),
                ),
                peer: actor_peer,
                py_wire,
            }
        };
        let addr = match &options.arbiter {
            Some(arbiter) => LinkActor::start_in_arbiter(arbiter, build),
            None => LinkActor::create(build),
        };
        LinkHandle::new(LinkRef::new(
            id,
            LinkInbox::of(&addr, progress).sharing_peer(peer),
        ))
    }

    /// Moves the session's commands to the scheduler and handles its events.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        loop {
            let mut commands: Vec<Command> = Vec::new();
            while let Some(command) = self.session.poll_command() {
                commands.push(command);
            }
            if !commands.is_empty() {
                self.scheduler.apply.do_send(Apply(commands));
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
                if let Some(peer) = self.session.secure_peer() {
                    tracing::debug!(link = %self.id, %peer, "peer authenticated");
                    let _ = self.peer.set(peer.clone());
                }
                tracing::debug!(link = %self.id, ?parity, "link up");
                self.state.send_replace(LinkState::Up);
            }
            LinkEvent::Message { head, body } => self.deliver(head, Body::Bytes(body)),
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
                self.peer_back();
            }
            LinkEvent::PeerReset => {
                tracing::warn!(link = %self.id, "reconnected to a peer that lost the session");
                self.peer_back();
            }
            LinkEvent::Silent { what } => self.peer_silent(what, ctx),
            LinkEvent::Heard => {
                tracing::info!(link = %self.id, "silent peer heard again");
                self.peer_back();
            }
            LinkEvent::GoAway { code, reason, .. } => {
                tracing::info!(link = %self.id, %code, %reason, "peer is going away");
                self.peer_going_away = Some(code);
                let closing = LinkState::Closing(DownReason::PeerWentAway(code));
                self.state.send_replace(closing);
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
    fn deliver(&mut self, head: MessageHead, body: Body) {
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
                let in_memory = match &body {
                    Body::Bytes(bytes) => bytes.len() as u64,
                    Body::File(_) | Body::Stream(_) => 0,
                };
                let Some(work) = self.work.admit(in_memory) else {
                    // The link's requests and unread answers fill its share of
                    // the work budget: refused before a handler sees it.
                    tracing::warn!(link = %self.id, stream = head.stream.0, route = %head.route, held = self.work.held(), "work budget full; refusing an inbound message");
                    if head.kind == MessageKind::Request {
                        self.session.cancel(head.stream, ErrorCode::Refused);
                    }
                    return;
                };
                if head.kind == MessageKind::Request {
                    self.serving.insert(head.stream);
                }
                let incoming = Incoming {
                    link: self.handle.clone(),
                    head,
                    body,
                    work,
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

    /// Why the link went down; `ActorStopped` if its actor stopped without
    /// going down first.
    fn down_reason(&self) -> DownReason {
        match &*self.state.borrow() {
            LinkState::Down(why) => why.clone(),
            _ => DownReason::ActorStopped,
        }
    }

    fn go_down(&mut self, reason: DownReason, ctx: &mut Context<Self>) {
        if matches!(*self.state.borrow(), LinkState::Down(_)) {
            return;
        }
        self.fail_calls(&reason);
        self.state.send_replace(LinkState::Down(reason));
        self.scheduler.close.do_send(Close);
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
            let scheduler = self.scheduler.push.clone();
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

enum Outbound {
    Request(CallReply),
    OneWay,
    Answer(StreamId, Result<(), ErrorCode>),
}

impl Actor for LinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.scheduler
            .watchdog
            .do_send(Watchdog(ctx.address().recipient()));
        if let Some(transport) = self.transport.take() {
            self.run_transport(transport, ctx);
        }
        self.pump(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Calls made while the actor was stopping fail for the reason it went down.
        let reason = self.down_reason();
        self.fail_calls(&reason);
        self.one_way.close();
        self.scheduler.close.do_send(Close);
        tracing::debug!(link = %self.id, "link actor stopped");
    }
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
                    return Err(CallError::LinkDown(act.down_reason()));
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

impl Handler<Release> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: Release, ctx: &mut Self::Context) {
        // The credit this returns restarts the stream's stall clock: stamp it now.
        self.session.set_now(now());
        self.session.release(msg.stream, msg.len);
        self.pump(ctx);
    }
}

impl Handler<StreamOpened> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: StreamOpened, ctx: &mut Self::Context) {
        // Not there if the stream was canceled meanwhile: the body is dropped.
        if let Some(head) = self.spooling.remove(&msg.stream) {
            self.deliver(head, Body::Stream(msg.body));
            self.pump(ctx);
        }
    }
}

impl Handler<Spooled> for LinkActor {
    type Result = ();

    fn handle(&mut self, msg: Spooled, ctx: &mut Self::Context) {
        if let Some(head) = self.spooling.remove(&msg.stream) {
            self.deliver(head, Body::File(msg.file));
            self.pump(ctx);
        }
    }
}

impl Handler<TransmitterFailed> for LinkActor {
    type Result = ();

    fn handle(&mut self, TransmitterFailed(error): TransmitterFailed, ctx: &mut Self::Context) {
        self.session.transmitter_failed(error);
        self.pump(ctx);
    }
}

impl Handler<WatchState> for LinkActor {
    type Result = MessageResult<WatchState>;

    fn handle(&mut self, _: WatchState, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.state.subscribe())
    }
}

impl Handler<GoAway> for LinkActor {
    type Result = usize;

    fn handle(&mut self, msg: GoAway, ctx: &mut Self::Context) -> usize {
        self.session.go_away(msg.code, "endpoint stopping");
        self.pump(ctx);
        self.calls.len() + self.serving.len()
    }
}

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
        let scheduler = self.scheduler.flush.clone();
        Box::pin(async move {
            let _ = scheduler.send(Flush).await;
        })
    }
}

impl Handler<Shutdown> for LinkActor {
    type Result = ();

    fn handle(&mut self, Shutdown(reason): Shutdown, ctx: &mut Self::Context) {
        self.go_down(reason, ctx);
    }
}

#[cfg(test)]
mod tests;
