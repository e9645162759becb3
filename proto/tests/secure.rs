//! The authenticated mode end to end between two `Link`s: handshake, wrong and
//! unknown keys, tampered, replayed, reordered and too old frames, downgrades both
//! ways, and session resume with and without the session's keys. A hand-driven wire
//! decodes every frame with the real framing, so a test can alter, repeat, drop or
//! reorder sealed frames and re-frame them (an attacker on the line computes a
//! valid CRC too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use netcore_proto::framing::{Framer, Framing, FramingKind};
use netcore_proto::link::{Link, LinkConfig, LinkEvent, Message};
use netcore_proto::secure::{KeyId, SecureKeys, SecureRole, HANDSHAKE_MARKER};
use netcore_proto::{Instant, ProtocolError, SecureError};
use std::time::Duration;

const DEVICE_KEY: [u8; 32] = [7; 32];
const OTHER_KEY: [u8; 32] = [9; 32];

fn keys() -> SecureKeys {
    SecureKeys::new()
        .with("dev-1", DEVICE_KEY)
        .with("dev-2", OTHER_KEY)
}

fn initiator(kind: FramingKind, key_id: &str, psk: [u8; 32], nonce: u64) -> LinkConfig {
    let mut config = LinkConfig::new(kind, nonce);
    config.secure = Some(SecureRole::Initiator {
        key_id: KeyId::from(key_id),
        psk,
    });
    config
}

fn responder(kind: FramingKind) -> LinkConfig {
    let mut config = LinkConfig::new(kind, 2);
    config.secure = Some(SecureRole::Responder { keys: keys() });
    config
}

/// What the wire does with the frames of one direction.
type Filter = Box<dyn FnMut(Vec<Bytes>) -> Vec<Bytes>>;

/// Two links joined by a frame-aware wire.
struct Wire {
    a: Link,
    b: Link,
    kind: FramingKind,
    now: Instant,
    a_to_b: Option<Filter>,
    b_to_a: Option<Filter>,
    /// Every frame A sent (after the filter), in order.
    sent_by_a: Vec<Bytes>,
}

impl Wire {
    fn new(a: LinkConfig, b: LinkConfig) -> Wire {
        let kind = a.framing;
        Wire {
            a: Link::new(a, None),
            b: Link::new(b, None),
            kind,
            now: Instant::ZERO,
            a_to_b: None,
            b_to_a: None,
            sent_by_a: Vec::new(),
        }
    }

    /// Moves frames both ways until nothing moves (time advances 1 ms a round, so
    /// delayed acknowledgements leave).
    fn run(&mut self) {
        for _ in 0..200 {
            let moved_ab = self.carry(true);
            let moved_ba = self.carry(false);
            self.now = self.now + Duration::from_millis(1);
            self.a.handle_timeout(self.now);
            self.b.handle_timeout(self.now);
            if !moved_ab && !moved_ba && self.a.is_idle() && self.b.is_idle() {
                return;
            }
        }
    }

    fn carry(&mut self, a_to_b: bool) -> bool {
        let (from, to, filter) = if a_to_b {
            (&mut self.a, &mut self.b, &mut self.a_to_b)
        } else {
            (&mut self.b, &mut self.a, &mut self.b_to_a)
        };
        let mut wire = BytesMut::new();
        while from.poll_transmit(&mut wire) > 0 {}
        if wire.is_empty() {
            return false;
        }
        let mut decoder = Framer::new(self.kind, 1 << 20);
        let mut frames = Vec::new();
        while let Ok(Some(frame)) = decoder.decode(&mut wire) {
            frames.push(frame);
        }
        if let Some(filter) = filter.as_mut() {
            frames = filter(frames);
        }
        if a_to_b {
            self.sent_by_a.extend(frames.iter().cloned());
        }
        let bytes = frame_all(self.kind, &frames);
        let _ = to.handle_input(&bytes, self.now);
        true
    }
}

fn frame_all(kind: FramingKind, frames: &[Bytes]) -> Vec<u8> {
    let mut encoder = Framer::new(kind, 1 << 20);
    let mut out = BytesMut::new();
    for frame in frames {
        encoder.encode(frame, &[], &mut out);
    }
    out.to_vec()
}

fn events(link: &mut Link) -> Vec<LinkEvent> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

fn failure(events: &[LinkEvent]) -> Option<ProtocolError> {
    events.iter().find_map(|e| match e {
        LinkEvent::Failed { error } => Some(error.clone()),
        _ => None,
    })
}

