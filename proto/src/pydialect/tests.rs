//! The codec against the frames captured from real Python Netcore 0.1.3 peers
//! (`proto/tests/data/netcore-0.1.3-frames.json`), against hostile input, and under
//! arbitrary splits of the stream.

use super::frame::{encode, to_bytes, PY_CHUNK_LEN};
use super::json::{self, Object, Value};
use super::{PyDecoder, PyError, PyFrame, PyLimits};
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

const VECTORS: &str = include_str!("../../tests/data/netcore-0.1.3-frames.json");

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn obj(value: &Value) -> &Object {
    match value {
        Value::Object(o) => o,
        other => panic!("not an object: {other:?}"),
    }
}

/// One captured vector: its name, its decoded message, and its frames' kinds and
/// wire bytes.
type Vector = (String, Object, Vec<(String, Vec<u8>)>);

/// The captured vectors.
fn vectors() -> Vec<Vector> {
    let root = json::parse(VECTORS.as_bytes(), 16).expect("vectors parse");
    let Some(Value::Array(list)) = obj(&root).get("vectors") else {
        panic!("no vectors")
    };
    list.iter()
        .map(|v| {
            let v = obj(v);
            let Some(Value::Array(frames)) = v.get("frames") else {
                panic!("no frames")
            };
            let frames = frames
                .iter()
                .map(|f| {
                    let f = obj(f);
                    (
                        f.get_str("kind").expect("kind").into(),
                        hex(f.get_str("hex").expect("hex")),
                    )
                })
                .collect();
            (
                v.get_str("name").expect("name").into(),
                obj(v.get("message").expect("message")).clone(),
                frames,
            )
        })
        .collect()
}

