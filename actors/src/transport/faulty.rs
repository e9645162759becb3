//! [`faulty_pair`]: an in-process duplex line that loses, corrupts, duplicates,
//! truncates, delays and cuts what goes over it, deterministically from a
//! seed, so tests can check that a protocol survives an unreliable link.
//!
//! Each direction runs what its writer writes through a fault stage and a wire:
//!
//! ```text
//!  poll_write ──> frames ──> drop? truncate? duplicate? bit errors ──> wire at bytes_per_sec ──> + latency + jitter ──> poll_read
//!                 (up to and    one decision per frame, each fault      FIFO full: Pending          in order, never
//!                 incl. 0x00)   kind from its own seeded stream                                      reordered
//! ```
//!
//! * **Frames.** With [`FaultConfig::frame_delimiter`] `Some(0x00)` (the
//!   default: netcore's serial framing) a frame is the bytes up to and
//!   including a `0x00`, and faults hit whole frames. A frame is held until its
//!   delimiter is written (at most [`FaultConfig::buffer_len`] bytes; a longer
//!   run is let through as one frame). A lone delimiter (the idle `0x00`
//!   before a burst) is not a frame: it only suffers bit errors and is not
//!   counted. With `None`, every chunk `poll_write` accepts is a frame.
//! * **Faults**, each configurable per direction ([`Faults`], default none):
//!   - *drop*: the frame vanishes (it still took its time on the wire);
//!   - *truncate*: only a random prefix of the frame's bytes before its
//!     delimiter arrives (0 to all but one of them), then the delimiter, so the
//!     cut frame ends early without swallowing the next one;
//!   - *duplicate*: the frame arrives twice, back to back;
//!   - *bit errors*: every delivered bit (delimiters and both copies of a
//!     duplicate included) flips with probability `bit_error_rate`,
//!     independently. The gap to the next flipped bit is drawn from a
//!     geometric distribution, so clean bytes cost no random draws.
//!   - *a clean start*: the first [`Faults::clean_frames`] frames suffer none
//!     of these (1 lets a link's handshake through).
//! * **Timing.** The wire carries the frames as written (dropped ones too) at
//!   `bytes_per_sec` using the [throttled line](super::throttled)'s clock: a
//!   busy period's `k`-th byte is done at `epoch + k / rate`, exactly, so
//!   throughput does not drift. A frame arrives whole, `latency` plus a
//!   uniform draw in `[0, jitter]` after its last byte is on the wire; a frame
//!   never overtakes the one before it. With a rate, a writer may have at most
//!   a TX FIFO of bytes (5 ms of data, at least 64) not yet serialized; past
//!   that `poll_write` returns `Pending`, as on a UART.
//! * **Bounded.** A direction holds at most [`FaultConfig::buffer_len`] bytes
//!   (unread plus an unfinished frame); a writer past that gets `Pending`.
//! * **Silence.** [`FaultHandle::silence`] swallows every frame both ways for
//!   a while without an error: a radio out of range, where a cut is a
//!   port that fails.
//! * **Cuts.** [`FaultHandle::cut`], or the first time of the
//!   [`CutSchedule`] after the pair was opened, kills the pair for good: reads
//!   return end of stream (undelivered bytes are lost) and writes and flushes
//!   fail with `BrokenPipe`. [`FaultyLine`] models a link that comes back:
//!   [`reconnect`](FaultyLine::reconnect) hands out a fresh pair with the same
//!   faults, the next seed and the next scheduled cut.
//! * **Closing** as on the throttled line: dropping an end or shutting its
//!   write half gives the peer end of stream after what was written (an
//!   unfinished frame goes out as it is, as one frame); writing to a dropped
//!   peer fails with `BrokenPipe`.
//! * **Deterministic.** Drops, truncations, duplicates, jitter and bit errors
//!   each come from their own stream of the shared seeded generator
//!   (`netcore_proto::rng::SplitMix64`),
//!   seeded from [`FaultConfig::seed`] and different for the two directions:
//!   the same seed and the same bytes written give the same faults, whatever
//!   the timing and however the bytes were split into writes (when frames are
//!   delimited; with `frame_delimiter: None` the write sizes matter too, and a
//!   rate limit or a full buffer can shorten a write).
//! * **Counted.** [`FaultStats`] per direction, readable from a
//!   [`FaultHandle`] after the ends have been moved away, so a test can assert
//!   the faults really happened.
//! * **Any transport.** [`Faulty`] wraps a real transport (TCP, a
//!   pseudo-terminal, a [throttled line](super::throttled_pair)) and injects
//!   the same faults, from the same seed, into what is read from it.
//!
//! Times are [`tokio::time::Instant`]s, so the line also runs under
//! `tokio::time::pause()`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use netcore_actors::transport::{faulty_pair, FaultConfig, Faults};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! // a → b drops a third of the frames; b → a is clean.
//! let config = FaultConfig::new(42).with_a_to_b(Faults::none().with_drop(1.0 / 3.0));
//! let (mut a, mut b) = faulty_pair(config);
//! let handle = a.handle();
//! for i in 1..=30u8 {
//!     a.write_all(&[i, i, 0x00]).await?; // three-byte frames: "i i 0x00"
//! }
//! drop(a);
//! let mut arrived = Vec::new();
//! b.read_to_end(&mut arrived).await?;
//!
//! let sent = handle.sent();
//! assert_eq!(sent.frames, 30);
//! assert!(sent.dropped > 0);
//! assert_eq!(sent.passed, 30 - sent.dropped);
//! assert_eq!(arrived.len() as u64, 3 * sent.passed);
//!
//! // A cut kills the pair: reads see end of stream, writes fail.
//! let (mut a, mut b) = faulty_pair(FaultConfig::new(42));
//! a.handle().cut();
//! assert_eq!(b.read(&mut [0; 8]).await?, 0);
//! assert!(a.write_all(b"late\0").await.is_err());
//! # Ok(()) }
//! ```

