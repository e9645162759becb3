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
//! Inside, a [`Link`] is two halves joined by [`Command`]s: a [`Session`] (handshake,
//! ids, answers, reassembly: everything about what arrives) and a [`Transmitter`]
//! (scheduler, encoder, progress: everything about what leaves). The actor runtime
//! runs the halves in two actors; `Link` runs them in one struct for tests, the
//! simulator and firmware.
//!
//! Stream ids: each side allocates from its [`Parity`], decided by the HELLO nonces
//! (larger nonce → odd). Requests and one-way messages use the sender's parity; an
//! answer travels on its request's id, so its parity is the requester's.

mod command;
mod session;
mod stats;
mod transmitter;

pub use crate::reliable::{PacingConfig, ReliableConfig};
pub use command::{Command, TellPeer};
pub use session::Session;
pub use stats::{SessionStats, TransmitterStats};
pub use transmitter::{Progress, Transmitter};

use crate::config::{Limits, DEFAULT_MAX_FRAME_LEN};
use crate::error::{ErrorCode, ProtocolError};
use crate::frame::{Header, Hello, Open};
use crate::framing::{FramingKind, FramingStats};
use crate::ids::{MessageKind, Parity, Priority, StreamId};
use crate::reassembly::{MessageHead, SinkFactory};
use crate::scheduler::{Body, SchedulerConfig, SchedulerEvent};
use crate::time::Instant;
use alloc::boxed::Box;
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
    /// Offer the reliable mode (sequence numbers, ACK, retransmission); it is used
    /// when both sides offer it. On by default for the serial framing.
    pub reliable: Option<ReliableConfig>,
    /// Pace the reliable mode's frames to the rate the path delivers (see
    /// [`crate::reliable::Pacer`]): on by default for the serial framing, whose
    /// path may hide a slow radio behind a fast UART; a stream transport has
    /// its own congestion control. Used only with the reliable mode.
    pub pacing: Option<PacingConfig>,
    /// PING an idle link and fail it after unanswered PINGs.
    pub keepalive: Option<Keepalive>,
    /// A peer that stops answering (keepalive PINGs unanswered, a reliable-mode
    /// frame sent `max_sends` times) does not fail the link: the session reports
    /// [`LinkEvent::Silent`], keeps everything in flight, sends nothing new
    /// on its own, and [`Session::probe`] asks the peer for a sign of life; the
    /// first frame heard from it ends the silence ([`LinkEvent::Heard`]) and what
    /// it had not acknowledged is sent again. Off: the link fails with
    /// [`ProtocolError::Unresponsive`].
    pub supervised: bool,
    /// Identifies this side's session across reconnections (sent in HELLO with the
    /// reliable mode). Must be new for every link: the runtime draws it at random
    /// (a restarted peer is recognized by its new id).
    pub session_id: u64,
    /// A memory limit shared with other links for inbound bodies held in memory
    /// (see [`MemoryBudget`](crate::reassembly::MemoryBudget)); `None`: only this
    /// link's `limits.max_buffered_bytes`.
    pub budget: Option<crate::reassembly::MemoryBudget>,
    /// An inbound stream on which the peer could send (it had credit and was
    /// heard from) and sent no body bytes for this long is canceled: CANCEL
    /// `Timeout` to the peer, [`LinkEvent::Refused`] with
    /// [`ProtocolError::Stalled`] here, its memory and sink freed. `None`: never.
    /// Default [`DEFAULT_STALL_TIMEOUT`](crate::config::DEFAULT_STALL_TIMEOUT)
    /// (the reason for its value is there).
    pub stall_timeout: Option<core::time::Duration>,
    /// The authenticated mode: this side's role in the handshake (`None`: plain).
    #[cfg(feature = "secure")]
    pub secure: Option<crate::secure::SecureRole>,
}

/// Keepalive: after `interval` without any frame from the peer, a PING; after
/// `max_missed` unanswered PINGs in a row, the link fails
/// ([`ProtocolError::Unresponsive`]), or, [`LinkConfig::supervised`], the peer
/// is silent ([`LinkEvent::Silent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence before each PING.
    pub interval: core::time::Duration,
    /// Unanswered PINGs tolerated.
    pub max_missed: u32,
}

