//! [`RouterActor`]: dispatches inbound requests and one-way messages to async
//! handler functions or handler actors, at most `max_workers` at a time, and
//! sends each answer back on the link the request came from.
//!
//! - Unknown route: the default handler of the longest matching prefix if one is
//!   set, else an error response `NotFound` (never silence).
//! - A handler that panics: its request gets an error response `HandlerFailed`;
//!   the router and the other handlers go on (each handler runs in its own task,
//!   whose panic the runtime catches).
//! - More requests than workers: queued up to `max_queued`, then refused at once
//!   with `Refused` ("busy"), so a flood of small requests cannot grow memory.
//!   Each link has a queue of its own, served in turn, and when the queues are
//!   full the request refused is the newest of the longest queue: a link that
//!   floods the router gets its own requests refused, never another link's.
//! - One link runs at most `max_workers_per_link` handlers at once (3/4 of
//!   `max_workers` by default), so a burst of slow requests on one link leaves
//!   workers free for the others. A link at its cap keeps its place in the turns
//!   and is skipped until one of its handlers ends.
//! - The peer cancels a request: its handler task is aborted.
//! - Blocking work ([`run_blocking`]) runs on tokio's blocking pool, never on
//!   the router's thread, and holds its request's worker slot until it returns,
//!   even when the request was canceled meanwhile.
//!
//! Handler actors: any actix actor implementing `Handler<HandleRequest>` can be
//! mounted at a route ([`Route::Actor`]); it serves those requests with its own
//! state and mailbox. If it is gone, the request fails with `HandlerFailed`.

use crate::body::{Body, Payload};
use crate::error::HandlerError;
use crate::event_bus::{Event, EventBus};
use crate::ids::LinkId;
use crate::messages::{Canceled, Incoming, LinkRef, Respond};
use crate::supervision::guard_future;
use crate::work_budget::WorkCharge;
use actix::prelude::*;
use actix::WeakAddr;
use futures_util::future::LocalBoxFuture;
use futures_util::future::{AbortHandle, Abortable, Aborted};
use futures_util::FutureExt;
use netcore_proto::frame::{header_value, Header};
use netcore_proto::link::Message as ProtoMessage;
use netcore_proto::reassembly::MessageHead;
use netcore_proto::{ErrorCode, MessageKind, Priority, StreamId};
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use tracing::Instrument;

/// An inbound request or one-way message, as a handler sees it.
#[derive(Debug)]
pub struct Request {
    /// The link it arrived on (answers go back on it).
    pub link: LinkRef,
    /// Route, kind, priority, headers.
    pub head: MessageHead,
    /// The body, in memory or spooled.
    pub body: Body,
}

impl Request {
    /// The route.
    pub fn route(&self) -> &str {
        &self.head.route
    }

    /// True for a one-way message (no answer is sent).
    pub fn is_one_way(&self) -> bool {
        self.head.kind == MessageKind::OneWay
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header_value(&self.head.headers, name)
    }
}

/// A handler's answer.
#[derive(Debug, Default)]
pub struct Reply {
    /// The body.
    pub payload: Option<Payload>,
    /// Headers.
    pub headers: Vec<Header>,
    /// Priority class of the answer (default: the request's).
    pub priority: Option<Priority>,
}

impl Reply {
    /// An answer with this body.
    pub fn new(payload: impl Into<Payload>) -> Reply {
        Reply {
            payload: Some(payload.into()),
            ..Reply::default()
        }
    }

    /// An empty answer.
    pub fn empty() -> Reply {
        Reply::default()
    }
}

/// What a handler returns.
pub type HandlerResult = Result<Reply, HandlerError>;

/// An async handler function.
pub type HandlerFn =
    Arc<dyn Fn(Request) -> LocalBoxFuture<'static, HandlerResult> + Send + Sync + 'static>;

/// The message a handler actor implements (`impl Handler<HandleRequest> for MyActor`).
#[derive(Message)]
#[rtype(result = "HandlerResult")]
pub struct HandleRequest(pub Request);

/// What serves a route.
#[derive(Clone)]
pub enum Route {
    /// An async function.
    Fn(HandlerFn),
    /// A handler actor.
    Actor(Recipient<HandleRequest>),
}

impl Route {
    /// A route served by an async function or closure.
    pub fn handler<F, Fut>(f: F) -> Route
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = HandlerResult> + 'static,
    {
        Route::Fn(Arc::new(move |req| Box::pin(f(req))))
    }

    fn call(&self, request: Request) -> LocalBoxFuture<'static, HandlerResult> {
        match self {
            Route::Fn(f) => f(request),
            Route::Actor(recipient) => ask_actor(recipient, request),
        }
    }
}

/// Hands `request` to a handler actor and waits for its answer; a handler
/// actor that is gone answers `HandlerFailed`. The one forwarder of actor
/// routes ([`Route::Actor`], and the application's blueprints).
pub fn ask_actor(
    actor: &Recipient<HandleRequest>,
    request: Request,
) -> LocalBoxFuture<'static, HandlerResult> {
    let send = actor.send(HandleRequest(request));
    Box::pin(async move {
        send.await.unwrap_or_else(|error| {
            Err(HandlerError::failed(format!(
                "handler actor unavailable: {error}"
            )))
        })
    })
}

