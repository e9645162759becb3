//! [`Handler`]: any async function whose arguments are extractors and whose
//! result converts into an answer.
//!
//! ```ignore
//! async fn list(Json(query): Json<Query>, State(db): State<Db>) -> Result<Json<Vec<User>>, HandlerError>
//! ```
//!
//! Handlers run on the endpoint's thread, with the router and (by default) the
//! links: one that blocks it (`std::thread::sleep`, synchronous file or database
//! I/O, long computations) stalls them all. Such a handler goes on tokio's
//! blocking pool instead:
//!
//! - [`blocking`] wraps a plain (not async) function with extractor arguments:
//!   the extractors run on the endpoint's thread (a body is read there), then the
//!   function runs on the blocking pool, and its result becomes the answer.
//! - [`run_blocking`] runs a closure on the blocking pool from inside an async
//!   handler, for a handler that mixes both.
//!
//! Blocking work holds its request's worker slot (`max_workers`,
//! `max_workers_per_link`) until it returns, even after the peer canceled the
//! request (a thread cannot be stopped), so an endpoint's blocking work occupies
//! at most `max_workers` of the pool's threads. The pool is the runtime's:
//! tokio's default, up to 512 threads shared by every endpoint of the runtime,
//! started on demand and ended after 10 s idle.

use super::context::RequestContext;
use super::extract::FromRequest;
use super::respond::IntoReply;
use futures_util::future::LocalBoxFuture;
use netcore_actors::supervision::guard_future;
use netcore_actors::{HandlerError, HandlerResult};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

pub use netcore_actors::router_actor::run_blocking;

/// A type-erased handler: what routes, middleware and hooks compose.
pub type BoxHandler =
    Arc<dyn Fn(RequestContext) -> LocalBoxFuture<'static, HandlerResult> + Send + Sync + 'static>;

/// An async function usable as a route handler; `Args` is the tuple of its
/// extractor arguments (implemented for up to 8).
pub trait Handler<Args>: Clone + Send + Sync + 'static {
    /// Extracts the arguments, runs the function, converts its result.
    fn call(&self, ctx: RequestContext) -> LocalBoxFuture<'static, HandlerResult>;
}

/// Erases a handler's type. A panic inside it becomes an error `HandlerFailed`
/// that the route's after hooks and error handlers see like any other error.
pub fn boxed<H: Handler<Args>, Args>(handler: H) -> BoxHandler {
    Arc::new(move |ctx| {
        let call = handler.call(ctx);
        Box::pin(async move {
            guard_future(call).await.unwrap_or_else(|why| {
                tracing::error!(%why, "handler panicked");
                Err(HandlerError::failed(format!("handler panicked: {why}")))
            })
        })
    })
}

macro_rules! impl_handler {
    ($($arg:ident),*) => {
        impl<F, Fut, R, $($arg,)*> Handler<($($arg,)*)> for F
        where
            F: Fn($($arg),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + 'static,
            R: IntoReply,
            $($arg: FromRequest + 'static,)*
        {
            #[allow(non_snake_case, unused_mut, unused_variables)]
            fn call(&self, mut ctx: RequestContext) -> LocalBoxFuture<'static, HandlerResult> {
                let f = self.clone();
                Box::pin(async move {
                    $(let $arg = $arg::from_request(&mut ctx).await?;)*
                    f($($arg),*).await.into_reply()
                })
            }
        }
    };
}

impl_handler!();
impl_handler!(A1);
impl_handler!(A1, A2);
impl_handler!(A1, A2, A3);
impl_handler!(A1, A2, A3, A4);
impl_handler!(A1, A2, A3, A4, A5);
impl_handler!(A1, A2, A3, A4, A5, A6);
impl_handler!(A1, A2, A3, A4, A5, A6, A7);
impl_handler!(A1, A2, A3, A4, A5, A6, A7, A8);

/// A synchronous function served on tokio's blocking pool; made by [`blocking`].
pub struct Blocking<F>(Arc<F>);

impl<F> Clone for Blocking<F> {
    fn clone(&self) -> Self {
        Blocking(self.0.clone())
    }
}

/// The argument tuple of a [`Blocking`] handler: keeps its [`Handler`]
/// implementations apart from those of async functions.
pub struct BlockingArgs<Args>(PhantomData<Args>);

/// A route handler that runs `f`, a plain function, on tokio's blocking pool
/// (`spawn_blocking`), so it may block without stalling the endpoint's thread.
///
/// `f` takes extractors, as an async handler does (each must be `Send`: a body,
/// `Json<T>`, `State<T>`, the `Request`...), and returns anything that converts
/// into an answer ([`IntoReply`]) and is `Send`. The extractors run first on the
/// endpoint's thread; then `f` runs on the pool. It holds a worker slot until it
/// returns, even if the request is canceled meanwhile (see the [module
/// docs](self)); a panic in it is the error `HandlerFailed`.
///
/// ```
/// # async fn demo() {
/// use netcore::app::handler::blocking;
/// use netcore::{Endpoint, HandlerError, Json};
///
/// let server = Endpoint::builder()
///     .route("sum", blocking(|Json(numbers): Json<Vec<u64>>| -> Result<String, HandlerError> {
///         std::thread::sleep(std::time::Duration::from_millis(10)); // a slow device, a database
///         Ok(numbers.iter().sum::<u64>().to_string())
///     }))
///     .start();
/// # drop(server); }
/// ```
pub fn blocking<F>(f: F) -> Blocking<F> {
    Blocking(Arc::new(f))
}

macro_rules! impl_blocking_handler {
    ($($arg:ident),*) => {
        impl<F, R, $($arg,)*> Handler<BlockingArgs<($($arg,)*)>> for Blocking<F>
        where
            F: Fn($($arg),*) -> R + Send + Sync + 'static,
            R: IntoReply + Send + 'static,
            $($arg: FromRequest + Send + 'static,)*
        {
            #[allow(non_snake_case, unused_mut, unused_variables)]
            fn call(&self, mut ctx: RequestContext) -> LocalBoxFuture<'static, HandlerResult> {
                let f = self.0.clone();
                Box::pin(async move {
                    $(let $arg = $arg::from_request(&mut ctx).await?;)*
                    run_blocking(move || f($($arg),*)).await?.into_reply()
                })
            }
        }
    };
}

impl_blocking_handler!();
impl_blocking_handler!(A1);
impl_blocking_handler!(A1, A2);
impl_blocking_handler!(A1, A2, A3);
impl_blocking_handler!(A1, A2, A3, A4);
impl_blocking_handler!(A1, A2, A3, A4, A5);
impl_blocking_handler!(A1, A2, A3, A4, A5, A6);
impl_blocking_handler!(A1, A2, A3, A4, A5, A6, A7);
impl_blocking_handler!(A1, A2, A3, A4, A5, A6, A7, A8);
