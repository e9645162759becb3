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
//! - The peer cancels a request: its handler task is aborted.
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
use actix::prelude::*;
use futures_util::future::LocalBoxFuture;
use futures_util::future::{AbortHandle, Abortable, Aborted};
use futures_util::FutureExt;
use netcore_proto::frame::{header_value, Header};
use netcore_proto::link::Message as ProtoMessage;
use netcore_proto::reassembly::MessageHead;
use netcore_proto::{ErrorCode, MessageKind, Priority, StreamId};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
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
    /// Most requests waiting for a worker; more are refused.
    pub max_queued: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            max_workers: 64,
            max_queued: 4096,
        }
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
    running: HashMap<(LinkId, StreamId), AbortHandle>,
    active: usize,
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
                ..config
            },
            queues: HashMap::new(),
            turns: VecDeque::new(),
            queued: 0,
            running: HashMap::new(),
            active: 0,
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
        let Incoming { link, head, body } = incoming;
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
        let key = (link.id(), head.stream);
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
        let mut task = guard_future(task.instrument(span));
        if let Some(outcome) = (&mut task).now_or_never() {
            let mut finish = Box::pin(after.run(Ok(outcome)));
            if (&mut finish).now_or_never().is_none() {
                actix_rt::spawn(finish);
            }
            return;
        }
        self.active += 1;
        // One task per request: the handler's panics are caught around it, and the
        // peer's CANCEL aborts it through `running`.
        let (abort, registration) = AbortHandle::new_pair();
        let task = Abortable::new(task, registration);
        self.running.insert(key, abort);
        let router = ctx.address();
        actix_rt::spawn(async move {
            let outcome = task.await;
            router.do_send(Done { key });
            after.run(outcome).await;
        });
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
        if self.active < self.config.max_workers {
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

    /// The next waiting request: the links take turns, one request each.
    fn next_queued(&mut self) -> Option<Incoming> {
        while let Some(link) = self.turns.pop_front() {
            let Some(queue) = self.queues.get_mut(&link) else {
                continue;
            };
            let Some(next) = queue.pop_front() else {
                self.queues.remove(&link);
                continue;
            };
            if queue.is_empty() {
                self.queues.remove(&link);
            } else {
                self.turns.push_back(link);
            }
            self.queued -= 1;
            return Some(next);
        }
        None
    }
}

impl Handler<Canceled> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: Canceled, _: &mut Self::Context) {
        self.publish(|| Event::Canceled {
            link: msg.link,
            stream: msg.stream,
        });
        if let Some(handle) = self.running.get(&(msg.link, msg.stream)) {
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

/// A handler finished.
#[derive(Message)]
#[rtype(result = "()")]
struct Done {
    key: (LinkId, StreamId),
}

impl Handler<Done> for RouterActor {
    type Result = ();

    fn handle(&mut self, msg: Done, ctx: &mut Self::Context) {
        self.running.remove(&msg.key);
        self.active = self.active.saturating_sub(1);
        while self.active < self.config.max_workers {
            let Some(next) = self.next_queued() else {
                break;
            };
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
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    fn incoming(link: &LinkRef, stream: u64, route: &str, kind: MessageKind) -> Incoming {
        let open = netcore_proto::frame::Open::new(StreamId(stream), kind, route);
        Incoming {
            link: link.clone(),
            head: MessageHead::from_open(open).0,
            body: Body::Bytes(Bytes::from_static(b"ping")),
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
}
