//! The public API's less travelled paths, used as an application would, over
//! TCP loopback: transfer progress (`Transfer::changed`), `Link::send_with` and
//! call options as the receiver sees them, `Body::into_chunks` for in-memory,
//! spooled and streamed bodies, middleware replacing a request's body
//! (`RequestContext::take_body` / `set_body`), the services' restart policy
//! (`EndpointBuilder::restart_policy`), links on their own threads
//! (`EndpointBuilder::link_threads`), and the local failures `CallError::Rejected`
//! and `CallError::Io`.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use netcore::actors::supervision::InjectPanic;
use netcore::actors::transport::accept_tcp;
use netcore::proto::{MessageKind, ProtocolError, StreamId};
use netcore::{
    Blueprint, Body, CallError, Endpoint, ErrorCode, LinkOptions, Next, Priority, Progress, Reply,
    Request, RequestContext, RestartPolicy, ServiceError,
};
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::ThreadId;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

mod common;
use common::{gated_route, random_bytes, tcp_pair, within, Order, Seen};

/// "LEN CRC LONGEST" of a sequence of chunks.
fn summary(len: usize, crc: u32, longest: usize) -> String {
    format!("{len} {crc:08x} {longest}")
}

/// Reads `body` with `into_chunks(chunk_len)`; returns [`summary`] of the chunks.
async fn read_in_chunks(body: Body, chunk_len: usize) -> String {
    let mut chunks = body.into_chunks(chunk_len);
    let (mut len, mut crc, mut longest) = (0, 0, 0);
    while let Some(chunk) = chunks.next().await.unwrap() {
        assert!(!chunk.is_empty(), "into_chunks yields no empty chunk");
        len += chunk.len();
        longest = longest.max(chunk.len());
        crc = crc32c::crc32c_append(crc, &chunk);
    }
    assert!(
        chunks.next().await.unwrap().is_none(),
        "the end stays the end"
    );
    summary(len, crc, longest)
}

