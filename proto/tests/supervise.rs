//! Supervised links in the protocol core ([`LinkConfig::supervised`]): a peer
//! that falls silent leaves the link up, probes reach it, the first frame heard
//! resumes the session with every message delivered once; a repeated HELLO on
//! a live transport resumes instead of failing the link.

use netcore_proto::link::{Keepalive, LinkConfig, LinkEvent, Message};
use netcore_proto::sim::{Direction, Pair, Side, Wire};
use netcore_proto::{Instant, MessageKind, Priority, StreamId};
use proptest::prelude::*;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

fn config(nonce: u64) -> LinkConfig {
    let mut config = LinkConfig::serial(115_200, nonce);
    config.keepalive = Some(Keepalive {
        interval: Duration::from_secs(1),
        max_missed: 3,
    });
    config.supervised = true;
    config
}

/// Which directions swallow every byte, switched by the test.
#[derive(Clone, Default)]
struct Silence {
    a_to_b: Rc<Cell<bool>>,
    b_to_a: Rc<Cell<bool>>,
}

impl Silence {
    fn set(&self, a_to_b: bool, b_to_a: bool) {
        self.a_to_b.set(a_to_b);
        self.b_to_a.set(b_to_a);
    }
}

fn pair() -> (Pair, Silence) {
    let mut p = Pair::new(config(7), config(3), Wire::rated(11_520));
    p.drive_until(Instant::from_millis(100));
    assert!(p.a.link.is_connected() && p.b.link.is_connected());
    let silence = Silence::default();
    let switch = silence.clone();
    p.tamper(Box::new(move |direction, bytes| {
        let silent = match direction {
            Direction::AToB => switch.a_to_b.get(),
            Direction::BToA => switch.b_to_a.get(),
        };
        if silent {
            bytes.clear();
        }
    }));
    (p, silence)
}

/// Probes a silent peer with exponential backoff (100 ms doubling to 1 s), as
/// the runtime does.
#[derive(Default)]
struct Prober {
    next: Option<(Instant, Duration)>,
    probes: u32,
}

impl Prober {
    fn tick(&mut self, side: &mut Side, now: Instant) {
        if !side.link.is_silent() {
            self.next = None;
            return;
        }
        match self.next {
            None => {
                self.next = Some((now + Duration::from_millis(100), Duration::from_millis(100)))
            }
            Some((at, wait)) if now >= at => {
                side.link.probe(now);
                self.probes += 1;
                let wait = (wait * 2).min(Duration::from_secs(1));
                self.next = Some((now + wait, wait));
            }
            Some(_) => {}
        }
    }
}

/// Drives the pair to `until` in 20 ms steps, probing silent peers.
fn drive(p: &mut Pair, until: Instant, probers: &mut (Prober, Prober)) {
    while p.now < until {
        let next = (p.now + Duration::from_millis(20)).min(until);
        p.drive_until(next);
        probers.0.tick(&mut p.a, p.now);
        probers.1.tick(&mut p.b, p.now);
    }
}

fn count(events: &[(Instant, LinkEvent)], what: fn(&LinkEvent) -> bool) -> usize {
    events.iter().filter(|(_, e)| what(e)).count()
}

/// One-way messages delivered, by stream; a stream delivered twice panics.
fn one_ways(events: &[(Instant, LinkEvent)]) -> BTreeMap<StreamId, Vec<u8>> {
    let mut got = BTreeMap::new();
    for (_, event) in events {
        if let LinkEvent::Message { head, body } = event {
            if head.kind == MessageKind::OneWay {
                let again = got.insert(head.stream, body.to_vec());
                assert!(again.is_none(), "{} delivered twice", head.stream);
            }
        }
    }
    got
}

fn first_at(events: &[(Instant, LinkEvent)], what: fn(&LinkEvent) -> bool) -> Option<Instant> {
    events.iter().find(|(_, e)| what(e)).map(|(at, _)| *at)
}

