//! Frame codec tests: exact layouts, round trips of every kind, hostile input.

use super::*;
use crate::error::ErrorCode;
use crate::ids::{MessageKind, Priority};
use alloc::string::String;
use alloc::vec;
use proptest::prelude::*;

fn round_trip(env: &Envelope) -> Envelope {
    let bytes = env.to_bytes();
    assert_eq!(bytes.len(), env.encoded_len(), "encoded_len of {env:?}");
    Envelope::decode(Bytes::from(bytes)).expect("decodes")
}

#[test]
fn small_one_way_message_is_one_five_byte_head() {
    // The overhead budget (ARCHITECTURE.md, "Overhead"): type, stream, meta, route.
    let mut open = Open::new(StreamId(1), MessageKind::OneWay, "t");
    open.payload = Bytes::from_static(&[0xaa; 16]);
    open.fin = true;
    let env = Envelope::from(Frame::Open(open));
    let bytes = env.to_bytes();
    assert_eq!(&bytes[..5], &[0x11, 0x01, 0x48, 0x01, b't']);
    assert_eq!(bytes.len(), 16 + 5);
    assert_eq!(round_trip(&env), env);
}

#[test]
fn data_frame_layout() {
    let env = Envelope {
        seq: Some(7),
        frame: Frame::Data(Data {
            stream: StreamId(300),
            payload: Bytes::from_static(b"xy"),
            fin: false,
        }),
    };
    assert_eq!(env.to_bytes(), vec![0x28, 7, 0xac, 0x02, b'x', b'y']);
    assert_eq!(round_trip(&env), env);
}

#[test]
fn undefined_bits_are_rejected() {
    // FIN on an END frame.
    assert_eq!(
        Envelope::decode(Bytes::from_static(&[0x31, 0x01])),
        Err(DecodeError::ReservedBits {
            frame: "END",
            bits: FIN
        })
    );
    assert_eq!(
        Envelope::decode(Bytes::from_static(&[0x22, 0x01])),
        Err(DecodeError::ReservedBits {
            frame: "DATA",
            bits: RESERVED
        })
    );
    assert!(matches!(
        Envelope::decode(Bytes::from_static(&[0x24, 0x01])),
        Err(DecodeError::Unsupported { .. })
    ));
    assert_eq!(
        Envelope::decode(Bytes::from_static(&[0xf0])),
        Err(DecodeError::UnknownFrameType(0xf))
    );
    assert_eq!(
        Envelope::decode(Bytes::new()),
        Err(DecodeError::Truncated { field: "type" })
    );
    // OPEN meta with the reserved bit.
    assert!(matches!(
        Envelope::decode(Bytes::from_static(&[0x10, 0x01, 0x80])),
        Err(DecodeError::ReservedBits { frame: "OPEN", .. })
    ));
    // Trailing bytes after END.
    assert_eq!(
        Envelope::decode(Bytes::from_static(&[0x30, 0x01, 0x00])),
        Err(DecodeError::TrailingBytes {
            frame: "END",
            len: 1
        })
    );
    // HELLO without magic.
    assert_eq!(
        Envelope::decode(Bytes::from_static(&[0x00, b'X', b'C', 0x01])),
        Err(DecodeError::BadMagic)
    );
}

#[test]
fn open_total_must_match_a_fin_payload() {
    let mut open = Open::new(StreamId(2), MessageKind::Request, "r");
    open.total_len = Some(3);
    open.payload = Bytes::from_static(b"ab");
    open.fin = true;
    let bytes = Envelope::from(Frame::Open(open)).to_bytes();
    assert!(matches!(
        Envelope::decode(Bytes::from(bytes)),
        Err(DecodeError::InvalidValue {
            field: "open.total",
            ..
        })
    ));
}

#[test]
fn hello_skips_unknown_parameters() {
    let hello = Hello::new(42);
    let mut bytes = Envelope::from(Frame::Hello(hello)).to_bytes();
    // tag 99, len 2, value
    bytes.extend_from_slice(&[99, 2, 0xde, 0xad]);
    let decoded = Envelope::decode(Bytes::from(bytes)).expect("decodes");
    assert_eq!(decoded.frame, Frame::Hello(hello));
}

