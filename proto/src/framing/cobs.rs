//! Serial framing: COBS with a CRC-32C trailer, `0x00`-delimited.
//!
//! This module owns frame delimiting and integrity on unreliable byte channels
//! (serial ports, radios), where bytes get lost, flipped or invented and there is no
//! other way to find where a frame starts.
//!
//! # Wire layout (ARCHITECTURE.md, "Serial framing")
//!
//! ```text
//! [0x00]  COBS( frame ‖ crc32c(frame) as u32 little-endian )  0x00
//!  │      └ no 0x00 inside: each code byte (1..=0xFF) gives the distance to the
//!  │        next (removed) zero; 0xFF = 254 data bytes and no zero
//!  └ leading delimiter, only before the first frame after Cobs::new or mark_idle()
//! ```
//!
//! Example: the 3-byte frame `11 00 22` has CRC-32C `0x7401B2A7`, and goes out as
//! `02 11 06 22 A7 B2 01 74 00` (after a leading `00` if the line was idle).
//!
//! Standard COBS (Cheshire and Baker, 1999), as in the Wikipedia examples: a final
//! 0xFF block is not followed by a redundant `0x01` code byte (the decoder accepts both).
//! Overhead: 4 CRC bytes, 1 delimiter, and one COBS code byte per 254 bytes or part
//! thereof of `frame ‖ crc`: exactly 6 bytes for frames of at most 250 bytes, 7 for
//! 251 to 504 bytes (see [`Cobs::max_wire_len`]). Back-to-back frames share
//! delimiters; the leading one after idle costs one more byte per burst.
//!
//! Frames are never empty on this framing (every netcore frame has a type byte): the
//! decoder rejects an empty frame as a runt. Its encoding, 4 zero bytes (CRC-32C of
//! nothing is 0) COBS-encoded as `01 01 01 01 01`, is what any run of zeros in a frame
//! becomes, and a flipped bit that turns the next code byte into a delimiter would
//! otherwise cut a "valid" empty frame out of a damaged one.
//!
//! # Decoding
//!
//! The decoder takes all of `src` on every call (what belongs to an unfinished frame is
//! decoded into an internal buffer of at most `max_frame_len + 4` bytes), so input may
//! arrive a byte at a time without rescanning. Like postcard's accumulator it loses a
//! frame, not the link: a frame failing COBS ([`FramingError::Cobs`]), with nothing
//! besides its CRC ([`FramingError::Runt`]), failing the CRC ([`FramingError::Crc`]) or growing past
//! `max_frame_len` ([`FramingError::Oversize`], once per frame; the rest of it is
//! skipped up to the next `0x00`) is reported, counted and dropped, and the next
//! `decode` call resumes at the next frame. Empty frames (consecutive `0x00`s) are
//! skipped silently: they are the idle delimiters.

use super::{Framing, FramingStats};
use crate::crc;
use crate::error::FramingError;
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Bytes of the CRC-32C trailer.
const CRC_LEN: usize = 4;

/// Frame delimiter.
const DELIMITER: u8 = 0x00;

/// Code byte of a full block: 254 data bytes, no zero after them.
const FULL_BLOCK: u8 = 0xFF;

/// Longest COBS encoding of `len` bytes: one code byte per 254 bytes or part thereof,
/// at least one.
const fn cobs_max_len(len: usize) -> usize {
    let blocks = len.div_ceil(FULL_BLOCK as usize - 1);
    let blocks = if blocks == 0 { 1 } else { blocks };
    len.saturating_add(blocks)
}

/// The serial framing: COBS, CRC-32C, `0x00` delimiters (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Cobs {
    /// Largest frame (CRC excluded) the decoder accepts.
    max_frame_len: usize,
    /// Encoder: the next frame gets a leading delimiter.
    leading_delimiter: bool,
    /// Decoder: the frame being received, COBS-decoded so far (CRC included).
    decoded: BytesMut,
    /// Decoder: wire bytes of the frame being received (delimiters excluded).
    wire_len: usize,
    /// Decoder: data bytes still due in the current COBS block; 0 = a code byte is next.
    block_left: u8,
    /// Decoder: the current block ends in a zero, written once another block follows.
    zero_pending: bool,
    /// Decoder: skipping the rest of an oversize frame up to the next delimiter.
    discarding: bool,
    stats: FramingStats,
}

