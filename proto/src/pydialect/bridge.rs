//! [`PyBridge`]: a Python-dialect wire seen by a native endpoint as a native link,
//! sans-IO.
//!
//! The bridge holds a native [`Link`] (stream framing, no reliable mode) acting as
//! the *peer* of a local native endpoint, and a [`PySession`] speaking to the Python
//! peer. Bytes from the local side go to [`PyBridge::handle_local`], bytes from the
//! Python wire to [`PyBridge::handle_py`]; [`PyBridge::poll_local`] and
//! [`PyBridge::poll_py`] hand out what each side must be sent; time goes in with
//! [`PyBridge::handle_timeout`] at [`PyBridge::poll_timeout`]; what went wrong comes out
//! of [`PyBridge::poll_error`] (to log).
//!
//! ```text
//!  local endpoint ──native bytes──► Link ──request/one-way──► PySession ──frames──► Python
//!                 ◄─native bytes─── Link ◄─response────────── PySession ◄─frames─── Python
//!                                   Link ◄─request─────────── PySession (Python calls us)
//!                                   Link ──response─────────► PySession
//! ```
//!
//! # Translation
//!
//! | native (local endpoint) | Python wire |
//! |---|---|
//! | request (route, headers, body) | request `{"route", "message_id", headers…}`; the native stream ↔ message id/mission are kept until the answer |
//! | one-way message | request whose message id is forgotten at once: a reply is dropped |
//! | response to a Python request | `Response(R, body)`: R is the [`ROUTE_HEADER`] response header if the handler set one, else the request's route |
//! | error response (code, explanation) | a normal response whose body is the explanation and whose info carries [`ERROR_HEADER`]: the code's name (Python has no error answers; this way its caller is not left waiting) |
//! | a 0-byte request body | refused at once: error response `BadRequest` (a Python receiver never completes a 0-byte body) |
//! | a 0-byte answer | nothing is sent (counted, [`BridgeError::EmptyAnswer`]): the Python caller times out, as with a Python handler's silence |
//! | cancel of a call to Python | [`PySession::cancel`] (a cancel frame if its head is out) and the message id forgotten |
//! | request from Python | native request (the info's extra keys as headers: strings as their text, other JSON values as their JSON text) |
//! | response from Python | native response, its route in the [`ROUTE_HEADER`] header, extra info keys as headers |
//! | Python cancel of a request being received | dropped (the session drops it); of a request already handed on, a native cancel of its stream |
//!
//! Native headers become extra info keys with string values; a header Python reads
//! itself (`route`, `message_id`, `is_response`, …) or a value that is not UTF-8 is
//! refused with an error response `BadRequest`.
//!
//! # Limits
//!
//! The native link takes local messages up to [`PySessionLimits::max_body_len`] in
//! memory (no sink: its spool threshold is above every body it accepts; its link
//! window is twice the buffered limit, so a whole body fits, see the reassembly's
//! sink-less rule). Memory is bounded by the session's limits, the native windows, and
//! [`PyBridgeConfig::max_queued`]: the driver stops feeding local bytes while the
//! Python side has that much body queued ([`PyBridge::wants_local_input`]) and stops
//! feeding Python bytes while the local side has that much queued
//! ([`PyBridge::wants_py_input`]).
//!
//! Priorities, integrity checks, retransmission, keepalive and session resume exist
//! on the native side only: the Python wire has none of them, so a call in flight
//! when the Python transport breaks is lost (a new transport gets a new bridge).

use super::frame::{self, MissionId, PyDecoder, PyDecoderStats};
use super::json::{self, Object, Value};
use super::session::{
    PyInbound, PyMessage, PyOutgoing, PySession, PySessionLimits, PySessionStats,
};
use super::{PyError, PyLimits};
use crate::config::Limits;
use crate::error::{ErrorCode, ProtocolError};
use crate::frame::Header;
use crate::ids::{MessageKind, StreamId};
use crate::link::{Link, LinkConfig, LinkEvent, Message};
use crate::reassembly::MessageHead;
use crate::time::Instant;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::fmt;

