//! The yamux baseline: a `yamux` connection over a loopback TCP socket (tokio,
//! `TCP_NODELAY`, futures-io through `tokio_util::compat`), client and server each
//! on a thread of its own with a current-thread tokio runtime, as netcore's two
//! endpoints each have an arbiter. The connection is opened once per scenario and
//! kept across its rounds ([`Session`]), as netcore's link is.
//!
//! Settings, chosen as a user tuning yamux 0.14 for these workloads would:
//! - Receive windows: yamux 0.14 has no fixed per-stream window any more; each
//!   stream starts at the spec's 256 KiB and auto-tunes towards twice the
//!   bandwidth-delay product, bounded by `max_connection_receive_window`. We
//!   leave that bound at its default of 1 GiB (room for every stream here to
//!   grow; `None` would only remove the cap).
//! - `split_send_size` (largest DATA frame): the default 16 KiB trades throughput
//!   for fairness between streams. For the bulk and mux transfers we raise it to
//!   [`BULK_SPLIT_SEND_SIZE`] (the fastest of 16, 64, 256 KiB and 1 MiB on this
//!   machine, see BENCHMARKS.md); for 32-byte RPCs it does not matter.
//! - `max_num_streams`: default 512, above the 64 used at once here.
//! - Reads go through a 64 KiB `BufReader`: yamux reads every 12-byte frame
//!   header with a read call of its own, which costs small frames a syscall each
//!   (about 5% more RPCs per second here); writes are flushed by yamux per frame.

use crate::peers::Error;
use crate::raw_tcp::loopback_listener;
use crate::threads::{wait, Side};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use std::future::Future;
use std::rc::Rc;
use std::task::Poll;
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};
use yamux::{Config, Connection, Mode, Stream};

/// DATA frame size for the bulk and mux baselines (see the module docs).
pub const BULK_SPLIT_SEND_SIZE: usize = 256 * 1024;

type Conn = Connection<futures_util::io::BufReader<Compat<tokio::net::TcpStream>>>;

/// The socket as yamux gets it: futures-io over tokio, reads buffered (yamux
/// reads each 12-byte frame header with a read call of its own).
fn socket_io(
    socket: tokio::net::TcpStream,
) -> futures_util::io::BufReader<Compat<tokio::net::TcpStream>> {
    futures_util::io::BufReader::with_capacity(64 * 1024, socket.compat())
}

/// The configuration for bulk transfers (one or many streams).
pub fn bulk_config() -> Config {
    let mut config = Config::default();
    config.set_split_send_size(split_send_size());
    config
}

/// The configuration for small RPCs: yamux's defaults.
pub fn rpc_config() -> Config {
    Config::default()
}

/// `BULK_SPLIT_SEND_SIZE`, or `NETCORE_BENCH_YAMUX_SPLIT` (bytes) to re-run the
/// tuning that chose it.
fn split_send_size() -> usize {
    std::env::var("NETCORE_BENCH_YAMUX_SPLIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(BULK_SPLIT_SEND_SIZE)
}

/// Opens outbound streams on the client's connection (which a driver task owns).
#[derive(Clone)]
pub struct Opener(mpsc::UnboundedSender<oneshot::Sender<Stream>>);

impl Opener {
    /// A new outbound stream.
    pub async fn open(&self) -> Result<Stream, Error> {
        let (tx, rx) = oneshot::channel();
        self.0.send(tx).map_err(|_| "yamux connection closed")?;
        Ok(rx.await.map_err(|_| "yamux connection closed")?)
    }
}

/// Polls the connection (which does all its I/O) until it closes, handing inbound
/// streams to `inbound` and opening outbound ones for `requests`.
async fn drive(
    mut conn: Conn,
    mut requests: Option<mpsc::UnboundedReceiver<oneshot::Sender<Stream>>>,
    mut inbound: impl FnMut(Stream),
) {
    let mut waiting: Option<oneshot::Sender<Stream>> = None;
    std::future::poll_fn(|cx| loop {
        match conn.poll_next_inbound(cx) {
            Poll::Ready(Some(Ok(stream))) => {
                inbound(stream);
                continue;
            }
            Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
            Poll::Pending => {}
        }
        if waiting.is_none() {
            if let Some(rx) = requests.as_mut() {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(tx)) => waiting = Some(tx),
                    Poll::Ready(None) => requests = None,
                    Poll::Pending => {}
                }
            }
        }
        if let Some(tx) = waiting.take() {
            match conn.poll_new_outbound(cx) {
                Poll::Ready(Ok(stream)) => {
                    let _ = tx.send(stream);
                    continue;
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => waiting = Some(tx),
            }
        }
        return Poll::Pending;
    })
    .await
}

