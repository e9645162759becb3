//! Errors that reach application code: on the calling side ([`CallError`]), why
//! a link went down ([`DownReason`]), and from handlers ([`HandlerError`]).
//!
//! [`CallError`] and [`DownReason`] keep what caused them (the [`io::Error`], the
//! [`ProtocolError`], the down reason) and hand it out through
//! [`std::error::Error::source`]; their `Display` names the cause too, so a plain
//! `{error}` is enough to log.

use crate::ids::LinkId;
use netcore_proto::{ErrorCode, ProtocolError};
use std::error::Error;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

/// Why a call, a one-way message or a transfer failed, as the caller sees it.
///
/// Two errors are equal when their variants and contents are; [`io::Error`]s,
/// which are not `PartialEq`, compare by kind and message.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CallError {
    /// The peer answered with an error response (`code`, and its explanation).
    Remote {
        /// The kind of failure (not found, bad request, handler failed, ...).
        code: ErrorCode,
        /// The peer's explanation (the error response's body as text).
        message: String,
    },
    /// No answer within the call's timeout; the request was canceled on the wire.
    Timeout(Duration),
    /// The call was canceled (by this side, or by the peer with this code).
    Canceled(ErrorCode),
    /// The link failed or closed before the answer arrived (or there is no link).
    LinkDown(DownReason),
    /// The link reconnected to a peer that had lost its session (it restarted):
    /// the request was lost with it and may be sent again.
    PeerReset,
    /// The protocol refused the message before it left (a route or headers too
    /// long, the link not connected).
    Rejected(ProtocolError),
    /// The peer answered, and this side refused the answer on arrival (larger
    /// than `max_message_bytes`, beyond the inbound limits, its spool failed);
    /// the peer was told with a CANCEL carrying the error's code.
    AnswerRefused(ProtocolError),
    /// A local I/O failure: reading the file to send (missing, unreadable, or
    /// shrinking while it is sent), a channel body yielding more or fewer bytes
    /// than it announced, connecting or accepting a transport.
    Io(Arc<io::Error>),
    /// A body could not be encoded (a request's `Json` or `MsgPack` body) or
    /// decoded ([`Response::json`](crate::messages::Response::json) and its
    /// siblings) in `format`; nothing was sent (encoding), or the answer arrived
    /// but is not what the caller expected (decoding).
    Codec {
        /// The format: `"JSON"`, `"MessagePack"`, `"UTF-8 text"`.
        format: &'static str,
        /// Encoding (true) or decoding (false).
        encoding: bool,
        /// The codec's error.
        source: Arc<dyn Error + Send + Sync>,
    },
}

impl CallError {
    /// A body that could not be encoded in `format`.
    pub fn encoding(format: &'static str, source: impl Error + Send + Sync + 'static) -> Self {
        CallError::Codec {
            format,
            encoding: true,
            source: Arc::new(source),
        }
    }

    /// A body that could not be decoded as `format`.
    pub fn decoding(format: &'static str, source: impl Error + Send + Sync + 'static) -> Self {
        CallError::Codec {
            format,
            encoding: false,
            source: Arc::new(source),
        }
    }

    /// The wire code that best describes the failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            CallError::Remote { code, .. } => *code,
            CallError::Timeout(_) => ErrorCode::Timeout,
            CallError::Canceled(code) => *code,
            CallError::LinkDown(_) => ErrorCode::GoingAway,
            CallError::PeerReset => ErrorCode::PeerReset,
            CallError::Rejected(_) => ErrorCode::Refused,
            CallError::AnswerRefused(error) => error.code(),
            CallError::Io(_) => ErrorCode::Internal,
            CallError::Codec { .. } => ErrorCode::Internal,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Remote { code, message } => write!(f, "peer answered {code}: {message}"),
            CallError::Timeout(after) => write!(f, "no answer within {after:?}"),
            CallError::Canceled(code) => write!(f, "canceled ({code})"),
            CallError::LinkDown(why) => write!(f, "link down: {why}"),
            CallError::PeerReset => f.write_str("the peer restarted and lost the request"),
            CallError::Rejected(why) => write!(f, "message rejected: {why}"),
            CallError::AnswerRefused(why) => write!(f, "answer refused here: {why}"),
            CallError::Io(error) => write!(f, "i/o error: {error}"),
            CallError::Codec {
                format,
                encoding,
                source,
            } => {
                let what = if *encoding { "encoding" } else { "decoding" };
                write!(f, "{what} the body as {format}: {source}")
            }
        }
    }
}

