//! Link statistics over real links: payload counted exactly over TCP, open
//! streams and calls seen while held and back to 0 after, queued bytes by class
//! on a slow line, the reliable mode's round trip, retransmissions and integrity
//! drops over a faulty line, reconnections counted, the endpoint's totals, and the
//! JSON form.
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::{faulty_pair, BoxedTransport, FaultConfig, Faults, FaultyLine};
use netcore::actors::Connector;
use netcore::{Endpoint, Link, LinkOptions, LinkStats, LinkStatus, Priority};
use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

/// Polls `link`'s stats until `done` holds (20 s at most: reached only on a
/// hang); returns the snapshot that satisfied it.
async fn stats_until(link: &Link, what: &str, done: impl Fn(&LinkStats) -> bool) -> LinkStats {
    common::within(what, async {
        loop {
            let stats = link.stats().await.expect("link up");
            if done(&stats) {
                return stats;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Nothing queued, open or in service.
fn quiet(s: &LinkStats) -> bool {
    s.queued_bytes.total() == 0
        && s.streams_out == 0
        && s.streams_in == 0
        && s.calls_awaiting_answer == 0
        && s.requests_in_service == 0
        && s.buffered_bytes_in == 0
        && s.in_flight_frames.unwrap_or(0) == 0
}

async fn all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}

#[actix_rt::test]
async fn tcp_counts_payload_exactly_and_streams_close() {
    const CALLS: usize = 30;
    const SENDS: usize = 40;
    let gate = common::Gate::new();
    let sent = Arc::new(AtomicU64::new(0));
    let seen = sent.clone();
    let server = Endpoint::builder().route("held", gate.handler()).route(
        "log",
        move |body: bytes::Bytes| {
            seen.fetch_add(body.len() as u64, Ordering::SeqCst);
            async {}
        },
    );
    let (endpoint, server_link, _client, link) =
        common::tcp_pair(server, Endpoint::builder()).await;
    let calls: Vec<_> = (0..CALLS)
        .map(|i| link.request("held", vec![i as u8; 1000 + i]).start())
        .collect();
    let pending: Vec<_> = all(calls).await.into_iter().map(Result::unwrap).collect();
    gate.started_n(CALLS).await;
    // Held: every call open on both sides.
    let held = link.stats().await.unwrap();
    assert_eq!(held.calls_awaiting_answer, CALLS as u64, "{held:?}");
    let served = server_link.stats().await.unwrap();
    assert_eq!(served.requests_in_service, CALLS as u64, "{served:?}");
    for i in 0..SENDS {
        link.send("log", vec![7u8; 500 * i]).await.unwrap();
    }
    gate.release(CALLS);
    for call in pending {
        common::within("an answer", call.response()).await.unwrap();
    }
    let request_bytes: u64 = (0..CALLS).map(|i| 1000 + i as u64).sum();
    let one_way_bytes: u64 = (0..SENDS).map(|i| 500 * i as u64).sum();
    common::within("the one-way messages", async {
        while sent.load(Ordering::SeqCst) < one_way_bytes {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let client = stats_until(&link, "the client to go quiet", quiet).await;
    let server = stats_until(&server_link, "the server to go quiet", quiet).await;
    // The answers echo the requests.
    assert_eq!(client.payload_out, request_bytes + one_way_bytes);
    assert_eq!(server.payload_in, client.payload_out);
    assert_eq!(server.payload_out, request_bytes);
    assert_eq!(client.payload_in, request_bytes);
    assert!(client.frames_out >= (CALLS + SENDS) as u64, "{client:?}");
    assert!(server.frames_in >= (CALLS + SENDS) as u64, "{server:?}");
    assert!(
        client.bytes_out > client.payload_out,
        "heads and framing count"
    );
    assert!(server.bytes_in > server.payload_in);
    assert_eq!(client.state, LinkStatus::Up);
    assert_eq!(client.reconnects, 0);
    assert!(client.time_in_state <= client.uptime && client.uptime > Duration::ZERO);
    // TCP runs without the reliable mode: no round trip, nothing retransmitted.
    assert!(!client.reliable && client.srtt.is_none() && client.in_flight_bytes.is_none());
    assert_eq!((client.retransmissions, client.dropped.total()), (0, 0));
    // The server endpoint's one link, and the totals of it.
    let all = endpoint.stats().await;
    assert_eq!(all.links.len(), 1);
    assert_eq!(all.links[0].link, server_link.id());
    assert_eq!(all.totals.links, 1);
    assert_eq!(all.totals.up, 1);
    assert_eq!(all.totals.payload_in, server.payload_in);
    assert_eq!(all.totals.payload_out, server.payload_out);
}

#[actix_rt::test]
async fn a_slow_line_shows_queued_bytes_by_class_until_sent() {
    const LEN: usize = 256 * 1024;
    let server = Endpoint::builder()
        .route("bulk", |body: bytes::Bytes| async move {
            body.len().to_string()
        })
        .start();
    let client = Endpoint::builder().start();
    // 64 KB/s: the body takes about four seconds to leave.
    let faults = Faults::none().with_bytes_per_sec(64_000);
    let (a, b) = faulty_pair(FaultConfig::new(1).with_faults(faults));
    let options = LinkOptions::serial_flushed(640_000);
    let (l, s) = tokio::join!(
        client.attach(a, options.clone()),
        server.attach(b, options.clone())
    );
    let (link, _server_link) = (l.unwrap(), s.unwrap());
    let call = link
        .request("bulk", vec![1u8; LEN])
        .priority(Priority::Bulk)
        .timeout(common::HANG)
        .start()
        .await
        .unwrap();
    let sending = link.stats().await.unwrap();
    let bulk = sending.queued_bytes.get(Priority::Bulk);
    assert!(bulk > 0 && bulk <= LEN as u64, "{sending:?}");
    assert_eq!(sending.queued_bytes.total(), bulk);
    assert_eq!(sending.streams_out, 1);
    assert_eq!(sending.calls_awaiting_answer, 1);
    assert!(sending.payload_out + bulk <= LEN as u64);
    let answer = common::within("the answer", call.response()).await.unwrap();
    assert_eq!(
        answer.body.as_bytes().unwrap().as_ref(),
        LEN.to_string().as_bytes()
    );
    let done = stats_until(&link, "the client to go quiet", quiet).await;
    assert_eq!(done.payload_out, LEN as u64);
    assert_eq!(done.queued_bytes.total(), 0);
}

#[actix_rt::test]
async fn a_faulty_line_counts_retransmissions_drops_and_round_trips() {
    const CALLS: usize = 100;
    let server = Endpoint::builder()
        .route("echo", |body: bytes::Bytes| async move { body })
        .start();
    let client = Endpoint::builder().start();
    // Frames lost and bits flipped both ways: the receiver drops damaged frames
    // (CRC), the reliable mode sends them again.
    let faults = Faults::none()
        .with_drop(0.01)
        .with_bit_error_rate(1e-5)
        .with_bytes_per_sec(2_000_000);
    let (a, b) = faulty_pair(FaultConfig::new(2027).with_faults(faults));
    let options = || {
        let mut options = LinkOptions::serial_flushed(20_000_000);
        options.config.chunk_len = 512;
        options
    };
    let (l, s) = tokio::join!(client.attach(a, options()), server.attach(b, options()));
    let (link, server_link) = (l.unwrap(), s.unwrap());
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            // Generous: a loaded machine stretches the retransmission timers.
            link.request("echo", common::random_bytes(i as u64, 2000))
                .timeout(Duration::from_secs(120))
                .into_future()
        })
        .collect();
    for answer in all(calls).await {
        assert_eq!(answer.unwrap().body.as_bytes().unwrap().len(), 2000);
    }
    let client = stats_until(&link, "the client's frames acknowledged", quiet).await;
    let server = stats_until(&server_link, "the server's frames acknowledged", quiet).await;
    assert!(client.reliable);
    assert_eq!(
        client.payload_out,
        CALLS as u64 * 2000,
        "retransmissions are not payload"
    );
    assert_eq!(
        server.payload_in, client.payload_out,
        "duplicates are not payload"
    );
    assert_eq!(client.payload_in, CALLS as u64 * 2000);
    assert!(
        client.retransmissions + server.retransmissions > 0,
        "{client:?} {server:?}"
    );
    assert!(
        client.dropped.crc + server.dropped.crc > 0,
        "bit errors fail the checksum: {client:?} {server:?}"
    );
    assert_eq!(client.dropped.tampered, 0);
    let srtt = client.srtt.expect("a round trip measured");
    assert!(srtt > Duration::ZERO);
    assert!(client.rto.unwrap() >= srtt);
    assert!(client.rttvar.is_some());
    assert_eq!(client.in_flight_bytes, Some(0));
}

#[actix_rt::test]
async fn a_reconnection_is_reported_counted_and_restarts_the_state_clock() {
    let line = FaultyLine::new(FaultConfig::new(11));
    let (a, b) = line.reconnect();
    let (to_b, from_a) = tokio::sync::mpsc::unbounded_channel::<BoxedTransport>();
    // The line comes back when the test says so.
    let line_back = Arc::new(tokio::sync::Semaphore::new(0));
    let back = line_back.clone();
    let connector_a = common::opening_connector(&line, to_b, move || {
        let back = back.clone();
        async move {
            back.acquire()
                .await
                .map_err(std::io::Error::other)?
                .forget();
            Ok(())
        }
    });
    let connector_b = common::receiving_connector(from_a);
    let options = |connector: Connector| {
        let mut options = LinkOptions::serial_flushed(40_000_000);
        options.connector = Some(connector);
        options
    };
    let server = Endpoint::builder()
        .route("ping", || async { "pong" })
        .start();
    let client = Endpoint::builder().start();
    let (l, s) = tokio::join!(
        client.attach(a, options(connector_a)),
        server.attach(b, options(connector_b))
    );
    let (link, server_link) = (l.unwrap(), s.unwrap());
    let ping = || link.request("ping", "").timeout(common::HANG);
    ping().await.unwrap();
    let before = link.stats().await.unwrap();
    assert_eq!((before.reconnects, before.state), (0, LinkStatus::Up));
    // Up for a while, so the state clock visibly restarts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    line.cut();
    let broken = stats_until(&link, "the link to see the cut", |s| {
        s.state == LinkStatus::Reconnecting
    })
    .await;
    assert_eq!(broken.reconnects, 0);
    assert!(broken.time_in_state < broken.uptime, "{broken:?}");
    line_back.add_permits(1);
    let after = stats_until(&link, "the link to reconnect", |s| {
        s.reconnects == 1 && s.state == LinkStatus::Up
    })
    .await;
    ping().await.unwrap();
    assert!(after.time_in_state < after.uptime, "{after:?}");
    assert!(
        after.uptime - after.time_in_state >= Duration::from_millis(300),
        "the state changed after the cut: {after:?}"
    );
    let server_after = stats_until(&server_link, "the server's side to reconnect", |s| {
        s.reconnects == 1 && s.state == LinkStatus::Up
    })
    .await;
    assert_eq!(server_after.reconnects, 1);
    let totals = client.stats().await.totals;
    assert_eq!(totals.reconnects, 1);
}

#[actix_rt::test]
async fn stats_serialize_to_json() {
    let (_server, _client, link) =
        common::connect(Endpoint::builder().route("echo", |b: bytes::Bytes| async move { b }))
            .await;
    link.request("echo", "hello").await.unwrap();
    let stats = stats_until(&link, "the call to finish", quiet).await;
    let json = serde_json::to_value(stats).unwrap();
    assert_eq!(json["state"], "up");
    assert_eq!(json["payload_out"], 5);
    assert_eq!(json["link"], link.id().0);
    assert!(
        json["uptime"].as_f64().unwrap() > 0.0,
        "durations in seconds: {json}"
    );
    assert!(json["srtt"].is_null());
    assert_eq!(json["queued_bytes"]["bulk"], 0);
    assert_eq!(json["dropped"]["crc"], 0);
    assert!(json["pacing_rate"].is_null());
}
