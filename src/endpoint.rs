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
use netcore_actors::stats::EndpointStats;
use netcore_actors::supervision::RestartPolicy;
use netcore_actors::timer_actor::Timers;
use netcore_actors::transport::{
    accept_tcp, peek_hello, peek_secure_hello, BoxedTransport, Dialect, FirstFrame, LinkSpec,
    PipeTransport, SecureFirstFrame, TcpPeer, Transport,
};
use netcore_actors::{
    CallError, DownReason, HandlerResult, LinkActor, LinkId, LinkOptions, LinkState,
    PeerSessionState, Request, Route, RouterActor, RouterConfig,
};
use netcore_actors::{HandleRequest, HandlerError};
use netcore_proto::link::ReliableConfig;
use netcore_proto::reassembly::{MemoryBudget, MessageHead};
use netcore_proto::secure::{handshake, KeyId, Psk, SecureKeys, SecureRole};
use netcore_proto::{ErrorCode, ProtocolError, SecureError};
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// The default of [`EndpointBuilder::memory_budget`]: with the default 256 links,
/// it keeps inbound bodies in memory within 32 MiB (plus 16 KiB guaranteed per
/// link), a quarter of the 128 MiB the endpoint stays within.
pub(crate) const DEFAULT_MEMORY_BUDGET: u64 = 32 * 1024 * 1024;

