use super::*;
use crate::frame::{Ack, Frame, Ping};
use crate::time::Instant;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::Bytes;
use proptest::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn at(n: u64) -> Instant {
    Instant::from_millis(n)
}

fn ping(n: u64) -> Frame {
    Frame::Ping(Ping { opaque: n })
}

fn sender() -> Sender {
    Sender::new(
        4,
        5,
        RtoConfig {
            initial: ms(100),
            min: ms(10),
            max: ms(2000),
        },
    )
}

fn send(s: &mut Sender, n: u8, now: Instant) -> u8 {
    let seq = s.next_seq();
    s.record(Bytes::from(alloc::vec![n]), Bytes::new(), now);
    seq
}

#[test]
fn window_limits_frames_in_flight() {
    let mut s = sender();
    for i in 0..4 {
        assert!(s.can_send());
        assert_eq!(send(&mut s, i, at(0)), i);
    }
    assert!(!s.can_send());
    s.on_ack(
        Ack {
            next: 2,
            selective: 0,
        },
        at(30),
    );
    assert_eq!(s.in_flight(), 2);
    assert!(s.can_send());
}

#[test]
fn timeout_resends_the_oldest_and_backs_off() {
    let mut s = sender();
    send(&mut s, 0, at(0));
    send(&mut s, 1, at(0));
    assert_eq!(s.poll_timeout(), Some(at(100)));
    s.handle_timeout(at(50));
    assert!(s.poll_retransmit(at(50)).is_none(), "not due yet");
    s.handle_timeout(at(100));
    let (head, _) = s.poll_retransmit(at(100)).expect("the oldest is resent");
    assert_eq!(&head[..], &[0]);
    assert!(s.poll_retransmit(at(100)).is_none(), "only the oldest");
    assert_eq!(s.rto(), ms(200));
    assert_eq!(s.poll_timeout(), Some(at(300)));
    // Karn: the ack of a retransmitted frame gives no sample (the backoff stays)...
    s.on_ack(
        Ack {
            next: 1,
            selective: 0,
        },
        at(110),
    );
    assert_eq!(s.rto(), ms(200));
    // ...the untouched one does: SRTT 310, RTTVAR 155, RTO 930, backoff cleared.
    s.on_ack(
        Ack {
            next: 2,
            selective: 0,
        },
        at(310),
    );
    assert_eq!(s.in_flight(), 0);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.rto(), ms(930));
}

#[test]
fn after_a_resume_the_resent_frames_give_samples_and_the_backoff_is_gone() {
    let mut s = sender();
    send(&mut s, 0, at(0));
    send(&mut s, 1, at(0));
    send(&mut s, 2, at(0));
    // The line goes silent: four timeouts back the RTO off to the 2 s cap.
    let mut now = 0;
    for _ in 0..4 {
        now = s.poll_timeout().expect("armed").as_micros() / 1000;
        s.handle_timeout(at(now));
        assert!(s.poll_retransmit(at(now)).is_some());
    }
    assert_eq!(s.rto(), ms(1600));
    // Reconnected: the peer had frame 0; 1 and 2 go out again on the new transport.
    s.resume(1);
    assert_eq!(
        s.rto(),
        ms(100),
        "the backoff of the dead transport is gone"
    );
    let resent: Vec<u8> = core::iter::from_fn(|| s.poll_retransmit(at(now)))
        .map(|(head, _)| head[0])
        .collect();
    assert_eq!(resent, [1, 2]);
    // Their acknowledgement is a round-trip sample (40 ms): RTO 40 + 4 × 20.
    s.on_ack(
        Ack {
            next: 3,
            selective: 0,
        },
        at(now + 40),
    );
    assert_eq!(s.in_flight(), 0);
    assert_eq!(s.rto(), ms(120));
    assert_eq!(s.retransmissions(), 6);
}

#[test]
fn selective_ack_triggers_fast_retransmit_of_the_holes_only() {
    let mut s = sender();
    for i in 0..4 {
        send(&mut s, i, at(0));
    }
    // Frames 1 and 3 arrived, 0 and 2 did not.
    s.on_ack(
        Ack {
            next: 0,
            selective: 0b101,
        },
        at(150),
    );
    let a = s.poll_retransmit(at(150)).expect("hole 0");
    let b = s.poll_retransmit(at(150)).expect("hole 2");
    assert_eq!((&a.0[..], &b.0[..]), (&[0u8][..], &[2u8][..]));
    assert!(s.poll_retransmit(at(150)).is_none());
}