fn no_failure(side: &Side) {
    assert_eq!(
        count(&side.events, |e| matches!(e, LinkEvent::Failed { .. })),
        0,
        "{:?}",
        side.events
            .iter()
            .filter(|(_, e)| matches!(e, LinkEvent::Failed { .. }))
            .collect::<Vec<_>>()
    );
}

#[test]
fn thirty_seconds_of_silence_resume_without_loss_or_duplicates() {
    let (mut p, silence) = pair();
    p.on_b(Box::new(|link, event, _| {
        if let LinkEvent::Message { head, body } = event {
            if head.kind == MessageKind::Request {
                let answer = Message::new("", body.clone());
                link.respond(head.stream, Ok(()), answer)
                    .expect("answer once");
            }
        }
    }));
    let mut sent = BTreeMap::new();
    for i in 0..40u8 {
        let message = Message::new("t", vec![i; 1500]).with_priority(Priority::Bulk);
        let id = p.a.link.one_way(message).expect("connected");
        sent.insert(id, vec![i; 1500]);
    }
    let call =
        p.a.link
            .request(Message::new("echo", "abc"))
            .expect("connected");
    let mut probers = (Prober::default(), Prober::default());
    drive(&mut p, Instant::from_millis(600), &mut probers);
    silence.set(true, true);
    let back = Instant::from_millis(30_600);
    drive(&mut p, back, &mut probers);
    // Both sides noticed and stayed up; nothing failed.
    for side in [&p.a, &p.b] {
        assert!(side.link.is_connected());
        assert_eq!(
            count(&side.events, |e| matches!(e, LinkEvent::Silent { .. })),
            1
        );
        no_failure(side);
    }
    assert!(p.a.link.is_silent() && p.b.link.is_silent());
    // A message sent during the silence waits and arrives too.
    let late =
        p.a.link
            .one_way(Message::new("t", vec![0xee; 700]))
            .expect("up");
    sent.insert(late, vec![0xee; 700]);
    silence.set(false, false);
    drive(&mut p, back + Duration::from_secs(20), &mut probers);
    for side in [&p.a, &p.b] {
        no_failure(side);
        assert!(!side.link.is_silent());
        let heard = first_at(&side.events, |e| matches!(e, LinkEvent::Heard)).expect("heard");
        // The probes back off to 1 s: the peer is heard within about that.
        assert!(
            heard >= back && heard <= back + Duration::from_millis(1_500),
            "heard at {heard:?}"
        );
    }
    assert!(probers.0.probes > 0 || probers.1.probes > 0);
    assert_eq!(one_ways(&p.b.events), sent, "every message exactly once");
    let answer = p.a.events.iter().find_map(|(_, e)| match e {
        LinkEvent::Message { head, body } if head.stream == call => Some(body.clone()),
        _ => None,
    });
    assert_eq!(answer.as_deref(), Some(&b"abc"[..]));
}

#[test]
fn unsupervised_the_silent_peer_fails_the_link() {
    let mut p = Pair::new(
        LinkConfig {
            supervised: false,
            ..config(7)
        },
        LinkConfig {
            supervised: false,
            ..config(3)
        },
        Wire::rated(11_520),
    );
    p.drive_until(Instant::from_millis(100));
    p.tamper(Box::new(|_, bytes| bytes.clear()));
    p.drive_until(Instant::from_millis(10_000));
    assert!(p.a.link.is_failed());
    assert_eq!(
        count(&p.a.events, |e| matches!(e, LinkEvent::Silent { .. })),
        0
    );
}

