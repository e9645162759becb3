//! Drives a [`Scheduler`] with an arbitrary list of operations and checks it
//! against a small model: shared by the `random_op_lists_keep_invariants`
//! proptest and the `scheduler` fuzz target (through [`fuzz_ops`]).
//!
//! Checked after every operation: the scheduler never panics; control frames
//! leave first and in order; a message's frames are OPEN, DATA…, FIN or END, with
//! its exact bytes in order and nothing after the end; no frame exceeds the chunk
//! length, the stream's credit or the link's credit; no stream sends before the
//! initial window is known; `poll_transmit` returns `None` only when the model
//! agrees nothing may be sent; errors and cancel outcomes match the model; `Sent`
//! events come once per message, in order. At the end every message is completed
//! with ample credit and the scheduler must drain to idle.
//!
//! A violated check panics: that is the finding.

use super::{Body, Scheduler, SchedulerConfig, SchedulerEvent};
use crate::frame::{Frame, Open, Ping};
use crate::ids::{MessageKind, Priority, StreamId};
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use bytes::Bytes;

/// Stream ids the operations use: `1..=STREAM_IDS` (few, so ids get reused).
const STREAM_IDS: u8 = 8;
/// Largest body length an operation creates.
const MAX_BODY: u64 = 4096;

/// One operation on the scheduler.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// `enqueue` a message on stream `id % 8 + 1` in class `class % 4`.
    Enqueue {
        /// Stream selector.
        id: u8,
        /// Class selector.
        class: u8,
        /// The body.
        body: OpBody,
    },
    /// `push_body` of `len % 4096` pattern bytes.
    PushBody {
        /// Stream selector.
        id: u8,
        /// Bytes to push (modulo [`MAX_BODY`]).
        len: u16,
        /// Whether they are the last.
        fin: bool,
    },
    /// `cancel`.
    Cancel {
        /// Stream selector.
        id: u8,
    },
    /// `add_credit` on stream `id % 9` (0 is the link); `u32::MAX` grants `u64::MAX`.
    AddCredit {
        /// Stream selector.
        id: u8,
        /// Increment.
        amount: u32,
    },
    /// `set_initial_stream_credit`.
    InitialCredit {
        /// The window.
        amount: u32,
    },
    /// `set_chunk_len`.
    ChunkLen {
        /// The length (0 is allowed and means 1).
        len: u16,
    },
    /// `push_control` of a PING.
    Control,
    /// Up to `count % 16 + 1` calls of `poll_transmit`, stopping at `None`.
    Poll {
        /// Call selector.
        count: u8,
    },
    /// Drain `poll_event`.
    Events,
}

/// The body of an [`Op::Enqueue`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum OpBody {
    /// `Body::Full` of `len % 4096` pattern bytes.
    Full(u16),
    /// `Body::Streaming` with an optional total (modulo 4096).
    Streaming(Option<u16>),
}

/// Decodes operations from raw fuzzer bytes: one opcode byte, then its
/// arguments (missing bytes read as 0).
pub(crate) fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let mut ops = Vec::new();
    while let Some(code) = next() {
        let mut arg = || next().unwrap_or(0);
        let op = match code % 9 {
            0 => {
                let (id, class, kind) = (arg(), arg(), arg());
                let len = u16::from_le_bytes([arg(), arg()]);
                let body = match kind % 3 {
                    0 => OpBody::Full(len),
                    1 => OpBody::Streaming(None),
                    _ => OpBody::Streaming(Some(len)),
                };
                Op::Enqueue { id, class, body }
            }
            1 => {
                let id = arg();
                let len = u16::from_le_bytes([arg(), arg()]);
                Op::PushBody {
                    id,
                    len,
                    fin: arg() & 1 == 1,
                }
            }
            2 => Op::Cancel { id: arg() },
            3 => Op::AddCredit {
                id: arg(),
                amount: u32::from_le_bytes([arg(), arg(), arg(), arg()]),
            },
            4 => Op::InitialCredit {
                amount: u32::from_le_bytes([arg(), arg(), arg(), arg()]),
            },
            5 => Op::ChunkLen {
                len: u16::from_le_bytes([arg(), arg()]),
            },
            6 => Op::Control,
            7 => Op::Poll { count: arg() },
            _ => Op::Events,
        };
        ops.push(op);
    }
    ops
}

