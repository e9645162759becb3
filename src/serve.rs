//! Serving: [`Endpoint::serve_tcp`] and [`Endpoint::serve_unix`] accept
//! connections in a loop that never waits on a peer. Each accepted connection
//! runs its first frame and handshake as its own task, under one deadline (the
//! endpoint's handshake timeout), so a silent or slow peer delays nobody else;
//! the accept limits (`EndpointBuilder::max_links` and its siblings) are
//! checked before a connection gets a task. The [`ServeHandle`] stops the loop
//! and hands out the links it made.
//!
//! ```no_run
//! use netcore::{Endpoint, Reply, Request};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let server = Endpoint::builder()
//!     .route("echo", |req: Request| async move {
//!         Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
//!     })
//!     .start();
//! let serving = server.serve_tcp("127.0.0.1:7878").await?;
//! while let Some(link) = serving.next_link().await {
//!     tracing::info!(link = %link.id(), "connected");
//! }
//! # Ok(()) }
//! ```

use crate::endpoint::{Endpoint, WeakEndpoint};
use crate::link::Link;
use netcore_actors::transport::{accept_tcp, Dialect, Transport};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Most links announced and not yet taken with [`ServeHandle::next_link`]; a
/// newer one drops the oldest announcement (the link itself stays up).
const MAX_ANNOUNCED: usize = 256;

/// How long the loop pauses when the process or the system is out of file
/// descriptors (the pending connection stays in the backlog, so retrying at
/// once would spin).
const OUT_OF_FILES_PAUSE: Duration = Duration::from_millis(50);

/// Where [`Endpoint::serve_tcp`] listens: a bound listener, or an address to
/// bind (`"127.0.0.1:7878"`, a [`SocketAddr`]).
#[derive(Debug)]
pub enum TcpListenOn {
    /// A listener bound already.
    Listener(tokio::net::TcpListener),
    /// A standard library listener bound already (made non-blocking).
    Std(std::net::TcpListener),
    /// An address to bind.
    Addr(SocketAddr),
    /// A `host:port` to resolve and bind.
    Name(String),
}

impl From<tokio::net::TcpListener> for TcpListenOn {
    fn from(listener: tokio::net::TcpListener) -> Self {
        TcpListenOn::Listener(listener)
    }
}

impl From<std::net::TcpListener> for TcpListenOn {
    fn from(listener: std::net::TcpListener) -> Self {
        TcpListenOn::Std(listener)
    }
}

impl From<SocketAddr> for TcpListenOn {
    fn from(addr: SocketAddr) -> Self {
        TcpListenOn::Addr(addr)
    }
}

impl From<&str> for TcpListenOn {
    fn from(name: &str) -> Self {
        TcpListenOn::Name(name.to_owned())
    }
}

impl From<String> for TcpListenOn {
    fn from(name: String) -> Self {
        TcpListenOn::Name(name)
    }
}

/// Where [`Endpoint::serve_unix`] listens: a bound listener, or a socket path to
/// bind (which must not exist yet).
#[cfg(unix)]
#[derive(Debug)]
pub enum UnixListenOn {
    /// A listener bound already.
    Listener(tokio::net::UnixListener),
    /// A path to bind.
    Path(std::path::PathBuf),
}

#[cfg(unix)]
impl From<tokio::net::UnixListener> for UnixListenOn {
    fn from(listener: tokio::net::UnixListener) -> Self {
        UnixListenOn::Listener(listener)
    }
}

#[cfg(unix)]
impl From<std::path::PathBuf> for UnixListenOn {
    fn from(path: std::path::PathBuf) -> Self {
        UnixListenOn::Path(path)
    }
}

#[cfg(unix)]
impl From<&std::path::Path> for UnixListenOn {
    fn from(path: &std::path::Path) -> Self {
        UnixListenOn::Path(path.to_owned())
    }
}

#[cfg(unix)]
impl From<&str> for UnixListenOn {
    fn from(path: &str) -> Self {
        UnixListenOn::Path(path.into())
    }
}

/// The address a serve loop listens on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeAddr {
    /// A TCP address (with the port the system chose, for port 0).
    Tcp(SocketAddr),
    /// A Unix socket's path (`None` for an unnamed socket).
    #[cfg(unix)]
    Unix(Option<std::path::PathBuf>),
}

impl ServeAddr {
    /// The TCP address, if the loop listens on TCP.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            ServeAddr::Tcp(addr) => Some(*addr),
            #[cfg(unix)]
            ServeAddr::Unix(_) => None,
        }
    }
}

impl fmt::Display for ServeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeAddr::Tcp(addr) => write!(f, "tcp:{addr}"),
            #[cfg(unix)]
            ServeAddr::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            #[cfg(unix)]
            ServeAddr::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

/// A running serve loop ([`Endpoint::serve_tcp`], [`Endpoint::serve_unix`]).
/// Cheap to clone; dropping it does not stop the loop ([`stop`](Self::stop)
/// and [`Endpoint::stop`] do, and so does dropping the endpoint).
#[derive(Clone)]
pub struct ServeHandle {
    shared: Arc<Shared>,
    addr: ServeAddr,
}