fn messages(events: &[LinkEvent]) -> Vec<Bytes> {
    events
        .iter()
        .filter_map(|e| match e {
            LinkEvent::Message { body, .. } => Some(body.clone()),
            _ => None,
        })
        .collect()
}

fn connected(wire: &mut Wire) {
    wire.run();
    assert!(wire.a.is_connected(), "{:?}", events(&mut wire.a));
    assert!(wire.b.is_connected(), "{:?}", events(&mut wire.b));
    events(&mut wire.a);
    events(&mut wire.b);
}

fn secure_err(error: Option<ProtocolError>) -> SecureError {
    match error {
        Some(ProtocolError::Secure(e)) => e,
        other => panic!("expected a secure error, got {other:?}"),
    }
}

#[test]
fn handshake_then_messages_both_framings() {
    for kind in [FramingKind::Serial, FramingKind::Stream] {
        let mut wire = Wire::new(initiator(kind, "dev-1", DEVICE_KEY, 9), responder(kind));
        connected(&mut wire);
        assert_eq!(
            wire.b.session().secure_peer(),
            Some(&KeyId::from("dev-1")),
            "the responder sees who connected"
        );
        assert_eq!(wire.a.session().secure_peer(), Some(&KeyId::from("dev-1")));
        wire.a
            .one_way(Message::new("t", Bytes::from_static(b"secret payload!!")))
            .unwrap();
        wire.run();
        assert_eq!(
            messages(&events(&mut wire.b)),
            vec![Bytes::from_static(b"secret payload!!")]
        );
        // Nothing but the two handshake frames travels in the clear.
        let clear = wire
            .sent_by_a
            .iter()
            .filter(|f| f.windows(16).any(|w| w == b"secret payload!!"))
            .count();
        assert_eq!(clear, 0, "{kind:?}: the payload is encrypted");
        let handshakes = wire
            .sent_by_a
            .iter()
            .filter(|f| f.starts_with(&HANDSHAKE_MARKER))
            .count();
        assert_eq!(handshakes, 1, "{kind:?}: one opening");
        let stats = wire.b.stats().secure.unwrap();
        assert_eq!(stats.handshakes, 1);
        assert_eq!(stats.dropped(), 0);
    }
}

#[test]
fn wrong_key_fails_both_sides_and_routes_nothing() {
    for kind in [FramingKind::Serial, FramingKind::Stream] {
        let mut wire = Wire::new(initiator(kind, "dev-1", OTHER_KEY, 9), responder(kind));
        wire.run();
        let b_events = events(&mut wire.b);
        assert_eq!(
            secure_err(failure(&b_events)),
            SecureError::WrongKey,
            "{kind:?}"
        );
        assert!(messages(&b_events).is_empty());
        let a_error = secure_err(failure(&events(&mut wire.a)));
        assert!(
            matches!(a_error, SecureError::Rejected(_)),
            "{kind:?}: {a_error:?}"
        );
        assert!(!wire.a.is_connected() && !wire.b.is_connected());
    }
}

#[test]
fn unknown_key_id_is_refused() {
    let kind = FramingKind::Stream;
    let mut wire = Wire::new(initiator(kind, "stranger", DEVICE_KEY, 9), responder(kind));
    wire.run();
    assert_eq!(
        secure_err(failure(&events(&mut wire.b))),
        SecureError::UnknownKey
    );
}

/// Sends `n` one-way messages from A after the handshake, each its own frame.
fn send_messages(wire: &mut Wire, n: usize) {
    for i in 0..n {
        wire.a
            .one_way(Message::new("t", Bytes::from(format!("message {i:02}"))))
            .unwrap();
    }
}

/// Sealed message frames: not handshake frames, large enough to hold a message.
fn is_message_frame(frame: &Bytes) -> bool {
    !frame.starts_with(&HANDSHAKE_MARKER) && frame.len() > 20
}

