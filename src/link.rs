//! [`Link`]: a handle on one running link of an [`Endpoint`](crate::Endpoint), to
//! call the peer, send it one-way messages and files, and watch the link.

use crate::app::request_body::IntoPayload;
use bytes::Bytes;
use futures_util::future::Either;
use netcore_actors::event_bus::{Event, EventBus};
use netcore_actors::{
    CallError, DownReason, LinkHandle, LinkId, LinkState, LinkStats, Payload, Progress, Response,
};
use netcore_proto::link::Message;
use netcore_proto::{ErrorCode, Priority, StreamId};
use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// A running link. Cheap to clone; calls on a link that went down fail with
/// [`CallError::LinkDown`], carrying why it went down (see [`Link::closed`]).
#[derive(Clone)]
pub struct Link {
    link: LinkHandle,
    state: watch::Receiver<LinkState>,
    call_timeout: Duration,
    events: Option<EventBus>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("id", &self.link.id()).finish()
    }
}

impl Link {
    pub(crate) fn new(
        link: LinkHandle,
        state: watch::Receiver<LinkState>,
        call_timeout: Duration,
        events: Option<EventBus>,
    ) -> Link {
        Link {
            link,
            state,
            call_timeout,
            events,
        }
    }

    /// A transfer of `stream`, publishing its progress on the event bus.
    async fn transfer(&self, stream: StreamId, total: Option<u64>) -> Result<Transfer, CallError> {
        let progress = self
            .link
            .watch_progress(stream, total)
            .await
            .map_err(|e| self.reason(e))?;
        if let Some(bus) = self.events.clone() {
            let (mut watch, link) = (progress.clone(), self.link.id());
            actix_rt::spawn(async move {
                // The first value too: a small transfer may be over already.
                loop {
                    let Progress { sent, total } = *watch.borrow_and_update();
                    bus.publish(Event::TransferProgress {
                        link,
                        stream,
                        done: sent,
                        total,
                    });
                    if watch.changed().await.is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Transfer {
            link: self.clone(),
            stream,
            progress,
        })
    }

    /// The link's id.
    pub fn id(&self) -> LinkId {
        self.link.id()
    }

    /// The peer's identity on an authenticated link: the key id its handshake
    /// proved (`None` on a plain link, or before the handshake).
    pub fn peer(&self) -> Option<netcore_proto::secure::KeyId> {
        self.link.link_ref().peer()
    }

    /// The peer's session id (links with the reliable mode: serial links, TCP with
    /// `tcp_resume`), `None` without one or once the link is down.
    pub async fn peer_session_id(&self) -> Option<u64> {
        self.link.peer_session().await.and_then(|state| state.id)
    }

    /// The link's runtime handle (for the endpoint).
    pub(crate) fn handle(&self) -> &LinkHandle {
        &self.link
    }

    /// Calls made on this link awaiting their answer plus requests from the peer
    /// being served (0 once the link is down).
    pub async fn in_flight(&self) -> usize {
        self.link.in_flight().await
    }

    /// A snapshot of the link's counters and state: bytes, frames and payload
    /// each way, integrity drops, retransmissions, round trip, queued bytes by
    /// priority, open streams, reconnects, uptime (see [`LinkStats`]). Costs two
    /// mailbox hops (the link actor and its scheduler), no allocation; `None`
    /// once the link is down.
    pub async fn stats(&self) -> Option<LinkStats> {
        self.link.stats().await
    }

    /// Closes the link now: pending calls fail with [`CallError::LinkDown`]
    /// carrying `reason`, and the link goes down with it. Resolves once the
    /// link took it (see [`Link::closed`] to wait until it is down).
    pub async fn close(&self, reason: impl Into<String>) {
        self.link.close(DownReason::Closed(reason.into())).await
    }

    /// Up, connecting or down (with the reason).
    pub fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// True while messages flow.
    pub fn is_up(&self) -> bool {
        matches!(*self.state.borrow(), LinkState::Up)
    }

    /// The error of a call the link's actor could not take: the link went down
    /// (with its reason), or its actor stopped.
    fn down(&self) -> CallError {
        match &*self.state.borrow() {
            LinkState::Down(why) => CallError::LinkDown(why.clone()),
            _ => CallError::LinkDown(DownReason::ActorStopped),
        }
    }

    /// A failure of the link's handle, with the reason the link went down in
    /// place of "its actor stopped".
    fn reason(&self, error: CallError) -> CallError {
        match error {
            CallError::LinkDown(DownReason::ActorStopped) => self.down(),
            error => error,
        }
    }

    /// Waits until the link is down; returns why.
    pub async fn closed(&self) -> DownReason {
        let mut state = self.state.clone();
        loop {
            if let LinkState::Down(why) = &*state.borrow_and_update() {
                return why.clone();
            }
            if state.changed().await.is_err() {
                return DownReason::ActorStopped;
            }
        }
    }

    /// Calls `route` with `body` and the default timeout and priority.
    pub async fn call(
        &self,
        route: impl Into<String>,
        body: impl IntoPayload,
    ) -> Result<Response, CallError> {
        self.request(route, body).await
    }

    /// A call to configure (timeout, priority, headers) before awaiting it.
    /// Dropping the future before it completes cancels the call on the wire.
    ///
    /// The body is anything that converts into a [`Payload`] (bytes, text, a
    /// file), or a [`Json`](crate::Json) or [`MsgPack`](crate::MsgPack) value.
    pub fn request(&self, route: impl Into<String>, body: impl IntoPayload) -> CallBuilder {
        CallBuilder {
            link: self.clone(),
            message: Message {
                route: route.into(),
                ..Message::default()
            },
            payload: body.into_payload(),
            timeout: self.call_timeout,
            stream_answer: false,
        }
    }

    /// Uploads the file at `path` to `route` as a call: streamed from disk as
    /// the link takes it, at [`Priority::Bulk`], with its progress
    /// ([`PendingCall::transfer`]) and the peer's answer
    /// ([`PendingCall::response`]), so an upload the peer refuses, or sent to a
    /// route it does not serve, fails with the peer's error. The call's timeout
    /// starts once the file has left. ([`Link::send_file`] is the one-way
    /// sibling: done once handed to the wire, no answer.)
    pub fn upload(&self, route: impl Into<String>, path: impl Into<PathBuf>) -> CallBuilder {
        self.request(route, Payload::File(path.into()))
            .priority(Priority::Bulk)
    }

    /// Sends a one-way message; returns once it is queued. While the link's
    /// one-way queue is full ([`LinkOptions::one_way_queue`](crate::LinkOptions)
    /// bytes ahead of the wire) it waits for room, so a producer faster than the
    /// link is paced by it.
    pub async fn send(
        &self,
        route: impl Into<String>,
        body: impl IntoPayload,
    ) -> Result<(), CallError> {
        self.send_with(route, body, Priority::Normal)
            .await
            .map(drop)
    }

    /// Sends a one-way message with a priority; returns its stream once queued
    /// (waiting for room in the link's one-way queue, as [`Link::send`]).
    pub async fn send_with(
        &self,
        route: impl Into<String>,
        body: impl IntoPayload,
        priority: Priority,
    ) -> Result<StreamId, CallError> {
        let (stream, _) = self
            .send_one_way(route.into(), body.into_payload()?, priority)
            .await?;
        Ok(stream)
    }

    /// Queues a one-way message; returns its stream and the body length it
    /// announced (measured once, as the message was built).
    async fn send_one_way(
        &self,
        route: String,
        body: Payload,
        priority: Priority,
    ) -> Result<(StreamId, Option<u64>), CallError> {
        let message = Message {
            route,
            priority,
            ..Message::default()
        };
        self.send_message(message, body).await
    }

    /// Queues `message` (route, priority, headers) with `body` as a one-way
    /// message; returns its stream and the body length it announced.
    pub(crate) async fn send_message(
        &self,
        message: Message,
        body: Payload,
    ) -> Result<(StreamId, Option<u64>), CallError> {
        let (message, payload) = with_payload(message, body).await?;
        let announced = message.streamed_len;
        let stream = self
            .link
            .one_way(message, payload)
            .await
            .map_err(|e| self.reason(e))?;
        Ok((stream, announced))
    }

    /// Streams a file to `route` as a one-way bulk message, reading it from disk
    /// as the link takes it. The [`Transfer`] reports progress and can cancel it;
    /// its end means handed to the wire, not delivered: nothing says whether the
    /// peer took it. For an upload that confirms, use [`Link::upload`].
    pub async fn send_file(
        &self,
        route: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> Result<Transfer, CallError> {
        let (stream, total) = self
            .send_one_way(route.into(), Payload::File(path.into()), Priority::Bulk)
            .await?;
        self.transfer(stream, total).await
    }

    fn cancel(&self, stream: StreamId, code: ErrorCode) {
        self.link.cancel(stream, code);
    }
}

/// An outbound transfer in progress (clones watch the same transfer).
#[derive(Clone)]
pub struct Transfer {
    link: Link,
    stream: StreamId,
    progress: watch::Receiver<Progress>,
}

impl Transfer {
    /// The transfer's stream.
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// Bytes handed to the wire and the total, fit for a progress bar.
    pub fn progress(&self) -> Progress {
        *self.progress.borrow()
    }

    /// Waits for the next progress change; `None` once the transfer is over
    /// (completed or canceled).
    pub async fn changed(&mut self) -> Option<Progress> {
        self.progress.changed().await.ok()?;
        Some(*self.progress.borrow_and_update())
    }

    /// Waits until every byte was handed to the wire (or the transfer stopped).
    pub async fn finished(&mut self) -> Progress {
        while self.progress.changed().await.is_ok() {}
        *self.progress.borrow()
    }

    /// Stops the transfer: its chunks stop at once and the peer gets CANCEL.
    pub fn cancel(&self) {
        self.link.cancel(self.stream, ErrorCode::Canceled);
    }
}

/// A call being configured; `.await` it to send it and get the answer.
pub struct CallBuilder {
    link: Link,
    message: Message,
    /// The body, or why it could not be encoded (reported by `start`).
    payload: Result<Payload, CallError>,
    timeout: Duration,
    stream_answer: bool,
}

impl CallBuilder {
    /// The answer's body arrives as a [`Body::Stream`](crate::Body::Stream) as soon
    /// as the answer opens, chunk by chunk, instead of reassembled in memory or
    /// spooled to a file first (a download you process as it comes, with
    /// flow control: reading slowly slows the sender). An answer that fits in one
    /// frame, or an error answer, still arrives whole. The call's timeout covers
    /// the wait for the answer to open, not reading its body; dropping the stream
    /// before its end cancels the rest.
    pub fn stream_answer(mut self) -> Self {
        self.stream_answer = true;
        self
    }

    /// Fails the call with [`CallError::Timeout`] (and cancels it on the wire) if no
    /// answer arrived within `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The priority class of the request (the answer travels in the same class
    /// unless the handler says otherwise).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.message.priority = priority;
        self
    }

    /// Sends the request to `route` instead (e.g. a forwarded request's
    /// [`Remainder`](crate::Remainder)).
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.message.route = route.into();
        self
    }

    /// Adds headers, in order.
    pub fn headers(mut self, headers: impl IntoIterator<Item = (String, Bytes)>) -> Self {
        self.message.headers.extend(headers);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.message.headers.push((name.into(), value.into()));
        self
    }

    /// Sends the request now and returns the call in flight: its upload progress
    /// (for a file body) and its answer. Dropping it before the answer cancels the
    /// call on the wire.
    pub async fn start(self) -> Result<PendingCall, CallError> {
        let CallBuilder {
            link,
            message,
            payload,
            timeout,
            stream_answer,
        } = self;
        let (message, payload) = with_payload(message, payload?).await?;
        let total = message.streamed_len;
        let streams_file = payload.is_some();
        let (stream, answer) = link
            .link
            .request(message, payload, stream_answer)
            .await
            .map_err(|e| link.reason(e))?;
        // Built before anything else is awaited: dropped from here on, the
        // call is canceled on the wire.
        let mut pending = PendingCall {
            link,
            stream,
            answer: Some(answer),
            timeout,
            transfer: None,
        };
        if streams_file {
            pending.transfer = Some(pending.link.transfer(stream, total).await?);
        }
        Ok(pending)
    }

    async fn run(self) -> Result<Response, CallError> {
        self.start().await?.response().await
    }
}

/// A call in flight (see [`CallBuilder::start`]).
pub struct PendingCall {
    link: Link,
    stream: StreamId,
    answer: Option<oneshot::Receiver<Result<Response, CallError>>>,
    timeout: Duration,
    transfer: Option<Transfer>,
}

impl PendingCall {
    /// The request's stream.
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// Upload progress of a file body; `None` for in-memory bodies.
    pub fn transfer(&mut self) -> Option<&mut Transfer> {
        self.transfer.as_mut()
    }

    /// Waits for the answer (or the timeout). The timeout counts from now, or,
    /// for a file body still being sent, from when its last byte was handed to
    /// the wire: an upload takes as long as the link needs, and then the peer has
    /// the timeout to answer. An answer that comes before the body was all sent
    /// (the peer refused it, or has no such route) ends the wait at once.
    pub async fn response(mut self) -> Result<Response, CallError> {
        let Some(answer) = self.answer.as_mut() else {
            return Err(CallError::Canceled(ErrorCode::Canceled));
        };
        let mut early = None;
        if let Some(transfer) = self.transfer.as_mut() {
            let sent = std::pin::pin!(transfer.finished());
            if let Either::Left((answered, _)) =
                futures_util::future::select(&mut *answer, sent).await
            {
                early = Some(answered);
            }
        }
        // The receiver stays in `self` while waiting, so dropping this future
        // before the answer cancels the call (see `Drop`).
        let outcome = match early {
            Some(answered) => Ok(answered),
            None => tokio::time::timeout(self.timeout, answer).await,
        };
        self.answer = None;
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.link.down()),
            Err(_) => {
                self.link.cancel(self.stream, ErrorCode::Timeout);
                Err(CallError::Timeout(self.timeout))
            }
        }
    }
}

impl Drop for PendingCall {
    /// An unanswered call whose future is dropped is canceled on the wire.
    fn drop(&mut self) {
        if self.answer.is_some() {
            self.link.cancel(self.stream, ErrorCode::Canceled);
        }
    }
}

impl IntoFuture for CallBuilder {
    type Output = Result<Response, CallError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Puts `payload` into `message` (see [`Payload::into_message`]).
async fn with_payload(
    mut message: Message,
    payload: Payload,
) -> Result<(Message, Option<Payload>), CallError> {
    let payload = payload.into_message(&mut message).await?;
    Ok((message, payload))
}
