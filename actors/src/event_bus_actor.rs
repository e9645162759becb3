//! [`EventBusActor`]: the event bus (see [`EventBus`] for how it behaves).

use crate::event::Event;
use crate::event_bus::{BusInbox, Callback, Filter};
use crate::event_bus::{EventBus, EventBusConfig, Publish, Subscribe, SubscriptionId, Unsubscribe};
use crate::supervision::{guard, run_supervised, Restartable, Supervision};
#[cfg(feature = "test-util")]
use crate::supervision::{InjectPanic, ServiceError};
use actix::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;

struct Subscriber {
    id: SubscriptionId,
    filter: Filter,
    callback: Callback,
    once: bool,
}

/// The event bus actor (use it through [`EventBus`]).
pub struct EventBusActor {
    subscribers: Vec<Subscriber>,
    /// How many closures are subscribed, shared with every [`EventBus`] handle.
    listeners: Arc<AtomicUsize>,
    tx: broadcast::Sender<Event>,
    supervision: Supervision,
}

impl EventBusActor {
    /// Delivers an event to the broadcast receivers and the matching closures.
    fn deliver(&mut self, event: &Event) {
        // An error only means there is no receiver right now.
        let _ = self.tx.send(event.clone());
        let before = self.subscribers.len();
        self.subscribers.retain_mut(|sub| {
            let delivered = guard(|| {
                let matched = (sub.filter)(event);
                if matched {
                    (sub.callback)(event);
                }
                matched
            });
            match delivered {
                Ok(matched) => !(matched && sub.once),
                Err(why) => {
                    tracing::error!(
                        subscription = sub.id.0, %why, ?event,
                        "event subscriber panicked; unsubscribing it"
                    );
                    false
                }
            }
        });
        self.listeners
            .fetch_sub(before - self.subscribers.len(), Ordering::Relaxed);
    }
}

impl Actor for EventBusActor {
    type Context = Context<Self>;
}

impl Restartable for EventBusActor {
    fn supervision(&mut self) -> &mut Supervision {
        &mut self.supervision
    }

    fn rebuild(&mut self, _: &mut Context<Self>) {
        // Subscriptions and the channel are the bus's contract with the rest of
        // the runtime and outlive restarts; there is no other state to reset.
    }

    fn announce(&mut self, event: Event) {
        self.deliver(&event);
    }
}

impl Handler<Publish> for EventBusActor {
    type Result = ();

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) {
        let _ = run_supervised(self, ctx, |act, _| act.deliver(&msg.0));
    }
}

impl Handler<Subscribe> for EventBusActor {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) {
        let _ = run_supervised(self, ctx, |act, _| {
            act.subscribers.push(Subscriber {
                id: msg.id,
                filter: msg.filter,
                callback: msg.callback,
                once: msg.once,
            })
        });
    }
}

impl Handler<Unsubscribe> for EventBusActor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, ctx: &mut Self::Context) {
        let _ = run_supervised(self, ctx, |act, _| {
            let before = act.subscribers.len();
            act.subscribers.retain(|sub| sub.id != msg.0);
            act.listeners
                .fetch_sub(before - act.subscribers.len(), Ordering::Relaxed);
        });
    }
}

#[cfg(feature = "test-util")]
impl Handler<InjectPanic> for EventBusActor {
    type Result = Result<(), ServiceError>;

    fn handle(&mut self, msg: InjectPanic, ctx: &mut Self::Context) -> Self::Result {
        run_supervised(self, ctx, |_, _| panic!("{}", msg.0))
    }
}

impl EventBus {
    /// Starts the bus actor on the current arbiter.
    pub fn start(config: EventBusConfig) -> EventBus {
        let (tx, _) = broadcast::channel(config.capacity.max(1));
        let weak = tx.downgrade();
        let listeners = Arc::new(AtomicUsize::new(0));
        let addr = EventBusActor {
            subscribers: Vec::new(),
            listeners: listeners.clone(),
            tx,
            supervision: Supervision::new("event-bus", config.policy, None),
        }
        .start();
        let inbox = BusInbox {
            publish: addr.clone().recipient(),
            subscribe: addr.clone().recipient(),
            unsubscribe: addr.clone().recipient(),
            #[cfg(feature = "test-util")]
            panic: addr.recipient(),
        };
        EventBus::new(inbox, weak, listeners)
    }
}
