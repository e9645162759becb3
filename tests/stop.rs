//! `Endpoint::stop` with messages in flight, over real TCP loopback links: calls in
//! flight either way finish during the drain, on every link; new requests during the
//! drain fail with `GoingAway` (from the peer and on the stopping side); what the
//! drain timeout cuts off fails with `LinkDown` on both sides; and `stop` returns
//! the number of messages cut off, not counting requests their caller canceled.
#![allow(clippy::unwrap_used)]

use common::{attach_client, within, Gate, HANG};
use netcore::{CallError, DownReason, Endpoint, ErrorCode, Link, LinkState, Reply, Request};
use std::time::Duration;

mod common;

async fn echo(req: Request) -> netcore::HandlerResult {
    Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
}

/// Calls `echo` on `link` until a call fails, checking the answers of those that
/// get through (sent before the peer's GOAWAY arrived); returns the failure.
async fn first_refusal(link: &Link) -> CallError {
    within("a call refused during the drain", async {
        for i in 0u64.. {
            match link.call("echo", i.to_string()).await {
                Ok(answer) => assert_eq!(answer.body.as_bytes().unwrap(), &i.to_string()),
                Err(error) => return error,
            }
        }
        unreachable!()
    })
    .await
}

fn assert_link_down(result: Result<netcore::Response, CallError>) {
    match result {
        Err(CallError::LinkDown(_)) => {}
        other => panic!("expected LinkDown, got {other:?}"),
    }
}

#[actix_rt::test]
async fn stop_lets_calls_in_flight_finish_and_refuses_new_requests_with_going_away() {
    let (server_gate, client_gate) = (Gate::new(), Gate::new());
    let server = Endpoint::builder()
        .drain_timeout(HANG)
        .route("hold", server_gate.handler())
        .route("echo", echo)
        .start();
    let client = || Endpoint::builder().route("hold", client_gate.handler());
    let (server_a, _a, link_a) = attach_client(&server, client(), None).await;
    let (_, _b, link_b) = attach_client(&server, client(), None).await;

    // In flight: a call from each client, and one from the server to client A.
    let from_a = link_a.request("hold", "from a").timeout(HANG).start().await;
    let from_b = link_b.request("hold", "from b").timeout(HANG).start().await;
    let to_a = server_a.request("hold", "to a").timeout(HANG).start().await;
    assert_eq!(server_gate.started_n(2).await, ["from a", "from b"]);
    assert_eq!(client_gate.started().await, "to a");

    let stopping = actix_rt::spawn({
        let server = server.clone();
        async move { server.stop().await }
    });
    // New requests from either client are refused while the drain goes on.
    let going_away = CallError::Canceled(ErrorCode::GoingAway);
    assert_eq!(first_refusal(&link_a).await, going_away);
    assert_eq!(first_refusal(&link_b).await, going_away);
    // The clients' links say so at once, with the reason they will go down with.
    for link in [&link_a, &link_b] {
        assert!(!link.is_up());
        assert!(
            matches!(
                link.state(),
                LinkState::Closing(DownReason::PeerWentAway(_))
            ),
            "{:?}",
            link.state()
        );
    }
    assert_eq!(
        link_a.send("echo", "one-way").await,
        Err(going_away.clone())
    );
    // So are the stopping side's own (its GOAWAY went out on link A: A saw it).
    let from_server = server_a.call("hold", "too late").await;
    assert_eq!(from_server.unwrap_err(), going_away);
    assert!(
        !stopping.is_finished(),
        "the drain waits for the calls in flight"
    );

    // The calls in flight finish, with their own answers, on both links.
    server_gate.release(2);
    client_gate.release(1);
    for (call, body) in [(from_a, "from a"), (from_b, "from b"), (to_a, "to a")] {
        let answer = within("a call in flight", call.unwrap().response()).await;
        assert_eq!(answer.unwrap().body.as_bytes().unwrap(), body);
    }
    assert_eq!(within("the drain", stopping).await.unwrap(), 0);
    for link in [&link_a, &link_b] {
        let reason = within("the link to close", link.closed()).await;
        assert!(matches!(reason, DownReason::PeerWentAway(_)), "{reason:?}");
        // A call after the link died reports why it died.
        let late = link.call("echo", "late").await.unwrap_err();
        assert!(
            matches!(late, CallError::LinkDown(DownReason::PeerWentAway(_))),
            "{late:?}"
        );
    }
}

