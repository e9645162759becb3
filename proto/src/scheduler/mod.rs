//! The outbound scheduler: decides whose frame goes on the wire next.
//!
//! A plain data structure with a pull API. The link writer calls
//! [`Scheduler::poll_transmit`] exactly when the transport can take another
//! frame, so nothing queues deep ahead of the wire and a newly queued urgent
//! message leaves at the next chunk boundary. No clocks, no I/O, no async.
//!
//! ```text
//!  push_control ─► control FIFO ───────────────────────────────┐ always first
//!                                                              ▼
//!  enqueue     ┌ Urgent  free FIFO ─┬─ DRR ring ┐
//!  push_body ─►│ High    free FIFO ─┼─ DRR ring │─► stride: ready class ─► poll_transmit ─► Frame
//!  add_credit  │ Normal  free FIFO ─┼─ DRR ring │   with smallest pass
//!  cancel      └ Bulk    free FIFO ─┴─ DRR ring ┘   (ties: more urgent)
//!                                                          Sent, WantsBody ─► poll_event
//! ```
//!
//! Call order: feed input (`enqueue`, `push_body`, `push_control`, `add_credit`,
//! `cancel`) at any time; call `poll_transmit` whenever the transport can take a
//! frame, until it returns `None`; drain `poll_event` after polling.
//!
//! # Rules
//!
//! 1. **Control first.** Frames given to [`Scheduler::push_control`] (ACK, CREDIT,
//!    PING, PONG, CANCEL, GOAWAY, HELLO) leave before any message frame, FIFO.
//!    They consume no credit.
//! 2. **Message framing.** A message is an OPEN carrying the first chunk, then
//!    DATA chunks, FIN on the last. A [`Body::Full`] that fits one chunk is one
//!    OPEN with FIN: a small message is one frame. `total_len` is put on the
//!    OPEN only when the OPEN does not carry FIN (for a `Full` body, when it
//!    needs more than one frame). A zero-length body is one empty OPEN with FIN.
//!    A [`Body::Streaming`] message's OPEN leaves at the stream's first turn,
//!    carrying whatever bytes are queued by then (possibly none, so the peer can
//!    start routing before the body exists). If its last bytes left without FIN
//!    and `push_body(.., fin = true)` then brings no bytes, an END frame ends it.
//!    A streaming body that reaches its announced `total_len` is complete.
//! 3. **Credit.** A chunk's payload is `min(chunk_len, stream credit, link credit,
//!    bytes of the current buffer)`. Body bytes consume both the stream's and the
//!    link's credit; control frames and END consume none. An OPEN whose stream
//!    has no bytes or no stream credit goes out empty, and an END needs no
//!    credit, so a zero initial window cannot deadlock the first frame; an OPEN
//!    with bytes and stream credit waits for link credit like any chunk. Streams
//!    wait for
//!    [`Scheduler::set_initial_stream_credit`] (the peer's HELLO) before their
//!    first frame; link credit starts at 0 until
//!    `add_credit(Credit::LINK, n)`. A blocked stream leaves its queue and
//!    rejoins at the back of its class when it can send again.
//! 4. **Silly windows.** A chunk is only ever shorter than `chunk_len` because
//!    the credit or the current buffer is shorter: the scheduler never splits
//!    below what credit allows and never holds back bytes it has credit for.
//!    So a small chunk happens at most once per CREDIT grant (the grant's
//!    remainder) or at the end of a pushed buffer. Holding back small
//!    credit-limited chunks is deliberately not done: a sender that waits for a
//!    bigger window can deadlock against a receiver that batches its grants. It
//!    is the receiver's job to grant in useful steps (at least a chunk or half
//!    its window), and the producer's to push buffers of at least a chunk.
//! 5. **Classes: stride scheduling.** Each of the [`Priority::COUNT`] classes has
//!    a weight `w` ([`SchedulerConfig::class_weights`]) and a `pass`. A class
//!    is ready when it has a frame it may send now. `poll_transmit` picks the
//!    ready class with the smallest pass (ties to the more urgent class) and
//!    adds `(payload + 8) * 2^16 / w` to its pass; `vtime` becomes the picked
//!    class's pass. A class that becomes ready again gets
//!    `pass = max(pass, vtime)`: no credit for idle time, debt is kept. So a
//!    newly queued urgent message whose class has been idle leaves at the very
//!    next `poll_transmit` after the control frames, even in the middle of a
//!    bulk transfer. The one exception: a class keeps the debt of its own last
//!    frame (that frame's cost over its weight), so an urgent class that just
//!    sent a big frame first lets others send frames worth that much pass
//!    (test `urgent_class_repays_the_debt_of_its_last_frame_first`).
//! 6. **Streams of a class: deficit round robin**, quantum `chunk_len`. The
//!    stream at the front of the class's ring adds one quantum to its deficit
//!    when its turn begins (carrying at most one quantum over), sends chunks
//!    while their length fits its deficit, then goes to the back. Streams
//!    therefore share payload bytes equally even when chunk sizes differ (short
//!    final chunks, credit-limited chunks); every turn sends at least one chunk.
//!    Frames needing no credit (OPEN without bytes, END) wait in a separate FIFO
//!    per class that goes before the ring: they are heads only.
//! 7. **Cancel** drops everything unsent for the stream and says whether its
//!    OPEN already left (then the caller queues a CANCEL frame itself).
//! 8. **Memory.** The scheduler holds only what it was given: bodies are the
//!    caller's `Bytes`, chunked with `split_to` (never copied); a chunk never
//!    spans two pushed buffers. A stream's state is dropped when its last frame
//!    is handed out; later CREDITs for it are ignored.
//! 9. **Cost.** `poll_transmit` is O(log n) in the number of queued messages (a
//!    few map lookups; queue work is O(1) amortized, stale entries left by
//!    `cancel` are skipped once) and allocates nothing but the frame (queue
//!    entries are moved, not allocated, except when a queue grows).
//!
//! # Fairness bound
//!
//! Let stream `s` of class `c` be continuously backlogged with ample credit,
//! `n_c` streams in `c`'s ring, quantum `q = chunk_len`, and every frame full
//! (`q` payload bytes) except each message's last; frame cost is `payload + 8`.
//! Then each DRR turn is exactly one frame, and between two consecutive frames of
//! `s`:
//!
//! - class `c` sends at most `n_c - 1` frames of its other streams, so `c`'s pass
//!   advances by at most `n_c * (q + 8) * 2^16 / w_c` from `s`'s frame to its next;
//! - every frame another class `o` sends in between is picked at a pass within
//!   that advance (vtime never decreases, and `o` only wins with a pass not above
//!   `c`'s), so `o` sends a total cost of at most `n_c * (q + 8) * w_o / w_c +
//!   (q + 8)`, i.e. at most `floor(n_c * w_o / w_c) + 1` full frames.
//!
//! In frames: `s` waits at most `n_c - 1 + Σ_o (floor(n_c * w_o / w_c) + 1)`
//! frames. With the default weights `[16, 8, 4, 2]` and one stream per class, a
//! Bulk stream waits at most 8 + 4 + 2 + 3 = 17 frames, an Urgent one at most 3.
//! For any two continuously backlogged classes `i`, `j`, the cost they sent
//! satisfies `|C_i / w_i - C_j / w_j| <= (q + 8) / min(w_i, w_j)` (+1 for
//! rounding): byte shares follow the weights within one frame.
//!
//! The same argument bounds the wait for a stream's first frame: with `z_c`
//! empty messages and `p` non-empty ones queued ahead of `s` in class `c`,
//! `c`'s pass grows by at most `(8 z_c + p (q + 8)) * 2^16 / w_c` before it, and
//! each other class sends at most that times `w_o / 2^16` plus one frame.
//! Without the full-chunk assumption (credit-limited chunks, small pushed
//! buffers) a DRR turn still sends fewer than `2q` payload bytes (plus 8 per
//! frame), and the same bounds hold with each turn's cost in place of `q + 8`.
//! Messages queued during the wait add their own turns. The proptests
//! `fairness_bound_and_reassembly` (both waits, all frames, random weights and
//! sizes) and `class_shares_follow_weights` check these bounds.

