//! Over a radio path whose air (2,400 B/s, 20 ms) is far slower than its UART
//! (115200 baud) and whose modem buffers 16 KiB: with the defaults of a serial
//! link, which know nothing of the air, an urgent call is answered quickly while a
//! bulk message flows, because the link paces itself to the rate the path
//! delivers and keeps the modem's buffer short.
//!
//! Without pacing the reliable window's 32 frames (~5.5 KiB) wait in the modem:
//! every urgent frame sits behind over 2 s of air (measured by the `radio_pacing`
//! benchmark scenario: p50 2.4 s), so the bounds below fail.
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::{modem_pair, ModemConfig};
use netcore::{Endpoint, LinkOptions, Priority, Reply, Request};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

const BAUD: u32 = 115_200;
const BULK_LEN: usize = 24 * 1024; // ~11 s of air

#[actix_rt::test]
async fn urgent_calls_stay_quick_behind_a_slow_radio() {
    let (done_tx, done_rx) = oneshot::channel::<Vec<u8>>();
    let done_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(done_tx)));
    let device = Endpoint::builder()
        .route("echo", |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
        })
        .route("bulk", move |req: Request| {
            let body = req.body.as_bytes().map(|b| b.to_vec()).unwrap_or_default();
            if let Some(tx) = done_tx.lock().unwrap().take() {
                let _ = tx.send(body);
            }
            async { Ok(Reply::empty()) }
        })
        .start();
    let gateway = Endpoint::builder().start();
    let path = ModemConfig::sik(BAUD, 2_400, 11)
        .with_latency(Duration::from_millis(20))
        .with_frame_loss(0.005);
    let (a, b) = modem_pair(path);
    let modem = a.handle();
    let options = LinkOptions::serial_flushed(BAUD);
    let (link, device_link) = tokio::join!(
        gateway.attach(a, options.clone()),
        device.attach(b, options)
    );
    let (link, _device_link) = (link.unwrap(), device_link.unwrap());

    let bulk: Vec<u8> = (0..BULK_LEN).map(|i| (i * 7 + i / 251) as u8).collect();
    link.send_with("bulk", bulk.clone(), Priority::Bulk)
        .await
        .unwrap();
    // Let the bulk message fill whatever it is allowed to fill.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut slowest = Duration::ZERO;
    for i in 0..4u8 {
        let body = vec![i; 32];
        let sent = Instant::now();
        let answer = link
            .request("echo", body.clone())
            .priority(Priority::Urgent)
            .timeout(Duration::from_secs(30))
            .await
            .unwrap();
        let took = sent.elapsed();
        assert_eq!(answer.body.as_bytes().unwrap().as_ref(), &body[..]);
        slowest = slowest.max(took);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let received = tokio::time::timeout(Duration::from_secs(120), done_rx)
        .await
        .unwrap()
        .unwrap();
    assert!(received == bulk, "the bulk message arrived altered");
    let sent = modem.sent();
    // A loaded machine only slows the sender, which shortens the modem's queue.
    assert!(
        slowest < Duration::from_secs(2),
        "an urgent call took {slowest:?}; modem {sent:?}"
    );
    assert!(
        sent.max_buffered <= 2048,
        "the modem buffered {} bytes; {sent:?}",
        sent.max_buffered
    );
    assert_eq!(sent.overflow_bytes, 0, "{sent:?}");
    // The link reports the rate it learned: about the air's (wire bytes/s), not
    // the UART's 11,520.
    let rate = link.stats().await.unwrap().pacing_rate.unwrap();
    assert!((1_000..=4_000).contains(&rate), "pacing at {rate} B/s");
}
