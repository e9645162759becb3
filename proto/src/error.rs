//! Typed errors of the protocol core, one enum per layer.
//!
//! | enum | raised by | whose fault |
//! |---|---|---|
//! | [`DecodeError`] | frame and varint decoding | the peer (or line noise) |
//! | [`FramingError`] | the serial and stream framings | the peer or the line |
//! | [`ProtocolError`] | the link state machine, scheduler and reassembly | the peer, unless it says caller |
//! | [`ErrorCode`] | travels on the wire in CANCEL, GOAWAY and error responses | says what, not who |
//!
//! Nothing a peer sends makes the core panic: every such path returns one of these.

use core::fmt;

/// A frame's bytes do not follow the wire format (ARCHITECTURE.md, "Frames").
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame ended inside a field.
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A varint longer than 10 bytes or above `u64::MAX`.
    VarintOverflow,
    /// A varint with a redundant trailing zero group (encodings are minimal).
    VarintNotMinimal,
    /// The type nibble names no frame kind of this version.
    UnknownFrameType(u8),
    /// Flag or reserved bits set that this version does not define.
    ReservedBits {
        /// The frame kind.
        frame: &'static str,
        /// The offending bits.
        bits: u8,
    },
    /// A feature bit this build does not implement (e.g. the authenticated mode).
    Unsupported {
        /// What was asked for.
        feature: &'static str,
    },
    /// A text field is not UTF-8.
    InvalidUtf8 {
        /// The field.
        field: &'static str,
    },
    /// A field's length is above what this version allows.
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its declared length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A list has more entries than this version allows (HELLO parameters, OPEN
    /// headers).
    TooManyEntries {
        /// The list.
        field: &'static str,
        /// Its declared (or counted) number of entries.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A field holds a value outside its range.
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value read.
        value: u64,
    },
    /// Bytes left over after a frame that carries no payload.
    TrailingBytes {
        /// The frame kind.
        frame: &'static str,
        /// How many bytes were left.
        len: usize,
    },
    /// HELLO without the `NC` magic: not a netcore peer.
    BadMagic,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { field } => write!(f, "frame truncated inside `{field}`"),
            DecodeError::VarintOverflow => f.write_str("varint overflows u64"),
            DecodeError::VarintNotMinimal => f.write_str("varint is not minimally encoded"),
            DecodeError::UnknownFrameType(t) => write!(f, "unknown frame type {t:#x}"),
            DecodeError::ReservedBits { frame, bits } => {
                write!(f, "{frame} frame has undefined bits {bits:#04x} set")
            }
            DecodeError::Unsupported { feature } => write!(f, "unsupported feature: {feature}"),
            DecodeError::InvalidUtf8 { field } => write!(f, "`{field}` is not UTF-8"),
            DecodeError::FieldTooLong { field, len, max } => {
                write!(f, "`{field}` is {len} bytes, limit {max}")
            }
            DecodeError::TooManyEntries { field, count, max } => {
                write!(f, "`{field}` has {count} entries, limit {max}")
            }
            DecodeError::InvalidValue { field, value } => {
                write!(f, "`{field}` has invalid value {value}")
            }
            DecodeError::TrailingBytes { frame, len } => {
                write!(f, "{len} unexpected bytes after {frame} frame")
            }
            DecodeError::BadMagic => f.write_str("HELLO lacks the netcore magic"),
        }
    }
}

/// A framing could not produce a frame (see [`crate::framing`]).
///
/// On the serial (COBS) framing every variant is recoverable: the decoder has already
/// dropped the bad frame and resumes at the next delimiter, so the link stays up. On
/// the stream framing the only variants raised, [`FramingError::Oversize`] and
/// [`FramingError::Length`], are fatal: there is no resynchronization point, the
/// decoder returns the same error from then on, and the link must close.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// CRC-32C mismatch: the frame was damaged on the line (serial framing).
    Crc {
        /// Checksum carried by the frame.
        expected: u32,
        /// Checksum computed over what arrived.
        actual: u32,
    },
    /// COBS code bytes point past the end of the frame: damaged or not COBS (serial
    /// framing).
    Cobs,
    /// A frame with no bytes besides its checksum, or fewer (serial framing; frames
    /// are never empty).
    Runt {
        /// Decoded bytes received.
        len: usize,
    },
    /// A frame above the configured maximum length (both framings; fatal on the stream
    /// framing).
    Oversize {
        /// Its length, or the bytes seen so far when still growing.
        len: u64,
        /// The configured limit.
        max: u64,
    },
    /// A length prefix that is not a valid varint (stream framing, fatal).
    Length(DecodeError),
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::Crc { expected, actual } => {
                write!(
                    f,
                    "CRC-32C mismatch: frame says {expected:#010x}, computed {actual:#010x}"
                )
            }
            FramingError::Cobs => f.write_str("invalid COBS encoding"),
            FramingError::Runt { len } => write!(f, "runt frame of {len} bytes"),
            FramingError::Oversize { len, max } => {
                write!(f, "frame of {len} bytes exceeds the {max}-byte limit")
            }
            FramingError::Length(e) => write!(f, "bad length prefix: {e}"),
        }
    }
}

