//! Reassembly: inbound OPEN/DATA/END/CANCEL frames in, complete messages out, under
//! hard memory limits, with the flow-control credit to grant back to the peer.
//!
//! The link layer above has decoded the frames and checked stream-id parity and
//! ownership. [`Reassembly`] follows the crate's vocabulary: feed it with
//! `handle_*`, then drain [`Reassembly::poll_event`] **before**
//! [`Reassembly::poll_credit`] (handing a message out frees its link credit):
//!
//! ```text
//! loop {
//!     handle_open / handle_data / handle_end / handle_cancel   (peer frames)
//!     cancel / release                                          (local side)
//!     while let Some(ev) = poll_event()  { route it; Refused → send CANCEL(code) }
//!     while let Some(c) = poll_credit()  { send CREDIT }
//! }
//! ```
//!
//! # States of an inbound stream
//!
//! ```text
//!              OPEN + FIN (one frame) ──────────────────────────► Complete: Message
//!   (idle) ──┤                                                        ▲
//!              OPEN, total ≤ spool_threshold                          │ FIN / END
//!                 │                                                   │
//!                 ▼                                                   │
//!            ┌───────────┐ ───────────────────────────────────────────┘
//!            │ Buffering │
//!            └───────────┘
//!                 │ grows past spool_threshold, or is the largest
//!                 │ under memory pressure: a sink is opened (Streaming),
//!                 │ the buffer so far is its first chunk
//!                 ▼
//!            ┌───────────┐  FIN / END, finish() ok
//!            │ Spooling  │ ─────────────────────────────────────► Complete: StreamFinished
//!            └───────────┘
//!                 ▲
//!                 └── OPEN, total > spool_threshold, or the sink factory prefers a
//!                     sink for this message (sink opened at once: Streaming)
//!
//!   Buffering / Spooling ── a limit, a sink error, no sink to spill to ──► Refused (event; tombstone)
//!   Buffering / Spooling ── local cancel() ────────────────────────────────► Refused (no event; tombstone)
//!   Buffering / Spooling ── peer CANCEL ───────────────────────────────────► Canceled (event)
//! ```
//!
//! A tombstone remembers a refused id (boundedly, [`MAX_TOMBSTONES`]) so the frames
//! the peer had in flight are ignored, including an OPEN that crosses a local
//! `cancel`. DATA or END for an id that is neither live nor remembered is ignored
//! too: a bounded table cannot tell "never opened" from "refused long ago", and
//! the link layer, which knows which ids were opened, is the place to reject it.
//!
//! # Limits (all hard; violations refuse the stream, never the link)
//!
//! | limit | rule | refusal |
//! |---|---|---|
//! | `max_message_bytes` | a declared `total_len` above it refuses at OPEN; a body growing past it refuses then | `TooLarge` |
//! | declared `total_len` | more data than declared, or FIN/END short of it | `LengthMismatch` (code `Protocol`) |
//! | `max_inbound_streams` | one more live stream is refused before anything is allocated | `TooManyStreams` (code `Refused`) |
//! | memory budget | a new stream when the link's share has less than [`STREAM_STATE`] left | `BufferFull` (code `Refused`) |
//! | `max_buffered_bytes` | capacity allocated for incomplete in-memory bodies never exceeds it | spill, else `BufferFull` (code `Refused`) |
//! | `spool_threshold` | declared `total_len` above it: sink from OPEN; a body growing past it moves to a sink | no sink factory: `TooLarge`; the factory declines: `Sink` (code `Refused`) |
//! | memory pressure | incomplete in-memory bytes above [`ReassemblyConfig::pressure_limit`]: the largest moves to a sink | no sink: `BufferFull` (code `Refused`) |
//! | `stall_timeout` | no body bytes that long while the peer could send (below) | `Stalled` (code `Timeout`) |
//!
//! Without a [`SinkFactory`] (or when it returns `None`), everything that would go
//! to a sink is refused (a factory that declines is at a limit, so its refusals say
//! `Refused`, which the sender may retry, rather than `TooLarge`): a receiver
//! without sinks accepts only messages that fit in memory, and with several
//! concurrent messages only while they hold less than the pressure limit together;
//! give it `link_window ≥ 2 ×` the largest body it must take.
//!
//! A single-frame message (OPEN with FIN) is always delivered in memory, zero copy:
//! it is already in memory, bounded by the frame-length limit, and holds no state.
//! It therefore does not count against `max_inbound_streams` or the buffer budget.
//!
//! Buffers are sized from `total_len` only up to the pressure limit and the budget
//! left, and grow by doubling up to what the message may reach in memory; every
//! allocation is `try_reserve_exact`, so a peer cannot make this side allocate past
//! `max_buffered_bytes` (nor abort it on a failed allocation).
//!
//! # Stall timeout
//!
//! Time is a parameter: tell the reassembler of every frame from the peer
//! ([`Reassembly::heard`], before handling it) and of time passing
//! ([`Reassembly::set_now`], [`Reassembly::handle_timeout`] at
//! [`Reassembly::poll_timeout`]). A live stream on which the peer could send (it
//! had stream and link credit, and was heard from) and sent no body bytes for
//! `stall_timeout` is refused with [`ProtocolError::Stalled`]. What counts, and
//! why it costs no scan of the streams, is in `stall.rs`.
//!
//! # Credit rules
//!
//! The peer may have at most `stream_window` unacknowledged body bytes (OPEN and DATA
//! payloads) per stream and `link_window` over the link (the windows this side
//! advertised in its HELLO). Sending beyond a stream's credit refuses that stream
//! (`FlowControl`); beyond the link's is fatal ([`ProtocolError::FlowControl`] with
//! id 0 from `handle_*`).
//!
//! Bytes are *freed* back to a window when this side is done with them:
//!
//! | bytes | stream credit freed | link credit freed |
//! |---|---|---|
//! | buffered in memory | when buffered | when the complete message leaves [`Reassembly::poll_event`] |
//! | written to a sink, `Consumed` | when written | when written |
//! | written to a sink, `Pending` | on [`Reassembly::release`] | when written |
//! | moved from memory to a sink | (already freed) | when written |
//! | dropped (refusal, cancel, frame ignored) | — | at once |
//!
//! * A sink's pending bytes hold stream credit only: a slow consumer pushes back on
//!   its own stream, bounded by `stream_window`, and cannot starve the other streams
//!   of link credit. The runtime holds at most `stream_window` pending bytes per
//!   spooling stream.
//! * No stream credit is granted for a stream that completed or was refused
//!   (queued, unsent stream credit for it is dropped too).
//! * Batching: freed bytes are granted as one CREDIT once they reach
//!   [`batch_threshold`] (a quarter of the window, at least 1);
//!   [`Reassembly::flush_credit`] grants everything at once (e.g. when idle).
//! * No stall: the peer's available credit is `window − held − unreported`, with
//!   `unreported < threshold ≤ window/4`. Incomplete in-memory bytes are kept at or
//!   below the pressure limit `≤ link_window/2`, so once the events are polled the
//!   peer always has more than a quarter of the link window; on a stream that this
//!   side holds nothing of, it has more than three quarters of `stream_window`. The
//!   sender must cut chunks to the credit it has.
//!
//! Accounting identities (checked by `Reassembly::check_invariants` in the tests,
//! the property tests and the fuzz target):
//!
//! ```text
//! link:   peer_link_credit   + unreported + buffered + undelivered            = link_window
//! stream: peer_stream_credit + unreported + (sink pending − already credited) = stream_window
//! ```

