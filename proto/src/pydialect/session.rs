//! One Python-dialect link at the message level, sans-IO: outbound requests and
//! responses become frames chunked as Python chunks them, inbound frames become
//! complete messages under hard limits.
//!
//! # Outbound
//!
//! [`PySession::request`] and [`PySession::respond`] queue a mission; [`PySession::poll_frame`]
//! hands out its frames when the transport can take them: heads and cancels first, then
//! one 4096-byte chunk per mission per pass (as `Pipe._send_thread` interleaves). A
//! 0-byte body is refused ([`PyError::EmptyBody`]: Python never delivers it), and so is a
//! head Python could not read ([`PyError::Unsendable`]). Ids are 6 (mission) and 8
//! (message) characters of `[A-Za-z0-9]` from a generator seeded by the caller, unique
//! among this side's missions and pending requests.
//!
//! # Inbound
//!
//! [`PySession::handle_frame`] takes decoded frames and returns at most one
//! [`PyInbound`] per frame. Limits ([`PySessionLimits`]): a body above `max_body_len`,
//! a head that would take the bodies being received above `max_buffered` (counted at
//! the announced length, before any byte arrives), more than `max_missions` at once:
//! refused with a typed error, and the mission's data is then dropped quietly. A length-0
//! mission completes at its head. Data for a mission not (yet) announced is stashed, up
//! to `max_early_frames` frames, and applied when its head comes (Python's sender can
//! put a chunk ahead of its head); [`PySession::handle_timeout`] drops stashed frames
//! older than `early_data_ttl` and missions idle longer than `mission_idle_timeout`.
//! Data beyond a mission's length drops the mission ([`PyError::DataBeyondLength`]).
//! A repeated head resets its mission (counted). Cancels for unknown or finished
//! missions are ignored (counted). A complete message whose `message_id` is one of this
//! side's pending requests is a [`PyInbound::Response`]; else a message claiming
//! `is_response` is dropped ([`PyError::UnsolicitedResponse`]: routing it would
//! ping-pong between two servers); else it is a [`PyInbound::Request`] if it has a route.
//! Every error here concerns one frame or mission; the session goes on.

use super::frame::{MissionId, PyFrame, PY_CHUNK_LEN, PY_MAX_HEAD_META_LEN};
use super::json::{self, Object, Value};
use super::PyError;
use crate::time::Instant;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use core::time::Duration;

/// Info keys Python reads itself; a request's extra headers may not use them.
const RESERVED_KEYS: [&str; 5] = [
    "route",
    "message_id",
    "is_response",
    "is_cancel",
    "pipe_safe_code",
];

/// Limits on what a Python-dialect peer may make a [`PySession`] hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PySessionLimits {
    /// Largest body accepted.
    pub max_body_len: u64,
    /// Most bytes of bodies being received at once, counted at their announced lengths.
    pub max_buffered: u64,
    /// Most missions being received at once (refused ones whose data is being dropped
    /// included).
    pub max_missions: usize,
    /// Most data frames stashed for missions whose head has not come.
    pub max_early_frames: usize,
    /// How long a stashed data frame waits for its head.
    pub early_data_ttl: Duration,
    /// How long a partly received mission may go without a frame before it is dropped.
    pub mission_idle_timeout: Duration,
    /// Most requests of this side awaiting a response.
    pub max_pending_requests: usize,
}

impl Default for PySessionLimits {
    fn default() -> PySessionLimits {
        PySessionLimits {
            // 16 MiB bodies are what Python users send in practice; room above that.
            max_body_len: 64 << 20,
            max_buffered: 128 << 20,
            max_missions: 256,
            // Python puts a chunk ahead of its head rarely (7 in 44,614 messages),
            // one chunk at a time.
            max_early_frames: 8,
            early_data_ttl: Duration::from_secs(1),
            mission_idle_timeout: Duration::from_secs(60),
            max_pending_requests: 4096,
        }
    }
}

/// A complete inbound message.
#[derive(Clone, Debug, PartialEq)]
pub struct PyMessage {
    /// The sender's mission id.
    pub mission: MissionId,
    /// The head's info, in the sender's key order.
    pub info: Object,
    /// The body.
    pub body: Bytes,
}