/// The native header naming a response's Python route: set by a local handler, it
/// is the route of the Python response (default: the request's route); on a
/// response from Python, it carries the route Python answered with.
pub const ROUTE_HEADER: &str = "route";

/// The Python info key of an error answer: the native error code's name
/// (`NotFound`, `HandlerFailed`, …); the body is the explanation.
pub const ERROR_HEADER: &str = "error";

/// Python requests held while the native handshake runs (it takes one round trip
/// over an in-memory pipe); more are dropped.
const MAX_EARLY_REQUESTS: usize = 256;

/// How a [`PyBridge`] is set up.
#[derive(Clone, Debug)]
pub struct PyBridgeConfig {
    /// Frame limits of the Python wire's decoder.
    pub frame_limits: PyLimits,
    /// Message limits of the Python session.
    pub session: PySessionLimits,
    /// Body bytes queued toward one side above which the bridge asks for no more
    /// input from the other ([`PyBridge::wants_local_input`],
    /// [`PyBridge::wants_py_input`]).
    pub max_queued: u64,
    /// Seed of the Python ids (mission and message ids).
    pub seed: u64,
    /// The native link's HELLO nonce (must differ from the local endpoint's).
    pub nonce: u64,
}

impl PyBridgeConfig {
    /// Default frame limits, `session` limits, 8 MiB queued each way.
    pub fn new(session: PySessionLimits, seed: u64, nonce: u64) -> PyBridgeConfig {
        PyBridgeConfig {
            frame_limits: PyLimits::default(),
            session,
            max_queued: 8 << 20,
            seed,
            nonce,
        }
    }
}

/// What went wrong in a [`PyBridge`] (one call or frame, unless
/// [`BridgeError::is_fatal`]).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BridgeError {
    /// From the Python wire: a frame or mission the decoder or session dropped, or
    /// (fatal) the lost stream.
    Py(PyError),
    /// A local request or one-way message the Python dialect cannot carry; a request
    /// got an error response with this code.
    Refused {
        /// The route.
        route: String,
        /// The code of the error response (for a request).
        code: ErrorCode,
        /// Why.
        error: PyError,
    },
    /// A local handler answered a Python request with a 0-byte body: Python would
    /// never complete it, so nothing is sent and the Python caller times out.
    EmptyAnswer {
        /// The request's route.
        route: String,
    },
    /// A Python request or answer the local side could not take (too many or too
    /// long headers, the link closing); a request was answered with an error.
    Unforwardable {
        /// The route (of the request).
        route: String,
        /// Why.
        error: ProtocolError,
    },
    /// The native link refused a local message (its limits).
    LocalRefused {
        /// The stream.
        stream: StreamId,
        /// Why.
        error: ProtocolError,
    },
    /// Fatal: the native link failed.
    LocalFailed(ProtocolError),
}