/// Runs the operations the raw bytes encode against a fresh scheduler and panics
/// if any invariant breaks (see the [module docs](self)). For the `scheduler`
/// fuzz target; not part of the API.
#[doc(hidden)]
pub fn fuzz_ops(data: &[u8]) {
    check_ops(&ops_from_bytes(data));
}

/// The byte at `offset` of the body of the `generation`-th message on `id`.
fn pattern(id: u64, generation: u32, offset: u64) -> u8 {
    (id.wrapping_mul(31) ^ u64::from(generation).wrapping_mul(17) ^ offset.wrapping_mul(7)) as u8
        ^ (offset >> 8) as u8
}

fn pattern_bytes(id: u64, generation: u32, from: u64, len: u64) -> Bytes {
    (from..from + len)
        .map(|o| pattern(id, generation, o))
        .collect::<Vec<u8>>()
        .into()
}

/// What the model knows of one queued message.
struct Message {
    class: usize,
    generation: u32,
    streaming: bool,
    total: Option<u64>,
    pushed: u64,
    fin_pushed: bool,
    sent: u64,
    granted: u64,
    known: bool,
    open_sent: bool,
}

impl Message {
    fn sendable(&self, link_available: u64) -> bool {
        if !self.known {
            return false;
        }
        let queued = self.pushed - self.sent;
        let has_bytes = queued > 0 && self.granted > self.sent;
        if !self.open_sent {
            !has_bytes || link_available > 0
        } else if queued > 0 {
            has_bytes && link_available > 0
        } else {
            self.fin_pushed
        }
    }
}

struct Model {
    messages: BTreeMap<u64, Message>,
    generations: BTreeMap<u64, u32>,
    ever_streaming: BTreeSet<u64>,
    link_granted: u64,
    link_sent: u64,
    initial: Option<u64>,
    chunk_len: usize,
    control: VecDeque<u64>,
    next_ping: u64,
    expected_sent: VecDeque<u64>,
}

impl Model {
    fn link_available(&self) -> u64 {
        self.link_granted - self.link_sent
    }

    fn check_frame(&mut self, frame: &Frame) {
        if let Some(expected) = self.control.pop_front() {
            assert!(
                matches!(frame, Frame::Ping(Ping { opaque }) if *opaque == expected),
                "control frames go first, in order: wanted PING {expected}, got {frame:?}"
            );
            return;
        }
        assert!(!frame.is_control(), "unexpected control frame {frame:?}");
        let Some(id) = frame.stream().map(|s| s.0) else {
            panic!("message frame without a stream: {frame:?}");
        };
        let Some(m) = self.messages.get_mut(&id) else {
            panic!("frame for a stream that is not queued: {frame:?}");
        };
        assert!(
            m.known,
            "stream {id} sent before the initial window was known"
        );
        let fin = match frame {
            Frame::Open(open) => {
                assert!(!m.open_sent, "second OPEN on stream {id}");
                m.open_sent = true;
                assert_eq!(open.priority.index(), m.class, "OPEN keeps its priority");
                if open.fin {
                    assert_eq!(open.total_len, None, "total_len omitted on a FIN OPEN");
                } else {
                    assert_eq!(open.total_len, m.total, "total_len on a non-FIN OPEN");
                }
                open.fin
            }
            Frame::Data(data) => {
                assert!(m.open_sent, "DATA before OPEN on stream {id}");
                assert!(!data.payload.is_empty(), "empty DATA on stream {id}");
                data.fin
            }
            Frame::End(_) => {
                assert!(m.open_sent, "END before OPEN on stream {id}");
                true
            }
            _ => panic!("unexpected frame {frame:?}"),
        };
        let payload = frame.payload();
        let len = payload.len() as u64;
        assert!(payload.len() <= self.chunk_len, "chunk above chunk_len");
        for (i, &byte) in payload.iter().enumerate() {
            assert_eq!(
                byte,
                pattern(id, m.generation, m.sent + i as u64),
                "stream {id}: body byte {} out of order",
                m.sent + i as u64
            );
        }
        m.sent += len;
        self.link_sent += len;
        assert!(m.sent <= m.granted, "stream {id} exceeded its credit");
        assert!(self.link_sent <= self.link_granted, "link credit exceeded");
        assert!(m.sent <= m.pushed, "stream {id} sent bytes never pushed");
        if fin {
            assert!(
                m.fin_pushed && m.sent == m.pushed,
                "stream {id} ended early"
            );
            self.messages.remove(&id);
            self.expected_sent.push_back(id);
        }
    }