mod budget;
mod credit;
mod event;
#[cfg(all(feature = "std", any(test, feature = "test-util")))]
mod fuzz;
mod invariants;
mod memory;
#[cfg(feature = "std")]
mod memory_sink;
mod sink;
mod stall;
mod stream;
mod tombstones;

#[cfg(all(test, feature = "std"))]
mod proptests;
#[cfg(all(test, feature = "std"))]
mod stall_tests;
#[cfg(all(test, feature = "std"))]
mod tests;

pub use budget::{MemoryBudget, Share};
pub use credit::batch_threshold;
pub use event::{InboundEvent, MessageHead};
#[cfg(all(feature = "std", any(test, feature = "test-util")))]
pub use fuzz::fuzz_frames;
#[cfg(feature = "std")]
pub use memory_sink::{MemorySink, MemorySinkFactory, SinkRecord};
pub use sink::{Accepted, BodySink, SinkError, SinkFactory};
pub use stream::StreamState;
pub use tombstones::{MAX_TOMBSTONES, MIN_TOMBSTONES};

/// What a live inbound stream's state costs beyond its body (its table entry,
/// head and route, window and stall deadline; measured at about 1.8 KiB with
/// heaptrack), charged to the memory budget while it lives, so a peer opening
/// many streams spends the budget like one sending large bodies: a stream the
/// budget has no room for is refused (`BufferFull`) before anything is allocated.
pub const STREAM_STATE: u64 = 2048;