impl BridgeError {
    /// Whether the bridge is dead: the Python transport and the local side must close.
    pub fn is_fatal(&self) -> bool {
        match self {
            BridgeError::Py(error) => error.is_fatal(),
            BridgeError::LocalFailed(_) => true,
            _ => false,
        }
    }
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Py(error) => write!(f, "python wire: {error}"),
            BridgeError::Refused { route, code, error } => {
                write!(f, "local message to {route:?} refused ({code}): {error}")
            }
            BridgeError::EmptyAnswer { route } => write!(
                f,
                "0-byte answer to a python request for {route:?} not sent: python never completes one"
            ),
            BridgeError::Unforwardable { route, error } => {
                write!(f, "python message for {route:?} not forwarded: {error}")
            }
            BridgeError::LocalRefused { stream, error } => {
                write!(f, "local message on stream {} refused: {error}", stream.0)
            }
            BridgeError::LocalFailed(error) => write!(f, "local side failed: {error}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BridgeError {}

/// Counters of a [`PyBridge`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PyBridgeStats {
    /// Bytes read from the Python wire.
    pub py_bytes_in: u64,
    /// Bytes written to the Python wire.
    pub py_bytes_out: u64,
    /// The Python wire's decoder.
    pub decoder: PyDecoderStats,
    /// The Python session.
    pub session: PySessionStats,
    /// Local requests sent to Python.
    pub calls_to_py: u64,
    /// Python requests handed to the local side.
    pub calls_from_py: u64,
    /// Error answers sent to Python.
    pub error_answers: u64,
    /// Local messages refused (0-byte bodies, headers Python cannot carry).
    pub refused: u64,
    /// 0-byte local answers not sent.
    pub empty_answers: u64,
    /// Local calls to Python cancelled.
    pub cancels_to_py: u64,
    /// Python requests handed on and then cancelled by Python.
    pub cancels_from_py: u64,
}

/// A Python request handed to the local side.
#[derive(Clone, Debug)]
struct InCall {
    message_id: String,
    route: String,
    mission: MissionId,
}

/// A Python-dialect wire bridged to a native link (see the [module docs](self)).
pub struct PyBridge {
    link: Link,
    session: PySession,
    decoder: PyDecoder,
    py_in: BytesMut,
    connected: bool,
    /// Python requests that came before the native handshake completed.
    early: VecDeque<PyMessage>,
    /// Local requests sent to Python, by native stream.
    calls_out: BTreeMap<StreamId, PyOutgoing>,
    /// The same, by Python message id.
    by_message: BTreeMap<String, StreamId>,
    /// Python requests handed to the local side, by native stream.
    calls_in: BTreeMap<StreamId, InCall>,
    /// The same, by Python mission (for a late Python cancel).
    by_mission: BTreeMap<MissionId, StreamId>,
    /// Body bytes queued in the native link toward the local side, by stream.
    to_local: BTreeMap<StreamId, u64>,
    to_local_bytes: u64,
    max_queued: u64,
    errors: VecDeque<BridgeError>,
    stats: PyBridgeStats,
    failed: bool,
    now: Instant,
}

impl PyBridge {
    /// A bridge; its native HELLO is the first thing [`PyBridge::poll_local`] yields.
    pub fn new(config: PyBridgeConfig) -> PyBridge {
        let max_body = config.session.max_body_len;
        let max_buffered = config.session.max_buffered.max(max_body);
        let mut native = LinkConfig::stream(config.nonce);
        native.reliable = None;
        native.pacing = None;
        native.keepalive = None;
        native.limits = Limits {
            max_message_bytes: max_body,
            max_inbound_streams: Limits::default().max_inbound_streams,
            max_buffered_bytes: max_buffered,
            // No sink: every accepted body stays in memory.
            spool_threshold: u64::MAX,
        };
        native.link_window = max_buffered.saturating_mul(2);
        PyBridge {
            link: Link::new(native, None),
            session: PySession::new(config.session, config.seed),
            decoder: PyDecoder::new(config.frame_limits),
            py_in: BytesMut::new(),
            connected: false,
            early: VecDeque::new(),
            calls_out: BTreeMap::new(),
            by_message: BTreeMap::new(),
            calls_in: BTreeMap::new(),
            by_mission: BTreeMap::new(),
            to_local: BTreeMap::new(),
            to_local_bytes: 0,
            max_queued: config.max_queued,
            errors: VecDeque::new(),
            stats: PyBridgeStats::default(),
            failed: false,
            now: Instant::ZERO,
        }
    }

    /// The counters.
    pub fn stats(&self) -> PyBridgeStats {
        PyBridgeStats {
            decoder: self.decoder.stats(),
            session: self.session.stats(),
            ..self.stats
        }
    }