impl Cobs {
    /// A serial framing whose decoder accepts frames of 1 to `max_frame_len` bytes
    /// (CRC excluded). The first encoded frame gets a leading delimiter.
    pub fn new(max_frame_len: usize) -> Cobs {
        Cobs {
            max_frame_len,
            leading_delimiter: true,
            decoded: BytesMut::new(),
            wire_len: 0,
            block_left: 0,
            zero_pending: false,
            discarding: false,
            stats: FramingStats::default(),
        }
    }

    /// The line went quiet: the next frame gets a leading `0x00`, so whatever garbage
    /// the line picked up meanwhile is cut off before the frame instead of corrupting
    /// it. The runtime calls this when nothing was sent for a while.
    pub fn mark_idle(&mut self) {
        self.leading_delimiter = true;
    }

    /// Largest frame the decoder accepts (CRC excluded).
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Bytes buffered for the frame being received (at most `max_frame_len + 4`).
    pub fn buffered_len(&self) -> usize {
        self.decoded.len()
    }

    /// Largest decoded frame plus CRC the decoder buffers.
    fn decoded_limit(&self) -> usize {
        self.max_frame_len.saturating_add(CRC_LEN)
    }

    /// Forgets the frame being received.
    fn reset_frame(&mut self) {
        self.decoded.clear();
        self.wire_len = 0;
        self.block_left = 0;
        self.zero_pending = false;
    }

    /// Appends decoded bytes, or reports that the frame outgrew the limit.
    fn push_decoded(&mut self, bytes: &[u8]) -> Result<(), FramingError> {
        let len = self.decoded.len().saturating_add(bytes.len());
        if len > self.decoded_limit() {
            return Err(FramingError::Oversize {
                len: (len - CRC_LEN) as u64,
                max: self.max_frame_len as u64,
            });
        }
        self.decoded.extend_from_slice(bytes);
        Ok(())
    }

    /// COBS-decodes `wire`, a piece of the current frame holding no delimiter.
    fn feed(&mut self, wire: &[u8]) -> Result<(), FramingError> {
        self.wire_len = self.wire_len.saturating_add(wire.len());
        let mut rest = wire;
        while !rest.is_empty() {
            if self.block_left == 0 {
                let Some((&code, tail)) = rest.split_first() else {
                    break;
                };
                // A zero ends the previous block only if another block follows.
                if self.zero_pending {
                    self.push_decoded(&[0])?;
                }
                // `code` is not 0: the caller split `wire` at delimiters.
                self.block_left = code.saturating_sub(1);
                self.zero_pending = code != FULL_BLOCK;
                rest = tail;
            } else {
                let n = rest.len().min(usize::from(self.block_left));
                let (data, tail) = rest.split_at(n);
                self.push_decoded(data)?;
                self.block_left -= n as u8; // n <= block_left <= 254
                rest = tail;
            }
        }
        Ok(())
    }

    /// The delimiter arrived: checks and returns the frame received.
    fn finish(&mut self) -> Result<Bytes, FramingError> {
        if self.block_left != 0 {
            return Err(FramingError::Cobs);
        }
        let runt = FramingError::Runt {
            len: self.decoded.len(),
        };
        if self.decoded.len() <= CRC_LEN {
            return Err(runt); // see the module docs on empty frames
        }
        let Some((body, trailer)) = self.decoded.split_last_chunk::<CRC_LEN>() else {
            return Err(runt);
        };
        let expected = u32::from_le_bytes(*trailer);
        let actual = crc::checksum(body);
        if expected != actual {
            return Err(FramingError::Crc { expected, actual });
        }
        let body_len = body.len();
        // `finish` runs after `feed` kept `decoded` within `max_frame_len + 4`.
        let mut frame = self.decoded.split();
        frame.truncate(body_len);
        Ok(frame.freeze())
    }
}

impl Framing for Cobs {
    fn encode(&mut self, head: &[u8], payload: &[u8], dst: &mut BytesMut) {
        let frame_len = head.len().saturating_add(payload.len());
        dst.reserve(
            self.max_wire_len(frame_len)
                .saturating_add(usize::from(self.leading_delimiter)),
        );
        if self.leading_delimiter {
            dst.put_u8(DELIMITER);
            self.leading_delimiter = false;
        }
        let crc = crc::extend(crc::checksum(head), payload);
        let mut encoder = Encoder::start(dst);
        encoder.write(dst, head);
        encoder.write(dst, payload);
        encoder.write(dst, &crc.to_le_bytes());
        encoder.finish(dst);
        dst.put_u8(DELIMITER);
    }

