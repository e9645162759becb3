//! Errors that reach application code: on the calling side ([`CallError`]) and
//! from handlers ([`HandlerError`]), both carrying a wire [`ErrorCode`].

use netcore_proto::{ErrorCode, ProtocolError};
use std::fmt;
use std::time::Duration;

/// Why a call, a one-way message or a transfer failed, as the caller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// The link failed or closed before the answer arrived.
    LinkDown(String),
    /// The link reconnected to a peer that had lost its session (it restarted):
    /// the request was lost with it and may be sent again.
    PeerReset,
    /// The protocol rejected the message before it left (bad route, link not
    /// connected).
    Rejected(String),
    /// A local I/O failure: reading the file to send (missing, unreadable, or
    /// shrinking while it is sent), a channel body yielding more or fewer bytes
    /// than it announced, connecting a transport.
    Io(String),
}

impl CallError {
    /// The wire code that best describes the failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            CallError::Remote { code, .. } => *code,
            CallError::Timeout(_) => ErrorCode::Timeout,
            CallError::Canceled(code) => *code,
            CallError::LinkDown(_) => ErrorCode::GoingAway,
            CallError::PeerReset => ErrorCode::PeerReset,
            CallError::Rejected(_) => ErrorCode::Refused,
            CallError::Io(_) => ErrorCode::Internal,
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
            CallError::Io(why) => write!(f, "i/o error: {why}"),
        }
    }
}

impl std::error::Error for CallError {}

/// A message the link closing (GOAWAY sent or received) kept from leaving fails
/// as one the peer refused while going away: `Canceled(GoingAway)`, whichever side
/// noticed first. Any other refusal before the message left is `Rejected`.
impl From<ProtocolError> for CallError {
    fn from(error: ProtocolError) -> Self {
        match error {
            ProtocolError::GoingAway => CallError::Canceled(ErrorCode::GoingAway),
            error => CallError::Rejected(error.to_string()),
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

impl std::error::Error for HandlerError {}

/// An I/O failure inside a handler (reading a body stream or a spooled file,
/// writing somewhere) is the handler failing: `HandlerFailed`, with the error's
/// text, so `?` works on `io::Result` in handlers.
impl From<std::io::Error> for HandlerError {
    fn from(error: std::io::Error) -> Self {
        HandlerError::failed(error.to_string())
    }
}
