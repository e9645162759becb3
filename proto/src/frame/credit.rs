//! CREDIT: the receiver grants more bytes of flow-control window
//! (ARCHITECTURE.md, "Flow control").
//!
//! `stream:varint | increment:varint`; stream 0 is the link-wide window.

use super::reader::Reader;
use crate::error::DecodeError;
use crate::ids::StreamId;
use crate::varint;
use bytes::BufMut;

/// A window increment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credit {
    /// The stream whose window grows; `StreamId(0)` for the link window.
    pub stream: StreamId,
    /// Bytes added to the window.
    pub increment: u64,
}

impl Credit {
    /// The pseudo stream id of the link-wide window.
    pub const LINK: StreamId = StreamId(0);

    pub(crate) fn encode_head(&self, dst: &mut impl BufMut) {
        varint::put(dst, self.stream.0);
        varint::put(dst, self.increment);
    }

    pub(crate) fn head_len(&self) -> usize {
        varint::encoded_len(self.stream.0) + varint::encoded_len(self.increment)
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let stream = StreamId(r.varint("credit.stream")?);
        let increment = r.varint("credit.increment")?;
        r.finish("CREDIT")?;
        Ok(Credit { stream, increment })
    }
}

impl From<Credit> for super::Frame {
    fn from(f: Credit) -> Self {
        super::Frame::Credit(f)
    }
}