#[actix_rt::test]
async fn the_drain_timeout_cuts_off_what_is_in_flight_with_link_down_on_both_sides() {
    let (server_gate, client_gate) = (Gate::new(), Gate::new());
    let server = Endpoint::builder()
        .drain_timeout(Duration::from_millis(300))
        .route("hold", server_gate.handler())
        .route("echo", echo)
        .start();
    let client = || {
        Endpoint::builder()
            .route("hold", client_gate.handler())
            .route("echo", echo)
    };
    let (server_a, _a, link_a) = attach_client(&server, client(), None).await;
    let (server_b, _b, link_b) = attach_client(&server, client(), None).await;
    // Finished calls are not in flight.
    assert_eq!(server_b.call("echo", "done").await.unwrap().body.len(), 4);
    assert_eq!(link_b.call("echo", "done").await.unwrap().body.len(), 4);

    // In flight and never released: link A serves one request and waits for the
    // answer to one call; link B serves one request.
    let from_a = link_a.request("hold", "from a").timeout(HANG).start().await;
    let from_b = link_b.request("hold", "from b").timeout(HANG).start().await;
    let to_a = server_a.request("hold", "to a").timeout(HANG).start().await;
    assert_eq!(server_gate.started_n(2).await, ["from a", "from b"]);
    assert_eq!(client_gate.started().await, "to a");

    let cut_off = within("stop", server.stop()).await;
    assert_eq!(cut_off, 3);
    // Cut off on the clients' side and on the server's.
    assert_link_down(within("client A's call", from_a.unwrap().response()).await);
    assert_link_down(within("client B's call", from_b.unwrap().response()).await);
    assert_link_down(within("the server's call", to_a.unwrap().response()).await);
    within("link A to close", link_a.closed()).await;
    within("link B to close", link_b.closed()).await;
    server_gate.release(2);
    client_gate.release(1);
}

#[actix_rt::test]
async fn a_request_its_caller_canceled_is_not_waited_for_nor_counted_as_cut_off() {
    let gate = Gate::new();
    // Generous: with nothing in flight the drain ends at once.
    let server = Endpoint::builder()
        .drain_timeout(Duration::from_secs(5))
        .route("hold", gate.handler())
        .start();
    let (_, _client, link) = attach_client(&server, Endpoint::builder(), None).await;
    let timeout = Duration::from_millis(200);
    let (result, started) =
        tokio::join!(link.request("hold", "x").timeout(timeout), gate.started());
    assert_eq!(started, "x");
    assert_eq!(result.unwrap_err(), CallError::Timeout(timeout));
    assert_eq!(gate.aborted().await, "x");
    assert_eq!(within("stop", server.stop()).await, 0);
    within("the link to close", link.closed()).await;
}

/// An answer given during the drain still reaches the caller whole even when the
/// line needs far longer to carry it than any fixed grace period: `stop` closes a
/// link only once what it queued was written. Over a line throttled to 115200
/// baud, a 12 KiB answer takes about a second.
#[actix_rt::test]
async fn an_answer_given_during_the_drain_reaches_the_caller_whole_on_a_slow_line() {
    use netcore::actors::transport::{throttled_pair, ThrottleConfig};
    use netcore::LinkOptions;
    const ANSWER: usize = 12 * 1024;
    let gate = Gate::new();
    let device = Endpoint::builder()
        .route("held", gate.handler())
        .drain_timeout(Duration::from_secs(15))
        .start();
    let gateway = Endpoint::builder().start();
    let (a, b) = throttled_pair(ThrottleConfig::serial_8n1(115_200));
    let options = LinkOptions::serial_flushed(115_200);
    let (link, _device_link) = tokio::join!(
        gateway.attach(a, options.clone()),
        device.attach(b, options)
    );
    let link = link.unwrap();
    let body = common::random_bytes(7, ANSWER);
    let call = link
        .request("held", body.clone())
        .timeout(Duration::from_secs(30));
    let stop_after_release = async {
        within("the held handler to start", gate.started()).await;
        // `join!` polls `stop` first: the drain has begun when the handler answers.
        let (cut_off, ()) = tokio::join!(within("stop", device.stop()), async { gate.release(1) });
        cut_off
    };
    let (answer, cut_off) = tokio::join!(call, stop_after_release);
    assert_eq!(cut_off, 0);
    let answer = answer.expect("the answer made during the drain arrives");
    assert_eq!(answer.body.as_bytes().unwrap().as_ref(), &body[..]);
}
