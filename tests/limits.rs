//! The runtime's limits, pushed past over real TCP loopback links: the router's
//! `max_workers`, `max_workers_per_link` and `max_queued`, the per-link spool limit
//! (`SpoolLimits::max_spooling`), `max_inbound_streams`, a caller's
//! `max_message_bytes` for answers, and a call's timeout.
//! Each time the one message beyond the limit fails with its typed error, exactly
//! at the limit and not before; the calls already admitted, on the same link and on
//! a second link to the same endpoint, still get their own answers; the limit holds
//! what it bounds (spool files, in-flight count); and the link takes new messages
//! once there is room again.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use common::{attach_client, within, Gate, HANG};
use futures_util::FutureExt;
use netcore::actors::spool_backlog::SpoolBacklog;
use netcore::actors::SpoolLimits;
use netcore::proto::ProtocolError;
use netcore::{
    CallError, Endpoint, ErrorCode, Link, LinkOptions, Payload, PendingCall, Reply, Request,
};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

mod common;

async fn echo(req: Request) -> netcore::HandlerResult {
    Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
}

/// A call to `route` whose body (`body`, announced whole) is fed through a channel:
/// only its first `first` bytes are sent now. Returns once they were handed to the
/// wire, with the call and the rest of the body to send.
async fn open_call(link: &Link, route: &str, body: Bytes, first: usize) -> Opened {
    let (tx, rx) = mpsc::channel(4);
    let mut call = link
        .request(route, Payload::stream(rx, Some(body.len() as u64)))
        .timeout(HANG)
        .start()
        .await
        .unwrap();
    tx.send(body.slice(..first)).await.unwrap();
    let transfer = call.transfer().unwrap();
    while transfer.progress().sent < first as u64 {
        within("the first chunk to leave", transfer.changed()).await;
    }
    Opened {
        call,
        rest: body.slice(first..),
        tx,
    }
}

/// A call's answer, awaited later.
type Answer = Pin<Box<dyn Future<Output = Result<netcore::Response, CallError>>>>;

/// A call whose body is partly sent (see [`open_call`]).
struct Opened {
    call: PendingCall,
    rest: Bytes,
    tx: mpsc::Sender<Bytes>,
}

impl Opened {
    /// Sends the rest of the body and returns the answer.
    async fn finish(self) -> Result<netcore::Response, CallError> {
        self.tx.send(self.rest).await.unwrap();
        drop(self.tx);
        within("the answer", self.call.response()).await
    }
}