#[test]
fn a_frame_sent_too_often_fails_the_sender() {
    let mut s = sender();
    send(&mut s, 0, at(0));
    let mut now = 0;
    while !s.is_failed() {
        now = s
            .poll_timeout()
            .map(|t| t.as_micros() / 1000)
            .unwrap_or(now)
            + 1;
        s.handle_timeout(at(now));
        let _ = s.poll_retransmit(at(now));
        assert!(now < 100_000, "never failed");
    }
    assert!(!s.can_send());
}

#[test]
fn stale_and_impossible_acks_are_ignored() {
    let mut s = sender();
    send(&mut s, 0, at(0));
    s.on_ack(
        Ack {
            next: 200,
            selective: 0,
        },
        at(10),
    );
    assert_eq!(s.in_flight(), 1);
    s.on_ack(
        Ack {
            next: 1,
            selective: 0,
        },
        at(10),
    );
    s.on_ack(
        Ack {
            next: 0,
            selective: 0,
        },
        at(11),
    ); // old, behind the base
    assert_eq!(s.in_flight(), 0);
    assert_eq!(s.sent_total(), 1);
}

#[test]
fn receiver_orders_holds_and_drops_duplicates() {
    let mut r = Receiver::new(8, ms(5));
    let mut out = VecDeque::new();
    r.on_frame(1, ping(1), at(0), &mut out);
    r.on_frame(2, ping(2), at(0), &mut out);
    assert!(out.is_empty());
    let ack = r.poll_ack(at(0)).expect("out of order: ack at once");
    assert_eq!(
        ack,
        Ack {
            next: 0,
            selective: 0b11
        }
    );
    r.on_frame(0, ping(0), at(1), &mut out);
    assert_eq!(
        out.drain(..).collect::<Vec<_>>(),
        [ping(0), ping(1), ping(2)]
    );
    assert_eq!(r.received_total(), 3);
    assert!(r.poll_ack(at(2)).is_none(), "in order: delayed");
    assert_eq!(r.poll_timeout(), Some(at(6)));
    assert_eq!(
        r.poll_ack(at(6)),
        Some(Ack {
            next: 3,
            selective: 0
        })
    );
    r.on_frame(1, ping(1), at(7), &mut out);
    assert!(out.is_empty());
    assert_eq!(r.duplicates(), 1);
    assert_eq!(
        r.poll_ack(at(7)),
        Some(Ack {
            next: 3,
            selective: 0
        })
    );
}

/// Both directions over a channel that drops, duplicates and reorders frames with
/// simulated time: every frame is delivered once, in order.
#[derive(Debug, Clone, Copy)]
struct Channel {
    loss: u8,
    dup: u8,
    delay_ms: u64,
    jitter_ms: u64,
}

fn simulate(ch: Channel, seed: u64, frames: u64, tail_probe: bool) -> (Vec<u64>, u64) {
    let mut rng = seed | 1;
    let mut rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let config = ReliableConfig::default();
    let mut s = Sender::new(config.window, 1000, config.rto)
        .with_tail_probe(tail_probe.then_some(config.ack_delay));
    let mut r = Receiver::new(config.window, config.ack_delay);
    // In flight: (arrival, seq or ack)
    let mut to_r: Vec<(u64, u8, u64)> = Vec::new();
    let mut to_s: Vec<(u64, Ack)> = Vec::new();
    let mut delivered = Vec::new();
    let mut out = VecDeque::new();
    let mut next_payload = 0u64;
    let mut now = 0u64;
    while (delivered.len() as u64) < frames && now < 10_000_000 {
        let t = at(now);
        s.handle_timeout(t);
        let wire = |rand: &mut dyn FnMut() -> u64,
                    seq: u8,
                    payload: u64,
                    to_r: &mut Vec<(u64, u8, u64)>| {
            let copies = if (rand() % 100) < u64::from(ch.dup) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                if (rand() % 100) >= u64::from(ch.loss) {
                    let arrive = now + ch.delay_ms + rand() % (ch.jitter_ms + 1);
                    to_r.push((arrive, seq, payload));
                }
            }
        };
        while let Some((head, _)) = s.poll_retransmit(t) {
            let payload = u64::from_le_bytes(head[..8].try_into().unwrap());
            let seq = head[8];
            wire(&mut rand, seq, payload, &mut to_r);
        }
        if s.can_send() && next_payload < frames {
            let seq = s.next_seq();
            let mut head = next_payload.to_le_bytes().to_vec();
            head.push(seq);
            s.record(Bytes::from(head), Bytes::new(), t);
            wire(&mut rand, seq, next_payload, &mut to_r);
            next_payload += 1;
        }
        to_r.sort_by_key(|e| e.0);
        while to_r.first().is_some_and(|e| e.0 <= now) {
            let (_, seq, payload) = to_r.remove(0);
            r.on_frame(seq, ping(payload), t, &mut out);
        }
        for frame in out.drain(..) {
            if let Frame::Ping(p) = frame {
                delivered.push(p.opaque);
            }
        }
        if let Some(ack) = r.poll_ack(t) {
            if (rand() % 100) >= u64::from(ch.loss) {
                to_s.push((now + ch.delay_ms + rand() % (ch.jitter_ms + 1), ack));
            }
        }
        to_s.sort_by_key(|e| e.0);
        while to_s.first().is_some_and(|e| e.0 <= now) {
            let (_, ack) = to_s.remove(0);
            s.on_ack(ack, t);
        }
        assert!(!s.is_failed());
        now += 1;
    }
    (delivered, s.retransmissions())
}

