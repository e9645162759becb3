//! OPEN: starts a message (ARCHITECTURE.md, "OPEN").
//!
//! ```text
//! stream:varint | meta:u8 | [route] | [code] | [total] | [headers] | payload…
//! meta bits: 0-1 kind, 2-3 priority, 4 has total, 5 has headers, 6 has route, 7 reserved
//! route   = len:varint utf8            (meta bit 6; requests and one-way messages)
//! code    = varint                     (present iff kind = error response)
//! total   = varint                     (meta bit 4; whole body length when known)
//! headers = count:varint (klen:varint key vlen:varint value)*   (meta bit 5)
//! ```
//!
//! With the FIN flag the payload is the whole body: a small message is one frame.

use super::reader::Reader;
use crate::error::{DecodeError, ErrorCode};
use crate::ids::{MessageKind, Priority, StreamId};
use crate::varint;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{BufMut, Bytes};

/// Longest route, in bytes.
pub const MAX_ROUTE_LEN: usize = 1024;
/// Most headers on one message.
pub const MAX_HEADERS: usize = 32;
/// Longest header name, in bytes.
pub const MAX_HEADER_NAME_LEN: usize = 256;
/// Longest header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 1024;

const HAS_TOTAL: u8 = 1 << 4;
const HAS_HEADERS: u8 = 1 << 5;
const HAS_ROUTE: u8 = 1 << 6;
const RESERVED: u8 = 1 << 7;

/// A message header: a name and an opaque value.
pub type Header = (String, Bytes);

/// The value of the first header in `headers` named `name`.
pub fn header_value<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_ref())
}

/// The first frame of a message, optionally carrying all of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Open {
    /// The exchange this message belongs to.
    pub stream: StreamId,
    /// Request, response, one-way or error response.
    pub kind: MessageKind,
    /// Scheduling class (responses usually inherit their request's).
    pub priority: Priority,
    /// Where the message goes; empty for answers.
    pub route: String,
    /// Why the request failed; `Some` exactly when `kind` is an error response.
    pub code: Option<ErrorCode>,
    /// Whole body length, when the sender knows it up front.
    pub total_len: Option<u64>,
    /// Application headers.
    pub headers: Vec<Header>,
    /// The first body bytes (possibly all of them).
    pub payload: Bytes,
    /// This frame also ends the message.
    pub fin: bool,
}

impl Open {
    /// A minimal OPEN: no headers, no total, empty payload, not FIN.
    pub fn new(stream: StreamId, kind: MessageKind, route: impl Into<String>) -> Open {
        Open {
            stream,
            kind,
            priority: Priority::Normal,
            route: route.into(),
            code: None,
            total_len: None,
            headers: Vec::new(),
            payload: Bytes::new(),
            fin: false,
        }
    }

    fn meta(&self) -> u8 {
        let mut meta = self.kind.to_bits() | (self.priority.to_bits() << 2);
        if self.total_len.is_some() {
            meta |= HAS_TOTAL;
        }
        if !self.headers.is_empty() {
            meta |= HAS_HEADERS;
        }
        if !self.route.is_empty() {
            meta |= HAS_ROUTE;
        }
        meta
    }

    fn code_wire(&self) -> Option<u64> {
        (self.kind == MessageKind::ErrorResponse)
            .then(|| self.code.unwrap_or(ErrorCode::Internal).to_wire())
    }

    pub(crate) fn encode_head(&self, dst: &mut impl BufMut) {
        varint::put(dst, self.stream.0);
        dst.put_u8(self.meta());
        if !self.route.is_empty() {
            varint::put(dst, self.route.len() as u64);
            dst.put_slice(self.route.as_bytes());
        }
        if let Some(code) = self.code_wire() {
            varint::put(dst, code);
        }
        if let Some(total) = self.total_len {
            varint::put(dst, total);
        }
        if !self.headers.is_empty() {
            varint::put(dst, self.headers.len() as u64);
            for (name, value) in &self.headers {
                varint::put(dst, name.len() as u64);
                dst.put_slice(name.as_bytes());
                varint::put(dst, value.len() as u64);
                dst.put_slice(value);
            }
        }
    }

