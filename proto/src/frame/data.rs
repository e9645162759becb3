//! DATA: the next chunk of a message's body (ARCHITECTURE.md, "DATA").
//!
//! `stream:varint | payload…` — with the FIN flag the chunk is the message's last.

use super::reader::Reader;
use crate::error::DecodeError;
use crate::ids::StreamId;
use crate::varint;
use bytes::{BufMut, Bytes};

/// A body chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Data {
    /// The stream the chunk belongs to.
    pub stream: StreamId,
    /// The chunk.
    pub payload: Bytes,
    /// This chunk ends the message.
    pub fin: bool,
}

impl Data {
    pub(crate) fn encode_head(&self, dst: &mut impl BufMut) {
        varint::put(dst, self.stream.0);
    }

    pub(crate) fn head_len(&self) -> usize {
        varint::encoded_len(self.stream.0)
    }

    pub(crate) fn decode(r: &mut Reader, fin: bool) -> Result<Self, DecodeError> {
        let stream = StreamId(r.varint("data.stream")?);
        Ok(Data {
            stream,
            payload: r.rest(),
            fin,
        })
    }
}

impl From<Data> for super::Frame {
    fn from(f: Data) -> Self {
        super::Frame::Data(f)
    }
}
