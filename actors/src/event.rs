//! [`Event`]: what the runtime reports (links up and down, requests, transfers,
//! supervised restarts); the event bus fans them out.

use crate::error::DownReason;
use crate::ids::LinkId;
use netcore_proto::StreamId;

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
