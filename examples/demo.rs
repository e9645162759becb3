//! Run: `cargo run --release --example demo`
//!
//! Two netcore endpoints over an in-process serial line throttled to 115200 baud
//! (11,520 bytes/s each way, COBS + CRC-32C framing, ~10 ms chunks): a gateway
//! sends telemetry and urgent valve commands to a device while a 192 KiB file
//! transfer shares the same line. A progress bar follows the transfer; at the end a
//! table compares command latency without and with the transfer running.
//!
//! Everything runs on the real actor runtime (link, scheduler, stream and router
//! actors) in real time; no hardware needed. Takes about 25 s.
#![allow(clippy::print_stdout)]

use netcore::actors::transport::{throttled_pair, ThrottleConfig};
use netcore::{Endpoint, Link, LinkOptions, Priority, Progress, Reply, Request};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BAUD: u32 = 115_200;
const FILE_LEN: usize = 192 * 1024;

fn file_contents() -> Vec<u8> {
    (0..FILE_LEN).map(|i| (i % 251) as u8).collect()
}

/// Sends a command every 250 ms and telemetry every 200 ms until `stop`;
/// returns the command round-trip times.
async fn traffic(link: &Link, stop: &AtomicBool) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut next_telemetry = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= next_telemetry {
            let reading = format!(
                "{{\"temp\":21.5,\"ms\":{}}}",
                next_telemetry.elapsed().as_millis()
            );
            let _ = link.send("telemetry", reading).await;
            next_telemetry += Duration::from_millis(200);
        }
        let started = Instant::now();
        let answer = link
            .request("cmd/valve", vec![1u8; 32])
            .priority(Priority::Urgent)
            .timeout(Duration::from_secs(5))
            .await;
        if answer.is_ok() {
            latencies.push(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn row(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "  {name:<20} {:>8} {:>8.1} {:>8.1} {:>8.1}",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    );
}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let telemetry = Arc::new(AtomicUsize::new(0));
    let intact = Arc::new(AtomicBool::new(false));
    let (count, ok) = (telemetry.clone(), intact.clone());
    let device = Endpoint::builder()
        .route("cmd/valve", |_req: Request| async { Ok(Reply::new("ok")) })
        .route("telemetry", move |_req: Request| {
            count.fetch_add(1, Ordering::SeqCst);
            async { Ok(Reply::empty()) }
        })
        .route("file/upload", move |req: Request| {
            let ok = ok.clone();
            async move {
                let body = req.body.into_bytes().await?;
                ok.store(body[..] == file_contents()[..], Ordering::SeqCst);
                Ok::<_, netcore::HandlerError>(Reply::empty())
            }
        })
        .start();
    let gateway = Endpoint::builder().start();

    let (a, b) = throttled_pair(ThrottleConfig::serial_8n1(BAUD));
    let mut options = LinkOptions::serial(BAUD);
    options.flush = true; // the in-process line takes flushes without blocking
    let (link, device_link) = tokio::join!(
        gateway.attach(a, options.clone()),
        device.attach(b, options)
    );
    let (link, _device_link) = (link?, device_link?);
    println!("netcore demo: gateway <-> device over a simulated {BAUD}-baud serial line\n");

    println!("phase 1: commands and telemetry only (4 s)");
    let stop = AtomicBool::new(false);
    let (idle, ()) = tokio::join!(traffic(&link, &stop), async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        stop.store(true, Ordering::SeqCst);
    });

    println!(
        "phase 2: the same, plus a {} KiB file transfer",
        FILE_LEN / 1024
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("firmware.bin");
    std::fs::write(&path, file_contents())?;
    let started = Instant::now();
    let mut transfer = link.send_file("file/upload", &path).await?;
    let stop = AtomicBool::new(false);
    let (busy, ()) = tokio::join!(traffic(&link, &stop), async {
        let mut last_decile = 0;
        while let Some(Progress { sent: done, total }) = transfer.changed().await {
            let total = total.unwrap_or(FILE_LEN as u64).max(1);
            let decile = done * 10 / total;
            if decile > last_decile {
                last_decile = decile;
                let bar: String = (0..10)
                    .map(|i| if i < decile { '#' } else { '.' })
                    .collect();
                println!(
                    "  transfer [{bar}] {:>3}%  {done:>6} / {total} bytes  t={:.1}s",
                    decile * 10,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        // Let the last chunks cross the line before the traffic stops.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::SeqCst);
    });

    println!(
        "\n  file delivered intact: {}; telemetry readings received: {}",
        intact.load(Ordering::SeqCst),
        telemetry.load(Ordering::SeqCst)
    );
    println!("\n  command round trip (32-byte urgent request + answer), ms:");
    println!(
        "  {:<20} {:>8} {:>8} {:>8} {:>8}",
        "", "samples", "p50", "p99", "max"
    );
    row("without transfer", idle);
    row("during transfer", busy);
    gateway.stop().await;
    device.stop().await;
    Ok(())
}
