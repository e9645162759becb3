//! Supervision of a link whose peer is lost, until it is back or the
//! [`ReconnectPolicy`](super::ReconnectPolicy) gives up:
//!
//! - the transport broke and a connector is set: reopen it, with the policy's
//!   backoff, then handshake on the new one (repeating the HELLO with the same
//!   backoff while the peer does not answer, in the reliable mode);
//! - the transport broke on the accepting side: wait the resume window for the
//!   peer to come back on a new connection;
//! - the peer fell silent on a transport that is fine (a supervised link,
//!   `LinkEvent::Silent`): keep the transport and probe the peer with the
//!   policy's backoff; any frame it sends ends the silence at once.
//!
//! Meanwhile the link is [`LinkState::Reconnecting`], and each attempt is an
//! [`Event::LinkRetrying`] on the event bus; the session resumes on the peer's
//! return ([`Event::LinkRecovered`]) with nothing lost or sent twice (the
//! reliable mode), or resets if the peer lost it (calls in flight fail with
//! `PeerReset`).

use super::LinkActor;
use crate::clock::random_u64;
use crate::error::DownReason;
use crate::event::{Event, Retry};
use crate::messages::{LinkState, PeerSession, PeerSessionState, Reconnected, Unpark};
use crate::transport::BoxedTransport;
use actix::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a unanswered probe (or repeated HELLO) is reported as, in the next
/// attempt's event.
const NO_ANSWER: DownReason = DownReason::Unresponsive {
    what: "no answer from the peer yet",
};

/// A lost peer: since when, the attempts to get it back, how it was lost.
pub(super) struct Outage {
    started: Instant,
    attempts: u32,
    cause: DownReason,
    /// Why the latest attempt did not bring the peer back.
    last_error: DownReason,
}

impl LinkActor {
    /// The peer is lost (`cause`): the link is `Reconnecting` until it is back.
    /// An outage already under way goes on (its clock and attempts count on).
    fn lose_peer(&mut self, cause: DownReason) {
        match self.outage.as_mut() {
            Some(outage) => outage.last_error = cause,
            None => {
                self.outage = Some(Outage {
                    started: Instant::now(),
                    attempts: 0,
                    cause: cause.clone(),
                    last_error: cause,
                })
            }
        }
        if matches!(*self.state.borrow(), LinkState::Up | LinkState::Connecting) {
            self.state.send_replace(LinkState::Reconnecting);
        }
    }

    /// The peer is back (the session resumed or reset, or a silent peer was
    /// heard): the link is up, the outage reported over.
    pub(super) fn peer_back(&mut self) {
        self.probes += 1; // a probe timer still armed is obsolete
        if let Some(outage) = self.outage.take() {
            let elapsed = outage.started.elapsed();
            tracing::info!(link = %self.id, attempts = outage.attempts, outage = ?elapsed, "peer back");
            self.publish(Event::LinkRecovered {
                link: self.id,
                attempts: outage.attempts,
                outage: elapsed,
            });
        }
        if matches!(
            *self.state.borrow(),
            LinkState::Connecting | LinkState::Reconnecting
        ) {
            self.state.send_replace(LinkState::Up);
        }
    }

    fn publish(&self, event: Event) {
        if let Some(events) = &self.events {
            events.publish(event);
        }
    }

    /// The next attempt's wait, reported on the event bus; `None` (and the link
    /// down) once the policy gives up, or when no peer is missing.
    fn next_attempt(&mut self, how: Retry, ctx: &mut Context<Self>) -> Option<Duration> {
        let outage = self.outage.as_mut()?;
        let lost = outage.started.elapsed();
        if self.reconnect.gives_up(lost) {
            let reason = DownReason::GaveUp {
                after: lost,
                cause: Box::new(outage.cause.clone()),
            };
            tracing::warn!(link = %self.id, %reason, attempts = outage.attempts, "giving up");
            self.go_down(reason, ctx);
            return None;
        }
        outage.attempts += 1;
        let attempt = outage.attempts;
        let mut wait = self.reconnect.wait(attempt, random_u64());
        if let Some(limit) = self.reconnect.give_up {
            // The last wait ends when the policy gives up, not later.
            wait = wait.min(limit.saturating_sub(lost));
        }
        let error = outage.last_error.clone();
        tracing::debug!(link = %self.id, attempt, ?how, %error, ?wait, "next attempt");
        self.publish(Event::LinkRetrying {
            link: self.id,
            attempt,
            how,
            error,
            wait,
        });
        Some(wait)
    }

    /// The peer fell silent (`LinkEvent::Silent`): probe it until it answers.
    pub(super) fn peer_silent(&mut self, what: &'static str, ctx: &mut Context<Self>) {
        tracing::info!(link = %self.id, what, "peer silent; probing");
        self.lose_peer(DownReason::Unresponsive { what });
        self.probes += 1;
        self.schedule_probe(ctx);
    }