#[cfg(any(test, feature = "test-util"))]
mod check;
mod class;
mod stream;
#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "test-util"))]
pub use check::fuzz_ops;

use crate::config::{DEFAULT_STREAM_CHUNK_LEN, MAX_QUEUED_ANSWERS, MAX_QUEUED_CANCELS};
use crate::error::ProtocolError;
use crate::frame::{Cancel, Credit, Frame, Open, Pong};
use crate::ids::{Priority, StreamId};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use bytes::Bytes;
use class::{ClassQueues, Stride, HEAD_COST};
use stream::{OutStream, Place};

/// Tuning of a [`Scheduler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Largest chunk payload, in bytes (0 counts as 1). The runtime sizes it from
    /// the link speed ([`crate::config::chunk_len_for_rate`]); it is also the DRR
    /// quantum.
    pub chunk_len: usize,
    /// Stride weight of each class, indexed by [`Priority::index`] (0 counts as 1).
    /// Class `i` gets `w_i / Σ w` of the link while all classes are backlogged.
    pub class_weights: [u32; Priority::COUNT],
    /// A streaming message asks for more body ([`SchedulerEvent::WantsBody`]) when
    /// its queued bytes fall to this many chunks or fewer.
    pub low_water_chunks: usize,
}

impl Default for SchedulerConfig {
    /// 64 KiB chunks, weights `[16, 8, 4, 2]` (Urgent..Bulk), low water 2 chunks.
    fn default() -> Self {
        SchedulerConfig {
            chunk_len: DEFAULT_STREAM_CHUNK_LEN,
            class_weights: [16, 8, 4, 2],
            low_water_chunks: 2,
        }
    }
}