/// The peer broke a rule of the protocol's state, or a configured limit was hit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame could not be decoded.
    Decode(DecodeError),
    /// The framing failed fatally (stream framing only).
    Framing(FramingError),
    /// The peer speaks a protocol version this build cannot.
    Version {
        /// The peer's version.
        peer: u64,
        /// Ours.
        ours: u64,
    },
    /// A frame other than HELLO before the handshake completed.
    NoHandshake,
    /// A frame that is valid but not allowed in the link's current state.
    UnexpectedFrame {
        /// The frame kind.
        frame: &'static str,
        /// Why it is not allowed now.
        reason: &'static str,
    },
    /// The peer opened a stream with an id from our half of the id space, or reused one.
    BadStreamId {
        /// The id.
        id: u64,
    },
    /// A message larger than `max_message_bytes`.
    MessageTooLarge {
        /// Stream id.
        id: u64,
        /// Declared or reached size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// More concurrent inbound streams than `max_inbound_streams`.
    TooManyStreams {
        /// The limit.
        max: usize,
    },
    /// Buffered inbound bytes would exceed `max_buffered_bytes`.
    BufferFull {
        /// Stream whose data did not fit.
        id: u64,
        /// The limit.
        max: u64,
    },
    /// The peer sent more than the credit we granted.
    FlowControl {
        /// Stream id, 0 for the link window.
        id: u64,
        /// Bytes sent beyond the credit.
        excess: u64,
    },
    /// The body did not match the total length announced in OPEN.
    LengthMismatch {
        /// Stream id.
        id: u64,
        /// Announced total.
        declared: u64,
        /// Received.
        received: u64,
    },
    /// A local body sink (temp file, handler stream) failed: this side's fault, not
    /// the peer's. The stream is refused with `code`.
    Sink {
        /// Stream id.
        id: u64,
        /// The wire code the sink chose for the peer.
        code: ErrorCode,
        /// What failed.
        reason: &'static str,
    },
    /// The peer stopped answering: unanswered keepalive PINGs, or a reliable-mode
    /// frame sent the maximum number of times without an acknowledgement.
    Unresponsive {
        /// Which mechanism gave up.
        what: &'static str,
    },
    /// The peer made this side queue more control frames than it holds for one
    /// link (CANCELs, or answers to its frames) without reading them: the link
    /// fails rather than buffer without bound.
    Backlog {
        /// Which queue overflowed.
        what: &'static str,
        /// Its cap.
        max: usize,
    },
    /// An inbound stream made no progress (no body bytes, no end) within the
    /// stall timeout: it is canceled with `Timeout` and what it held is freed.
    Stalled {
        /// Stream id.
        id: u64,
    },
    /// A new stream on a link that is closing (either side sent GOAWAY): the
    /// caller's message did not leave, and never will on this link.
    GoingAway,
    /// The caller asked for something the state does not allow (caller's fault).
    InvalidState {
        /// What was wrong.
        reason: &'static str,
    },
    /// The authenticated mode refused the peer or one of its frames.
    Secure(SecureError),
}

