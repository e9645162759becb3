//! The actix runtime of netcore: link, scheduler, stream and router actors
//! driving [`netcore_proto`]'s state machines over real I/O.
//!
//! So far the crate holds the byte [`transport`]s a link runs over, and
//! re-exports the protocol core so the dependency chain
//! netcore → netcore-actors → netcore-proto already holds.
#![warn(missing_docs)]

pub use netcore_proto as proto;

pub mod body;
pub mod body_stream;
pub mod cache_actor;
mod deadline;
pub mod error;
pub mod event_bus;
pub mod link_actor;
pub mod one_way_queue;
pub mod router_actor;
pub mod scheduler_actor;
pub mod stream_actor;
pub mod supervision;
pub mod timer_actor;
pub mod transport;

pub use body::{Body, Payload, SpooledFile};
pub use body_stream::BodyStream;
pub use cache_actor::{Cache, CacheActor, CacheConfig};
pub use error::{CallError, DownReason, HandlerError};
pub use event_bus::{Event, EventBus, EventBusActor, EventBusConfig, SubscriptionId};
pub use link_actor::{LinkActor, LinkId, LinkOptions, LinkRef, LinkState, Response};
pub use router_actor::{
    HandleRequest, HandlerResult, Reply, Request, Route, RouterActor, RouterConfig,
};
pub use scheduler_actor::{Progress, SchedulerActor};
pub use stream_actor::{SpoolLimits, StreamActor};
pub use supervision::{guard, Decision, RestartPolicy, RestartTracker, ServiceError};
pub use timer_actor::{TaskHandle, TaskId, TimerActor, Timers};
