//! Property tests: well-behaved peers get every message out intact exactly once;
//! hostile peers never break a limit or the accounting.

use super::tests::{body, data, end, open, Peer};
use super::*;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use proptest::prelude::*;

/// Limits small enough that pressure spills, spool moves and window waits happen
/// in most cases. Pressure limit: min(2048 / 2, 1500) = 1024.
fn config() -> ReassemblyConfig {
    ReassemblyConfig {
        limits: Limits {
            max_message_bytes: 4096,
            max_inbound_streams: 8,
            max_buffered_bytes: 1500,
            spool_threshold: 700,
        },
        stream_window: 512,
        link_window: 2048,
        stall_timeout: None,
    }
}

/// How the peer sends one message.
#[derive(Clone, Debug)]
struct Plan {
    len: usize,
    declare_total: bool,
    /// Send a separate END instead of FIN on the last chunk.
    end_frame: bool,
    /// After this many frames: canceled by the peer (false) or locally (true).
    cancel: Option<(usize, bool)>,
}

fn arb_plan() -> impl Strategy<Value = Plan> {
    (
        0..1500usize,
        any::<bool>(),
        any::<bool>(),
        proptest::option::weighted(0.25, (0..6usize, any::<bool>())),
    )
        .prop_map(|(len, declare_total, end_frame, cancel)| Plan {
            len,
            declare_total,
            end_frame,
            cancel,
        })
}

/// One message on its way.
struct Tx {
    id: StreamId,
    plan: Plan,
    body: Vec<u8>,
    sent: usize,
    frames: usize,
    opened: bool,
    done: bool,
    canceled: bool,
    /// Frames still in flight after a local cancel.
    in_flight: usize,
}

enum Sent {
    Frame,
    Nothing,
    Stuck,
}

/// What came out of the receiver, per stream.
#[derive(Default)]
struct Outputs {
    delivered: BTreeMap<StreamId, Vec<Vec<u8>>>,
    peer_canceled: BTreeSet<StreamId>,
}

struct Harness {
    r: Reassembly,
    peer: Peer,
    sinks: MemorySinkFactory,
    out: Outputs,
}

impl Harness {
    fn check(&self) -> Result<(), TestCaseError> {
        if let Err(e) = self.r.check_invariants() {
            return Err(TestCaseError::fail(format!("{e}: {:?}", self.r)));
        }
        let max = self.r.config().limits.max_buffered_bytes;
        prop_assert!(self.r.buffered_bytes() <= max);
        prop_assert!(self.r.allocated_bytes() <= max);
        Ok(())
    }

