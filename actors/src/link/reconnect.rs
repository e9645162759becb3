//! Reconnection: a link whose transport broke reopens it through its
//! [`Connector`](super::Connector) (exponential backoff with jitter), or, on the
//! accepting side, waits its resume window for the peer to come back on a new
//! connection; either way the session resumes on the new transport.

use super::LinkActor;
use crate::clock::random_u64;
use crate::error::DownReason;
use crate::messages::{LinkState, PeerSession, PeerSessionState, Reconnected, Unpark};
use actix::prelude::*;

impl LinkActor {
    /// The transport broke on the accepting side: wait `window` for the peer to
    /// reconnect (the endpoint hands its new connection over with `Reconnected`).
    pub(super) fn await_peer(
        &mut self,
        reason: DownReason,
        window: std::time::Duration,
        ctx: &mut Context<Self>,
    ) {
        if self.reconnecting {
            return;
        }
        self.reconnecting = true;
        self.state.send_replace(LinkState::Connecting);
        tracing::info!(link = %self.id, %reason, ?window, "transport broke; waiting for the peer to reconnect");
        self.scheduler.unpark.do_send(Unpark);
        let generation = self.generation;
        ctx.run_later(window, move |act, ctx| {
            if act.reconnecting && act.generation == generation {
                act.go_down(DownReason::ResumeWindowElapsed(window), ctx);
            }
        });
    }

    /// The transport broke and a connector is set: reopen it with exponential
    /// backoff (10 ms doubling to 5 s) and ±50% jitter, until it works.
    pub(super) fn reconnect(&mut self, reason: DownReason, ctx: &mut Context<Self>) {
        let Some(connector) = self.connector.clone() else {
            return;
        };
        if self.reconnecting {
            return;
        }
        self.reconnecting = true;
        self.state.send_replace(LinkState::Connecting);
        tracing::info!(link = %self.id, %reason, "transport broke; reconnecting");
        // The old writer's parked pull ends; the new writer pulls afresh.
        self.scheduler.unpark.do_send(Unpark);
        let link = ctx.address();
        let id = self.id;
        actix_rt::spawn(async move {
            let mut backoff = std::time::Duration::from_millis(10);
            loop {
                match (connector.0)().await {
                    Ok(transport) => {
                        link.do_send(Reconnected(transport, None));
                        return;
                    }
                    Err(error) => {
                        let jitter = 0.5 + (random_u64() % 1000) as f64 / 1000.0;
                        let wait = backoff.mul_f64(jitter);
                        tracing::debug!(link = %id, %error, ?wait, "reconnect failed; retrying");
                        tokio::time::sleep(wait).await;
                        backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                    }
                }
            }
        });
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
        }
        self.reconnecting = false;
        match keys {
            Some(established) => self.session.reconnect_established(established),
            None => self.session.reconnect(),
        }
        self.run_transport(transport, ctx);
        self.pump(ctx);
    }
}
