//! File bodies at the edges of chunking, over TCP loopback (64 KiB chunks): calls
//! whose request body is streamed from a file, one-way `send_file`s, and handlers
//! answering with a file, for empty, one-byte, chunk-sized and odd-sized files.
#![allow(clippy::unwrap_used)]

use netcore::{Body, Endpoint, Link, Payload, Reply, Request};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

const CHUNK: usize = 64 * 1024;
const SIZES: [usize; 7] = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5, 1 << 20];

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// "LEN CRC" of a body, for answers.
async fn digest(body: Body) -> String {
    let bytes = body.into_bytes().await.unwrap();
    format!("{} {:08x}", bytes.len(), crc32c::crc32c(&bytes))
}

fn file(dir: &Path, len: usize) -> PathBuf {
    let path = dir.join(format!("f{len}"));
    std::fs::write(&path, content(len)).unwrap();
    path
}

async fn pair(received: mpsc::UnboundedSender<String>, dir: PathBuf) -> (Endpoint, Endpoint, Link) {
    let server = Endpoint::builder()
        .route("digest", |req: Request| async move {
            Ok(Reply::new(digest(req.body).await))
        })
        .route("sink", move |req: Request| {
            let received = received.clone();
            async move {
                received.send(digest(req.body).await).unwrap();
                Ok(Reply::empty())
            }
        })
        .route("get", move |req: Request| {
            let dir = dir.clone();
            async move {
                let len: usize = std::str::from_utf8(req.body.as_bytes().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                Ok(Reply::new(Payload::File(file(&dir, len))))
            }
        })
        .start();
    let client = Endpoint::builder().start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_s, link) = tokio::join!(server.accept_tcp(&listener), client.connect_tcp(addr));
    (server, client, link.unwrap())
}

fn expected(len: usize) -> String {
    format!("{len} {:08x}", crc32c::crc32c(&content(len)))
}

#[actix_rt::test]
async fn calls_with_file_bodies_of_every_edge_size() {
    let (dir, served) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (tx, _rx) = mpsc::unbounded_channel();
    let (_s, _c, link) = pair(tx, served.path().to_path_buf()).await;
    for len in SIZES {
        let path = file(dir.path(), len);
        for _ in 0..3 {
            let answer = link
                .request("digest", Payload::File(path.clone()))
                .timeout(Duration::from_secs(10))
                .await
                .unwrap_or_else(|e| panic!("a call with a {len}-byte file body: {e:?}"));
            assert_eq!(answer.body.as_bytes().unwrap(), expected(len).as_bytes());
        }
    }
}

#[actix_rt::test]
async fn send_file_of_every_edge_size() {
    let (dir, served) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_s, _c, link) = pair(tx, served.path().to_path_buf()).await;
    for len in SIZES {
        let mut transfer = link.send_file("sink", file(dir.path(), len)).await.unwrap();
        let progress = tokio::time::timeout(Duration::from_secs(10), transfer.finished())
            .await
            .unwrap();
        assert_eq!(
            progress,
            netcore::Progress {
                sent: len as u64,
                total: Some(len as u64)
            }
        );
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap();
        assert_eq!(got.unwrap(), expected(len));
    }
}

#[actix_rt::test]
async fn handlers_answer_with_files_of_every_edge_size() {
    let served = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let (_s, _c, link) = pair(tx, served.path().to_path_buf()).await;
    for len in SIZES {
        let answer = link
            .request("get", len.to_string())
            .timeout(Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("a {len}-byte file answer: {e:?}"));
        assert_eq!(digest(answer.body).await, expected(len));
    }
}