    /// Calls in flight either way plus Python requests waiting for the handshake
    /// (0 once everything was answered or cancelled).
    pub fn in_flight(&self) -> usize {
        self.calls_out.len() + self.calls_in.len() + self.early.len()
    }

    /// Whether every map is empty: no call in flight, nothing queued toward either
    /// side, no Python request waiting and the session's pending requests and
    /// missions in drained.
    pub fn is_quiet(&self) -> bool {
        self.calls_out.is_empty()
            && self.by_message.is_empty()
            && self.calls_in.is_empty()
            && self.by_mission.is_empty()
            && self.to_local.is_empty()
            && self.to_local_bytes == 0
            && self.early.is_empty()
            && self.session.pending_requests() == 0
            && self.session.missions_in() == 0
            && self.session.committed() == 0
    }

    /// Whether the bridge is dead (the Python stream was lost or the native link
    /// failed): close both sides.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Whether the native handshake with the local side completed.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the driver may feed more local bytes: the Python side has less than
    /// `max_queued` body bytes waiting.
    pub fn wants_local_input(&self) -> bool {
        self.session.queued_bytes() < self.max_queued
    }

    /// Whether the driver may feed more Python bytes: the local side has less than
    /// `max_queued` body bytes waiting.
    pub fn wants_py_input(&self) -> bool {
        self.to_local_bytes < self.max_queued
    }

    /// The next error to log.
    pub fn poll_error(&mut self) -> Option<BridgeError> {
        self.errors.pop_front()
    }

    /// Bytes read from the local side (the native endpoint) at `now`.
    pub fn handle_local(&mut self, bytes: &[u8], now: Instant) {
        self.now = now;
        if self.failed {
            return;
        }
        // A fatal error is reported as `LinkEvent::Failed` too, handled below.
        let _ = self.link.handle_input(bytes, now);
        self.drain_link();
    }

    /// Bytes read from the Python wire at `now`.
    pub fn handle_py(&mut self, bytes: &[u8], now: Instant) {
        self.now = now;
        if self.failed {
            return;
        }
        self.stats.py_bytes_in += bytes.len() as u64;
        self.py_in.extend_from_slice(bytes);
        self.link.set_now(now);
        loop {
            match self.decoder.decode(&mut self.py_in) {
                Ok(Some(frame)) => self.on_py_frame(frame, now),
                Ok(None) => break,
                Err(error) => {
                    let fatal = error.is_fatal();
                    self.errors.push_back(BridgeError::Py(error));
                    if fatal {
                        self.failed = true;
                        break;
                    }
                }
            }
        }
        self.drain_link();
    }

    /// Appends native bytes for the local side to `dst`, up to about `budget`;
    /// returns the bytes added (0: nothing to send now).
    pub fn poll_local(&mut self, dst: &mut BytesMut, budget: usize) -> usize {
        if self.failed {
            return 0;
        }
        let written = self.link.poll_transmit_batch(dst, budget.max(1));
        self.drain_link();
        written
    }

    /// Appends Python frames to `dst` until about `budget` bytes were added; returns
    /// the bytes added (0: nothing to send now).
    pub fn poll_py(&mut self, dst: &mut BytesMut, budget: usize) -> usize {
        if self.failed {
            return 0;
        }
        let start = dst.len();
        while dst.len() - start < budget.max(1) {
            let Some(frame) = self.session.poll_frame() else {
                break;
            };
            if let Err(error) = frame::encode(&frame, dst) {
                // The session checked heads and chunks when they were queued.
                self.errors.push_back(BridgeError::Py(error));
            }
        }
        let written = dst.len() - start;
        self.stats.py_bytes_out += written as u64;
        written
    }

