//! A real pseudo-terminal pair closed mid-transfer and reopened through the
//! links' connectors: the transfer completes byte-identical (the session resumes).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use netcore::actors::transport::{pty_pair, BoxedTransport, FaultConfig, Faulty};
use netcore::actors::Connector;
use netcore::{Endpoint, LinkOptions};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[actix_rt::test]
async fn a_pty_closed_and_reopened_mid_transfer_loses_nothing() {
    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (x, y) = pty_pair().unwrap();
    // The host's end can be "unplugged": a cut closes it like a vanished device.
    let host_end = Faulty::new(x, FaultConfig::new(1));
    let unplug = host_end.handle();
    let (to_device, from_host) = tokio::sync::mpsc::unbounded_channel::<BoxedTransport>();
    let from_host = Arc::new(tokio::sync::Mutex::new(from_host));
    let reopened = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = reopened.clone();
    let host_connector = Connector::new(move || {
        let to_device = to_device.clone();
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            // "Reopen the device": a fresh PTY pair, the other end for the device.
            let (x, y) = pty_pair()?;
            let _ = to_device.send(Box::new(y));
            Ok(Box::new(x) as BoxedTransport)
        }
    });
    let device_connector = Connector::new(move || {
        let from_host = from_host.clone();
        async move {
            from_host
                .lock()
                .await
                .recv()
                .await
                .ok_or_else(|| std::io::Error::other("host gone"))
        }
    });
    let options = |connector: Connector| {
        let mut options = LinkOptions::serial(115_200);
        options.connector = Some(connector);
        options
    };
    let got: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let sink = got.clone();
    let device = Endpoint::builder()
        .route("upload", move |body: Bytes| {
            *sink.lock().unwrap() = Some(body.to_vec());
            async { "ok" }
        })
        .start();
    let host = Endpoint::builder().start();
    let (h, _d) = tokio::join!(
        host.attach(host_end, options(host_connector)),
        device.attach(y, options(device_connector))
    );
    let link = h.unwrap();
    let call = async {
        let answer = link
            .request("upload", data.clone())
            .timeout(Duration::from_secs(60))
            .await;
        // Whether the PTY had been closed before the upload completed.
        (answer, unplug.is_cut())
    };
    let pull_the_plug = async {
        // Unplug once a quarter of the upload went into the PTY (polled: a PTY
        // has no event for it; the upload needs far longer than a poll).
        while unplug.sent().bytes_written < (data.len() / 4) as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        unplug.cut();
    };
    let ((answer, cut_mid_transfer), ()) = tokio::join!(call, pull_the_plug);
    assert!(
        cut_mid_transfer,
        "the PTY closed while the upload was in flight"
    );
    assert_eq!(answer.unwrap().body.as_bytes().unwrap().as_ref(), b"ok");
    let received = got.lock().unwrap().take().unwrap();
    assert!(received == data, "1 MiB intact across the reopen");
    assert!(unplug.is_cut());
    assert_eq!(
        reopened.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the transfer was still running when the PTY closed, and it was reopened once"
    );
}
