//! The authenticated mode between two endpoints over real links: TCP on loopback,
//! a pseudo-terminal pair, and an in-process lossy line with the reliable mode. A
//! peer with a wrong or unknown key gets no request routed; tampered and replayed
//! frames are refused (fatal on TCP); a plain peer cannot downgrade a link that
//! requires authentication; a session is resumed by the client that holds its
//! keys and refused to a stranger who knows its id; handlers see the peer's
//! identity (`PeerIdentity`) and blueprints can require one.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use netcore::actors::transport::secure::{SecureKeys, SecureOptions};
use netcore::actors::transport::{faulty_pair, pty_pair, FaultConfig, Faults};
use netcore::proto::framing::{Framer, Framing, FramingKind};
use netcore::proto::link::{Link as ProtoLink, LinkConfig, ReliableConfig};
use netcore::proto::secure::{handshake, KeyId, SecureRole};
use netcore::proto::{Instant, ProtocolError, SecureError};
use netcore::{Blueprint, CallError, DownReason, Endpoint, ErrorCode, LinkOptions, PeerIdentity};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

const DEV1: [u8; 32] = [0x11; 32];
const DEV2: [u8; 32] = [0x22; 32];

fn keys() -> SecureKeys {
    SecureKeys::new().with("dev-1", DEV1).with("dev-2", DEV2)
}

/// A server requiring authentication: `who` answers the peer's key id, `count`
/// counts the requests routed to it, `admin/x` is for dev-1 only.
fn server(routed: Arc<AtomicUsize>) -> netcore::EndpointBuilder {
    Endpoint::builder()
        .keys(keys())
        .route("who", |PeerIdentity(peer): PeerIdentity| async move {
            peer.as_str().unwrap_or("?").to_string()
        })
        .route("count", move || {
            routed.fetch_add(1, Ordering::SeqCst);
            async { "counted" }
        })
        .blueprint(
            Blueprint::new("admin", "admin/")
                .require_peer(["dev-1"])
                .route("x", || async { "admin" }),
        )
}

fn secure_error(error: &CallError) -> Option<SecureError> {
    match error {
        CallError::LinkDown(DownReason::Protocol(ProtocolError::Secure(e))) => Some(e.clone()),
        _ => None,
    }
}

async fn text(link: &netcore::Link, route: &str) -> Result<String, CallError> {
    let answer = link
        .request(route, "")
        .timeout(Duration::from_secs(10))
        .await?;
    Ok(String::from_utf8(answer.body.as_bytes().unwrap().to_vec()).unwrap())
}

#[actix_rt::test]
async fn tcp_peers_see_each_other_and_blueprints_require_one() {
    let routed = Arc::new(AtomicUsize::new(0));
    let (server, server_link, _client, link) = common::tcp_pair(
        server(routed.clone()),
        Endpoint::builder().identity("dev-1", DEV1),
    )
    .await;
    assert_eq!(server_link.peer(), Some(KeyId::from("dev-1")));
    assert_eq!(text(&link, "who").await.unwrap(), "dev-1");
    assert_eq!(text(&link, "admin/x").await.unwrap(), "admin");
    assert_eq!(text(&link, "count").await.unwrap(), "counted");

    // Another device: its own identity, and no admin.
    let other = Endpoint::builder().identity("dev-2", DEV2).start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_, other_link) = tokio::join!(server.accept_tcp(&listener), other.connect_tcp(addr));
    let other_link = other_link.unwrap();
    assert_eq!(text(&other_link, "who").await.unwrap(), "dev-2");
    match text(&other_link, "admin/x").await {
        Err(CallError::Remote { code, .. }) => assert_eq!(code, ErrorCode::Refused),
        other => panic!("dev-2 reached admin: {other:?}"),
    }
}

#[actix_rt::test]
async fn a_wrong_or_unknown_key_gets_no_request_routed() {
    for (key_id, psk, server_sees) in [
        ("dev-1", DEV2, SecureError::WrongKey),
        ("dev-9", DEV1, SecureError::UnknownKey),
    ] {
        let routed = Arc::new(AtomicUsize::new(0));
        let server = server(routed.clone()).start();
        let client = Endpoint::builder().identity(key_id, psk).start();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (accepted, connected) =
            tokio::join!(server.accept_tcp(&listener), client.connect_tcp(addr));
        let accepted = accepted.expect_err("the server refuses the handshake");
        assert_eq!(
            secure_error(&accepted),
            Some(server_sees.clone()),
            "{accepted}"
        );
        let connected = connected.expect_err("the client is refused");
        assert!(
            matches!(secure_error(&connected), Some(SecureError::Rejected(_))),
            "{connected}"
        );
        assert!(server.links().is_empty());
        assert_eq!(routed.load(Ordering::SeqCst), 0);
    }
}

