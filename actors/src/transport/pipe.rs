//! [`Pipe`]: a transport over two *blocking* functions, `recv(max_len)` and
//! `send(bytes)`, for byte channels that only come as a C driver, a vendor SDK
//! or a `std::io::Read`/`Write` pair (Python Netcore's `Pipe(recv, send)`).
//!
//! ```text
//!             async side (PipeTransport)        dedicated threads      user code
//!  poll_read  <── bounded queue (queue_depth) ── "netcore-pipe-recv" ── recv(max_len)
//!  poll_write ── bounded queue (queue_depth) ──> "netcore-pipe-send" ── send(bytes)
//!  poll_flush <── bytes-sent counter + waker ─── (after send returns)
//! ```
//!
//! What `recv` returns means, as in Python:
//!
//! | `recv(max_len)` returns | meaning | the transport |
//! |---|---|---|
//! | `Ok(bytes)`, not empty | data (up to `max_len` bytes asked; more are accepted) | hands them to the reader |
//! | `Ok(vec![])` | **nothing yet** (a serial read that timed out, a poll that found nothing) | calls `recv` again, after a pause if it keeps coming back empty |
//! | `Err(e)`, `e.kind() == UnexpectedEof` ([`PipeTransport::end_of_stream`]) | end of stream | the reader sees end of stream; the link goes down with `EndOfStream` (or reconnects, per its policy) |
//! | any other `Err(e)` | the channel failed | the reader gets `e`; the link goes down with the error (or reconnects) |
//!
//! **Empty results back off.** A `recv` that returns empty at once (a
//! non-blocking poll) would otherwise spin a core. The receive thread pauses
//! between consecutive empty results ([`PipeConfig::idle_pause`]): not at all
//! after the first, then 1 ms, doubling up to [`PipeConfig::max_idle_pause`]
//! (20 ms by default); any data resets it. Time spent inside `recv` counts
//! towards the pause, so a `recv` that itself blocks until a timeout (a serial
//! read with a 100 ms timeout) is called again at once and adds no latency. At
//! the cap, an always-empty `recv` is called at most about 50 times a second,
//! and data that arrives during a pause waits at most that long.
//!
//! Each function runs on a thread of its own rather than on tokio's blocking
//! pool: a `recv` may block for ever (a quiet radio), and a pool thread pinned
//! that way is lost to everyone else sharing the pool. Threads are named so
//! they show up as such in `top -H` and debuggers.
//!
//! Memory stays bounded: the send side holds at most `queue_depth` chunks of at
//! most `write_chunk_len` bytes queued plus the one chunk inside `send`; when
//! that is full `poll_write` returns `Poll::Pending` until `send` returns. The
//! receive side holds at most `queue_depth` results of `recv` plus the one
//! being read, and `recv` is not called again while the queue is full.
//!
//! Lifetime: dropping the [`PipeTransport`] (or shutting down its write half)
//! closes the send queue; the send thread hands the chunks already queued to
//! `send` and exits, dropping `send`. The receive thread cannot be interrupted
//! while blocked inside the user's `recv`: it exits the next time `recv`
//! returns (with data, empty or an error), dropping `recv` then. A `recv` that
//! never returns keeps its thread (and whatever it captured) alive until the
//! process exits.

use std::fmt;
use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc::error::{SendError, TrySendError};
use tokio::sync::mpsc::{self, OwnedPermit};

use super::with_context;

/// Sizes of the bounded queues between a [`PipeTransport`] and its threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeConfig {
    /// The `max_len` passed to `recv`: most bytes asked for per call.
    pub read_chunk_len: usize,
    /// Most bytes passed to one call of `send`; a longer `poll_write` is
    /// accepted in part, as a socket would.
    pub write_chunk_len: usize,
    /// Chunks buffered in each direction between the async side and its
    /// thread (at least 1).
    pub queue_depth: usize,
    /// Prefix of the two thread names (`{prefix}-recv`, `{prefix}-send`).
    pub thread_name: String,
    /// The longest pause between two calls of a `recv` that keeps returning
    /// nothing (see [`PipeConfig::idle_pause`]): the most latency an
    /// always-empty-at-once `recv` adds, and the least time between its calls.
    pub max_idle_pause: Duration,
}