/// Why the authenticated mode refused a peer, a handshake or a frame.
///
/// On the serial framing, frame-level faults (`Tampered`, `Replayed`, `TooOld`,
/// `Malformed`) drop the one frame and are counted; on the stream framing, and for
/// every handshake fault, they fail the link.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecureError {
    /// The handshake did not authenticate: the two sides hold different keys (peer).
    WrongKey,
    /// The initiator named a key id the responder does not know (peer).
    UnknownKey,
    /// A side configured for the authenticated mode got a plain HELLO: the peer is
    /// not authenticated, or someone tried a downgrade (peer).
    NotAuthenticated,
    /// The peer started the authenticated handshake, but this side is not
    /// configured for it (caller's configuration, or a downgrade attempt).
    NotConfigured,
    /// A frame failed its authentication tag: altered on the way, or forged (peer).
    Tampered,
    /// A frame counter seen before: a replayed frame (peer).
    Replayed,
    /// A frame counter older than the replay window (peer).
    TooOld,
    /// A session resume without a valid proof of the session's keys (peer).
    ResumeRefused,
    /// The peer refused the handshake with a GOAWAY of this code (typically our
    /// key was wrong or unknown to it).
    Rejected(ErrorCode),
    /// A handshake frame in a state that does not expect one (peer).
    Unexpected {
        /// What arrived when.
        what: &'static str,
    },
    /// A handshake or sealed frame too short or otherwise undecodable (peer).
    Malformed {
        /// Which part.
        what: &'static str,
    },
    /// The key material or the cipher refused to work (caller: a bad key or id).
    Crypto {
        /// What failed.
        what: &'static str,
    },
}

impl fmt::Display for SecureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecureError::WrongKey => {
                f.write_str("handshake failed: the peer holds a different key")
            }
            SecureError::UnknownKey => f.write_str("handshake failed: unknown key id"),
            SecureError::NotAuthenticated => {
                f.write_str("plain HELLO on a link that requires authentication")
            }
            SecureError::NotConfigured => {
                f.write_str("authenticated handshake on a link not configured for it")
            }
            SecureError::Tampered => f.write_str("frame failed authentication"),
            SecureError::Replayed => f.write_str("replayed frame"),
            SecureError::TooOld => f.write_str("frame older than the replay window"),
            SecureError::ResumeRefused => {
                f.write_str("session resume refused: no valid proof of the session's keys")
            }
            SecureError::Rejected(code) => write!(f, "the peer refused the handshake ({code})"),
            SecureError::Unexpected { what } => write!(f, "unexpected handshake frame: {what}"),
            SecureError::Malformed { what } => write!(f, "malformed {what}"),
            SecureError::Crypto { what } => write!(f, "cipher failure: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SecureError {}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Decode(e) => write!(f, "decode: {e}"),
            ProtocolError::Framing(e) => write!(f, "framing: {e}"),
            ProtocolError::Version { peer, ours } => {
                write!(f, "peer speaks protocol version {peer}, this build {ours}")
            }
            ProtocolError::NoHandshake => f.write_str("frame before HELLO"),
            ProtocolError::Unresponsive { what } => {
                write!(f, "the peer stopped answering ({what})")
            }
            ProtocolError::UnexpectedFrame { frame, reason } => {
                write!(f, "unexpected {frame} frame: {reason}")
            }
            ProtocolError::BadStreamId { id } => write!(f, "invalid stream id {id}"),
            ProtocolError::MessageTooLarge { id, size, max } => {
                write!(f, "stream {id}: message of {size} bytes exceeds {max}")
            }
            ProtocolError::TooManyStreams { max } => {
                write!(f, "more than {max} concurrent inbound streams")
            }
            ProtocolError::BufferFull { id, max } => {
                write!(
                    f,
                    "stream {id}: inbound buffer limit of {max} bytes reached"
                )
            }
            ProtocolError::FlowControl { id, excess } => {
                write!(f, "stream {id}: peer exceeded its credit by {excess} bytes")
            }
            ProtocolError::LengthMismatch {
                id,
                declared,
                received,
            } => write!(f, "stream {id}: announced {declared} bytes, got {received}"),
            ProtocolError::Sink { id, reason, .. } => {
                write!(f, "stream {id}: body sink failed: {reason}")
            }
            ProtocolError::Backlog { what, max } => {
                write!(
                    f,
                    "more than {max} {what} queued for a peer that does not read"
                )
            }
            ProtocolError::Stalled { id } => {
                write!(f, "stream {id}: no progress within the stall timeout")
            }
            ProtocolError::GoingAway => f.write_str("the link is going away: no new streams"),
            ProtocolError::InvalidState { reason } => write!(f, "invalid call: {reason}"),
            ProtocolError::Secure(e) => write!(f, "authenticated mode: {e}"),
        }
    }
}

