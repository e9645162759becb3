//! [`LinkStats`]: a snapshot of one link's counters and state, and
//! [`EndpointStats`]: every link's plus their totals. Plain values (`Copy`, no
//! heap but the endpoint's list), serializable with serde for `--json` output and
//! metrics pages: durations serialize as seconds (`f64`).
//!
//! The protocol core keeps the counters ([`SessionStats`] in the link actor's
//! session, [`TransmitterStats`] in the scheduler actor's transmitter); the link
//! actor adds what only the runtime knows (state, uptime, reconnects, calls).

use crate::ids::LinkId;
use netcore_proto::framing::FramingStats;
use netcore_proto::link::{SessionStats, TransmitterStats};
use netcore_proto::Priority;
use serde::{Serialize, Serializer};
use std::time::Duration;

/// A link's state, as a stats snapshot reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    /// First handshake in progress.
    Connecting,
    /// The peer was lost (the transport broke, or the peer fell silent):
    /// reopening the transport, handshaking again on the new one, probing the
    /// peer, or waiting for it to come back.
    Reconnecting,
    /// Messages flow.
    Up,
    /// The peer sent GOAWAY: answers still arrive, new calls are refused.
    Closing,
    /// Closed or failed.
    Down,
}

/// Frames thrown away because they failed an integrity check, by reason: the
/// serial framing's (checksum, COBS, runt, oversize), the stream framing's
/// (a bad length prefix, fatal), and the authenticated mode's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IntegrityDrops {
    /// CRC-32C mismatch (serial framing): line noise.
    pub crc: u64,
    /// Invalid COBS encoding (serial framing).
    pub cobs: u64,
    /// Shorter than its checksum (serial framing).
    pub runt: u64,
    /// Longer than the frame limit (serial framing).
    pub oversize: u64,
    /// An invalid length prefix (stream framing; the link fails on it).
    pub length: u64,
    /// Authenticated mode: the tag did not verify (altered or forged).
    pub tampered: u64,
    /// Authenticated mode: a counter seen before (a replay).
    pub replayed: u64,
    /// Authenticated mode: older than the replay window.
    pub too_old: u64,
    /// Authenticated mode: too short, undecodable, or plain where sealed belongs.
    pub malformed: u64,
    /// Wire bytes thrown away with the dropped frames.
    pub bytes_discarded: u64,
}

impl IntegrityDrops {
    fn of(framing: &FramingStats, secure: &netcore_proto::secure::SecureStats) -> IntegrityDrops {
        IntegrityDrops {
            crc: framing.dropped_crc,
            cobs: framing.dropped_cobs,
            runt: framing.dropped_runt,
            oversize: framing.dropped_oversize,
            length: framing.dropped_length,
            tampered: secure.dropped_tampered,
            replayed: secure.dropped_replayed,
            too_old: secure.dropped_too_old,
            malformed: secure.dropped_malformed,
            bytes_discarded: framing.bytes_discarded,
        }
    }

    /// Frames dropped for any reason.
    pub fn total(&self) -> u64 {
        self.crc
            + self.cobs
            + self.runt
            + self.oversize
            + self.length
            + self.tampered
            + self.replayed
            + self.too_old
            + self.malformed
    }

    fn add(&mut self, other: &IntegrityDrops) {
        self.crc += other.crc;
        self.cobs += other.cobs;
        self.runt += other.runt;
        self.oversize += other.oversize;
        self.length += other.length;
        self.tampered += other.tampered;
        self.replayed += other.replayed;
        self.too_old += other.too_old;
        self.malformed += other.malformed;
        self.bytes_discarded += other.bytes_discarded;
    }
}

/// Body bytes queued and not yet sent, by priority class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClassBytes {
    /// [`Priority::Urgent`].
    pub urgent: u64,
    /// [`Priority::High`].
    pub high: u64,
    /// [`Priority::Normal`].
    pub normal: u64,
    /// [`Priority::Bulk`].
    pub bulk: u64,
}