use super::pacing::{bytes_in, poll_sleep, time_for, wake};
use netcore_proto::rng::SplitMix64;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::mem;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The faults of one direction of a [`faulty_pair`]. [`Faults::none`] (the
/// default) is a perfect line; the `with_*` methods add faults.
///
/// Probabilities are per frame (see the [module docs](self)) and are clamped
/// to `[0, 1]` in effect: `0` (or NaN) never, `1` always.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct Faults {
    /// Probability that a frame is lost.
    pub drop: f64,
    /// Probability that each delivered bit is flipped (bit error rate).
    pub bit_error_rate: f64,
    /// Probability that a frame arrives twice.
    pub duplicate: f64,
    /// Probability that a frame is cut short.
    pub truncate: f64,
    /// Delay added to every frame's arrival.
    pub latency: Duration,
    /// Most extra delay added to a frame's arrival, drawn uniformly from
    /// `[0, jitter]` per frame. Frames are never reordered.
    pub jitter: Duration,
    /// Bytes per second the wire carries, `None` for no limit. `Some(0)`
    /// counts as 1.
    pub bytes_per_sec: Option<u32>,
    /// Frames that pass untouched before the faults start (delayed and rate
    /// limited like the rest, but never lost, cut, doubled or flipped, and
    /// drawing nothing from the fault streams): 1 lets a link's handshake
    /// (one HELLO each way) through, so a test of what the link does once up
    /// does not depend on how the handshake copes with loss.
    pub clean_frames: u64,
}

impl Faults {
    /// No faults, no delay, no rate limit.
    pub fn none() -> Self {
        Self::default()
    }

    /// The same faults, and each frame lost with probability `p`.
    #[must_use]
    pub fn with_drop(mut self, p: f64) -> Self {
        self.drop = p;
        self
    }

    /// The same faults, and each bit flipped with probability `ber`.
    #[must_use]
    pub fn with_bit_error_rate(mut self, ber: f64) -> Self {
        self.bit_error_rate = ber;
        self
    }

    /// The same faults, and each frame delivered twice with probability `p`.
    #[must_use]
    pub fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// The same faults, and each frame cut short with probability `p`.
    #[must_use]
    pub fn with_truncate(mut self, p: f64) -> Self {
        self.truncate = p;
        self
    }

    /// The same faults, with every frame delayed by `latency`.
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The same faults, with up to `jitter` more delay drawn per frame.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// The same faults on a wire carrying `bytes_per_sec` bytes per second.
    #[must_use]
    pub fn with_bytes_per_sec(mut self, bytes_per_sec: u32) -> Self {
        self.bytes_per_sec = Some(bytes_per_sec);
        self
    }

    /// The same faults, starting after the first `frames` frames (see
    /// [`Faults::clean_frames`]).
    #[must_use]
    pub fn with_clean_frames(mut self, frames: u64) -> Self {
        self.clean_frames = frames;
        self
    }
}

/// The shape of a [`faulty_pair`] or [`FaultyLine`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FaultConfig {
    /// Seed of every fault decision: same seed, same input, same faults.
    pub seed: u64,
    /// The byte that ends a frame, `Some(0x00)` for netcore's serial framing;
    /// `None` makes every accepted write chunk a frame.
    pub frame_delimiter: Option<u8>,
    /// Faults of what the first end (`a`) writes.
    pub a_to_b: Faults,
    /// Faults of what the second end (`b`) writes.
    pub b_to_a: Faults,
    /// When the pair gets cut, counted from when it (or its [`FaultyLine`])
    /// was opened.
    pub cuts: CutSchedule,
    /// Most bytes one direction holds (unread, plus an unfinished frame); a
    /// frame without a delimiter this long is let through as it is. At
    /// least 1.
    pub buffer_len: usize,
}

impl FaultConfig {
    /// A perfect line with serial framing (`0x00` delimiters), a 64 KiB buffer
    /// each way, no cuts, and `seed` for the faults added later.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            frame_delimiter: Some(0x00),
            a_to_b: Faults::none(),
            b_to_a: Faults::none(),
            cuts: CutSchedule::never(),
            buffer_len: 64 * 1024,
        }
    }

    /// The same line with `faults` in both directions (each direction still
    /// draws its own fault pattern).
    #[must_use]
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.a_to_b = faults;
        self.b_to_a = faults;
        self
    }

    /// The same line with `faults` on what `a` writes.
    #[must_use]
    pub fn with_a_to_b(mut self, faults: Faults) -> Self {
        self.a_to_b = faults;
        self
    }

    /// The same line with `faults` on what `b` writes.
    #[must_use]
    pub fn with_b_to_a(mut self, faults: Faults) -> Self {
        self.b_to_a = faults;
        self
    }

    /// The same line cut on `cuts`.
    #[must_use]
    pub fn with_cuts(mut self, cuts: CutSchedule) -> Self {
        self.cuts = cuts;
        self
    }

    /// The same line with frames ending at `delimiter` (`None`: every write
    /// chunk is a frame).
    #[must_use]
    pub fn with_frame_delimiter(mut self, delimiter: Option<u8>) -> Self {
        self.frame_delimiter = delimiter;
        self
    }

    /// The same line holding at most `len` bytes each way.
    #[must_use]
    pub fn with_buffer_len(mut self, len: usize) -> Self {
        self.buffer_len = len;
        self
    }
}

