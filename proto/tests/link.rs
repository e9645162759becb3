//! `Link` error paths and edge cases, driven frame by frame through the public API:
//! a hand-built peer encodes frames with the real framing and checks the typed
//! errors and events that come back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use netcore_proto::frame::{Cancel, Data, End, Frame, GoAway, Hello, Open, Ping};
use netcore_proto::framing::{Framer, Framing, FramingKind};
use netcore_proto::link::{Link, LinkConfig, LinkEvent, Message};
use netcore_proto::{Envelope, ErrorCode, Instant, MessageKind, Parity, ProtocolError, StreamId};
use proptest::prelude::*;

const OUR_NONCE: u64 = 1_000;
const PEER_NONCE: u64 = 5; // smaller than ours: we are Odd, the peer is Even

/// A hand-driven peer: encodes frames with the real framing.
struct Peer {
    framer: Framer,
}

impl Peer {
    fn new(kind: FramingKind) -> Peer {
        Peer {
            framer: Framer::new(kind, 1 << 20),
        }
    }

    fn bytes(&mut self, frame: Frame) -> Vec<u8> {
        let envelope = Envelope::from(frame);
        let mut head = Vec::new();
        envelope.encode_head(&mut head);
        let mut out = BytesMut::new();
        self.framer
            .encode(&head, envelope.frame.payload(), &mut out);
        out.to_vec()
    }
}

fn config(kind: FramingKind) -> LinkConfig {
    LinkConfig::new(kind, OUR_NONCE)
}

fn events(link: &mut Link) -> Vec<LinkEvent> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

/// Every frame `link` would put on the wire now, decoded.
fn sent_frames(link: &mut Link, kind: FramingKind) -> Vec<Frame> {
    let mut wire = BytesMut::new();
    while link.poll_transmit(&mut wire) > 0 {}
    let mut decoder = Framer::new(kind, 1 << 20);
    let mut frames = Vec::new();
    while let Ok(Some(raw)) = decoder.decode(&mut wire) {
        frames.push(Envelope::decode(raw).unwrap().frame);
    }
    frames
}

/// A link of `kind` whose handshake with a hand-driven peer completed.
fn connected(kind: FramingKind) -> (Link, Peer) {
    let mut link = Link::new(config(kind), None);
    let mut peer = Peer::new(kind);
    let hello = peer.bytes(Frame::Hello(Hello::new(PEER_NONCE)));
    link.handle_input(&hello, Instant::ZERO).unwrap();
    assert!(link.is_connected());
    let evs = events(&mut link);
    assert!(matches!(
        evs[0],
        LinkEvent::Connected {
            parity: Parity::Odd,
            ..
        }
    ));
    (link, peer)
}

fn peer_request(stream: u64, route: &str, body: &'static [u8]) -> Frame {
    let mut open = Open::new(StreamId(stream), MessageKind::Request, route);
    open.payload = Bytes::from_static(body);
    open.fin = true;
    Frame::Open(open)
}

#[test]
fn a_frame_before_hello_fails_the_link() {
    let mut link = Link::new(config(FramingKind::Stream), None);
    let mut peer = Peer::new(FramingKind::Stream);
    let err = link
        .handle_input(&peer.bytes(Frame::Ping(Ping { opaque: 1 })), Instant::ZERO)
        .unwrap_err();
    assert_eq!(err, ProtocolError::NoHandshake);
    assert!(link.is_failed());
    assert!(events(&mut link).iter().any(|e| matches!(
        e,
        LinkEvent::Failed {
            error: ProtocolError::NoHandshake
        }
    )));
    // The peer is told why with a GOAWAY, after our HELLO.
    let frames = sent_frames(&mut link, FramingKind::Stream);
    assert!(
        matches!(frames.last(), Some(Frame::GoAway(_))),
        "{frames:?}"
    );
    // A failed link takes no more input.
    assert!(link.handle_input(&[0], Instant::ZERO).is_err());
}

#[test]
fn a_wrong_version_is_refused() {
    let mut link = Link::new(config(FramingKind::Serial), None);
    let mut peer = Peer::new(FramingKind::Serial);
    let mut hello = Hello::new(PEER_NONCE);
    hello.version = 99;
    let err = link
        .handle_input(&peer.bytes(Frame::Hello(hello)), Instant::ZERO)
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::Version { peer: 99, .. }),
        "{err:?}"
    );
}

#[test]
fn the_same_nonce_on_both_sides_is_refused() {
    let mut link = Link::new(config(FramingKind::Stream), None);
    let mut peer = Peer::new(FramingKind::Stream);
    let err = link
        .handle_input(
            &peer.bytes(Frame::Hello(Hello::new(OUR_NONCE))),
            Instant::ZERO,
        )
        .unwrap_err();
    assert!(matches!(err, ProtocolError::InvalidState { .. }), "{err:?}");
}

