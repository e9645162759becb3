//! Scheduler tests: one unit test per rule of the module docs, proptests for the
//! fairness bound, class shares, credit, and random operation lists.

use super::check::{check_ops, ops_from_bytes, Op, OpBody};
use super::class::{Stride, SCALE};
use super::*;
use crate::error::DecodeError;
use crate::error::ErrorCode;
use crate::frame::{End, GoAway, Ping, Pong};
use crate::ids::MessageKind;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use proptest::prelude::*;

const AMPLE: u64 = 1 << 40;

/// A scheduler with `chunk_len` and ample stream and link credit.
fn scheduler(chunk_len: usize) -> Scheduler {
    let mut s = Scheduler::new(SchedulerConfig {
        chunk_len,
        ..SchedulerConfig::default()
    });
    s.set_initial_stream_credit(AMPLE);
    s.add_credit(Credit::LINK, AMPLE);
    s
}

fn head(id: u64, priority: Priority) -> Open {
    let mut open = Open::new(StreamId(id), MessageKind::Request, "svc/echo");
    open.priority = priority;
    open
}

/// `len` bytes that differ per stream and per offset.
fn body(id: u64, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u64 * 7 + id * 13 + (i as u64 >> 8)) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn poll_all(s: &mut Scheduler) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(frame) = s.poll_transmit() {
        frames.push(frame);
        assert!(frames.len() < 1_000_000, "scheduler does not drain");
    }
    frames
}

fn events(s: &mut Scheduler) -> Vec<SchedulerEvent> {
    core::iter::from_fn(|| s.poll_event()).collect()
}

fn fin_of(frame: &Frame) -> bool {
    match frame {
        Frame::Open(f) => f.fin,
        Frame::Data(f) => f.fin,
        Frame::End(_) => true,
        _ => false,
    }
}

/// Reassembles message frames per stream, checking the frame grammar:
/// OPEN, DATA*, then FIN (on OPEN or DATA) or END, nothing after.
#[derive(Default)]
struct Reassembler {
    open: BTreeMap<u64, Vec<u8>>,
    done: BTreeMap<u64, Vec<u8>>,
}

impl Reassembler {
    fn feed(&mut self, frame: &Frame) {
        let id = frame.stream().expect("message frame").0;
        assert!(!self.done.contains_key(&id), "frame after the end of {id}");
        match frame {
            Frame::Open(_) => {
                assert!(
                    self.open.insert(id, Vec::new()).is_none(),
                    "second OPEN on {id}"
                )
            }
            Frame::Data(d) => assert!(!d.payload.is_empty(), "empty DATA"),
            Frame::End(_) => {}
            other => panic!("not a message frame: {other:?}"),
        }
        let buf = self.open.get_mut(&id).expect("OPEN first");
        buf.extend_from_slice(frame.payload());
        if fin_of(frame) {
            let buf = self.open.remove(&id).expect("open");
            self.done.insert(id, buf);
        }
    }
}

// ---- Rule 1: control first ---------------------------------------------------

#[test]
fn control_frames_go_first_in_order() {
    let mut s = scheduler(16);
    s.enqueue(head(1, Priority::Urgent), Body::Full(body(1, 100)))
        .unwrap();
    s.push_control(Frame::Ping(Ping { opaque: 1 }));
    s.push_control(Frame::Ping(Ping { opaque: 2 }));
    assert_eq!(s.poll_transmit(), Some(Frame::Ping(Ping { opaque: 1 })));
    assert!(matches!(
        s.poll_transmit(),
        Some(Frame::Ping(Ping { opaque: 2 }))
    ));
    assert!(matches!(s.poll_transmit(), Some(Frame::Open(_))));
    // A control frame queued mid-message overtakes the next chunk.
    s.push_control(Frame::Ping(Ping { opaque: 3 }));
    assert_eq!(s.poll_transmit(), Some(Frame::Ping(Ping { opaque: 3 })));
    assert!(matches!(s.poll_transmit(), Some(Frame::Data(_))));
}

/// A peer that PINGs and never reads makes us queue one PONG, for its latest
/// PING, however many it sends; once that PONG left, the next PING gets its own.
#[test]
fn pongs_coalesce_so_a_ping_flood_queues_one() {
    let mut s = scheduler(16);
    s.push_control(Frame::Ping(Ping { opaque: 100 }));
    for opaque in 0..100_000 {
        s.push_control(Frame::Pong(Pong { opaque }));
    }
    s.push_control(Frame::Ping(Ping { opaque: 200 }));
    assert_eq!(
        poll_all(&mut s),
        [
            Frame::Ping(Ping { opaque: 100 }),
            Frame::Pong(Pong { opaque: 99_999 }),
            Frame::Ping(Ping { opaque: 200 }),
        ]
    );
    s.push_control(Frame::Pong(Pong { opaque: 7 }));
    assert_eq!(poll_all(&mut s), [Frame::Pong(Pong { opaque: 7 })]);
}

/// Stream and link credits queue one CREDIT each, the increments added, however
/// many grants arrive before the peer reads; once sent, the next grant queues anew.
#[test]
fn credits_coalesce_per_stream() {
    let mut s = scheduler(16);
    for round in 0..10_000u64 {
        s.push_control(Frame::Credit(Credit {
            stream: StreamId(5),
            increment: round,
        }));
        s.push_control(Frame::Credit(Credit {
            stream: Credit::LINK,
            increment: 2,
        }));
    }
    s.push_control(Frame::Credit(Credit {
        stream: StreamId(7),
        increment: 1,
    }));
    let sum: u64 = (0..10_000u64).sum();
    assert_eq!(
        poll_all(&mut s),
        [
            Frame::Credit(Credit {
                stream: StreamId(5),
                increment: sum
            }),
            Frame::Credit(Credit {
                stream: Credit::LINK,
                increment: 20_000
            }),
            Frame::Credit(Credit {
                stream: StreamId(7),
                increment: 1
            }),
        ]
    );
    s.push_control(Frame::Credit(Credit {
        stream: StreamId(5),
        increment: 3,
    }));
    assert_eq!(
        poll_all(&mut s),
        [Frame::Credit(Credit {
            stream: StreamId(5),
            increment: 3
        })]
    );
    assert!(s.backlog().is_none());
}

