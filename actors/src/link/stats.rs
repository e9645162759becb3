//! The link's state as the actor keeps it ([`StateCell`]: the watched
//! [`LinkState`] and since when it holds), and the [`Stats`] snapshot: the
//! session's counters, the scheduler's and the actor's own.

use super::LinkActor;
use crate::messages::{LinkState, Stats, TransmitStats};
use crate::stats::{LinkStats, LinkStatus, RuntimeStats};
use actix::prelude::*;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::watch;

/// The link's state, watched by its owner, and when it last changed.
pub(super) struct StateCell {
    tx: watch::Sender<LinkState>,
    since: Instant,
}

impl StateCell {
    /// A link starting: `Connecting`, from now.
    pub(super) fn new() -> StateCell {
        StateCell {
            tx: watch::channel(LinkState::Connecting).0,
            since: Instant::now(),
        }
    }

    /// Sets the state (watchers see it); the clock of the state restarts
    /// when its kind changes.
    pub(super) fn send_replace(&mut self, state: LinkState) -> LinkState {
        let old = self.tx.send_replace(state);
        if std::mem::discriminant(&old) != std::mem::discriminant(&*self.tx.borrow()) {
            self.since = Instant::now();
        }
        old
    }

    /// The current state.
    pub(super) fn borrow(&self) -> watch::Ref<'_, LinkState> {
        self.tx.borrow()
    }

    /// A watcher of the state.
    pub(super) fn subscribe(&self) -> watch::Receiver<LinkState> {
        self.tx.subscribe()
    }

    /// When the state last changed kind.
    pub(super) fn since(&self) -> Instant {
        self.since
    }
}

impl LinkActor {
    /// What the actor knows of the link beside the protocol's halves.
    fn runtime_stats(&self) -> RuntimeStats {
        let state = match &*self.state.borrow() {
            LinkState::Connecting => LinkStatus::Connecting,
            LinkState::Reconnecting => LinkStatus::Reconnecting,
            LinkState::Up => LinkStatus::Up,
            LinkState::Closing(_) => LinkStatus::Closing,
            LinkState::Down(_) => LinkStatus::Down,
        };
        RuntimeStats {
            link: self.id,
            state,
            uptime: self.started.elapsed(),
            time_in_state: self.state.since().elapsed(),
            // The first transport is generation 1; each later one replaced a
            // broken one.
            reconnects: self.generation.saturating_sub(1),
            calls_awaiting_answer: self.calls.len(),
            requests_in_service: self.serving.len(),
        }
    }
}

impl Handler<Stats> for LinkActor {
    type Result = ResponseFuture<LinkStats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        let runtime = self.runtime_stats();
        let session = self.session.stats();
        let scheduler = self.scheduler.stats.send(TransmitStats);
        let py_wire = self.py_wire.clone();
        Box::pin(async move {
            // A scheduler that stopped (the link is going down) sent nothing more.
            let transmitter = scheduler.await.unwrap_or_default();
            let mut stats = LinkStats::join(runtime, &session, &transmitter);
            if let Some(wire) = py_wire {
                // A Python link's wire is the Python one, not the pipe to its bridge.
                stats.bytes_in = wire.bytes_in.load(Ordering::Relaxed);
                stats.bytes_out = wire.bytes_out.load(Ordering::Relaxed);
                stats.frames_in = wire.frames_in.load(Ordering::Relaxed);
                stats.frames_out = wire.frames_out.load(Ordering::Relaxed);
            }
            stats
        })
    }
}