#[test]
fn the_spec_examples_and_defaults_hold() {
    // ARCHITECTURE.md, "HELLO": nonce 7, everything else absent, takes the defaults.
    let decoded = Envelope::decode(Bytes::from_static(&[
        0x00, b'N', b'C', 0x01, 0x01, 0x01, 0x07,
    ]))
    .expect("decodes");
    assert_eq!(decoded.frame, Frame::Hello(Hello::new(7)));
    assert_eq!(Hello::new(7).max_frame_len, 131_072);
    assert_eq!(Hello::new(7).stream_window, 4 * 1024 * 1024);
    assert_eq!(Hello::new(7).link_window, 16 * 1024 * 1024);
    assert_eq!(MIN_MAX_FRAME_LEN, 42_212);
}

#[test]
fn too_many_entries_are_counted_as_entries() {
    // A HELLO with 33 parameters.
    let mut bytes = vec![0x00, b'N', b'C', 0x01];
    for tag in 0..33u8 {
        bytes.extend_from_slice(&[20 + tag, 1, 0]);
    }
    let err = Envelope::decode(Bytes::from(bytes)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TooManyEntries {
            field: "hello.params",
            count: 33,
            max: 32
        }
    );
    assert_eq!(
        alloc::format!("{err}"),
        "`hello.params` has 33 entries, limit 32"
    );
    // An OPEN with 33 headers, decoded and validated.
    let mut bytes = vec![0x11, 0x02, 0x21, 33];
    for _ in 0..33 {
        bytes.extend_from_slice(&[1, b'h', 1, b'v']);
    }
    let err = Envelope::decode(Bytes::from(bytes)).unwrap_err();
    assert!(
        alloc::format!("{err}").contains("33 entries, limit 32"),
        "{err}"
    );
    let mut open = Open::new(StreamId(2), MessageKind::Request, "r");
    open.headers = vec![(String::from("h"), Bytes::new()); 33];
    assert!(matches!(
        open.validate(),
        Err(DecodeError::TooManyEntries { count: 33, .. })
    ));
}

pub(crate) fn arb_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..max)
        .prop_map(|chars| chars.into_iter().collect::<String>())
        .prop_filter("fits", move |s| s.len() <= max * 4)
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn arb_code() -> impl Strategy<Value = ErrorCode> {
    (0u64..40).prop_map(ErrorCode::from_wire)
}

fn arb_open() -> impl Strategy<Value = Open> {
    (
        any::<u64>(),
        0u8..4,
        0u8..4,
        arb_text(12),
        arb_code(),
        proptest::collection::vec((arb_text(6), arb_bytes(8)), 0..3),
        arb_bytes(64),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(id, kind, prio, route, code, headers, payload, fin, with_total)| {
                let kind = MessageKind::from_bits(kind);
                let total_len = if fin || with_total {
                    with_total.then_some(payload.len() as u64 + if fin { 0 } else { 5 })
                } else {
                    None
                };
                Open {
                    stream: StreamId(id),
                    kind,
                    priority: Priority::from_bits(prio),
                    route,
                    code: (kind == MessageKind::ErrorResponse).then_some(code),
                    total_len,
                    headers,
                    payload,
                    fin,
                }
            },
        )
}

pub(crate) fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::option::of((any::<u64>(), any::<u64>())),
            proptest::option::of(any::<[u8; 16]>())
        )
            .prop_map(
                |(
                    version,
                    nonce,
                    max_frame_len,
                    stream_window,
                    link_window,
                    features,
                    session,
                    resume_proof,
                )| {
                    Frame::Hello(Hello {
                        version,
                        nonce,
                        max_frame_len,
                        stream_window,
                        link_window,
                        features,
                        session: session.map(|(id, received)| SessionResume { id, received }),
                        resume_proof,
                    })
                }
            ),
        arb_open().prop_map(Frame::Open),
        (any::<u64>(), arb_bytes(64), any::<bool>()).prop_map(|(id, payload, fin)| Frame::Data(
            Data {
                stream: StreamId(id),
                payload,
                fin
            }
        )),
        any::<u64>().prop_map(|id| Frame::End(End {
            stream: StreamId(id)
        })),
        (any::<u64>(), arb_code()).prop_map(|(id, code)| Frame::Cancel(Cancel {
            stream: StreamId(id),
            code
        })),
        (any::<u8>(), any::<u128>())
            .prop_map(|(next, selective)| Frame::Ack(Ack { next, selective })),
        any::<u64>().prop_map(|opaque| Frame::Ping(Ping { opaque })),
        any::<u64>().prop_map(|opaque| Frame::Pong(Pong { opaque })),
        (any::<u64>(), any::<u64>()).prop_map(|(id, increment)| Frame::Credit(Credit {
            stream: StreamId(id),
            increment
        })),
        (any::<u64>(), arb_code(), arb_text(40))
            .prop_filter("reason fits", |(_, _, r)| r.len() <= MAX_REASON_LEN)
            .prop_map(|(id, code, reason)| Frame::GoAway(GoAway {
                last_stream: StreamId(id),
                code,
                reason
            })),
    ]
}