impl Default for FaultConfig {
    /// [`FaultConfig::new`]`(0)`.
    fn default() -> Self {
        Self::new(0)
    }
}

/// When a link gets cut, as times since the [`faulty_pair`] or [`FaultyLine`]
/// was opened. A pair is cut at the first scheduled time after it was opened
/// and stays dead; a [`FaultyLine`]'s next pair gets the next time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutSchedule(Cuts);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Cuts {
    #[default]
    Never,
    At(Vec<Duration>),
    Every(Duration),
}

impl CutSchedule {
    /// Never cut (but [`FaultHandle::cut`] still does).
    pub fn never() -> Self {
        Self(Cuts::Never)
    }

    /// Cut at each of `times` after opening.
    pub fn at(times: impl IntoIterator<Item = Duration>) -> Self {
        let mut times: Vec<Duration> = times.into_iter().collect();
        times.sort_unstable();
        times.dedup();
        Self(Cuts::At(times))
    }

    /// Cut every `period` (at `period`, `2 × period`, …) after opening. A zero
    /// period never cuts.
    pub fn every(period: Duration) -> Self {
        if period.is_zero() {
            Self::never()
        } else {
            Self(Cuts::Every(period))
        }
    }

    /// The first scheduled cut strictly after `elapsed`, if any.
    pub fn next_after(&self, elapsed: Duration) -> Option<Duration> {
        match &self.0 {
            Cuts::Never => None,
            Cuts::At(times) => times.iter().copied().find(|&at| at > elapsed),
            Cuts::Every(period) => {
                let n = elapsed.as_nanos() / period.as_nanos() + 1;
                let nanos = u64::try_from(period.as_nanos().checked_mul(n)?).ok()?;
                Some(Duration::from_nanos(nanos))
            }
        }
    }
}

/// What one direction of a faulty line did, frame by frame.
///
/// `frames` counts the frames written (lone delimiters excluded); each is
/// either `dropped` or `passed`, and a passed frame may also be `truncated`,
/// `duplicated` and `corrupted` (at least one bit flipped in some copy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Frames the writer completed.
    pub frames: u64,
    /// Frames that arrived (intact or not): `frames - dropped`.
    pub passed: u64,
    /// Frames lost.
    pub dropped: u64,
    /// Frames that arrived with at least one flipped bit.
    pub corrupted: u64,
    /// Frames that arrived twice.
    pub duplicated: u64,
    /// Frames cut short.
    pub truncated: u64,
    /// Bits flipped in all, delimiters included.
    pub bits_flipped: u64,
    /// Bytes the writer handed to the line.
    pub bytes_written: u64,
    /// Bytes that came out of the fault stage for the reader (after drops,
    /// truncations and duplicates).
    pub bytes_delivered: u64,
    /// Bytes the reader has read.
    pub bytes_read: u64,
}

/// Opens a faulty duplex line and returns its two ends `(a, b)`: what one end
/// writes, the other reads, with `config`'s faults. See the
/// [module docs](self).
///
/// Needs a tokio runtime with the time driver when latency, a rate or cuts
/// are configured.
pub fn faulty_pair(config: FaultConfig) -> (FaultyStream, FaultyStream) {
    let now = Instant::now();
    let cut_at = config
        .cuts
        .next_after(Duration::ZERO)
        .map(|after| later(now, after));
    open_pair(&config, config.seed, cut_at)
}

fn open_pair(
    config: &FaultConfig,
    seed: u64,
    cut_at: Option<Instant>,
) -> (FaultyStream, FaultyStream) {
    let shared = open_shared(config, seed, cut_at);
    let a = FaultyStream::new(Arc::clone(&shared), A_TO_B);
    let b = FaultyStream::new(shared, B_TO_A);
    (a, b)
}

/// Both directions of a line, `a → b` first.
fn open_shared(config: &FaultConfig, seed: u64, cut_at: Option<Instant>) -> Arc<Shared> {
    let mut seeds = Rng::new(seed);
    Arc::new(Shared {
        directions: [
            Direction::new(config, config.a_to_b, &mut seeds),
            Direction::new(config, config.b_to_a, &mut seeds),
        ],
        cut: AtomicBool::new(false),
        cut_at,
    })
}

const A_TO_B: usize = 0;
const B_TO_A: usize = 1;

/// Stats and the cut switch of one end of a faulty line, usable after the end
/// has been moved away (into a link, say). Cheap to clone.
#[derive(Clone)]
pub struct FaultHandle {
    shared: Arc<Shared>,
    outgoing: usize,
}

impl FaultHandle {
    /// What happened to the bytes this end wrote.
    pub fn sent(&self) -> FaultStats {
        self.shared.directions[self.outgoing].lock().stats
    }

    /// What happened to the bytes the peer wrote to this end.
    pub fn received(&self) -> FaultStats {
        self.shared.directions[1 - self.outgoing].lock().stats
    }

    /// Cuts the line now, both ways and for good: reads return end of stream,
    /// writes fail with `BrokenPipe`.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        for direction in &self.shared.directions {
            let mut state = direction.lock();
            wake(&mut state.reader_waker);
            wake(&mut state.writer_waker);
        }
    }

    /// Makes the line silent both ways for `duration` from now, as a radio out
    /// of range: every frame finished meanwhile vanishes (counted as
    /// dropped), while both ends stay open and writable, with no error. Frames
    /// already on their way still arrive. A later call replaces the end of the
    /// silence (`Duration::ZERO` ends it now).
    pub fn silence(&self, duration: Duration) {
        let until = later(Instant::now(), duration);
        for direction in &self.shared.directions {
            direction.lock().silent_until = Some(until);
        }
    }

    /// Whether the line has been cut (by hand or on schedule).
    pub fn is_cut(&self) -> bool {
        self.shared.is_cut()
    }

    /// When the schedule cuts this line, if it does.
    pub fn cut_at(&self) -> Option<Instant> {
        self.shared.cut_at
    }
}