/// What a serve loop and its handles share.
struct Shared {
    /// Set by `stop`.
    stop: watch::Sender<bool>,
    /// Set when the loop ended.
    done: watch::Sender<bool>,
    /// Links made and not yet taken, oldest first (at most `MAX_ANNOUNCED`).
    announced: Mutex<VecDeque<Link>>,
    /// Connections handshaking in their own task.
    handshakes: AtomicUsize,
    /// Woken on every announcement, ended handshake and the loop's end.
    changed: Notify,
}

impl Shared {
    fn announce(&self, link: Link) {
        let mut announced = match self.announced.lock() {
            Ok(announced) => announced,
            Err(poisoned) => poisoned.into_inner(),
        };
        if announced.len() >= MAX_ANNOUNCED {
            if let Some(oldest) = announced.pop_front() {
                tracing::debug!(link = %oldest.id(), "nobody took a new link's announcement: dropped");
            }
        }
        announced.push_back(link);
    }

    fn take(&self) -> Option<Link> {
        match self.announced.lock() {
            Ok(mut announced) => announced.pop_front(),
            Err(poisoned) => poisoned.into_inner().pop_front(),
        }
    }
}

impl ServeHandle {
    /// Stops accepting (the listener is closed once the loop ends); links already
    /// made stay up, and connections handshaking finish their handshake.
    pub fn stop(&self) {
        self.shared.stop.send_replace(true);
    }

    /// The next link the loop made, oldest first; `None` once the loop ended and
    /// every handshake it started finished. At most 256 links wait here: beyond
    /// that, the oldest announcement is dropped (its link stays up, and is in
    /// [`Endpoint::links`]). A connection resuming an existing link's session is
    /// not announced.
    pub async fn next_link(&self) -> Option<Link> {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(link) = self.shared.take() {
                return Some(link);
            }
            if !self.is_serving() && self.shared.handshakes.load(Ordering::Acquire) == 0 {
                return self.shared.take();
            }
            changed.await;
        }
    }

    /// True until the loop ended.
    pub fn is_serving(&self) -> bool {
        !*self.shared.done.borrow()
    }

    /// Resolves once the loop ended (stopped, the endpoint stopped or was
    /// dropped).
    pub async fn stopped(&self) {
        let mut done = self.shared.done.subscribe();
        let _ = done.wait_for(|done| *done).await;
    }

    /// The address the loop listens on.
    pub fn local_addr(&self) -> &ServeAddr {
        &self.addr
    }
}

impl fmt::Debug for ServeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeHandle")
            .field("addr", &self.addr)
            .field("serving", &self.is_serving())
            .finish()
    }
}

/// A listener the loop accepts from.
trait Acceptor: 'static {
    type Conn: Transport;
    /// The next connection and its peer's IP address (`None` for a Unix socket).
    async fn next(&self) -> io::Result<(Self::Conn, Option<IpAddr>)>;
}

impl Acceptor for tokio::net::TcpListener {
    type Conn = tokio::net::TcpStream;
    async fn next(&self) -> io::Result<(Self::Conn, Option<IpAddr>)> {
        let (stream, from) = accept_tcp(self).await?;
        Ok((stream, Some(from.ip())))
    }
}

#[cfg(unix)]
impl Acceptor for tokio::net::UnixListener {
    type Conn = tokio::net::UnixStream;
    async fn next(&self) -> io::Result<(Self::Conn, Option<IpAddr>)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, None))
    }
}

impl Endpoint {
    /// Serves TCP connections on `on` (a bound listener or an address to bind):
    /// a loop on the current arbiter accepts them, each connection's first frame
    /// and handshake run as a task of their own within the handshake timeout
    /// (so a silent peer delays no other), and the accept limits apply
    /// ([`EndpointBuilder::max_links`](crate::EndpointBuilder::max_links)). With
    /// [`tcp_resume`](crate::EndpointBuilder::tcp_resume), a connection resuming
    /// a link's session goes to that link, as in
    /// [`accept_tcp`](Self::accept_tcp).
    ///
    /// # Errors
    /// Binding the address failed.
    pub async fn serve_tcp(&self, on: impl Into<TcpListenOn>) -> io::Result<ServeHandle> {
        self.serve_tcp_dialect(on, Dialect::Native).await
    }

    /// [`serve_tcp`](Self::serve_tcp) for peers speaking `dialect`: with
    /// [`Dialect::Python`], every connection is a Python Netcore 0.1.3 client,
    /// served by the endpoint's routes through a bridge (no first frame is read;
    /// the accept limits apply as for native peers).
    ///
    /// # Errors
    /// Binding the address failed.
    pub async fn serve_tcp_dialect(
        &self,
        on: impl Into<TcpListenOn>,
        dialect: Dialect,
    ) -> io::Result<ServeHandle> {
        let listener = match on.into() {
            TcpListenOn::Listener(listener) => listener,
            TcpListenOn::Std(listener) => {
                listener.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(listener)?
            }
            TcpListenOn::Addr(addr) => tokio::net::TcpListener::bind(addr).await?,
            TcpListenOn::Name(name) => tokio::net::TcpListener::bind(&name).await?,
        };
        let addr = ServeAddr::Tcp(listener.local_addr()?);
        Ok(self.serve(listener, addr, dialect))
    }

