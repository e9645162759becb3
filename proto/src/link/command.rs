//! What the inbound half of a link asks of its outbound half.

use crate::error::ErrorCode;
use crate::frame::{Ack, Credit, Frame, GoAway, Hello, Open};
use crate::ids::StreamId;
use crate::reliable::ReliableConfig;
use crate::scheduler::Body;

/// An instruction from a [`Session`](super::Session) to its
/// [`Transmitter`](super::Transmitter), applied in the order emitted.
#[derive(Debug)]
pub enum Command {
    /// Queue a control frame (HELLO, PONG, CANCEL, CREDIT, GOAWAY, PING).
    Control(Frame),
    /// Queue an outbound message under a freshly allocated, validated id.
    Enqueue {
        /// The head; the scheduler fills in payload, fin and total length.
        open: Open,
        /// The body.
        body: Body,
    },
    /// Stop sending a stream's chunks and forget it.
    Cancel {
        /// The stream.
        stream: StreamId,
        /// The code a CANCEL frame carries.
        code: ErrorCode,
        /// Whether the peer hears of it.
        tell_peer: TellPeer,
    },
    /// Peer-granted credit, for a stream or the link ([`Credit::LINK`]).
    Credit(Credit),
    /// The peer's HELLO arrived: its windows and the largest chunk its frames hold.
    PeerHello {
        /// Initial per-stream credit.
        stream_window: u64,
        /// Initial link credit.
        link_window: u64,
        /// Largest chunk payload that fits the peer's maximum frame.
        max_chunk_len: usize,
        /// Both sides offered the reliable mode: sequence and keep every frame.
        reliable: Option<ReliableConfig>,
    },
    /// Send this acknowledgement ahead of everything (reliable mode; never
    /// sequenced, never held back by the window).
    Ack(Ack),
    /// The peer acknowledged frames (reliable mode).
    PeerAck(Ack),
    /// Send this HELLO now, first and unsequenced; after a reconnection nothing else
    /// goes out until the peer's HELLO (`Resume` or `Reset`).
    Hello(Hello),
    /// The transport was replaced: restart the framing encoder, hold everything
    /// but the HELLO.
    Reconnect,
    /// The peer kept our session and had received `peer_received` of our reliable
    /// frames: drop those, send every other unacknowledged frame again, go on.
    Resume {
        /// Reliable frames of ours the peer received in order.
        peer_received: u64,
    },
    /// The peer lost our session: forget every queued message and frame in flight
    /// (a `PeerHello` follows, as on a first connection).
    Reset,
    /// The peer is silent: send something it must answer (the oldest frame it
    /// has not acknowledged in the reliable mode, else a PING), once, whatever
    /// the window or the retransmission limit.
    Probe,
    /// The peer was heard after a silence: send every frame it has not
    /// acknowledged again, at the round-trip pace (the backoff earned while it
    /// was silent is cleared), and go on.
    Heard,
    /// The link failed: send this GOAWAY and no further CANCEL frames.
    Fail(GoAway),
    /// Authenticated mode: send this handshake frame unsealed, ahead of everything.
    #[cfg(feature = "secure")]
    SecureSend(bytes::Bytes),
    /// Authenticated mode: the handshake completed; seal every later frame.
    #[cfg(feature = "secure")]
    SecureReady(crate::secure::Sealer),
}

/// Whether canceling a stream sends a CANCEL frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TellPeer {
    /// The session knows the peer knows the stream (a request either way).
    Always,
    /// Only if the transmitter still had the stream (its OPEN may have left).
    IfSending,
    /// The peer canceled it; nothing to say back.
    Never,
}
