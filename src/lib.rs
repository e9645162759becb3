//! netcore: many concurrent messages over one byte channel (serial port, radio
//! modem, socket), with priorities, flow control and hard memory limits.
//!
//! - [`Endpoint`] serves routes and calls the peer over one or more [`Link`]s.
//! - [`guide`] is the user guide: the runtime, a first device and gateway,
//!   priorities, big transfers, forwarding, handler actors, reconnecting links,
//!   logging, testing.
//! - [`prelude`] imports what most programs use: `use netcore::prelude::*;`.
//! - [`proto`] is the sans-IO protocol core; [`actors`] has what an application
//!   configures of the actix runtime under the endpoint (transports, link options,
//!   reconnection, spooling). ARCHITECTURE.md explains the layers.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod actors;
pub mod app;
mod endpoint;
mod forward;
pub mod guide;
mod link;
pub mod prelude;
mod serve;

pub use app::blueprint::Blueprint;
pub use app::context::RequestContext;
pub use app::extract::{FromRequest, Head, Headers, Json, MsgPack, PeerIdentity, Remainder, State};
pub use app::handler::{blocking, run_blocking, Handler};
pub use app::middleware::Next;
pub use app::request_body::IntoPayload;
pub use app::respond::{File, IntoReply};
pub use app::services::{ActorFactory, Services};
pub use bytes::{self, Bytes};
pub use endpoint::{AcceptLimits, AcceptStats, Endpoint, EndpointBuilder};
pub use link::{CallBuilder, Link, PendingCall, Transfer};
pub use netcore_actors::cache_actor::Cache;
pub use netcore_actors::event_bus::{Event, EventBus, SubscriptionId};
pub use netcore_actors::proto;
pub use netcore_actors::stats::{
    ClassBytes, EndpointStats, IntegrityDrops, LinkStats, LinkStatus, LinkTotals,
};
pub use netcore_actors::supervision::{RestartPolicy, ServiceError};
pub use netcore_actors::timer_actor::{TaskHandle, Timers};
pub use netcore_actors::transport::{Dialect, LinkSpec};
pub use netcore_actors::{
    Body, BodyStream, CallError, DownReason, HandleRequest, HandlerError, HandlerResult, LinkId,
    LinkOptions, LinkState, Payload, Progress, ReconnectPolicy, Reply, Request, Response, Retry,
};
pub use netcore_proto::{ErrorCode, Priority};
#[cfg(unix)]
pub use serve::UnixListenOn;
pub use serve::{ServeAddr, ServeHandle, TcpListenOn};