    /// `COBS(frame_len + 4) + 1`: 6 bytes of overhead up to 250 bytes, one more per
    /// further 254 bytes. Excludes the leading delimiter sent after idle (one byte per
    /// burst, see [`Cobs::mark_idle`]).
    fn max_wire_len(&self, frame_len: usize) -> usize {
        cobs_max_len(frame_len.saturating_add(CRC_LEN)).saturating_add(1)
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        loop {
            let delimiter = src.iter().position(|&b| b == DELIMITER);
            let piece_len = delimiter.unwrap_or(src.len());
            // Consumed: the piece and its delimiter, if any.
            let consumed = delimiter.map_or(piece_len, |at| at + 1);

            if self.discarding {
                self.stats.bytes_discarded += piece_len as u64;
                self.discarding = delimiter.is_none();
                src.advance(consumed);
                if self.discarding {
                    return Ok(None);
                }
                continue;
            }

            let fed = match src.get(..piece_len) {
                Some(piece) => self.feed(piece),
                None => Ok(()), // unreachable: piece_len <= src.len()
            };
            src.advance(consumed);
            if let Err(err) = fed {
                // Oversize: drop what we have, skip the rest up to the delimiter.
                self.stats.bytes_discarded += self.wire_len as u64;
                self.stats.count_error(&err);
                self.reset_frame();
                self.discarding = delimiter.is_none();
                return Err(err);
            }
            if delimiter.is_none() {
                return Ok(None);
            }
            if self.wire_len == 0 {
                continue; // empty frame: an idle delimiter
            }
            let result = self.finish();
            match &result {
                Ok(frame) => self.stats.count_frame(frame.len()),
                Err(err) => {
                    self.stats.bytes_discarded += self.wire_len as u64;
                    self.stats.count_error(err);
                }
            }
            self.reset_frame();
            return result.map(Some);
        }
    }

    fn stats(&self) -> &FramingStats {
        &self.stats
    }
}

/// One-pass COBS encoder writing straight into the output buffer: each block's code
/// byte is written as a placeholder and patched when the block ends.
struct Encoder {
    /// Where the open block's code byte sits in `dst`; `None` right after a full block
    /// (the next block is opened only if more data follows).
    code_at: Option<usize>,
    /// The open block's code: 1 + its data bytes so far.
    code: u8,
}

impl Encoder {
    fn start(dst: &mut BytesMut) -> Encoder {
        let mut encoder = Encoder {
            code_at: None,
            code: 1,
        };
        encoder.open(dst);
        encoder
    }

    fn open(&mut self, dst: &mut BytesMut) -> usize {
        let at = dst.len();
        dst.put_u8(0); // placeholder
        self.code_at = Some(at);
        self.code = 1;
        at
    }

    fn close(&mut self, dst: &mut BytesMut, at: usize) {
        if let Some(slot) = dst.get_mut(at) {
            *slot = self.code;
        }
        self.code_at = None;
    }

    fn write(&mut self, dst: &mut BytesMut, mut data: &[u8]) {
        while !data.is_empty() {
            let at = match self.code_at {
                Some(at) => at,
                None => self.open(dst),
            };
            let room = usize::from(FULL_BLOCK - self.code); // >= 1 while a block is open
            let window = data.get(..room).unwrap_or(data);
            match window.iter().position(|&b| b == 0) {
                Some(zero) => {
                    dst.extend_from_slice(&window[..zero]);
                    self.code += zero as u8; // zero < room
                    self.close(dst, at);
                    self.open(dst);
                    data = &data[zero + 1..];
                }
                None => {
                    dst.extend_from_slice(window);
                    self.code += window.len() as u8; // window.len() <= room
                    if self.code == FULL_BLOCK {
                        self.close(dst, at);
                    }
                    data = &data[window.len()..];
                }
            }
        }
    }

