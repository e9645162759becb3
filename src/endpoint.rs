//! [`Endpoint`]: one side of a conversation, serving routes and calling the other
//! side, over one or several links.
//!
//! An endpoint lives inside an actix `System` (e.g. `#[actix_rt::main]`,
//! `#[actix_rt::test]`, or `actix_rt::System::new().block_on(..)`): its router,
//! link and scheduler actors run on the arbiter that created it.
//!
//! ```no_run
//! use netcore::{Endpoint, Reply};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Endpoint::builder()
//!     .route("echo", |req: netcore::Request| async move {
//!         Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
//!     })
//!     .start();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let client = Endpoint::builder().start();
//! let (accepted, link) = tokio::join!(server.accept_tcp(&listener), client.connect_tcp(addr));
//! let answer = link?.call("echo", "hi").await?;
//! assert_eq!(answer.body.as_bytes().map(|b| &b[..]), Some(&b"hi"[..]));
//! # drop(accepted);
//! # Ok(()) }
//! ```

use crate::app::blueprint::Blueprint;
use crate::app::context::RequestContext;
use crate::app::extract::{FromRequest, Head};
use crate::app::handler::{BoxHandler, Handler};
use crate::app::middleware::Next;
use crate::app::request_body::IntoPayload;
use crate::app::services::{ActorFactory, Services};
use crate::app::state::AppState;
use crate::link::Link;
use actix::prelude::*;
use netcore_actors::cache_actor::{Cache, CacheConfig};
use netcore_actors::event_bus::{Event, EventBus, EventBusConfig};
use netcore_actors::link::Connector;
use netcore_actors::supervision::RestartPolicy;
use netcore_actors::timer_actor::Timers;
use netcore_actors::transport::{
    accept_tcp, peek_hello, BoxedTransport, FirstFrame, LinkSpec, PipeTransport, TcpPeer, Transport,
};
use netcore_actors::{
    CallError, DownReason, HandlerResult, LinkActor, LinkId, LinkOptions, LinkState,
    PeerSessionState, Request, Route, RouterActor, RouterConfig,
};
use netcore_actors::{HandleRequest, HandlerError};
use netcore_proto::link::ReliableConfig;
use netcore_proto::reassembly::MessageHead;
use netcore_proto::ErrorCode;
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long `stop` waits for a link's last frames to be written once the drain
/// timeout has passed (the GOAWAY and the cut-off notices).
const FLUSH_GRACE: Duration = Duration::from_millis(100);

/// Builds an [`Endpoint`]: routes, blueprints, middleware, hooks, state, limits.
///
/// The builder is the root blueprint (prefix `""`): its middleware, hooks and
/// error handler are the endpoint's global ones and wrap every route.
pub struct EndpointBuilder {
    root: Blueprint,
    state: AppState,
    cache: CacheConfig,
    policy: RestartPolicy,
    subscriptions: Vec<Subscription>,
    link_threads: usize,
    tcp_resume: Option<Duration>,
    stream_routes: Vec<String>,
    router: RouterConfig,
    call_timeout: Duration,
    drain_timeout: Duration,
    handshake_timeout: Duration,
    name: String,
}

impl EndpointBuilder {
    /// Names the endpoint in the spans of the requests it serves (`request`
    /// spans at debug level: endpoint, link, route, stream); default `endpoint`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Serves `path` with a handler (an async function of extractors).
    pub fn route<H: Handler<Args>, Args>(mut self, path: impl Into<String>, handler: H) -> Self {
        self.root = self.root.route(path, handler);
        self
    }

    /// Serves `path` with a handler actor (`impl Handler<HandleRequest>`).
    pub fn route_actor(mut self, path: impl Into<String>, actor: Recipient<HandleRequest>) -> Self {
        self.root = self.root.route_actor(path, actor);
        self
    }

    /// Serves `path` with a supervised handler actor rebuilt by `factory` after it
    /// dies (see [`Blueprint::route_supervised`]).
    pub fn route_supervised<A, F, M>(
        mut self,
        path: impl Into<String>,
        policy: RestartPolicy,
        factory: F,
    ) -> Self
    where
        A: actix::Actor<Context = actix::Context<A>> + actix::Handler<HandleRequest>,
        F: ActorFactory<A, M>,
    {
        self.root = self.root.route_supervised(path, policy, factory);
        self
    }

