//! The message-level session: Python's chunking out, limits and quirks in, and two
//! sessions talking through the codec.

use super::frame::{encode, to_bytes, PY_CHUNK_LEN};
use super::json::{Object, Value};
use super::session::{PyInbound, PySession, PySessionLimits};
use super::{PyDecoder, PyError, PyFrame, PyLimits};
use crate::time::Instant;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::time::Duration;
use proptest::prelude::*;

const T0: Instant = Instant::ZERO;

fn drain(session: &mut PySession) -> Vec<PyFrame> {
    core::iter::from_fn(|| session.poll_frame()).collect()
}

fn head(mission: &str, length: u64, info: &[(&str, Value)]) -> PyFrame {
    let mut object = Object::new();
    for (k, v) in info {
        object.push(*k, v.clone());
    }
    PyFrame::Head {
        mission: mission.into(),
        length,
        info: object,
    }
}

fn request_head(mission: &str, length: u64, route: &str, id: &str) -> PyFrame {
    head(
        mission,
        length,
        &[
            ("route", Value::String(route.into())),
            ("message_id", Value::String(id.into())),
        ],
    )
}

fn data(mission: &str, chunk: &[u8]) -> PyFrame {
    PyFrame::Data {
        mission: mission.into(),
        chunk: Bytes::copy_from_slice(chunk),
    }
}

fn request_body(inbound: Option<PyInbound>) -> Bytes {
    match inbound {
        Some(PyInbound::Request(m)) => m.body,
        other => panic!("not a request: {other:?}"),
    }
}

#[test]
fn a_request_goes_out_as_python_sends_it() {
    let mut session = PySession::new(PySessionLimits::default(), 7);
    let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let out = session
        .request("size", Object::new(), Bytes::from(body.clone()))
        .expect("queued");
    assert_eq!(out.mission.len(), 6);
    assert_eq!(out.message_id.len(), 8);
    assert!(out
        .mission
        .chars()
        .chain(out.message_id.chars())
        .all(|c| c.is_ascii_alphanumeric()));
    let frames = drain(&mut session);
    // The capture size_request_3_chunks, with this session's ids.
    let mut expected = vec![request_head(&out.mission, 10_000, "size", &out.message_id)];
    for chunk in body.chunks(PY_CHUNK_LEN) {
        expected.push(data(&out.mission, chunk));
    }
    assert_eq!(frames, expected);
    let head = to_bytes(&frames[0]).expect("encodes");
    let meta = &head[8 + 19..];
    assert_eq!(
        meta,
        alloc::format!(
            "{{\"extension\": \"{}\", \"length\": 10000, \"info\": {{\"route\": \"size\", \"message_id\": \"{}\"}}}}",
            out.mission, out.message_id
        )
        .as_bytes()
    );
}

#[test]
fn responses_carry_the_request_id_as_python_handlers_and_send_response_do() {
    let mut session = PySession::new(PySessionLimits::default(), 1);
    let m = session
        .respond(Some("echo"), "0kPqqAw0", Bytes::from_static(b"{\"x\": 1}"))
        .expect("queued");
    let m2 = session
        .respond(None, "abc", Bytes::from_static(b"x"))
        .expect("queued");
    let frames = drain(&mut session);
    assert_eq!(
        frames[0],
        head(
            &m,
            8,
            &[
                ("route", Value::String("echo".into())),
                ("is_response", Value::Bool(true)),
                ("message_id", Value::String("0kPqqAw0".into())),
            ]
        )
    );
    assert_eq!(
        frames[1],
        head(
            &m2,
            1,
            &[
                ("is_response", Value::Bool(true)),
                ("message_id", Value::String("abc".into())),
            ]
        )
    );
}

#[test]
fn missions_interleave_one_chunk_per_pass_after_their_heads() {
    let mut session = PySession::new(PySessionLimits::default(), 3);
    let a = session
        .request("a", Object::new(), Bytes::from(vec![1u8; 3 * PY_CHUNK_LEN]))
        .expect("a");
    let b = session
        .request("b", Object::new(), Bytes::from(vec![2u8; 2 * PY_CHUNK_LEN]))
        .expect("b");
    let order: Vec<(&str, String)> = drain(&mut session)
        .iter()
        .map(|f| match f {
            PyFrame::Head { mission, .. } => ("head", mission.clone()),
            PyFrame::Data { mission, .. } => ("data", mission.clone()),
            PyFrame::Cancel { mission } => ("cancel", mission.clone()),
        })
        .collect();
    let (a, b) = (a.mission, b.mission);
    assert_eq!(
        order,
        [
            ("head", a.clone()),
            ("head", b.clone()),
            ("data", a.clone()),
            ("data", b.clone()),
            ("data", a.clone()),
            ("data", b),
            ("data", a),
        ]
    );
}

