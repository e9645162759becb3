//! Byte transports end to end: pipes over blocking functions, the throttled
//! line double, pseudo-terminal pairs, TCP and Unix sockets.
#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    reason = "test helpers outside #[test] fns, which clippy.toml's test allowances miss"
)]

use std::io;
use std::time::Duration;

use netcore_proto::rng::SplitMix64;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Every byte value, in order, `rounds` times.
fn all_byte_values(rounds: usize) -> Vec<u8> {
    (0..rounds).flat_map(|_| 0..=255u8).collect()
}

/// Writes `data` in pieces of random size (1..=max_piece), then shuts down.
async fn write_in_pieces<W: AsyncWrite + Unpin>(
    mut writer: W,
    data: &[u8],
    seed: u64,
    max_piece: usize,
) -> io::Result<W> {
    let mut rng = SplitMix64::new(seed);
    let mut rest = data;
    while !rest.is_empty() {
        let len = (1 + (rng.below(max_piece as u64) as usize)).min(rest.len());
        writer.write_all(&rest[..len]).await?;
        rest = &rest[len..];
    }
    writer.flush().await?;
    Ok(writer)
}

/// Reads exactly `len` bytes with reads of random size (1..=max_piece).
async fn read_in_pieces<R: AsyncRead + Unpin>(
    mut reader: R,
    len: usize,
    seed: u64,
    max_piece: usize,
) -> io::Result<(R, Vec<u8>)> {
    let mut rng = SplitMix64::new(seed);
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0; max_piece];
    while got.len() < len {
        let want = (1 + (rng.below(max_piece as u64) as usize)).min(len - got.len());
        let n = reader.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok((reader, got))
}

/// Asserts two byte strings are equal, reporting the first difference
/// instead of dumping a mebibyte.
fn assert_same_bytes(got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "length differs");
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "first difference at byte {at}: got {:#04x}, want {:#04x}",
            got[at], want[at]
        );
    }
}