/// Decodes every frame of `stream` fed in `pieces`-sized reads.
fn decode_all(stream: &[u8], piece: usize) -> Vec<Result<PyFrame, PyError>> {
    let mut decoder = PyDecoder::new(PyLimits::default());
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    for chunk in stream.chunks(piece.max(1)) {
        src.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => break,
                Err(e) => {
                    let fatal = e.is_fatal();
                    out.push(Err(e));
                    if fatal {
                        return out;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_captured_frame_decodes_and_reencodes_byte_exactly() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 10);
    let mut frames_seen = 0;
    for (name, message, frames) in &vectors {
        let mission = message.get_str("mission_id").expect("mission_id");
        let length = message
            .get("length")
            .and_then(Value::as_u64)
            .expect("length");
        let info = obj(message.get("info").expect("info"));
        for (kind, wire) in frames {
            let decoded = decode_all(wire, wire.len());
            assert_eq!(decoded.len(), 1, "{name}: one frame");
            let frame = decoded[0].clone().expect("decodes");
            assert_eq!(frame.mission(), mission, "{name}");
            match (&frame, kind.as_str()) {
                (
                    PyFrame::Head {
                        length: l, info: i, ..
                    },
                    "mission",
                ) => {
                    assert_eq!(*l, length, "{name}");
                    assert_eq!(i, info, "{name}");
                }
                (PyFrame::Data { chunk, .. }, "data") => {
                    assert_eq!(chunk[..], wire[8 + 39..], "{name}");
                }
                (PyFrame::Cancel { .. }, "cancel") => {}
                (frame, kind) => panic!("{name}: {kind} decoded as {frame:?}"),
            }
            assert_eq!(to_bytes(&frame).expect("encodes")[..], wire[..], "{name}");
            frames_seen += 1;
        }
    }
    assert_eq!(frames_seen, 22);
}

#[test]
fn python_missions_are_reproduced_from_ids_info_and_body() {
    for (name, message, frames) in vectors() {
        let body = match message.get_str("body_hex") {
            Some(h) => hex(h),
            None if name == "size_request_3_chunks" => (0..10_000u32).map(|i| i as u8).collect(),
            None => continue, // the cancel captures leave chunks out
        };
        let mission: String = message.get_str("mission_id").expect("id").into();
        let info = obj(message.get("info").expect("info")).clone();
        let mut expected = Vec::new();
        expected.push(PyFrame::Head {
            mission: mission.clone(),
            length: body.len() as u64,
            info,
        });
        for chunk in body.chunks(PY_CHUNK_LEN) {
            expected.push(PyFrame::Data {
                mission: mission.clone(),
                chunk: Bytes::copy_from_slice(chunk),
            });
        }
        assert_eq!(expected.len(), frames.len(), "{name}");
        for (frame, (_, wire)) in expected.iter().zip(&frames) {
            assert_eq!(to_bytes(frame).expect("encodes")[..], wire[..], "{name}");
        }
    }
}

#[test]
fn captured_stream_decodes_the_same_in_any_pieces() {
    let stream: Vec<u8> = vectors()
        .iter()
        .flat_map(|(_, _, frames)| frames.iter().flat_map(|(_, w)| w.clone()))
        .collect();
    let whole = decode_all(&stream, stream.len());
    assert_eq!(whole.len(), 22);
    for piece in [1, 2, 3, 4, 5, 7, 8, 19, 39, 47, 100, 2048, 4096, 4143] {
        assert_eq!(decode_all(&stream, piece), whole, "pieces of {piece}");
    }
}

fn raw(ext: &[u8], meta: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_i32_le(ext.len() as i32);
    out.put_slice(ext);
    out.put_i32_le(meta.len() as i32);
    out.put_slice(meta);
    out
}

fn cancel(mission: &str) -> Vec<u8> {
    to_bytes(&PyFrame::Cancel {
        mission: mission.into(),
    })
    .expect("encodes")
    .to_vec()
}

#[test]
fn errors_inside_a_frame_drop_it_and_keep_the_stream_in_sync() {
    let bad_frames: [(&[u8], &[u8]); 9] = [
        (b"{\"type\": ", b""),
        (b"[1]", b""),
        (b"{}", b""),
        (b"{\"type\": 7}", b""),
        (b"{\"type\": \"ping\"}", b"x"),
        (b"{\"type\": \"data\"}", b"chunk"),
        (b"{\"type\": \"mission\"}", b"not json"),
        (
            b"{\"type\": \"mission\"}",
            b"{\"extension\": \"a\", \"length\": -1, \"info\": {}}",
        ),
        (
            b"{\"type\": \"mission\"}",
            b"{\"extension\": \"a\", \"length\": 1, \"info\": []}",
        ),
    ];
    for (ext, meta) in bad_frames {
        let mut stream = raw(ext, meta);
        stream.extend(cancel("after"));
        let out = decode_all(&stream, stream.len());
        assert_eq!(out.len(), 2, "{ext:?} {meta:?}");
        let error = out[0].clone().expect_err("refused");
        assert!(!error.is_fatal(), "{error}");
        assert_eq!(
            out[1],
            Ok(PyFrame::Cancel {
                mission: "after".into()
            })
        );
    }
    let out = decode_all(&raw(b"{\"type\": \"ping\"}", b""), 100);
    assert_eq!(out, [Err(PyError::UnknownFrameType("ping".into()))]);
}

#[test]
fn bad_lengths_lose_the_stream_for_good() {
    let limits = PyLimits::default();
    let mut cases: Vec<(Vec<u8>, PyError)> = Vec::new();
    let mut negative_ext = (-1i32).to_le_bytes().to_vec();
    negative_ext.extend(cancel("x"));
    cases.push((
        negative_ext,
        PyError::NegativeLength {
            field: "ext",
            len: -1,
        },
    ));
    let mut huge_ext = i32::MAX.to_le_bytes().to_vec();
    huge_ext.extend([0; 16]);
    cases.push((
        huge_ext,
        PyError::LengthOverLimit {
            field: "ext",
            len: i32::MAX as usize,
            max: limits.max_ext_len,
        },
    ));
    let mut negative_meta = raw(b"{\"type\": \"data\", \"extension\": \"x\"}", b"");
    let at = negative_meta.len() - 4;
    negative_meta[at..].copy_from_slice(&i32::MIN.to_le_bytes());
    cases.push((
        negative_meta,
        PyError::NegativeLength {
            field: "meta",
            len: i32::MIN,
        },
    ));
    let mut big_meta = raw(b"{\"type\": \"data\", \"extension\": \"x\"}", b"");
    let at = big_meta.len() - 4;
    big_meta[at..].copy_from_slice(&((limits.max_meta_len + 1) as i32).to_le_bytes());
    cases.push((
        big_meta,
        PyError::LengthOverLimit {
            field: "meta",
            len: limits.max_meta_len + 1,
            max: limits.max_meta_len,
        },
    ));
    for (stream, expected) in cases {
        let mut decoder = PyDecoder::new(limits.clone());
        let mut src = BytesMut::from(&stream[..]);
        assert_eq!(decoder.decode(&mut src), Err(expected.clone()));
        assert!(expected.is_fatal() && decoder.is_failed());
        assert!(src.is_empty(), "input discarded");
        src.extend_from_slice(&cancel("y"));
        assert_eq!(decoder.decode(&mut src), Err(PyError::StreamLost));
        assert!(src.is_empty());
    }
}

#[test]
fn the_encoder_refuses_what_python_cannot_read() {
    let mut out = BytesMut::new();
    let long_id: String = "a".repeat(3000);
    assert!(matches!(
        encode(&PyFrame::Cancel { mission: long_id }, &mut out),
        Err(PyError::Unsendable { what: "ext", .. })
    ));
    let mut info = Object::new();
    info.push("route", Value::String("r".repeat(5000)));
    assert!(matches!(
        encode(
            &PyFrame::Head {
                mission: "abcdef".into(),
                length: 1,
                info
            },
            &mut out
        ),
        Err(PyError::Unsendable {
            what: "head meta",
            ..
        })
    ));
    for (len, ok) in [(4096, true), (4097, false), (6144, true), (8191, false)] {
        let frame = PyFrame::Data {
            mission: "abcdef".into(),
            chunk: Bytes::from(alloc::vec![0u8; len]),
        };
        assert_eq!(encode(&frame, &mut out).is_ok(), ok, "{len}");
    }
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from_u64),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|entries| Value::Object(Object { entries })),
        ]
    })
}

