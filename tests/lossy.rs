//! Flaky links: 500 messages of random sizes (0 to 64 KiB) over a line of 4 MB/s
//! with 1% frame loss and a 1e-5 bit error rate both ways. The reliable mode
//! (on by default for the serial framing) delivers every message exactly once and
//! byte-identical.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use netcore::actors::transport::{faulty_pair, FaultConfig, Faults};
use netcore::{Endpoint, LinkOptions};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MESSAGES: u32 = 500;

/// Deterministic message `i`: its size (0..=64 KiB) and bytes come from `i`.
fn message(i: u32) -> Vec<u8> {
    let mut rng = netcore::proto::rng::SplitMix64::new(u64::from(i));
    let len = rng.below(64 * 1024 + 1) as usize;
    rng.bytes(len)
}

#[actix_rt::test]
async fn five_hundred_messages_over_a_lossy_line_arrive_once_and_intact() {
    let received: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
    let log = received.clone();
    let server = Endpoint::builder()
        .route("m", move |h: netcore::Headers, body: Bytes| {
            let log = log.clone();
            async move {
                let i: u32 = std::str::from_utf8(h.get("i").unwrap_or(b"x"))
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u32::MAX);
                let intact = i < MESSAGES && body[..] == message(i)[..];
                *log.lock().unwrap().entry(i).or_default() += 1;
                if intact {
                    "ok"
                } else {
                    "corrupt"
                }
            }
        })
        .start();
    let client = Endpoint::builder().start();
    let faults = Faults::none()
        .with_drop(0.01)
        .with_bit_error_rate(1e-5)
        .with_bytes_per_sec(4_000_000);
    let (a, b) = faulty_pair(FaultConfig::new(2026).with_faults(faults));
    let stats = (a.handle(), b.handle());
    let options = || {
        let mut options = LinkOptions::serial_flushed(40_000_000);
        // Short frames: at a 1e-5 bit error rate a 512-byte chunk survives 96% of
        // the time, a 40 KB one almost never.
        options.config.chunk_len = 512;
        if let Some(reliable) = options.config.reliable.as_mut() {
            reliable.window = 64;
        }
        options
    };
    let (l, _s) = tokio::join!(client.attach(a, options()), server.attach(b, options()));
    let link = l.unwrap();

    let calls = (0..MESSAGES).map(|i| {
        let link = link.clone();
        async move {
            let answer = link
                .request("m", message(i))
                .header("i", i.to_string())
                .timeout(Duration::from_secs(120))
                .await
                .unwrap();
            assert_eq!(
                answer.body.as_bytes().unwrap().as_ref(),
                b"ok",
                "message {i}"
            );
        }
    });
    // 16 calls in flight at a time.
    use futures_util::StreamExt;
    futures_util::stream::iter(calls)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;

    let received = received.lock().unwrap();
    assert_eq!(received.len(), MESSAGES as usize, "every message arrived");
    assert!(received.values().all(|&n| n == 1), "none twice");
    let (sent_a, sent_b) = (stats.0.sent(), stats.1.sent());
    eprintln!("faults A→B {sent_a:?}\nfaults B→A {sent_b:?}");
    assert!(
        sent_a.dropped > 0 && sent_a.corrupted > 0,
        "faults really happened: {sent_a:?}"
    );
    assert!(
        sent_b.dropped + sent_b.corrupted > 0,
        "faults really happened: {sent_b:?}"
    );
}