/// CANCELs queue up to `MAX_QUEUED_CANCELS`; one more is dropped and reported as a
/// backlog, while a GOAWAY still queues behind them. Sending drains the count.
#[test]
fn queued_cancels_are_capped() {
    let mut s = scheduler(16);
    let cancel = |id: u64| {
        Frame::Cancel(Cancel {
            stream: StreamId(id),
            code: ErrorCode::Refused,
        })
    };
    for id in 0..MAX_QUEUED_CANCELS as u64 {
        s.push_control(cancel(2 * id + 2));
    }
    assert!(s.backlog().is_none());
    // Sending one makes room for one.
    assert_eq!(s.poll_transmit(), Some(cancel(2)));
    s.push_control(cancel(1_000_000));
    assert!(s.backlog().is_none());
    s.push_control(cancel(1_000_002));
    assert_eq!(
        s.backlog(),
        Some(&ProtocolError::Backlog {
            what: "CANCEL frames",
            max: MAX_QUEUED_CANCELS
        })
    );
    s.push_control(Frame::GoAway(GoAway {
        last_stream: StreamId(0),
        code: ErrorCode::FlowControl,
        reason: String::new(),
    }));
    let frames = poll_all(&mut s);
    assert_eq!(frames.len(), MAX_QUEUED_CANCELS + 1);
    assert!(matches!(frames.last(), Some(Frame::GoAway(_))));
    assert!(!frames.contains(&cancel(1_000_002)));
}

/// Other control frames are capped at `MAX_QUEUED_ANSWERS`, CANCELs not counted.
#[test]
fn queued_answers_are_capped() {
    let mut s = scheduler(16);
    for id in 0..MAX_QUEUED_ANSWERS as u64 {
        s.push_control(Frame::Credit(Credit {
            stream: StreamId(2 * id + 2),
            increment: 1,
        }));
    }
    s.push_control(Frame::Cancel(Cancel {
        stream: StreamId(9),
        code: ErrorCode::Refused,
    }));
    // A grant for a stream already queued still coalesces.
    s.push_control(Frame::Credit(Credit {
        stream: StreamId(2),
        increment: 1,
    }));
    assert!(s.backlog().is_none());
    s.push_control(Frame::Ping(Ping { opaque: 1 }));
    assert_eq!(
        s.backlog(),
        Some(&ProtocolError::Backlog {
            what: "control frames",
            max: MAX_QUEUED_ANSWERS
        })
    );
    let frames = poll_all(&mut s);
    assert_eq!(frames.len(), MAX_QUEUED_ANSWERS + 1);
    assert_eq!(
        frames[0],
        Frame::Credit(Credit {
            stream: StreamId(2),
            increment: 2
        })
    );
}

#[test]
fn control_frames_need_no_credit() {
    let mut s = Scheduler::default();
    s.push_control(Frame::Ping(Ping { opaque: 9 }));
    assert!(!s.is_idle());
    assert_eq!(s.poll_transmit(), Some(Frame::Ping(Ping { opaque: 9 })));
    assert_eq!(s.poll_transmit(), None);
    assert!(s.is_idle());
}

// ---- Rule 2: message framing -------------------------------------------------

#[test]
fn small_message_is_one_open_with_fin_and_no_total() {
    let mut s = scheduler(64);
    let mut h = head(1, Priority::Normal);
    h.total_len = Some(999); // replaced by the scheduler
    h.payload = Bytes::from_static(b"ignored");
    s.enqueue(h, Body::Full(body(1, 64))).unwrap();
    let frames = poll_all(&mut s);
    assert_eq!(frames.len(), 1);
    let Frame::Open(open) = &frames[0] else {
        panic!("{frames:?}")
    };
    assert!(open.fin);
    assert_eq!(open.total_len, None);
    assert_eq!(open.payload, body(1, 64));
    assert_eq!(open.route, "svc/echo");
    assert_eq!(
        events(&mut s),
        vec![SchedulerEvent::Sent {
            stream: StreamId(1)
        }]
    );
    assert!(s.is_idle());
}

#[test]
fn large_body_is_chunked_without_copying_and_announces_its_total() {
    let mut s = scheduler(100);
    let full = body(3, 250);
    s.enqueue(head(3, Priority::Normal), Body::Full(full.clone()))
        .unwrap();
    let frames = poll_all(&mut s);
    assert_eq!(frames.len(), 3);
    let Frame::Open(open) = &frames[0] else {
        panic!("{frames:?}")
    };
    assert_eq!(
        (open.total_len, open.fin, open.payload.len()),
        (Some(250), false, 100)
    );
    assert!(matches!(&frames[1], Frame::Data(d) if d.payload.len() == 100 && !d.fin));
    assert!(matches!(&frames[2], Frame::Data(d) if d.payload.len() == 50 && d.fin));
    // Zero copy: every payload points into the caller's buffer.
    let range = full.as_ptr() as usize..full.as_ptr() as usize + full.len();
    let mut r = Reassembler::default();
    for f in &frames {
        assert!(range.contains(&(f.payload().as_ptr() as usize)));
        r.feed(f);
    }
    assert_eq!(r.done[&3], full.to_vec());
    assert_eq!(
        events(&mut s),
        vec![SchedulerEvent::Sent {
            stream: StreamId(3)
        }]
    );
}

