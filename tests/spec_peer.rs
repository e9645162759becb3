//! An independent peer written from ARCHITECTURE.md's wire section alone
//! (`tests/peers/spec_peer.py`, Python 3 standard library) against a running
//! endpoint over TCP: handshake, requests, an unknown route, a one-way message, a
//! PING, a multi-frame body that needs the endpoint's CREDIT, a multi-frame answer,
//! a clean GOAWAY. If the spec leaves out something a peer needs, this fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use netcore::{Bytes, Endpoint, Reply, Request};
use std::path::PathBuf;
use std::process::Command;

#[actix_rt::test]
async fn a_peer_written_from_the_spec_talks_to_an_endpoint() {
    if Command::new("python3").arg("--version").output().is_err() {
        // The README promises python3 on the machine; without it there is no peer.
        eprintln!("SKIPPED: python3 is not installed, the spec peer cannot run");
        return;
    }
    let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let server = Endpoint::builder()
        .route("echo", |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
        })
        .route("digest", |body: Bytes| async move {
            Ok::<_, netcore::HandlerError>(Reply::new(digest(&body)))
        })
        .route("note", move |body: Bytes| {
            let notes_tx = notes_tx.clone();
            async move {
                let _ = notes_tx.send(body);
            }
        })
        .start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/spec_peer.py");
    let peer = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg("127.0.0.1")
            .arg(port.to_string())
            .output()
            .expect("python3 runs")
    });
    let link = common::within("the spec peer's connection", server.accept_tcp(&listener))
        .await
        .expect("the spec peer's handshake");
    let output = common::within("the spec peer", peer).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the spec peer failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("spec peer: ok"), "{stdout}");
    eprintln!("{stdout}");
    let note = common::within("the one-way message", notes.recv())
        .await
        .unwrap();
    assert_eq!(&note[..], b"one-way from python");
    common::within("the link going down", link.closed()).await;
}

/// CRC-32 (IEEE, as Python's `zlib.crc32`) and length of `data`, as the text the
/// peer compares: `"<len> <crc as 8 hex digits>"`.
fn digest(data: &[u8]) -> String {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    format!("{} {:08x}", data.len(), !crc)
}

#[test]
fn digest_matches_zlib() {
    // python3 -c 'import zlib; print(hex(zlib.crc32(b"123456789")))'
    assert_eq!(digest(b"123456789"), "9 cbf43926");
}
