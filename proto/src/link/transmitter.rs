//! The outbound half of a link: the priority [`Scheduler`], the framing encoder and
//! per-message progress.
//!
//! A [`Transmitter`] obeys the [`Command`]s a [`Session`](super::Session) emits and
//! turns scheduled frames into wire bytes when the transport can take them. In
//! [`Link`](super::Link) both halves live in one struct; the actor runtime puts the
//! transmitter in the scheduler actor and the session in the link actor, and the
//! commands travel between them as messages. Either way the same code runs.

use super::command::{Command, TellPeer};
use super::{Counters, LinkConfig, ReliableStats, TransmitterStats};
use crate::error::ProtocolError;
use crate::frame::MIN_MAX_FRAME_LEN;
use crate::frame::{Ack, Cancel, Credit, Envelope, Frame, Hello};
use crate::framing::{Framer, FramingKind, WireOut};
use crate::ids::StreamId;
use crate::reliable::{PacingConfig, Sender};
use crate::scheduler::{Scheduler, SchedulerConfig, SchedulerEvent};
use crate::time::Instant;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};

/// The value of the PING that probes a silent peer with nothing in flight.
const PROBE_PING: u64 = 0x7072_6f62_6550_494e; // "probePIN"

/// Outbound progress of one message, fit for a progress bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Body bytes handed to the wire.
    pub sent: u64,
    /// The body's whole length, if known.
    pub total: Option<u64>,
}

/// Scheduler, encoder and progress of one link's outbound direction.
pub struct Transmitter {
    scheduler: Scheduler,
    framer: Framer,
    chunk_len: usize,
    progress: BTreeMap<StreamId, Progress>,
    head_scratch: Vec<u8>,
    frames_out: u64,
    bytes_out: u64,
    /// Body bytes of new OPEN and DATA frames sent.
    payload_out: u64,
    /// Retransmissions of the reliable senders replaced by a new session.
    retransmissions_before: u64,
    /// Tail-loss probes of the senders retired before the current one.
    tail_probes_before: u64,
    failed: bool,
    /// The reliable mode's sending half, once both sides agreed to it.
    reliable: Option<Sender>,
    /// The latest acknowledgement to send, ahead of everything.
    ack: Option<Ack>,
    /// Pacing for the reliable mode's sender, when it is on.
    pacing: Option<PacingConfig>,
    /// Frames wait for the pacer until then ([`Transmitter::poll_timeout`]).
    paced_until: Option<Instant>,
    now: Instant,
    /// A HELLO to send first; while `paused` (reconnecting) nothing else goes out.
    hello: Option<Hello>,
    paused: bool,
    scheduler_config: SchedulerConfig,
    framing: FramingKind,
    max_frame_len: usize,
    /// The authenticated mode's outbound state, when it is on.
    #[cfg(feature = "secure")]
    secure: Option<SecureTx>,
}

/// The outbound side of the authenticated mode: handshake frames to send in the
/// clear, then the sealer every frame goes through.
#[cfg(feature = "secure")]
#[derive(Debug, Default)]
struct SecureTx {
    handshake: alloc::collections::VecDeque<Bytes>,
    sealer: Option<crate::secure::Sealer>,
    sealed: Vec<u8>,
}

impl Transmitter {
    /// An idle transmitter for a link set up with `config`.
    pub fn new(config: &LinkConfig) -> Transmitter {
        let scheduler_config = SchedulerConfig {
            chunk_len: config.chunk_len,
            class_weights: config.class_weights,
            ..SchedulerConfig::default()
        };
        let max_frame_len = config.max_frame_len.max(MIN_MAX_FRAME_LEN);
        Transmitter {
            scheduler: Scheduler::new(scheduler_config),
            framer: Framer::new(config.framing, max_frame_len),
            chunk_len: config.chunk_len,
            progress: BTreeMap::new(),
            head_scratch: Vec::with_capacity(64),
            frames_out: 0,
            bytes_out: 0,
            payload_out: 0,
            retransmissions_before: 0,
            tail_probes_before: 0,
            failed: false,
            reliable: None,
            ack: None,
            pacing: config.pacing,
            paced_until: None,
            now: Instant::ZERO,
            hello: None,
            paused: false,
            scheduler_config,
            framing: config.framing,
            max_frame_len,
            #[cfg(feature = "secure")]
            secure: config.secure.as_ref().map(|_| SecureTx::default()),
        }
    }