    /// Serves every route no route or blueprint default matches (instead of the
    /// `NotFound` answer).
    pub fn default_handler<H: Handler<Args>, Args>(mut self, handler: H) -> Self {
        self.root = self.root.default_handler(handler);
        self
    }

    /// Registers a blueprint (its routes under its prefix).
    pub fn blueprint(mut self, blueprint: Blueprint) -> Self {
        self.root = self.root.blueprint(blueprint);
        self
    }

    /// Global middleware: wraps every route, outside the blueprints' own.
    pub fn middleware<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(RequestContext, Next) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + 'static,
    {
        self.root = self.root.middleware(f);
        self
    }

    /// Global before hook (runs before every handler; an error refuses the request).
    pub fn before(
        mut self,
        hook: impl Fn(&mut RequestContext) -> Result<(), HandlerError> + Send + Sync + 'static,
    ) -> Self {
        self.root = self.root.before(hook);
        self
    }

    /// Global after hook (sees every result).
    pub fn after(
        mut self,
        hook: impl Fn(&MessageHead, &mut HandlerResult) + Send + Sync + 'static,
    ) -> Self {
        self.root = self.root.after(hook);
        self
    }

    /// Global error handler: may turn any error (not found, bad request, a failed
    /// or panicking handler, ...) into an answer.
    pub fn error_handler(
        mut self,
        hook: impl Fn(HandlerError, &MessageHead) -> HandlerResult + Send + Sync + 'static,
    ) -> Self {
        self.root = self.root.error_handler(hook);
        self
    }

    /// Shares `value` with every handler (the `State<T>` extractor). The
    /// endpoint's own services are always there: `State<Cache>`,
    /// `State<Timers>`, `State<EventBus>`.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Calls `callback` with every event `filter` accepts, from the endpoint's
    /// start on (so `Started` is seen): `.on(|e| matches!(e, Event::Started), |_| ..)`.
    pub fn on(
        mut self,
        filter: impl Fn(&Event) -> bool + Send + 'static,
        callback: impl FnMut(&Event) + Send + 'static,
    ) -> Self {
        self.subscriptions
            .push((Box::new(filter), Box::new(callback)));
        self
    }

    /// Most entries of the endpoint's cache (default 10,000).
    pub fn cache_capacity(mut self, max_entries: u64) -> Self {
        self.cache.max_entries = max_entries;
        self
    }