#[test]
fn a_lossless_channel_needs_no_retransmission() {
    let ch = Channel {
        loss: 0,
        dup: 0,
        delay_ms: 10,
        jitter_ms: 0,
    };
    for tail_probe in [false, true] {
        let (delivered, retransmissions) = simulate(ch, 7, 500, tail_probe);
        assert_eq!(delivered, (0..500).collect::<Vec<_>>());
        assert_eq!(retransmissions, 0);
    }
}

proptest! {
    #[test]
    fn every_frame_arrives_once_in_order(loss in 0u8..30, dup in 0u8..20, delay in 1u64..50, jitter in 0u64..30, seed in any::<u64>(), tail_probe in any::<bool>()) {
        let ch = Channel { loss, dup, delay_ms: delay, jitter_ms: jitter };
        let (delivered, _) = simulate(ch, seed, 300, tail_probe);
        prop_assert_eq!(delivered, (0..300).collect::<Vec<_>>());
    }
}

#[test]
fn a_given_up_sender_sends_only_probes_until_revived() {
    let mut s = sender();
    send(&mut s, 0, at(0));
    send(&mut s, 1, at(0));
    // Five sends of frame 0 without an answer: the sender gives up.
    let mut now = 0;
    while !s.is_failed() {
        now = s.poll_timeout().expect("armed").as_micros() / 1000;
        s.handle_timeout(at(now));
        let _ = s.poll_retransmit(at(now));
    }
    assert!(!s.can_send());
    assert!(s.poll_retransmit(at(now)).is_none(), "nothing by itself");
    // A probe sends the oldest frame once more, past the limit.
    assert!(s.probe());
    let (head, _) = s.poll_retransmit(at(now)).expect("the probe");
    assert_eq!(head[0], 0);
    assert!(s.poll_retransmit(at(now)).is_none(), "one frame per probe");
    // The peer answered: everything unacknowledged goes again, the backoff is gone.
    s.revive();
    assert!(!s.is_failed());
    assert_eq!(s.rto(), ms(100));
    let resent: Vec<u8> = core::iter::from_fn(|| s.poll_retransmit(at(now)))
        .map(|(head, _)| head[0])
        .collect();
    assert_eq!(resent, [0, 1]);
    assert!(s.can_send());
}

#[test]
fn nothing_in_flight_nothing_to_probe_with() {
    let mut s = sender();
    assert!(!s.probe());
    send(&mut s, 0, at(0));
    s.on_ack(
        Ack {
            next: 1,
            selective: 0,
        },
        at(10),
    );
    assert!(!s.probe());
}

fn probing_sender() -> Sender {
    sender().with_tail_probe(Some(ms(5)))
}

/// One frame acknowledged at `rtt`: SRTT = `rtt`, RTTVAR = `rtt` / 2.
fn measured(s: &mut Sender, rtt: u64) {
    let seq = send(s, 9, at(0));
    s.on_ack(
        Ack {
            next: seq.wrapping_add(1),
            selective: 0,
        },
        at(rtt),
    );
}

