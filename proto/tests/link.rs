//! `Link` error paths and edge cases, driven frame by frame through the public API:
//! a hand-built peer encodes frames with the real framing and checks the typed
//! errors and events that come back (including the credit of frames the link drops,
//! which must return to the peer's window).
//!
//! The proptests at the end are the stable twins of `fuzz/fuzz_targets/link.rs`:
//! arbitrary bytes, arbitrary framed frame bytes, and arbitrary sequences of valid
//! frames mixed with user calls, into a connected link.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use netcore_proto::config::Limits;
use netcore_proto::frame::{
    Ack, Cancel, Credit, Data, End, Frame, GoAway, Hello, Open, Ping, Pong,
};
use netcore_proto::framing::{Framer, Framing, FramingKind};
use netcore_proto::link::{Link, LinkConfig, LinkEvent, Message, Session};
use netcore_proto::reassembly::MemorySinkFactory;
use netcore_proto::sim::{Pair, Wire};
use netcore_proto::{
    Envelope, ErrorCode, Instant, MessageKind, Parity, Priority, ProtocolError, StreamId,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

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
        matches!(err, ProtocolError::Version { peer: 99, ours: 1 }),
        "{err:?}"
    );
    assert!(link.is_failed() && !link.is_connected());
    assert!(events(&mut link).iter().any(|e| matches!(
        e,
        LinkEvent::Failed {
            error: ProtocolError::Version { .. }
        }
    )));
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
    assert!(link.is_failed());
    assert!(events(&mut link)
        .iter()
        .any(|e| matches!(e, LinkEvent::Failed { error } if *error == err)));
}

