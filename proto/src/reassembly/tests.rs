//! Unit tests: one per rule and per limit of the module doc.

use super::*;
use crate::frame::Credit;
use crate::ids::MessageKind;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

// ---- helpers shared with the property tests ----------------------------------------

/// Small limits: pressure limit 4000 (= max_buffered), thresholds 250 / 2000.
pub(super) fn small() -> ReassemblyConfig {
    ReassemblyConfig {
        limits: Limits {
            max_message_bytes: 10_000,
            max_inbound_streams: 4,
            max_buffered_bytes: 4_000,
            spool_threshold: 2_000,
        },
        stream_window: 1_000,
        link_window: 8_000,
        stall_timeout: None,
    }
}

pub(super) fn open(id: u64, total: Option<u64>, payload: &[u8], fin: bool) -> Open {
    let mut open = Open::new(StreamId(id), MessageKind::Request, "test/route");
    open.total_len = total;
    open.payload = Bytes::copy_from_slice(payload);
    open.fin = fin;
    open
}

pub(super) fn data(id: u64, payload: &[u8], fin: bool) -> Data {
    Data {
        stream: StreamId(id),
        payload: Bytes::copy_from_slice(payload),
        fin,
    }
}

pub(super) fn end(id: u64) -> End {
    End {
        stream: StreamId(id),
    }
}

/// `len` bytes that differ per stream and offset.
pub(super) fn body(id: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 31 + id * 7) as u8).collect()
}

pub(super) fn events(r: &mut Reassembly) -> Vec<InboundEvent> {
    core::iter::from_fn(|| r.poll_event()).collect()
}

pub(super) fn credits(r: &mut Reassembly) -> Vec<Credit> {
    core::iter::from_fn(|| r.poll_credit()).collect()
}

fn check(r: &Reassembly) {
    if let Err(e) = r.check_invariants() {
        panic!("invariant broken: {e}; {r:?}");
    }
}

/// Everything freed and granted back: nothing held, the peer has its whole window.
fn assert_all_returned(r: &mut Reassembly) {
    let _ = events(r);
    r.flush_credit();
    let _ = credits(r);
    check(r);
    assert_eq!(r.buffered_bytes(), 0);
    assert_eq!(r.allocated_bytes(), 0);
    assert_eq!(r.peer_link_credit(), r.config().link_window);
}

fn refused(ev: &InboundEvent) -> Option<(StreamId, ErrorCode, &ProtocolError)> {
    match ev {
        InboundEvent::Refused {
            stream,
            code,
            error,
        } => Some((*stream, *code, error)),
        _ => None,
    }
}

/// The sender's view of its credit, updated from the CREDIT frames it receives.
pub(super) struct Peer {
    link: u64,
    stream_window: u64,
    streams: BTreeMap<StreamId, u64>,
}

impl Peer {
    pub(super) fn new(config: &ReassemblyConfig) -> Peer {
        Peer {
            link: config.link_window,
            stream_window: config.stream_window,
            streams: BTreeMap::new(),
        }
    }

    pub(super) fn credit(&mut self, c: Credit) {
        if c.stream == Credit::LINK {
            self.link += c.increment;
        } else {
            *self.streams.entry(c.stream).or_insert(self.stream_window) += c.increment;
        }
    }

    pub(super) fn available(&self, id: StreamId) -> u64 {
        let stream = self.streams.get(&id).copied().unwrap_or(self.stream_window);
        self.link.min(stream)
    }

    pub(super) fn spend(&mut self, id: StreamId, n: u64) {
        self.link -= n;
        *self.streams.entry(id).or_insert(self.stream_window) -= n;
    }

    pub(super) fn link(&self) -> u64 {
        self.link
    }
}

// ---- complete messages --------------------------------------------------------------

#[test]
fn single_frame_message_is_delivered_zero_copy() {
    let mut r = Reassembly::new(small(), None);
    let payload = Bytes::from(body(1, 100));
    let mut o = open(1, Some(100), &[], true);
    o.payload = payload.clone();
    r.handle_open(o).expect("ok");
    check(&r);
    assert_eq!(r.live_streams(), 0, "a single frame holds no stream state");
    assert_eq!(r.undelivered_bytes(), 100);
    match r.poll_event() {
        Some(InboundEvent::Message { head, body }) => {
            assert_eq!(head.stream, StreamId(1));
            assert_eq!(head.route, "test/route");
            assert_eq!(body.as_ptr(), payload.as_ptr(), "copied");
        }
        other => panic!("expected a message, got {other:?}"),
    }
    assert_all_returned(&mut r);
}

#[test]
fn chunks_assemble_into_one_buffer_sized_from_total_len() {
    let mut r = Reassembly::new(small(), None);
    let b = body(1, 300);
    r.handle_open(open(1, Some(300), &b[..100], false))
        .expect("ok");
    assert_eq!(r.allocated_bytes(), 300, "sized from total_len up front");
    assert_eq!(r.stream_state(StreamId(1)), Some(StreamState::Buffering));
    r.handle_data(data(1, &b[100..200], false)).expect("ok");
    assert_eq!(r.allocated_bytes(), 300, "no regrowth");
    assert_eq!(r.buffered_bytes(), 200);
    r.handle_data(data(1, &b[200..], true)).expect("ok");
    check(&r);
    assert_eq!(r.live_streams(), 0);
    assert_eq!(r.allocated_bytes(), 0);
    match r.poll_event() {
        Some(InboundEvent::Message { body, .. }) => assert_eq!(body, b),
        other => panic!("expected a message, got {other:?}"),
    }
    assert_all_returned(&mut r);
}

