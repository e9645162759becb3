//! Properties both framings share, and helpers for the per-framing tests.

use super::*;
use crate::frame::tests::arb_envelope;
use crate::frame::Envelope;
use alloc::vec;
use alloc::vec::Vec;
use proptest::prelude::*;

/// One result of [`Framing::decode`] that is not "need more bytes".
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Frame(Vec<u8>),
    Error(FramingError),
}

/// Feeds `pieces` one after the other into one buffer (as a runtime appends each
/// read), draining the decoder after each, and collects every outcome.
pub(crate) fn decode_all(framing: &mut impl Framing, pieces: &[&[u8]]) -> Vec<Outcome> {
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    // Every call either consumes a byte, returns a frame, or returns Ok(None).
    let mut calls_left = 2 * total + 2 * pieces.len() + 2;
    let mut out = Vec::new();
    let mut src = BytesMut::new();
    for piece in pieces {
        src.extend_from_slice(piece);
        loop {
            calls_left = calls_left
                .checked_sub(1)
                .expect("decoder makes no progress");
            match framing.decode(&mut src) {
                Ok(Some(frame)) => out.push(Outcome::Frame(frame.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    out.push(Outcome::Error(e));
                    if src.is_empty() {
                        break; // a fatal error also clears src
                    }
                }
            }
        }
    }
    out
}

fn both(max_frame_len: usize) -> [Framer; 2] {
    [
        Framer::new(FramingKind::Serial, max_frame_len),
        Framer::new(FramingKind::Stream, max_frame_len),
    ]
}

/// Encodes `frames`, each split into head and payload at its number (modulo its
/// length + 1), back to back.
fn encode_all(framer: &mut Framer, frames: &[(Vec<u8>, usize)]) -> Vec<u8> {
    let mut dst = BytesMut::new();
    for (frame, split) in frames {
        let (head, payload) = frame.split_at(split % (frame.len() + 1));
        framer.encode(head, payload, &mut dst);
    }
    dst.to_vec()
}

fn frames_of(frames: &[(Vec<u8>, usize)]) -> Vec<Outcome> {
    frames
        .iter()
        .map(|(f, _)| Outcome::Frame(f.clone()))
        .collect()
}

fn arb_frames(max_len: usize, max_count: usize) -> impl Strategy<Value = Vec<(Vec<u8>, usize)>> {
    let bytes = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..max_len),
        // Zero-free runs and zero-heavy frames exercise COBS blocks.
        proptest::collection::vec(1u8..=255, 1..max_len),
        proptest::collection::vec(prop_oneof![3 => Just(0u8), 1 => any::<u8>()], 1..max_len),
    ];
    proptest::collection::vec((bytes, any::<usize>()), 0..max_count)
}

#[test]
fn framer_dispatches() {
    let [mut serial, mut stream] = both(100);
    assert_eq!(serial.kind(), FramingKind::Serial);
    assert_eq!(stream.kind(), FramingKind::Stream);
    assert_eq!(serial.max_wire_len(21), 27);
    assert_eq!(stream.max_wire_len(21), 22);
    let mut dst = BytesMut::new();
    serial.encode(b"ab", b"c", &mut dst);
    serial.encode(b"ab", b"c", &mut dst);
    serial.mark_idle();
    serial.encode(b"ab", b"c", &mut dst);
    assert_eq!(dst.len(), 1 + 9 + 9 + 1 + 9);
    let mut dst = BytesMut::new();
    stream.mark_idle(); // no-op
    stream.encode(b"ab", b"c", &mut dst);
    assert_eq!(&dst[..], b"\x03abc");
    assert!(!stream.is_failed());
    let mut bad = BytesMut::from(&[0x7f][..]);
    assert!(stream.decode(&mut bad).is_err());
    assert!(stream.is_failed());
    assert_eq!(stream.stats().dropped_oversize, 1);
    let mut noise = BytesMut::from(&[0x01, 0x00][..]);
    assert!(serial.decode(&mut noise).is_err());
    assert!(!serial.is_failed());
    assert_eq!(serial.stats().dropped_runt, 1);
}