impl fmt::Debug for FaultHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultHandle")
            .field("sent", &self.sent())
            .field("received", &self.received())
            .field("cut", &self.is_cut())
            .finish()
    }
}

/// One end of a [`faulty_pair`]; a [`Transport`](super::Transport).
pub struct FaultyStream {
    shared: Arc<Shared>,
    outgoing: usize,
    read_sleep: Option<Pin<Box<Sleep>>>,
    write_sleep: Option<Pin<Box<Sleep>>>,
    read_cut_sleep: Option<Pin<Box<Sleep>>>,
    write_cut_sleep: Option<Pin<Box<Sleep>>>,
}

impl FaultyStream {
    fn new(shared: Arc<Shared>, outgoing: usize) -> Self {
        Self {
            shared,
            outgoing,
            read_sleep: None,
            write_sleep: None,
            read_cut_sleep: None,
            write_cut_sleep: None,
        }
    }

    /// This end's stats and the line's cut switch.
    pub fn handle(&self) -> FaultHandle {
        FaultHandle {
            shared: Arc::clone(&self.shared),
            outgoing: self.outgoing,
        }
    }

    fn outgoing(&self) -> &Direction {
        &self.shared.directions[self.outgoing]
    }

    fn incoming(&self) -> &Direction {
        &self.shared.directions[1 - self.outgoing]
    }
}

impl fmt::Debug for FaultyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStream")
            .field("handle", &self.handle())
            .finish_non_exhaustive()
    }
}

impl Drop for FaultyStream {
    fn drop(&mut self) {
        self.outgoing().close_writer();
        let mut state = self.incoming().lock();
        state.reader_closed = true;
        state.queue = VecDeque::new();
        state.queued = 0;
        wake(&mut state.writer_waker);
    }
}

/// Polls the scheduled cut's timer; `true` once the cut time has come.
fn poll_cut(
    slot: &mut Option<Pin<Box<Sleep>>>,
    cut_at: Option<Instant>,
    cx: &mut Context<'_>,
) -> bool {
    cut_at.is_some_and(|at| poll_sleep(slot, at, cx).is_ready())
}

fn broken_pipe(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, format!("faulty line: {why}"))
}

/// `at + after`, or far in the future if that overflows.
fn later(at: Instant, after: Duration) -> Instant {
    at.checked_add(after)
        .unwrap_or_else(|| at + Duration::from_secs(100 * 365 * 24 * 3600))
}

impl AsyncRead for FaultyStream {
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
            let deadline = {
                let direction = this.incoming();
                let mut state = direction.lock();
                // Checked under the lock, so a cut() cannot slip in between
                // the check and the waker being stored.
                if this.shared.is_cut() {
                    return Poll::Ready(Ok(()));
                }
                let now = Instant::now();
                let read = state.take_into(now, buf);
                if read > 0 {
                    wake(&mut state.writer_waker);
                    return Poll::Ready(Ok(()));
                }
                if state.queue.is_empty() && state.writer_closed {
                    return Poll::Ready(Ok(()));
                }
                // Woken by the writer, or by a cut.
                state.reader_waker = Some(cx.waker().clone());
                state.queue.front().map(|segment| segment.ready_at)
            };
            if let Some(deadline) = deadline {
                if poll_sleep(&mut this.read_sleep, deadline, cx).is_ready() {
                    continue;
                }
            }
            if poll_cut(&mut this.read_cut_sleep, this.shared.cut_at, cx) {
                continue;
            }
            return Poll::Pending;
        }
    }
}

impl AsyncWrite for FaultyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            let deadline = {
                let direction = this.outgoing();
                let mut state = direction.lock();
                if this.shared.is_cut() {
                    return Poll::Ready(Err(broken_pipe("the line was cut")));
                }
                if state.reader_closed {
                    return Poll::Ready(Err(broken_pipe("the reading end was dropped")));
                }
                if state.writer_closed {
                    return Poll::Ready(Err(broken_pipe("write after shutdown")));
                }
                let held = state.queued + state.partial.len();
                let room = direction.config.buffer_len.saturating_sub(held);
                let now = Instant::now();
                let fifo_room = match direction.config.rate {
                    None => usize::MAX,
                    Some(_) => direction
                        .config
                        .fifo_len
                        .saturating_sub(state.wire.unserialized(now)),
                };
                if room == 0 || fifo_room == 0 {
                    // Woken by the reader, the wire's clock or a cut.
                    state.writer_waker = Some(cx.waker().clone());
                }
                if room == 0 {
                    None
                } else if fifo_room == 0 {
                    Some(state.wire.drained_to(direction.config.fifo_len / 2))
                } else {
                    let len = buf.len().min(room).min(fifo_room);
                    state.accept(&buf[..len], now, &direction.config);
                    wake(&mut state.reader_waker);
                    return Poll::Ready(Ok(len));
                }
            };
            if let Some(deadline) = deadline {
                if poll_sleep(&mut this.write_sleep, deadline, cx).is_ready() {
                    continue;
                }
            }
            if poll_cut(&mut this.write_cut_sleep, this.shared.cut_at, cx) {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Waits until every frame written so far is on the wire (they may still
    /// be in flight for their latency). An unfinished frame stays held.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let deadline = {
                let direction = this.outgoing();
                let mut state = direction.lock();
                if this.shared.is_cut() {
                    return Poll::Ready(Err(broken_pipe("the line was cut")));
                }
                if state.reader_closed || state.wire.unserialized(Instant::now()) == 0 {
                    return Poll::Ready(Ok(()));
                }
                state.writer_waker = Some(cx.waker().clone());
                state.wire.drained_to(0)
            };
            if poll_sleep(&mut this.write_sleep, deadline, cx).is_ready() {
                continue;
            }
            if poll_cut(&mut this.write_cut_sleep, this.shared.cut_at, cx) {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Closes this end's write half: an unfinished frame goes out as it is,
    /// and the peer reads end of stream after what was written.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outgoing().close_writer();
        Poll::Ready(Ok(()))
    }
}