    fn check_event(&mut self, event: SchedulerEvent) {
        match event {
            SchedulerEvent::Sent { stream } => {
                assert_eq!(
                    self.expected_sent.pop_front(),
                    Some(stream.0),
                    "Sent events: one per message, in order"
                );
            }
            SchedulerEvent::WantsBody { stream } => {
                assert!(
                    self.ever_streaming.contains(&stream.0),
                    "WantsBody for a message that never streamed"
                );
            }
        }
    }
}

fn stream_of(selector: u8) -> u64 {
    u64::from(selector % STREAM_IDS) + 1
}

fn poll_checked(scheduler: &mut Scheduler, model: &mut Model) -> bool {
    match scheduler.poll_transmit() {
        Some(frame) => {
            model.check_frame(&frame);
            true
        }
        None => {
            assert!(model.control.is_empty(), "control frame withheld");
            let link = model.link_available();
            for (id, m) in &model.messages {
                assert!(
                    !m.sendable(link),
                    "stream {id} is sendable but poll said None"
                );
            }
            false
        }
    }
}

fn apply(scheduler: &mut Scheduler, model: &mut Model, op: Op) {
    match op {
        Op::Enqueue { id, class, body } => {
            let id = stream_of(id);
            let class = usize::from(class) % Priority::COUNT;
            let mut head = Open::new(StreamId(id), MessageKind::OneWay, "r");
            head.priority = Priority::ALL[class];
            let generation = model.generations.get(&id).map_or(0, |g| g + 1);
            let (body, streaming, total, pushed) = match body {
                OpBody::Full(len) => {
                    let len = u64::from(len) % MAX_BODY;
                    let bytes = pattern_bytes(id, generation, 0, len);
                    (Body::Full(bytes), false, Some(len), len)
                }
                OpBody::Streaming(total) => {
                    let total = total.map(|t| u64::from(t) % MAX_BODY);
                    (Body::Streaming { total_len: total }, true, total, 0)
                }
            };
            let result = scheduler.enqueue(head, body);
            assert_eq!(
                result.is_err(),
                model.messages.contains_key(&id),
                "enqueue fails exactly on a queued id: {result:?}"
            );
            if result.is_ok() {
                model.generations.insert(id, generation);
                if streaming {
                    model.ever_streaming.insert(id);
                }
                model.messages.insert(
                    id,
                    Message {
                        class,
                        generation,
                        streaming,
                        total,
                        pushed,
                        fin_pushed: !streaming || total == Some(0),
                        sent: 0,
                        granted: model.initial.unwrap_or(0),
                        known: model.initial.is_some(),
                        open_sent: false,
                    },
                );
            }
        }
        Op::PushBody { id, len, fin } => {
            let id = stream_of(id);
            let len = u64::from(len) % MAX_BODY;
            let expected = model.messages.get(&id).and_then(|m| {
                if !m.streaming {
                    None
                } else if m.fin_pushed {
                    (len == 0).then_some((m.pushed, true))
                } else {
                    let pushed = m.pushed + len;
                    match m.total {
                        Some(t) if pushed > t || (fin && pushed != t) => None,
                        t => Some((pushed, fin || t == Some(pushed))),
                    }
                }
            });
            let (generation, from) = model
                .messages
                .get(&id)
                .map_or((0, 0), |m| (m.generation, m.pushed));
            let bytes = pattern_bytes(id, generation, from, len);
            let result = scheduler.push_body(StreamId(id), bytes, fin);
            assert_eq!(result.is_ok(), expected.is_some(), "push_body: {result:?}");
            if let (Some((pushed, fin_pushed)), Some(m)) = (expected, model.messages.get_mut(&id)) {
                m.pushed = pushed;
                m.fin_pushed = fin_pushed;
            }
        }
        Op::Cancel { id } => {
            let id = stream_of(id);
            let outcome = scheduler.cancel(StreamId(id));
            let expected = model.messages.remove(&id);
            assert_eq!(
                outcome.is_some(),
                expected.is_some(),
                "cancel of a queued id"
            );
            if let (Some(outcome), Some(m)) = (outcome, expected) {
                assert_eq!(outcome.open_sent, m.open_sent, "cancel: open_sent");
                assert_eq!(outcome.unsent_bytes, m.pushed - m.sent, "cancel: unsent");
            }
        }
        Op::AddCredit { id, amount } => {
            let id = u64::from(id % (STREAM_IDS + 1));
            let amount = if amount == u32::MAX {
                u64::MAX
            } else {
                u64::from(amount)
            };
            scheduler.add_credit(StreamId(id), amount);
            if id == 0 {
                model.link_granted = model.link_granted.saturating_add(amount);
            } else if let Some(m) = model.messages.get_mut(&id) {
                m.granted = m.granted.saturating_add(amount);
            }
        }
        Op::InitialCredit { amount } => {
            let amount = u64::from(amount);
            scheduler.set_initial_stream_credit(amount);
            model.initial = Some(amount);
            for m in model.messages.values_mut() {
                if !m.known {
                    m.known = true;
                    m.granted = m.granted.saturating_add(amount);
                }
            }
        }
        Op::ChunkLen { len } => {
            scheduler.set_chunk_len(usize::from(len));
            model.chunk_len = usize::from(len).max(1);
        }
        Op::Control => {
            scheduler.push_control(Frame::Ping(Ping {
                opaque: model.next_ping,
            }));
            model.control.push_back(model.next_ping);
            model.next_ping += 1;
        }
        Op::Poll { count } => {
            for _ in 0..=count % 16 {
                if !poll_checked(scheduler, model) {
                    break;
                }
            }
        }
        Op::Events => {
            while let Some(event) = scheduler.poll_event() {
                model.check_event(event);
            }
        }
    }
}