#[test]
fn zero_length_body_is_one_empty_open_with_fin() {
    let mut s = scheduler(64);
    s.enqueue(head(5, Priority::Bulk), Body::Full(Bytes::new()))
        .unwrap();
    let frames = poll_all(&mut s);
    assert!(
        matches!(&frames[..], [Frame::Open(o)] if o.fin && o.payload.is_empty() && o.total_len.is_none())
    );
    // Likewise a streaming body announced as empty.
    s.enqueue(
        head(7, Priority::Bulk),
        Body::Streaming { total_len: Some(0) },
    )
    .unwrap();
    assert!(matches!(&poll_all(&mut s)[..], [Frame::Open(o)] if o.fin));
    assert!(s.is_idle());
}

#[test]
fn streaming_body_opens_at_once_and_ends_with_end_when_fin_comes_late() {
    let mut s = scheduler(64);
    s.enqueue(
        head(1, Priority::Normal),
        Body::Streaming { total_len: None },
    )
    .unwrap();
    // The OPEN leaves before any body exists.
    assert!(
        matches!(s.poll_transmit(), Some(Frame::Open(o)) if o.payload.is_empty() && !o.fin && o.total_len.is_none())
    );
    assert_eq!(s.poll_transmit(), None);
    s.push_body(StreamId(1), body(1, 80), false).unwrap();
    assert!(matches!(s.poll_transmit(), Some(Frame::Data(d)) if d.payload.len() == 64 && !d.fin));
    assert!(matches!(s.poll_transmit(), Some(Frame::Data(d)) if d.payload.len() == 16 && !d.fin));
    assert_eq!(s.poll_transmit(), None);
    assert!(!s.is_idle());
    s.push_body(StreamId(1), Bytes::new(), true).unwrap();
    assert_eq!(
        s.poll_transmit(),
        Some(Frame::End(End {
            stream: StreamId(1)
        }))
    );
    assert!(s.is_idle());
    assert_eq!(
        events(&mut s).last(),
        Some(&SchedulerEvent::Sent {
            stream: StreamId(1)
        })
    );
}

#[test]
fn streaming_fin_with_bytes_rides_on_the_last_chunk() {
    let mut s = scheduler(64);
    s.enqueue(
        head(1, Priority::Normal),
        Body::Streaming { total_len: None },
    )
    .unwrap();
    // Bytes and fin arrive before the OPEN's turn: one frame.
    s.push_body(StreamId(1), body(1, 10), true).unwrap();
    let frames = poll_all(&mut s);
    assert!(matches!(&frames[..], [Frame::Open(o)] if o.fin && o.payload.len() == 10));

    s.enqueue(
        head(3, Priority::Normal),
        Body::Streaming { total_len: None },
    )
    .unwrap();
    assert!(matches!(s.poll_transmit(), Some(Frame::Open(_))));
    s.push_body(StreamId(3), body(3, 10), true).unwrap();
    assert!(matches!(s.poll_transmit(), Some(Frame::Data(d)) if d.fin && d.payload.len() == 10));
}

#[test]
fn streaming_chunks_never_span_pushed_buffers() {
    let mut s = scheduler(64);
    s.enqueue(
        head(1, Priority::Normal),
        Body::Streaming { total_len: None },
    )
    .unwrap();
    s.push_body(StreamId(1), body(1, 10), false).unwrap();
    s.push_body(StreamId(1), body(2, 10), true).unwrap();
    let lens: Vec<usize> = poll_all(&mut s).iter().map(|f| f.payload().len()).collect();
    assert_eq!(lens, vec![10, 10]);
}

#[test]
fn streaming_total_len_is_enforced_and_completes_the_body() {
    let mut s = scheduler(64);
    s.enqueue(
        head(1, Priority::Normal),
        Body::Streaming {
            total_len: Some(100),
        },
    )
    .unwrap();
    let Some(Frame::Open(open)) = s.poll_transmit() else {
        panic!()
    };
    assert_eq!(open.total_len, Some(100));
    assert!(matches!(
        s.push_body(StreamId(1), body(1, 101), false),
        Err(ProtocolError::InvalidState { .. })
    ));
    assert!(matches!(
        s.push_body(StreamId(1), body(1, 50), true),
        Err(ProtocolError::InvalidState { .. })
    ));
    assert_eq!(s.queued_body_bytes(StreamId(1)), Some(0));
    s.push_body(StreamId(1), body(1, 60), false).unwrap();
    s.push_body(StreamId(1), body(1, 40), false).unwrap(); // reaches the total
    assert_eq!(s.queued_body_bytes(StreamId(1)), Some(100));
    let frames = poll_all(&mut s);
    assert!(fin_of(frames.last().unwrap()));
    assert!(frames.iter().all(|f| !matches!(f, Frame::End(_))));
    assert!(s.is_idle());
}

#[test]
fn push_body_rejects_misuse() {
    let mut s = scheduler(64);
    let invalid =
        |r: Result<(), ProtocolError>| matches!(r, Err(ProtocolError::InvalidState { .. }));
    assert!(invalid(s.push_body(StreamId(9), body(9, 1), false)));
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 10)))
        .unwrap();
    assert!(invalid(s.push_body(StreamId(1), body(1, 1), false)));
    s.enqueue(
        head(3, Priority::Normal),
        Body::Streaming { total_len: None },
    )
    .unwrap();
    s.push_body(StreamId(3), body(3, 5), true).unwrap();
    assert!(invalid(s.push_body(StreamId(3), body(3, 1), false)));
    s.push_body(StreamId(3), Bytes::new(), true).unwrap(); // repeated fin: no-op
    assert_eq!(s.queued_body_bytes(StreamId(3)), Some(5));
}

