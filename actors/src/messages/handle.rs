//! The handles of a running link: [`LinkRef`], what a handler sees of the link
//! its request came from (its id; cancel a stream), and [`LinkHandle`], what
//! the owner of the link gets when it starts (call, send, watch, drain, close,
//! resume). Neither holds an actor address, only the recipients of the messages
//! they send.

use crate::body::Payload;
use crate::error::{CallError, DownReason};
use crate::ids::LinkId;
use crate::messages::link::{
    Call, CancelStream, GoAway, InFlight, LinkState, PeerSession, PeerSessionState, Reconnected,
    Respond, Response, SendOneWay, Shutdown, Stats, WatchState,
};
use crate::messages::scheduler::{Flush, Progress, WatchProgress};
use crate::stats::LinkStats;
use crate::transport::BoxedTransport;
use actix::prelude::*;
use netcore_proto::link::Message;
use netcore_proto::{ErrorCode, StreamId};
use std::fmt;
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// What a [`LinkRef`] sends to its link's actors.
pub(crate) struct LinkInbox {
    pub call: Recipient<Call>,
    pub one_way: Recipient<SendOneWay>,
    pub respond: Recipient<Respond>,
    pub cancel: Recipient<CancelStream>,
    pub watch_state: Recipient<WatchState>,
    pub go_away: Recipient<GoAway>,
    pub in_flight: Recipient<InFlight>,
    pub stats: Recipient<Stats>,
    pub flush: Recipient<Flush>,
    pub shutdown: Recipient<Shutdown>,
    pub peer_session: Recipient<PeerSession>,
    pub reconnected: Recipient<Reconnected>,
    /// The link's scheduler.
    pub progress: Recipient<WatchProgress>,
    /// The peer the authenticated mode authenticated, once the handshake is done
    /// (set by the link actor; shared by every handle of the link).
    pub peer: Arc<std::sync::OnceLock<netcore_proto::secure::KeyId>>,
}

impl LinkInbox {
    /// The inbox of the link actor at `addr` and its scheduler's `progress`.
    pub(crate) fn of<A>(addr: &Addr<A>, progress: Recipient<WatchProgress>) -> LinkInbox
    where
        A: Actor<Context = Context<A>>
            + Handler<Call>
            + Handler<SendOneWay>
            + Handler<Respond>
            + Handler<CancelStream>
            + Handler<WatchState>
            + Handler<GoAway>
            + Handler<InFlight>
            + Handler<Stats>
            + Handler<Flush>
            + Handler<Shutdown>
            + Handler<PeerSession>
            + Handler<Reconnected>,
    {
        LinkInbox {
            call: addr.clone().recipient(),
            one_way: addr.clone().recipient(),
            respond: addr.clone().recipient(),
            cancel: addr.clone().recipient(),
            watch_state: addr.clone().recipient(),
            go_away: addr.clone().recipient(),
            in_flight: addr.clone().recipient(),
            stats: addr.clone().recipient(),
            flush: addr.clone().recipient(),
            shutdown: addr.clone().recipient(),
            peer_session: addr.clone().recipient(),
            reconnected: addr.clone().recipient(),
            progress,
            peer: Arc::default(),
        }
    }

    /// This inbox, sharing the peer identity cell `peer` with the link's other handles.
    pub(crate) fn sharing_peer(
        mut self,
        peer: Arc<std::sync::OnceLock<netcore_proto::secure::KeyId>>,
    ) -> LinkInbox {
        self.peer = peer;
        self
    }
}

/// The link a request arrived on, as its handler sees it: the link's id, and
/// canceling a stream (answers go back through the router). Cheap to clone.
#[derive(Clone)]
pub struct LinkRef {
    id: LinkId,
    inbox: Arc<LinkInbox>,
}

impl fmt::Debug for LinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkRef").field("id", &self.id).finish()
    }
}

/// The error of a message its link actor did not take (it stopped).
fn gone(_: MailboxError) -> CallError {
    CallError::LinkDown(DownReason::ActorStopped)
}

impl LinkRef {
    pub(crate) fn new(id: LinkId, inbox: LinkInbox) -> LinkRef {
        LinkRef {
            id,
            inbox: Arc::new(inbox),
        }
    }

    /// The link's id.
    pub fn id(&self) -> LinkId {
        self.id
    }

    /// The peer's identity: the key id its handshake authenticated (authenticated
    /// mode; `None` on a plain link or before the handshake).
    pub fn peer(&self) -> Option<netcore_proto::secure::KeyId> {
        self.inbox.peer.get().cloned()
    }

    /// Abandons `stream` either way and tells the peer with `code`.
    pub fn cancel(&self, stream: StreamId, code: ErrorCode) {
        self.inbox.cancel.do_send(CancelStream { stream, code });
    }

    /// Answers the inbound request on the stream of `respond`.
    pub(crate) fn respond(&self, respond: Respond) {
        self.inbox.respond.do_send(respond);
    }
}

/// A running link, for whoever started it (the endpoint): calls, one-way
/// messages, its state and progress, draining, closing and resuming. Cheap to
/// clone; once the link is down, requests fail with [`CallError::LinkDown`] and
/// the rest does nothing.
#[derive(Clone, Debug)]
pub struct LinkHandle {
    link: LinkRef,
}

impl LinkHandle {
    pub(crate) fn new(link: LinkRef) -> LinkHandle {
        LinkHandle { link }
    }

    /// The link's id.
    pub fn id(&self) -> LinkId {
        self.link.id
    }

    /// The link as its handlers see it.
    pub fn link_ref(&self) -> &LinkRef {
        &self.link
    }