#[test]
fn what_python_would_lose_is_refused() {
    let mut session = PySession::new(PySessionLimits::default(), 3);
    assert_eq!(
        session.request("r", Object::new(), Bytes::new()),
        Err(PyError::EmptyBody)
    );
    assert_eq!(
        session.respond(None, "m", Bytes::new()),
        Err(PyError::EmptyBody)
    );
    let long_route = "r".repeat(5000);
    assert!(matches!(
        session.request(&long_route, Object::new(), Bytes::from_static(b"x")),
        Err(PyError::Unsendable {
            what: "head meta",
            ..
        })
    ));
    let mut headers = Object::new();
    headers.push("message_id", Value::String("forged".into()));
    assert!(matches!(
        session.request("r", headers, Bytes::from_static(b"x")),
        Err(PyError::BadField { .. })
    ));
    assert!(!session.wants_to_send());
    assert_eq!(session.pending_requests(), 0);
}

#[test]
fn cancel_before_the_head_sends_nothing_after_it_sends_a_cancel() {
    let mut session = PySession::new(PySessionLimits::default(), 3);
    let a = session
        .request("a", Object::new(), Bytes::from(vec![1u8; 3 * PY_CHUNK_LEN]))
        .expect("a");
    assert!(session.cancel(&a.mission));
    assert!(drain(&mut session).is_empty());
    let b = session
        .request("b", Object::new(), Bytes::from(vec![1u8; 3 * PY_CHUNK_LEN]))
        .expect("b");
    let first = session.poll_frame().expect("head");
    assert!(matches!(first, PyFrame::Head { .. }));
    assert!(matches!(session.poll_frame(), Some(PyFrame::Data { .. })));
    assert!(session.cancel(&b.mission));
    assert_eq!(
        drain(&mut session),
        [PyFrame::Cancel {
            mission: b.mission.clone()
        }]
    );
    assert!(!session.cancel(&b.mission), "already cancelled");
}

#[test]
fn inbound_messages_complete_and_zero_byte_bodies_complete_at_their_head() {
    let mut s = PySession::new(PySessionLimits::default(), 1);
    let zero = s.handle_frame(request_head("rbm6QD", 0, "size", "LBzDQ9Hg"), T0);
    assert_eq!(request_body(zero.expect("ok")), Bytes::new());
    assert_eq!(
        s.handle_frame(request_head("qIq8qA", 8, "echo", "0kPqqAw0"), T0),
        Ok(None)
    );
    assert_eq!(s.committed(), 8);
    let done = s
        .handle_frame(data("qIq8qA", b"{\"x\": 1}"), T0)
        .expect("ok");
    let Some(PyInbound::Request(message)) = done else {
        panic!("request")
    };
    assert_eq!(message.route(), Some("echo"));
    assert_eq!(message.message_id(), Some("0kPqqAw0"));
    assert!(!message.is_response());
    assert_eq!(&message.body[..], b"{\"x\": 1}");
    assert_eq!((s.committed(), s.missions_in()), (0, 0));
}

#[test]
fn data_ahead_of_its_head_is_stashed_briefly() {
    let mut s = PySession::new(PySessionLimits::default(), 1);
    assert_eq!(s.handle_frame(data("early1", b"ab"), T0), Ok(None));
    let done = s
        .handle_frame(request_head("early1", 3, "r", "m1"), T0)
        .expect("ok");
    assert_eq!(done, None);
    assert_eq!(
        &request_body(s.handle_frame(data("early1", b"c"), T0).expect("ok"))[..],
        b"abc"
    );
    assert_eq!(s.stats().early_frames_applied, 1);
    // The whole body ahead of its head completes at the head.
    assert_eq!(s.handle_frame(data("early2", b"xy"), T0), Ok(None));
    let done = s
        .handle_frame(request_head("early2", 2, "r", "m2"), T0)
        .expect("ok");
    assert_eq!(&request_body(done)[..], b"xy");
    // Stashed data expires; a full stash refuses more.
    let limits = PySessionLimits::default();
    for i in 0..limits.max_early_frames {
        assert_eq!(
            s.handle_frame(data(&alloc::format!("u{i}"), b"z"), T0),
            Ok(None)
        );
    }
    assert_eq!(
        s.handle_frame(data("over", b"z"), T0),
        Err(PyError::UnknownMission {
            mission: "over".into()
        })
    );
    assert_eq!(
        s.next_timeout(),
        Some(T0 + limits.early_data_ttl),
        "stash expiry"
    );
    assert!(s.handle_timeout(T0 + Duration::from_millis(999)).is_empty());
    let expired = s.handle_timeout(T0 + limits.early_data_ttl);
    assert_eq!(expired.len(), limits.max_early_frames);
    assert_eq!(s.next_timeout(), None);
}

