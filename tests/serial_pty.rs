//! Two endpoints over a real pseudo-terminal pair opened through tokio-serial:
//! calls both ways and a 1 MiB transfer, byte-identical.
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::pty_pair;
use netcore::{Endpoint, LinkOptions, Reply, Request};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[actix_rt::test]
async fn calls_both_ways_and_a_megabyte_over_a_pty() {
    let got: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let sink = got.clone();
    let device = Endpoint::builder()
        .route("who", |_req: Request| async { Ok(Reply::new("device")) })
        .route("upload", move |req: Request| {
            let sink = sink.clone();
            async move {
                let body = req.body.into_bytes().await.unwrap();
                *sink.lock().unwrap() = Some(body.to_vec());
                Ok(Reply::empty())
            }
        })
        .start();
    let host = Endpoint::builder()
        .route("who", |_req: Request| async { Ok(Reply::new("host")) })
        .start();
    let (x, y) = pty_pair().unwrap();
    // A PTY ignores the baud rate; the link still uses the serial framing and
    // 115200-baud chunk sizes.
    let (h, d) = tokio::join!(
        host.attach(x, LinkOptions::serial(115_200)),
        device.attach(y, LinkOptions::serial(115_200))
    );
    let (h, d) = (h.unwrap(), d.unwrap());
    assert_eq!(
        h.call("who", "")
            .await
            .unwrap()
            .body
            .as_bytes()
            .unwrap()
            .as_ref(),
        b"device"
    );
    assert_eq!(
        d.call("who", "")
            .await
            .unwrap()
            .body
            .as_bytes()
            .unwrap()
            .as_ref(),
        b"host"
    );

    let data = pattern(1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mib.bin");
    std::fs::write(&path, &data).unwrap();
    let mut transfer = h.send_file("upload", &path).await.unwrap();
    let (done, total) = tokio::time::timeout(Duration::from_secs(60), transfer.finished())
        .await
        .unwrap();
    assert_eq!((done, total), (1 << 20, Some(1 << 20)));
    for _ in 0..600 {
        if got.lock().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = got.lock().unwrap().take().expect("the upload arrived");
    assert_eq!(received.len(), data.len());
    assert!(received == data, "1 MiB over the PTY is byte-identical");
    // And an in-memory 1 MiB call body back the other way.
    let echoed = d.call("who", data.clone()).await.unwrap();
    assert_eq!(echoed.body.as_bytes().unwrap().as_ref(), b"host");
}