    /// When [`PyBridge::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.link.poll_timeout(), self.session.next_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: the native link's timers, the Python session's expiries.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.failed {
            return;
        }
        self.link.handle_timeout(now);
        for error in self.session.handle_timeout(now) {
            self.errors.push_back(BridgeError::Py(error));
        }
        self.drain_link();
    }

    fn on_py_frame(&mut self, frame: frame::PyFrame, now: Instant) {
        let cancel_of = match &frame {
            frame::PyFrame::Cancel { mission } => Some(mission.clone()),
            _ => None,
        };
        match self.session.handle_frame(frame, now) {
            Ok(Some(inbound)) => self.on_py_inbound(inbound),
            Ok(None) => {
                // A cancel for a mission the session no longer holds: a request
                // already handed on is cancelled there.
                let handed_on = cancel_of.and_then(|m| self.by_mission.remove(&m));
                if let Some(stream) = handed_on {
                    self.calls_in.remove(&stream);
                    self.untrack(stream);
                    self.link.cancel(stream, ErrorCode::Canceled);
                    self.stats.cancels_from_py += 1;
                }
            }
            Err(error) => self.errors.push_back(BridgeError::Py(error)),
        }
    }

    fn on_py_inbound(&mut self, inbound: PyInbound) {
        match inbound {
            PyInbound::Request(message) => {
                if self.connected {
                    self.forward_py_request(message);
                } else if self.early.len() < MAX_EARLY_REQUESTS {
                    self.early.push_back(message);
                } else {
                    let route = message.route().unwrap_or("").to_string();
                    self.errors.push_back(BridgeError::Unforwardable {
                        route,
                        error: ProtocolError::Backlog {
                            what: "python requests before the handshake",
                            max: MAX_EARLY_REQUESTS,
                        },
                    });
                }
            }
            PyInbound::Response(message) => self.forward_py_response(message),
            PyInbound::Cancelled { .. } => {}
        }
    }

    fn forward_py_request(&mut self, message: PyMessage) {
        let route = message.route().unwrap_or("").to_string();
        let message_id = message.message_id().map(String::from);
        let headers = native_headers(message.headers());
        let len = message.body.len() as u64;
        let native = Message {
            route: route.clone(),
            headers,
            body: Some(message.body.clone()),
            ..Message::default()
        };
        match message_id {
            Some(message_id) => match self.link.request(native) {
                Ok(stream) => {
                    self.stats.calls_from_py += 1;
                    self.track(stream, len);
                    self.by_mission.insert(message.mission.clone(), stream);
                    self.calls_in.insert(
                        stream,
                        InCall {
                            message_id,
                            route,
                            mission: message.mission,
                        },
                    );
                }
                Err(error) => {
                    let text = format!("not forwarded: {error}");
                    self.errors.push_back(BridgeError::Unforwardable {
                        route: route.clone(),
                        error,
                    });
                    self.answer_error(&route, &message_id, ErrorCode::BadRequest, text.into());
                }
            },
            // A message without an id expects no answer.
            None => match self.link.one_way(native) {
                Ok(stream) => self.track(stream, len),
                Err(error) => self
                    .errors
                    .push_back(BridgeError::Unforwardable { route, error }),
            },
        }
    }

    fn forward_py_response(&mut self, message: PyMessage) {
        let Some(stream) = message
            .message_id()
            .and_then(|id| self.by_message.remove(id))
        else {
            return;
        };
        self.calls_out.remove(&stream);
        let mut headers = Vec::new();
        if let Some(route) = message.route() {
            headers.push((ROUTE_HEADER.to_string(), Bytes::from(route.to_string())));
        }
        headers.extend(native_headers(message.headers()));
        let len = message.body.len() as u64;
        let answer = Message {
            headers,
            body: Some(message.body),
            ..Message::default()
        };
        match self.link.respond(stream, Ok(()), answer) {
            Ok(()) => self.track(stream, len),
            Err(error) => {
                let explanation = Message::new("", format!("python answer not forwarded: {error}"));
                self.errors.push_back(BridgeError::Unforwardable {
                    route: String::new(),
                    error,
                });
                if self
                    .link
                    .respond(stream, Err(ErrorCode::BadRequest), explanation)
                    .is_err()
                {
                    self.link.cancel(stream, ErrorCode::Internal);
                }
            }
        }
    }

    /// Drains the native link's events after every input.
    fn drain_link(&mut self) {
        while let Some(event) = self.link.poll_event() {
            match event {
                LinkEvent::Connected { .. } => {
                    self.connected = true;
                    while let Some(message) = self.early.pop_front() {
                        self.forward_py_request(message);
                    }
                }
                LinkEvent::Message { head, body } => match head.kind {
                    MessageKind::Request => self.local_request(head, body),
                    MessageKind::OneWay => self.local_one_way(head, body),
                    MessageKind::Response | MessageKind::ErrorResponse => {
                        self.local_answer(head, body)
                    }
                },
                LinkEvent::Streaming { head } => {
                    // No sink factory: not reached; refuse rather than hold it.
                    self.link.cancel(head.stream, ErrorCode::TooLarge);
                }
                LinkEvent::Canceled { stream, .. } => self.local_canceled(stream),
                LinkEvent::Refused { stream, error } => {
                    self.errors
                        .push_back(BridgeError::LocalRefused { stream, error });
                    self.local_canceled(stream);
                }
                LinkEvent::Sent { stream } => self.untrack(stream),
                LinkEvent::Failed { error } => {
                    self.failed = true;
                    self.errors.push_back(BridgeError::LocalFailed(error));
                }
                _ => {}
            }
        }
    }

    fn track(&mut self, stream: StreamId, len: u64) {
        *self.to_local.entry(stream).or_insert(0) += len;
        self.to_local_bytes += len;
    }

    fn untrack(&mut self, stream: StreamId) {
        if let Some(len) = self.to_local.remove(&stream) {
            self.to_local_bytes -= len;
        }
    }

    /// The local side cancelled or refused `stream`: a call of its to Python is
    /// cancelled there; a Python request it was serving gets an error answer.
    fn local_canceled(&mut self, stream: StreamId) {
        self.untrack(stream);
        if let Some(out) = self.calls_out.remove(&stream) {
            self.by_message.remove(&out.message_id);
            self.session.cancel(&out.mission);
            self.session.forget_request(&out.message_id);
            self.stats.cancels_to_py += 1;
        } else if let Some(call) = self.calls_in.remove(&stream) {
            self.by_mission.remove(&call.mission);
            let text = Bytes::from_static(b"the request was cancelled or refused");
            self.answer_error(&call.route, &call.message_id, ErrorCode::Canceled, text);
        }
    }

    fn refuse_local(&mut self, head: &MessageHead, code: ErrorCode, error: PyError) {
        self.stats.refused += 1;
        if head.kind == MessageKind::Request {
            let explanation = format!("python dialect: {error}");
            let message = Message::new("", explanation);
            if self.link.respond(head.stream, Err(code), message).is_err() {
                self.link.cancel(head.stream, code);
            }
        }
        self.errors.push_back(BridgeError::Refused {
            route: head.route.clone(),
            code,
            error,
        });
    }

    /// The Python request a local request or one-way message becomes, or why not.
    fn queue_for_python(
        &mut self,
        head: &MessageHead,
        body: Bytes,
    ) -> Result<PyOutgoing, (ErrorCode, PyError)> {
        if body.is_empty() {
            return Err((ErrorCode::BadRequest, PyError::EmptyBody));
        }
        let headers = py_headers(&head.headers, None).map_err(|e| (ErrorCode::BadRequest, e))?;
        self.session
            .request(&head.route, headers, body)
            .map_err(|error| (code_of(&error), error))
    }

    fn local_request(&mut self, head: MessageHead, body: Bytes) {
        match self.queue_for_python(&head, body) {
            Ok(out) => {
                self.stats.calls_to_py += 1;
                self.by_message.insert(out.message_id.clone(), head.stream);
                self.calls_out.insert(head.stream, out);
            }
            Err((code, error)) => self.refuse_local(&head, code, error),
        }
    }

    fn local_one_way(&mut self, head: MessageHead, body: Bytes) {
        match self.queue_for_python(&head, body) {
            Ok(out) => {
                self.session.forget_request(&out.message_id);
            }
            Err((code, error)) => self.refuse_local(&head, code, error),
        }
    }

    fn local_answer(&mut self, head: MessageHead, body: Bytes) {
        let Some(call) = self.calls_in.remove(&head.stream) else {
            return;
        };
        self.by_mission.remove(&call.mission);
        if head.kind == MessageKind::ErrorResponse {
            let code = head.code.unwrap_or(ErrorCode::Internal);
            self.answer_error(&call.route, &call.message_id, code, body);
            return;
        }
        let route = crate::frame::header_value(&head.headers, ROUTE_HEADER)
            .and_then(|v| core::str::from_utf8(v).ok())
            .unwrap_or(&call.route)
            .to_string();
        if body.is_empty() {
            self.stats.empty_answers += 1;
            self.errors
                .push_back(BridgeError::EmptyAnswer { route: call.route });
            return;
        }
        let sent = py_headers(&head.headers, Some(ROUTE_HEADER)).and_then(|headers| {
            self.session
                .respond_with(Some(&route), &call.message_id, headers, body)
        });
        if let Err(error) = sent {
            let text = format!("answer not sendable in the python dialect: {error}");
            self.errors.push_back(BridgeError::Refused {
                route: call.route.clone(),
                code: code_of(&error),
                error: error.clone(),
            });
            self.answer_error(&call.route, &call.message_id, code_of(&error), text.into());
        }
    }

    /// Answers Python request `message_id` with an error: the explanation as the
    /// body, the code's name under [`ERROR_HEADER`].
    fn answer_error(&mut self, route: &str, message_id: &str, code: ErrorCode, body: Bytes) {
        let body = if body.is_empty() {
            Bytes::from(code.to_string())
        } else {
            body
        };
        let mut headers = Object::new();
        headers.push(ERROR_HEADER, Value::String(code.to_string()));
        match self
            .session
            .respond_with(Some(route), message_id, headers, body)
        {
            Ok(_) => self.stats.error_answers += 1,
            Err(error) => self.errors.push_back(BridgeError::Py(error)),
        }
    }
}