/// The inbound streams of the server's connection, shared by its rounds.
#[derive(Clone)]
pub struct Inbound(Rc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Stream>>>);

impl Inbound {
    /// The next stream the client opened.
    pub async fn next(&self) -> Result<Stream, Error> {
        Ok(self
            .0
            .lock()
            .await
            .recv()
            .await
            .ok_or("yamux connection closed")?)
    }
}

/// One yamux connection over loopback for a whole scenario: a client and a
/// server thread (see [`threads`](crate::threads)), each driving its end of the
/// connection for as long as the session lives, so its auto-tuned windows stay
/// tuned across rounds. Connecting is not part of any round.
pub struct Session {
    client: Side<Opener>,
    server: Side<Inbound>,
}

impl Session {
    /// Connects a client and a server with `config`.
    pub fn open(config: Config) -> Result<Session, Error> {
        let (listener, addr) = loopback_listener()?;
        let server_config = config.clone();
        let server = Side::spawn("yamux-server", move || async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let (socket, _) = listener.accept().await?;
            socket.set_nodelay(true)?;
            let conn = Connection::new(socket_io(socket), server_config, Mode::Server);
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(drive(conn, None, move |stream| {
                let _ = tx.send(stream);
            }));
            Ok(Inbound(Rc::new(tokio::sync::Mutex::new(rx))))
        })?;
        let client = Side::spawn("yamux-client", move || async move {
            let socket = tokio::net::TcpStream::connect(addr).await?;
            socket.set_nodelay(true)?;
            let conn = Connection::new(socket_io(socket), config, Mode::Client);
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(drive(conn, Some(rx), |_| {}));
            Ok(Opener(tx))
        })?;
        Ok(Session { client, server })
    }

    /// Runs `client` and `server` on their threads at once and returns both results.
    pub fn round<C, CF, CR, S, SF, SR>(&self, client: C, server: S) -> Result<(CR, SR), Error>
    where
        C: FnOnce(Opener) -> CF + Send + 'static,
        CF: Future<Output = Result<CR, Error>> + 'static,
        CR: Send + 'static,
        S: FnOnce(Inbound) -> SF + Send + 'static,
        SF: Future<Output = Result<SR, Error>> + 'static,
        SR: Send + 'static,
    {
        let served = self.server.start(server);
        let called = self.client.start(client);
        let called = wait(called);
        let served = wait(served);
        Ok((called?, served?))
    }
}

/// Writes `data` on a new stream and closes it.
pub async fn send_on_new_stream(opener: &Opener, prefix: &[u8], data: &[u8]) -> Result<(), Error> {
    let mut stream = opener.open().await?;
    if !prefix.is_empty() {
        stream.write_all(prefix).await?;
    }
    stream.write_all(data).await?;
    stream.close().await?;
    Ok(())
}

/// Reads exactly `buf.len()` bytes from `stream`.
pub async fn read_exact(stream: &mut Stream, buf: &mut [u8]) -> Result<(), Error> {
    stream.read_exact(buf).await?;
    Ok(())
}

/// One request on a new stream: writes `request`, reads an answer of the same
/// length into `answer`, closes the stream.
pub async fn call(opener: &Opener, request: &[u8], answer: &mut [u8]) -> Result<(), Error> {
    let mut stream = opener.open().await?;
    stream.write_all(request).await?;
    stream.flush().await?;
    stream.read_exact(answer).await?;
    stream.close().await?;
    Ok(())
}

/// Serves one echo request on `stream`: reads `len` bytes, writes them back, closes.
pub async fn echo(mut stream: Stream, len: usize) -> Result<(), Error> {
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    stream.write_all(&buf).await?;
    stream.close().await?;
    Ok(())
}