#[test]
fn end_frame_completes_a_message_without_total_len() {
    let mut r = Reassembly::new(small(), None);
    let b = body(3, 500);
    r.handle_open(open(3, None, &b[..10], false)).expect("ok");
    for chunk in b[10..].chunks(70) {
        r.handle_data(data(3, chunk, false)).expect("ok");
        check(&r);
    }
    assert!(r.allocated_bytes() <= 2 * 500, "doubling growth");
    r.handle_end(end(3)).expect("ok");
    let evs = events(&mut r);
    assert_eq!(evs.len(), 1);
    assert!(matches!(&evs[0], InboundEvent::Message { body, .. } if *body == b));
    assert_all_returned(&mut r);
}

// ---- limits ---------------------------------------------------------------------------

#[test]
fn declared_total_above_max_message_is_refused_at_open_without_allocating() {
    let mut r = Reassembly::new(small(), Some(MemorySinkFactory::new().boxed()));
    r.handle_open(open(1, Some(10_001), &[1; 50], false))
        .expect("not fatal");
    assert_eq!(r.allocated_bytes(), 0);
    assert_eq!(r.live_streams(), 0);
    let evs = events(&mut r);
    assert_eq!(
        refused(&evs[0]),
        Some((
            StreamId(1),
            ErrorCode::TooLarge,
            &ProtocolError::MessageTooLarge {
                id: 1,
                size: 10_001,
                max: 10_000
            }
        ))
    );
    // What the peer had in flight is ignored.
    r.handle_data(data(1, &[1; 500], false)).expect("ignored");
    r.handle_end(end(1)).expect("ignored");
    assert!(events(&mut r).is_empty());
    assert_all_returned(&mut r);
}

#[test]
fn body_growing_past_max_message_is_refused() {
    let config = ReassemblyConfig {
        limits: Limits {
            max_message_bytes: 3_000,
            ..small().limits
        },
        ..small()
    };
    let sinks = MemorySinkFactory::new();
    let mut r = Reassembly::new(config, Some(sinks.boxed()));
    r.handle_open(open(1, None, &[], false)).expect("ok");
    for _ in 0..6 {
        r.handle_data(data(1, &[7; 500], false)).expect("ok");
    }
    assert_eq!(r.stream_state(StreamId(1)), Some(StreamState::Spooling));
    r.handle_data(data(1, &[7], false)).expect("not fatal");
    let evs = events(&mut r);
    let last = evs.last().and_then(refused).expect("refused");
    assert_eq!(last.1, ErrorCode::TooLarge);
    assert_eq!(
        last.2,
        &ProtocolError::MessageTooLarge {
            id: 1,
            size: 3_001,
            max: 3_000
        }
    );
    let rec = sinks.record(StreamId(1)).expect("a sink");
    assert_eq!(rec.aborted, Some(ErrorCode::TooLarge));
    assert!(!rec.finished);
    assert_all_returned(&mut r);
}

#[test]
fn data_beyond_declared_total_is_a_length_mismatch() {
    let mut r = Reassembly::new(small(), None);
    r.handle_open(open(1, Some(100), &[0; 60], false))
        .expect("ok");
    r.handle_data(data(1, &[0; 41], false)).expect("not fatal");
    let evs = events(&mut r);
    assert_eq!(
        refused(&evs[0]),
        Some((
            StreamId(1),
            ErrorCode::Protocol,
            &ProtocolError::LengthMismatch {
                id: 1,
                declared: 100,
                received: 101
            }
        ))
    );
    assert_all_returned(&mut r);
}

#[test]
fn fin_or_end_short_of_declared_total_is_a_length_mismatch() {
    let mut r = Reassembly::new(small(), None);
    r.handle_open(open(1, Some(100), &[0; 60], false))
        .expect("ok");
    r.handle_data(data(1, &[0; 39], true)).expect("not fatal");
    r.handle_open(open(3, Some(100), &[0; 60], false))
        .expect("ok");
    r.handle_end(end(3)).expect("not fatal");
    // A manually built OPEN can break what the decoder checks: handled the same.
    r.handle_open(open(5, Some(10), &[0; 20], false))
        .expect("not fatal");
    let evs = events(&mut r);
    let mismatches: Vec<_> = evs
        .iter()
        .filter_map(refused)
        .map(|(id, _, e)| (id, e.clone()))
        .collect();
    assert_eq!(
        mismatches,
        vec![
            (
                StreamId(1),
                ProtocolError::LengthMismatch {
                    id: 1,
                    declared: 100,
                    received: 99
                }
            ),
            (
                StreamId(3),
                ProtocolError::LengthMismatch {
                    id: 3,
                    declared: 100,
                    received: 60
                }
            ),
            (
                StreamId(5),
                ProtocolError::LengthMismatch {
                    id: 5,
                    declared: 10,
                    received: 20
                }
            ),
        ]
    );
    assert_all_returned(&mut r);
}

