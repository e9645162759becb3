//! The names most programs use, in one import: `use netcore::prelude::*;`.
//!
//! Endpoints and links, handlers' extractors and answers, bodies and errors,
//! priorities and link options. Everything else stays reachable by its path.

pub use crate::app::blueprint::Blueprint;
pub use crate::app::context::RequestContext;
pub use crate::app::extract::{Head, Headers, Json, MsgPack, PeerIdentity, Remainder, State};
pub use crate::app::request_body::IntoPayload;
pub use crate::app::respond::IntoReply;
pub use crate::app::services::Services;
pub use crate::endpoint::Endpoint;
pub use crate::link::Link;
pub use bytes::Bytes;
pub use netcore_actors::{
    Body, CallError, DownReason, HandlerError, HandlerResult, LinkOptions, LinkState, Payload,
    Progress, Reply, Request, Response,
};
pub use netcore_proto::{ErrorCode, Priority};