impl ClassBytes {
    fn of(queued: [u64; Priority::COUNT]) -> ClassBytes {
        let [urgent, high, normal, bulk] = queued;
        ClassBytes {
            urgent,
            high,
            normal,
            bulk,
        }
    }

    /// The bytes queued in `priority`'s class.
    pub fn get(&self, priority: Priority) -> u64 {
        match priority {
            Priority::Urgent => self.urgent,
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Bulk => self.bulk,
        }
    }

    /// All classes together.
    pub fn total(&self) -> u64 {
        self.urgent + self.high + self.normal + self.bulk
    }

    fn add(&mut self, other: &ClassBytes) {
        self.urgent += other.urgent;
        self.high += other.high;
        self.normal += other.normal;
        self.bulk += other.bulk;
    }
}

/// One link's counters and state at one moment. Counters (`*_out`, `*_in`,
/// drops, retransmissions, duplicates, reconnects) only grow over the link's
/// life, across reconnections; the rest are gauges of the moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// The link.
    pub link: LinkId,
    /// Its state.
    pub state: LinkStatus,
    /// Since the link started.
    #[serde(serialize_with = "secs")]
    pub uptime: Duration,
    /// Since `state` last changed.
    #[serde(serialize_with = "secs")]
    pub time_in_state: Duration,
    /// Transports that replaced a broken one (the link's connector, or the
    /// peer coming back on a new connection).
    pub reconnects: u64,
    /// Frames written (control frames and retransmissions included).
    pub frames_out: u64,
    /// Frames read (damaged ones excluded).
    pub frames_in: u64,
    /// Wire bytes written (framing included).
    pub bytes_out: u64,
    /// Wire bytes read.
    pub bytes_in: u64,
    /// Message body bytes sent, each once (retransmissions excluded).
    pub payload_out: u64,
    /// Message body bytes received, each once (duplicates excluded).
    pub payload_in: u64,
    /// Frames dropped by integrity checks, by reason.
    pub dropped: IntegrityDrops,
    /// Reliable mode: frames sent again (lost, damaged, or after a reconnection;
    /// tail-loss probes included).
    pub retransmissions: u64,
    /// Reliable mode: of those, tail-loss probes (the newest unacknowledged
    /// frame sent again after two round trips without an acknowledgement).
    pub tail_probes: u64,
    /// Reliable mode: frames received twice and dropped.
    pub duplicates: u64,
    /// Whether the reliable mode runs (serial links by default; TCP with
    /// `tcp_resume`): without it, the round trip and in-flight fields are `None`.
    pub reliable: bool,
    /// Reliable mode: the smoothed round-trip time, once measured.
    #[serde(serialize_with = "opt_secs")]
    pub srtt: Option<Duration>,
    /// Reliable mode: the round-trip time variance.
    #[serde(serialize_with = "opt_secs")]
    pub rttvar: Option<Duration>,
    /// Reliable mode: the current retransmission timeout (backoff included).
    #[serde(serialize_with = "opt_secs")]
    pub rto: Option<Duration>,
    /// Reliable mode: frames sent and not yet acknowledged.
    pub in_flight_frames: Option<u64>,
    /// Reliable mode: bytes of those frames (before framing).
    pub in_flight_bytes: Option<u64>,
    /// Body bytes queued and not yet sent, by priority class.
    pub queued_bytes: ClassBytes,
    /// Outbound messages queued or partly sent.
    pub streams_out: u64,
    /// Inbound messages partly received (reassembled, spooled or streamed).
    pub streams_in: u64,
    /// Bytes of incomplete inbound messages held in memory.
    pub buffered_bytes_in: u64,
    /// Calls made on this link waiting for their answer.
    pub calls_awaiting_answer: u64,
    /// The peer's requests being served (handed to a handler, not answered yet).
    pub requests_in_service: u64,
    /// The rate the link paces its sends at, in bytes per second; `None`:
    /// not paced (frames leave as fast as the transport takes them).
    pub pacing_rate: Option<u64>,
}

