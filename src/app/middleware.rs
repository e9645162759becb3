//! Middleware and hooks: code that wraps a blueprint's handlers.
//!
//! - A **middleware** gets the request and [`Next`]; it may answer itself
//!   (short-circuit, e.g. an auth check) or call `next.run(ctx)` and look at or
//!   change the result.
//! - A **before hook** runs before the handler and may refuse the request.
//! - An **after hook** sees (and may change) every result of the route.
//! - An **error handler** may turn an error into an answer (or another error).

use super::context::RequestContext;
use super::handler::BoxHandler;
use futures_util::future::LocalBoxFuture;
use netcore_actors::{HandlerError, HandlerResult};
use netcore_proto::reassembly::MessageHead;
use std::future::Future;
use std::sync::Arc;

/// The rest of the chain, handed to a middleware.
#[derive(Clone)]
pub struct Next {
    inner: BoxHandler,
}

impl Next {
    pub(crate) fn new(inner: BoxHandler) -> Next {
        Next { inner }
    }

    /// Runs the rest of the chain (inner middleware, hooks, the handler).
    pub async fn run(self, ctx: RequestContext) -> HandlerResult {
        (self.inner)(ctx).await
    }
}

/// A type-erased middleware.
pub type BoxMiddleware = Arc<
    dyn Fn(RequestContext, Next) -> LocalBoxFuture<'static, HandlerResult> + Send + Sync + 'static,
>;

/// Erases a middleware function's type.
pub fn middleware<F, Fut>(f: F) -> BoxMiddleware
where
    F: Fn(RequestContext, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + 'static,
{
    Arc::new(move |ctx, next| Box::pin(f(ctx, next)))
}

/// Runs before the handler; an error answers the request without running it.
pub type BeforeHook = Arc<dyn Fn(&mut RequestContext) -> Result<(), HandlerError> + Send + Sync>;

/// Sees every result of a route (and may change it).
pub type AfterHook = Arc<dyn Fn(&MessageHead, &mut HandlerResult) + Send + Sync>;

/// Turns an error into an answer, or into another error.
pub type ErrorHook = Arc<dyn Fn(HandlerError, &MessageHead) -> HandlerResult + Send + Sync>;

/// One level of wrapping: a blueprint's (or the endpoint's) middleware, hooks and
/// error handler.
#[derive(Clone, Default)]
pub(crate) struct Layer {
    pub(crate) middleware: Vec<BoxMiddleware>,
    pub(crate) before: Vec<BeforeHook>,
    pub(crate) after: Vec<AfterHook>,
    pub(crate) on_error: Option<ErrorHook>,
}

impl Layer {
    /// `handler` wrapped by this level, outermost first: error handler, middleware
    /// (in registration order, the first outermost), before hooks, the handler,
    /// after hooks.
    pub(crate) fn wrap(&self, handler: BoxHandler) -> BoxHandler {
        let mut inner: BoxHandler = if self.before.is_empty() && self.after.is_empty() {
            handler
        } else {
            let (before, after) = (self.before.clone(), self.after.clone());
            Arc::new(move |mut ctx: RequestContext| {
                let handler = handler.clone();
                let (before, after) = (before.clone(), after.clone());
                Box::pin(async move {
                    let head = ctx.head().clone();
                    let mut result = match before.iter().try_for_each(|hook| hook(&mut ctx)) {
                        Ok(()) => handler(ctx).await,
                        Err(error) => Err(error),
                    };
                    for hook in &after {
                        hook(&head, &mut result);
                    }
                    result
                })
            })
        };
        for mw in self.middleware.iter().rev() {
            let (mw, next) = (mw.clone(), inner);
            inner = Arc::new(move |ctx| mw(ctx, Next::new(next.clone())));
        }
        match &self.on_error {
            None => inner,
            Some(on_error) => {
                let on_error = on_error.clone();
                Arc::new(move |ctx: RequestContext| {
                    let (inner, on_error) = (inner.clone(), on_error.clone());
                    Box::pin(async move {
                        let head = ctx.head().clone();
                        match inner(ctx).await {
                            Err(error) => on_error(error, &head),
                            ok => ok,
                        }
                    })
                })
            }
        }
    }
}