/// The body of an outbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// The whole body, known up front; chunked without copying.
    Full(Bytes),
    /// A body handed in piece by piece with [`Scheduler::push_body`].
    Streaming {
        /// The whole length, if known (announced on the OPEN; pushing more is an
        /// error, and reaching it completes the body).
        total_len: Option<u64>,
    },
}

impl Body {
    /// The body's whole length, if known up front.
    pub fn total_len(&self) -> Option<u64> {
        match self {
            Body::Full(bytes) => Some(bytes.len() as u64),
            Body::Streaming { total_len } => *total_len,
        }
    }
}

/// Something the caller should know, drained with [`Scheduler::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerEvent {
    /// The message's last frame was handed out by `poll_transmit`; the scheduler
    /// has forgotten the stream.
    Sent {
        /// The stream.
        stream: StreamId,
    },
    /// A streaming message's queued bytes are at or below the low-water mark:
    /// push more with [`Scheduler::push_body`]. Raised at most once per
    /// `push_body` call (and once right after `enqueue`).
    WantsBody {
        /// The stream.
        stream: StreamId,
    },
}

/// What [`Scheduler::cancel`] dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CancelOutcome {
    /// The OPEN was already handed out: the peer knows the stream, so the caller
    /// should queue a CANCEL frame ([`Scheduler::push_control`]).
    pub open_sent: bool,
    /// Body bytes dropped without being sent.
    pub unsent_bytes: u64,
}

