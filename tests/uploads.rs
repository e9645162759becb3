//! Uploads that confirm (`Link::upload`), as a device's firmware update uses
//! them, over an in-process serial line: the caller sees the upload's progress
//! and the device's answer; an upload to a route the device does not serve
//! fails with its `NotFound`; and an upload that takes longer than the call
//! timeout still succeeds, because the timeout starts once the file has left.
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::{throttled_pair, ThrottleConfig};
use netcore::{Bytes, CallError, Endpoint, ErrorCode, Link, LinkOptions, Progress};
use std::future::IntoFuture;
use std::time::{Duration, Instant};

mod common;
use common::{random_bytes, within};

/// 400,000 baud: 40 KB/s, so the 96 KiB image below takes about 2.5 s.
const BAUD: u32 = 400_000;

/// A device that stores firmware images and answers with their length, and a
/// gateway linked to it over a serial line, whose calls time out after 500 ms.
async fn device_and_link() -> (Endpoint, Endpoint, Link) {
    let device = Endpoint::builder()
        .route("firmware", |image: Bytes| async move {
            format!("stored {} bytes", image.len())
        })
        .start();
    let gateway = Endpoint::builder()
        .call_timeout(Duration::from_millis(500))
        .start();
    let (a, b) = throttled_pair(ThrottleConfig::serial_8n1(BAUD));
    let options = || LinkOptions::serial_flushed(BAUD);
    let (link, device_side) =
        tokio::join!(gateway.attach(a, options()), device.attach(b, options()));
    device_side.unwrap();
    (device, gateway, link.unwrap())
}

/// A firmware image of `len` bytes from `seed` in a temporary directory (kept
/// while the directory lives).
fn firmware_image(seed: u64, len: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("firmware.bin");
    std::fs::write(&image, random_bytes(seed, len)).unwrap();
    (dir, image)
}

#[actix_rt::test]
async fn an_upload_reports_progress_and_the_devices_answer_even_past_the_call_timeout() {
    let (_device, _gateway, link) = device_and_link().await;
    let (_dir, image) = firmware_image(7, 96 * 1024);

    let mut upload = link.upload("firmware", &image).start().await.unwrap();
    let transfer = upload.transfer().expect("a file body has a transfer");
    let mut seen = Vec::new();
    while let Some(Progress { sent, total }) = within("progress", transfer.changed()).await {
        assert_eq!(total, Some(96 * 1024));
        seen.push(sent);
    }
    assert!(seen.len() > 2, "progress in steps: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    let answer = within("the device's answer", upload.response())
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "stored 98304 bytes");
}

#[actix_rt::test]
async fn awaited_at_once_an_upload_outlasts_the_call_timeout() {
    let (_device, _gateway, link) = device_and_link().await;
    let (_dir, image) = firmware_image(9, 96 * 1024);

    let started = Instant::now();
    let answer = within("the upload", link.upload("firmware", &image).into_future()).await;
    assert_eq!(answer.unwrap().text().await.unwrap(), "stored 98304 bytes");
    assert!(
        started.elapsed() > Duration::from_millis(500),
        "the upload took longer than the call timeout ({:?})",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn an_upload_to_a_route_the_device_does_not_serve_fails_with_its_not_found() {
    let (_device, _gateway, link) = device_and_link().await;
    let (_dir, image) = firmware_image(8, 16 * 1024);

    let result = within("the answer", link.upload("flash", &image).into_future()).await;
    match result {
        Err(CallError::Remote { code, .. }) => assert_eq!(code, ErrorCode::NotFound),
        other => panic!("expected NotFound, got {other:?}"),
    }
}