/// Limits of the router.
#[derive(Clone, Copy, Debug)]
pub struct RouterConfig {
    /// Most handlers running at once.
    pub max_workers: usize,
    /// Most handlers of one link running at once; `None`: 3/4 of `max_workers`
    /// (see [`RouterConfig::per_link_cap`]).
    pub max_workers_per_link: Option<usize>,
    /// Most requests waiting for a worker; more are refused.
    pub max_queued: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            max_workers: 64,
            max_workers_per_link: None,
            max_queued: 4096,
        }
    }
}

impl RouterConfig {
    /// The most handlers one link runs at once: `max_workers_per_link`, by
    /// default 3/4 of `max_workers`, always at least 1 and at most
    /// `max_workers`. Why 3/4: a link alone (a device on a serial line, one
    /// client) still gets most of the workers, and whatever one link's burst
    /// does, a quarter of them stay free for the other links' requests.
    pub fn per_link_cap(&self) -> usize {
        let max_workers = self.max_workers.max(1);
        self.max_workers_per_link
            // ⌊3n/4⌋, without overflow.
            .unwrap_or(max_workers / 4 * 3 + max_workers % 4 * 3 / 4)
            .clamp(1, max_workers)
    }
}

thread_local! {
    /// The worker slot of the handler being polled on this thread, for
    /// [`run_blocking`] (set by [`InSlot`] around each poll).
    static CURRENT_SLOT: Cell<Option<WorkerSlot>> = const { Cell::new(None) };
}

/// A handler future that holds its worker slot and makes it the current one
/// while it is polled. `Unpin` as the handler is, so the router can poll it once
/// in place.
struct InSlot<F> {
    slot: Option<WorkerSlot>,
    handler: F,
}

impl<F: Future + Unpin> Future for InSlot<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        /// Takes the slot back (and restores the outer one) after the poll,
        /// panicking or not.
        struct Restore<'a> {
            slot: &'a mut Option<WorkerSlot>,
            outer: Option<WorkerSlot>,
        }
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                *self.slot = CURRENT_SLOT.with(|current| current.replace(self.outer.take()));
            }
        }
        let this = self.get_mut();
        let outer = CURRENT_SLOT.with(|current| current.replace(this.slot.take()));
        let _restore = Restore {
            slot: &mut this.slot,
            outer,
        };
        this.handler.poll_unpin(cx)
    }
}

/// A handler's worker slot, shared by its task and the blocking work it started
/// ([`run_blocking`]): the router counts it busy until the last holder drops it.
#[derive(Clone)]
struct WorkerSlot(Arc<SlotRelease>);

/// Sends [`Done`] to the router when the last holder of a counted slot drops it.
struct SlotRelease {
    /// The router's address, shared by all its slots (cloning an `Addr`
    /// allocates), weak so the router still stops once its owners are gone.
    router: Arc<WeakAddr<RouterActor>>,
    link: LinkId,
    stream: StreamId,
    serial: u64,
    /// Whether the router counted the slot busy (a handler that finished at its
    /// first poll, leaving no blocking work behind, never was).
    counted: AtomicBool,
}

impl Drop for SlotRelease {
    fn drop(&mut self) {
        if let (true, Some(router)) = (*self.counted.get_mut(), self.router.upgrade()) {
            router.do_send(Done {
                link: self.link,
                stream: self.stream,
                serial: self.serial,
            });
        }
    }
}

/// Runs `work` on tokio's blocking pool (`spawn_blocking`) and awaits its
/// result, so a handler can sleep, do synchronous file or database I/O or long
/// computations without stalling the thread that runs the router, the other
/// handlers and (by default) the links.
///
/// Called from a handler the router runs, the work holds the request's worker
/// slot until it returns: a peer that cancels the request aborts the handler but
/// not the thread (a thread cannot be stopped), so the slot stays busy, and
/// `max_workers` bounds the threads blocking work of one endpoint occupies. The
/// pool is the runtime's: tokio's default, up to 512 threads, started on demand
/// and ended after 10 s idle. A panic in `work` is the error `HandlerFailed`.
pub async fn run_blocking<F, R>(work: F) -> Result<R, HandlerError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let slot = CURRENT_SLOT.with(|current| {
        let slot = current.take();
        let held = slot.clone();
        current.set(slot);
        held
    });
    let span = tracing::Span::current();
    let join = tokio::task::spawn_blocking(move || {
        let result = span.in_scope(|| crate::supervision::guard(work));
        drop(slot);
        result
    });
    match join.await {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(why)) => {
            tracing::error!(%why, "blocking handler panicked");
            Err(HandlerError::failed(format!("handler panicked: {why}")))
        }
        Err(error) => Err(HandlerError::failed(format!(
            "blocking handler did not run: {error}"
        ))),
    }
}

/// Dispatches inbound requests to handlers.
pub struct RouterActor {
    routes: HashMap<String, Route>,
    /// Default handlers by route prefix, longest prefix first.
    defaults: Vec<(String, Route)>,
    config: RouterConfig,
    /// Requests waiting for a worker, per link.
    queues: HashMap<LinkId, VecDeque<Incoming>>,
    /// The links with waiting requests, in the order they are served.
    turns: VecDeque<LinkId>,
    /// Requests waiting, over all links.
    queued: usize,
    /// Handler tasks running, to abort on the peer's CANCEL, with their slot's
    /// serial.
    running: HashMap<(LinkId, StreamId), (u64, AbortHandle)>,
    /// Worker slots busy, over all links.
    active: usize,
    /// Worker slots busy, per link (links with none are absent).
    active_per_link: HashMap<LinkId, usize>,
    /// The serial of the next worker slot.
    next_serial: u64,
    /// The router's own address, for the worker slots (made at the first request).
    address: Option<Arc<WeakAddr<RouterActor>>>,
    events: Option<EventBus>,
    /// The endpoint's name, in request spans.
    name: String,
}

