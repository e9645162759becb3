//! [`Blueprint`]: a named group of routes under a prefix, with its own
//! middleware, hooks, error handler and default handler; blueprints nest.
//!
//! A blueprint's middleware and hooks apply to its own routes (and those of the
//! blueprints nested in it) only: as in axum and not as in Python Netcore, registering a
//! blueprint never changes what runs for other routes.
//!
//! Order for a request to a route of blueprint `inner` nested in `outer`, on an
//! endpoint (which is itself the root blueprint):
//!
//! ```text
//! endpoint error handler
//!  └ endpoint middleware (registration order, first = outermost)
//!     └ endpoint before hooks → ... → endpoint after hooks
//!        └ outer error handler
//!           └ outer middleware
//!              └ outer before hooks → ... → outer after hooks
//!                 └ inner error handler
//!                    └ inner middleware
//!                       └ inner before hooks → handler → inner after hooks
//! ```
//!
//! An error (from the handler, a hook, a middleware, an extractor, or a panic)
//! travels outwards: each level's after hooks see it, and the first error handler
//! may turn it into an answer. An unknown route under a blueprint's prefix goes
//! to its default handler (the deepest blueprint with one), else it is `NotFound`,
//! which the endpoint's error handler sees too.

use super::context::RequestContext;
use super::handler::{boxed, BoxHandler, Handler};
use super::middleware::{middleware, AfterHook, BeforeHook, ErrorHook, Layer, Next};
use super::services::ActorFactory;
use actix::Recipient;
use netcore_actors::router_actor::ask_actor;
use netcore_actors::supervision::RestartPolicy;
use netcore_actors::{HandleRequest, HandlerError, HandlerResult};
use netcore_proto::reassembly::MessageHead;
use std::future::Future;
use std::sync::Arc;

/// A group of routes under a prefix.
pub struct Blueprint {
    name: String,
    prefix: String,
    routes: Vec<(String, BoxHandler)>,
    default: Option<BoxHandler>,
    layer: Layer,
    children: Vec<Blueprint>,
}

/// Routes and default handlers of a compiled blueprint tree, each already wrapped
/// by all of its levels.
pub(crate) struct Compiled {
    pub(crate) routes: Vec<(String, BoxHandler)>,
    /// (prefix, handler) for unknown routes under the prefix.
    pub(crate) defaults: Vec<(String, BoxHandler)>,
}

impl Blueprint {
    /// A blueprint called `name` whose routes live under `prefix` (e.g. `"/user"`).
    pub fn new(name: impl Into<String>, prefix: impl Into<String>) -> Blueprint {
        Blueprint {
            name: name.into(),
            prefix: prefix.into(),
            routes: Vec::new(),
            default: None,
            layer: Layer::default(),
            children: Vec::new(),
        }
    }

    /// The blueprint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The blueprint's prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Serves `path` (after the prefix) with a handler.
    pub fn route<H: Handler<Args>, Args>(mut self, path: impl Into<String>, handler: H) -> Self {
        self.routes.push((path.into(), boxed(handler)));
        self
    }

    /// Serves `path` with a handler actor (`impl Handler<HandleRequest>`): its
    /// own state and mailbox; this blueprint's middleware and hooks still apply.
    pub fn route_actor(mut self, path: impl Into<String>, actor: Recipient<HandleRequest>) -> Self {
        self.routes.push((path.into(), actor_handler(actor)));
        self
    }