/// The pull-driven outbound scheduler of one link. See the [module docs](self).
///
/// ```
/// use bytes::Bytes;
/// use netcore_proto::frame::{Credit, Frame, Open};
/// use netcore_proto::scheduler::{Body, Scheduler, SchedulerConfig, SchedulerEvent};
/// use netcore_proto::{MessageKind, Priority, StreamId};
///
/// let mut s = Scheduler::new(SchedulerConfig { chunk_len: 115, ..Default::default() });
/// s.set_initial_stream_credit(64 * 1024); // from the peer's HELLO
/// s.add_credit(Credit::LINK, 256 * 1024);
///
/// let log = Open::new(StreamId(1), MessageKind::OneWay, "log");
/// s.enqueue(log, Body::Full(Bytes::from(vec![7u8; 10_000])))?;
/// assert!(matches!(s.poll_transmit(), Some(Frame::Open(o)) if o.total_len == Some(10_000)));
///
/// // An urgent message leaves at the next chunk boundary, as one frame.
/// let mut alarm = Open::new(StreamId(3), MessageKind::OneWay, "alarm");
/// alarm.priority = Priority::Urgent;
/// s.enqueue(alarm, Body::Full(Bytes::from_static(b"fire")))?;
/// assert!(matches!(s.poll_transmit(), Some(Frame::Open(o)) if o.fin && &o.payload[..] == b"fire"));
/// assert_eq!(s.poll_event(), Some(SchedulerEvent::Sent { stream: StreamId(3) }));
///
/// // The rest of the log follows in 115-byte DATA chunks.
/// while let Some(frame) = s.poll_transmit() {
///     assert!(matches!(frame, Frame::Data(d) if d.payload.len() <= 115));
/// }
/// assert!(s.is_idle());
/// # Ok::<(), netcore_proto::ProtocolError>(())
/// ```
#[derive(Debug)]
pub struct Scheduler {
    chunk_len: usize,
    low_water_chunks: usize,
    control: VecDeque<Frame>,
    /// The value the PONG queued in `control` answers: a peer that PINGs faster
    /// than we send gets one PONG, for its latest PING, not one per PING (a
    /// flood of PINGs from a peer that does not read must not grow the queue).
    queued_pong: Option<u64>,
    /// The increment of each CREDIT queued in `control`, by stream: a later grant
    /// for the same stream adds to it instead of queueing a second frame.
    queued_credit: BTreeMap<StreamId, u64>,
    /// CANCEL frames in `control`.
    queued_cancels: usize,
    /// Set when a control queue overflowed ([`Scheduler::backlog`]).
    backlog: Option<ProtocolError>,
    /// Boxed so the tree's nodes stay small: nodes holding the streams inline
    /// were large allocations, and every message's insert and removal splitting
    /// and merging them showed up as `malloc_consolidate` in RPC profiles.
    streams: BTreeMap<StreamId, Box<OutStream>>,
    classes: [ClassQueues; Priority::COUNT],
    stride: Stride,
    link_credit: u64,
    initial_stream_credit: Option<u64>,
    events: VecDeque<SchedulerEvent>,
    next_serial: u64,
    /// Unsent body bytes of the queued messages, by class (index: [`Priority::index`]).
    queued_bytes: [u64; Priority::COUNT],
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler::new(SchedulerConfig::default())
    }
}

/// Counts `n` more unsent body bytes in `class`.
fn add_queued(queued: &mut [u64; Priority::COUNT], class: usize, n: u64) {
    if let Some(q) = queued.get_mut(class) {
        *q = q.saturating_add(n);
    }
}

/// Counts `n` fewer unsent body bytes in `class` (sent or dropped).
fn sub_queued(queued: &mut [u64; Priority::COUNT], class: usize, n: u64) {
    if let Some(q) = queued.get_mut(class) {
        *q = q.saturating_sub(n);
    }
}

/// Puts a stream that is in no queue into the queue its next frame needs.
fn place(classes: &mut [ClassQueues; Priority::COUNT], id: StreamId, st: &mut OutStream) {
    if st.place != Place::Idle {
        return;
    }
    let Some(queues) = classes.get_mut(st.class) else {
        return;
    };
    match st.need() {
        Place::Idle => {}
        Place::Free => {
            queues.free.push_back((id, st.serial));
            queues.live_free += 1;
            st.place = Place::Free;
        }
        Place::Ring => {
            queues.ring.push_back((id, st.serial));
            queues.live_ring += 1;
            st.place = Place::Ring;
            st.deficit = 0;
            st.in_turn = false;
        }
    }
}

