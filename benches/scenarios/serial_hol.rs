//! `serial_hol`: head-of-line blocking on a 115200-baud line. A sends B one large
//! bulk message (`Priority::Bulk`) over `throttled_pair(serial_8n1(115200))`; while
//! it crosses, A calls a 32-byte echo route on B every 250 ms (default priority)
//! and times each call. The same calls with the line idle give `idle_p50_ms`.
//!
//! `ideal_ms` is what one call must cost on this line: its request and response
//! wire bytes plus one full bulk chunk ahead of it (a chunk already on the wire is
//! never preempted), from real wire sizes: the request and response as the
//! protocol core measures them (`proto::overhead::rpc_wire_bytes`; the echo route
//! is named `"t"`, the route it uses, so the figure is exact), the chunk as a DATA
//! frame of the link's `chunk_len` encoded by the serial framing.

use crate::data::{compare, random_bytes};
use crate::peers::{Error, Peers};
use crate::report::Report;
use crate::stats::{fmt_ratio, ms, percentile};
use bytes::BytesMut;
use netcore::actors::transport::{throttled_pair, ThrottleConfig};
use netcore::proto::config::DEFAULT_MAX_FRAME_LEN;
use netcore::proto::frame::{Data, Envelope, Frame};
use netcore::proto::framing::{Framer, Framing, FramingKind};
use netcore::proto::overhead::rpc_wire_bytes;
use netcore::proto::StreamId;
use netcore::{Body, Endpoint, Link, LinkOptions, Priority, Reply, Request};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const BAUD: u32 = 115_200;
/// Bytes per second each way (8N1: 10 bits per byte).
pub const LINE_RATE: f64 = 11_520.0;
const ECHO_LEN: usize = 32;

/// The link options of the scenario (and of `lossy`): serial framing over a
/// byte channel flushed after each frame, so the next frame is picked only when
/// the line has taken the last one (`LinkOptions::serial_flushed`: ~15 ms
/// chunks, see its docs).
pub fn options() -> LinkOptions {
    LinkOptions::serial_flushed(LINE_RATE as u32 * 10)
}

/// Wire bytes of one full bulk chunk: a DATA frame of `chunk_len` random bytes
/// through the serial framing (not the first frame, which has a leading delimiter).
pub fn chunk_wire_bytes(chunk_len: usize) -> u64 {
    let frame = Envelope::from(Frame::Data(Data {
        stream: StreamId(3),
        payload: random_bytes(7, chunk_len),
        fin: false,
    }));
    let mut head = Vec::new();
    frame.encode_head(&mut head);
    let mut framer = Framer::new(FramingKind::Serial, DEFAULT_MAX_FRAME_LEN);
    let mut wire = BytesMut::new();
    framer.encode(&head, frame.frame.payload(), &mut wire);
    let first = wire.len();
    framer.encode(&head, frame.frame.payload(), &mut wire);
    (wire.len() - first) as u64
}

/// Runs the scenario.
pub fn run(quick: bool) -> Result<Report, Error> {
    let bulk_len: usize = if quick { 128 << 10 } else { 1 << 20 };
    let samples: usize = if quick { 10 } else { 40 };
    let chunk_len = options().config.chunk_len;
    let rpc_wire = rpc_wire_bytes(FramingKind::Serial, ECHO_LEN, ECHO_LEN);
    let chunk_wire = chunk_wire_bytes(chunk_len);
    let ideal_ms = (rpc_wire + chunk_wire) as f64 / LINE_RATE * 1000.0;
    let bulk = random_bytes(0x5e71a1, bulk_len);
    let mut report = Report::new("serial_hol");
    let (mut idle, mut busy) = (Vec::new(), Vec::new());
    let mut bulk_elapsed = Duration::ZERO;
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
        let (a, b) = throttled_pair(ThrottleConfig::serial_8n1(BAUD));
        let peers = Peers::start(
            server,
            move || async move { Ok(b) },
            async { Ok(a) },
            options(),
        )
        .await?;
        // Idle: the same calls with nothing else on the line.
        for i in 0..samples {
            idle.push(echo(&peers.link, i as u64, &mut report).await?);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let began = Instant::now();
        peers
            .link
            .send_with("bulk", bulk.clone(), Priority::Bulk)
            .await?;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.tick().await;
        for i in 0..samples {
            tick.tick().await;
            busy.push(echo(&peers.link, 1000 + i as u64, &mut report).await?);
        }
        let (at, body) = arrivals.recv().await.ok_or("server endpoint gone")?;
        bulk_elapsed = at - began;
        peers.reliable_fields(&mut report).await;
        match body.as_bytes() {
            Some(bytes) => {
                if let Some(why) = compare("bulk message", bytes, &bulk) {
                    report.fail(why);
                }
            }
            None => report.fail("bulk message: expected in memory"),
        }
        Ok::<(), Error>(())
    })?;
    let idle_p50 = ms(percentile(&mut idle, 50.0));
    let p50 = ms(percentile(&mut busy, 50.0));
    let p99 = ms(percentile(&mut busy, 99.0));
    let max = ms(busy.iter().copied().max().unwrap_or(Duration::MAX));
    let utilization = bulk_len as f64 / bulk_elapsed.as_secs_f64() / LINE_RATE;
    report.field("bulk_bytes", bulk_len);
    report.field("samples", samples);
    report.field("chunk_len", chunk_len);
    report.field("rpc_wire_bytes", rpc_wire);
    report.field("chunk_wire_bytes", chunk_wire);
    report.field("p50_ms", p50);
    report.field("p99_ms", p99);
    report.field("max_ms", max);
    report.field("idle_p50_ms", idle_p50);
    report.field("ideal_ms", ideal_ms);
    report.field("ratio_p99_ideal", p99 / ideal_ms);
    report.field("bulk_seconds", bulk_elapsed.as_secs_f64());
    report.field("bulk_utilization", utilization);
    report.row = format!(
        "{} KiB bulk + {samples} calls: p50 {p50:.1} ms, p99 {p99:.1} ms (idle p50 {idle_p50:.1} ms, ideal {ideal_ms:.1} ms, ratio {}), bulk utilization {utilization:.2}",
        bulk_len >> 10,
        fmt_ratio(p99 / ideal_ms)
    );
    report.goal("p99_ms ≤ 50", p99 <= 50.0, format!("{p99:.1} ms"));
    report.goal(
        "ratio_p99_ideal ≤ 1.5",
        p99 / ideal_ms <= 1.5,
        fmt_ratio(p99 / ideal_ms),
    );
    report.goal(
        "bulk_utilization ≥ 0.85",
        utilization >= 0.85,
        format!("{utilization:.3}"),
    );
    Ok(report)
}

/// One timed echo call with a distinct body; a wrong answer is recorded as a failure.
async fn echo(link: &Link, n: u64, report: &mut Report) -> Result<Duration, Error> {
    let body: Vec<u8> = (0..ECHO_LEN as u64).map(|i| (n * 31 + i) as u8).collect();
    let sent = Instant::now();
    let answer = link
        .request("t", body.clone())
        .timeout(Duration::from_secs(10))
        .await?;
    let elapsed = sent.elapsed();
    if answer.body.as_bytes().map(|b| &b[..]) != Some(&body[..]) {
        report.fail(format!("echo call {n}: wrong answer"));
    }
    Ok(elapsed)
}
