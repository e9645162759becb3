//! [`modem_pair`]: an in-process radio path: each end's UART feeds a radio modem
//! that buffers what the UART delivers and sends it over a slower air link, with
//! latency and frame loss, as a SiK-class telemetry radio does.
//!
//! Each direction:
//!
//! ```text
//!  poll_write ─► UART TX FIFO ─► UART at uart_rate ─► modem buffer (buffer_len) ─► air at air_rate ─► + latency ─► poll_read
//!                full: Pending                         full: the byte is dropped      frame lost with p
//! ```
//!
//! * **UART.** As on the [throttled line](super::throttled): byte `k` of a busy
//!   period leaves the UART at `epoch + k / uart_rate`; a writer may have at most
//!   a TX FIFO of bytes (5 ms of data, at least 64) not yet serialized, past that
//!   `poll_write` returns `Pending`. Flushing waits until the UART has sent every
//!   written byte (`tcdrain(3)`), not until the air has.
//! * **Modem buffer, drops when full.** A byte that leaves the UART while the
//!   modem holds `buffer_len` bytes not yet sent over the air is lost: a SiK
//!   radio with RTS/CTS flow control off (the usual wiring of a telemetry link,
//!   and what a USB serial adapter without flow control gives) drops what it
//!   cannot buffer. The UART never waits for the air, so a sender writing at the
//!   UART's rate fills the buffer and then loses bytes: the sender has to pace
//!   itself to the air. [`ModemStats::overflow_bytes`] counts them,
//!   [`ModemStats::max_buffered`] is the fullest the buffer has been.
//! * **Air.** Bytes leave the buffer in order at `air_rate`, on the same exact
//!   clock; a netcore frame (bytes up to and including a `0x00`) arrives whole
//!   `latency` after its last byte was sent, or is lost with probability
//!   `frame_loss` (a radio packet lost in the air). A lone `0x00` is not a frame
//!   and is never lost; a run of more than `buffer_len` bytes without a `0x00`
//!   goes as one frame. The receiving modem's UART is not modeled (faster than
//!   the air, it adds a frame's UART time at most).
//! * **Deterministic.** Losses draw from `netcore_proto::rng::SplitMix64` seeded
//!   from [`ModemConfig::seed`], one stream per direction; every byte's fate is
//!   decided when it is written (nothing written later changes it), so the same
//!   bytes written at the same times meet the same fate.
//! * **Bounded.** A direction holds at most the modem buffer, what the air
//!   carries during `latency`, the frame being assembled and `rx_buffer_len`
//!   bytes arrived but unread; a reader that stops reading stalls the writer.
//! * **Closing** as on the throttled line: dropping an end or shutting its write
//!   half gives the peer end of stream once what was already sent has arrived
//!   and been read; writing to a dropped peer fails with `BrokenPipe`.
//!
//! Times are [`tokio::time::Instant`]s, so the line also runs under
//! `tokio::time::pause()`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use netcore_actors::transport::{modem_pair, ModemConfig};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let (mut a, mut b) = modem_pair(ModemConfig::sik(115_200, 2_400, 7));
//! let handle = a.handle();
//! a.write_all(b"hello\0").await?;
//! let mut got = [0; 6];
//! b.read_exact(&mut got).await?;
//! assert_eq!(&got, b"hello\0");
//! assert_eq!(handle.sent().frames, 1);
//! # Ok(()) }
//! ```

use super::pacing::{bytes_in, poll_sleep, time_for, wake};
use bytes::{Buf, Bytes};
use netcore_proto::rng::SplitMix64;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The shape of a radio path; both directions get the same (different loss draws).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ModemConfig {
    /// Bytes per second from the host into the modem (the UART; `0` counts as 1).
    pub uart_rate: u32,
    /// Bytes the writer may have accepted but the UART not yet sent (its TX FIFO).
    pub tx_fifo_len: usize,
    /// Bytes the modem holds waiting for the air; one more is dropped.
    pub buffer_len: usize,
    /// Bytes per second over the air (`0` counts as 1).
    pub air_rate: u32,
    /// Delay from a frame's last byte on the air to its arrival.
    pub latency: Duration,
    /// Probability that a frame is lost in the air.
    pub frame_loss: f64,
    /// Bytes that may wait at the receiving end, arrived but unread.
    pub rx_buffer_len: usize,
    /// Seed of the loss draws.
    pub seed: u64,
}

