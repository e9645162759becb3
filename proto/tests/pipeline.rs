//! The whole protocol core end to end: two links in a simulated pair, through the
//! scheduler, a framing, the decoder and reassembly, with simulated time.

use bytes::Bytes;
use netcore_proto::framing::FramingKind;
use netcore_proto::link::{LinkConfig, LinkEvent, Message, ReliableStats};
use netcore_proto::reassembly::MessageHead;
use netcore_proto::rng::SplitMix64;
use netcore_proto::sim::{Direction, Pair, Wire};
use netcore_proto::{ErrorCode, Instant, MessageKind, Priority, StreamId};
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

fn config(framing: FramingKind, nonce: u64) -> LinkConfig {
    match framing {
        FramingKind::Serial => LinkConfig::serial(115_200, nonce),
        FramingKind::Stream => LinkConfig::stream(nonce),
    }
}

fn pair(framing: FramingKind, wire: Wire) -> Pair {
    let mut pair = Pair::new(config(framing, 7), config(framing, 3), wire);
    pair.drive();
    assert!(pair.a.link.is_connected() && pair.b.link.is_connected());
    pair
}

/// Side B answers every request with its body reversed, or NotFound for route "missing".
fn echo_reversed(pair: &mut Pair) {
    pair.on_b(Box::new(|link, event, _| {
        if let LinkEvent::Message { head, body } = event {
            if head.kind != MessageKind::Request {
                return;
            }
            let outcome = if head.route == "missing" {
                Err(ErrorCode::NotFound)
            } else {
                Ok(())
            };
            let mut reply: Vec<u8> = body.to_vec();
            reply.reverse();
            let message = Message::new("", reply).with_priority(head.priority);
            link.respond(head.stream, outcome, message)
                .expect("answer once");
        }
    }));
}

/// The messages delivered to one side, by stream. A side gets at most one message
/// per stream (a request and its answer travel opposite ways), so a stream
/// delivered twice is a duplicate and panics here: with the caller's check that
/// every expected message is present, this makes "exactly once".
fn messages(events: &[(Instant, LinkEvent)]) -> BTreeMap<StreamId, (MessageHead, Bytes)> {
    let mut delivered = BTreeMap::new();
    for (at, event) in events {
        if let LinkEvent::Message { head, body } = event {
            let again = delivered.insert(head.stream, (head.clone(), body.clone()));
            assert!(
                again.is_none(),
                "{} delivered twice (again at {at:?}, {} bytes)",
                head.stream,
                body.len()
            );
        }
    }
    delivered
}

/// The bodies of [`messages`], to compare with what was sent.
fn bodies(events: &[(Instant, LinkEvent)]) -> BTreeMap<StreamId, Vec<u8>> {
    messages(events)
        .into_iter()
        .map(|(id, (_, body))| (id, body.to_vec()))
        .collect()
}