    /// Restart policy of the endpoint's supervised services (event bus, timers,
    /// cache).
    pub fn restart_policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self.cache.policy = policy;
        self
    }

    /// Threads (actix arbiters) the endpoint's links run on, shared round-robin.
    /// With 0, links run on the endpoint's own arbiter, with the router and the
    /// handlers (which always run there). Default: the cores beyond two, at most
    /// 4 (so 0 on one- and two-core machines): a link thread of its own keeps link
    /// I/O going while handlers hog their thread, but each message then crosses
    /// threads twice more, and on two cores that costs more than it buys
    /// (BENCHMARKS.md: 15-40% of RPC and bulk throughput).
    pub fn link_threads(mut self, n: usize) -> Self {
        self.link_threads = n;
        self
    }

    /// TCP links survive network cuts: `connect_tcp` links reconnect (backoff with
    /// jitter) and `accept_tcp` links wait up to `window` for their client to come
    /// back; the session then resumes without loss (both sides run the reliable
    /// mode on TCP). Both endpoints must enable it.
    pub fn tcp_resume(mut self, window: Duration) -> Self {
        self.tcp_resume = Some(window);
        self
    }

    /// Bodies sent to routes starting with `prefix` reach their handler as they
    /// arrive, as a [`Body::Stream`](crate::Body::Stream), instead of being
    /// reassembled in memory or spooled to a temporary file first: the handler
    /// runs as soon as the message opens, and a handler reading slowly slows the
    /// sender (flow control). A body that fits in one frame still arrives whole,
    /// as `Body::Bytes`. Applies to every link of this endpoint; call it again
    /// for more prefixes.
    ///
    /// ```no_run
    /// use netcore::{Body, Endpoint, Reply, Request};
    ///
    /// # fn demo() {
    /// let server = Endpoint::builder()
    ///     .stream_bodies("upload/")
    ///     .route("upload/firmware", |req: Request| async move {
    ///         let mut stored = 0u64;
    ///         match req.body {
    ///             Body::Stream(mut chunks) => {
    ///                 // Each chunk as it arrives; the sender waits while we are slow.
    ///                 while let Some(chunk) = chunks.next().await? {
    ///                     stored += chunk.len() as u64; // e.g. write it to flash
    ///                 }
    ///             }
    ///             whole => stored = whole.len(), // fitted in one frame
    ///         }
    ///         Ok(Reply::new(format!("{stored} bytes stored")))
    ///     })
    ///     .start();
    /// # drop(server); }
    /// ```
    pub fn stream_bodies(mut self, prefix: impl Into<String>) -> Self {
        self.stream_routes.push(prefix.into());
        self
    }

    /// Most handlers running at once (default 64).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.router.max_workers = n;
        self
    }

    /// Most requests waiting for a worker before new ones are refused (default 4096).
    pub fn max_queued(mut self, n: usize) -> Self {
        self.router.max_queued = n;
        self
    }

    /// Default timeout of calls (default 30 s).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How long [`Endpoint::stop`] waits for in-flight messages (default 5 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// How long a new link may take to complete its handshake (default 10 s):
    /// `attach`, `accept_tcp`, `open` and the other ways of starting a link fail
    /// with [`DownReason::HandshakeTimedOut`] after it, and the link is closed,
    /// so a peer that connects and stays silent holds nothing.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Starts the endpoint's router on the current arbiter.
    ///
    /// # Panics
    ///
    /// Outside an actix System (e.g. under a plain `#[tokio::main]`), with a
    /// message saying what to do: netcore's actors run on one. Also when a route
    /// or a prefix's default handler is registered twice.
    pub fn start(self) -> Endpoint {
        if actix_rt::System::try_current().is_none() {
            panic!(
                "netcore's endpoint runs on an actix System, and this thread has none: \
                 run the program under #[actix_rt::main] (or actix_rt::System::new().block_on(..)) \
                 instead of #[tokio::main]"
            );
        }
        let mut root = self.root;
        if !root.has_default() {
            root = root.default_handler(|Head(head): Head| async move {
                Err::<(), _>(HandlerError::new(
                    ErrorCode::NotFound,
                    format!("no route {:?}", head.route),
                ))
            });
        }
        // Compiled first: a route registered twice panics before anything starts.
        let compiled = root.compile("");
        let events = EventBus::start(EventBusConfig {
            policy: self.policy,
            ..EventBusConfig::default()
        });
        for (filter, callback) in self.subscriptions {
            events.on(filter, callback);
        }
        let timers = Timers::start(self.policy, Some(events.clone()));
        let cache = Cache::start(self.cache, Some(events.clone()));
        // The services are state too: `State<Cache>`, `State<Timers>`, `State<EventBus>`.
        let mut state = self.state;
        state.insert(cache.clone());
        state.insert(timers.clone());
        state.insert(events.clone());
        let state = Arc::new(state);
        // Handlers hold the endpoint weakly: it owns the router, which owns them.
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let services = Services::new(
                state,
                cache.clone(),
                timers.clone(),
                events.clone(),
                weak.clone() as Weak<dyn Any + Send + Sync>,
            );
            let to_route = |handler: BoxHandler, prefix: Option<Arc<str>>| {
                let services = services.clone();
                Route::Fn(Arc::new(move |request: Request| {
                    handler(RequestContext::new(
                        request,
                        services.clone(),
                        prefix.clone(),
                    ))
                }))
            };
            let routes: HashMap<String, Route> = compiled
                .routes
                .into_iter()
                .map(|(path, handler)| (path, to_route(handler, None)))
                .collect();
            let defaults = compiled
                .defaults
                .into_iter()
                .map(|(prefix, handler)| {
                    let route = to_route(handler, Some(Arc::from(prefix.as_str())));
                    (prefix, route)
                })
                .collect();
            let router = RouterActor::new(routes, defaults, self.router)
                .with_name(self.name)
                .with_events(events.clone())
                .start();
            let link_arbiters = (0..self.link_threads).map(|_| Arbiter::new()).collect();
            Inner {
                router,
                link_arbiters,
                next_arbiter: AtomicUsize::new(0),
                tcp_resume: self.tcp_resume,
                stream_routes: self.stream_routes,
                events: events.clone(),
                timers,
                cache,
                links: Mutex::new(Vec::new()),
                call_timeout: self.call_timeout,
                drain_timeout: self.drain_timeout,
                handshake_timeout: self.handshake_timeout,
            }
        });
        events.publish(Event::Started);
        Endpoint { inner }
    }
}