impl LinkConfig {
    /// A serial or radio link at `baud` (8N1): COBS framing, chunks sized so one
    /// takes about 10 ms on the wire.
    pub fn serial(baud: u32, nonce: u64) -> LinkConfig {
        LinkConfig::serial_at_rate(crate::config::serial_bytes_per_sec(baud), nonce)
    }

    /// A serial or radio link moving `bytes_per_sec` payload bytes a second
    /// (its baud rate over the bits each byte takes on the line): COBS framing,
    /// chunks sized so one takes about 10 ms on the wire.
    pub fn serial_at_rate(bytes_per_sec: u32, nonce: u64) -> LinkConfig {
        let mut config = LinkConfig::new(FramingKind::Serial, nonce);
        config.chunk_len = crate::config::chunk_len_for_rate(bytes_per_sec, 10);
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
            reliable: (framing == FramingKind::Serial).then(ReliableConfig::default),
            pacing: (framing == FramingKind::Serial).then(PacingConfig::default),
            keepalive: None,
            supervised: false,
            session_id: nonce.rotate_left(29) ^ 0x5e55_1011_d00d_f00d,
            budget: None,
            stall_timeout: Some(crate::config::DEFAULT_STALL_TIMEOUT),
            #[cfg(feature = "secure")]
            secure: None,
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

    pub(crate) fn into_parts(self, stream: StreamId, kind: MessageKind) -> (Open, Body) {
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
    /// After [`Link::reconnect`], the peer still had our session: what it had not
    /// received is being sent again, nothing is lost.
    Resumed,
    /// After [`Link::reconnect`], the peer had lost our session (it restarted):
    /// every message in flight either way is gone; our unanswered requests are
    /// reported as [`LinkEvent::Canceled`] with [`ErrorCode::PeerReset`] first. The
    /// link goes on as a new session.
    PeerReset,
    /// The peer stopped answering ([`LinkConfig::supervised`]): the link stays,
    /// messages wait, [`Link::probe`] asks the peer for a sign of life.
    Silent {
        /// Which mechanism noticed: the keepalive or the reliable mode.
        what: &'static str,
    },
    /// A frame from the peer ended its silence: what it had not acknowledged is
    /// being sent again, the link goes on.
    Heard,
    /// The link failed fatally; a GOAWAY was queued. No further input is processed.
    Failed {
        /// Why.
        error: ProtocolError,
    },
}

/// Frames and wire bytes through one direction of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames.
    pub frames: u64,
    /// Wire bytes.
    pub bytes: u64,
}

/// The reliable mode's state of a link's outbound direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReliableStats {
    /// Frames sent and not yet acknowledged.
    pub in_flight: usize,
    /// Bytes of those frames (sequenced head and payload, before framing).
    pub in_flight_bytes: u64,
    /// Frames sent again (timer, fast retransmission, tail-loss probe, after
    /// a reconnection), over the link's life.
    pub retransmissions: u64,
    /// Of those, tail-loss probes (the newest unacknowledged frame sent again
    /// after two round trips of silence), over the link's life.
    pub tail_probes: u64,
    /// The smoothed round-trip time (RFC 6298 SRTT), once a round trip was
    /// measured.
    pub srtt: Option<core::time::Duration>,
    /// The round-trip time variance (RFC 6298 RTTVAR); zero before a sample.
    pub rttvar: core::time::Duration,
    /// The current retransmission timeout, backoff included.
    pub rto: core::time::Duration,
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
    /// The framing decoders' counters (drops by reason), over every transport.
    pub framing: FramingStats,
    /// The authenticated mode's counters, if it is on.
    #[cfg(feature = "secure")]
    pub secure: Option<crate::secure::SecureStats>,
}

/// The protocol state machine of one link: a [`Session`] and a [`Transmitter`].
pub struct Link {
    session: Session,
    transmitter: Transmitter,
    events: alloc::collections::VecDeque<LinkEvent>,
}

impl Link {
    /// A new link; its HELLO is the first frame [`Link::poll_transmit`] yields.
    ///
    /// `sinks` receives inbound messages above the spool threshold; without one,
    /// such messages are refused with [`ErrorCode::TooLarge`].
    pub fn new(config: LinkConfig, sinks: Option<Box<dyn SinkFactory>>) -> Link {
        let transmitter = Transmitter::new(&config);
        let mut link = Link {
            session: Session::new(config, sinks),
            transmitter,
            events: alloc::collections::VecDeque::new(),
        };
        link.pump();
        link
    }

