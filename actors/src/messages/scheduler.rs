//! Messages a link's `SchedulerActor` handles: from its link actor, the
//! writer task, body feeders and the application (progress).

use crate::error::CallError;
use crate::messages::link::TransmitterFailed;
use actix::prelude::*;
use bytes::Bytes;
use netcore_proto::framing::WireBatch;
use netcore_proto::link::Command;
use netcore_proto::StreamId;
use tokio::sync::watch;

pub use netcore_proto::link::Progress;

/// Commands from the link's session, applied in order.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Apply(pub Vec<Command>);

/// The writer can take more bytes: answered with the next batch once one is
/// ready, or `None` when the link is closing. Carries the writer's previous batch,
/// written out, so its buffer serves the next one (no allocation per write).
#[derive(Message)]
#[rtype(result = "Option<WireBatch>")]
pub(crate) struct Pull(pub Option<WireBatch>);

/// Resolves once every frame queued so far was written to the transport: the
/// writer is waiting for more and nothing more is queued (frames the pacer holds
/// back are still queued: the flush waits for their release). A link flushes before it
/// closes, so answers given at the last moment are not lost. Resolves at once on
/// a closed scheduler; a writer stuck on a peer that does not read never flushes,
/// so whoever waits bounds the wait. The link actor answers it by asking its
/// scheduler.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Flush;

/// The link is going down: the writer's pull returns `None` from now on and what
/// is still queued is dropped ([`Flush`] first to have it written).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Close;

/// Appends bytes to a streamed body; resolves when the stream wants more (its
/// queue ran low), so a feeder reading a file stays a few chunks ahead of the wire.
#[derive(Message)]
#[rtype(result = "Result<(), CallError>")]
pub(crate) struct PushBody {
    /// The outbound stream.
    pub stream: StreamId,
    /// The next bytes of the body.
    pub bytes: Bytes,
    /// Whether they are the last.
    pub fin: bool,
}

/// The transport broke: the old writer's parked pull gets `None` (it exits); a
/// new writer pulls after the reconnection.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Unpark;

/// Who to tell when the reliable mode gives up on the peer (the link actor).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Watchdog(pub Recipient<TransmitterFailed>);

/// Subscribes to the progress of an outbound stream.
#[derive(Message)]
#[rtype(result = "watch::Receiver<Progress>")]
pub(crate) struct WatchProgress {
    /// The outbound stream.
    pub stream: StreamId,
    /// Its total length, if known.
    pub total: Option<u64>,
}

/// Asks for the transmitter's counters and state (answered at once).
#[derive(Message)]
#[rtype(result = "netcore_proto::link::TransmitterStats")]
pub(crate) struct TransmitStats;

/// What a link actor and its tasks send to the link's scheduler.
#[derive(Clone)]
pub(crate) struct SchedulerInbox {
    pub apply: Recipient<Apply>,
    pub pull: Recipient<Pull>,
    pub push: Recipient<PushBody>,
    pub flush: Recipient<Flush>,
    pub close: Recipient<Close>,
    pub unpark: Recipient<Unpark>,
    pub watchdog: Recipient<Watchdog>,
    pub progress: Recipient<WatchProgress>,
    pub stats: Recipient<TransmitStats>,
}

impl SchedulerInbox {
    /// The inbox of the actor at `addr`.
    pub(crate) fn of<A>(addr: &Addr<A>) -> SchedulerInbox
    where
        A: Actor<Context = Context<A>>
            + Handler<Apply>
            + Handler<Pull>
            + Handler<PushBody>
            + Handler<Flush>
            + Handler<Close>
            + Handler<Unpark>
            + Handler<Watchdog>
            + Handler<WatchProgress>
            + Handler<TransmitStats>,
    {
        SchedulerInbox {
            apply: addr.clone().recipient(),
            pull: addr.clone().recipient(),
            push: addr.clone().recipient(),
            flush: addr.clone().recipient(),
            close: addr.clone().recipient(),
            unpark: addr.clone().recipient(),
            watchdog: addr.clone().recipient(),
            progress: addr.clone().recipient(),
            stats: addr.clone().recipient(),
        }
    }
}

/// What a stand-in scheduler received (unit tests).
#[cfg(test)]
pub(crate) struct SchedulerStub {
    pub apply: crate::testing::Seen<Apply>,
    pub pull: crate::testing::Seen<Pull>,
    pub close: crate::testing::Seen<Close>,
    pub watchdog: crate::testing::Seen<Watchdog>,
}

#[cfg(test)]
impl SchedulerInbox {
    /// The inbox of a stand-in scheduler: it records what a link sends it,
    /// answers the writer's pulls with `None` (the writer exits) and every
    /// push and flush at once.
    pub(crate) fn stub() -> (SchedulerInbox, SchedulerStub) {
        use crate::testing::{ignore, stub};
        let (apply, applied) = stub(|_: &Apply| ());
        let (pull, pulled) = stub(|_: &Pull| None);
        let (close, closed) = stub(|_: &Close| ());
        let (watchdog, watchdogs) = stub(|_: &Watchdog| ());
        let inbox = SchedulerInbox {
            apply,
            pull,
            push: stub(|_: &PushBody| Ok(())).0,
            flush: ignore(),
            close,
            unpark: ignore(),
            watchdog,
            progress: stub(|msg: &WatchProgress| {
                let total = msg.total;
                watch::channel(Progress { sent: 0, total }).1
            })
            .0,
            stats: stub(|_: &TransmitStats| Default::default()).0,
        };
        let seen = SchedulerStub {
            apply: applied,
            pull: pulled,
            close: closed,
            watchdog: watchdogs,
        };
        (inbox, seen)
    }
}