#[test]
fn limits_refuse_missions_and_drop_their_data_quietly() {
    let limits = PySessionLimits {
        max_body_len: 100,
        max_buffered: 150,
        max_missions: 3,
        ..PySessionLimits::default()
    };
    let mut s = PySession::new(limits, 1);
    assert_eq!(
        s.handle_frame(request_head("big", 101, "r", "m"), T0),
        Err(PyError::BodyTooLarge {
            length: 101,
            max: 100
        })
    );
    // Its data is dropped without errors, and the mission ends with its length.
    assert_eq!(s.handle_frame(data("big", &[0; 100]), T0), Ok(None));
    assert_eq!(s.handle_frame(data("big", &[0; 1]), T0), Ok(None));
    assert_eq!(s.missions_in(), 0);
    assert_eq!(
        s.handle_frame(request_head("a", 100, "r", "m"), T0),
        Ok(None)
    );
    assert_eq!(
        s.handle_frame(request_head("b", 51, "r", "m"), T0),
        Err(PyError::BufferFull {
            length: 51,
            buffered: 100,
            max: 150
        })
    );
    assert_eq!(
        s.handle_frame(request_head("c", 50, "r", "m"), T0),
        Ok(None)
    );
    assert_eq!(
        s.handle_frame(request_head("d", 1, "r", "m"), T0),
        Err(PyError::TooManyMissions { max: 3 })
    );
    assert_eq!(s.committed(), 150);
    // Data beyond the announced length drops the mission.
    assert!(matches!(
        s.handle_frame(data("c", &[0; 51]), T0),
        Err(PyError::DataBeyondLength {
            length: 50,
            received: 51,
            ..
        })
    ));
    assert_eq!(s.committed(), 100);
    // A repeated head resets; an idle mission expires.
    assert_eq!(s.handle_frame(data("a", &[0; 10]), T0), Ok(None));
    assert_eq!(
        s.handle_frame(request_head("a", 20, "r", "m"), T0),
        Ok(None)
    );
    assert_eq!((s.committed(), s.stats().heads_repeated), (20, 1));
    let idle = PySessionLimits::default().mission_idle_timeout;
    let expired = s.handle_timeout(T0 + idle);
    assert!(expired
        .iter()
        .any(|e| matches!(e, PyError::MissionExpired { mission, .. } if mission == "a")));
    assert_eq!((s.committed(), s.missions_in()), (0, 0));
}

#[test]
fn cancels_end_missions_and_odd_ones_are_ignored() {
    let mut s = PySession::new(PySessionLimits::default(), 1);
    assert_eq!(
        s.handle_frame(request_head("TXi4dl", 262_144, "size", "m"), T0),
        Ok(None)
    );
    let cancel = |m: &str| PyFrame::Cancel { mission: m.into() };
    assert_eq!(
        s.handle_frame(cancel("TXi4dl"), T0),
        Ok(Some(PyInbound::Cancelled {
            mission: "TXi4dl".into()
        }))
    );
    assert_eq!(s.committed(), 0);
    assert_eq!(s.handle_frame(cancel("TXi4dl"), T0), Ok(None));
    assert_eq!(s.handle_frame(cancel("never"), T0), Ok(None));
    assert_eq!(s.stats().cancels_ignored, 2);
}

#[test]
fn responses_match_pending_requests_and_strays_are_never_routed() {
    let mut s = PySession::new(PySessionLimits::default(), 9);
    let out = s
        .request("echo", Object::new(), Bytes::from_static(b"hi"))
        .expect("queued");
    drain(&mut s);
    let response = |mission: &str, id: &str| {
        head(
            mission,
            0,
            &[
                ("route", Value::String("echo".into())),
                ("is_response", Value::Bool(true)),
                ("message_id", Value::String(id.into())),
            ],
        )
    };
    // Not ours: dropped, never routed (two echo servers would bounce it forever).
    assert_eq!(
        s.handle_frame(response("r1", "stranger"), T0),
        Err(PyError::UnsolicitedResponse {
            message_id: "stranger".into()
        })
    );
    let got = s.handle_frame(response("r2", &out.message_id), T0);
    assert!(matches!(got, Ok(Some(PyInbound::Response(_)))));
    assert_eq!(s.pending_requests(), 0);
    // A second (late) answer to it is a stray.
    assert!(matches!(
        s.handle_frame(response("r3", &out.message_id), T0),
        Err(PyError::UnsolicitedResponse { .. })
    ));
    // A forgotten request's response is a stray too.
    let out = s
        .request("echo", Object::new(), Bytes::from_static(b"hi"))
        .expect("queued");
    assert!(s.forget_request(&out.message_id));
    assert!(s.handle_frame(response("r4", &out.message_id), T0).is_err());
    // A message with neither a known id nor a route cannot be routed.
    assert_eq!(
        s.handle_frame(head("r5", 0, &[]), T0),
        Err(PyError::MissingField {
            field: "info.route"
        })
    );
}