impl Default for PipeConfig {
    /// 4 KiB chunks, two queued each way, threads named `netcore-pipe-*`,
    /// empty `recv` results retried at most 20 ms apart.
    fn default() -> Self {
        Self {
            read_chunk_len: 4096,
            write_chunk_len: 4096,
            queue_depth: 2,
            thread_name: "netcore-pipe".to_owned(),
            max_idle_pause: Duration::from_millis(20),
        }
    }
}

impl PipeConfig {
    /// The most bytes `poll_write` accepts before `send` has returned for any
    /// of them: `(queue_depth + 1) * write_chunk_len` (queued chunks plus the
    /// one inside `send`).
    pub fn max_unsent_bytes(&self) -> usize {
        (self.queue_depth.max(1) + 1) * self.write_chunk_len.max(1)
    }

    /// How long the receive thread waits before calling `recv` again after
    /// `empty_in_a_row` consecutive empty results: nothing after the first
    /// (a timed-out read is usually followed by data), then 1 ms, 2 ms, 4 ms, …
    /// doubling up to [`max_idle_pause`](Self::max_idle_pause). The time the last
    /// call spent inside `recv` is taken off the pause.
    pub fn idle_pause(&self, empty_in_a_row: u32) -> Duration {
        let pause = match empty_in_a_row {
            0 | 1 => Duration::ZERO,
            n => 1u32
                .checked_shl(n - 2)
                .map_or(Duration::MAX, |ms| Duration::from_millis(u64::from(ms))),
        };
        pause.min(self.max_idle_pause)
    }
}

/// Python Netcore's name for a transport over `Pipe(recv, send)`: the same type
/// as [`PipeTransport`], so `Pipe::new(recv, send)` reads as it does there.
///
/// ```
/// # use std::io;
/// use netcore_actors::transport::Pipe;
///
/// // A loopback: what is sent comes back.
/// let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
/// let transport = Pipe::new(
///     // Empty would be "nothing yet"; the channel's end is the end of stream.
///     move |_max_len| rx.recv().map_err(|_| Pipe::end_of_stream()),
///     move |bytes| tx.send(bytes.to_vec()).map_err(|_| io::ErrorKind::BrokenPipe.into()),
/// )?;
/// # Ok::<(), io::Error>(())
/// ```
pub type Pipe = PipeTransport;

impl PipeTransport {
    /// Starts the two threads calling the blocking `recv` and `send`, with the
    /// [default sizes](PipeConfig::default).
    ///
    /// `recv(max_len)` returns up to `max_len` bytes (more are accepted too).
    /// An empty `Vec` means nothing yet: `recv` is called again, pausing
    /// between consecutive empty results ([`PipeConfig::idle_pause`]).
    /// `Err` with [`io::ErrorKind::UnexpectedEof`]
    /// ([`end_of_stream`](Self::end_of_stream)) ends the stream: the reader
    /// sees end of stream. Any other `Err` is handed to the reader. Both end
    /// the receive thread. `send(bytes)` must send all of `bytes` or fail; a
    /// failure is returned from the next write or flush, and ends the send
    /// thread.
    ///
    /// # Errors
    /// The operating system's error when a thread cannot be spawned.
    pub fn new<R, S>(recv: R, send: S) -> io::Result<Self>
    where
        R: FnMut(usize) -> io::Result<Vec<u8>> + Send + 'static,
        S: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
    {
        Self::with_config(PipeConfig::default(), recv, send)
    }

    /// [`PipeTransport::new`] with explicit queue sizes.
    ///
    /// # Errors
    /// The operating system's error when a thread cannot be spawned.
    pub fn with_config<R, S>(config: PipeConfig, recv: R, send: S) -> io::Result<Self>
    where
        R: FnMut(usize) -> io::Result<Vec<u8>> + Send + 'static,
        S: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
    {
        let queue_depth = config.queue_depth.max(1);
        let read_chunk_len = config.read_chunk_len.max(1);
        let (event_tx, event_rx) = mpsc::channel(queue_depth);
        let (chunk_tx, chunk_rx) = mpsc::channel(queue_depth);
        let progress = Arc::new(SendProgress::default());

        let recv_name = format!("{}-recv", config.thread_name);
        let idle = config.clone();
        std::thread::Builder::new()
            .name(recv_name.clone())
            .spawn(move || recv_loop(recv, read_chunk_len, &idle, event_tx))
            .map_err(|err| with_context(err, format_args!("spawning thread {recv_name}")))?;
        let send_name = format!("{}-send", config.thread_name);
        let thread_progress = Arc::clone(&progress);
        std::thread::Builder::new()
            .name(send_name.clone())
            .spawn(move || send_loop(send, chunk_rx, &thread_progress))
            .map_err(|err| with_context(err, format_args!("spawning thread {send_name}")))?;

        Ok(Self {
            events: event_rx,
            read_buf: Vec::new(),
            read_pos: 0,
            read_done: false,
            chunks: Some(chunk_tx),
            reserving: None,
            write_chunk_len: config.write_chunk_len.max(1),
            accepted: 0,
            progress,
        })
    }

