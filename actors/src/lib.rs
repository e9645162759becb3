//! The actix runtime of netcore (issue 4): link, scheduler, stream and router actors
//! driving [`netcore_proto`]'s state machines over real I/O.
//!
//! So far the crate holds the byte [`transport`]s a link runs over, and
//! re-exports the protocol core so the dependency chain
//! netcore → netcore-actors → netcore-proto already holds.
#![warn(missing_docs)]

pub use netcore_proto as proto;

pub mod transport;