    /// Serves `path` with a supervised handler actor built by `factory`: started
    /// at the first request, rebuilt from `factory` (fresh state) after it dies,
    /// under `policy` (see [`super::handler_actor`]). The factory is `|| MyActor`
    /// or `|services: &Services| MyActor::new(..)`, reaching the endpoint's state,
    /// cache, timers, events and the endpoint itself (see [`ActorFactory`]).
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
        let path = path.into();
        let name = format!("handler-actor {}{path}", self.prefix);
        self.routes.push((
            path,
            super::handler_actor::supervised(name, policy, factory),
        ));
        self
    }

    /// Serves every unknown route under the prefix with a handler actor.
    pub fn default_actor(mut self, actor: Recipient<HandleRequest>) -> Self {
        self.default = Some(actor_handler(actor));
        self
    }

    /// Serves every unknown route under the prefix.
    pub fn default_handler<H: Handler<Args>, Args>(mut self, handler: H) -> Self {
        self.default = Some(boxed(handler));
        self
    }

    /// Wraps this blueprint's routes: `f(ctx, next)` may answer itself or call
    /// `next.run(ctx)`.
    pub fn middleware<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(RequestContext, Next) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + 'static,
    {
        self.layer.middleware.push(middleware(f));
        self
    }

    /// Runs before this blueprint's handlers; an error refuses the request.
    pub fn before(
        mut self,
        hook: impl Fn(&mut RequestContext) -> Result<(), HandlerError> + Send + Sync + 'static,
    ) -> Self {
        let hook: BeforeHook = Arc::new(hook);
        self.layer.before.push(hook);
        self
    }

    /// Serves this blueprint's routes (and its children's) only to authenticated
    /// peers (the authenticated mode) whose key id is one of `peers`, or to any
    /// authenticated peer when `peers` is empty; other requests are refused
    /// (`Refused`) before the handler runs. A before hook: this blueprint's own
    /// middleware still sees the request first.
    pub fn require_peer<K: Into<netcore_proto::secure::KeyId>>(
        self,
        peers: impl IntoIterator<Item = K>,
    ) -> Self {
        let allowed: std::collections::BTreeSet<netcore_proto::secure::KeyId> =
            peers.into_iter().map(Into::into).collect();
        self.before(move |ctx| match ctx.link().peer() {
            Some(peer) if allowed.is_empty() || allowed.contains(&peer) => Ok(()),
            Some(peer) => Err(HandlerError::new(
                netcore_proto::ErrorCode::Refused,
                format!("peer {peer} may not use this route"),
            )),
            None => Err(HandlerError::new(
                netcore_proto::ErrorCode::Refused,
                "this route requires an authenticated peer",
            )),
        })
    }

    /// Sees (and may change) every result of this blueprint's routes.
    pub fn after(
        mut self,
        hook: impl Fn(&MessageHead, &mut HandlerResult) + Send + Sync + 'static,
    ) -> Self {
        let hook: AfterHook = Arc::new(hook);
        self.layer.after.push(hook);
        self
    }

    /// Turns errors of this blueprint's routes into answers (or other errors).
    pub fn error_handler(
        mut self,
        hook: impl Fn(HandlerError, &MessageHead) -> HandlerResult + Send + Sync + 'static,
    ) -> Self {
        let hook: ErrorHook = Arc::new(hook);
        self.layer.on_error = Some(hook);
        self
    }

    /// Nests `child`: its prefix is appended to this one's, and this blueprint's
    /// middleware and hooks wrap the child's.
    pub fn blueprint(mut self, child: Blueprint) -> Self {
        self.children.push(child);
        self
    }

    /// Flattens the tree under `parent_prefix`: full paths, each handler wrapped
    /// by its own level first, then its ancestors'.
    pub(crate) fn compile(self, parent_prefix: &str) -> Compiled {
        let prefix = format!("{parent_prefix}{}", self.prefix);
        let mut compiled = Compiled {
            routes: Vec::new(),
            defaults: Vec::new(),
        };
        for child in self.children {
            let inner = child.compile(&prefix);
            compiled.routes.extend(inner.routes);
            compiled.defaults.extend(inner.defaults);
        }
        for (path, handler) in self.routes {
            compiled.routes.push((format!("{prefix}{path}"), handler));
        }
        if let Some(default) = self.default {
            compiled.defaults.push((prefix.clone(), default));
        }
        refuse_duplicates("route", compiled.routes.iter().map(|(path, _)| path));
        refuse_duplicates(
            "default handler for prefix",
            compiled.defaults.iter().map(|(prefix, _)| prefix),
        );
        let layer = self.layer;
        for (_, handler) in compiled
            .routes
            .iter_mut()
            .chain(compiled.defaults.iter_mut())
        {
            *handler = layer.wrap(handler.clone());
        }
        compiled
    }

    pub(crate) fn has_default(&self) -> bool {
        self.default.is_some()
    }
}

/// Registering one route (or one prefix's default handler) twice is a mistake
/// that would otherwise silently drop the first handler: panics at start, naming
/// it, as axum does for overlapping routes.
fn refuse_duplicates<'a>(what: &str, keys: impl Iterator<Item = &'a String>) {
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        if !seen.insert(key) {
            panic!("{what} {key:?} is registered twice; each may have one handler");
        }
    }
}

/// A handler forwarding the request to a handler actor.
fn actor_handler(actor: Recipient<HandleRequest>) -> BoxHandler {
    Arc::new(move |ctx: RequestContext| ask_actor(&actor, ctx.into_request()))
}