impl RouterActor {
    /// A router with these routes, default handlers for unknown routes by prefix
    /// (`""` matches every route), and limits.
    pub fn new(
        routes: HashMap<String, Route>,
        mut defaults: Vec<(String, Route)>,
        config: RouterConfig,
    ) -> Self {
        defaults.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        RouterActor {
            routes,
            defaults,
            config: RouterConfig {
                max_workers: config.max_workers.max(1),
                max_workers_per_link: Some(config.per_link_cap()),
                ..config
            },
            queues: HashMap::new(),
            turns: VecDeque::new(),
            queued: 0,
            running: HashMap::new(),
            active: 0,
            active_per_link: HashMap::new(),
            next_serial: 0,
            address: None,
            events: None,
            name: String::from("endpoint"),
        }
    }

    /// Names the router (its endpoint) in the spans of the requests it runs.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Publishes `Request`, `Response` and `Canceled` events on `bus`.
    pub fn with_events(mut self, bus: EventBus) -> Self {
        self.events = Some(bus);
        self
    }

    /// Publishes the event `make` builds, if anyone listens (builds nothing otherwise).
    fn publish(&self, make: impl FnOnce() -> Event) {
        publish_on(&self.events, make);
    }

    fn dispatch(&mut self, incoming: Incoming, ctx: &mut Context<Self>) {
        let Incoming {
            link,
            head,
            body,
            work,
        } = incoming;
        let route = self
            .routes
            .get(head.route.as_str())
            .or_else(|| {
                self.defaults
                    .iter()
                    .find(|(prefix, _)| head.route.starts_with(prefix.as_str()))
                    .map(|(_, route)| route)
            })
            .cloned();
        let one_way = head.kind == MessageKind::OneWay;
        let priority = head.priority;
        let stream = head.stream;
        let route_name = head.route.clone();
        let answer_to = link.clone();
        let link_id = link.id();
        self.publish(|| Event::Request {
            link: link_id,
            route: route_name.clone(),
        });
        let events = self.events.clone();
        let task = match route {
            Some(route) => {
                let request = Request { link, head, body };
                route.call(request)
            }
            None => {
                let error =
                    HandlerError::new(ErrorCode::NotFound, format!("no route {route_name:?}"));
                Box::pin(async move { Err(error) })
            }
        };
        // Most handlers (count, store, echo) finish at their first poll: those run
        // here, needing no task, no worker and no `Done` message back through the
        // mailbox (behind a flood of inbound messages, those kept the workers
        // counted busy and the queue overflowing).
        let after = AfterHandler {
            route_name,
            one_way,
            answer_to,
            stream,
            priority,
            events,
            link_id,
            _work: work,
        };
        // Everything the handler logs runs in a span naming the request (enabled
        // with `debug` level for this crate, e.g. `RUST_LOG=netcore_actors=debug`).
        let span = tracing::debug_span!(
            "request",
            endpoint = %self.name,
            link = %link_id,
            route = %after.route_name,
            stream = stream.0,
        );
        // The handler's worker slot, reachable while it is polled (for
        // `run_blocking`); counted busy only if it outlives the first poll.
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut slot = WorkerSlot(Arc::new(SlotRelease {
            router: self
                .address
                .get_or_insert_with(|| Arc::new(ctx.address().downgrade()))
                .clone(),
            link: link_id,
            stream,
            serial,
            counted: AtomicBool::new(false),
        }));
        let mut task = guard_future(InSlot {
            slot: Some(slot.clone()),
            handler: task.instrument(span),
        });
        if let Some(outcome) = (&mut task).now_or_never() {
            drop(task);
            let mut finish = Box::pin(after.run(Ok(outcome)));
            if (&mut finish).now_or_never().is_none() {
                actix_rt::spawn(finish);
            }
            if Arc::get_mut(&mut slot.0).is_some() {
                // Nothing else holds the slot, and nothing can take it any more.
                return;
            }
            // Blocking work the handler started and left running holds it.
            self.count_busy(&slot);
            return;
        }
        self.count_busy(&slot);
        drop(slot);
        // One task per request: the handler's panics are caught around it, and the
        // peer's CANCEL aborts it through `running`.
        let (abort, registration) = AbortHandle::new_pair();
        let task = Abortable::new(task, registration);
        self.running.insert((link_id, stream), (serial, abort));
        actix_rt::spawn(async move {
            // Awaiting drops the handler, and with it its hold on the slot.
            let outcome = task.await;
            after.run(outcome).await;
        });
    }

    /// Counts `slot` busy until its last holder drops it (which sends [`Done`]).
    fn count_busy(&mut self, slot: &WorkerSlot) {
        slot.0.counted.store(true, Ordering::Release);
        self.active += 1;
        *self.active_per_link.entry(slot.0.link).or_default() += 1;
    }

