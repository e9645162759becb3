//! A bounds-checked cursor over a received frame: every read names its field, so a
//! short or malformed frame becomes a precise [`DecodeError`] and never a panic.

use crate::error::DecodeError;
use crate::varint;
use alloc::string::String;
use bytes::Bytes;

/// Cursor over one frame's bytes. Slices it hands out share the frame's buffer.
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let byte = *self
            .buf
            .get(self.pos)
            .ok_or(DecodeError::Truncated { field })?;
        self.pos += 1;
        Ok(byte)
    }

    pub(crate) fn varint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        match varint::read(rest)? {
            Some((value, used)) => {
                self.pos += used;
                Ok(value)
            }
            None => Err(DecodeError::Truncated { field }),
        }
    }

    /// A varint that must fit `max` (inclusive), as a `usize` length.
    pub(crate) fn len(&mut self, field: &'static str, max: u64) -> Result<usize, DecodeError> {
        let len = self.varint(field)?;
        if len > max {
            return Err(DecodeError::FieldTooLong { field, len, max });
        }
        usize::try_from(len).map_err(|_| DecodeError::FieldTooLong { field, len, max })
    }

    /// A varint count of list entries that must not exceed `max`.
    pub(crate) fn count(&mut self, field: &'static str, max: u64) -> Result<usize, DecodeError> {
        let count = self.varint(field)?;
        if count > max {
            return Err(DecodeError::TooManyEntries { field, count, max });
        }
        usize::try_from(count).map_err(|_| DecodeError::TooManyEntries { field, count, max })
    }

    pub(crate) fn bytes(&mut self, len: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        if self.remaining() < len {
            return Err(DecodeError::Truncated { field });
        }
        let out = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(out)
    }

    /// A length-prefixed UTF-8 string of at most `max` bytes.
    pub(crate) fn text(&mut self, field: &'static str, max: u64) -> Result<String, DecodeError> {
        let len = self.len(field, max)?;
        let raw = self.bytes(len, field)?;
        core::str::from_utf8(&raw)
            .map(String::from)
            .map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    /// Everything left: the payload.
    pub(crate) fn rest(&mut self) -> Bytes {
        let out = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        out
    }

    /// Fails if bytes remain after a frame that carries no payload.
    pub(crate) fn finish(&self, frame: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            len => Err(DecodeError::TrailingBytes { frame, len }),
        }
    }
}