use crate::config::{Limits, DEFAULT_LINK_WINDOW, DEFAULT_STALL_TIMEOUT, DEFAULT_STREAM_WINDOW};
use crate::error::{ErrorCode, ProtocolError};
use crate::frame::{Credit, Data, End, Open};
use crate::ids::StreamId;
use crate::time::Instant;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use bytes::Bytes;
use core::time::Duration;
use credit::Window;
use memory::too_large_for_memory;
use stall::{Due, Stalls};
use stream::{to_usize, Body, Inbound, MemoryBody, SinkBody};
use tombstones::Tombstones;

/// Limits and the receive windows this side advertised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Hard limits on what the peer may make this side hold.
    pub limits: Limits,
    /// Per-stream receive window advertised in HELLO.
    pub stream_window: u64,
    /// Link-wide receive window advertised in HELLO.
    pub link_window: u64,
    /// A live stream on which the peer could send and did not for this long is
    /// refused (`Stalled`, CANCEL `Timeout`); `None`: never. See the
    /// [stall timeout](self#stall-timeout).
    pub stall_timeout: Option<Duration>,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            limits: Limits::default(),
            stream_window: DEFAULT_STREAM_WINDOW,
            link_window: DEFAULT_LINK_WINDOW,
            stall_timeout: Some(DEFAULT_STALL_TIMEOUT),
        }
    }
}

impl ReassemblyConfig {
    /// Incomplete in-memory bytes above which the largest in-memory message moves
    /// to a sink: half the link window, or `max_buffered_bytes` if less. Keeping
    /// in-memory bytes (which hold link credit) at half the window leaves the peer
    /// credit to finish messages, so concurrent large messages cannot deadlock.
    pub fn pressure_limit(&self) -> u64 {
        (self.link_window / 2).min(self.limits.max_buffered_bytes)
    }
}

/// Reassembly of one link's inbound messages. See the [module doc](self).
pub struct Reassembly {
    config: ReassemblyConfig,
    pressure_limit: u64,
    sinks: Option<Box<dyn SinkFactory>>,
    streams: BTreeMap<StreamId, Inbound>,
    tombstones: Tombstones,
    link: Window,
    /// Link credit granted, not yet polled.
    link_ready: u64,
    /// Stream credit granted, not yet polled.
    stream_ready: BTreeMap<StreamId, u64>,
    events: VecDeque<InboundEvent>,
    /// Body bytes of incomplete in-memory messages.
    buffered: u64,
    /// Capacity allocated for them.
    allocated: u64,
    /// Body bytes of complete messages waiting in `events` (they hold link credit).
    undelivered: u64,
    /// This link's part of the endpoint's [`MemoryBudget`], charged with `allocated`.
    share: Share,
    /// The stall timeout's clock and deadlines.
    stalls: Stalls,
}

impl core::fmt::Debug for Reassembly {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reassembly")
            .field("config", &self.config)
            .field("live_streams", &self.streams.len())
            .field("buffered", &self.buffered)
            .field("allocated", &self.allocated)
            .field("undelivered", &self.undelivered)
            .field("peer_link_credit", &self.link.available())
            .finish_non_exhaustive()
    }
}