impl ModemConfig {
    /// A telemetry radio behind a UART at `baud` (8N1) sending `air_rate` bytes/s:
    /// a 16 KiB modem buffer, a TX FIFO of 5 ms of the UART (at least 64 bytes),
    /// no latency and no loss (add them with the `with_*` methods), a 4 KiB
    /// receive buffer.
    pub fn sik(baud: u32, air_rate: u32, seed: u64) -> Self {
        let uart_rate = super::bytes_per_sec_8n1(baud).max(1);
        Self {
            uart_rate,
            tx_fifo_len: ((uart_rate / 200) as usize).max(64),
            buffer_len: 16 * 1024,
            air_rate: air_rate.max(1),
            latency: Duration::ZERO,
            frame_loss: 0.0,
            rx_buffer_len: 4096,
            seed,
        }
    }

    /// The same path with `latency` over the air.
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The same path losing each frame in the air with probability `p`.
    #[must_use]
    pub fn with_frame_loss(mut self, p: f64) -> Self {
        self.frame_loss = p;
        self
    }

    /// The same path with a modem buffer of `len` bytes.
    #[must_use]
    pub fn with_buffer_len(mut self, len: usize) -> Self {
        self.buffer_len = len;
        self
    }

    /// The most bytes one direction holds at once (see the module docs).
    fn capacity(&self) -> usize {
        let on_air = u128::from(self.air_rate.max(1)) * self.latency.as_nanos() / 1_000_000_000;
        let on_air = usize::try_from(on_air).unwrap_or(usize::MAX);
        self.buffer_len
            .max(1)
            .saturating_mul(2)
            .saturating_add(on_air)
            .saturating_add(self.rx_buffer_len)
    }
}

/// What one direction of a [`modem_pair`] did with the bytes written into it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModemStats {
    /// Bytes written by the sending end.
    pub written: u64,
    /// Bytes dropped because the modem buffer was full when they left the UART.
    pub overflow_bytes: u64,
    /// The most bytes the modem buffer held waiting for the air.
    pub max_buffered: usize,
    /// Frames sent over the air (lone delimiters not counted).
    pub frames: u64,
    /// Frames lost in the air.
    pub lost: u64,
    /// Bytes the receiving end has read.
    pub read: u64,
}

/// Opens a radio path and returns its two ends: what one end writes, the other
/// reads, through the UART, modem buffer and air of [`ModemConfig`].
///
/// Needs a tokio runtime with the time driver when the ends are used.
pub fn modem_pair(config: ModemConfig) -> (ModemStream, ModemStream) {
    let a_to_b = Arc::new(Direction::new(config, config.seed));
    let b_to_a = Arc::new(Direction::new(
        config,
        config.seed ^ 0x6d6f_6465_6d5f_6261, // "modem_ba": a stream of its own
    ));
    let a = ModemStream::new(config, Arc::clone(&a_to_b), Arc::clone(&b_to_a));
    let b = ModemStream::new(config, b_to_a, a_to_b);
    (a, b)
}

/// The statistics of one end of a [`modem_pair`], readable after the end was
/// moved away. Cheap to clone.
#[derive(Clone)]
pub struct ModemHandle {
    outgoing: Arc<Direction>,
    incoming: Arc<Direction>,
}

impl ModemHandle {
    /// What happened to the bytes this end wrote.
    pub fn sent(&self) -> ModemStats {
        self.outgoing.lock().stats
    }

    /// What happened to the bytes the peer wrote to this end.
    pub fn received(&self) -> ModemStats {
        self.incoming.lock().stats
    }
}

impl fmt::Debug for ModemHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModemHandle")
            .field("sent", &self.sent())
            .field("received", &self.received())
            .finish()
    }
}

/// One end of a [`modem_pair`]; a [`Transport`](super::Transport).
pub struct ModemStream {
    config: ModemConfig,
    outgoing: Arc<Direction>,
    incoming: Arc<Direction>,
    read_sleep: Option<Pin<Box<Sleep>>>,
    write_sleep: Option<Pin<Box<Sleep>>>,
}

impl ModemStream {
    fn new(config: ModemConfig, outgoing: Arc<Direction>, incoming: Arc<Direction>) -> Self {
        Self {
            config,
            outgoing,
            incoming,
            read_sleep: None,
            write_sleep: None,
        }
    }

    /// The configuration the path was opened with.
    pub fn config(&self) -> ModemConfig {
        self.config
    }

    /// This end's statistics.
    pub fn handle(&self) -> ModemHandle {
        ModemHandle {
            outgoing: Arc::clone(&self.outgoing),
            incoming: Arc::clone(&self.incoming),
        }
    }
}

