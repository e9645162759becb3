//! The faulty line: every fault happens at about its configured rate, the
//! same seed gives the same faults, frames are dropped whole, cuts and the
//! bandwidth cap hold on time, and the serial framing's decoder gets every
//! frame that arrives intact over 1% drops and a 1e-5 bit error rate.
//!
//! Every statistical bound is at least six standard deviations wide, and the
//! seeds are fixed: a failure is a bug, never bad luck.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns, which clippy.toml's test allowances miss"
)]

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use netcore_actors::proto::framing::{Framer, Framing, FramingKind};
use netcore_actors::transport::{
    faulty_pair, CutSchedule, FaultConfig, FaultStats, Faults, Faulty, FaultyLine,
};
use netcore_proto::rng::SplitMix64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// `count` distinct 0x00-delimited frames of 4 to 67 bytes before the
/// delimiter: 3 bytes of index (none zero), then random non-zero bytes.
fn frames(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|i| {
            let mut frame = vec![
                (i % 255 + 1) as u8,
                (i / 255 % 255 + 1) as u8,
                (i / 65_025 % 255 + 1) as u8,
            ];
            let len = 1 + rng.below(64);
            frame.extend((0..len).map(|_| (1 + rng.below(255)) as u8));
            frame.push(0x00);
            frame
        })
        .collect()
}

/// The frames of `bytes`, each with its delimiter.
fn split_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&byte| byte == 0x00)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Writes `data` from `a` in writes of at most `write_len` bytes while `b`
/// reads everything; returns what `b` read and the a → b stats.
async fn transfer(config: FaultConfig, data: &[u8], write_len: usize) -> (Vec<u8>, FaultStats) {
    let (mut a, mut b) = faulty_pair(config);
    let handle = a.handle();
    let writer = async move {
        for chunk in data.chunks(write_len) {
            a.write_all(chunk).await.unwrap();
        }
        a.shutdown().await.unwrap();
    };
    let reader = async move {
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        got
    };
    let ((), got) = tokio::join!(writer, reader);
    (got, handle.sent())
}

/// `count` is within `tolerance` (a fraction) of `expected`.
fn assert_near(what: &str, count: u64, expected: f64, tolerance: f64) {
    let off = (count as f64 - expected).abs() / expected;
    assert!(
        off <= tolerance,
        "{what}: {count}, expected {expected} ± {}%",
        tolerance * 100.0
    );
}

/// `elapsed` is `expected` or at most `slack` later.
fn assert_within(elapsed: Duration, expected: Duration, slack: Duration) {
    assert!(
        elapsed >= expected && elapsed <= expected + slack,
        "{elapsed:?}, expected {expected:?} (+ {slack:?})"
    );
}

#[tokio::test]
async fn a_fault_free_line_passes_everything_untouched() {
    let sent = frames(1000, 1);
    let data = sent.concat();
    let (got, stats) = transfer(FaultConfig::new(1), &data, 100).await;
    assert_eq!(got, data);
    assert_eq!(stats.frames, 1000);
    assert_eq!(stats.passed, 1000);
    assert_eq!(stats.bytes_written, data.len() as u64);
    assert_eq!(stats.bytes_delivered, data.len() as u64);
    assert_eq!(stats.bytes_read, data.len() as u64);
    assert_eq!(
        (
            stats.dropped,
            stats.corrupted,
            stats.duplicated,
            stats.truncated
        ),
        (0, 0, 0, 0)
    );
}

#[tokio::test]
async fn frame_drops_drop_whole_delimited_frames_at_the_configured_rate() {
    let sent = frames(20_000, 2);
    let data = sent.concat();
    let config = FaultConfig::new(2).with_a_to_b(Faults::none().with_drop(0.05));
    // Writes of 7 bytes: frames straddle writes, and are still dropped whole.
    let (got, stats) = transfer(config, &data, 7).await;
    let got = split_frames(&got);
    // What arrived is the frames sent, in order, each whole, some missing.
    let mut next = 0;
    for frame in &got {
        let at = sent[next..]
            .iter()
            .position(|sent| sent == frame)
            .unwrap_or_else(|| panic!("{frame:?} is not a whole frame sent after #{next}"));
        next += at + 1;
    }
    assert_eq!(stats.frames, 20_000);
    assert_eq!(stats.dropped, 20_000 - got.len() as u64);
    assert_eq!(stats.passed, got.len() as u64);
    // Expected 1000, σ ≈ 31.
    assert_near("dropped frames", stats.dropped, 1000.0, 0.2);
}

