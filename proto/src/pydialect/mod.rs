//! The Python Netcore 0.1.3 dialect: the wire format of `pip install netcore==0.1.3`,
//! so a netcore link can talk to Python endpoints unchanged (ARCHITECTURE.md, "Python
//! Netcore 0.1.3 dialect").
//!
//! - [`json`]: JSON read as liberally as Python's `json.loads`, written byte for byte
//!   as its `json.dumps`.
//! - [`frame`]: [`PyFrame`] (head, data, cancel), the stream decoder [`PyDecoder`] and
//!   the encoder [`encode`](frame::encode).
//!
//! Nothing here shares code with the native dialect: the format has no integrity check,
//! priorities, retransmission, keepalive, error replies or version negotiation.

pub mod frame;
pub mod json;

use core::fmt;

pub use frame::{MissionId, PyDecoder, PyFrame};

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
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PyError {}

#[cfg(test)]
mod tests;
