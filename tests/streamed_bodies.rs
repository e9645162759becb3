//! Large inbound bodies streamed to their handler (`EndpointBuilder::stream_bodies`)
//! over TCP loopback: they arrive as `Body::Stream` while the sender is still
//! sending, byte-identical; a handler that stops reading holds the sender back to
//! the stream window; a handler that drops the stream cancels the upload; a link
//! that goes down mid-body ends the stream with an error, not a hang. Routes not
//! listed still spool, and single-frame bodies arrive whole. A call made with
//! `stream_answer` gets its answer the same way.
#![allow(clippy::unwrap_used)]

use netcore::{
    Body, CallError, DownReason, Endpoint, Link, Payload, PendingCall, Progress, Reply, Request,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::{mpsc, oneshot, Notify};

const LEN: usize = 24 << 20;
/// `LinkOptions::stream()`'s stream window.
const WINDOW: u64 = 2 << 20;
const CHUNK: u64 = 64 << 10;

mod common;

fn content(len: usize) -> Vec<u8> {
    common::random_bytes(0x2545_f491_4f6c_dd1d, len)
}

fn digest(bytes: &[u8]) -> String {
    format!("{} {:08x}", bytes.len(), crc32c::crc32c(bytes))
}

/// Starts a call to `route` whose body is a `LEN`-byte file (streamed from disk, with
/// upload progress); the directory holding the file lives as long as the result.
async fn upload(link: &Link, route: &str, timeout: Duration) -> (TempDir, PendingCall) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload");
    std::fs::write(&path, content(LEN)).unwrap();
    let call = link
        .request(route, Payload::File(path))
        .timeout(timeout)
        .start()
        .await
        .unwrap();
    (dir, call)
}

