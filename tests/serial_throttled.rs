//! Over an in-process line throttled to 115200 baud: a message's priority class
//! decides how much of the line it takes from a bulk transfer in flight, and
//! canceling the transfer stops it on the wire, the receiver drops what it had (its
//! spool file), and the link goes on.
//!
//! The overtaking is measured in bytes, not milliseconds: while a 12 KiB request
//! crosses the line, how many bytes of the transfer cross beside it. The scheduler's
//! stride weights (Urgent 16, Normal 4, Bulk 2) give an Urgent request about 8/9 of
//! the line (the transfer moves ~1/8 of the request's size), a Normal one 2/3 (~1/2)
//! and a request of the transfer's own class half (~1/1, the same-class control). So
//! the test fails if `.priority(..)` is dropped (the request goes as Normal) or the
//! classes are merged (the Urgent request behaves like the control).
//!
//! The receiver spools the upload (its spool threshold is lowered to 16 KiB), so
//! "the receiver saw the CANCEL" is observable: its spool file disappears.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use netcore::actors::transport::{throttled_pair, ThrottleConfig};
use netcore::{Endpoint, Head, LinkOptions, Priority, Progress, Reply, Request, Transfer};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BAUD: u32 = 115_200;
const FILE_LEN: u64 = 512 * 1024; // ~45 s at 11,520 bytes/s: never waited for
/// The measured request: about a second of the line, a hundred chunks.
const REQUEST_LEN: usize = 12 * 1024;

/// Waits until `cond` holds, polling every 10 ms, at most 10 s (then panics with `what`).
/// Only for what has no event to wait on (files in the spool directory).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

/// (file count, total bytes) in a spool directory.
fn spool_files(dir: &Path) -> (usize, u64) {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .fold((0, 0), |(n, len), l| (n + 1, len + l))
}

/// Waits (on its progress events) until `transfer` has handed `bytes` to the wire.
async fn sent_at_least(transfer: &mut Transfer, bytes: u64) {
    let wait = async {
        while transfer.progress().sent < bytes {
            transfer
                .changed()
                .await
                .expect("the transfer is still running");
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("the transfer never sent {bytes} bytes"));
}

/// Sends a `REQUEST_LEN` request at `priority` to the `measure` route while the
/// transfer runs; returns the priority the handler saw and the share of the
/// request's size that the transfer moved meanwhile.
async fn transfer_share_beside(
    link: &netcore::Link,
    transfer: &Transfer,
    priority: Priority,
) -> (String, f64) {
    let before = transfer.progress().sent;
    let answer = link
        .request("measure", vec![5u8; REQUEST_LEN])
        .priority(priority)
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    let beside = transfer.progress().sent - before;
    let seen = String::from_utf8(answer.body.as_bytes().unwrap().to_vec()).unwrap();
    (seen, beside as f64 / REQUEST_LEN as f64)
}

#[actix_rt::test]
async fn priority_classes_share_the_line_by_weight_and_cancel_stops_a_transfer() {
    let delivered = Arc::new(AtomicBool::new(false));
    let seen = delivered.clone();
    let device = Endpoint::builder()
        .route("echo", |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
        })
        // A small answer, so the measurement is the request's way out alone.
        .route("measure", |Head(head): Head, body: Bytes| async move {
            assert_eq!(body.len(), REQUEST_LEN);
            format!("{:?}", head.priority)
        })
        .route("upload", move |_req: Request| {
            seen.store(true, Ordering::SeqCst);
            async { Ok(Reply::empty()) }
        })
        .start();
    let gateway = Endpoint::builder()
        .route("ping", |_req: Request| async { Ok(Reply::new("pong")) })
        .start();
    let (a, b) = throttled_pair(ThrottleConfig::serial_8n1(BAUD));
    let line = a.counters();
    // 115-byte chunks, one frame per write, flushed: the throttled line's flush
    // waits until the bytes are serialized, so nothing is encoded ahead of the wire.
    let options = LinkOptions::serial_flushed(BAUD);
    let spool = tempfile::tempdir().unwrap();
    let mut device_options = options.clone();
    device_options.config.limits.spool_threshold = 16 * 1024;
    device_options.spool.dir = spool.path().to_path_buf();
    let (link, device_link) =
        tokio::join!(gateway.attach(a, options), device.attach(b, device_options));
    let (link, device_link) = (link.unwrap(), device_link.unwrap());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, vec![7u8; FILE_LEN as usize]).unwrap();
    let mut transfer = link.send_file("upload", &path).await.unwrap();
    assert_eq!(transfer.progress().total, Some(FILE_LEN));
    // Let the transfer get going: chunks on the wire and in the receiver's spool file.
    sent_at_least(&mut transfer, 2_000).await;
    eventually("the receiver spools the upload", || {
        spool_files(spool.path()).1 > 0
    })
    .await;
    assert_eq!(spool_files(spool.path()).0, 1);

    let (urgent_seen, urgent_share) =
        transfer_share_beside(&link, &transfer, Priority::Urgent).await;
    let (bulk_seen, bulk_share) = transfer_share_beside(&link, &transfer, Priority::Bulk).await;
    println!("transfer bytes beside a request, per request byte: urgent {urgent_share:.3}, bulk {bulk_share:.3}");
    assert_eq!(
        urgent_seen, "Urgent",
        "the priority arrives with the request"
    );
    assert_eq!(bulk_seen, "Bulk", "the priority arrives with the request");
    // Expected ~0.125 and ~1.0 (module doc); Normal would give ~0.5.
    assert!(
        urgent_share < 0.3,
        "the transfer moved {urgent_share:.2}× the urgent request's size beside it"
    );
    assert!(
        bulk_share > 0.6,
        "a request of the transfer's own class should share the line equally, \
         but the transfer moved only {bulk_share:.2}× its size beside it"
    );

    let sent_before_cancel = transfer.progress().sent;
    assert!(sent_before_cancel < FILE_LEN / 4);
    transfer.cancel();
    // The sender stops: the transfer's progress ends short of the total.
    let Progress { sent, total } =
        tokio::time::timeout(Duration::from_secs(10), transfer.finished())
            .await
            .expect("the canceled transfer reports its end");
    assert_eq!(total, Some(FILE_LEN));
    assert!(sent < FILE_LEN / 4, "{sent} bytes sent");
    // The receiver got the CANCEL: its stream actor aborted and deleted the spool file.
    eventually("the receiver dropped its spool file", || {
        spool_files(spool.path()).0 == 0
    })
    .await;
    // Nothing of the transfer crosses the line any more (the CANCEL left before
    // the receiver acted on it; a few bytes of control frames are allowed). Half a
    // second of the line is 5,760 bytes, so a transfer still running would show.
    let after_cancel = line.written();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let more = line.written() - after_cancel;
    assert!(
        more < 64,
        "the transfer kept sending after cancel: {more} bytes"
    );
    assert!(
        !delivered.load(Ordering::SeqCst),
        "the canceled upload was never delivered"
    );
    // The link still works, both ways.
    let answer = link.call("echo", "still up").await.unwrap();
    assert_eq!(answer.body.as_bytes().unwrap().as_ref(), b"still up");
    let answer = device_link.call("ping", "").await.unwrap();
    assert_eq!(answer.body.as_bytes().unwrap().as_ref(), b"pong");
}