/// The default of [`EndpointBuilder::work_budget`]: inbound messages waiting for
/// or in their handlers and answers not yet written, of all links together.
pub(crate) const DEFAULT_WORK_BUDGET: u64 = 16 * 1024 * 1024;
use tokio::io::AsyncWriteExt;

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
    security: Security,
    stream_routes: Vec<String>,
    router: RouterConfig,
    call_timeout: Duration,
    drain_timeout: Duration,
    handshake_timeout: Duration,
    memory_budget: u64,
    work_budget: u64,
    stall_timeout: Option<Option<Duration>>,
    accept: AcceptLimits,
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

    /// The pre-shared keys of the devices allowed to connect, by key id: accepted
    /// connections (`accept_tcp`, `accept_unix`, the serve loops) run the
    /// authenticated mode's handshake as the responder, and so do links this
    /// endpoint `attach`es without an [`identity`](Self::identity) of its own.
    /// A peer without a key gets no request routed: its link fails its
    /// handshake (`WrongKey`, `UnknownKey`). With keys, authentication is
    /// required ([`require_auth`](Self::require_auth)).
    pub fn keys(mut self, keys: SecureKeys) -> Self {
        self.security.keys = Some(keys);
        self.security.require_auth = true;
        self
    }

    /// Whether accepted connections must authenticate when [`keys`](Self::keys)
    /// are set (default: yes). Off, a peer that starts with a plain HELLO gets a
    /// plain link (its handlers see no [`PeerIdentity`](crate::PeerIdentity)), and
    /// one that starts the handshake must still pass it.
    pub fn require_auth(mut self, required: bool) -> Self {
        self.security.require_auth = required;
        self
    }

    /// This endpoint's own key id and pre-shared key: links it opens (`connect_tcp`,
    /// `open`, `attach`, `attach_pipe`) run the authenticated mode as the
    /// initiator, unless their [`LinkOptions`] say otherwise.
    pub fn identity(mut self, key_id: impl Into<KeyId>, psk: Psk) -> Self {
        self.security.identity = Some((key_id.into(), psk));
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

    /// Most handlers running at once (default 64). A handler that finishes at
    /// its first poll takes no worker; one that waits (on I/O, a timer, a call,
    /// blocking work) holds one until it ends. Beyond it requests wait in the
    /// queue ([`max_queued`](Self::max_queued)).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.router.max_workers = n;
        self
    }

    /// Most handlers of one link running at once (default: 3/4 of
    /// [`max_workers`](Self::max_workers), at least 1; at most `max_workers`).
    /// A burst of slow requests on one link then leaves workers to the other
    /// links' requests, while a link alone still gets most of them; a link at
    /// its cap keeps its requests queued, in order, and its turn among the links.
    pub fn max_workers_per_link(mut self, n: usize) -> Self {
        self.router.max_workers_per_link = Some(n);
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

    /// The memory budget shared by all links for inbound bodies held in memory
    /// (default 32 MiB): each link may hold twice its fair share of it, and at
    /// least 16 KiB whatever the others hold; over it, a body moves to disk where
    /// spooling applies, else it is refused (`Refused`). A link whose options carry
    /// a budget of their own (`LinkOptions::config.budget`) keeps it.
    pub fn memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// The budget shared by all links for the messages they serve (default
    /// 16 MiB): inbound requests and one-way messages from their delivery until
    /// their handler is done, and answers until written. Each link may hold twice
    /// its fair share, 16 KiB always, and one message whatever its size; a message
    /// beyond is refused (a request gets `Refused`), so a peer that sends requests
    /// and never reads the answers is refused, not buffered. A link whose options
    /// carry a budget of their own (`LinkOptions::work_budget`) keeps it.
    pub fn work_budget(mut self, bytes: u64) -> Self {
        self.work_budget = bytes;
        self
    }

    /// How long an inbound stream on which the peer could send may go without
    /// body bytes before it is canceled with `Timeout` (its memory and spool file
    /// freed; a call waiting on that answer fails with
    /// [`CallError::AnswerRefused`], a handler reading a streamed body sees it
    /// aborted); `None`: never. Replaces the value of every link's options
    /// (`LinkOptions::config.stall_timeout`, 60 s by default: see
    /// [`DEFAULT_STALL_TIMEOUT`](netcore_proto::config::DEFAULT_STALL_TIMEOUT) for
    /// why, and for what counts as no progress).
    pub fn stall_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.stall_timeout = Some(timeout);
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

    /// Most links the endpoint accepts (default 256): a connection accepted while
    /// that many are up or handshaking is refused with the endpoint's HELLO and
    /// GOAWAY(`Refused`), then closed. Links the endpoint opens itself
    /// (`connect_tcp`, `open`, `attach`) are counted but never refused. The
    /// default keeps 256 links' memory and the body budget within 128 MiB
    /// (ARCHITECTURE.md, "Accepting").
    pub fn max_links(mut self, n: usize) -> Self {
        self.accept.max_links = n;
        self
    }

    /// Most accepted connections handshaking at once (default 256); one more is
    /// closed at once, unread.
    pub fn max_handshaking(mut self, n: usize) -> Self {
        self.accept.max_handshaking = n;
        self
    }

    /// Most accepted connections handshaking at once from one IP address
    /// (default 16; every Unix-socket peer counts as one address); one more is
    /// closed at once, unread.
    pub fn max_handshaking_per_address(mut self, n: usize) -> Self {
        self.accept.max_handshaking_per_address = n;
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
                security: self.security,
                stream_routes: self.stream_routes,
                events: events.clone(),
                timers,
                cache,
                links: Mutex::new(Vec::new()),
                call_timeout: self.call_timeout,
                drain_timeout: self.drain_timeout,
                handshake_timeout: self.handshake_timeout,
                budget: MemoryBudget::new(self.memory_budget),
                work_budget: MemoryBudget::new(self.work_budget),
                stall_timeout: self.stall_timeout,
                accepting: Arc::new(Accepting::new(self.accept)),
                stopping: tokio::sync::watch::channel(false).0,
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
    security: Security,
    stream_routes: Vec<String>,
    events: EventBus,
    timers: Timers,
    cache: Cache,
    links: Mutex<Vec<Link>>,
    call_timeout: Duration,
    drain_timeout: Duration,
    handshake_timeout: Duration,
    /// Shared by every link's inbound bodies held in memory.
    budget: MemoryBudget,
    /// The budget shared by the links' served messages (requests, answers).
    work_budget: MemoryBudget,
    /// Replaces every link's stall timeout, when set.
    stall_timeout: Option<Option<Duration>>,
    accepting: Arc<Accepting>,
    /// Set by `stop`: serve loops stop accepting.
    stopping: tokio::sync::watch::Sender<bool>,
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
            security: Security::default(),
            stream_routes: Vec::new(),
            router: RouterConfig::default(),
            call_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            memory_budget: DEFAULT_MEMORY_BUDGET,
            work_budget: DEFAULT_WORK_BUDGET,
            stall_timeout: None,
            accept: AcceptLimits::default(),
            name: String::from("endpoint"),
        }
    }

    /// Runs a link over any byte stream and waits for its handshake. Options
    /// without an authenticated mode of their own get the endpoint's:
    /// [`EndpointBuilder::identity`] (initiator), else [`EndpointBuilder::keys`]
    /// (responder).
    pub async fn attach(
        &self,
        transport: impl Transport,
        mut options: LinkOptions,
    ) -> Result<Link, CallError> {
        if options.config.secure.is_none() {
            let security = &self.inner.security;
            options.config.secure = match (&security.identity, &security.keys) {
                (Some((key_id, psk)), _) => Some(SecureRole::Initiator {
                    key_id: key_id.clone(),
                    psk: *psk,
                }),
                (None, Some(keys)) => Some(SecureRole::Responder { keys: keys.clone() }),
                (None, None) => None,
            };
        }
        let deadline = tokio::time::Instant::now() + self.inner.handshake_timeout;
        self.attach_until(transport, options, deadline).await
    }

    /// [`attach`](Self::attach), with the handshake due by `deadline` (an
    /// accepted connection's deadline also covers reading its first frame).
    async fn attach_until(
        &self,
        transport: impl Transport,
        mut options: LinkOptions,
        deadline: tokio::time::Instant,
    ) -> Result<Link, CallError> {
        if options.arbiter.is_none() && !self.inner.link_arbiters.is_empty() {
            let i = self.inner.next_arbiter.fetch_add(1, Ordering::Relaxed);
            let arbiters = &self.inner.link_arbiters;
            options.arbiter = Some(arbiters[i % arbiters.len()].handle());
        }
        let streamed = &self.inner.stream_routes;
        options.spool.stream_routes.extend(streamed.iter().cloned());
        if options.config.budget.is_none() {
            options.config.budget = Some(self.inner.budget.clone());
        }
        if options.work_budget.is_none() {
            options.work_budget = Some(self.inner.work_budget.clone());
        }
        if let Some(stall_timeout) = self.inner.stall_timeout {
            options.config.stall_timeout = stall_timeout;
        }
        if options.events.is_none() {
            options.events = Some(self.inner.events.clone());
        }
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
        match tokio::time::timeout_at(deadline, handshake).await {
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
                    LinkState::Reconnecting if up => {
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

    /// Accepts one TCP connection and waits for its handshake. With
    /// [`EndpointBuilder::tcp_resume`], a connection whose HELLO resumes the
    /// session of one of this endpoint's links (its client reconnected after the
    /// network broke) is handed to that link, which is returned; any other
    /// becomes a new link.
    ///
    /// One call serves one connection, and waits for it: a server accepting
    /// many connections uses [`serve_tcp`](Self::serve_tcp), whose handshakes do
    /// not wait for each other. The accept limits apply
    /// ([`EndpointBuilder::max_links`]): a refused connection fails the call with
    /// an `Io` error of kind `ConnectionRefused`.
    pub async fn accept_tcp(&self, listener: &tokio::net::TcpListener) -> Result<Link, CallError> {
        self.accept_tcp_dialect(listener, Dialect::Native).await
    }

    /// [`accept_tcp`](Self::accept_tcp) for a peer speaking `dialect`: with
    /// [`Dialect::Python`], the connection is a Python Netcore 0.1.3 client (no
    /// first frame is read: the link is up once its bridge answered).
    pub async fn accept_tcp_dialect(
        &self,
        listener: &tokio::net::TcpListener,
        dialect: Dialect,
    ) -> Result<Link, CallError> {
        let (stream, from) = accept_tcp(listener).await?;
        self.accept_one(stream, Some(from.ip()), dialect).await
    }

    /// Accepts one connection on a Unix socket and waits for its handshake, as
    /// [`accept_tcp`](Self::accept_tcp) does (every Unix peer counts as one
    /// address for [`EndpointBuilder::max_handshaking_per_address`]); a server
    /// uses [`serve_unix`](Self::serve_unix).
    #[cfg(unix)]
    pub async fn accept_unix(
        &self,
        listener: &tokio::net::UnixListener,
    ) -> Result<Link, CallError> {
        let (stream, _) = listener.accept().await?;
        self.accept_one(stream, None, Dialect::Native).await
    }

    /// Admits one accepted connection and runs it to a link, or refuses it.
    async fn accept_one(
        &self,
        conn: impl Transport,
        from: Option<IpAddr>,
        dialect: Dialect,
    ) -> Result<Link, CallError> {
        match self.admit(from) {
            Ok(admission) => {
                let deadline = tokio::time::Instant::now() + self.inner.handshake_timeout;
                Ok(self
                    .accept_connection(conn, admission, deadline, dialect)
                    .await?
                    .link)
            }
            Err(refusal) => {
                let why = refusal.to_string();
                self.refuse(conn, refusal).await;
                Err(io::Error::new(io::ErrorKind::ConnectionRefused, why).into())
            }
        }
    }

    /// Decides whether a connection just accepted from `from` (`None`: a Unix
    /// socket) may handshake, by the accept limits; the admission holds its
    /// place among the handshaking connections until it is dropped.
    pub(crate) fn admit(&self, from: Option<IpAddr>) -> Result<Admission, Refusal> {
        let accepting = &self.inner.accepting;
        let limits = accepting.limits;
        let mut handshaking = match accepting.handshaking.lock() {
            Ok(handshaking) => handshaking,
            Err(poisoned) => poisoned.into_inner(),
        };
        let refusal = if handshaking.total >= limits.max_handshaking {
            Some(Refusal::Handshaking(limits.max_handshaking))
        } else if handshaking.by_address.get(&from).copied().unwrap_or(0)
            >= limits.max_handshaking_per_address
        {
            Some(Refusal::PerAddress(
                from,
                limits.max_handshaking_per_address,
            ))
        } else {
            let up = self.inner.links.lock().map_or(0, |links| {
                links
                    .iter()
                    .filter(|link| !matches!(link.state(), LinkState::Down(_)))
                    .count()
            });
            (up + handshaking.joining >= limits.max_links)
                .then_some(Refusal::LinkLimit(limits.max_links))
        };
        let joining = refusal.is_none();
        handshaking.total += 1;
        *handshaking.by_address.entry(from).or_insert(0) += 1;
        handshaking.joining += usize::from(joining);
        drop(handshaking);
        let admission = Admission {
            accepting: accepting.clone(),
            from,
            joining,
        };
        match refusal {
            None => Ok(admission),
            // A link-limit refusal still writes our HELLO and GOAWAY: it holds its
            // place among the handshaking connections while it does.
            Some(Refusal::LinkLimit(n)) => Err(Refusal::LinkLimitWriting(n, admission)),
            Some(other) => {
                drop(admission);
                Err(other)
            }
        }
    }

    /// Refuses a connection: counts and logs the refusal, and, for the link
    /// limit, tells the peer (our HELLO, then GOAWAY(`Refused`)) before closing.
    pub(crate) async fn refuse(&self, mut conn: impl Transport, refusal: Refusal) {
        let accepting = &self.inner.accepting;
        let (counter, warn) = match &refusal {
            Refusal::Handshaking(_) => (&accepting.stats.refused_handshaking, &accepting.warn[0]),
            Refusal::PerAddress(..) => (&accepting.stats.refused_per_address, &accepting.warn[1]),
            Refusal::LinkLimit(_) | Refusal::LinkLimitWriting(..) => {
                (&accepting.stats.refused_link_limit, &accepting.warn[2])
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        warn.warn(&refusal);
        if let Refusal::LinkLimitWriting(_, admission) = refusal {
            let bytes = refusal_frames(&format!("refused: {} links", accepting.limits.max_links));
            let write = async {
                conn.write_all(&bytes).await?;
                conn.shutdown().await
            };
            // A peer that does not read gets no more than a moment of ours.
            let _ = tokio::time::timeout(REFUSAL_WRITE, write).await;
            drop(admission);
        }
    }

    /// Runs one admitted connection to a link: reads its first frame (with
    /// [`EndpointBuilder::tcp_resume`], to see whether it resumes a session),
    /// then the handshake, both due by `deadline`. The one place that turns an
    /// accepted connection into a link, for `accept_tcp`, `accept_unix` and the
    /// serve loops; counts the outcome in [`Endpoint::accept_stats`].
    pub(crate) async fn accept_connection(
        &self,
        conn: impl Transport,
        admission: Admission,
        deadline: tokio::time::Instant,
        dialect: Dialect,
    ) -> Result<Accepted, CallError> {
        let outcome = match dialect {
            Dialect::Native => self.peek_and_handshake(conn, deadline).await,
            // A Python peer sends no HELLO to peek at, resumes nothing and is
            // never authenticated: its bridge answers the handshake.
            python => {
                let options = LinkOptions::python().with_dialect(python);
                self.attach_until(conn, options, deadline)
                    .await
                    .map(|link| Accepted {
                        link,
                        resumed: false,
                    })
            }
        };
        drop(admission);
        let stats = &self.inner.accepting.stats;
        match &outcome {
            Ok(_) => stats.accepted.fetch_add(1, Ordering::Relaxed),
            Err(CallError::LinkDown(DownReason::HandshakeTimedOut(_))) => {
                stats.handshake_timed_out.fetch_add(1, Ordering::Relaxed)
            }
            Err(_) => stats.handshake_failed.fetch_add(1, Ordering::Relaxed),
        };
        if let Err(error) = &outcome {
            tracing::debug!(%error, "an accepted connection did not become a link");
        }
        outcome
    }

    async fn peek_and_handshake(
        &self,
        conn: impl Transport,
        deadline: tokio::time::Instant,
    ) -> Result<Accepted, CallError> {
        if let Some(keys) = self.inner.security.keys.clone() {
            return self.accept_secure(conn, keys, deadline).await;
        }
        let Some(window) = self.inner.tcp_resume else {
            let link = self
                .attach_until(conn, LinkOptions::stream(), deadline)
                .await?;
            return Ok(Accepted {
                link,
                resumed: false,
            });
        };
        let within = deadline.saturating_duration_since(tokio::time::Instant::now());
        let FirstFrame { hello, transport } = match peek_hello(conn, within).await {
            Ok(first) => first,
            Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                let reason = DownReason::HandshakeTimedOut(self.inner.handshake_timeout);
                return Err(CallError::LinkDown(reason));
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(session) = hello.and_then(|h| h.session) {
            for link in self.all_links() {
                // Waiting for its peer, or not aware yet that the old connection
                // broke (the client noticed first): either way the session is here.
                if let Some(PeerSessionState { id: Some(peer), .. }) =
                    link.handle().peer_session().await
                {
                    if peer == session.id {
                        link.handle().resume(Box::new(transport));
                        return Ok(Accepted {
                            link,
                            resumed: true,
                        });
                    }
                }
            }
        }
        let mut options = LinkOptions::stream();
        options.config.reliable = Some(ReliableConfig::default());
        options.resume_window = Some(window);
        let link = self.attach_until(transport, options, deadline).await?;
        Ok(Accepted {
            link,
            resumed: false,
        })
    }

    /// The accept path of an endpoint with [`EndpointBuilder::keys`]: runs the
    /// connection's handshake and opens its first HELLO
    /// ([`peek_secure_hello`]); a HELLO resuming the session of one of this
    /// endpoint's links goes to that link only with a valid resume proof of that
    /// session's keys (a stranger who learned the session id is refused,
    /// `ResumeRefused`); any other connection becomes a new link: authenticated,
    /// or refused by its own handshake with a typed error the peer is told
    /// (`WrongKey`, `UnknownKey`, `NotAuthenticated`), or plain when
    /// [`EndpointBuilder::require_auth`] is off and the peer sent a plain HELLO.
    async fn accept_secure(
        &self,
        conn: impl Transport,
        keys: SecureKeys,
        deadline: tokio::time::Instant,
    ) -> Result<Accepted, CallError> {
        let within = deadline.saturating_duration_since(tokio::time::Instant::now());
        let SecureFirstFrame {
            established,
            hello,
            plain,
            transport,
        } = match peek_secure_hello(conn, &keys, within).await {
            Ok(first) => first,
            Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                let reason = DownReason::HandshakeTimedOut(self.inner.handshake_timeout);
                return Err(CallError::LinkDown(reason));
            }
            Err(error) => return Err(error.into()),
        };
        let mut options = LinkOptions::stream();
        if let Some(window) = self.inner.tcp_resume {
            options.config.reliable = Some(ReliableConfig::default());
            options.resume_window = Some(window);
        }
        let resuming = hello.and_then(|h| h.session.map(|s| (s.id, h.resume_proof)));
        let waiting = match (self.inner.tcp_resume, resuming) {
            (Some(_), Some((id, _))) => self.link_of_peer_session(id).await,
            _ => None,
        };
        match established {
            Some(established) => {
                if let (Some((link, state)), Some((id, proof))) = (waiting, resuming) {
                    let holds_keys = match (state.resume_secret, proof) {
                        (Some(secret), Some(proof)) => {
                            let expected =
                                handshake::resume_proof(&secret, id, established.handshake_hash());
                            handshake::proofs_match(&proof, &expected)
                                && state.key_id.as_ref() == Some(established.key_id())
                        }
                        _ => false,
                    };
                    if !holds_keys {
                        let peer = established.key_id();
                        tracing::warn!(link = %link.id(), %peer, "refused a resume without the session's keys");
                        let error = ProtocolError::Secure(SecureError::ResumeRefused);
                        return Err(CallError::LinkDown(DownReason::Protocol(error)));
                    }
                    link.handle()
                        .resume_secure(Box::new(transport), established);
                    return Ok(Accepted {
                        link,
                        resumed: true,
                    });
                }
                options.config.secure = Some(SecureRole::Established(established));
            }
            None if plain && !self.inner.security.require_auth => {
                if let Some((link, state)) = waiting {
                    // A plain peer resumes only a plain session.
                    if state.key_id.is_some() {
                        let error = ProtocolError::Secure(SecureError::ResumeRefused);
                        return Err(CallError::LinkDown(DownReason::Protocol(error)));
                    }
                    link.handle().resume(Box::new(transport));
                    return Ok(Accepted {
                        link,
                        resumed: true,
                    });
                }
            }
            // Its own handshake refuses the peer, with the typed error.
            None => options.config.secure = Some(SecureRole::Responder { keys }),
        }
        let link = self.attach_until(transport, options, deadline).await?;
        Ok(Accepted {
            link,
            resumed: false,
        })
    }

    /// The link carrying peer session `id` (waiting for its peer, or not aware yet
    /// that the old connection broke), and its session state.
    async fn link_of_peer_session(&self, id: u64) -> Option<(Link, PeerSessionState)> {
        for link in self.all_links() {
            if let Some(state) = link.handle().peer_session().await {
                if state.id == Some(id) {
                    return Some((link, state));
                }
            }
        }
        None
    }

    /// How accepted connections fared: links made, refusals by limit, failed
    /// and timed-out handshakes (counters since the endpoint started).
    pub fn accept_stats(&self) -> AcceptStats {
        self.inner.accepting.stats.snapshot()
    }

    /// The handshake timeout, which covers an accepted connection's first frame
    /// and handshake together.
    pub(crate) fn handshake_timeout(&self) -> Duration {
        self.inner.handshake_timeout
    }

    /// Waits until [`stop`](Self::stop) is called (or the endpoint is gone).
    pub(crate) fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }

    /// A handle that does not keep the endpoint alive (serve loops hold one).
    pub(crate) fn downgrade(&self) -> WeakEndpoint {
        WeakEndpoint(Arc::downgrade(&self.inner))
    }

    /// Logs (rate-limited) a failed accept of kind `kind`.
    pub(crate) fn warn_accept_error(&self, error: &io::Error) {
        self.inner.accepting.warn[3].warn(error);
    }

    fn all_links(&self) -> Vec<Link> {
        self.inner
            .links
            .lock()
            .map(|links| links.clone())
            .unwrap_or_default()
    }

    /// Opens a link described by `spec` (`serial:DEVICE@BAUD[?OPTIONS]`,
    /// `tcp:HOST:PORT`, `unix:PATH`), with options fitting its kind.
    ///
    /// A `+py` spec (`tcp+py:HOST:PORT`, `unix+py:PATH`,
    /// `serial+py:DEVICE@BAUD`) speaks Python Netcore 0.1.3 on the wire
    /// ([`LinkOptions::python`]); a serial one is reopened when it breaks, as
    /// below, with a new bridge (calls in flight then fail: Python has no session
    /// to resume).
    ///
    /// A serial port gets the serial framing, chunks sized from its payload rate
    /// (the baud rate over the bits a byte takes with its data bits, parity, stop
    /// bits and line code: [`SerialSpec::bytes_per_sec`](netcore_actors::transport::SerialSpec::bytes_per_sec)),
    /// and a [`Connector`] that opens the spec again when the port breaks (an
    /// unplugged adapter): the same path, or the same USB identity looked up
    /// afresh, with the same options, retried with
    /// [`ReconnectPolicy::serial`](netcore_actors::ReconnectPolicy::serial)'s
    /// backoff (at most 250 ms between attempts) until the device is back; the
    /// session then resumes.
    ///
    /// Takes the spec by value, so `endpoint.open("tcp:…".parse()?)` works
    /// anywhere, inside `join!` too.
    pub async fn open(&self, spec: LinkSpec) -> Result<Link, CallError> {
        let transport = spec.open().await?;
        let options = match &spec {
            LinkSpec::Python(channel) => {
                let mut options = LinkOptions::python();
                if let LinkSpec::Serial(serial) = &**channel {
                    options.reconnect = netcore_actors::ReconnectPolicy::serial();
                    let serial = serial.clone();
                    options.connector = Some(Connector::new(move || {
                        let serial = serial.clone();
                        async move { serial.open() }
                    }));
                }
                options
            }
            LinkSpec::Serial(serial) => {
                let mut options = LinkOptions::serial_at_rate(serial.bytes_per_sec());
                let serial = serial.clone();
                options.connector = Some(Connector::new(move || {
                    let serial = serial.clone();
                    async move { serial.open() }
                }));
                options
            }
            _ => LinkOptions::stream(),
        };
        self.attach(transport, options).await
    }

    /// Runs a link over a pair of plain blocking functions (Python Netcore's
    /// `Pipe(recv, send)`), called on their own threads, with the serial framing
    /// at 115200 baud, flushed after each write (such functions usually wrap a
    /// radio or a UART driver): [`attach_pipe_with`](Self::attach_pipe_with)
    /// with those options.
    ///
    /// As in Python, `recv` returning no bytes means nothing yet (a serial read
    /// that timed out): it is called again, with a pause of up to 20 ms when it
    /// keeps coming back empty. `recv` ends the stream with an
    /// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) error
    /// ([`Pipe::end_of_stream`](netcore_actors::transport::Pipe::end_of_stream)):
    /// the link goes down with [`DownReason::EndOfStream`]; any other error
    /// takes it down with [`DownReason::Transport`]. See
    /// [`transport::pipe`](netcore_actors::transport::pipe).
    pub async fn attach_pipe<R, S>(&self, recv: R, send: S) -> Result<Link, CallError>
    where
        R: FnMut(usize) -> io::Result<Vec<u8>> + Send + 'static,
        S: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
    {
        let mut options = LinkOptions::serial(115_200);
        options.flush = true;
        self.attach_pipe_with(recv, send, options).await
    }

    /// [`attach_pipe`](Self::attach_pipe) with the link's options, as for any
    /// other link: the framing ([`LinkOptions::serial`] for a UART or radio,
    /// [`LinkOptions::stream`] for a reliable byte stream), the baud rate that
    /// sizes chunks and one-way queues, pacing
    /// ([`LinkConfig::pacing`](netcore_proto::link::LinkConfig::pacing)),
    /// keepalive, reconnection, security. [`LinkOptions::serial_flushed`] fits
    /// most pipes over a line: flushing a pipe waits only until `send` returned.
    /// [`LinkOptions::python`] talks to a Python Netcore 0.1.3 peer through the
    /// same kind of functions.
    pub async fn attach_pipe_with<R, S>(
        &self,
        recv: R,
        send: S,
        options: LinkOptions,
    ) -> Result<Link, CallError>
    where
        R: FnMut(usize) -> io::Result<Vec<u8>> + Send + 'static,
        S: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
    {
        let pipe = PipeTransport::new(recv, send)?;
        self.attach(pipe, options).await
    }

    /// The budget shared by the links' inbound bodies in memory: its limit, and
    /// how much of it is held now ([`MemoryBudget::used`]).
    pub fn memory_budget(&self) -> &MemoryBudget {
        &self.inner.budget
    }

    /// Every attached link's [`LinkStats`](crate::LinkStats) (up, connecting or reconnecting;
    /// links already down are left out), by link id, and their totals. The
    /// links are asked concurrently.
    pub async fn stats(&self) -> EndpointStats {
        let links = self.all_links();
        let snapshots = futures_util::future::join_all(links.iter().map(Link::stats)).await;
        EndpointStats::of(snapshots.into_iter().flatten().collect())
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
        // Serve loops stop accepting first.
        self.inner.stopping.send_replace(true);
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

/// How long a refused connection's HELLO and GOAWAY may take to be written.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// Limits on accepted connections ([`EndpointBuilder::max_links`],
/// [`EndpointBuilder::max_handshaking`],
/// [`EndpointBuilder::max_handshaking_per_address`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptLimits {
    /// Most links up or handshaking; an accepted connection beyond it gets
    /// HELLO + GOAWAY(`Refused`) and is closed (default 256).
    pub max_links: usize,
    /// Most accepted connections handshaking at once (default 256).
    pub max_handshaking: usize,
    /// Most accepted connections handshaking at once from one IP address; Unix
    /// peers count as one address (default 16).
    pub max_handshaking_per_address: usize,
}

impl Default for AcceptLimits {
    fn default() -> Self {
        AcceptLimits {
            max_links: 256,
            max_handshaking: 256,
            max_handshaking_per_address: 16,
        }
    }
}

/// What happened to accepted connections ([`Endpoint::accept_stats`]): counters
/// since the endpoint started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptStats {
    /// Connections that became links (or resumed one).
    pub accepted: u64,
    /// Refused with GOAWAY(`Refused`): `max_links` links were up or handshaking.
    pub refused_link_limit: u64,
    /// Closed unread: `max_handshaking` connections were handshaking.
    pub refused_handshaking: u64,
    /// Closed unread: their address had `max_handshaking_per_address`
    /// connections handshaking.
    pub refused_per_address: u64,
    /// The handshake failed (the peer broke the protocol, closed, or the
    /// transport failed).
    pub handshake_failed: u64,
    /// No first frame and handshake within the handshake timeout.
    pub handshake_timed_out: u64,
}

/// The endpoint's accepting state: limits, who is handshaking, counters.
struct Accepting {
    limits: AcceptLimits,
    handshaking: Mutex<Handshaking>,
    stats: AcceptCounters,
    /// Rate-limited warnings: handshaking, per address, link limit, accept errors.
    warn: [EverySecond; 4],
}

impl Accepting {
    fn new(limits: AcceptLimits) -> Accepting {
        Accepting {
            limits,
            handshaking: Mutex::new(Handshaking::default()),
            stats: AcceptCounters::default(),
            warn: [
                EverySecond::new("refused a connection: too many connections handshaking"),
                EverySecond::new("refused a connection: too many handshaking from its address"),
                EverySecond::new("refused a connection: link limit reached"),
                EverySecond::new("accepting a connection failed"),
            ],
        }
    }
}

/// Accepted connections handshaking now.
#[derive(Default)]
struct Handshaking {
    total: usize,
    /// By peer IP address (`None`: a Unix socket).
    by_address: HashMap<Option<IpAddr>, usize>,
    /// Those that may become links (not being refused).
    joining: usize,
}

#[derive(Default)]
struct AcceptCounters {
    accepted: AtomicU64,
    refused_link_limit: AtomicU64,
    refused_handshaking: AtomicU64,
    refused_per_address: AtomicU64,
    handshake_failed: AtomicU64,
    handshake_timed_out: AtomicU64,
}

impl AcceptCounters {
    fn snapshot(&self) -> AcceptStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        AcceptStats {
            accepted: read(&self.accepted),
            refused_link_limit: read(&self.refused_link_limit),
            refused_handshaking: read(&self.refused_handshaking),
            refused_per_address: read(&self.refused_per_address),
            handshake_failed: read(&self.handshake_failed),
            handshake_timed_out: read(&self.handshake_timed_out),
        }
    }
}

/// A `tracing::warn!` line at most once a second, with how many times it
/// happened since the last line.
struct EverySecond {
    what: &'static str,
    /// When the last line was logged, and the occurrences since.
    state: Mutex<(Option<std::time::Instant>, u64)>,
}

impl EverySecond {
    fn new(what: &'static str) -> EverySecond {
        EverySecond {
            what,
            state: Mutex::new((None, 0)),
        }
    }

    fn warn(&self, detail: &dyn std::fmt::Display) {
        let mut state = match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        };
        state.1 += 1;
        let now = std::time::Instant::now();
        if state
            .0
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1))
        {
            let count = state.1;
            *state = (Some(now), 0);
            drop(state);
            tracing::warn!(
                count,
                "{} ({detail}; {count} since the last such line)",
                self.what
            );
        }
    }
}