/// Mixed into a [`FaultyLine`]'s seed to start its sequence of pair seeds.
const LINE_SEED_SALT: u64 = 0x6661_756c_7479_6c6e; // "faultyln"

/// A line that can be cut and come back, like a radio link: each
/// [`reconnect`](Self::reconnect) hands out a fresh connected pair with the
/// same faults, the next seed of the line's sequence and the next cut of its
/// schedule (times count from [`FaultyLine::new`]). Cheap to clone, so a
/// connector closure can own one.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use netcore_actors::transport::{FaultConfig, FaultyLine};
/// use tokio::io::AsyncReadExt;
///
/// let line = FaultyLine::new(FaultConfig::new(7));
/// let (a, mut b) = line.reconnect();
/// let connect = { let line = line.clone(); move || line.reconnect() };
/// let (a2, b2) = connect(); // the old pair is cut, the new one is live
/// assert!(a.handle().is_cut());
/// assert_eq!(b.read(&mut [0; 4]).await.unwrap(), 0);
/// assert!(!a2.handle().is_cut());
/// assert_eq!(line.pairs(), 2);
/// # }
/// ```
#[derive(Clone)]
pub struct FaultyLine {
    inner: Arc<Mutex<LineState>>,
}

struct LineState {
    config: FaultConfig,
    opened: Instant,
    seeds: Rng,
    pairs: u64,
    current: Option<FaultHandle>,
}

impl FaultyLine {
    /// A line with `config`, not connected yet; its cut schedule starts now.
    /// Its first pair is the one [`faulty_pair`]`(config)` would give.
    pub fn new(config: FaultConfig) -> Self {
        // Salted, so the pairs' seeds are not the first pair's own streams.
        let seeds = Rng::new(config.seed ^ LINE_SEED_SALT);
        Self {
            inner: Arc::new(Mutex::new(LineState {
                config,
                opened: Instant::now(),
                seeds,
                pairs: 0,
                current: None,
            })),
        }
    }

    /// Cuts the current pair (if still alive) and opens a new one.
    pub fn reconnect(&self) -> (FaultyStream, FaultyStream) {
        let mut line = self.lock();
        if let Some(old) = line.current.take() {
            old.cut();
        }
        let seed = if line.pairs == 0 {
            line.config.seed
        } else {
            line.seeds.next_u64()
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(line.opened);
        let cut_at = line
            .config
            .cuts
            .next_after(elapsed)
            .map(|after| later(line.opened, after));
        let (a, b) = open_pair(&line.config, seed, cut_at);
        line.pairs += 1;
        line.current = Some(a.handle());
        (a, b)
    }

    /// Cuts the current pair, if any.
    pub fn cut(&self) {
        if let Some(current) = &self.lock().current {
            current.cut();
        }
    }

    /// The `a` end's handle of the current pair, if any.
    pub fn current(&self) -> Option<FaultHandle> {
        self.lock().current.clone()
    }

    /// How many pairs [`reconnect`](Self::reconnect) has handed out.
    pub fn pairs(&self) -> u64 {
        self.lock().pairs
    }

    fn lock(&self) -> MutexGuard<'_, LineState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for FaultyLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.lock();
        f.debug_struct("FaultyLine")
            .field("config", &line.config)
            .field("pairs", &line.pairs)
            .field("current", &line.current)
            .finish()
    }
}

/// Faults injected into what is read from any transport: a TCP stream, a
/// pseudo-terminal, one end of a [`throttled_pair`](super::throttled_pair).
///
/// The wrapped transport plays end `a` of a [`faulty_pair`]: what it reads
/// suffers `config.b_to_a`, exactly as `a` of `faulty_pair(config)` would for
/// the same bytes, and the seed, delimiter, buffer length and cut schedule
/// are `config`'s. What it writes passes untouched (a wrapper cannot hold
/// bytes back without a task of its own), so `config.a_to_b` is not used:
/// wrap the other end too for faults both ways. Timing faults count from
/// when the bytes are read from `inner`, and the rate limit paces what is
/// read. A cut makes reads return end of stream and writes fail with
/// `BrokenPipe`; `inner` stays open until the wrapper is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use netcore_actors::transport::{FaultConfig, Faults, Faulty};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let (near, mut far) = tokio::io::duplex(4096);
/// let config = FaultConfig::new(3).with_b_to_a(Faults::none().with_duplicate(1.0));
/// let mut near = Faulty::new(near, config);
/// far.write_all(b"ab\0").await?;
/// drop(far);
/// let mut got = Vec::new();
/// near.read_to_end(&mut got).await?;
/// assert_eq!(got, b"ab\0ab\0");
/// assert_eq!(near.handle().received().duplicated, 1);
/// # Ok(()) }
/// ```
pub struct Faulty<T> {
    inner: T,
    shared: Arc<Shared>,
    scratch: Box<[u8]>,
    read_sleep: Option<Pin<Box<Sleep>>>,
    read_cut_sleep: Option<Pin<Box<Sleep>>>,
    write_cut_sleep: Option<Pin<Box<Sleep>>>,
}