/// Applies `ops` to a fresh scheduler (chunk length 64), then completes every
/// message with ample credit and checks that it drains to idle.
pub(crate) fn check_ops(ops: &[Op]) {
    let config = SchedulerConfig {
        chunk_len: 64,
        ..SchedulerConfig::default()
    };
    let mut scheduler = Scheduler::new(config);
    let mut model = Model {
        messages: BTreeMap::new(),
        generations: BTreeMap::new(),
        ever_streaming: BTreeSet::new(),
        link_granted: 0,
        link_sent: 0,
        initial: None,
        chunk_len: config.chunk_len,
        control: VecDeque::new(),
        next_ping: 0,
        expected_sent: VecDeque::new(),
    };
    for &op in ops {
        apply(&mut scheduler, &mut model, op);
    }

    // Finish every body, give everyone room, and drain.
    let open: Vec<(u64, Option<u64>, u64, bool)> = model
        .messages
        .iter()
        .map(|(&id, m)| (id, m.total, m.pushed, m.fin_pushed))
        .collect();
    for (id, total, pushed, fin_pushed) in open {
        if !fin_pushed {
            let rest = total.map_or(0, |t| t - pushed);
            let len = u16::try_from(rest).unwrap_or(0);
            apply(
                &mut scheduler,
                &mut model,
                Op::PushBody {
                    id: (id - 1) as u8,
                    len,
                    fin: true,
                },
            );
        }
    }
    if model.initial.is_none() {
        apply(&mut scheduler, &mut model, Op::InitialCredit { amount: 0 });
    }
    let ample = u32::MAX - 1;
    apply(
        &mut scheduler,
        &mut model,
        Op::AddCredit {
            id: 0,
            amount: ample,
        },
    );
    let ids: Vec<u64> = model.messages.keys().copied().collect();
    for id in ids {
        apply(
            &mut scheduler,
            &mut model,
            Op::AddCredit {
                id: id as u8,
                amount: ample,
            },
        );
    }
    let remaining: u64 = model.messages.values().map(|m| m.pushed - m.sent).sum();
    let mut budget = remaining + 3 * model.messages.len() as u64 + model.control.len() as u64 + 1;
    while poll_checked(&mut scheduler, &mut model) {
        budget = budget
            .checked_sub(1)
            .unwrap_or_else(|| panic!("does not drain"));
    }
    assert!(model.messages.is_empty(), "messages left over");
    assert!(scheduler.is_idle(), "scheduler not idle after draining");
    apply(&mut scheduler, &mut model, Op::Events);
    assert!(model.expected_sent.is_empty(), "missing Sent events");
}