#[test]
fn one_stream_over_max_inbound_streams_is_refused_without_allocating() {
    let mut r = Reassembly::new(small(), None);
    for id in [1, 3, 5, 7] {
        r.handle_open(open(id, Some(100), &[0; 10], false))
            .expect("ok");
    }
    let allocated = r.allocated_bytes();
    r.handle_open(open(9, Some(100), &[0; 10], false))
        .expect("not fatal");
    assert_eq!(
        r.allocated_bytes(),
        allocated,
        "allocated for a refused stream"
    );
    assert_eq!(r.live_streams(), 4);
    let evs = events(&mut r);
    assert_eq!(
        refused(&evs[0]),
        Some((
            StreamId(9),
            ErrorCode::Refused,
            &ProtocolError::TooManyStreams { max: 4 }
        ))
    );
    // A single-frame message holds no stream: still welcome.
    r.handle_open(open(11, None, &[1; 10], true)).expect("ok");
    assert!(matches!(r.poll_event(), Some(InboundEvent::Message { .. })));
    r.close(ErrorCode::GoingAway);
    assert_all_returned(&mut r);
}

#[test]
fn in_memory_bytes_never_exceed_max_buffered_without_a_sink() {
    // Pressure limit = max_buffered_bytes = 4000 (link window 100 000).
    let config = ReassemblyConfig {
        link_window: 100_000,
        stream_window: 100_000,
        ..small()
    };
    let mut r = Reassembly::new(config, None);
    for id in [1, 3, 5] {
        r.handle_open(open(id, None, &[], false)).expect("ok");
    }
    for _ in 0..15 {
        for id in [1, 3, 5] {
            r.handle_data(data(id, &[id as u8; 100], false))
                .expect("ok");
            check(&r);
            assert!(r.buffered_bytes() <= 4_000);
            assert!(r.allocated_bytes() <= 4_000);
        }
    }
    let refusals: Vec<_> = events(&mut r)
        .iter()
        .filter_map(refused)
        .map(|(id, code, e)| (id, code, e.clone()))
        .collect();
    // In the 14th round stream 3 needs 1400 + 1400 + 1300 > 4000 bytes: the largest
    // (stream 1, 1400) is refused and the others fit. Growth slack does not count
    // against them: the other buffers' unused capacity is trimmed first.
    assert_eq!(
        refusals,
        vec![(
            StreamId(1),
            ErrorCode::Refused,
            ProtocolError::BufferFull { id: 1, max: 4_000 }
        )]
    );
    r.handle_end(end(3)).expect("ok");
    r.handle_end(end(5)).expect("ok");
    let done = events(&mut r);
    assert!(done
        .iter()
        .all(|e| matches!(e, InboundEvent::Message { body, .. } if body.len() == 1_500)));
    assert_eq!(done.len(), 2);
    assert_all_returned(&mut r);
}

#[test]
fn declared_totals_cannot_reserve_past_the_buffer_budget() {
    let config = ReassemblyConfig {
        link_window: 100_000,
        stall_timeout: None,
        stream_window: 100_000,
        limits: Limits {
            max_inbound_streams: 64,
            ..small().limits
        },
    };
    let mut r = Reassembly::new(config, None);
    // Each announces 2000 bytes (= spool_threshold) and sends 1.
    for id in 0..40 {
        r.handle_open(open(2 * id + 1, Some(2_000), &[1], false))
            .expect("ok");
        check(&r);
        assert!(r.allocated_bytes() <= 4_000);
    }
    // The reservations are not a way to lock others out: a stream that needs the
    // room gets it, and the largest reservation is the one that goes.
    let b = body(200, 1_500);
    r.handle_open(open(200, None, &b, false)).expect("ok");
    check(&r);
    assert_eq!(r.stream_state(StreamId(200)), Some(StreamState::Buffering));
    assert!(events(&mut r)
        .iter()
        .all(|e| refused(e).is_some_and(|(id, _, _)| id != StreamId(200))));
    r.close(ErrorCode::GoingAway);
    assert_all_returned(&mut r);
}

#[test]
fn declared_total_above_spool_threshold_goes_to_a_sink_from_open() {
    let sinks = MemorySinkFactory::new();
    let mut r = Reassembly::new(small(), Some(sinks.boxed()));
    let b = body(1, 5_000);
    r.handle_open(open(1, Some(5_000), &b[..500], false))
        .expect("ok");
    assert_eq!(r.stream_state(StreamId(1)), Some(StreamState::Spooling));
    assert!(
        matches!(r.poll_event(), Some(InboundEvent::Streaming { head }) if head.total_len == Some(5_000)),
        "Streaming comes at OPEN, before the body"
    );
    for (i, chunk) in b[500..].chunks(500).enumerate() {
        r.handle_data(data(1, chunk, i == 8)).expect("ok");
        assert_eq!(r.allocated_bytes(), 0, "a spooled body takes no buffer");
        let _ = credits(&mut r); // keep within the stream window
    }
    assert_eq!(
        events(&mut r),
        vec![InboundEvent::StreamFinished {
            stream: StreamId(1),
            len: 5_000
        }]
    );
    let rec = sinks.record(StreamId(1)).expect("a sink");
    assert_eq!(rec.body, b);
    assert!(rec.finished);
    assert_eq!(rec.aborted, None);
    assert_all_returned(&mut r);
}

