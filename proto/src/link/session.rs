//! The inbound half of a link and its bookkeeping: handshake, stream ids, which
//! requests await answers, reassembly and flow control of what the peer sends.
//!
//! A [`Session`] never touches the scheduler: whatever the outbound side must do
//! (queue a message, send a control frame, add credit, stop a stream) comes out of
//! [`Session::poll_command`] as a [`Command`] for a [`Transmitter`](super::Transmitter).

use super::command::{Command, TellPeer};
use super::{Counters, LinkConfig, LinkEvent, Message, SessionStats};
use crate::error::{ErrorCode, ProtocolError};
use crate::frame::MIN_MAX_FRAME_LEN;
use crate::frame::{
    self, Cancel, Credit, Envelope, Frame, GoAway, Hello, Open, Ping, Pong, SessionResume,
};
use crate::framing::{Framer, Framing, FramingKind, FramingStats};
use crate::ids::{MessageKind, Parity, StreamId};
use crate::reassembly::{InboundEvent, Reassembly, ReassemblyConfig, SinkFactory};
use crate::reliable::Receiver;
use crate::time::Instant;
use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use bytes::{Bytes, BytesMut};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Handshaking,
    Connected,
    /// GOAWAY sent or received: no new streams.
    Closing,
    /// Fatal error: nothing more is read.
    Failed,
}

/// Longest list of recently closed peer streams whose in-flight frames are ignored.
const CLOSED_MEMORY: usize = 1024;

/// The reassembler's part of a link's configuration.
fn reassembly_config(config: &LinkConfig) -> ReassemblyConfig {
    ReassemblyConfig {
        limits: config.limits,
        stream_window: config.stream_window,
        link_window: config.link_window,
        stall_timeout: config.stall_timeout,
    }
}

/// Handshake, ids, answers and reassembly of one link.
pub struct Session {
    config: LinkConfig,
    state: State,
    parity: Parity,
    next_id: u64,
    highest_peer_id: u64,
    framer: Framer,
    /// Received bytes not yet decoded (the start of a frame still arriving); in
    /// [`Session::handle_input_buf`] they live in the caller's buffer in between.
    rx: BytesMut,
    /// Of those, how many `bytes_in` already counted.
    rx_counted: usize,
    /// See [`Session::set_read_ahead`].
    read_ahead: usize,
    reassembly: Reassembly,
    /// Our requests still expecting an answer.
    awaiting_answer: BTreeSet<StreamId>,
    /// Peer requests we have not answered yet.
    unanswered: BTreeSet<StreamId>,
    /// Streams whose late frames are dropped silently (canceled answers), oldest
    /// first, and the same ids as a set for the per-frame lookup.
    closed: VecDeque<StreamId>,
    closed_set: BTreeSet<StreamId>,
    events: VecDeque<LinkEvent>,
    commands: VecDeque<Command>,
    /// The peer's session id from its first HELLO (reliable mode).
    peer_session: Option<u64>,
    frames_in: u64,
    bytes_in: u64,
    /// Body bytes of the OPEN and DATA frames dispatched.
    payload_in: u64,
    /// Duplicates counted by reliable receivers a new session replaced.
    duplicates_before: u64,
    /// What the decoders of earlier transports counted.
    framing_before: FramingStats,
    /// The reliable mode's receiving half, once both sides agreed to it.
    reliable: Option<Receiver>,
    /// Frames the reliable receiver released in order, waiting for dispatch.
    in_order: VecDeque<Frame>,
    /// Latest time seen, and the keepalive's state.
    now: Instant,
    last_heard: Instant,
    pings_unanswered: u32,
    /// The peer stopped answering ([`LinkConfig::supervised`]): from
    /// [`LinkEvent::Silent`] until a frame from it arrives.
    silent: bool,
    /// The authenticated mode's inbound state, when it is on.
    #[cfg(feature = "secure")]
    secure: Option<crate::secure::SecureLink>,
    /// Our HELLO waits for the handshake of the authenticated mode.
    hello_pending: bool,
    /// When our latest HELLO was queued (a repeat waits a retransmission
    /// timeout after it: see [`Session::probe`]).
    hello_at: Instant,
    /// The latest PING of the current read, answered once the read is decoded.
    pending_pong: Option<u64>,
}

