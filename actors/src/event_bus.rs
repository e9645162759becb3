//! [`EventBusActor`]: fans runtime [`Event`]s out to closures and broadcast
//! receivers; [`EventBus`] is its cloneable handle.
//!
//! - Publishing never blocks the publisher ([`EventBus::publish`] is a
//!   `do_send`: the event is queued even when the mailbox is "full"). The price
//!   is an unbounded mailbox if the bus falls behind, so subscribers must be quick.
//! - Closures ([`EventBus::on`], [`EventBus::once`]) run on the bus's arbiter,
//!   one event at a time, in subscription order. A closure (or its filter) that
//!   panics is caught and logged, the other subscribers still get the event, and
//!   the panicking subscription is removed (as OTP's `gen_event` removes a
//!   crashing handler): a broken subscriber would most likely fail again on
//!   every event, and must not slow the bus down forever.
//! - [`EventBus::subscribe`] gives a bounded `tokio::sync::broadcast` receiver;
//!   one that lags more than the capacity skips the oldest events
//!   (`RecvError::Lagged`), the bus never waits for it. Receivers see `Closed`
//!   once the bus stopped.
//! - Supervised: a panic of the bus itself (not of a subscriber) restarts it in
//!   place (see [`supervision`](crate::supervision)). Subscriptions and the
//!   broadcast channel outlive the restart (losing them would silently cut off
//!   every subscriber); only the event being delivered is lost, for the
//!   subscribers it had not reached yet. The bus reports its own restart on
//!   itself, and its escalation too, delivered just before it stops.

use crate::error::DownReason;
use crate::link_actor::LinkId;
use crate::supervision::{guard, run_supervised, RestartPolicy, Restartable, Supervision};
#[cfg(feature = "test-util")]
use crate::supervision::{InjectPanic, ServiceError};
use actix::prelude::*;
use netcore_proto::StreamId;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;

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

/// Identifies a closure subscription (unique within the process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubscriptionId(pub u64);

impl SubscriptionId {
    fn next() -> SubscriptionId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SubscriptionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Settings of the event bus.
#[derive(Clone, Copy, Debug)]
pub struct EventBusConfig {
    /// Events a broadcast receiver may lag behind before it skips (at least 1).
    pub capacity: usize,
    /// Restart policy of the bus actor.
    pub policy: RestartPolicy,
}

impl Default for EventBusConfig {
    fn default() -> Self {
        EventBusConfig {
            capacity: 1024,
            policy: RestartPolicy::default(),
        }
    }
}

type Filter = Box<dyn Fn(&Event) -> bool + Send>;
type Callback = Box<dyn FnMut(&Event) + Send>;

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

/// Publishes an event.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Publish(pub Event);

impl Handler<Publish> for EventBusActor {
    type Result = ();

    fn handle(&mut self, msg: Publish, ctx: &mut Self::Context) {
        let _ = run_supervised(self, ctx, |act, _| act.deliver(&msg.0));
    }
}

/// Adds a closure subscription.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    id: SubscriptionId,
    filter: Filter,
    callback: Callback,
    once: bool,
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

/// Removes a closure subscription (nothing if it is gone already).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Unsubscribe(pub SubscriptionId);

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

/// Handle of the event bus: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct EventBus {
    addr: Addr<EventBusActor>,
    tx: broadcast::WeakSender<Event>,
    listeners: Arc<AtomicUsize>,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("connected", &self.addr.connected())
            .finish()
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
        EventBus {
            addr,
            tx: weak,
            listeners,
        }
    }

    /// The bus actor's address (unchanged by restarts).
    pub fn addr(&self) -> &Addr<EventBusActor> {
        &self.addr
    }

    /// Publishes an event; never blocks (dropped if the bus is stopped, or if
    /// nobody listens: see [`EventBus::is_heard`]).
    pub fn publish(&self, event: Event) {
        self.publish_with(|| event);
    }

    /// Publishes the event `make` builds, building it only if someone listens:
    /// for frequent events (the router publishes two per request).
    pub fn publish_with(&self, make: impl FnOnce() -> Event) {
        if self.is_heard() {
            self.addr.do_send(Publish(make()));
        }
    }

    /// Whether anyone listens (a closure or a broadcast receiver). A subscription
    /// made on this thread counts at once.
    pub fn is_heard(&self) -> bool {
        self.listeners.load(Ordering::Relaxed) > 0
            || self.tx.upgrade().is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Calls `callback` with every event `filter` accepts, until [`EventBus::off`].
    /// Events published after this call through the same thread are seen.
    pub fn on(
        &self,
        filter: impl Fn(&Event) -> bool + Send + 'static,
        callback: impl FnMut(&Event) + Send + 'static,
    ) -> SubscriptionId {
        self.add(Box::new(filter), Box::new(callback), false)
    }

    /// Calls `callback` with the first event `filter` accepts, then unsubscribes.
    pub fn once(
        &self,
        filter: impl Fn(&Event) -> bool + Send + 'static,
        callback: impl FnOnce(&Event) + Send + 'static,
    ) -> SubscriptionId {
        let mut callback = Some(callback);
        self.add(
            Box::new(filter),
            Box::new(move |event| {
                if let Some(callback) = callback.take() {
                    callback(event);
                }
            }),
            true,
        )
    }

    fn add(&self, filter: Filter, callback: Callback, once: bool) -> SubscriptionId {
        let id = SubscriptionId::next();
        self.listeners.fetch_add(1, Ordering::Relaxed);
        self.addr.do_send(Subscribe {
            id,
            filter,
            callback,
            once,
        });
        id
    }

    /// Removes a subscription made with [`EventBus::on`] or [`EventBus::once`].
    pub fn off(&self, id: SubscriptionId) {
        self.addr.do_send(Unsubscribe(id));
    }

    /// A receiver of every event published from now on. Bounded: a receiver
    /// that lags more than the capacity skips events (`RecvError::Lagged`).
    /// If the bus is stopped, the receiver is closed at once.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        match self.tx.upgrade() {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        }
    }
}
