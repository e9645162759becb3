//! `radio_pacing`: a radio path whose air is much slower than its UART. Both ends'
//! UART runs at 115,200 baud 8N1 (11,520 B/s) into a modem that buffers up to
//! 16 KiB and sends over the air at 2,400 B/s each way, 20 ms air latency, 0.5%
//! frame loss from a fixed seed (`modem_pair`; a full modem buffer drops bytes).
//! The links run the options of a 115200-baud serial link (`serial_hol::options`):
//! nobody tells them the air rate. A sends B one bulk message (`Priority::Bulk`);
//! while it crosses, A calls a 32-byte echo route on B at `Priority::Urgent` every
//! 500 ms and times each call.
//!
//! `ideal_ms` is what one call must cost on the air: its request and response wire
//! bytes plus one full bulk chunk ahead of it, at the air rate, plus the air
//! latency each way. `bulk_utilization` is the bulk payload's share of the air.

use crate::data::{compare, random_bytes};
use crate::peers::{Error, Peers};
use crate::report::Report;
use crate::serial_hol::{chunk_wire_bytes, options};
use crate::stats::{fmt_ratio, ms, percentile};
use netcore::actors::transport::{modem_pair, ModemConfig};
use netcore::proto::framing::FramingKind;
use netcore::proto::overhead::rpc_wire_bytes;
use netcore::{Body, Endpoint, Link, Priority, Reply, Request};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const BAUD: u32 = 115_200;
/// Bytes per second over the air, each way.
const AIR_RATE: f64 = 2_400.0;
const AIR_LATENCY: Duration = Duration::from_millis(20);
const FRAME_LOSS: f64 = 0.005;
const MODEM_BUFFER: usize = 16 * 1024;
const SEED: u64 = 0x7ad10;
const ECHO_LEN: usize = 32;

/// The radio path of the scenario (and of the pacing tests' figures).
fn path() -> ModemConfig {
    ModemConfig::sik(BAUD, AIR_RATE as u32, SEED)
        .with_latency(AIR_LATENCY)
        .with_frame_loss(FRAME_LOSS)
        .with_buffer_len(MODEM_BUFFER)
}

/// Runs the scenario.
pub fn run(quick: bool) -> Result<Report, Error> {
    let bulk_len: usize = if quick { 64 << 10 } else { 256 << 10 };
    let samples: usize = if quick { 12 } else { 40 };
    let chunk_len = options().config.chunk_len;
    let rpc_wire = rpc_wire_bytes(FramingKind::Serial, ECHO_LEN, ECHO_LEN);
    let chunk_wire = chunk_wire_bytes(chunk_len);
    let ideal_ms =
        (rpc_wire + chunk_wire) as f64 / AIR_RATE * 1000.0 + 2.0 * AIR_LATENCY.as_secs_f64() * 1e3;
    let bulk = random_bytes(0x7ad1_0b01, bulk_len);
    let mut report = Report::new("radio_pacing");
    let mut busy = Vec::new();
    let mut bulk_elapsed = Duration::ZERO;
    let mut intact = true;
    let mut starts = Vec::new();
    let (a, b) = modem_pair(path());
    let modem = a.handle();
    actix_rt::System::new().block_on(async {
        let (tx, mut arrivals) = mpsc::unbounded_channel::<(Instant, Body)>();
        let server = Endpoint::builder()
            .route("t", |req: Request| async move {
                Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
            })
            .route("bulk", move |req: Request| {
                let _ = tx.send((Instant::now(), req.body));
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
        peers
            .link
            .send_with("bulk", bulk.clone(), Priority::Bulk)
            .await?;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        for i in 0..samples {
            tick.tick().await;
            starts.push(began.elapsed().as_secs_f64());
            let (elapsed, right) = echo(&peers.link, i as u64).await?;
            if !right {
                intact = false;
                report.fail(format!("echo call {i}: wrong answer"));
            }
            busy.push(elapsed);
        }
        let (at, body) = arrivals.recv().await.ok_or("server endpoint gone")?;
        bulk_elapsed = at - began;
        peers.reliable_fields(&mut report).await;
        match body.as_bytes() {
            Some(bytes) => {
                if let Some(why) = compare("bulk message", bytes, &bulk) {
                    intact = false;
                    report.fail(why);
                }
            }
            None => {
                intact = false;
                report.fail("bulk message: expected in memory");
            }
        }
        Ok::<(), Error>(())
    })?;
    let each: Vec<f64> = busy.iter().map(|d| ms(*d)).collect();
    let p50 = ms(percentile(&mut busy, 50.0));
    let p99 = ms(percentile(&mut busy, 99.0));
    let max = ms(busy.iter().copied().max().unwrap_or(Duration::MAX));
    let utilization = bulk_len as f64 / bulk_elapsed.as_secs_f64() / AIR_RATE;
    let sent = modem.sent();
    report.field("bulk_bytes", bulk_len);
    report.field("samples", samples);
    report.field("chunk_len", chunk_len);
    report.field("rpc_wire_bytes", rpc_wire);
    report.field("chunk_wire_bytes", chunk_wire);
    report.field("p50_ms", p50);
    report.field("p99_ms", p99);
    report.field("max_ms", max);
    report.field("calls_ms", each);
    report.field("calls_start_s", starts);
    report.field("ideal_ms", ideal_ms);
    report.field("ratio_p99_ideal", p99 / ideal_ms);
    report.field("bulk_seconds", bulk_elapsed.as_secs_f64());
    report.field("bulk_utilization", utilization);
    report.field("intact", intact);
    report.field("modem_max_buffered", sent.max_buffered);
    report.field("modem_overflow_bytes", sent.overflow_bytes);
    report.field("air_frames", sent.frames);
    report.field("air_lost", sent.lost);
    report.field("air_lost_back", modem.received().lost);
    report.row = format!(
        "{} KiB bulk + {samples} urgent calls: p50 {p50:.0} ms, p99 {p99:.0} ms (ideal {ideal_ms:.0} ms, ratio {}), bulk utilization {utilization:.2}, modem buffer max {} B, {} B overflowed",
        bulk_len >> 10,
        fmt_ratio(p99 / ideal_ms),
        sent.max_buffered,
        sent.overflow_bytes,
    );
    report.goal("intact", intact, intact.to_string());
    report.goal(
        "ratio_p99_ideal ≤ 3",
        p99 / ideal_ms <= 3.0,
        fmt_ratio(p99 / ideal_ms),
    );
    report.goal(
        "bulk_utilization ≥ 0.75",
        utilization >= 0.75,
        format!("{utilization:.3}"),
    );
    Ok(report)
}

/// One timed urgent echo call with a distinct body: its time, and whether the
/// answer was the body sent.
async fn echo(link: &Link, n: u64) -> Result<(Duration, bool), Error> {
    let body: Vec<u8> = (0..ECHO_LEN as u64).map(|i| (n * 31 + i) as u8).collect();
    let sent = Instant::now();
    let answer = link
        .request("t", body.clone())
        .priority(Priority::Urgent)
        .timeout(Duration::from_secs(120))
        .await?;
    let elapsed = sent.elapsed();
    Ok((
        elapsed,
        answer.body.as_bytes().map(|b| &b[..]) == Some(&body[..]),
    ))
}
