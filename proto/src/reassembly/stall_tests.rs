//! The stall timeout (see `stall.rs`): a stream quiet past it is refused and
//! freed; one that trickles survives; one this side withholds credit from, or
//! whose peer is silent altogether, never stalls.

use super::tests::{body, data, events, open, small};
use super::*;
use alloc::vec::Vec;
use proptest::prelude::*;

const TIMEOUT: Duration = Duration::from_secs(60);

fn config() -> ReassemblyConfig {
    ReassemblyConfig {
        stall_timeout: Some(TIMEOUT),
        ..small()
    }
}

fn secs(s: u64) -> Instant {
    Instant::from_millis(s * 1000)
}

fn check(r: &Reassembly) {
    if let Err(e) = r.check_invariants() {
        panic!("invariant broken: {e}; {r:?}");
    }
}

/// The peer is heard from (a PING, say) at `t`, then timers run: the events.
fn tick(r: &mut Reassembly, t: u64) -> Vec<InboundEvent> {
    r.heard(secs(t));
    if let Some(due) = r.poll_timeout() {
        assert!(due >= secs(t), "a deadline in the past: {due:?} at {t} s");
    }
    r.handle_timeout(secs(t));
    check(r);
    events(r)
}

fn stalled(events: &[InboundEvent], id: u64) -> bool {
    events.iter().any(|e| {
        matches!(e, InboundEvent::Refused {
            stream,
            code: ErrorCode::Timeout,
            error: ProtocolError::Stalled { id: stalled },
        } if *stream == StreamId(id) && *stalled == id)
    })
}

#[test]
fn a_stream_quiet_past_the_timeout_is_refused_and_frees_its_memory() {
    let budget = MemoryBudget::new(1 << 20);
    let mut r = Reassembly::with_budget(config(), None, Some(budget.clone()));
    r.heard(secs(0));
    r.handle_open(open(1, Some(500), &body(1, 100), false))
        .expect("ok");
    assert!(r.allocated_bytes() > 0 && budget.used() > 0);
    // The peer keeps answering PINGs every 5 s but sends nothing on stream 1.
    for t in (5..60).step_by(5) {
        assert_eq!(tick(&mut r, t), [], "at {t} s");
        // Reachable without hearing more only within a twelfth of the timeout.
        let expected = (t >= 55).then_some(secs(60));
        assert_eq!(r.poll_timeout(), expected, "at {t} s");
    }
    let evs = tick(&mut r, 60);
    assert!(stalled(&evs, 1), "{evs:?}");
    assert_eq!(r.live_streams(), 0);
    assert_eq!(
        (r.buffered_bytes(), r.allocated_bytes(), budget.used()),
        (0, 0, 0)
    );
    r.flush_credit();
    assert_eq!(r.peer_link_credit(), config().link_window);
    assert_eq!(r.poll_timeout(), None);
    // Its frames still in flight are ignored; the id stays refused.
    r.handle_data(data(1, &body(1, 50), false)).expect("ok");
    assert_eq!(events(&mut r), []);
    check(&r);
}

#[test]
fn a_stalled_spooling_stream_aborts_its_sink_with_timeout() {
    let sinks = MemorySinkFactory::new();
    let mut r = Reassembly::new(config(), Some(sinks.boxed()));
    r.heard(secs(0));
    // Above the spool threshold: a sink from the OPEN.
    r.handle_open(open(1, Some(5_000), &body(1, 300), false))
        .expect("ok");
    assert_eq!(r.stream_state(StreamId(1)), Some(StreamState::Spooling));
    for t in 1..60 {
        assert!(!stalled(&tick(&mut r, t), 1), "at {t} s");
    }
    assert!(stalled(&tick(&mut r, 60), 1));
    let record = sinks.record(StreamId(1)).expect("a sink");
    assert_eq!(record.aborted, Some(ErrorCode::Timeout));
    assert!(!record.finished);
}