#[actix_rt::test]
async fn transfer_changed_reports_rising_progress_to_the_total_then_none() {
    const LEN: u64 = 8 << 20;
    let (server, mut gate) = gated_route(Endpoint::builder(), "gated");
    let (_s, _sl, _c, link) = tcp_pair(server, Endpoint::builder()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("8mib.bin");
    let data = random_bytes(7, LEN as usize);
    std::fs::write(&path, &data).unwrap();

    let mut transfer = link.send_file("gated", &path).await.unwrap();
    assert_eq!(
        within("the message to open", gate.seen.recv()).await,
        Some(Seen::Opened(Some(LEN)))
    );
    // The handler takes nothing yet, so the sender is held to one stream window
    // (2 MiB on TCP links) and cannot have finished.
    let Progress { sent: start, total } = transfer.progress();
    assert_eq!(total, Some(LEN), "the total is the file's length");
    assert!(start < LEN, "{start}");

    // Once the receiver took more than `start` bytes, the sender handed more to
    // the wire after we subscribed: `changed` has a value in the middle.
    gate.orders.send(Order::ReadPast(start)).unwrap();
    let Some(Seen::Read(taken)) = within("the handler to read", gate.seen.recv()).await else {
        panic!("the handler reports what it took");
    };
    let Progress {
        sent: middle,
        total,
    } = within("a change mid-transfer", transfer.changed())
        .await
        .expect("a change before the end");
    assert_eq!(total, Some(LEN));
    assert!(
        start < middle && taken <= middle && middle < LEN,
        "start {start}, taken {taken}, middle {middle}"
    );

    gate.orders.send(Order::ReadAll).unwrap();
    let mut last = middle;
    while let Some(Progress { sent: done, total }) =
        within("the next change", transfer.changed()).await
    {
        assert_eq!(total, Some(LEN));
        assert!(
            last <= done && done <= LEN,
            "progress went {last} -> {done}"
        );
        last = done;
    }
    assert_eq!(last, LEN, "the last value is the total");
    assert_eq!(
        within("changed after the end", transfer.changed()).await,
        None
    );
    assert_eq!(
        transfer.progress(),
        Progress {
            sent: LEN,
            total: Some(LEN)
        }
    );
    assert_eq!(
        transfer.finished().await,
        Progress {
            sent: LEN,
            total: Some(LEN)
        }
    );
    assert_eq!(
        within("the body to end", gate.seen.recv()).await,
        Some(Seen::Ended(Ok((LEN, crc32c::crc32c(&data)))))
    );
}

/// What the receiving handler of [`send_with_and_call_options_reach_the_receiver`] saw.
type Received = (StreamId, MessageKind, Priority, Vec<(String, Bytes)>, Bytes);

#[actix_rt::test]
async fn send_with_and_call_options_reach_the_receiver() {
    let (tx, mut rx) = mpsc::unbounded_channel::<Received>();
    let server = Endpoint::builder().route("seen", move |req: Request| {
        let tx = tx.clone();
        async move {
            let head = req.head.clone();
            let body = req.body.into_bytes().await.unwrap();
            tx.send((head.stream, head.kind, head.priority, head.headers, body))
                .unwrap();
            Ok(Reply::new("ok"))
        }
    });
    let (_s, _sl, _c, link) = tcp_pair(server, Endpoint::builder()).await;
    let big = Bytes::from(random_bytes(3, 200_000));

    let urgent = link
        .send_with("seen", "now", Priority::Urgent)
        .await
        .unwrap();
    let bulk = link
        .send_with("seen", big.clone(), Priority::Bulk)
        .await
        .unwrap();
    let high = link
        .send_with("seen", "soon", Priority::High)
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(within("a one-way message", rx.recv()).await.unwrap());
    }
    got.sort_by_key(|r| r.0 .0);
    let mut want = vec![
        (urgent, Priority::Urgent, Bytes::from_static(b"now")),
        (bulk, Priority::Bulk, big),
        (high, Priority::High, Bytes::from_static(b"soon")),
    ];
    want.sort_by_key(|w| w.0 .0);
    for ((stream, kind, priority, headers, body), (w_stream, w_priority, w_body)) in
        got.into_iter().zip(want)
    {
        assert_eq!(
            stream, w_stream,
            "send_with returns the stream the receiver sees"
        );
        assert_eq!(kind, MessageKind::OneWay);
        assert_eq!(priority, w_priority, "stream {}", stream.0);
        assert!(headers.is_empty());
        assert_eq!(body, w_body);
    }

    let answer = link
        .request("seen", "call")
        .priority(Priority::Bulk)
        .header("trace", "abc")
        .header("empty", Bytes::new())
        .await
        .unwrap();
    assert_eq!(answer.body.as_bytes().unwrap().as_ref(), b"ok");
    let (_, kind, priority, headers, body) = within("the request", rx.recv()).await.unwrap();
    assert_eq!(kind, MessageKind::Request);
    assert_eq!(priority, Priority::Bulk);
    assert_eq!(
        headers,
        vec![
            ("trace".to_string(), Bytes::from_static(b"abc")),
            ("empty".to_string(), Bytes::new()),
        ]
    );
    assert_eq!(body.as_ref(), b"call");
}

#[actix_rt::test]
async fn into_chunks_concatenates_to_the_body_for_memory_file_and_stream_bodies() {
    // In memory: chunks of at most 7 bytes, the last one shorter.
    let data = Bytes::from(random_bytes(5, 100));
    let mut chunks = Body::Bytes(data.clone()).into_chunks(7);
    let mut lens = Vec::new();
    let mut all = Vec::new();
    while let Some(chunk) = chunks.next().await.unwrap() {
        lens.push(chunk.len());
        all.extend_from_slice(&chunk);
    }
    assert_eq!(all, data);
    assert_eq!(lens, [vec![7; 14], vec![2]].concat());

    // Spooled (above a 64 KiB spool threshold) and streamed bodies, read by their
    // handlers in chunks of 10,000 and 1,000 bytes.
    let spool = tempfile::tempdir().unwrap();
    let server = Endpoint::builder()
        .stream_bodies("streamed")
        .route("spooled", |req: Request| async move {
            assert!(matches!(req.body, Body::File(_)), "{:?}", req.body);
            read_in_chunks(req.body, 10_000).await
        })
        .route("streamed", |req: Request| async move {
            assert!(matches!(req.body, Body::Stream(_)), "{:?}", req.body);
            read_in_chunks(req.body, 1_000).await
        })
        .start();
    let client = Endpoint::builder().start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut options = LinkOptions::stream();
    options.config.limits.spool_threshold = 64 * 1024;
    options.spool.dir = spool.path().to_path_buf();
    let accept = async {
        let (stream, _) = accept_tcp(&listener).await.unwrap();
        server.attach(stream, options).await.unwrap()
    };
    let (_server_link, link) = tokio::join!(accept, client.connect_tcp(addr));
    let link = link.unwrap();
    let data = random_bytes(9, 300_001);
    let crc = crc32c::crc32c(&data);
    for (route, chunk_len) in [("spooled", 10_000), ("streamed", 1_000)] {
        let answer = within(route, link.call(route, data.clone())).await.unwrap();
        assert_eq!(
            answer.body.as_bytes().unwrap(),
            summary(data.len(), crc, chunk_len).as_bytes(),
            "{route}: length, CRC-32C and longest chunk"
        );
    }
}