#[tokio::test]
async fn clean_frames_pass_untouched_before_the_faults_start() {
    let sent = frames(10, 3);
    let faults = Faults::none()
        .with_drop(1.0)
        .with_bit_error_rate(1.0)
        .with_clean_frames(3);
    let config = FaultConfig::new(3).with_a_to_b(faults);
    // A lone delimiter first, as a link sends before its first frame.
    let data = [vec![0x00], sent.concat()].concat();
    let (got, stats) = transfer(config, &data, 5).await;
    // The delimiter and the first three frames arrive as sent; the rest is lost.
    assert_eq!(got, [vec![0x00], sent[..3].concat()].concat());
    assert_eq!(stats.frames, 10);
    assert_eq!((stats.passed, stats.dropped), (3, 7));
    assert_eq!(stats.bits_flipped, 0);
}

#[tokio::test]
async fn without_a_delimiter_drops_take_write_chunks() {
    // 5000 writes of 10 bytes, no delimiter: each write is a frame.
    let data: Vec<u8> = (0..50_000u32).map(|i| (i / 10) as u8).collect();
    let config = FaultConfig::new(3)
        .with_frame_delimiter(None)
        .with_a_to_b(Faults::none().with_drop(0.1));
    let (got, stats) = transfer(config, &data, 10).await;
    assert_eq!(stats.frames, 5000);
    assert_eq!(got.len() as u64, 10 * stats.passed);
    // Every 10-byte chunk arrived whole: one value (its write's) throughout.
    for chunk in got.chunks(10) {
        assert!(chunk.iter().all(|&byte| byte == chunk[0]), "{chunk:?}");
    }
    // Expected 500, σ ≈ 21.
    assert_near("dropped chunks", stats.dropped, 500.0, 0.3);
}

#[tokio::test]
async fn duplicated_frames_arrive_twice_back_to_back() {
    let sent = frames(20_000, 4);
    let config = FaultConfig::new(4).with_a_to_b(Faults::none().with_duplicate(0.05));
    let (got, stats) = transfer(config, &sent.concat(), 1000).await;
    let got = split_frames(&got);
    let mut at = 0;
    let mut twice = 0;
    for frame in &sent {
        assert_eq!(&got[at], frame);
        at += 1;
        if got.get(at) == Some(frame) {
            twice += 1;
            at += 1;
        }
    }
    assert_eq!(at, got.len());
    assert_eq!(stats.duplicated, twice);
    assert_eq!(stats.passed, 20_000);
    // Expected 1000, σ ≈ 31.
    assert_near("duplicated frames", stats.duplicated, 1000.0, 0.2);
}

#[tokio::test]
async fn truncated_frames_are_cut_short_and_keep_their_delimiter() {
    let sent = frames(20_000, 5);
    let config = FaultConfig::new(5).with_a_to_b(Faults::none().with_truncate(0.05));
    let (got, stats) = transfer(config, &sent.concat(), 1000).await;
    let got = split_frames(&got);
    assert_eq!(got.len(), sent.len(), "one frame out per frame in");
    let mut short = 0;
    for (got, sent) in got.iter().zip(&sent) {
        if got != sent {
            short += 1;
            let body = &got[..got.len() - 1];
            assert!(got.len() < sent.len() && sent.starts_with(body));
            assert_eq!(got.last(), Some(&0x00));
        }
    }
    assert_eq!(stats.truncated, short);
    // Expected 1000, σ ≈ 31.
    assert_near("truncated frames", stats.truncated, 1000.0, 0.2);
}

