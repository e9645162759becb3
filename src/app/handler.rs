//! [`Handler`]: any async function whose arguments are extractors and whose
//! result converts into an answer.
//!
//! ```ignore
//! async fn list(Json(query): Json<Query>, State(db): State<Db>) -> Result<Json<Vec<User>>, HandlerError>
//! ```

use super::context::RequestContext;
use super::extract::FromRequest;
use super::respond::IntoReply;
use futures_util::future::LocalBoxFuture;
use netcore_actors::supervision::guard_future;
use netcore_actors::{HandlerError, HandlerResult};
use std::future::Future;
use std::sync::Arc;

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