#[actix_rt::test]
async fn no_downgrade_to_a_plain_link_either_way() {
    // A plain client against a server that requires authentication.
    let routed = Arc::new(AtomicUsize::new(0));
    let server_ep = server(routed.clone()).start();
    let plain = Endpoint::builder().start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (accepted, connected) =
        tokio::join!(server_ep.accept_tcp(&listener), plain.connect_tcp(addr));
    let accepted = accepted.expect_err("a plain HELLO is refused");
    assert_eq!(secure_error(&accepted), Some(SecureError::NotAuthenticated));
    assert!(connected.is_err());
    assert_eq!(routed.load(Ordering::SeqCst), 0);

    // A secure client against a plain server: the server refuses the handshake,
    // the client never gets a plain link.
    let plain_server = Endpoint::builder().route("count", || async { "x" }).start();
    let client = Endpoint::builder().identity("dev-1", DEV1).start();
    let (accepted, connected) =
        tokio::join!(plain_server.accept_tcp(&listener), client.connect_tcp(addr));
    let accepted = accepted.expect_err("the handshake is refused");
    assert_eq!(secure_error(&accepted), Some(SecureError::NotConfigured));
    assert!(connected.is_err());

    // With require_auth off, a plain peer gets a plain link with no identity.
    let routed = Arc::new(AtomicUsize::new(0));
    let lenient = server(routed.clone()).require_auth(false).start();
    let (accepted, connected) =
        tokio::join!(lenient.accept_tcp(&listener), plain.connect_tcp(addr));
    assert_eq!(accepted.unwrap().peer(), None);
    let link = connected.unwrap();
    assert_eq!(text(&link, "count").await.unwrap(), "counted");
    match text(&link, "who").await {
        Err(CallError::Remote { code, .. }) => assert_eq!(code, ErrorCode::Refused),
        other => panic!("a plain peer has an identity: {other:?}"),
    }
}

/// A man in the middle on TCP: forwards the client's frames to the server,
/// changing the `n`th sealed frame (counting from 1: the sealed HELLO, then the
/// first request; handshake frames are not counted, as a loaded client may send
/// its opening more than once) with `alter`, which returns the frames to send
/// instead.
async fn mitm(
    server: std::net::SocketAddr,
    n: usize,
    alter: fn(Bytes) -> Vec<Bytes>,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let upstream = tokio::net::TcpStream::connect(server).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut sr, &mut cw).await;
        });
        let mut decoder = Framer::new(FramingKind::Stream, 1 << 20);
        let mut encoder = Framer::new(FramingKind::Stream, 1 << 20);
        let mut read = BytesMut::new();
        let mut seen = 0;
        while cr.read_buf(&mut read).await.unwrap_or(0) > 0 {
            let mut out = BytesMut::new();
            while let Ok(Some(frame)) = decoder.decode(&mut read) {
                let sealed = !handshake::is_handshake_frame(&frame);
                seen += usize::from(sealed);
                let frames = if sealed && seen == n {
                    alter(frame)
                } else {
                    vec![frame]
                };
                for frame in frames {
                    encoder.encode(&frame, &[], &mut out);
                }
            }
            if sw.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    addr
}

#[actix_rt::test]
async fn tampered_and_replayed_frames_end_a_tcp_link() {
    let flip: fn(Bytes) -> Vec<Bytes> = |frame| {
        let mut v = frame.to_vec();
        let i = v.len() / 2;
        v[i] ^= 0x40;
        vec![Bytes::from(v)]
    };
    let twice: fn(Bytes) -> Vec<Bytes> = |frame| vec![frame.clone(), frame];
    for (alter, expected) in [
        (flip, SecureError::Tampered),
        (twice, SecureError::Replayed),
    ] {
        let routed = Arc::new(AtomicUsize::new(0));
        let server = server(routed.clone()).start();
        let client = Endpoint::builder().identity("dev-1", DEV1).start();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // Sealed frame 2 is the first after the HELLO: the request.
        let proxy = mitm(listener.local_addr().unwrap(), 2, alter).await;
        let (accepted, connected) =
            tokio::join!(server.accept_tcp(&listener), client.connect_tcp(proxy));
        let (server_link, link) = (accepted.unwrap(), connected.unwrap());
        let _ = link
            .request("count", "")
            .timeout(Duration::from_secs(5))
            .await;
        let reason = common::within("the server link goes down", server_link.closed()).await;
        assert_eq!(
            reason,
            DownReason::Protocol(ProtocolError::Secure(expected.clone())),
            "{expected:?}"
        );
        // A replayed request ran once (the original), a tampered one never.
        let runs = routed.load(Ordering::SeqCst);
        assert!(
            runs <= 1 && (expected == SecureError::Replayed || runs == 0),
            "{runs}"
        );
    }
}

#[actix_rt::test]
async fn over_a_pty_the_device_is_authenticated() {
    let (a, b) = pty_pair().unwrap();
    let routed = Arc::new(AtomicUsize::new(0));
    let gateway = server(routed.clone()).start();
    let device = Endpoint::builder().start();
    let (g, d) = tokio::join!(
        gateway.attach(
            b,
            LinkOptions::serial(115_200).secure(SecureOptions::responder(keys()))
        ),
        device.attach(
            a,
            LinkOptions::serial(115_200).secure(SecureOptions::initiator("dev-2", DEV2))
        )
    );
    let (g, d) = (g.unwrap(), d.unwrap());
    assert_eq!(g.peer(), Some(KeyId::from("dev-2")));
    assert_eq!(text(&d, "who").await.unwrap(), "dev-2");
    assert_eq!(text(&d, "count").await.unwrap(), "counted");
}