impl PyMessage {
    /// The `route`, if a string.
    pub fn route(&self) -> Option<&str> {
        self.info.get_str("route")
    }

    /// The `message_id`, if a string.
    pub fn message_id(&self) -> Option<&str> {
        self.info.get_str("message_id")
    }

    /// Whether `is_response` is truthy (as Python would read it).
    pub fn is_response(&self) -> bool {
        match self.info.get("is_response") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Number(n)) => n.bytes().any(|b| (b'1'..=b'9').contains(&b)),
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(Value::Object(o)) => !o.entries.is_empty(),
            Some(Value::Bool(true)) => true,
        }
    }

    /// The info keys other than those Python reads itself: the request's headers.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.info
            .entries
            .iter()
            .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// What an inbound frame completed.
#[derive(Clone, Debug, PartialEq)]
pub enum PyInbound {
    /// A request to route (it has a route and answers none of this side's requests).
    Request(PyMessage),
    /// The response to one of this side's requests (no longer pending).
    Response(PyMessage),
    /// The peer cancelled a mission being received; its partial body is dropped.
    Cancelled {
        /// The mission.
        mission: MissionId,
    },
}

/// A queued request's ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyOutgoing {
    /// The mission carrying it (for [`PySession::cancel`]).
    pub mission: MissionId,
    /// The `message_id` its response will carry (for [`PySession::forget_request`]).
    pub message_id: String,
}

/// Counters of a [`PySession`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PySessionStats {
    /// Complete messages received (requests and responses).
    pub messages_in: u64,
    /// Missions queued to send.
    pub missions_out: u64,
    /// Frames handed to the transport.
    pub frames_out: u64,
    /// Heads that reset a mission in progress.
    pub heads_repeated: u64,
    /// Missions the peer cancelled while being received.
    pub cancels_in: u64,
    /// Cancels for unknown or finished missions (ignored).
    pub cancels_ignored: u64,
    /// Stashed early data frames applied when their head came.
    pub early_frames_applied: u64,
    /// Inbound frames, missions or messages dropped (each with an error returned).
    pub dropped: u64,
}

/// A mission being received.
#[derive(Debug)]
struct InMission {
    length: u64,
    info: Object,
    body: BytesMut,
    /// Refused at its head: its data is dropped until `length` bytes passed.
    discarding: bool,
    received: u64,
    last_frame: Instant,
}

/// A mission being sent.
#[derive(Debug)]
struct OutMission {
    id: MissionId,
    body: Bytes,
    sent: usize,
}

/// One Python-dialect link at the message level (see the [module docs](self)).
#[derive(Debug)]
pub struct PySession {
    limits: PySessionLimits,
    rng: u64,
    // Outbound.
    control: VecDeque<PyFrame>,
    sending: VecDeque<OutMission>,
    pending: BTreeSet<String>,
    // Inbound.
    receiving: BTreeMap<MissionId, InMission>,
    committed: u64,
    early: VecDeque<(Instant, MissionId, Bytes)>,
    stats: PySessionStats,
}