#[test]
fn silence_after_the_last_frame_sends_the_newest_again_once() {
    let mut s = probing_sender();
    measured(&mut s, 20);
    // SRTT 20 ms, RTTVAR 10 ms: RTO 60 ms, probe timeout 2 × 20 + 5 = 45 ms.
    send(&mut s, 1, at(100));
    send(&mut s, 2, at(100));
    assert_eq!(s.poll_timeout(), Some(at(145)), "the probe comes first");
    s.handle_timeout(at(144));
    assert!(s.poll_retransmit(at(144)).is_none(), "not due yet");
    s.handle_timeout(at(145));
    let (head, _) = s.poll_retransmit(at(145)).expect("the probe");
    assert_eq!(head[0], 2, "the newest frame");
    assert!(s.poll_retransmit(at(145)).is_none(), "one frame");
    assert_eq!((s.retransmissions(), s.tail_probes()), (1, 1));
    assert_eq!(s.rto(), ms(60), "a probe is no timeout: no backoff");
    // No ACK: no second probe, the retransmission timer (armed at the first
    // send, 100 + 60) takes over and resends the oldest.
    assert_eq!(s.poll_timeout(), Some(at(160)));
    s.handle_timeout(at(160));
    let (head, _) = s.poll_retransmit(at(160)).expect("the timeout's resend");
    assert_eq!(head[0], 1);
    assert_eq!(s.rto(), ms(120));
    assert_eq!(s.poll_timeout(), Some(at(280)), "no probe while backed off");
    assert_eq!((s.retransmissions(), s.tail_probes()), (2, 1));
}

#[test]
fn the_probes_ack_shows_the_hole_before_it() {
    let mut s = probing_sender();
    measured(&mut s, 20);
    send(&mut s, 1, at(100));
    send(&mut s, 2, at(100));
    s.handle_timeout(at(145));
    assert_eq!(s.poll_retransmit(at(145)).expect("the probe").0[0], 2);
    // Frame 1 was lost, the probe arrived: its ACK selects frame 2 and the hole
    // (sent 45 ms ago, over a round trip) goes again at once.
    let next = s.next_seq().wrapping_sub(2);
    s.on_ack(
        Ack {
            next,
            selective: 0b1,
        },
        at(170),
    );
    assert_eq!(s.poll_retransmit(at(170)).expect("the hole").0[0], 1);
    s.on_ack(
        Ack {
            next: s.next_seq(),
            selective: 0,
        },
        at(190),
    );
    assert_eq!((s.in_flight(), s.poll_timeout()), (0, None));
    // Something new was acknowledged: the next silence is probed again.
    send(&mut s, 3, at(200));
    assert_eq!(s.poll_timeout(), Some(at(245)));
    s.handle_timeout(at(245));
    assert_eq!(s.poll_retransmit(at(245)).expect("a second probe").0[0], 3);
    assert_eq!(s.tail_probes(), 2);
}

#[test]
fn no_probe_without_a_round_trip_or_when_the_timeout_comes_first() {
    // No sample yet: only the retransmission timer.
    let mut s = probing_sender();
    send(&mut s, 0, at(0));
    assert_eq!(s.poll_timeout(), Some(at(100)));
    // A steady 4 ms round trip: RTO = max(4 + 1 ms, the 10 ms floor) = 10 ms,
    // before the probe timeout (2 × 4 + 5 = 13 ms): the timeout alone.
    let mut s = probing_sender();
    for _ in 0..40 {
        measured(&mut s, 4);
    }
    send(&mut s, 1, at(1000));
    assert_eq!(s.poll_timeout(), Some(at(1010)));
    s.handle_timeout(at(1010));
    assert_eq!(s.tail_probes(), 0);
    // Without a tail probe setting, none ever.
    let mut s = sender();
    measured(&mut s, 20);
    send(&mut s, 1, at(100));
    assert_eq!(s.poll_timeout(), Some(at(160)));
}

#[test]
fn a_resume_forgets_a_pending_probe() {
    let mut s = probing_sender();
    measured(&mut s, 20);
    send(&mut s, 1, at(100));
    s.handle_timeout(at(145));
    s.resume(0);
    let resent: Vec<u8> = core::iter::from_fn(|| s.poll_retransmit(at(150)))
        .map(|(head, _)| head[0])
        .collect();
    assert_eq!(resent, [1], "the resume's resend, no probe besides");
    assert_eq!(s.tail_probes(), 0);
}