/// What the link actor knows beside the protocol's two halves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RuntimeStats {
    pub link: LinkId,
    pub state: LinkStatus,
    pub uptime: Duration,
    pub time_in_state: Duration,
    pub reconnects: u64,
    pub calls_awaiting_answer: usize,
    pub requests_in_service: usize,
}

impl LinkStats {
    /// Joins the two halves' snapshots and the runtime's.
    pub(crate) fn join(
        runtime: RuntimeStats,
        session: &SessionStats,
        transmitter: &TransmitterStats,
    ) -> LinkStats {
        let reliable = transmitter.reliable;
        LinkStats {
            link: runtime.link,
            state: runtime.state,
            uptime: runtime.uptime,
            time_in_state: runtime.time_in_state,
            reconnects: runtime.reconnects,
            frames_out: transmitter.frames_out,
            frames_in: session.frames_in,
            bytes_out: transmitter.bytes_out,
            bytes_in: session.bytes_in,
            payload_out: transmitter.payload_out,
            payload_in: session.payload_in,
            dropped: IntegrityDrops::of(&session.framing, &session.secure),
            retransmissions: reliable.map_or(0, |r| r.retransmissions),
            tail_probes: reliable.map_or(0, |r| r.tail_probes),
            duplicates: session.duplicates,
            reliable: reliable.is_some(),
            srtt: reliable.and_then(|r| r.srtt),
            rttvar: reliable.map(|r| r.rttvar),
            rto: reliable.map(|r| r.rto),
            in_flight_frames: reliable.map(|r| r.in_flight as u64),
            in_flight_bytes: reliable.map(|r| r.in_flight_bytes),
            queued_bytes: ClassBytes::of(transmitter.queued_bytes),
            streams_out: transmitter.streams_out as u64,
            streams_in: session.streams_in as u64,
            buffered_bytes_in: session.buffered_bytes,
            calls_awaiting_answer: runtime.calls_awaiting_answer as u64,
            requests_in_service: runtime.requests_in_service as u64,
            pacing_rate: transmitter.pacing_rate,
        }
    }
}

#[cfg(test)]
impl LinkStats {
    /// The snapshot of a stand-in link that never carried anything (unit tests).
    pub(crate) fn stand_in(link: LinkId) -> LinkStats {
        let runtime = RuntimeStats {
            link,
            state: LinkStatus::Up,
            uptime: Duration::ZERO,
            time_in_state: Duration::ZERO,
            reconnects: 0,
            calls_awaiting_answer: 0,
            requests_in_service: 0,
        };
        LinkStats::join(
            runtime,
            &SessionStats::default(),
            &TransmitterStats::default(),
        )
    }
}

/// Totals over several links: counters and gauges summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkTotals {
    /// Links counted.
    pub links: u64,
    /// Of those, links up.
    pub up: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Frames written.
    pub frames_out: u64,
    /// Frames read.
    pub frames_in: u64,
    /// Wire bytes written.
    pub bytes_out: u64,
    /// Wire bytes read.
    pub bytes_in: u64,
    /// Message body bytes sent.
    pub payload_out: u64,
    /// Message body bytes received.
    pub payload_in: u64,
    /// Frames dropped by integrity checks, by reason.
    pub dropped: IntegrityDrops,
    /// Frames sent again.
    pub retransmissions: u64,
    /// Of those, tail-loss probes.
    pub tail_probes: u64,
    /// Frames received twice.
    pub duplicates: u64,
    /// Bytes sent and not yet acknowledged (reliable links).
    pub in_flight_bytes: u64,
    /// Body bytes queued, by priority class.
    pub queued_bytes: ClassBytes,
    /// Outbound messages queued or partly sent.
    pub streams_out: u64,
    /// Inbound messages partly received.
    pub streams_in: u64,
    /// Bytes of incomplete inbound messages held in memory.
    pub buffered_bytes_in: u64,
    /// Calls waiting for their answer.
    pub calls_awaiting_answer: u64,
    /// Peer requests being served.
    pub requests_in_service: u64,
}