#[test]
fn a_silent_peer_gets_one_probe_per_call_and_nothing_else() {
    let (mut p, silence) = pair();
    for i in 0..8u8 {
        p.a.link
            .one_way(Message::new("t", vec![i; 2000]))
            .expect("connected");
    }
    silence.set(true, true);
    // Long enough for the reliable mode to give up on its frames (12 sends,
    // the timeout backing off to 10 s).
    p.drive_until(Instant::from_millis(150_000));
    assert!(p.a.link.is_silent());
    let before = p.a.link.stats().frames_out;
    p.drive_until(Instant::from_millis(200_000));
    let idle = p.a.link.stats().frames_out;
    assert_eq!(idle, before, "a silent link sends nothing by itself");
    for _ in 0..3 {
        p.a.link.probe(p.now);
        p.drive_until(p.now + Duration::from_millis(100));
    }
    let probed = p.a.link.stats().frames_out;
    assert_eq!(probed, idle + 3, "one frame per probe");
}

#[test]
fn a_hello_repeated_on_a_live_transport_resumes_the_session() {
    let (mut p, silence) = pair();
    let mut sent = BTreeMap::new();
    for i in 0..10u8 {
        let id =
            p.a.link
                .one_way(Message::new("t", vec![i; 1000]))
                .expect("connected");
        sent.insert(id, vec![i; 1000]);
    }
    p.drive_until(Instant::from_millis(300));
    // A reopens its end (B's stays open), and its first HELLO is lost.
    silence.set(true, false);
    p.a.link.reconnect();
    p.drive_until(Instant::from_millis(500));
    silence.set(false, false);
    assert!(!p.a.link.is_connected());
    // Within a retransmission timeout (500 ms) of the first HELLO, no repeat.
    p.drive_until(Instant::from_millis(600));
    let before = p.a.link.stats().frames_out;
    p.a.link.probe(p.now);
    p.drive_until(Instant::from_millis(700));
    assert_eq!(p.a.link.stats().frames_out, before);
    assert!(!p.a.link.is_connected());
    // The repeated HELLO gets through; B answers with its own and both resume.
    p.drive_until(Instant::from_millis(900));
    p.a.link.probe(p.now);
    p.drive_until(Instant::from_millis(3_000));
    assert!(
        p.a.link.is_connected() && p.b.link.is_connected(),
        "{:?}\n{:?}",
        p.a.events
            .iter()
            .filter(|(_, e)| !matches!(e, LinkEvent::Sent { .. }))
            .collect::<Vec<_>>(),
        p.b.events
            .iter()
            .filter(|(_, e)| !matches!(e, LinkEvent::Message { .. }))
            .collect::<Vec<_>>()
    );
    for side in [&p.a, &p.b] {
        no_failure(side);
        assert!(count(&side.events, |e| matches!(e, LinkEvent::Resumed)) >= 1);
    }
    assert_eq!(one_ways(&p.b.events), sent);
}

#[test]
fn a_peer_restarted_on_the_same_line_resets_the_session() {
    let (mut p, silence) = pair();
    p.on_b(Box::new(|link, event, _| {
        if let LinkEvent::Message { head, body } = event {
            if head.kind == MessageKind::Request {
                let answer = Message::new("", body.clone());
                link.respond(head.stream, Ok(()), answer)
                    .expect("answer once");
            }
        }
    }));
    let mut probers = (Prober::default(), Prober::default());
    // B falls silent with A's call unanswered, reboots out of range, and is
    // back with a new session; A's port never closed.
    silence.set(true, true);
    let lost = p.a.link.request(Message::new("echo", "lost")).expect("up");
    drive(&mut p, Instant::from_millis(6_000), &mut probers);
    assert!(p.a.link.is_silent());
    p.b.link = netcore_proto::link::Link::new(config(11), None);
    p.b.events.clear();
    silence.set(false, false);
    drive(&mut p, Instant::from_millis(10_000), &mut probers);
    // A's frames of the old session did not fail the new B; B's HELLO reset A.
    no_failure(&p.a);
    no_failure(&p.b);
    assert!(p.a.link.is_connected() && p.b.link.is_connected());
    assert!(p
        .a
        .events
        .iter()
        .any(|(_, e)| matches!(e, LinkEvent::PeerReset)));
    assert!(p.a.events.iter().any(|(_, e)| matches!(
        e,
        LinkEvent::Canceled { stream, code: netcore_proto::ErrorCode::PeerReset } if *stream == lost
    )));
    // The link goes on as a new session.
    let again = p.a.link.request(Message::new("echo", "again")).expect("up");
    drive(&mut p, Instant::from_millis(12_000), &mut probers);
    let answered = p.a.events.iter().any(|(_, e)| {
        matches!(
            e,
            LinkEvent::Message { head, body } if head.stream == again && body.as_ref() == b"again"
        )
    });
    assert!(answered);
}