    /// Whether `link` may start one more handler now.
    fn has_room(&self, link: LinkId) -> bool {
        self.active < self.config.max_workers
            && self.active_per_link.get(&link).copied().unwrap_or(0) < self.config.per_link_cap()
    }
}

/// What follows a handler: log a panic, publish `Response`, send the answer of a
/// request.
struct AfterHandler {
    route_name: String,
    one_way: bool,
    answer_to: LinkRef,
    stream: StreamId,
    priority: Priority,
    events: Option<EventBus>,
    link_id: LinkId,
    /// The request's charge to its link's work budget, given back once its
    /// answer was handed to the link.
    _work: WorkCharge,
}

impl AfterHandler {
    /// Follows up on the handler's `outcome` (`Err(Aborted)`: the peer canceled
    /// the request; nothing follows).
    async fn run(self, outcome: Result<Result<HandlerResult, String>, Aborted>) {
        let result = match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(why)) => {
                tracing::error!(route = %self.route_name, %why, "handler panicked");
                Err(HandlerError::failed(format!("handler panicked: {why}")))
            }
            Err(Aborted) => return,
        };
        publish_on(&self.events, || Event::Response {
            link: self.link_id,
            route: self.route_name.clone(),
            ok: result.is_ok(),
        });
        if self.one_way {
            if let Err(error) = result {
                tracing::warn!(route = %self.route_name, %error, "one-way handler failed");
            }
            return;
        }
        let answer = answer(self.stream, self.priority, result).await;
        self.answer_to.respond(answer);
    }
}

/// The `Respond` message for a handler's result. A file answer that cannot be
/// read becomes an `Internal` error answer naming the file.
async fn answer(stream: StreamId, priority: Priority, result: HandlerResult) -> Respond {
    let error = match result {
        Err(error) => error,
        Ok(reply) => {
            let priority = reply.priority.unwrap_or(priority);
            let mut message = ProtoMessage::default().with_priority(priority);
            message.headers = reply.headers;
            let payload = reply.payload.unwrap_or_else(Payload::empty);
            match payload.into_message(&mut message).await {
                Ok(payload) => {
                    return Respond {
                        stream,
                        outcome: Ok(()),
                        message,
                        payload,
                    }
                }
                Err(why) => {
                    tracing::warn!(stream = stream.0, %why, "the handler's answer cannot be sent");
                    HandlerError::new(ErrorCode::Internal, why.to_string())
                }
            }
        }
    };
    error_answer(stream, priority, error)
}

/// The `Respond` message for an error answer.
fn error_answer(stream: StreamId, priority: Priority, error: HandlerError) -> Respond {
    let mut message = ProtoMessage::default().with_priority(priority);
    message.body = Some(error.message.into());
    Respond {
        stream,
        outcome: Err(error.code),
        message,
        payload: None,
    }
}

impl Actor for RouterActor {
    type Context = Context<Self>;
}

impl Handler<Incoming> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: Incoming, ctx: &mut Self::Context) {
        // With room, this link has nothing queued (queued work that can run
        // always runs at once), so starting it now keeps the link's order.
        if self.has_room(msg.link.id()) {
            return self.dispatch(msg, ctx);
        }
        if self.queued >= self.config.max_queued {
            // Full: the newest request of the longest queue goes, unless that is
            // this link's own (then this one is refused).
            let own = self.queues.get(&msg.link.id()).map_or(0, VecDeque::len);
            let longest = self
                .queues
                .iter()
                .max_by_key(|(_, queue)| queue.len())
                .filter(|(_, queue)| queue.len() > own + 1)
                .map(|(link, _)| *link);
            let Some(victim) = longest.and_then(|link| self.queues.get_mut(&link)?.pop_back())
            else {
                return refuse(msg);
            };
            self.queued -= 1;
            refuse(victim);
        }
        self.enqueue(msg);
    }
}

/// Answers a request the router has no room for with `Refused` ("busy"); a
/// one-way message is dropped with a log line.
fn refuse(msg: Incoming) {
    tracing::warn!(link = %msg.link.id(), route = %msg.head.route, "all workers busy and queue full; refusing");
    if msg.head.kind == MessageKind::Request {
        let error = HandlerError::new(ErrorCode::Refused, "busy: all workers in use");
        msg.link
            .respond(error_answer(msg.head.stream, msg.head.priority, error));
    }
}

impl RouterActor {
    /// Queues a request behind the others of its link.
    fn enqueue(&mut self, msg: Incoming) {
        let link = msg.link.id();
        let queue = self.queues.entry(link).or_default();
        if queue.is_empty() {
            self.turns.push_back(link);
        }
        queue.push_back(msg);
        self.queued += 1;
    }

    /// The next waiting request that may start: the links take turns, one
    /// request each; a link at its cap keeps its place and is skipped.
    fn next_queued(&mut self) -> Option<Incoming> {
        if self.active >= self.config.max_workers {
            return None;
        }
        let cap = self.config.per_link_cap();
        let position = self
            .turns
            .iter()
            .position(|link| self.active_per_link.get(link).copied().unwrap_or(0) < cap)?;
        let link = self.turns.remove(position)?;
        let queue = self.queues.get_mut(&link)?;
        let next = queue.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&link);
        } else {
            self.turns.push_back(link);
        }
        self.queued -= 1;
        Some(next)
    }
}

