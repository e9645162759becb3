//! Streamed outbound bodies that fail while the link feeds them, over TCP
//! loopback: a file that is missing, or shrinks while it is sent, and a channel
//! body that yields more or fewer bytes than it announced. The sender gets a
//! typed error; the peer gets CANCEL and never hands a body of the wrong length
//! to a handler as if it were complete.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use netcore::{CallError, Endpoint, Event, Payload, Progress, Reply, Request};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

mod common;
use common::{gated_route, random_bytes, tcp_pair, within, Order, Seen};

const LEN: u64 = 8 << 20;
/// What the file shrinks to: more than the sender can have read while the
/// receiver takes nothing (one 2 MiB stream window and a few chunks read ahead),
/// less than its announced length.
const SHRUNK: u64 = 4 << 20;

/// An 8 MiB file in `dir`.
fn big_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("shrinks.bin");
    std::fs::write(&path, random_bytes(13, LEN as usize)).unwrap();
    path
}

/// Truncates `path` to [`SHRUNK`] bytes.
fn shrink(path: &std::path::Path) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(SHRUNK)
        .unwrap();
}

/// Waits until `transfer` handed body bytes to the wire: the feeder has opened
/// the file and read from it, so what follows happens mid-transfer.
async fn until_started(transfer: &mut netcore::Transfer) {
    while transfer.progress().sent == 0 {
        let change = within("the first bytes to leave", transfer.changed()).await;
        assert!(change.is_some(), "the transfer ended before it started");
    }
}

/// The gated handler's body ended with the sender's CANCEL, short of the file.
fn assert_aborted(seen: Option<Seen>) {
    match seen {
        Some(Seen::Ended(Err((taken, kind, why)))) => {
            assert!(taken <= SHRUNK, "took {taken} bytes");
            assert_eq!(kind, ErrorKind::ConnectionAborted, "{why}");
            assert!(why.contains("canceled"), "{why}");
        }
        other => panic!("expected the body to end with the sender's CANCEL, got {other:?}"),
    }
}

#[actix_rt::test]
async fn sending_a_missing_file_fails_at_once_with_an_io_error() {
    let server = Endpoint::builder().route("sink", || async { "never" });
    let (_s, _sl, _c, link) = tcp_pair(server, Endpoint::builder()).await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.bin");
    let name = missing.display().to_string();
    match link.send_file("sink", &missing).await.map(|t| t.stream()) {
        Err(CallError::Io(why)) => assert!(why.to_string().contains(&name), "{why}"),
        other => panic!("send_file: expected Io, got {other:?}"),
    }
    match link.call("sink", Payload::File(missing)).await {
        Err(CallError::Io(why)) => assert!(why.to_string().contains(&name), "{why}"),
        other => panic!("a call: expected Io, got {other:?}"),
    }
}

