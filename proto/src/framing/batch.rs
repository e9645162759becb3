//! [`WireBatch`]: encoded frames ready for one vectored write, with large payloads
//! referenced instead of copied.
//!
//! On a fast link the writer takes a few hundred KiB per write. Copying every DATA
//! payload into one contiguous buffer first costs a memory copy of everything sent
//! (the largest item of the sender's profile on TCP). A batch instead keeps frame
//! heads, length prefixes and small frames in one coalescing buffer and each payload
//! of at least [`WireBatch::SHARE_MIN`] bytes as a reference-counted [`Bytes`] of
//! the message body; the transport then writes the segments with `writev`.
//!
//! Only the stream framing can share payloads: the serial framing transforms every
//! byte (COBS, CRC), so its frames are encoded into the coalescing buffer.
//!
//! [`WireOut`] is what [`Transmitter`](crate::link::Transmitter) encodes into: a
//! plain [`BytesMut`] (everything copied, for simulations and tests) or a
//! [`WireBatch`].

use super::{Framer, Framing};
use alloc::collections::VecDeque;
use bytes::{Buf, Bytes, BytesMut};

/// A destination for encoded frames.
pub trait WireOut {
    /// Appends one frame (`head` then `payload`) framed by `framer`.
    fn put_frame(&mut self, framer: &mut Framer, head: &[u8], payload: &Bytes);

    /// Wire bytes held so far.
    fn wire_len(&self) -> usize;
}

impl WireOut for BytesMut {
    fn put_frame(&mut self, framer: &mut Framer, head: &[u8], payload: &Bytes) {
        framer.encode(head, payload, self);
    }

    fn wire_len(&self) -> usize {
        self.len()
    }
}

/// Encoded frames as a list of segments, for one vectored write (see the
/// [module docs](self)). Implements [`Buf`], so `write_all_buf` writes it with
/// `writev` where the transport supports it.
#[derive(Debug, Default)]
pub struct WireBatch {
    /// Finished segments, in wire order.
    segments: VecDeque<Bytes>,
    /// Small pieces being coalesced; becomes a segment before the next shared one.
    tail: BytesMut,
    /// Bytes in `segments` plus `tail`.
    len: usize,
}

impl WireBatch {
    /// Payloads at least this long are referenced, not copied: below it, a copy is
    /// cheaper than an extra `iovec` entry.
    pub const SHARE_MIN: usize = 2048;

    /// An empty batch.
    pub fn new() -> WireBatch {
        WireBatch::default()
    }

    /// An empty batch that reuses this one's coalescing buffer (once its bytes
    /// were written, its allocation is free again: no new one per write).
    pub fn recycle(mut self) -> WireBatch {
        self.segments.clear();
        self.tail.clear();
        self.len = 0;
        // Keep a buffer of a few pages at most; a huge one goes back.
        if self.tail.capacity() > Self::RECYCLE_MAX {
            self.tail = BytesMut::new();
        }
        self
    }

    /// Largest coalescing buffer [`WireBatch::recycle`] keeps.
    const RECYCLE_MAX: usize = 64 * 1024;

    /// True when the batch holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of segments once the batch is finished (for tests and stats).
    pub fn segment_count(&self) -> usize {
        self.segments.len() + usize::from(!self.tail.is_empty())
    }

    /// Appends `bytes` by copying them into the coalescing buffer.
    pub fn put_slice(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends `bytes`, by reference when they are at least [`WireBatch::SHARE_MIN`]
    /// long.
    pub fn put_shared(&mut self, bytes: &Bytes) {
        if bytes.len() < Self::SHARE_MIN {
            return self.put_slice(bytes);
        }
        self.seal_tail();
        self.len += bytes.len();
        self.segments.push_back(bytes.clone());
    }

    /// Moves the coalesced bytes into a segment of their own.
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.segments.push_back(self.tail.split().freeze());
        }
    }

    /// The segments in wire order (consumes the batch).
    pub fn into_segments(mut self) -> VecDeque<Bytes> {
        self.seal_tail();
        self.segments
    }

    /// The whole batch as one contiguous buffer (copies; for tests).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for segment in &self.segments {
            out.extend_from_slice(segment);
        }
        out.extend_from_slice(&self.tail);
        out.freeze()
    }
}

impl WireOut for WireBatch {
    fn put_frame(&mut self, framer: &mut Framer, head: &[u8], payload: &Bytes) {
        match framer {
            Framer::Length(length) if payload.len() >= Self::SHARE_MIN => {
                let before = self.tail.len();
                length.encode_prefix(head, payload.len(), &mut self.tail);
                self.len += self.tail.len() - before;
                self.put_shared(payload);
            }
            _ => {
                let before = self.tail.len();
                framer.encode(head, payload, &mut self.tail);
                self.len += self.tail.len() - before;
            }
        }
    }

    fn wire_len(&self) -> usize {
        self.len
    }
}