impl Handler<Canceled> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: Canceled, _: &mut Self::Context) {
        self.publish(|| Event::Canceled {
            link: msg.link,
            stream: msg.stream,
        });
        if let Some((_, handle)) = self.running.get(&(msg.link, msg.stream)) {
            handle.abort();
        }
        if let Some(queue) = self.queues.get_mut(&msg.link) {
            let before = queue.len();
            queue.retain(|q| q.head.stream != msg.stream);
            self.queued -= before - queue.len();
            if queue.is_empty() {
                self.queues.remove(&msg.link);
                self.turns.retain(|link| *link != msg.link);
            }
        }
    }
}

/// A worker slot is free: its handler and the blocking work it started ended.
#[derive(Message)]
#[rtype(result = "()")]
struct Done {
    link: LinkId,
    stream: StreamId,
    /// Which slot (a stream id may come again, on a resumed link).
    serial: u64,
}

impl Handler<Done> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: Done, ctx: &mut Self::Context) {
        let key = (msg.link, msg.stream);
        if self
            .running
            .get(&key)
            .is_some_and(|(serial, _)| *serial == msg.serial)
        {
            self.running.remove(&key);
        }
        self.active = self.active.saturating_sub(1);
        if let Some(active) = self.active_per_link.get_mut(&msg.link) {
            *active = active.saturating_sub(1);
            if *active == 0 {
                self.active_per_link.remove(&msg.link);
            }
        }
        while let Some(next) = self.next_queued() {
            self.dispatch(next, ctx);
        }
    }
}

/// Adds or replaces a route at run time.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AddRoute {
    /// The route's path.
    pub path: String,
    /// What serves it.
    pub route: Route,
}

impl Handler<AddRoute> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: AddRoute, _: &mut Self::Context) {
        self.routes.insert(msg.path, msg.route);
    }
}

/// Publishes the event `make` builds on `bus`, if there is one and anyone listens.
fn publish_on(bus: &Option<EventBus>, make: impl FnOnce() -> Event) {
    if let Some(bus) = bus {
        bus.publish_with(make);
    }
}