#[test]
fn splits_at_every_byte_across_cobs_blocks() {
    // Frames crossing COBS block boundaries (254 non-zero bytes), with zeros at the
    // edges, and a one-byte frame.
    let mut frames = vec![(1..=255u8).cycle().take(600).collect::<Vec<u8>>()];
    frames.push(vec![0]);
    frames.push([vec![0], vec![0xEE; 253], vec![0, 0]].concat());
    frames.push(vec![0x42; 254]);
    let frames: Vec<(Vec<u8>, usize)> = frames.into_iter().zip([0, 1, 77, 254]).collect();
    check_every_split(&frames);
}

/// Feeds each framing's encoding of `frames` split in two at every byte, and byte by
/// byte: the frames come out the same every time.
fn check_every_split(frames: &[(Vec<u8>, usize)]) {
    let expected = frames_of(frames);
    for mut framer in both(1024) {
        let wire = encode_all(&mut framer, frames);
        for at in 0..=wire.len() {
            let (a, b) = wire.split_at(at);
            let mut decoder = Framer::new(framer.kind(), 1024);
            let out = decode_all(&mut decoder, &[a, b]);
            assert_eq!(out, expected, "{:?} split at {at}", framer.kind());
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        let mut decoder = Framer::new(framer.kind(), 1024);
        assert_eq!(
            decode_all(&mut decoder, &bytes),
            expected,
            "{:?} byte by byte",
            framer.kind()
        );
        assert_eq!(decoder.stats().frames_decoded, frames.len() as u64);
        assert_eq!(decoder.stats().dropped(), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random frames, head and payload split anywhere, encoded back to back, come
    /// back identical and in order, within max_wire_len.
    #[test]
    fn round_trip(frames in arb_frames(2000, 8), piece in 1usize..4096) {
        for mut framer in both(2000) {
            let wire = encode_all(&mut framer, &frames);
            let budget: usize = frames.iter().map(|(f, _)| framer.max_wire_len(f.len())).sum();
            let leading = usize::from(framer.kind() == FramingKind::Serial && !frames.is_empty());
            prop_assert!(wire.len() <= budget + leading);
            let mut decoder = Framer::new(framer.kind(), 2000);
            prop_assert_eq!(decode_all(&mut decoder, &[&wire]), frames_of(&frames));
            let pieces: Vec<&[u8]> = wire.chunks(piece).collect();
            let mut decoder = Framer::new(framer.kind(), 2000);
            prop_assert_eq!(decode_all(&mut decoder, &pieces), frames_of(&frames));
            let bytes: u64 = frames.iter().map(|(f, _)| f.len() as u64).sum();
            prop_assert_eq!(decoder.stats().bytes_decoded, bytes);
        }
    }

    /// tokio-util's length_delimited.rs idea: every split point, and byte by byte.
    #[test]
    fn split_at_every_byte(frames in arb_frames(60, 5)) {
        check_every_split(&frames);
    }

    /// Arbitrary input in arbitrary pieces: no panic, no frame above the limit, no
    /// unbounded buffering, and no stall (decode_all checks progress).
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..2048),
        piece in 1usize..300,
        max in 0usize..300,
    ) {
        for mut framer in both(max) {
            let pieces: Vec<&[u8]> = bytes.chunks(piece).collect();
            for o in decode_all(&mut framer, &pieces) {
                if let Outcome::Frame(f) = o {
                    prop_assert!(f.len() <= max);
                }
            }
            if let Framer::Cobs(c) = &framer {
                prop_assert!(c.buffered_len() <= max + 4);
            }
            let stats = framer.stats();
            prop_assert!(stats.bytes_decoded + stats.bytes_discarded <= bytes.len() as u64);
        }
    }

    /// Real frames: heads from Envelope::encode_head, bodies from Frame::payload.
    #[test]
    fn envelopes_through_both_framings(envs in proptest::collection::vec(arb_envelope(), 1..6)) {
        for mut framer in both(crate::frame::MAX_HEAD_LEN + 64) {
            let mut wire = BytesMut::new();
            for env in &envs {
                let mut head = Vec::with_capacity(env.head_len());
                env.encode_head(&mut head);
                framer.encode(&head, env.frame.payload(), &mut wire);
            }
            let mut decoder = Framer::new(framer.kind(), crate::frame::MAX_HEAD_LEN + 64);
            let mut decoded = Vec::new();
            while let Some(frame) = decoder.decode(&mut wire).unwrap() {
                decoded.push(Envelope::decode(frame).unwrap());
            }
            prop_assert!(wire.is_empty());
            prop_assert_eq!(&decoded, &envs);
        }
    }
}
