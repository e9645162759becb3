//! CANCEL: abandon a message exchange, from either side (ARCHITECTURE.md, "CANCEL").
//!
//! `stream:varint | code:varint`. From the opener it withdraws the request (the peer
//! drops it and sends no response); from the other side it refuses or aborts it (the
//! opener stops sending and fails the call with `code`).

use super::reader::Reader;
use crate::error::{DecodeError, ErrorCode};
use crate::ids::StreamId;
use crate::varint;
use bytes::BufMut;

/// Cancellation of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancel {
    /// The abandoned stream.
    pub stream: StreamId,
    /// Why.
    pub code: ErrorCode,
}

impl Cancel {
    pub(crate) fn encode_head(&self, dst: &mut impl BufMut) {
        varint::put(dst, self.stream.0);
        varint::put(dst, self.code.to_wire());
    }

    pub(crate) fn head_len(&self) -> usize {
        varint::encoded_len(self.stream.0) + varint::encoded_len(self.code.to_wire())
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let stream = StreamId(r.varint("cancel.stream")?);
        let code = ErrorCode::from_wire(r.varint("cancel.code")?);
        r.finish("CANCEL")?;
        Ok(Cancel { stream, code })
    }
}

impl From<Cancel> for super::Frame {
    fn from(f: Cancel) -> Self {
        super::Frame::Cancel(f)
    }
}
