//! Sans-IO protocol core of netcore: many concurrent messages over one byte channel.
//!
//! This crate turns messages into bytes and bytes into messages, and decides whose
//! bytes go next. It opens no sockets, spawns no threads and reads no clock: time is
//! a parameter (`now: Instant`), input is handed in, output is pulled out. The same
//! code runs in the actix runtime (`netcore-actors`), in deterministic tests
//! ([`sim`]), and with `default-features = false` on `no_std` firmware.
//!
//! ```text
//!   application messages                      application messages
//!          │ send / cancel                             ▲ events
//!          ▼                                           │
//!   ┌─────────────┐ poll_transmit   bytes    ┌─────────────────┐
//!   │  scheduler  │──► frame ──► framing ───►│ framing decoder │──► frame ──► reassembly
//!   │ (priority,  │              (COBS+CRC   │ (resync on noise│               (limits,
//!   │  credits)   │               or length) │  CRC, lengths)  │                sinks)
//!   └─────────────┘                          └─────────────────┘
//! ```
//!
//! Layers, bottom up:
//! - [`varint`], [`frame`]: the wire format (ARCHITECTURE.md, "Wire format").
//! - [`framing`]: delimiting frames on a byte stream: [`framing::Cobs`] for serial and
//!   radio (COBS, CRC-32C, resynchronizes after noise), [`framing::Length`] for TCP.
//! - [`scheduler`]: the pull-driven priority scheduler chunking outbound messages.
//! - [`reassembly`]: inbound messages under hard limits, big ones streamed to a sink.
//! - `secure` (feature `secure`): the authenticated, encrypted mode: a Noise handshake
//!   with a pre-shared key per device, then every frame sealed with ChaCha20-Poly1305.
//! - [`link`]: one link's whole state machine (handshake, flow control, cancellation),
//!   driven with `handle_*` calls and drained with `poll_*` calls.
//! - [`pydialect`]: the wire format of Python Netcore 0.1.3 (`netcore==0.1.3`), for links
//!   to Python endpoints: its frames, JSON and codec.
//! - `sim` (feature `test-util`): a deterministic pair of links with simulated time, for tests.
//! - `fuzzing` (features `test-util` and `std`): the fuzz drivers the cargo-fuzz targets and the
//!   corpus tests share.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod config;
pub mod crc;
pub mod error;
pub mod frame;
pub mod framing;
#[cfg(all(feature = "std", any(test, feature = "test-util")))]
pub mod fuzzing;
pub mod ids;
pub mod link;
#[cfg(any(test, feature = "test-util"))]
pub mod overhead;
pub mod pydialect;
pub mod reassembly;
pub mod reliable;
#[cfg(any(test, feature = "test-util"))]
pub mod rng;
pub mod scheduler;
#[cfg(feature = "secure")]
pub mod secure;
#[cfg(any(test, feature = "test-util"))]
pub mod sim;
pub mod time;
pub mod varint;

pub use error::{DecodeError, ErrorCode, FramingError, ProtocolError, SecureError};
pub use frame::{Envelope, Frame};
pub use ids::{MessageKind, Parity, Priority, StreamId};
pub use time::Instant;