#[actix_rt::test]
async fn a_middleware_that_replaces_the_body_is_what_the_handler_sees() {
    let upper = Blueprint::new("upper", "/upper")
        .middleware(|mut ctx: RequestContext, next: Next| async move {
            let body = ctx.take_body().expect("no extractor ran yet");
            assert!(ctx.body().is_none(), "taken means gone");
            let bytes = body.into_bytes().await?;
            ctx.set_body(Body::Bytes(bytes.to_ascii_uppercase().into()));
            assert_eq!(ctx.body().map(Body::len), Some(bytes.len() as u64));
            next.run(ctx).await
        })
        .route("/echo", |b: Bytes| async move { b });
    let eat = Blueprint::new("eat", "/eat")
        .middleware(|mut ctx: RequestContext, next: Next| async move {
            drop(ctx.take_body());
            next.run(ctx).await
        })
        .route("/echo", |b: Bytes| async move { b });
    let server = Endpoint::builder().blueprint(upper).blueprint(eat);
    let (_s, _sl, _c, link) = tcp_pair(server, Endpoint::builder()).await;

    let answer = link.call("/upper/echo", "hello").await.unwrap();
    assert_eq!(answer.body.as_bytes().unwrap().as_ref(), b"HELLO");
    // A multi-frame body too.
    let big: Vec<u8> = random_bytes(11, 300_000);
    let answer = link.call("/upper/echo", big.clone()).await.unwrap();
    assert_eq!(
        answer.body.as_bytes().unwrap().as_ref(),
        big.to_ascii_uppercase()
    );
    // A body taken and not put back is not there for the handler.
    match link.call("/eat/echo", "hello").await {
        Err(CallError::Remote {
            code: ErrorCode::HandlerFailed,
            message,
        }) => assert!(message.contains("already taken"), "{message}"),
        other => panic!("expected HandlerFailed, got {other:?}"),
    }
}

#[actix_rt::test]
async fn restart_policy_is_the_one_the_services_use() {
    // Four restarts allowed where the default allows three: the fourth panic is
    // a restart with this policy and an escalation with the default one.
    let policy = RestartPolicy {
        max_restarts: 4,
        within: Duration::from_secs(600),
        backoff_initial: Duration::ZERO,
        backoff_max: Duration::ZERO,
    };
    let endpoint = Endpoint::builder().restart_policy(policy).start();
    let cache = endpoint.cache().addr().clone();
    let timers = endpoint.timers().addr().clone();
    let bus = endpoint.events().addr().clone();
    let mut outcomes = Vec::new();
    for service in ["cache", "timers", "events"] {
        let mut restarts = 0;
        let escalated = loop {
            let panic = InjectPanic(format!("injected into {service}"));
            let outcome = match service {
                "cache" => cache.send(panic).await,
                "timers" => timers.send(panic).await,
                _ => bus.send(panic).await,
            };
            match outcome.unwrap() {
                Err(ServiceError::Restarted { .. }) if restarts < 10 => restarts += 1,
                Err(ServiceError::Escalated { .. }) => break true,
                _ => break false,
            }
        };
        outcomes.push((service, restarts, escalated));
    }
    assert_eq!(
        outcomes,
        [("cache", 4, true), ("timers", 4, true), ("events", 4, true)],
        "(service, restarts before escalating, escalated)"
    );
    // Escalation is final.
    assert!(endpoint.cache().get("k").await.is_err());
}

/// A transport that records the threads it is polled on.
struct Spy {
    inner: tokio::net::TcpStream,
    threads: Arc<Mutex<HashSet<ThreadId>>>,
}

