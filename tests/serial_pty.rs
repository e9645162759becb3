//! Two endpoints over a real pseudo-terminal pair opened through tokio-serial
//! (`SerialStream::pair`, i.e. openpty on /dev/ptmx): calls both ways, and 1 MiB
//! each way, byte-identical: a file streamed with `Link::send_file` that the
//! receiver spools to disk and its handler persists, and an in-memory call body
//! echoed back (whose 1 MiB answer the caller spools).
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::pty_pair;
use netcore::{Body, Endpoint, LinkOptions, Reply, Request};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

const MIB: usize = 1 << 20;

mod common;

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    common::random_bytes(u64::from(seed), len)
}

#[actix_rt::test]
async fn calls_both_ways_and_a_megabyte_each_way_over_a_pty() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("received.bin");
    // The device's handler persists the upload and reports whether it was spooled.
    let (uploaded, mut upload_done) = mpsc::unbounded_channel::<(bool, u64)>();
    let device = Endpoint::builder()
        .route("who", |_req: Request| async { Ok(Reply::new("device")) })
        .route("upload", {
            let dest = dest.clone();
            move |req: Request| {
                let (dest, uploaded) = (dest.clone(), uploaded.clone());
                async move {
                    let spooled = matches!(req.body, Body::File(_));
                    let len = req.body.len();
                    req.body.persist(&dest).await.unwrap();
                    uploaded.send((spooled, len)).unwrap();
                    Ok(Reply::empty())
                }
            }
        })
        .start();
    let host = Endpoint::builder()
        .route("who", |_req: Request| async { Ok(Reply::new("host")) })
        .route("echo", |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap()))
        })
        .start();
    let (x, y) = pty_pair().expect("a pseudo-terminal pair (needs /dev/ptmx)");
    // A PTY ignores the baud rate; the link still uses the serial framing and
    // 115200-baud chunk sizes (115 bytes). The device spools bodies above 64 KiB.
    let mut device_options = LinkOptions::serial(115_200);
    device_options.config.limits.spool_threshold = 64 * 1024;
    device_options.spool.dir = dir.path().to_path_buf();
    let (h, d) = tokio::join!(
        host.attach(x, LinkOptions::serial(115_200)),
        device.attach(y, device_options)
    );
    let (h, d) = (h.unwrap(), d.unwrap());
    let who = |r: netcore::Response| r.body.as_bytes().unwrap().to_vec();
    assert_eq!(who(h.call("who", "").await.unwrap()), b"device");
    assert_eq!(who(d.call("who", "").await.unwrap()), b"host");

    // Host to device: a 1 MiB file, streamed from disk, spooled to disk.
    let data = pattern(MIB, 0x2545_f491);
    let source: PathBuf = dir.path().join("source.bin");
    std::fs::write(&source, &data).unwrap();
    let mut transfer = h.send_file("upload", &source).await.unwrap();
    let progress = tokio::time::timeout(Duration::from_secs(60), transfer.finished())
        .await
        .expect("the transfer finishes");
    assert_eq!(
        progress,
        netcore::Progress {
            sent: MIB as u64,
            total: Some(MIB as u64)
        }
    );
    let (spooled, len) = tokio::time::timeout(Duration::from_secs(60), upload_done.recv())
        .await
        .expect("the upload arrives")
        .unwrap();
    assert!(
        spooled,
        "1 MiB is above the device's 64 KiB spool threshold"
    );
    assert_eq!(len, MIB as u64);
    let received = std::fs::read(&dest).unwrap();
    assert!(received == data, "the file is byte-identical");
    // Persisting moved the spool file: only the source and the received file remain.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

    // Device to host and back: a 1 MiB in-memory call body, echoed; the answer
    // is spooled on the device and read back from its file.
    let data = pattern(MIB, 0x9e37_79b9);
    let answer = tokio::time::timeout(Duration::from_secs(60), d.call("echo", data.clone()))
        .await
        .expect("the echo call completes")
        .unwrap();
    assert!(
        matches!(answer.body, Body::File(_)),
        "the answer was spooled"
    );
    let echoed = answer.body.into_bytes().await.unwrap();
    assert!(echoed == data, "the echoed megabyte is byte-identical");
    // Calls still work both ways after the bulk traffic.
    assert_eq!(who(h.call("who", "").await.unwrap()), b"device");
    assert_eq!(who(d.call("who", "").await.unwrap()), b"host");
}
