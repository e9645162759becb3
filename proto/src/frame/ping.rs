//! PING and PONG: liveness and round-trip measurement (ARCHITECTURE.md, "PING/PONG").
//!
//! `opaque:varint`. A PONG echoes the opaque value of the PING it answers; senders
//! usually put their send time in it.

use super::reader::Reader;
use crate::error::DecodeError;
use crate::varint;
use bytes::BufMut;

/// A liveness probe; the peer answers with a [`Pong`] carrying the same value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping {
    /// Echoed back unchanged.
    pub opaque: u64,
}

/// The answer to a [`Ping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pong {
    /// The value of the PING answered.
    pub opaque: u64,
}

pub(crate) fn encode_opaque(opaque: u64, dst: &mut impl BufMut) {
    varint::put(dst, opaque);
}

pub(crate) fn decode_opaque(r: &mut Reader, frame: &'static str) -> Result<u64, DecodeError> {
    let opaque = r.varint("ping.opaque")?;
    r.finish(frame)?;
    Ok(opaque)
}

impl From<Ping> for super::Frame {
    fn from(f: Ping) -> Self {
        super::Frame::Ping(f)
    }
}

impl From<Pong> for super::Frame {
    fn from(f: Pong) -> Self {
        super::Frame::Pong(f)
    }
}
