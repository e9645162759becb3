//! Stream framing: each frame prefixed by its length as a varint.
//!
//! This module owns frame delimiting on reliable, ordered byte streams (TCP, pipes),
//! where the transport already guarantees integrity, so a frame costs only its length
//! prefix.
//!
//! # Wire layout (ARCHITECTURE.md, "Stream framing")
//!
//! ```text
//! varint(len)  frame bytes
//! └ unsigned LEB128, minimal, 1 byte up to 127, 2 up to 16383 (crate::varint)
//! ```
//!
//! Example: a 21-byte frame is `15` followed by its 21 bytes: 22 wire bytes.
//!
//! # Decoding
//!
//! The decoder follows tokio-util's `Decoder` contract (as `LengthDelimitedCodec`
//! does): `Ok(None)` means "need more bytes" and leaves the unfinished frame in `src`;
//! once the prefix is consumed it reserves room in `src` for the rest of the frame (at
//! most 1 MiB ahead of its arrival), and a complete frame is split off `src` without
//! copying. The prefix is consumed (the decoder remembers the length), the body is not.
//!
//! Errors are **fatal**: a length above `max_frame_len` ([`FramingError::Oversize`],
//! checked before anything is buffered) or an invalid varint
//! ([`FramingError::Length`]) leaves no way to find the next frame. The decoder then
//! stays failed: it discards its input and returns the same error from every later
//! call ([`Length::is_failed`]); the link must close.

use super::{Framing, FramingStats};
use crate::error::FramingError;
use crate::varint;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Most bytes reserved in `src` ahead of a frame's arrival.
const MAX_RESERVE: usize = 1 << 20;

/// The stream framing: varint length prefix (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Length {
    /// Largest frame the decoder accepts.
    max_frame_len: usize,
    /// Length of the frame being received, once its prefix was consumed.
    pending: Option<usize>,
    /// The fatal error, once hit.
    failed: Option<FramingError>,
    /// Least room reserved behind an incomplete frame (see [`Length::set_read_ahead`]).
    read_ahead: usize,
    stats: FramingStats,
}

impl Length {
    /// A stream framing whose decoder accepts frames of up to `max_frame_len` bytes.
    pub fn new(max_frame_len: usize) -> Length {
        Length {
            max_frame_len,
            pending: None,
            failed: None,
            read_ahead: 0,
            stats: FramingStats::default(),
        }
    }

    /// Largest frame the decoder accepts.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// When a frame is incomplete, reserve room in `src` for its rest *and* at least
    /// `bytes` (default 0): a reader that reads into the same buffer then makes large
    /// reads and moves the partial frame at most once. A local setting, so the
    /// reservation stays bounded whatever the peer sends.
    pub fn set_read_ahead(&mut self, bytes: usize) {
        self.read_ahead = bytes;
    }

    /// Whether the decoder hit a fatal error and returns only that from now on.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Records a fatal error and throws away `src`.
    fn fail(&mut self, err: FramingError, src: &mut BytesMut) -> FramingError {
        self.stats.count_error(&err);
        self.stats.bytes_discarded += src.len() as u64;
        src.clear();
        self.failed = Some(err.clone());
        err
    }
}

impl Length {
    /// Appends the length prefix of a frame of `head` plus `payload_len` payload
    /// bytes, and `head`: the caller sends the payload itself (without copying it,
    /// see [`WireBatch`](super::WireBatch)).
    pub fn encode_prefix(&self, head: &[u8], payload_len: usize, dst: &mut BytesMut) {
        let frame_len = head.len().saturating_add(payload_len);
        dst.reserve(head.len() + varint::MAX_LEN);
        varint::put(dst, frame_len as u64);
        dst.put_slice(head);
    }
}

impl Framing for Length {
    fn encode(&mut self, head: &[u8], payload: &[u8], dst: &mut BytesMut) {
        let frame_len = head.len().saturating_add(payload.len());
        dst.reserve(self.max_wire_len(frame_len));
        self.encode_prefix(head, payload.len(), dst);
        dst.put_slice(payload);
    }

    /// The frame plus its varint length: one more byte up to 127 bytes, two up to
    /// 16383.
    fn max_wire_len(&self, frame_len: usize) -> usize {
        frame_len.saturating_add(varint::encoded_len(frame_len as u64))
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        if let Some(err) = &self.failed {
            let err = err.clone();
            self.stats.bytes_discarded += src.len() as u64;
            src.clear();
            return Err(err);
        }
        let len = match self.pending {
            Some(len) => len,
            None => {
                let (len, prefix_len) = match varint::read(src) {
                    Ok(Some(parsed)) => parsed,
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(self.fail(FramingError::Length(e), src)),
                };
                let len = match usize::try_from(len) {
                    Ok(len) if len <= self.max_frame_len => len,
                    _ => {
                        let err = FramingError::Oversize {
                            len,
                            max: self.max_frame_len as u64,
                        };
                        return Err(self.fail(err, src));
                    }
                };
                src.advance(prefix_len);
                self.pending = Some(len);
                len
            }
        };
        if src.len() < len {
            // `len` is at most `max_frame_len`, and the up-front reservation is capped
            // too in case that limit is huge: the bytes must arrive before memory is
            // spent on them.
            src.reserve((len - src.len()).min(MAX_RESERVE).max(self.read_ahead));
            return Ok(None);
        }
        self.pending = None;
        self.stats.count_frame(len);
        Ok(Some(src.split_to(len).freeze()))
    }

