//! The bridge between a local native link and a Python session: calls both ways,
//! error answers, 0-byte bodies, cancellation both ways, fatal errors, and a property
//! test of random calls both ways with nothing left behind.

use super::bridge::{BridgeError, PyBridge, PyBridgeConfig, ERROR_HEADER, ROUTE_HEADER};
use super::frame::encode;
use super::json::{Object, Value};
use super::session::{PyInbound, PyMessage, PySession, PySessionLimits};
use super::{PyDecoder, PyError, PyFrame, PyLimits};
use crate::error::ErrorCode;
use crate::frame::header_value;
use crate::ids::{MessageKind, StreamId};
use crate::link::{Link, LinkConfig, LinkEvent, Message};
use crate::reassembly::MessageHead;
use crate::time::Instant;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

/// A local native link, a bridge, and a Python session as the bridge's peer, wired
/// together in memory.
struct Harness {
    local: Link,
    bridge: PyBridge,
    py: PySession,
    py_decoder: PyDecoder,
    now: Instant,
    /// Complete messages the local side received.
    local_in: Vec<(MessageHead, Bytes)>,
    /// Streams the local side saw canceled, with the code.
    local_canceled: Vec<(StreamId, ErrorCode)>,
    /// What the Python session completed.
    py_in: Vec<PyInbound>,
    /// Errors the bridge reported.
    errors: Vec<BridgeError>,
    /// Errors of the Python peer's session.
    py_errors: Vec<PyError>,
}

impl Harness {
    fn new() -> Harness {
        let mut harness = Harness {
            local: Link::new(LinkConfig::stream(7), None),
            bridge: PyBridge::new(PyBridgeConfig::new(PySessionLimits::default(), 11, 8)),
            py: PySession::new(PySessionLimits::default(), 13),
            py_decoder: PyDecoder::new(PyLimits::default()),
            now: Instant::ZERO,
            local_in: Vec::new(),
            local_canceled: Vec::new(),
            py_in: Vec::new(),
            errors: Vec::new(),
            py_errors: Vec::new(),
        };
        harness.pump();
        assert!(harness.local.is_connected() && harness.bridge.is_connected());
        harness
    }

    /// Moves bytes every way until nothing moves.
    fn pump(&mut self) {
        for _ in 0..100_000 {
            self.now = Instant::from_micros(self.now.as_micros() + 10);
            let mut moved = false;
            let mut buf = BytesMut::new();
            while self.local.poll_transmit(&mut buf) > 0 {}
            if !buf.is_empty() {
                moved = true;
                self.bridge.handle_local(&buf, self.now);
            }
            let mut buf = BytesMut::new();
            while self.bridge.poll_local(&mut buf, 1 << 20) > 0 {}
            if !buf.is_empty() {
                moved = true;
                self.local
                    .handle_input(&buf, self.now)
                    .expect("local input");
            }
            let mut buf = BytesMut::new();
            while self.bridge.poll_py(&mut buf, 1 << 20) > 0 {}
            if !buf.is_empty() {
                moved = true;
                self.py_input(&mut buf);
            }
            let mut buf = BytesMut::new();
            while let Some(frame) = self.py.poll_frame() {
                encode(&frame, &mut buf).expect("encodes");
            }
            if !buf.is_empty() {
                moved = true;
                self.bridge.handle_py(&buf, self.now);
            }
            while let Some(event) = self.local.poll_event() {
                match event {
                    LinkEvent::Message { head, body } => self.local_in.push((head, body)),
                    LinkEvent::Canceled { stream, code } => {
                        self.local_canceled.push((stream, code))
                    }
                    _ => {}
                }
            }
            while let Some(error) = self.bridge.poll_error() {
                self.errors.push(error);
            }
            if !moved {
                return;
            }
        }
        panic!("the harness never settled");
    }

    fn py_input(&mut self, buf: &mut BytesMut) {
        loop {
            match self.py_decoder.decode(buf) {
                Ok(Some(frame)) => match self.py.handle_frame(frame, self.now) {
                    Ok(Some(inbound)) => self.py_in.push(inbound),
                    Ok(None) => {}
                    Err(error) => self.py_errors.push(error),
                },
                Ok(None) => return,
                Err(error) => panic!("the bridge wrote a bad frame: {error}"),
            }
        }
    }

