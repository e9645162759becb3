//! [`throttled_pair`]: an in-process duplex line with a byte rate and a
//! latency, standing in for a UART or radio link in tests and demos.
//!
//! Each direction models a transmitter and a wire:
//!
//! ```text
//!  poll_write ──> TX FIFO (tx_fifo_len) ──> wire at bytes_per_sec, + latency ──> RX buffer ──> poll_read
//!                 full: Pending              byte k done at epoch + k / rate        (rx_buffer_len)
//! ```
//!
//! * **Timing from a virtual line clock.** While the line is busy, byte `k` of
//!   the busy period finishes at `epoch + k / bytes_per_sec` (computed in whole
//!   nanoseconds from the period's start, never by adding up per-write
//!   sleeps), and is readable `latency` later. Tokio's timer fires on 1 ms
//!   ticks, so a wake-up may come late, but late wake-ups never shift later
//!   bytes: errors do not accumulate and long-run throughput is the configured
//!   rate. A write to an idle line starts a new period at that instant.
//! * **Bounded, like hardware.** A writer may have at most `tx_fifo_len` bytes
//!   not yet serialized; past that `poll_write` returns `Poll::Pending` and the
//!   writer is woken when the FIFO has drained to half (a UART's TX-threshold
//!   interrupt). The direction holds at most [`ThrottleConfig::capacity`] bytes
//!   in all (FIFO + on the wire + unread), so a reader that stops reading
//!   stalls the writer instead of growing a buffer.
//! * **Reads as a UART gives them**: whatever has arrived, no earlier than its
//!   serialization time plus latency.
//! * **Unthrottled mode** (`bytes_per_sec: None`): an in-memory duplex whose
//!   bytes arrive after `latency`, bounded by `capacity()`.
//! * **Closing**: dropping an end or shutting its write half gives the peer
//!   end of stream once the bytes already written have been read; writing to a
//!   dropped peer fails with `BrokenPipe`.
//! * **Flushing** waits until every written byte has been serialized, like
//!   `tcdrain(3)`.
//!
//! Times are [`tokio::time::Instant`]s, so the line also runs under
//! `tokio::time::pause()` for deterministic tests.

use super::pacing::{bytes_in, poll_sleep, time_for, wake, NANOS_PER_SEC};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The shape of a throttled line; both directions get the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Bytes per second each way, `None` for no limit. `Some(0)` counts as 1.
    pub bytes_per_sec: Option<u32>,
    /// Propagation delay added to every byte's arrival.
    pub latency: Duration,
    /// Bytes a writer may have accepted but not yet serialized (the UART's TX
    /// FIFO). Ignored without a rate.
    pub tx_fifo_len: usize,
    /// Bytes that may wait at the receiving end, arrived but unread.
    pub rx_buffer_len: usize,
}

impl ThrottleConfig {
    /// No rate limit and no latency: an in-memory duplex holding at most
    /// 4 KiB each way.
    pub fn unthrottled() -> Self {
        Self {
            bytes_per_sec: None,
            latency: Duration::ZERO,
            tx_fifo_len: 0,
            rx_buffer_len: 4096,
        }
    }

    /// A line moving `bytes_per_sec` bytes per second each way, with a TX FIFO
    /// of 5 ms of data but at least 64 bytes (a 16550-class UART has 16–64;
    /// the floor keeps a writer woken at half-FIFO from idling the line on a
    /// late 1 ms timer tick) and a 4 KiB receive buffer (Linux's tty buffer).
    pub fn rate(bytes_per_sec: u32) -> Self {
        let five_ms = (u64::from(bytes_per_sec) / 200) as usize;
        Self {
            bytes_per_sec: Some(bytes_per_sec),
            latency: Duration::ZERO,
            tx_fifo_len: five_ms.max(64),
            rx_buffer_len: 4096,
        }
    }

    /// A serial line at `baud` bits per second with 8N1 framing:
    /// [`rate`](Self::rate)`(baud / 10)`, so `115_200` baud moves 11 520 B/s.
    pub fn serial_8n1(baud: u32) -> Self {
        Self::rate(super::bytes_per_sec_8n1(baud))
    }

    /// The same line with `latency` added to every byte's arrival.
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The same line with a TX FIFO of `len` bytes.
    #[must_use]
    pub fn with_tx_fifo_len(mut self, len: usize) -> Self {
        self.tx_fifo_len = len;
        self
    }

    /// The same line with a receive buffer of `len` bytes.
    #[must_use]
    pub fn with_rx_buffer_len(mut self, len: usize) -> Self {
        self.rx_buffer_len = len;
        self
    }

