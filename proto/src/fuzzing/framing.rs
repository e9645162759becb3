//! Drivers of the framing decoders and of the frame decoder.

use crate::frame::Envelope;
use crate::framing::{Cobs, Framing, Length};
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

/// Splits a framing driver's input `[max selector] [split seed] stream...` into the
/// decoder's `max_frame_len` (`2^(selector % 14) - 1`: 0 to 8191), and the stream cut
/// into pieces of 1 to 64 bytes drawn from the seed, as reads would deliver it.
/// `None` for inputs shorter than the two header bytes.
pub fn framing_input(data: &[u8]) -> Option<(usize, impl Iterator<Item = &[u8]>)> {
    let [selector, seed, stream @ ..] = data else {
        return None;
    };
    let max_frame_len = (1usize << (selector % 14)) - 1;
    let mut state = u32::from(*seed) | 0x100;
    let mut rest = stream;
    let pieces = core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let (piece, tail) = rest.split_at((1 + state as usize % 64).min(rest.len()));
        rest = tail;
        Some(piece)
    });
    Some((max_frame_len, pieces))
}

/// The serial framing's decoder on arbitrary input in arbitrary pieces
/// ([`framing_input`]). Never panics or stalls, never returns a frame above
/// `max_frame_len`, never buffers more than `max_frame_len + 4`; every frame it
/// returns survives a re-encode/decode round trip, then goes through
/// `Envelope::decode`.
pub fn cobs(data: &[u8]) {
    let Some((max, pieces)) = framing_input(data) else {
        return;
    };
    let mut decoder = Cobs::new(max);
    let mut frames: Vec<Bytes> = Vec::new();
    let mut src = BytesMut::new();
    // Each call consumes a byte, or returns Ok(None) once per piece.
    let mut calls_left = 2 * data.len() + 8;
    for piece in pieces {
        src.extend_from_slice(piece);
        loop {
            calls_left = calls_left.checked_sub(1).expect("decoder stalls");
            match decoder.decode(&mut src) {
                Ok(Some(frame)) => {
                    assert!(!frame.is_empty() && frame.len() <= max);
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(_) => {} // recoverable: the bad frame is consumed
            }
            assert!(decoder.buffered_len() <= max + 4);
        }
        assert!(src.is_empty(), "the serial decoder takes all input");
    }
    assert_eq!(decoder.stats().frames_decoded, frames.len() as u64);
    round_trip(frames, || Cobs::new(max));
}

/// The stream framing's decoder on arbitrary input in arbitrary pieces
/// ([`framing_input`]). Never panics or stalls, never returns a frame above
/// `max_frame_len`, stays failed after a fatal error; every frame it returns
/// survives a re-encode/decode round trip, then goes through `Envelope::decode`.
pub fn length(data: &[u8]) {
    let Some((max, pieces)) = framing_input(data) else {
        return;
    };
    let mut decoder = Length::new(max);
    let mut frames: Vec<Bytes> = Vec::new();
    let mut src = BytesMut::new();
    let mut fatal = None;
    'feed: for piece in pieces {
        src.extend_from_slice(piece);
        // Each call returns a frame (consuming at least its prefix) or stops.
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max);
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(decoder.is_failed());
                    fatal = Some(e);
                    break 'feed;
                }
            }
        }
    }
    if let Some(e) = fatal {
        // Sticky: the same error whatever comes next.
        let mut more = BytesMut::from(&[0u8, 1, 2][..]);
        assert_eq!(decoder.decode(&mut more), Err(e));
    }
    assert_eq!(decoder.stats().frames_decoded, frames.len() as u64);
    round_trip(frames, || Length::new(max));
}

/// Re-encodes `frames` (each cut in two, as head and payload) with a fresh framing
/// and decodes them back unchanged, then decodes each as an envelope.
fn round_trip<F: Framing>(frames: Vec<Bytes>, new: impl Fn() -> F) {
    let mut encoder = new();
    let mut wire = BytesMut::new();
    for frame in &frames {
        let (head, payload) = frame.split_at(frame.len() / 2);
        encoder.encode(head, payload, &mut wire);
    }
    let mut decoder = new();
    for frame in &frames {
        assert_eq!(
            decoder.decode(&mut wire).ok().flatten().as_ref(),
            Some(frame)
        );
    }
    assert_eq!(decoder.decode(&mut wire), Ok(None));
    for frame in frames {
        let _ = Envelope::decode(frame);
    }
}

/// `Envelope::decode` on arbitrary bytes never panics, and whatever it accepts
/// re-encodes to something that decodes to the same envelope.
pub fn frame(data: &[u8]) {
    let Ok(env) = Envelope::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let bytes = env.to_bytes();
    assert_eq!(bytes.len(), env.encoded_len());
    let again = Envelope::decode(Bytes::from(bytes)).expect("re-encoded envelope decodes");
    assert_eq!(again, env);
}