impl Scheduler {
    /// An empty scheduler. Streams send nothing until
    /// [`Scheduler::set_initial_stream_credit`], and no body bytes until link
    /// credit is granted with `add_credit(Credit::LINK, n)`.
    pub fn new(config: SchedulerConfig) -> Self {
        Scheduler {
            chunk_len: config.chunk_len.max(1),
            low_water_chunks: config.low_water_chunks,
            control: VecDeque::new(),
            queued_pong: None,
            queued_credit: BTreeMap::new(),
            queued_cancels: 0,
            backlog: None,
            streams: BTreeMap::new(),
            classes: Default::default(),
            stride: Stride::new(config.class_weights),
            link_credit: 0,
            initial_stream_credit: None,
            events: VecDeque::new(),
            next_serial: 0,
            queued_bytes: [0; Priority::COUNT],
        }
    }

    /// Sets the chunk payload length (0 counts as 1); applies to chunks cut from
    /// now on, including those of messages already under way.
    pub fn set_chunk_len(&mut self, len: usize) {
        self.chunk_len = len.max(1);
    }

    /// Queues a control frame: it leaves before any message frame, in FIFO order,
    /// and consumes no credit. Meant for ACK, CREDIT, PING, PONG, CANCEL, GOAWAY
    /// and HELLO; a message frame given here bypasses scheduling and credit.
    ///
    /// What a peer can make this side queue is bounded:
    /// - PONGs coalesce: while one is queued, a newer one replaces its value (the
    ///   peer's latest PING is the one it waits for), so at most one is queued;
    /// - CREDITs coalesce per stream: a grant for a stream (or the link) that has
    ///   one queued adds to its increment, so at most one per stream is queued;
    /// - at most [`MAX_QUEUED_CANCELS`] CANCELs and [`MAX_QUEUED_ANSWERS`] other
    ///   frames wait; one more is dropped and [`Scheduler::backlog`] reports
    ///   [`ProtocolError::Backlog`] (the link must fail). HELLO and GOAWAY always
    ///   queue.
    pub fn push_control(&mut self, frame: Frame) {
        match &frame {
            Frame::Pong(Pong { opaque }) => {
                if self.queued_pong.replace(*opaque).is_some() {
                    return;
                }
            }
            Frame::Credit(Credit { stream, increment }) => {
                if let Some(queued) = self.queued_credit.get_mut(stream) {
                    *queued = queued.saturating_add(*increment);
                    return;
                }
                if self.answers_full() {
                    return;
                }
                self.queued_credit.insert(*stream, *increment);
            }
            Frame::Cancel(_) => {
                if self.queued_cancels >= MAX_QUEUED_CANCELS {
                    self.overflow("CANCEL frames", MAX_QUEUED_CANCELS);
                    return;
                }
                self.queued_cancels += 1;
            }
            Frame::Hello(_) | Frame::GoAway(_) => {}
            _ => {
                if self.answers_full() {
                    return;
                }
            }
        }
        self.control.push_back(frame);
    }

    /// True (and the backlog recorded) when no other control frame may queue.
    fn answers_full(&mut self) -> bool {
        let answers = self.control.len().saturating_sub(self.queued_cancels);
        if answers < MAX_QUEUED_ANSWERS {
            return false;
        }
        self.overflow("control frames", MAX_QUEUED_ANSWERS);
        true
    }

    fn overflow(&mut self, what: &'static str, max: usize) {
        if self.backlog.is_none() {
            self.backlog = Some(ProtocolError::Backlog { what, max });
        }
    }

    /// Set once a control frame was dropped because its queue was full: the peer
    /// provokes control frames faster than it reads them, and the link must fail
    /// with this error (GOAWAY `FlowControl`).
    pub fn backlog(&self) -> Option<&ProtocolError> {
        self.backlog.as_ref()
    }