#[test]
fn a_preferred_sink_takes_a_small_body_from_open_and_a_refusal_keeps_it_in_memory() {
    let sinks = MemorySinkFactory::new().preferred();
    let mut r = Reassembly::new(small(), Some(sinks.boxed()));
    let b = body(1, 900);
    r.handle_open(open(1, Some(900), &b[..300], false))
        .expect("ok");
    assert_eq!(r.stream_state(StreamId(1)), Some(StreamState::Spooling));
    assert!(matches!(
        r.poll_event(),
        Some(InboundEvent::Streaming { .. })
    ));
    r.handle_data(data(1, &b[300..], true)).expect("ok");
    assert_eq!(
        events(&mut r),
        vec![InboundEvent::StreamFinished {
            stream: StreamId(1),
            len: 900
        }]
    );
    assert_eq!(sinks.record(StreamId(1)).expect("a sink").body, b);
    // A single-frame message is complete at once: no sink.
    r.handle_open(open(3, Some(10), &b[..10], true))
        .expect("ok");
    assert!(matches!(r.poll_event(), Some(InboundEvent::Message { .. })));
    assert_all_returned(&mut r);

    // The factory prefers a sink but cannot open one: below the threshold the
    // message is buffered as usual instead of refused.
    let refusing = MemorySinkFactory::refusing().preferred();
    let mut r = Reassembly::new(small(), Some(refusing.boxed()));
    r.handle_open(open(1, Some(900), &b[..300], false))
        .expect("ok");
    assert_eq!(r.stream_state(StreamId(1)), Some(StreamState::Buffering));
    r.handle_data(data(1, &b[300..], true)).expect("ok");
    assert!(matches!(
        events(&mut r).as_slice(),
        [InboundEvent::Message { body, .. }] if body[..] == b[..]
    ));
    assert_all_returned(&mut r);
}

#[test]
fn body_growing_past_spool_threshold_moves_to_a_sink_buffer_first() {
    let sinks = MemorySinkFactory::new();
    let config = ReassemblyConfig {
        stream_window: 10_000,
        link_window: 20_000,
        ..small()
    };
    let mut r = Reassembly::new(config, Some(sinks.boxed()));
    let b = body(1, 3_500);
    r.handle_open(open(1, None, &b[..700], false)).expect("ok");
    r.handle_data(data(1, &b[700..1_400], false)).expect("ok");
    assert_eq!(r.stream_state(StreamId(1)), Some(StreamState::Buffering));
    assert!(sinks.records().is_empty());
    r.handle_data(data(1, &b[1_400..2_100], false)).expect("ok");
    assert_eq!(r.stream_state(StreamId(1)), Some(StreamState::Spooling));
    assert_eq!(r.buffered_bytes(), 0);
    assert_eq!(r.allocated_bytes(), 0);
    let rec = sinks.record(StreamId(1)).expect("a sink");
    assert_eq!(rec.writes, 2, "the buffer so far, then the chunk");
    assert_eq!(rec.body, b[..2_100]);
    r.handle_data(data(1, &b[2_100..], true)).expect("ok");
    let evs = events(&mut r);
    assert!(matches!(evs[0], InboundEvent::Streaming { .. }));
    assert_eq!(
        evs[1],
        InboundEvent::StreamFinished {
            stream: StreamId(1),
            len: 3_500
        }
    );
    assert_eq!(sinks.record(StreamId(1)).expect("a sink").body, b);
    assert_all_returned(&mut r);
}

/// Without a sink factory a message too large for memory is never taken
/// (`TooLarge`); a factory that declines is at a limit and the message may be sent
/// again later (`Refused`). Both at OPEN (announced length) and when a body grows
/// past the threshold.
#[test]
fn too_large_for_memory_without_a_sink_is_refused_too_large_or_busy() {
    let too_large = |id: u64| {
        let error = ProtocolError::MessageTooLarge {
            id,
            size: 2_001,
            max: 2_000,
        };
        (StreamId(id), ErrorCode::TooLarge, error)
    };
    let declined = |id: u64| {
        let error = ProtocolError::Sink {
            id,
            code: ErrorCode::Refused,
            reason: "no body sink available for a message too large for memory",
        };
        (StreamId(id), ErrorCode::Refused, error)
    };
    let cases = [
        (None, [too_large(1), too_large(3)]),
        (
            Some(MemorySinkFactory::refusing().boxed()),
            [declined(1), declined(3)],
        ),
    ];
    for (sinks, expected) in cases {
        let config = ReassemblyConfig {
            stream_window: 10_000,
            link_window: 20_000,
            ..small()
        };
        let mut r = Reassembly::new(config, sinks);
        r.handle_open(open(1, Some(2_001), &[], false))
            .expect("not fatal");
        r.handle_open(open(3, None, &[0; 1_500], false))
            .expect("ok");
        r.handle_data(data(3, &[0; 501], false)).expect("not fatal");
        let refusals: Vec<_> = events(&mut r)
            .iter()
            .filter_map(refused)
            .map(|(id, code, e)| (id, code, e.clone()))
            .collect();
        assert_eq!(refusals, expected.to_vec());
        assert_all_returned(&mut r);
    }
}