    fn finish(mut self, dst: &mut BytesMut) {
        if let Some(at) = self.code_at {
            self.close(dst, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::tests::{decode_all, Outcome};
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// Plain COBS of `data` (no CRC, no delimiter).
    fn cobs(data: &[u8]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        let mut encoder = Encoder::start(&mut dst);
        // Split the input to exercise block state carried across `write` calls.
        let (a, b) = data.split_at(data.len() / 3);
        encoder.write(&mut dst, a);
        encoder.write(&mut dst, b);
        encoder.finish(&mut dst);
        dst.to_vec()
    }

    /// Plain COBS decoding of one delimiter-free encoding.
    fn uncobs(wire: &[u8]) -> Result<Vec<u8>, FramingError> {
        let mut c = Cobs::new(1 << 20);
        c.feed(wire)?;
        if c.block_left != 0 {
            return Err(FramingError::Cobs);
        }
        Ok(c.decoded.to_vec())
    }

    fn encode_frame(c: &mut Cobs, frame: &[u8]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        c.encode(frame, &[], &mut dst);
        dst.to_vec()
    }

    #[test]
    fn wikipedia_vectors() {
        let ramp = |from: u16, to: u16| (from..=to).map(|b| b as u8).collect::<Vec<u8>>();
        let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (vec![], vec![0x01]),
            (vec![0x00], vec![0x01, 0x01]),
            (vec![0x00, 0x00], vec![0x01, 0x01, 0x01]),
            (vec![0x00, 0x11, 0x00], vec![0x01, 0x02, 0x11, 0x01]),
            (
                vec![0x11, 0x22, 0x00, 0x33],
                vec![0x03, 0x11, 0x22, 0x02, 0x33],
            ),
            (
                vec![0x11, 0x22, 0x33, 0x44],
                vec![0x05, 0x11, 0x22, 0x33, 0x44],
            ),
            (
                vec![0x11, 0x00, 0x00, 0x00],
                vec![0x02, 0x11, 0x01, 0x01, 0x01],
            ),
            // 01..FE: one full block, no trailing code byte.
            (ramp(1, 254), [vec![0xFF], ramp(1, 254)].concat()),
            (ramp(0, 254), [vec![0x01, 0xFF], ramp(1, 254)].concat()),
            (
                ramp(1, 255),
                [vec![0xFF], ramp(1, 254), vec![0x02, 0xFF]].concat(),
            ),
            (
                [ramp(2, 255), vec![0x00]].concat(),
                [vec![0xFF], ramp(2, 255), vec![0x01, 0x01]].concat(),
            ),
            (
                [ramp(3, 255), vec![0x00, 0x01]].concat(),
                [vec![0xFE], ramp(3, 255), vec![0x02, 0x01]].concat(),
            ),
        ];
        for (data, wire) in cases {
            assert_eq!(cobs(&data), wire, "encoding {data:02x?}");
            assert_eq!(uncobs(&wire).unwrap(), data, "decoding {wire:02x?}");
        }
        // The redundant trailing 0x01 some encoders emit after a full block decodes
        // the same.
        let mut with_trailer = [vec![0xFF], ramp(1, 254)].concat();
        with_trailer.push(0x01);
        assert_eq!(uncobs(&with_trailer).unwrap(), ramp(1, 254));
    }

    #[test]
    fn module_doc_example() {
        let mut c = Cobs::new(64);
        let wire = encode_frame(&mut c, &[0x11, 0x00, 0x22]);
        assert_eq!(
            wire,
            [0x00, 0x02, 0x11, 0x06, 0x22, 0xA7, 0xB2, 0x01, 0x74, 0x00]
        );
        assert_eq!(crc::checksum(&[0x11, 0x00, 0x22]), 0x7401_B2A7);
    }

    #[test]
    fn overhead_is_six_bytes_up_to_250() {
        let mut c = Cobs::new(4096);
        // The product budget: a 21-byte frame is 27 wire bytes.
        assert_eq!(c.max_wire_len(21), 27);
        let first = encode_frame(&mut c, &[0xAB; 21]);
        assert_eq!(
            first.len(),
            28,
            "first frame after idle carries a leading 0x00"
        );
        assert_eq!(first[0], 0);
        let second = encode_frame(&mut c, &[0xAB; 21]);
        assert_eq!(second.len(), 27);
        assert_eq!(second.iter().filter(|&&b| b == 0).count(), 1);
        // Every size up to 250, worst-case content (no zeros), zeros only, and mixed.
        for len in 0..=250usize {
            for fill in [0xFFu8, 0x00, 0x5A] {
                let mut frame = vec![fill; len];
                if fill == 0x5A {
                    frame.iter_mut().step_by(7).for_each(|b| *b = 0);
                }
                let wire = encode_frame(&mut c, &frame);
                assert_eq!(wire.len(), len + 6, "frame of {len} bytes of {fill:#x}");
                assert_eq!(c.max_wire_len(len), len + 6);
            }
        }
        // Past 250 bytes, frame ‖ CRC needs a second code byte when it has no zero.
        for len in [251usize, 300, 504] {
            assert_eq!(c.max_wire_len(len), len + 7);
            assert!(encode_frame(&mut c, &vec![0x77; len]).len() <= len + 7);
        }
        assert_eq!(c.max_wire_len(505), 505 + 8);
        c.mark_idle();
        assert_eq!(encode_frame(&mut c, &[1; 21]).len(), 28);
    }

    #[test]
    fn idle_delimiters_are_skipped_empty_frames_are_runts() {
        let mut c = Cobs::new(64);
        let mut wire = vec![0, 0, 0];
        wire.extend(encode_frame(&mut c, b"one"));
        wire.extend([0, 0]);
        wire.extend(encode_frame(&mut c, b""));
        c.mark_idle();
        wire.extend(encode_frame(&mut c, b"two"));
        let mut dec = Cobs::new(64);
        let out = decode_all(&mut dec, &[&wire]);
        assert_eq!(
            out,
            vec![
                Outcome::Frame(b"one".to_vec()),
                Outcome::Error(FramingError::Runt { len: 4 }),
                Outcome::Frame(b"two".to_vec()),
            ]
        );
        assert_eq!(dec.stats().dropped(), 1, "idle delimiters are not errors");
    }

    #[test]
    fn cut_zero_run_is_no_empty_frame() {
        // A frame starting with zeros is 01 01 01 01 01 01 ... on the wire. Flipping
        // the low bit of the sixth 01 makes it a delimiter and leaves exactly the
        // encoding of an empty frame before it (4 zero bytes: CRC-32C of nothing is 0).
        let mut enc = Cobs::new(64);
        let mut wire = encode_frame(&mut enc, &[0, 0, 0, 0, 0, 0, 9, 9]);
        assert_eq!(&wire[..7], &[0, 1, 1, 1, 1, 1, 1]);
        wire[6] ^= 1;
        let out = decode_all(&mut Cobs::new(64), &[&wire]);
        assert_eq!(out[0], Outcome::Error(FramingError::Runt { len: 4 }));
        assert!(
            out.iter().all(|o| matches!(o, Outcome::Error(_))),
            "{out:?}"
        );
    }

    #[test]
    fn typed_errors_and_stats() {
        let mut enc = Cobs::new(64);
        let good = encode_frame(&mut enc, b"hello");
        let mut bad_crc = encode_frame(&mut enc, b"hello");
        bad_crc[3] ^= 0x01; // a data byte
        let mut wire = Vec::new();
        wire.extend(&good); // 00 .. 00
        wire.extend([0x05, 0x01, 0x00]); // block says 4 more bytes, 1 arrives
        wire.extend([0x02, 0x07, 0x00]); // one byte: runt
        wire.extend([0x01, 0x00]); // zero bytes: runt
        wire.extend(&bad_crc);
        wire.extend(&good[1..]);
        let mut dec = Cobs::new(64);
        let out = decode_all(&mut dec, &[&wire]);
        let expected_crc = crc::checksum(b"hello");
        assert_eq!(out[0], Outcome::Frame(b"hello".to_vec()));
        assert_eq!(out[1], Outcome::Error(FramingError::Cobs));
        assert_eq!(out[2], Outcome::Error(FramingError::Runt { len: 1 }));
        assert_eq!(out[3], Outcome::Error(FramingError::Runt { len: 0 }));
        match &out[4] {
            Outcome::Error(FramingError::Crc { expected, actual }) => {
                assert_eq!(*expected, expected_crc);
                assert_ne!(*actual, expected_crc);
            }
            other => panic!("expected a CRC error, got {other:?}"),
        }
        assert_eq!(out[5], Outcome::Frame(b"hello".to_vec()));
        assert_eq!(out.len(), 6);
        let stats = dec.stats();
        assert_eq!(stats.frames_decoded, 2);
        assert_eq!(stats.bytes_decoded, 10);
        assert_eq!(stats.dropped_cobs, 1);
        assert_eq!(stats.dropped_runt, 2);
        assert_eq!(stats.dropped_crc, 1);
        assert_eq!(stats.dropped(), 4);
        assert_eq!(
            stats.bytes_discarded,
            2 + 2 + 1 + (bad_crc.len() as u64 - 1)
        );
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        // Flip each bit of each COBS byte in turn (delimiters kept): no frame may come
        // out with the flipped frame's place, let alone different content, and the
        // frame after it still arrives.
        let mut enc = Cobs::new(512);
        let frames: [&[u8]; 3] = [b"\x11\x00\x22", &[0xA5; 40], &[0u8; 300]];
        for frame in frames {
            let target = encode_frame(&mut enc, frame);
            let after = encode_frame(&mut enc, b"after");
            for byte in 0..target.len() - 1 {
                for bit in 0..8 {
                    let mut wire = vec![0u8];
                    wire.extend(&target);
                    wire[1 + byte] ^= 1 << bit;
                    wire.extend(&after);
                    let out = decode_all(&mut Cobs::new(512), &[&wire]);
                    let frames: Vec<&Vec<u8>> = out
                        .iter()
                        .filter_map(|o| match o {
                            Outcome::Frame(f) => Some(f),
                            Outcome::Error(_) => None,
                        })
                        .collect();
                    assert_eq!(
                        frames,
                        vec![&b"after".to_vec()],
                        "flip of bit {bit} in byte {byte} of a {}-byte frame",
                        frame.len()
                    );
                    assert!(
                        out.len() >= 2,
                        "the damaged frame must be reported: {out:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn oversize_stays_bounded_and_recovers() {
        let max = 256;
        let mut dec = Cobs::new(max);
        let bound = max + CRC_LEN;
        let mut errors = Vec::new();
        let mut src = BytesMut::new();
        let mut noise = 0x1234_5678u32;
        let mut fed = 0usize;
        // 1 MiB without a zero, in uneven pieces.
        while fed < 1 << 20 {
            let piece = 1 + (noise % 700) as usize;
            for _ in 0..piece {
                noise ^= noise << 13;
                noise ^= noise >> 17;
                noise ^= noise << 5;
                src.put_u8((noise as u8) | 1);
            }
            fed += piece;
            loop {
                match dec.decode(&mut src) {
                    Ok(None) => break,
                    Ok(Some(f)) => panic!("frame out of noise: {f:?}"),
                    Err(e) => errors.push(e),
                }
                assert!(dec.buffered_len() <= bound);
                assert!(dec.decoded.capacity() <= 2 * bound);
            }
            assert!(src.is_empty(), "the decoder takes all input");
            assert!(dec.buffered_len() <= bound);
            assert!(dec.decoded.capacity() <= 2 * bound);
        }
        assert_eq!(errors.len(), 1, "one error per oversize frame: {errors:?}");
        assert!(matches!(
            errors[0],
            FramingError::Oversize { len, max: 256 } if len > 256 && len <= 256 + 254
        ));
        // The delimiter ends the oversize frame; the next frame arrives.
        let mut enc = Cobs::new(max);
        let mut wire = vec![0x42, 0x00];
        wire.extend(encode_frame(&mut enc, &[9; 256]));
        wire.extend(encode_frame(&mut enc, &[8; 257]));
        wire.extend(encode_frame(&mut enc, &[7; 3]));
        let out = decode_all(&mut dec, &[&wire]);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0], Outcome::Frame(vec![9; 256]));
        assert!(matches!(
            out[1],
            Outcome::Error(FramingError::Oversize { max: 256, .. })
        ));
        assert_eq!(out[2], Outcome::Frame(vec![7; 3]));
        let stats = dec.stats();
        assert_eq!(stats.dropped_oversize, 2);
        assert_eq!(stats.frames_decoded, 2);
        let oversize_wire = encode_frame(&mut enc, &[8; 257]).len() as u64 - 1;
        assert_eq!(stats.bytes_discarded, fed as u64 + 1 + oversize_wire);
    }

    #[test]
    fn zero_max_frame_len_passes_nothing() {
        let mut enc = Cobs::new(0);
        let mut wire = encode_frame(&mut enc, b"");
        wire.extend(encode_frame(&mut enc, b"x"));
        let out = decode_all(&mut Cobs::new(0), &[&wire]);
        assert_eq!(
            out,
            vec![
                Outcome::Error(FramingError::Runt { len: 4 }),
                Outcome::Error(FramingError::Oversize { len: 1, max: 0 }),
            ]
        );
    }

    /// What happens to one frame on its way.
    #[derive(Clone, Debug)]
    enum Damage {
        None,
        /// Random bytes on the line before the frame.
        GarbageBefore(Vec<u8>),
        /// The frame is cut after this many COBS bytes, its delimiter kept or lost.
        Truncate {
            keep: prop::sample::Index,
            delimiter: bool,
        },
        /// One bit flipped in the frame's COBS bytes.
        Flip {
            at: prop::sample::Index,
            bit: u8,
        },
    }

    fn arb_damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            3 => Just(Damage::None),
            1 => proptest::collection::vec(any::<u8>(), 1..40).prop_map(Damage::GarbageBefore),
            1 => proptest::collection::vec(1u8..=255, 1..40).prop_map(Damage::GarbageBefore),
            1 => (any::<prop::sample::Index>(), any::<bool>())
                .prop_map(|(keep, delimiter)| Damage::Truncate { keep, delimiter }),
            1 => (any::<prop::sample::Index>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        ]
    }

    fn arb_frame_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 1..300),
            proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 1..300),
            proptest::collection::vec(1u8..=255, 250..600),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Noise between frames, truncated frames and bit flips: the decoder reports
        /// the damaged frames with typed errors, resynchronizes, and delivers every
        /// undamaged frame intact and in order, nothing else.
        #[test]
        fn resynchronizes_after_damage(
            plan in proptest::collection::vec((arb_frame_bytes(), arb_damage(), any::<bool>()), 1..12),
            piece in 1usize..200,
        ) {
            let mut enc = Cobs::new(1024);
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for (frame, damage, idle) in &plan {
                if *idle {
                    enc.mark_idle();
                }
                let mut bytes = encode_frame(&mut enc, frame);
                let lead = usize::from(bytes[0] == 0);
                let body = lead..bytes.len() - 1; // COBS bytes, delimiters excluded
                if let Damage::GarbageBefore(garbage) = damage {
                    wire.extend(garbage);
                }
                // Whatever came before (garbage, a frame truncated without its
                // delimiter) is cut off unless a delimiter separates it from the frame.
                let clean_start = lead == 1 || wire.last().is_none_or(|&b| b == 0);
                let mut damaged = !clean_start;
                match damage {
                    Damage::None | Damage::GarbageBefore(_) => {}
                    Damage::Truncate { keep, delimiter } => {
                        bytes.truncate(body.start + keep.index(body.len()));
                        if *delimiter {
                            bytes.push(0);
                        }
                        damaged = true;
                    }
                    Damage::Flip { at, bit } => {
                        bytes[body.start + at.index(body.len())] ^= 1 << bit;
                        damaged = true;
                    }
                }
                wire.extend(&bytes);
                if !damaged {
                    expected.push(Outcome::Frame(frame.clone()));
                }
            }
            let pieces: Vec<&[u8]> = wire.chunks(piece).collect();
            let mut dec = Cobs::new(1024);
            let out = decode_all(&mut dec, &pieces);
            let frames: Vec<Outcome> =
                out.iter().filter(|o| matches!(o, Outcome::Frame(_))).cloned().collect();
            prop_assert_eq!(&frames, &expected);
            let errors = out.len() - frames.len();
            for o in &out {
                prop_assert!(!matches!(o, Outcome::Error(FramingError::Length(_))));
            }
            prop_assert_eq!(dec.stats().frames_decoded, frames.len() as u64);
            prop_assert_eq!(dec.stats().dropped(), errors as u64);
        }

        /// Any COBS encoding decodes back, and any byte string decodes to a typed
        /// result.
        #[test]
        fn cobs_round_trip(data in proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..1200)) {
            let wire = cobs(&data);
            prop_assert!(!wire.contains(&0));
            prop_assert!(wire.len() <= cobs_max_len(data.len()));
            prop_assert_eq!(uncobs(&wire).unwrap(), data);
        }
    }
}