impl Reassembly {
    /// A reassembler with no stream open; `sinks` opens sinks for large messages
    /// (`None`: such messages are refused, see the [module doc](self)).
    pub fn new(config: ReassemblyConfig, sinks: Option<Box<dyn SinkFactory>>) -> Reassembly {
        Reassembly::with_budget(config, sinks, None)
    }

    /// A reassembler whose in-memory bodies are also charged to `budget`, shared
    /// with other links (see [`MemoryBudget`]): over it, bodies spill to a sink or
    /// are refused as over `max_buffered_bytes`.
    pub fn with_budget(
        config: ReassemblyConfig,
        sinks: Option<Box<dyn SinkFactory>>,
        budget: Option<MemoryBudget>,
    ) -> Reassembly {
        Reassembly {
            config,
            pressure_limit: config.pressure_limit(),
            sinks,
            streams: BTreeMap::new(),
            tombstones: Tombstones::new(config.limits.max_inbound_streams),
            link: Window::new(config.link_window),
            link_ready: 0,
            stream_ready: BTreeMap::new(),
            events: VecDeque::new(),
            buffered: 0,
            allocated: 0,
            undelivered: 0,
            share: Share::new(budget),
            stalls: Stalls::new(config.stall_timeout),
        }
    }

    /// The budget this reassembler is charged to, if any.
    pub fn budget(&self) -> Option<MemoryBudget> {
        self.share.budget()
    }

    /// Records the capacity allocated for in-memory bodies, in the budget too
    /// (with [`STREAM_STATE`] for each live stream).
    fn set_allocated(&mut self, allocated: u64) {
        self.allocated = allocated;
        let streams = (self.streams.len() as u64).saturating_mul(STREAM_STATE);
        self.share.set(allocated.saturating_add(streams));
    }

    /// Charges the budget for the live streams after one came or went.
    fn streams_changed(&mut self) {
        self.set_allocated(self.allocated);
    }

    /// The configuration.
    pub fn config(&self) -> &ReassemblyConfig {
        &self.config
    }

    /// An OPEN from the peer.
    ///
    /// Fatal errors: stream id 0, an id already being reassembled
    /// ([`ProtocolError::BadStreamId`]), a payload beyond the link credit
    /// ([`ProtocolError::FlowControl`]). A fatal error changes nothing here; the
    /// link closes (then [`Reassembly::close`] aborts the sinks). Per-stream
    /// problems become [`InboundEvent::Refused`].
    pub fn handle_open(&mut self, open: Open) -> Result<(), ProtocolError> {
        let id = open.stream;
        check_stream_id(id)?;
        if self.streams.contains_key(&id) {
            return Err(ProtocolError::BadStreamId { id: id.0 });
        }
        let n = open.payload.len() as u64;
        self.receive_link(n)?;
        if self.tombstones.contains(id) {
            self.free_link(n);
            return Ok(());
        }
        let (head, payload, fin) = MessageHead::from_open(open);
        let mut window = Window::new(self.config.stream_window);
        let error = match window.receive(n) {
            Err(excess) => Some(ProtocolError::FlowControl { id: id.0, excess }),
            Ok(()) => self.check_length(id, head.total_len, n, fin),
        };
        if let Some(error) = error {
            self.free_link(n);
            self.refused(id, error);
            return Ok(());
        }
        if fin {
            self.undelivered = self.undelivered.saturating_add(n);
            self.events.push_back(InboundEvent::Message {
                head,
                body: payload,
            });
            return Ok(());
        }
        let limits = self.config.limits;
        if self.streams.len() >= limits.max_inbound_streams {
            self.free_link(n);
            let max = limits.max_inbound_streams;
            self.refused(id, ProtocolError::TooManyStreams { max });
            return Ok(());
        }
        if self.share.room() < STREAM_STATE {
            // The memory budget has no room for one more stream's state.
            self.free_link(n);
            let max = limits.max_buffered_bytes;
            self.refused(id, ProtocolError::BufferFull { id: id.0, max });
            return Ok(());
        }
        let total_len = head.total_len;
        let too_large = total_len.unwrap_or(n) > limits.spool_threshold;
        let sink = self
            .sinks
            .as_mut()
            .filter(|factory| too_large || factory.prefers_sink(&head))
            .and_then(|factory| factory.open(&head));
        if too_large && sink.is_none() {
            self.free_link(n);
            let size = total_len.unwrap_or(n);
            let has_factory = self.sinks.is_some();
            let threshold = limits.spool_threshold;
            self.refused(id, too_large_for_memory(id, size, threshold, has_factory));
            return Ok(());
        }
        let stall = self.stalls.open(id, window.available());
        if let Some(sink) = sink {
            self.events.push_back(InboundEvent::Streaming { head });
            let body = Body::Sink(SinkBody::new(sink));
            self.streams.insert(
                id,
                Inbound {
                    window,
                    total_len,
                    body,
                    stall,
                },
            );
            self.streams_changed();
            self.write_to_sink(id, payload, false);
            return Ok(());
        }
        // In memory: reserve from the announced length, within the pressure limit
        // and what the budget has left (the rest grows on demand).
        let room = limits
            .max_buffered_bytes
            .saturating_sub(self.allocated)
            .min(self.share.room());
        let reserve = total_len.unwrap_or(0).min(self.pressure_limit).min(room);
        let mut buf = Vec::new();
        if reserve > 0 && buf.try_reserve_exact(to_usize(reserve)).is_ok() {
            self.set_allocated(self.allocated.saturating_add(buf.capacity() as u64));
        }
        let body = Body::Memory(MemoryBody { head, buf });
        self.streams.insert(
            id,
            Inbound {
                window,
                total_len,
                body,
                stall,
            },
        );
        self.streams_changed();
        self.buffer(id, payload, false);
        Ok(())
    }

