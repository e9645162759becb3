//! One-way sends are paced by the wire: a producer calling `Link::send` as fast
//! as it can over a slow line gets at most `LinkOptions::one_way_queue` bytes of
//! messages ahead of the wire, then waits for the line (without the bound, every
//! send returned at once and the queue grew with the producer).
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::within;
use netcore::actors::one_way_queue::PER_MESSAGE;
use netcore::actors::transport::{throttled_pair, ThrottleConfig};
use netcore::{Endpoint, LinkOptions, Reply, Request};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// 9,600 baud: 960 bytes/s each way.
const RATE: u32 = 960;
const MESSAGE_LEN: usize = 200;
/// Room for four messages ahead of the wire.
const QUEUE: usize = 4 * (MESSAGE_LEN + 1 + PER_MESSAGE);

#[actix_rt::test]
async fn a_fast_producer_is_paced_by_the_wire() {
    let received = Arc::new(AtomicU64::new(0));
    let counted = received.clone();
    let receiver = Endpoint::builder()
        .route("m", move |req: Request| {
            assert_eq!(req.body.as_bytes().map(Bytes::len), Some(MESSAGE_LEN));
            counted.fetch_add(1, Ordering::Relaxed);
            async { Ok(Reply::empty()) }
        })
        .start();
    let sender = Endpoint::builder().start();
    let (a, b) = throttled_pair(ThrottleConfig::serial_8n1(RATE * 10));
    let mut options = LinkOptions::serial_flushed(RATE * 10);
    options.one_way_queue = QUEUE;
    let (link, other) = tokio::join!(
        sender.attach(a, options.clone()),
        receiver.attach(b, options)
    );
    let (link, _other) = (link.unwrap(), other.unwrap());

    // Send as fast as the link takes messages, for one second.
    let body = Bytes::from(vec![7u8; MESSAGE_LEN]);
    let began = Instant::now();
    let mut sent = 0u64;
    let mut most_ahead = 0u64;
    while began.elapsed() < Duration::from_secs(1) {
        within("a send", link.send("m", body.clone()))
            .await
            .unwrap();
        sent += 1;
        most_ahead = most_ahead.max(sent - received.load(Ordering::Relaxed));
    }
    // The line carries under five such messages a second; the queue holds four
    // more, the line and the reliable window a few in flight. Unbounded, the
    // loop queued thousands.
    assert!(
        sent <= 16,
        "{sent} messages queued in a second at {RATE} B/s"
    );
    assert!(
        most_ahead <= 12,
        "{most_ahead} messages were ahead of the receiver"
    );
    // Everything queued still arrives.
    within("every message arrives", async {
        while received.load(Ordering::Relaxed) < sent {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[actix_rt::test]
async fn a_message_larger_than_the_queue_goes_alone() {
    let received = Arc::new(AtomicU64::new(0));
    let counted = received.clone();
    let receiver = Endpoint::builder()
        .route("m", move |_: Request| {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Ok(Reply::empty()) }
        })
        .start();
    let sender = Endpoint::builder().start();
    let (a, b) = tokio::io::duplex(4096);
    let mut options = LinkOptions::serial(115_200);
    options.one_way_queue = 1024;
    let (link, other) = tokio::join!(
        sender.attach(a, options.clone()),
        receiver.attach(b, options)
    );
    let (link, _other) = (link.unwrap(), other.unwrap());
    for _ in 0..3 {
        within("a large send", link.send("m", vec![1u8; 8 * 1024]))
            .await
            .unwrap();
    }
    within("every message arrives", async {
        while received.load(Ordering::Relaxed) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}
