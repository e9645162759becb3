//! Framings: where one frame ends and the next begins on a byte stream.
//!
//! This module owns the delimiting of frames, nothing else: it neither looks inside a
//! frame (that is [`crate::frame`]) nor decides which frame goes next (the scheduler).
//! Two framings share the [`Framing`] trait, and [`Framer`] picks one at run time
//! without `dyn`:
//!
//! | framing | for | wire per frame of `n` bytes | integrity | after damage |
//! |---|---|---|---|---|
//! | [`Cobs`] ([`FramingKind::Serial`]) | serial ports, radios | `n + 6` for `n ≤ 250` | CRC-32C | resynchronizes at the next `0x00` |
//! | [`Length`] ([`FramingKind::Stream`]) | TCP and other reliable streams | `n` + varint length of `n` | the transport's | none: errors are fatal |
//!
//! Byte layouts (ARCHITECTURE.md, "Framings"):
//!
//! ```text
//! serial:  [0x00]  COBS( frame bytes ‖ CRC-32C(frame bytes) as u32 LE )  0x00
//!          ^ only before the first frame after construction or mark_idle()
//! stream:  varint(len)  frame bytes (len of them)
//! ```
//!
//! # Decoder contract
//!
//! Both decoders follow tokio-util's `Decoder` contract: [`Framing::decode`] returns
//! `Ok(Some(frame))` for each complete frame, `Ok(None)` when it needs more bytes
//! (never an error), and removes what it consumed from `src`. Call it again until it
//! returns `Ok(None)` or an error. Which errors end the link depends on the framing:
//!
//! | error | on [`Cobs`] | on [`Length`] |
//! |---|---|---|
//! | [`FramingError::Crc`], [`FramingError::Cobs`], [`FramingError::Runt`] | recoverable: that frame is dropped | never raised |
//! | [`FramingError::Oversize`] | recoverable: that frame is dropped | **fatal** |
//! | [`FramingError::Length`] | never raised | **fatal** |
//!
//! Recoverable means the bad frame has already been consumed: the next `decode` call
//! resumes with the next frame, so a burst of line noise costs one frame, not the
//! link. Fatal means the decoder has lost track of frame boundaries for good: every
//! later `decode` call returns the same error (see [`Length::is_failed`]), and the link
//! must close. Every dropped frame is counted in [`FramingStats`].
//!
//! Neither decoder lets a peer make it allocate more than about `max_frame_len` bytes.

mod batch;
pub mod cobs;
pub mod length;

pub use batch::{WireBatch, WireOut};
pub use cobs::Cobs;
pub use length::Length;

use crate::error::FramingError;
use bytes::{Bytes, BytesMut};

/// Delimits frames on a byte stream: encodes outbound frames, decodes inbound ones.
///
/// One value holds both directions' state; a link owns one. Frames are not empty
/// ([`Cobs`] rejects empty frames; every netcore frame has at least its type byte).
pub trait Framing {
    /// Appends one framed frame whose bytes are `head` followed by `payload` (two slices
    /// so the caller never concatenates: the frame head is encoded separately from the
    /// body chunk).
    fn encode(&mut self, head: &[u8], payload: &[u8], dst: &mut BytesMut);

    /// Worst-case wire bytes for a frame of `frame_len` bytes (for buffer sizing and
    /// rate math).
    fn max_wire_len(&self, frame_len: usize) -> usize;

    /// Next frame from `src` (consumed bytes are removed from `src`). `Ok(None)`: need
    /// more bytes. See the [module docs](self) for which errors are fatal.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError>;

    /// Counters of the decoding side.
    fn stats(&self) -> &FramingStats;
}

/// Counters kept by a framing's decoder.
///
/// "Dropped" counts frames thrown away, by reason; `bytes_discarded` counts the wire
/// bytes that went with them (delimiters not included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FramingStats {
    /// Frames returned by `decode`.
    pub frames_decoded: u64,
    /// Bytes of the frames returned (framing overhead excluded).
    pub bytes_decoded: u64,
    /// Frames dropped for a CRC-32C mismatch ([`FramingError::Crc`]).
    pub dropped_crc: u64,
    /// Frames dropped for invalid COBS ([`FramingError::Cobs`]).
    pub dropped_cobs: u64,
    /// Frames dropped with nothing besides their checksum ([`FramingError::Runt`]).
    pub dropped_runt: u64,
    /// Frames dropped as above `max_frame_len` ([`FramingError::Oversize`]).
    pub dropped_oversize: u64,
    /// Invalid length prefixes ([`FramingError::Length`]).
    pub dropped_length: u64,
    /// Wire bytes thrown away with dropped frames, or after a fatal error.
    pub bytes_discarded: u64,
}

