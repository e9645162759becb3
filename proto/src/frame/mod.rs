//! Frames: the unit the framings carry and the state machines exchange.
//!
//! Every frame starts with one type byte, `kind << 4 | flags`
//! (ARCHITECTURE.md, "Frames"):
//!
//! | bit | flag | meaning |
//! |---|---|---|
//! | 0 | FIN | OPEN/DATA: this frame ends the message (must be 0 on other kinds) |
//! | 1 | — | reserved, must be 0 |
//! | 2 | AUTH | reserved for the authenticated mode; rejected as unsupported by v1 |
//! | 3 | SEQ | one sequence byte follows (link-layer reliability) |
//!
//! The sequence byte lives in the [`Envelope`], not in the frame kinds, so the
//! reliable mode wraps any frame without a new wire version.

mod ack;
mod cancel;
mod credit;
mod data;
mod end;
mod goaway;
mod hello;
mod open;
mod ping;
mod reader;

pub use ack::{Ack, MAX_SACK_BYTES};
pub use cancel::Cancel;
pub use credit::Credit;
pub use data::Data;
pub use end::End;
pub use goaway::{GoAway, MAX_REASON_LEN};
pub use hello::{features, Hello, SessionResume, MAGIC, RESUME_PROOF_LEN, VERSION};
pub use open::{
    header_value, Header, Open, MAX_HEADERS, MAX_HEADER_NAME_LEN, MAX_HEADER_VALUE_LEN,
    MAX_ROUTE_LEN,
};
pub use ping::{Ping, Pong};

use crate::error::DecodeError;
use crate::ids::StreamId;
use alloc::vec::Vec;
use bytes::{BufMut, Bytes};
use reader::Reader;

const FIN: u8 = 1 << 0;
const RESERVED: u8 = 1 << 1;
const AUTH: u8 = 1 << 2;
const SEQ: u8 = 1 << 3;

/// Longest frame head (everything before the payload) an OPEN can have with the
/// largest route and headers; DATA heads are at most 11 bytes.
pub const MAX_HEAD_LEN: usize = 1
    + 1
    + 10
    + 1
    + 2
    + MAX_ROUTE_LEN
    + 10
    + 10
    + 1
    + MAX_HEADERS * (2 + MAX_HEADER_NAME_LEN + 2 + MAX_HEADER_VALUE_LEN);

/// Smallest `max_frame_len` a side may announce: a maximal OPEN head must fit.
pub const MIN_MAX_FRAME_LEN: usize = MAX_HEAD_LEN + 64;

// The default frame-length limit leaves room for the largest head.
const _: () = assert!(MIN_MAX_FRAME_LEN <= crate::config::DEFAULT_MAX_FRAME_LEN);

/// The wire value of each frame kind (the type byte's high nibble).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the names are the documentation; see each frame type
pub enum FrameKind {
    Hello = 0x0,
    Open = 0x1,
    Data = 0x2,
    End = 0x3,
    Cancel = 0x4,
    Ack = 0x5,
    Ping = 0x6,
    Pong = 0x7,
    Credit = 0x8,
    GoAway = 0x9,
}

impl FrameKind {
    fn from_nibble(n: u8) -> Result<FrameKind, DecodeError> {
        Ok(match n {
            0x0 => FrameKind::Hello,
            0x1 => FrameKind::Open,
            0x2 => FrameKind::Data,
            0x3 => FrameKind::End,
            0x4 => FrameKind::Cancel,
            0x5 => FrameKind::Ack,
            0x6 => FrameKind::Ping,
            0x7 => FrameKind::Pong,
            0x8 => FrameKind::Credit,
            0x9 => FrameKind::GoAway,
            other => return Err(DecodeError::UnknownFrameType(other)),
        })
    }

    /// Name used in errors and logs.
    pub const fn name(self) -> &'static str {
        match self {
            FrameKind::Hello => "HELLO",
            FrameKind::Open => "OPEN",
            FrameKind::Data => "DATA",
            FrameKind::End => "END",
            FrameKind::Cancel => "CANCEL",
            FrameKind::Ack => "ACK",
            FrameKind::Ping => "PING",
            FrameKind::Pong => "PONG",
            FrameKind::Credit => "CREDIT",
            FrameKind::GoAway => "GOAWAY",
        }
    }
}