#[test]
fn a_sequenced_hello_is_refused() {
    for kind in [FramingKind::Stream, FramingKind::Serial] {
        let mut link = Link::new(config(kind), None);
        let hello = Envelope {
            seq: Some(0),
            frame: Frame::Hello(Hello::new(PEER_NONCE)),
        };
        let mut head = Vec::new();
        hello.encode_head(&mut head);
        let mut wire = BytesMut::new();
        Framer::new(kind, 1 << 20).encode(&head, &[], &mut wire);
        let err = link.handle_input(&wire, Instant::ZERO).unwrap_err();
        assert!(
            matches!(err, ProtocolError::UnexpectedFrame { frame: "HELLO", .. }),
            "{err:?}"
        );
    }
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
fn an_answer_to_a_request_never_made_is_a_bad_id() {
    // Stream 5 has our parity (odd) but was never allocated: no request of ours
    // used it, so an answer on it is a broken peer, whatever the frame.
    let answer = |mut open: Open| {
        open.payload = Bytes::from_static(b"first");
        Frame::Open(open)
    };
    let frames = [
        answer(Open::new(StreamId(5), MessageKind::Response, "")),
        data(5, 4, false),
        Frame::End(End {
            stream: StreamId(5),
        }),
    ];
    for frame in frames {
        let (mut link, mut peer) = connected(FramingKind::Stream);
        let err = link
            .handle_input(&peer.bytes(frame), Instant::ZERO)
            .unwrap_err();
        assert_eq!(err, ProtocolError::BadStreamId { id: 5 });
    }
}

#[test]
fn late_answers_are_dropped_quietly() {
    let (mut link, mut peer) = connected(FramingKind::Stream);
    // A request of ours, canceled, then answered anyway: a one-frame answer, and a
    // streamed one whose frames arrive in separate reads.
    for one_frame in [true, false] {
        let id = link.request(Message::new("r", "q")).unwrap();
        link.cancel(id, ErrorCode::Canceled);
        let mut open = Open::new(id, MessageKind::Response, "");
        open.payload = Bytes::from_static(b"late");
        open.fin = one_frame;
        let mut reads = vec![peer.bytes(Frame::Open(open))];
        if !one_frame {
            reads.push(peer.bytes(Frame::Data(Data {
                stream: id,
                payload: Bytes::from_static(b"later"),
                fin: false,
            })));
            reads.push(peer.bytes(Frame::End(End { stream: id })));
        }
        for read in reads {
            link.handle_input(&read, Instant::ZERO).unwrap();
            let evs = events(&mut link);
            assert!(
                evs.is_empty(),
                "a canceled call's answer is dropped: {evs:?}"
            );
        }
    }
    assert!(link.is_connected());
}

#[test]
fn an_answer_with_the_peer_parity_is_a_bad_id() {
    let (mut link, mut peer) = connected(FramingKind::Stream);
    let mut open = Open::new(StreamId(2), MessageKind::Response, "");
    open.fin = true;
    let err = link
        .handle_input(&peer.bytes(Frame::Open(open)), Instant::ZERO)
        .unwrap_err();
    assert_eq!(err, ProtocolError::BadStreamId { id: 2 });
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
    assert_eq!(
        link.request(Message::new("r", "q")),
        Err(ProtocolError::GoingAway)
    );
    assert_eq!(
        link.one_way(Message::new("r", "q")),
        Err(ProtocolError::GoingAway)
    );
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
    // The peer takes no new streams from now on.
    assert_eq!(
        link.request(Message::new("r", "q")),
        Err(ProtocolError::GoingAway)
    );
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

/// Every PING of one read is answered by one PONG, for the latest.
#[test]
fn the_pings_of_one_read_get_one_pong() {
    let (mut link, mut peer) = connected(FramingKind::Stream);
    sent_frames(&mut link, FramingKind::Stream);
    let mut input = Vec::new();
    for opaque in 0..5_000 {
        input.extend(peer.bytes(Frame::Ping(Ping { opaque })));
    }
    link.handle_input(&input, Instant::ZERO).unwrap();
    link.handle_input(&peer.bytes(Frame::Ping(Ping { opaque: 9 })), Instant::ZERO)
        .unwrap();
    // Not read in between: the second read's PONG replaces the first's.
    assert_eq!(
        sent_frames(&mut link, FramingKind::Stream),
        [Frame::Pong(Pong { opaque: 9 })]
    );
    link.handle_input(&input, Instant::ZERO).unwrap();
    assert_eq!(
        sent_frames(&mut link, FramingKind::Stream),
        [Frame::Pong(Pong { opaque: 4_999 })]
    );
}

/// A peer that provokes CANCELs (DATA of streams it never opened, each refused
/// once) and does not read them fails the link with `Backlog` once more than
/// `MAX_QUEUED_CANCELS` wait; it is told with GOAWAY(FlowControl) after them.
#[test]
fn a_peer_that_provokes_cancels_without_reading_fails_the_link() {
    use netcore_proto::config::MAX_QUEUED_CANCELS;
    let (mut link, mut peer) = connected(FramingKind::Stream);
    sent_frames(&mut link, FramingKind::Stream);
    let mut input = Vec::new();
    for i in 0..MAX_QUEUED_CANCELS as u64 {
        input.extend(peer.bytes(data(2 * i + 2, 0, false)));
    }
    link.handle_input(&input, Instant::ZERO).unwrap();
    assert!(!link.is_failed());
    let more = peer.bytes(data(2 * MAX_QUEUED_CANCELS as u64 + 2, 0, false));
    link.handle_input(&more, Instant::ZERO).unwrap();
    assert!(link.is_failed());
    let failed = events(&mut link).into_iter().find_map(|e| match e {
        LinkEvent::Failed { error } => Some(error),
        _ => None,
    });
    assert_eq!(
        failed,
        Some(ProtocolError::Backlog {
            what: "CANCEL frames",
            max: MAX_QUEUED_CANCELS
        })
    );
    let frames = sent_frames(&mut link, FramingKind::Stream);
    assert_eq!(frames.len(), MAX_QUEUED_CANCELS + 1);
    assert!(
        matches!(frames.last(), Some(Frame::GoAway(g)) if g.code == ErrorCode::FlowControl),
        "{:?}",
        frames.last()
    );
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

/// Link-wide credit (CREDIT on stream 0) among `frames`.
fn link_credit(frames: &[Frame]) -> u64 {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Credit(c) if c.stream == Credit::LINK => Some(c.increment),
            _ => None,
        })
        .sum()
}

/// A connected link with 4 KiB windows, a 1 KiB spool threshold and no sinks, so
/// credit batches at 1 KiB and anything declared above 1 KiB is refused.
fn small_window_link(kind: FramingKind) -> (Link, Peer) {
    let mut config = config(kind);
    config.stream_window = 4096;
    config.link_window = 4096;
    config.limits.spool_threshold = 1024;
    let mut link = Link::new(config, None);
    let mut peer = Peer::new(kind);
    link.handle_input(
        &peer.bytes(Frame::Hello(Hello::new(PEER_NONCE))),
        Instant::ZERO,
    )
    .unwrap();
    assert!(link.is_connected());
    events(&mut link);
    sent_frames(&mut link, kind); // our HELLO
    (link, peer)
}

fn data(stream: u64, len: usize, fin: bool) -> Frame {
    Frame::Data(Data {
        stream: StreamId(stream),
        payload: vec![7u8; len].into(),
        fin,
    })
}

/// Body bytes a receiver drops (a stream it refused or canceled, in flight when it
/// did) were still counted against the link window by the sender, so the receiver
/// must grant them back (reassembly's credit rule "dropped: link credit freed at
/// once"). `dropped` bytes with a batch threshold of 1 KiB: at least `dropped - 1023`
/// must come back as link CREDIT.
fn assert_link_credit_returned(link: &mut Link, kind: FramingKind, dropped: u64) {
    let frames = sent_frames(link, kind);
    let granted = link_credit(&frames);
    assert!(
        granted + 1023 >= dropped,
        "{dropped} body bytes dropped, only {granted} link credit granted back: the \
         peer's link window shrinks for good ({frames:?})"
    );
}

#[test]
fn in_flight_data_of_a_refused_stream_returns_its_link_credit() {
    let kind = FramingKind::Stream;
    let (mut link, mut peer) = small_window_link(kind);
    // Declared 3000 bytes > spool threshold, no sink: refused at the OPEN, but the
    // peer had already sent the rest.
    let mut open = Open::new(StreamId(2), MessageKind::OneWay, "big");
    open.total_len = Some(3000);
    open.payload = vec![1u8; 1000].into();
    link.handle_input(&peer.bytes(Frame::Open(open)), Instant::ZERO)
        .unwrap();
    assert!(events(&mut link)
        .iter()
        .any(|e| matches!(e, LinkEvent::Refused { stream, .. } if *stream == StreamId(2))));
    // The rest arrives in later reads, as it does once the wire has any latency.
    for frame in [data(2, 1000, false), data(2, 1000, true)] {
        link.handle_input(&peer.bytes(frame), Instant::ZERO)
            .unwrap();
    }
    assert_link_credit_returned(&mut link, kind, 3000);
}

#[test]
fn a_dropped_answer_returns_its_link_credit() {
    let kind = FramingKind::Stream;
    let (mut link, mut peer) = small_window_link(kind);
    let id = link.request(Message::new("r", "q")).unwrap();
    link.cancel(id, ErrorCode::Canceled);
    sent_frames(&mut link, kind);
    // The answer was on its way: OPEN, DATA, DATA, END.
    let mut open = Open::new(id, MessageKind::Response, "");
    open.payload = vec![1u8; 1000].into();
    let mut input = peer.bytes(Frame::Open(open));
    input.extend(peer.bytes(data(id.0, 1000, false)));
    input.extend(peer.bytes(data(id.0, 1000, false)));
    input.extend(peer.bytes(Frame::End(End { stream: id })));
    link.handle_input(&input, Instant::ZERO).unwrap();
    assert!(events(&mut link).is_empty());
    assert_link_credit_returned(&mut link, kind, 3000);
}

#[test]
fn an_open_refused_while_going_away_returns_its_link_credit() {
    let kind = FramingKind::Stream;
    let (mut link, mut peer) = small_window_link(kind);
    link.go_away(ErrorCode::NoError, "bye");
    let mut open = Open::new(StreamId(2), MessageKind::OneWay, "late");
    open.payload = vec![1u8; 1000].into();
    let mut input = peer.bytes(Frame::Open(open));
    input.extend(peer.bytes(data(2, 1000, false)));
    input.extend(peer.bytes(data(2, 1000, true)));
    link.handle_input(&input, Instant::ZERO).unwrap();
    assert_link_credit_returned(&mut link, kind, 3000);
}

#[test]
fn data_for_a_stream_the_peer_never_opened_is_canceled_once() {
    for kind in [FramingKind::Stream, FramingKind::Serial] {
        let (mut link, mut peer) = small_window_link(kind);
        // Stream 8 has the peer's parity and is above every id it opened (none):
        // its OPEN never came (lost on a line without the reliable mode, or a bug).
        let mut input = peer.bytes(data(8, 1000, false));
        input.extend(peer.bytes(data(8, 1000, false)));
        input.extend(peer.bytes(Frame::End(End {
            stream: StreamId(8),
        })));
        link.handle_input(&input, Instant::ZERO).unwrap();
        assert!(
            link.is_connected(),
            "a lost OPEN costs its message, not the link"
        );
        let frames = sent_frames(&mut link, kind);
        let cancels: Vec<&Frame> = frames
            .iter()
            .filter(|f| matches!(f, Frame::Cancel(_)))
            .collect();
        assert_eq!(
            cancels,
            [&Frame::Cancel(Cancel {
                stream: StreamId(8),
                code: ErrorCode::Protocol,
            })],
            "one CANCEL(Protocol) for the stream, none for its later frames"
        );
        assert!(
            link_credit(&frames) + 1023 >= 2000,
            "its bytes count on the link window and come back: {frames:?}"
        );
        // An END alone on another never-opened stream: refused the same way.
        link.handle_input(
            &peer.bytes(Frame::End(End {
                stream: StreamId(10),
            })),
            Instant::ZERO,
        )
        .unwrap();
        assert_eq!(
            sent_frames(&mut link, kind),
            [Frame::Cancel(Cancel {
                stream: StreamId(10),
                code: ErrorCode::Protocol,
            })]
        );
        // The link still serves requests.
        link.handle_input(&peer.bytes(peer_request(2, "x", b"ok")), Instant::ZERO)
            .unwrap();
        assert!(events(&mut link)
            .iter()
            .any(|e| matches!(e, LinkEvent::Message { head, .. } if head.stream == StreamId(2))));
    }
}

#[test]
fn a_failed_link_sends_its_goaway_and_no_more_body_bytes() {
    let kind = FramingKind::Stream;
    let (mut link, mut peer) = connected(kind);
    sent_frames(&mut link, kind); // our HELLO
                                  // A large message under way, a PING to answer, then a frame that breaks the rules.
    link.one_way(Message::new("big", vec![1u8; 1 << 20]))
        .unwrap();
    let mut wire = BytesMut::new();
    link.poll_transmit(&mut wire); // its first chunk
    let mut input = peer.bytes(Frame::Ping(Ping { opaque: 9 }));
    input.extend(peer.bytes(Frame::Hello(Hello::new(PEER_NONCE))));
    assert!(link.handle_input(&input, Instant::ZERO).is_err());
    let frames = sent_frames(&mut link, kind);
    assert!(
        matches!(
            frames.as_slice(),
            [Frame::Pong(Pong { opaque: 9 }), Frame::GoAway(goaway)] if goaway.code == ErrorCode::Protocol
        ),
        "the control frames queued before the GOAWAY, the GOAWAY, nothing else: {frames:?}"
    );
}

#[test]
fn stream_zero_is_only_the_links() {
    let frames = [
        peer_request(0, "x", b""),
        {
            let mut open = Open::new(StreamId(0), MessageKind::Response, "");
            open.fin = true;
            Frame::Open(open)
        },
        data(0, 3, true),
        Frame::End(End {
            stream: StreamId(0),
        }),
        Frame::Cancel(Cancel {
            stream: StreamId(0),
            code: ErrorCode::Canceled,
        }),
    ];
    for frame in frames {
        let (mut link, mut peer) = connected(FramingKind::Stream);
        let err = link
            .handle_input(&peer.bytes(frame.clone()), Instant::ZERO)
            .unwrap_err();
        assert_eq!(err, ProtocolError::BadStreamId { id: 0 }, "{frame:?}");
        let goaway = sent_frames(&mut link, FramingKind::Stream)
            .into_iter()
            .find_map(|f| match f {
                Frame::GoAway(g) => Some(g),
                _ => None,
            })
            .expect("a GOAWAY");
        assert_eq!(goaway.code, ErrorCode::Protocol);
    }
    // CREDIT on stream 0 is the link window.
    let (mut link, mut peer) = connected(FramingKind::Stream);
    let credit = Frame::Credit(Credit {
        stream: StreamId(0),
        increment: 5,
    });
    link.handle_input(&peer.bytes(credit), Instant::ZERO)
        .unwrap();
    assert!(link.is_connected());
}

#[test]
fn stray_cancels_and_credits_are_ignored() {
    let (mut link, mut peer) = connected(FramingKind::Stream);
    sent_frames(&mut link, FramingKind::Stream);
    let mut input = Vec::new();
    for stream in [2, 7, 1_000_001] {
        input.extend(peer.bytes(Frame::Cancel(Cancel {
            stream: StreamId(stream),
            code: ErrorCode::Canceled,
        })));
        input.extend(peer.bytes(Frame::Credit(Credit {
            stream: StreamId(stream),
            increment: u64::MAX,
        })));
    }
    // Link credit beyond 2^64 - 1 saturates.
    for _ in 0..2 {
        input.extend(peer.bytes(Frame::Credit(Credit {
            stream: StreamId(0),
            increment: u64::MAX,
        })));
    }
    link.handle_input(&input, Instant::ZERO).unwrap();
    assert!(link.is_connected());
    assert!(events(&mut link).is_empty());
    assert_eq!(sent_frames(&mut link, FramingKind::Stream), []);
    link.one_way(Message::new("r", "still sends")).unwrap();
    assert_eq!(sent_frames(&mut link, FramingKind::Stream).len(), 1);
}

/// The same leak end to end: B refuses a transfer (too large, no sink) that A had
/// mostly sent already (one frame per read, 5 ms latency); the refused bytes never
/// come back as link credit, so A's next message stalls for good.
#[test]
fn a_refused_transfer_does_not_stall_the_link() {
    let mut a = LinkConfig::stream(7);
    a.chunk_len = 4096;
    let mut b = LinkConfig::stream(3);
    b.stream_window = 64 * 1024;
    b.link_window = 64 * 1024;
    b.limits.spool_threshold = 16 * 1024;
    let wire = Wire {
        bytes_per_sec: Some(10_000_000),
        latency: Duration::from_millis(5),
        max_write: 1,
    };
    let mut pair = Pair::new(a, b, wire);
    pair.drive();
    let big = pair
        .a
        .link
        .one_way(Message::new("big", vec![1u8; 56 * 1024]))
        .unwrap();
    pair.drive();
    assert!(pair
        .b
        .events
        .iter()
        .any(|(_, e)| matches!(e, LinkEvent::Refused { stream, .. } if *stream == big)));
    // 12 KiB fits B's limits; A has 64 - 56 KiB of link credit plus what B grants back.
    pair.a
        .link
        .one_way(Message::new("after", vec![2u8; 12 * 1024]))
        .unwrap();
    pair.drive();
    assert!(
        pair.b
            .events
            .iter()
            .any(|(_, e)| matches!(e, LinkEvent::Message { head, .. } if head.route == "after")),
        "the message after a refused transfer never arrived"
    );
}

/// `BodySink` promises exactly one `finish` or `abort` per sink, and the reassembly
/// doc says a fatal error leaves the sinks to the link's close; `Link` never
/// aborts them when it fails.
#[test]
fn a_failed_link_aborts_its_sinks() {
    let kind = FramingKind::Stream;
    let sinks = MemorySinkFactory::new();
    let mut config = config(kind);
    config.limits.spool_threshold = 1024;
    let mut link = Link::new(config, Some(sinks.boxed()));
    let mut peer = Peer::new(kind);
    link.handle_input(
        &peer.bytes(Frame::Hello(Hello::new(PEER_NONCE))),
        Instant::ZERO,
    )
    .unwrap();
    let mut open = Open::new(StreamId(2), MessageKind::OneWay, "file");
    open.total_len = Some(4000);
    open.payload = vec![1u8; 500].into();
    link.handle_input(&peer.bytes(Frame::Open(open)), Instant::ZERO)
        .unwrap();
    assert!(events(&mut link)
        .iter()
        .any(|e| matches!(e, LinkEvent::Streaming { .. })));
    assert_eq!(sinks.record(StreamId(2)).unwrap().body.len(), 500);
    // A request with our parity: fatal.
    let err = link
        .handle_input(&peer.bytes(peer_request(3, "x", b"")), Instant::ZERO)
        .unwrap_err();
    assert_eq!(err, ProtocolError::BadStreamId { id: 3 });
    let record = sinks.record(StreamId(2)).unwrap();
    assert!(
        record.aborted.is_some() || record.finished,
        "the sink of a live stream was neither finished nor aborted: {record:?}"
    );
}

// ----- property tests: the stable twins of `fuzz/fuzz_targets/link.rs` -------------

/// Tight windows and limits, so short inputs reach every limit.
fn tight_config(kind: FramingKind) -> LinkConfig {
    let mut config = config(kind);
    config.stream_window = 1024;
    config.link_window = 4096;
    config.limits = Limits {
        max_message_bytes: 3000,
        max_inbound_streams: 4,
        max_buffered_bytes: 1536,
        spool_threshold: 1024,
    };
    config
}

/// What the reassembly of a link with `config` may hold in memory for incomplete
/// messages: the pressure limit, `min(link_window / 2, max_buffered_bytes)`.
fn memory_bound(config: &LinkConfig) -> u64 {
    (config.link_window / 2).min(config.limits.max_buffered_bytes)
}

/// A connected [`Link`] and, fed the very same input and calls, a bare [`Session`]
/// (its inbound half, public too) whose `buffered_bytes` shows the reassembly
/// memory the `Link` does not expose.
struct Harness {
    kind: FramingKind,
    link: Link,
    /// The inbound half alone, decoding in place (`handle_input_buf`, into
    /// `twin_buf`) where the link copies: both must agree on everything.
    twin: Session,
    twin_buf: BytesMut,
    max_frame_len: usize,
    bound: u64,
    peer: Peer,
    failed: bool,
    /// Our requests not canceled: the only ids an answer may be delivered on.
    requested: BTreeSet<StreamId>,
    answered: BTreeSet<StreamId>,
    /// Body bytes the peer sent, per stream and in all, and the credit granted back.
    received: BTreeMap<StreamId, u64>,
    received_total: u64,
    granted: BTreeMap<StreamId, u64>,
}

impl Harness {
    fn new(config: LinkConfig) -> Harness {
        let kind = config.framing;
        let bound = memory_bound(&config);
        let max_frame_len = config.max_frame_len;
        let mut link = Link::new(config.clone(), None);
        let mut twin = Session::new(config, None);
        twin.set_read_ahead(1024);
        let mut peer = Peer::new(kind);
        let hello = peer.bytes(Frame::Hello(Hello::new(PEER_NONCE)));
        link.handle_input(&hello, Instant::ZERO).unwrap();
        twin.handle_input(&hello, Instant::ZERO).unwrap();
        assert!(link.is_connected() && twin.is_connected());
        let mut h = Harness {
            kind,
            link,
            twin,
            twin_buf: BytesMut::new(),
            max_frame_len,
            bound,
            peer,
            failed: false,
            requested: BTreeSet::new(),
            answered: BTreeSet::new(),
            received: BTreeMap::new(),
            received_total: 0,
            granted: BTreeMap::new(),
        };
        h.drain().unwrap();
        h
    }

    /// Feeds wire bytes to both; checks everything after.
    fn input(&mut self, bytes: &[u8]) -> Result<(), TestCaseError> {
        let result = self.link.handle_input(bytes, Instant::ZERO);
        self.twin_buf.extend_from_slice(bytes);
        let twin_result = self
            .twin
            .handle_input_buf(&mut self.twin_buf, Instant::ZERO);
        prop_assert_eq!(&result, &twin_result, "Link and Session disagree");
        // What stays in the reader's buffer is at most one unfinished frame.
        prop_assert!(self.twin_buf.len() <= self.max_frame_len + 10);
        if self.failed {
            prop_assert!(result.is_err(), "a failed link accepted input");
        }
        if result.is_err() {
            prop_assert!(self.link.is_failed());
        }
        self.drain()
    }

    /// Encodes `frame` as the peer would and feeds it, counting its body bytes.
    fn frame(&mut self, frame: Frame) -> Result<(), TestCaseError> {
        let body = match &frame {
            Frame::Open(open) => Some((open.stream, open.payload.len())),
            Frame::Data(data) => Some((data.stream, data.payload.len())),
            _ => None,
        };
        if let (Some((stream, len)), false) = (body, self.failed) {
            *self.received.entry(stream).or_default() += len as u64;
            self.received_total += len as u64;
        }
        let bytes = self.peer.bytes(frame);
        self.input(&bytes)
    }

    /// A user call on both.
    fn call(&mut self, call: &Call) -> Result<(), TestCaseError> {
        match *call {
            Call::Request(len) => {
                let message = Message::new("mine", vec![3u8; len]);
                let a = self.link.request(message.clone());
                let b = self.twin.request(message);
                prop_assert_eq!(&a, &b);
                match a {
                    Ok(id) => {
                        prop_assert_eq!(id.parity(), Parity::Odd);
                        self.requested.insert(id);
                    }
                    Err(e) => prop_assert!(
                        matches!(
                            e,
                            ProtocolError::InvalidState { .. } | ProtocolError::GoingAway
                        ),
                        "{:?}",
                        e
                    ),
                }
            }
            Call::Respond(id, ok) => {
                let outcome = if ok { Ok(()) } else { Err(ErrorCode::NotFound) };
                let a = self
                    .link
                    .respond(StreamId(id), outcome, Message::new("", "a"));
                let b = self
                    .twin
                    .respond(StreamId(id), outcome, Message::new("", "a"));
                prop_assert_eq!(&a, &b);
                if let Err(e) = a {
                    prop_assert!(matches!(e, ProtocolError::InvalidState { .. }), "{:?}", e);
                }
            }
            Call::Cancel(id) => {
                self.link.cancel(StreamId(id), ErrorCode::Canceled);
                self.twin.cancel(StreamId(id), ErrorCode::Canceled);
                self.requested.remove(&StreamId(id));
            }
            Call::Ping(opaque) => {
                self.link.ping(opaque);
                self.twin.ping(opaque);
            }
            Call::GoAway => {
                self.link.go_away(ErrorCode::NoError, "bye");
                self.twin.go_away(ErrorCode::NoError, "bye");
            }
        }
        self.drain()
    }

    /// Drains both; checks the wire output, the events and the memory bound.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        let mut wire = BytesMut::new();
        while self.link.poll_transmit(&mut wire) > 0 {}
        let mut decoder = Framer::new(self.kind, 1 << 20);
        loop {
            match decoder.decode(&mut wire) {
                Ok(Some(raw)) => {
                    let envelope = Envelope::decode(raw);
                    prop_assert!(envelope.is_ok(), "the link sent a bad frame: {envelope:?}");
                    if let Ok(Envelope {
                        frame: Frame::Credit(c),
                        ..
                    }) = envelope
                    {
                        *self.granted.entry(c.stream).or_default() += c.increment;
                    }
                }
                Ok(None) => break,
                Err(e) => prop_assert!(false, "the link's framing is broken: {e:?}"),
            }
        }
        prop_assert!(wire.is_empty());
        // Credit goes back for bytes received, never more.
        for (&stream, &granted) in &self.granted {
            let received = if stream == Credit::LINK {
                self.received_total
            } else {
                self.received.get(&stream).copied().unwrap_or(0)
            };
            prop_assert!(
                granted <= received,
                "{} credit granted for {} bytes received on {}",
                granted,
                received,
                stream
            );
        }
        while let Some(event) = self.link.poll_event() {
            match event {
                LinkEvent::Failed { .. } => {
                    prop_assert!(!self.failed, "failed twice");
                    self.failed = true;
                }
                LinkEvent::Message { head, .. } if head.kind.is_answer() => {
                    prop_assert!(
                        self.requested.contains(&head.stream),
                        "an answer delivered on {} (not a live request of ours)",
                        head.stream
                    );
                    prop_assert!(self.answered.insert(head.stream), "answered twice");
                }
                LinkEvent::Message { head, .. } => {
                    prop_assert_eq!(head.stream.parity(), Parity::Even);
                }
                _ => {}
            }
        }
        prop_assert_eq!(self.failed, self.link.is_failed());
        while self.twin.poll_command().is_some() {}
        while self.twin.poll_event().is_some() {}
        prop_assert_eq!(self.twin.is_failed(), self.link.is_failed());
        prop_assert!(
            self.twin.buffered_bytes() <= self.bound,
            "{} bytes buffered, bound {}",
            self.twin.buffered_bytes(),
            self.bound
        );
        Ok(())
    }
}