    /// Queues a message. The scheduler fills in `head.payload`, `head.fin` and
    /// `head.total_len` (whatever the caller put there is replaced).
    ///
    /// Errors (nothing is queued): the stream id is 0 or already queued
    /// ([`ProtocolError::InvalidState`]), or the head breaks a wire limit
    /// ([`ProtocolError::Decode`], see [`Open::validate`]).
    pub fn enqueue(&mut self, mut head: Open, body: Body) -> Result<(), ProtocolError> {
        let id = head.stream;
        if id == Credit::LINK {
            return Err(ProtocolError::InvalidState {
                reason: "enqueue: stream id 0 is reserved for the link",
            });
        }
        if self.streams.contains_key(&id) {
            return Err(ProtocolError::InvalidState {
                reason: "enqueue: stream id already queued",
            });
        }
        head.validate()?;
        head.payload = Bytes::new();
        head.fin = false;
        head.total_len = None;
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let mut st = match body {
            Body::Full(bytes) => {
                let mut st = OutStream::new(serial, head, false, Some(bytes.len() as u64));
                st.push(bytes);
                st.fin_queued = true;
                st
            }
            Body::Streaming { total_len } => {
                let mut st = OutStream::new(serial, head, true, total_len);
                st.fin_queued = total_len == Some(0);
                if !st.fin_queued {
                    st.asked = true;
                    self.events
                        .push_back(SchedulerEvent::WantsBody { stream: id });
                }
                st
            }
        };
        if let Some(initial) = self.initial_stream_credit {
            st.credit = initial;
            st.credit_known = true;
        }
        add_queued(&mut self.queued_bytes, st.class, st.queued);
        place(&mut self.classes, id, &mut st);
        self.streams.insert(id, Box::new(st));
        Ok(())
    }

    /// Appends bytes to a streaming message; `fin` says they are the last.
    /// Empty `bytes` with `fin` ends the body (an END frame if its last bytes
    /// already left). An empty push after the body is complete is a no-op.
    ///
    /// Errors ([`ProtocolError::InvalidState`], nothing changes): unknown stream,
    /// a [`Body::Full`] message, bytes after the body was complete, more bytes
    /// than the announced `total_len`, or `fin` short of it.
    pub fn push_body(
        &mut self,
        stream: StreamId,
        bytes: Bytes,
        fin: bool,
    ) -> Result<(), ProtocolError> {
        let invalid = |reason| Err(ProtocolError::InvalidState { reason });
        let Some(st) = self.streams.get_mut(&stream) else {
            return invalid("push_body: unknown stream");
        };
        if !st.streaming {
            return invalid("push_body: the message has a full body");
        }
        if st.fin_queued {
            return if bytes.is_empty() {
                Ok(())
            } else {
                invalid("push_body: the body is already complete")
            };
        }
        let pushed = st.pushed.saturating_add(bytes.len() as u64);
        if let Some(total) = st.total_len {
            if pushed > total {
                return invalid("push_body: more bytes than the announced total_len");
            }
            if fin && pushed != total {
                return invalid("push_body: fin before the announced total_len");
            }
        }
        add_queued(&mut self.queued_bytes, st.class, bytes.len() as u64);
        st.push(bytes);
        st.fin_queued = fin || st.total_len == Some(pushed);
        st.asked = false;
        place(&mut self.classes, stream, st);
        Ok(())
    }

    /// Unsent body bytes of a queued message, `None` if the stream is unknown.
    pub fn queued_body_bytes(&self, stream: StreamId) -> Option<u64> {
        self.streams.get(&stream).map(|st| st.queued)
    }

    /// Drops everything unsent of a message and forgets it (and its pending
    /// `WantsBody` events). `None` if the stream is unknown (never queued, already
    /// sent completely, or already canceled).
    pub fn cancel(&mut self, stream: StreamId) -> Option<CancelOutcome> {
        let st = self.streams.remove(&stream)?;
        sub_queued(&mut self.queued_bytes, st.class, st.queued);
        if let Some(queues) = self.classes.get_mut(st.class) {
            // The queue entry stays behind as a stale entry, skipped when reached.
            match st.place {
                Place::Idle => {}
                Place::Free => queues.live_free = queues.live_free.saturating_sub(1),
                Place::Ring => queues.live_ring = queues.live_ring.saturating_sub(1),
            }
            let streams = &self.streams;
            let live = |&(id, serial): &(StreamId, u64), place| {
                streams
                    .get(&id)
                    .is_some_and(|s| s.serial == serial && s.place == place)
            };
            // Keep stale entries at most about half of a queue: amortized O(1).
            if queues.free.len() > 2 * queues.live_free + 8 {
                queues.free.retain(|e| live(e, Place::Free));
            }
            if queues.ring.len() > 2 * queues.live_ring + 8 {
                queues.ring.retain(|e| live(e, Place::Ring));
            }
        }
        self.events
            .retain(|e| *e != SchedulerEvent::WantsBody { stream });
        Some(CancelOutcome {
            open_sent: st.head.is_none(),
            unsent_bytes: st.queued,
        })
    }

