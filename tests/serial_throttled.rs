//! Over an in-process line throttled to 115200 baud: a small urgent call made while
//! a large transfer is in flight is not queued behind it, and canceling the
//! transfer stops it on the wire while the link goes on.
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::{throttled_pair, ThrottleConfig};
use netcore::{Endpoint, LinkOptions, Priority, Reply, Request};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BAUD: u32 = 115_200;
const FILE_LEN: usize = 256 * 1024; // ~25 s at 11,520 bytes/s: never waited for

#[actix_rt::test]
async fn an_urgent_call_overtakes_a_transfer_and_cancel_stops_it() {
    let received = Arc::new(AtomicU64::new(0));
    let seen = received.clone();
    let device = Endpoint::builder()
        .route("echo", |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
        })
        .route("upload", move |req: Request| {
            seen.store(req.body.len(), Ordering::SeqCst);
            async { Ok(Reply::empty()) }
        })
        .start();
    let gateway = Endpoint::builder().start();
    let (a, b) = throttled_pair(ThrottleConfig::serial_8n1(BAUD));
    let line = a.counters();
    let mut options = LinkOptions::serial(BAUD);
    options.flush = true;
    let (link, device_link) = tokio::join!(
        gateway.attach(a, options.clone()),
        device.attach(b, options)
    );
    let (link, _device_link) = (link.unwrap(), device_link.unwrap());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, vec![7u8; FILE_LEN]).unwrap();
    let transfer = link.send_file("upload", &path).await.unwrap();
    // Let the transfer get going: some chunks on the wire.
    while transfer.progress().0 < 2_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
        done < FILE_LEN as u64 / 10,
        "the call completed only after {done} of {FILE_LEN} bytes were sent"
    );
    assert!(
        on_line < FILE_LEN as u64 / 10,
        "{on_line} bytes crossed the line"
    );

    transfer.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_cancel = line.written();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Nothing but the call below crosses the line once the cancel took effect.
    assert!(
        line.written() - after_cancel < 64,
        "the transfer kept sending after cancel: {} bytes",
        line.written() - after_cancel
    );
    assert_eq!(
        received.load(Ordering::SeqCst),
        0,
        "the canceled upload was never delivered"
    );
    let answer = link.call("echo", "still up").await.unwrap();
    assert_eq!(answer.body.as_bytes().unwrap().as_ref(), b"still up");
}
