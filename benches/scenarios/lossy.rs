//! `lossy`: one-way messages of random size (0..16 KiB, fixed seed) A→B over a
//! 115200-baud line that loses 1% of frames and flips bits at 1e-5, both ways
//! (the public fault injector, `netcore::actors::transport::faulty_pair`, from a
//! fixed seed; its faults start after each direction's first frame, the HELLO,
//! so the handshake gets through). Messages are sent as fast as the link takes
//! them; each goes to route `m/<i>` and is checked against what was sent.
//!
//! The links run the serial defaults, reliable mode included: a frame lost on the
//! line, or dropped by the framing because its CRC failed, is retransmitted, so
//! every message must arrive once and intact. The run waits until every message
//! arrived, or the line has had time to carry all of them (their wire size at
//! line rate, plus a quarter, plus 5 s) and nothing arrived for 5 s.

use crate::data::Rng;
use crate::peers::{Error, Peers};
use crate::report::Report;
use crate::serial_hol::{options, LINE_RATE};
use bytes::Bytes;
use netcore::actors::transport::{faulty_pair, FaultConfig, Faults};
use netcore::{Body, Endpoint, Reply, Request};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const SEED: u64 = 0x1055;
const FRAME_LOSS: f64 = 0.01;
const BIT_ERROR_RATE: f64 = 1e-5;

/// Runs the scenario.
pub fn run(quick: bool) -> Result<Report, Error> {
    let count: usize = if quick { 50 } else { 200 };
    let mut rng = Rng::new(SEED);
    let messages: Vec<Bytes> = (0..count)
        .map(|_| {
            let len = rng.below(16 * 1024) as usize;
            let mut body = vec![0u8; len];
            rng.fill(&mut body);
            Bytes::from(body)
        })
        .collect();
    let total: usize = messages.iter().map(Bytes::len).sum();
    let faults = Faults::none()
        .with_drop(FRAME_LOSS)
        .with_bit_error_rate(BIT_ERROR_RATE)
        .with_bytes_per_sec(LINE_RATE as u32)
        .with_clean_frames(1);
    let (a, b) = faulty_pair(FaultConfig::new(SEED).with_faults(faults));
    let line = a.handle();
    let mut report = Report::new("lossy");
    let mut seen = vec![0u32; count];
    let (mut delivered, mut intact, mut intact_bytes) = (0usize, 0usize, 0usize);
    let mut elapsed = Duration::ZERO;
    actix_rt::System::new().block_on(async {
        let (tx, mut arrivals) = mpsc::unbounded_channel::<(Instant, String, Body)>();
        let server = Endpoint::builder().default_handler(move |req: Request| {
            let _ = tx.send((Instant::now(), req.head.route.clone(), req.body));
            async { Ok(Reply::empty()) }
        });
        let peers = Peers::start(
            server,
            move || async move { Ok(b) },
            async { Ok(a) },
            options(),
        )
        .await?;
        let began = Instant::now();
        for (i, body) in messages.iter().enumerate() {
            peers.link.send(format!("m/{i}"), body.clone()).await?;
        }
        // Wire time of everything at line rate, with ~10% framing overhead.
        let carried = Duration::from_secs_f64(total as f64 * 1.1 / LINE_RATE);
        let patience = carried + carried / 4 + Duration::from_secs(5);
        let quiet = Duration::from_secs(5);
        let mut last = began;
        while delivered < count {
            // Wait while the line may still be carrying messages, or one arrived lately.
            let wait = patience
                .saturating_sub(began.elapsed())
                .max(quiet.saturating_sub(last.elapsed()));
            if wait.is_zero() {
                break;
            }
            let Ok(arrival) = tokio::time::timeout(wait, arrivals.recv()).await else {
                continue;
            };
            let (at, route, body) = arrival.ok_or("server endpoint gone")?;
            last = at;
            let Some(i) = route
                .strip_prefix("m/")
                .and_then(|i| i.parse::<usize>().ok())
                .filter(|&i| i < count)
            else {
                report.fail(format!("unexpected route {route:?}"));
                continue;
            };
            seen[i] += 1;
            if seen[i] > 1 {
                continue;
            }
            delivered += 1;
            if body.as_bytes() == Some(&messages[i]) {
                intact += 1;
                intact_bytes += messages[i].len();
                elapsed = at - began;
            }
        }
        Ok::<(), Error>(())
    })?;
    let duplicates: u32 = seen.iter().map(|&n| n.saturating_sub(1)).sum();
    let goodput = intact_bytes as f64 / elapsed.as_secs_f64().max(1e-9) / LINE_RATE;
    let (there, back) = (line.sent(), line.received());
    let frames = there.frames + back.frames;
    let dropped = there.dropped + back.dropped;
    let flipped = there.bits_flipped + back.bits_flipped;
    report.field("sent", count);
    report.field("delivered", delivered);
    report.field("intact", intact);
    report.field("duplicates", u64::from(duplicates));
    report.field("goodput_ratio", goodput);
    report.field("payload_bytes", total);
    report.field("intact_bytes", intact_bytes);
    report.field("seconds", elapsed.as_secs_f64());
    report.field("frames_on_line", frames);
    report.field("frames_dropped", dropped);
    report.field("bits_flipped", flipped);
    report.row = format!(
        "{count} msgs, {} KiB, 1% frame loss + 1e-5 BER: delivered {delivered}, intact {intact}, duplicates {duplicates}, goodput {goodput:.2} (line: {frames} frames, {dropped} dropped, {flipped} bits flipped)",
        total >> 10
    );
    if delivered < count || intact < delivered || duplicates > 0 {
        report.fail(format!(
            "{} of {count} messages lost or damaged",
            count - intact.min(count)
        ));
    }
    let all = delivered == count && intact == count && duplicates == 0;
    let why = if all {
        format!("{intact}/{count} intact")
    } else {
        format!("{intact}/{count} intact, {duplicates} duplicates")
    };
    report.goal("delivered = intact = sent, duplicates = 0", all, why);
    report.goal(
        "goodput_ratio ≥ 0.80",
        goodput >= 0.80,
        format!("{goodput:.2}"),
    );
    Ok(report)
}