/// A user call between peer frames.
#[derive(Clone, Debug)]
enum Call {
    Request(usize),
    Respond(u64, bool),
    Cancel(u64),
    Ping(u64),
    GoAway,
}

/// One step of a valid-frame run: a peer frame (mostly) or a user call.
#[derive(Clone, Debug)]
enum Step {
    Peer(Frame),
    Call(Call),
}

fn arb_body(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// A stream id on a few values so frames collide: mostly of the right parity for
/// the frame (ours, odd, for answers; the peer's, even, for the rest), sometimes any.
fn arb_id(ours: bool) -> impl Strategy<Value = u64> {
    let first = if ours { 1 } else { 2 };
    prop_oneof![
        9 => (0u64..6).prop_map(move |n| first + 2 * n),
        1 => 0u64..12,
    ]
}

/// Well-formed frames of every kind.
fn arb_frame() -> impl Strategy<Value = Frame> {
    const KINDS: [MessageKind; 4] = [
        MessageKind::Request,
        MessageKind::OneWay,
        MessageKind::Response,
        MessageKind::ErrorResponse,
    ];
    let any_id = || prop_oneof![arb_id(true), arb_id(false)];
    prop_oneof![
        20 => (
            proptest::sample::select(&KINDS[..]),
            proptest::sample::select(&Priority::ALL[..]),
            any::<bool>(),
            arb_body(1200),
            proptest::option::of(0u64..4000),
        )
            .prop_flat_map(|(kind, priority, fin, payload, total)| {
                (arb_id(kind.is_answer()), Just((kind, priority, fin, payload, total)))
            })
            .prop_map(|(id, (kind, priority, fin, payload, total))| {
                let route = if kind.is_answer() { "" } else { "r" };
                let mut open = Open::new(StreamId(id), kind, route);
                open.priority = priority;
                if kind == MessageKind::ErrorResponse {
                    open.code = Some(ErrorCode::HandlerFailed);
                }
                // A total on a FIN frame must match the payload.
                open.total_len = match (fin, total) {
                    (true, Some(_)) => Some(payload.len() as u64),
                    (false, Some(t)) => Some(t.max(payload.len() as u64)),
                    (_, None) => None,
                };
                open.payload = payload;
                open.fin = fin;
                Frame::Open(open)
            }),
        20 => (any_id(), any::<bool>(), arb_body(1200)).prop_map(|(id, fin, payload)| {
            Frame::Data(Data {
                stream: StreamId(id),
                payload,
                fin,
            })
        }),
        5 => any_id().prop_map(|id| Frame::End(End {
            stream: StreamId(id)
        })),
        4 => (any_id(), 0u64..14).prop_map(|(id, code)| Frame::Cancel(Cancel {
            stream: StreamId(id),
            code: ErrorCode::from_wire(code),
        })),
        4 => (0u64..12, 0u64..20_000).prop_map(|(id, increment)| Frame::Credit(Credit {
            stream: StreamId(id),
            increment,
        })),
        2 => any::<u64>().prop_map(|opaque| Frame::Ping(Ping { opaque })),
        2 => any::<u64>().prop_map(|opaque| Frame::Pong(Pong { opaque })),
        2 => (any::<u8>(), any::<u128>()).prop_map(|(next, selective)| Frame::Ack(Ack {
            next,
            selective
        })),
        1 => (0u64..12, "[a-z]{0,8}").prop_map(|(id, reason)| Frame::GoAway(GoAway {
            last_stream: StreamId(id),
            code: ErrorCode::NoError,
            reason,
        })),
        1 => any::<u64>().prop_map(|nonce| Frame::Hello(Hello::new(nonce))),
    ]
}

fn arb_step() -> impl Strategy<Value = Step> {
    let id = 0u64..12;
    prop_oneof![
        12 => arb_frame().prop_map(Step::Peer),
        2 => (0usize..3000).prop_map(|len| Step::Call(Call::Request(len))),
        1 => (id.clone(), any::<bool>()).prop_map(|(id, ok)| Step::Call(Call::Respond(id, ok))),
        1 => id.prop_map(|id| Step::Call(Call::Cancel(id))),
        1 => any::<u64>().prop_map(|o| Step::Call(Call::Ping(o))),
        1 => Just(Step::Call(Call::GoAway)),
    ]
}

fn arb_config() -> impl Strategy<Value = LinkConfig> {
    (any::<bool>(), any::<bool>()).prop_map(|(serial, tight)| {
        let kind = if serial {
            FramingKind::Serial
        } else {
            FramingKind::Stream
        };
        if tight {
            tight_config(kind)
        } else {
            config(kind)
        }
    })
}

proptest! {
    /// Arbitrary bytes in arbitrary pieces after the handshake: never a panic,
    /// every error typed, a failed link stays failed, the output always decodes,
    /// and reassembly memory stays under its bound.
    #[test]
    fn arbitrary_bytes_never_panic(
        config in arb_config(),
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..256), 0..16),
    ) {
        let mut h = Harness::new(config);
        for piece in &pieces {
            h.input(piece)?;
        }
    }

    /// Arbitrary frame bytes, each correctly framed (so the serial framing's CRC
    /// lets them through to the frame decoder and the state machine).
    #[test]
    fn arbitrary_frame_bytes_never_panic(
        config in arb_config(),
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..24),
    ) {
        let mut h = Harness::new(config);
        for raw in &frames {
            let mut wire = BytesMut::new();
            h.peer.framer.encode(raw, &[], &mut wire);
            h.input(&wire)?;
        }
    }

    /// Arbitrary sequences of well-formed frames (kinds, ids, lengths and order at
    /// random) mixed with user calls: protocol violations fail the link with a typed
    /// error, limits refuse streams, answers reach only live requests, credit never
    /// exceeds what arrived, memory stays bounded.
    #[test]
    fn arbitrary_valid_frames_never_panic(
        config in arb_config(),
        steps in proptest::collection::vec(arb_step(), 0..48),
    ) {
        let mut h = Harness::new(config);
        for step in steps {
            match step {
                Step::Peer(frame) => h.frame(frame)?,
                Step::Call(call) => h.call(&call)?,
            }
        }
    }
}