/// A connection's place among the handshaking ones (see [`Endpoint::admit`]),
/// given back when dropped.
pub(crate) struct Admission {
    accepting: Arc<Accepting>,
    from: Option<IpAddr>,
    joining: bool,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut handshaking = match self.accepting.handshaking.lock() {
            Ok(handshaking) => handshaking,
            Err(poisoned) => poisoned.into_inner(),
        };
        handshaking.total = handshaking.total.saturating_sub(1);
        handshaking.joining = handshaking
            .joining
            .saturating_sub(usize::from(self.joining));
        if let Some(n) = handshaking.by_address.get_mut(&self.from) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                handshaking.by_address.remove(&self.from);
            }
        }
    }
}

/// Why an accepted connection is refused (see [`Endpoint::admit`]).
pub(crate) enum Refusal {
    /// `max_handshaking` connections are handshaking.
    Handshaking(usize),
    /// This address has that many connections handshaking.
    PerAddress(Option<IpAddr>, usize),
    /// `max_links` links are up or handshaking (before the refusal is admitted).
    LinkLimit(usize),
    /// The link limit, with the place the refusal's writing holds.
    LinkLimitWriting(usize, Admission),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Handshaking(n) => write!(f, "max_handshaking: {n} connections handshaking"),
            Refusal::PerAddress(Some(ip), n) => {
                write!(f, "max_handshaking_per_address: {n} handshaking from {ip}")
            }
            Refusal::PerAddress(None, n) => {
                write!(
                    f,
                    "max_handshaking_per_address: {n} handshaking on the unix socket"
                )
            }
            Refusal::LinkLimit(n) | Refusal::LinkLimitWriting(n, _) => {
                write!(f, "max_links: {n} links up or handshaking")
            }
        }
    }
}

