//! The counters of a link's two halves ([`SessionStats`], [`TransmitterStats`])
//! across a simulated pair: exact payload and frame counts, queued bytes by
//! class, and the reliable mode's retransmissions, duplicates and round trip.

use bytes::Bytes;
use netcore_proto::frame::{Credit, Open};
use netcore_proto::framing::FramingKind;
use netcore_proto::link::{LinkConfig, LinkEvent, Message, SessionStats, TransmitterStats};
use netcore_proto::scheduler::{Body, Scheduler, SchedulerConfig};
use netcore_proto::sim::{Direction, Pair, Wire};
use netcore_proto::{MessageKind, Priority, StreamId};
use std::time::Duration;

fn config(framing: FramingKind, nonce: u64) -> LinkConfig {
    match framing {
        FramingKind::Serial => LinkConfig::serial(115_200, nonce),
        FramingKind::Stream => LinkConfig::stream(nonce),
    }
}

/// Side B answers every request with a body as long as the request's.
fn echo(pair: &mut Pair) {
    pair.on_b(Box::new(|link, event, _| {
        if let LinkEvent::Message { head, body } = event {
            if head.kind == MessageKind::Request {
                let reply = Message::new("", vec![0xA5; body.len()]);
                link.respond(head.stream, Ok(()), reply)
                    .expect("answer once");
            }
        }
    }));
}

fn idle(session: &SessionStats, transmitter: &TransmitterStats) {
    assert_eq!(transmitter.queued_bytes, [0; Priority::COUNT]);
    assert_eq!(transmitter.streams_out, 0);
    assert_eq!(session.streams_in, 0);
    assert_eq!(session.buffered_bytes, 0);
    assert_eq!(session.awaiting_answer, 0);
    assert_eq!(session.unanswered, 0);
}

#[test]
fn payload_frames_and_bytes_are_counted_exactly() {
    for framing in [FramingKind::Stream, FramingKind::Serial] {
        let mut pair = Pair::new(config(framing, 7), config(framing, 3), Wire::rated(1 << 20));
        pair.drive();
        echo(&mut pair);
        // Multi-frame messages too: 3000 bytes span several chunks at 115200 baud.
        for i in 0..20u8 {
            let message = Message::new("log", vec![i; 1000]);
            pair.a.link.one_way(message).expect("connected");
        }
        for _ in 0..5 {
            let message = Message::new("echo", vec![1u8; 3000]);
            pair.a.link.request(message).expect("connected");
        }
        pair.drive();
        let (a_in, a_out) = (pair.a.link.session_stats(), pair.a.link.transmitter_stats());
        let (b_in, b_out) = (pair.b.link.session_stats(), pair.b.link.transmitter_stats());
        assert_eq!(a_out.payload_out, 20 * 1000 + 5 * 3000, "{framing:?}");
        assert_eq!(b_in.payload_in, a_out.payload_out, "{framing:?}");
        assert_eq!(b_out.payload_out, 5 * 3000, "{framing:?}");
        assert_eq!(a_in.payload_in, b_out.payload_out, "{framing:?}");
        // A lossless wire: every frame and byte sent is received.
        assert_eq!(a_out.frames_out, b_in.frames_in, "{framing:?}");
        assert_eq!(a_out.bytes_out, b_in.bytes_in, "{framing:?}");
        assert_eq!(b_out.frames_out, a_in.frames_in, "{framing:?}");
        assert!(a_out.frames_out > 25, "{framing:?}: {a_out:?}");
        assert!(
            a_out.bytes_out > a_out.payload_out,
            "{framing:?}: heads and framing"
        );
        // The older whole-link counters agree.
        assert_eq!(pair.a.link.stats().bytes_out, a_out.bytes_out);
        idle(&a_in, &a_out);
        idle(&b_in, &b_out);
        assert_eq!(b_in.framing.dropped(), 0);
        assert_eq!(b_in.duplicates, 0);
        match framing {
            // The stream framing runs without the reliable mode.
            FramingKind::Stream => assert_eq!(a_out.reliable, None),
            FramingKind::Serial => {
                let reliable = a_out.reliable.expect("reliable mode on serial links");
                assert_eq!(reliable.in_flight, 0);
                assert_eq!(reliable.in_flight_bytes, 0);
                assert_eq!(reliable.retransmissions, 0);
                assert!(reliable.srtt.is_some_and(|rtt| rtt > Duration::ZERO));
            }
        }
    }
}

#[test]
fn open_streams_and_queued_bytes_are_seen_mid_transfer() {
    let mut pair = Pair::new(
        config(FramingKind::Serial, 7),
        config(FramingKind::Serial, 3),
        Wire::rated(11_520),
    );
    pair.drive();
    echo(&mut pair);
    let bulk = Message::new("echo", vec![2u8; 20_000]).with_priority(Priority::Bulk);
    pair.a.link.request(bulk).expect("connected");
    let urgent = Message::new("alarm", vec![3u8; 50]).with_priority(Priority::Urgent);
    pair.a.link.one_way(urgent).expect("connected");
    let queued = pair.a.link.transmitter_stats();
    assert_eq!(queued.streams_out, 2);
    assert_eq!(queued.queued_bytes[Priority::Bulk.index()], 20_000);
    assert_eq!(queued.queued_bytes[Priority::Urgent.index()], 50);
    assert_eq!(pair.a.link.session_stats().awaiting_answer, 1);
    // A quarter of a second at 11520 bytes/s: under way, not done.
    pair.drive_until(pair.now + Duration::from_millis(250));
    let a_out = pair.a.link.transmitter_stats();
    let bulk_left = a_out.queued_bytes[Priority::Bulk.index()];
    assert!(bulk_left > 0 && bulk_left < 20_000, "{a_out:?}");
    assert_eq!(a_out.queued_bytes[Priority::Urgent.index()], 0);
    assert_eq!(a_out.payload_out + bulk_left, 20_050);
    assert_eq!(a_out.streams_out, 1);
    let reliable = a_out.reliable.expect("reliable");
    assert!(reliable.in_flight > 0 && reliable.in_flight_bytes > 0);
    assert_eq!(pair.b.link.session_stats().streams_in, 1);
    pair.drive();
    idle(
        &pair.a.link.session_stats(),
        &pair.a.link.transmitter_stats(),
    );
    idle(
        &pair.b.link.session_stats(),
        &pair.b.link.transmitter_stats(),
    );
}