    /// The error a `recv` returns to end the stream: [`io::ErrorKind::UnexpectedEof`],
    /// "end of stream". Any error of that kind does the same (`read_exact` on a
    /// stream that ended, for one).
    ///
    /// ```
    /// # use std::io;
    /// use netcore_actors::transport::Pipe;
    ///
    /// let mut device = io::Cursor::new(b"frame".to_vec());
    /// let recv = move |max_len: usize| {
    ///     let mut buf = vec![0; max_len];
    ///     match io::Read::read(&mut device, &mut buf)? {
    ///         0 => Err(Pipe::end_of_stream()), // closed: not "nothing yet"
    ///         n => Ok(buf[..n].to_vec()),
    ///     }
    /// };
    /// # let _ = recv;
    /// ```
    pub fn end_of_stream() -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, "end of stream")
    }

    /// A pipe over the blocking halves of an existing byte stream: `reader` is
    /// read for `recv`, `writer` gets `write_all` then `flush` for `send`.
    /// A zero-length read is end of stream (as [`Read`] defines it); a read
    /// that times out (`TimedOut` or `WouldBlock`: a serial port or socket with
    /// a read timeout) is nothing yet; `Interrupted` is retried.
    ///
    /// The writer is dropped when the transport is shut down or dropped; the
    /// reader when its blocked `read` next returns. With two halves of one
    /// socket (`try_clone`), dropping one half does not close the socket.
    ///
    /// # Errors
    /// The operating system's error when a thread cannot be spawned.
    pub fn from_io<R, W>(reader: R, writer: W) -> io::Result<Self>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        Self::from_io_with_config(PipeConfig::default(), reader, writer)
    }

    /// [`PipeTransport::from_io`] with explicit queue sizes.
    ///
    /// # Errors
    /// The operating system's error when a thread cannot be spawned.
    pub fn from_io_with_config<R, W>(
        config: PipeConfig,
        mut reader: R,
        mut writer: W,
    ) -> io::Result<Self>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let recv = move |max_len: usize| {
            let mut buf = vec![0; max_len];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => return Err(Self::end_of_stream()),
                    Ok(len) => {
                        buf.truncate(len);
                        return Ok(buf);
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err)
                        if matches!(
                            err.kind(),
                            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                        ) =>
                    {
                        return Ok(Vec::new())
                    }
                    Err(err) => return Err(err),
                }
            }
        };
        let send = move |bytes: &[u8]| {
            writer.write_all(bytes)?;
            writer.flush()
        };
        Self::with_config(config, recv, send)
    }
}

/// What the receive thread hands the async side.
enum RecvEvent {
    Data(Vec<u8>),
    Eof,
    Failed(io::Error),
}

fn recv_loop<R>(mut recv: R, max_len: usize, idle: &PipeConfig, events: mpsc::Sender<RecvEvent>)
where
    R: FnMut(usize) -> io::Result<Vec<u8>>,
{
    tracing::trace!("pipe recv thread started");
    let mut empty_in_a_row = 0u32;
    loop {
        let called = Instant::now();
        let event = match recv(max_len) {
            Ok(bytes) if bytes.is_empty() => {
                // Nothing yet: no event, so check whether anyone still reads.
                if events.is_closed() {
                    tracing::debug!("pipe transport dropped; recv thread exits");
                    return;
                }
                empty_in_a_row = empty_in_a_row.saturating_add(1);
                let pause = idle
                    .idle_pause(empty_in_a_row)
                    .saturating_sub(called.elapsed());
                if !pause.is_zero() {
                    std::thread::sleep(pause);
                }
                continue;
            }
            Ok(bytes) => RecvEvent::Data(bytes),
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => RecvEvent::Eof,
            Err(err) => RecvEvent::Failed(err),
        };
        empty_in_a_row = 0;
        let last = !matches!(event, RecvEvent::Data(_));
        match &event {
            RecvEvent::Eof => tracing::debug!("pipe recv: end of stream"),
            RecvEvent::Failed(err) => tracing::debug!(%err, "pipe recv failed"),
            RecvEvent::Data(_) => {}
        }
        if events.blocking_send(event).is_err() {
            tracing::debug!("pipe transport dropped; recv thread exits");
            return;
        }
        if last {
            return;
        }
    }
}