impl FramingStats {
    /// Frames dropped for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_crc
            + self.dropped_cobs
            + self.dropped_runt
            + self.dropped_oversize
            + self.dropped_length
    }

    /// Adds `other`'s counts to these (a link's decoders across transports).
    pub fn add(&mut self, other: &FramingStats) {
        self.frames_decoded += other.frames_decoded;
        self.bytes_decoded += other.bytes_decoded;
        self.dropped_crc += other.dropped_crc;
        self.dropped_cobs += other.dropped_cobs;
        self.dropped_runt += other.dropped_runt;
        self.dropped_oversize += other.dropped_oversize;
        self.dropped_length += other.dropped_length;
        self.bytes_discarded += other.bytes_discarded;
    }

    /// Counts `err` under its reason.
    fn count_error(&mut self, err: &FramingError) {
        match err {
            FramingError::Crc { .. } => self.dropped_crc += 1,
            FramingError::Cobs => self.dropped_cobs += 1,
            FramingError::Runt { .. } => self.dropped_runt += 1,
            FramingError::Oversize { .. } => self.dropped_oversize += 1,
            FramingError::Length(_) => self.dropped_length += 1,
        }
    }

    /// Counts a frame handed to the caller.
    fn count_frame(&mut self, len: usize) {
        self.frames_decoded += 1;
        self.bytes_decoded += len as u64;
    }
}

/// Which framing a link uses: a property of its transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FramingKind {
    /// Unreliable byte channels (serial ports, radios): [`Cobs`].
    Serial,
    /// Reliable ordered streams (TCP, pipes): [`Length`].
    Stream,
}

/// Either framing, chosen at run time, dispatched without `dyn`.
#[derive(Clone, Debug)]
pub enum Framer {
    /// Serial framing.
    Cobs(Cobs),
    /// Stream framing.
    Length(Length),
}

impl Framer {
    /// The framing for `kind`, accepting frames of at most `max_frame_len` bytes.
    pub fn new(kind: FramingKind, max_frame_len: usize) -> Framer {
        match kind {
            FramingKind::Serial => Framer::Cobs(Cobs::new(max_frame_len)),
            FramingKind::Stream => Framer::Length(Length::new(max_frame_len)),
        }
    }

    /// Which framing this is.
    pub fn kind(&self) -> FramingKind {
        match self {
            Framer::Cobs(_) => FramingKind::Serial,
            Framer::Length(_) => FramingKind::Stream,
        }
    }

    /// The line went quiet: see [`Cobs::mark_idle`]. Does nothing on [`Length`].
    pub fn mark_idle(&mut self) {
        if let Framer::Cobs(c) = self {
            c.mark_idle();
        }
    }

    /// See [`Length::set_read_ahead`]; does nothing on [`Cobs`].
    pub fn set_read_ahead(&mut self, bytes: usize) {
        if let Framer::Length(l) = self {
            l.set_read_ahead(bytes);
        }
    }

    /// Whether the decoder hit a fatal error and will only return it from now on
    /// (never on [`Cobs`]).
    pub fn is_failed(&self) -> bool {
        match self {
            Framer::Cobs(_) => false,
            Framer::Length(l) => l.is_failed(),
        }
    }
}

impl Framing for Framer {
    fn encode(&mut self, head: &[u8], payload: &[u8], dst: &mut BytesMut) {
        match self {
            Framer::Cobs(f) => f.encode(head, payload, dst),
            Framer::Length(f) => f.encode(head, payload, dst),
        }
    }

    fn max_wire_len(&self, frame_len: usize) -> usize {
        match self {
            Framer::Cobs(f) => f.max_wire_len(frame_len),
            Framer::Length(f) => f.max_wire_len(frame_len),
        }
    }

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FramingError> {
        match self {
            Framer::Cobs(f) => f.decode(src),
            Framer::Length(f) => f.decode(src),
        }
    }

    fn stats(&self) -> &FramingStats {
        match self {
            Framer::Cobs(f) => f.stats(),
            Framer::Length(f) => f.stats(),
        }
    }
}

#[cfg(test)]
mod tests;