    /// Carries out one command of the session.
    pub fn apply(&mut self, command: Command) {
        match command {
            Command::Control(frame) => self.scheduler.push_control(frame),
            Command::Enqueue { open, body } => {
                let stream = open.stream;
                let total = body.total_len();
                match self.scheduler.enqueue(open, body) {
                    Ok(()) => {
                        self.progress.insert(stream, Progress { sent: 0, total });
                    }
                    // The session validated the head and allocated a fresh id, so
                    // this means a bug; the stream is dropped and the peer told.
                    Err(error) => {
                        self.scheduler.push_control(Frame::Cancel(Cancel {
                            stream,
                            code: error.code(),
                        }));
                    }
                }
            }
            Command::Cancel {
                stream,
                code,
                tell_peer,
            } => {
                let mut known = self.scheduler.cancel(stream).is_some();
                known |= self.progress.remove(&stream).is_some();
                let tell = match tell_peer {
                    TellPeer::Always => true,
                    TellPeer::IfSending => known,
                    TellPeer::Never => false,
                };
                if tell && !self.failed {
                    self.scheduler
                        .push_control(Frame::Cancel(Cancel { stream, code }));
                }
            }
            Command::Credit(Credit { stream, increment }) => {
                self.scheduler.add_credit(stream, increment)
            }
            Command::PeerHello {
                stream_window,
                link_window,
                max_chunk_len,
                reliable,
            } => {
                self.retire_sender();
                self.reliable = reliable.map(|r| {
                    Sender::new(r.window, r.max_sends, r.rto)
                        .with_pacing(self.pacing)
                        .with_tail_probe(Some(r.ack_delay))
                });
                if self.chunk_len > max_chunk_len {
                    self.set_chunk_len(max_chunk_len);
                }
                self.scheduler.set_initial_stream_credit(stream_window);
                self.scheduler.add_credit(Credit::LINK, link_window);
            }
            Command::Hello(hello) => self.hello = Some(hello),
            Command::Reconnect => {
                self.framer = Framer::new(self.framing, self.max_frame_len);
                self.paused = true;
                self.ack = None;
                #[cfg(feature = "secure")]
                if let Some(secure) = self.secure.as_mut() {
                    secure.handshake.clear();
                    secure.sealer = None;
                }
            }
            Command::Resume { peer_received } => {
                if let Some(sender) = self.reliable.as_mut() {
                    sender.resume(peer_received);
                }
                self.paused = false;
            }
            Command::Reset => {
                self.scheduler = Scheduler::new(SchedulerConfig {
                    chunk_len: self.chunk_len,
                    ..self.scheduler_config
                });
                self.progress.clear();
                self.retire_sender();
                self.reliable = None;
                self.ack = None;
                self.paused = false;
            }
            Command::Ack(ack) => self.ack = Some(ack),
            Command::PeerAck(ack) => {
                let now = self.now;
                if let Some(sender) = self.reliable.as_mut() {
                    sender.on_ack(ack, now);
                }
            }
            Command::Probe => {
                let probed = self.reliable.as_mut().is_some_and(Sender::probe);
                if !probed {
                    self.scheduler
                        .push_control(Frame::Ping(crate::frame::Ping { opaque: PROBE_PING }));
                }
            }
            Command::Heard => {
                if let Some(sender) = self.reliable.as_mut() {
                    sender.revive();
                }
            }
            Command::Fail(goaway) => {
                self.scheduler.push_control(Frame::GoAway(goaway));
                self.failed = true;
            }
            #[cfg(feature = "secure")]
            Command::SecureSend(frame) => {
                self.secure
                    .get_or_insert_with(SecureTx::default)
                    .handshake
                    .push_back(frame);
            }
            #[cfg(feature = "secure")]
            Command::SecureReady(sealer) => {
                self.secure.get_or_insert_with(SecureTx::default).sealer = Some(sealer);
            }
        }
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

    /// The chunk size in use.
    pub fn chunk_len(&self) -> usize {
        self.chunk_len
    }

    /// Changes the chunk size for chunks cut from now on.
    pub fn set_chunk_len(&mut self, chunk_len: usize) {
        self.chunk_len = chunk_len;
        self.scheduler.set_chunk_len(chunk_len);
    }

    /// Outbound progress of a message still sending.
    pub fn progress(&self, stream: StreamId) -> Option<Progress> {
        self.progress.get(&stream).copied()
    }

    /// Streamed-body bytes queued but not yet sent, to bound read-ahead.
    pub fn queued_body_bytes(&self, stream: StreamId) -> Option<u64> {
        self.scheduler.queued_body_bytes(stream)
    }

    /// Appends the next framed frame to `dst`; returns the wire bytes added, 0 when
    /// nothing is ready. Call whenever the transport can take more.
    ///
    /// In the reliable mode the order is: a pending ACK, then frames due for
    /// retransmission, then new frames while the window has room. With pacing,
    /// retransmissions and new message frames wait for the pacer's release time
    /// and new ones for room under its in-flight cap; ACKs, control frames and
    /// Urgent message frames do not wait for the release time (Urgent ones do
    /// for the cap), and every sequenced frame's bytes count against the rate.
    pub fn poll_transmit(&mut self, dst: &mut impl WireOut) -> usize {
        #[cfg(feature = "secure")]
        if let Some(secure) = self.secure.as_mut() {
            if let Some(frame) = secure.handshake.pop_front() {
                return self.write_plain(&frame, &Bytes::new(), dst);
            }
            // Before the keys only a failed link's GOAWAY leaves (in the clear: the
            // peer failed the handshake, there is nothing to seal with).
            if secure.sealer.is_none() && !self.failed {
                return 0;
            }
        }
        if let Some(hello) = self.hello.take() {
            return self.encode(&Envelope::from(Frame::Hello(hello)), dst);
        }
        if self.paused {
            return 0;
        }
        let now = self.now;
        let frame = if self.failed {
            // The GOAWAY saying why, and the control frames queued before it, then
            // nothing: no body bytes, no retransmissions, whatever the window.
            self.scheduler.poll_control()
        } else {
            if let Some(ack) = self.ack.take() {
                return self.encode(&Envelope::from(Frame::Ack(ack)), dst);
            }
            self.paced_until = None;
            match self.reliable.as_mut() {
                Some(sender) => {
                    let paced = sender.may_send_paced(now);
                    if paced {
                        if let Some((head, payload)) = sender.poll_retransmit(now) {
                            return self.write(&head, &payload, dst);
                        }
                    }
                    if !sender.can_send() {
                        return 0;
                    }
                    let open = sender.window_open();
                    let frame = if paced && open {
                        self.scheduler.poll_transmit()
                    } else {
                        self.scheduler.poll_urgent(open)
                    };
                    if frame.is_none() {
                        if paced && open {
                            sender.set_app_limited();
                        } else if !paced && (sender.has_retransmit() || !self.scheduler.is_idle()) {
                            self.paced_until = sender.paced_release();
                        }
                    }
                    frame
                }
                None => self.scheduler.poll_transmit(),
            }
        };
        let Some(frame) = frame else {
            return 0;
        };
        if let (Some(stream), len) = (frame.stream(), frame.body_len()) {
            self.payload_out += len as u64;
            if let Some(p) = self.progress.get_mut(&stream) {
                p.sent += len as u64;
            }
        }
        let Some(sender) = self.reliable.as_mut() else {
            return self.encode(&Envelope::from(frame), dst);
        };
        let envelope = Envelope {
            seq: Some(sender.next_seq()),
            frame,
        };
        let mut head = BytesMut::with_capacity(envelope.head_len());
        envelope.encode_head(&mut head);
        let (head, payload) = (head.freeze(), envelope.frame.payload_bytes());
        sender.record(head.clone(), payload.clone(), now);
        self.write(&head, &payload, dst)
    }

    fn encode(&mut self, envelope: &Envelope, dst: &mut impl WireOut) -> usize {
        self.head_scratch.clear();
        envelope.encode_head(&mut self.head_scratch);
        let head = core::mem::take(&mut self.head_scratch);
        let written = self.write(&head, &envelope.frame.payload_bytes(), dst);
        self.head_scratch = head;
        written
    }

    fn write(&mut self, head: &[u8], payload: &Bytes, dst: &mut impl WireOut) -> usize {
        #[cfg(feature = "secure")]
        if let Some(secure) = self.secure.as_mut() {
            if let Some(sealer) = secure.sealer.as_mut() {
                let mut sealed = core::mem::take(&mut secure.sealed);
                if sealer.seal(head, payload, &mut sealed).is_err() {
                    // A frame the cipher cannot take (counter exhausted): nothing
                    // more can leave this transport.
                    self.failed = true;
                    secure.sealed = sealed;
                    return 0;
                }
                let written = self.write_plain(&sealed, &Bytes::new(), dst);
                if let Some(secure) = self.secure.as_mut() {
                    secure.sealed = sealed;
                }
                return written;
            }
        }
        self.write_plain(head, payload, dst)
    }

    /// Frames `head ‖ payload` as it is (no sealing).
    fn write_plain(&mut self, head: &[u8], payload: &Bytes, dst: &mut impl WireOut) -> usize {
        let before = dst.wire_len();
        dst.put_frame(&mut self.framer, head, payload);
        let written = dst.wire_len() - before;
        self.frames_out += 1;
        self.bytes_out += written as u64;
        written
    }

    /// Sets the time the reliable mode stamps frames with (call before polling).
    pub fn set_now(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// When [`Transmitter::handle_timeout`] must run next (the retransmission
    /// timer), or when frames held back by the pacer may leave: poll again then.
    /// The transmitter knows only the last time it was given, so a pacing
    /// deadline set while polling may already be due: check after polling.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let rto = self.reliable.as_ref().and_then(Sender::poll_timeout);
        match (rto, self.paced_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: a retransmission timer that expired queues its frame again.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.set_now(now);
        if self.paced_until.is_some_and(|at| at <= now) {
            self.paced_until = None;
        }
        if let Some(sender) = self.reliable.as_mut() {
            sender.handle_timeout(now);
        }
    }

    /// The session failed ([`Command::Fail`]): only its GOAWAY and the control
    /// frames queued before it still leave.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The reliable mode gave up on a frame: the peer is unreachable.
    pub fn is_dead(&self) -> bool {
        self.reliable.as_ref().is_some_and(Sender::is_failed)
    }

    /// Why the link must fail because of its outbound side, if it must: the
    /// reliable mode gave up on a frame ([`ProtocolError::Unresponsive`]), or the
    /// peer provoked more control frames than may queue without reading them
    /// ([`ProtocolError::Backlog`]). Hand it to [`Session::transmitter_failed`](super::Session::transmitter_failed).
    pub fn failure(&self) -> Option<ProtocolError> {
        if self.is_dead() {
            return Some(ProtocolError::Unresponsive {
                what: "reliable-mode frame never acknowledged",
            });
        }
        self.scheduler.backlog().cloned()
    }

    /// The rate the pacer lets frames leave at, bytes per second: `None` without
    /// pacing, or before the path's delivery rate was first measured.
    pub fn pacing_rate(&self) -> Option<u64> {
        self.reliable
            .as_ref()
            .and_then(Sender::pacer)
            .and_then(|p| p.pacing_rate())
    }

    /// The reliable mode's frames in flight, retransmissions and round-trip
    /// estimate, if it is on.
    pub fn reliable_stats(&self) -> Option<ReliableStats> {
        self.reliable.as_ref().map(|s| ReliableStats {
            in_flight: s.in_flight(),
            in_flight_bytes: s.in_flight_bytes(),
            retransmissions: self.retransmissions_before + s.retransmissions(),
            tail_probes: self.tail_probes_before + s.tail_probes(),
            srtt: s.rtt().srtt(),
            rttvar: s.rtt().rttvar(),
            rto: s.rto(),
        })
    }

    /// A new session replaces the reliable sender: its retransmissions still count.
    fn retire_sender(&mut self) {
        if let Some(sender) = self.reliable.as_ref() {
            self.retransmissions_before += sender.retransmissions();
            self.tail_probes_before += sender.tail_probes();
        }
    }

    /// The outbound half's counters and state (no allocation).
    pub fn stats(&self) -> TransmitterStats {
        TransmitterStats {
            frames_out: self.frames_out,
            bytes_out: self.bytes_out,
            payload_out: self.payload_out,
            queued_bytes: self.scheduler.queued_bytes(),
            streams_out: self.scheduler.stream_count(),
            reliable: self.reliable_stats(),
            pacing_rate: self.pacing_rate(),
        }
    }

    /// Appends frames to `dst` until about `budget` wire bytes were added or nothing is
    /// ready; for fast links, where one large write beats many small ones.
    pub fn poll_transmit_batch(&mut self, dst: &mut impl WireOut, budget: usize) -> usize {
        let mut total = 0;
        while total < budget {
            match self.poll_transmit(dst) {
                0 => break,
                n => total += n,
            }
        }
        total
    }

    /// The next scheduler event: a message fully sent, or a streamed body wanting more.
    pub fn poll_event(&mut self) -> Option<SchedulerEvent> {
        let event = self.scheduler.poll_event()?;
        if let SchedulerEvent::Sent { stream } = event {
            self.progress.remove(&stream);
        }
        Some(event)
    }

    /// True when nothing at all waits to be sent.
    pub fn is_idle(&self) -> bool {
        #[cfg(feature = "secure")]
        if let Some(secure) = self.secure.as_ref() {
            if !secure.handshake.is_empty() {
                return false;
            }
            if secure.sealer.is_none() {
                return true;
            }
        }
        self.hello.is_none() && (self.paused || (self.scheduler.is_idle() && self.ack.is_none()))
    }

    /// Frames and wire bytes produced.
    pub fn counters(&self) -> Counters {
        Counters {
            frames: self.frames_out,
            bytes: self.bytes_out,
        }
    }
}
