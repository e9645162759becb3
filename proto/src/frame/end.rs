//! END: the message on this stream is complete (ARCHITECTURE.md, "END").
//!
//! `stream:varint`. Used when the last chunk was sent before the sender knew it was
//! the last (a streamed body); otherwise FIN on OPEN or DATA saves the frame.

use super::reader::Reader;
use crate::error::DecodeError;
use crate::ids::StreamId;
use crate::varint;
use bytes::BufMut;

/// End of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    /// The finished stream.
    pub stream: StreamId,
}

impl End {
    pub(crate) fn encode_head(&self, dst: &mut impl BufMut) {
        varint::put(dst, self.stream.0);
    }

    pub(crate) fn head_len(&self) -> usize {
        varint::encoded_len(self.stream.0)
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let stream = StreamId(r.varint("end.stream")?);
        r.finish("END")?;
        Ok(End { stream })
    }
}

impl From<End> for super::Frame {
    fn from(f: End) -> Self {
        super::Frame::End(f)
    }
}
