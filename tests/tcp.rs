//! Two endpoints over TCP loopback.
#![allow(clippy::unwrap_used)]

use netcore::{Body, CallError, DownReason, Endpoint, ErrorCode, Link, Priority, Reply, Request};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn echo(req: Request) -> netcore::HandlerResult {
    Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
}

/// A server endpoint built by `server`, a plain client, and a link from each side.
async fn pair(server: netcore::EndpointBuilder) -> (Endpoint, Link, Endpoint, Link) {
    let client = Endpoint::builder().route("whoami", || async { "client" });
    common::tcp_pair(server, client).await
}

mod common;

fn body(body: &Body) -> &[u8] {
    body.as_bytes().unwrap()
}

#[actix_rt::test]
async fn a_thousand_concurrent_calls_get_their_own_answers() {
    let (_s, _sl, _c, link) = pair(Endpoint::builder().route("echo", echo)).await;
    let calls = (0..1000u32).map(|i| {
        let link = link.clone();
        async move {
            let msg = format!("message {i}");
            let answer = link.call("echo", msg.clone()).await.unwrap();
            assert_eq!(body(&answer.body), msg.as_bytes());
        }
    });
    futures_util::future::join_all(calls).await;
}

#[actix_rt::test]
async fn both_sides_serve_and_call() {
    let (_s, server_link, _c, client_link) = pair(Endpoint::builder().route("echo", echo)).await;
    let a = client_link.call("echo", "ping").await.unwrap();
    assert_eq!(body(&a.body), b"ping");
    let b = server_link.call("whoami", "").await.unwrap();
    assert_eq!(body(&b.body), b"client");
}

#[actix_rt::test]
async fn one_way_messages_arrive() {
    let (seen, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let (_s, _sl, _c, link) = pair(Endpoint::builder().route("tick", move |req: Request| {
        let seen = seen.clone();
        async move {
            let one_way = req.is_one_way();
            let body = req.body.into_bytes().await.unwrap();
            seen.send((one_way, body)).unwrap();
            Ok(Reply::empty())
        }
    }))
    .await;
    for i in 0..50 {
        link.send("tick", format!("x{i}")).await.unwrap();
    }
    let mut bodies = Vec::new();
    for _ in 0..50 {
        let (one_way, body) = tokio::time::timeout(Duration::from_secs(10), arrived.recv())
            .await
            .expect("every one-way message arrives")
            .unwrap();
        assert!(one_way);
        bodies.push(String::from_utf8(body.to_vec()).unwrap());
    }
    bodies.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("x{i}")).collect();
    expected.sort();
    assert_eq!(bodies, expected, "each message once");
}