#[test]
fn enqueue_rejects_duplicates_reserved_id_and_oversized_heads() {
    let mut s = scheduler(64);
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 1)))
        .unwrap();
    assert!(matches!(
        s.enqueue(head(1, Priority::Urgent), Body::Full(body(1, 1))),
        Err(ProtocolError::InvalidState { .. })
    ));
    assert!(matches!(
        s.enqueue(head(0, Priority::Urgent), Body::Full(body(1, 1))),
        Err(ProtocolError::InvalidState { .. })
    ));
    let mut long = head(3, Priority::Normal);
    long.route = "x".repeat(crate::frame::MAX_ROUTE_LEN + 1);
    assert!(matches!(
        s.enqueue(long, Body::Full(Bytes::new())),
        Err(ProtocolError::Decode(DecodeError::FieldTooLong { .. }))
    ));
    // Only the first message went in; its id is free again once it is sent.
    assert_eq!(poll_all(&mut s).len(), 1);
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 1)))
        .unwrap();
}

// ---- Rule 3: credit ----------------------------------------------------------

#[test]
fn stream_credit_blocks_and_resumes() {
    let mut s = Scheduler::new(SchedulerConfig {
        chunk_len: 64,
        ..SchedulerConfig::default()
    });
    s.add_credit(Credit::LINK, AMPLE);
    s.set_initial_stream_credit(100);
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 300)))
        .unwrap();
    let lens: Vec<usize> = poll_all(&mut s).iter().map(|f| f.payload().len()).collect();
    assert_eq!(lens, vec![64, 36]);
    assert_eq!(s.queued_body_bytes(StreamId(1)), Some(200));
    s.add_credit(StreamId(1), 150);
    let lens: Vec<usize> = poll_all(&mut s).iter().map(|f| f.payload().len()).collect();
    assert_eq!(lens, vec![64, 64, 22]);
    s.add_credit(StreamId(1), 1000);
    let frames = poll_all(&mut s);
    assert_eq!(frames.len(), 1);
    assert!(matches!(&frames[0], Frame::Data(d) if d.fin && d.payload.len() == 50));
    // Credit for a finished stream is ignored.
    s.add_credit(StreamId(1), 10);
    assert!(s.is_idle());
}

#[test]
fn link_credit_is_shared_between_streams() {
    let mut s = Scheduler::new(SchedulerConfig {
        chunk_len: 64,
        ..SchedulerConfig::default()
    });
    s.set_initial_stream_credit(AMPLE);
    s.add_credit(Credit::LINK, 100);
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 200)))
        .unwrap();
    s.enqueue(head(3, Priority::Normal), Body::Full(body(3, 200)))
        .unwrap();
    let frames = poll_all(&mut s);
    let total: usize = frames.iter().map(|f| f.body_len()).sum();
    assert_eq!(total, 100);
    assert_eq!(frames.len(), 2, "{frames:?}");
    s.add_credit(Credit::LINK, 300);
    let total: usize = poll_all(&mut s).iter().map(|f| f.body_len()).sum();
    assert_eq!(total, 300);
    assert!(s.is_idle());
}

#[test]
fn zero_credit_still_lets_the_open_out() {
    let mut s = Scheduler::new(SchedulerConfig {
        chunk_len: 64,
        ..SchedulerConfig::default()
    });
    s.set_initial_stream_credit(0);
    // No link credit either.
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 10)))
        .unwrap();
    assert!(
        matches!(s.poll_transmit(), Some(Frame::Open(o)) if o.payload.is_empty() && o.total_len == Some(10))
    );
    assert_eq!(s.poll_transmit(), None);
    s.add_credit(StreamId(1), 10);
    assert_eq!(s.poll_transmit(), None, "still no link credit");
    s.add_credit(Credit::LINK, 4);
    assert!(matches!(s.poll_transmit(), Some(Frame::Data(d)) if d.payload.len() == 4 && !d.fin));
    s.add_credit(Credit::LINK, 100);
    assert!(matches!(s.poll_transmit(), Some(Frame::Data(d)) if d.payload.len() == 6 && d.fin));
}

#[test]
fn nothing_is_sent_before_the_initial_window_is_known() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.add_credit(Credit::LINK, AMPLE);
    s.enqueue(head(1, Priority::Urgent), Body::Full(body(1, 10)))
        .unwrap();
    s.add_credit(StreamId(1), 3); // adds to the initial window, does not replace it
    assert_eq!(s.poll_transmit(), None);
    s.set_initial_stream_credit(5);
    assert!(matches!(s.poll_transmit(), Some(Frame::Open(o)) if o.payload.len() == 8));
    // Later streams start with the initial window.
    s.enqueue(head(3, Priority::Urgent), Body::Full(body(3, 10)))
        .unwrap();
    assert!(
        matches!(s.poll_transmit(), Some(Frame::Open(o)) if o.stream == StreamId(3) && o.payload.len() == 5)
    );
}

#[test]
fn credit_arithmetic_saturates() {
    let mut s = scheduler(64);
    s.add_credit(Credit::LINK, u64::MAX);
    s.add_credit(Credit::LINK, u64::MAX);
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 100)))
        .unwrap();
    s.add_credit(StreamId(1), u64::MAX);
    s.add_credit(StreamId(1), u64::MAX);
    s.set_chunk_len(usize::MAX);
    let frames = poll_all(&mut s);
    assert!(matches!(&frames[..], [Frame::Open(o)] if o.fin && o.payload.len() == 100));
}

// ---- Rules 4 and 5: classes --------------------------------------------------