/// The router alone: the links its requests arrive on are stand-in handles
/// recording the answers and cancellations sent back.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Seen;
    use bytes::Bytes;
    use std::collections::HashSet;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::sync::watch;

    fn incoming(link: &LinkRef, stream: u64, route: &str, kind: MessageKind) -> Incoming {
        let open = netcore_proto::frame::Open::new(StreamId(stream), kind, route);
        Incoming {
            link: link.clone(),
            head: MessageHead::from_open(open).0,
            body: Body::Bytes(Bytes::from_static(b"ping")),
            work: WorkCharge::none(),
        }
    }

    fn echo() -> Route {
        Route::handler(|request: Request| async move {
            match request.body {
                Body::Bytes(bytes) => Ok(Reply::new(bytes)),
                _ => Err(HandlerError::failed("not in memory")),
            }
        })
    }

    fn router(routes: Vec<(&str, Route)>, config: RouterConfig) -> Addr<RouterActor> {
        let routes = routes
            .into_iter()
            .map(|(path, route)| (path.to_string(), route))
            .collect();
        RouterActor::new(routes, Vec::new(), config).start()
    }

    async fn answer(answers: &Seen<Respond>) -> Respond {
        answers.wait_for(1).await.remove(0)
    }

    #[actix_rt::test]
    async fn answers_go_back_on_the_link_the_request_came_from() {
        let router = router(vec![("echo", echo())], RouterConfig::default());
        let (link, answers, _) = LinkRef::stub(LinkId(1));
        router.do_send(incoming(&link, 1, "echo", MessageKind::Request));
        let respond = answer(&answers).await;
        assert_eq!(respond.stream, StreamId(1));
        assert_eq!(respond.outcome, Ok(()));
        assert_eq!(respond.message.body.as_deref(), Some(&b"ping"[..]));
        // One-way messages get no answer.
        router.do_send(incoming(&link, 3, "echo", MessageKind::OneWay));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(answers.len(), 0);
    }

    #[actix_rt::test]
    async fn unknown_routes_and_panicking_handlers_get_error_answers() {
        let boom = Route::handler(|_: Request| async move {
            panic!("handler bug");
            #[allow(unreachable_code)]
            Ok(Reply::empty())
        });
        let router = router(vec![("boom", boom)], RouterConfig::default());
        let (link, answers, _) = LinkRef::stub(LinkId(2));
        router.do_send(incoming(&link, 1, "nowhere", MessageKind::Request));
        assert_eq!(answer(&answers).await.outcome, Err(ErrorCode::NotFound));
        router.do_send(incoming(&link, 3, "boom", MessageKind::Request));
        let respond = answer(&answers).await;
        assert_eq!(respond.outcome, Err(ErrorCode::HandlerFailed));
        let text = respond.message.body.unwrap_or_default();
        assert!(String::from_utf8_lossy(&text).contains("handler bug"));
    }

    /// One link flooding the router gets its own requests refused, not another
    /// link's: the refused request is the newest of the longest queue, and the
    /// queued links are served in turn.
    #[actix_rt::test]
    async fn a_flooding_link_is_refused_before_a_quiet_one_and_links_take_turns() {
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = order.clone();
        let record = Route::handler(move |req: Request| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push((req.link.id().0, req.head.stream.0));
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(Reply::empty())
            }
        });
        let config = RouterConfig {
            max_workers: 1,
            max_queued: 3,
            ..RouterConfig::default()
        };
        let router = router(vec![("r", record)], config);
        let (busy, busy_answers, _) = LinkRef::stub(LinkId(1));
        let (quiet, quiet_answers, _) = LinkRef::stub(LinkId(2));
        for stream in [1, 3, 5, 7] {
            router.do_send(incoming(&busy, stream, "r", MessageKind::Request));
        }
        // Busy: 1 runs, 3, 5, 7 fill the queue. The quiet link's request takes the
        // place of busy's newest (7), which is refused.
        router.do_send(incoming(&quiet, 9, "r", MessageKind::Request));
        // Busy is full again (3 queued of its own, 1 of quiet): its next request
        // is refused, not quiet's.
        router.do_send(incoming(&busy, 11, "r", MessageKind::Request));
        let mut answered = Vec::new();
        while answered.len() < 5 {
            answered.extend(busy_answers.wait_for(1).await);
        }
        let outcome = |stream: u64| {
            let respond = answered.iter().find(|r| r.stream == StreamId(stream));
            respond.map(|r| r.outcome)
        };
        for refused in [7, 11] {
            assert_eq!(outcome(refused), Some(Err(ErrorCode::Refused)), "{refused}");
        }
        for served in [1, 3, 5] {
            assert_eq!(outcome(served), Some(Ok(())), "{served}");
        }
        assert_eq!(answer(&quiet_answers).await.outcome, Ok(()));
        let order = order.lock().unwrap().clone();
        assert_eq!(order, [(1, 1), (1, 3), (2, 9), (1, 5)], "links take turns");
    }

    #[actix_rt::test]
    async fn a_full_queue_refuses_and_a_cancel_aborts_the_handler() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = dropped.clone();
        let hold = Route::handler(move |_: Request| {
            let flag = flag.clone();
            async move {
                struct SetOnDrop(Arc<AtomicBool>);
                impl Drop for SetOnDrop {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let _guard = SetOnDrop(flag);
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Reply::empty())
            }
        });
        let config = RouterConfig {
            max_workers: 1,
            max_queued: 1,
            ..RouterConfig::default()
        };
        let router = router(vec![("hold", hold)], config);
        let (link, answers, _) = LinkRef::stub(LinkId(3));
        router.do_send(incoming(&link, 1, "hold", MessageKind::Request)); // runs
        router.do_send(incoming(&link, 3, "hold", MessageKind::Request)); // queued
        router.do_send(incoming(&link, 5, "hold", MessageKind::Request)); // refused
        let refused = answer(&answers).await;
        assert_eq!(refused.stream, StreamId(5));
        assert_eq!(refused.outcome, Err(ErrorCode::Refused));
        // The peer cancels the running request: its handler is aborted, no answer.
        router.do_send(Canceled {
            link: LinkId(3),
            stream: StreamId(1),
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "handler not aborted"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(answers.len(), 0);
    }

    /// Handlers the test holds: each records its (link, stream) when it starts
    /// and how many ran at once at most, then waits until the test releases it.
    struct Held {
        started: Mutex<Vec<(u64, u64)>>,
        running: AtomicUsize,
        most: AtomicUsize,
        /// The requests released, and whether all are.
        released: watch::Sender<(bool, HashSet<(u64, u64)>)>,
    }

    impl Held {
        fn new() -> Arc<Held> {
            Arc::new(Held {
                started: Mutex::new(Vec::new()),
                running: AtomicUsize::new(0),
                most: AtomicUsize::new(0),
                released: watch::Sender::new((false, HashSet::new())),
            })
        }

        fn route(self: &Arc<Self>) -> Route {
            let held = self.clone();
            Route::handler(move |req: Request| {
                let held = held.clone();
                async move {
                    let key = (req.link.id().0, req.head.stream.0);
                    held.started.lock().unwrap().push(key);
                    let now = held.running.fetch_add(1, Ordering::SeqCst) + 1;
                    held.most.fetch_max(now, Ordering::SeqCst);
                    let mut released = held.released.subscribe();
                    let _ = released
                        .wait_for(|(all, keys)| *all || keys.contains(&key))
                        .await;
                    held.running.fetch_sub(1, Ordering::SeqCst);
                    Ok(Reply::empty())
                }
            })
        }

        fn started(&self) -> Vec<(u64, u64)> {
            self.started.lock().unwrap().clone()
        }

        /// Waits (up to 5 s) until `n` handlers started; returns them in order.
        async fn wait_started(&self, n: usize) -> Vec<(u64, u64)> {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while self.started().len() < n {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "waited 5 s for {n} handlers to start, got {:?}",
                    self.started()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            self.started()
        }

        fn release(&self, link: u64, stream: u64) {
            self.released.send_modify(|(_, keys)| {
                keys.insert((link, stream));
            });
        }

        fn release_all(&self) {
            self.released.send_modify(|(all, _)| *all = true);
        }
    }

    /// Returns once the router handled every message sent to it before: what
    /// it started by then has had its first poll.
    async fn barrier(router: &Addr<RouterActor>) {
        let add = AddRoute {
            path: "barrier".into(),
            route: echo(),
        };
        tokio::time::timeout(Duration::from_secs(5), router.send(add))
            .await
            .expect("the router hangs")
            .expect("the router is gone");
    }

    #[test]
    fn the_per_link_cap_defaults_to_three_quarters_of_the_workers_and_at_least_one() {
        let cap = |max_workers, per_link| {
            RouterConfig {
                max_workers,
                max_workers_per_link: per_link,
                ..RouterConfig::default()
            }
            .per_link_cap()
        };
        assert_eq!(RouterConfig::default().per_link_cap(), 48);
        assert_eq!(cap(1, None), 1);
        assert_eq!(cap(2, None), 1);
        assert_eq!(cap(3, None), 2);
        assert_eq!(cap(4, None), 3);
        assert_eq!(cap(0, None), 1);
        assert_eq!(cap(usize::MAX, None), usize::MAX / 4 * 3 + 2);
        assert_eq!(cap(8, Some(2)), 2);
        assert_eq!(cap(8, Some(0)), 1);
        assert_eq!(cap(8, Some(100)), 8);
    }

    /// A link at its cap leaves the other workers free: another link's
    /// request starts at once though the first link has requests waiting.
    #[actix_rt::test]
    async fn a_link_at_its_cap_leaves_workers_to_the_other_links() {
        let held = Held::new();
        let config = RouterConfig {
            max_workers: 4,
            max_workers_per_link: Some(2),
            max_queued: 16,
        };
        let router = router(vec![("held", held.route()), ("echo", echo())], config);
        let (a, a_answers, _) = LinkRef::stub(LinkId(1));
        let (b, b_answers, _) = LinkRef::stub(LinkId(2));
        for stream in [1, 3, 5, 7] {
            router.do_send(incoming(&a, stream, "held", MessageKind::Request));
        }
        barrier(&router).await;
        assert_eq!(held.started(), [(1, 1), (1, 3)], "two workers stay free");
        router.do_send(incoming(&b, 1, "held", MessageKind::Request));
        router.do_send(incoming(&b, 3, "echo", MessageKind::Request));
        let echoed = answer(&b_answers).await;
        assert_eq!((echoed.stream, echoed.outcome), (StreamId(3), Ok(())));
        assert_eq!(held.started(), [(1, 1), (1, 3), (2, 1)]);
        assert_eq!(a_answers.len(), 0);
        // One of the first link's handlers ends: its next request takes the slot.
        held.release(1, 1);
        assert_eq!(held.wait_started(4).await[3], (1, 5));
        held.release_all();
        let mut answered = Vec::new();
        while answered.len() < 4 {
            answered.extend(a_answers.wait_for(1).await);
        }
        assert!(answered.iter().all(|respond| respond.outcome.is_ok()));
        assert_eq!(answer(&b_answers).await.outcome, Ok(()));
        assert_eq!(held.started().len(), 5);
    }

    /// A link at its cap is skipped but keeps its place in the turns: when its
    /// handler ends, its next request goes before the other link's.
    #[actix_rt::test]
    async fn a_link_at_its_cap_keeps_its_turn() {
        let held = Held::new();
        let config = RouterConfig {
            max_workers: 3,
            max_workers_per_link: Some(2),
            max_queued: 16,
        };
        let router = router(vec![("held", held.route())], config);
        let (a, a_answers, _) = LinkRef::stub(LinkId(1));
        let (b, b_answers, _) = LinkRef::stub(LinkId(2));
        for stream in [1, 3, 5] {
            router.do_send(incoming(&a, stream, "held", MessageKind::Request));
        }
        for stream in [1, 3, 5] {
            router.do_send(incoming(&b, stream, "held", MessageKind::Request));
        }
        barrier(&router).await;
        // Queued: a5, b3, b5; a's turn comes first.
        assert_eq!(held.started(), [(1, 1), (1, 3), (2, 1)]);
        // b's slot frees: a is at its cap and skipped, b3 starts.
        held.release(2, 1);
        assert_eq!(held.wait_started(4).await[3], (2, 3));
        // a's slot frees: a kept its turn, a5 starts before b5.
        held.release(1, 1);
        assert_eq!(held.wait_started(5).await[4], (1, 5));
        held.release(2, 3);
        assert_eq!(held.wait_started(6).await[5], (2, 5));
        held.release_all();
        assert_eq!(a_answers.wait_for(3).await.len(), 3);
        assert_eq!(b_answers.wait_for(3).await.len(), 3);
        assert!(held.most.load(Ordering::SeqCst) <= 3);
    }

    /// `max_workers` handlers run at once and no more; the next starts when
    /// one ends.
    #[actix_rt::test]
    async fn no_more_than_max_workers_handlers_run_at_once() {
        let held = Held::new();
        let config = RouterConfig {
            max_workers: 3,
            max_workers_per_link: Some(3),
            max_queued: 16,
        };
        let router = router(vec![("held", held.route())], config);
        let (link, answers, _) = LinkRef::stub(LinkId(1));
        for stream in (1..=15).step_by(2) {
            router.do_send(incoming(&link, stream, "held", MessageKind::Request));
        }
        barrier(&router).await;
        assert_eq!(held.started(), [(1, 1), (1, 3), (1, 5)]);
        assert_eq!(held.running.load(Ordering::SeqCst), 3);
        held.release(1, 3);
        assert_eq!(held.wait_started(4).await[3], (1, 7));
        assert_eq!(answer(&answers).await.stream, StreamId(3));
        barrier(&router).await;
        assert_eq!(held.started().len(), 4, "one ended, one started");
        held.release_all();
        assert_eq!(answers.wait_for(7).await.len(), 7);
        assert_eq!(held.started().len(), 8);
        assert_eq!(held.most.load(Ordering::SeqCst), 3);
    }

    /// Canceled queued requests leave the queue: as many new ones are queued
    /// again, and the one beyond `max_queued` is refused.
    #[actix_rt::test]
    async fn canceled_queued_requests_free_their_places() {
        let held = Held::new();
        let config = RouterConfig {
            max_workers: 1,
            max_workers_per_link: None,
            max_queued: 2,
        };
        let router = router(vec![("held", held.route())], config);
        let (link, answers, _) = LinkRef::stub(LinkId(4));
        for stream in [1, 3, 5] {
            router.do_send(incoming(&link, stream, "held", MessageKind::Request));
        }
        for stream in [3, 5] {
            router.do_send(Canceled {
                link: LinkId(4),
                stream: StreamId(stream),
            });
        }
        for stream in [7, 9, 11] {
            router.do_send(incoming(&link, stream, "held", MessageKind::Request));
        }
        let refused = answer(&answers).await;
        assert_eq!(refused.stream, StreamId(11));
        assert_eq!(refused.outcome, Err(ErrorCode::Refused));
        held.release_all();
        let mut answered: Vec<u64> = Vec::new();
        while answered.len() < 3 {
            answered.extend(answers.wait_for(1).await.iter().map(|r| r.stream.0));
        }
        assert_eq!(answered, [1, 7, 9]);
        assert_eq!(held.started(), [(4, 1), (4, 7), (4, 9)]);
    }

    /// A blocking handler: waits on `gate` on the blocking pool, then sets
    /// `ended`.
    fn blocking_route(gate: std::sync::mpsc::Receiver<()>, ended: Arc<AtomicBool>) -> Route {
        let gate = Arc::new(Mutex::new(gate));
        Route::handler(move |_: Request| {
            let gate = gate.clone();
            let ended = ended.clone();
            async move {
                run_blocking(move || {
                    let _ = gate.lock().unwrap().recv();
                    ended.store(true, Ordering::SeqCst);
                })
                .await?;
                Ok(Reply::new("done"))
            }
        })
    }

    /// Blocking work runs off the router's thread: other requests are served
    /// while it blocks; a panic in it is `HandlerFailed`.
    #[actix_rt::test]
    async fn blocking_work_leaves_the_router_serving() {
        let (open, gate) = std::sync::mpsc::channel();
        let ended = Arc::new(AtomicBool::new(false));
        let boom = Route::handler(|_: Request| async {
            run_blocking(|| panic!("blocking bug")).await?;
            Ok(Reply::empty())
        });
        let routes = vec![
            ("block", blocking_route(gate, ended.clone())),
            ("echo", echo()),
            ("boom", boom),
        ];
        let router = router(routes, RouterConfig::default());
        let (link, answers, _) = LinkRef::stub(LinkId(5));
        router.do_send(incoming(&link, 1, "block", MessageKind::Request));
        router.do_send(incoming(&link, 3, "echo", MessageKind::Request));
        let echoed = answer(&answers).await;
        assert_eq!((echoed.stream, echoed.outcome), (StreamId(3), Ok(())));
        assert!(!ended.load(Ordering::SeqCst), "answered while it blocks");
        router.do_send(incoming(&link, 5, "boom", MessageKind::Request));
        let failed = answer(&answers).await;
        assert_eq!(failed.stream, StreamId(5));
        assert_eq!(failed.outcome, Err(ErrorCode::HandlerFailed));
        let text = failed.message.body.unwrap_or_default();
        assert!(String::from_utf8_lossy(&text).contains("blocking bug"));
        open.send(()).unwrap();
        let done = answer(&answers).await;
        assert_eq!((done.stream, done.outcome), (StreamId(1), Ok(())));
        assert!(ended.load(Ordering::SeqCst));
    }

    /// Canceling a request aborts its handler but not its blocking work, which
    /// keeps the worker slot until it returns.
    #[actix_rt::test]
    async fn blocking_work_holds_its_worker_slot_after_a_cancel() {
        let (open, gate) = std::sync::mpsc::channel();
        let ended = Arc::new(AtomicBool::new(false));
        let held = Held::new();
        let config = RouterConfig {
            max_workers: 1,
            ..RouterConfig::default()
        };
        let routes = vec![
            ("block", blocking_route(gate, ended.clone())),
            ("held", held.route()),
        ];
        let router = router(routes, config);
        let (link, answers, _) = LinkRef::stub(LinkId(6));
        router.do_send(incoming(&link, 1, "block", MessageKind::Request));
        router.do_send(Canceled {
            link: LinkId(6),
            stream: StreamId(1),
        });
        router.do_send(incoming(&link, 3, "held", MessageKind::Request));
        barrier(&router).await;
        // Let the aborted handler's task end.
        tokio::time::sleep(Duration::from_millis(20)).await;
        barrier(&router).await;
        assert!(
            held.started().is_empty(),
            "the blocking work holds the slot"
        );
        open.send(()).unwrap();
        assert_eq!(held.wait_started(1).await, [(6, 3)]);
        assert!(ended.load(Ordering::SeqCst));
        held.release_all();
        let respond = answer(&answers).await;
        assert_eq!((respond.stream, respond.outcome), (StreamId(3), Ok(())));
        assert_eq!(answers.len(), 0, "the canceled request gets no answer");
    }
}