#[actix_rt::test]
async fn unknown_route_is_not_found() {
    let (_s, _sl, _c, link) = pair(Endpoint::builder()).await;
    match link.call("nowhere", "x").await {
        Err(CallError::Remote {
            code: ErrorCode::NotFound,
            message,
        }) => {
            assert!(message.contains("nowhere"), "{message}")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[actix_rt::test]
async fn a_panicking_handler_fails_only_its_request() {
    let (_s, _sl, _c, link) = pair(
        Endpoint::builder()
            .route("boom", || async {
                if true {
                    panic!("kaboom");
                }
            })
            .route("echo", echo),
    )
    .await;
    match link.call("boom", "x").await {
        Err(CallError::Remote {
            code: ErrorCode::HandlerFailed,
            message,
        }) => {
            assert!(message.contains("kaboom"), "{message}")
        }
        other => panic!("expected HandlerFailed, got {other:?}"),
    }
    let a = link.call("echo", "still here").await.unwrap();
    assert_eq!(body(&a.body), b"still here");
}

/// A handler that counts how it ends: completed or dropped (aborted).
fn slow_route(
    aborted: Arc<AtomicUsize>,
) -> impl Fn(Request) -> std::pin::Pin<Box<dyn std::future::Future<Output = netcore::HandlerResult>>>
       + Clone
       + Send
       + Sync {
    move |_req| {
        let aborted = aborted.clone();
        Box::pin(async move {
            struct OnDrop(Arc<AtomicUsize>);
            impl Drop for OnDrop {
                fn drop(&mut self) {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
            let _guard = OnDrop(aborted);
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Reply::new("late"))
        })
    }
}

async fn wait_for(counter: &AtomicUsize, n: usize) {
    for _ in 0..300 {
        if counter.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("counter stayed at {}", counter.load(Ordering::SeqCst));
}

#[actix_rt::test]
async fn a_timeout_fails_the_call_and_cancels_the_handler() {
    let ended = Arc::new(AtomicUsize::new(0));
    let (_s, _sl, _c, link) =
        pair(Endpoint::builder().route("slow", slow_route(ended.clone()))).await;
    let result = link
        .request("slow", "x")
        .timeout(Duration::from_millis(100))
        .await;
    assert!(matches!(result, Err(CallError::Timeout(_))), "{result:?}");
    // The CANCEL reached the server, which aborted the handler.
    wait_for(&ended, 1).await;
}

#[actix_rt::test]
async fn dropping_a_call_cancels_it_on_the_wire() {
    let ended = Arc::new(AtomicUsize::new(0));
    let (_s, _sl, _c, link) =
        pair(Endpoint::builder().route("slow", slow_route(ended.clone()))).await;
    let call = link.request("slow", "x").priority(Priority::High);
    let _ = tokio::time::timeout(Duration::from_millis(100), call).await;
    wait_for(&ended, 1).await;
    let still = link.call("slow", "x");
    drop(still);
}

#[actix_rt::test]
async fn the_server_canceling_a_request_fails_the_call() {
    // The server's handler cancels its own request's stream: the caller sees Canceled.
    let (_s, _sl, _c, link) = pair(Endpoint::builder().route(
        "refuse",
        |req: Request| async move {
            req.link.cancel(req.head.stream, ErrorCode::Refused);
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Reply::empty())
        },
    ))
    .await;
    let result = link
        .request("refuse", "x")
        .timeout(Duration::from_secs(10))
        .await;
    assert_eq!(result.unwrap_err(), CallError::Canceled(ErrorCode::Refused));
}

#[actix_rt::test]
async fn stop_sends_goaway_and_fails_later_calls() {
    let (server, server_link, _c, link) = pair(Endpoint::builder().route("echo", echo)).await;
    link.call("echo", "x").await.unwrap();
    let cut = server.stop().await;
    assert_eq!(cut, 0);
    assert_eq!(server_link.closed().await, DownReason::EndpointStopped);
    let down = tokio::time::timeout(Duration::from_secs(5), link.closed()).await;
    // The client heard the server's GOAWAY before its connection ended.
    assert_eq!(
        down.expect("the client saw the link close"),
        DownReason::PeerWentAway(ErrorCode::NoError)
    );
    // Later calls fail for that reason too.
    assert_eq!(
        link.call("echo", "x").await.map(drop),
        Err(CallError::LinkDown(DownReason::PeerWentAway(
            ErrorCode::NoError
        )))
    );
}

#[actix_rt::test]
async fn streamed_bodies_both_ways() {
    // The handler answers with a body produced chunk by chunk through a channel.
    let (_s, _sl, _c, link) = pair(
        Endpoint::builder()
            .route("count", |n: String| async move {
                let n: u32 = n.parse().unwrap_or(0);
                let (tx, rx) = tokio::sync::mpsc::channel(4);
                actix_rt::spawn(async move {
                    for i in 0..n {
                        if tx.send(bytes::Bytes::from(format!("{i},"))).await.is_err() {
                            return;
                        }
                    }
                });
                Reply::new(netcore::Payload::stream(rx, None))
            })
            .route("len", |b: bytes::Bytes| async move { b.len().to_string() }),
    )
    .await;
    let answer = link.call("count", "1000").await.unwrap();
    let expected: String = (0..1000).map(|i| format!("{i},")).collect();
    assert_eq!(body(&answer.body), expected.as_bytes());

    // A request whose body streams from a channel, with an announced length.
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    actix_rt::spawn(async move {
        for _ in 0..100 {
            tx.send(bytes::Bytes::from(vec![7u8; 10_000]))
                .await
                .unwrap();
        }
    });
    let answer = link
        .call("len", netcore::Payload::stream(rx, Some(1_000_000)))
        .await
        .unwrap();
    assert_eq!(body(&answer.body), b"1000000");
}

/// A connection that never says HELLO costs the accepting side nothing past the
/// handshake timeout: `accept_tcp` fails with `HandshakeTimedOut`, the connection
/// is closed, and the next client is accepted as usual.
#[actix_rt::test]
async fn a_silent_connection_is_dropped_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;

    let limit = Duration::from_millis(200);
    let server = Endpoint::builder()
        .handshake_timeout(limit)
        .route("echo", |body: bytes::Bytes| async move { body })
        .start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();

    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(5), server.accept_tcp(&listener))
        .await
        .expect("accept_tcp must give up on a silent peer");
    assert_eq!(
        refused.unwrap_err(),
        CallError::LinkDown(DownReason::HandshakeTimedOut(limit))
    );
    // The server closed it: the silent client reads our HELLO, then the end.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the silent connection was not closed");

    let client = Endpoint::builder().start();
    let (accepted, link) = tokio::join!(server.accept_tcp(&listener), client.connect_tcp(addr));
    accepted.unwrap();
    let answer = link.unwrap().call("echo", "after").await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "after");
}
