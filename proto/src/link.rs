//! One link's whole protocol state: handshake, stream ids, outbound scheduling,
//! inbound reassembly, flow control, cancellation and shutdown.
//!
//! [`Link`] is driven like quinn-proto's connection, with one vocabulary:
//!
//! 1. Inputs: [`Link::handle_input`] with bytes read from the transport, and user
//!    calls ([`Link::request`], [`Link::one_way`], [`Link::respond`], [`Link::cancel`],
//!    [`Link::push_body`], [`Link::release`], [`Link::go_away`], [`Link::ping`]).
//! 2. Outputs, drained after every input: [`Link::poll_transmit`] (call it whenever
//!    the transport can take more bytes, until it returns 0) and [`Link::poll_event`].
//!
//! ```text
//!            request/one_way/respond ─► Scheduler ─poll_transmit─► framing ─► bytes out
//! bytes in ─► framing ─► Envelope::decode ─► dispatch ─► Reassembly ─► LinkEvent::Message
//!                                              │  CANCEL, CREDIT, PING ─► Scheduler (control)
//! ```
//!
//! Stream ids: each side allocates from its [`Parity`], decided by the HELLO nonces
//! (larger nonce → odd). Requests and one-way messages use the sender's parity; an
//! answer travels on its request's id, so its parity is the requester's.

use crate::config::{Limits, DEFAULT_MAX_FRAME_LEN, MIN_MAX_FRAME_LEN};
use crate::error::{ErrorCode, ProtocolError};
use crate::frame::{
    self, Cancel, Credit, Envelope, Frame, GoAway, Header, Hello, Open, Ping, Pong,
};
use crate::framing::{Framer, Framing, FramingKind, FramingStats};
use crate::ids::{MessageKind, Parity, Priority, StreamId};
use crate::reassembly::{InboundEvent, MessageHead, Reassembly, ReassemblyConfig, SinkFactory};
use crate::scheduler::{Body, Scheduler, SchedulerConfig, SchedulerEvent};
use crate::time::Instant;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

/// How a link is set up. The runtime fills `nonce` from a random source.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Serial (COBS + CRC-32C) or stream (length-prefixed) framing.
    pub framing: FramingKind,
    /// Largest frame this side accepts.
    pub max_frame_len: usize,
    /// Chunk payload size for outbound messages (see [`crate::config::chunk_len_for_rate`]).
    pub chunk_len: usize,
    /// Per-stream receive window granted to the peer.
    pub stream_window: u64,
    /// Link-wide receive window granted to the peer.
    pub link_window: u64,
    /// Reassembly limits.
    pub limits: Limits,
    /// Weights of the four priority classes, most urgent first.
    pub class_weights: [u32; Priority::COUNT],
    /// Random value for the parity decision; must differ from the peer's.
    pub nonce: u64,
}

impl LinkConfig {
    /// A serial or radio link at `baud` (8N1): COBS framing, chunks sized so one
    /// takes about 10 ms on the wire.
    pub fn serial(baud: u32, nonce: u64) -> LinkConfig {
        let mut config = LinkConfig::new(FramingKind::Serial, nonce);
        config.chunk_len =
            crate::config::chunk_len_for_rate(crate::config::serial_bytes_per_sec(baud), 10);
        config
    }

    /// A reliable stream (TCP, Unix socket): length framing, 64 KiB chunks.
    pub fn stream(nonce: u64) -> LinkConfig {
        LinkConfig::new(FramingKind::Stream, nonce)
    }

    /// Defaults for a framing, with the given nonce.
    pub fn new(framing: FramingKind, nonce: u64) -> LinkConfig {
        let scheduler = SchedulerConfig::default();
        LinkConfig {
            framing,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            chunk_len: scheduler.chunk_len,
            stream_window: crate::config::DEFAULT_STREAM_WINDOW,
            link_window: crate::config::DEFAULT_LINK_WINDOW,
            limits: Limits::default(),
            class_weights: scheduler.class_weights,
            nonce,
        }
    }
}

/// An outbound message's application part.
#[derive(Clone, Debug, Default)]
pub struct Message {
    /// Route (ignored for answers).
    pub route: String,
    /// Scheduling class.
    pub priority: Priority,
    /// Application headers.
    pub headers: Vec<Header>,
    /// The body, or `None` for a body streamed later with [`Link::push_body`].
    pub body: Option<Bytes>,
    /// Total length of a streamed body, when known.
    pub streamed_len: Option<u64>,
}