    /// A DATA frame from the peer. Fatal errors: stream id 0, a payload beyond the
    /// link credit. DATA for a refused or unknown stream is ignored (its link
    /// credit is returned).
    pub fn handle_data(&mut self, data: Data) -> Result<(), ProtocolError> {
        check_stream_id(data.stream)?;
        self.receive_link(data.payload.len() as u64)?;
        self.on_body(data.stream, data.payload, data.fin);
        Ok(())
    }

    /// Body bytes of a frame the link layer dropped before reassembly (an answer
    /// nobody awaits any more, an OPEN refused while going away): counted against
    /// the link window like any body bytes (beyond it is fatal) and freed at once,
    /// so dropping frames never shrinks the peer's window.
    pub fn ignore_body(&mut self, n: u64) -> Result<(), ProtocolError> {
        self.receive_link(n)?;
        self.free_link(n);
        Ok(())
    }

    /// An END frame from the peer: the message is complete. Fatal error: stream id 0.
    pub fn handle_end(&mut self, end: End) -> Result<(), ProtocolError> {
        check_stream_id(end.stream)?;
        self.on_body(end.stream, Bytes::new(), true);
        Ok(())
    }

    /// The peer canceled `stream`: drops its buffer, aborts its sink, returns the
    /// credit of the dropped bytes and emits [`InboundEvent::Canceled`]. A stream
    /// not being reassembled (complete, refused, unknown) is left alone.
    pub fn handle_cancel(&mut self, stream: StreamId, code: ErrorCode) {
        if let Some(inbound) = self.take_stream(stream) {
            self.discard(stream, inbound, code);
            self.events
                .push_back(InboundEvent::Canceled { stream, code });
        }
    }

    /// This side refuses or aborts `stream` (the link sends CANCEL): the same
    /// cleanup as [`Reassembly::handle_cancel`], without an event. The id is
    /// remembered so frames in flight, even an OPEN not yet received, are ignored.
    /// Returns whether the stream was being reassembled.
    pub fn cancel(&mut self, stream: StreamId, code: ErrorCode) -> bool {
        self.tombstones.insert(stream);
        match self.take_stream(stream) {
            Some(inbound) => {
                self.discard(stream, inbound, code);
                true
            }
            None => false,
        }
    }