/// What a streaming handler reports: (kind of body, bytes received when the
/// first chunk came, digest or error).
type Seen = (&'static str, u64, Result<String, String>);

/// Reads any body to its end; for a stream, notes how much had arrived at the
/// first chunk.
async fn read_body(body: Body) -> Seen {
    match body {
        Body::Stream(mut stream) => {
            let (mut all, mut at_first) = (Vec::new(), None);
            loop {
                match stream.next().await {
                    Ok(Some(chunk)) => {
                        all.extend_from_slice(&chunk);
                        at_first.get_or_insert(stream.received());
                    }
                    Ok(None) => return ("stream", at_first.unwrap_or(0), Ok(digest(&all))),
                    Err(e) => return ("stream", at_first.unwrap_or(0), Err(e.to_string())),
                }
            }
        }
        Body::File(_) => ("file", 0, Ok(digest(&body.into_bytes().await.unwrap()))),
        Body::Bytes(bytes) => ("bytes", 0, Ok(digest(&bytes))),
    }
}

async fn pair(server: netcore::EndpointBuilder) -> (Endpoint, Endpoint, Link) {
    common::connect(server).await
}

#[actix_rt::test]
async fn large_bodies_stream_to_listed_routes_and_spool_elsewhere() {
    let (tx, mut seen) = mpsc::unbounded_channel::<Seen>();
    let report = move |req: Request| {
        let tx = tx.clone();
        async move {
            tx.send(read_body(req.body).await).unwrap();
            Ok(Reply::empty())
        }
    };
    let server = Endpoint::builder()
        .stream_bodies("up/")
        .route("up/load", report.clone())
        .route("whole", report);
    let (_server, _client, link) = pair(server).await;
    let data = content(LEN);

    link.call("up/load", data.clone()).await.unwrap();
    let (kind, at_first, result) = seen.recv().await.unwrap();
    assert_eq!(kind, "stream");
    assert!(
        at_first < LEN as u64 / 2,
        "the handler got its first chunk after {at_first} of {LEN} bytes"
    );
    assert_eq!(result.unwrap(), digest(&data));

    link.send("up/load", data.clone()).await.unwrap();
    let (kind, _, result) = seen.recv().await.unwrap();
    assert_eq!(
        (kind, result.unwrap()),
        ("stream", digest(&data)),
        "one-way too"
    );

    link.call("whole", data.clone()).await.unwrap();
    let (kind, _, result) = seen.recv().await.unwrap();
    assert_eq!(
        (kind, result.unwrap()),
        ("file", digest(&data)),
        "not listed: spooled"
    );

    let medium = content(200 << 10);
    link.call("up/load", medium.clone()).await.unwrap();
    let (kind, _, result) = seen.recv().await.unwrap();
    assert_eq!(
        (kind, result.unwrap()),
        ("stream", digest(&medium)),
        "multi-frame: streamed"
    );

    let small = content(1000);
    link.call("up/load", small.clone()).await.unwrap();
    let (kind, _, result) = seen.recv().await.unwrap();
    assert_eq!(
        (kind, result.unwrap()),
        ("bytes", digest(&small)),
        "small: in memory"
    );
}

#[actix_rt::test]
async fn a_handler_that_stops_reading_holds_the_sender_to_the_stream_window() {
    let go_on = Arc::new(Notify::new());
    let (first_tx, first_rx) = oneshot::channel::<()>();
    let first_tx = Arc::new(Mutex::new(Some(first_tx)));
    let handler_go = go_on.clone();
    let server = Endpoint::builder()
        .stream_bodies("slow")
        .route("slow", move |req: Request| {
            let (go_on, first_tx) = (handler_go.clone(), first_tx.clone());
            async move {
                let Body::Stream(mut stream) = req.body else {
                    return Ok(Reply::new("not streamed"));
                };
                let mut all = stream.next().await.unwrap().unwrap().to_vec();
                if let Some(tx) = first_tx.lock().unwrap().take() {
                    tx.send(()).unwrap();
                }
                go_on.notified().await;
                while let Some(chunk) = stream.next().await.unwrap() {
                    all.extend_from_slice(&chunk);
                }
                Ok(Reply::new(digest(&all)))
            }
        });
    let (_server, _client, link) = pair(server).await;
    let (_dir, mut call) = upload(&link, "slow", Duration::from_secs(60)).await;
    first_rx.await.unwrap();
    // Let the sender run into the window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let Progress { sent, total } = call.transfer().unwrap().progress();
    assert_eq!(total, Some(LEN as u64));
    assert!(
        sent <= WINDOW + CHUNK,
        "{sent} bytes sent to a handler that took one chunk (window {WINDOW})"
    );
    go_on.notify_one();
    let answer = call.response().await.unwrap();
    assert_eq!(
        answer.body.as_bytes().unwrap(),
        digest(&content(LEN)).as_bytes()
    );
}

#[actix_rt::test]
async fn a_handler_that_drops_the_stream_cancels_the_upload() {
    let server =
        Endpoint::builder()
            .stream_bodies("drop")
            .route("drop", |req: Request| async move {
                if let Body::Stream(mut stream) = req.body {
                    stream.next().await.unwrap();
                }
                Ok(Reply::new("dropped"))
            });
    let (_server, _client, link) = pair(server).await;
    let (_dir, mut call) = upload(&link, "drop", Duration::from_secs(20)).await;
    let mut transfer = call.transfer().unwrap().clone();
    // The handler's answer and the receiver's CANCEL of the rest race each other.
    match call.response().await {
        Ok(answer) => assert_eq!(answer.body.as_bytes().unwrap().as_ref(), b"dropped"),
        Err(CallError::Canceled(_)) => {}
        Err(other) => panic!("the call ended with {other:?}"),
    }
    // The receiver canceled the rest of the upload: it stopped near the window.
    let Progress { sent, .. } = tokio::time::timeout(Duration::from_secs(10), transfer.finished())
        .await
        .expect("the upload did not stop");
    assert!(
        sent <= 2 * WINDOW,
        "{sent} bytes sent after the handler dropped the body"
    );
    assert!(link.is_up(), "only the message was canceled, not the link");
    let echo = link.call("drop", "small").await.unwrap();
    assert_eq!(echo.body.as_bytes().unwrap().as_ref(), b"dropped");
}

#[actix_rt::test]
async fn a_link_that_goes_down_mid_body_ends_the_stream_with_an_error() {
    let (tx, mut seen) = mpsc::unbounded_channel::<Seen>();
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let server = Endpoint::builder()
        .stream_bodies("cut")
        .route("cut", move |req: Request| {
            let (tx, started_tx) = (tx.clone(), started_tx.clone());
            async move {
                if let Some(started) = started_tx.lock().unwrap().take() {
                    started.send(()).unwrap();
                }
                tx.send(read_body(req.body).await).unwrap();
                Ok(Reply::empty())
            }
        });
    let (_server, _client, link) = pair(server).await;
    // The endpoint's default call timeout.
    let (_dir, call) = upload(&link, "cut", Duration::from_secs(30)).await;
    started_rx.await.unwrap();
    // Closed at once, no GOAWAY, no draining: the server sees the TCP stream end.
    link.close("cut by the test").await;
    assert!(matches!(
        call.response().await,
        Err(CallError::LinkDown(DownReason::Closed(why))) if why == "cut by the test"
    ));
    let (kind, _, result) = tokio::time::timeout(Duration::from_secs(20), seen.recv())
        .await
        .expect("the handler's stream never ended")
        .unwrap();
    assert_eq!(kind, "stream");
    let error = result.expect_err("a cut body must not look complete");
    assert!(!error.is_empty());
}

#[actix_rt::test]
async fn a_call_can_take_its_answer_as_a_stream() {
    let data = bytes::Bytes::from(content(LEN));
    let served = data.clone();
    let server = Endpoint::builder()
        .route("download", move |_req: Request| {
            let body = served.clone();
            async move { Ok(Reply::new(body)) }
        })
        .route("small", |_req: Request| async { Ok(Reply::new("tiny")) })
        .route("fail", |_req: Request| async {
            Err::<Reply, _>(netcore::HandlerError::failed("no such file"))
        });
    let (_server, _client, link) = pair(server).await;

    let answer = link.request("download", "").stream_answer().await.unwrap();
    let (kind, at_first, result) = read_body(answer.body).await;
    assert_eq!(kind, "stream");
    assert!(
        at_first < LEN as u64 / 2,
        "first chunk after {at_first} of {LEN} bytes"
    );
    assert_eq!(result.unwrap(), digest(&data));

    let answer = link.call("download", "").await.unwrap();
    assert!(
        matches!(answer.body, Body::File(_)),
        "without stream_answer: spooled"
    );

    let answer = link.request("small", "").stream_answer().await.unwrap();
    assert_eq!(
        answer.body.as_bytes().unwrap().as_ref(),
        b"tiny",
        "one frame: whole"
    );

    let failed = link.request("fail", "").stream_answer().await;
    assert!(
        matches!(failed, Err(CallError::Remote { .. })),
        "{failed:?}"
    );

    // Dropping a streamed answer early cancels the rest; the link stays up.
    let answer = link.request("download", "").stream_answer().await.unwrap();
    let Body::Stream(mut stream) = answer.body else {
        panic!("not streamed")
    };
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let again = link.request("small", "").await.unwrap();
    assert_eq!(again.body.as_bytes().unwrap().as_ref(), b"tiny");
    assert!(link.is_up());
}