/// Frames of the reliable mode sent before our first HELLO: on a serial line
/// they come from a peer whose session with our predecessor is still open (we
/// restarted, the line stayed), and are dropped, not fatal; its HELLO then
/// connects. Anything else before a HELLO stays fatal.
#[test]
fn a_restarted_side_drops_the_old_sessions_frames_until_the_hello() {
    use netcore_proto::frame::{Ack, Frame, Hello, Ping};
    use netcore_proto::framing::{Framer, Framing, FramingKind};
    use netcore_proto::Envelope;
    let wire = |seq: Option<u8>, frame: Frame| {
        let envelope = Envelope { seq, frame };
        let mut head = Vec::new();
        envelope.encode_head(&mut head);
        let mut out = bytes::BytesMut::new();
        Framer::new(FramingKind::Serial, 1 << 20).encode(&head, envelope.frame.payload(), &mut out);
        out.to_vec()
    };
    let mut link = netcore_proto::link::Link::new(config(1_000), None);
    link.handle_input(
        &wire(Some(7), Frame::Ping(Ping { opaque: 1 })),
        Instant::ZERO,
    )
    .expect("a sequenced frame of an old session is dropped");
    link.handle_input(
        &wire(
            None,
            Frame::Ack(Ack {
                next: 3,
                selective: 0,
            }),
        ),
        Instant::ZERO,
    )
    .expect("so is its ACK");
    assert!(!link.is_failed() && !link.is_connected());
    let mut hello = Hello::new(5);
    hello.features = netcore_proto::frame::features::RELIABLE;
    link.handle_input(&wire(None, Frame::Hello(hello)), Instant::ZERO)
        .expect("the HELLO connects");
    assert!(link.is_connected());
    // An unsequenced frame other than an ACK before the HELLO still fails.
    let mut fresh = netcore_proto::link::Link::new(config(1_000), None);
    assert!(fresh
        .handle_input(&wire(None, Frame::Ping(Ping { opaque: 1 })), Instant::ZERO)
        .is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Silences of any length, one way or both, at any point of a transfer:
    /// every message arrives exactly once and the link never fails.
    #[test]
    fn any_silence_resumes_with_every_message_once(
        sizes in prop::collection::vec(0usize..4000, 1..30),
        start_ms in 0u64..3000,
        len_ms in 0u64..15_000,
        ways in 0u8..3,
    ) {
        let (mut p, silence) = pair();
        let mut sent = BTreeMap::new();
        for (i, size) in sizes.iter().enumerate() {
            let body = vec![i as u8; *size];
            let id = p.a.link.one_way(Message::new("t", body.clone())).expect("connected");
            sent.insert(id, body);
        }
        let mut probers = (Prober::default(), Prober::default());
        let start = Instant::from_millis(100 + start_ms);
        drive(&mut p, start, &mut probers);
        silence.set(ways != 1, ways != 2);
        let back = start + Duration::from_millis(len_ms);
        drive(&mut p, back, &mut probers);
        silence.set(false, false);
        drive(&mut p, back + Duration::from_secs(30), &mut probers);
        for side in [&p.a, &p.b] {
            prop_assert!(!side.link.is_failed());
            prop_assert!(!side.link.is_silent());
        }
        prop_assert_eq!(one_ways(&p.b.events), sent);
    }
}
