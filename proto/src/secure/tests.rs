#![allow(clippy::unwrap_used)]

use super::channel::{Opener, ReplayWindow, Sealer, REPLAY_WINDOW, TAG_LEN};
use super::handshake::{respond, Handshake};
use super::{KeyId, SecureKeys, SecureStats};
use crate::error::SecureError;

#[test]
fn replay_window_accepts_each_counter_once_within_the_window() {
    let mut w = ReplayWindow::default();
    for c in [5, 3, 4, 10, 6] {
        w.check(c).unwrap();
        w.mark(c);
    }
    for c in [5, 3, 4, 10, 6] {
        assert_eq!(w.check(c), Err(SecureError::Replayed));
    }
    w.check(7).unwrap();
    w.mark(10 + REPLAY_WINDOW);
    assert_eq!(w.check(10), Err(SecureError::TooOld));
    w.check(11).unwrap();
    // A jump beyond the whole window forgets everything below it.
    w.mark(10 + 4 * REPLAY_WINDOW);
    assert_eq!(w.check(10 + REPLAY_WINDOW), Err(SecureError::TooOld));
    w.check(10 + 4 * REPLAY_WINDOW - 1).unwrap();
}

fn pair() -> (Sealer, Opener, Sealer, Opener) {
    let keys = SecureKeys::new().with("d", [1; 32]);
    let handshake = Handshake::initiate(&KeyId::from("d"), &[1; 32]).unwrap();
    let (answer, responder) = respond(&keys, handshake.first_message()).unwrap();
    let initiator = handshake.finish(&answer).unwrap();
    assert_eq!(initiator.handshake_hash(), responder.handshake_hash());
    assert_eq!(initiator.resume_secret(), responder.resume_secret());
    let (is, io) = initiator.channel();
    let (rs, ro) = responder.channel();
    (is, io, rs, ro)
}

#[test]
fn sealed_frames_open_on_the_other_side_only() {
    let (mut is, mut io, mut rs, mut ro) = pair();
    let mut stats = SecureStats::default();
    let mut out = Vec::new();
    is.seal(b"head", b"payload", &mut out).unwrap();
    assert_eq!(out.len(), 1 + 11 + TAG_LEN);
    // Its own opener has the other direction's key.
    assert_eq!(io.open(&out, &mut stats), Err(SecureError::Tampered));
    assert_eq!(&ro.open(&out, &mut stats).unwrap()[..], b"headpayload");
    assert_eq!(ro.open(&out, &mut stats), Err(SecureError::Replayed));
    rs.seal(b"x", b"", &mut out).unwrap();
    assert_eq!(&io.open(&out, &mut stats).unwrap()[..], b"x");
    assert_eq!(stats.frames_opened, 2);
    assert_eq!(stats.dropped_tampered, 1);
    assert_eq!(stats.dropped_replayed, 1);
}

#[test]
fn malformed_sealed_frames_are_typed_errors() {
    let (_, _, _, mut ro) = pair();
    let mut stats = SecureStats::default();
    for bad in [&[][..], &[0x80][..], &[0; TAG_LEN][..]] {
        assert!(matches!(
            ro.open(bad, &mut stats),
            Err(SecureError::Malformed { .. })
        ));
    }
}

#[test]
fn handshake_errors() {
    let keys = SecureKeys::new().with("d", [1; 32]);
    let wrong = Handshake::initiate(&KeyId::from("d"), &[2; 32]).unwrap();
    assert_eq!(
        respond(&keys, wrong.first_message()).err(),
        Some(SecureError::WrongKey)
    );
    let unknown = Handshake::initiate(&KeyId::from("e"), &[1; 32]).unwrap();
    assert_eq!(
        respond(&keys, unknown.first_message()).err(),
        Some(SecureError::UnknownKey)
    );
    let good = Handshake::initiate(&KeyId::from("d"), &[1; 32]).unwrap();
    let first = good.first_message().clone();
    for cut in 0..first.len() {
        assert!(respond(&keys, &first[..cut]).is_err());
    }
    assert!(Handshake::initiate(&KeyId::new([0u8; 65]), &[1; 32]).is_err());
}

/// An initiator resends its opening until answered, so over a slow connection a
/// copy can reach the link that took the connection over from the runtime's
/// handshake (an accepting endpoint answers the first opening itself): the link
/// answers it again, as the responder that answered it would, instead of failing.
#[test]
fn a_repeated_opening_after_a_runtime_handshake_gets_the_same_answer() {
    use super::{Inbound, SecureLink, SecureOutput, SecureRole};
    use crate::time::Instant;
    let keys = SecureKeys::new().with("d", [1; 32]);
    let handshake = Handshake::initiate(&KeyId::from("d"), &[1; 32]).unwrap();
    let opening = handshake.first_message().clone();
    let (answer, established) = respond(&keys, &opening).unwrap();
    let answered_again = |link: &mut SecureLink| {
        while let Some(SecureOutput::Ready(_)) = link.poll_output() {}
        assert!(matches!(
            link.handle(opening.clone()),
            Ok(Inbound::Consumed)
        ));
        match link.poll_output() {
            Some(SecureOutput::Send(again)) => assert_eq!(again, answer),
            other => panic!("no answer to the repeated opening: {other:?}"),
        }
    };

    // A new link started with the runtime's keys...
    let mut link = SecureLink::new(SecureRole::Established(established.clone()));
    link.start(Instant::ZERO).unwrap();
    answered_again(&mut link);
    // ...and a link resuming its session on the new connection.
    let mut link = SecureLink::new(SecureRole::Responder { keys: keys.clone() });
    link.start_established(established);
    answered_again(&mut link);
    // Any other handshake frame after the handshake still fails the link.
    let other = Handshake::initiate(&KeyId::from("d"), &[1; 32]).unwrap();
    assert!(matches!(
        link.handle(other.first_message().clone()),
        Err(SecureError::Unexpected { .. })
    ));
}