#[test]
fn scheduler_counts_queued_bytes_by_class_until_sent_or_canceled() {
    let mut s = Scheduler::new(SchedulerConfig {
        chunk_len: 100,
        ..Default::default()
    });
    let open = |id, priority| {
        let mut open = Open::new(StreamId(id), MessageKind::OneWay, "t");
        open.priority = priority;
        open
    };
    let full = |n| Body::Full(Bytes::from(vec![0u8; n]));
    s.enqueue(open(1, Priority::High), full(250)).unwrap();
    s.enqueue(open(3, Priority::Bulk), full(1000)).unwrap();
    s.enqueue(
        open(5, Priority::Normal),
        Body::Streaming { total_len: None },
    )
    .unwrap();
    s.push_body(StreamId(5), Bytes::from(vec![1u8; 300]), false)
        .unwrap();
    assert_eq!(s.queued_bytes(), [0, 250, 300, 1000]);
    assert_eq!(s.stream_count(), 3);
    s.set_initial_stream_credit(1 << 20);
    s.add_credit(Credit::LINK, 1 << 20);
    let mut sent = 0;
    for _ in 0..4 {
        sent += s.poll_transmit().expect("a frame").body_len() as u64;
    }
    assert_eq!(s.queued_bytes().iter().sum::<u64>(), 1550 - sent);
    s.cancel(StreamId(3)).expect("queued");
    assert_eq!(s.queued_bytes()[Priority::Bulk.index()], 0);
    s.push_body(StreamId(5), Bytes::new(), true).unwrap();
    while s.poll_transmit().is_some() {}
    assert_eq!(s.queued_bytes(), [0; Priority::COUNT]);
    assert_eq!(s.stream_count(), 0);
}

/// A flipped bit in every `every`-th write of `direction`.
fn flip_bits(pair: &mut Pair, every: [u32; 2]) {
    let mut n = [0u32; 2];
    pair.tamper(Box::new(move |direction, bytes| {
        let i = usize::from(direction == Direction::BToA);
        n[i] += 1;
        if every[i] > 0 && n[i] % every[i] == 0 && !bytes.is_empty() {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x80;
        }
    }));
}

#[test]
fn the_reliable_mode_counts_drops_retransmissions_and_duplicates() {
    let mut pair = Pair::new(
        config(FramingKind::Serial, 7),
        config(FramingKind::Serial, 3),
        Wire::rated(11_520),
    );
    pair.drive();
    // Data frames A→B and ACKs B→A are damaged: B drops the data frames (CRC), A
    // sends them again; lost ACKs make A resend frames B had, B's duplicates.
    flip_bits(&mut pair, [4, 3]);
    for i in 0..60u8 {
        pair.a
            .link
            .one_way(Message::new("telemetry", vec![i; 40]))
            .expect("connected");
    }
    pair.drive();
    let delivered = pair
        .b
        .events
        .iter()
        .filter(|(_, e)| matches!(e, LinkEvent::Message { .. }))
        .count();
    assert_eq!(delivered, 60, "nothing lost");
    let (a_out, b_in) = (pair.a.link.transmitter_stats(), pair.b.link.session_stats());
    let a_in = pair.a.link.session_stats();
    assert!(b_in.framing.dropped_crc > 0, "{b_in:?}");
    assert!(
        a_in.framing.dropped() > 0,
        "damaged ACKs are dropped: {a_in:?}"
    );
    let reliable = a_out.reliable.expect("reliable");
    assert!(reliable.retransmissions > 0, "{reliable:?}");
    assert!(b_in.duplicates > 0, "{b_in:?}");
    assert_eq!(
        a_out.payload_out,
        60 * 40,
        "retransmissions are not payload"
    );
    assert_eq!(b_in.payload_in, 60 * 40, "duplicates are not payload");
    let srtt = reliable.srtt.expect("measured");
    assert!(srtt > Duration::ZERO);
    assert!(reliable.rto >= srtt, "{reliable:?}");
    assert_eq!((reliable.in_flight, reliable.in_flight_bytes), (0, 0));
    // A new transport gets a new decoder: its drops add to the old one's.
    let dropped = b_in.framing.dropped_crc;
    pair.cut_and_reconnect();
    pair.drive();
    pair.a
        .link
        .one_way(Message::new("telemetry", vec![0; 40]))
        .expect("resumed");
    pair.drive();
    let b_in = pair.b.link.session_stats();
    assert!(b_in.framing.dropped_crc >= dropped, "{b_in:?}");
    // A restarted peer starts a new session: the counters of the old one stay.
    let before = (reliable.retransmissions, b_in.duplicates);
    pair.tamper(Box::new(|_, _| {}));
    pair.restart_b(config(FramingKind::Serial, 5));
    pair.drive();
    let after = pair.a.link.transmitter_stats().reliable.expect("reliable");
    assert!(pair.a.link.is_connected());
    assert!(after.retransmissions >= before.0, "{after:?}");
}