#[cfg(unix)]
mod pipe {
    use super::*;
    use netcore_actors::transport::{Pipe, PipeConfig};
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc};
    use std::task::{Context, Poll, Waker};

    #[tokio::test]
    async fn one_mebibyte_each_way_over_a_unix_socket_pair() {
        let (left, right) = UnixStream::pair().unwrap();
        let a = Pipe::from_io(left.try_clone().unwrap(), left).unwrap();
        let b = Pipe::from_io(right.try_clone().unwrap(), right).unwrap();
        let (a_read, a_write) = tokio::io::split(a);
        let (b_read, b_write) = tokio::io::split(b);
        let a_to_b = SplitMix64::new(1).bytes(1 << 20);
        let b_to_a = SplitMix64::new(2).bytes(1 << 20);

        let (wa, wb, at_b, at_a) = tokio::join!(
            write_in_pieces(a_write, &a_to_b, 3, 10_000),
            write_in_pieces(b_write, &b_to_a, 4, 10_000),
            read_in_pieces(b_read, a_to_b.len(), 5, 10_000),
            read_in_pieces(a_read, b_to_a.len(), 6, 10_000),
        );
        wa.unwrap();
        wb.unwrap();
        assert_same_bytes(&at_b.unwrap().1, &a_to_b);
        assert_same_bytes(&at_a.unwrap().1, &b_to_a);
    }

    /// A `send` that blocks until the test hands it a permit, recording what it sent.
    fn gated_send(
        permits: mpsc::Receiver<()>,
        sent: Arc<std::sync::Mutex<Vec<u8>>>,
    ) -> impl FnMut(&[u8]) -> io::Result<()> + Send + 'static {
        move |bytes| {
            permits.recv().map_err(|_| io::ErrorKind::BrokenPipe)?;
            sent.lock().unwrap().extend_from_slice(bytes);
            Ok(())
        }
    }

    fn never_recv() -> impl FnMut(usize) -> io::Result<Vec<u8>> + Send + 'static {
        |_| {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn write_is_pending_while_send_is_behind() {
        let config = PipeConfig {
            write_chunk_len: 100,
            queue_depth: 2,
            ..PipeConfig::default()
        };
        let bound = config.max_unsent_bytes();
        assert_eq!(bound, 300);
        let (permit_tx, permit_rx) = mpsc::channel();
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut pipe = Pipe::with_config(
            config,
            never_recv(),
            gated_send(permit_rx, Arc::clone(&sent)),
        )
        .unwrap();

        // Offer 10 KB; with send blocked, at most `bound` bytes may be accepted.
        let data = SplitMix64::new(7).bytes(10_000);
        let mut accepted = 0;
        let mut cx = Context::from_waker(Waker::noop());
        let mut pending_polls = 0;
        while pending_polls < 5 {
            match std::pin::Pin::new(&mut pipe).poll_write(&mut cx, &data[accepted..]) {
                Poll::Ready(Ok(n)) => {
                    assert!(n <= 100, "accepted {n} bytes in one write");
                    accepted += n;
                }
                Poll::Ready(Err(err)) => panic!("write failed: {err}"),
                Poll::Pending => {
                    pending_polls += 1;
                    // Give the send thread time to take a chunk, if it would.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            assert!(
                accepted <= bound,
                "accepted {accepted} > {bound} with send blocked"
            );
        }
        assert!(
            accepted >= 200,
            "queue should hold two chunks, took {accepted}"
        );
        assert_eq!(pipe.unsent_bytes(), accepted as u64);

        // Release send: the rest goes through, in order.
        let release = std::thread::spawn(move || while permit_tx.send(()).is_ok() {});
        pipe.write_all(&data[accepted..]).await.unwrap();
        pipe.flush().await.unwrap();
        assert_eq!(pipe.unsent_bytes(), 0);
        assert_same_bytes(&sent.lock().unwrap(), &data);
        drop(pipe);
        release.join().unwrap();
    }

    #[tokio::test]
    async fn flush_waits_until_send_has_returned() {
        let (permit_tx, permit_rx) = mpsc::channel();
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut pipe = Pipe::new(never_recv(), gated_send(permit_rx, Arc::clone(&sent))).unwrap();
        pipe.write_all(b"frame").await.unwrap();

        let early = tokio::time::timeout(Duration::from_millis(50), pipe.flush()).await;
        assert!(early.is_err(), "flush completed while send was blocked");
        assert!(sent.lock().unwrap().is_empty());

        permit_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(2), pipe.flush())
            .await
            .expect("flush after send returned")
            .unwrap();
        assert_eq!(&*sent.lock().unwrap(), b"frame");
    }

    #[tokio::test]
    async fn empty_recv_is_nothing_yet_and_unexpected_eof_ends_the_stream() {
        let mut replies = vec![
            Ok(Vec::new()),
            Ok(b"abc".to_vec()),
            Ok(Vec::new()),
            Ok(Vec::new()),
            Ok(Vec::new()),
            Ok(b"de".to_vec()),
            Ok(Vec::new()),
            Err(Pipe::end_of_stream()),
        ]
        .into_iter();
        let asked = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (asked_in_recv, calls_in_recv) = (Arc::clone(&asked), Arc::clone(&calls));
        let mut pipe = Pipe::new(
            move |max_len| {
                asked_in_recv.store(max_len, Ordering::SeqCst);
                calls_in_recv.fetch_add(1, Ordering::SeqCst);
                replies
                    .next()
                    .unwrap_or_else(|| panic!("recv called after the end of stream"))
            },
            |_| Ok(()),
        )
        .unwrap();
        let mut got = Vec::new();
        pipe.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abcde");
        assert_eq!(calls.load(Ordering::SeqCst), 8);
        assert_eq!(
            asked.load(Ordering::SeqCst),
            PipeConfig::default().read_chunk_len
        );
        // Still end of stream when read again.
        assert_eq!(pipe.read(&mut [0; 8]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn from_io_read_timeouts_are_nothing_yet_and_zero_is_the_end() {
        /// A reader that times out before each piece, then ends.
        struct TimingOut(Vec<io::Result<Vec<u8>>>);
        impl io::Read for TimingOut {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.pop() {
                    Some(Ok(bytes)) => {
                        buf[..bytes.len()].copy_from_slice(&bytes);
                        Ok(bytes.len())
                    }
                    Some(Err(err)) => Err(err),
                    None => Ok(0),
                }
            }
        }
        let timed_out = || Err(io::Error::from(io::ErrorKind::TimedOut));
        let would_block = || Err(io::Error::from(io::ErrorKind::WouldBlock));
        let mut script = vec![
            timed_out(),
            Ok(b"serial ".to_vec()),
            would_block(),
            timed_out(),
            Err(io::Error::from(io::ErrorKind::Interrupted)),
            Ok(b"line".to_vec()),
        ];
        script.reverse();
        let mut pipe = Pipe::from_io(TimingOut(script), io::sink()).unwrap();
        let mut got = Vec::new();
        pipe.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"serial line");
    }

    /// A `recv` that never has anything, counting its calls.
    fn always_empty(calls: Arc<AtomicUsize>) -> impl FnMut(usize) -> io::Result<Vec<u8>> + Send {
        move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Vec::new())
        }
    }

    /// Waits (up to a generous limit) until `calls` reaches `at_least`.
    async fn wait_for_calls(calls: &AtomicUsize, at_least: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while calls.load(Ordering::SeqCst) < at_least {
            assert!(
                tokio::time::Instant::now() < deadline,
                "recv called only {} times",
                calls.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn an_always_empty_recv_is_called_again_without_spinning() {
        let calls = Arc::new(AtomicUsize::new(0));
        let pipe = Pipe::new(always_empty(Arc::clone(&calls)), |_| Ok(())).unwrap();
        // It keeps being called: empty is not the end...
        wait_for_calls(&calls, 10).await;
        // ...but at most once per 20 ms pause (about 50 a second) once the pause
        // reached its cap after 7 calls; a spinning thread makes millions. The
        // bound is 40 times the expected count, and a loaded machine only makes
        // fewer calls: sleeps never end early.
        let before = calls.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(1));
        let in_a_second = calls.load(Ordering::SeqCst) - before;
        assert!(
            in_a_second < 2000,
            "{in_a_second} calls of an always-empty recv in one second"
        );
        drop(pipe);
    }

    #[tokio::test]
    async fn dropping_the_transport_ends_a_recv_thread_getting_nothing() {
        let (dropped_tx, dropped) = mpsc::channel();
        let signal = DropSignal(dropped_tx);
        let calls = Arc::new(AtomicUsize::new(0));
        let mut empty = always_empty(Arc::clone(&calls));
        let pipe = Pipe::new(
            move |max_len| {
                let _keep = &signal;
                empty(max_len)
            },
            |_| Ok(()),
        )
        .unwrap();
        wait_for_calls(&calls, 3).await;
        drop(pipe);
        dropped
            .recv_timeout(Duration::from_secs(5))
            .expect("recv thread exits at its next empty result once the transport is dropped");
    }

    #[tokio::test]
    async fn recv_error_reaches_the_reader_after_the_data() {
        let mut calls = 0;
        let mut pipe = Pipe::new(
            move |_| {
                calls += 1;
                match calls {
                    1 => Ok(b"ok".to_vec()),
                    _ => Err(io::Error::new(io::ErrorKind::ConnectionReset, "radio lost")),
                }
            },
            |_| Ok(()),
        )
        .unwrap();
        let mut buf = [0; 8];
        assert_eq!(pipe.read(&mut buf).await.unwrap(), 2);
        assert_eq!(&buf[..2], b"ok");
        let err = pipe.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        assert!(err.to_string().contains("radio lost"), "{err}");
    }

    #[tokio::test]
    async fn send_error_reaches_the_writer() {
        let mut pipe = Pipe::new(never_recv(), |_| {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "port revoked",
            ))
        })
        .unwrap();
        // The first write is only queued; its failure shows at the flush.
        pipe.write_all(b"x").await.unwrap();
        let err = pipe.flush().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("port revoked"), "{err}");
        let err = pipe.write_all(b"y").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    /// Sends `()` on its channel when dropped.
    struct DropSignal(mpsc::Sender<()>);

    impl Drop for DropSignal {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    #[tokio::test]
    async fn dropping_the_transport_ends_both_threads() {
        let (send_dropped_tx, send_dropped) = mpsc::channel();
        let (recv_dropped_tx, recv_dropped) = mpsc::channel();
        let (release_recv, recv_gate) = mpsc::channel::<Vec<u8>>();
        let send_signal = DropSignal(send_dropped_tx);
        let recv_signal = DropSignal(recv_dropped_tx);
        let mut pipe = Pipe::new(
            move |_| {
                let _keep = &recv_signal;
                Ok(recv_gate.recv().unwrap_or_default())
            },
            move |_| {
                let _keep = &send_signal;
                Ok(())
            },
        )
        .unwrap();
        pipe.write_all(b"bye").await.unwrap();
        drop(pipe);

        send_dropped
            .recv_timeout(Duration::from_secs(2))
            .expect("send thread exits once the transport is dropped");
        // The recv thread is blocked in recv and cannot be interrupted...
        assert!(recv_dropped
            .recv_timeout(Duration::from_millis(50))
            .is_err());
        // ...but exits as soon as recv returns.
        release_recv.send(b"late".to_vec()).unwrap();
        recv_dropped
            .recv_timeout(Duration::from_secs(2))
            .expect("recv thread exits after its next return");
    }

    #[tokio::test]
    async fn shutdown_flushes_then_closes_the_writer() {
        let (left, right) = UnixStream::pair().unwrap();
        let mut pipe = Pipe::from_io(io::empty(), left).unwrap();
        pipe.write_all(b"last words").await.unwrap();
        pipe.shutdown().await.unwrap();
        // The writer half was the socket's only handle: the peer sees EOF.
        let mut got = Vec::new();
        io::Read::read_to_end(&mut &right, &mut got).unwrap();
        assert_eq!(got, b"last words");
        let err = pipe.write_all(b"more").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}

mod throttled {
    use super::*;
    use netcore_actors::transport::{throttled_pair, ThrottleConfig};
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    use tokio::time::Instant;

    /// Sends `len` bytes one way over a line at `rate` in real time and
    /// returns the measured rate in bytes per second.
    ///
    /// This checks the line clock against the wall clock, so the FIFO is made
    /// 100 ms deep: a writer descheduled for a few milliseconds on a loaded
    /// machine must not let the line idle, which would measure the machine,
    /// not the double. (With the default 64-byte FIFO at 11 520 B/s a writer
    /// has under 3 ms to refill; that case is timed exactly in virtual time by
    /// `long_transfer_takes_exactly_its_serialization_time`.)
    async fn measure_rate(rate: u32, len: usize) -> f64 {
        let fifo_len = (rate / 10) as usize;
        let (a, b) = throttled_pair(ThrottleConfig::rate(rate).with_tx_fifo_len(fifo_len));
        let data = SplitMix64::new(11).bytes(len);
        let start = Instant::now();
        let (written, read) = tokio::join!(
            write_in_pieces(a, &data, 12, 4096),
            read_in_pieces(b, len, 13, 4096)
        );
        let elapsed = start.elapsed();
        written.unwrap();
        assert_same_bytes(&read.unwrap().1, &data);
        let measured = len as f64 / elapsed.as_secs_f64();
        eprintln!(
            "throttled rate {rate} B/s: {len} bytes in {elapsed:?} = {measured:.0} B/s ({:+.2}%)",
            (measured / f64::from(rate) - 1.0) * 100.0
        );
        measured
    }

    /// The bounds a real-time rate measurement can be held to on a loaded machine:
    /// the line never beats its clock (it may deliver at most its FIFO ahead of
    /// it, 100 ms here, hence the 5% above), and a descheduled writer or reader
    /// can only make it slower, so the lower bound only catches a line that runs
    /// at a fraction of its rate (a timer rounding every write up to a tick, say).
    /// The exact figures are checked in virtual time by
    /// `long_transfer_takes_exactly_its_serialization_time`.
    fn assert_rate_follows_the_line_clock(measured: f64, rate: u32) {
        let rate = f64::from(rate);
        assert!(
            measured <= rate * 1.05,
            "measured {measured:.0} B/s, faster than the line's {rate} B/s"
        );
        assert!(
            measured >= rate * 0.5,
            "measured {measured:.0} B/s, under half the line's {rate} B/s"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_time_rate_follows_the_line_clock_at_115200_baud() {
        let rate = ThrottleConfig::serial_8n1(115_200).bytes_per_sec.unwrap();
        assert_eq!(rate, 11_520);
        // 2 s of data.
        let measured = measure_rate(rate, 2 * 11_520).await;
        assert_rate_follows_the_line_clock(measured, rate);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn real_time_rate_follows_the_line_clock_at_one_megabyte_per_second() {
        let rate = 1_000_000;
        let measured = measure_rate(rate, 2_000_000).await;
        assert_rate_follows_the_line_clock(measured, rate);
    }

    #[tokio::test(start_paused = true)]
    async fn long_transfer_takes_exactly_its_serialization_time() {
        // Virtual time: no machine speed involved, so the bound is tight.
        let (a, b) = throttled_pair(ThrottleConfig::serial_8n1(115_200));
        let data = SplitMix64::new(14).bytes(115_200);
        let start = Instant::now();
        let (written, read) = tokio::join!(
            write_in_pieces(a, &data, 15, 300),
            read_in_pieces(b, data.len(), 16, 300)
        );
        written.unwrap();
        assert_same_bytes(&read.unwrap().1, &data);
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_secs(10) && elapsed <= Duration::from_millis(10_002),
            "115200 bytes at 11520 B/s took {elapsed:?}, want 10 s"
        );
    }

    async fn time_small_write(config: ThrottleConfig) -> Duration {
        let (mut a, mut b) = throttled_pair(config);
        // Let the runtime settle so the line is idle and the reader is waiting.
        let reader = tokio::spawn(async move {
            let mut got = [0; 32];
            b.read_exact(&mut got).await.map(|_| (Instant::now(), got))
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let sent_at = Instant::now();
        a.write_all(&[0x5a; 32]).await.unwrap();
        let (arrived_at, got) = reader.await.unwrap().unwrap();
        assert_eq!(got, [0x5a; 32]);
        arrived_at - sent_at
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_write_on_an_idle_line_arrives_after_its_serialization_time() {
        let serialization = Duration::from_nanos(32 * 1_000_000_000 / 11_520);
        let took = time_small_write(ThrottleConfig::serial_8n1(115_200)).await;
        eprintln!("32 bytes at 11520 B/s over an idle line arrived after {took:?}");
        assert!(
            took >= serialization,
            "arrived after {took:?}, before {serialization:?}"
        );
        // Only the lower bounds are the line's: how much later a reader wakes up
        // depends on the machine. The exact arrival times are checked in virtual
        // time (`small_write_timing_in_virtual_time`); a second is a hang guard.
        assert!(took < Duration::from_secs(1), "arrived after {took:?}");

        let latency = Duration::from_millis(20);
        let took =
            time_small_write(ThrottleConfig::serial_8n1(115_200).with_latency(latency)).await;
        eprintln!("... and with 20 ms latency after {took:?}");
        assert!(took >= serialization + latency, "arrived after {took:?}");
        assert!(
            took < latency + Duration::from_secs(1),
            "arrived after {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn small_write_timing_in_virtual_time() {
        let took = time_small_write(ThrottleConfig::serial_8n1(115_200)).await;
        // 2.78 ms of serialization, seen on the next 1 ms timer tick.
        assert!(
            took >= Duration::from_micros(2_777) && took <= Duration::from_millis(4),
            "{took:?}"
        );
        let took = time_small_write(
            ThrottleConfig::serial_8n1(115_200).with_latency(Duration::from_millis(50)),
        )
        .await;
        assert!(
            took >= Duration::from_micros(52_777) && took <= Duration::from_millis(54),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn writer_is_pending_when_the_line_is_full() {
        let config = ThrottleConfig::serial_8n1(115_200).with_rx_buffer_len(256);
        assert_eq!(config.tx_fifo_len, 64);
        let capacity = config.capacity();
        assert_eq!(capacity, 64 + 256);
        let (mut a, mut b) = throttled_pair(config);
        let counters = a.counters();
        let data = SplitMix64::new(17).bytes(2_000);

        // An idle line takes one FIFO's worth at once, then makes the writer wait.
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut a).poll_write(&mut cx, &data) {
            Poll::Ready(Ok(n)) => assert_eq!(n, 64),
            other => panic!("first write: {other:?}"),
        }
        assert!(Pin::new(&mut a)
            .poll_write(&mut cx, &data[64..])
            .is_pending());

        // With nobody reading, the writer stops once the line holds `capacity`.
        let writer = tokio::spawn(async move {
            a.write_all(&data[64..]).await.unwrap();
            a.flush().await.unwrap();
            data
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(counters.written(), capacity as u64);
        assert_eq!(counters.unread_outgoing(), capacity as u64);
        assert!(!writer.is_finished());

        // Reading frees the line and the rest arrives intact.
        let (_, got) = read_in_pieces(&mut b, 2_000, 18, 100).await.unwrap();
        let data = writer.await.unwrap();
        assert_same_bytes(&got, &data);
        assert_eq!(counters.unread_outgoing(), 0);
        assert_eq!(b.counters().read(), 2_000);
    }

    #[tokio::test(start_paused = true)]
    async fn flush_waits_for_the_fifo_to_drain() {
        let (mut a, _b) = throttled_pair(ThrottleConfig::rate(1_000).with_tx_fifo_len(100));
        let start = Instant::now();
        a.write_all(&[1; 100]).await.unwrap();
        assert!(start.elapsed() < Duration::from_millis(1));
        a.flush().await.unwrap();
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took <= Duration::from_millis(101),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_an_end_gives_the_peer_end_of_stream() {
        let (mut a, mut b) = throttled_pair(ThrottleConfig::serial_8n1(9_600));
        a.write_all(b"goodbye").await.unwrap();
        drop(a);
        // Bytes already on the line still arrive, then end of stream.
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"goodbye");
        let err = b.write_all(b"anyone?").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_gives_the_peer_end_of_stream() {
        let (mut a, mut b) = throttled_pair(ThrottleConfig::unthrottled());
        a.write_all(b"half").await.unwrap();
        a.shutdown().await.unwrap();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"half");
        // The other direction still works.
        b.write_all(b"reply").await.unwrap();
        let mut reply = [0; 5];
        a.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"reply");
        assert_eq!(
            a.write(b"x").await.unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    async fn random_sizes_arrive_intact(config: ThrottleConfig) {
        let (a, b) = throttled_pair(config);
        let (a_read, a_write) = tokio::io::split(a);
        let (b_read, b_write) = tokio::io::split(b);
        let a_to_b = SplitMix64::new(21).bytes(256 * 1024);
        let b_to_a = SplitMix64::new(22).bytes(256 * 1024);
        let (wa, wb, at_b, at_a) = tokio::join!(
            write_in_pieces(a_write, &a_to_b, 23, 3000),
            write_in_pieces(b_write, &b_to_a, 24, 700),
            read_in_pieces(b_read, a_to_b.len(), 25, 2000),
            read_in_pieces(a_read, b_to_a.len(), 26, 5000),
        );
        wa.unwrap();
        wb.unwrap();
        assert_same_bytes(&at_b.unwrap().1, &a_to_b);
        assert_same_bytes(&at_a.unwrap().1, &b_to_a);
    }

    #[tokio::test(start_paused = true)]
    async fn random_sized_writes_arrive_intact_at_115200_baud_with_latency() {
        random_sizes_arrive_intact(
            ThrottleConfig::serial_8n1(115_200).with_latency(Duration::from_millis(30)),
        )
        .await;
    }

    #[tokio::test]
    async fn random_sized_writes_arrive_intact_unthrottled() {
        random_sizes_arrive_intact(ThrottleConfig::unthrottled().with_rx_buffer_len(512)).await;
    }

    #[tokio::test]
    async fn unthrottled_line_is_bounded() {
        let (mut a, _b) = throttled_pair(ThrottleConfig::unthrottled().with_rx_buffer_len(100));
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(&mut a).poll_write(&mut cx, &[0; 1000]) {
            Poll::Ready(Ok(n)) => assert_eq!(n, 100),
            other => panic!("first write: {other:?}"),
        }
        assert!(Pin::new(&mut a)
            .poll_write(&mut cx, &[0; 1000])
            .is_pending());
        assert_eq!(a.counters().unread_outgoing(), 100);
    }
}

#[cfg(unix)]
mod pty {
    use super::*;
    use netcore_actors::transport::serial::{
        open_serial_with, DataBits, FlowControl, LineCode, LineCoded, Parity, SerialOptions,
        SerialSpec, StopBits,
    };
    use netcore_actors::transport::{pty_pair, LinkSpec};
    use tokio_serial::SerialPort;

    /// The settings a port reports (read back from the terminal's termios).
    fn settings(port: &tokio_serial::SerialStream) -> (u8, String, u8, String) {
        (
            u8::from(port.data_bits().unwrap()),
            format!("{:?}", port.parity().unwrap()),
            u8::from(port.stop_bits().unwrap()),
            format!("{:?}", port.flow_control().unwrap()),
        )
    }

    #[tokio::test]
    async fn serial_options_are_applied_to_the_port() {
        for (options, expected) in [
            (SerialOptions::default(), (8, "None", 1, "None")),
            (
                SerialOptions {
                    data_bits: DataBits::Seven,
                    parity: Parity::Even,
                    stop_bits: StopBits::Two,
                    flow_control: FlowControl::RtsCts,
                },
                (7, "Even", 2, "Hardware"),
            ),
            (
                SerialOptions {
                    data_bits: DataBits::Eight,
                    parity: Parity::Odd,
                    stop_bits: StopBits::One,
                    flow_control: FlowControl::XonXoff,
                },
                (8, "Odd", 1, "Software"),
            ),
            (
                SerialOptions {
                    data_bits: DataBits::Five,
                    ..SerialOptions::default()
                },
                (5, "None", 1, "None"),
            ),
        ] {
            let (_master, slave) = pty_pair().unwrap();
            let path = slave.name().expect("a pty slave has a path");
            drop(slave);
            let port = open_serial_with(&path, 57_600, &options).unwrap();
            let (data, parity, stop, flow) = settings(&port);
            // Stop bits and flow control read back as set. A PTY keeps its
            // characters 8 bits without parity whatever is asked (Linux's
            // `pty_set_termios`), a UART takes them.
            assert_eq!((stop, flow.as_str()), (expected.2, expected.3), "{options}");
            assert!(
                data == expected.0 || data == 8,
                "{options}: {data} data bits"
            );
            assert!(
                parity == expected.1 || parity == "None",
                "{options}: parity {parity}"
            );
            assert_eq!(port.baud_rate().unwrap(), 57_600);
        }
    }

    #[tokio::test]
    async fn xon_xoff_takes_its_bytes_out_of_what_the_port_reads() {
        // Why a link escapes them: a port with software flow control never
        // delivers a raw 0x11 or 0x13 it receives.
        let (mut master, slave) = pty_pair().unwrap();
        let path = slave.name().unwrap();
        drop(slave);
        let options = SerialOptions {
            flow_control: FlowControl::XonXoff,
            ..SerialOptions::default()
        };
        let mut port = open_serial_with(&path, 115_200, &options).unwrap();
        master
            .write_all(&[0x41, 0x13, 0x42, 0x11, 0x43])
            .await
            .unwrap();
        let mut got = [0; 3];
        tokio::time::timeout(Duration::from_secs(10), port.read_exact(&mut got))
            .await
            .expect("the three data bytes arrive")
            .unwrap();
        assert_eq!(&got, b"ABC");

        // Through the line code, every byte value crosses, 0x11 and 0x13 too.
        let mut port = LineCoded::new(port, LineCode::eight_bit(true));
        let mut master = LineCoded::new(master, LineCode::eight_bit(true));
        let data = all_byte_values(8);
        port.write_all(&data).await.unwrap();
        let mut got = vec![0; data.len()];
        tokio::time::timeout(Duration::from_secs(10), master.read_exact(&mut got))
            .await
            .expect("every byte arrives")
            .unwrap();
        assert_same_bytes(&got, &data);
        master.write_all(&data).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), port.read_exact(&mut got))
            .await
            .expect("every byte arrives back")
            .unwrap();
        assert_same_bytes(&got, &data);
    }

    #[tokio::test]
    async fn a_seven_e_two_spec_opens_coded_and_carries_every_byte() {
        let (master, slave) = pty_pair().unwrap();
        let path = slave.name().unwrap();
        drop(slave);
        let spec: LinkSpec = format!("serial:{path}@115200?data=7&parity=even&stop=2&flow=xonxoff")
            .parse()
            .unwrap();
        let mut port = spec.open().await.unwrap();
        // The device side speaks the same code (a PTY's master has no termios).
        let mut master = LineCoded::new(master, LineCode::seven_bit(true));
        let data = all_byte_values(8);
        port.write_all(&data).await.unwrap();
        let mut got = vec![0; data.len()];
        tokio::time::timeout(Duration::from_secs(10), master.read_exact(&mut got))
            .await
            .expect("every byte arrives")
            .unwrap();
        assert_same_bytes(&got, &data);
        master.write_all(&data).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), port.read_exact(&mut got))
            .await
            .expect("every byte arrives back")
            .unwrap();
        assert_same_bytes(&got, &data);
    }

    #[tokio::test]
    async fn a_link_spec_with_five_data_bits_is_refused_at_open() {
        let mut spec = SerialSpec::new("/dev/netcore-no-such-port", 9_600);
        spec.options.data_bits = DataBits::Five;
        let err = LinkSpec::Serial(spec).open().await.err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("5 data bits"), "{err}");
    }

    async fn both_ways(master_to_slave: Vec<u8>, slave_to_master: Vec<u8>) {
        let (master, slave) = pty_pair().unwrap();
        let (m_read, m_write) = tokio::io::split(master);
        let (s_read, s_write) = tokio::io::split(slave);
        let (wm, ws, at_s, at_m) = tokio::join!(
            write_in_pieces(m_write, &master_to_slave, 31, 5000),
            write_in_pieces(s_write, &slave_to_master, 32, 5000),
            read_in_pieces(s_read, master_to_slave.len(), 33, 5000),
            read_in_pieces(m_read, slave_to_master.len(), 34, 5000),
        );
        wm.unwrap();
        ws.unwrap();
        assert_same_bytes(&at_s.unwrap().1, &master_to_slave);
        assert_same_bytes(&at_m.unwrap().1, &slave_to_master);
    }

    #[tokio::test]
    async fn pty_pair_passes_every_byte_value_unchanged() {
        // \n, \r, ^C, ^S, ^Q, ^D, ^Z, DEL and 0xff each way, no echo back.
        both_ways(all_byte_values(64), all_byte_values(64)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pty_pair_carries_one_mebibyte_each_way() {
        both_ways(
            SplitMix64::new(35).bytes(1 << 20),
            SplitMix64::new(36).bytes(1 << 20),
        )
        .await;
    }

    #[tokio::test]
    async fn serial_spec_opens_a_device_by_path() {
        let (mut master, slave) = pty_pair().unwrap();
        let path = slave.name().expect("a pty slave has a path");
        drop(slave);
        let spec = LinkSpec::Serial(SerialSpec::new(path.clone(), 115_200));
        assert_eq!(spec.bytes_per_sec(), Some(11_520));
        let mut port = spec.open().await.unwrap();
        let data = all_byte_values(4);
        port.write_all(&data).await.unwrap();
        let mut got = vec![0; data.len()];
        master.read_exact(&mut got).await.unwrap();
        assert_same_bytes(&got, &data);
        master.write_all(&data).await.unwrap();
        port.read_exact(&mut got).await.unwrap();
        assert_same_bytes(&got, &data);
    }
}

mod sockets {
    use super::*;
    use netcore_actors::transport::{accept_tcp, connect_tcp, LinkSpec};
    use tokio::net::TcpListener;

    async fn exchange<A, B>(mut a: A, mut b: B)
    where
        A: AsyncRead + AsyncWrite + Unpin,
        B: AsyncRead + AsyncWrite + Unpin,
    {
        let data = all_byte_values(256);
        let mut got = vec![0; data.len()];
        let (written, read) = tokio::join!(a.write_all(&data), b.read_exact(&mut got));
        written.unwrap();
        read.unwrap();
        assert_same_bytes(&got, &data);
        b.write_all(b"pong").await.unwrap();
        let mut pong = [0; 4];
        a.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"pong");
    }

    #[tokio::test]
    async fn tcp_links_set_nodelay_and_carry_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();

        let (client, server) = tokio::join!(connect_tcp(&addr), accept_tcp(&listener));
        let (client, (server, _)) = (client.unwrap(), server.unwrap());
        assert!(client.nodelay().unwrap());
        assert!(server.nodelay().unwrap());
        exchange(client, server).await;

        let spec: LinkSpec = format!("tcp:{addr}").parse().unwrap();
        assert_eq!(spec.bytes_per_sec(), None);
        let (client, server) = tokio::join!(spec.open(), accept_tcp(&listener));
        exchange(client.unwrap(), server.unwrap().0).await;
    }

    #[tokio::test]
    async fn tcp_connect_failure_names_the_address() {
        // Bind then drop, so nothing listens on the port.
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let err = LinkSpec::TcpConnect(addr.clone())
            .open()
            .await
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        assert!(err.to_string().contains(&addr), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn unix_socket_link_carries_bytes() {
        let path = std::env::temp_dir().join(format!(
            "netcore-transport-test-{}.sock",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let spec = LinkSpec::Unix(path.clone());
        let (client, server) = tokio::join!(spec.open(), listener.accept());
        let _ = std::fs::remove_file(&path);
        exchange(client.unwrap(), server.unwrap().0).await;
    }
}