impl Spy {
    fn note(&self) {
        self.threads
            .lock()
            .unwrap()
            .insert(std::thread::current().id());
    }
}

impl AsyncRead for Spy {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.note();
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Spy {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.note();
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.note();
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[actix_rt::test]
async fn link_threads_run_each_link_on_a_thread_of_its_own() {
    let server = Endpoint::builder()
        .link_threads(0)
        .route("echo", |b: Bytes| async move { b })
        .start();
    let client = Endpoint::builder().link_threads(2).start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut links = Vec::new();
    for _ in 0..2 {
        let threads: Arc<Mutex<HashSet<ThreadId>>> = Arc::default();
        let connect = async {
            let inner = tokio::net::TcpStream::connect(addr).await.unwrap();
            let spy = Spy {
                inner,
                threads: threads.clone(),
            };
            client.attach(spy, LinkOptions::stream()).await.unwrap()
        };
        let (accepted, link) = tokio::join!(server.accept_tcp(&listener), connect);
        links.push((accepted.unwrap(), link, threads));
    }
    let endpoint_thread = std::thread::current().id();
    let mut seen = Vec::new();
    for (i, (_accepted, link, threads)) in links.iter().enumerate() {
        let body = format!("over link {i}");
        let answer = within("an answer", link.call("echo", body.clone())).await;
        assert_eq!(answer.unwrap().body.as_bytes().unwrap(), body.as_bytes());
        let threads = threads.lock().unwrap().clone();
        assert_eq!(threads.len(), 1, "link {i}: one thread does its I/O");
        assert!(
            !threads.contains(&endpoint_thread),
            "link {i} runs off the endpoint's thread"
        );
        seen.extend(threads);
    }
    assert_ne!(seen[0], seen[1], "two link threads, one link each");
}

#[actix_rt::test]
async fn messages_the_protocol_cannot_carry_are_rejected_before_they_leave() {
    let server = Endpoint::builder().route("echo", |b: Bytes| async move { b });
    let (_s, _sl, _c, link) = tcp_pair(server, Endpoint::builder()).await;
    let long_route = "r".repeat(2000);
    let rejected = |result: Result<(), CallError>, what: &str| match result {
        Err(CallError::Rejected(why)) => {
            assert!(why.to_string().contains("route"), "{what}: {why}")
        }
        other => panic!("{what}: expected Rejected, got {other:?}"),
    };
    rejected(link.call(long_route.clone(), "x").await.map(drop), "a call");
    rejected(
        link.send(long_route.clone(), "x").await,
        "a one-way message",
    );
    let mut call = link.request("echo", "x");
    for i in 0..40 {
        call = call.header(format!("h{i}"), "v");
    }
    match call.await {
        Err(CallError::Rejected(why)) => assert!(why.to_string().contains("header"), "{why}"),
        other => panic!("40 headers: expected Rejected, got {other:?}"),
    }
    assert_eq!(
        CallError::Rejected(ProtocolError::NoHandshake).code(),
        ErrorCode::Refused
    );
    // Nothing left, and the link still carries what it can.
    let answer = link.call("echo", "fine").await.unwrap();
    assert_eq!(answer.body.as_bytes().unwrap().as_ref(), b"fine");
}

#[actix_rt::test]
async fn connecting_to_a_closed_port_is_an_io_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = Endpoint::builder().start();
    match within("the connection attempt", client.connect_tcp(addr)).await {
        Err(error @ CallError::Io(_)) => {
            let source = std::error::Error::source(&error).expect("the io::Error");
            let io = source
                .downcast_ref::<std::io::Error>()
                .expect("an io::Error");
            assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused, "{error}");
            assert!(error.to_string().contains(&addr.to_string()), "{error}");
        }
        other => panic!("expected Io, got {other:?}"),
    }
    let io = CallError::from(std::io::Error::other("x"));
    assert_eq!(io.code(), ErrorCode::Internal);
}

/// Under a plain tokio runtime (no actix System) `start` fails at once, saying
/// what to do, instead of panicking deep inside actix.
#[test]
fn starting_outside_an_actix_system_says_what_to_do() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async { Endpoint::builder().start() })
    }));
    let panic = outcome.expect_err("start must refuse to run without a System");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(
        message.contains("#[actix_rt::main]"),
        "the panic should say what to do, got {message:?}"
    );
}
