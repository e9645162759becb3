//! netcore: many concurrent messages over one byte channel (serial port, radio
//! modem, socket), with priorities, flow control and hard memory limits.
//!
//! Today this crate exposes the sans-IO protocol core ([`proto`]); the actor
//! runtime and the `Endpoint` API build on it (see ARCHITECTURE.md).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub use netcore_actors::proto;