#[test]
fn a_stream_that_trickles_below_the_timeout_survives_and_completes() {
    let mut r = Reassembly::new(config(), None);
    r.heard(secs(0));
    let whole = body(1, 20);
    r.handle_open(open(1, Some(20), &whole[..1], false))
        .expect("ok");
    // One byte every 59 s for almost 19 minutes, PINGs in between.
    let mut t = 0;
    for i in 1..20 {
        for _ in 0..59 {
            t += 1;
            assert_eq!(tick(&mut r, t), [], "at {t} s");
        }
        r.heard(secs(t));
        r.handle_data(data(1, &whole[i..=i], i == 19)).expect("ok");
    }
    match &events(&mut r)[..] {
        [InboundEvent::Message { body, .. }] => assert_eq!(&body[..], &whole[..]),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn empty_data_frames_are_not_progress() {
    let mut r = Reassembly::new(config(), None);
    r.heard(secs(0));
    r.handle_open(open(1, Some(500), &body(1, 10), false))
        .expect("ok");
    for t in 1..60 {
        r.heard(secs(t));
        r.handle_data(data(1, &[], false)).expect("ok");
        assert!(!stalled(&tick(&mut r, t), 1));
    }
    assert!(stalled(&tick(&mut r, 60), 1));
}

#[test]
fn a_stream_starved_of_stream_credit_by_its_sink_never_stalls() {
    let sinks = MemorySinkFactory::pending();
    let mut r = Reassembly::new(config(), Some(sinks.boxed()));
    r.heard(secs(0));
    // The whole stream window, to a sink whose consumer does not release it.
    let window = config().stream_window as usize;
    let whole = body(1, window);
    r.handle_open(open(1, Some(5_000), &whole[..100], false))
        .expect("ok");
    r.handle_data(data(1, &whole[100..], false)).expect("ok");
    assert_eq!(r.peer_stream_credit(StreamId(1)), Some(0));
    assert_eq!(
        r.poll_timeout(),
        None,
        "nothing can stall: the peer may not send"
    );
    for t in 1..600 {
        assert!(!stalled(&tick(&mut r, t), 1), "at {t} s");
    }
    // The consumer releases at 600 s: the peer gets the whole timeout from then.
    r.set_now(secs(600));
    let n = sinks.take_unreleased(StreamId(1));
    r.release(StreamId(1), n);
    assert!(r.peer_stream_credit(StreamId(1)) > Some(0));
    for t in 601..660 {
        assert!(!stalled(&tick(&mut r, t), 1), "at {t} s");
    }
    assert!(stalled(&tick(&mut r, 660), 1));
}

#[test]
fn streams_never_stall_while_the_link_window_is_full() {
    let mut r = Reassembly::new(config(), None);
    r.heard(secs(0));
    r.handle_open(open(1, Some(500), &body(1, 10), false))
        .expect("ok");
    // Complete messages nobody took out of the event queue hold the rest of the
    // link window: the peer may send nothing more, on any stream.
    let mut left = config().link_window - 10;
    let mut id = 3;
    while left > 0 {
        let n = left.min(config().stream_window);
        r.handle_open(open(id, None, &body(id, n as usize), true))
            .expect("ok");
        left -= n;
        id += 2;
    }
    assert_eq!(r.peer_link_credit(), 0);
    assert_eq!(r.poll_timeout(), None);
    for t in 1..300 {
        r.heard(secs(t));
        r.handle_timeout(secs(t));
        assert_eq!(r.live_streams(), 1, "at {t} s");
    }
    // The runtime takes the messages at 300 s: link credit comes back then.
    r.set_now(secs(300));
    let delivered = events(&mut r);
    assert!(delivered
        .iter()
        .all(|e| matches!(e, InboundEvent::Message { .. })));
    assert!(r.peer_link_credit() > 0);
    for t in 301..360 {
        assert!(!stalled(&tick(&mut r, t), 1), "at {t} s");
    }
    assert!(stalled(&tick(&mut r, 360), 1));
}

#[test]
fn a_silent_peer_stalls_nothing_only_a_heard_one_does() {
    let mut r = Reassembly::new(config(), None);
    r.heard(secs(0));
    r.handle_open(open(1, Some(500), &body(1, 10), false))
        .expect("ok");
    // Not a frame for ten minutes (a lossy line backing off, a reconnection):
    // a twelfth of the timeout counts, no more.
    r.handle_timeout(secs(600));
    assert_eq!(r.live_streams(), 1);
    assert_eq!(r.poll_timeout(), None);
    // Heard again from 600 s on: 5 s were counted, 55 s are left.
    for t in 600..655 {
        assert!(!stalled(&tick(&mut r, t), 1), "at {t} s");
    }
    assert!(stalled(&tick(&mut r, 655), 1));
}

#[test]
fn without_a_timeout_nothing_stalls() {
    let mut r = Reassembly::new(small(), None);
    r.handle_open(open(1, Some(500), &body(1, 10), false))
        .expect("ok");
    for t in 1..1000 {
        r.heard(secs(t));
        assert_eq!(r.poll_timeout(), None);
        r.handle_timeout(secs(t));
    }
    assert_eq!(r.live_streams(), 1);
}

#[test]
fn many_streams_cost_one_deadline_each() {
    let mut r = Reassembly::new(
        ReassemblyConfig {
            limits: Limits {
                max_inbound_streams: 1000,
                max_buffered_bytes: 1 << 20,
                ..small().limits
            },
            link_window: 1 << 20,
            ..config()
        },
        None,
    );
    r.heard(secs(0));
    for id in 0..1000 {
        r.handle_open(open(2 * id + 1, Some(100), &[1], false))
            .expect("ok");
    }
    // Each stream makes progress every second: entries move lazily, one per stream.
    for t in 1..200 {
        r.heard(secs(t));
        for id in 0..1000 {
            if t < 99 {
                r.handle_data(data(2 * id + 1, &[1], false)).expect("ok");
            }
        }
        r.handle_timeout(secs(t));
        check(&r);
        let evs = events(&mut r);
        // The last progress was at 98 s.
        if t < 98 + 60 {
            assert_eq!(r.live_streams(), 1000, "at {t} s: {:?}", evs.first());
        } else {
            assert_eq!(r.live_streams(), 0, "at {t} s");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A stream whose body arrives in chunks after random pauses, the peer heard
    /// from every second: it is refused exactly when a pause reaches the timeout
    /// (at that second), and otherwise completes intact.
    #[test]
    fn refused_exactly_when_a_pause_reaches_the_timeout(
        pauses in proptest::collection::vec(prop_oneof![3 => 1u64..59, 1 => 1u64..120], 1..12),
    ) {
        let mut r = Reassembly::new(config(), None);
        r.heard(secs(0));
        let whole = body(1, pauses.len() + 1);
        r.handle_open(open(1, Some(whole.len() as u64), &whole[..1], false)).expect("ok");
        let mut t = 0;
        let mut refused_at = None;
        'outer: for (i, &pause) in pauses.iter().enumerate() {
            for _ in 0..pause {
                t += 1;
                let evs = tick(&mut r, t);
                if stalled(&evs, 1) {
                    refused_at = Some((i, pause, t));
                    break 'outer;
                }
                prop_assert_eq!(evs, []);
            }
            r.heard(secs(t));
            r.handle_data(data(1, &whole[i + 1..i + 2], i + 1 == pauses.len())).expect("ok");
        }
        let first_long = pauses.iter().position(|&p| p >= 60);
        match (first_long, refused_at) {
            (None, None) => {
                let evs = events(&mut r);
                prop_assert!(
                    matches!(&evs[..], [InboundEvent::Message { body, .. }] if body[..] == whole[..]),
                    "{:?}", evs
                );
            }
            (Some(i), Some((at, pause, t))) => {
                prop_assert_eq!(i, at);
                prop_assert!(pause >= 60);
                let start: u64 = pauses[..i].iter().sum();
                prop_assert_eq!(t, start + 60);
                prop_assert_eq!(r.live_streams(), 0);
                prop_assert_eq!(r.buffered_bytes(), 0);
            }
            other => prop_assert!(false, "pauses {:?}: {:?}", pauses, other),
        }
    }
}