    /// The most bytes one direction holds at once: TX FIFO, plus the bytes a
    /// full rate keeps on the wire during `latency`, plus the receive buffer.
    /// Never less than 1.
    pub fn capacity(&self) -> usize {
        let (fifo, on_wire) = match self.bytes_per_sec {
            None => (0, 0),
            Some(rate) => {
                let on_wire =
                    (u128::from(rate.max(1)) * self.latency.as_nanos()).div_ceil(NANOS_PER_SEC);
                (
                    self.tx_fifo_len.max(1),
                    usize::try_from(on_wire).unwrap_or(usize::MAX),
                )
            }
        };
        fifo.saturating_add(on_wire)
            .saturating_add(self.rx_buffer_len)
            .max(1)
    }
}

impl Default for ThrottleConfig {
    /// [`ThrottleConfig::unthrottled`].
    fn default() -> Self {
        Self::unthrottled()
    }
}

/// Opens a throttled duplex line and returns its two ends: what one end
/// writes, the other reads, at the configured rate and latency.
///
/// Needs a tokio runtime with the time driver when the ends are used.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// use netcore_actors::transport::{throttled_pair, ThrottleConfig};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let (mut a, mut b) = throttled_pair(ThrottleConfig::serial_8n1(115_200));
/// a.write_all(b"hello").await?;
/// let mut got = [0; 5];
/// b.read_exact(&mut got).await?;
/// assert_eq!(&got, b"hello");
/// assert_eq!(b.counters().read(), 5);
/// # Ok(()) }
/// ```
pub fn throttled_pair(config: ThrottleConfig) -> (ThrottledStream, ThrottledStream) {
    let a_to_b = Arc::new(Direction::new(config));
    let b_to_a = Arc::new(Direction::new(config));
    let a = ThrottledStream::new(config, Arc::clone(&a_to_b), Arc::clone(&b_to_a));
    let b = ThrottledStream::new(config, b_to_a, a_to_b);
    (a, b)
}

/// Byte counts of one end of a throttled line, readable after the end has
/// been moved away (into a boxed transport, say). Cheap to clone.
#[derive(Clone)]
pub struct LineCounters {
    outgoing: Arc<Direction>,
    incoming: Arc<Direction>,
}

impl LineCounters {
    /// Bytes this end's writes have handed to the line.
    pub fn written(&self) -> u64 {
        self.outgoing.written.load(Ordering::SeqCst)
    }

    /// Bytes this end has read.
    pub fn read(&self) -> u64 {
        self.incoming.read.load(Ordering::SeqCst)
    }

    /// Bytes this end wrote that the peer has not read yet (in the FIFO, on
    /// the wire or in the peer's receive buffer).
    pub fn unread_outgoing(&self) -> u64 {
        let read = self.outgoing.read.load(Ordering::SeqCst);
        self.written().saturating_sub(read)
    }
}

impl fmt::Debug for LineCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LineCounters")
            .field("written", &self.written())
            .field("read", &self.read())
            .finish()
    }
}

/// One end of a [`throttled_pair`]; a [`Transport`](super::Transport).
pub struct ThrottledStream {
    config: ThrottleConfig,
    outgoing: Arc<Direction>,
    incoming: Arc<Direction>,
    read_sleep: Option<Pin<Box<Sleep>>>,
    write_sleep: Option<Pin<Box<Sleep>>>,
}

impl ThrottledStream {
    fn new(config: ThrottleConfig, outgoing: Arc<Direction>, incoming: Arc<Direction>) -> Self {
        Self {
            config,
            outgoing,
            incoming,
            read_sleep: None,
            write_sleep: None,
        }
    }

    /// The configuration the line was opened with.
    pub fn config(&self) -> ThrottleConfig {
        self.config
    }

    /// This end's byte counts.
    pub fn counters(&self) -> LineCounters {
        LineCounters {
            outgoing: Arc::clone(&self.outgoing),
            incoming: Arc::clone(&self.incoming),
        }
    }
}

impl fmt::Debug for ThrottledStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottledStream")
            .field("config", &self.config)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl Drop for ThrottledStream {
    fn drop(&mut self) {
        {
            let mut line = self.outgoing.lock();
            line.writer_closed = true;
            wake(&mut line.reader_waker);
        }
        let mut line = self.incoming.lock();
        line.reader_closed = true;
        line.data = VecDeque::new();
        wake(&mut line.writer_waker);
    }
}