#[actix_rt::test]
async fn a_lossy_line_with_the_reliable_mode_delivers_every_message_once() {
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    let gateway = Endpoint::builder()
        .keys(keys())
        .route("m", move |PeerIdentity(peer): PeerIdentity, body: Bytes| {
            assert_eq!(peer, KeyId::from("dev-1"));
            count.fetch_add(1, Ordering::SeqCst);
            async move { body }
        })
        .start();
    let device = Endpoint::builder().identity("dev-1", DEV1).start();
    let faults = Faults::none()
        .with_drop(0.02)
        .with_duplicate(0.02)
        .with_bit_error_rate(1e-5)
        .with_bytes_per_sec(2_000_000)
        .with_clean_frames(4);
    let (a, b) = faulty_pair(FaultConfig::new(77).with_faults(faults));
    let stats = (a.handle(), b.handle());
    let options = || {
        let mut options = LinkOptions::serial_flushed(20_000_000);
        options.config.chunk_len = 512;
        options
    };
    let (d, _g) = tokio::join!(device.attach(a, options()), gateway.attach(b, options()));
    let link = d.unwrap();
    for i in 0..100u32 {
        let body = common::random_bytes(u64::from(i), 64 + (i as usize * 37) % 2000);
        let answer = link
            .request("m", body.clone())
            .timeout(Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(answer.body.as_bytes().unwrap()[..], body[..]);
    }
    assert_eq!(
        received.load(Ordering::SeqCst),
        100,
        "each message exactly once"
    );
    let (ab, ba) = (stats.0.sent(), stats.1.sent());
    assert!(
        ab.dropped + ba.dropped > 0 && ab.duplicated + ba.duplicated > 0,
        "{ab:?} {ba:?}"
    );
}

/// Forwards connections to `target` until the test cuts them (drops both sockets).
async fn cut_proxy(
    target: std::net::SocketAddr,
) -> (std::net::SocketAddr, tokio::sync::watch::Sender<u32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cuts, _) = tokio::sync::watch::channel(0u32);
    let watch = cuts.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let mut cut = watch.subscribe();
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut.changed() => {}
                }
            });
        }
    });
    (addr, cuts)
}

/// What a stranger sends: the authenticated handshake with its own valid key,
/// then a HELLO claiming the session `session_id`. Returns whether the server
/// closed the connection without answering its HELLO.
async fn stranger_claims(addr: std::net::SocketAddr, session_id: u64) -> bool {
    let mut config = LinkConfig::stream(3);
    config.reliable = Some(ReliableConfig::default());
    config.session_id = session_id;
    config.secure = Some(SecureRole::Initiator {
        key_id: KeyId::from("dev-2"),
        psk: DEV2,
    });
    let mut link = ProtoLink::new(config, None);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut heard_hello = false;
    for _ in 0..10 {
        let mut out = BytesMut::new();
        while link.poll_transmit(&mut out) > 0 {}
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                let _ = link.handle_input(&buf[..n], Instant::ZERO);
                heard_hello |= link.is_connected();
            }
            _ => break,
        }
    }
    !heard_hello
}

#[actix_rt::test]
async fn a_session_resumes_for_its_holder_and_never_for_a_stranger() {
    let routed = Arc::new(AtomicUsize::new(0));
    let server = server(routed.clone())
        .tcp_resume(Duration::from_secs(10))
        .start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let acceptor = server.clone();
    actix_rt::spawn(async move {
        loop {
            let result = acceptor.accept_tcp(&listener).await;
            if accepted_tx.send(result).is_err() {
                return;
            }
        }
    });
    let (proxy, cuts) = cut_proxy(server_addr).await;
    let client = Endpoint::builder()
        .identity("dev-1", DEV1)
        .tcp_resume(Duration::from_secs(10))
        .start();
    let link = client.connect_tcp(proxy).await.unwrap();
    let server_link = accepted.recv().await.unwrap().unwrap();
    assert_eq!(text(&link, "count").await.unwrap(), "counted");

    // The network breaks; the client reconnects and proves it holds the keys.
    cuts.send_modify(|c| *c += 1);
    assert_eq!(text(&link, "count").await.unwrap(), "counted");
    let resumed = accepted.recv().await.unwrap().unwrap();
    assert_eq!(resumed.id(), server_link.id(), "the same link, resumed");

    // A stranger who learned the session id (and holds a valid key of its own)
    // cannot take the session over.
    let session_id = server_link.peer_session_id().await.unwrap();
    assert!(
        stranger_claims(server_addr, session_id).await,
        "the stranger got a HELLO back"
    );
    let refused = accepted
        .recv()
        .await
        .unwrap()
        .expect_err("the resume is refused");
    assert_eq!(secure_error(&refused), Some(SecureError::ResumeRefused));
    // The session is still the client's.
    assert_eq!(text(&link, "who").await.unwrap(), "dev-1");
    assert_eq!(routed.load(Ordering::SeqCst), 2);
}