/// One protocol frame.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is documented on its payload type
pub enum Frame {
    Hello(Hello),
    Open(Open),
    Data(Data),
    End(End),
    Cancel(Cancel),
    Ack(Ack),
    Ping(Ping),
    Pong(Pong),
    Credit(Credit),
    GoAway(GoAway),
}

impl Frame {
    /// The kind of this frame.
    pub fn kind(&self) -> FrameKind {
        match self {
            Frame::Hello(_) => FrameKind::Hello,
            Frame::Open(_) => FrameKind::Open,
            Frame::Data(_) => FrameKind::Data,
            Frame::End(_) => FrameKind::End,
            Frame::Cancel(_) => FrameKind::Cancel,
            Frame::Ack(_) => FrameKind::Ack,
            Frame::Ping(_) => FrameKind::Ping,
            Frame::Pong(_) => FrameKind::Pong,
            Frame::Credit(_) => FrameKind::Credit,
            Frame::GoAway(_) => FrameKind::GoAway,
        }
    }

    /// The stream a frame concerns, if any (CREDIT on stream 0 concerns the link).
    pub fn stream(&self) -> Option<StreamId> {
        match self {
            Frame::Open(f) => Some(f.stream),
            Frame::Data(f) => Some(f.stream),
            Frame::End(f) => Some(f.stream),
            Frame::Cancel(f) => Some(f.stream),
            Frame::Credit(f) if f.stream != Credit::LINK => Some(f.stream),
            _ => None,
        }
    }

    /// Frames that are not message bodies: the scheduler sends them first.
    pub fn is_control(&self) -> bool {
        !matches!(self, Frame::Open(_) | Frame::Data(_) | Frame::End(_))
    }

    /// Body bytes carried (those that consume flow-control credit).
    pub fn body_len(&self) -> usize {
        match self {
            Frame::Open(f) => f.payload.len(),
            Frame::Data(f) => f.payload.len(),
            _ => 0,
        }
    }

    fn fin(&self) -> bool {
        match self {
            Frame::Open(f) => f.fin,
            Frame::Data(f) => f.fin,
            _ => false,
        }
    }

    /// The bytes after the head: body bytes, or a GOAWAY reason.
    pub fn payload(&self) -> &[u8] {
        match self {
            Frame::Open(f) => &f.payload,
            Frame::Data(f) => &f.payload,
            Frame::GoAway(f) => f.reason_bytes(),
            _ => &[],
        }
    }

    /// The payload as shared bytes (no copy for OPEN and DATA), for keeping a sent
    /// frame until it is acknowledged.
    pub fn payload_bytes(&self) -> Bytes {
        match self {
            Frame::Open(f) => f.payload.clone(),
            Frame::Data(f) => f.payload.clone(),
            other => Bytes::copy_from_slice(other.payload()),
        }
    }

    fn encode_kind_head(&self, dst: &mut impl BufMut) {
        match self {
            Frame::Hello(f) => f.encode_head(dst),
            Frame::Open(f) => f.encode_head(dst),
            Frame::Data(f) => f.encode_head(dst),
            Frame::End(f) => f.encode_head(dst),
            Frame::Cancel(f) => f.encode_head(dst),
            Frame::Ack(f) => f.encode_head(dst),
            Frame::Ping(f) => ping::encode_opaque(f.opaque, dst),
            Frame::Pong(f) => ping::encode_opaque(f.opaque, dst),
            Frame::Credit(f) => f.encode_head(dst),
            Frame::GoAway(f) => f.encode_head(dst),
        }
    }