#[test]
fn urgent_message_leaves_at_the_next_chunk_boundary() {
    let mut s = scheduler(128);
    s.enqueue(head(2, Priority::Bulk), Body::Full(body(2, 1 << 20)))
        .unwrap();
    for k in [1, 7, 100, 3000] {
        for _ in 0..k {
            let frame = s.poll_transmit().unwrap();
            assert_eq!(frame.stream(), Some(StreamId(2)));
            assert_eq!(frame.payload().len(), 128);
        }
        let id = 1 + 2 * k as u64;
        s.enqueue(head(id, Priority::Urgent), Body::Full(body(id, 32)))
            .unwrap();
        let next = s.poll_transmit().unwrap();
        assert!(
            matches!(&next, Frame::Open(o) if o.stream == StreamId(id) && o.fin && o.payload.len() == 32),
            "after {k} bulk chunks: {next:?}"
        );
    }
    // Behind a control frame, it is the first message frame.
    s.push_control(Frame::Ping(Ping { opaque: 0 }));
    s.enqueue(head(99, Priority::Urgent), Body::Full(body(99, 32)))
        .unwrap();
    assert!(matches!(s.poll_transmit(), Some(Frame::Ping(_))));
    assert!(matches!(s.poll_transmit(), Some(Frame::Open(o)) if o.stream == StreamId(99)));
}

#[test]
fn urgent_class_repays_the_debt_of_its_last_frame_first() {
    // The documented exception: an urgent class that just sent a big frame owes
    // its cost; a bulk class with much smaller chunks goes first until repaid.
    let mut s = scheduler(1024);
    s.enqueue(head(1, Priority::Urgent), Body::Full(body(1, 1024)))
        .unwrap();
    assert!(matches!(s.poll_transmit(), Some(Frame::Open(o)) if o.fin));
    s.set_chunk_len(16);
    s.enqueue(head(2, Priority::Bulk), Body::Full(body(2, 4096)))
        .unwrap();
    assert!(matches!(s.poll_transmit(), Some(Frame::Open(o)) if o.stream == StreamId(2)));
    s.enqueue(head(3, Priority::Urgent), Body::Full(body(3, 16)))
        .unwrap();
    // Debt: (1024 + 8) / 16 = 64.5 pass units; each bulk chunk costs (16 + 8) / 2 = 12.
    let mut bulk_first = 0;
    loop {
        let frame = s.poll_transmit().unwrap();
        if frame.stream() == Some(StreamId(3)) {
            break;
        }
        bulk_first += 1;
    }
    assert_eq!(bulk_first, 5);
}

#[test]
fn weights_share_the_link_between_backlogged_classes() {
    let mut s = scheduler(100);
    for (i, p) in Priority::ALL.iter().enumerate() {
        let id = i as u64 + 1;
        s.enqueue(head(id, *p), Body::Full(body(id, 1 << 20)))
            .unwrap();
    }
    let mut bytes = [0usize; 4];
    for _ in 0..3000 {
        let frame = s.poll_transmit().unwrap();
        bytes[frame.stream().unwrap().0 as usize - 1] += frame.payload().len();
    }
    // Weights 16:8:4:2 of 3000 full chunks.
    assert_eq!(bytes, [1600 * 100, 800 * 100, 400 * 100, 200 * 100]);
}

#[test]
fn an_idle_class_earns_no_credit() {
    // Bulk runs alone for a long time; Normal then arrives and gets its 4:2 share
    // from the start instead of the link for as long as Bulk had it.
    let mut s = scheduler(100);
    s.enqueue(head(2, Priority::Bulk), Body::Full(body(2, 1 << 20)))
        .unwrap();
    for _ in 0..1000 {
        s.poll_transmit().unwrap();
    }
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 1 << 20)))
        .unwrap();
    let normal = (0..30)
        .filter(|_| s.poll_transmit().unwrap().stream() == Some(StreamId(1)))
        .count();
    // 2/3 of 30, plus one frame won on the tie at the start.
    assert_eq!(normal, 21);
}

#[test]
fn ties_go_to_the_more_urgent_class() {
    let mut s = scheduler(100);
    s.enqueue(head(2, Priority::Bulk), Body::Full(body(2, 1000)))
        .unwrap();
    s.enqueue(head(1, Priority::High), Body::Full(body(1, 1000)))
        .unwrap();
    // Equal weights: strict alternation, the more urgent first.
    s.stride = Stride::new([1; Priority::COUNT]);
    let ids: Vec<u64> = (0..4)
        .map(|_| s.poll_transmit().unwrap().stream().unwrap().0)
        .collect();
    assert_eq!(ids, vec![1, 2, 1, 2]);
}

#[test]
fn passes_are_renormalized_before_they_overflow() {
    let mut s = scheduler(64);
    let near = u64::MAX - 1000 * SCALE;
    s.stride.set_passes([near, near + SCALE, 0, 0], near);
    s.enqueue(head(1, Priority::Urgent), Body::Full(body(1, 10_000)))
        .unwrap();
    s.enqueue(head(3, Priority::High), Body::Full(body(3, 10_000)))
        .unwrap();
    let frames = poll_all(&mut s);
    assert_eq!(frames.len(), 2 * 157);
    let (pass, vtime) = s.stride.passes();
    assert!(vtime < 1 << 62 && pass[0] < 1 << 62, "{pass:?} {vtime}");
    // Order is kept across the shift: 2:1 while both were backlogged.
    let urgent_first_150 = frames[..150]
        .iter()
        .filter(|f| f.stream() == Some(StreamId(1)))
        .count();
    assert_eq!(urgent_first_150, 100);
}

// ---- Rule 6: DRR within a class ----------------------------------------------

