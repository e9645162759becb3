//! Messages a `LinkActor` handles: from the application (through [`LinkHandle`]),
//! the router (answers), its scheduler, and the stream actors and body streams of
//! its inbound messages; and [`SpoolTarget`], the link as those see it.
//!
//! [`LinkHandle`]: crate::messages::LinkHandle

use crate::body::{Body, BodyStream, Payload, Release, SpooledFile};
use crate::error::{CallError, DownReason};
use crate::transport::BoxedTransport;
use actix::prelude::*;
use bytes::Bytes;
use netcore_proto::link::Message;
use netcore_proto::reassembly::MessageHead;
use netcore_proto::{ErrorCode, StreamId};
use serde::de::DeserializeOwned;
use tokio::sync::{oneshot, watch};

/// An answer to a call.
#[derive(Debug)]
pub struct Response {
    /// Kind, headers and stream of the answer.
    pub head: MessageHead,
    /// The answer's body.
    pub body: Body,
}

impl Response {
    /// The answer's body as bytes, wherever it arrived (in memory, spooled to a
    /// file, or streamed).
    pub async fn bytes(self) -> Result<Bytes, CallError> {
        Ok(self.body.into_bytes().await?)
    }

    /// The answer's body as UTF-8 text.
    pub async fn text(self) -> Result<String, CallError> {
        let bytes = self.bytes().await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| CallError::decoding("UTF-8 text", e))
    }

    /// The answer's body decoded from JSON.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T, CallError> {
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| CallError::decoding("JSON", e))
    }

    /// The answer's body decoded from MessagePack.
    pub async fn msgpack<T: DeserializeOwned>(self) -> Result<T, CallError> {
        let bytes = self.bytes().await?;
        rmp_serde::from_slice(&bytes).map_err(|e| CallError::decoding("MessagePack", e))
    }
}

/// Whether a link is usable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// The first handshake is in progress.
    Connecting,
    /// The peer was lost after the link was up (its transport broke, or it fell
    /// silent) and the link is getting it back: reopening the transport,
    /// probing the peer, or waiting for it to reconnect. Calls may be made;
    /// they wait (with their own timeouts), and everything in flight resumes
    /// with the session.
    Reconnecting,
    /// Messages flow.
    Up,
    /// Going away (the peer sent GOAWAY, with the reason it will go down
    /// with): answers to calls already made still arrive; new calls fail with
    /// `CallError::Canceled(GoingAway)`.
    Closing(DownReason),
    /// Closed or failed, with the reason.
    Down(DownReason),
}

/// Sends a request; the answer (or the failure) arrives on `reply`. Answered
/// with the request's stream id, to cancel it.
#[derive(Message)]
#[rtype(result = "Result<StreamId, CallError>")]
pub(crate) struct Call {
    /// Route, priority, headers; for a file payload, `body: None` and the length.
    pub message: Message,
    /// A file to stream as the body, if any.
    pub payload: Option<Payload>,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<Response, CallError>>,
    /// Hand a multi-frame answer over as a [`Body::Stream`] as soon as it opens,
    /// instead of reassembling or spooling it first.
    pub stream_answer: bool,
}

/// Sends a one-way message; answered with its stream id.
#[derive(Message)]
#[rtype(result = "Result<StreamId, CallError>")]
pub(crate) struct SendOneWay {
    /// Route, priority, headers, body.
    pub message: Message,
    /// A file to stream as the body, if any.
    pub payload: Option<Payload>,
}

/// Answers an inbound request.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Respond {
    /// The request's stream.
    pub stream: StreamId,
    /// `Ok` for a response, `Err(code)` for an error response.
    pub outcome: Result<(), ErrorCode>,
    /// Headers, priority and body.
    pub message: Message,
    /// A file to stream as the body, if any.
    pub payload: Option<Payload>,
}

/// Abandons a stream either way and tells the peer (a canceled or timed-out call,
/// a failed spool, a canceled transfer).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct CancelStream {
    /// The stream.
    pub stream: StreamId,
    /// The code the peer gets.
    pub code: ErrorCode,
}

/// A stream actor finished spooling a message.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Spooled {
    /// The stream.
    pub stream: StreamId,
    /// The complete body.
    pub file: SpooledFile,
}

/// A streamed inbound body opened (see [`crate::body::stream`]): the message goes
/// to the router now, its body arriving as the handler reads it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct StreamOpened {
    /// The stream.
    pub stream: StreamId,
    /// Its body.
    pub body: BodyStream,
}

/// The scheduler actor's transmitter says the link must fail: its reliable mode
/// gave up on a frame (the peer is gone), or the peer provoked more control frames
/// than may queue without reading them.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct TransmitterFailed(pub(crate) netcore_proto::ProtocolError);

/// Subscribes to the link's state.
#[derive(Message)]
#[rtype(result = "watch::Receiver<LinkState>")]
pub(crate) struct WatchState;

/// Starts an orderly shutdown: GOAWAY to the peer; in-flight messages go on.
/// Answered with the number of calls and served requests still in flight.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct GoAway {
    /// Why.
    pub code: ErrorCode,
}

/// Calls and served requests in flight.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct InFlight;

/// Asks for a snapshot of the link's counters and state: the link actor adds its
/// session's and its own to its scheduler's.
#[derive(Message)]
#[rtype(result = "crate::stats::LinkStats")]
pub(crate) struct Stats;

/// Closes the link now, for this reason: pending calls fail with
/// [`CallError::LinkDown`].
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown(pub DownReason);

/// A new transport for this link: opened by its connector, or a connection the
/// endpoint accepted from the same peer session (its HELLO already in the stream).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Reconnected(
    pub BoxedTransport,
    /// The keys of the new transport's handshake, when the endpoint already ran it.
    pub Option<netcore_proto::secure::Established>,
);

/// Asks for the link's [`PeerSessionState`].
#[derive(Message)]
#[rtype(result = "PeerSessionState")]
pub(crate) struct PeerSession;

/// The answer to [`PeerSession`]: whose session the link carries, and whether it
/// waits for that peer to come back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerSessionState {
    /// The peer's session id, once its HELLO arrived (reliable mode only).
    pub id: Option<u64>,
    /// The transport broke and the link waits for a new one (reconnecting, or
    /// within the resume window).
    pub reconnecting: bool,
    /// Authenticated mode: the key id the session's first handshake authenticated.
    pub key_id: Option<netcore_proto::secure::KeyId>,
    /// Authenticated mode: the session's resume secret, which a resuming peer must
    /// prove it holds (`netcore_proto::secure::resume_proof`).
    pub resume_secret: Option<[u8; 32]>,
}

/// The link as the stream actors and body streams of its inbound messages see it.
#[derive(Clone)]
pub(crate) struct SpoolTarget {
    /// Consumed bytes: their credit goes back to the peer.
    pub release: Recipient<Release>,
    /// A spooled message is complete.
    pub spooled: Recipient<Spooled>,
    /// A streamed body opened.
    pub opened: Recipient<StreamOpened>,
    /// Spooling failed: cancel the stream.
    pub cancel: Recipient<CancelStream>,
}

impl SpoolTarget {
    /// The target of the actor at `addr`.
    pub(crate) fn of<A>(addr: &Addr<A>) -> SpoolTarget
    where
        A: Actor<Context = Context<A>>
            + Handler<Release>
            + Handler<Spooled>
            + Handler<StreamOpened>
            + Handler<CancelStream>,
    {
        SpoolTarget {
            release: addr.clone().recipient(),
            spooled: addr.clone().recipient(),
            opened: addr.clone().recipient(),
            cancel: addr.clone().recipient(),
        }
    }
}