impl Session {
    /// A new session; its HELLO is the first command it emits.
    ///
    /// `sinks` receives inbound messages above the spool threshold; without one,
    /// such messages are refused with [`ErrorCode::TooLarge`].
    pub fn new(config: LinkConfig, sinks: Option<Box<dyn SinkFactory>>) -> Session {
        let max_frame_len = Self::wire_frame_len(&config);
        let reassembly =
            Reassembly::with_budget(reassembly_config(&config), sinks, config.budget.clone());
        let mut session = Session {
            framer: Framer::new(config.framing, max_frame_len),
            config,
            state: State::Handshaking,
            parity: Parity::Odd,
            next_id: 0,
            highest_peer_id: 0,
            rx: BytesMut::new(),
            rx_counted: 0,
            read_ahead: 0,
            reassembly,
            awaiting_answer: BTreeSet::new(),
            unanswered: BTreeSet::new(),
            closed: VecDeque::new(),
            closed_set: BTreeSet::new(),
            events: VecDeque::new(),
            commands: VecDeque::new(),
            frames_in: 0,
            bytes_in: 0,
            payload_in: 0,
            duplicates_before: 0,
            framing_before: FramingStats::default(),
            reliable: None,
            in_order: VecDeque::new(),
            now: Instant::ZERO,
            last_heard: Instant::ZERO,
            pings_unanswered: 0,
            silent: false,
            pending_pong: None,
            peer_session: None,
            #[cfg(feature = "secure")]
            secure: None,
            hello_pending: true,
            hello_at: Instant::ZERO,
        };
        #[cfg(feature = "secure")]
        if let Some(role) = session.config.secure.clone() {
            session.secure = Some(crate::secure::SecureLink::new(role));
            session.start_secure();
        }
        session.send_hello_when_ready();
        session
    }

    /// Largest frame the decoder takes: the protocol's limit, plus what sealing adds
    /// in the authenticated mode.
    fn wire_frame_len(config: &LinkConfig) -> usize {
        let max = config.max_frame_len.max(MIN_MAX_FRAME_LEN);
        #[cfg(feature = "secure")]
        if config.secure.is_some() {
            return max + crate::secure::MAX_SEAL_OVERHEAD;
        }
        max
    }

    /// Queues our HELLO once the transport can carry it (at once, or after the
    /// authenticated mode's handshake).
    fn send_hello_when_ready(&mut self) {
        if !self.hello_pending || self.state == State::Failed {
            return;
        }
        #[cfg(feature = "secure")]
        if self.secure.as_ref().is_some_and(|s| !s.is_open()) {
            return;
        }
        self.hello_pending = false;
        self.hello_at = self.now;
        let hello = self.hello();
        self.commands.push_back(Command::Hello(hello));
    }

    /// Starts the authenticated mode's handshake on a new transport.
    #[cfg(feature = "secure")]
    fn start_secure(&mut self) {
        let now = self.now;
        let Some(secure) = self.secure.as_mut() else {
            return;
        };
        match secure.start(now) {
            Ok(()) => self.pump_secure(),
            Err(error) => self.fail(ProtocolError::Secure(error)),
        }
    }

    /// Moves the authenticated mode's requests to the transmitter.
    #[cfg(feature = "secure")]
    fn pump_secure(&mut self) {
        let Some(secure) = self.secure.as_mut() else {
            return;
        };
        while let Some(output) = secure.poll_output() {
            self.commands.push_back(match output {
                crate::secure::SecureOutput::Send(frame) => Command::SecureSend(frame),
                crate::secure::SecureOutput::Ready(sealer) => Command::SecureReady(sealer),
            });
        }
        self.send_hello_when_ready();
    }

    /// A frame from the framing, opened in the authenticated mode: `None` when it
    /// was a handshake frame or a damaged frame a lossy line drops.
    #[cfg(feature = "secure")]
    fn unseal(&mut self, raw: Bytes) -> Result<Option<Bytes>, ProtocolError> {
        use crate::secure::Inbound;
        let Some(secure) = self.secure.as_mut() else {
            if crate::secure::handshake::is_handshake_frame(&raw) {
                return Err(ProtocolError::Secure(
                    crate::error::SecureError::NotConfigured,
                ));
            }
            return Ok(Some(raw));
        };
        let result = secure.handle(raw);
        self.pump_secure();
        match result {
            Ok(Inbound::Frame(frame)) => Ok(Some(frame)),
            Ok(Inbound::Consumed) => Ok(None),
            Err(error) if error.is_frame_fault() && self.config.framing == FramingKind::Serial => {
                Ok(None)
            }
            Err(error) => Err(ProtocolError::Secure(error)),
        }
    }

    #[cfg(not(feature = "secure"))]
    fn unseal(&mut self, raw: Bytes) -> Result<Option<Bytes>, ProtocolError> {
        Ok(Some(raw))
    }

    /// The authenticated peer of the current transport (authenticated mode).
    #[cfg(feature = "secure")]
    pub fn secure_peer(&self) -> Option<&crate::secure::KeyId> {
        self.secure.as_ref().and_then(|s| s.peer())
    }

    /// The authenticated mode's state (handshake, peer, resume secret), if on.
    #[cfg(feature = "secure")]
    pub fn secure(&self) -> Option<&crate::secure::SecureLink> {
        self.secure.as_ref()
    }

    /// The authenticated mode's counters, if it is on.
    #[cfg(feature = "secure")]
    pub fn secure_stats(&self) -> Option<&crate::secure::SecureStats> {
        self.secure.as_ref().map(|s| s.stats())
    }