/// Feeds `wire` to `link` in pieces of the given sizes (cycled), by copy or in place.
/// Returns every event (as text) and the messages delivered (route, body).
fn feed(
    link: &mut Link,
    wire: &[u8],
    sizes: &[usize],
    in_place: bool,
) -> (Vec<String>, Vec<(String, Bytes)>) {
    let mut buf = BytesMut::new();
    let (mut at, mut i, mut seen, mut delivered) = (0, 0, Vec::new(), Vec::new());
    while at < wire.len() {
        let n = sizes[i % sizes.len()].clamp(1, wire.len() - at);
        i += 1;
        if in_place {
            buf.extend_from_slice(&wire[at..at + n]);
            link.handle_input_buf(&mut buf, Instant::ZERO).unwrap();
        } else {
            link.handle_input(&wire[at..at + n], Instant::ZERO).unwrap();
        }
        at += n;
        for event in events(link) {
            seen.push(format!("{event:?}"));
            if let LinkEvent::Message { head, body } = event {
                delivered.push((head.route, body));
            }
        }
    }
    (seen, delivered)
}

proptest! {
    /// Decoding in the reader's buffer (`handle_input_buf`, any read-ahead) gives the
    /// same events as decoding copies (`handle_input`), however the bytes are cut.
    #[test]
    fn in_place_input_decodes_like_copied_input(
        serial in any::<bool>(),
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..12),
        copied_sizes in proptest::collection::vec(1usize..5000, 1..8),
        in_place_sizes in proptest::collection::vec(1usize..5000, 1..8),
        read_ahead in 0usize..9000,
    ) {
        let kind = if serial { FramingKind::Serial } else { FramingKind::Stream };
        // Without the reliable mode, so the sender needs no ACKs to send it all.
        let mut receiver_config = config(kind);
        receiver_config.chunk_len = 512;
        receiver_config.reliable = None;
        let sender_config = LinkConfig { chunk_len: 700, reliable: None, ..LinkConfig::new(kind, 7) };
        let mut sender = Link::new(sender_config, None);
        let mut copied = Link::new(receiver_config.clone(), None);
        let mut in_place = Link::new(receiver_config, None);
        in_place.set_read_ahead(read_ahead);
        // Handshake: the receivers' HELLOs are identical (same config).
        let mut hello = BytesMut::new();
        while copied.poll_transmit(&mut hello) > 0 {}
        sender.handle_input(&hello, Instant::ZERO).unwrap();
        for (i, body) in bodies.iter().enumerate() {
            sender.one_way(Message::new(format!("r/{i}"), body.clone())).unwrap();
        }
        let mut wire = BytesMut::new();
        while sender.poll_transmit(&mut wire) > 0 {}
        let (a, delivered) = feed(&mut copied, &wire, &copied_sizes, false);
        let (b, _) = feed(&mut in_place, &wire, &in_place_sizes, true);
        prop_assert_eq!(&a, &b);
        // Every message exactly once, byte for byte (a duplicate, a loss or a
        // damaged body fails; arrival order follows the scheduler, not `bodies`).
        let mut by_route: BTreeMap<String, Vec<Bytes>> = BTreeMap::new();
        for (route, body) in delivered {
            by_route.entry(route).or_default().push(body);
        }
        prop_assert_eq!(by_route.len(), bodies.len(), "every message arrives");
        for (i, body) in bodies.iter().enumerate() {
            let got = &by_route[&format!("r/{i}")];
            prop_assert_eq!(got.len(), 1, "r/{} delivered {} times", i, got.len());
            prop_assert_eq!(got[0].as_ref(), &body[..]);
        }
    }
}

