//! The yamux baseline: a `yamux` connection over a loopback TCP socket (tokio,
//! `TCP_NODELAY`, futures-io through `tokio_util::compat`), client and server each
//! on a thread of its own with a current-thread tokio runtime, as netcore's two
//! endpoints each have an arbiter.
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
use crate::raw_tcp::{loopback_listener, named, runtime};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use std::future::Future;
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

/// Runs `client` and `server` on two new threads (callable from inside another
/// runtime) over a fresh yamux connection and returns both results. Each side's connection keeps being driven until both
/// are done, so nothing queued is lost when one finishes first. Connecting is
/// not part of either future.
pub fn run<C, CF, CR, S, SF, SR>(config: Config, client: C, server: S) -> Result<(CR, SR), Error>
where
    C: FnOnce(Opener) -> CF + Send,
    CF: Future<Output = Result<CR, Error>>,
    CR: Send,
    S: FnOnce(mpsc::UnboundedReceiver<Stream>) -> SF + Send,
    SF: Future<Output = Result<SR, Error>>,
    SR: Send,
{
    let (listener, addr) = loopback_listener()?;
    let (client_done, client_done_rx) = oneshot::channel::<()>();
    let (server_done, server_done_rx) = oneshot::channel::<()>();
    let server_config = config.clone();
    std::thread::scope(|scope| {
        let server_thread =
            named("yamux-server").spawn_scoped(scope, move || -> Result<SR, Error> {
                runtime()?.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let (socket, _) = listener.accept().await?;
                    socket.set_nodelay(true)?;
                    let conn = Connection::new(socket_io(socket), server_config, Mode::Server);
                    let (tx, rx) = mpsc::unbounded_channel();
                    let driver = tokio::spawn(drive(conn, None, move |stream| {
                        let _ = tx.send(stream);
                    }));
                    let result = server(rx).await;
                    let _ = server_done.send(());
                    let _ = client_done_rx.await;
                    driver.abort();
                    result
                })
            })?;
        let client_thread =
            named("yamux-client").spawn_scoped(scope, move || -> Result<CR, Error> {
                runtime()?.block_on(async move {
                    let socket = tokio::net::TcpStream::connect(addr).await?;
                    socket.set_nodelay(true)?;
                    let conn = Connection::new(socket_io(socket), config, Mode::Client);
                    let (tx, rx) = mpsc::unbounded_channel();
                    let driver = tokio::spawn(drive(conn, Some(rx), |_| {}));
                    let result = client(Opener(tx)).await;
                    let _ = client_done.send(());
                    let _ = server_done_rx.await;
                    driver.abort();
                    result
                })
            })?;
        let client_result = client_thread
            .join()
            .map_err(|_| "yamux client thread panicked")?;
        let server_result = server_thread
            .join()
            .map_err(|_| "yamux server thread panicked")?;
        Ok((client_result?, server_result?))
    })
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
