//! Forwarding: [`Link::forward`] sends a request that arrived on one link on
//! another, as it came (route, priority, headers, body), and a [`Response`]
//! answers a request as it came back.
//!
//! ```no_run
//! use netcore::{Endpoint, HandlerError, LinkId, Remainder, Request, Response};
//!
//! /// `dev/<rest>` goes to the device on `DEVICE` as `<rest>`.
//! async fn to_device(
//!     endpoint: Endpoint,
//!     Remainder(rest): Remainder,
//!     request: Request,
//! ) -> Result<Response, HandlerError> {
//!     # const DEVICE: LinkId = LinkId(1);
//!     Ok(endpoint.try_link(DEVICE)?.forward(request).route(rest).await?)
//! }
//! ```
//!
//! A one-way message goes on as one with [`Link::forward_one_way`].
//!
//! The forwarded call keeps the inbound request's priority and headers; its
//! timeout is the endpoint's call timeout (timeouts do not travel on the wire),
//! see [`CallBuilder::timeout`]. When the inbound request is canceled (its
//! caller gave up or timed out), its handler is dropped, and with it the
//! forwarded call, which is canceled on the wire in turn.

use crate::link::{CallBuilder, Link};
use netcore_actors::{Body, CallError, Payload, Reply, Request, Response};
use netcore_proto::link::Message;

/// Chunks of a spooled or streamed body handed on, at most this long.
const FORWARD_CHUNK: usize = 16 * 1024;

impl Link {
    /// A call carrying `request` (one that arrived on another link) to this
    /// link's peer: same route (change it with [`CallBuilder::route`]),
    /// priority, headers and body, with this endpoint's call timeout. A spooled
    /// or streamed body is streamed on as it is read. `.await` it for the answer;
    /// dropping it (the inbound request was canceled) cancels it on the wire.
    pub fn forward(&self, request: Request) -> CallBuilder {
        let Request { head, body, .. } = request;
        self.request(head.route, body_payload(body))
            .priority(head.priority)
            .headers(head.headers)
    }
}

impl Link {
    /// Passes on `request`, a one-way message that arrived on another link, as
    /// a one-way message to this link's peer: same route (set
    /// `request.head.route` first to change it), priority, headers and body, a
    /// spooled or streamed body streamed on as it is read. Returns once it is
    /// queued, waiting for room in the link's one-way queue as [`Link::send`]
    /// does; nothing says whether the peer took it.
    pub async fn forward_one_way(&self, request: Request) -> Result<(), CallError> {
        let Request { head, body, .. } = request;
        let message = Message {
            route: head.route,
            priority: head.priority,
            headers: head.headers,
            ..Message::default()
        };
        self.send_message(message, body_payload(body))
            .await
            .map(drop)
    }
}

/// An inbound body as an outbound one: bytes as they are; a spooled file or a
/// stream through a channel fed as the link takes it (the spooled file lives
/// until it was read).
fn body_payload(body: Body) -> Payload {
    let total = match &body {
        Body::Bytes(bytes) => return Payload::Bytes(bytes.clone()),
        Body::File(file) => Some(file.len()),
        Body::Stream(stream) => stream.total_len(),
    };
    let (sender, chunks) = tokio::sync::mpsc::channel(4);
    actix_rt::spawn(async move {
        let mut body = body.into_chunks(FORWARD_CHUNK);
        loop {
            match body.next().await {
                Ok(Some(chunk)) => {
                    if sender.send(chunk).await.is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    // The channel closes short of the announced length, which
                    // fails the forwarded call.
                    tracing::warn!(%error, "reading a forwarded body failed");
                    return;
                }
            }
        }
    });
    Payload::Stream { chunks, total }
}

/// An answer received from a peer answers a request as it came: body, headers
/// and priority (a forwarded call's answer handed back to the caller).
impl crate::app::respond::IntoReply for Response {
    fn into_reply(self) -> netcore_actors::HandlerResult {
        Ok(Reply {
            priority: Some(self.head.priority),
            headers: self.head.headers,
            payload: Some(body_payload(self.body)),
        })
    }
}