impl PySession {
    /// A session under `limits`, drawing ids from a generator seeded with `seed`.
    pub fn new(limits: PySessionLimits, seed: u64) -> PySession {
        PySession {
            limits,
            rng: seed | 1,
            control: VecDeque::new(),
            sending: VecDeque::new(),
            pending: BTreeSet::new(),
            receiving: BTreeMap::new(),
            committed: 0,
            early: VecDeque::new(),
            stats: PySessionStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> PySessionStats {
        self.stats
    }

    /// Bytes of bodies being received, counted at their announced lengths.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Missions being received (refused ones being dropped included).
    pub fn missions_in(&self) -> usize {
        self.receiving.len()
    }

    /// Requests of this side awaiting a response.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// Whether frames are waiting to be sent.
    pub fn wants_to_send(&self) -> bool {
        !self.control.is_empty() || !self.sending.is_empty()
    }

    /// `len` random characters of `[A-Za-z0-9]` (xorshift64*).
    fn code(&mut self, len: usize) -> String {
        const ALPHABET: &[u8; 62] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| {
                self.rng ^= self.rng >> 12;
                self.rng ^= self.rng << 25;
                self.rng ^= self.rng >> 27;
                let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32;
                char::from(ALPHABET[(r % 62) as usize])
            })
            .collect()
    }

    fn new_mission_id(&mut self) -> MissionId {
        loop {
            let id = self.code(6);
            if !self.sending.iter().any(|m| m.id == id)
                && !self.control.iter().any(|f| f.mission() == id)
            {
                return id;
            }
        }
    }

    /// Queues a request to `route` with `body` and extra `headers` (appended after
    /// `route` and `message_id`); its response will come as [`PyInbound::Response`].
    pub fn request(
        &mut self,
        route: &str,
        headers: Object,
        body: Bytes,
    ) -> Result<PyOutgoing, PyError> {
        if self.pending.len() >= self.limits.max_pending_requests {
            return Err(PyError::TooManyPending {
                max: self.limits.max_pending_requests,
            });
        }
        check_headers(&headers)?;
        let message_id = loop {
            let id = self.code(8);
            if !self.pending.contains(&id) {
                break id;
            }
        };
        let mut info = Object::new();
        info.push("route", Value::String(route.into()));
        info.push("message_id", Value::String(message_id.clone()));
        info.entries.extend(headers.entries);
        let mission = self.queue(info, body)?;
        self.pending.insert(message_id.clone());
        Ok(PyOutgoing {
            mission,
            message_id,
        })
    }

    /// Queues the response to the request `message_id`: info `{"route": R,
    /// "is_response": true, "message_id": M}` as a Python handler's `Response(R, body)`,
    /// or without `route` as Python's `Endpoint.send_response`.
    pub fn respond(
        &mut self,
        route: Option<&str>,
        message_id: &str,
        body: Bytes,
    ) -> Result<MissionId, PyError> {
        self.respond_with(route, message_id, Object::new(), body)
    }

    /// [`PySession::respond`] with extra `headers` appended to the info (a Python
    /// caller reads them as the response's `headers`); a key Python reads itself
    /// is refused as in [`PySession::request`].
    pub fn respond_with(
        &mut self,
        route: Option<&str>,
        message_id: &str,
        headers: Object,
        body: Bytes,
    ) -> Result<MissionId, PyError> {
        check_headers(&headers)?;
        let mut info = Object::new();
        if let Some(route) = route {
            info.push("route", Value::String(route.into()));
        }
        info.push("is_response", Value::Bool(true));
        info.push("message_id", Value::String(message_id.into()));
        info.entries.extend(headers.entries);
        self.queue(info, body)
    }

    /// Body bytes queued and not yet handed out as data frames.
    pub fn queued_bytes(&self) -> u64 {
        self.sending
            .iter()
            .map(|m| (m.body.len() - m.sent) as u64)
            .sum()
    }

    /// Queues a mission carrying `body` with `info`.
    fn queue(&mut self, info: Object, body: Bytes) -> Result<MissionId, PyError> {
        if body.is_empty() {
            return Err(PyError::EmptyBody);
        }
        let mission = self.new_mission_id();
        let head = PyFrame::Head {
            mission: mission.clone(),
            length: body.len() as u64,
            info,
        };
        check_head(&head)?;
        self.control.push_back(head);
        self.sending.push_back(OutMission {
            id: mission.clone(),
            body,
            sent: 0,
        });
        self.stats.missions_out += 1;
        Ok(mission)
    }

    /// Stops sending `mission`: if its head is not out yet nothing of it goes out,
    /// else a cancel frame follows (ahead of pending chunks). `false` if no such
    /// mission is still being sent.
    pub fn cancel(&mut self, mission: &str) -> bool {
        let Some(at) = self.sending.iter().position(|m| m.id == mission) else {
            return false;
        };
        self.sending.remove(at);
        let head_queued = self
            .control
            .iter()
            .position(|f| matches!(f, PyFrame::Head { mission: m, .. } if m == mission));
        match head_queued {
            Some(at) => {
                self.control.remove(at);
            }
            None => self.control.push_back(PyFrame::Cancel {
                mission: mission.into(),
            }),
        }
        true
    }

    /// Stops waiting for the response to `message_id` (the call timed out or was
    /// cancelled): a late response is then dropped. `false` if it was not pending.
    pub fn forget_request(&mut self, message_id: &str) -> bool {
        self.pending.remove(message_id)
    }

    /// The next frame to send, if any: heads and cancels first, then the next chunk
    /// of the next mission in turn.
    pub fn poll_frame(&mut self) -> Option<PyFrame> {
        let frame = if let Some(frame) = self.control.pop_front() {
            frame
        } else {
            let mut mission = self.sending.pop_front()?;
            let end = (mission.sent + PY_CHUNK_LEN).min(mission.body.len());
            let chunk = mission.body.slice(mission.sent..end);
            mission.sent = end;
            let frame = PyFrame::Data {
                mission: mission.id.clone(),
                chunk,
            };
            if mission.sent < mission.body.len() {
                self.sending.push_back(mission);
            }
            frame
        };
        self.stats.frames_out += 1;
        Some(frame)
    }

    /// Takes one decoded inbound frame at `now`; returns what it completed, or an
    /// error about this frame or its mission (never fatal to the session).
    pub fn handle_frame(
        &mut self,
        frame: PyFrame,
        now: Instant,
    ) -> Result<Option<PyInbound>, PyError> {
        let result = match frame {
            PyFrame::Head {
                mission,
                length,
                info,
            } => self.on_head(mission, length, info, now),
            PyFrame::Data { mission, chunk } => self.on_data(mission, chunk, now),
            PyFrame::Cancel { mission } => Ok(self.on_cancel(mission)),
        };
        if result.is_err() {
            self.stats.dropped += 1;
        }
        result
    }

    fn drop_mission(&mut self, mission: &str) -> Option<InMission> {
        let m = self.receiving.remove(mission)?;
        if !m.discarding {
            self.committed -= m.length;
        }
        Some(m)
    }

    fn on_head(
        &mut self,
        mission: MissionId,
        length: u64,
        info: Object,
        now: Instant,
    ) -> Result<Option<PyInbound>, PyError> {
        if self.drop_mission(&mission).is_some() {
            self.stats.heads_repeated += 1;
        }
        let refusal = if length > self.limits.max_body_len {
            Some(PyError::BodyTooLarge {
                length,
                max: self.limits.max_body_len,
            })
        } else if self.committed.saturating_add(length) > self.limits.max_buffered {
            Some(PyError::BufferFull {
                length,
                buffered: self.committed,
                max: self.limits.max_buffered,
            })
        } else {
            None
        };
        if self.receiving.len() >= self.limits.max_missions {
            // Not even tracked: its data will read as unknown.
            self.discard_early(&mission);
            return Err(PyError::TooManyMissions {
                max: self.limits.max_missions,
            });
        }
        let discarding = refusal.is_some();
        if !discarding {
            self.committed += length;
        }
        self.receiving.insert(
            mission.clone(),
            InMission {
                length,
                info,
                body: BytesMut::new(),
                discarding,
                received: 0,
                last_frame: now,
            },
        );
        if let Some(error) = refusal {
            self.discard_early(&mission);
            return Err(error);
        }
        if length == 0 {
            return self.complete(&mission);
        }
        // Data that came ahead of this head.
        let mut outcome = Ok(None);
        while let Some(at) = self.early.iter().position(|(_, m, _)| *m == mission) {
            let Some((_, _, chunk)) = self.early.remove(at) else {
                break;
            };
            self.stats.early_frames_applied += 1;
            outcome = self.on_data(mission.clone(), chunk, now);
            if !matches!(outcome, Ok(None)) {
                break;
            }
        }
        outcome
    }

    fn discard_early(&mut self, mission: &str) {
        self.early.retain(|(_, m, _)| m != mission);
    }

    fn on_data(
        &mut self,
        mission: MissionId,
        chunk: Bytes,
        now: Instant,
    ) -> Result<Option<PyInbound>, PyError> {
        let Some(m) = self.receiving.get_mut(&mission) else {
            if self.early.len() < self.limits.max_early_frames {
                self.early.push_back((now, mission, chunk));
                return Ok(None);
            }
            return Err(PyError::UnknownMission { mission });
        };
        m.last_frame = now;
        let received = m.received + chunk.len() as u64;
        if received > m.length {
            let length = m.length;
            self.drop_mission(&mission);
            return Err(PyError::DataBeyondLength {
                mission,
                length,
                received,
            });
        }
        m.received = received;
        if m.discarding {
            if received == m.length {
                self.receiving.remove(&mission);
            }
            return Ok(None);
        }
        m.body.extend_from_slice(&chunk);
        if received == m.length {
            return self.complete(&mission);
        }
        Ok(None)
    }

    fn on_cancel(&mut self, mission: MissionId) -> Option<PyInbound> {
        self.discard_early(&mission);
        match self.drop_mission(&mission) {
            Some(m) if !m.discarding => {
                self.stats.cancels_in += 1;
                Some(PyInbound::Cancelled { mission })
            }
            _ => {
                self.stats.cancels_ignored += 1;
                None
            }
        }
    }

    fn complete(&mut self, mission: &str) -> Result<Option<PyInbound>, PyError> {
        let Some(m) = self.drop_mission(mission) else {
            return Ok(None);
        };
        let message = PyMessage {
            mission: mission.into(),
            info: m.info,
            body: m.body.freeze(),
        };
        if let Some(id) = message.message_id() {
            if self.pending.remove(id) {
                self.stats.messages_in += 1;
                return Ok(Some(PyInbound::Response(message)));
            }
        }
        if message.is_response() {
            let mut message_id = String::new();
            message_id.extend(message.message_id().unwrap_or("").chars().take(32));
            return Err(PyError::UnsolicitedResponse { message_id });
        }
        if message.route().is_none() {
            return Err(PyError::MissingField {
                field: "info.route",
            });
        }
        self.stats.messages_in += 1;
        Ok(Some(PyInbound::Request(message)))
    }

    /// Drops, at `now`, stashed data frames older than `early_data_ttl` and missions
    /// idle longer than `mission_idle_timeout`; returns an error for each (to log).
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<PyError> {
        let mut dropped = Vec::new();
        let ttl = self.limits.early_data_ttl;
        while let Some((at, _, _)) = self.early.front() {
            if now.saturating_since(*at) < ttl {
                break;
            }
            if let Some((_, mission, _)) = self.early.pop_front() {
                dropped.push(PyError::UnknownMission { mission });
            }
        }
        let idle = self.limits.mission_idle_timeout;
        let expired: Vec<MissionId> = self
            .receiving
            .iter()
            .filter(|(_, m)| now.saturating_since(m.last_frame) >= idle)
            .map(|(id, _)| id.clone())
            .collect();
        for mission in expired {
            if let Some(m) = self.drop_mission(&mission) {
                dropped.push(PyError::MissionExpired {
                    mission,
                    received: m.received,
                    length: m.length,
                });
            }
        }
        self.stats.dropped += dropped.len() as u64;
        dropped
    }

    /// When [`PySession::handle_timeout`] next has something to drop, if anything is
    /// stashed or being received.
    pub fn next_timeout(&self) -> Option<Instant> {
        let early = self
            .early
            .front()
            .map(|(at, _, _)| *at + self.limits.early_data_ttl);
        let idle = self
            .receiving
            .values()
            .map(|m| m.last_frame + self.limits.mission_idle_timeout)
            .min();
        match (early, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Refuses extra headers that use a key Python reads itself.
fn check_headers(headers: &Object) -> Result<(), PyError> {
    if headers
        .entries
        .iter()
        .any(|(k, _)| RESERVED_KEYS.contains(&k.as_str()))
    {
        return Err(PyError::BadField {
            field: "headers",
            reason: "a key Python reads itself (route, message_id, is_response, is_cancel, pipe_safe_code)",
        });
    }
    Ok(())
}

/// Refuses a head whose meta a Python receiver could not read.
fn check_head(head: &PyFrame) -> Result<(), PyError> {
    let PyFrame::Head {
        mission,
        length,
        info,
    } = head
    else {
        return Ok(());
    };
    let mut meta = Object::new();
    meta.push("extension", Value::String(mission.clone()));
    meta.push("length", Value::from_u64(*length));
    meta.push("info", Value::Object(info.clone()));
    let mut out = Vec::new();
    json::write_object(&meta, &mut out);
    if out.len() > PY_MAX_HEAD_META_LEN {
        return Err(PyError::Unsendable {
            what: "head meta",
            len: out.len(),
            max: PY_MAX_HEAD_META_LEN,
        });
    }
    Ok(())
}