pub(crate) fn arb_envelope() -> impl Strategy<Value = Envelope> {
    (proptest::option::of(any::<u8>()), arb_frame())
        .prop_map(|(seq, frame)| Envelope { seq, frame })
}

/// The check of the `frame` fuzz target (`fuzz/fuzz_targets/frame.rs`), whose
/// stable twins are the proptests below: if `Envelope::decode` accepts `bytes`,
/// the envelope re-encodes in `encoded_len` bytes to something that decodes to the
/// same envelope. Returns whether `bytes` were accepted.
fn accepted_bytes_round_trip(bytes: &[u8]) -> Result<bool, TestCaseError> {
    let Ok(env) = Envelope::decode(Bytes::copy_from_slice(bytes)) else {
        return Ok(false);
    };
    let again = env.to_bytes();
    prop_assert_eq!(again.len(), env.encoded_len(), "encoded_len of {:?}", env);
    let decoded = Envelope::decode(Bytes::from(again));
    prop_assert_eq!(decoded, Ok(env), "decoded from {:02x?}", bytes);
    Ok(true)
}

/// Arbitrary bytes, half of them behind a type byte of a known kind with valid
/// flags (FIN, SEQ), so that many decode.
fn arb_frame_bytes() -> impl Strategy<Value = Vec<u8>> {
    let type_byte = prop_oneof![
        any::<u8>(),
        (
            0u8..10,
            proptest::sample::select(&[0, FIN, SEQ, FIN | SEQ][..])
        )
            .prop_map(|(kind, flags)| kind << 4 | flags),
    ];
    (type_byte, proptest::collection::vec(any::<u8>(), 0..256)).prop_map(|(first, mut rest)| {
        rest.insert(0, first);
        rest
    })
}

/// One edit of an encoded frame.
#[derive(Clone, Debug)]
enum Edit {
    /// XOR a byte with a nonzero mask.
    Flip(prop::sample::Index, u8),
    /// Overwrite a byte.
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Truncate(prop::sample::Index),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(at, mask)| Edit::Flip(at, mask)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Set(at, byte)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert(at, byte)),
        any::<prop::sample::Index>().prop_map(Edit::Remove),
        any::<prop::sample::Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    if bytes.is_empty() {
        return;
    }
    let len = bytes.len();
    match edit {
        Edit::Flip(at, mask) => bytes[at.index(len)] ^= mask,
        Edit::Set(at, byte) => bytes[at.index(len)] = *byte,
        Edit::Insert(at, byte) => bytes.insert(at.index(len + 1), *byte),
        Edit::Remove(at) => {
            bytes.remove(at.index(len));
        }
        Edit::Truncate(at) => bytes.truncate(at.index(len)),
    }
}

proptest! {
    #[test]
    fn every_frame_round_trips(env in arb_envelope()) {
        prop_assert_eq!(round_trip(&env), env);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Arbitrary bytes: `decode` never panics, and whatever it accepts re-encodes
    /// to the same envelope (the `frame` fuzz target's check).
    #[test]
    fn accepted_arbitrary_bytes_re_encode_to_the_same_envelope(bytes in arb_frame_bytes()) {
        accepted_bytes_round_trip(&bytes)?;
    }

    /// Valid frames of every kind with up to three byte edits: most still decode
    /// (many to a different envelope), and each accepted one re-encodes to the same
    /// envelope: the fuzz target's check on inputs the decoder accepts.
    #[test]
    fn accepted_edited_frames_re_encode_to_the_same_envelope(
        env in arb_envelope(),
        edits in proptest::collection::vec(arb_edit(), 0..4),
    ) {
        let mut bytes = env.to_bytes();
        for edit in &edits {
            apply(&mut bytes, edit);
        }
        let accepted = accepted_bytes_round_trip(&bytes)?;
        prop_assert!(accepted || !edits.is_empty(), "a valid frame was refused: {:?}", env);
    }
}

proptest! {

    #[test]
    fn truncated_frames_fail_cleanly(env in arb_envelope(), cut in any::<prop::sample::Index>()) {
        let bytes = env.to_bytes();
        let cut = cut.index(bytes.len());
        // Any prefix either fails with a typed error or decodes (payload-carrying
        // frames have no length of their own); it never panics.
        let _ = Envelope::decode(Bytes::copy_from_slice(&bytes[..cut]));
    }
}