/// Frames from `from` through the codec (in `piece`-byte reads) into `to`.
fn pump(from: &mut PySession, to: &mut PySession, piece: usize) -> Vec<PyInbound> {
    let mut wire = BytesMut::new();
    while let Some(frame) = from.poll_frame() {
        encode(&frame, &mut wire).expect("encodes");
    }
    let mut decoder = PyDecoder::new(PyLimits::default());
    let mut src = BytesMut::new();
    let mut out = Vec::new();
    for chunk in wire.chunks(piece) {
        src.extend_from_slice(chunk);
        while let Some(frame) = decoder.decode(&mut src).expect("decodes") {
            if let Some(inbound) = to.handle_frame(frame, T0).expect("accepted") {
                out.push(inbound);
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn requests_and_responses_cross_intact(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..12_000), 1..6),
        piece in 1usize..5000,
        seed in any::<u64>(),
    ) {
        let mut client = PySession::new(PySessionLimits::default(), seed);
        let mut server = PySession::new(PySessionLimits::default(), seed ^ 0xFFFF);
        let mut sent = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            let route = alloc::format!("route{i}");
            let out = client
                .request(&route, Object::new(), Bytes::from(body.clone()))
                .expect("queued");
            sent.push((route, out, body.clone()));
        }
        let requests = pump(&mut client, &mut server, piece);
        prop_assert_eq!(requests.len(), sent.len());
        for inbound in requests {
            let PyInbound::Request(message) = inbound else {
                panic!("request expected")
            };
            let (route, out, body) = sent
                .iter()
                .find(|(_, out, _)| Some(out.message_id.as_str()) == message.message_id())
                .expect("a sent request");
            prop_assert_eq!(message.route(), Some(route.as_str()));
            prop_assert_eq!(&message.body[..], &body[..]);
            prop_assert_eq!(&message.mission, &out.mission);
            // Echo it back reversed, as the route's handler would answer.
            let mut answer = body.clone();
            answer.reverse();
            server
                .respond(message.route(), &out.message_id, Bytes::from(answer))
                .expect("queued");
        }
        let responses = pump(&mut server, &mut client, piece);
        prop_assert_eq!(responses.len(), sent.len());
        for inbound in responses {
            let PyInbound::Response(message) = inbound else {
                panic!("response expected")
            };
            let (_, _, body) = sent
                .iter()
                .find(|(_, out, _)| Some(out.message_id.as_str()) == message.message_id())
                .expect("answers a request");
            let mut answer = body.clone();
            answer.reverse();
            prop_assert_eq!(&message.body[..], &answer[..]);
        }
        prop_assert_eq!(client.pending_requests(), 0);
        prop_assert_eq!((server.committed(), client.committed()), (0, 0));
    }

    #[test]
    fn arbitrary_frames_keep_the_session_bounded(
        ops in proptest::collection::vec((0u8..4, 0u8..6, 0u64..300, 0usize..120), 0..200),
    ) {
        let limits = PySessionLimits {
            max_body_len: 200,
            max_buffered: 400,
            max_missions: 4,
            max_early_frames: 3,
            ..PySessionLimits::default()
        };
        let mut s = PySession::new(limits.clone(), 5);
        let mut now = T0;
        for (kind, id, length, len) in ops {
            let mission = alloc::format!("m{id}");
            let frame = match kind {
                0 => request_head(&mission, length, "r", "x"),
                1 | 2 => data(&mission, &vec![7u8; len]),
                _ => PyFrame::Cancel { mission },
            };
            now = now + Duration::from_millis(length);
            let _ = s.handle_frame(frame, now);
            let _ = s.handle_timeout(now);
            prop_assert!(s.committed() <= limits.max_buffered);
            prop_assert!(s.missions_in() <= limits.max_missions);
        }
    }
}