/// An accepted connection that became a link.
pub(crate) struct Accepted {
    /// The link: a new one, or the one whose session the connection resumed.
    pub(crate) link: Link,
    /// The connection resumed an existing link's session.
    pub(crate) resumed: bool,
}

/// An [`Endpoint`] held weakly.
#[derive(Clone)]
pub(crate) struct WeakEndpoint(Weak<Inner>);

impl WeakEndpoint {
    /// The endpoint, unless it is gone.
    pub(crate) fn upgrade(&self) -> Option<Endpoint> {
        self.0.upgrade().map(|inner| Endpoint { inner })
    }
}

/// Our side of a refused connection: a HELLO (so the peer's handshake completes
/// and it reads what follows), then GOAWAY(`Refused`, `reason`), stream framing.
fn refusal_frames(reason: &str) -> bytes::BytesMut {
    use std::hash::BuildHasher;
    let mut config = LinkOptions::stream().config;
    config.nonce = std::collections::hash_map::RandomState::new().hash_one(reason);
    let mut link = netcore_proto::link::Link::new(config, None);
    link.go_away(ErrorCode::Refused, reason);
    let mut out = bytes::BytesMut::new();
    while link.poll_transmit(&mut out) > 0 {}
    out
}

impl Drop for Inner {
    /// The link threads end with the endpoint (its last handle).
    fn drop(&mut self) {
        for arbiter in &self.link_arbiters {
            arbiter.stop();
        }
    }
}

/// The endpoint's authenticated mode: its keys as a responder, its identity as an
/// initiator, and whether accepted peers must authenticate.
#[derive(Clone, Default)]
struct Security {
    keys: Option<SecureKeys>,
    require_auth: bool,
    identity: Option<(KeyId, Psk)>,
}