impl Message {
    /// A message with a complete body and default priority.
    pub fn new(route: impl Into<String>, body: impl Into<Bytes>) -> Message {
        Message {
            route: route.into(),
            body: Some(body.into()),
            ..Message::default()
        }
    }

    /// Sets the priority.
    pub fn with_priority(mut self, priority: Priority) -> Message {
        self.priority = priority;
        self
    }

    fn into_parts(self, stream: StreamId, kind: MessageKind) -> (Open, Body) {
        let mut open = Open::new(stream, kind, self.route);
        open.priority = self.priority;
        open.headers = self.headers;
        let body = match self.body {
            Some(bytes) => Body::Full(bytes),
            None => Body::Streaming {
                total_len: self.streamed_len,
            },
        };
        (open, body)
    }
}

/// What a link reports to its runtime.
#[derive(Debug)]
#[non_exhaustive]
pub enum LinkEvent {
    /// Handshake done: streams may be opened.
    Connected {
        /// The id half this side allocates from.
        parity: Parity,
        /// The peer's HELLO.
        peer: Hello,
    },
    /// A complete inbound message (request, one-way, response or error response).
    Message {
        /// Route, kind, headers.
        head: MessageHead,
        /// The whole body.
        body: Bytes,
    },
    /// An inbound message is being written to a sink; it ends with `StreamFinished`.
    Streaming {
        /// Route, kind, headers.
        head: MessageHead,
    },
    /// A sink message completed.
    StreamFinished {
        /// The stream.
        stream: StreamId,
        /// Body bytes written.
        len: u64,
    },
    /// The peer canceled or refused a stream (ours or theirs).
    Canceled {
        /// The stream.
        stream: StreamId,
        /// Why.
        code: ErrorCode,
    },
    /// This side refused an inbound stream (a limit or a sink failure); the peer was told.
    Refused {
        /// The stream.
        stream: StreamId,
        /// The reason.
        error: ProtocolError,
    },
    /// The last frame of an outbound message was handed to the framing.
    Sent {
        /// The stream.
        stream: StreamId,
    },
    /// A streamed outbound body's queue is low: push more with [`Link::push_body`].
    WantsBody {
        /// The stream.
        stream: StreamId,
    },
    /// Answer to [`Link::ping`].
    Pong {
        /// The value sent.
        opaque: u64,
    },
    /// The peer is shutting down.
    GoAway {
        /// Highest stream of ours it will still process.
        last_stream: StreamId,
        /// Why.
        code: ErrorCode,
        /// Detail.
        reason: String,
    },
    /// The serial framing dropped a damaged frame (counted in [`LinkStats`]).
    FrameDropped {
        /// What was wrong with it.
        error: crate::error::FramingError,
    },
    /// The link failed fatally; a GOAWAY was queued. No further input is processed.
    Failed {
        /// Why.
        error: ProtocolError,
    },
}

/// Counters of one link.
#[derive(Clone, Debug, Default)]
pub struct LinkStats {
    /// Frames handed to the framing.
    pub frames_out: u64,
    /// Wire bytes produced.
    pub bytes_out: u64,
    /// Frames decoded.
    pub frames_in: u64,
    /// Wire bytes consumed.
    pub bytes_in: u64,
    /// The framing decoder's counters (drops by reason).
    pub framing: FramingStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Handshaking,
    Connected,
    /// GOAWAY sent or received: no new streams.
    Closing,
    /// Fatal error: nothing more is read.
    Failed,
}

/// Outbound progress of one message.
#[derive(Clone, Copy, Debug)]
struct Outbound {
    sent: u64,
    total: Option<u64>,
}

/// Longest list of recently closed peer streams whose in-flight frames are ignored.
const CLOSED_MEMORY: usize = 1024;

/// The protocol state machine of one link.
pub struct Link {
    config: LinkConfig,
    state: State,
    parity: Parity,
    next_id: u64,
    highest_peer_id: u64,
    framer: Framer,
    rx: BytesMut,
    scheduler: Scheduler,
    reassembly: Reassembly,
    /// Our requests still expecting an answer.
    awaiting_answer: BTreeSet<StreamId>,
    /// Peer requests we have not answered yet.
    unanswered: BTreeSet<StreamId>,
    /// Streams of ours still sending.
    outbound: BTreeMap<StreamId, Outbound>,
    /// Streams whose late frames are dropped silently (canceled answers), oldest
    /// first, and the same ids as a set for the per-frame lookup.
    closed: VecDeque<StreamId>,
    closed_set: BTreeSet<StreamId>,
    events: VecDeque<LinkEvent>,
    head_scratch: Vec<u8>,
    stats: LinkStats,
}