    /// Python requests received, taken out.
    fn py_requests(&mut self) -> Vec<PyMessage> {
        let (requests, rest) = core::mem::take(&mut self.py_in)
            .into_iter()
            .partition::<Vec<_>, _>(|i| matches!(i, PyInbound::Request(_)));
        self.py_in = rest;
        requests
            .into_iter()
            .filter_map(|i| match i {
                PyInbound::Request(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Python responses received, taken out.
    fn py_responses(&mut self) -> Vec<PyMessage> {
        let (responses, rest) = core::mem::take(&mut self.py_in)
            .into_iter()
            .partition::<Vec<_>, _>(|i| matches!(i, PyInbound::Response(_)));
        self.py_in = rest;
        responses
            .into_iter()
            .filter_map(|i| match i {
                PyInbound::Response(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Local messages received of `kind`, taken out.
    fn local_of(&mut self, kind: MessageKind) -> Vec<(MessageHead, Bytes)> {
        let (of, rest) = core::mem::take(&mut self.local_in)
            .into_iter()
            .partition::<Vec<_>, _>(|(h, _)| h.kind == kind);
        self.local_in = rest;
        of
    }

    /// Python sends a raw frame.
    fn py_send_frame(&mut self, frame: &PyFrame) {
        let mut buf = BytesMut::new();
        encode(frame, &mut buf).expect("encodes");
        self.bridge.handle_py(&buf, self.now);
        self.pump();
    }
}

fn text(bytes: &[u8]) -> &str {
    core::str::from_utf8(bytes).expect("utf-8")
}

#[test]
fn a_local_call_reaches_python_and_its_answer_comes_back() {
    let mut h = Harness::new();
    let mut message = Message::new("echo", vec![5u8; 10_000]);
    message
        .headers
        .push(("trace".into(), Bytes::from_static(b"abc")));
    let stream = h.local.request(message).expect("request");
    h.pump();
    let [request] = &h.py_requests()[..] else {
        panic!("one request expected");
    };
    assert_eq!(request.route(), Some("echo"));
    assert_eq!(&request.body[..], &[5u8; 10_000][..]);
    assert_eq!(request.info.get_str("trace"), Some("abc"));
    let id = request.message_id().expect("id").to_string();
    let mut headers = Object::new();
    headers.push("n", Value::from_u64(3));
    h.py.respond_with(Some("echoed"), &id, headers, Bytes::from_static(b"back"))
        .expect("respond");
    h.pump();
    let [(head, body)] = &h.local_of(MessageKind::Response)[..] else {
        panic!("one response expected");
    };
    assert_eq!(head.stream, stream);
    assert_eq!(&body[..], b"back");
    assert_eq!(
        header_value(&head.headers, ROUTE_HEADER),
        Some(&b"echoed"[..])
    );
    assert_eq!(header_value(&head.headers, "n"), Some(&b"3"[..]));
    assert!(h.bridge.is_quiet(), "nothing left behind");
    assert_eq!(h.bridge.stats().calls_to_py, 1);
}

#[test]
fn a_python_call_reaches_the_local_side_and_its_answer_goes_back() {
    let mut h = Harness::new();
    let mut headers = Object::new();
    headers.push("user", Value::String("ada".into()));
    headers.push("flags", Value::Array(vec![Value::Bool(true)]));
    let out =
        h.py.request("size", headers, Bytes::from(vec![1u8; 9000]))
            .expect("request");
    h.pump();
    let [(head, body)] = &h.local_of(MessageKind::Request)[..] else {
        panic!("one request expected");
    };
    assert_eq!(head.route, "size");
    assert_eq!(body.len(), 9000);
    assert_eq!(header_value(&head.headers, "user"), Some(&b"ada"[..]));
    assert_eq!(header_value(&head.headers, "flags"), Some(&b"[true]"[..]));
    h.local
        .respond(head.stream, Ok(()), Message::new("", "{\"size\": 9000}"))
        .expect("respond");
    h.pump();
    let [response] = &h.py_responses()[..] else {
        panic!("one response expected");
    };
    assert_eq!(response.message_id(), Some(out.message_id.as_str()));
    assert_eq!(response.route(), Some("size"));
    assert_eq!(&response.body[..], b"{\"size\": 9000}");
    assert!(h.bridge.is_quiet());

    // A handler naming the response route.
    let out =
        h.py.request("ping", Object::new(), Bytes::from_static(b"x"))
            .expect("request");
    h.pump();
    let [(head, _)] = &h.local_of(MessageKind::Request)[..] else {
        panic!("one request expected");
    };
    let mut answer = Message::new("", "pong");
    answer
        .headers
        .push((ROUTE_HEADER.into(), Bytes::from_static(b"pong")));
    answer.headers.push(("x".into(), Bytes::from_static(b"1")));
    h.local
        .respond(head.stream, Ok(()), answer)
        .expect("respond");
    h.pump();
    let [response] = &h.py_responses()[..] else {
        panic!("one response expected");
    };
    assert_eq!(response.message_id(), Some(out.message_id.as_str()));
    assert_eq!(response.route(), Some("pong"));
    assert_eq!(response.info.get_str("x"), Some("1"));
    assert_eq!(response.info.get("route").into_iter().count(), 1);
}

#[test]
fn a_local_error_answer_reaches_python_as_a_body_with_its_code() {
    let mut h = Harness::new();
    let out =
        h.py.request("nowhere", Object::new(), Bytes::from_static(b"?"))
            .expect("request");
    h.pump();
    let [(head, _)] = &h.local_of(MessageKind::Request)[..] else {
        panic!("one request expected");
    };
    h.local
        .respond(
            head.stream,
            Err(ErrorCode::NotFound),
            Message::new("", "no route nowhere"),
        )
        .expect("respond");
    h.pump();
    let [response] = &h.py_responses()[..] else {
        panic!("one response expected");
    };
    assert_eq!(response.message_id(), Some(out.message_id.as_str()));
    assert_eq!(&response.body[..], b"no route nowhere");
    assert_eq!(response.info.get_str(ERROR_HEADER), Some("NotFound"));
    assert_eq!(h.bridge.stats().error_answers, 1);
    assert!(h.bridge.is_quiet());
}

#[test]
fn zero_byte_bodies_complete_inbound_and_are_refused_outbound() {
    let mut h = Harness::new();
    // A local 0-byte request: refused with a typed error answer.
    let stream = h
        .local
        .request(Message::new("size", Bytes::new()))
        .expect("request");
    h.pump();
    let [(head, body)] = &h.local_of(MessageKind::ErrorResponse)[..] else {
        panic!("one error answer expected");
    };
    assert_eq!(head.stream, stream);
    assert_eq!(head.code, Some(ErrorCode::BadRequest));
    assert!(text(body).contains("0-byte"), "{}", text(body));
    assert!(h.py_requests().is_empty());
    assert!(matches!(
        h.errors.as_slice(),
        [BridgeError::Refused {
            error: PyError::EmptyBody,
            ..
        }]
    ));

    // A Python 0-byte request (a head alone) completes at its head.
    h.py_send_frame(&PyFrame::Head {
        mission: "AAAAAA".into(),
        length: 0,
        info: {
            let mut info = Object::new();
            info.push("route", Value::String("size".into()));
            info.push("message_id", Value::String("M0000000".into()));
            info
        },
    });
    let [(head, body)] = &h.local_of(MessageKind::Request)[..] else {
        panic!("one request expected");
    };
    assert!(body.is_empty());
    // A 0-byte local answer: nothing reaches Python, the call is forgotten.
    h.local
        .respond(head.stream, Ok(()), Message::new("", Bytes::new()))
        .expect("respond");
    h.pump();
    assert!(h.py_in.is_empty(), "{:?}", h.py_in);
    assert_eq!(h.bridge.stats().empty_answers, 1);
    assert!(h.bridge.is_quiet());
}

#[test]
fn a_local_cancel_reaches_python_and_a_late_answer_is_dropped() {
    let mut h = Harness::new();
    let stream = h
        .local
        .request(Message::new("echo", vec![9u8; 100_000]))
        .expect("request");
    // The request reaches the bridge, which sends Python only its head and one chunk.
    let mut buf = BytesMut::new();
    while h.local.poll_transmit(&mut buf) > 0 {}
    h.bridge.handle_local(&buf, h.now);
    let mut out = BytesMut::new();
    h.bridge.poll_py(&mut out, 5000);
    h.py_input(&mut out);
    h.local.cancel(stream, ErrorCode::Canceled);
    h.pump();
    assert!(
        h.py_in
            .iter()
            .any(|i| matches!(i, PyInbound::Cancelled { .. })),
        "{:?}",
        h.py_in
    );
    assert_eq!(h.bridge.stats().cancels_to_py, 1);
    assert!(h.bridge.is_quiet());
}

#[test]
fn a_python_cancel_of_a_request_handed_on_cancels_it_locally() {
    let mut h = Harness::new();
    let out =
        h.py.request("slow", Object::new(), Bytes::from_static(b"work"))
            .expect("request");
    h.pump();
    let [(head, _)] = &h.local_of(MessageKind::Request)[..] else {
        panic!("one request expected");
    };
    // Python's cancel comes after the whole request (its sender was busy).
    h.py_send_frame(&PyFrame::Cancel {
        mission: out.mission.clone(),
    });
    assert_eq!(h.local_canceled, vec![(head.stream, ErrorCode::Canceled)]);
    assert_eq!(h.bridge.stats().cancels_from_py, 1);
    // The handler's late answer goes nowhere.
    let _ = h
        .local
        .respond(head.stream, Ok(()), Message::new("", "late"));
    h.pump();
    assert!(h.py_responses().is_empty());
    h.py.forget_request(&out.message_id);
    assert!(h.bridge.is_quiet());
}

#[test]
fn local_one_way_messages_reach_python_and_replies_are_dropped() {
    let mut h = Harness::new();
    h.local
        .one_way(Message::new("log", "line"))
        .expect("one-way");
    h.pump();
    let [request] = &h.py_requests()[..] else {
        panic!("one request expected");
    };
    assert_eq!(&request.body[..], b"line");
    let id = request.message_id().expect("id").to_string();
    h.py.respond(Some("log"), &id, Bytes::from_static(b"ok"))
        .expect("respond");
    h.pump();
    assert!(h.local_in.is_empty());
    assert!(h
        .errors
        .iter()
        .any(|e| matches!(e, BridgeError::Py(PyError::UnsolicitedResponse { .. }))));
    assert!(h.bridge.is_quiet());
}

#[test]
fn headers_python_reads_itself_are_refused_with_a_typed_answer() {
    let mut h = Harness::new();
    let mut message = Message::new("echo", "x");
    message
        .headers
        .push(("message_id".into(), Bytes::from_static(b"forged")));
    let stream = h.local.request(message).expect("request");
    h.pump();
    let [(head, _)] = &h.local_of(MessageKind::ErrorResponse)[..] else {
        panic!("one error answer expected");
    };
    assert_eq!(head.stream, stream);
    assert_eq!(head.code, Some(ErrorCode::BadRequest));
    assert!(h.py_requests().is_empty());
    assert!(h.bridge.is_quiet());
}

#[test]
fn a_negative_length_from_python_kills_the_bridge() {
    let mut h = Harness::new();
    h.bridge.handle_py(&(-1i32).to_le_bytes(), h.now);
    assert!(h.bridge.is_failed());
    let error = h.bridge.poll_error().expect("an error");
    assert!(error.is_fatal(), "{error}");
    let mut out = BytesMut::new();
    assert_eq!(h.bridge.poll_local(&mut out, 1024), 0);
}

#[test]
fn errors_inside_a_frame_leave_the_bridge_working() {
    let mut h = Harness::new();
    // A well-framed frame of an unknown type.
    let ext = br#"{"type": "bogus"}"#;
    let mut raw = Vec::new();
    raw.extend_from_slice(&(ext.len() as i32).to_le_bytes());
    raw.extend_from_slice(ext);
    raw.extend_from_slice(&2i32.to_le_bytes());
    raw.extend_from_slice(b"{}");
    h.bridge.handle_py(&raw, h.now);
    h.pump();
    assert!(!h.bridge.is_failed());
    assert!(matches!(
        h.errors.as_slice(),
        [BridgeError::Py(PyError::UnknownFrameType(_))]
    ));
    h.py.request("echo", Object::new(), Bytes::from_static(b"still"))
        .expect("request");
    h.pump();
    assert_eq!(h.local_of(MessageKind::Request).len(), 1);
}

/// One step of the property test.
#[derive(Clone, Debug)]
enum Op {
    /// The local side calls Python with a body of this length.
    LocalCall(usize),
    /// Python calls the local side with a body of this length.
    PyCall(usize),
    /// Bytes move.
    Pump,
    /// Every request received so far is answered.
    AnswerAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1usize..20_000).prop_map(Op::LocalCall),
        3 => (1usize..20_000).prop_map(Op::PyCall),
        2 => Just(Op::Pump),
        1 => Just(Op::AnswerAll),
    ]
}

/// A body naming its call: a tag, then a byte pattern.
fn body(tag: &str, len: usize) -> Bytes {
    let mut bytes = Vec::with_capacity(len.max(tag.len()));
    bytes.extend_from_slice(tag.as_bytes());
    let seed = tag
        .bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    while bytes.len() < len {
        bytes.push(seed.wrapping_add(bytes.len() as u8));
    }
    Bytes::from(bytes)
}

/// The answer to a request body: its bytes reversed.
fn answer_to(request: &[u8]) -> Bytes {
    request.iter().rev().copied().collect::<Vec<u8>>().into()
}

impl Harness {
    fn answer_all(&mut self) {
        for (head, body) in self.local_of(MessageKind::Request) {
            self.local
                .respond(head.stream, Ok(()), Message::new("", answer_to(&body)))
                .expect("local respond");
        }
        for request in self.py_requests() {
            let id = request.message_id().expect("id").to_string();
            self.py
                .respond(request.route(), &id, answer_to(&request.body))
                .expect("py respond");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_calls_both_ways_cross_intact_and_leave_nothing(ops in proptest::collection::vec(op(), 1..40)) {
        let mut h = Harness::new();
        // Local calls: stream -> body sent; Python calls: message id -> body sent.
        let mut local_calls: BTreeMap<StreamId, Bytes> = BTreeMap::new();
        let mut py_calls: BTreeMap<String, Bytes> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::LocalCall(len) => {
                    let sent = body(&format!("L{i}:"), *len);
                    let stream = h.local.request(Message::new(format!("r{}", i % 3), sent.clone())).expect("request");
                    local_calls.insert(stream, sent);
                }
                Op::PyCall(len) => {
                    let sent = body(&format!("P{i}:"), *len);
                    let out = h.py.request(&format!("p{}", i % 3), Object::new(), sent.clone()).expect("request");
                    py_calls.insert(out.message_id, sent);
                }
                Op::Pump => h.pump(),
                Op::AnswerAll => { h.pump(); h.answer_all(); }
            }
        }
        // Everything is answered in the end.
        for _ in 0..4 {
            h.pump();
            h.answer_all();
        }
        h.pump();
        let mut answered_local = 0;
        for (head, body) in h.local_of(MessageKind::Response) {
            let sent = local_calls.remove(&head.stream).expect("an answer to a local call");
            prop_assert_eq!(&body[..], &answer_to(&sent)[..]);
            answered_local += 1;
        }
        let mut answered_py = 0;
        for response in h.py_responses() {
            let id = response.message_id().expect("id");
            let sent = py_calls.remove(id).expect("an answer to a python call");
            prop_assert_eq!(&response.body[..], &answer_to(&sent)[..]);
            answered_py += 1;
        }
        prop_assert!(local_calls.is_empty(), "unanswered local calls: {}", local_calls.len());
        prop_assert!(py_calls.is_empty(), "unanswered python calls: {}", py_calls.len());
        prop_assert!(h.local_in.is_empty() && h.py_in.is_empty());
        prop_assert!(h.errors.is_empty(), "{:?}", h.errors);
        prop_assert!(h.py_errors.is_empty(), "{:?}", h.py_errors);
        prop_assert!(h.bridge.is_quiet(), "the bridge holds state after every call completed");
        let stats = h.bridge.stats();
        prop_assert_eq!(stats.calls_to_py, answered_local as u64);
        prop_assert_eq!(stats.calls_from_py, answered_py as u64);
    }
}