    /// Serves connections on a Unix socket, as [`serve_tcp`](Self::serve_tcp)
    /// does (every peer counts as one address for
    /// [`max_handshaking_per_address`](crate::EndpointBuilder::max_handshaking_per_address)).
    ///
    /// # Errors
    /// Binding the path failed (e.g. it exists).
    #[cfg(unix)]
    pub async fn serve_unix(&self, on: impl Into<UnixListenOn>) -> io::Result<ServeHandle> {
        self.serve_unix_dialect(on, Dialect::Native).await
    }

    /// [`serve_unix`](Self::serve_unix) for peers speaking `dialect` (see
    /// [`serve_tcp_dialect`](Self::serve_tcp_dialect)).
    ///
    /// # Errors
    /// Binding the path failed (e.g. it exists).
    #[cfg(unix)]
    pub async fn serve_unix_dialect(
        &self,
        on: impl Into<UnixListenOn>,
        dialect: Dialect,
    ) -> io::Result<ServeHandle> {
        let listener = match on.into() {
            UnixListenOn::Listener(listener) => listener,
            UnixListenOn::Path(path) => tokio::net::UnixListener::bind(path)?,
        };
        let path = listener.local_addr()?.as_pathname().map(|p| p.to_owned());
        Ok(self.serve(listener, ServeAddr::Unix(path), dialect))
    }

    fn serve<A: Acceptor>(&self, listener: A, addr: ServeAddr, dialect: Dialect) -> ServeHandle {
        let shared = Arc::new(Shared {
            stop: watch::channel(false).0,
            done: watch::channel(false).0,
            announced: Mutex::new(VecDeque::new()),
            handshakes: AtomicUsize::new(0),
            changed: Notify::new(),
        });
        tracing::info!(%addr, "serving");
        let task = serve_loop(
            self.downgrade(),
            self.stopping(),
            shared.clone(),
            listener,
            dialect,
        );
        let name = addr.clone();
        actix_rt::spawn(async move {
            task.await;
            tracing::info!(addr = %name, "stopped serving");
        });
        ServeHandle { shared, addr }
    }
}

/// Accepts until stopped: admits each connection by the accept limits and
/// hands it to a task of its own, never awaiting a peer.
async fn serve_loop<A: Acceptor>(
    endpoint: WeakEndpoint,
    mut stopping: watch::Receiver<bool>,
    shared: Arc<Shared>,
    listener: A,
    dialect: Dialect,
) {
    let mut stop = shared.stop.subscribe();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            // Also when the endpoint is gone (the sender dropped).
            _ = stopping.wait_for(|stopping| *stopping) => break,
            accepted = listener.next() => accepted,
        };
        let Some(endpoint) = endpoint.upgrade() else {
            break;
        };
        match accepted {
            Ok((conn, from)) => match endpoint.admit(from) {
                Ok(admission) => {
                    let deadline = tokio::time::Instant::now() + endpoint.handshake_timeout();
                    shared.handshakes.fetch_add(1, Ordering::AcqRel);
                    let shared = shared.clone();
                    let dialect = dialect.clone();
                    actix_rt::spawn(async move {
                        let accepted = endpoint
                            .accept_connection(conn, admission, deadline, dialect)
                            .await;
                        if let Ok(accepted) = accepted {
                            if !accepted.resumed {
                                shared.announce(accepted.link);
                            }
                        }
                        shared.handshakes.fetch_sub(1, Ordering::AcqRel);
                        shared.changed.notify_waiters();
                    });
                }
                // Writing the link limit's GOAWAY takes a moment: not in the loop.
                Err(refusal) => {
                    actix_rt::spawn(async move { endpoint.refuse(conn, refusal).await });
                }
            },
            Err(error) => {
                endpoint.warn_accept_error(&error);
                if out_of_files(&error) {
                    tokio::time::sleep(OUT_OF_FILES_PAUSE).await;
                }
            }
        }
    }
    shared.done.send_replace(true);
    shared.changed.notify_waiters();
}

/// EMFILE (the process) or ENFILE (the system) is out of file descriptors.
fn out_of_files(error: &io::Error) -> bool {
    // The POSIX numbers, the same on Linux, the BSDs and macOS.
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    cfg!(unix) && matches!(error.raw_os_error(), Some(ENFILE | EMFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_file_descriptors_is_recognized() {
        assert!(out_of_files(&io::Error::from_raw_os_error(24)));
        assert!(out_of_files(&io::Error::from_raw_os_error(23)));
        assert!(!out_of_files(&io::Error::from_raw_os_error(104)));
        assert!(!out_of_files(&io::Error::other("no code")));
    }
}