#[tokio::test]
async fn bit_errors_over_10_mb_come_close_to_ber_times_bits() {
    const LEN: usize = 10 * 1024 * 1024;
    const BER: f64 = 1e-4;
    let data: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    let config = FaultConfig::new(6)
        .with_frame_delimiter(None)
        .with_a_to_b(Faults::none().with_bit_error_rate(BER));
    let (got, stats) = transfer(config, &data, 64 * 1024).await;
    assert_eq!(got.len(), LEN);
    let flipped: u64 = got
        .iter()
        .zip(&data)
        .map(|(got, sent)| u64::from((got ^ sent).count_ones()))
        .sum();
    assert_eq!(flipped, stats.bits_flipped);
    // Expected 8389, σ ≈ 92.
    assert_near("flipped bits", flipped, BER * (LEN * 8) as f64, 0.06);
    // Spread evenly: every MiB got about a tenth of them (σ ≈ 29).
    for (mib, (got, sent)) in got.chunks(1 << 20).zip(data.chunks(1 << 20)).enumerate() {
        let flipped: u64 = got
            .iter()
            .zip(sent)
            .map(|(got, sent)| u64::from((got ^ sent).count_ones()))
            .sum();
        assert_near(
            &format!("flipped bits in MiB {mib}"),
            flipped,
            BER * 8.0 * (1 << 20) as f64,
            0.25,
        );
    }
}

