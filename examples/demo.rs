//! Run: `cargo run --release --example demo`
//!
//! Two netcore protocol links over a simulated 115200-baud serial line (11,520 bytes/s
//! each way, COBS + CRC-32C framing), in virtual time: telemetry, urgent commands and
//! a file transfer share the line at once. At the end, a table compares command
//! latency with and without the transfer running.
//!
//! This drives the sans-IO core (`netcore::proto`) directly through its deterministic
//! simulator; the actor runtime and `Endpoint` API build on exactly this state machine.
#![allow(clippy::print_stdout)]

use netcore::proto::link::{LinkConfig, LinkEvent, Message};
use netcore::proto::sim::{Pair, Wire};
use netcore::proto::{Instant, MessageKind, Priority, StreamId};
use std::collections::BTreeMap;
use std::time::Duration;

const BAUD: u32 = 115_200;
const FILE_LEN: usize = 192 * 1024;

/// Runs `seconds` of traffic; returns command latencies and, if a transfer ran, its id.
fn run(pair: &mut Pair, seconds: u64, with_transfer: bool) -> (Vec<Duration>, Option<StreamId>) {
    let start = pair.now;
    let file: Vec<u8> = (0..FILE_LEN).map(|i| (i % 251) as u8).collect();
    let transfer = with_transfer.then(|| {
        pair.a
            .link
            .one_way(Message::new("file/upload", file).with_priority(Priority::Bulk))
            .expect("link is connected")
    });
    let mut commands: BTreeMap<StreamId, Instant> = BTreeMap::new();
    let mut next_command = start;
    let mut next_telemetry = start;
    let mut last_decile = 0;
    let end = start + Duration::from_secs(seconds);
    while pair.now < end {
        if pair.now >= next_command {
            let id = pair
                .a
                .link
                .request(Message::new("cmd/valve", vec![1u8; 32]).with_priority(Priority::Urgent))
                .expect("link is connected");
            commands.insert(id, pair.now);
            next_command = next_command + Duration::from_millis(250);
        }
        if pair.now >= next_telemetry {
            let reading = format!("{{\"t\":{},\"temp\":21.5}}", pair.now.as_micros() / 1000);
            let _ = pair.a.link.one_way(Message::new("telemetry", reading));
            next_telemetry = next_telemetry + Duration::from_millis(200);
        }
        if let Some(id) = transfer {
            if let Some((sent, Some(total))) = pair.a.link.progress(id) {
                let decile = sent * 10 / total.max(1);
                if decile > last_decile {
                    last_decile = decile;
                    let bar: String = (0..10)
                        .map(|i| if i < decile { '#' } else { '.' })
                        .collect();
                    println!(
                        "  transfer [{bar}] {:>3}%  {:>6} / {} bytes  t={:.1}s",
                        decile * 10,
                        sent,
                        total,
                        (pair.now - start).as_secs_f64()
                    );
                }
            }
        }
        let next = next_command.min(next_telemetry).min(end);
        pair.drive_until(next);
    }
    pair.drive();
    if let Some(id) = transfer {
        let done = pair.a.events.iter().find_map(|(t, e)| match e {
            LinkEvent::Sent { stream } if *stream == id => Some(*t),
            _ => None,
        });
        if let Some(t) = done {
            println!(
                "  transfer [##########] 100%  {FILE_LEN:>6} / {FILE_LEN} bytes  t={:.1}s",
                (t - start).as_secs_f64()
            );
        }
    }
    let answered: BTreeMap<StreamId, Instant> = pair
        .a
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            LinkEvent::Message { head, .. } if head.kind == MessageKind::Response => {
                Some((head.stream, *t))
            }
            _ => None,
        })
        .collect();
    let mut latencies: Vec<Duration> = commands
        .iter()
        .filter_map(|(id, sent)| answered.get(id).map(|t| *t - *sent))
        .collect();
    latencies.sort();
    (latencies, transfer)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    println!("netcore demo: two links over a simulated {BAUD}-baud serial line (virtual time)");
    let mut pair = Pair::new(
        LinkConfig::serial(BAUD, 0xA11CE),
        LinkConfig::serial(BAUD, 0xB0B),
        Wire::rated(u64::from(BAUD / 10)),
    );
    // Side B: the device. Answers commands, counts telemetry, receives the file.
    pair.on_b(Box::new(|link, event, _now| {
        if let LinkEvent::Message { head, body } = event {
            if head.kind == MessageKind::Request {
                let reply = Message::new("", body.clone()).with_priority(head.priority);
                let _ = link.respond(head.stream, Ok(()), reply);
            }
        }
    }));
    pair.drive();
    println!(
        "  chunk size {} bytes (~10 ms on the wire each)",
        pair.a.link.chunk_len()
    );

    println!("\n[1] commands + telemetry, no transfer (10 s)");
    let (idle, _) = run(&mut pair, 10, false);

    println!(
        "\n[2] commands + telemetry + a {} KiB file transfer",
        FILE_LEN / 1024
    );
    let transfer_secs = (FILE_LEN as u64 * 10 / u64::from(BAUD / 10)) / 10 + 2;
    let (busy, transfer) = run(&mut pair, transfer_secs, true);

    let delivered = pair.b.events.iter().any(|(_, e)| match e {
        LinkEvent::Message { head, body } => {
            Some(head.stream) == transfer && body.len() == FILE_LEN
        }
        _ => false,
    });
    let telemetry = pair
        .b
        .events
        .iter()
        .filter(|(_, e)| matches!(e, LinkEvent::Message { head, .. } if head.route == "telemetry"))
        .count();
    println!("\n  file delivered intact: {delivered}; telemetry readings received: {telemetry}");
    println!("\n  command round trip (32-byte urgent request + answer), virtual ms:");
    println!(
        "  {:<22} {:>8} {:>8} {:>8} {:>8}",
        "", "samples", "p50", "p99", "max"
    );
    for (name, lat) in [("without transfer", &idle), ("during transfer", &busy)] {
        println!(
            "  {:<22} {:>8} {:>8.1} {:>8.1} {:>8.1}",
            name,
            lat.len(),
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            percentile(lat, 1.0)
        );
    }
    let stats = pair.b.link.stats();
    println!(
        "\n  B received {} frames, {} wire bytes, dropped {} damaged frames",
        stats.frames_in,
        stats.bytes_in,
        stats.framing.dropped()
    );
    if !delivered {
        std::process::exit(1);
    }
}