    fn stats(&self) -> &FramingStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DecodeError;
    use crate::framing::tests::{decode_all, Outcome};
    use alloc::vec;
    use alloc::vec::Vec;

    fn encode_frame(frame: &[u8]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        Length::new(usize::MAX).encode(frame, &[], &mut dst);
        dst.to_vec()
    }

    #[test]
    fn overhead_is_the_varint() {
        let l = Length::new(1 << 20);
        assert_eq!(l.max_wire_len(21), 22);
        for (len, wire) in [
            (0, 1),
            (21, 22),
            (127, 128),
            (128, 130),
            (16383, 16385),
            (16384, 16387),
        ] {
            assert_eq!(l.max_wire_len(len), wire);
            let frame = vec![0x5A; len];
            let encoded = encode_frame(&frame);
            assert_eq!(encoded.len(), wire, "frame of {len} bytes");
        }
        let mut dst = BytesMut::new();
        Length::new(64).encode(b"head", b"payload", &mut dst);
        assert_eq!(&dst[..], b"\x0bheadpayload");
    }

    #[test]
    fn frame_of_max_len_passes_one_more_is_fatal() {
        let mut wire = encode_frame(&[1; 100]);
        wire.extend(encode_frame(&[2; 101]));
        wire.extend(encode_frame(&[3; 5]));
        let mut dec = Length::new(100);
        let out = decode_all(&mut dec, &[&wire, &encode_frame(b"later")]);
        let oversize = FramingError::Oversize { len: 101, max: 100 };
        assert_eq!(
            out,
            vec![
                Outcome::Frame(vec![1; 100]),
                Outcome::Error(oversize.clone()),
                // Sticky: later input gets the same error, nothing decodes.
                Outcome::Error(oversize.clone()),
            ]
        );
        assert!(dec.is_failed());
        let mut empty = BytesMut::new();
        assert_eq!(dec.decode(&mut empty), Err(oversize));
        let stats = dec.stats();
        assert_eq!(stats.frames_decoded, 1);
        assert_eq!(stats.bytes_decoded, 100);
        assert_eq!(stats.dropped_oversize, 1);
        assert_eq!(stats.bytes_discarded, (102 + 6 + 6) as u64);
    }

    #[test]
    fn oversize_is_caught_before_buffering() {
        // A peer announcing 4 GiB gets an error, not a 4 GiB reservation.
        let mut dec = Length::new(1024);
        let mut src = BytesMut::new();
        varint::put(&mut src, 1 << 32);
        src.put_slice(&[0; 16]);
        let err = dec.decode(&mut src);
        assert_eq!(
            err,
            Err(FramingError::Oversize {
                len: 1 << 32,
                max: 1024
            })
        );
        assert!(src.is_empty());
        assert!(src.capacity() < 1024);
        // With no practical limit configured, a huge announced length reserves at
        // most MAX_RESERVE up front (u64::MAX does not even fit a 32-bit usize).
        let mut dec = Length::new(usize::MAX);
        let mut src = BytesMut::new();
        varint::put(&mut src, u64::MAX);
        let result = dec.decode(&mut src);
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(result, Ok(None));
            assert!(src.capacity() <= MAX_RESERVE + 16);
        }
        #[cfg(not(target_pointer_width = "64"))]
        assert!(matches!(result, Err(FramingError::Oversize { .. })));
    }

    #[test]
    fn bad_varints_are_fatal() {
        for (bytes, e) in [
            (vec![0x80, 0x00], DecodeError::VarintNotMinimal),
            (vec![0xFF; 10], DecodeError::VarintOverflow),
        ] {
            let mut dec = Length::new(1024);
            let out = decode_all(&mut dec, &[&bytes, &encode_frame(b"x")]);
            let err = FramingError::Length(e);
            assert_eq!(out, vec![Outcome::Error(err.clone()), Outcome::Error(err)]);
            assert!(dec.is_failed());
            assert_eq!(dec.stats().dropped_length, 1);
        }
        // Nine continuation bytes are not an error yet: the tenth may end the varint.
        let mut dec = Length::new(1024);
        let mut src = BytesMut::from(&[0x80u8; 9][..]);
        assert_eq!(dec.decode(&mut src), Ok(None));
        assert_eq!(src.len(), 9);
    }

    #[test]
    fn partial_frames_stay_in_src_and_reserve() {
        let wire = encode_frame(&[7; 300]);
        let mut dec = Length::new(1024);
        let mut src = BytesMut::from(&wire[..1]);
        assert_eq!(dec.decode(&mut src), Ok(None));
        assert_eq!(src.len(), 1, "an unfinished prefix stays in src");
        src.put_slice(&wire[1..10]);
        assert_eq!(dec.decode(&mut src), Ok(None));
        assert_eq!(src.len(), 8, "the prefix is consumed, the body waits");
        assert!(src.capacity() >= 300, "room reserved for the body");
        src.put_slice(&wire[10..]);
        let frame = dec.decode(&mut src).unwrap().unwrap();
        assert_eq!(&frame[..], &[7; 300][..]);
        assert!(src.is_empty());
        assert_eq!(dec.decode(&mut src), Ok(None));
    }
}
