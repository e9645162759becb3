//! Driver of the authenticated mode: a connected pair of links, then arbitrary,
//! replayed, altered and handshake-looking frames into the responder.

use crate::framing::{Framer, Framing, FramingKind};
use crate::link::{Link, LinkConfig, LinkEvent, Message};
use crate::secure::{KeyId, SecureKeys, SecureRole, HANDSHAKE_MARKER};
use crate::time::Instant;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

/// Every frame `from` has to send, as the framing delimits them.
fn frames_of(from: &mut Link, framing: FramingKind) -> Vec<Bytes> {
    let mut wire = BytesMut::new();
    while from.poll_transmit(&mut wire) > 0 {}
    let mut decoder = Framer::new(framing, 1 << 20);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = decoder.decode(&mut wire) {
        frames.push(frame);
    }
    frames
}

fn deliver(to: &mut Link, framing: FramingKind, frames: &[Bytes]) {
    let mut encoder = Framer::new(framing, 1 << 20);
    let mut wire = BytesMut::new();
    for frame in frames {
        encoder.encode(frame, &[], &mut wire);
    }
    let _ = to.handle_input(&wire, Instant::ZERO);
}

fn messages(link: &mut Link) -> Vec<Bytes> {
    core::iter::from_fn(|| link.poll_event())
        .filter_map(|event| match event {
            LinkEvent::Message { body, .. } => Some(body),
            _ => None,
        })
        .collect()
}

/// Input: `[control] ([op] [len] bytes[len])*`. Control bit 0 picks the framing
/// (serial, stream). After the handshake, A sends two messages whose sealed frames
/// are kept; then each op sends B one frame: arbitrary bytes (op 0), a kept frame
/// again (1), a kept frame with one byte changed (2), or a handshake marker with
/// arbitrary bytes (3). Checks: nothing panics; B delivers only what A sent, each
/// once; on the serial framing B never fails (bad frames are dropped) and a new
/// message from A still arrives; on the stream framing B may fail, never panic.
pub fn secure(data: &[u8]) {
    let [control, input @ ..] = data else {
        return;
    };
    let mut rest: &[u8] = input;
    let framing = if control & 1 == 0 {
        FramingKind::Serial
    } else {
        FramingKind::Stream
    };
    let mut a_config = LinkConfig::new(framing, 2);
    a_config.reliable = None;
    a_config.secure = Some(SecureRole::Initiator {
        key_id: KeyId::from("fuzz"),
        psk: [5; 32],
    });
    let mut b_config = LinkConfig::new(framing, 1);
    b_config.reliable = None;
    b_config.secure = Some(SecureRole::Responder {
        keys: SecureKeys::new().with("fuzz", [5; 32]),
    });
    let (mut a, mut b) = (Link::new(a_config, None), Link::new(b_config, None));
    for _ in 0..4 {
        let to_b = frames_of(&mut a, framing);
        deliver(&mut b, framing, &to_b);
        let to_a = frames_of(&mut b, framing);
        deliver(&mut a, framing, &to_a);
    }
    assert!(
        a.is_connected() && b.is_connected(),
        "the handshake completes"
    );
    let sent: [&[u8]; 3] = [b"genuine one", b"genuine two", b"genuine last"];
    let mut kept = Vec::new();
    for body in &sent[..2] {
        let _ = a.one_way(Message::new("t", Bytes::from_static(body)));
        kept.extend(frames_of(&mut a, framing));
    }
    deliver(&mut b, framing, &kept);
    let mut got = messages(&mut b);
    kept.retain(|f| !f.is_empty());
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(n);
        rest = next;
        let pick = |i: u8| kept[usize::from(i) % kept.len()].clone();
        let frame: Vec<u8> = match (op % 4, bytes) {
            (1, [i, ..]) => pick(*i).to_vec(),
            (2, [i, at, x, ..]) => {
                let mut f = pick(*i).to_vec();
                let at = usize::from(*at) % f.len();
                f[at] ^= x | 1;
                f
            }
            (3, _) => [&HANDSHAKE_MARKER[..], bytes].concat(),
            _ => bytes.to_vec(),
        };
        if frame.is_empty() {
            continue;
        }
        deliver(&mut b, framing, &[Bytes::from(frame)]);
        got.extend(messages(&mut b));
        if b.is_failed() {
            assert_eq!(
                framing,
                FramingKind::Stream,
                "a bad frame never fails a serial link"
            );
            break;
        }
    }
    if !b.is_failed() {
        let _ = a.one_way(Message::new("t", Bytes::from_static(sent[2])));
        let last = frames_of(&mut a, framing);
        deliver(&mut b, framing, &last);
        got.extend(messages(&mut b));
        assert!(
            got.iter().any(|m| m[..] == *sent[2]),
            "the link still works"
        );
    }
    for body in sent {
        assert!(
            got.iter().filter(|m| m[..] == *body).count() <= 1,
            "delivered twice"
        );
    }
    assert!(
        got.iter().all(|m| sent.contains(&&m[..])),
        "B delivered a forged message"
    );
}