/// Three messages of 40% of the link window each, sent interleaved by a peer that
/// respects its credit: without spilling, their bytes would hold 120% of the link
/// window and none could finish.
#[test]
fn three_messages_of_forty_percent_of_the_link_window_all_complete() {
    let config = ReassemblyConfig {
        limits: Limits {
            max_message_bytes: 100_000,
            max_inbound_streams: 8,
            max_buffered_bytes: 100_000,
            spool_threshold: 8_000,
        },
        stream_window: 10_000,
        link_window: 10_000,
        stall_timeout: None,
    };
    let sinks = MemorySinkFactory::new();
    let mut r = Reassembly::new(config, Some(sinks.boxed()));
    let mut peer = Peer::new(&config);
    let bodies: Vec<Vec<u8>> = (0..3).map(|i| body(2 * i + 1, 4_000)).collect();
    let mut sent = [0usize; 3];
    for i in 0..3u64 {
        r.handle_open(open(2 * i + 1, None, &[], false))
            .expect("ok");
    }
    let mut delivered = BTreeMap::new();
    while sent.iter().any(|&s| s < 4_000) {
        let mut progressed = false;
        for i in 0..3 {
            let id = StreamId(2 * i as u64 + 1);
            let n = (4_000 - sent[i]).min(250).min(peer.available(id) as usize);
            if sent[i] == 4_000 || n == 0 {
                continue;
            }
            let fin = sent[i] + n == 4_000;
            r.handle_data(data(id.0, &bodies[i][sent[i]..sent[i] + n], fin))
                .expect("peer respects its credit");
            peer.spend(id, n as u64);
            sent[i] += n;
            progressed = true;
            check(&r);
            for ev in events(&mut r) {
                match ev {
                    InboundEvent::Message { head, body } => {
                        delivered.insert(head.stream, body.to_vec());
                    }
                    InboundEvent::StreamFinished { stream, .. } => {
                        let rec = sinks.record(stream).expect("a sink");
                        delivered.insert(stream, rec.body);
                    }
                    InboundEvent::Streaming { .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            for c in credits(&mut r) {
                peer.credit(c);
            }
        }
        assert!(progressed, "deadlock: the peer has no credit left");
    }
    assert_eq!(delivered.len(), 3);
    for i in 0..3 {
        assert_eq!(delivered[&StreamId(2 * i as u64 + 1)], bodies[i]);
    }
    assert!(!sinks.records().is_empty(), "pressure moved some to a sink");
    assert_all_returned(&mut r);
}

#[test]
fn memory_pressure_without_a_sink_refuses_the_largest() {
    let config = ReassemblyConfig {
        stream_window: 10_000,
        link_window: 4_000, // pressure limit 2000
        ..small()
    };
    let mut r = Reassembly::new(config, None);
    r.handle_open(open(1, None, &[1; 900], false)).expect("ok");
    r.handle_open(open(3, None, &[3; 1_000], false))
        .expect("ok");
    r.handle_open(open(5, None, &[5; 200], false)).expect("ok");
    check(&r);
    let evs = events(&mut r);
    assert_eq!(
        refused(&evs[0]),
        Some((
            StreamId(3),
            ErrorCode::Refused,
            &ProtocolError::BufferFull { id: 3, max: 2_000 }
        ))
    );
    assert_eq!(r.buffered_bytes(), 1_100);
    r.close(ErrorCode::GoingAway);
    assert_all_returned(&mut r);
}

// ---- flow control --------------------------------------------------------------------

#[test]
fn sending_beyond_the_stream_credit_refuses_the_stream() {
    let sinks = MemorySinkFactory::pending();
    let mut r = Reassembly::new(small(), Some(sinks.boxed()));
    // At OPEN: a first payload larger than the stream window.
    r.handle_open(open(1, None, &[0; 1_001], true))
        .expect("not fatal");
    // Later: a spooled stream whose consumer does not release.
    r.handle_open(open(3, Some(5_000), &[0; 600], false))
        .expect("ok");
    r.handle_data(data(3, &[0; 400], false)).expect("ok");
    assert_eq!(r.peer_stream_credit(StreamId(3)), Some(0));
    r.handle_data(data(3, &[0; 5], false)).expect("not fatal");
    let refusals: Vec<_> = events(&mut r)
        .iter()
        .filter_map(refused)
        .map(|(id, code, e)| (id, code, e.clone()))
        .collect();
    assert_eq!(
        refusals,
        vec![
            (
                StreamId(1),
                ErrorCode::FlowControl,
                ProtocolError::FlowControl { id: 1, excess: 1 }
            ),
            (
                StreamId(3),
                ErrorCode::FlowControl,
                ProtocolError::FlowControl { id: 3, excess: 5 }
            ),
        ]
    );
    assert_eq!(
        sinks.record(StreamId(3)).expect("a sink").aborted,
        Some(ErrorCode::FlowControl)
    );
    assert_all_returned(&mut r);
}

#[test]
fn sending_beyond_the_link_credit_is_fatal() {
    let mut r = Reassembly::new(small(), None);
    // Eight complete 1000-byte messages nobody polls hold the whole link window.
    for id in 0..8 {
        r.handle_open(open(2 * id + 1, None, &[0; 1_000], true))
            .expect("ok");
    }
    assert_eq!(r.peer_link_credit(), 0);
    assert_eq!(
        r.handle_open(open(99, None, &[0; 1], true)),
        Err(ProtocolError::FlowControl { id: 0, excess: 1 })
    );
    assert_eq!(
        r.handle_data(data(1, &[0; 3], false)),
        Err(ProtocolError::FlowControl { id: 0, excess: 3 })
    );
    // Empty frames need no credit.
    r.handle_open(open(101, None, &[], true)).expect("ok");
}

#[test]
fn frames_that_break_the_framing_are_fatal() {
    let mut r = Reassembly::new(small(), None);
    r.handle_open(open(1, None, &[0; 10], false)).expect("ok");
    assert_eq!(
        r.handle_open(open(1, None, &[], false)),
        Err(ProtocolError::BadStreamId { id: 1 })
    );
    assert_eq!(
        r.handle_open(open(0, None, &[], true)),
        Err(ProtocolError::BadStreamId { id: 0 })
    );
    assert_eq!(
        r.handle_data(data(0, &[], true)),
        Err(ProtocolError::BadStreamId { id: 0 })
    );
    assert_eq!(
        r.handle_end(end(0)),
        Err(ProtocolError::BadStreamId { id: 0 })
    );
}

#[test]
fn in_memory_stream_credit_is_returned_as_bytes_are_buffered_in_batches() {
    let mut r = Reassembly::new(small(), None);
    r.handle_open(open(1, None, &[0; 200], false)).expect("ok");
    assert!(credits(&mut r).is_empty(), "below the 250-byte threshold");
    r.handle_data(data(1, &[0; 100], false)).expect("ok");
    assert_eq!(
        credits(&mut r),
        vec![Credit {
            stream: StreamId(1),
            increment: 300
        }]
    );
    assert_eq!(r.peer_stream_credit(StreamId(1)), Some(1_000));
    // Link credit only comes back once the message leaves memory.
    assert_eq!(r.peer_link_credit(), 8_000 - 300);
    r.handle_data(data(1, &[0; 900], false)).expect("ok");
    r.handle_data(data(1, &[0; 800], true)).expect("ok");
    let _ = events(&mut r);
    assert_eq!(
        credits(&mut r),
        vec![Credit {
            stream: Credit::LINK,
            increment: 2_000
        }]
    );
    assert_all_returned(&mut r);
}

#[test]
fn no_stream_credit_is_sent_for_a_stream_that_just_completed() {
    let mut r = Reassembly::new(small(), None);
    r.handle_open(open(1, None, &[0; 300], false)).expect("ok");
    // 300 freed: a stream CREDIT is queued, but the stream finishes before it is
    // polled, and the FIN's own bytes are not credited either.
    r.handle_data(data(1, &[0; 300], true)).expect("ok");
    let _ = events(&mut r);
    r.flush_credit();
    let sent = credits(&mut r);
    assert!(
        sent.iter().all(|c| c.stream == Credit::LINK),
        "stream credit for a finished stream: {sent:?}"
    );
}

#[test]
fn link_credit_is_freed_when_the_message_is_polled_not_before() {
    let mut r = Reassembly::new(small(), None);
    r.handle_open(open(1, None, &[0; 1_000], true)).expect("ok");
    r.handle_open(open(3, None, &[0; 1_000], true)).expect("ok");
    assert!(credits(&mut r).is_empty());
    assert_eq!(r.peer_link_credit(), 6_000);
    let _ = r.poll_event();
    let _ = r.poll_event();
    assert_eq!(
        credits(&mut r),
        vec![Credit {
            stream: Credit::LINK,
            increment: 2_000
        }]
    );
}

#[test]
fn bulk_transfer_gets_few_credits_and_never_stalls() {
    // 4 MiB to a sink in 16 KiB chunks through a 1 MiB stream / 4 MiB link window:
    // thresholds of 16 and 64 chunks.
    let config = ReassemblyConfig {
        limits: Limits {
            max_message_bytes: 64 << 20,
            max_inbound_streams: 4,
            max_buffered_bytes: 1 << 20,
            spool_threshold: 64 << 10,
        },
        stream_window: 1 << 20,
        link_window: 4 << 20,
        stall_timeout: None,
    };
    let mut r = Reassembly::new(config, Some(MemorySinkFactory::new().boxed()));
    let mut peer = Peer::new(&config);
    let total = 4usize << 20;
    let chunk = vec![0xab; 16 << 10];
    r.handle_open(open(1, Some(total as u64), &[], false))
        .expect("ok");
    let (mut sent, mut frames) = (0, 0);
    let mut increments = Vec::new();
    while sent < total {
        let n = chunk
            .len()
            .min(total - sent)
            .min(peer.available(StreamId(1)) as usize);
        assert!(n > 0, "stalled after {sent} bytes");
        r.handle_data(data(1, &chunk[..n], sent + n == total))
            .expect("ok");
        peer.spend(StreamId(1), n as u64);
        sent += n;
        frames += 1;
        for c in credits(&mut r) {
            increments.push(c.increment);
            peer.credit(c);
        }
    }
    assert_eq!(frames, 256);
    assert!(
        increments.len() <= 256 / 16 + 4 + 2,
        "{} CREDIT frames for {frames} chunks",
        increments.len()
    );
    assert!(increments.iter().all(|&i| i >= 256 << 10));
}

#[test]
fn flush_credit_grants_what_is_below_the_threshold() {
    let mut r = Reassembly::new(small(), None);
    r.handle_open(open(1, None, &[0; 100], false)).expect("ok");
    r.handle_open(open(3, None, &[0; 10], true)).expect("ok");
    let _ = events(&mut r);
    assert!(credits(&mut r).is_empty());
    r.flush_credit();
    assert_eq!(
        credits(&mut r),
        vec![
            Credit {
                stream: Credit::LINK,
                increment: 10
            },
            Credit {
                stream: StreamId(1),
                increment: 100
            },
        ]
    );
}

#[test]
fn a_pending_sink_holds_its_stream_credit_until_released() {
    let sinks = MemorySinkFactory::pending();
    let mut r = Reassembly::new(small(), Some(sinks.boxed()));
    let mut peer = Peer::new(&small());
    let id = StreamId(1);
    r.handle_open(open(1, Some(9_000), &[], false)).expect("ok");
    let mut sent = 0;
    // The consumer does not release: the peer's credit on the stream runs out at
    // the window and stays there, however long it tries.
    for _ in 0..50 {
        let n = peer.available(id).min(300);
        if n > 0 {
            r.handle_data(data(1, &vec![1; n as usize], false))
                .expect("ok");
            peer.spend(id, n);
            sent += n;
        }
        for c in credits(&mut r) {
            assert_ne!(c.stream, id, "stream credit without a release");
            peer.credit(c);
        }
        assert!(r.peer_stream_credit(id).expect("live") <= 1_000);
    }
    assert_eq!(sent, 1_000);
    assert_eq!(peer.available(id), 0);
    // Link credit is not held by the pending bytes: other streams keep flowing.
    assert!(peer.link() > 0);
    // The consumer catches up: credit flows again.
    let n = sinks.take_unreleased(id);
    assert_eq!(n, 1_000);
    r.release(id, n);
    for c in credits(&mut r) {
        peer.credit(c);
    }
    assert_eq!(peer.available(id), 1_000);
    r.close(ErrorCode::GoingAway);
    assert_eq!(
        sinks.record(id).expect("a sink").aborted,
        Some(ErrorCode::GoingAway)
    );
    assert_all_returned(&mut r);
}

#[test]
fn bytes_moved_from_memory_to_a_pending_sink_are_not_credited_twice() {
    let sinks = MemorySinkFactory::pending();
    let config = ReassemblyConfig {
        stream_window: 10_000,
        link_window: 20_000,
        ..small()
    };
    let mut r = Reassembly::new(config, Some(sinks.boxed()));
    let id = StreamId(1);
    r.handle_open(open(1, None, &[0; 1_900], false))
        .expect("ok");
    r.flush_credit();
    assert_eq!(
        r.peer_stream_credit(id),
        Some(10_000),
        "credited as buffered"
    );
    r.handle_data(data(1, &[0; 200], false)).expect("ok");
    assert_eq!(r.stream_state(id), Some(StreamState::Spooling));
    // 1900 already credited; the 200 written to the sink are pending.
    assert_eq!(r.peer_stream_credit(id), Some(10_000 - 200));
    r.release(id, sinks.take_unreleased(id));
    r.flush_credit();
    assert_eq!(r.peer_stream_credit(id), Some(10_000));
    // Releasing more than pending is clamped.
    r.release(id, 1_000_000);
    r.flush_credit();
    assert_eq!(r.peer_stream_credit(id), Some(10_000));
    r.handle_end(end(1)).expect("ok");
    // After the stream finished, a late release is ignored.
    r.release(id, 10);
    assert_all_returned(&mut r);
}

// ---- cancellation and sink failures --------------------------------------------------

#[test]
fn peer_cancel_drops_buffers_aborts_sinks_and_returns_credit() {
    let sinks = MemorySinkFactory::new();
    let mut r = Reassembly::new(small(), Some(sinks.boxed()));
    r.handle_open(open(1, None, &[0; 500], false)).expect("ok");
    r.handle_open(open(3, Some(5_000), &[0; 500], false))
        .expect("ok");
    let _ = events(&mut r);
    r.handle_cancel(StreamId(1), ErrorCode::Canceled);
    r.handle_cancel(StreamId(3), ErrorCode::Timeout);
    r.handle_cancel(StreamId(5), ErrorCode::Canceled); // unknown: nothing
    assert_eq!(
        events(&mut r),
        vec![
            InboundEvent::Canceled {
                stream: StreamId(1),
                code: ErrorCode::Canceled
            },
            InboundEvent::Canceled {
                stream: StreamId(3),
                code: ErrorCode::Timeout
            },
        ]
    );
    assert_eq!(
        sinks.record(StreamId(3)).expect("a sink").aborted,
        Some(ErrorCode::Timeout)
    );
    assert_eq!(r.live_streams(), 0);
    assert_all_returned(&mut r);
}

#[test]
fn local_cancel_ignores_frames_in_flight_even_an_open_not_yet_received() {
    let mut r = Reassembly::new(small(), None);
    r.handle_open(open(1, None, &[0; 500], false)).expect("ok");
    assert!(r.cancel(StreamId(1), ErrorCode::Canceled));
    assert!(!r.cancel(StreamId(4), ErrorCode::Canceled)); // our request, answer not here yet
    r.handle_data(data(1, &[0; 500], true)).expect("ignored");
    r.handle_open(open(4, None, &[0; 500], false))
        .expect("ignored");
    r.handle_data(data(4, &[0; 500], true)).expect("ignored");
    assert!(events(&mut r).is_empty(), "a local cancel emits nothing");
    assert_eq!(r.live_streams(), 0);
    assert_all_returned(&mut r);
}

#[test]
fn a_failing_sink_write_refuses_the_stream() {
    let sinks = MemorySinkFactory::new().failing_after(1_000);
    let mut r = Reassembly::new(small(), Some(sinks.boxed()));
    r.handle_open(open(1, Some(5_000), &[0; 800], false))
        .expect("ok");
    r.handle_data(data(1, &[0; 800], false)).expect("not fatal");
    let evs = events(&mut r);
    assert_eq!(
        refused(&evs[1]),
        Some((
            StreamId(1),
            ErrorCode::Internal,
            &ProtocolError::Sink {
                id: 1,
                code: ErrorCode::Internal,
                reason: "memory sink full"
            }
        ))
    );
    assert_eq!(
        sinks.record(StreamId(1)).expect("a sink").aborted,
        Some(ErrorCode::Internal)
    );
    r.handle_data(data(1, &[0; 800], false)).expect("ignored");
    assert_all_returned(&mut r);
}

#[test]
fn a_failing_sink_finish_refuses_the_stream() {
    let sinks = MemorySinkFactory::new().failing_finish();
    let mut r = Reassembly::new(small(), Some(sinks.boxed()));
    r.handle_open(open(1, Some(2_500), &[0; 800], false))
        .expect("ok");
    r.handle_data(data(1, &[0; 900], false)).expect("ok");
    r.handle_data(data(1, &[0; 800], true)).expect("ok");
    let evs = events(&mut r);
    assert_eq!(evs.len(), 2);
    assert_eq!(refused(&evs[1]).map(|r| r.1), Some(ErrorCode::Internal));
    let rec = sinks.record(StreamId(1)).expect("a sink");
    assert!(!rec.finished);
    assert_eq!(rec.aborted, Some(ErrorCode::Internal));
    assert_all_returned(&mut r);
}

#[test]
fn close_drops_everything_and_aborts_sinks() {
    let sinks = MemorySinkFactory::pending();
    let mut r = Reassembly::new(small(), Some(sinks.boxed()));
    r.handle_open(open(1, None, &[0; 500], false)).expect("ok");
    r.handle_open(open(3, Some(5_000), &[0; 500], false))
        .expect("ok");
    assert_eq!(r.close(ErrorCode::GoingAway), 2);
    assert_eq!(
        sinks.record(StreamId(3)).expect("a sink").aborted,
        Some(ErrorCode::GoingAway)
    );
    assert_all_returned(&mut r);
}

#[test]
fn refused_ids_are_remembered_boundedly() {
    let mut r = Reassembly::new(small(), None);
    // Refuse many streams at OPEN (too large): only the most recent are remembered,
    // and forgetting one only means its late DATA is ignored as unknown.
    for id in 1..=10_000u64 {
        r.handle_open(open(id, Some(20_000), &[], false))
            .expect("not fatal");
        let _ = r.poll_event();
    }
    check(&r);
    r.handle_data(data(1, &[0; 10], true)).expect("ignored");
    r.handle_data(data(10_000, &[0; 10], true))
        .expect("ignored");
    assert!(events(&mut r).is_empty());
    assert_all_returned(&mut r);
}

/// Sinks are `Send`, so a runtime may move a link's reassembly between threads.
#[test]
fn reassembly_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Reassembly>();
    assert_send::<InboundEvent>();
}

// ---- the shared memory budget ---------------------------------------------------------

/// Two links share a 64 KiB budget: the first holds a 40 KiB body, so the second's
/// 40 KiB body does not fit (no sink to spill to: refused with `Refused`); once the
/// first is delivered, the second link takes one. Dropping a link gives its bytes back.
#[test]
fn links_sharing_a_budget_refuse_what_does_not_fit() {
    let config = ReassemblyConfig {
        limits: Limits {
            max_message_bytes: 1 << 20,
            max_inbound_streams: 4,
            max_buffered_bytes: 1 << 20,
            spool_threshold: 1 << 20,
        },
        stream_window: 1 << 20,
        link_window: 4 << 20,
        stall_timeout: None,
    };
    let budget = MemoryBudget::new(64 * 1024);
    let mut a = Reassembly::with_budget(config, None, Some(budget.clone()));
    let mut b = Reassembly::with_budget(config, None, Some(budget.clone()));
    let size = 40 * 1024;
    let half = body(1, size / 2);
    a.handle_open(open(2, Some(size as u64), &half, false))
        .unwrap();
    assert!(budget.used() >= size as u64 / 2);
    b.handle_open(open(2, Some(size as u64), &half, false))
        .unwrap();
    b.handle_data(data(2, &half, true)).unwrap();
    let refused = events(&mut b);
    assert!(
        matches!(
            refused.as_slice(),
            [InboundEvent::Refused {
                code: ErrorCode::Refused,
                ..
            }]
        ),
        "{refused:?}"
    );
    assert!(budget.used() <= budget.limit());
    a.handle_data(data(2, &half, true)).unwrap();
    assert!(matches!(
        events(&mut a).as_slice(),
        [InboundEvent::Message { .. }]
    ));
    assert_eq!(budget.used(), 0, "a delivered body is no longer charged");
    b.handle_open(open(4, Some(size as u64), &half, false))
        .unwrap();
    b.handle_data(data(4, &half, true)).unwrap();
    assert!(matches!(
        events(&mut b).as_slice(),
        [InboundEvent::Message { .. }]
    ));
    b.handle_open(open(6, Some(size as u64), &half, false))
        .unwrap();
    assert!(budget.used() > 0);
    drop(b);
    assert_eq!(budget.used(), 0);
    assert_eq!(budget.links(), 1);
    check(&a);
}
