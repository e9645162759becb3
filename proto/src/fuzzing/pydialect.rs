//! Driver of the Python dialect's frame decoder.

use super::framing::framing_input;
use crate::pydialect::frame::to_bytes;
use crate::pydialect::{PyDecoder, PyFrame, PyLimits};
use bytes::BytesMut;

/// The Python dialect's decoder on arbitrary input in arbitrary pieces
/// ([`framing_input`]; its size selector becomes `max_meta_len`, `max_ext_len` is
/// 64). Never panics or stalls; never holds more than one frame's bytes
/// (`8 + max_ext_len + max_meta_len`) plus the last piece; an error about one frame
/// consumes it, a fatal one empties the input and sticks; every frame decoded and
/// encodable re-encodes to bytes that decode to the same frame.
pub fn pydialect(data: &[u8]) {
    let Some((max, pieces)) = framing_input(data) else {
        return;
    };
    let limits = PyLimits {
        max_ext_len: 64,
        max_meta_len: max,
        max_json_depth: 8,
    };
    let bound = 8 + limits.max_ext_len + limits.max_meta_len;
    let mut decoder = PyDecoder::new(limits.clone());
    let mut src = BytesMut::new();
    let mut frames: alloc::vec::Vec<PyFrame> = alloc::vec::Vec::new();
    'feed: for piece in pieces {
        src.extend_from_slice(piece);
        loop {
            let before = src.len();
            match decoder.decode(&mut src) {
                Ok(Some(frame)) => {
                    assert!(src.len() < before);
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) if e.is_fatal() => {
                    assert!(decoder.is_failed() && src.is_empty());
                    let mut more = BytesMut::from(&[1u8, 0, 0, 0][..]);
                    assert!(decoder.decode(&mut more).is_err_and(|e| e.is_fatal()));
                    break 'feed;
                }
                Err(_) => assert!(src.len() < before, "a dropped frame is consumed"),
            }
            assert!(src.len() <= bound + 64);
        }
    }
    assert_eq!(decoder.stats().frames, frames.len() as u64);
    let mut again = PyDecoder::new(PyLimits::default());
    for frame in frames {
        let Ok(bytes) = to_bytes(&frame) else {
            continue; // e.g. an id Python could not read back
        };
        let mut wire = BytesMut::from(&bytes[..]);
        assert_eq!(again.decode(&mut wire), Ok(Some(frame)));
        assert!(wire.is_empty());
    }
}
