//! Messages the `RouterActor` handles: from link actors.

use crate::body::Body;
use crate::ids::LinkId;
use crate::messages::handle::LinkRef;
use crate::work_budget::WorkCharge;
use actix::prelude::*;
use netcore_proto::reassembly::MessageHead;
use netcore_proto::StreamId;

/// An inbound request or one-way message from a link actor.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Incoming {
    /// The link it arrived on.
    pub link: LinkRef,
    /// Its head.
    pub head: MessageHead,
    /// Its body.
    pub body: Body,
    /// Its charge to the link's work budget, given back when its handler is
    /// done (dropped with the message if it is refused).
    pub work: WorkCharge,
}

/// The peer canceled a request: abort its handler (or drop it from the queue).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Canceled {
    /// The link.
    pub link: LinkId,
    /// The request's stream.
    pub stream: StreamId,
}