#[test]
fn streams_of_a_class_share_bytes_even_with_smaller_chunks() {
    let mut s = scheduler(100);
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 1 << 20)))
        .unwrap();
    s.enqueue(
        head(3, Priority::Normal),
        Body::Streaming { total_len: None },
    )
    .unwrap();
    // Stream 3's producer pushes 10-byte buffers: its chunks are 10 bytes.
    for _ in 0..10_000 {
        s.push_body(StreamId(3), body(3, 10), false).unwrap();
    }
    let mut bytes = [0usize; 2];
    let mut frames = [0usize; 2];
    for _ in 0..2000 {
        let frame = s.poll_transmit().unwrap();
        let i = usize::from(frame.stream() == Some(StreamId(3)));
        bytes[i] += frame.payload().len();
        frames[i] += 1;
    }
    assert!(bytes[0].abs_diff(bytes[1]) <= 200, "{bytes:?}");
    assert!(frames[1] > 9 * frames[0], "{frames:?}");
}

#[test]
fn a_stream_blocked_on_credit_rejoins_its_class() {
    let mut s = Scheduler::new(SchedulerConfig {
        chunk_len: 10,
        ..SchedulerConfig::default()
    });
    s.add_credit(Credit::LINK, AMPLE);
    s.set_initial_stream_credit(20);
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 100)))
        .unwrap();
    s.enqueue(head(3, Priority::Normal), Body::Full(body(3, 100)))
        .unwrap();
    let ids: Vec<u64> = poll_all(&mut s)
        .iter()
        .map(|f| f.stream().unwrap().0)
        .collect();
    assert_eq!(ids, vec![1, 3, 1, 3]);
    s.add_credit(StreamId(3), 20);
    s.add_credit(StreamId(1), 20);
    let ids: Vec<u64> = poll_all(&mut s)
        .iter()
        .map(|f| f.stream().unwrap().0)
        .collect();
    assert_eq!(ids, vec![3, 1, 3, 1]);
}

// ---- Rule 7: cancel ----------------------------------------------------------

#[test]
fn cancel_before_open_drops_everything_silently() {
    let mut s = scheduler(64);
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 500)))
        .unwrap();
    assert_eq!(
        s.cancel(StreamId(1)),
        Some(CancelOutcome {
            open_sent: false,
            unsent_bytes: 500
        })
    );
    assert_eq!(s.cancel(StreamId(1)), None);
    assert_eq!(s.cancel(StreamId(42)), None);
    assert_eq!(s.poll_transmit(), None);
    assert!(s.is_idle());
    assert_eq!(s.queued_body_bytes(StreamId(1)), None);
}

#[test]
fn cancel_after_open_reports_it_and_other_streams_continue() {
    let mut s = scheduler(64);
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 500)))
        .unwrap();
    s.enqueue(head(3, Priority::Normal), Body::Full(body(3, 100)))
        .unwrap();
    assert!(matches!(s.poll_transmit(), Some(Frame::Open(o)) if o.stream == StreamId(1)));
    assert_eq!(
        s.cancel(StreamId(1)),
        Some(CancelOutcome {
            open_sent: true,
            unsent_bytes: 436
        })
    );
    s.add_credit(StreamId(1), 100); // ignored
    let frames = poll_all(&mut s);
    assert!(frames.iter().all(|f| f.stream() == Some(StreamId(3))));
    assert_eq!(frames.len(), 2);
    // The id can be queued again; the stale queue entry is not confused with it.
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 10)))
        .unwrap();
    assert!(matches!(&poll_all(&mut s)[..], [Frame::Open(o)] if o.fin));
}

#[test]
fn cancel_removes_pending_wants_body() {
    let mut s = scheduler(64);
    s.enqueue(
        head(1, Priority::Normal),
        Body::Streaming { total_len: None },
    )
    .unwrap();
    s.cancel(StreamId(1)).unwrap();
    assert_eq!(events(&mut s), vec![]);
}

#[test]
fn stale_entries_of_canceled_streams_stay_bounded() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.set_initial_stream_credit(AMPLE); // no link credit: nothing leaves the ring
    s.enqueue(head(1, Priority::Bulk), Body::Full(body(1, 10)))
        .unwrap();
    for i in 0..10_000u64 {
        let id = 3 + 2 * i;
        s.enqueue(head(id, Priority::Bulk), Body::Full(body(id, 10)))
            .unwrap();
        s.cancel(StreamId(id)).unwrap();
    }
    let ring = &s.classes[Priority::Bulk.index()].ring;
    assert!(ring.len() <= 16, "{}", ring.len());
    s.add_credit(Credit::LINK, AMPLE);
    assert!(matches!(&poll_all(&mut s)[..], [Frame::Open(o)] if o.stream == StreamId(1)));
}

// ---- Events ------------------------------------------------------------------

#[test]
fn wants_body_is_raised_at_low_water_once_per_push() {
    let mut s = scheduler(10);
    s.enqueue(
        head(1, Priority::Normal),
        Body::Streaming { total_len: None },
    )
    .unwrap();
    let want = SchedulerEvent::WantsBody {
        stream: StreamId(1),
    };
    assert_eq!(events(&mut s), vec![want]);
    s.push_body(StreamId(1), body(1, 50), false).unwrap();
    assert_eq!(events(&mut s), vec![]);
    // 50 queued; low water is 2 chunks = 20 bytes: asks after the third chunk.
    let mut asked_after = None;
    for n in 1..=5 {
        s.poll_transmit().unwrap();
        if !events(&mut s).is_empty() {
            assert_eq!(asked_after, None, "asked twice");
            asked_after = Some(n);
        }
    }
    assert_eq!(asked_after, Some(3));
    assert_eq!(s.poll_transmit(), None);
    s.push_body(StreamId(1), body(1, 5), false).unwrap();
    s.poll_transmit().unwrap();
    assert_eq!(events(&mut s), vec![want]);
    // No more asks once the body is complete.
    s.push_body(StreamId(1), body(1, 5), true).unwrap();
    s.poll_transmit().unwrap();
    assert_eq!(
        events(&mut s),
        vec![SchedulerEvent::Sent {
            stream: StreamId(1)
        }]
    );
}

