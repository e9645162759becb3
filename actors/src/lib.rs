//! The actix runtime of netcore: link, scheduler, stream and router actors
//! driving [`netcore_proto`]'s state machines over real I/O, the byte
//! [`transport`]s a link runs over, and supervised service actors (event bus,
//! timers, cache).
//!
//! The modules form layers that import only downwards (checked by the
//! workspace's `tests/layers.rs`; ARCHITECTURE.md has the table): ids, clock,
//! errors, events and transports at the bottom; then bodies and the messages
//! actors send each other; then deadline and supervision helpers; then the
//! actors, each reaching its neighbours through `Recipient`s only.
#![warn(missing_docs)]

pub use netcore_proto as proto;

pub mod body;
pub mod cache_actor;
mod charges;
mod clock;
mod deadline;
pub mod error;
pub mod event;
pub mod event_bus;
pub mod event_bus_actor;
pub mod ids;
pub mod link;
pub mod messages;
pub mod one_way_queue;
pub mod router_actor;
pub mod scheduler_actor;
pub mod spool_backlog;
pub mod stats;
pub mod stream_actor;
pub mod supervision;
#[cfg(test)]
mod testing;
pub mod timer_actor;
pub mod transport;
pub mod work_budget;

pub use body::{Body, BodyStream, Payload, SpooledFile};
pub use cache_actor::{Cache, CacheActor, CacheConfig};
pub use error::{CallError, DownReason, HandlerError};
pub use event::{Event, Retry};
pub use event_bus::{EventBus, EventBusConfig, SubscriptionId};
pub use event_bus_actor::EventBusActor;
pub use ids::LinkId;
pub use link::{Connector, LinkActor, LinkOptions, ReconnectPolicy};
pub use messages::{LinkHandle, LinkRef, LinkState, PeerSessionState, Progress, Response};
pub use router_actor::{
    HandleRequest, HandlerResult, Reply, Request, Route, RouterActor, RouterConfig,
};
pub use scheduler_actor::SchedulerActor;
pub use stats::{ClassBytes, EndpointStats, IntegrityDrops, LinkStats, LinkStatus, LinkTotals};
pub use stream_actor::{SpoolLimits, StreamActor};
pub use supervision::{guard, Decision, RestartPolicy, RestartTracker, ServiceError};
pub use timer_actor::{TaskHandle, TaskId, TimerActor, Timers};
