//! [`Services`]: what the endpoint offers its handlers and handler actors (shared
//! state, cache, timers, event bus, and the endpoint itself), and
//! [`ActorFactory`], how a supervised handler actor gets them.

use super::context::RequestContext;
use super::state::AppState;
use netcore_actors::cache_actor::Cache;
use netcore_actors::event_bus::EventBus;
use netcore_actors::timer_actor::Timers;
use netcore_actors::Request;
use std::any::Any;
use std::sync::{Arc, Weak};

/// The endpoint's services, as its handlers see them. Cheap to clone; a handler
/// actor keeps one (its factory gets it, see [`ActorFactory`]).
///
/// It holds the endpoint weakly (the endpoint owns its routes, which own this):
/// `Services::endpoint` fails with `GoingAway` once the endpoint is gone.
#[derive(Clone, Debug)]
pub struct Services {
    state: Arc<AppState>,
    cache: Cache,
    timers: Timers,
    events: EventBus,
    /// The endpoint's shared part (`Services::endpoint`, next to `Endpoint`,
    /// upgrades it; this layer does not know the type).
    pub(crate) endpoint: Weak<dyn Any + Send + Sync>,
}

impl Services {
    pub(crate) fn new(
        state: Arc<AppState>,
        cache: Cache,
        timers: Timers,
        events: EventBus,
        endpoint: Weak<dyn Any + Send + Sync>,
    ) -> Services {
        Services {
            state,
            cache,
            timers,
            events,
            endpoint,
        }
    }

    /// Shared application state registered with `EndpointBuilder::state`.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.state.get::<T>()
    }

    /// The endpoint's cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The endpoint's timers.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// The endpoint's event bus.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The context of `request` (a handler actor's), to run extractors on it
    /// with [`RequestContext::extract`] as a function handler's arguments are.
    pub fn context(&self, request: Request) -> RequestContext {
        RequestContext::new(request, self.clone(), None)
    }
}

/// Builds a supervised handler actor (at its first request, and again after it
/// died): a closure without arguments, `|| MyActor::default()`, or one taking the
/// endpoint's services, `|services: &Services| MyActor::new(services.clone())`.
pub trait ActorFactory<A, Marker>: Send + Sync + 'static {
    /// A fresh actor.
    fn build(&self, services: &Services) -> A;
}

impl<A, F> ActorFactory<A, ()> for F
where
    F: Fn() -> A + Send + Sync + 'static,
{
    fn build(&self, _: &Services) -> A {
        self()
    }
}

impl<A, F> ActorFactory<A, Services> for F
where
    F: Fn(&Services) -> A + Send + Sync + 'static,
{
    fn build(&self, services: &Services) -> A {
        self(services)
    }
}