/// How far the send thread has got, shared with the async side for flushing.
#[derive(Default)]
struct SendProgress {
    /// Bytes for which `send` has returned `Ok`.
    sent: AtomicU64,
    /// The send thread has exited (closed queue, `send` error or panic).
    finished: AtomicBool,
    /// The error `send` returned, as kind and message (`io::Error` is not `Clone`).
    failure: Mutex<Option<(io::ErrorKind, String)>>,
    /// The task waiting in `poll_flush`.
    flusher: Mutex<Option<Waker>>,
}

impl SendProgress {
    fn wake_flusher(&self) {
        let waker = self
            .flusher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The error to report once the send thread is gone.
    fn stopped_error(&self) -> io::Error {
        match &*self.failure.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((kind, message)) => io::Error::new(*kind, format!("pipe send: {message}")),
            None => io::Error::new(
                io::ErrorKind::BrokenPipe,
                "pipe send thread stopped (send panicked or the write half was shut down)",
            ),
        }
    }
}

/// Marks the send thread finished however it exits, panics included, so a
/// flush never waits for a thread that is gone.
struct FinishGuard<'a>(&'a SendProgress);

impl Drop for FinishGuard<'_> {
    fn drop(&mut self) {
        self.0.finished.store(true, Ordering::SeqCst);
        self.0.wake_flusher();
    }
}

fn send_loop<S>(mut send: S, mut chunks: mpsc::Receiver<Vec<u8>>, progress: &SendProgress)
where
    S: FnMut(&[u8]) -> io::Result<()>,
{
    let _guard = FinishGuard(progress);
    tracing::trace!("pipe send thread started");
    while let Some(chunk) = chunks.blocking_recv() {
        if let Err(err) = send(&chunk) {
            tracing::debug!(%err, "pipe send failed; send thread exits");
            *progress
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some((err.kind(), err.to_string()));
            // Refuse further writes before the guard reports the failure.
            chunks.close();
            return;
        }
        progress
            .sent
            .fetch_add(chunk.len() as u64, Ordering::SeqCst);
        progress.wake_flusher();
    }
    tracing::debug!("pipe write half closed; send thread exits");
}

type Reserving = Pin<Box<dyn Future<Output = Result<OwnedPermit<Vec<u8>>, SendError<()>>> + Send>>;

/// A [`Transport`](super::Transport) over two blocking functions (alias
/// [`Pipe`]): reads what `recv` returned, writes through `send`, each called
/// on a thread of its own (see the [module docs](self)).
///
/// `poll_write` accepts at most `write_chunk_len` bytes per call and returns
/// `Poll::Pending` while the send queue is full. `poll_flush` completes once
/// `send` has returned for every byte written so far: on the wire as far as
/// this side can know. `poll_shutdown` flushes, then closes the send queue.
pub struct PipeTransport {
    events: mpsc::Receiver<RecvEvent>,
    read_buf: Vec<u8>,
    read_pos: usize,
    read_done: bool,
    /// `None` after shutdown.
    chunks: Option<mpsc::Sender<Vec<u8>>>,
    /// Waiting for room in the send queue.
    reserving: Option<Reserving>,
    write_chunk_len: usize,
    /// Bytes accepted by `poll_write` so far.
    accepted: u64,
    progress: Arc<SendProgress>,
}

impl PipeTransport {
    /// Bytes accepted by `poll_write` for which `send` has not yet returned.
    pub fn unsent_bytes(&self) -> u64 {
        self.accepted
            .saturating_sub(self.progress.sent.load(Ordering::SeqCst))
    }
}

impl fmt::Debug for PipeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeTransport")
            .field("accepted", &self.accepted)
            .field("sent", &self.progress.sent.load(Ordering::SeqCst))
            .field("read_done", &self.read_done)
            .field("write_closed", &self.chunks.is_none())
            .finish_non_exhaustive()
    }
}

