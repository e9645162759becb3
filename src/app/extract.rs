//! Extractors: typed handler arguments built from the request.
//!
//! A handler is an async function whose arguments all implement [`FromRequest`],
//! extracted left to right. Extractors of the body ([`bytes::Bytes`], `String`,
//! [`Json`], [`MsgPack`], [`Body`], [`Request`]) take it, so at most one of them per
//! handler; the others ([`Headers`], [`Head`], [`LinkRef`], [`LinkId`], [`PeerIdentity`], [`State`],
//! [`Remainder`], [`Services`], and `Endpoint`) only look. A failed extraction answers `BadRequest` (undecodable body) or
//! `Internal` (missing state) without running the handler.

use super::context::RequestContext;
use super::services::Services;
use bytes::Bytes;
use netcore_actors::{Body, HandlerError, LinkId, LinkRef, Request};
use netcore_proto::frame::{header_value, Header};
use netcore_proto::reassembly::MessageHead;
use netcore_proto::secure::KeyId;
use netcore_proto::ErrorCode;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;

/// Builds a handler argument from the request.
pub trait FromRequest: Sized {
    /// Extracts the value, or fails the request with an error response.
    fn from_request(ctx: &mut RequestContext) -> impl Future<Output = Result<Self, HandlerError>>;
}

async fn body_bytes(ctx: &mut RequestContext) -> Result<Bytes, HandlerError> {
    let body = ctx
        .take_body()
        .ok_or_else(|| HandlerError::failed("the body was already taken by another extractor"))?;
    body.into_bytes()
        .await
        .map_err(|e| HandlerError::failed(format!("reading the spooled body: {e}")))
}

impl FromRequest for Bytes {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        body_bytes(ctx).await
    }
}

impl FromRequest for Vec<u8> {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        Ok(body_bytes(ctx).await?.to_vec())
    }
}

impl FromRequest for String {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        String::from_utf8(body_bytes(ctx).await?.to_vec())
            .map_err(|e| HandlerError::bad_request(format!("body is not UTF-8 text: {e}")))
    }
}

impl FromRequest for Body {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        ctx.take_body()
            .ok_or_else(|| HandlerError::failed("the body was already taken by another extractor"))
    }
}

/// A JSON body (serde), or a JSON answer (see `IntoReply`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Json<T> {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        let bytes = body_bytes(ctx).await?;
        serde_json::from_slice(&bytes)
            .map(Json)
            .map_err(|e| HandlerError::bad_request(format!("body is not the expected JSON: {e}")))
    }
}

/// A MessagePack body (rmp-serde), or a MessagePack answer (see `IntoReply`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MsgPack<T>(pub T);

impl<T: DeserializeOwned> FromRequest for MsgPack<T> {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        let bytes = body_bytes(ctx).await?;
        rmp_serde::from_slice(&bytes).map(MsgPack).map_err(|e| {
            HandlerError::bad_request(format!("body is not the expected MessagePack: {e}"))
        })
    }
}

/// The request's headers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The value of the first header named `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        header_value(&self.0, name)
    }
}

impl FromRequest for Headers {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        Ok(Headers(ctx.headers().to_vec()))
    }
}

/// The request's head: route, kind, priority, stream, headers.
#[derive(Clone, Debug)]
pub struct Head(pub MessageHead);

impl FromRequest for Head {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        Ok(Head(ctx.head().clone()))
    }
}

impl FromRequest for LinkRef {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        Ok(ctx.link().clone())
    }
}

/// The authenticated peer of the request's link: the key id its handshake proved
/// (the authenticated mode, `EndpointBuilder::keys`). A request on a plain link is
/// refused (`Refused`) without running the handler; `Option<PeerIdentity>` accepts
/// both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity(pub KeyId);

impl PeerIdentity {
    /// The key id as text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_str()
    }
}

impl FromRequest for PeerIdentity {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        ctx.link().peer().map(PeerIdentity).ok_or_else(|| {
            HandlerError::new(
                ErrorCode::Refused,
                "this route requires an authenticated peer",
            )
        })
    }
}

impl FromRequest for LinkId {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        Ok(ctx.link_id())
    }
}

/// Shared application state of type `T` (registered with `EndpointBuilder::state`).
#[derive(Debug)]
pub struct State<T>(pub Arc<T>);

impl<T> Clone for State<T> {
    fn clone(&self) -> Self {
        State(self.0.clone())
    }
}

impl<T> std::ops::Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Send + Sync + 'static> FromRequest for State<T> {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        ctx.state::<T>().map(State).ok_or_else(|| {
            HandlerError::new(
                ErrorCode::Internal,
                format!("no state of type {} registered", std::any::type_name::<T>()),
            )
        })
    }
}

/// The route after the matched prefix, for a blueprint's default handler (see
/// [`RequestContext::remainder`]): `"42/temp"` for `"dev/42/temp"` under `"dev/"`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Remainder(pub String);

impl FromRequest for Remainder {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        Ok(Remainder(ctx.remainder().to_owned()))
    }
}

impl FromRequest for Services {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        Ok(ctx.services().clone())
    }
}

impl FromRequest for Request {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        let (link, head) = ctx.parts();
        let body = ctx.take_body().ok_or_else(|| {
            HandlerError::failed("the body was already taken by another extractor")
        })?;
        Ok(Request { link, head, body })
    }
}

impl<T: FromRequest> FromRequest for Option<T> {
    async fn from_request(ctx: &mut RequestContext) -> Result<Self, HandlerError> {
        Ok(T::from_request(ctx).await.ok())
    }
}