#[actix_rt::test]
async fn a_file_that_shrinks_while_a_call_sends_it_fails_the_call_and_cancels_the_body() {
    let (server, mut gate) = gated_route(Endpoint::builder(), "gated");
    let (_s, _sl, _c, link) = tcp_pair(server, Endpoint::builder()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(dir.path());

    let call = link.request("gated", Payload::File(path.clone())).start();
    let mut call = within("the call to start", call).await.unwrap();
    assert_eq!(
        within("the message to open", gate.seen.recv()).await,
        Some(Seen::Opened(Some(LEN)))
    );
    until_started(call.transfer().expect("a file body has a transfer")).await;
    // The receiver takes nothing yet: the sender has read at most a stream window.
    shrink(&path);
    gate.orders.send(Order::ReadAll).unwrap();
    assert_aborted(within("the body to end", gate.seen.recv()).await);
    match within("the call's outcome", call.response()).await {
        Err(CallError::Io(why)) => assert!(why.to_string().contains("shrank"), "{why}"),
        other => panic!("expected Io, got {other:?}"),
    }
}

#[actix_rt::test]
async fn a_file_that_shrinks_during_send_file_ends_the_transfer_short_and_cancels_the_body() {
    let (server, mut gate) = gated_route(Endpoint::builder(), "gated");
    let (_s, _sl, _c, link) = tcp_pair(server, Endpoint::builder()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = big_file(dir.path());

    let mut transfer = link.send_file("gated", &path).await.unwrap();
    assert_eq!(
        within("the message to open", gate.seen.recv()).await,
        Some(Seen::Opened(Some(LEN)))
    );
    until_started(&mut transfer).await;
    shrink(&path);
    gate.orders.send(Order::ReadAll).unwrap();
    assert_aborted(within("the body to end", gate.seen.recv()).await);
    let Progress { sent: done, total } = within("the transfer to stop", transfer.finished()).await;
    assert_eq!(total, Some(LEN));
    assert!(
        done <= SHRUNK,
        "the transfer stopped short: {done} of {LEN}"
    );
    assert_eq!(
        within("changed after the end", transfer.changed()).await,
        None
    );
}

/// A server whose "count" route counts the bodies it was handed, and a client
/// watching nothing; returns the count, the server's events and the link.
async fn counting_pair() -> (
    Arc<AtomicUsize>,
    broadcast::Receiver<Event>,
    (Endpoint, Endpoint, netcore::Link),
) {
    let handled = Arc::new(AtomicUsize::new(0));
    let count = handled.clone();
    let server = Endpoint::builder().route("count", move |req: Request| {
        let count = count.clone();
        async move {
            let len = req.body.into_bytes().await?.len();
            count.fetch_add(1, Ordering::SeqCst);
            Ok(Reply::new(len.to_string()))
        }
    });
    let (server, _sl, client, link) = tcp_pair(server, Endpoint::builder()).await;
    let events = server.events().subscribe();
    (handled, events, (server, client, link))
}

/// A channel body announcing `announced` bytes that yields `chunks`.
fn channel_body(announced: u64, chunks: &[usize]) -> Payload {
    let (tx, rx) = mpsc::channel(chunks.len().max(1));
    for (i, &len) in chunks.iter().enumerate() {
        tx.try_send(Bytes::from(vec![i as u8; len])).unwrap();
    }
    Payload::stream(rx, Some(announced))
}

/// Sends `body` as a call to "count" and checks: the call fails with `Io`
/// mentioning the announced length, the server saw the stream canceled, and no
/// handler got a body.
async fn assert_refused_both_ends(body: Payload) {
    let (handled, mut events, (_server, _client, link)) = counting_pair().await;
    let call = within("the call to start", link.request("count", body).start())
        .await
        .unwrap();
    let stream = call.stream();
    match within("the call's outcome", call.response()).await {
        Err(CallError::Io(why)) => assert!(why.to_string().contains("announced"), "{why}"),
        other => panic!("expected Io, got {other:?}"),
    }
    // The server's router sees the CANCEL; a body delivered whole would have
    // been routed (an `Event::Request`) before it.
    loop {
        match within("the server to see the CANCEL", events.recv()).await {
            Ok(Event::Canceled { stream: s, .. }) if s == stream => break,
            Ok(Event::Request { route, .. }) => panic!("the server routed {route}"),
            Ok(_) => {}
            Err(e) => panic!("the server's events: {e}"),
        }
    }
    // The link still works, and the handler only ever saw this call.
    let answer = link.call("count", "after").await.unwrap();
    assert_eq!(answer.body.as_bytes().unwrap().as_ref(), b"5");
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn a_channel_body_longer_than_announced_fails_and_is_never_delivered() {
    assert_refused_both_ends(channel_body(100_000, &[60_000, 60_000])).await;
}

#[actix_rt::test]
async fn a_channel_body_shorter_than_announced_fails_and_is_never_delivered() {
    assert_refused_both_ends(channel_body(100_000, &[60_000])).await;
}

#[actix_rt::test]
async fn a_handler_answering_with_a_missing_file_gets_an_internal_error_to_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.bin");
    let answer_path = missing.clone();
    let server = Endpoint::builder().route("download", move || {
        let path = answer_path.clone();
        async move { netcore::File(path) }
    });
    let (_s, _sl, _c, link) = tcp_pair(server, Endpoint::builder()).await;
    match within("the answer", link.call("download", "")).await {
        Err(CallError::Remote { code, message }) => {
            assert_eq!(code, netcore::ErrorCode::Internal);
            assert!(message.contains("gone.bin"), "{message}");
        }
        other => panic!("expected an Internal error answer, got {other:?}"),
    }
    // The link goes on.
    assert!(within("a second call", link.call("download", ""))
        .await
        .is_err());
}