/// Bytes a [`Faulty`] reads from its inner transport at a time.
const WRAPPER_READ_LEN: usize = 16 * 1024;

impl<T> Faulty<T> {
    /// Wraps `inner`; its cut schedule starts now.
    pub fn new(inner: T, config: FaultConfig) -> Self {
        let cut_at = config
            .cuts
            .next_after(Duration::ZERO)
            .map(|after| later(Instant::now(), after));
        let shared = open_shared(&config, config.seed, cut_at);
        Self {
            inner,
            shared,
            scratch: vec![0; WRAPPER_READ_LEN].into_boxed_slice(),
            read_sleep: None,
            read_cut_sleep: None,
            write_cut_sleep: None,
        }
    }

    /// The stats (`received()`: what was read, with its faults; `sent()`:
    /// bytes written only) and the cut switch.
    pub fn handle(&self) -> FaultHandle {
        FaultHandle {
            shared: Arc::clone(&self.shared),
            outgoing: A_TO_B,
        }
    }

    /// The wrapped transport.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped transport, mutably (reading from it directly bypasses the
    /// faults).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The wrapped transport; bytes read from it but not delivered yet are
    /// lost.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: fmt::Debug> fmt::Debug for Faulty<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faulty")
            .field("inner", &self.inner)
            .field("handle", &self.handle())
            .finish_non_exhaustive()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Faulty<T> {
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
            let direction = &this.shared.directions[B_TO_A];
            let mut state = direction.lock();
            if this.shared.is_cut() {
                return Poll::Ready(Ok(()));
            }
            let now = Instant::now();
            if state.take_into(now, buf) > 0 {
                return Poll::Ready(Ok(()));
            }
            let held = state.queued + state.partial.len();
            let room = direction.config.buffer_len.saturating_sub(held);
            if !state.writer_closed && room > 0 {
                let len = room.min(this.scratch.len());
                let mut scratch = ReadBuf::new(&mut this.scratch[..len]);
                match Pin::new(&mut this.inner).poll_read(cx, &mut scratch) {
                    Poll::Ready(Ok(())) if scratch.filled().is_empty() => {
                        drop(state);
                        direction.close_writer();
                        continue;
                    }
                    Poll::Ready(Ok(())) => {
                        state.accept(scratch.filled(), now, &direction.config);
                        continue;
                    }
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Pending => {}
                }
            }
            let deadline = match state.queue.front() {
                Some(segment) => Some(segment.ready_at),
                None if state.writer_closed => return Poll::Ready(Ok(())),
                None => None,
            };
            // Woken by a cut (inner or the timers wake it otherwise).
            state.reader_waker = Some(cx.waker().clone());
            drop(state);
            if let Some(deadline) = deadline {
                if poll_sleep(&mut this.read_sleep, deadline, cx).is_ready() {
                    continue;
                }
            }
            if poll_cut(&mut this.read_cut_sleep, this.shared.cut_at, cx) {
                continue;
            }
            return Poll::Pending;
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Faulty<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.shared.is_cut() {
            return Poll::Ready(Err(broken_pipe("the line was cut")));
        }
        {
            // Registered before polling inner, so a cut is not missed.
            let mut state = this.shared.directions[A_TO_B].lock();
            state.writer_waker = Some(cx.waker().clone());
        }
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(len)) => {
                let mut state = this.shared.directions[A_TO_B].lock();
                state.stats.bytes_written += len as u64;
                Poll::Ready(Ok(len))
            }
            Poll::Pending if poll_cut(&mut this.write_cut_sleep, this.shared.cut_at, cx) => {
                Poll::Ready(Err(broken_pipe("the line was cut")))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shared.is_cut() {
            return Poll::Ready(Err(broken_pipe("the line was cut")));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The fault draws: [`SplitMix64`] streams (see the module docs).
type Rng = SplitMix64;

/// Bits before the next flipped one at bit error rate `ber`: geometric,
/// `P(gap = k) = (1 - ber)^k · ber`.
fn bit_gap(rng: &mut Rng, ber: f64) -> u64 {
    if ber.is_nan() || ber <= 0.0 {
        return u64::MAX;
    }
    if ber >= 1.0 {
        return 0;
    }
    let u = 1.0 - rng.unit(); // in (0, 1]
                              // Saturating float-to-int cast: a huge gap is "never".
    (u.ln() / (-ber).ln_1p()).floor() as u64
}

/// Both directions and the cut switch.
struct Shared {
    directions: [Direction; 2],
    cut: AtomicBool,
    cut_at: Option<Instant>,
}

impl Shared {
    fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst) || self.cut_at.is_some_and(|at| Instant::now() >= at)
    }
}

/// The fixed shape of one direction.
#[derive(Debug, Clone, Copy)]
struct DirectionConfig {
    faults: Faults,
    delimiter: Option<u8>,
    buffer_len: usize,
    /// Bytes per second, at least 1; `None` for no limit.
    rate: Option<u128>,
    fifo_len: usize,
}

/// One direction of the line.
struct Direction {
    config: DirectionConfig,
    state: Mutex<State>,
}

impl Direction {
    fn new(config: &FaultConfig, faults: Faults, seeds: &mut Rng) -> Self {
        let rate = faults.bytes_per_sec.map(|rate| u128::from(rate.max(1)));
        let fifo_len = faults
            .bytes_per_sec
            .map_or(0, |rate| (rate / 200).max(64) as usize);
        let mut flips = Rng::new(seeds.next_u64());
        let gap = bit_gap(&mut flips, faults.bit_error_rate);
        Self {
            config: DirectionConfig {
                faults,
                delimiter: config.frame_delimiter,
                buffer_len: config.buffer_len.max(1),
                rate,
                fifo_len,
            },
            state: Mutex::new(State {
                partial: Vec::new(),
                queue: VecDeque::new(),
                queued: 0,
                wire: Wire {
                    rate,
                    epoch: Instant::now(),
                    sent: 0,
                },
                drops: Rng::new(seeds.next_u64()),
                truncations: Rng::new(seeds.next_u64()),
                duplicates: Rng::new(seeds.next_u64()),
                jitter: Rng::new(seeds.next_u64()),
                flips,
                gap,
                stats: FaultStats::default(),
                silent_until: None,
                writer_closed: false,
                reader_closed: false,
                reader_waker: None,
                writer_waker: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer is done: its unfinished frame goes out, then end of stream.
    fn close_writer(&self) {
        let mut state = self.lock();
        if state.writer_closed {
            return;
        }
        if !state.partial.is_empty() {
            let frame = mem::take(&mut state.partial);
            state.frame(frame, Instant::now(), &self.config);
        }
        state.writer_closed = true;
        wake(&mut state.reader_waker);
    }
}

/// The wire's clock, as on the throttled line: while busy, the `k`-th byte
/// since `epoch` is serialized at `epoch + k / rate`.
#[derive(Debug, Clone, Copy)]
struct Wire {
    rate: Option<u128>,
    epoch: Instant,
    /// Bytes put on the wire since `epoch`.
    sent: u64,
}

impl Wire {
    fn serialized(&self, at: Instant) -> u64 {
        let Some(rate) = self.rate else {
            return self.sent;
        };
        let Some(elapsed) = at.checked_duration_since(self.epoch) else {
            return 0;
        };
        bytes_in(rate, elapsed).min(self.sent)
    }

    fn unserialized(&self, now: Instant) -> usize {
        usize::try_from(self.sent - self.serialized(now)).unwrap_or(usize::MAX)
    }

    /// When the `count`-th byte since `epoch` is serialized (`count` ≥ 1).
    fn serialized_at(&self, count: u64) -> Instant {
        match self.rate {
            None => self.epoch,
            Some(rate) => later(self.epoch, time_for(rate, count)),
        }
    }

    /// When at most `left` bytes will remain unserialized.
    fn drained_to(&self, left: usize) -> Instant {
        self.serialized_at(self.sent.saturating_sub(left as u64).max(1))
    }

    /// Puts `len` bytes on the wire at `now`; returns when the last is done.
    fn send(&mut self, now: Instant, len: usize) -> Instant {
        if self.rate.is_none() {
            return now;
        }
        if self.serialized(now) >= self.sent {
            // Idle: a new busy period starts now.
            self.epoch = now;
            self.sent = 0;
        }
        self.sent += len as u64;
        self.serialized_at(self.sent.max(1))
    }
}

/// What is on its way to the reader: one frame (or copy), readable whole
/// from `ready_at`.
struct Segment {
    data: Vec<u8>,
    pos: usize,
    ready_at: Instant,
}

/// The mutable state of one direction.
struct State {
    /// Bytes of a frame whose delimiter has not been written yet.
    partial: Vec<u8>,
    queue: VecDeque<Segment>,
    /// Unread bytes in `queue`.
    queued: usize,
    wire: Wire,
    drops: Rng,
    truncations: Rng,
    duplicates: Rng,
    jitter: Rng,
    flips: Rng,
    /// Bits to let through before the next flip.
    gap: u64,
    stats: FaultStats,
    /// Frames finished before this time vanish ([`FaultHandle::silence`]).
    silent_until: Option<Instant>,
    writer_closed: bool,
    reader_closed: bool,
    reader_waker: Option<Waker>,
    writer_waker: Option<Waker>,
}

impl State {
    /// Takes `bytes` from the writer: splits them into frames and sends each
    /// finished one through the faults.
    fn accept(&mut self, bytes: &[u8], now: Instant, config: &DirectionConfig) {
        self.stats.bytes_written += bytes.len() as u64;
        let Some(delimiter) = config.delimiter else {
            self.frame(bytes.to_vec(), now, config);
            return;
        };
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&byte| byte == delimiter) {
            let mut frame = mem::take(&mut self.partial);
            frame.extend_from_slice(&rest[..=end]);
            rest = &rest[end + 1..];
            self.frame(frame, now, config);
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() >= config.buffer_len {
            let frame = mem::take(&mut self.partial);
            self.frame(frame, now, config);
        }
    }

    /// One frame through the wire and the faults, into the reader's queue.
    fn frame(&mut self, mut frame: Vec<u8>, now: Instant, config: &DirectionConfig) {
        let faults = &config.faults;
        let on_wire = self.wire.send(now, frame.len());
        let delimited = config
            .delimiter
            .is_some_and(|delimiter| frame.last() == Some(&delimiter));
        let body = frame.len() - usize::from(delimited);
        let clean = self.stats.frames < faults.clean_frames;
        if body == 0 {
            // A lone delimiter: not a frame, only bits on the wire.
            if !clean {
                self.flip_bits(&mut frame, faults.bit_error_rate);
            }
            self.deliver(frame, later(on_wire, faults.latency));
            return;
        }
        self.stats.frames += 1;
        if self.silent_until.is_some_and(|until| now < until) {
            // Out of range: lost whole, no fault drawn (the line's faults go
            // on as before once it is back).
            self.stats.dropped += 1;
            return;
        }
        if clean {
            self.stats.passed += 1;
            self.deliver(frame, later(on_wire, faults.latency));
            return;
        }
        // One draw from each stream per frame, whatever happens to it, so one
        // kind of fault's pattern does not depend on the others.
        let dropped = self.drops.chance(faults.drop);
        let truncated = self.truncations.chance(faults.truncate);
        let duplicated = self.duplicates.chance(faults.duplicate);
        let jitter = faults.jitter.mul_f64(self.jitter.unit());
        let keep = truncated.then(|| self.truncations.below(body as u64) as usize);
        if dropped {
            self.stats.dropped += 1;
            return;
        }
        self.stats.passed += 1;
        if let Some(keep) = keep {
            frame.drain(keep..body);
            self.stats.truncated += 1;
        }
        let ready_at = later(on_wire, faults.latency.saturating_add(jitter));
        let mut flipped = 0;
        if duplicated {
            self.stats.duplicated += 1;
            let mut copy = frame.clone();
            flipped += self.flip_bits(&mut copy, faults.bit_error_rate);
            self.deliver(copy, ready_at);
        }
        flipped += self.flip_bits(&mut frame, faults.bit_error_rate);
        self.deliver(frame, ready_at);
        if flipped > 0 {
            self.stats.corrupted += 1;
        }
    }

    /// Flips the bits the error stream picks in `bytes`; returns how many.
    fn flip_bits(&mut self, bytes: &mut [u8], ber: f64) -> u64 {
        let total = bytes.len() as u64 * 8;
        let mut at = 0;
        let mut flipped = 0;
        loop {
            let left = total - at;
            if self.gap >= left {
                self.gap -= left;
                break;
            }
            at += self.gap;
            bytes[(at / 8) as usize] ^= 1 << (at % 8);
            flipped += 1;
            at += 1;
            self.gap = bit_gap(&mut self.flips, ber);
        }
        self.stats.bits_flipped += flipped;
        flipped
    }

    fn deliver(&mut self, data: Vec<u8>, ready_at: Instant) {
        if data.is_empty() {
            return;
        }
        self.queued += data.len();
        self.stats.bytes_delivered += data.len() as u64;
        self.queue.push_back(Segment {
            data,
            pos: 0,
            ready_at,
        });
    }

    /// Moves what has arrived by `now` into `buf`; returns how many bytes.
    fn take_into(&mut self, now: Instant, buf: &mut ReadBuf<'_>) -> usize {
        let mut read = 0;
        while let Some(segment) = self.queue.front_mut() {
            if segment.ready_at > now || buf.remaining() == 0 {
                break;
            }
            let len = (segment.data.len() - segment.pos).min(buf.remaining());
            buf.put_slice(&segment.data[segment.pos..segment.pos + len]);
            segment.pos += len;
            read += len;
            if segment.pos == segment.data.len() {
                self.queue.pop_front();
            }
        }
        self.queued -= read;
        self.stats.bytes_read += read as u64;
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_schedules_give_the_next_cut_strictly_after() {
        let secs = Duration::from_secs;
        assert_eq!(CutSchedule::never().next_after(secs(5)), None);
        let at = CutSchedule::at([secs(7), secs(2), secs(7)]);
        assert_eq!(at.next_after(Duration::ZERO), Some(secs(2)));
        assert_eq!(at.next_after(secs(2)), Some(secs(7)));
        assert_eq!(at.next_after(secs(7)), None);
        let every = CutSchedule::every(secs(3));
        assert_eq!(every.next_after(Duration::ZERO), Some(secs(3)));
        assert_eq!(every.next_after(secs(3)), Some(secs(6)));
        assert_eq!(every.next_after(Duration::from_millis(6500)), Some(secs(9)));
        assert_eq!(CutSchedule::every(Duration::ZERO), CutSchedule::never());
    }

    #[test]
    fn bit_gaps_are_geometric() {
        let mut rng = Rng::new(1);
        assert_eq!(bit_gap(&mut rng, 0.0), u64::MAX);
        assert_eq!(bit_gap(&mut rng, f64::NAN), u64::MAX);
        assert_eq!(bit_gap(&mut rng, 1.0), 0);
        // Mean (1 - p) / p = 999 at p = 1e-3; over 100,000 draws σ ≈ 3.2.
        let draws = 100_000;
        let mean = (0..draws).map(|_| bit_gap(&mut rng, 1e-3)).sum::<u64>() as f64 / draws as f64;
        assert!((mean - 999.0).abs() < 30.0, "{mean}");
        // P(gap = 0) = p.
        let zeros = (0..draws).filter(|_| bit_gap(&mut rng, 0.1) == 0).count();
        assert!((9_000..11_000).contains(&zeros), "{zeros}");
    }

    #[test]
    fn a_bit_error_rate_of_one_flips_every_bit() {
        let config = FaultConfig::new(1)
            .with_frame_delimiter(None)
            .with_faults(Faults::none().with_bit_error_rate(1.0));
        let direction = Direction::new(&config, config.a_to_b, &mut Rng::new(1));
        let mut state = direction.lock();
        state.accept(&[0x00, 0x0f, 0xff], Instant::now(), &direction.config);
        assert_eq!(state.queue[0].data, [0xff, 0xf0, 0x00]);
        assert_eq!(state.stats.bits_flipped, 24);
        assert_eq!(state.stats.corrupted, 1);
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_silence_swallows_frames_both_ways_then_ends() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut a, mut b) = faulty_pair(FaultConfig::new(5));
        let handle = a.handle();
        handle.silence(Duration::from_secs(30));
        a.write_all(b"lost\0").await.unwrap();
        b.write_all(b"lost too\0").await.unwrap();
        tokio::time::sleep(Duration::from_secs(31)).await;
        a.write_all(b"back\0").await.unwrap();
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"back\0");
        assert_eq!(handle.sent().dropped, 1);
        assert_eq!(handle.received().dropped, 1);
        assert!(!handle.is_cut());
    }
}
