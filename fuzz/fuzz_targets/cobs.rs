//! `cargo fuzz run cobs`: the serial framing's decoder on arbitrary input in arbitrary
//! pieces. Never panics or stalls, never returns a frame above `max_frame_len`, never
//! buffers more than `max_frame_len + 4`; every frame it returns survives a
//! re-encode/decode round trip, then goes through `Envelope::decode`.
//!
//! Input: `[max selector] [split seed] stream...` (see `netcore_fuzz::framing_input`).
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use netcore_fuzz::framing_input;
use netcore_proto::framing::{Cobs, Framing};
use netcore_proto::Envelope;

fuzz_target!(|data: &[u8]| {
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

    // Whatever came out goes back through the framing unchanged.
    let mut encoder = Cobs::new(max);
    let mut wire = BytesMut::new();
    for frame in &frames {
        let (head, payload) = frame.split_at(frame.len() / 2);
        encoder.encode(head, payload, &mut wire);
    }
    let mut decoder = Cobs::new(max);
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
});