    /// A sink's consumer finished `n` bytes it had taken as [`Accepted::Pending`]:
    /// their stream credit can go back to the peer. Clamped to what is pending;
    /// ignored for a stream no longer live.
    pub fn release(&mut self, stream: StreamId, n: u64) {
        let credit = match self.streams.get_mut(&stream) {
            Some(Inbound {
                body: Body::Sink(sink),
                ..
            }) => sink.release(n),
            _ => return,
        };
        self.free_stream(stream, credit);
    }

    /// Grants every freed byte now, below the batching threshold too.
    pub fn flush_credit(&mut self) {
        if let Some(increment) = self.link.flush() {
            self.link_ready = self.link_ready.saturating_add(increment);
            self.stalls.link_credit(self.link.available());
        }
        for (&id, inbound) in &mut self.streams {
            if let Some(increment) = inbound.window.flush() {
                let ready = self.stream_ready.entry(id).or_insert(0);
                *ready = ready.saturating_add(increment);
                self.stalls
                    .stream_credit(id, &mut inbound.stall, inbound.window.available());
            }
        }
    }

    /// A frame from the peer was decoded at `now` (any frame, before it is
    /// handled): the stall timeout counts time while the peer is heard from
    /// (see [Stall timeout](self#stall-timeout)).
    pub fn heard(&mut self, now: Instant) {
        self.stalls.heard(now);
    }

    /// Time passed without a frame from the peer (before a local call such as
    /// [`Reassembly::release`], so the credit it returns is stamped with the
    /// right time).
    pub fn set_now(&mut self, now: Instant) {
        self.stalls.set_now(now);
    }