impl LinkTotals {
    /// Adds one link's snapshot.
    pub fn add(&mut self, link: &LinkStats) {
        self.links += 1;
        self.up += u64::from(link.state == LinkStatus::Up);
        self.reconnects += link.reconnects;
        self.frames_out += link.frames_out;
        self.frames_in += link.frames_in;
        self.bytes_out += link.bytes_out;
        self.bytes_in += link.bytes_in;
        self.payload_out += link.payload_out;
        self.payload_in += link.payload_in;
        self.dropped.add(&link.dropped);
        self.retransmissions += link.retransmissions;
        self.tail_probes += link.tail_probes;
        self.duplicates += link.duplicates;
        self.in_flight_bytes += link.in_flight_bytes.unwrap_or(0);
        self.queued_bytes.add(&link.queued_bytes);
        self.streams_out += link.streams_out;
        self.streams_in += link.streams_in;
        self.buffered_bytes_in += link.buffered_bytes_in;
        self.calls_awaiting_answer += link.calls_awaiting_answer;
        self.requests_in_service += link.requests_in_service;
    }
}

/// Every link of an endpoint (those attached when it was read) and their totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointStats {
    /// One snapshot per link, by link id.
    pub links: Vec<LinkStats>,
    /// The links' counters and gauges summed.
    pub totals: LinkTotals,
}

impl EndpointStats {
    /// The snapshots `links`, sorted by id, and their totals.
    pub fn of(mut links: Vec<LinkStats>) -> EndpointStats {
        links.sort_by_key(|l| l.link);
        let mut totals = LinkTotals::default();
        for link in &links {
            totals.add(link);
        }
        EndpointStats { links, totals }
    }
}