impl AsyncRead for PipeTransport {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.read_pos < this.read_buf.len() {
                let available = &this.read_buf[this.read_pos..];
                let len = available.len().min(buf.remaining());
                buf.put_slice(&available[..len]);
                this.read_pos += len;
                return Poll::Ready(Ok(()));
            }
            if this.read_done {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.events.poll_recv(cx)) {
                Some(RecvEvent::Data(bytes)) => {
                    this.read_buf = bytes;
                    this.read_pos = 0;
                }
                Some(RecvEvent::Eof) => this.read_done = true,
                Some(RecvEvent::Failed(err)) => {
                    this.read_done = true;
                    return Poll::Ready(Err(with_context(err, "pipe recv")));
                }
                None => {
                    this.read_done = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "pipe recv thread stopped without end of stream (recv panicked)",
                    )));
                }
            }
        }
    }
}

impl AsyncWrite for PipeTransport {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let Some(chunks) = &this.chunks else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "pipe: write after shutdown",
            )));
        };
        if this.progress.finished.load(Ordering::SeqCst) {
            return Poll::Ready(Err(this.progress.stopped_error()));
        }
        let permit = match this.reserving.as_mut() {
            Some(reserving) => ready!(reserving.as_mut().poll(cx)).map_err(|_| ()),
            None => match chunks.clone().try_reserve_owned() {
                Ok(permit) => Ok(permit),
                Err(TrySendError::Full(sender)) => {
                    let mut reserving: Reserving = Box::pin(sender.reserve_owned());
                    match reserving.as_mut().poll(cx) {
                        Poll::Ready(result) => result.map_err(|_| ()),
                        Poll::Pending => {
                            this.reserving = Some(reserving);
                            return Poll::Pending;
                        }
                    }
                }
                Err(TrySendError::Closed(_)) => Err(()),
            },
        };
        this.reserving = None;
        let Ok(permit) = permit else {
            return Poll::Ready(Err(this.progress.stopped_error()));
        };
        let len = buf.len().min(this.write_chunk_len);
        permit.send(buf[..len].to_vec());
        this.accepted += len as u64;
        Poll::Ready(Ok(len))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let progress = &self.progress;
        let flushed = || progress.sent.load(Ordering::SeqCst) >= self.accepted;
        if flushed() {
            return Poll::Ready(Ok(()));
        }
        *progress
            .flusher
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        // Re-check after registering: the send thread may have finished in between.
        if flushed() {
            Poll::Ready(Ok(()))
        } else if progress.finished.load(Ordering::SeqCst) {
            Poll::Ready(Err(progress.stopped_error()))
        } else {
            Poll::Pending
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.chunks.is_some() {
            ready!(self.as_mut().poll_flush(cx))?;
            self.reserving = None;
            self.chunks = None;
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn idle_pause_schedule() {
        let config = PipeConfig::default();
        let pauses: Vec<Duration> = (0..10).map(|n| config.idle_pause(n)).collect();
        assert_eq!(
            pauses,
            [0, 0, 1, 2, 4, 8, 16, 20, 20, 20].map(ms),
            "no pause after the first empty result, then 1 ms doubling to the cap"
        );
        assert_eq!(config.idle_pause(u32::MAX), ms(20));
    }

    #[test]
    fn idle_pause_follows_its_cap() {
        let config = PipeConfig {
            max_idle_pause: ms(5),
            ..PipeConfig::default()
        };
        assert_eq!(config.idle_pause(4), ms(4));
        assert_eq!(config.idle_pause(5), ms(5));
        assert_eq!(config.idle_pause(40), ms(5));
        let never = PipeConfig {
            max_idle_pause: Duration::ZERO,
            ..PipeConfig::default()
        };
        assert_eq!(never.idle_pause(7), Duration::ZERO);
    }

    proptest! {
        /// The pause never shrinks while results stay empty, never exceeds the
        /// cap, and reaches the cap (2^14 ms is over any cap drawn here): an
        /// always-empty `recv` ends up called at most once per cap.
        #[test]
        fn idle_pause_grows_to_its_cap(cap_ms in 1u64..10_000, n in 0u32..200) {
            let config = PipeConfig { max_idle_pause: ms(cap_ms), ..PipeConfig::default() };
            let (now, next) = (config.idle_pause(n), config.idle_pause(n + 1));
            prop_assert!(now <= next);
            prop_assert!(next <= ms(cap_ms));
            prop_assert_eq!(config.idle_pause(n + 16), ms(cap_ms));
        }
    }
}
