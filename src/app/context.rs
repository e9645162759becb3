//! [`RequestContext`]: an inbound request on its way through middleware, hooks
//! and extractors to its handler.

use super::extract::FromRequest;
use super::services::Services;
use netcore_actors::{Body, HandlerError, LinkId, LinkRef, Request};
use netcore_proto::frame::{header_value, Header};
use netcore_proto::reassembly::MessageHead;
use std::sync::Arc;

/// An inbound request before its handler ran: head, link, shared state, and the
/// body until an extractor takes it.
#[derive(Debug)]
pub struct RequestContext {
    link: LinkRef,
    head: MessageHead,
    body: Option<Body>,
    services: Services,
    /// The prefix a default handler serves (`None` for a route's own handler).
    prefix: Option<Arc<str>>,
}

impl RequestContext {
    pub(crate) fn new(
        request: Request,
        services: Services,
        prefix: Option<Arc<str>>,
    ) -> RequestContext {
        RequestContext {
            link: request.link,
            head: request.head,
            body: Some(request.body),
            services,
            prefix,
        }
    }

    /// The full route (blueprint prefixes included).
    pub fn route(&self) -> &str {
        &self.head.route
    }

    /// The route after the prefix of the default handler serving it (e.g.
    /// `"42/temp"` for `"dev/42/temp"` under prefix `"dev/"`); empty for a route
    /// served by its own handler (it matched whole).
    pub fn remainder(&self) -> &str {
        match &self.prefix {
            Some(prefix) => self.head.route.strip_prefix(&**prefix).unwrap_or(""),
            None => "",
        }
    }

    /// Kind, priority, headers, stream id.
    pub fn head(&self) -> &MessageHead {
        &self.head
    }

    /// Every header, in order.
    pub fn headers(&self) -> &[Header] {
        &self.head.headers
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header_value(&self.head.headers, name)
    }

    /// The link the request arrived on (its answer goes back on it).
    pub fn link(&self) -> &LinkRef {
        &self.link
    }

    /// The link's id.
    pub fn link_id(&self) -> LinkId {
        self.link.id()
    }

    /// Shared application state registered with `EndpointBuilder::state`.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.services.state::<T>()
    }

    /// The endpoint's services: state, cache, timers, events, the endpoint.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Runs the extractor `T` (what a handler's argument of type `T` gets): a
    /// handler actor parses its request as a function handler does,
    /// `let Json(order) = ctx.extract::<Json<Order>>().await?`.
    pub async fn extract<T: FromRequest>(&mut self) -> Result<T, HandlerError> {
        T::from_request(self).await
    }

    /// The body, if no extractor took it yet.
    pub fn body(&self) -> Option<&Body> {
        self.body.as_ref()
    }

    /// Takes the body (extractors of the body call this once).
    pub fn take_body(&mut self) -> Option<Body> {
        self.body.take()
    }

    /// Puts a body (back), e.g. a middleware that decrypted it.
    pub fn set_body(&mut self, body: Body) {
        self.body = Some(body);
    }

    /// The whole request, taking the body (empty if already taken).
    pub fn into_request(mut self) -> Request {
        let body = self.body.take().unwrap_or(Body::Bytes(bytes::Bytes::new()));
        Request {
            link: self.link,
            head: self.head,
            body,
        }
    }

    pub(crate) fn parts(&self) -> (LinkRef, MessageHead) {
        (self.link.clone(), self.head.clone())
    }
}
