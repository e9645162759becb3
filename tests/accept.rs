//! Accepting connections: the serve loop never waits on a peer, the handshake
//! deadline closes silent connections, the accept limits refuse the excess, and
//! the serve handle stops the loop and hands out the links it made. Real TCP on
//! 127.0.0.1 (and a Unix socket).
#![allow(clippy::unwrap_used)]

mod common;

use common::within;
use netcore::{AcceptStats, CallError, DownReason, Endpoint, ErrorCode, Link, Reply, Request};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn echo(req: Request) -> netcore::HandlerResult {
    Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
}

/// A server with the echo route, built further by `build`.
fn server(build: impl FnOnce(netcore::EndpointBuilder) -> netcore::EndpointBuilder) -> Endpoint {
    build(Endpoint::builder().route("echo", echo)).start()
}

async fn call_echo(link: &Link, text: &str) {
    let answer = within("an echo", link.call("echo", text.to_owned()))
        .await
        .unwrap();
    assert_eq!(
        answer.body.as_bytes().map(|b| &b[..]),
        Some(text.as_bytes())
    );
}

/// Waits until the server's accept counters satisfy `done`.
async fn stats_until(server: &Endpoint, what: &str, done: impl Fn(&AcceptStats) -> bool) {
    within(what, async {
        while !done(&server.accept_stats()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Reads until the server closes `conn`; returns what it sent.
async fn read_until_closed(conn: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    // A reset also means closed.
    let _ = within(
        "the server closing a connection",
        conn.read_to_end(&mut got),
    )
    .await;
    got
}

/// A connection from `local_ip` to `addr`.
async fn connect_from(local_ip: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{local_ip}:0").parse().unwrap())
        .unwrap();
    socket.connect(addr).await.unwrap()
}

#[actix_rt::test]
async fn a_silent_connection_does_not_delay_a_good_client() {
    // Longer than the test's own bound: a loop waiting on a silent peer hangs it.
    let server = server(|b| {
        b.handshake_timeout(Duration::from_secs(60))
            .max_handshaking_per_address(100)
    });
    let serving = server.serve_tcp("127.0.0.1:0").await.unwrap();
    let addr = serving.local_addr().tcp().unwrap();
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let client = Endpoint::builder().start();
    let link = within("a good client's handshake", client.connect_tcp(addr))
        .await
        .unwrap();
    call_echo(&link, "first").await;
    let accepted = within("the link's announcement", serving.next_link())
        .await
        .unwrap();
    assert!(accepted.is_up());
    let stats = server.accept_stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.handshake_timed_out, 0);
    drop(silent);
}

#[actix_rt::test]
async fn the_handshake_deadline_closes_silent_connections() {
    // Without tcp_resume (handshake only) and with it (first frame, then the
    // handshake, under the same deadline).
    for resume in [false, true] {
        let server = server(|b| {
            let b = b.handshake_timeout(Duration::from_millis(300));
            if resume {
                b.tcp_resume(Duration::from_secs(10))
            } else {
                b
            }
        });
        let serving = server.serve_tcp("127.0.0.1:0").await.unwrap();
        let addr = serving.local_addr().tcp().unwrap();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        // The first byte of a length prefix, then nothing.
        let mut partial = TcpStream::connect(addr).await.unwrap();
        partial.write_all(&[0x10]).await.unwrap();
        read_until_closed(&mut silent).await;
        read_until_closed(&mut partial).await;
        stats_until(&server, "two timed-out handshakes", |s| {
            s.handshake_timed_out == 2
        })
        .await;
        assert_eq!(server.accept_stats().accepted, 0, "resume {resume}");
        // The loop still serves.
        let mut client = Endpoint::builder();
        if resume {
            client = client.tcp_resume(Duration::from_secs(10));
        }
        let client = client.start();
        let link = within("a client after them", client.connect_tcp(addr))
            .await
            .unwrap();
        call_echo(&link, "still serving").await;
    }
}

#[actix_rt::test]
async fn a_connection_beyond_max_links_gets_goaway_refused() {
    let server = server(|b| b.max_links(1));
    let serving = server.serve_tcp("127.0.0.1:0").await.unwrap();
    let addr = serving.local_addr().tcp().unwrap();
    let first = Endpoint::builder().start();
    let link = within("the first client", first.connect_tcp(addr))
        .await
        .unwrap();
    call_echo(&link, "one").await;
    let second = Endpoint::builder().start();
    let reason = match within("the second client", second.connect_tcp(addr)).await {
        Err(CallError::LinkDown(reason)) => reason,
        Ok(refused) => within("the refused link going down", refused.closed()).await,
        Err(other) => panic!("unexpected: {other}"),
    };
    assert_eq!(reason, DownReason::PeerWentAway(ErrorCode::Refused));
    stats_until(&server, "the refusal counted", |s| {
        s.refused_link_limit == 1
    })
    .await;
    assert_eq!(server.accept_stats().accepted, 1);
    // The first link is untouched; once it is gone, there is room again.
    call_echo(&link, "still one").await;
    link.close("making room").await;
    within("the server's link going down", async {
        while !server.links().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let third = Endpoint::builder().start();
    let link = within("a client after the first left", third.connect_tcp(addr))
        .await
        .unwrap();
    call_echo(&link, "room again").await;
}

#[actix_rt::test]
async fn a_single_accept_beyond_max_links_fails_and_tells_the_peer() {
    let server = server(|b| b.max_links(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let error = within("the refused accept", server.accept_tcp(&listener))
        .await
        .expect_err("max_links is 0");
    match error {
        CallError::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("unexpected: {other}"),
    }
    // Our HELLO, then GOAWAY(Refused): a length byte, then the type byte 0x90
    // (GOAWAY), last stream 0, code 2.
    let got = read_until_closed(&mut raw).await;
    let hello_len = usize::from(got[0]) + 1;
    assert_eq!(&got[1..4], b"\x00NC", "a HELLO first: {got:02x?}");
    assert_eq!(&got[hello_len + 1..hello_len + 4], &[0x90, 0x00, 0x02]);
    assert_eq!(server.accept_stats().refused_link_limit, 1);
}

#[actix_rt::test]
async fn handshaking_limits_close_the_excess_unread() {
    for per_address in [false, true] {
        let server = server(|b| {
            let b = b.handshake_timeout(Duration::from_secs(60));
            if per_address {
                b.max_handshaking_per_address(2).max_handshaking(100)
            } else {
                b.max_handshaking(2).max_handshaking_per_address(100)
            }
        });
        let serving = server.serve_tcp("127.0.0.1:0").await.unwrap();
        let addr = serving.local_addr().tcp().unwrap();
        let _silent = [
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        ];
        let mut excess = TcpStream::connect(addr).await.unwrap();
        let got = read_until_closed(&mut excess).await;
        assert!(got.is_empty(), "closed unread, without a word");
        let stats = server.accept_stats();
        if per_address {
            assert_eq!(
                (stats.refused_per_address, stats.refused_handshaking),
                (1, 0)
            );
            // Another address has room of its own.
            let stream = connect_from("127.0.0.2", addr).await;
            let client = Endpoint::builder().start();
            let link = within(
                "a client from another address",
                client.attach(stream, netcore::LinkOptions::stream()),
            )
            .await
            .unwrap();
            call_echo(&link, "other address").await;
        } else {
            assert_eq!(
                (stats.refused_per_address, stats.refused_handshaking),
                (0, 1)
            );
        }
        assert_eq!(stats.accepted, 0);
    }
}

#[actix_rt::test]
async fn stop_ends_accepting_and_keeps_the_links() {
    let server = server(|b| b);
    let serving = server.serve_tcp("127.0.0.1:0").await.unwrap();
    let addr = serving.local_addr().tcp().unwrap();
    let client = Endpoint::builder().start();
    let link = within("a client", client.connect_tcp(addr)).await.unwrap();
    let accepted = within("its announcement", serving.next_link())
        .await
        .unwrap();
    assert!(serving.is_serving());
    serving.stop();
    within("the loop ending", serving.stopped()).await;
    assert!(!serving.is_serving());
    assert!(within("no more links", serving.next_link()).await.is_none());
    // The listener is closed: nobody connects any more.
    let late = Endpoint::builder()
        .handshake_timeout(Duration::from_secs(2))
        .start();
    assert!(within("a late client", late.connect_tcp(addr))
        .await
        .is_err());
    // The link made before goes on, both ways.
    call_echo(&link, "after stop").await;
    assert!(accepted.is_up());
    assert_eq!(server.links().len(), 1);
}

#[actix_rt::test]
async fn stopping_the_endpoint_ends_its_serve_loops() {
    let server = server(|b| b);
    let serving = server.serve_tcp("127.0.0.1:0").await.unwrap();
    server.stop().await;
    within("the loop ending", serving.stopped()).await;
    assert!(!serving.is_serving());
}

#[actix_rt::test]
async fn next_link_hands_out_each_new_link() {
    let server = server(|b| b);
    let serving = server.serve_tcp("127.0.0.1:0").await.unwrap();
    let addr = serving.local_addr().tcp().unwrap();
    let clients: Vec<Endpoint> = (0..3).map(|_| Endpoint::builder().start()).collect();
    for client in &clients {
        let link = within("a client", client.connect_tcp(addr)).await.unwrap();
        call_echo(&link, "hello").await;
    }
    let mut ids = Vec::new();
    for _ in 0..3 {
        let link = within("an announcement", serving.next_link())
            .await
            .unwrap();
        ids.push(link.id());
    }
    let mut up: Vec<_> = server.links().iter().map(|l| l.id()).collect();
    ids.sort();
    up.sort();
    assert_eq!(ids, up);
    assert_eq!(server.accept_stats().accepted, 3);
}

#[cfg(unix)]
#[actix_rt::test]
async fn a_unix_socket_is_served_and_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("served.sock");
    let server = server(|b| b);
    let serving = server.serve_unix(path.as_path()).await.unwrap();
    assert_eq!(
        serving.local_addr(),
        &netcore::ServeAddr::Unix(Some(path.clone()))
    );
    let client = Endpoint::builder().start();
    let spec: netcore::actors::transport::LinkSpec =
        format!("unix:{}", path.display()).parse().unwrap();
    let link = within("a unix client", client.open(spec)).await.unwrap();
    call_echo(&link, "over unix").await;
    assert!(within("its announcement", serving.next_link())
        .await
        .is_some());
    serving.stop();
    within("the loop ending", serving.stopped()).await;

    // One connection at a time, with accept_unix.
    let path = dir.path().join("single.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let spec: netcore::actors::transport::LinkSpec =
        format!("unix:{}", path.display()).parse().unwrap();
    let (accepted, link) = tokio::join!(server.accept_unix(&listener), client.open(spec));
    accepted.unwrap();
    call_echo(&link.unwrap(), "single").await;
    assert_eq!(server.accept_stats().accepted, 2);
}