#[test]
fn tampered_frame_is_dropped_on_serial_and_fatal_on_stream() {
    for kind in [FramingKind::Serial, FramingKind::Stream] {
        let mut config = initiator(kind, "dev-1", DEVICE_KEY, 9);
        config.reliable = None;
        let mut b_config = responder(kind);
        b_config.reliable = None;
        let mut wire = Wire::new(config, b_config);
        connected(&mut wire);
        let mut flipped = false;
        wire.a_to_b = Some(Box::new(move |frames| {
            frames
                .into_iter()
                .map(|f| {
                    if !flipped && is_message_frame(&f) {
                        flipped = true;
                        let mut v = f.to_vec();
                        let last = v.len() - 20;
                        v[last] ^= 0x01;
                        Bytes::from(v)
                    } else {
                        f
                    }
                })
                .collect()
        }));
        send_messages(&mut wire, 3);
        wire.run();
        let b_events = events(&mut wire.b);
        match kind {
            FramingKind::Serial => {
                assert_eq!(
                    messages(&b_events).len(),
                    2,
                    "the altered frame is lost, no more"
                );
                assert!(failure(&b_events).is_none());
                assert_eq!(wire.b.stats().secure.unwrap().dropped_tampered, 1);
            }
            FramingKind::Stream => {
                assert_eq!(secure_err(failure(&b_events)), SecureError::Tampered);
                assert!(messages(&b_events).is_empty());
            }
        }
    }
}

#[test]
fn replayed_frame_is_dropped_on_serial_and_fatal_on_stream() {
    for kind in [FramingKind::Serial, FramingKind::Stream] {
        let mut config = initiator(kind, "dev-1", DEVICE_KEY, 9);
        config.reliable = None;
        let mut b_config = responder(kind);
        b_config.reliable = None;
        let mut wire = Wire::new(config, b_config);
        connected(&mut wire);
        wire.a_to_b = Some(Box::new(|frames| {
            let mut out = Vec::new();
            for f in frames {
                if is_message_frame(&f) {
                    out.push(f.clone());
                }
                out.push(f);
            }
            out
        }));
        send_messages(&mut wire, 2);
        wire.run();
        let b_events = events(&mut wire.b);
        match kind {
            FramingKind::Serial => {
                assert_eq!(messages(&b_events).len(), 2, "each message once");
                assert!(failure(&b_events).is_none());
                assert_eq!(wire.b.stats().secure.unwrap().dropped_replayed, 2);
            }
            FramingKind::Stream => {
                assert_eq!(secure_err(failure(&b_events)), SecureError::Replayed);
            }
        }
    }
}

#[test]
fn reordered_frames_within_the_window_are_accepted_and_old_ones_refused() {
    let kind = FramingKind::Serial;
    let mut config = initiator(kind, "dev-1", DEVICE_KEY, 9);
    config.reliable = None;
    let mut b_config = responder(kind);
    b_config.reliable = None;
    let mut wire = Wire::new(config, b_config);
    connected(&mut wire);
    // Hold the first message frame back and deliver it after the next two.
    let mut held: Option<Bytes> = None;
    wire.a_to_b = Some(Box::new(move |frames| {
        let mut out = Vec::new();
        for f in frames {
            if is_message_frame(&f) && held.is_none() {
                held = Some(f);
            } else {
                out.push(f);
            }
        }
        if out.iter().filter(|f| is_message_frame(f)).count() >= 2 {
            out.extend(held.take());
        }
        out
    }));
    send_messages(&mut wire, 3);
    wire.run();
    let got = messages(&events(&mut wire.b));
    assert_eq!(
        got.len(),
        3,
        "a reordered frame within the window is opened"
    );
    assert_eq!(got[2], Bytes::from_static(b"message 00"));
    assert_eq!(wire.b.stats().secure.unwrap().dropped(), 0);

    // A frame older than the window: replay the first sealed frame after more
    // than 2048 newer ones.
    let first = wire
        .sent_by_a
        .iter()
        .find(|f| is_message_frame(f))
        .cloned()
        .unwrap();
    wire.a_to_b = None;
    for _ in 0..2100 {
        wire.a.ping(1);
        wire.run();
    }
    events(&mut wire.b);
    let bytes = frame_all(kind, &[first]);
    wire.b.handle_input(&bytes, wire.now).unwrap();
    assert!(messages(&events(&mut wire.b)).is_empty());
    assert_eq!(wire.b.stats().secure.unwrap().dropped_too_old, 1);
}