impl Link {
    /// A new link; its HELLO is the first frame [`Link::poll_transmit`] yields.
    ///
    /// `sinks` receives inbound messages above the spool threshold; without one,
    /// such messages are refused with [`ErrorCode::TooLarge`].
    pub fn new(config: LinkConfig, sinks: Option<Box<dyn SinkFactory>>) -> Link {
        let max_frame_len = config.max_frame_len.max(MIN_MAX_FRAME_LEN);
        let mut scheduler = Scheduler::new(SchedulerConfig {
            chunk_len: config.chunk_len,
            class_weights: config.class_weights,
            ..SchedulerConfig::default()
        });
        let mut hello = Hello::new(config.nonce);
        hello.max_frame_len = max_frame_len as u64;
        hello.stream_window = config.stream_window;
        hello.link_window = config.link_window;
        scheduler.push_control(Frame::Hello(hello));
        let reassembly = Reassembly::new(
            ReassemblyConfig {
                limits: config.limits,
                stream_window: config.stream_window,
                link_window: config.link_window,
            },
            sinks,
        );
        Link {
            framer: Framer::new(config.framing, max_frame_len),
            config,
            state: State::Handshaking,
            parity: Parity::Odd,
            next_id: 0,
            highest_peer_id: 0,
            rx: BytesMut::new(),
            scheduler,
            reassembly,
            awaiting_answer: BTreeSet::new(),
            unanswered: BTreeSet::new(),
            outbound: BTreeMap::new(),
            closed: VecDeque::new(),
            closed_set: BTreeSet::new(),
            events: VecDeque::new(),
            head_scratch: Vec::with_capacity(64),
            stats: LinkStats::default(),
        }
    }