    /// Sets the peer's initial per-stream window (from its HELLO). Applies to
    /// streams queued later and to queued ones that have not received it yet,
    /// which may start sending now.
    pub fn set_initial_stream_credit(&mut self, n: u64) {
        self.initial_stream_credit = Some(n);
        for (&id, st) in self.streams.iter_mut() {
            if !st.credit_known {
                st.credit_known = true;
                st.credit = st.credit.saturating_add(n);
                place(&mut self.classes, id, st);
            }
        }
    }

    /// Adds peer-granted credit: to the link window for [`Credit::LINK`]
    /// (`StreamId(0)`), else to the stream's window. Unknown or finished streams
    /// are ignored. Saturates instead of overflowing.
    pub fn add_credit(&mut self, stream: StreamId, n: u64) {
        if stream == Credit::LINK {
            self.link_credit = self.link_credit.saturating_add(n);
        } else if let Some(st) = self.streams.get_mut(&stream) {
            st.credit = st.credit.saturating_add(n);
            place(&mut self.classes, stream, st);
        }
    }

    /// The next frame to put on the wire, or `None` if nothing may be sent now
    /// (nothing queued, or everything waits for credit or body bytes).
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        self.poll_classes(Priority::COUNT)
    }

    /// Like [`Scheduler::poll_transmit`], but of the message frames only the
    /// Urgent class's (with `urgent` false: control frames only): what may leave
    /// while pacing holds the other classes back.
    pub fn poll_urgent(&mut self, urgent: bool) -> Option<Frame> {
        self.poll_classes(usize::from(urgent))
    }

    /// Control frames, then message frames of the `classes` most urgent classes.
    fn poll_classes(&mut self, classes: usize) -> Option<Frame> {
        if let Some(frame) = self.poll_control() {
            return Some(frame);
        }
        let link_open = self.link_credit > 0;
        let ready = core::array::from_fn(|c| c < classes && self.classes[c].ready(link_open));
        let class = self.stride.pick(ready)?;
        let frame = self.poll_free(class).or_else(|| {
            if link_open {
                self.poll_ring(class)
            } else {
                None
            }
        })?;
        self.stride
            .charge(class, (frame.body_len() as u64).saturating_add(HEAD_COST));
        Some(frame)
    }

    /// The next control frame, if any, and nothing else: all a failed link still
    /// sends (what it queued before its GOAWAY, then the GOAWAY).
    pub fn poll_control(&mut self) -> Option<Frame> {
        let frame = self.control.pop_front()?;
        match frame {
            Frame::Pong(_) => {
                if let Some(opaque) = self.queued_pong.take() {
                    return Some(Frame::Pong(Pong { opaque }));
                }
            }
            Frame::Credit(Credit { stream, increment }) => {
                let increment = self.queued_credit.remove(&stream).unwrap_or(increment);
                return Some(Frame::Credit(Credit { stream, increment }));
            }
            Frame::Cancel(Cancel { .. }) => {
                self.queued_cancels = self.queued_cancels.saturating_sub(1);
            }
            _ => {}
        }
        Some(frame)
    }

    /// The next event, if any. Drain after polling frames.
    pub fn poll_event(&mut self) -> Option<SchedulerEvent> {
        self.events.pop_front()
    }

    /// Unsent body bytes of the queued messages, by priority class (index:
    /// [`Priority::index`]). Kept as messages are queued and cut, so reading it
    /// costs nothing.
    pub fn queued_bytes(&self) -> [u64; Priority::COUNT] {
        self.queued_bytes
    }

    /// Messages queued and not completely sent (their last frame has not left).
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Nothing queued at all: no control frame, no message (pending events are
    /// not counted).
    pub fn is_idle(&self) -> bool {
        self.control.is_empty() && self.streams.is_empty()
    }

    /// Serves the class's free queue: OPENs without sendable bytes and ENDs.
    fn poll_free(&mut self, class: usize) -> Option<Frame> {
        loop {
            let queues = self.classes.get_mut(class)?;
            if queues.live_free == 0 {
                return None;
            }
            let (id, serial) = queues.free.pop_front()?;
            let Some(st) = self
                .streams
                .get_mut(&id)
                .filter(|st| st.serial == serial && st.place == Place::Free)
            else {
                continue; // stale: left behind by a cancel
            };
            queues.live_free -= 1;
            st.place = Place::Idle;
            // Credit may have arrived since it was queued: carry bytes if allowed.
            let len = st.sendable_len(self.chunk_len, self.link_credit);
            let frame = self.emit(id, len);
            if let Some(st) = self.streams.get_mut(&id) {
                place(&mut self.classes, id, st);
            }
            if frame.is_some() {
                return frame;
            }
        }
    }

    /// Serves the class's DRR ring; the link window is open.
    fn poll_ring(&mut self, class: usize) -> Option<Frame> {
        let quantum = self.chunk_len as u64;
        loop {
            let queues = self.classes.get_mut(class)?;
            if queues.live_ring == 0 {
                return None;
            }
            let &(id, serial) = queues.ring.front()?;
            let Some(st) = self
                .streams
                .get_mut(&id)
                .filter(|st| st.serial == serial && st.place == Place::Ring)
            else {
                queues.ring.pop_front(); // stale: left behind by a cancel
                continue;
            };
            let len = st.sendable_len(self.chunk_len, self.link_credit);
            if len == 0 {
                // Not sendable after all (defensive): wait for the next credit or push.
                queues.ring.pop_front();
                queues.live_ring -= 1;
                st.place = Place::Idle;
                continue;
            }
            if !st.in_turn {
                st.in_turn = true;
                st.deficit = st.deficit.min(quantum).saturating_add(quantum);
            }
            let len64 = len as u64;
            if len64 > st.deficit {
                // Turn over: to the back. The next turn starts with at least one
                // quantum >= len, so this loop rotates at most once per live entry.
                st.in_turn = false;
                queues.ring.rotate_left(1);
                continue;
            }
            st.deficit -= len64;
            let frame = self.emit(id, len);
            // A stream still backlogged keeps its place at the front (and its turn);
            // one that finished or blocked leaves the ring.
            let backlogged = self
                .streams
                .get(&id)
                .is_some_and(|st| st.need() == Place::Ring);
            if !backlogged {
                if let Some(queues) = self.classes.get_mut(class) {
                    queues.ring.pop_front();
                    queues.live_ring = queues.live_ring.saturating_sub(1);
                }
                if let Some(st) = self.streams.get_mut(&id) {
                    st.place = Place::Idle;
                    st.deficit = 0;
                    st.in_turn = false;
                    place(&mut self.classes, id, st);
                }
            }
            return frame;
        }
    }

    /// Cuts the next frame of stream `id` with `len` payload bytes, charges the
    /// link window, forgets a finished stream and raises events. Does not touch
    /// the class queues.
    fn emit(&mut self, id: StreamId, len: usize) -> Option<Frame> {
        let st = self.streams.get_mut(&id)?;
        let (frame, last) = st.next_frame(id, len)?;
        sub_queued(&mut self.queued_bytes, st.class, frame.body_len() as u64);
        let low_water = self.chunk_len.saturating_mul(self.low_water_chunks) as u64;
        if !last && st.streaming && !st.fin_queued && !st.asked && st.queued <= low_water {
            st.asked = true;
            self.events
                .push_back(SchedulerEvent::WantsBody { stream: id });
        }
        self.link_credit = self.link_credit.saturating_sub(frame.body_len() as u64);
        if last {
            self.streams.remove(&id);
            self.events.push_back(SchedulerEvent::Sent { stream: id });
        }
        Some(frame)
    }
}
