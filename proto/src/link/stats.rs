//! Snapshots of a link's counters and state, one per half: [`SessionStats`] (the
//! inbound half, kept by the [`Session`](super::Session)) and [`TransmitterStats`]
//! (the outbound half, kept by the [`Transmitter`](super::Transmitter)).
//!
//! Every counter is a plain integer bumped where the event happens; taking a
//! snapshot copies them (and sums at most a window of frames in flight), without
//! allocating, so a runtime may read them many times a second.

use super::ReliableStats;
use crate::framing::FramingStats;
use crate::ids::Priority;

/// The inbound half of a link: what arrived, what was dropped, what is open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Frames decoded (framing intact; before the reliable mode's ordering).
    pub frames_in: u64,
    /// Wire bytes consumed.
    pub bytes_in: u64,
    /// Body bytes of the OPEN and DATA frames the peer sent, counted once each
    /// (duplicates excluded), whether the message was delivered or refused.
    pub payload_in: u64,
    /// The framing decoders' counters over every transport: damaged frames
    /// dropped, by reason.
    pub framing: FramingStats,
    /// The authenticated mode's counters (all zero when it is off).
    #[cfg(feature = "secure")]
    pub secure: crate::secure::SecureStats,
    /// Reliable mode: sequenced frames received again and dropped (their ACK
    /// was lost, or they were retransmitted early), over the link's life.
    pub duplicates: u64,
    /// Inbound messages partly received (being reassembled, spooled or streamed).
    pub streams_in: usize,
    /// Bytes of incomplete inbound messages held in memory.
    pub buffered_bytes: u64,
    /// Our requests still waiting for their answer.
    pub awaiting_answer: usize,
    /// The peer's requests this side has not answered yet.
    pub unanswered: usize,
}

/// The outbound half of a link: what left, what waits, the reliable mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransmitterStats {
    /// Frames handed to the framing (retransmissions included).
    pub frames_out: u64,
    /// Wire bytes produced (retransmissions included).
    pub bytes_out: u64,
    /// Body bytes of the OPEN and DATA frames sent, counted once each
    /// (retransmissions excluded).
    pub payload_out: u64,
    /// Unsent body bytes of queued messages, by priority class (index:
    /// [`Priority::index`]).
    pub queued_bytes: [u64; Priority::COUNT],
    /// Outbound messages queued or partly sent.
    pub streams_out: usize,
    /// The reliable mode's state, when it is on.
    pub reliable: Option<ReliableStats>,
    /// The rate new frames are paced at, in bytes per second; `None`: not
    /// paced (frames leave whenever the transport can take them).
    pub pacing_rate: Option<u64>,
}