impl From<DecodeError> for ProtocolError {
    fn from(e: DecodeError) -> Self {
        ProtocolError::Decode(e)
    }
}

impl From<SecureError> for ProtocolError {
    fn from(e: SecureError) -> Self {
        ProtocolError::Secure(e)
    }
}

impl From<FramingError> for ProtocolError {
    fn from(e: FramingError) -> Self {
        ProtocolError::Framing(e)
    }
}

impl ProtocolError {
    /// The wire code that tells the peer about this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::MessageTooLarge { .. } => ErrorCode::TooLarge,
            ProtocolError::TooManyStreams { .. } | ProtocolError::BufferFull { .. } => {
                ErrorCode::Refused
            }
            ProtocolError::FlowControl { .. } | ProtocolError::Backlog { .. } => {
                ErrorCode::FlowControl
            }
            ProtocolError::Stalled { .. } => ErrorCode::Timeout,
            ProtocolError::Version { .. } => ErrorCode::Version,
            ProtocolError::GoingAway => ErrorCode::GoingAway,
            ProtocolError::InvalidState { .. } => ErrorCode::Internal,
            ProtocolError::Unresponsive { .. } => ErrorCode::Timeout,
            ProtocolError::Sink { code, .. } => *code,
            _ => ErrorCode::Protocol,
        }
    }
}

/// Why a stream or link ended, as carried on the wire (CANCEL, GOAWAY, error responses).
///
/// Unknown codes from a newer peer decode as [`ErrorCode::Other`] instead of failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not an error (GOAWAY on a clean shutdown).
    NoError,
    /// The sender gave up on the stream (user cancellation).
    Canceled,
    /// The receiver will not take the stream (limits, shutting down).
    Refused,
    /// The message exceeds the receiver's size limit.
    TooLarge,
    /// No handler for the route.
    NotFound,
    /// The request could not be understood (undecodable body, bad arguments).
    BadRequest,
    /// The handler failed or panicked.
    HandlerFailed,
    /// The handler did not answer in time.
    Timeout,
    /// The peer sent beyond its credit.
    FlowControl,
    /// The peer broke the protocol.
    Protocol,
    /// The peer's version is not supported.
    Version,
    /// The receiver is shutting down.
    GoingAway,
    /// The peer lost the session this stream belonged to.
    PeerReset,
    /// An internal failure of the sender.
    Internal,
    /// A code this build does not know.
    Other(u64),
}

impl ErrorCode {
    /// The wire value.
    pub const fn to_wire(self) -> u64 {
        match self {
            ErrorCode::NoError => 0,
            ErrorCode::Canceled => 1,
            ErrorCode::Refused => 2,
            ErrorCode::TooLarge => 3,
            ErrorCode::NotFound => 4,
            ErrorCode::BadRequest => 5,
            ErrorCode::HandlerFailed => 6,
            ErrorCode::Timeout => 7,
            ErrorCode::FlowControl => 8,
            ErrorCode::Protocol => 9,
            ErrorCode::Version => 10,
            ErrorCode::GoingAway => 11,
            ErrorCode::PeerReset => 12,
            ErrorCode::Internal => 13,
            ErrorCode::Other(v) => v,
        }
    }

    /// From the wire value; unknown values are kept as [`ErrorCode::Other`].
    pub const fn from_wire(v: u64) -> ErrorCode {
        match v {
            0 => ErrorCode::NoError,
            1 => ErrorCode::Canceled,
            2 => ErrorCode::Refused,
            3 => ErrorCode::TooLarge,
            4 => ErrorCode::NotFound,
            5 => ErrorCode::BadRequest,
            6 => ErrorCode::HandlerFailed,
            7 => ErrorCode::Timeout,
            8 => ErrorCode::FlowControl,
            9 => ErrorCode::Protocol,
            10 => ErrorCode::Version,
            11 => ErrorCode::GoingAway,
            12 => ErrorCode::PeerReset,
            13 => ErrorCode::Internal,
            other => ErrorCode::Other(other),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Other(v) => write!(f, "error code {v}"),
            known => fmt::Debug::fmt(known, f),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}
#[cfg(feature = "std")]
impl std::error::Error for FramingError {}
#[cfg(feature = "std")]
impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip() {
        for v in 0..32 {
            let code = ErrorCode::from_wire(v);
            assert_eq!(code.to_wire(), v);
        }
    }
}