/// A round trip on `link`: every frame sent on it before has been handled by the
/// peer, and whatever the peer sent back before its answer (a CANCEL refusing a
/// stream) has been handled here.
async fn round_trip(link: &Link) {
    let answer = within("a round trip", link.call("echo", "barrier")).await;
    assert_eq!(answer.unwrap().body.as_bytes().unwrap(), "barrier");
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[actix_rt::test]
async fn a_request_beyond_max_workers_and_max_queued_is_refused_and_the_admitted_ones_are_served() {
    let gate = Gate::new();
    let server = Endpoint::builder()
        .max_workers(2)
        .max_queued(1)
        .route("hold", gate.handler())
        .route("echo", echo)
        .start();
    let (_, _a, link_a) = attach_client(&server, Endpoint::builder(), None).await;
    let (_, _b, link_b) = attach_client(&server, Endpoint::builder(), None).await;

    // Both workers busy, one request from each link.
    let a1 = link_a.request("hold", "a1").timeout(HANG).start().await;
    let b1 = link_b.request("hold", "b1").timeout(HANG).start().await;
    assert_eq!(gate.started_n(2).await, ["a1", "b1"]);
    // The queue's one place, then one more: the router takes a link's requests
    // in order, so `a2` is queued and `a3` refused.
    let a2 = link_a.request("hold", "a2").timeout(HANG).start().await;
    let refused = within("the refusal", link_a.call("echo", "a3")).await;
    match refused {
        Err(CallError::Remote {
            code: ErrorCode::Refused,
            ..
        }) => {}
        other => panic!("expected a Refused answer, got {other:?}"),
    }

    // The admitted requests, on both links, get their own answers.
    gate.release(3);
    for (call, body) in [(a1, "a1"), (b1, "b1"), (a2, "a2")] {
        let answer = within("an admitted call", call.unwrap().response()).await;
        assert_eq!(answer.unwrap().body.as_bytes().unwrap(), body);
    }
    // And with the workers free again, both links are served.
    round_trip(&link_a).await;
    round_trip(&link_b).await;
}

/// Asserts `answer` is the error answer `Refused`.
fn assert_refused(answer: Result<netcore::Response, CallError>) {
    match answer {
        Err(CallError::Remote {
            code: ErrorCode::Refused,
            ..
        }) => {}
        other => panic!("expected a Refused answer, got {other:?}"),
    }
}

/// One link's burst of slow requests takes at most its share of the workers
/// (`max_workers_per_link`, 3/4 of `max_workers` by default): another link's
/// request is served at once while the burst's handlers hold.
#[actix_rt::test]
async fn a_links_burst_leaves_workers_for_another_links_requests() {
    let gate = Gate::new();
    let server = Endpoint::builder()
        .max_workers(8)
        .max_queued(2)
        .route("hold", gate.handler())
        .route("echo", echo)
        .start();
    let (_, _a, link_a) = attach_client(&server, Endpoint::builder(), None).await;
    let (_, _b, link_b) = attach_client(&server, Endpoint::builder(), None).await;

    // Link A: 8 held requests, of which 6 (its share of 8 workers) run and 2
    // wait; its next is refused, the queue being full, which also says all 8
    // reached the router.
    let mut burst = Vec::new();
    for i in 0..8 {
        let body = format!("a{i}");
        burst.push(
            link_a
                .request("hold", body)
                .timeout(HANG)
                .start()
                .await
                .unwrap(),
        );
    }
    assert_eq!(gate.started_n(6).await.len(), 6);
    assert_refused(within("a refusal on link A", link_a.call("echo", "a8")).await);

    // Link B is served at once: an answer, and a held handler that starts.
    let answer = within(
        "link B's answer during A's burst",
        link_b.call("echo", "b0"),
    )
    .await;
    assert_eq!(answer.unwrap().body.as_bytes().unwrap(), "b0");
    let b1 = link_b
        .request("hold", "b1")
        .timeout(HANG)
        .start()
        .await
        .unwrap();
    assert_eq!(gate.started().await, "b1");

    // Every admitted request is answered once released, in A's order.
    gate.release(9);
    for (i, call) in burst.into_iter().enumerate() {
        let answer = within("a burst's answer", call.response()).await;
        assert_eq!(
            answer.unwrap().body.as_bytes().unwrap(),
            format!("a{i}").as_str()
        );
    }
    let answer = within("b1's answer", b1.response()).await;
    assert_eq!(answer.unwrap().body.as_bytes().unwrap(), "b1");
}

/// Handlers that count how many of them run at once, each holding until the
/// test releases it.
struct Counted {
    started: AtomicUsize,
    running: AtomicUsize,
    most: AtomicUsize,
    release: tokio::sync::Semaphore,
}

impl Counted {
    async fn serve(&self, body: Bytes) -> Bytes {
        self.started.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.release.acquire().await.unwrap().forget();
        self.running.fetch_sub(1, Ordering::SeqCst);
        body
    }

    /// Waits until `n` handlers started.
    async fn started(&self, n: usize) {
        within("handlers to start", async {
            while self.started.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }
}

/// No more than `max_workers` handlers run at once, and a waiting request
/// starts when one of them ends.
#[actix_rt::test]
async fn no_more_than_max_workers_handlers_run_at_once_and_the_next_starts_when_one_ends() {
    let counted = Arc::new(Counted {
        started: AtomicUsize::new(0),
        running: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        release: tokio::sync::Semaphore::new(0),
    });
    let handler = counted.clone();
    let server = Endpoint::builder()
        .max_workers(3)
        .max_workers_per_link(3)
        .max_queued(3)
        .route("count", move |body: Bytes| {
            let counted = handler.clone();
            async move { counted.serve(body).await }
        })
        .route("echo", echo)
        .start();
    let (_, _client, link) = attach_client(&server, Endpoint::builder(), None).await;

    // 3 run, 3 wait; the next is refused, which also says all 6 reached the
    // router (none of the 3 waiting started).
    let mut calls = Vec::new();
    for i in 0..6 {
        let body = format!("c{i}");
        calls.push(
            link.request("count", body)
                .timeout(HANG)
                .start()
                .await
                .unwrap(),
        );
    }
    counted.started(3).await;
    assert_refused(within("the refusal", link.call("echo", "c6")).await);
    assert_eq!(counted.started.load(Ordering::SeqCst), 3);
    assert_eq!(counted.running.load(Ordering::SeqCst), 3);

    // One ends: one more starts, and still 3 run. The queue has room for one
    // more again (c6 takes it), then refuses (c7).
    counted.release.add_permits(1);
    counted.started(4).await;
    assert_eq!(counted.running.load(Ordering::SeqCst), 3);
    calls.push(
        link.request("count", "c6")
            .timeout(HANG)
            .start()
            .await
            .unwrap(),
    );
    assert_refused(within("a refusal", link.call("echo", "c7")).await);
    assert_eq!(counted.started.load(Ordering::SeqCst), 4);

    counted.release.add_permits(6);
    for (i, call) in calls.into_iter().enumerate() {
        let answer = within("an answer", call.response()).await;
        assert_eq!(
            answer.unwrap().body.as_bytes().unwrap(),
            format!("c{i}").as_str()
        );
    }
    assert_eq!(counted.most.load(Ordering::SeqCst), 3);
}

#[actix_rt::test]
async fn a_link_spools_at_most_max_spooling_messages_and_refuses_the_next_one() {
    let max = SpoolLimits::default().max_spooling;
    assert_eq!(max, 64);
    const LEN: usize = 128 << 10;
    let server = Endpoint::builder()
        .route("echo", echo)
        .route("digest", |body: netcore::Body| async move {
            let kind = if matches!(body, netcore::Body::File(_)) {
                "file"
            } else {
                "memory"
            };
            let bytes = body.into_bytes().await.unwrap();
            format!("{kind} {:08x}", crc32c::crc32c(&bytes))
        })
        .start();
    // Messages above 64 KiB spool (8 MiB by default: same path, smaller test).
    let spooling_link = |dir: &Path| {
        let mut options = LinkOptions::stream();
        options.config.limits.spool_threshold = 64 << 10;
        options.spool.dir = dir.to_path_buf();
        Some(options)
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, _a, link_a) =
        attach_client(&server, Endpoint::builder(), spooling_link(dir_a.path())).await;
    let (_, _b, link_b) =
        attach_client(&server, Endpoint::builder(), spooling_link(dir_b.path())).await;
    let body = |i: usize| Bytes::from(common::random_bytes(i as u64, LEN));
    let digest = |i: usize| format!("file {:08x}", crc32c::crc32c(&body(i)));

    // `max` messages spooling on link A, one on link B; each has sent 1 KiB.
    let mut open = futures_util::future::join_all((0..max).map(|i| {
        let link = &link_a;
        async move { (i, open_call(link, "digest", body(i), 1024).await) }
    }))
    .await;
    open.push((max, open_call(&link_b, "digest", body(max), 1024).await));
    round_trip(&link_a).await;
    round_trip(&link_b).await;
    assert_eq!(files_in(dir_a.path()), max, "one spool file per message");
    assert_eq!(files_in(dir_b.path()), 1);

    // One more on link A is refused, and takes no spool file.
    let extra = open_call(&link_a, "digest", body(999), 1024).await;
    let refused = within("the refusal", extra.call.response()).await;
    assert_eq!(
        refused.unwrap_err(),
        CallError::Canceled(ErrorCode::Refused)
    );
    assert_eq!(files_in(dir_a.path()), max);

    // Every message admitted, on both links, arrives whole.
    let answers = futures_util::future::join_all(
        open.into_iter()
            .map(|(i, opened)| async move { (i, opened.finish().await) }),
    )
    .await;
    for (i, answer) in answers {
        assert_eq!(
            answer.unwrap().body.as_bytes().unwrap(),
            digest(i).as_bytes(),
            "message {i}"
        );
    }
    // The spool files went with their messages, and link A spools again.
    assert_eq!(files_in(dir_a.path()), 0);
    assert_eq!(files_in(dir_b.path()), 0);
    let again = open_call(&link_a, "digest", body(7), 1024).await;
    assert_eq!(
        again.finish().await.unwrap().body.as_bytes().unwrap(),
        digest(7).as_bytes()
    );
}

#[actix_rt::test]
async fn inbound_streams_are_refused_at_max_inbound_streams_plus_one_and_only_on_that_link() {
    let max = LinkOptions::stream().config.limits.max_inbound_streams;
    assert_eq!(max, 1024);
    let server = Endpoint::builder().route("echo", echo).start();
    let (_, _a, link_a) = attach_client(&server, Endpoint::builder(), None).await;
    let (_, _b, link_b) = attach_client(&server, Endpoint::builder(), None).await;
    let body = |i: usize| Bytes::from((i as u32).to_le_bytes().to_vec());

    // `max` requests being received on link A (each has sent 1 byte of 4), and
    // one on link B.
    let open = futures_util::future::join_all((0..max).map(|i| {
        let link = &link_a;
        async move { (i, open_call(link, "echo", body(i), 1).await) }
    }))
    .await;
    let on_b = open_call(&link_b, "echo", body(max), 1).await;
    round_trip(&link_a).await;
    // None of them was refused: a refusal would have arrived before the answer.
    let mut pending: Vec<(usize, Bytes, mpsc::Sender<Bytes>, Answer)> = Vec::new();
    for (i, Opened { call, rest, tx }) in open {
        let mut answer: Answer = Box::pin(call.response());
        if let Some(early) = (&mut answer).now_or_never() {
            panic!("stream {i} of {max} ended early: {early:?}");
        }
        pending.push((i, rest, tx, answer));
    }

    // The next one on link A is refused.
    let extra = open_call(&link_a, "echo", body(9999), 1).await;
    let refused = within("the refusal", extra.call.response()).await;
    assert_eq!(
        refused.unwrap_err(),
        CallError::Canceled(ErrorCode::Refused)
    );

    // Link B is not affected, and every stream admitted on A completes.
    assert_eq!(
        on_b.finish().await.unwrap().body.as_bytes().unwrap(),
        &body(max)
    );
    for (i, rest, tx, answer) in pending {
        tx.send(rest).await.unwrap();
        drop(tx);
        let answer = within("an admitted stream", answer).await;
        assert_eq!(
            answer.unwrap().body.as_bytes().unwrap(),
            &body(i),
            "stream {i}"
        );
    }
    // With room again, link A takes new streams.
    let again = open_call(&link_a, "echo", body(7), 1).await;
    assert_eq!(
        again.finish().await.unwrap().body.as_bytes().unwrap(),
        &body(7)
    );
}

#[actix_rt::test]
async fn a_call_past_its_timeout_fails_with_timeout_and_frees_its_handler_and_slot() {
    let gate = Gate::new();
    let server = Endpoint::builder()
        .route("hold", gate.handler())
        .route("echo", echo)
        .start();
    let (server_a, _a, link_a) = attach_client(&server, Endpoint::builder(), None).await;
    let (server_b, _b, link_b) = attach_client(&server, Endpoint::builder(), None).await;
    let in_flight = |link: &Link| {
        let link = link.clone();
        async move { link.in_flight().await }
    };

    let long_a = link_a
        .request("hold", "long a")
        .timeout(HANG)
        .start()
        .await
        .unwrap();
    let long_b = link_b
        .request("hold", "long b")
        .timeout(HANG)
        .start()
        .await
        .unwrap();
    assert_eq!(gate.started_n(2).await, ["long a", "long b"]);

    // A call that outlives its timeout: the caller gets `Timeout` with it, and the
    // CANCEL aborts the peer's handler.
    let timeout = Duration::from_millis(300);
    let short = link_a.request("hold", "short").timeout(timeout);
    let (result, started) = tokio::join!(short, gate.started());
    assert_eq!(started, "short");
    assert_eq!(result.unwrap_err(), CallError::Timeout(timeout));
    assert_eq!(gate.aborted().await, "short");
    // The server no longer counts it as in flight (a drain would not wait for it).
    assert_eq!(in_flight(&server_a).await, 1);
    assert_eq!(in_flight(&server_b).await, 1);

    // The other calls, on both links, get their own answers.
    gate.release(2);
    for (call, body) in [(long_a, "long a"), (long_b, "long b")] {
        let answer = within("a call in flight", call.response()).await;
        assert_eq!(answer.unwrap().body.as_bytes().unwrap(), body);
    }
    round_trip(&link_a).await;
    assert_eq!(in_flight(&server_a).await, 0);
    assert_eq!(in_flight(&server_b).await, 0);
}

#[actix_rt::test]
async fn an_answer_beyond_the_callers_max_message_bytes_fails_the_call_as_refused_here() {
    let server = Endpoint::builder().route("echo", echo).start();
    let mut options = LinkOptions::stream();
    options.config.limits.max_message_bytes = 64 * 1024;
    let client = Endpoint::builder()
        .route("big", || async { Bytes::from(vec![7u8; 300_000]) })
        .route("echo", echo);
    let (server_link, _client, client_link) = attach_client(&server, client, Some(options)).await;
    match within("the refused answer", server_link.call("big", "")).await {
        Err(error @ CallError::AnswerRefused(ProtocolError::MessageTooLarge { .. })) => {
            assert_eq!(error.code(), ErrorCode::TooLarge);
            assert!(error.to_string().contains("300000"), "{error}");
        }
        other => panic!("expected AnswerRefused(MessageTooLarge), got {other:?}"),
    }
    // Only that answer: the link carries what fits, both ways.
    round_trip(&server_link).await;
    round_trip(&client_link).await;
}

/// Two links send bodies that together exceed the endpoint's memory budget: the
/// budget holds (what is over it moves to disk; the bytes on their way there run
/// past it by at most each link's backlog floor and one read before its reader
/// waits), and both calls get their whole body back; once answered, nothing is
/// charged.
#[actix_rt::test]
async fn inbound_bodies_of_all_links_stay_within_the_endpoints_memory_budget() {
    let limit = 256 * 1024;
    let server = Endpoint::builder()
        .route("echo", echo)
        .memory_budget(limit)
        .start();
    assert_eq!(server.memory_budget().limit(), limit);
    let (_, _a, link_a) = attach_client(&server, Endpoint::builder(), None).await;
    let (_, _b, link_b) = attach_client(&server, Endpoint::builder(), None).await;
    let body = |seed: u8| {
        Bytes::from(
            (0..200 * 1024)
                .map(|i| (i % 251) as u8 ^ seed)
                .collect::<Vec<u8>>(),
        )
    };
    let a = open_call(&link_a, "echo", body(1), 150 * 1024).await;
    round_trip(&link_a).await;
    assert!(
        server.memory_budget().used() > 0,
        "a body under way is charged"
    );
    let b = open_call(&link_b, "echo", body(2), 150 * 1024).await;
    round_trip(&link_b).await;
    let backlog = 2 * (SpoolBacklog::FLOOR + 256 * 1024);
    assert!(
        server.memory_budget().used() <= limit + backlog,
        "{} bytes charged, over the budget",
        server.memory_budget().used()
    );
    assert_eq!(a.finish().await.unwrap().body.as_bytes().unwrap(), &body(1));
    assert_eq!(b.finish().await.unwrap().body.as_bytes().unwrap(), &body(2));
    assert_eq!(server.memory_budget().used(), 0);
}