#[test]
fn chunk_len_change_applies_mid_message() {
    let mut s = scheduler(100);
    s.enqueue(head(1, Priority::Normal), Body::Full(body(1, 1000)))
        .unwrap();
    let mut lens = vec![s.poll_transmit().unwrap().payload().len()];
    s.set_chunk_len(30);
    lens.push(s.poll_transmit().unwrap().payload().len());
    s.set_chunk_len(0); // means 1
    lens.push(s.poll_transmit().unwrap().payload().len());
    s.set_chunk_len(500);
    lens.extend(poll_all(&mut s).iter().map(|f| f.payload().len()));
    assert_eq!(lens, vec![100, 30, 1, 500, 369]);
}

// ---- Fuzz regressions --------------------------------------------------------

#[test]
fn fuzz_ops_handles_fixed_inputs() {
    fuzz_ops(&[]);
    fuzz_ops(&[0; 64]);
    fuzz_ops(&[0xff; 64]);
    let mut seed = 0x1234_5678_u32;
    let mut data = vec![0u8; 4096];
    for b in &mut data {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        *b = (seed >> 16) as u8;
    }
    fuzz_ops(&data);
    assert!(!ops_from_bytes(&data).is_empty());
}

// ---- Properties --------------------------------------------------------------

fn cost(frame: &Frame) -> u64 {
    frame.payload().len() as u64 + 8
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// All messages queued up front with ample credit: every message reassembles
    /// exactly, and the documented fairness bound holds between any two frames
    /// of a stream.
    #[test]
    fn fairness_bound_and_reassembly(
        messages in prop::collection::vec((0usize..4, 0usize..2000), 1..20),
        chunk_len in 16usize..200,
        weights in prop::array::uniform4(1u32..=16),
    ) {
        let mut s = Scheduler::new(SchedulerConfig { chunk_len, class_weights: weights, low_water_chunks: 2 });
        s.set_initial_stream_credit(AMPLE);
        s.add_credit(Credit::LINK, AMPLE);
        let mut remaining = BTreeMap::new();
        for (i, &(class, len)) in messages.iter().enumerate() {
            let id = i as u64 + 1;
            s.enqueue(head(id, Priority::ALL[class]), Body::Full(body(id, len))).unwrap();
            remaining.insert(id, (class, len));
        }
        let frames = poll_all(&mut s);
        prop_assert!(s.is_idle());

        // (a) Byte-exact reassembly, one Sent event per message.
        let mut r = Reassembler::default();
        for f in &frames {
            r.feed(f);
        }
        prop_assert_eq!(r.done.len(), messages.len());
        for (i, &(_, len)) in messages.iter().enumerate() {
            let id = i as u64 + 1;
            prop_assert_eq!(&r.done[&id], &body(id, len).to_vec());
        }
        prop_assert_eq!(events(&mut s).len(), messages.len());

        // (b) The wait bound. n_c after each frame: class-c streams with bytes left.
        let q = chunk_len as u64 + 8;
        let w = weights.map(u64::from);
        let class_of = |f: &Frame| remaining[&f.stream().unwrap().0].0;
        let mut left: BTreeMap<u64, usize> = messages.iter().enumerate()
            .map(|(i, &(_, len))| (i as u64 + 1, len)).collect();
        let mut backlog_after = Vec::with_capacity(frames.len());
        for f in &frames {
            let id = f.stream().unwrap().0;
            *left.get_mut(&id).unwrap() -= f.payload().len();
            let mut n = [0u64; 4];
            for (id, &l) in &left {
                if l > 0 { n[remaining[id].0] += 1; }
            }
            backlog_after.push(n);
        }
        let mut last_frame: BTreeMap<u64, usize> = BTreeMap::new();
        for (i2, f) in frames.iter().enumerate() {
            let id = f.stream().unwrap().0;
            let c = class_of(f);
            if !last_frame.contains_key(&id) {
                // First frame: class c's pass can only have grown by its empty
                // messages (the free queue goes before the ring, 8 each) and one
                // frame per stream queued before s in its ring.
                let is_empty = messages[id as usize - 1].1 == 0;
                let class_c = messages.iter().filter(|m| m.0 == c);
                let earlier = messages[..id as usize - 1].iter().filter(|m| m.0 == c);
                let (empty, ahead) = if is_empty {
                    (earlier.filter(|m| m.1 == 0).count() as u64, 0)
                } else {
                    (
                        class_c.filter(|m| m.1 == 0).count() as u64,
                        earlier.filter(|m| m.1 > 0).count() as u64,
                    )
                };
                let advance = empty * 8 + ahead * q;
                let mut cost_by_class = [0u64; 4];
                let mut frames_of_c = 0;
                for g in &frames[..i2] {
                    cost_by_class[class_of(g)] += cost(g);
                    frames_of_c += u64::from(class_of(g) == c);
                }
                prop_assert!(frames_of_c <= empty + ahead, "stream {} waited for {} frames of its class", id, frames_of_c);
                for o in 0..4 {
                    if o != c {
                        prop_assert!(
                            cost_by_class[o] * w[c] <= advance * w[o] + (q + 1) * w[c],
                            "stream {} (class {}) waited for {} bytes of class {} before its first frame",
                            id, c, cost_by_class[o], o
                        );
                    }
                }
            }
            if let Some(&i1) = last_frame.get(&id) {
                let n_c = backlog_after[i1][c];
                let mut cost_by_class = [0u64; 4];
                let mut frames_of_c = 0;
                for g in &frames[i1 + 1..i2] {
                    cost_by_class[class_of(g)] += cost(g);
                    frames_of_c += u64::from(class_of(g) == c);
                }
                prop_assert!(frames_of_c < n_c, "class {} sent {} frames, n_c {}", c, frames_of_c, n_c);
                for o in 0..4 {
                    if o != c {
                        prop_assert!(
                            cost_by_class[o] * w[c] <= n_c * q * w[o] + (q + 1) * w[c],
                            "stream {} (class {}) waited for {} bytes of class {} (n_c {}, w {:?})",
                            id, c, cost_by_class[o], o, n_c, w
                        );
                    }
                }
            }
            last_frame.insert(id, i2);
        }
    }

    /// Continuously backlogged classes share the link by weight within a frame.
    #[test]
    fn class_shares_follow_weights(
        classes in prop::sample::subsequence(vec![0usize, 1, 2, 3], 2..=4),
        chunk_len in 16usize..128,
        weights in prop::array::uniform4(1u32..=16),
        chunks in 20usize..60,
    ) {
        let mut s = Scheduler::new(SchedulerConfig { chunk_len, class_weights: weights, low_water_chunks: 2 });
        s.set_initial_stream_credit(AMPLE);
        s.add_credit(Credit::LINK, AMPLE);
        for &c in &classes {
            let id = c as u64 + 1;
            s.enqueue(head(id, Priority::ALL[c]), Body::Full(body(id, chunks * chunk_len))).unwrap();
        }
        let q = chunk_len as u64 + 8;
        let mut sent = [0u64; 4];
        loop {
            let f = s.poll_transmit().unwrap();
            let c = f.stream().unwrap().0 as usize - 1;
            sent[c] += cost(&f);
            for &i in &classes {
                for &j in &classes {
                    let (wi, wj) = (u64::from(weights[i]), u64::from(weights[j]));
                    let diff = (sent[i] * wj).abs_diff(sent[j] * wi);
                    prop_assert!(diff <= q * wi.max(wj) + wi * wj,
                        "classes {} {}: sent {:?}, weights {:?}", i, j, sent, weights);
                }
            }
            if fin_of(&f) {
                break;
            }
        }
    }

    /// Random credit grants interleaved with polling: no frame exceeds the
    /// stream's or the link's credit; everything completes once credit suffices.
    #[test]
    fn credit_is_never_exceeded_and_suffices(
        messages in prop::collection::vec((0usize..4, 0usize..1500), 1..8),
        initial in 0u64..300,
        steps in prop::collection::vec((0usize..9, 0u64..300, 1usize..6), 0..60),
    ) {
        let mut s = Scheduler::new(SchedulerConfig { chunk_len: 64, ..SchedulerConfig::default() });
        s.set_initial_stream_credit(initial);
        let mut granted = vec![initial; messages.len() + 1];
        let mut sent = vec![0u64; messages.len() + 1];
        granted[0] = 0; // the link
        for (i, &(class, len)) in messages.iter().enumerate() {
            let id = i as u64 + 1;
            s.enqueue(head(id, Priority::ALL[class]), Body::Full(body(id, len))).unwrap();
        }
        let mut r = Reassembler::default();
        let mut check = |f: Frame, sent: &mut Vec<u64>, granted: &Vec<u64>| -> Result<(), TestCaseError> {
            let id = f.stream().unwrap().0 as usize;
            let n = f.payload().len() as u64;
            sent[id] += n;
            sent[0] += n;
            prop_assert!(sent[id] <= granted[id], "stream {} over credit", id);
            prop_assert!(sent[0] <= granted[0], "link over credit");
            r.feed(&f);
            Ok(())
        };
        for &(target, amount, polls) in &steps {
            let target = target % (messages.len() + 1);
            s.add_credit(StreamId(target as u64), amount);
            granted[target] += amount; // finished streams ignore it, harmlessly
            for _ in 0..polls {
                match s.poll_transmit() {
                    Some(f) => check(f, &mut sent, &granted)?,
                    None => break,
                }
            }
        }
        for (id, g) in granted.iter_mut().enumerate() {
            s.add_credit(StreamId(id as u64), AMPLE);
            *g += AMPLE;
        }
        while let Some(f) = s.poll_transmit() {
            check(f, &mut sent, &granted)?;
        }
        prop_assert!(s.is_idle());
        for (i, &(_, len)) in messages.iter().enumerate() {
            let id = i as u64 + 1;
            prop_assert_eq!(&r.done[&id], &body(id, len).to_vec());
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary operation lists (the fuzz target's logic) keep every invariant.
    #[test]
    fn random_op_lists_keep_invariants(ops in prop::collection::vec(op_strategy(), 0..80)) {
        check_ops(&ops);
    }

    /// The same through the fuzz entry point, from raw bytes.
    #[test]
    fn random_bytes_keep_invariants(data in prop::collection::vec(any::<u8>(), 0..400)) {
        fuzz_ops(&data);
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let body = prop_oneof![
        (0u16..600).prop_map(OpBody::Full),
        Just(OpBody::Streaming(None)),
        (0u16..600).prop_map(|t| OpBody::Streaming(Some(t))),
    ];
    prop_oneof![
        3 => (any::<u8>(), any::<u8>(), body).prop_map(|(id, class, body)| Op::Enqueue { id, class, body }),
        3 => (any::<u8>(), 0u16..300, any::<bool>()).prop_map(|(id, len, fin)| Op::PushBody { id, len, fin }),
        1 => any::<u8>().prop_map(|id| Op::Cancel { id }),
        3 => (any::<u8>(), prop_oneof![0u32..500, Just(u32::MAX)]).prop_map(|(id, amount)| Op::AddCredit { id, amount }),
        1 => (0u32..500).prop_map(|amount| Op::InitialCredit { amount }),
        1 => (0u16..200).prop_map(|len| Op::ChunkLen { len }),
        1 => Just(Op::Control),
        4 => any::<u8>().prop_map(|count| Op::Poll { count }),
        1 => Just(Op::Events),
    ]
}
