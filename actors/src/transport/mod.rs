//! Byte transports: the one channel a link multiplexes everything over.
//!
//! This module owns *how bytes get to and from the wire*, nothing more. A
//! [`Transport`] is any `AsyncRead + AsyncWrite` byte stream; the LinkActor owns
//! one per link, feeds what it reads into the protocol core and writes a frame
//! only when the transport accepts it. No type here keeps an unbounded write
//! buffer: a writer that outruns the wire sees `poll_write` return
//! `Poll::Pending`, which is what lets the scheduler above pick the next frame
//! at the last moment.
//!
//! | file | owns |
//! | --- | --- |
//! | `mod.rs` | the [`Transport`] trait and [`BoxedTransport`] |
//! | `spec.rs` | [`LinkSpec`] (parsed from `serial:…`, `tcp:…`, `unix:…`), its [`LinkSpecError`], and opening a link |
//! | `serial/` | serial ports: options, the line code, finding ports by USB identity, pseudo-terminal pairs ([`open_serial_with`], [`SerialSpec`], [`available_ports`], [`pty_pair`]) |
//! | `tcp.rs` | TCP: [`TcpPeer`] and [`connect_tcp`], [`accept_tcp`] (both set `TCP_NODELAY`), and [`peek_hello`], which reads a new connection's HELLO to route a resuming session |
//! | `secure.rs` | the authenticated mode on a transport: [`SecureOptions`] and [`peek_secure_hello`], which runs an accepted connection's handshake and opens its first HELLO |
//! | `prefixed.rs` | [`Prefixed`]: a transport whose first bytes were read already and are served again |
//! | `pipe.rs` | [`Pipe`]: a transport over two *blocking* user functions `recv` and `send` |
//! | `py.rs` | [`Dialect`] and [`bridge_python`]: a Python Netcore 0.1.3 wire driven through a `PyBridge` task, seen by the link as a native transport |
//! | `throttled.rs` | `throttled_pair`: an in-process duplex line with a baud rate, for tests and demos (feature `test-util`) |
//! | `faulty.rs` | `faulty_pair`, `FaultyLine`, `Faulty`: an in-process line (or a wrapper around any transport) that drops, corrupts, duplicates, truncates, delays and cuts, from a seed, for tests (feature `test-util`) |
//! | `modem.rs` | `modem_pair`: an in-process radio path, a UART into a bounded modem buffer that drops when full, a slower air with latency and frame loss from a seed (feature `test-util`) |
//! | `pacing.rs` | the line clock the test lines share (feature `test-util`) |
//!
//! Accepting side: listen with plain tokio ([`tokio::net::TcpListener::bind`],
//! [`tokio::net::UnixListener::bind`]) and accept with [`accept_tcp`] (which
//! sets `TCP_NODELAY`) or `UnixListener::accept`; every accepted stream is a
//! [`Transport`] as it is, and so is the [`FirstFrame::transport`] of one whose
//! HELLO was peeked at.

use std::fmt;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

#[cfg(feature = "test-util")]
pub mod faulty;
#[cfg(feature = "test-util")]
pub mod modem;
#[cfg(feature = "test-util")]
mod pacing;
pub mod pipe;
pub mod py;
pub mod serial;
#[cfg(feature = "test-util")]
pub mod throttled;

#[cfg(feature = "test-util")]
pub use faulty::{
    faulty_pair, CutSchedule, FaultConfig, FaultHandle, FaultStats, Faults, Faulty, FaultyLine,
    FaultyStream,
};
#[cfg(feature = "test-util")]
pub use modem::{modem_pair, ModemConfig, ModemHandle, ModemStats, ModemStream};
pub use pipe::{Pipe, PipeConfig, PipeTransport};
pub use py::{bridge_python, Dialect, PyWireCounters};
#[cfg(unix)]
pub use serial::pty_pair;
pub use serial::{
    available_ports, bytes_per_sec_8n1, open_serial, open_serial_with, PortInfo, SerialOptions,
    SerialSpec, UsbInfo, UsbSelector,
};
mod spec;
pub use spec::{LinkSpec, LinkSpecError, SpecField};
mod prefixed;
pub use prefixed::Prefixed;
pub mod secure;
pub use secure::{peek_secure_hello, SecureFirstFrame, SecureOptions};
mod tcp;
pub use tcp::{accept_tcp, connect_tcp, peek_hello, FirstFrame, TcpPeer};
#[cfg(feature = "test-util")]
pub use throttled::{throttled_pair, LineCounters, ThrottleConfig, ThrottledStream};

/// A byte stream a link can run over: serial port, socket, pipe or test double.
///
/// Implemented for every `AsyncRead + AsyncWrite + Unpin + Send + 'static`
/// type, so it never needs implementing by hand.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// A transport whose concrete type was erased when the link was opened.
///
/// `Box<dyn Transport>` is itself `AsyncRead + AsyncWrite`, hence a
/// [`Transport`].
pub type BoxedTransport = Box<dyn Transport>;

/// The same error kind, its message prefixed with what was being done.
pub(crate) fn with_context(err: io::Error, doing: impl fmt::Display) -> io::Error {
    io::Error::new(err.kind(), format!("{doing}: {err}"))
}