/// The native error code for a request Python cannot be sent.
fn code_of(error: &PyError) -> ErrorCode {
    match error {
        PyError::TooManyPending { .. } => ErrorCode::Refused,
        PyError::Unsendable { .. } => ErrorCode::TooLarge,
        _ => ErrorCode::BadRequest,
    }
}

/// A Python info's extra keys as native headers: strings as their text, other JSON
/// values as their JSON text.
fn native_headers<'a>(headers: impl Iterator<Item = (&'a str, &'a Value)>) -> Vec<Header> {
    headers
        .map(|(name, value)| {
            let value = match value {
                Value::String(s) => Bytes::from(s.clone()),
                other => {
                    let mut out = Vec::new();
                    json::write(other, &mut out);
                    Bytes::from(out)
                }
            };
            (name.to_string(), value)
        })
        .collect()
}

/// Native headers as Python info keys with string values (`skip`: a header the
/// bridge itself reads); a value that is not UTF-8 is refused.
fn py_headers(headers: &[Header], skip: Option<&str>) -> Result<Object, PyError> {
    let mut object = Object::new();
    for (name, value) in headers {
        if Some(name.as_str()) == skip {
            continue;
        }
        let Ok(text) = core::str::from_utf8(value) else {
            return Err(PyError::BadField {
                field: "headers",
                reason: "a header value that is not UTF-8",
            });
        };
        object.push(name.clone(), Value::String(text.to_string()));
    }
    Ok(object)
}
