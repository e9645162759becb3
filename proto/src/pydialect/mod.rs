//! The Python Netcore 0.1.3 dialect: the wire format of `pip install netcore==0.1.3`,
//! so a netcore link can talk to Python endpoints unchanged (ARCHITECTURE.md, "Python
//! Netcore 0.1.3 dialect").
//!
//! - [`json`]: JSON read as liberally as Python's `json.loads`, written byte for byte
//!   as its `json.dumps`.
//! - [`frame`]: [`PyFrame`] (head, data, cancel), the stream decoder [`PyDecoder`] and
//!   the encoder [`encode`](frame::encode).
//! - [`session`]: [`PySession`], one link at the message level: requests and responses
//!   out as Python chunks them, frames in as complete messages under limits.
//!
//! Nothing here shares code with the native dialect: the format has no integrity check,
//! priorities, retransmission, keepalive, error replies or version negotiation.

pub mod bridge;
pub mod frame;
pub mod json;
pub mod session;

use core::fmt;

pub use bridge::{BridgeError, PyBridge, PyBridgeConfig, PyBridgeStats};
pub use frame::{MissionId, PyDecoder, PyFrame};
pub use session::{PyInbound, PyMessage, PySession, PySessionLimits};

/// Limits on what a Python-dialect peer may make this side hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyLimits {
    /// Largest ext accepted. Python writes at most 41 bytes and reads at most 2048.
    pub max_ext_len: usize,
    /// Largest meta accepted (a head's JSON or a data chunk). Python writes 4096-byte
    /// chunks and head metas of about 100 bytes plus the route and headers.
    pub max_meta_len: usize,
    /// Deepest JSON nesting accepted in ext, head meta and info.
    pub max_json_depth: usize,
}

impl Default for PyLimits {
    fn default() -> PyLimits {
        PyLimits {
            max_ext_len: frame::PY_MAX_EXT_LEN,
            // Room for a head whose info carries many headers, and for chunks of
            // senders that chunk larger than Python; a frame is held whole.
            max_meta_len: 64 * 1024,
            max_json_depth: 32,
        }
    }
}

/// What went wrong in the Python dialect.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PyError {
    /// Fatal: a frame length is negative. The stream is lost (no resync point).
    NegativeLength {
        /// `"ext"` or `"meta"`.
        field: &'static str,
        /// The length read.
        len: i32,
    },
    /// Fatal: a frame length is above the limit. The stream is lost.
    LengthOverLimit {
        /// `"ext"` or `"meta"`.
        field: &'static str,
        /// The length read.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Fatal: an earlier fatal error lost the stream.
    StreamLost,
    /// One frame: a JSON part does not parse. The frame is dropped; the stream is in sync.
    InvalidJson {
        /// The part (`"ext"`, `"head meta"`).
        field: &'static str,
        /// Where and why.
        error: json::JsonError,
    },
    /// One frame: a required field is missing. Dropped; in sync.
    MissingField {
        /// The field.
        field: &'static str,
    },
    /// One frame: a field has the wrong JSON kind or value. Dropped; in sync.
    BadField {
        /// The field.
        field: &'static str,
        /// What it held instead.
        reason: &'static str,
    },
    /// One frame: a `type` other than mission, data or cancel (at most 32 characters of
    /// it). Dropped; in sync.
    UnknownFrameType(alloc::string::String),
    /// Encoding refused: a Python receiver would lose the stream on this frame.
    Unsendable {
        /// The part that is too long.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The most Python reads.
        max: usize,
    },
    /// Sending refused: a 0-byte body (a Python receiver never completes it).
    EmptyBody,
    /// Sending refused: this many requests already await a response.
    TooManyPending {
        /// The limit.
        max: usize,
    },
    /// One mission: its announced body is above the limit; its data is dropped.
    BodyTooLarge {
        /// The announced length.
        length: u64,
        /// The limit.
        max: u64,
    },
    /// One mission: accepting it would hold more body bytes than the limit; its data
    /// is dropped.
    BufferFull {
        /// The announced length.
        length: u64,
        /// Bytes already committed to bodies being received.
        buffered: u64,
        /// The limit.
        max: u64,
    },
    /// One mission: this many are being received already; its data will be unknown.
    TooManyMissions {
        /// The limit.
        max: usize,
    },
    /// One frame: data for a mission with no head (after the stash for early data
    /// filled up or timed out).
    UnknownMission {
        /// The mission id.
        mission: alloc::string::String,
    },
    /// One mission: more data than its head announced; the mission is dropped.
    DataBeyondLength {
        /// The mission id.
        mission: alloc::string::String,
        /// The announced length.
        length: u64,
        /// Bytes received with this frame.
        received: u64,
    },
    /// One message: it claims to be a response but answers no pending request of
    /// this side (a late reply, or one for another peer); dropped, never routed.
    UnsolicitedResponse {
        /// Its `message_id` (at most 32 characters).
        message_id: alloc::string::String,
    },
    /// One mission: no frame for it within the idle timeout; dropped.
    MissionExpired {
        /// The mission id.
        mission: alloc::string::String,
        /// Bytes received.
        received: u64,
        /// The announced length.
        length: u64,
    },
}

impl PyError {
    /// Whether the byte stream is lost: the link must close.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            PyError::NegativeLength { .. } | PyError::LengthOverLimit { .. } | PyError::StreamLost
        )
    }
}

impl fmt::Display for PyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyError::NegativeLength { field, len } => {
                write!(f, "negative {field} length {len}: stream lost")
            }
            PyError::LengthOverLimit { field, len, max } => {
                write!(f, "{field} length {len} above the limit {max}: stream lost")
            }
            PyError::StreamLost => f.write_str("stream lost after an earlier error"),
            PyError::InvalidJson { field, error } => write!(f, "{field} is not JSON: {error}"),
            PyError::MissingField { field } => write!(f, "missing field {field}"),
            PyError::BadField { field, reason } => write!(f, "bad field {field}: {reason}"),
            PyError::UnknownFrameType(kind) => write!(f, "unknown frame type {kind:?}"),
            PyError::Unsendable { what, len, max } => {
                write!(
                    f,
                    "{what} of {len} bytes: a Python peer reads at most {max}"
                )
            }
            PyError::EmptyBody => f.write_str("a 0-byte body: a Python peer never completes it"),
            PyError::TooManyPending { max } => write!(f, "{max} requests already pending"),
            PyError::BodyTooLarge { length, max } => {
                write!(f, "body of {length} bytes above the limit {max}")
            }
            PyError::BufferFull {
                length,
                buffered,
                max,
            } => write!(
                f,
                "body of {length} bytes refused: {buffered} of {max} bytes already buffered"
            ),
            PyError::TooManyMissions { max } => write!(f, "{max} missions already in progress"),
            PyError::UnknownMission { mission } => {
                write!(f, "data for unknown mission {mission:?}")
            }
            PyError::DataBeyondLength {
                mission,
                length,
                received,
            } => write!(
                f,
                "mission {mission:?}: {received} bytes received, {length} announced"
            ),
            PyError::UnsolicitedResponse { message_id } => {
                write!(f, "response {message_id:?} answers no pending request")
            }
            PyError::MissionExpired {
                mission,
                received,
                length,
            } => write!(
                f,
                "mission {mission:?} idle with {received} of {length} bytes"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PyError {}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bridge;
#[cfg(test)]
mod tests_session;