    /// [`Session::reconnect`] on a transport whose handshake the runtime already ran
    /// (an accepting endpoint ran it to read the first HELLO and find this session).
    #[cfg(feature = "secure")]
    pub fn reconnect_established(&mut self, established: crate::secure::Established) {
        if self.state == State::Failed {
            return;
        }
        if self.secure.is_none() {
            self.secure = Some(crate::secure::SecureLink::new(
                crate::secure::SecureRole::Established(established.clone()),
            ));
        }
        self.restart_transport();
        if let Some(secure) = self.secure.as_mut() {
            secure.start_established(established);
        }
        self.pump_secure();
    }

    /// Our HELLO: limits, features, and the session to resume (reliable mode).
    fn hello(&self) -> Hello {
        let mut hello = Hello::new(self.config.nonce);
        hello.max_frame_len = self.config.max_frame_len.max(MIN_MAX_FRAME_LEN) as u64;
        hello.stream_window = self.config.stream_window;
        hello.link_window = self.config.link_window;
        if self.config.reliable.is_some() {
            hello.features |= frame::features::RELIABLE;
            hello.session = Some(SessionResume {
                id: self.config.session_id,
                received: self.reliable_received().unwrap_or(0),
            });
            #[cfg(feature = "secure")]
            {
                hello.resume_proof = self
                    .secure
                    .as_ref()
                    .and_then(|s| s.resume_proof(self.config.session_id));
            }
        }
        hello
    }

    /// The transport was replaced: start the handshake again on the new one. With
    /// the reliable mode the peer's HELLO then resumes the session (or reports that
    /// the peer lost it); without it, in-flight messages cannot be recovered and
    /// the peer's HELLO resets the session.
    pub fn reconnect(&mut self) {
        if self.state == State::Failed {
            return;
        }
        self.restart_transport();
        #[cfg(feature = "secure")]
        self.start_secure();
        self.send_hello_when_ready();
    }

    fn restart_transport(&mut self) {
        self.state = State::Handshaking;
        self.framing_before.add(self.framer.stats());
        self.framer = Framer::new(self.config.framing, Self::wire_frame_len(&self.config));
        self.framer.set_read_ahead(self.read_ahead);
        self.rx.clear();
        self.rx_counted = 0;
        self.pings_unanswered = 0;
        self.last_heard = self.now;
        // A new transport is a new chance: the handshake, not probes, tells
        // whether the peer is there (a silence resumes with the session).
        self.silent = false;
        self.commands.push_back(Command::Reconnect);
        self.hello_pending = true;
    }

    /// True once the HELLO exchange completed and until the link closes.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// True after a fatal error.
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// Frames decoded and wire bytes consumed.
    pub fn counters(&self) -> Counters {
        Counters {
            frames: self.frames_in,
            bytes: self.bytes_in,
        }
    }