    /// Abandons `stream` either way and tells the peer with `code`.
    pub fn cancel(&self, stream: StreamId, code: ErrorCode) {
        self.link.cancel(stream, code);
    }

    /// Sends a request (`message`, its body streamed from `payload` if given);
    /// returns its stream and where its answer arrives. With `stream_answer`, a
    /// multi-frame answer arrives as a `Body::Stream` as soon as it opens.
    pub async fn request(
        &self,
        message: Message,
        payload: Option<Payload>,
        stream_answer: bool,
    ) -> Result<(StreamId, oneshot::Receiver<Result<Response, CallError>>), CallError> {
        let (reply, answer) = oneshot::channel();
        let call = Call {
            message,
            payload,
            reply,
            stream_answer,
        };
        let stream = self.link.inbox.call.send(call).await.map_err(gone)??;
        Ok((stream, answer))
    }

    /// Sends a one-way message; returns its stream.
    pub async fn one_way(
        &self,
        message: Message,
        payload: Option<Payload>,
    ) -> Result<StreamId, CallError> {
        let one_way = SendOneWay { message, payload };
        self.link.inbox.one_way.send(one_way).await.map_err(gone)?
    }

    /// Subscribes to the link's state.
    pub async fn watch_state(&self) -> Result<watch::Receiver<LinkState>, CallError> {
        self.link
            .inbox
            .watch_state
            .send(WatchState)
            .await
            .map_err(gone)
    }

    /// Subscribes to the progress of the outbound `stream` (whose whole length
    /// is `total`, if known).
    pub async fn watch_progress(
        &self,
        stream: StreamId,
        total: Option<u64>,
    ) -> Result<watch::Receiver<Progress>, CallError> {
        let watch = WatchProgress { stream, total };
        self.link.inbox.progress.send(watch).await.map_err(gone)
    }

    /// Starts an orderly shutdown: GOAWAY to the peer, in-flight messages go on.
    /// Returns the calls and served requests still in flight (0 if it is down).
    pub async fn go_away(&self, code: ErrorCode) -> usize {
        self.link
            .inbox
            .go_away
            .send(GoAway { code })
            .await
            .unwrap_or(0)
    }

    /// Calls and served requests in flight (0 once the link is down).
    pub async fn in_flight(&self) -> usize {
        self.link.inbox.in_flight.send(InFlight).await.unwrap_or(0)
    }

    /// A snapshot of the link's counters and state (two mailbox hops: the link
    /// actor and its scheduler); `None` once the link is down.
    pub async fn stats(&self) -> Option<LinkStats> {
        self.link.inbox.stats.send(Stats).await.ok()
    }

    /// Resolves once what the link queued so far was written to its transport;
    /// the caller bounds the wait (a peer that does not read keeps it pending).
    pub async fn flush(&self) {
        let _ = self.link.inbox.flush.send(Flush).await;
    }

    /// Closes the link now: pending calls fail with [`CallError::LinkDown`]
    /// carrying `reason`. Resolves once the link took it.
    pub async fn close(&self, reason: DownReason) {
        let _ = self.link.inbox.shutdown.send(Shutdown(reason)).await;
    }

    /// The peer's session id, once known, and whether the link waits for the
    /// peer to come back (transport broken, within its resume window); `None`
    /// once the link is down.
    pub async fn peer_session(&self) -> Option<PeerSessionState> {
        self.link.inbox.peer_session.send(PeerSession).await.ok()
    }

    /// Hands the link a new transport from the same peer session (an accepted
    /// connection whose HELLO resumes this link's session).
    pub fn resume(&self, transport: BoxedTransport) {
        self.link
            .inbox
            .reconnected
            .do_send(Reconnected(transport, None));
    }

    /// [`resume`](Self::resume) with a connection whose handshake of the
    /// authenticated mode the endpoint already ran (`peek_secure_hello`): the
    /// link seals with `established`'s keys and checks the peer's resume proof.
    pub fn resume_secure(
        &self,
        transport: BoxedTransport,
        established: netcore_proto::secure::Established,
    ) {
        self.link
            .inbox
            .reconnected
            .do_send(Reconnected(transport, Some(established)));
    }
}

#[cfg(test)]
impl LinkRef {
    /// A handle on a link of stand-ins: what the test looks at (answers,
    /// cancellations) is recorded, the rest answered with defaults.
    pub(crate) fn stub(
        id: LinkId,
    ) -> (
        LinkRef,
        crate::testing::Seen<Respond>,
        crate::testing::Seen<CancelStream>,
    ) {
        use crate::testing::{ignore, stub};
        let (respond, answers) = stub(|_: &Respond| ());
        let (cancel, canceled) = stub(|_: &CancelStream| ());
        let down = || {
            Err(CallError::LinkDown(DownReason::Closed(
                "a stand-in link".into(),
            )))
        };
        let inbox = LinkInbox {
            call: stub(move |_: &Call| down()).0,
            one_way: stub(move |_: &SendOneWay| down()).0,
            respond,
            cancel,
            watch_state: stub(|_: &WatchState| watch::channel(LinkState::Up).1).0,
            go_away: ignore(),
            in_flight: ignore(),
            stats: stub(move |_: &Stats| crate::stats::LinkStats::stand_in(id)).0,
            flush: ignore(),
            shutdown: ignore(),
            peer_session: ignore(),
            reconnected: ignore(),
            peer: Arc::default(),
            progress: stub(|msg: &WatchProgress| {
                let total = msg.total;
                watch::channel(Progress { sent: 0, total }).1
            })
            .0,
        };
        (LinkRef::new(id, inbox), answers, canceled)
    }
}