fn failures(events: &[(Instant, LinkEvent)]) -> Vec<String> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            LinkEvent::Failed { error } => Some(error.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn handshake_assigns_opposite_parities() {
    for framing in [FramingKind::Serial, FramingKind::Stream] {
        let p = pair(framing, Wire::instant(Duration::from_millis(1)));
        let parity = |events: &[(Instant, LinkEvent)]| {
            events.iter().find_map(|(_, e)| match e {
                LinkEvent::Connected { parity, .. } => Some(*parity),
                _ => None,
            })
        };
        let (a, b) = (parity(&p.a.events).unwrap(), parity(&p.b.events).unwrap());
        assert_eq!(a.opposite(), b);
    }
}

#[test]
fn requests_both_ways_get_their_own_answers() {
    for framing in [FramingKind::Serial, FramingKind::Stream] {
        let mut p = pair(framing, Wire::instant(Duration::from_millis(2)));
        echo_reversed(&mut p);
        p.on_a(Box::new(|link, event, _| {
            if let LinkEvent::Message { head, body } = event {
                if head.kind == MessageKind::Request {
                    link.respond(head.stream, Ok(()), Message::new("", body.clone()))
                        .unwrap();
                }
            }
        }));
        let mut sent = BTreeMap::new();
        for i in 0..50u32 {
            let body = format!("request {i} ").repeat(i as usize % 7 + 1);
            let id =
                p.a.link
                    .request(Message::new("echo", body.clone()))
                    .unwrap();
            sent.insert(id, body);
        }
        let from_b = p.b.link.request(Message::new("echo", "from b")).unwrap();
        p.drive();
        let answers = messages(&p.a.events);
        for (id, body) in &sent {
            let (head, reply) = &answers[id];
            assert_eq!(head.kind, MessageKind::Response);
            let mut expected = body.as_bytes().to_vec();
            expected.reverse();
            assert_eq!(reply.as_ref(), &expected[..]);
        }
        let b_answers = messages(&p.b.events);
        assert_eq!(b_answers[&from_b].1.as_ref(), b"from b");
    }
}

#[test]
fn error_responses_carry_their_code() {
    let mut p = pair(FramingKind::Stream, Wire::instant(Duration::ZERO));
    echo_reversed(&mut p);
    let id = p.a.link.request(Message::new("missing", "x")).unwrap();
    p.drive();
    let (head, _) = &messages(&p.a.events)[&id];
    assert_eq!(head.kind, MessageKind::ErrorResponse);
    assert_eq!(head.code, Some(ErrorCode::NotFound));
}

#[test]
fn urgent_call_overtakes_a_bulk_transfer_on_a_slow_serial_line() {
    // 115200 baud: 11,520 bytes/s each way.
    let mut p = pair(FramingKind::Serial, Wire::rated(11_520));
    echo_reversed(&mut p);
    let bulk = vec![0xabu8; 256 * 1024];
    let bulk_id =
        p.a.link
            .one_way(Message::new("file", bulk.clone()).with_priority(Priority::Bulk))
            .unwrap();
    p.drive_until(p.now + Duration::from_secs(2));
    let call_start = p.now;
    let call =
        p.a.link
            .request(Message::new("cmd", vec![1u8; 32]).with_priority(Priority::Urgent))
            .unwrap();
    let mut answered = None;
    while answered.is_none() {
        assert!(p.step(None), "stalled before the answer");
        answered = p.a.events.iter().find_map(|(t, e)| match e {
            LinkEvent::Message { head, .. } if head.stream == call => Some(*t),
            _ => None,
        });
    }
    let latency = answered.unwrap() - call_start;
    let netcore_proto::link::Progress { sent, total } =
        p.a.link.progress(bulk_id).expect("transfer still running");
    assert!(
        sent < total.unwrap() / 10,
        "transfer must still be under 10%: {sent}"
    );
    // Request + response (~45 wire bytes each) and at most one bulk chunk ahead of
    // each: far below 100 ms at 11,520 bytes/s.
    assert!(
        latency < Duration::from_millis(60),
        "urgent call took {latency:?}"
    );
    p.drive();
    let delivered = messages(&p.b.events);
    assert_eq!(delivered[&bulk_id].1.as_ref(), &bulk[..]);
}

#[test]
fn cancel_from_the_sender_stops_chunks_and_tells_the_peer() {
    let mut p = pair(FramingKind::Serial, Wire::rated(11_520));
    let id =
        p.a.link
            .request(Message::new("upload", vec![7u8; 64 * 1024]).with_priority(Priority::Bulk))
            .unwrap();
    p.drive_until(p.now + Duration::from_millis(500));
    let sent_before = p.a.link.stats().bytes_out;
    p.a.link.cancel(id, ErrorCode::Canceled);
    p.drive();
    let sent_after = p.a.link.stats().bytes_out;
    assert!(
        sent_after - sent_before < 64,
        "only the CANCEL (and maybe a chunk in flight) follows"
    );
    assert!(p.b.events.iter().any(|(_, e)| matches!(e, LinkEvent::Canceled { stream, code: ErrorCode::Canceled } if *stream == id)));
    assert!(messages(&p.b.events).is_empty());
}

#[test]
fn cancel_from_the_receiver_fails_the_senders_call() {
    let mut p = pair(FramingKind::Stream, Wire::rated(1_000_000));
    let id =
        p.a.link
            .request(Message::new("upload", vec![7u8; 512 * 1024]))
            .unwrap();
    p.drive_until(p.now + Duration::from_millis(100));
    p.b.link.cancel(id, ErrorCode::Refused);
    p.drive();
    assert!(p.a.events.iter().any(|(_, e)| matches!(e, LinkEvent::Canceled { stream, code: ErrorCode::Refused } if *stream == id)));
    assert!(
        p.a.link.progress(id).is_none(),
        "the sender dropped the rest"
    );
}

#[test]
fn a_message_over_the_limit_is_refused_not_buffered() {
    let mut b = config(FramingKind::Stream, 3);
    b.limits.max_message_bytes = 1000;
    let mut p = Pair::new(
        config(FramingKind::Stream, 7),
        b,
        Wire::instant(Duration::ZERO),
    );
    p.drive();
    let id =
        p.a.link
            .request(Message::new("big", vec![0u8; 5000]))
            .unwrap();
    p.drive();
    assert!(p
        .b
        .events
        .iter()
        .any(|(_, e)| matches!(e, LinkEvent::Refused { stream, .. } if *stream == id)));
    assert!(p.a.events.iter().any(|(_, e)| matches!(e, LinkEvent::Canceled { stream, code: ErrorCode::TooLarge } if *stream == id)));
}

#[test]
fn goaway_stops_new_streams() {
    let mut p = pair(FramingKind::Stream, Wire::instant(Duration::ZERO));
    p.b.link.go_away(ErrorCode::NoError, "maintenance");
    p.drive();
    assert!(p
        .a
        .events
        .iter()
        .any(|(_, e)| matches!(e, LinkEvent::GoAway { reason, .. } if reason == "maintenance")));
    assert!(p.a.link.request(Message::new("x", "y")).is_err());
}

#[test]
fn ping_is_answered() {
    let mut p = pair(FramingKind::Serial, Wire::instant(Duration::from_millis(5)));
    p.a.link.ping(99);
    p.drive();
    assert!(p
        .a
        .events
        .iter()
        .any(|(_, e)| matches!(e, LinkEvent::Pong { opaque: 99 })));
}

/// Single-frame one-way messages A→B over a noisy serial line; returns (delivered
/// messages, ids sent, frames damaged, garbage bursts, B's framing stats).
#[allow(clippy::type_complexity)]
fn noisy_line(
    reliable: bool,
) -> (
    BTreeMap<StreamId, (netcore_proto::reassembly::MessageHead, bytes::Bytes)>,
    Vec<StreamId>,
    usize,
    usize,
    netcore_proto::framing::FramingStats,
) {
    // Single-frame one-way messages over the serial framing; the tamper hook adds
    // garbage between some frames and flips a bit inside others.
    let mut a = config(FramingKind::Serial, 7);
    let mut b = config(FramingKind::Serial, 3);
    if !reliable {
        (a.reliable, b.reliable) = (None, None);
    }
    let mut p = Pair::new(a, b, Wire::rated(11_520));
    p.drive();
    let damaged = Rc::new(RefCell::new((0usize, 0usize))); // (frames damaged, garbage bursts)
    let log = damaged.clone();
    let mut n = 0u32;
    p.tamper(Box::new(move |direction, bytes| {
        if direction != Direction::AToB {
            return;
        }
        n += 1;
        match n % 5 {
            // Two garbage "frames" between real ones: each is one decode error.
            1 => {
                bytes
                    .splice(0..0, [0x13, 0x37, 0x00, 0xff, 0xfe, 0x00])
                    .for_each(drop);
                log.borrow_mut().1 += 1;
            }
            // A flipped bit inside a frame (0x80 never turns a byte of these frames
            // into the delimiter, so exactly one frame is hit).
            3 => {
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x80;
                log.borrow_mut().0 += 1;
            }
            _ => {}
        }
    }));
    let mut ids = Vec::new();
    for i in 0..40u8 {
        ids.push(
            p.a.link
                .one_way(Message::new("telemetry", vec![i; 20]))
                .expect("connected"),
        );
    }
    p.drive();
    let got = messages(&p.b.events);
    let (lost, garbage) = *damaged.borrow();
    let stats = p.b.link.stats().framing;
    (got, ids, lost, garbage, stats)
}

#[test]
fn line_noise_between_frames_loses_only_the_damaged_frames_without_the_reliable_mode() {
    let (got, ids, lost, garbage, stats) = noisy_line(false);
    assert!(lost >= 7 && garbage >= 7);
    assert_eq!(
        got.len(),
        ids.len() - lost,
        "exactly the damaged frames are lost"
    );
    for (id, (_, body)) in &got {
        let i = ids.iter().position(|x| x == id).unwrap() as u8;
        assert_eq!(body.as_ref(), &[i; 20][..]);
    }
    assert_eq!(
        stats.dropped_crc + stats.dropped_cobs + stats.dropped_runt,
        (lost + 2 * garbage) as u64,
        "every damaged frame and garbage burst is counted: {stats:?}"
    );
}

#[test]
fn line_noise_loses_nothing_with_the_reliable_mode() {
    let (got, ids, lost, garbage, stats) = noisy_line(true);
    assert!(lost >= 7 && garbage >= 7);
    assert_eq!(got.len(), ids.len(), "the damaged frames were sent again");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(got[id].1.as_ref(), &[i as u8; 20][..]);
    }
    assert!(stats.dropped_crc + stats.dropped_cobs >= lost as u64);
}