    /// Moves the session's commands into the transmitter and the transmitter's
    /// events out, after every call.
    fn pump(&mut self) {
        loop {
            if !self.session.is_failed() {
                if let Some(error) = self.transmitter.failure() {
                    self.session.transmitter_failed(error);
                }
            }
            if !self.session.has_commands() {
                break;
            }
            while let Some(command) = self.session.poll_command() {
                self.transmitter.apply(command);
            }
        }
        while let Some(event) = self.transmitter.poll_event() {
            self.events.push_back(match event {
                SchedulerEvent::Sent { stream } => LinkEvent::Sent { stream },
                SchedulerEvent::WantsBody { stream } => LinkEvent::WantsBody { stream },
            });
        }
    }

    /// True once the HELLO exchange completed and until the link closes.
    pub fn is_connected(&self) -> bool {
        self.session.is_connected()
    }

    /// True after a fatal error.
    pub fn is_failed(&self) -> bool {
        self.session.is_failed()
    }

    /// The inbound half's counters and state.
    pub fn session_stats(&self) -> SessionStats {
        self.session.stats()
    }

    /// The outbound half's counters and state.
    pub fn transmitter_stats(&self) -> TransmitterStats {
        self.transmitter.stats()
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        let outbound = self.transmitter.counters();
        let inbound = self.session.counters();
        LinkStats {
            frames_out: outbound.frames,
            bytes_out: outbound.bytes,
            frames_in: inbound.frames,
            bytes_in: inbound.bytes,
            framing: self.session.stats().framing,
            #[cfg(feature = "secure")]
            secure: self.session.secure_stats().copied(),
        }
    }

    /// The chunk size in use.
    pub fn chunk_len(&self) -> usize {
        self.transmitter.chunk_len()
    }

    /// Changes the chunk size for chunks cut from now on (e.g. the link's speed changed).
    pub fn set_chunk_len(&mut self, chunk_len: usize) {
        self.transmitter.set_chunk_len(chunk_len);
    }

    /// Outbound progress of a message still sending.
    pub fn progress(&self, stream: StreamId) -> Option<Progress> {
        self.transmitter.progress(stream)
    }

    /// Streamed-body bytes queued but not yet sent, to bound read-ahead.
    pub fn queued_body_bytes(&self, stream: StreamId) -> Option<u64> {
        self.transmitter.queued_body_bytes(stream)
    }

    /// Sends a request; its answer arrives as a [`LinkEvent::Message`] on the returned id.
    pub fn request(&mut self, message: Message) -> Result<StreamId, ProtocolError> {
        let id = self.session.request(message);
        self.pump();
        id
    }

    /// Sends a one-way message.
    pub fn one_way(&mut self, message: Message) -> Result<StreamId, ProtocolError> {
        let id = self.session.one_way(message);
        self.pump();
        id
    }

    /// Answers the peer's request `stream`: `Ok` for a response, `Err(code)` for an
    /// error response whose body explains the failure.
    pub fn respond(
        &mut self,
        stream: StreamId,
        outcome: Result<(), ErrorCode>,
        message: Message,
    ) -> Result<(), ProtocolError> {
        let result = self.session.respond(stream, outcome, message);
        self.pump();
        result
    }

    /// Appends bytes to a streamed outbound body; `fin` ends it.
    pub fn push_body(
        &mut self,
        stream: StreamId,
        bytes: Bytes,
        fin: bool,
    ) -> Result<(), ProtocolError> {
        let result = self.transmitter.push_body(stream, bytes, fin);
        self.pump();
        result
    }

    /// Abandons a stream in either direction: stops our chunks on the wire, drops what
    /// arrived of the peer's half, and tells the peer with CANCEL(`code`).
    pub fn cancel(&mut self, stream: StreamId, code: ErrorCode) {
        self.session.cancel(stream, code);
        self.pump();
    }

    /// Time passed, without input (see [`Session::set_now`]): both halves take
    /// it, so frames polled next are stamped and paced at `now`.
    pub fn set_now(&mut self, now: Instant) {
        self.session.set_now(now);
        self.transmitter.set_now(now);
    }

    /// The consumer of a sink stream (`Accepted::Pending`) finished `len` bytes: grants
    /// the peer that much credit back.
    pub fn release(&mut self, stream: StreamId, len: u64) {
        self.session.release(stream, len);
        self.pump();
    }

