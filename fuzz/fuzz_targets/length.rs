//! `cargo fuzz run length`: the stream framing's decoder on arbitrary input in
//! arbitrary pieces. Never panics or stalls, never returns a frame above
//! `max_frame_len`, stays failed after a fatal error; every frame it returns survives
//! a re-encode/decode round trip, then goes through `Envelope::decode`.
//!
//! Input: `[max selector] [split seed] stream...`, as for the `cobs` target.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use netcore_fuzz::framing_input;
use netcore_proto::framing::{Framing, Length};
use netcore_proto::Envelope;

fuzz_target!(|data: &[u8]| {
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

    let mut encoder = Length::new(max);
    let mut wire = BytesMut::new();
    for frame in &frames {
        let (head, payload) = frame.split_at(frame.len() / 2);
        encoder.encode(head, payload, &mut wire);
    }
    let mut decoder = Length::new(max);
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