    /// Arms the next probe (of a silent peer, or a repeated HELLO on a reopened
    /// transport), with the policy's backoff.
    fn schedule_probe(&mut self, ctx: &mut Context<Self>) {
        let Some(wait) = self.next_attempt(Retry::Probe, ctx) else {
            return;
        };
        let armed = self.probes;
        ctx.run_later(wait, move |act, ctx| {
            if act.probes != armed || act.outage.is_none() || act.reconnecting {
                return;
            }
            act.session.probe(crate::clock::now());
            act.pump(ctx);
            if let Some(outage) = act.outage.as_mut() {
                outage.last_error = NO_ANSWER;
            }
            act.schedule_probe(ctx);
        });
    }

    /// The transport broke on the accepting side: wait `window` for the peer to
    /// reconnect (the endpoint hands its new connection over with `Reconnected`).
    pub(super) fn await_peer(
        &mut self,
        reason: DownReason,
        window: Duration,
        ctx: &mut Context<Self>,
    ) {
        if self.reconnecting {
            return;
        }
        self.reconnecting = true;
        self.probes += 1;
        tracing::info!(link = %self.id, %reason, ?window, "transport broke; waiting for the peer to reconnect");
        self.lose_peer(reason);
        self.scheduler.unpark.do_send(Unpark);
        let generation = self.generation;
        ctx.run_later(window, move |act, ctx| {
            if act.reconnecting && act.generation == generation {
                act.go_down(DownReason::ResumeWindowElapsed(window), ctx);
            }
        });
    }

    /// The transport broke and a connector is set: reopen it with the policy's
    /// backoff until it works (or the policy gives up).
    pub(super) fn reconnect(&mut self, reason: DownReason, ctx: &mut Context<Self>) {
        if self.connector.is_none() || self.reconnecting {
            return;
        }
        self.reconnecting = true;
        self.probes += 1;
        tracing::info!(link = %self.id, %reason, "transport broke; reconnecting");
        self.lose_peer(reason);
        // The old writer's parked pull ends; the new writer pulls afresh.
        self.scheduler.unpark.do_send(Unpark);
        self.schedule_reopen(ctx);
    }

    /// Arms the next attempt to reopen the transport.
    fn schedule_reopen(&mut self, ctx: &mut Context<Self>) {
        let Some(wait) = self.next_attempt(Retry::Reopen, ctx) else {
            return;
        };
        ctx.run_later(wait, |act, ctx| {
            let Some(connector) = act.connector.clone() else {
                return;
            };
            let opening = actix::fut::wrap_future((connector.0)());
            ctx.spawn(opening.map(|result, act: &mut Self, ctx| match result {
                Ok(transport) => act.reopened(transport, ctx),
                Err(error) => {
                    tracing::debug!(link = %act.id, %error, "reopening the transport failed");
                    if let Some(outage) = act.outage.as_mut() {
                        outage.last_error = DownReason::Transport(Arc::new(error));
                    }
                    act.schedule_reopen(ctx);
                }
            }));
        });
    }

    /// The connector opened a new transport: handshake on it and resume.
    fn reopened(&mut self, transport: BoxedTransport, ctx: &mut Context<Self>) {
        if !self.reconnecting {
            return;
        }
        self.reconnecting = false;
        self.session.reconnect();
        self.run_transport(transport, ctx);
        self.pump(ctx);
        if self.rehello && self.outage.is_some() {
            // Our HELLO may be lost on a line still coming back: repeat it
            // until the peer's arrives.
            if let Some(outage) = self.outage.as_mut() {
                outage.last_error = NO_ANSWER;
            }
            self.probes += 1;
            self.schedule_probe(ctx);
        }
    }
}

impl Handler<PeerSession> for LinkActor {
    type Result = MessageResult<PeerSession>;

    fn handle(&mut self, _: PeerSession, _: &mut Self::Context) -> Self::Result {
        let secure = self.session.secure();
        MessageResult(PeerSessionState {
            id: self.session.peer_session_id(),
            reconnecting: self.reconnecting,
            key_id: secure.and_then(|s| s.session_peer().cloned()),
            resume_secret: secure.and_then(|s| s.resume_secret()),
        })
    }
}

impl Handler<Reconnected> for LinkActor {
    type Result = ();

    fn handle(&mut self, Reconnected(transport, keys): Reconnected, ctx: &mut Self::Context) {
        // The old transport may not have reported its end yet (the peer noticed the
        // break first): retire its writer and hold output until the new HELLO.
        if !self.reconnecting {
            self.scheduler.unpark.do_send(Unpark);
            self.lose_peer(DownReason::Reconnecting);
        }
        self.reconnecting = false;
        self.probes += 1;
        match keys {
            Some(established) => self.session.reconnect_established(established),
            None => self.session.reconnect(),
        }
        self.run_transport(transport, ctx);
        self.pump(ctx);
    }
}
