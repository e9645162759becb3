//! Supervised handler actors: an actix actor serving a route (or a blueprint's
//! unknown routes) with its own state and mailbox, restarted from its factory
//! after it dies (a panic in one of its handlers stops it).
//!
//! Policy, OTP-like ([`RestartPolicy`]): at most `max_restarts` within `within`,
//! with exponential backoff before each restart; beyond that the failure
//! escalates: the route answers `HandlerFailed` for good and
//! `Event::ActorEscalated` is published. Each restart publishes
//! `Event::ActorRestarted`. The request the actor was handling when it died is
//! lost with its state: its caller gets `HandlerFailed`; requests already in the
//! dead actor's mailbox get the same. The new instance starts from the factory's
//! fresh state.
//!
//! The factory may take the endpoint's [`Services`] (state, cache, timers,
//! events, the endpoint): it runs at the first request, once they exist, so an
//! actor registered before `start()` still reaches them. With them, the actor
//! runs the extractors of function handlers on its requests too
//! (`services.context(request).extract::<Json<T>>()`).

use super::context::RequestContext;
use super::handler::BoxHandler;
use super::services::{ActorFactory, Services};
use actix::prelude::*;
use netcore_actors::event_bus::EventBus;
use netcore_actors::supervision::{Decision, Failure, RestartPolicy, Supervision};
use netcore_actors::{HandleRequest, HandlerError, HandlerResult};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a supervised handler actor's route shares between requests.
struct Supervisor<A: Actor> {
    factory: Box<dyn Fn(&Services) -> A + Send + Sync>,
    state: Mutex<Slot<A>>,
}

struct Slot<A: Actor> {
    addr: Option<Addr<A>>,
    supervision: Supervision,
    escalated: bool,
}

/// A route handler backed by a supervised handler actor built by `factory`.
pub(crate) fn supervised<A, F, M>(name: String, policy: RestartPolicy, factory: F) -> BoxHandler
where
    A: Actor<Context = Context<A>> + Handler<HandleRequest>,
    F: ActorFactory<A, M>,
{
    let shared = Arc::new(Supervisor {
        factory: Box::new(move |services: &Services| factory.build(services)),
        state: Mutex::new(Slot {
            addr: None,
            supervision: Supervision::new(name, policy, None),
            escalated: false,
        }),
    });
    Arc::new(move |ctx: RequestContext| {
        let shared = shared.clone();
        Box::pin(async move { serve(&shared, ctx).await })
    })
}

async fn serve<A>(shared: &Supervisor<A>, ctx: RequestContext) -> HandlerResult
where
    A: Actor<Context = Context<A>> + Handler<HandleRequest>,
{
    let services = ctx.services().clone();
    let addr = {
        let Ok(mut slot) = shared.state.lock() else {
            return Err(HandlerError::failed("handler actor supervisor poisoned"));
        };
        if slot.escalated {
            return Err(HandlerError::failed(format!(
                "handler actor {} failed too often and was stopped",
                slot.supervision.actor()
            )));
        }
        slot.addr
            .get_or_insert_with(|| (shared.factory)(&services).start())
            .clone()
    };
    match addr.send(HandleRequest(ctx.into_request())).await {
        Ok(result) => result,
        Err(error) => {
            let message = format!("handler actor died: {error}");
            if let Some(after) = restart_decision(shared, &addr, &message, services.events()) {
                // Back off before the replacement takes requests.
                tokio::time::sleep(after).await;
                if let Ok(mut slot) = shared.state.lock() {
                    if slot.addr.is_none() && !slot.escalated {
                        slot.addr = Some((shared.factory)(&services).start());
                    }
                }
            }
            Err(HandlerError::failed(message))
        }
    }
}

/// Records the death of `dead` (once, whoever notices first) and returns the
/// backoff before its replacement, or `None` (already handled, or escalated).
fn restart_decision<A: Actor>(
    shared: &Supervisor<A>,
    dead: &Addr<A>,
    reason: &str,
    bus: &EventBus,
) -> Option<std::time::Duration> {
    let mut slot = shared.state.lock().ok()?;
    if slot.addr.as_ref() != Some(dead) {
        return None;
    }
    slot.addr = None;
    let Failure { decision, event } = slot.supervision.failed(reason, Instant::now());
    bus.publish(event.clone());
    match decision {
        Decision::Restart { after } => Some(after),
        Decision::Escalate => {
            slot.escalated = true;
            None
        }
    }
}