    /// True once the HELLO exchange completed and until the link closes.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// True after a fatal error.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        let mut stats = self.stats.clone();
        stats.framing = self.framer.stats().clone();
        stats
    }

    /// The chunk size in use.
    pub fn chunk_len(&self) -> usize {
        self.config.chunk_len
    }

    /// Changes the chunk size for chunks cut from now on (e.g. the link's speed changed).
    pub fn set_chunk_len(&mut self, chunk_len: usize) {
        self.config.chunk_len = chunk_len;
        self.scheduler.set_chunk_len(chunk_len);
    }

    /// Outbound progress of a message still sending: (body bytes sent, total if known).
    pub fn progress(&self, stream: StreamId) -> Option<(u64, Option<u64>)> {
        self.outbound.get(&stream).map(|o| (o.sent, o.total))
    }

    /// Streamed-body bytes queued but not yet sent, to bound read-ahead.
    pub fn queued_body_bytes(&self, stream: StreamId) -> Option<u64> {
        self.scheduler.queued_body_bytes(stream)
    }

    // ----- user calls -------------------------------------------------------------

    fn allocate(&mut self) -> Result<StreamId, ProtocolError> {
        if self.state != State::Connected {
            return Err(ProtocolError::InvalidState {
                reason: "link not connected (handshake pending or closing)",
            });
        }
        let id = StreamId(self.next_id);
        self.next_id = self
            .next_id
            .checked_add(2)
            .ok_or(ProtocolError::InvalidState {
                reason: "stream ids exhausted",
            })?;
        Ok(id)
    }

    fn enqueue(&mut self, open: Open, body: Body) -> Result<(), ProtocolError> {
        open.validate()?;
        let total = match &body {
            Body::Full(bytes) => Some(bytes.len() as u64),
            Body::Streaming { total_len } => *total_len,
        };
        let stream = open.stream;
        self.scheduler.enqueue(open, body)?;
        self.outbound.insert(stream, Outbound { sent: 0, total });
        Ok(())
    }

    /// Sends a request; its answer arrives as a [`LinkEvent::Message`] on the returned id.
    pub fn request(&mut self, message: Message) -> Result<StreamId, ProtocolError> {
        let stream = self.allocate()?;
        let (open, body) = message.into_parts(stream, MessageKind::Request);
        self.enqueue(open, body)?;
        self.awaiting_answer.insert(stream);
        Ok(stream)
    }

    /// Sends a one-way message.
    pub fn one_way(&mut self, message: Message) -> Result<StreamId, ProtocolError> {
        let stream = self.allocate()?;
        let (open, body) = message.into_parts(stream, MessageKind::OneWay);
        self.enqueue(open, body)?;
        Ok(stream)
    }

    /// Answers the peer's request `stream`: `Ok` for a response, `Err(code)` for an
    /// error response whose body explains the failure.
    pub fn respond(
        &mut self,
        stream: StreamId,
        outcome: Result<(), ErrorCode>,
        message: Message,
    ) -> Result<(), ProtocolError> {
        if !self.unanswered.remove(&stream) {
            return Err(ProtocolError::InvalidState {
                reason: "no unanswered request with this id (answered, canceled or unknown)",
            });
        }
        let kind = match outcome {
            Ok(()) => MessageKind::Response,
            Err(_) => MessageKind::ErrorResponse,
        };
        let (mut open, body) = message.into_parts(stream, kind);
        open.route = String::new();
        open.code = outcome.err();
        self.enqueue(open, body)
    }

    /// Appends bytes to a streamed outbound body; `fin` ends it.
    pub fn push_body(
        &mut self,
        stream: StreamId,
        bytes: Bytes,
        fin: bool,
    ) -> Result<(), ProtocolError> {
        self.scheduler.push_body(stream, bytes, fin)
    }

    /// Abandons a stream in either direction: stops our chunks on the wire, drops what
    /// arrived of the peer's half, and tells the peer with CANCEL(`code`).
    pub fn cancel(&mut self, stream: StreamId, code: ErrorCode) {
        let mut known = self.scheduler.cancel(stream).is_some();
        known |= self.outbound.remove(&stream).is_some();
        known |= self.awaiting_answer.remove(&stream);
        known |= self.unanswered.remove(&stream);
        self.reassembly.cancel(stream, code);
        self.remember_closed(stream);
        if known && self.state != State::Failed {
            self.scheduler
                .push_control(Frame::Cancel(Cancel { stream, code }));
        }
    }

    /// The consumer of a sink stream (`Accepted::Pending`) finished `len` bytes: grants
    /// the peer that much credit back.
    pub fn release(&mut self, stream: StreamId, len: u64) {
        self.reassembly.release(stream, len);
        self.drain_reassembly();
    }

    /// Starts an orderly shutdown: no new streams either way; in-flight ones go on.
    pub fn go_away(&mut self, code: ErrorCode, reason: impl Into<String>) {
        if matches!(self.state, State::Failed) {
            return;
        }
        self.state = State::Closing;
        self.scheduler.push_control(Frame::GoAway(GoAway {
            last_stream: StreamId(self.highest_peer_id),
            code,
            reason: reason.into(),
        }));
    }

    /// Sends a PING; the answer comes as [`LinkEvent::Pong`] with the same value.
    pub fn ping(&mut self, opaque: u64) {
        self.scheduler.push_control(Frame::Ping(Ping { opaque }));
    }

    // ----- output -----------------------------------------------------------------

    /// Appends the next framed frame to `dst`; returns the wire bytes added, 0 when
    /// nothing is ready. Call whenever the transport can take more.
    pub fn poll_transmit(&mut self, dst: &mut BytesMut) -> usize {
        let Some(frame) = self.scheduler.poll_transmit() else {
            return 0;
        };
        self.account_sent(&frame);
        let envelope = Envelope::from(frame);
        self.head_scratch.clear();
        envelope.encode_head(&mut self.head_scratch);
        let before = dst.len();
        self.framer
            .encode(&self.head_scratch, envelope.frame.payload(), dst);
        let written = dst.len() - before;
        self.stats.frames_out += 1;
        self.stats.bytes_out += written as u64;
        self.drain_scheduler();
        written
    }

    /// Appends frames to `dst` until about `budget` wire bytes were added or nothing is
    /// ready; for fast links, where one large write beats many small ones.
    pub fn poll_transmit_batch(&mut self, dst: &mut BytesMut, budget: usize) -> usize {
        let mut total = 0;
        while total < budget {
            match self.poll_transmit(dst) {
                0 => break,
                n => total += n,
            }
        }
        total
    }

    /// The next event for the runtime.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// True when nothing at all waits to be sent.
    pub fn is_idle(&self) -> bool {
        self.scheduler.is_idle()
    }

    fn account_sent(&mut self, frame: &Frame) {
        if let (Some(stream), len) = (frame.stream(), frame.body_len()) {
            if let Some(out) = self.outbound.get_mut(&stream) {
                out.sent += len as u64;
            }
        }
    }

    fn drain_scheduler(&mut self) {
        while let Some(event) = self.scheduler.poll_event() {
            match event {
                SchedulerEvent::Sent { stream } => {
                    self.outbound.remove(&stream);
                    self.events.push_back(LinkEvent::Sent { stream });
                }
                SchedulerEvent::WantsBody { stream } => {
                    self.events.push_back(LinkEvent::WantsBody { stream });
                }
            }
        }
    }

    // ----- input ------------------------------------------------------------------

    /// Feeds bytes read from the transport. Damaged frames on the serial framing are
    /// dropped and reported as [`LinkEvent::FrameDropped`]; a fatal error fails the
    /// link (also reported as [`LinkEvent::Failed`]) and queues a GOAWAY.
    pub fn handle_input(&mut self, bytes: &[u8], _now: Instant) -> Result<(), ProtocolError> {
        if self.state == State::Failed {
            return Err(ProtocolError::InvalidState {
                reason: "link failed",
            });
        }
        self.stats.bytes_in += bytes.len() as u64;
        self.rx.extend_from_slice(bytes);
        loop {
            match self.framer.decode(&mut self.rx) {
                Ok(Some(raw)) => {
                    self.stats.frames_in += 1;
                    let result = Envelope::decode(raw)
                        .map_err(ProtocolError::from)
                        .and_then(|env| self.dispatch(env.frame));
                    if let Err(error) = result {
                        self.fail(error.clone());
                        return Err(error);
                    }
                }
                Ok(None) => break,
                Err(error) if self.config.framing == FramingKind::Serial => {
                    self.events.push_back(LinkEvent::FrameDropped { error });
                }
                Err(error) => {
                    let error = ProtocolError::Framing(error);
                    self.fail(error.clone());
                    return Err(error);
                }
            }
        }
        self.drain_reassembly();
        Ok(())
    }

    fn fail(&mut self, error: ProtocolError) {
        if self.state == State::Failed {
            return;
        }
        self.state = State::Failed;
        self.scheduler.push_control(Frame::GoAway(GoAway {
            last_stream: StreamId(self.highest_peer_id),
            code: error.code(),
            reason: alloc::format!("{error}"),
        }));
        self.events.push_back(LinkEvent::Failed { error });
    }

    fn dispatch(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        if self.state == State::Handshaking {
            return match frame {
                Frame::Hello(hello) => self.handle_hello(hello),
                _ => Err(ProtocolError::NoHandshake),
            };
        }
        match frame {
            Frame::Hello(_) => Err(ProtocolError::UnexpectedFrame {
                frame: "HELLO",
                reason: "the link is already connected",
            }),
            Frame::Open(open) => self.handle_open(open),
            Frame::Data(data) => {
                if self.is_closed(data.stream) {
                    return Ok(());
                }
                self.reassembly.handle_data(data)
            }
            Frame::End(end) => {
                if self.is_closed(end.stream) {
                    return Ok(());
                }
                self.reassembly.handle_end(end)
            }
            Frame::Cancel(Cancel { stream, code }) => {
                self.handle_peer_cancel(stream, code);
                Ok(())
            }
            Frame::Credit(Credit { stream, increment }) => {
                self.scheduler.add_credit(stream, increment);
                Ok(())
            }
            Frame::Ping(Ping { opaque }) => {
                self.scheduler.push_control(Frame::Pong(Pong { opaque }));
                Ok(())
            }
            Frame::Pong(Pong { opaque }) => {
                self.events.push_back(LinkEvent::Pong { opaque });
                Ok(())
            }
            Frame::GoAway(goaway) => {
                if self.state == State::Connected {
                    self.state = State::Closing;
                }
                self.events.push_back(LinkEvent::GoAway {
                    last_stream: goaway.last_stream,
                    code: goaway.code,
                    reason: goaway.reason,
                });
                Ok(())
            }
            // Reliability frames belong to the reliable mode (issue 7); without it an
            // ACK carries no information and is ignored.
            Frame::Ack(_) => Ok(()),
        }
    }

    fn handle_hello(&mut self, hello: Hello) -> Result<(), ProtocolError> {
        if hello.version != frame::VERSION {
            return Err(ProtocolError::Version {
                peer: hello.version,
                ours: frame::VERSION,
            });
        }
        if hello.nonce == self.config.nonce {
            return Err(ProtocolError::InvalidState {
                reason: "both sides chose the same HELLO nonce; reconnect",
            });
        }
        if hello.max_frame_len < MIN_MAX_FRAME_LEN as u64 {
            return Err(ProtocolError::Decode(crate::DecodeError::InvalidValue {
                field: "hello.max_frame_len",
                value: hello.max_frame_len,
            }));
        }
        self.parity = if self.config.nonce > hello.nonce {
            Parity::Odd
        } else {
            Parity::Even
        };
        self.next_id = self.parity.first_id().0;
        // Chunks must fit the peer's frames with room for the largest OPEN head.
        let fits = usize::try_from(hello.max_frame_len)
            .unwrap_or(usize::MAX)
            .saturating_sub(frame::MAX_HEAD_LEN);
        if self.config.chunk_len > fits {
            self.set_chunk_len(fits);
        }
        self.scheduler
            .set_initial_stream_credit(hello.stream_window);
        self.scheduler.add_credit(Credit::LINK, hello.link_window);
        self.state = State::Connected;
        self.events.push_back(LinkEvent::Connected {
            parity: self.parity,
            peer: hello,
        });
        Ok(())
    }

    fn handle_open(&mut self, open: Open) -> Result<(), ProtocolError> {
        let stream = open.stream;
        if open.kind.is_answer() {
            if stream.parity() != self.parity {
                return Err(ProtocolError::BadStreamId { id: stream.0 });
            }
            if !self.awaiting_answer.contains(&stream) {
                // An answer to a request we canceled, still in flight: drop it.
                self.remember_closed(stream);
                return Ok(());
            }
        } else {
            // Ids are allocated at enqueue time and the scheduler sends OPENs in
            // priority order, so the peer's ids need not arrive in increasing order;
            // an id still in use is a reuse (reassembly rejects a live duplicate).
            if stream.parity() == self.parity || self.unanswered.contains(&stream) {
                return Err(ProtocolError::BadStreamId { id: stream.0 });
            }
            self.highest_peer_id = self.highest_peer_id.max(stream.0);
            if self.state == State::Closing {
                self.scheduler.push_control(Frame::Cancel(Cancel {
                    stream,
                    code: ErrorCode::GoingAway,
                }));
                self.remember_closed(stream);
                return Ok(());
            }
            if open.kind == MessageKind::Request {
                self.unanswered.insert(stream);
            }
        }
        self.reassembly.handle_open(open)
    }

    fn handle_peer_cancel(&mut self, stream: StreamId, code: ErrorCode) {
        let mut known = self.scheduler.cancel(stream).is_some();
        known |= self.outbound.remove(&stream).is_some();
        known |= self.awaiting_answer.remove(&stream);
        known |= self.unanswered.remove(&stream);
        self.reassembly.handle_cancel(stream, code);
        self.remember_closed(stream);
        if known {
            self.events.push_back(LinkEvent::Canceled { stream, code });
        }
    }

    fn remember_closed(&mut self, stream: StreamId) {
        if !self.closed_set.insert(stream) {
            return;
        }
        if self.closed.len() == CLOSED_MEMORY {
            if let Some(oldest) = self.closed.pop_front() {
                self.closed_set.remove(&oldest);
            }
        }
        self.closed.push_back(stream);
    }

    fn is_closed(&self, stream: StreamId) -> bool {
        !self.closed_set.is_empty() && self.closed_set.contains(&stream)
    }

    /// Hands reassembly's events out, then its credit (handing a message out is what
    /// frees its link credit, so events go first).
    fn drain_reassembly(&mut self) {
        while let Some(event) = self.reassembly.poll_event() {
            let event = match event {
                InboundEvent::Message { head, body } => {
                    if head.kind.is_answer() {
                        self.awaiting_answer.remove(&head.stream);
                    }
                    LinkEvent::Message { head, body }
                }
                InboundEvent::Streaming { head } => LinkEvent::Streaming { head },
                InboundEvent::StreamFinished { stream, len } => {
                    self.awaiting_answer.remove(&stream);
                    LinkEvent::StreamFinished { stream, len }
                }
                InboundEvent::Refused {
                    stream,
                    code,
                    error,
                } => {
                    self.scheduler
                        .push_control(Frame::Cancel(Cancel { stream, code }));
                    self.awaiting_answer.remove(&stream);
                    self.unanswered.remove(&stream);
                    self.remember_closed(stream);
                    LinkEvent::Refused { stream, error }
                }
                InboundEvent::Canceled { stream, code } => LinkEvent::Canceled { stream, code },
            };
            self.events.push_back(event);
        }
        while let Some(credit) = self.reassembly.poll_credit() {
            self.scheduler.push_control(Frame::Credit(credit));
        }
    }
}