#[tokio::test]
async fn bit_errors_hit_frames_at_about_the_expected_rate() {
    // 20,000 frames of 6 to 69 bytes (~300 bits) at BER 1e-4: ~3% corrupted.
    let sent = frames(20_000, 7);
    let data = sent.concat();
    let config = FaultConfig::new(7).with_a_to_b(Faults::none().with_bit_error_rate(1e-4));
    let (got, stats) = transfer(config, &data, 1000).await;
    assert_eq!(got.len(), data.len());
    let expected: f64 = sent
        .iter()
        .map(|frame| 1.0 - (1.0 - 1e-4f64).powi(8 * frame.len() as i32))
        .sum();
    // σ ≈ 24.
    assert_near("corrupted frames", stats.corrupted, expected, 0.25);
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_faults() {
    let data = frames(5000, 8).concat();
    let faults = Faults::none()
        .with_drop(0.05)
        .with_duplicate(0.05)
        .with_truncate(0.05)
        .with_bit_error_rate(1e-3)
        .with_jitter(Duration::from_millis(3));
    let config = |seed| FaultConfig::new(seed).with_faults(faults);
    // Different write sizes, same bytes: same faults.
    let (first, first_stats) = transfer(config(8), &data, 7).await;
    let (again, again_stats) = transfer(config(8), &data, 4096).await;
    assert_eq!(first, again);
    assert_eq!(first_stats, again_stats);
    assert!(first_stats.dropped > 0 && first_stats.corrupted > 0);
    // Another seed, other faults.
    let (other, _) = transfer(config(9), &data, 7).await;
    assert_ne!(first, other);
}

#[tokio::test]
async fn the_two_directions_draw_their_own_faults() {
    let data = frames(5000, 10).concat();
    let (a, b) = faulty_pair(FaultConfig::new(10).with_faults(Faults::none().with_drop(0.1)));
    let (a_stats, b_stats) = (a.handle(), b.handle());
    let (mut a_read, a_write) = tokio::io::split(a);
    let (mut b_read, b_write) = tokio::io::split(b);
    let send = |mut writer: tokio::io::WriteHalf<_>| {
        let data = &data;
        async move {
            writer.write_all(data).await.unwrap();
            writer.shutdown().await.unwrap();
            writer
        }
    };
    let (at_a, at_b, _a_write, _b_write) = tokio::join!(
        async {
            let mut got = Vec::new();
            a_read.read_to_end(&mut got).await.unwrap();
            got
        },
        async {
            let mut got = Vec::new();
            b_read.read_to_end(&mut got).await.unwrap();
            got
        },
        send(a_write),
        send(b_write),
    );
    assert_ne!(at_a, at_b, "both directions dropped the same frames");
    assert_eq!(a_stats.sent(), b_stats.received());
    assert_eq!(a_stats.received(), b_stats.sent());
    assert!(a_stats.sent().dropped > 0 && b_stats.sent().dropped > 0);
}

#[tokio::test]
async fn faults_stay_on_their_direction() {
    let data = frames(1000, 11).concat();
    let (mut a, mut b) = faulty_pair(
        FaultConfig::new(11).with_a_to_b(Faults::none().with_drop(0.5).with_bit_error_rate(1e-2)),
    );
    b.write_all(&data).await.unwrap();
    b.shutdown().await.unwrap();
    let mut got = Vec::new();
    a.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, data);
    assert_eq!(a.handle().received().frames, 1000);
    assert_eq!(a.handle().received().passed, 1000);
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_cut_gives_eof_on_read_and_an_error_on_write() {
    let config = FaultConfig::new(12).with_cuts(CutSchedule::at([Duration::from_secs(2)]));
    let start = Instant::now();
    let (mut a, mut b) = faulty_pair(config);
    assert_eq!(a.handle().cut_at(), Some(start + Duration::from_secs(2)));
    a.write_all(b"before\0").await.unwrap();
    let mut got = [0; 7];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"before\0");
    // A read waiting for data is woken by the cut and sees end of stream.
    let mut buf = [0; 16];
    assert_eq!(b.read(&mut buf).await.unwrap(), 0);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_millis(2010),
        "{waited:?}"
    );
    assert!(a.handle().is_cut() && b.handle().is_cut());
    let err = a.write_all(b"after\0").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    let err = b.write_all(b"after\0").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(a.read(&mut buf).await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cut_loses_what_is_in_flight_and_stops_a_blocked_writer() {
    let config = FaultConfig::new(13)
        .with_buffer_len(1000)
        .with_faults(Faults::none().with_latency(Duration::from_secs(1)))
        .with_cuts(CutSchedule::at([Duration::from_millis(500)]));
    let (mut a, mut b) = faulty_pair(config);
    // The writer fills the buffer (nothing arrives for 1 s), then blocks
    // until the cut fails it.
    let err = a.write_all(&[1; 5000]).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    assert_eq!(a.handle().sent().bytes_written, 1000);
    let mut got = Vec::new();
    assert_eq!(b.read_to_end(&mut got).await.unwrap(), 0);
}

#[tokio::test]
async fn a_manual_cut_wakes_a_waiting_reader() {
    let (a, mut b) = faulty_pair(FaultConfig::new(14));
    let reader = tokio::spawn(async move { b.read(&mut [0; 8]).await });
    tokio::task::yield_now().await;
    a.handle().cut();
    assert_eq!(reader.await.unwrap().unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_faulty_line_reconnects_with_the_next_cut_and_seed() {
    let config = FaultConfig::new(15)
        .with_faults(Faults::none().with_drop(0.2))
        .with_cuts(CutSchedule::every(Duration::from_secs(1)));
    let data = frames(500, 15).concat();
    let line = FaultyLine::new(config.clone());
    let start = Instant::now();

    let (mut a, mut b) = line.reconnect();
    assert_eq!(a.handle().cut_at(), Some(start + Duration::from_secs(1)));
    a.write_all(&data).await.unwrap();
    a.flush().await.unwrap();
    // The first pair is the one faulty_pair(config) gives: same faults.
    let (mut twin_a, mut twin_b) = faulty_pair(config);
    twin_a.write_all(&data).await.unwrap();
    drop(twin_a);
    let mut twin_got = Vec::new();
    twin_b.read_to_end(&mut twin_got).await.unwrap();
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap(); // ends at the cut, 1 s in
    assert_eq!(got, twin_got);
    assert_within(
        start.elapsed(),
        Duration::from_secs(1),
        Duration::from_millis(2),
    );
    assert!(a.write_all(b"x\0").await.is_err());

    // The link comes back half a second later, until the cut at 2 s.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut a2, mut b2) = line.reconnect();
    assert_eq!(line.pairs(), 2);
    assert_eq!(a2.handle().cut_at(), Some(start + Duration::from_secs(2)));
    a2.write_all(&data).await.unwrap();
    let mut got2 = Vec::new();
    b2.read_to_end(&mut got2).await.unwrap();
    assert_within(
        start.elapsed(),
        Duration::from_secs(2),
        Duration::from_millis(2),
    );
    assert_ne!(got2, got, "the next pair continues the seed sequence");
    assert!(a2.handle().sent().dropped > 0);

    // reconnect() cuts a pair that is still alive.
    let (a3, _b3) = line.reconnect();
    let (a4, _b4) = line.reconnect();
    assert!(a3.handle().is_cut());
    assert!(!a4.handle().is_cut());
    line.cut();
    assert!(a4.handle().is_cut());
}

#[tokio::test(start_paused = true)]
async fn the_bandwidth_cap_holds() {
    const RATE: u32 = 10_000;
    let data = frames(2000, 16).concat(); // ~75 KB: ~7.5 s at 10 kB/s
    let config = FaultConfig::new(16).with_a_to_b(Faults::none().with_bytes_per_sec(RATE));
    let start = Instant::now();
    let (mut a, mut b) = faulty_pair(config);
    let len = data.len();
    let writer = async move {
        a.write_all(&data).await.unwrap();
        a.flush().await.unwrap();
        let flushed = start.elapsed();
        drop(a);
        flushed
    };
    let reader = async move {
        let mut got = 0;
        let mut buf = [0; 4096];
        let mut half = None;
        loop {
            let n = b.read(&mut buf).await.unwrap();
            if n == 0 {
                return (got, half.unwrap());
            }
            got += n;
            if got >= len / 2 && half.is_none() {
                half = Some(start.elapsed());
            }
        }
    };
    let (flushed, (got, half)) = tokio::join!(writer, reader);
    assert_eq!(got, len);
    let expected = Duration::from_secs_f64(len as f64 / f64::from(RATE));
    let done = start.elapsed();
    // Exact but for the last frame's rounding and 1 ms timer ticks.
    assert!(
        done >= expected && done <= expected + Duration::from_millis(20),
        "{done:?} for {expected:?}"
    );
    assert!(
        flushed >= expected - Duration::from_millis(10) && flushed <= done,
        "{flushed:?}"
    );
    let half_expected = expected / 2;
    assert!(
        half >= half_expected - Duration::from_millis(20)
            && half <= half_expected + Duration::from_millis(20),
        "half the bytes after {half:?}, not {half_expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_and_jitter_delay_frames_without_reordering() {
    let latency = Duration::from_millis(100);
    let jitter = Duration::from_millis(50);
    let config =
        FaultConfig::new(17).with_a_to_b(Faults::none().with_latency(latency).with_jitter(jitter));
    let (mut a, mut b) = faulty_pair(config);
    let mut delays = Vec::new();
    for i in 1..=200u8 {
        let sent_at = Instant::now();
        a.write_all(&[i, 0x00]).await.unwrap();
        let mut got = [0; 2];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [i, 0x00]);
        delays.push(sent_at.elapsed());
    }
    let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
    // (+ 1 ms: the timer fires on millisecond ticks.)
    assert!(
        *min >= latency && *max <= latency + jitter + Duration::from_millis(1),
        "{min:?}..{max:?}"
    );
    assert!(*max - *min >= jitter / 2, "no jitter: {min:?}..{max:?}");

    // Frames written back to back arrive in order, whatever their jitter.
    let data = frames(500, 17).concat();
    a.write_all(&data).await.unwrap();
    drop(a);
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, data);
}

#[tokio::test(start_paused = true)]
async fn a_full_buffer_blocks_the_writer() {
    let (mut a, mut b) = faulty_pair(FaultConfig::new(18).with_buffer_len(1000));
    let blocked = tokio::time::timeout(Duration::from_secs(1), a.write_all(&[7; 5000])).await;
    assert!(blocked.is_err(), "5000 bytes went into a 1000-byte line");
    assert_eq!(a.handle().sent().bytes_written, 1000);
    let mut got = [0; 1000];
    b.read_exact(&mut got).await.unwrap();
    assert_eq!(got, [7; 1000]);
    drop(b);
    let err = a.write_all(b"x").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[tokio::test]
async fn the_serial_decoder_resynchronizes_over_drops_and_bit_errors() {
    const FRAMES: usize = 10_000;
    const MAX_FRAME_LEN: usize = 1024;
    let mut rng = SplitMix64::new(19);
    let sent: Vec<Vec<u8>> = (0..FRAMES as u32)
        .map(|i| {
            let mut frame = i.to_le_bytes().to_vec();
            let len = rng.below(200);
            frame.extend((0..len).map(|_| rng.next_u64() as u8)); // zeros too
            frame
        })
        .collect();
    let mut encoder = Framer::new(FramingKind::Serial, MAX_FRAME_LEN);
    let mut wire = BytesMut::new();
    for frame in &sent {
        encoder.encode(&frame[..4], &frame[4..], &mut wire);
    }
    let config =
        FaultConfig::new(19).with_a_to_b(Faults::none().with_drop(0.01).with_bit_error_rate(1e-5));
    let (got, stats) = transfer(config, &wire, 1500).await;

    let mut decoder = Framer::new(FramingKind::Serial, MAX_FRAME_LEN);
    let mut input = BytesMut::from(&got[..]);
    let mut decoded = Vec::new();
    loop {
        match decoder.decode(&mut input) {
            Ok(Some(frame)) => decoded.push(frame),
            Ok(None) => break,
            Err(_) => continue, // a damaged frame, already skipped
        }
    }
    // Every frame that arrives is intact, in order, once.
    let mut last = None;
    for frame in &decoded {
        let index = u32::from_le_bytes(frame[..4].try_into().unwrap());
        assert!(last < Some(index), "frame {index} after {last:?}");
        assert_eq!(frame[..], sent[index as usize][..], "frame {index} damaged");
        last = Some(index);
    }
    assert_eq!(stats.frames, FRAMES as u64);
    let lost = (FRAMES - decoded.len()) as u64;
    // Lost: the dropped frames, plus those hit by bit errors (a flipped
    // delimiter or a flip into 0x00 can cost a neighbour too).
    assert!(
        lost >= stats.dropped + stats.corrupted,
        "{lost} lost, {stats:?}"
    );
    assert!(
        lost <= stats.dropped + 2 * stats.corrupted,
        "{lost} lost, {stats:?}"
    );
    assert!(decoder.stats().dropped() > 0);
    // Drops ≈ 1% of 10,000 = 100 (σ ≈ 10); bit errors ≈ 1e-5 × ~9 Mbit ≈ 90.
    assert_near("dropped frames", stats.dropped, 100.0, 0.5);
    assert!(stats.corrupted > 30, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn a_wrapper_injects_what_the_pair_would() {
    let data = frames(5000, 20).concat();
    let faults = Faults::none()
        .with_drop(0.05)
        .with_duplicate(0.05)
        .with_truncate(0.05)
        .with_bit_error_rate(1e-3)
        .with_latency(Duration::from_millis(5))
        .with_jitter(Duration::from_millis(5));
    let config = FaultConfig::new(20).with_b_to_a(faults);

    // b → a over the pair...
    let (mut a, mut b) = faulty_pair(config.clone());
    let writer = async {
        b.write_all(&data).await.unwrap();
        b.shutdown().await.unwrap();
    };
    let mut over_pair = Vec::new();
    let ((), read) = tokio::join!(writer, a.read_to_end(&mut over_pair));
    read.unwrap();

    // ... and the same bytes read through a wrapped in-memory pipe.
    let (near, mut far) = tokio::io::duplex(1000);
    let mut near = Faulty::new(near, config);
    let writer = async {
        for chunk in data.chunks(333) {
            far.write_all(chunk).await.unwrap();
        }
        far.shutdown().await.unwrap();
    };
    let mut wrapped = Vec::new();
    let ((), read) = tokio::join!(writer, near.read_to_end(&mut wrapped));
    read.unwrap();

    assert_eq!(wrapped, over_pair);
    assert_eq!(near.handle().received(), a.handle().received());
    let stats = near.handle().received();
    assert!(
        stats.dropped > 0 && stats.duplicated > 0 && stats.truncated > 0 && stats.corrupted > 0
    );

    // Writes pass untouched.
    let (near, mut far) = tokio::io::duplex(1000);
    let mut near = Faulty::new(near, FaultConfig::new(20).with_faults(faults));
    near.write_all(b"clean\0").await.unwrap();
    let mut got = [0; 6];
    far.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"clean\0");
    assert_eq!(near.handle().sent().bytes_written, 6);
}

#[tokio::test(start_paused = true)]
async fn a_cut_wrapper_reads_eof_and_fails_writes() {
    let start = Instant::now();
    let (near, mut far) = tokio::io::duplex(1000);
    let config = FaultConfig::new(21).with_cuts(CutSchedule::at([Duration::from_secs(3)]));
    let mut near = Faulty::new(near, config);
    far.write_all(b"hi\0").await.unwrap();
    let mut got = [0; 3];
    near.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hi\0");
    // Waiting for more, the reader sees the cut at 3 s.
    assert_eq!(near.read(&mut [0; 8]).await.unwrap(), 0);
    assert_within(
        start.elapsed(),
        Duration::from_secs(3),
        Duration::from_millis(2),
    );
    let err = near.write_all(b"x").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);

    // A writer blocked on a full inner transport is failed by a manual cut.
    let (near, _far) = tokio::io::duplex(10);
    let mut near = Faulty::new(near, FaultConfig::new(22));
    let handle = near.handle();
    let writer = tokio::spawn(async move { near.write_all(&[1; 100]).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!writer.is_finished());
    handle.cut();
    let err = writer.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}