#[test]
fn a_second_hello_is_unexpected() {
    let (mut link, mut peer) = connected(FramingKind::Stream);
    let err = link
        .handle_input(
            &peer.bytes(Frame::Hello(Hello::new(PEER_NONCE))),
            Instant::ZERO,
        )
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::UnexpectedFrame { frame: "HELLO", .. }),
        "{err:?}"
    );
}

#[test]
fn a_peer_request_with_our_parity_is_a_bad_id() {
    let (mut link, mut peer) = connected(FramingKind::Stream);
    let err = link
        .handle_input(&peer.bytes(peer_request(3, "x", b"")), Instant::ZERO)
        .unwrap_err();
    assert_eq!(err, ProtocolError::BadStreamId { id: 3 });
}

#[test]
fn reusing_an_unanswered_request_id_is_a_bad_id() {
    let (mut link, mut peer) = connected(FramingKind::Stream);
    link.handle_input(&peer.bytes(peer_request(2, "x", b"a")), Instant::ZERO)
        .unwrap();
    assert!(events(&mut link)
        .iter()
        .any(|e| matches!(e, LinkEvent::Message { head, .. } if head.stream == StreamId(2))));
    let err = link
        .handle_input(&peer.bytes(peer_request(2, "x", b"b")), Instant::ZERO)
        .unwrap_err();
    assert_eq!(err, ProtocolError::BadStreamId { id: 2 });
}

#[test]
fn unsolicited_and_late_answers_are_dropped_quietly() {
    let (mut link, mut peer) = connected(FramingKind::Stream);
    // An answer to a request never made, in three frames.
    let mut open = Open::new(StreamId(5), MessageKind::Response, "");
    open.payload = Bytes::from_static(b"first");
    let mut input = peer.bytes(Frame::Open(open));
    input.extend(peer.bytes(Frame::Data(Data {
        stream: StreamId(5),
        payload: Bytes::from_static(b"more"),
        fin: false,
    })));
    input.extend(peer.bytes(Frame::End(End {
        stream: StreamId(5),
    })));
    link.handle_input(&input, Instant::ZERO).unwrap();
    assert!(events(&mut link).is_empty());
    // A request of ours, canceled, then answered anyway.
    let id = link.request(Message::new("r", "q")).unwrap();
    link.cancel(id, ErrorCode::Canceled);
    let mut open = Open::new(id, MessageKind::Response, "");
    open.payload = Bytes::from_static(b"late");
    open.fin = true;
    link.handle_input(&peer.bytes(Frame::Open(open)), Instant::ZERO)
        .unwrap();
    assert!(
        !events(&mut link)
            .iter()
            .any(|e| matches!(e, LinkEvent::Message { .. })),
        "a canceled call's answer is not delivered"
    );
    assert!(link.is_connected());
}

#[test]
fn respond_and_request_in_the_wrong_state_are_rejected() {
    let mut link = Link::new(config(FramingKind::Stream), None);
    assert!(matches!(
        link.request(Message::new("r", "q")),
        Err(ProtocolError::InvalidState { .. })
    ));
    let (mut link, _) = connected(FramingKind::Stream);
    assert!(matches!(
        link.respond(StreamId(2), Ok(()), Message::new("", "a")),
        Err(ProtocolError::InvalidState { .. })
    ));
}

#[test]
fn after_go_away_no_new_streams_either_way() {
    let (mut link, mut peer) = connected(FramingKind::Stream);
    sent_frames(&mut link, FramingKind::Stream); // our HELLO
    link.go_away(ErrorCode::NoError, "bye");
    assert!(link.request(Message::new("r", "q")).is_err());
    link.handle_input(&peer.bytes(peer_request(2, "x", b"")), Instant::ZERO)
        .unwrap();
    assert!(!events(&mut link)
        .iter()
        .any(|e| matches!(e, LinkEvent::Message { .. })));
    let frames = sent_frames(&mut link, FramingKind::Stream);
    assert!(matches!(
        frames[0],
        Frame::GoAway(GoAway {
            code: ErrorCode::NoError,
            ..
        })
    ));
    assert!(frames.contains(&Frame::Cancel(Cancel {
        stream: StreamId(2),
        code: ErrorCode::GoingAway
    })));
}

