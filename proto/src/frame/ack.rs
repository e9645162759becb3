//! ACK: link-layer acknowledgement for the reliable mode (ARCHITECTURE.md, "ACK").
//!
//! `next:u8 | sack_len:u8 | sack…` — cumulative: every sequence number before `next`
//! (mod 256, within the window) arrived; selective: bit `i` of the `sack` bytes
//! (little-endian, at most 16 bytes) says that `next + 1 + i` arrived too. Sequence
//! numbers are one byte, as HDLC and MAVLink do, so the send window is below 128.

use super::reader::Reader;
use crate::error::DecodeError;
use bytes::BufMut;

/// Longest selective-ack bitmap, in bytes (covers 128 frames past `next`).
pub const MAX_SACK_BYTES: usize = 16;

/// Cumulative plus selective acknowledgement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ack {
    /// The next sequence number expected in order.
    pub next: u8,
    /// Bit `i` set: sequence number `next + 1 + i` was received.
    pub selective: u128,
}

impl Ack {
    fn sack_len(&self) -> usize {
        (128 - self.selective.leading_zeros() as usize).div_ceil(8)
    }

    pub(crate) fn encode_head(&self, dst: &mut impl BufMut) {
        let len = self.sack_len();
        dst.put_u8(self.next);
        dst.put_u8(len as u8);
        dst.put_slice(&self.selective.to_le_bytes()[..len]);
    }

    pub(crate) fn head_len(&self) -> usize {
        2 + self.sack_len()
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let next = r.u8("ack.next")?;
        let len = usize::from(r.u8("ack.sack_len")?);
        if len > MAX_SACK_BYTES {
            return Err(DecodeError::FieldTooLong {
                field: "ack.sack",
                len: len as u64,
                max: MAX_SACK_BYTES as u64,
            });
        }
        let raw = r.bytes(len, "ack.sack")?;
        let mut bytes = [0u8; 16];
        bytes[..len].copy_from_slice(&raw);
        r.finish("ACK")?;
        Ok(Ack {
            next,
            selective: u128::from_le_bytes(bytes),
        })
    }
}

impl From<Ack> for super::Frame {
    fn from(f: Ack) -> Self {
        super::Frame::Ack(f)
    }
}