/// Checks that `events` delivered exactly the `expected` messages, each once
/// ([`messages`] fails on a second delivery) and byte for byte.
fn check_delivered(
    side: &str,
    events: &[(Instant, LinkEvent)],
    expected: &BTreeMap<StreamId, Vec<u8>>,
) -> Result<(), TestCaseError> {
    let got = bodies(events);
    let missing: Vec<_> = expected.keys().filter(|id| !got.contains_key(id)).collect();
    let unexpected: Vec<_> = got.keys().filter(|id| !expected.contains_key(id)).collect();
    prop_assert!(
        missing.is_empty() && unexpected.is_empty(),
        "at {}: missing {:?}, unexpected {:?}",
        side,
        missing,
        unexpected
    );
    for (id, body) in expected {
        prop_assert!(
            got[id] == *body,
            "at {}: {} arrived with {} bytes, not the {} sent (or different bytes)",
            side,
            id,
            got[id].len(),
            body.len()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Many random messages of random priorities and sizes, sent at random times from
    /// both sides and read in arbitrary pieces, all arrive byte for byte exactly once.
    #[test]
    fn random_traffic_arrives_intact(
        framing in prop_oneof![Just(FramingKind::Serial), Just(FramingKind::Stream)],
        msgs in proptest::collection::vec((0u8..4, 0usize..6000, any::<bool>(), 0u64..200, any::<u8>()), 1..40),
        reads in (arb_read_sizes(), arb_read_sizes()),
    ) {
        let wire = match framing {
            FramingKind::Serial => Wire::rated(11_520),
            FramingKind::Stream => Wire::rated(10_000_000),
        };
        let mut p = pair(framing, wire);
        p.split_reads(Direction::AToB, reads.0);
        p.split_reads(Direction::BToA, reads.1);
        let mut expected_at_b = BTreeMap::new();
        let mut expected_at_a = BTreeMap::new();
        let mut schedule: Vec<_> = msgs.into_iter().collect();
        schedule.sort_by_key(|m| m.3);
        for (prio, len, from_a, at_ms, fill) in schedule {
            p.drive_until(Instant::from_millis(at_ms).max(p.now));
            let body: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
            let message = Message::new("r", body.clone()).with_priority(Priority::from_bits(prio));
            let sent = if from_a { p.a.link.one_way(message) } else { p.b.link.one_way(message) };
            let id = sent.unwrap_or_else(|e| panic!("{e}: failures {:?} / {:?}", failures(&p.a.events), failures(&p.b.events)));
            if from_a {
                expected_at_b.insert(id, body);
            } else {
                expected_at_a.insert(id, body);
            }
        }
        p.drive();
        check_delivered("B", &p.b.events, &expected_at_b)?;
        check_delivered("A", &p.a.events, &expected_at_a)?;
    }
}

/// What the fault injector does to transmissions, each in per mille.
#[derive(Clone, Copy, Debug)]
struct FaultRates {
    /// The transmission is lost.
    drop: u32,
    /// It arrives twice.
    duplicate: u32,
    /// It is held back and arrives after 1 to 3 later transmissions.
    reorder: u32,
    /// One of its bytes is damaged (serial framing only: the CRC drops the frame;
    /// the stream framing has no resync point, so damage is fatal there by design).
    damage: u32,
}

/// The tamper hook's state for [`faulty_traffic_arrives_exactly_once`]: faults
/// drawn from the seeded generator, so one case is one outcome.
struct FaultInjector {
    rates: FaultRates,
    rng: SplitMix64,
    /// Off while a reconnection's HELLOs are on their way (they are never
    /// retransmitted, and a frame overtaking a HELLO is a protocol error).
    active: bool,
    /// Per direction: a transmission held back, and how many more it waits.
    held: [Option<(Vec<u8>, u32)>; 2],
    /// (dropped, duplicated, reordered, damaged) transmissions.
    counts: [u32; 4],
}

impl FaultInjector {
    fn new(rates: FaultRates, seed: u64) -> FaultInjector {
        FaultInjector {
            rates,
            rng: SplitMix64::new(seed),
            active: true,
            held: [None, None],
            counts: [0; 4],
        }
    }

    fn next(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn roll(&mut self, per_mille: u32) -> bool {
        self.next() % 1000 < u64::from(per_mille)
    }

    /// A cut: what is held back is lost with the old transport.
    fn cut(&mut self) {
        self.held = [None, None];
        self.active = false;
    }

    fn tamper(&mut self, direction: Direction, bytes: &mut Vec<u8>) {
        if !self.active || bytes.is_empty() {
            return;
        }
        let d = usize::from(direction == Direction::BToA);
        let mut out = std::mem::take(bytes);
        if self.roll(self.rates.drop) {
            out.clear();
            self.counts[0] += 1;
        } else if self.roll(self.rates.damage) {
            let at = (self.next() % out.len() as u64) as usize;
            out[at] ^= (self.next() % 255 + 1) as u8;
            self.counts[3] += 1;
        } else if self.roll(self.rates.duplicate) {
            out.extend_from_within(..);
            self.counts[1] += 1;
        }
        if let Some((held, wait)) = self.held[d].as_mut() {
            if *wait == 0 {
                out.append(held);
                self.held[d] = None;
            } else {
                *wait -= 1;
            }
        } else if !out.is_empty() && self.roll(self.rates.reorder) {
            let wait = (self.next() % 3) as u32;
            self.held[d] = Some((std::mem::take(&mut out), wait));
            self.counts[2] += 1;
        }
        *bytes = out;
    }
}

/// Both sides answer every request with its body reversed.
fn echo_both_ways(pair: &mut Pair) {
    for side in [Direction::AToB, Direction::BToA] {
        let app: netcore_proto::sim::App = Box::new(|link, event, _| {
            if let LinkEvent::Message { head, body } = event {
                if head.kind == MessageKind::Request {
                    let mut reply = body.to_vec();
                    reply.reverse();
                    link.respond(head.stream, Ok(()), Message::new("", reply))
                        .expect("answer once");
                }
            }
        });
        match side {
            Direction::AToB => pair.on_b(app),
            Direction::BToA => pair.on_a(app),
        }
    }
}

/// One step of a faulty-line run.
#[derive(Clone, Debug)]
enum Traffic {
    /// A message: (from A, request, priority bits, length, fill byte).
    Send(bool, bool, u8, usize, u8),
    /// The transport is cut and reconnected; the session resumes.
    Cut,
}

fn arb_traffic() -> impl Strategy<Value = Traffic> {
    prop_oneof![
        12 => (any::<bool>(), any::<bool>(), 0u8..4, 0usize..4000, any::<u8>())
            .prop_map(|(a, request, prio, len, fill)| Traffic::Send(a, request, prio, len, fill)),
        1 => Just(Traffic::Cut),
    ]
}

fn arb_read_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => Just(Vec::new()),
        3 => proptest::collection::vec(1usize..300, 1..6),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The reliable mode over a line that loses, duplicates, reorders and (serial)
    /// damages frames, is cut and reconnected mid-transfer (the session resumes),
    /// and is read in arbitrary pieces: every one-way message, request and answer
    /// arrives exactly once, byte for byte, and neither link fails.
    #[test]
    fn faulty_traffic_arrives_exactly_once(
        serial in any::<bool>(),
        steps in proptest::collection::vec((arb_traffic(), 0u64..400), 1..32),
        rates in (0u32..120, 0u32..150, 0u32..150, 0u32..80)
            .prop_map(|(drop, duplicate, reorder, damage)| FaultRates { drop, duplicate, reorder, damage }),
        seed in any::<u64>(),
        reads in (arb_read_sizes(), arb_read_sizes()),
        latency_ms in 0u64..20,
    ) {
        let (framing, wire, rates) = if serial {
            (FramingKind::Serial, Wire { latency: Duration::from_millis(latency_ms), ..Wire::rated(11_520) }, rates)
        } else {
            let wire = if latency_ms % 2 == 0 {
                Wire { latency: Duration::from_millis(latency_ms), ..Wire::rated(2_000_000) }
            } else {
                Wire::instant(Duration::from_millis(latency_ms))
            };
            (FramingKind::Stream, wire, FaultRates { damage: 0, ..rates })
        };
        let mut a = config(framing, 7);
        let mut b = config(framing, 3);
        // Stream links use the reliable mode as TCP resume does, and short chunks so
        // that messages span many frames there too.
        for c in [&mut a, &mut b] {
            c.reliable = Some(netcore_proto::reliable::ReliableConfig::default());
            c.chunk_len = c.chunk_len.min(512);
        }
        let mut p = Pair::new(a, b, wire);
        p.drive();
        prop_assert!(p.a.link.is_connected() && p.b.link.is_connected());
        echo_both_ways(&mut p);
        p.split_reads(Direction::AToB, reads.0);
        p.split_reads(Direction::BToA, reads.1);
        let faults = Rc::new(RefCell::new(FaultInjector::new(rates, seed)));
        let hook = faults.clone();
        p.tamper(Box::new(move |direction, bytes| hook.borrow_mut().tamper(direction, bytes)));

        let mut expected_at_a = BTreeMap::new();
        let mut expected_at_b = BTreeMap::new();
        let mut steps = steps;
        steps.sort_by_key(|(_, at_ms)| *at_ms);
        for (step, at_ms) in steps {
            p.drive_until(Instant::from_millis(at_ms).max(p.now));
            prop_assert!(
                failures(&p.a.events).is_empty() && failures(&p.b.events).is_empty(),
                "{:?} / {:?}", failures(&p.a.events), failures(&p.b.events)
            );
            match step {
                Traffic::Cut => {
                    faults.borrow_mut().cut();
                    p.cut_and_reconnect();
                    // The HELLOs cross unharmed; faults resume once both resumed.
                    let connected = |p: &Pair| p.a.link.is_connected() && p.b.link.is_connected();
                    let give_up = p.now + Duration::from_secs(10);
                    while !connected(&p) {
                        let more = p.step(Some(give_up));
                        prop_assert!(more || connected(&p), "the reconnection stalled");
                    }
                    faults.borrow_mut().active = true;
                }
                Traffic::Send(from_a, request, prio, len, fill) => {
                    let body: Vec<u8> = (0..len).map(|i| fill.wrapping_add((i * 7) as u8)).collect();
                    let message = Message::new("r", body.clone()).with_priority(Priority::from_bits(prio));
                    let link = if from_a { &mut p.a.link } else { &mut p.b.link };
                    let sent = if request { link.request(message) } else { link.one_way(message) };
                    let id = sent.unwrap_or_else(|e| panic!("{e}: failures {:?} / {:?}", failures(&p.a.events), failures(&p.b.events)));
                    let (there, back) = if from_a {
                        (&mut expected_at_b, &mut expected_at_a)
                    } else {
                        (&mut expected_at_a, &mut expected_at_b)
                    };
                    if request {
                        let mut answer = body.clone();
                        answer.reverse();
                        back.insert(id, answer);
                    }
                    there.insert(id, body);
                }
            }
        }
        // Bounded so that a broken link fails the case instead of running on; long,
        // because under heavy loss the retransmission timer backs off up to 10 s
        // (virtual time costs nothing).
        p.drive_until(p.now + Duration::from_secs(3600));
        prop_assert!(
            failures(&p.a.events).is_empty() && failures(&p.b.events).is_empty(),
            "{:?} / {:?}", failures(&p.a.events), failures(&p.b.events)
        );
        let in_flight = |p: &Pair| (p.a.link.reliable_stats(), p.b.link.reliable_stats());
        prop_assert!(
            p.a.link.is_idle() && p.b.link.is_idle() && matches!(in_flight(&p), (Some(ReliableStats { in_flight: 0, .. }), Some(ReliableStats { in_flight: 0, .. }))),
            "still sending after an hour: {:?}", in_flight(&p)
        );
        check_delivered("B", &p.b.events, &expected_at_b)?;
        check_delivered("A", &p.a.events, &expected_at_a)?;
    }
}

/// Decodes one direction's transmissions (one frame each on a rated wire) back
/// into frames, as the peer saw them.
fn wire_frames(transmissions: &[Vec<u8>]) -> Vec<netcore_proto::Frame> {
    use netcore_proto::framing::{Framer, Framing};
    let mut framer = Framer::new(FramingKind::Serial, 1 << 20);
    let mut buf = bytes::BytesMut::new();
    let mut frames = Vec::new();
    for t in transmissions {
        buf.extend_from_slice(t);
        while let Ok(Some(raw)) = framer.decode(&mut buf) {
            frames.push(
                netcore_proto::Envelope::decode(raw)
                    .expect("the framing yields whole frames")
                    .frame,
            );
        }
    }
    frames
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Messages of random classes and sizes queued at once go through scheduler →
    /// COBS framing → decoder → reassembly byte for byte, and on the wire no
    /// stream waits longer between two of its chunks than the scheduler's
    /// documented fairness bound (proto/src/scheduler/mod.rs, "Fairness bound").
    #[test]
    fn fair_interleaving_on_the_wire(
        msgs in proptest::collection::vec((0u8..4, 1usize..3000, any::<u8>()), 2..24),
    ) {
        let mut p = pair(FramingKind::Serial, Wire::rated(11_520));
        let seen = Rc::new(RefCell::new(Vec::new()));
        let log = seen.clone();
        p.tamper(Box::new(move |direction, bytes| {
            if direction == Direction::AToB {
                log.borrow_mut().push(bytes.clone());
            }
        }));
        let mut expected = BTreeMap::new();
        let mut class_of = BTreeMap::new();
        let mut per_class = [0usize; 4];
        for (prio, len, fill) in &msgs {
            let body: Vec<u8> = (0..*len).map(|i| fill.wrapping_mul(i as u8)).collect();
            let priority = Priority::from_bits(*prio);
            let id = p.a.link.one_way(Message::new("m", body.clone()).with_priority(priority)).unwrap();
            expected.insert(id, body);
            class_of.insert(id, priority.index());
            per_class[priority.index()] += 1;
        }
        p.drive();
        let got = messages(&p.b.events);
        prop_assert_eq!(got.len(), expected.len());
        for (id, body) in &expected {
            prop_assert_eq!(got[id].1.as_ref(), &body[..]);
        }

        let weights = netcore_proto::scheduler::SchedulerConfig::default().class_weights;
        let order: Vec<StreamId> = wire_frames(&seen.borrow())
            .iter()
            .filter(|f| matches!(f, netcore_proto::Frame::Open(_) | netcore_proto::Frame::Data(_)))
            .filter_map(|f| f.stream())
            .collect();
        let mut last_seen: BTreeMap<StreamId, usize> = BTreeMap::new();
        for (pos, id) in order.iter().enumerate() {
            if let Some(prev) = last_seen.insert(*id, pos) {
                let c = class_of[id];
                let n_c = per_class[c];
                // Documented bound with n_c counted at the start (it only shrinks);
                // doubled because a DRR turn may send two frames when chunks are
                // shorter than the quantum (each message's last chunk).
                let others: usize = (0..4)
                    .filter(|&o| o != c && per_class[o] > 0)
                    .map(|o| n_c * weights[o] as usize / weights[c] as usize + 1)
                    .sum();
                let bound = 2 * (n_c - 1 + others);
                let gap = pos - prev - 1;
                prop_assert!(gap <= bound, "stream {} of class {} waited {} frames (bound {})", id, c, gap, bound);
            }
        }
    }
}

#[test]
fn keepalive_pings_an_idle_link_and_fails_a_silent_peer() {
    let mut a = config(FramingKind::Stream, 7);
    a.keepalive = Some(netcore_proto::link::Keepalive {
        interval: Duration::from_millis(100),
        max_missed: 3,
    });
    let mut p = Pair::new(
        a,
        config(FramingKind::Stream, 3),
        Wire::instant(Duration::from_millis(5)),
    );
    // (`drive` would never return: a keepalive always has a next deadline.)
    // Idle but answering: PINGs go out, PONGs come back, the link stays up.
    p.drive_until(netcore_proto::Instant::from_millis(1_000));
    let pongs =
        p.a.events
            .iter()
            .filter(|(_, e)| matches!(e, LinkEvent::Pong { .. }))
            .count();
    assert!(pongs >= 5, "{pongs} pongs");
    assert!(p.a.link.is_connected());
    // The peer falls silent: after 3 unanswered PINGs the link fails.
    p.tamper(Box::new(|direction, bytes| {
        if direction == Direction::BToA {
            bytes.clear();
        }
    }));
    p.drive_until(netcore_proto::Instant::from_millis(2_000));
    assert!(p.a.link.is_failed());
    assert!(p.a.events.iter().any(|(_, e)| matches!(
        e,
        LinkEvent::Failed {
            error: netcore_proto::ProtocolError::Unresponsive { .. }
        }
    )));
}

#[test]
fn the_reliable_mode_gives_up_on_a_peer_that_never_acknowledges() {
    let mut p = pair(FramingKind::Serial, Wire::instant(Duration::from_millis(5)));
    p.tamper(Box::new(|direction, bytes| {
        if direction == Direction::BToA {
            bytes.clear();
        }
    }));
    p.a.link
        .one_way(Message::new("t", "lost"))
        .expect("connected");
    p.drive_until(netcore_proto::Instant::from_millis(120_000));
    assert!(p.a.events.iter().any(|(_, e)| matches!(
        e,
        LinkEvent::Failed {
            error: netcore_proto::ProtocolError::Unresponsive { .. }
        }
    )));
    let retransmissions =
        p.a.link
            .reliable_stats()
            .expect("reliable mode on")
            .retransmissions;
    assert!(retransmissions >= 10);
}

#[test]
fn a_cut_and_reconnect_resumes_the_session_without_loss_or_duplicates() {
    let mut p = pair(FramingKind::Serial, Wire::rated(11_520));
    echo_reversed(&mut p);
    let mut sent = Vec::new();
    for i in 0..30u8 {
        let id =
            p.a.link
                .one_way(Message::new("t", vec![i; 1500]).with_priority(Priority::Bulk))
                .expect("connected");
        sent.push((id, i));
    }
    let call =
        p.a.link
            .request(Message::new("echo", "abc"))
            .expect("connected");
    // Cut three times while the messages are on their way.
    for cut in 1..=3u64 {
        p.drive_until(netcore_proto::Instant::from_millis(900 * cut));
        p.cut_and_reconnect();
    }
    p.drive();
    assert!(
        p.a.events
            .iter()
            .filter(|(_, e)| matches!(e, LinkEvent::Resumed))
            .count()
            >= 3
    );
    let got = messages(&p.b.events);
    let one_ways: Vec<_> = p
        .b
        .events
        .iter()
        .filter(|(_, e)| matches!(e, LinkEvent::Message { head, .. } if head.kind == MessageKind::OneWay))
        .collect();
    assert_eq!(one_ways.len(), sent.len(), "each message exactly once");
    for (id, i) in &sent {
        assert_eq!(got[id].1.as_ref(), &[*i; 1500][..]);
    }
    let answers = messages(&p.a.events);
    assert_eq!(answers[&call].1.as_ref(), b"cba");
}

#[test]
fn a_restarted_peer_resets_the_session_and_fails_calls_in_flight() {
    let mut p = pair(FramingKind::Serial, Wire::rated(11_520));
    // B never answers before it restarts.
    let call =
        p.a.link
            .request(Message::new("slow", "x"))
            .expect("connected");
    p.drive_until(netcore_proto::Instant::from_millis(200));
    p.restart_b(config(FramingKind::Serial, 11));
    echo_reversed(&mut p);
    p.drive();
    assert!(
        p.a.events
            .iter()
            .any(|(_, e)| matches!(e, LinkEvent::PeerReset)),
        "{:?}",
        p.a.events
            .iter()
            .map(|(t, e)| format!("{t:?} {e:?}"))
            .collect::<Vec<_>>()
    );
    assert!(p.a.events.iter().any(|(_, e)| matches!(
        e,
        LinkEvent::Canceled { stream, code: ErrorCode::PeerReset } if *stream == call
    )));
    // The link goes on as a new session.
    let again =
        p.a.link
            .request(Message::new("echo", "xyz"))
            .expect("connected");
    p.drive();
    assert_eq!(messages(&p.a.events)[&again].1.as_ref(), b"zyx");
}

#[test]
fn a_lost_answer_is_recovered_by_the_tail_probe_before_the_timeout() {
    // 11,520 B/s with 20 ms each way, one frame per transmission; the
    // retransmission timeout is at least 2 s, so only the tail-loss probe can
    // recover a lost answer sooner.
    let slow_rto = |nonce| {
        let mut c = config(FramingKind::Serial, nonce);
        if let Some(r) = c.reliable.as_mut() {
            r.rto.min = Duration::from_secs(2);
            r.rto.initial = Duration::from_secs(2);
        }
        c
    };
    let wire = Wire {
        bytes_per_sec: Some(11_520),
        latency: Duration::from_millis(20),
        max_write: 1,
    };
    let mut p = Pair::new(slow_rto(7), slow_rto(3), wire);
    p.drive();
    echo_reversed(&mut p);
    // A few calls first: both sides measure the round trip.
    for i in 0..5u8 {
        p.a.link
            .request(Message::new("echo", vec![i; 120]))
            .expect("connected");
        p.drive();
    }
    // B's next frames are lost: the answer and the CREDIT B sends after it
    // (the only frames from B over 12 bytes; its ACKs are 9 and 10), so
    // nothing B sends after them shows the gap to A.
    let dropped = Rc::new(RefCell::new(0));
    let count = dropped.clone();
    p.tamper(Box::new(move |direction, bytes| {
        if direction == Direction::BToA && bytes.len() > 12 && *count.borrow() < 2 {
            *count.borrow_mut() += 1;
            bytes.clear();
        }
    }));
    let body = vec![9u8; 120];
    let asked = p.now;
    let id =
        p.a.link
            .request(Message::new("echo", body.clone()))
            .expect("connected");
    p.drive();
    assert_eq!(
        *dropped.borrow(),
        2,
        "the answer and the CREDIT were dropped"
    );
    let (answered, reply) =
        p.a.events
            .iter()
            .find_map(|(at, e)| match e {
                LinkEvent::Message { head, body } if head.stream == id => Some((*at, body.clone())),
                _ => None,
            })
            .expect("answered");
    let mut expected = body;
    expected.reverse();
    assert_eq!(reply.as_ref(), &expected[..]);
    let b = p.b.link.reliable_stats().expect("reliable mode on");
    assert_eq!(b.tail_probes, 1, "{b:?}");
    assert_eq!(b.retransmissions, 2, "the probe and the answer: {b:?}");
    // Twice B's smoothed round trip and A's ACK delay, then the probe (the
    // newest frame, the CREDIT) goes over, A's ACK selects it and B resends
    // the hole, the answer: far below the 2 s the timeout would have taken.
    let srtt = b.srtt.expect("measured");
    let took = answered - asked;
    assert!(
        took < srtt * 4 + Duration::from_millis(100),
        "answered after {took:?} (SRTT {srtt:?})"
    );
    // Exactly once each way (`messages` panics on a duplicate).
    assert_eq!(messages(&p.a.events).len(), 6);
}
