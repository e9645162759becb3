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
//! | `mod.rs` | the [`Transport`] trait, [`BoxedTransport`], [`LinkSpec`] and opening a link |
//! | `serial.rs` | serial ports and pseudo-terminal pairs ([`open_serial`], [`pty_pair`]) |
//! | `tcp.rs` | TCP: [`TcpPeer`] and [`connect_tcp`], [`accept_tcp`] (both set `TCP_NODELAY`), and [`peek_hello`], which reads a new connection's HELLO to route a resuming session |
//! | `secure.rs` | the authenticated mode on a transport: [`SecureOptions`] and [`peek_secure_hello`], which runs an accepted connection's handshake and opens its first HELLO |
//! | `prefixed.rs` | [`Prefixed`]: a transport whose first bytes were read already and are served again |
//! | `pipe.rs` | [`Pipe`]: a transport over two *blocking* user functions `recv` and `send` |
//! | `throttled.rs` | `throttled_pair`: an in-process duplex line with a baud rate, for tests and demos (feature `test-util`) |
//! | `faulty.rs` | `faulty_pair`, `FaultyLine`, `Faulty`: an in-process line (or a wrapper around any transport) that drops, corrupts, duplicates, truncates, delays and cuts, from a seed, for tests (feature `test-util`) |
//! | `pacing.rs` | the line clock both test lines share (feature `test-util`) |
//!
//! Accepting side: listen with plain tokio ([`tokio::net::TcpListener::bind`],
//! [`tokio::net::UnixListener::bind`]) and accept with [`accept_tcp`] (which
//! sets `TCP_NODELAY`) or `UnixListener::accept`; every accepted stream is a
//! [`Transport`] as it is, and so is the [`FirstFrame::transport`] of one whose
//! HELLO was peeked at.

use std::fmt;
use std::io;
#[cfg(unix)]
use std::path::PathBuf;
use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncWrite};

#[cfg(feature = "test-util")]
pub mod faulty;
#[cfg(feature = "test-util")]
mod pacing;
pub mod pipe;
pub mod serial;
#[cfg(feature = "test-util")]
pub mod throttled;

#[cfg(feature = "test-util")]
pub use faulty::{
    faulty_pair, CutSchedule, FaultConfig, FaultHandle, FaultStats, Faults, Faulty, FaultyLine,
    FaultyStream,
};
pub use pipe::{Pipe, PipeConfig, PipeTransport};
#[cfg(unix)]
pub use serial::pty_pair;
pub use serial::{bytes_per_sec_8n1, open_serial};
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

/// How to open one link: the address of the far end of the byte channel.
///
/// Parsed from and displayed as `serial:PATH@BAUD`, `tcp:HOST:PORT` and
/// `unix:PATH`:
///
/// ```
/// use netcore_actors::transport::LinkSpec;
///
/// let spec: LinkSpec = "serial:/dev/ttyUSB0@115200".parse()?;
/// assert_eq!(spec, LinkSpec::Serial { path: "/dev/ttyUSB0".into(), baud: 115_200 });
/// assert_eq!(spec.bytes_per_sec(), Some(11_520));
/// assert_eq!("tcp:127.0.0.1:4000".parse::<LinkSpec>()?.bytes_per_sec(), None);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkSpec {
    /// A serial port (or a radio modem behind one), opened raw, 8N1, without
    /// flow control.
    Serial {
        /// Device path, e.g. `/dev/ttyUSB0` or `COM3`.
        path: String,
        /// Line speed in bits per second, e.g. `115200`.
        baud: u32,
    },
    /// A TCP connection to `host:port`, opened with `TCP_NODELAY`.
    TcpConnect(String),
    /// A connection to a Unix stream socket at this path.
    #[cfg(unix)]
    Unix(PathBuf),
}

impl LinkSpec {
    /// Opens the link, returning its transport.
    ///
    /// Must be called inside a tokio runtime (actix's included).
    ///
    /// # Errors
    /// The operating system's error, its message prefixed with what was being
    /// opened (for example `serial port /dev/ttyUSB0 at 115200 baud: ...`).
    pub async fn open(&self) -> io::Result<BoxedTransport> {
        tracing::debug!(link = %self, "opening link");
        let transport: BoxedTransport = match self {
            Self::Serial { path, baud } => Box::new(open_serial(path, *baud)?),
            Self::TcpConnect(addr) => Box::new(connect_tcp(addr).await?),
            #[cfg(unix)]
            Self::Unix(path) => {
                Box::new(tokio::net::UnixStream::connect(path).await.map_err(|err| {
                    with_context(err, format_args!("unix socket {}", path.display()))
                })?)
            }
        };
        tracing::debug!(link = %self, "link open");
        Ok(transport)
    }