    /// Starts an orderly shutdown: no new streams either way; in-flight ones go on.
    pub fn go_away(&mut self, code: ErrorCode, reason: impl Into<String>) {
        self.session.go_away(code, reason);
        self.pump();
    }

    /// Sends a PING; the answer comes as [`LinkEvent::Pong`] with the same value.
    pub fn ping(&mut self, opaque: u64) {
        self.session.ping(opaque);
        self.pump();
    }

    /// While the peer is silent, asks it for a sign of life (see
    /// [`Session::probe`]); call with the backoff of your choice, `now` the time.
    pub fn probe(&mut self, now: Instant) {
        self.transmitter.set_now(now);
        self.session.probe(now);
        self.pump();
    }

    /// True while the peer is silent ([`LinkEvent::Silent`] until
    /// [`LinkEvent::Heard`]).
    pub fn is_silent(&self) -> bool {
        self.session.is_silent()
    }

    /// Appends the next framed frame to `dst`; returns the wire bytes added, 0 when
    /// nothing is ready. Call whenever the transport can take more.
    pub fn poll_transmit(&mut self, dst: &mut BytesMut) -> usize {
        let written = self.transmitter.poll_transmit(dst);
        self.pump();
        written
    }

    /// Appends frames to `dst` until about `budget` wire bytes were added or nothing is
    /// ready; for fast links, where one large write beats many small ones.
    pub fn poll_transmit_batch(&mut self, dst: &mut BytesMut, budget: usize) -> usize {
        let written = self.transmitter.poll_transmit_batch(dst, budget);
        self.pump();
        written
    }

    /// The next event for the runtime.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.session
            .poll_event()
            .or_else(|| self.events.pop_front())
    }

    /// True when nothing waits to be sent now: no frame queued, no command
    /// pending. In the reliable mode, frames sent but not yet acknowledged may
    /// still be retransmitted: [`Link::reliable_stats`] counts them.
    pub fn is_idle(&self) -> bool {
        self.transmitter.is_idle() && !self.session.has_commands()
    }

    /// Feeds bytes read from the transport. Damaged frames on the serial framing are
    /// dropped and reported as [`LinkEvent::FrameDropped`]; a fatal error fails the
    /// link (also reported as [`LinkEvent::Failed`]) and queues a GOAWAY.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), ProtocolError> {
        self.transmitter.set_now(now);
        let result = self.session.handle_input(bytes, now);
        self.pump();
        result
    }

    /// See [`Session::set_read_ahead`].
    pub fn set_read_ahead(&mut self, bytes: usize) {
        self.session.set_read_ahead(bytes);
    }

    /// [`Link::handle_input`] without copying, see [`Session::handle_input_buf`].
    pub fn handle_input_buf(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        self.transmitter.set_now(now);
        let result = self.session.handle_input_buf(buf, now);
        self.pump();
        result
    }

    /// The transport was replaced (the old one broke): handshake again on the new
    /// one and resume the session (reliable mode), or learn that the peer lost it.
    /// Feed the new transport's bytes only, from its first byte.
    pub fn reconnect(&mut self) {
        self.session.reconnect();
        self.pump();
    }

    /// When [`Link::handle_timeout`] must run next (retransmission timer, delayed
    /// acknowledgement, keepalive, stall timeout), if anything waits on time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.session.poll_timeout(), self.transmitter.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed (call at [`Link::poll_timeout`] or later): retransmits, sends
    /// due acknowledgements and keepalive PINGs, cancels stalled inbound streams,
    /// fails a link whose peer went silent.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.transmitter.handle_timeout(now);
        self.session.handle_timeout(now);
        self.pump();
    }

    /// The reliable mode's frames in flight and retransmissions, if it is on.
    pub fn reliable_stats(&self) -> Option<ReliableStats> {
        self.transmitter.reliable_stats()
    }

    /// The rate, bytes per second, the pacer lets frames leave at (see
    /// [`Transmitter::pacing_rate`]).
    pub fn pacing_rate(&self) -> Option<u64> {
        self.transmitter.pacing_rate()
    }

    /// The session (its state: handshake, peer, resume secret).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// [`Link::reconnect`] on a transport whose handshake already ran (see
    /// [`Session::reconnect_established`]).
    #[cfg(feature = "secure")]
    pub fn reconnect_established(&mut self, established: crate::secure::Established) {
        self.session.reconnect_established(established);
        self.pump();
    }
}