    /// When [`Reassembly::handle_timeout`] must run next: the earliest time a
    /// stream may have stalled. `None` while the stall timeout is off, the peer
    /// has no link credit, or no stream can stall before the peer is heard from
    /// again.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.streams.is_empty() {
            return None;
        }
        self.stalls.poll_timeout()
    }

    /// Time passed: every stream that stalled is refused with
    /// [`ProtocolError::Stalled`] (an [`InboundEvent::Refused`] with code
    /// `Timeout`; its buffer is freed with its credit, its sink aborted).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.stalls.set_now(now);
        while let Some((id, deadline)) = self.stalls.next_due() {
            let Some(inbound) = self.streams.get_mut(&id) else {
                continue;
            };
            if let Due::Stalled = self.stalls.check(id, &mut inbound.stall, deadline) {
                self.refuse(id, ProtocolError::Stalled { id: id.0 });
            }
        }
    }

    /// Takes the sink factory out (to build a fresh reassembler for a new session).
    pub fn take_sinks(&mut self) -> Option<Box<dyn SinkFactory>> {
        self.sinks.take()
    }

    /// Drops every live stream (link closing): buffers freed, sinks aborted with
    /// `code`. Queued events stay. Returns how many streams were live.
    pub fn close(&mut self, code: ErrorCode) -> usize {
        let streams = core::mem::take(&mut self.streams);
        self.stalls.clear();
        let count = streams.len();
        for (id, inbound) in streams {
            self.discard(id, inbound, code);
        }
        count
    }

    /// The next event. A [`InboundEvent::Message`] frees its link credit as it
    /// leaves, so poll events before credits.
    pub fn poll_event(&mut self) -> Option<InboundEvent> {
        let event = self.events.pop_front()?;
        if let InboundEvent::Message { body, .. } = &event {
            let n = body.len() as u64;
            self.undelivered = self.undelivered.saturating_sub(n);
            self.free_link(n);
        }
        Some(event)
    }

    /// The next CREDIT frame to send: the link's first, then streams by id.
    pub fn poll_credit(&mut self) -> Option<Credit> {
        if self.link_ready > 0 {
            let increment = core::mem::take(&mut self.link_ready);
            return Some(Credit {
                stream: Credit::LINK,
                increment,
            });
        }
        let (stream, increment) = self.stream_ready.pop_first()?;
        Some(Credit { stream, increment })
    }

    /// Body bytes held in memory for incomplete messages.
    pub fn buffered_bytes(&self) -> u64 {
        self.buffered
    }

    /// Capacity allocated for them (never above `max_buffered_bytes`).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated
    }

    /// Body bytes of complete messages still waiting in the event queue.
    pub fn undelivered_bytes(&self) -> u64 {
        self.undelivered
    }

    /// Streams being reassembled.
    pub fn live_streams(&self) -> usize {
        self.streams.len()
    }

    /// Where a live stream's body goes; `None` if it is not live.
    pub fn stream_state(&self, stream: StreamId) -> Option<StreamState> {
        self.streams.get(&stream).map(Inbound::state)
    }

    /// Body bytes the peer may still send over the link, counting credit granted
    /// but not yet polled.
    pub fn peer_link_credit(&self) -> u64 {
        self.link.available()
    }

    /// Body bytes the peer may still send on a live stream (likewise); `None` if
    /// the stream is not live (a new stream starts with `stream_window`).
    pub fn peer_stream_credit(&self, stream: StreamId) -> Option<u64> {
        self.streams.get(&stream).map(|s| s.window.available())
    }

    // ---- body path ------------------------------------------------------------

    /// A chunk (possibly empty) for `id`, already counted on the link.
    fn on_body(&mut self, id: StreamId, chunk: Bytes, fin: bool) {
        let n = chunk.len() as u64;
        let Some(inbound) = self.streams.get_mut(&id) else {
            self.free_link(n); // refused, canceled, or unknown: in flight, ignored
            return;
        };
        let error = match inbound.window.receive(n) {
            Err(excess) => Some(ProtocolError::FlowControl { id: id.0, excess }),
            Ok(()) => {
                let (total, received) = (inbound.total_len, inbound.window.received());
                self.check_length(id, total, received, fin)
            }
        };
        if let Some(error) = error {
            self.free_link(n);
            self.refuse(id, error);
            return;
        }
        // Body bytes are progress (an empty DATA is not); they spend credit.
        if let Some(inbound) = self.streams.get_mut(&id) {
            if n > 0 {
                self.stalls.progress(&mut inbound.stall);
            }
            self.stalls
                .stream_credit(id, &mut inbound.stall, inbound.window.available());
        }
        if self.stream_state(id) == Some(StreamState::Spooling) {
            if self.write_to_sink(id, chunk, false) && fin {
                self.complete(id);
            }
        } else {
            self.buffer(id, chunk, fin);
        }
    }

    /// Per-message length limits, given `received` body bytes so far.
    fn check_length(
        &self,
        id: StreamId,
        total: Option<u64>,
        received: u64,
        fin: bool,
    ) -> Option<ProtocolError> {
        let max = self.config.limits.max_message_bytes;
        if let Some(declared) = total {
            if declared > max {
                let size = declared;
                return Some(ProtocolError::MessageTooLarge {
                    id: id.0,
                    size,
                    max,
                });
            }
            if received > declared || (fin && received != declared) {
                let id = id.0;
                return Some(ProtocolError::LengthMismatch {
                    id,
                    declared,
                    received,
                });
            }
        }
        if received > max {
            let size = received;
            return Some(ProtocolError::MessageTooLarge {
                id: id.0,
                size,
                max,
            });
        }
        None
    }

    /// Writes a chunk to `id`'s sink and frees its credit. `precredited`: its
    /// stream credit was already returned (it was buffered first). The chunk's link
    /// credit is freed whatever happens; false if the stream is gone (not
    /// spooling, or refused because the sink failed).
    fn write_to_sink(&mut self, id: StreamId, chunk: Bytes, precredited: bool) -> bool {
        let n = chunk.len() as u64;
        self.free_link(n);
        let Some(Inbound {
            body: Body::Sink(sb),
            ..
        }) = self.streams.get_mut(&id)
        else {
            return false;
        };
        if n == 0 {
            return true;
        }
        match sb.sink.write(chunk) {
            Ok(Accepted::Consumed) => {
                if !precredited {
                    self.free_stream(id, n);
                }
                true
            }
            Ok(Accepted::Pending) => {
                sb.pending = sb.pending.saturating_add(n);
                if precredited {
                    sb.precredited = sb.precredited.saturating_add(n);
                }
                true
            }
            Err(e) => {
                self.refuse(id, sink_failed(id, e));
                false
            }
        }
    }

    /// FIN or END: hands an in-memory message out, or finishes the sink.
    fn complete(&mut self, id: StreamId) {
        let Some(inbound) = self.take_stream(id) else {
            return;
        };
        self.stream_ready.remove(&id);
        let len = inbound.window.received();
        match inbound.body {
            Body::Memory(m) => {
                self.buffered = self.buffered.saturating_sub(m.len());
                self.set_allocated(self.allocated.saturating_sub(m.capacity()));
                self.undelivered = self.undelivered.saturating_add(m.len());
                self.events.push_back(InboundEvent::Message {
                    head: m.head,
                    body: Bytes::from(m.buf),
                });
            }
            Body::Sink(mut sb) => match sb.sink.finish() {
                Ok(()) => self
                    .events
                    .push_back(InboundEvent::StreamFinished { stream: id, len }),
                Err(e) => {
                    sb.sink.abort(e.code);
                    self.refused(id, sink_failed(id, e));
                }
            },
        }
    }

    // ---- refusal and cleanup ----------------------------------------------------

    /// Refuses a live stream: cleanup, tombstone, [`InboundEvent::Refused`].
    fn refuse(&mut self, id: StreamId, error: ProtocolError) {
        if let Some(inbound) = self.take_stream(id) {
            self.discard(id, inbound, error.code());
        }
        self.refused(id, error);
    }

    /// Records a refusal of a stream that holds nothing (any more).
    fn refused(&mut self, id: StreamId, error: ProtocolError) {
        self.stream_ready.remove(&id);
        self.tombstones.insert(id);
        self.events.push_back(InboundEvent::Refused {
            stream: id,
            code: error.code(),
            error,
        });
    }

    /// Drops a removed stream's body: buffer freed (with its link credit), sink
    /// aborted; its queued stream credit is dropped.
    fn discard(&mut self, id: StreamId, inbound: Inbound, code: ErrorCode) {
        self.stream_ready.remove(&id);
        match inbound.body {
            Body::Memory(m) => {
                self.buffered = self.buffered.saturating_sub(m.len());
                self.set_allocated(self.allocated.saturating_sub(m.capacity()));
                self.free_link(m.len());
            }
            Body::Sink(mut sb) => sb.sink.abort(code),
        }
    }

    // ---- credit ---------------------------------------------------------------

    fn receive_link(&mut self, n: u64) -> Result<(), ProtocolError> {
        self.link
            .receive(n)
            .map_err(|excess| ProtocolError::FlowControl { id: 0, excess })?;
        self.stalls.link_credit(self.link.available());
        Ok(())
    }

    fn free_link(&mut self, n: u64) {
        if let Some(increment) = self.link.free(n) {
            self.link_ready = self.link_ready.saturating_add(increment);
            self.stalls.link_credit(self.link.available());
        }
    }

    fn free_stream(&mut self, id: StreamId, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(inbound) = self.streams.get_mut(&id) {
            if let Some(increment) = inbound.window.free(n) {
                let ready = self.stream_ready.entry(id).or_insert(0);
                *ready = ready.saturating_add(increment);
                self.stalls
                    .stream_credit(id, &mut inbound.stall, inbound.window.available());
            }
        }
    }

    /// Removes a live stream (and its stall deadline).
    fn take_stream(&mut self, id: StreamId) -> Option<Inbound> {
        let inbound = self.streams.remove(&id)?;
        self.stalls.remove(id, &inbound.stall);
        self.streams_changed();
        Some(inbound)
    }
}

/// Stream id 0 is the link's (CREDIT); a message on it breaks the framing.
fn check_stream_id(id: StreamId) -> Result<(), ProtocolError> {
    if id == Credit::LINK {
        return Err(ProtocolError::BadStreamId { id: 0 });
    }
    Ok(())
}

/// The refusal of a stream whose sink failed.
fn sink_failed(id: StreamId, e: SinkError) -> ProtocolError {
    ProtocolError::Sink {
        id: id.0,
        code: e.code,
        reason: e.reason,
    }
}