#[test]
fn a_peer_goaway_and_pings_are_reported() {
    let (mut link, mut peer) = connected(FramingKind::Serial);
    sent_frames(&mut link, FramingKind::Serial);
    let mut input = peer.bytes(Frame::Ping(Ping { opaque: 42 }));
    input.extend(peer.bytes(Frame::GoAway(GoAway {
        last_stream: StreamId(0),
        code: ErrorCode::NoError,
        reason: "maintenance".into(),
    })));
    link.handle_input(&input, Instant::ZERO).unwrap();
    assert!(events(&mut link)
        .iter()
        .any(|e| matches!(e, LinkEvent::GoAway { reason, .. } if reason == "maintenance")));
    let frames = sent_frames(&mut link, FramingKind::Serial);
    assert!(frames
        .iter()
        .any(|f| matches!(f, Frame::Pong(p) if p.opaque == 42)));
    // And our own ping's answer.
    link.ping(7);
    assert!(sent_frames(&mut link, FramingKind::Serial)
        .iter()
        .any(|f| matches!(f, Frame::Ping(Ping { opaque: 7 }))));
    link.handle_input(
        &peer.bytes(Frame::Pong(netcore_proto::frame::Pong { opaque: 7 })),
        Instant::ZERO,
    )
    .unwrap();
    assert!(events(&mut link)
        .iter()
        .any(|e| matches!(e, LinkEvent::Pong { opaque: 7 })));
}

#[test]
fn serial_drops_a_damaged_frame_and_goes_on_while_stream_fails() {
    let (mut link, mut peer) = connected(FramingKind::Serial);
    let mut damaged = peer.bytes(peer_request(2, "x", b"hello"));
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x40;
    let mut input = damaged;
    input.extend(peer.bytes(peer_request(4, "y", b"intact")));
    link.handle_input(&input, Instant::ZERO).unwrap();
    let evs = events(&mut link);
    assert!(evs
        .iter()
        .any(|e| matches!(e, LinkEvent::FrameDropped { .. })));
    assert!(evs
        .iter()
        .any(|e| matches!(e, LinkEvent::Message { head, .. } if head.route == "y")));
    assert_eq!(link.stats().framing.dropped(), 1);

    let (mut link, _) = connected(FramingKind::Stream);
    // A length prefix far above the maximum frame: fatal on a reliable stream.
    let err = link
        .handle_input(&[0xff, 0xff, 0xff, 0xff, 0x0f], Instant::ZERO)
        .unwrap_err();
    assert!(matches!(err, ProtocolError::Framing(_)), "{err:?}");
    assert!(link.is_failed());
}

/// Drains everything after each input; returns whether the link is still usable.
fn feed(link: &mut Link, input: &[u8]) -> bool {
    let ok = link.handle_input(input, Instant::ZERO).is_ok();
    let mut sink = BytesMut::new();
    while link.poll_transmit(&mut sink) > 0 {}
    while link.poll_event().is_some() {}
    ok
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let stream = 0u64..12;
    prop_oneof![
        (
            stream.clone(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            0u8..4
        )
            .prop_map(|(id, fin, body, kind)| {
                let kind = [
                    MessageKind::Request,
                    MessageKind::OneWay,
                    MessageKind::Response,
                    MessageKind::ErrorResponse,
                ][kind as usize];
                let mut open = Open::new(StreamId(id), kind, "r");
                if kind == MessageKind::ErrorResponse {
                    open.code = Some(ErrorCode::HandlerFailed);
                }
                if kind.is_answer() {
                    open.route = String::new();
                }
                open.payload = body.into();
                open.fin = fin;
                Frame::Open(open)
            }),
        (
            stream.clone(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 1..64)
        )
            .prop_map(|(id, fin, body)| Frame::Data(Data {
                stream: StreamId(id),
                payload: body.into(),
                fin
            })),
        stream.clone().prop_map(|id| Frame::End(End {
            stream: StreamId(id)
        })),
        stream.prop_map(|id| Frame::Cancel(Cancel {
            stream: StreamId(id),
            code: ErrorCode::Canceled
        })),
        any::<u64>().prop_map(|opaque| Frame::Ping(Ping { opaque })),
    ]
}

proptest! {
    /// Arbitrary bytes after the handshake: never a panic, every error typed, and a
    /// failed link stays failed.
    #[test]
    fn arbitrary_bytes_never_panic(serial in any::<bool>(), pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..256), 0..16)) {
        let kind = if serial { FramingKind::Serial } else { FramingKind::Stream };
        let (mut link, _) = connected(kind);
        let mut failed = false;
        for piece in &pieces {
            let ok = feed(&mut link, piece);
            prop_assert!(!(failed && ok), "a failed link accepted input");
            failed |= !ok;
            prop_assert_eq!(failed, link.is_failed());
        }
    }

    /// Arbitrary sequences of well-formed frames (ids, kinds and order at random):
    /// protocol violations fail the link with a typed error, never a panic.
    #[test]
    fn arbitrary_valid_frames_never_panic(serial in any::<bool>(), frames in proptest::collection::vec(arb_frame(), 0..40)) {
        let kind = if serial { FramingKind::Serial } else { FramingKind::Stream };
        let (mut link, mut peer) = connected(kind);
        let _ = link.request(Message::new("mine", "q"));
        for frame in frames {
            let bytes = peer.bytes(frame);
            if !feed(&mut link, &bytes) {
                prop_assert!(link.is_failed());
                break;
            }
        }
    }
}