impl AsyncRead for ThrottledStream {
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
                let direction = &this.incoming;
                let mut line = direction.lock();
                let now = Instant::now();
                let arrived = line.arrived_end(now, direction.timing) - line.read_seq;
                if arrived > 0 {
                    let len = usize::try_from(arrived)
                        .unwrap_or(usize::MAX)
                        .min(buf.remaining());
                    line.take_into(len, buf);
                    direction.read.fetch_add(len as u64, Ordering::SeqCst);
                    wake(&mut line.writer_waker);
                    return Poll::Ready(Ok(()));
                }
                if line.data.is_empty() {
                    if line.writer_closed {
                        return Poll::Ready(Ok(()));
                    }
                    line.reader_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                line.next_arrival(direction.timing)
            };
            if poll_sleep(&mut this.read_sleep, deadline, cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl AsyncWrite for ThrottledStream {
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
                let direction = &this.outgoing;
                let mut line = direction.lock();
                if line.reader_closed {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "throttled line: the reading end was dropped",
                    )));
                }
                if line.writer_closed {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "throttled line: write after shutdown",
                    )));
                }
                let room = direction.capacity.saturating_sub(line.data.len());
                if room == 0 {
                    line.writer_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                let now = Instant::now();
                let fifo_room = match direction.timing.rate {
                    None => usize::MAX,
                    Some(_) => {
                        let unsent = line.unserialized(now, direction.timing);
                        direction.tx_fifo_len.saturating_sub(unsent)
                    }
                };
                if fifo_room > 0 {
                    let len = buf.len().min(room).min(fifo_room);
                    line.push(&buf[..len], now, direction.timing);
                    direction.written.fetch_add(len as u64, Ordering::SeqCst);
                    wake(&mut line.reader_waker);
                    return Poll::Ready(Ok(len));
                }
                line.drained_to(direction.tx_fifo_len / 2, direction.timing)
            };
            if poll_sleep(&mut this.write_sleep, deadline, cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Waits until every byte written so far has been serialized onto the
    /// line (`tcdrain(3)`); it may still be in flight for `latency`.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let deadline = {
                let direction = &this.outgoing;
                let line = direction.lock();
                if line.reader_closed || direction.timing.rate.is_none() {
                    return Poll::Ready(Ok(()));
                }
                if line.unserialized(Instant::now(), direction.timing) == 0 {
                    return Poll::Ready(Ok(()));
                }
                line.drained_to(0, direction.timing)
            };
            if poll_sleep(&mut this.write_sleep, deadline, cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Closes this end's write half: the peer reads end of stream after the
    /// bytes already written, which still arrive on time.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut line = self.outgoing.lock();
        line.writer_closed = true;
        wake(&mut line.reader_waker);
        Poll::Ready(Ok(()))
    }
}

/// Rate and latency of one direction, the inputs of the line clock.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Bytes per second, at least 1; `None` for no limit.
    rate: Option<u128>,
    latency: Duration,
}

impl Timing {
    /// Bytes of a period started at `epoch` serialized by `at`, at most `len`.
    fn serialized(&self, epoch: Instant, len: u64, at: Instant) -> u64 {
        let Some(elapsed) = at.checked_duration_since(epoch) else {
            return 0;
        };
        match self.rate {
            None => len,
            Some(rate) => bytes_in(rate, elapsed).min(len),
        }
    }

    /// When the `count`-th byte of a period started at `epoch` has been
    /// serialized (`count` ≥ 1).
    fn serialized_at(&self, epoch: Instant, count: u64) -> Instant {
        match self.rate {
            None => epoch,
            Some(rate) => epoch + time_for(rate, count),
        }
    }
}

/// A busy period of the line: bytes `first..end` sent back to back from `epoch`.
#[derive(Debug, Clone, Copy)]
struct Period {
    epoch: Instant,
    first: u64,
    end: u64,
}

impl Period {
    fn len(&self) -> u64 {
        self.end - self.first
    }
}

/// One direction of the line.
struct Direction {
    line: Mutex<Line>,
    timing: Timing,
    tx_fifo_len: usize,
    capacity: usize,
    written: AtomicU64,
    read: AtomicU64,
}

