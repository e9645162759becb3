//! GOAWAY: the sender is closing the link (ARCHITECTURE.md, "GOAWAY").
//!
//! `last_stream:varint | code:varint | reason…` (UTF-8, at most 256 bytes). Streams the
//! peer opened with ids above `last_stream` were not processed and may be retried.

use super::reader::Reader;
use crate::error::{DecodeError, ErrorCode};
use crate::ids::StreamId;
use crate::varint;
use alloc::string::String;
use bytes::BufMut;

/// Longest GOAWAY reason, in bytes.
pub const MAX_REASON_LEN: usize = 256;

/// Orderly shutdown notice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoAway {
    /// Highest peer-opened stream id that was or will be processed.
    pub last_stream: StreamId,
    /// Why the link closes ([`ErrorCode::NoError`] for a clean stop).
    pub code: ErrorCode,
    /// Human-readable detail; truncated to [`MAX_REASON_LEN`] bytes when encoded.
    pub reason: String,
}

impl GoAway {
    pub(crate) fn reason_bytes(&self) -> &[u8] {
        let mut end = self.reason.len().min(MAX_REASON_LEN);
        while !self.reason.is_char_boundary(end) {
            end -= 1;
        }
        &self.reason.as_bytes()[..end]
    }

    pub(crate) fn encode_head(&self, dst: &mut impl BufMut) {
        varint::put(dst, self.last_stream.0);
        varint::put(dst, self.code.to_wire());
    }

    pub(crate) fn head_len(&self) -> usize {
        varint::encoded_len(self.last_stream.0) + varint::encoded_len(self.code.to_wire())
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let last_stream = StreamId(r.varint("goaway.last_stream")?);
        let code = ErrorCode::from_wire(r.varint("goaway.code")?);
        let raw = r.rest();
        if raw.len() > MAX_REASON_LEN {
            return Err(DecodeError::FieldTooLong {
                field: "goaway.reason",
                len: raw.len() as u64,
                max: MAX_REASON_LEN as u64,
            });
        }
        let reason = core::str::from_utf8(&raw)
            .map_err(|_| DecodeError::InvalidUtf8 {
                field: "goaway.reason",
            })?
            .into();
        Ok(GoAway {
            last_stream,
            code,
            reason,
        })
    }
}

impl From<GoAway> for super::Frame {
    fn from(f: GoAway) -> Self {
        super::Frame::GoAway(f)
    }
}