    pub(crate) fn head_len(&self) -> usize {
        let mut len = varint::encoded_len(self.stream.0) + 1;
        if !self.route.is_empty() {
            len += varint::encoded_len(self.route.len() as u64) + self.route.len();
        }
        if let Some(code) = self.code_wire() {
            len += varint::encoded_len(code);
        }
        if let Some(total) = self.total_len {
            len += varint::encoded_len(total);
        }
        if !self.headers.is_empty() {
            len += varint::encoded_len(self.headers.len() as u64);
            for (name, value) in &self.headers {
                len += varint::encoded_len(name.len() as u64) + name.len();
                len += varint::encoded_len(value.len() as u64) + value.len();
            }
        }
        len
    }

    /// Checks the limits a decoder enforces, so a sender fails before the wire does.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let too_long = |field, len: usize, max: usize| DecodeError::FieldTooLong {
            field,
            len: len as u64,
            max: max as u64,
        };
        if self.route.len() > MAX_ROUTE_LEN {
            return Err(too_long("open.route", self.route.len(), MAX_ROUTE_LEN));
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(DecodeError::TooManyEntries {
                field: "open.headers",
                count: self.headers.len() as u64,
                max: MAX_HEADERS as u64,
            });
        }
        for (name, value) in &self.headers {
            if name.len() > MAX_HEADER_NAME_LEN {
                return Err(too_long(
                    "open.header.name",
                    name.len(),
                    MAX_HEADER_NAME_LEN,
                ));
            }
            if value.len() > MAX_HEADER_VALUE_LEN {
                return Err(too_long(
                    "open.header.value",
                    value.len(),
                    MAX_HEADER_VALUE_LEN,
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn decode(r: &mut Reader, fin: bool) -> Result<Self, DecodeError> {
        let stream = StreamId(r.varint("open.stream")?);
        let meta = r.u8("open.meta")?;
        if meta & RESERVED != 0 {
            return Err(DecodeError::ReservedBits {
                frame: "OPEN",
                bits: meta & RESERVED,
            });
        }
        let kind = MessageKind::from_bits(meta);
        let priority = Priority::from_bits(meta >> 2);
        let route = if meta & HAS_ROUTE != 0 {
            r.text("open.route", MAX_ROUTE_LEN as u64)?
        } else {
            String::new()
        };
        let code = if kind == MessageKind::ErrorResponse {
            Some(ErrorCode::from_wire(r.varint("open.code")?))
        } else {
            None
        };
        let total_len = if meta & HAS_TOTAL != 0 {
            Some(r.varint("open.total")?)
        } else {
            None
        };
        let mut headers = Vec::new();
        if meta & HAS_HEADERS != 0 {
            let count = r.count("open.headers", MAX_HEADERS as u64)?;
            headers.reserve(count);
            for _ in 0..count {
                let name = r.text("open.header.name", MAX_HEADER_NAME_LEN as u64)?;
                let len = r.len("open.header.value", MAX_HEADER_VALUE_LEN as u64)?;
                let value = r.bytes(len, "open.header.value")?;
                headers.push((name, value));
            }
        }
        let payload = r.rest();
        if let Some(total) = total_len {
            if (payload.len() as u64) > total || (fin && payload.len() as u64 != total) {
                return Err(DecodeError::InvalidValue {
                    field: "open.total",
                    value: total,
                });
            }
        }
        Ok(Open {
            stream,
            kind,
            priority,
            route,
            code,
            total_len,
            headers,
            payload,
            fin,
        })
    }
}

impl From<Open> for super::Frame {
    fn from(f: Open) -> Self {
        super::Frame::Open(f)
    }
}