type Subscription = (
    Box<dyn Fn(&Event) -> bool + Send>,
    Box<dyn FnMut(&Event) + Send>,
);

struct Inner {
    router: Addr<RouterActor>,
    link_arbiters: Vec<Arbiter>,
    next_arbiter: AtomicUsize,
    tcp_resume: Option<Duration>,
    stream_routes: Vec<String>,
    events: EventBus,
    timers: Timers,
    cache: Cache,
    links: Mutex<Vec<Link>>,
    call_timeout: Duration,
    drain_timeout: Duration,
    handshake_timeout: Duration,
}

impl Services {
    /// The endpoint (to call or forward to its other links), or `GoingAway` once
    /// it was dropped.
    pub fn endpoint(&self) -> Result<Endpoint, HandlerError> {
        self.endpoint
            .upgrade()
            .and_then(|inner| inner.downcast::<Inner>().ok())
            .map(|inner| Endpoint { inner })
            .ok_or_else(|| {
                HandlerError::new(ErrorCode::GoingAway, "the endpoint is gone (dropped)")
            })
    }
}

impl RequestContext {
    /// The endpoint serving the request (to call or forward to its other
    /// links), or `GoingAway` once it was dropped.
    pub fn endpoint(&self) -> Result<Endpoint, HandlerError> {
        self.services().endpoint()
    }
}

/// The endpoint serving the request (`GoingAway` once it was dropped): a
/// handler reaches the endpoint's other links with it, e.g. to forward.
impl FromRequest for Endpoint {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        ctx.endpoint()
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("links", &self.all_links().len())
            .finish()
    }
}