    /// The inbound half's counters and state (no allocation).
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            frames_in: self.frames_in,
            bytes_in: self.bytes_in,
            payload_in: self.payload_in,
            framing: self.framing_stats_total(),
            #[cfg(feature = "secure")]
            secure: self.secure_stats().copied().unwrap_or_default(),
            duplicates: self.duplicates_before
                + self.reliable.as_ref().map_or(0, Receiver::duplicates),
            streams_in: self.reassembly.live_streams(),
            buffered_bytes: self.reassembly.buffered_bytes(),
            awaiting_answer: self.awaiting_answer.len(),
            unanswered: self.unanswered.len(),
        }
    }

    /// A new session replaces the reliable receiver: its duplicates still count.
    fn retire_receiver(&mut self) {
        if let Some(receiver) = self.reliable.take() {
            self.duplicates_before += receiver.duplicates();
        }
    }

    /// The framing decoders' counters over the link's life (every transport).
    fn framing_stats_total(&self) -> FramingStats {
        let mut total = self.framing_before;
        total.add(self.framer.stats());
        total
    }

    /// The current transport's framing decoder's counters (drops by reason);
    /// [`Session::stats`] has them over every transport.
    pub fn framing_stats(&self) -> &FramingStats {
        self.framer.stats()
    }

    /// Bytes of inbound messages held in memory.
    pub fn buffered_bytes(&self) -> u64 {
        self.reassembly.buffered_bytes()
    }

    // ----- user calls -------------------------------------------------------------

    fn allocate(&mut self) -> Result<StreamId, ProtocolError> {
        // While reconnecting, new messages queue and leave once the session
        // resumes (or fail with `PeerReset` if the peer lost it).
        let reconnecting = self.state == State::Handshaking && self.peer_session.is_some();
        if self.state == State::Closing {
            return Err(ProtocolError::GoingAway);
        }
        if self.state != State::Connected && !reconnecting {
            return Err(ProtocolError::InvalidState {
                reason: "link not connected (handshake pending or failed)",
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

    fn enqueue(&mut self, message: Message, kind: MessageKind) -> Result<StreamId, ProtocolError> {
        let (open, body) = message.into_parts(StreamId(0), kind);
        open.validate()?;
        let stream = self.allocate()?;
        let open = Open { stream, ..open };
        self.commands.push_back(Command::Enqueue { open, body });
        Ok(stream)
    }

    /// Sends a request; its answer arrives as a [`LinkEvent::Message`] on the returned id.
    pub fn request(&mut self, message: Message) -> Result<StreamId, ProtocolError> {
        let stream = self.enqueue(message, MessageKind::Request)?;
        self.awaiting_answer.insert(stream);
        Ok(stream)
    }

    /// Sends a one-way message.
    pub fn one_way(&mut self, message: Message) -> Result<StreamId, ProtocolError> {
        self.enqueue(message, MessageKind::OneWay)
    }

    /// Answers the peer's request `stream`: `Ok` for a response, `Err(code)` for an
    /// error response whose body explains the failure.
    pub fn respond(
        &mut self,
        stream: StreamId,
        outcome: Result<(), ErrorCode>,
        message: Message,
    ) -> Result<(), ProtocolError> {
        if !self.unanswered.contains(&stream) {
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
        open.validate()?;
        self.unanswered.remove(&stream);
        self.commands.push_back(Command::Enqueue { open, body });
        Ok(())
    }

    /// Abandons a stream in either direction: stops our chunks on the wire, drops what
    /// arrived of the peer's half, and tells the peer with CANCEL(`code`).
    pub fn cancel(&mut self, stream: StreamId, code: ErrorCode) {
        let mut known = self.awaiting_answer.remove(&stream);
        known |= self.unanswered.remove(&stream);
        self.reassembly.cancel(stream, code);
        self.remember_closed(stream);
        let tell_peer = if known {
            TellPeer::Always
        } else {
            TellPeer::IfSending
        };
        self.commands.push_back(Command::Cancel {
            stream,
            code,
            tell_peer,
        });
        self.drain_reassembly();
    }

    /// Time passed (before a local call such as [`Session::release`]: the stall
    /// timeout stamps the credit it returns with the latest time it was told).
    pub fn set_now(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.reassembly.set_now(self.now);
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
        self.commands
            .push_back(Command::Control(Frame::GoAway(GoAway {
                last_stream: StreamId(self.highest_peer_id),
                code,
                reason: reason.into(),
            })));
    }

    /// Sends a PING; the answer comes as [`LinkEvent::Pong`] with the same value.
    pub fn ping(&mut self, opaque: u64) {
        self.commands
            .push_back(Command::Control(Frame::Ping(Ping { opaque })));
    }

    /// While the peer is silent ([`LinkEvent::Silent`]), asks it for a sign of
    /// life: the oldest frame it has not acknowledged goes again (the reliable
    /// mode answers any sequenced frame, even a duplicate, with an ACK), else a
    /// PING. One probe, a frame or two on the wire; the caller chooses the
    /// backoff between probes. Does nothing when the peer is not silent.
    ///
    /// After [`Session::reconnect`] in the reliable mode, while the peer's HELLO
    /// has not come, it sends our HELLO again instead (the first may have been
    /// lost on a line that was still down; a peer that already resumed answers
    /// a repeated HELLO with its own), at most once per initial retransmission
    /// timeout (`now` is the time): an answer still on its way is not
    /// overtaken by repeats, each of which the peer would answer.
    pub fn probe(&mut self, now: Instant) {
        self.now = self.now.max(now);
        match self.state {
            State::Connected | State::Closing if self.silent => {
                self.commands.push_back(Command::Probe);
            }
            State::Handshaking if self.can_rehello() && !self.hello_pending => {
                let pause = self
                    .config
                    .reliable
                    .map_or(core::time::Duration::ZERO, |r| r.rto.initial);
                if self.now >= self.hello_at + pause {
                    self.hello_at = self.now;
                    let hello = self.hello();
                    self.commands.push_back(Command::Hello(hello));
                }
            }
            _ => {}
        }
    }

    /// True when a HELLO may be repeated on a live transport: a resumable
    /// session (the reliable mode, a peer known) without the authenticated
    /// mode (whose HELLO follows a handshake of its own).
    fn can_rehello(&self) -> bool {
        #[cfg(feature = "secure")]
        if self.secure.is_some() {
            return false;
        }
        self.config.reliable.is_some() && self.peer_session.is_some()
    }

    /// A frame of the reliable mode (sequenced, or an ACK) before the first
    /// HELLO on a serial line: the peer still runs a session with our
    /// predecessor on this line (we restarted, the line stayed), not a peer
    /// breaking the handshake. Plain links only.
    fn stale_before_hello(&self, sequenced: bool, frame: &Frame) -> bool {
        #[cfg(feature = "secure")]
        if self.secure.is_some() {
            return false;
        }
        self.peer_session.is_none()
            && self.config.framing == FramingKind::Serial
            && self.config.reliable.is_some()
            && (sequenced || matches!(frame, Frame::Ack(_)))
    }

    /// The peer said HELLO again on this transport while connected: it reopened
    /// its end of a line whose other end (ours) stayed open, repeated a HELLO
    /// whose answer was lost, or restarted. Handshake again on the same
    /// transport: our HELLO goes out, and the peer's resumes the session (or
    /// resets it).
    fn rehandshake(&mut self) {
        self.state = State::Handshaking;
        self.silent = false;
        self.pings_unanswered = 0;
        self.commands.push_back(Command::Reconnect);
        self.hello_pending = true;
        self.send_hello_when_ready();
    }

    /// True while the peer is silent ([`LinkEvent::Silent`] until
    /// [`LinkEvent::Heard`]).
    pub fn is_silent(&self) -> bool {
        self.silent
    }

    /// The peer stopped answering: fail the link, or, supervised, wait for it.
    fn unresponsive(&mut self, what: &'static str) {
        if !self.config.supervised || !matches!(self.state, State::Connected | State::Closing) {
            self.fail(ProtocolError::Unresponsive { what });
            return;
        }
        if !self.silent {
            self.silent = true;
            self.events.push_back(LinkEvent::Silent { what });
        }
    }

    // ----- output -----------------------------------------------------------------

    /// The next event for the runtime.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// The next command for the transmitter. Drain after every call.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// True when a command waits.
    pub fn has_commands(&self) -> bool {
        !self.commands.is_empty()
    }

    // ----- input ------------------------------------------------------------------

    /// Feeds bytes read from the transport. Damaged frames on the serial framing are
    /// dropped and reported as [`LinkEvent::FrameDropped`]; a fatal error fails the
    /// link (also reported as [`LinkEvent::Failed`]) and emits a GOAWAY.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<(), ProtocolError> {
        self.check_not_failed()?;
        self.rx.extend_from_slice(bytes);
        self.decode_input(now)
    }

    /// [`Session::handle_input`] without copying: frames are split off `buf`, and
    /// what stays in it is the start of a frame still arriving, with room reserved
    /// for the rest. Read the next bytes into the same `buf` (append) and call this
    /// again; a reader that does so moves every byte once, kernel to `buf`.
    pub fn handle_input_buf(
        &mut self,
        buf: &mut BytesMut,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        self.check_not_failed()?;
        if !self.rx.is_empty() {
            // Bytes given to `handle_input` before: keep the order (copy once).
            self.rx.extend_from_slice(buf);
            buf.clear();
        }
        core::mem::swap(&mut self.rx, buf);
        let result = self.decode_input(now);
        core::mem::swap(&mut self.rx, buf);
        result
    }

    /// How many bytes the caller of [`Session::handle_input_buf`] reads at a time:
    /// the stream framing keeps that much room behind an incomplete frame, so the
    /// next read needs no new buffer (see [`Length::set_read_ahead`](crate::framing::Length::set_read_ahead)).
    pub fn set_read_ahead(&mut self, bytes: usize) {
        self.read_ahead = bytes;
        self.framer.set_read_ahead(bytes);
    }

    fn check_not_failed(&self) -> Result<(), ProtocolError> {
        if self.state == State::Failed {
            return Err(ProtocolError::InvalidState {
                reason: "link failed",
            });
        }
        Ok(())
    }

    /// Decodes every complete frame in `self.rx` (bytes counted as they arrive).
    fn decode_input(&mut self, now: Instant) -> Result<(), ProtocolError> {
        self.now = self.now.max(now);
        self.bytes_in += self.rx.len().saturating_sub(self.rx_counted) as u64;
        let result = self.decode_frames();
        self.rx_counted = self.rx.len();
        result?;
        self.drain_reassembly();
        if let Some(opaque) = self.pending_pong.take() {
            self.commands
                .push_back(Command::Control(Frame::Pong(Pong { opaque })));
        }
        self.flush_ack();
        Ok(())
    }

    fn decode_frames(&mut self) -> Result<(), ProtocolError> {
        loop {
            match self.framer.decode(&mut self.rx) {
                Ok(Some(raw)) => {
                    self.frames_in += 1;
                    self.last_heard = self.now;
                    self.pings_unanswered = 0;
                    if self.silent {
                        // Any frame: the line carries the peer's bytes again.
                        self.silent = false;
                        self.commands.push_back(Command::Heard);
                        self.events.push_back(LinkEvent::Heard);
                    }
                    let raw = match self.unseal(raw) {
                        Ok(Some(raw)) => raw,
                        Ok(None) => continue,
                        Err(error) => {
                            self.fail(error.clone());
                            return Err(error);
                        }
                    };
                    let result = Envelope::decode(raw)
                        .map_err(ProtocolError::from)
                        .and_then(|env| self.receive(env));
                    if let Err(error) = result {
                        self.fail(error.clone());
                        return Err(error);
                    }
                }
                Ok(None) => return Ok(()),
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
    }

    /// A decoded frame: through the reliable receiver when that mode is on.
    fn receive(&mut self, envelope: Envelope) -> Result<(), ProtocolError> {
        let Envelope { seq, frame } = envelope;
        let hello_again = self.state == State::Connected
            && seq.is_none()
            && matches!(frame, Frame::Hello(_))
            && self.reliable.is_some()
            && self.can_rehello();
        if hello_again {
            self.rehandshake();
        }
        if self.state == State::Handshaking
            && !matches!(frame, Frame::Hello(_))
            && (self.can_rehello() || self.stale_before_hello(seq.is_some(), &frame))
        {
            // Resuming on a line whose far end stayed open: the peer's frames
            // sent before it heard our HELLO are dropped (they go again once
            // the session resumed). Or we restarted on such a line: the frames
            // of the peer's old session are dropped until it heard our HELLO
            // (which resets that session).
            return Ok(());
        }
        if self.state == State::Handshaking {
            // HELLO (first or after a reconnection) is never sequenced.
            if seq.is_some() && matches!(frame, Frame::Hello(_)) {
                return Err(ProtocolError::UnexpectedFrame {
                    frame: "HELLO",
                    reason: "a HELLO carries no sequence byte",
                });
            }
            return self.dispatch(frame);
        }
        match (self.reliable.as_mut(), seq) {
            (Some(receiver), Some(seq)) => {
                receiver.on_frame(seq, frame, self.now, &mut self.in_order);
                while let Some(frame) = self.in_order.pop_front() {
                    self.dispatch(frame)?;
                }
                Ok(())
            }
            (Some(_), None) if matches!(frame, Frame::Ack(_)) => self.dispatch(frame),
            (Some(_), None) => Err(ProtocolError::UnexpectedFrame {
                frame: frame.kind().name(),
                reason: "unsequenced frame in the reliable mode",
            }),
            (None, Some(_)) => Err(ProtocolError::UnexpectedFrame {
                frame: frame.kind().name(),
                reason: "sequenced frame without the reliable mode",
            }),
            (None, None) => self.dispatch(frame),
        }
    }

    /// Hands a due acknowledgement to the transmitter.
    fn flush_ack(&mut self) {
        if let Some(ack) = self.reliable.as_mut().and_then(|r| r.poll_ack(self.now)) {
            self.commands.push_back(Command::Ack(ack));
        }
    }

    /// When [`Session::handle_timeout`] must run next: a delayed acknowledgement,
    /// the keepalive, or an inbound stream's stall timeout.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ack = self.reliable.as_ref().and_then(Receiver::poll_timeout);
        let keepalive = match (self.config.keepalive, self.state) {
            // A silent peer is probed by the runtime, not PINGed.
            _ if self.silent => None,
            (Some(k), State::Connected | State::Closing) => {
                Some(self.last_heard + k.interval * (self.pings_unanswered + 1))
            }
            _ => None,
        };
        #[cfg(feature = "secure")]
        let keepalive = match (
            keepalive,
            self.secure.as_ref().and_then(|s| s.poll_timeout()),
        ) {
            (Some(k), Some(h)) => Some(k.min(h)),
            (k, h) => k.or(h),
        };
        let stall = match self.state {
            State::Connected | State::Closing => self.reassembly.poll_timeout(),
            _ => None,
        };
        [ack, keepalive, stall].into_iter().flatten().min()
    }

    /// Time passed: sends a delayed acknowledgement, cancels inbound streams that
    /// stalled (CANCEL `Timeout`, [`LinkEvent::Refused`] with
    /// [`ProtocolError::Stalled`]), PINGs a silent peer, fails the link after too
    /// many unanswered PINGs.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.state == State::Failed {
            return;
        }
        // Streams do not stall while the transport is being replaced.
        if matches!(self.state, State::Connected | State::Closing) {
            self.reassembly.handle_timeout(self.now);
            self.drain_reassembly();
        }
        #[cfg(feature = "secure")]
        if let Some(secure) = self.secure.as_mut() {
            secure.handle_timeout(self.now);
            self.pump_secure();
        }
        self.flush_ack();
        let Some(keepalive) = self.config.keepalive else {
            return;
        };
        if !matches!(self.state, State::Connected | State::Closing) || self.silent {
            return;
        }
        let due = self.last_heard + keepalive.interval * (self.pings_unanswered + 1);
        if self.now < due {
            return;
        }
        if self.pings_unanswered >= keepalive.max_missed {
            self.unresponsive("keepalive PINGs unanswered");
            return;
        }
        self.pings_unanswered += 1;
        self.commands.push_back(Command::Control(Frame::Ping(Ping {
            opaque: u64::from(self.pings_unanswered),
        })));
    }

    /// The peer lost our session: everything in flight is gone. Our unanswered
    /// requests are reported canceled with `PeerReset`; state starts over.
    fn reset_session(&mut self) {
        for stream in core::mem::take(&mut self.awaiting_answer) {
            self.events.push_back(LinkEvent::Canceled {
                stream,
                code: ErrorCode::PeerReset,
            });
        }
        self.unanswered.clear();
        self.closed.clear();
        self.closed_set.clear();
        self.reassembly.close(ErrorCode::PeerReset);
        while self.reassembly.poll_event().is_some() {}
        while self.reassembly.poll_credit().is_some() {}
        self.reassembly = Reassembly::with_budget(
            reassembly_config(&self.config),
            self.reassembly.take_sinks(),
            self.config.budget.clone(),
        );
        self.reassembly.heard(self.now);
        self.retire_receiver();
        self.highest_peer_id = 0;
        self.commands.push_back(Command::Reset);
        self.events.push_back(LinkEvent::PeerReset);
    }

    /// The transmitter says the link must fail ([`Transmitter::failure`](super::Transmitter::failure)):
    /// the peer is gone (reliable mode; [`LinkConfig::supervised`]: it is
    /// silent, the link waits for it), or it provoked more control frames than
    /// may queue without reading them.
    pub fn transmitter_failed(&mut self, error: ProtocolError) {
        match error {
            ProtocolError::Unresponsive { what } => self.unresponsive(what),
            error => self.fail(error),
        }
    }

    /// The peer's session id (from its HELLO, reliable mode), to route a
    /// reconnecting peer's new transport to this session.
    pub fn peer_session_id(&self) -> Option<u64> {
        self.peer_session
    }

    /// True for a stream id this side allocated (its requests and one-way messages).
    pub fn is_ours(&self, stream: StreamId) -> bool {
        self.state != State::Handshaking && stream.parity() == self.parity
    }

    /// Frames received in order in the reliable mode (the resume point).
    pub fn reliable_received(&self) -> Option<u64> {
        self.reliable.as_ref().map(Receiver::received_total)
    }

    fn fail(&mut self, error: ProtocolError) {
        if self.state == State::Failed {
            return;
        }
        self.state = State::Failed;
        // Streams being spooled are aborted (their sinks discard what they wrote).
        self.reassembly.close(error.code());
        // The PINGs read before the failure are answered ahead of the GOAWAY.
        if let Some(opaque) = self.pending_pong.take() {
            self.commands
                .push_back(Command::Control(Frame::Pong(Pong { opaque })));
        }
        self.commands.push_back(Command::Fail(GoAway {
            last_stream: StreamId(self.highest_peer_id),
            code: error.code(),
            reason: alloc::format!("{error}"),
        }));
        self.events.push_back(LinkEvent::Failed { error });
    }

    fn dispatch(&mut self, frame: Frame) -> Result<(), ProtocolError> {
        // The stall timeout runs while the peer is heard from: every frame it
        // sends, in order (a lossy line's frames held behind a gap are not yet),
        // but ACKs, which the reliable mode sends while its own frames wait
        // behind a loss.
        if !matches!(frame, Frame::Ack(_)) {
            self.reassembly.heard(self.now);
        }
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
            Frame::Open(open) => {
                self.payload_in += open.payload.len() as u64;
                self.handle_open(open)
            }
            // Frames of closed streams go to reassembly too: it ignores streams it
            // does not hold and returns their link credit.
            Frame::Data(data) => {
                self.payload_in += data.payload.len() as u64;
                let stream = data.stream;
                if self.never_opened(stream) {
                    self.reassembly.ignore_body(data.payload.len() as u64)?;
                    return self.refuse_never_opened(stream);
                }
                self.reassembly.handle_data(data)
            }
            Frame::End(end) => {
                if self.never_opened(end.stream) {
                    return self.refuse_never_opened(end.stream);
                }
                self.reassembly.handle_end(end)
            }
            Frame::Cancel(Cancel { stream, code }) => {
                if stream == Credit::LINK {
                    return Err(ProtocolError::BadStreamId { id: 0 });
                }
                // Nothing to stop on a stream that never existed.
                if !self.never_opened(stream) {
                    self.handle_peer_cancel(stream, code);
                }
                Ok(())
            }
            Frame::Credit(credit) => {
                self.commands.push_back(Command::Credit(credit));
                Ok(())
            }
            Frame::Ping(Ping { opaque }) => {
                // Answered once per read, for the latest PING (`flush_pong`).
                self.pending_pong = Some(opaque);
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
            // Without the reliable mode an ACK carries no information.
            Frame::Ack(ack) => {
                if self.reliable.is_some() {
                    self.commands.push_back(Command::PeerAck(ack));
                }
                Ok(())
            }
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
            return Err(ProtocolError::Decode(
                crate::error::DecodeError::InvalidValue {
                    field: "hello.max_frame_len",
                    value: hello.max_frame_len,
                },
            ));
        }
        if let Some(known) = self.peer_session {
            let theirs = hello.session.map(|s| s.id);
            if theirs == Some(known) && self.reliable.is_some() {
                #[cfg(feature = "secure")]
                if let Some(secure) = self.secure.as_ref() {
                    secure.check_resume(known, hello.resume_proof.as_ref())?;
                }
                // Same peer session: pick up where the old transport stopped.
                let peer_received = hello.session.map_or(0, |s| s.received);
                self.state = State::Connected;
                self.commands.push_back(Command::Resume { peer_received });
                self.events.push_back(LinkEvent::Resumed);
                return Ok(());
            }
            self.reset_session();
        }
        self.peer_session = hello.session.map(|s| s.id);
        self.parity = if self.config.nonce > hello.nonce {
            Parity::Odd
        } else {
            Parity::Even
        };
        self.next_id = self.parity.first_id().0;
        // Chunks must fit the peer's frames with room for the largest OPEN head.
        let max_chunk_len = usize::try_from(hello.max_frame_len)
            .unwrap_or(usize::MAX)
            .saturating_sub(frame::MAX_HEAD_LEN);
        let reliable = self
            .config
            .reliable
            .filter(|_| hello.features & frame::features::RELIABLE != 0);
        self.retire_receiver();
        self.reliable = reliable.map(|r| Receiver::new(r.window, r.ack_delay));
        self.commands.push_back(Command::PeerHello {
            stream_window: hello.stream_window,
            link_window: hello.link_window,
            max_chunk_len,
            reliable,
        });
        self.state = State::Connected;
        self.events.push_back(LinkEvent::Connected {
            parity: self.parity,
            peer: hello,
        });
        Ok(())
    }

    fn handle_open(&mut self, open: Open) -> Result<(), ProtocolError> {
        let stream = open.stream;
        if stream == Credit::LINK {
            return Err(ProtocolError::BadStreamId { id: 0 });
        }
        if open.kind.is_answer() {
            if stream.parity() != self.parity || self.never_allocated(stream) {
                return Err(ProtocolError::BadStreamId { id: stream.0 });
            }
            if !self.awaiting_answer.contains(&stream) {
                // An answer to a request we canceled, still in flight: drop it
                // (its bytes still count, and go back, on the link window).
                self.remember_closed(stream);
                return self.reassembly.ignore_body(open.payload.len() as u64);
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
                self.commands
                    .push_back(Command::Control(Frame::Cancel(Cancel {
                        stream,
                        code: ErrorCode::GoingAway,
                    })));
                self.remember_closed(stream);
                return self.reassembly.ignore_body(open.payload.len() as u64);
            }
            if open.kind == MessageKind::Request {
                self.unanswered.insert(stream);
            }
        }
        self.reassembly.handle_open(open)
    }

    /// The peer canceled `stream`. Reported as [`LinkEvent::Canceled`] unless the
    /// stream was already closed here; an outbound one-way message that had
    /// finished sending may still be reported (the runtime ignores unknown ids).
    fn handle_peer_cancel(&mut self, stream: StreamId, code: ErrorCode) {
        let already_closed = self.is_closed(stream);
        self.awaiting_answer.remove(&stream);
        self.unanswered.remove(&stream);
        self.reassembly.handle_cancel(stream, code);
        self.remember_closed(stream);
        self.commands.push_back(Command::Cancel {
            stream,
            code,
            tell_peer: TellPeer::Never,
        });
        if !already_closed {
            self.events.push_back(LinkEvent::Canceled { stream, code });
        }
    }

    /// True for a stream id no OPEN can have used yet: of the peer's parity and
    /// above every id the peer opened, or of ours and never allocated here. Stream
    /// 0 is not one (it is the link's, refused as `BadStreamId` where it matters).
    fn never_opened(&self, stream: StreamId) -> bool {
        self.peer_never_opened(stream) || self.never_allocated(stream)
    }

    /// Of the peer's parity and above every id the peer opened so far.
    fn peer_never_opened(&self, stream: StreamId) -> bool {
        self.state != State::Handshaking
            && stream != Credit::LINK
            && stream.parity() != self.parity
            && stream.0 > self.highest_peer_id
    }

    /// Of our parity and never allocated here: no request of ours used it, so no
    /// answer can come on it.
    fn never_allocated(&self, stream: StreamId) -> bool {
        self.state != State::Handshaking
            && stream != Credit::LINK
            && stream.parity() == self.parity
            && stream.0 >= self.next_id
    }

    /// DATA or END for a stream that was never opened. On our parity only a
    /// broken peer does that: fatal (`BadStreamId`). On the peer's, its OPEN may
    /// have been lost (a line without the reliable mode drops damaged frames):
    /// the stream is refused with CANCEL(`Protocol`) once, so its sender stops
    /// instead of waiting, and later frames of it are dropped. The link goes on:
    /// a lost frame costs its message, never the link.
    fn refuse_never_opened(&mut self, stream: StreamId) -> Result<(), ProtocolError> {
        if self.never_allocated(stream) {
            return Err(ProtocolError::BadStreamId { id: stream.0 });
        }
        if self.is_closed(stream) {
            return Ok(());
        }
        self.reassembly.cancel(stream, ErrorCode::Protocol);
        self.remember_closed(stream);
        self.commands
            .push_back(Command::Control(Frame::Cancel(Cancel {
                stream,
                code: ErrorCode::Protocol,
            })));
        Ok(())
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
                    self.commands
                        .push_back(Command::Control(Frame::Cancel(Cancel { stream, code })));
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
            self.commands
                .push_back(Command::Control(Frame::Credit(credit)));
        }
    }
}
