//! The link actor alone: a stand-in scheduler records the commands it is
//! given (a real protocol core's transmitter encodes them for the peer), a
//! stand-in router records the requests it hands over, and the peer is a
//! sans-IO protocol link on the other end of an in-memory pipe.

use super::*;
use crate::testing::{stub, Seen};
use bytes::{Buf, BytesMut};
use netcore_proto::link::{Link as PeerLink, LinkConfig, Transmitter};
use netcore_proto::Instant;
use tokio::io::{AsyncWriteExt, DuplexStream};

struct Harness {
    link: LinkHandle,
    scheduler: crate::messages::SchedulerStub,
    incoming: Seen<Incoming>,
    canceled: Seen<RouterCanceled>,
    peer_end: DuplexStream,
}

fn start() -> Harness {
    let (ours, peer_end) = tokio::io::duplex(1 << 20);
    let (scheduler, seen) = SchedulerInbox::stub();
    let (router, incoming) = stub(|_: &Incoming| ());
    let (router_cancel, canceled) = stub(|_: &RouterCanceled| ());
    let options = LinkOptions::stream();
    let one_way = OneWayQueue::new(options.one_way_queue);
    let link = LinkActor::start_with(
        Box::new(ours),
        options,
        (one_way, WorkShare::default()),
        scheduler,
        router,
        router_cancel,
    );
    Harness {
        link,
        scheduler: seen,
        incoming,
        canceled,
        peer_end,
    }
}

/// The commands of every `Apply` the stand-in scheduler got, up to and
/// including one that `wanted` matches (waiting up to 5 s for it).
async fn applied_until(harness: &Harness, wanted: impl Fn(&Command) -> bool) -> Vec<Command> {
    let mut commands: Vec<Command> = Vec::new();
    while !commands.iter().any(&wanted) {
        let applies = harness.scheduler.apply.wait_for(1).await;
        commands.extend(applies.into_iter().flat_map(|apply| apply.0));
    }
    commands
}

fn is_hello(command: &Command) -> bool {
    matches!(command, Command::Hello(_))
}

/// Completes the handshake with a sans-IO peer: our HELLO (encoded by a
/// transmitter from what the stand-in scheduler was given) reaches it, its
/// HELLO and then `send`'s frames reach us.
async fn connect(
    harness: &mut Harness,
    send: impl FnOnce(&mut PeerLink),
) -> (PeerLink, Transmitter) {
    let mut transmitter = Transmitter::new(&LinkOptions::stream().config);
    for command in applied_until(harness, is_hello).await {
        transmitter.apply(command);
    }
    let mut ours = BytesMut::new();
    while transmitter.poll_transmit(&mut ours) > 0 {}
    let mut peer = PeerLink::new(LinkConfig::stream(7), None);
    peer.handle_input(&ours, Instant::from_micros(0)).unwrap();
    send(&mut peer);
    let mut theirs = BytesMut::new();
    while peer.poll_transmit(&mut theirs) > 0 {}
    harness.peer_end.write_all(&theirs).await.unwrap();
    let mut state = harness.link.watch_state().await.unwrap();
    while *state.borrow_and_update() != LinkState::Up {
        state.changed().await.unwrap();
    }
    (peer, transmitter)
}

/// Encodes what the link gave the stand-in scheduler, up to a command `wanted`
/// matches, and hands it to the peer.
async fn ship_until(
    harness: &Harness,
    transmitter: &mut Transmitter,
    peer: &mut PeerLink,
    wanted: impl Fn(&Command) -> bool,
) {
    for command in applied_until(harness, wanted).await {
        transmitter.apply(command);
    }
    let mut ours = BytesMut::new();
    while transmitter.poll_transmit(&mut ours) > 0 {}
    peer.handle_input(&ours, Instant::from_micros(0)).unwrap();
}

#[actix_rt::test]
async fn a_started_link_queues_its_hello_registers_its_watchdog_and_pulls() {
    let harness = start();
    applied_until(&harness, is_hello).await;
    assert_eq!(harness.scheduler.watchdog.wait_for(1).await.len(), 1);
    // The writer task asks the scheduler for bytes.
    assert!(!harness.scheduler.pull.wait_for(1).await.is_empty());
    let state = harness.link.watch_state().await.unwrap();
    assert_eq!(*state.borrow(), LinkState::Connecting);
}

