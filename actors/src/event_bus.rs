//! [`EventBus`]: the cloneable handle of the event bus actor (in
//! `event_bus_actor.rs`), which fans runtime [`Event`]s out to closures and
//! broadcast receivers. Actors publish through the handle, never the actor.
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

pub use crate::event::Event;
#[cfg(feature = "test-util")]
use crate::supervision::InjectPanic;
use crate::supervision::{Reporter, RestartPolicy};
use actix::prelude::*;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;

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

/// A closure subscription's filter.
pub(crate) type Filter = Box<dyn Fn(&Event) -> bool + Send>;
/// A closure subscription's callback.
pub(crate) type Callback = Box<dyn FnMut(&Event) + Send>;

/// Publishes an event.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Publish(pub Event);

/// Adds a closure subscription.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Subscribe {
    pub id: SubscriptionId,
    pub filter: Filter,
    pub callback: Callback,
    pub once: bool,
}

/// Removes a closure subscription (nothing if it is gone already).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct Unsubscribe(pub SubscriptionId);

/// Handle of the event bus: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct EventBus {
    inbox: Arc<BusInbox>,
    tx: broadcast::WeakSender<Event>,
    listeners: Arc<AtomicUsize>,
}

/// What an [`EventBus`] handle sends to its actor.
pub(crate) struct BusInbox {
    pub publish: Recipient<Publish>,
    pub subscribe: Recipient<Subscribe>,
    pub unsubscribe: Recipient<Unsubscribe>,
    #[cfg(feature = "test-util")]
    pub panic: Recipient<InjectPanic>,
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("connected", &self.inbox.publish.connected())
            .finish()
    }
}

impl EventBus {
    /// A handle on the bus actor reached through `inbox`, whose broadcast
    /// channel is `tx` and closure count `listeners`.
    pub(crate) fn new(
        inbox: BusInbox,
        tx: broadcast::WeakSender<Event>,
        listeners: Arc<AtomicUsize>,
    ) -> EventBus {
        EventBus {
            inbox: Arc::new(inbox),
            tx,
            listeners,
        }
    }

    /// A [`Reporter`] publishing on this bus (for a supervised actor's restarts).
    pub fn reporter(&self) -> Reporter {
        let bus = self.clone();
        Reporter::new(move |event| bus.publish(event))
    }

    /// Where to send the bus actor `InjectPanic` (unchanged by restarts). Test
    /// tooling (feature `test-util`).
    #[cfg(feature = "test-util")]
    pub fn addr(&self) -> &Recipient<InjectPanic> {
        &self.inbox.panic
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
            self.inbox.publish.do_send(Publish(make()));
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
        self.inbox.subscribe.do_send(Subscribe {
            id,
            filter,
            callback,
            once,
        });
        id
    }

    /// Removes a subscription made with [`EventBus::on`] or [`EventBus::once`].
    pub fn off(&self, id: SubscriptionId) {
        self.inbox.unsubscribe.do_send(Unsubscribe(id));
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
