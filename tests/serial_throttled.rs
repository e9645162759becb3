//! Over an in-process line throttled to 115200 baud: a small urgent call made while
//! a large transfer is in flight is not queued behind it, and canceling the
//! transfer stops it on the wire, the receiver drops what it had (its spool file),
//! and the link goes on.
//!
//! The receiver spools the upload (its spool threshold is lowered to 16 KiB), so
//! "the receiver saw the CANCEL" is observable: its spool file disappears.
//! No wall-clock latency is asserted: the urgent call must complete while less
//! than 10% of the transfer (which needs ~23 s) has been sent, measured in bytes.
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::{throttled_pair, ThrottleConfig};
use netcore::{Endpoint, LinkOptions, Priority, Reply, Request};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BAUD: u32 = 115_200;
const FILE_LEN: u64 = 256 * 1024; // ~23 s at 11,520 bytes/s: never waited for

/// Waits until `cond` holds, polling every 10 ms, at most 10 s (then panics with `what`).
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

#[actix_rt::test]
async fn an_urgent_call_overtakes_a_transfer_and_cancel_stops_it() {
    let delivered = Arc::new(AtomicBool::new(false));
    let seen = delivered.clone();
    let device = Endpoint::builder()
        .route("echo", |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
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
    let options = LinkOptions::serial_framed_rate(BAUD / 10);
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
    assert_eq!(transfer.progress().1, Some(FILE_LEN));
    // Let the transfer get going: chunks on the wire and in the receiver's spool file.
    eventually("2000 bytes of the transfer were sent", || {
        transfer.progress().0 >= 2_000
    })
    .await;
    eventually("the receiver spools the upload", || {
        spool_files(spool.path()).1 > 0
    })
    .await;
    assert_eq!(spool_files(spool.path()).0, 1);

    let answer = link
        .request("echo", vec![9u8; 32])
        .priority(Priority::Urgent)
        .timeout(Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(answer.body.as_bytes().unwrap().as_ref(), &[9u8; 32][..]);
    let done = transfer.progress().0;
    let on_line = line.written();
    assert!(
        done < FILE_LEN / 10,
        "the urgent call completed only after {done} of {FILE_LEN} bytes were sent"
    );
    assert!(
        on_line < FILE_LEN / 10,
        "{on_line} bytes crossed the line before the urgent call completed"
    );

    transfer.cancel();
    // The sender stops: the transfer's progress ends short of the total.
    let (sent, total) = tokio::time::timeout(Duration::from_secs(10), transfer.finished())
        .await
        .expect("the canceled transfer reports its end");
    assert_eq!(total, Some(FILE_LEN));
    assert!(sent < FILE_LEN / 10, "{sent} bytes sent");
    // The receiver got the CANCEL: its stream actor aborted and deleted the spool file.
    eventually("the receiver dropped its spool file", || {
        spool_files(spool.path()).0 == 0
    })
    .await;
    // Nothing of the transfer crosses the line any more (the CANCEL left before
    // the receiver acted on it; a few bytes of control frames are allowed).
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