impl Direction {
    fn new(config: ThrottleConfig) -> Self {
        Self {
            line: Mutex::new(Line {
                data: VecDeque::new(),
                read_seq: 0,
                periods: VecDeque::new(),
                writer_closed: false,
                reader_closed: false,
                reader_waker: None,
                writer_waker: None,
            }),
            timing: Timing {
                rate: config.bytes_per_sec.map(|rate| u128::from(rate.max(1))),
                latency: config.latency,
            },
            tx_fifo_len: config.tx_fifo_len.max(1),
            capacity: config.capacity(),
            written: AtomicU64::new(0),
            read: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The mutable state of one direction. Byte `seq` (counted from the first
/// byte ever written) is `data[seq - read_seq]` until read.
struct Line {
    /// Written, not yet read.
    data: VecDeque<u8>,
    /// Sequence number of `data[0]`.
    read_seq: u64,
    /// Busy periods covering `read_seq..read_seq + data.len()`, oldest first.
    periods: VecDeque<Period>,
    writer_closed: bool,
    reader_closed: bool,
    reader_waker: Option<Waker>,
    writer_waker: Option<Waker>,
}

impl Line {
    fn written_seq(&self) -> u64 {
        self.read_seq + self.data.len() as u64
    }

    /// Bytes written but not yet serialized at `now`. Only the last period
    /// can be unfinished: a new one starts only on an idle line.
    fn unserialized(&self, now: Instant, timing: Timing) -> usize {
        self.periods.back().map_or(0, |last| {
            let left = last.len() - timing.serialized(last.epoch, last.len(), now);
            usize::try_from(left).unwrap_or(usize::MAX)
        })
    }

    /// When at most `left` bytes will remain unserialized (only called while
    /// more than that remain).
    fn drained_to(&self, left: usize, timing: Timing) -> Instant {
        match self.periods.back() {
            Some(last) => {
                let count = last.len().saturating_sub(left as u64).max(1);
                timing.serialized_at(last.epoch, count)
            }
            None => Instant::now(),
        }
    }

    /// Appends `bytes` written at `now` to the line.
    fn push(&mut self, bytes: &[u8], now: Instant, timing: Timing) {
        let first = self.written_seq();
        let end = first + bytes.len() as u64;
        self.data.extend(bytes);
        match self.periods.back_mut() {
            // Busy: the new bytes go out right after the last one, with no gap.
            Some(last)
                if last.epoch == now
                    || timing.serialized(last.epoch, last.len(), now) < last.len() =>
            {
                last.end = end;
            }
            _ => self.periods.push_back(Period {
                epoch: now,
                first,
                end,
            }),
        }
    }

    /// Sequence number one past the last byte readable at `now`.
    fn arrived_end(&self, now: Instant, timing: Timing) -> u64 {
        let Some(sent_by) = now.checked_sub(timing.latency) else {
            return self.read_seq;
        };
        let mut end = self.read_seq;
        for period in &self.periods {
            let done = timing.serialized(period.epoch, period.len(), sent_by);
            end = end.max(period.first + done);
            if done < period.len() {
                break;
            }
        }
        end
    }

    /// When the next unread byte arrives (only called while one is unread).
    fn next_arrival(&self, timing: Timing) -> Instant {
        let seq = self.read_seq;
        let sent = self
            .periods
            .iter()
            .find(|period| period.first <= seq && seq < period.end)
            .map_or_else(Instant::now, |period| {
                timing.serialized_at(period.epoch, seq - period.first + 1)
            });
        sent + timing.latency
    }

    /// Moves the next `len` bytes into `buf` and forgets finished periods.
    fn take_into(&mut self, len: usize, buf: &mut ReadBuf<'_>) {
        let (front, back) = self.data.as_slices();
        let from_front = len.min(front.len());
        buf.put_slice(&front[..from_front]);
        buf.put_slice(&back[..len - from_front]);
        self.data.drain(..len);
        self.read_seq += len as u64;
        while self
            .periods
            .front()
            .is_some_and(|period| period.end <= self.read_seq)
        {
            self.periods.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_clock_does_not_drift() {
        let timing = Timing {
            rate: Some(11_520),
            latency: Duration::ZERO,
        };
        let epoch = Instant::now();
        // One million bytes later, the clock is still exact to the nanosecond.
        let at = timing.serialized_at(epoch, 11_520 * 100);
        assert_eq!(at - epoch, Duration::from_secs(100));
        assert_eq!(timing.serialized(epoch, u64::MAX, at), 11_520 * 100);
        let just_before = at - Duration::from_nanos(1);
        assert_eq!(
            timing.serialized(epoch, u64::MAX, just_before),
            11_520 * 100 - 1
        );
    }

    #[test]
    fn capacity_counts_fifo_wire_and_rx_buffer() {
        let config = ThrottleConfig::rate(10_000)
            .with_tx_fifo_len(100)
            .with_rx_buffer_len(1000)
            .with_latency(Duration::from_millis(20));
        assert_eq!(config.capacity(), 100 + 200 + 1000);
        assert_eq!(ThrottleConfig::unthrottled().capacity(), 4096);
        assert_eq!(ThrottleConfig::serial_8n1(115_200).tx_fifo_len, 64);
        assert_eq!(ThrottleConfig::rate(1_000_000).tx_fifo_len, 5000);
    }
}