fn arb_frame() -> impl Strategy<Value = PyFrame> {
    let mission = "\\PC{0,12}";
    prop_oneof![
        (
            mission,
            any::<u64>(),
            proptest::collection::vec(("\\PC{0,12}", arb_value()), 0..4)
        )
            .prop_map(|(mission, length, entries)| PyFrame::Head {
                mission,
                length,
                info: Object { entries }
            }),
        (mission, proptest::collection::vec(any::<u8>(), 0..5000)).prop_map(
            |(mission, mut chunk)| {
                chunk.truncate(if chunk.len() > PY_CHUNK_LEN {
                    4096
                } else {
                    chunk.len()
                });
                PyFrame::Data {
                    mission,
                    chunk: Bytes::from(chunk),
                }
            }
        ),
        mission.prop_map(|mission| PyFrame::Cancel { mission }),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip_in_any_pieces(
        frames in proptest::collection::vec(arb_frame(), 1..8),
        piece in 1usize..600,
    ) {
        let mut stream = BytesMut::new();
        for frame in &frames {
            encode(frame, &mut stream).expect("encodes");
        }
        let decoded: Vec<PyFrame> = decode_all(&stream, piece)
            .into_iter()
            .map(|r| r.expect("decodes"))
            .collect();
        prop_assert_eq!(decoded, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_bounded(
        stream in proptest::collection::vec(any::<u8>(), 0..2000),
        piece in 1usize..64,
    ) {
        let limits = PyLimits { max_ext_len: 64, max_meta_len: 256, max_json_depth: 4 };
        let mut decoder = PyDecoder::new(limits);
        let mut src = BytesMut::new();
        for chunk in stream.chunks(piece) {
            src.extend_from_slice(chunk);
            loop {
                let before = src.len();
                match decoder.decode(&mut src) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) if e.is_fatal() => { prop_assert!(src.is_empty()); break }
                    Err(_) => prop_assert!(src.len() < before),
                }
            }
            prop_assert!(src.len() < 8 + 64 + 256);
        }
    }
}