impl fmt::Debug for ModemStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModemStream")
            .field("config", &self.config)
            .field("handle", &self.handle())
            .finish_non_exhaustive()
    }
}

impl Drop for ModemStream {
    fn drop(&mut self) {
        {
            let mut line = self.outgoing.lock();
            line.close_writer();
            wake(&mut line.reader_waker);
        }
        let mut line = self.incoming.lock();
        line.reader_closed = true;
        line.arrivals = VecDeque::new();
        line.held = 0;
        wake(&mut line.writer_waker);
    }
}

impl AsyncRead for ModemStream {
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
                let mut line = this.incoming.lock();
                let now = Instant::now();
                let mut read = 0;
                while buf.remaining() > 0 {
                    let Some((at, frame)) = line.arrivals.front_mut() else {
                        break;
                    };
                    if *at > now {
                        break;
                    }
                    let len = frame.len().min(buf.remaining());
                    buf.put_slice(&frame[..len]);
                    frame.advance(len);
                    if frame.is_empty() {
                        line.arrivals.pop_front();
                    }
                    read += len;
                }
                if read > 0 {
                    line.held -= read;
                    line.stats.read += read as u64;
                    wake(&mut line.writer_waker);
                    return Poll::Ready(Ok(()));
                }
                match line.arrivals.front() {
                    Some((at, _)) => *at,
                    None if line.writer_closed => return Poll::Ready(Ok(())),
                    None => {
                        line.reader_waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
            };
            if poll_sleep(&mut this.read_sleep, deadline, cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl AsyncWrite for ModemStream {
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
                        "modem line: the reading end was dropped",
                    )));
                }
                if line.writer_closed {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "modem line: write after shutdown",
                    )));
                }
                if line.held >= direction.capacity {
                    line.writer_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                let now = Instant::now();
                let fifo_room = direction
                    .tx_fifo_len
                    .saturating_sub(line.uart_unsent(now, direction.uart_rate));
                if fifo_room > 0 {
                    let len = buf.len().min(fifo_room);
                    line.push(&buf[..len], now, direction);
                    wake(&mut line.reader_waker);
                    return Poll::Ready(Ok(len));
                }
                line.uart_drained_to(direction.tx_fifo_len / 2, direction.uart_rate)
            };
            if poll_sleep(&mut this.write_sleep, deadline, cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    /// Waits until the UART has sent every byte written so far (`tcdrain(3)`).
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            let deadline = {
                let line = this.outgoing.lock();
                if line.reader_closed {
                    return Poll::Ready(Ok(()));
                }
                let now = Instant::now();
                if line.uart_unsent(now, this.outgoing.uart_rate) == 0 {
                    return Poll::Ready(Ok(()));
                }
                line.uart_drained_to(0, this.outgoing.uart_rate)
            };
            if poll_sleep(&mut this.write_sleep, deadline, cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut line = self.outgoing.lock();
        line.close_writer();
        wake(&mut line.reader_waker);
        Poll::Ready(Ok(()))
    }
}

/// One direction of the path: its settings and its state.
struct Direction {
    line: Mutex<Line>,
    uart_rate: u128,
    air_rate: u128,
    tx_fifo_len: usize,
    buffer_len: usize,
    latency: Duration,
    frame_loss: f64,
    capacity: usize,
}