fn secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn opt_secs<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netcore_proto::link::ReliableStats;
    use netcore_proto::secure::SecureStats;

    fn runtime(link: u64, state: LinkStatus) -> RuntimeStats {
        RuntimeStats {
            link: LinkId(link),
            state,
            uptime: Duration::from_secs(3),
            time_in_state: Duration::from_secs(1),
            reconnects: 2,
            calls_awaiting_answer: 4,
            requests_in_service: 5,
        }
    }

    /// Every counter of both halves set to a distinct value.
    fn halves() -> (SessionStats, TransmitterStats) {
        let mut framing = FramingStats::default();
        framing.dropped_crc = 1;
        framing.dropped_cobs = 2;
        framing.dropped_runt = 3;
        framing.dropped_oversize = 4;
        framing.dropped_length = 5;
        framing.bytes_discarded = 99;
        let mut secure = SecureStats::default();
        secure.dropped_tampered = 6;
        secure.dropped_replayed = 7;
        secure.dropped_too_old = 8;
        secure.dropped_malformed = 9;
        let session = SessionStats {
            frames_in: 10,
            bytes_in: 11,
            payload_in: 12,
            framing,
            secure,
            duplicates: 13,
            streams_in: 14,
            buffered_bytes: 15,
            awaiting_answer: 16,
            unanswered: 17,
        };
        let transmitter = TransmitterStats {
            frames_out: 20,
            bytes_out: 21,
            payload_out: 22,
            queued_bytes: [23, 24, 25, 26],
            streams_out: 27,
            reliable: Some(ReliableStats {
                in_flight: 28,
                in_flight_bytes: 29,
                retransmissions: 30,
                tail_probes: 35,
                srtt: Some(Duration::from_millis(31)),
                rttvar: Duration::from_millis(32),
                rto: Duration::from_millis(33),
            }),
            pacing_rate: Some(34),
        };
        (session, transmitter)
    }

    #[test]
    fn join_takes_each_field_from_its_half() {
        let (session, transmitter) = halves();
        let s = LinkStats::join(runtime(1, LinkStatus::Up), &session, &transmitter);
        assert_eq!((s.frames_in, s.bytes_in, s.payload_in), (10, 11, 12));
        assert_eq!((s.frames_out, s.bytes_out, s.payload_out), (20, 21, 22));
        let dropped = [
            s.dropped.crc,
            s.dropped.cobs,
            s.dropped.runt,
            s.dropped.oversize,
            s.dropped.length,
            s.dropped.tampered,
            s.dropped.replayed,
            s.dropped.too_old,
            s.dropped.malformed,
        ];
        assert_eq!(dropped, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(s.dropped.total(), 45);
        assert_eq!(s.dropped.bytes_discarded, 99);
        assert_eq!(
            (s.duplicates, s.retransmissions, s.tail_probes),
            (13, 30, 35)
        );
        assert_eq!(
            (s.streams_in, s.streams_out, s.buffered_bytes_in),
            (14, 27, 15)
        );
        assert_eq!((s.calls_awaiting_answer, s.requests_in_service), (4, 5));
        assert!(s.reliable);
        assert_eq!(s.srtt, Some(Duration::from_millis(31)));
        assert_eq!(s.rttvar, Some(Duration::from_millis(32)));
        assert_eq!(s.rto, Some(Duration::from_millis(33)));
        assert_eq!(
            (s.in_flight_frames, s.in_flight_bytes),
            (Some(28), Some(29))
        );
        assert_eq!(s.pacing_rate, Some(34));
        assert_eq!(s.queued_bytes.get(Priority::Urgent), 23);
        assert_eq!(s.queued_bytes.get(Priority::Bulk), 26);
        assert_eq!(s.queued_bytes.total(), 23 + 24 + 25 + 26);
        assert_eq!((s.reconnects, s.uptime), (2, Duration::from_secs(3)));
        // Without the reliable mode there is no round trip nor anything in flight.
        let plain = TransmitterStats {
            reliable: None,
            ..transmitter
        };
        let s = LinkStats::join(runtime(1, LinkStatus::Up), &session, &plain);
        assert!(!s.reliable);
        assert_eq!((s.srtt, s.rttvar, s.rto), (None, None, None));
        assert_eq!(
            (s.in_flight_frames, s.in_flight_bytes, s.retransmissions),
            (None, None, 0)
        );
    }

    #[test]
    fn endpoint_stats_sort_links_and_sum_them() {
        let (session, transmitter) = halves();
        let a = LinkStats::join(runtime(7, LinkStatus::Up), &session, &transmitter);
        let b = LinkStats::join(runtime(3, LinkStatus::Reconnecting), &session, &transmitter);
        let all = EndpointStats::of(vec![a, b]);
        assert_eq!(
            all.links.iter().map(|l| l.link.0).collect::<Vec<_>>(),
            [3, 7]
        );
        let t = all.totals;
        assert_eq!((t.links, t.up, t.reconnects), (2, 1, 4));
        assert_eq!((t.payload_in, t.payload_out), (24, 44));
        assert_eq!(
            (t.frames_in, t.frames_out, t.bytes_in, t.bytes_out),
            (20, 40, 22, 42)
        );
        assert_eq!((t.dropped.total(), t.dropped.bytes_discarded), (90, 198));
        assert_eq!(
            (t.retransmissions, t.duplicates, t.in_flight_bytes),
            (60, 26, 58)
        );
        assert_eq!(t.tail_probes, 70);
        assert_eq!(t.queued_bytes.total(), 2 * (23 + 24 + 25 + 26));
        assert_eq!(
            (t.streams_in, t.streams_out, t.buffered_bytes_in),
            (28, 54, 30)
        );
        assert_eq!((t.calls_awaiting_answer, t.requests_in_service), (8, 10));
    }

    #[test]
    fn durations_serialize_as_seconds() {
        let (session, transmitter) = halves();
        let s = LinkStats::join(runtime(1, LinkStatus::Closing), &session, &transmitter);
        let json = serde_json::to_value(s).unwrap_or_default();
        assert_eq!(json["uptime"], 3.0);
        assert_eq!(json["srtt"], 0.031);
        assert_eq!(json["state"], "closing");
        assert_eq!(json["queued_bytes"]["high"], 24);
        assert_eq!(json["dropped"]["too_old"], 8);
    }
}