impl Error for CallError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            CallError::LinkDown(why) => Some(why),
            CallError::Rejected(error) | CallError::AnswerRefused(error) => Some(error),
            CallError::Io(error) => Some(&**error),
            CallError::Codec { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

impl PartialEq for CallError {
    fn eq(&self, other: &Self) -> bool {
        use CallError::*;
        match (self, other) {
            (
                Remote { code, message },
                Remote {
                    code: other_code,
                    message: other_message,
                },
            ) => code == other_code && message == other_message,
            (Timeout(a), Timeout(b)) => a == b,
            (Canceled(a), Canceled(b)) => a == b,
            (LinkDown(a), LinkDown(b)) => a == b,
            (PeerReset, PeerReset) => true,
            (Rejected(a), Rejected(b)) => a == b,
            (AnswerRefused(a), AnswerRefused(b)) => a == b,
            (Io(a), Io(b)) => same_io(a, b),
            (
                Codec {
                    format,
                    encoding,
                    source,
                },
                Codec {
                    format: other_format,
                    encoding: other_encoding,
                    source: other_source,
                },
            ) => {
                format == other_format
                    && encoding == other_encoding
                    && source.to_string() == other_source.to_string()
            }
            _ => false,
        }
    }
}

impl Eq for CallError {}

/// Whether two shared I/O errors are the same one, or of the same kind with the
/// same message.
fn same_io(a: &Arc<io::Error>, b: &Arc<io::Error>) -> bool {
    Arc::ptr_eq(a, b) || (a.kind() == b.kind() && a.to_string() == b.to_string())
}

/// A message the link closing (GOAWAY sent or received) kept from leaving fails
/// as one the peer refused while going away: `Canceled(GoingAway)`, whichever side
/// noticed first. Any other refusal before the message left is `Rejected`.
impl From<ProtocolError> for CallError {
    fn from(error: ProtocolError) -> Self {
        match error {
            ProtocolError::GoingAway => CallError::Canceled(ErrorCode::GoingAway),
            error => CallError::Rejected(error),
        }
    }
}

/// A local I/O failure: [`CallError::Io`].
impl From<io::Error> for CallError {
    fn from(error: io::Error) -> Self {
        CallError::Io(Arc::new(error))
    }
}

/// A call a handler made failed: the handler fails with the same code, so `?`
/// forwards a peer's answer as is. A remote error keeps its code and message; a
/// timeout is `Timeout`; a cancel keeps its code; a link down is `GoingAway`; the
/// rest take [`CallError::code`], with the error's text as the message.
impl From<CallError> for HandlerError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Remote { code, message } => HandlerError { code, message },
            error => HandlerError::new(error.code(), error.to_string()),
        }
    }
}

/// Why a link went down (`LinkState::Down`, `Link::closed`, `Event::LinkDown`,
/// [`CallError::LinkDown`]).
///
/// Two reasons are equal when their variants and contents are; [`io::Error`]s,
/// which are not `PartialEq`, compare by kind and message.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DownReason {
    /// Closed on this side, for the reason given (`Link::close`).
    Closed(String),
    /// Detached from its endpoint (`Endpoint::detach`).
    Detached,
    /// Its endpoint stopped (`Endpoint::stop`).
    EndpointStopped,
    /// The peer closed the transport (end of stream) after telling us it was going
    /// away (GOAWAY, with this code: `NoError` when it stopped, the cause when its
    /// side of the link failed).
    PeerWentAway(ErrorCode),
    /// The transport ended (end of stream) without a word from the peer.
    EndOfStream,
    /// Reading from or writing to the transport failed.
    Transport(Arc<io::Error>),
    /// The peer stopped answering: unanswered keepalive PINGs, or a reliable-mode
    /// frame sent the maximum number of times without an acknowledgement.
    Unresponsive {
        /// Which mechanism gave up.
        what: &'static str,
    },
    /// The peer broke the protocol, or a limit fatal to the link was hit.
    Protocol(ProtocolError),
    /// The transport broke on the accepting side and the peer did not reconnect
    /// within the resume window (`EndpointBuilder::tcp_resume`).
    ResumeWindowElapsed(Duration),
    /// The peer did not complete its handshake (HELLO) within this time
    /// (`EndpointBuilder::handshake_timeout`): a silent connection is dropped
    /// instead of holding the link, or the accept, open.
    HandshakeTimedOut(Duration),
    /// The transport broke and the link is reconnecting (or waiting for its peer
    /// to): only in `Event::LinkDown`, followed by `Event::LinkUp` once the
    /// session resumed.
    Reconnecting,
    /// The link lost its peer and did not get it back within its
    /// [`ReconnectPolicy::give_up`](crate::ReconnectPolicy::give_up) time.
    GaveUp {
        /// How long it tried.
        after: Duration,
        /// How the peer was lost (the transport broke, the peer fell silent).
        cause: Box<DownReason>,
    },
    /// The link's actor stopped without going down first (its arbiter or the
    /// actix system stopped).
    ActorStopped,
    /// The endpoint has no such link up (`Endpoint::call_on` with this id), or no
    /// link at all (`Endpoint::default_link`, `None`).
    NotAttached(Option<LinkId>),
}