#[test]
fn a_secure_side_refuses_a_plain_peer_and_a_plain_side_the_handshake() {
    for kind in [FramingKind::Serial, FramingKind::Stream] {
        // A plain initiator against a responder that requires the authenticated mode.
        let mut wire = Wire::new(LinkConfig::new(kind, 9), responder(kind));
        wire.run();
        let b_events = events(&mut wire.b);
        assert_eq!(
            secure_err(failure(&b_events)),
            SecureError::NotAuthenticated,
            "{kind:?}"
        );
        assert!(!wire.b.is_connected());

        // A secure initiator against a plain responder.
        let mut wire = Wire::new(
            initiator(kind, "dev-1", DEVICE_KEY, 9),
            LinkConfig::new(kind, 2),
        );
        wire.run();
        assert_eq!(
            secure_err(failure(&events(&mut wire.b))),
            SecureError::NotConfigured,
            "{kind:?}"
        );
        assert!(!wire.a.is_connected());
    }
}

#[test]
fn a_stripped_handshake_is_a_downgrade_the_initiator_refuses() {
    // An attacker drops the opening and answers with a plain HELLO of its own.
    let kind = FramingKind::Stream;
    let mut wire = Wire::new(
        initiator(kind, "dev-1", DEVICE_KEY, 9),
        LinkConfig::new(kind, 2),
    );
    wire.a_to_b = Some(Box::new(|frames| {
        frames
            .into_iter()
            .filter(|f| !f.starts_with(&HANDSHAKE_MARKER))
            .collect()
    }));
    wire.run();
    assert_eq!(
        secure_err(failure(&events(&mut wire.a))),
        SecureError::NotAuthenticated
    );
}

#[test]
fn the_opening_is_resent_until_answered() {
    let kind = FramingKind::Serial;
    let mut wire = Wire::new(initiator(kind, "dev-1", DEVICE_KEY, 9), responder(kind));
    let mut dropped = 0;
    wire.a_to_b = Some(Box::new(move |frames| {
        frames
            .into_iter()
            .filter(|f| {
                let drop = f.starts_with(&HANDSHAKE_MARKER) && dropped < 2;
                dropped += usize::from(drop);
                !drop
            })
            .collect()
    }));
    for _ in 0..4 {
        wire.run();
        wire.now = wire.now + Duration::from_millis(1000);
        wire.a.handle_timeout(wire.now);
    }
    wire.run();
    assert!(wire.a.is_connected() && wire.b.is_connected());
}

#[test]
fn session_resumes_with_its_keys() {
    let kind = FramingKind::Serial;
    let mut wire = Wire::new(initiator(kind, "dev-1", DEVICE_KEY, 9), responder(kind));
    connected(&mut wire);
    let secret = wire.b.session().secure().unwrap().resume_secret();
    assert_eq!(secret, wire.a.session().secure().unwrap().resume_secret());
    wire.a.reconnect();
    wire.b.reconnect();
    wire.run();
    assert!(events(&mut wire.b)
        .iter()
        .any(|e| matches!(e, LinkEvent::Resumed)));
    assert!(events(&mut wire.a)
        .iter()
        .any(|e| matches!(e, LinkEvent::Resumed)));
    wire.a
        .one_way(Message::new("t", Bytes::from_static(b"after")))
        .unwrap();
    wire.run();
    assert_eq!(
        messages(&events(&mut wire.b)),
        vec![Bytes::from_static(b"after")]
    );
}

#[test]
fn a_stranger_who_knows_the_session_id_cannot_resume_it() {
    let kind = FramingKind::Serial;
    let a_config = initiator(kind, "dev-1", DEVICE_KEY, 9);
    let session_id = a_config.session_id;
    let mut wire = Wire::new(a_config, responder(kind));
    connected(&mut wire);

    // Another device with a valid key of its own claims dev-1's session.
    let mut stranger = initiator(kind, "dev-2", OTHER_KEY, 11);
    stranger.session_id = session_id;
    wire.a = Link::new(stranger, None);
    wire.b.reconnect();
    wire.run();
    assert_eq!(
        secure_err(failure(&events(&mut wire.b))),
        SecureError::ResumeRefused
    );

    // Even holding dev-1's key: a fresh link has no resume secret of that session.
    let mut wire = Wire::new(initiator(kind, "dev-1", DEVICE_KEY, 9), responder(kind));
    connected(&mut wire);
    let mut thief = initiator(kind, "dev-1", DEVICE_KEY, 13);
    thief.session_id = session_id;
    wire.a = Link::new(thief, None);
    wire.b.reconnect();
    wire.run();
    assert_eq!(
        secure_err(failure(&events(&mut wire.b))),
        SecureError::ResumeRefused
    );
}
