//! [`Event`]: what the runtime reports (links up and down, requests, transfers,
//! supervised restarts); the event bus fans them out.

use crate::error::DownReason;
use crate::ids::LinkId;
use netcore_proto::StreamId;
use std::time::Duration;

/// How a link tries to get its lost peer back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Reopening its transport through its connector.
    Reopen,
    /// Probing a silent peer on the transport it has (or repeating its HELLO
    /// on a reopened one whose peer has not answered yet).
    Probe,
}

/// Something that happened in the runtime.
///
/// The service actors publish `ActorRestarted` / `ActorEscalated`; the other
/// events are published by whoever owns the bus (the endpoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The endpoint started.
    Started,
    /// The endpoint stopped.
    Stopped,
    /// A link came up.
    LinkUp {
        /// The link.
        link: LinkId,
    },
    /// A link went down.
    LinkDown {
        /// The link.
        link: LinkId,
        /// Why; [`DownReason::Reconnecting`] when its transport broke and it
        /// reconnects (a `LinkUp` follows once the session resumed).
        reason: DownReason,
    },
    /// A link that lost its peer schedules an attempt to get it back (one
    /// event per attempt, `LinkDown` with [`DownReason::Reconnecting`] first).
    LinkRetrying {
        /// The link.
        link: LinkId,
        /// 1 for the first attempt of this outage.
        attempt: u32,
        /// Reopening or probing.
        how: Retry,
        /// Why the peer is still missing: how it was lost for the first attempt,
        /// why the previous one failed (a reopening's I/O error) or went
        /// unanswered after that.
        error: DownReason,
        /// How long until the attempt.
        wait: Duration,
    },
    /// A link got its peer back after `attempts` attempts and `outage` (a
    /// `LinkUp` follows; [`DownReason::GaveUp`] in `LinkDown` when it did not).
    LinkRecovered {
        /// The link.
        link: LinkId,
        /// Attempts it took.
        attempts: u32,
        /// From losing the peer to the session resumed (or reset).
        outage: Duration,
    },
    /// A request arrived.
    Request {
        /// The link it arrived on.
        link: LinkId,
        /// Its route.
        route: String,
    },
    /// A request was answered.
    Response {
        /// The link.
        link: LinkId,
        /// The request's route.
        route: String,
        /// True for a success answer.
        ok: bool,
    },
    /// A stream was canceled.
    Canceled {
        /// The link.
        link: LinkId,
        /// The stream.
        stream: StreamId,
    },
    /// A transfer progressed.
    TransferProgress {
        /// The link.
        link: LinkId,
        /// The stream.
        stream: StreamId,
        /// Bytes done.
        done: u64,
        /// Total bytes, if known.
        total: Option<u64>,
    },
    /// A supervised actor panicked and restarted.
    ActorRestarted {
        /// The actor.
        actor: String,
        /// Its restarts since it started.
        restarts: u32,
        /// The panic's text.
        reason: String,
    },
    /// A supervised actor failed too often and stopped.
    ActorEscalated {
        /// The actor.
        actor: String,
        /// The last panic's text.
        reason: String,
    },
}