impl DownReason {
    /// The reason a session failure is: [`DownReason::Unresponsive`] for a peer
    /// that stopped answering, [`DownReason::Protocol`] for any other.
    pub fn from_protocol(error: ProtocolError) -> DownReason {
        match error {
            ProtocolError::Unresponsive { what } => DownReason::Unresponsive { what },
            error => DownReason::Protocol(error),
        }
    }
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::Closed(why) => write!(f, "closed: {why}"),
            DownReason::Detached => f.write_str("detached"),
            DownReason::EndpointStopped => f.write_str("endpoint stopped"),
            DownReason::PeerWentAway(code) => write!(f, "the peer went away ({code})"),
            DownReason::EndOfStream => f.write_str("the peer closed the link"),
            DownReason::Transport(error) => write!(f, "transport failed: {error}"),
            DownReason::Unresponsive { what } => {
                write!(f, "the peer stopped answering ({what})")
            }
            DownReason::Protocol(error) => write!(f, "protocol error: {error}"),
            DownReason::ResumeWindowElapsed(window) => write!(
                f,
                "the peer did not reconnect within the resume window ({window:?})"
            ),
            DownReason::HandshakeTimedOut(after) => {
                write!(
                    f,
                    "the peer did not complete its handshake within {after:?}"
                )
            }
            DownReason::Reconnecting => f.write_str("transport broke; reconnecting"),
            DownReason::GaveUp { after, cause } => {
                write!(f, "gave up getting the peer back after {after:?} ({cause})")
            }
            DownReason::ActorStopped => f.write_str("link actor stopped"),
            DownReason::NotAttached(Some(id)) => write!(f, "{id} is not attached"),
            DownReason::NotAttached(None) => f.write_str("no link attached"),
        }
    }
}