impl Direction {
    fn new(config: ModemConfig, seed: u64) -> Self {
        Self {
            line: Mutex::new(Line {
                uart: Clock::idle(),
                air: Clock::idle(),
                on_air: VecDeque::new(),
                frame: Vec::new(),
                arrivals: VecDeque::new(),
                held: 0,
                rng: SplitMix64::new(seed),
                stats: ModemStats::default(),
                writer_closed: false,
                reader_closed: false,
                reader_waker: None,
                writer_waker: None,
            }),
            uart_rate: u128::from(config.uart_rate.max(1)),
            air_rate: u128::from(config.air_rate.max(1)),
            tx_fifo_len: config.tx_fifo_len.max(1),
            buffer_len: config.buffer_len.max(1),
            latency: config.latency,
            frame_loss: config.frame_loss,
            capacity: config.capacity(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A byte clock of a busy period: byte `k` (from 1) is done at
/// `epoch + k / rate`, exactly, so long runs do not drift.
#[derive(Debug, Clone, Copy)]
struct Clock {
    epoch: Option<Instant>,
    count: u64,
}

impl Clock {
    fn idle() -> Self {
        Self {
            epoch: None,
            count: 0,
        }
    }

    /// When the last byte of the busy period is done (`None`: never busy).
    fn end(&self, rate: u128) -> Option<Instant> {
        self.epoch.map(|epoch| epoch + time_for(rate, self.count))
    }

    /// Queues one byte that is ready at `at`; returns when it is done.
    fn next_byte(&mut self, at: Instant, rate: u128) -> Instant {
        match self.end(rate) {
            Some(end) if end > at => {}
            _ => {
                self.epoch = Some(at);
                self.count = 0;
            }
        }
        self.count += 1;
        self.end(rate).unwrap_or(at)
    }
}

/// The mutable state of one direction.
struct Line {
    uart: Clock,
    air: Clock,
    /// When each byte in the modem buffer is done on the air, oldest first.
    on_air: VecDeque<Instant>,
    /// The frame being sent over the air: its bytes so far.
    frame: Vec<u8>,
    /// Frames that arrive (or arrived, unread), with their arrival time.
    arrivals: VecDeque<(Instant, Bytes)>,
    /// Bytes in `arrivals` and `frame`.
    held: usize,
    rng: SplitMix64,
    stats: ModemStats,
    writer_closed: bool,
    reader_closed: bool,
    reader_waker: Option<Waker>,
    writer_waker: Option<Waker>,
}

impl Line {
    /// Bytes written but not yet sent by the UART at `now`.
    fn uart_unsent(&self, now: Instant, rate: u128) -> usize {
        let Some(epoch) = self.uart.epoch else {
            return 0;
        };
        let sent = bytes_in(rate, now.saturating_duration_since(epoch)).min(self.uart.count);
        usize::try_from(self.uart.count - sent).unwrap_or(usize::MAX)
    }

    /// When at most `left` bytes remain unsent by the UART.
    fn uart_drained_to(&self, left: usize, rate: u128) -> Instant {
        match self.uart.epoch {
            Some(epoch) => {
                let count = self.uart.count.saturating_sub(left as u64).max(1);
                epoch + time_for(rate, count)
            }
            None => Instant::now(),
        }
    }

    /// Decides the fate of `bytes` written at `now`: when each leaves the UART,
    /// whether the modem has room for it, when it is sent over the air, and which
    /// frame it arrives in.
    fn push(&mut self, bytes: &[u8], now: Instant, direction: &Direction) {
        self.stats.written += bytes.len() as u64;
        for &byte in bytes {
            let at_modem = self.uart.next_byte(now, direction.uart_rate);
            while self.on_air.front().is_some_and(|done| *done <= at_modem) {
                self.on_air.pop_front();
            }
            if self.on_air.len() >= direction.buffer_len {
                self.stats.overflow_bytes += 1;
                continue;
            }
            let done = self.air.next_byte(at_modem, direction.air_rate);
            self.on_air.push_back(done);
            self.stats.max_buffered = self.stats.max_buffered.max(self.on_air.len());
            self.frame.push(byte);
            self.held += 1;
            if byte == 0x00 || self.frame.len() > direction.buffer_len {
                self.end_frame(done + direction.latency, direction.frame_loss);
            }
        }
    }

    /// The frame being assembled ends; it arrives at `at` unless the air loses it.
    fn end_frame(&mut self, at: Instant, frame_loss: f64) {
        let frame = std::mem::take(&mut self.frame);
        if frame.is_empty() {
            return;
        }
        if frame != [0x00] {
            self.stats.frames += 1;
            if self.rng.chance(frame_loss) {
                self.stats.lost += 1;
                self.held -= frame.len();
                return;
            }
        }
        self.arrivals.push_back((at, Bytes::from(frame)));
    }

    /// The writer is gone: an unfinished frame goes out as it is.
    fn close_writer(&mut self) {
        if self.writer_closed {
            return;
        }
        self.writer_closed = true;
        if !self.frame.is_empty() {
            let at = self.on_air.back().copied().unwrap_or_else(Instant::now);
            // No loss draw for a frame cut by the close: it is what was sent.
            let frame = std::mem::take(&mut self.frame);
            self.arrivals.push_back((at, Bytes::from(frame)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(len: usize, fill: u8) -> Vec<u8> {
        let mut frame = vec![fill; len - 1];
        frame.push(0x00);
        frame
    }

    /// Frames arrive at the air's rate, plus the latency, whatever the UART's.
    #[tokio::test(start_paused = true)]
    async fn frames_cross_at_the_air_rate_after_the_latency() {
        let config = ModemConfig::sik(115_200, 1_000, 1).with_latency(Duration::from_millis(20));
        let (mut a, mut b) = modem_pair(config);
        let began = Instant::now();
        for i in 0..10u8 {
            a.write_all(&frame(100, i + 1)).await.unwrap();
        }
        // The UART took 1000 bytes in ~87 ms, far sooner than the air sends them.
        assert!(began.elapsed() < Duration::from_millis(100));
        let mut got = vec![0; 1000];
        b.read_exact(&mut got).await.unwrap();
        // 1000 bytes at 1000 B/s: 1 s, plus the first byte's UART time and 20 ms.
        let took = began.elapsed();
        assert!(took >= Duration::from_millis(1020), "{took:?}");
        assert!(took <= Duration::from_millis(1040), "{took:?}");
        let expected: Vec<u8> = (0..10u8).flat_map(|i| frame(100, i + 1)).collect();
        assert_eq!(got, expected);
        let stats = a.handle().sent();
        assert_eq!((stats.frames, stats.lost, stats.overflow_bytes), (10, 0, 0));
        assert!(stats.max_buffered > 800, "{stats:?}");
    }

    /// A sender faster than the air fills the buffer, then loses bytes; the
    /// frames hit arrive damaged (never longer than sent) or not at all.
    #[tokio::test(start_paused = true)]
    async fn a_full_buffer_drops_bytes() {
        let config = ModemConfig::sik(115_200, 1_000, 2).with_buffer_len(500);
        let (mut a, mut b) = modem_pair(config);
        let handle = a.handle();
        for i in 0..30u8 {
            a.write_all(&frame(100, i + 1)).await.unwrap();
        }
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        let stats = handle.sent();
        assert_eq!(stats.written, 3000);
        assert!(stats.overflow_bytes > 2000, "{stats:?}");
        assert_eq!(stats.max_buffered, 500);
        assert_eq!(got.len() as u64, 3000 - stats.overflow_bytes);
        assert_eq!(stats.read, got.len() as u64);
    }

    /// The loss rate is what was asked, the losses replay from the seed, and
    /// frames that arrive are whole.
    #[tokio::test(start_paused = true)]
    async fn frame_loss_follows_the_seed() {
        async fn run(seed: u64) -> (ModemStats, Vec<u8>) {
            let config = ModemConfig::sik(115_200, 100_000, seed).with_frame_loss(0.1);
            let (mut a, mut b) = modem_pair(config);
            let handle = a.handle();
            let writer = tokio::spawn(async move {
                for i in 0..2000u32 {
                    a.write_all(&frame(20, (i % 250) as u8 + 1)).await.unwrap();
                }
            });
            let mut got = Vec::new();
            let reader = tokio::spawn(async move {
                b.read_to_end(&mut got).await.unwrap();
                got
            });
            writer.await.unwrap();
            let got = reader.await.unwrap();
            (handle.sent(), got)
        }
        let (stats, got) = run(9).await;
        assert_eq!(stats.frames, 2000);
        assert!((150..=250).contains(&stats.lost), "{stats:?}");
        assert_eq!(got.len() as u64, 20 * (2000 - stats.lost));
        for frame in got.chunks(20) {
            assert!(frame[..19].iter().all(|b| *b == frame[0]) && frame[19] == 0);
        }
        let (again, got_again) = run(9).await;
        assert_eq!((again, got_again), (stats, got));
        let (other, _) = run(10).await;
        assert_ne!(other.lost, 0);
    }

    /// Flushing waits for the UART only; a reader that stops reading stalls the
    /// writer instead of growing a buffer; a dropped reader breaks the pipe.
    #[tokio::test(start_paused = true)]
    async fn flush_is_the_uarts_and_memory_is_bounded() {
        let config = ModemConfig::sik(115_200, 100_000, 3);
        let (mut a, b) = modem_pair(config);
        let began = Instant::now();
        a.write_all(&frame(1152, 1)).await.unwrap();
        a.flush().await.unwrap();
        let flushed = began.elapsed();
        assert!(flushed >= Duration::from_millis(99), "{flushed:?}");
        assert!(flushed <= Duration::from_millis(102), "{flushed:?}");
        let stuck = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                a.write_all(&frame(100, 2)).await.unwrap();
            }
        })
        .await;
        assert!(stuck.is_err(), "the writer never stalled");
        assert!(b.incoming.lock().held <= config.capacity() + 100);
        drop(b);
        let err = a.write_all(b"x\0").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