#[actix_rt::test]
async fn a_peer_request_goes_to_the_router_and_its_answer_to_the_scheduler() {
    let mut harness = start();
    let mut stream = None;
    connect(&mut harness, |peer| {
        let message = netcore_proto::link::Message::new("echo", "hi");
        stream = Some(peer.request(message).unwrap());
    })
    .await;
    let stream = stream.unwrap();
    let incoming = harness.incoming.wait_for(1).await.remove(0);
    assert_eq!(incoming.head.route, "echo");
    assert_eq!(incoming.head.stream, stream);
    assert_eq!(incoming.link.id(), harness.link.id());
    match incoming.body {
        Body::Bytes(bytes) => assert_eq!(bytes.chunk(), b"hi"),
        other => panic!("unexpected body {other:?}"),
    }
    assert_eq!(harness.link.in_flight().await, 1);

    // The router answers through the handle it got; the answer is queued.
    incoming.link.respond(Respond {
        stream,
        outcome: Ok(()),
        message: netcore_proto::link::Message::new("", "hi back"),
        payload: None,
    });
    applied_until(
        &harness,
        |c| matches!(c, Command::Enqueue { open, .. } if open.stream == stream),
    )
    .await;
    assert_eq!(harness.link.in_flight().await, 0);
    assert_eq!(harness.canceled.len(), 0);
}

#[actix_rt::test]
async fn closing_fails_the_calls_in_flight_and_closes_the_scheduler() {
    let mut harness = start();
    connect(&mut harness, |_| {}).await;
    let message = netcore_proto::link::Message::new("slow", "x");
    let (_, answer) = harness.link.request(message, None, false).await.unwrap();
    assert_eq!(harness.link.in_flight().await, 1);
    let reason = DownReason::Closed("closed by the test".into());
    harness.link.close(reason).await;
    assert!(matches!(
        answer.await.unwrap().unwrap_err(),
        CallError::LinkDown(DownReason::Closed(why)) if why == "closed by the test"
    ));
    assert!(!harness.scheduler.close.wait_for(1).await.is_empty());
    // The actor is gone: the handle reports it instead of hanging.
    assert_eq!(harness.link.in_flight().await, 0);
    assert!(harness.link.watch_state().await.is_err());
}

#[actix_rt::test]
async fn a_call_dropped_before_the_link_took_it_is_never_sent() {
    use futures_util::FutureExt;
    let mut harness = start();
    connect(&mut harness, |_| {}).await;
    let message = netcore_proto::link::Message::new("slow", "x");
    // Polled once (the call is in the mailbox), then dropped with its answer:
    // actix skips a message whose sender stopped waiting, so nothing leaves
    // (a forwarding handler aborted at that moment sends nothing).
    assert!(harness
        .link
        .request(message, None, false)
        .now_or_never()
        .is_none());
    assert_eq!(harness.link.in_flight().await, 0);
}

/// Sends the peer's pending frames to the link.
async fn flush_peer(harness: &mut Harness, peer: &mut PeerLink) {
    let mut theirs = BytesMut::new();
    while peer.poll_transmit(&mut theirs) > 0 {}
    harness.peer_end.write_all(&theirs).await.unwrap();
}

#[actix_rt::test]
async fn the_peer_canceling_its_request_tells_the_router() {
    let mut harness = start();
    let mut stream = None;
    let (mut peer, _) = connect(&mut harness, |peer| {
        let message = netcore_proto::link::Message::new("slow", "x");
        stream = Some(peer.request(message).unwrap());
    })
    .await;
    let stream = stream.unwrap();
    harness.incoming.wait_for(1).await;
    peer.cancel(stream, ErrorCode::Canceled);
    flush_peer(&mut harness, &mut peer).await;
    let canceled = harness.canceled.wait_for(1).await.remove(0);
    assert_eq!(canceled.link, harness.link.id());
    assert_eq!(canceled.stream, stream);
    assert_eq!(harness.link.in_flight().await, 0);
}

#[actix_rt::test]
async fn an_answer_from_the_peer_resolves_the_call() {
    let mut harness = start();
    let (mut peer, mut transmitter) = connect(&mut harness, |_| {}).await;
    let message = netcore_proto::link::Message::new("echo", "question");
    let (stream, answer) = harness.link.request(message, None, false).await.unwrap();
    // The request leaves through the (stand-in) scheduler; the peer answers it.
    ship_until(
        &harness,
        &mut transmitter,
        &mut peer,
        |c| matches!(c, Command::Enqueue { open, .. } if open.stream == stream),
    )
    .await;
    peer.respond(
        stream,
        Ok(()),
        netcore_proto::link::Message::new("", "answer"),
    )
    .unwrap();
    flush_peer(&mut harness, &mut peer).await;
    let response = answer.await.unwrap().unwrap();
    match response.body {
        Body::Bytes(bytes) => assert_eq!(bytes.chunk(), b"answer"),
        other => panic!("unexpected body {other:?}"),
    }
    assert_eq!(harness.link.in_flight().await, 0);
}