impl PartialEq for DownReason {
    fn eq(&self, other: &Self) -> bool {
        use DownReason::*;
        match (self, other) {
            (Closed(a), Closed(b)) => a == b,
            (Detached, Detached)
            | (EndpointStopped, EndpointStopped)
            | (EndOfStream, EndOfStream)
            | (Reconnecting, Reconnecting)
            | (ActorStopped, ActorStopped) => true,
            (PeerWentAway(a), PeerWentAway(b)) => a == b,
            (Transport(a), Transport(b)) => same_io(a, b),
            (Unresponsive { what: a }, Unresponsive { what: b }) => a == b,
            (Protocol(a), Protocol(b)) => a == b,
            (ResumeWindowElapsed(a), ResumeWindowElapsed(b)) => a == b,
            (HandshakeTimedOut(a), HandshakeTimedOut(b)) => a == b,
            (
                GaveUp { after, cause },
                GaveUp {
                    after: after_b,
                    cause: cause_b,
                },
            ) => after == after_b && cause == cause_b,
            (NotAttached(a), NotAttached(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for DownReason {}

impl Error for DownReason {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            DownReason::Transport(error) => Some(&**error),
            DownReason::Protocol(error) => Some(error),
            _ => None,
        }
    }
}

/// A handler's failure, sent to the caller as an error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerError {
    /// The kind of failure the caller sees.
    pub code: ErrorCode,
    /// The explanation the caller sees.
    pub message: String,
}

impl HandlerError {
    /// A failure with a code and an explanation.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> HandlerError {
        HandlerError {
            code,
            message: message.into(),
        }
    }

    /// The request could not be understood.
    pub fn bad_request(message: impl Into<String>) -> HandlerError {
        HandlerError::new(ErrorCode::BadRequest, message)
    }

    /// The handler failed.
    pub fn failed(message: impl Into<String>) -> HandlerError {
        HandlerError::new(ErrorCode::HandlerFailed, message)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl Error for HandlerError {}

/// An I/O failure inside a handler (reading a body stream or a spooled file,
/// writing somewhere) is the handler failing: `HandlerFailed`, with the error's
/// text, so `?` works on `io::Result` in handlers.
impl From<io::Error> for HandlerError {
    fn from(error: io::Error) -> Self {
        HandlerError::failed(error.to_string())
    }
}

/// A JSON body that does not parse (`serde_json::from_slice(&body)?` in a
/// handler) is the request's fault: `BadRequest`; a JSON I/O failure is the
/// handler failing.
impl From<serde_json::Error> for HandlerError {
    fn from(error: serde_json::Error) -> Self {
        match error.classify() {
            serde_json::error::Category::Io => HandlerError::failed(error.to_string()),
            _ => HandlerError::bad_request(format!("invalid JSON: {error}")),
        }
    }
}

/// A MessagePack body that does not decode is the request's fault: `BadRequest`.
impl From<rmp_serde::decode::Error> for HandlerError {
    fn from(error: rmp_serde::decode::Error) -> Self {
        HandlerError::bad_request(format!("invalid MessagePack: {error}"))
    }
}

/// A value that does not encode as MessagePack is the handler failing.
impl From<rmp_serde::encode::Error> for HandlerError {
    fn from(error: rmp_serde::encode::Error) -> Self {
        HandlerError::failed(format!("encoding MessagePack: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_hand_out_their_cause_as_source_and_name_it() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused by 10.0.0.1");
        let down = DownReason::Transport(Arc::new(refused));
        let error = CallError::LinkDown(down.clone());
        assert!(error.to_string().contains("refused by 10.0.0.1"), "{error}");
        let source = error.source().expect("the down reason");
        assert_eq!(source.downcast_ref::<DownReason>(), Some(&down));
        let io = source.source().expect("the io::Error");
        let io = io.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);

        let rejected = CallError::from(ProtocolError::NoHandshake);
        assert_eq!(rejected, CallError::Rejected(ProtocolError::NoHandshake));
        let source = rejected.source().expect("the protocol error");
        assert_eq!(
            source.downcast_ref::<ProtocolError>(),
            Some(&ProtocolError::NoHandshake)
        );
        assert!(CallError::PeerReset.source().is_none());
        assert!(DownReason::EndOfStream.source().is_none());
    }

    #[test]
    fn going_away_refusals_are_cancels_and_unresponsive_peers_are_named() {
        assert_eq!(
            CallError::from(ProtocolError::GoingAway),
            CallError::Canceled(ErrorCode::GoingAway)
        );
        let what = "keepalive PINGs unanswered";
        assert_eq!(
            DownReason::from_protocol(ProtocolError::Unresponsive { what }),
            DownReason::Unresponsive { what }
        );
        assert_eq!(
            DownReason::from_protocol(ProtocolError::NoHandshake),
            DownReason::Protocol(ProtocolError::NoHandshake)
        );
    }

    #[test]
    fn call_errors_become_handler_errors_keeping_the_code() {
        let remote = CallError::Remote {
            code: ErrorCode::NotFound,
            message: "no route \"x\"".into(),
        };
        assert_eq!(
            HandlerError::from(remote),
            HandlerError::new(ErrorCode::NotFound, "no route \"x\"")
        );
        let timeout = HandlerError::from(CallError::Timeout(Duration::from_secs(1)));
        assert_eq!(timeout.code, ErrorCode::Timeout);
        let canceled = HandlerError::from(CallError::Canceled(ErrorCode::Refused));
        assert_eq!(canceled.code, ErrorCode::Refused);
        let down = HandlerError::from(CallError::LinkDown(DownReason::Detached));
        assert_eq!(down.code, ErrorCode::GoingAway);
        assert!(down.message.contains("detached"), "{down}");
    }

    #[test]
    fn io_errors_compare_by_kind_and_message() {
        let error = |kind, text: &str| CallError::from(io::Error::new(kind, text.to_owned()));
        let eof = io::ErrorKind::UnexpectedEof;
        assert_eq!(error(eof, "short"), error(eof, "short"));
        assert_ne!(error(eof, "short"), error(eof, "long"));
        assert_ne!(error(eof, "short"), error(io::ErrorKind::Other, "short"));
        assert_eq!(error(eof, "short").code(), ErrorCode::Internal);
    }
}