/// One side of a conversation: serves routes, calls the peer(s). Cheap to clone.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl Endpoint {
    /// A builder with no routes and default limits.
    pub fn builder() -> EndpointBuilder {
        EndpointBuilder {
            root: Blueprint::new("app", ""),
            state: AppState::default(),
            cache: CacheConfig::default(),
            policy: RestartPolicy::default(),
            subscriptions: Vec::new(),
            link_threads: std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(2).min(4))
                .unwrap_or(0),
            tcp_resume: None,
            stream_routes: Vec::new(),
            router: RouterConfig::default(),
            call_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            name: String::from("endpoint"),
        }
    }

    /// Runs a link over any byte stream and waits for its handshake.
    pub async fn attach(
        &self,
        transport: impl Transport,
        mut options: LinkOptions,
    ) -> Result<Link, CallError> {
        if options.arbiter.is_none() && !self.inner.link_arbiters.is_empty() {
            let i = self.inner.next_arbiter.fetch_add(1, Ordering::Relaxed);
            let arbiters = &self.inner.link_arbiters;
            options.arbiter = Some(arbiters[i % arbiters.len()].handle());
        }
        let streamed = &self.inner.stream_routes;
        options.spool.stream_routes.extend(streamed.iter().cloned());
        let handle = LinkActor::start(
            Box::new(transport) as BoxedTransport,
            options,
            self.inner.router.clone().recipient(),
            self.inner.router.clone().recipient(),
        );
        let mut state = handle.watch_state().await?;
        let handshake = async {
            loop {
                match &*state.borrow_and_update() {
                    LinkState::Up => return Ok(()),
                    LinkState::Down(why) | LinkState::Closing(why) => {
                        return Err(CallError::LinkDown(why.clone()))
                    }
                    _ => {}
                }
                if state.changed().await.is_err() {
                    return Err(CallError::LinkDown(DownReason::ActorStopped));
                }
            }
        };
        let limit = self.inner.handshake_timeout;
        match tokio::time::timeout(limit, handshake).await {
            Ok(outcome) => outcome?,
            Err(_) => {
                // A peer that never says HELLO holds neither the link nor the caller.
                let reason = DownReason::HandshakeTimedOut(limit);
                tracing::info!(%reason, "refused a link");
                handle.close(reason.clone()).await;
                return Err(CallError::LinkDown(reason));
            }
        }
        let state_watch = state.clone();
        let link = Link::new(
            handle,
            state,
            self.inner.call_timeout,
            Some(self.inner.events.clone()),
        );
        let id = link.id();
        self.inner.events.publish(Event::LinkUp { link: id });
        let (events, mut watched) = (self.inner.events.clone(), state_watch);
        actix_rt::spawn(async move {
            // Every transition: down while reconnecting, up again once resumed.
            let mut up = true;
            while watched.changed().await.is_ok() {
                let state = watched.borrow_and_update().clone();
                match state {
                    LinkState::Up if !up => {
                        up = true;
                        events.publish(Event::LinkUp { link: id });
                    }
                    LinkState::Connecting if up => {
                        up = false;
                        events.publish(Event::LinkDown {
                            link: id,
                            reason: DownReason::Reconnecting,
                        });
                    }
                    LinkState::Down(reason) => {
                        events.publish(Event::LinkDown { link: id, reason });
                        return;
                    }
                    _ => {}
                }
            }
            events.publish(Event::LinkDown {
                link: id,
                reason: DownReason::ActorStopped,
            });
        });
        if let Ok(mut links) = self.inner.links.lock() {
            links.retain(|l| !matches!(l.state(), LinkState::Down(_)));
            links.push(link.clone());
        }
        Ok(link)
    }

    /// Connects over TCP (stream framing, large chunks).
    pub async fn connect_tcp(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> Result<Link, CallError> {
        let peer = TcpPeer::resolve(addr).await?;
        let stream = peer.connect().await?;
        let mut options = LinkOptions::stream();
        if self.inner.tcp_resume.is_some() {
            options.config.reliable = Some(ReliableConfig::default());
            options.connector = Some(Connector::new(move || {
                let peer = peer.clone();
                async move { peer.connect().await.map(|s| Box::new(s) as BoxedTransport) }
            }));
        }
        self.attach(stream, options).await
    }

    /// Accepts one TCP connection. With [`EndpointBuilder::tcp_resume`], a
    /// connection whose HELLO resumes the session of one of this endpoint's links
    /// (its client reconnected after the network broke) is handed to that link,
    /// which is returned; any other becomes a new link.
    pub async fn accept_tcp(&self, listener: &tokio::net::TcpListener) -> Result<Link, CallError> {
        let (stream, _) = accept_tcp(listener).await?;
        let Some(window) = self.inner.tcp_resume else {
            return self.attach(stream, LinkOptions::stream()).await;
        };
        let FirstFrame { hello, transport } =
            peek_hello(stream, self.inner.handshake_timeout).await?;
        if let Some(session) = hello.and_then(|h| h.session) {
            for link in self.all_links() {
                // Waiting for its peer, or not aware yet that the old connection
                // broke (the client noticed first): either way the session is here.
                if let Some(PeerSessionState { id: Some(peer), .. }) =
                    link.handle().peer_session().await
                {
                    if peer == session.id {
                        link.handle().resume(Box::new(transport));
                        return Ok(link);
                    }
                }
            }
        }
        let mut options = LinkOptions::stream();
        options.config.reliable = Some(ReliableConfig::default());
        options.resume_window = Some(window);
        self.attach(transport, options).await
    }

    fn all_links(&self) -> Vec<Link> {
        self.inner
            .links
            .lock()
            .map(|links| links.clone())
            .unwrap_or_default()
    }

    /// Opens a link described by `spec` (`serial:PATH@BAUD`, `tcp:HOST:PORT`,
    /// `unix:PATH`), with options fitting its kind (serial framing and chunks sized
    /// from the baud rate for serial ports).
    ///
    /// Takes the spec by value, so `endpoint.open("tcp:…".parse()?)` works
    /// anywhere, inside `join!` too.
    pub async fn open(&self, spec: LinkSpec) -> Result<Link, CallError> {
        let transport = spec.open().await?;
        let options = match spec {
            LinkSpec::Serial { baud, .. } => LinkOptions::serial(baud),
            _ => LinkOptions::stream(),
        };
        self.attach(transport, options).await
    }

    /// Runs a link over a pair of plain blocking functions (Python Netcore's
    /// `Pipe(recv, send)`), called on their own threads, with the serial framing
    /// (such functions usually wrap a radio or a UART driver).
    pub async fn attach_pipe<R, S>(&self, recv: R, send: S) -> Result<Link, CallError>
    where
        R: FnMut(usize) -> io::Result<Vec<u8>> + Send + 'static,
        S: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
    {
        let pipe = PipeTransport::new(recv, send)?;
        let mut options = LinkOptions::serial(115_200);
        options.flush = true;
        self.attach(pipe, options).await
    }

    /// The links currently up, oldest first.
    pub fn links(&self) -> Vec<Link> {
        self.inner
            .links
            .lock()
            .map(|links| links.iter().filter(|l| l.is_up()).cloned().collect())
            .unwrap_or_default()
    }

    /// The link with this id, if it is up.
    pub fn link(&self, id: LinkId) -> Option<Link> {
        self.links().into_iter().find(|l| l.id() == id)
    }

    /// The event bus: `on`, `once`, `off`, and `subscribe()` for a stream of
    /// every [`Event`] (started, stopped, links, requests, responses, cancels,
    /// transfer progress, actor restarts).
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// Scheduled tasks: `timers().schedule(delay, interval, task)`.
    pub fn timers(&self) -> &Timers {
        &self.inner.timers
    }

    /// The endpoint's cache: get, set with a TTL, delete, clear.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The link with this id, or [`CallError::LinkDown`] with
    /// [`DownReason::NotAttached`] if it is not up: the start of a call to one
    /// peer among many, `endpoint.try_link(id)?.request(route, body)` (priority,
    /// timeout, headers) or `.forward(request)`; `?` in a handler turns the error
    /// into a `GoingAway` answer.
    pub fn try_link(&self, id: LinkId) -> Result<Link, CallError> {
        self.link(id)
            .ok_or(CallError::LinkDown(DownReason::NotAttached(Some(id))))
    }

    /// Calls `route` on the link `id` with the default priority and timeout: a
    /// shortcut for `try_link(id)?.call(route, body)`. For a priority, a timeout
    /// or headers use `try_link(id)?.request(route, body)`, and to pass on a
    /// request as it came, [`Link::forward`].
    pub async fn call_on(
        &self,
        id: LinkId,
        route: impl Into<String>,
        body: impl IntoPayload,
    ) -> Result<netcore_actors::Response, CallError> {
        self.try_link(id)?.call(route, body).await
    }

    /// Closes the link `id` at once (its pending calls fail with
    /// `LinkDown(DownReason::Detached)`); the endpoint's other links are not
    /// affected. Returns false if it was not attached.
    pub async fn detach(&self, id: LinkId) -> bool {
        let Some(link) = self.link(id) else {
            return false;
        };
        link.handle().close(DownReason::Detached).await;
        if let Ok(mut links) = self.inner.links.lock() {
            links.retain(|l| l.id() != id);
        }
        true
    }

    /// The first link that is up, for endpoints with a single peer.
    pub fn default_link(&self) -> Result<Link, CallError> {
        self.links()
            .into_iter()
            .next()
            .ok_or(CallError::LinkDown(DownReason::NotAttached(None)))
    }

    /// Stops the endpoint. Policy: every link sends GOAWAY (the peer opens no new
    /// streams; new requests from it are refused with `GoingAway`); calls and
    /// handlers already in flight get up to the drain timeout to finish; then the
    /// links close and whatever is still pending fails with
    /// [`CallError::LinkDown`]. Returns the number of messages cut off.
    pub async fn stop(&self) -> usize {
        let links = self.links();
        for link in &links {
            link.handle().go_away(ErrorCode::NoError).await;
        }
        let deadline = tokio::time::Instant::now() + self.inner.drain_timeout;
        let mut cut_off = 0;
        for link in &links {
            loop {
                let in_flight = link.in_flight().await;
                if in_flight == 0 || tokio::time::Instant::now() >= deadline {
                    cut_off += in_flight;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Let the GOAWAY and the last answers reach the wire, within the
            // drain's time (a peer that stops reading keeps a writer stuck), and
            // at least a moment past it for the GOAWAY of a link cut off.
            let flush_until = deadline.max(tokio::time::Instant::now() + FLUSH_GRACE);
            let _ = tokio::time::timeout_at(flush_until, link.handle().flush()).await;
            link.handle().close(DownReason::EndpointStopped).await;
        }
        if let Ok(mut all) = self.inner.links.lock() {
            all.clear();
        }
        self.inner.events.publish(Event::Stopped);
        tracing::info!(cut_off, "endpoint stopped");
        cut_off
    }
}

impl Drop for Inner {
    /// The link threads end with the endpoint (its last handle).
    fn drop(&mut self) {
        for arbiter in &self.link_arbiters {
            arbiter.stop();
        }
    }
}