    fn kind_head_len(&self) -> usize {
        match self {
            Frame::Hello(f) => f.head_len(),
            Frame::Open(f) => f.head_len(),
            Frame::Data(f) => f.head_len(),
            Frame::End(f) => f.head_len(),
            Frame::Cancel(f) => f.head_len(),
            Frame::Ack(f) => f.head_len(),
            Frame::Ping(f) => crate::varint::encoded_len(f.opaque),
            Frame::Pong(f) => crate::varint::encoded_len(f.opaque),
            Frame::Credit(f) => f.head_len(),
            Frame::GoAway(f) => f.head_len(),
        }
    }
}

/// A frame as it travels: with the optional link-layer sequence number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Sequence number of the reliable mode; `None` on unreliable-mode links and for
    /// frames outside the sequence space (ACK).
    pub seq: Option<u8>,
    /// The frame.
    pub frame: Frame,
}

impl From<Frame> for Envelope {
    fn from(frame: Frame) -> Self {
        Envelope { seq: None, frame }
    }
}

impl Envelope {
    /// Writes the type byte, sequence byte and the frame's fields: everything but
    /// [`Frame::payload`], which the framing appends without an extra copy.
    pub fn encode_head(&self, dst: &mut impl BufMut) {
        let mut type_byte = (self.frame.kind() as u8) << 4;
        if self.frame.fin() {
            type_byte |= FIN;
        }
        if self.seq.is_some() {
            type_byte |= SEQ;
        }
        dst.put_u8(type_byte);
        if let Some(seq) = self.seq {
            dst.put_u8(seq);
        }
        self.frame.encode_kind_head(dst);
    }

    /// Bytes [`Envelope::encode_head`] writes.
    pub fn head_len(&self) -> usize {
        1 + usize::from(self.seq.is_some()) + self.frame.kind_head_len()
    }

    /// Whole encoded length: head plus payload.
    pub fn encoded_len(&self) -> usize {
        self.head_len() + self.frame.payload().len()
    }

    /// Appends the whole encoded frame to `dst`.
    pub fn encode(&self, dst: &mut Vec<u8>) {
        dst.reserve(self.encoded_len());
        self.encode_head(dst);
        dst.extend_from_slice(self.frame.payload());
    }

    /// Encodes into a fresh buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes one whole frame (as delimited by a framing). Payloads share `src`.
    pub fn decode(src: Bytes) -> Result<Envelope, DecodeError> {
        let mut r = Reader::new(src);
        let type_byte = r.u8("type")?;
        let kind = FrameKind::from_nibble(type_byte >> 4)?;
        let flags = type_byte & 0x0f;
        if flags & AUTH != 0 {
            return Err(DecodeError::Unsupported {
                feature: "authenticated frames",
            });
        }
        let fin_allowed = matches!(kind, FrameKind::Open | FrameKind::Data);
        let bad = flags & (RESERVED | if fin_allowed { 0 } else { FIN });
        if bad != 0 {
            return Err(DecodeError::ReservedBits {
                frame: kind.name(),
                bits: bad,
            });
        }
        let fin = flags & FIN != 0;
        let seq = if flags & SEQ != 0 {
            Some(r.u8("seq")?)
        } else {
            None
        };
        let frame = match kind {
            FrameKind::Hello => Frame::Hello(Hello::decode(&mut r)?),
            FrameKind::Open => Frame::Open(Open::decode(&mut r, fin)?),
            FrameKind::Data => Frame::Data(Data::decode(&mut r, fin)?),
            FrameKind::End => Frame::End(End::decode(&mut r)?),
            FrameKind::Cancel => Frame::Cancel(Cancel::decode(&mut r)?),
            FrameKind::Ack => Frame::Ack(Ack::decode(&mut r)?),
            FrameKind::Ping => Frame::Ping(Ping {
                opaque: ping::decode_opaque(&mut r, "PING")?,
            }),
            FrameKind::Pong => Frame::Pong(Pong {
                opaque: ping::decode_opaque(&mut r, "PONG")?,
            }),
            FrameKind::Credit => Frame::Credit(Credit::decode(&mut r)?),
            FrameKind::GoAway => Frame::GoAway(GoAway::decode(&mut r)?),
        };
        Ok(Envelope { seq, frame })
    }
}

#[cfg(test)]
pub(crate) mod tests;