impl Buf for WireBatch {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        match self.segments.front() {
            Some(segment) => segment,
            None => &self.tail,
        }
    }

    #[cfg(feature = "std")]
    fn chunks_vectored<'a>(&'a self, dst: &mut [std::io::IoSlice<'a>]) -> usize {
        let mut filled = 0;
        let pieces = self.segments.iter().map(|s| &s[..]).chain([&self.tail[..]]);
        for (slot, piece) in dst.iter_mut().zip(pieces.filter(|p| !p.is_empty())) {
            *slot = std::io::IoSlice::new(piece);
            filled += 1;
        }
        filled
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.len, "advance past the end of a WireBatch");
        self.len -= cnt;
        while cnt > 0 {
            let Some(front) = self.segments.front_mut() else {
                self.tail.advance(cnt);
                return;
            };
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.segments.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::FramingKind;
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn encode_both(kind: FramingKind, frames: &[(Vec<u8>, Vec<u8>)]) -> (Bytes, WireBatch) {
        // Two framers: the serial one starts its first frame with a delimiter.
        let (mut one, mut other) = (Framer::new(kind, 1 << 24), Framer::new(kind, 1 << 24));
        let mut copied = BytesMut::new();
        let mut batch = WireBatch::new();
        for (head, payload) in frames {
            let payload = Bytes::from(payload.clone());
            copied.put_frame(&mut one, head, &payload);
            batch.put_frame(&mut other, head, &payload);
        }
        (copied.freeze(), batch)
    }

    /// Drains `batch` the way a writer does: vectored pieces, partial advances.
    fn drain(mut batch: WireBatch, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while batch.has_remaining() {
            let mut slices = [std::io::IoSlice::new(&[]); 4];
            let n = batch.chunks_vectored(&mut slices);
            let mut budget = step;
            let mut took = 0;
            for slice in &slices[..n] {
                let take = slice.len().min(budget);
                out.extend_from_slice(&slice[..take]);
                took += take;
                budget -= take;
                if budget == 0 {
                    break;
                }
            }
            batch.advance(took);
        }
        out
    }

    #[test]
    fn large_payloads_are_shared_not_copied() {
        let payload = Bytes::from(vec![7u8; 64 * 1024]);
        let mut framer = Framer::new(FramingKind::Stream, 1 << 20);
        let mut batch = WireBatch::new();
        batch.put_frame(&mut framer, b"head", &payload);
        batch.put_frame(&mut framer, b"h2", &Bytes::from_static(b"small"));
        batch.put_frame(&mut framer, b"head", &payload);
        let segments = batch.into_segments();
        assert_eq!(
            segments.len(),
            4,
            "prefix, payload, prefix+small+prefix, payload"
        );
        assert_eq!(segments[1].as_ptr(), payload.as_ptr(), "the payload itself");
        assert_eq!(segments[3].as_ptr(), payload.as_ptr());
    }

    #[test]
    fn a_recycled_batch_reuses_its_buffer_and_writes_the_same_bytes() {
        let mut framer = Framer::new(FramingKind::Stream, 1 << 20);
        let small = Bytes::from_static(b"small payload");
        let mut batch = WireBatch::new();
        for _ in 0..50 {
            batch.put_frame(&mut framer, b"head", &small);
        }
        let allocation = batch.tail.as_ptr();
        let expected = batch.to_bytes();
        // Written out in pieces, as the writer does.
        let mut out = Vec::new();
        while batch.has_remaining() {
            let n = batch.chunk().len().min(100);
            out.extend_from_slice(&batch.chunk()[..n]);
            batch.advance(n);
        }
        assert_eq!(out, expected.to_vec());
        let mut again = batch.recycle();
        for _ in 0..50 {
            again.put_frame(&mut framer, b"head", &small);
        }
        assert_eq!(again.to_bytes(), expected, "same frames, same bytes");
        assert_eq!(
            again.tail.as_ptr(),
            allocation,
            "the same buffer, not a new one"
        );
    }

    #[test]
    fn serial_framing_is_coalesced() {
        let frames = vec![(b"head".to_vec(), vec![1u8; 5000]), (b"x".to_vec(), vec![])];
        let (copied, batch) = encode_both(FramingKind::Serial, &frames);
        assert_eq!(batch.segment_count(), 1);
        assert_eq!(batch.to_bytes(), copied);
    }

    proptest! {
        #[test]
        fn batch_writes_the_same_bytes_as_a_copy(
            frames in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 1..20),
                 proptest::collection::vec(any::<u8>(), 0..6000)),
                0..12),
            serial in any::<bool>(),
            step in 1usize..9000,
        ) {
            let kind = if serial { FramingKind::Serial } else { FramingKind::Stream };
            let (copied, batch) = encode_both(kind, &frames);
            prop_assert_eq!(batch.wire_len(), copied.len());
            prop_assert_eq!(&batch.to_bytes(), &copied);
            prop_assert_eq!(drain(batch, step), copied.to_vec());
        }
    }
}