    fn collect_events(&mut self) -> Result<(), TestCaseError> {
        while let Some(ev) = self.r.poll_event() {
            match ev {
                InboundEvent::Message { head, body } => {
                    let out = self.out.delivered.entry(head.stream).or_default();
                    out.push(body.to_vec());
                }
                InboundEvent::Streaming { .. } => {}
                InboundEvent::StreamFinished { stream, len } => {
                    let rec = self.sinks.record(stream).expect("a sink");
                    prop_assert!(rec.finished);
                    prop_assert_eq!(rec.body.len() as u64, len);
                    self.out.delivered.entry(stream).or_default().push(rec.body);
                }
                InboundEvent::Canceled { stream, .. } => {
                    self.out.peer_canceled.insert(stream);
                }
                refused @ InboundEvent::Refused { .. } => {
                    return Err(TestCaseError::fail(format!(
                        "a well-behaved peer was refused: {refused:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    fn collect_credits(&mut self) {
        while let Some(c) = self.r.poll_credit() {
            self.peer.credit(c);
        }
    }

    /// The consumer catches up with every pending sink.
    fn release_all(&mut self, txs: &[Tx]) {
        for tx in txs {
            let n = self.sinks.take_unreleased(tx.id);
            self.r.release(tx.id, n);
        }
    }

    /// Sends `tx`'s next frame (or cancel) within the peer's credit.
    fn send_next(&mut self, tx: &mut Tx, chunk: usize) -> Result<Sent, TestCaseError> {
        if tx.done {
            return Ok(Sent::Nothing);
        }
        if let Some((after, local)) = tx.plan.cancel {
            if !tx.canceled && tx.frames == after {
                tx.canceled = true;
                if local {
                    self.r.cancel(tx.id, ErrorCode::Canceled);
                    tx.in_flight = 1;
                } else {
                    self.r.handle_cancel(tx.id, ErrorCode::Canceled);
                    tx.done = true;
                }
                return Ok(Sent::Frame);
            }
        }
        if tx.canceled {
            if tx.in_flight == 0 {
                tx.done = true;
                return Ok(Sent::Nothing);
            }
            tx.in_flight -= 1;
        }
        let remaining = tx.plan.len - tx.sent;
        let n = chunk
            .min(remaining)
            .min(self.peer.available(tx.id) as usize);
        if remaining > 0 && n == 0 {
            if tx.canceled {
                // No credit for the frame that would have been in flight: the
                // peer learns of the cancel first and stops.
                tx.done = true;
                return Ok(Sent::Nothing);
            }
            return Ok(Sent::Stuck);
        }
        let payload = &tx.body[tx.sent..tx.sent + n];
        let last = tx.sent + n == tx.plan.len;
        let fin = last && !tx.plan.end_frame;
        let result = if !tx.opened {
            tx.opened = true;
            let total = tx.plan.declare_total.then_some(tx.plan.len as u64);
            self.r.handle_open(open(tx.id.0, total, payload, fin))
        } else if remaining > 0 {
            self.r.handle_data(data(tx.id.0, payload, fin))
        } else {
            tx.done = true;
            self.r.handle_end(end(tx.id.0))
        };
        prop_assert_eq!(result, Ok(()));
        self.peer.spend(tx.id, n as u64);
        tx.sent += n;
        tx.frames += 1;
        if fin {
            tx.done = true;
        }
        Ok(Sent::Frame)
    }
}

fn run_messages(
    plans: Vec<Plan>,
    picks: Vec<usize>,
    chunks: Vec<usize>,
    pending: bool,
    credit_every: usize,
) -> Result<(), TestCaseError> {
    let config = config();
    let sinks = if pending {
        MemorySinkFactory::pending()
    } else {
        MemorySinkFactory::new()
    };
    let mut h = Harness {
        r: Reassembly::new(config, Some(sinks.boxed())),
        peer: Peer::new(&config),
        sinks,
        out: Outputs::default(),
    };
    let mut txs: Vec<Tx> = plans
        .into_iter()
        .enumerate()
        .map(|(i, plan)| {
            let id = StreamId(2 * i as u64 + 1);
            Tx {
                id,
                body: body(id.0, plan.len),
                plan,
                sent: 0,
                frames: 0,
                opened: false,
                done: false,
                canceled: false,
                in_flight: 0,
            }
        })
        .collect();
    // The random picks first, then round robin until every message is out.
    let count = txs.len();
    let order = picks.into_iter().chain(0..).map(|p| p % count);
    for (step, i) in order.enumerate() {
        if txs.iter().all(|t| t.done) {
            break;
        }
        prop_assert!(step < 100_000, "no progress");
        let chunk = chunks[step % chunks.len()];
        if let Sent::Stuck = h.send_next(&mut txs[i], chunk)? {
            // The receiver's side catches up; then the peer must have credit.
            h.collect_events()?;
            h.release_all(&txs);
            h.collect_credits();
            if let Sent::Stuck = h.send_next(&mut txs[i], chunk)? {
                return Err(TestCaseError::fail(format!(
                    "stall: stream {} has no credit while the receiver holds {} bytes; {:?}",
                    txs[i].id,
                    h.r.buffered_bytes(),
                    h.r
                )));
            }
        }
        h.check()?;
        h.collect_events()?;
        if step % credit_every == 0 {
            h.collect_credits();
        }
    }
    h.collect_events()?;
    h.release_all(&txs);
    h.r.flush_credit();
    h.collect_credits();
    h.check()?;

    for tx in &txs {
        let got = h.out.delivered.get(&tx.id).map_or(&[][..], Vec::as_slice);
        if tx.canceled {
            prop_assert!(got.is_empty(), "canceled {} was delivered", tx.id);
        } else {
            prop_assert_eq!(got.len(), 1, "{} delivered {} times", tx.id, got.len());
            prop_assert!(got[0] == tx.body, "{} corrupted", tx.id);
        }
    }
    for id in &h.out.peer_canceled {
        let tx = txs.iter().find(|t| t.id == *id).expect("known stream");
        prop_assert!(tx.canceled && tx.plan.cancel.is_some_and(|(_, local)| !local));
    }
    prop_assert_eq!(h.r.live_streams(), 0);
    prop_assert_eq!(h.r.buffered_bytes(), 0);
    prop_assert_eq!(h.r.allocated_bytes(), 0);
    prop_assert_eq!(h.r.peer_link_credit(), config.link_window);
    prop_assert_eq!(h.peer.link(), config.link_window);
    Ok(())
}

/// A frame or call a hostile peer (or a confused caller) might make.
#[derive(Clone, Debug)]
enum Op {
    Open {
        id: u64,
        total: Option<u64>,
        len: usize,
        fin: bool,
    },
    Data {
        id: u64,
        len: usize,
        fin: bool,
    },
    End(u64),
    PeerCancel(u64),
    LocalCancel(u64),
    Release(u64, u64),
    PollEvents(usize),
    PollCredits,
    Flush,
    Close,
}

fn arb_id() -> impl Strategy<Value = u64> {
    prop_oneof![20 => 1..6u64, 1 => Just(0u64), 1 => Just(u64::MAX)]
}

fn arb_total() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        Just(None),
        (0..5_000u64).prop_map(Some),
        (u64::MAX - 3..=u64::MAX).prop_map(Some),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (arb_id(), arb_total(), 0..2_500usize, any::<bool>())
            .prop_map(|(id, total, len, fin)| Op::Open { id, total, len, fin }),
        6 => (arb_id(), 0..2_500usize, any::<bool>())
            .prop_map(|(id, len, fin)| Op::Data { id, len, fin }),
        1 => arb_id().prop_map(Op::End),
        1 => arb_id().prop_map(Op::PeerCancel),
        1 => arb_id().prop_map(Op::LocalCancel),
        1 => (arb_id(), any::<u64>()).prop_map(|(id, n)| Op::Release(id, n)),
        2 => (0..4usize).prop_map(Op::PollEvents),
        2 => Just(Op::PollCredits),
        1 => Just(Op::Flush),
        1 => Just(Op::Close),
    ]
}

fn arb_config() -> impl Strategy<Value = ReassemblyConfig> {
    (
        (0..5_000u64, 0..5usize, 0..3_000u64, 0..3_000u64),
        0..3_000u64,
        0..6_000u64,
    )
        .prop_map(
            |(
                (max_message_bytes, max_inbound_streams, max_buffered_bytes, spool_threshold),
                stream_window,
                link_window,
            )| {
                ReassemblyConfig {
                    limits: Limits {
                        max_message_bytes,
                        max_inbound_streams,
                        max_buffered_bytes,
                        spool_threshold,
                    },
                    stream_window,
                    link_window,
                    stall_timeout: None,
                }
            },
        )
}

/// Which sinks a case gets. A kind, not a factory: clones of a factory share
/// their log, and proptest clones `Just` values into every case.
#[derive(Clone, Copy, Debug)]
enum SinkKind {
    None,
    Consuming,
    Pending,
    Refusing,
    FailingAfter(u64),
    FailingFinish,
}

impl SinkKind {
    fn factory(self) -> Option<MemorySinkFactory> {
        match self {
            SinkKind::None => None,
            SinkKind::Consuming => Some(MemorySinkFactory::new()),
            SinkKind::Pending => Some(MemorySinkFactory::pending()),
            SinkKind::Refusing => Some(MemorySinkFactory::refusing()),
            SinkKind::FailingAfter(n) => Some(MemorySinkFactory::new().failing_after(n)),
            SinkKind::FailingFinish => Some(MemorySinkFactory::new().failing_finish()),
        }
    }
}

fn arb_sinks() -> impl Strategy<Value = SinkKind> {
    prop_oneof![
        Just(SinkKind::None),
        Just(SinkKind::Consuming),
        Just(SinkKind::Pending),
        Just(SinkKind::Refusing),
        (0..3_000u64).prop_map(SinkKind::FailingAfter),
        Just(SinkKind::FailingFinish),
    ]
}

fn run_hostile(
    config: ReassemblyConfig,
    sinks: SinkKind,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let sinks = sinks.factory();
    let mut r = Reassembly::new(config, sinks.as_ref().map(MemorySinkFactory::boxed));
    let limits = config.limits;
    for op in ops {
        let result = match op {
            Op::Open {
                id,
                total,
                len,
                fin,
            } => {
                let mut o = open(id, total, &[], fin);
                o.payload = Bytes::from(alloc::vec![id as u8; len]);
                r.handle_open(o)
            }
            Op::Data { id, len, fin } => r.handle_data(Data {
                stream: StreamId(id),
                payload: Bytes::from(alloc::vec![id as u8; len]),
                fin,
            }),
            Op::End(id) => r.handle_end(end(id)),
            Op::PeerCancel(id) => {
                r.handle_cancel(StreamId(id), ErrorCode::Canceled);
                Ok(())
            }
            Op::LocalCancel(id) => {
                r.cancel(StreamId(id), ErrorCode::Refused);
                Ok(())
            }
            Op::Release(id, n) => {
                r.release(StreamId(id), n);
                Ok(())
            }
            Op::PollEvents(n) => {
                for _ in 0..n {
                    if let Some(InboundEvent::Message { body, .. }) = r.poll_event() {
                        prop_assert!(body.len() as u64 <= limits.max_message_bytes);
                    }
                }
                Ok(())
            }
            Op::PollCredits => {
                while r.poll_credit().is_some() {}
                Ok(())
            }
            Op::Flush => {
                r.flush_credit();
                Ok(())
            }
            Op::Close => {
                r.close(ErrorCode::GoingAway);
                Ok(())
            }
        };
        if let Err(e) = r.check_invariants() {
            return Err(TestCaseError::fail(format!("{e}: {r:?}")));
        }
        match result {
            Ok(()) => {}
            Err(ProtocolError::FlowControl { id: 0, .. } | ProtocolError::BadStreamId { .. }) => {
                break; // fatal: the link closes
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
        }
    }
    while r.poll_event().is_some() {}
    r.close(ErrorCode::GoingAway);
    r.flush_credit();
    while r.poll_credit().is_some() {}
    if let Err(e) = r.check_invariants() {
        return Err(TestCaseError::fail(format!("{e}: {r:?}")));
    }
    prop_assert_eq!(r.allocated_bytes(), 0);
    prop_assert_eq!(r.peer_link_credit(), config.link_window);
    if let Some(sinks) = sinks {
        // Every sink ended exactly one way.
        for rec in sinks.records() {
            prop_assert!(!(rec.finished && rec.aborted.is_some()), "{rec:?}");
            prop_assert!(
                rec.finished || rec.aborted.is_some(),
                "sink left open: {rec:?}"
            );
        }
    }
    Ok(())
}

/// 192 cases by default (fast enough for every `cargo test`); `PROPTEST_CASES`
/// raises it for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(192)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Random messages, randomly chunked and interleaved, some canceled by either
    /// side: every message not canceled comes out byte-identical exactly once,
    /// within the memory limits, and every credit comes back.
    #[test]
    fn messages_come_out_byte_identical_exactly_once(
        plans in proptest::collection::vec(arb_plan(), 1..7),
        picks in proptest::collection::vec(0..7usize, 0..300),
        chunks in proptest::collection::vec(1..400usize, 1..16),
        pending in any::<bool>(),
        credit_every in 1..8usize,
    ) {
        run_messages(plans, picks, chunks, pending, credit_every)?;
    }

    /// Arbitrary frame sequences: random ids, totals and sizes, frames after
    /// cancel, duplicate OPENs, under random limits and sinks. Nothing panics, no
    /// limit or accounting identity breaks, and closing returns everything.
    #[test]
    fn hostile_frame_sequences_keep_every_limit(
        config in arb_config(),
        sinks in arb_sinks(),
        ops in proptest::collection::vec(arb_op(), 0..80),
    ) {
        run_hostile(config, sinks, ops)?;
    }

    /// The fuzz target's stable twin.
    #[test]
    fn fuzz_driver_accepts_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        fuzz_frames(&bytes);
    }
}

/// Regressions found by the property tests and the fuzzer go here, as plain tests.
#[test]
fn fuzz_driver_smoke() {
    fuzz_frames(&[]);
    fuzz_frames(&[0x81, 1, 1, 0, 0, 200, 2, 1, 0, 0, 100, 7, 0, 8, 9]);
    fuzz_frames(&[2; 64]);
    fuzz_frames(&[0xff; 64]);
    // A duplicate OPEN with a payload: the fatal error leaves the accounting as it was.
    fuzz_frames(&[
        0, 139, 0, 100, 51, 8, 94, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0,
    ]);
}