    /// The nominal payload rate of the link in bytes per second, when the link
    /// has one: `baud / 10` for a serial line (8N1 sends 10 bits a byte), `None`
    /// for sockets. Used to size chunks so one does not hold the wire too long.
    pub fn bytes_per_sec(&self) -> Option<u32> {
        match self {
            Self::Serial { baud, .. } => Some(bytes_per_sec_8n1(*baud)),
            Self::TcpConnect(_) => None,
            #[cfg(unix)]
            Self::Unix(_) => None,
        }
    }
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Serial { path, baud } => write!(f, "serial:{path}@{baud}"),
            Self::TcpConnect(addr) => write!(f, "tcp:{addr}"),
            #[cfg(unix)]
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for LinkSpec {
    type Err = io::Error;

    /// Parses `serial:PATH@BAUD`, `tcp:HOST:PORT` or `unix:PATH`.
    ///
    /// # Errors
    /// `InvalidInput` naming the text and the expected forms.
    fn from_str(text: &str) -> io::Result<Self> {
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "link spec {text:?}: {why} (expected serial:PATH@BAUD, tcp:HOST:PORT or unix:PATH)"
                ),
            )
        };
        let (scheme, rest) = text.split_once(':').ok_or_else(|| invalid("no scheme"))?;
        if rest.is_empty() {
            return Err(invalid("empty address"));
        }
        match scheme {
            "serial" => {
                let (path, baud) = rest.rsplit_once('@').ok_or_else(|| invalid("no @BAUD"))?;
                let baud = baud
                    .parse::<u32>()
                    .map_err(|_| invalid("baud is not a number"))?;
                if path.is_empty() || baud == 0 {
                    return Err(invalid("empty path or zero baud"));
                }
                Ok(Self::Serial {
                    path: path.to_owned(),
                    baud,
                })
            }
            "tcp" => Ok(Self::TcpConnect(rest.to_owned())),
            #[cfg(unix)]
            "unix" => Ok(Self::Unix(PathBuf::from(rest))),
            _ => Err(invalid("unknown scheme")),
        }
    }
}

/// The same error kind, its message prefixed with what was being done.
pub(crate) fn with_context(err: io::Error, doing: impl fmt::Display) -> io::Error {
    io::Error::new(err.kind(), format!("{doing}: {err}"))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn link_specs_display_as_they_parse() {
        for text in [
            "serial:/dev/ttyUSB0@115200",
            "serial:COM3@9600",
            "tcp:127.0.0.1:4000",
            "tcp:[::1]:4000",
            "unix:/run/netcore.sock",
        ] {
            let spec: LinkSpec = text.parse().expect(text);
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!(
            "unix:/run/netcore.sock".parse::<LinkSpec>().expect("unix"),
            LinkSpec::Unix(PathBuf::from("/run/netcore.sock"))
        );
    }

    #[test]
    fn bad_link_specs_are_rejected_with_the_text() {
        for text in [
            "",
            "/dev/ttyUSB0",
            "serial:/dev/ttyUSB0",
            "serial:/dev/ttyUSB0@fast",
            "serial:/dev/ttyUSB0@0",
            "serial:@9600",
            "tcp:",
            "udp:127.0.0.1:4000",
        ] {
            let err = text.parse::<LinkSpec>().expect_err(text);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(&format!("{text:?}")), "{err}");
        }
    }

    #[test]
    fn only_serial_links_have_a_nominal_rate() {
        let serial = LinkSpec::Serial {
            path: "/dev/ttyS0".into(),
            baud: 9_600,
        };
        assert_eq!(serial.bytes_per_sec(), Some(960));
        assert_eq!(LinkSpec::TcpConnect("h:1".into()).bytes_per_sec(), None);
        assert_eq!(LinkSpec::Unix("/s".into()).bytes_per_sec(), None);
    }
}