/// A peer that sends half of a request and half of an answer, then only PINGs:
/// after the stall timeout both streams are canceled with `Timeout` on the wire,
/// reported as refused (`Stalled`) here, and the request can no longer be
/// answered; the link stays up and its buffers are empty.
#[test]
fn streams_quiet_past_the_stall_timeout_are_canceled_with_timeout() {
    for kind in [FramingKind::Stream, FramingKind::Serial] {
        let mut link = Link::new(
            LinkConfig {
                stall_timeout: Some(Duration::from_secs(30)),
                reliable: None,
                ..config(kind)
            },
            None,
        );
        let mut peer = Peer::new(kind);
        let hello = peer.bytes(Frame::Hello(Hello::new(PEER_NONCE)));
        link.handle_input(&hello, Instant::ZERO).unwrap();
        let ours = link.request(Message::new("r", "q")).unwrap();
        sent_frames(&mut link, kind);
        let mut request = Open::new(StreamId(2), MessageKind::Request, "upload");
        request.total_len = Some(1000);
        request.payload = Bytes::from(vec![7; 100]);
        let mut answer = Open::new(ours, MessageKind::Response, "");
        answer.total_len = Some(1000);
        answer.payload = Bytes::from(vec![8; 100]);
        let mut input = peer.bytes(Frame::Open(request));
        input.extend(peer.bytes(Frame::Open(answer)));
        link.handle_input(&input, Instant::from_millis(1)).unwrap();
        events(&mut link);
        assert!(link.session().buffered_bytes() > 0);
        let mut canceled = Vec::new();
        let mut refused = Vec::new();
        for t in 1..=40u64 {
            let now = Instant::from_millis(t * 1000);
            let ping = peer.bytes(Frame::Ping(Ping { opaque: t }));
            link.handle_input(&ping, now).unwrap();
            if link.poll_timeout().is_some_and(|due| due <= now) {
                link.handle_timeout(now);
            }
            for frame in sent_frames(&mut link, kind) {
                if let Frame::Cancel(cancel) = frame {
                    canceled.push((t, cancel));
                }
            }
            for event in events(&mut link) {
                match event {
                    LinkEvent::Refused { stream, error } => refused.push((t, stream, error)),
                    LinkEvent::Failed { error } => panic!("{error}"),
                    _ => {}
                }
            }
        }
        let code = ErrorCode::Timeout;
        assert_eq!(
            canceled,
            [
                (31, Cancel { stream: ours, code }),
                (
                    31,
                    Cancel {
                        stream: StreamId(2),
                        code
                    }
                )
            ],
            "{kind:?}"
        );
        assert_eq!(
            refused,
            [
                (31, ours, ProtocolError::Stalled { id: ours.0 }),
                (31, StreamId(2), ProtocolError::Stalled { id: 2 })
            ]
        );
        assert_eq!(link.session().buffered_bytes(), 0);
        assert!(link.is_connected());
        assert!(link
            .respond(StreamId(2), Ok(()), Message::new("", "late"))
            .is_err());
    }
}
