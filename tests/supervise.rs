//! Supervised links on the runtime: a radio link whose peer falls silent stays
//! up (`LinkState::Reconnecting`), probes it with backoff, reports each attempt
//! on the event bus, and resumes by itself when the peer answers again, every
//! message delivered once; the give-up time of the `ReconnectPolicy` is
//! honoured, for silence and for a transport that cannot be reopened.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use netcore::actors::transport::{faulty_pair, BoxedTransport, FaultConfig, Faults, FaultyLine};
use netcore::actors::Connector;
use netcore::proto::link::Keepalive;
use netcore::{
    CallError, DownReason, Endpoint, Event, LinkOptions, LinkState, Reply, Request, Retry,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

/// 115200 baud, supervised, with a quicker keepalive than the default (silence
/// noticed in ~6 s; a loaded machine would need to stall that long to fake one).
fn radio() -> LinkOptions {
    let mut options = LinkOptions::serial_flushed(115_200);
    options.config.keepalive = Some(Keepalive {
        interval: Duration::from_secs(2),
        max_missed: 2,
    });
    options
}

/// An endpoint recording the one-way messages to `m` and echoing `echo`.
fn receiver(log: Arc<Mutex<Vec<Bytes>>>) -> netcore::EndpointBuilder {
    Endpoint::builder()
        .route("m", move |req: Request| {
            let body = req.body.as_bytes().cloned().unwrap_or_default();
            log.lock().unwrap().push(body);
            async { Ok(Reply::empty()) }
        })
        .route("echo", |body: Bytes| async move { body })
}

fn message(i: u32) -> Bytes {
    let mut body = i.to_be_bytes().to_vec();
    body.extend(std::iter::repeat_n(i as u8, 600));
    Bytes::from(body)
}

/// Waits until `log` holds `n` messages (a generous bound: only a hang fails).
async fn arrived(log: &Arc<Mutex<Vec<Bytes>>>, n: usize) {
    common::within("every message arrives", async {
        while log.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[actix_rt::test]
async fn a_radio_silent_for_thirty_seconds_resumes_by_itself_with_every_message_once() {
    let (a, b) =
        faulty_pair(FaultConfig::new(11).with_faults(Faults::none().with_bytes_per_sec(11_520)));
    let line = a.handle();
    let log: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let server = receiver(log.clone()).start();
    let client = Endpoint::builder().start();
    let mut events = client.events().subscribe();
    let (link, other) = tokio::join!(client.attach(a, radio()), server.attach(b, radio()));
    let (link, _other) = (link.unwrap(), other.unwrap());
    for i in 0..20 {
        link.send("m", message(i)).await.unwrap();
    }
    arrived(&log, 5).await;

    // Out of range for 30 s, with messages on their way.
    line.silence(Duration::from_secs(30));
    let silent_at = Instant::now();
    for i in 20..40 {
        link.send("m", message(i)).await.unwrap();
    }
    // A call with a long timeout waits for the peer; one with a short timeout
    // fails on its own time, not the link's.
    let patient = {
        let link = link.clone();
        actix_rt::spawn(async move {
            link.request("echo", "still there?")
                .timeout(Duration::from_secs(50))
                .await
        })
    };
    let hasty = link
        .request("echo", "now?")
        .timeout(Duration::from_secs(2))
        .await;
    assert!(matches!(hasty, Err(CallError::Timeout(_))), "{hasty:?}");
    // The silence is noticed (3 keepalive periods) and the link keeps trying.
    common::within("the link reconnecting", async {
        while link.state() != LinkState::Reconnecting {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let remaining = Duration::from_secs(30).saturating_sub(silent_at.elapsed());
    tokio::time::sleep(remaining / 2).await;
    assert_eq!(
        link.state(),
        LinkState::Reconnecting,
        "never down by itself"
    );
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(silent_at.elapsed())).await;

    // Back in range: up again within the probes' backoff (250 ms) plus the
    // retransmissions, and everything arrives exactly once, in order.
    let back = Instant::now();
    common::within("the link back up", async {
        while !link.is_up() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let resumed_after = back.elapsed();
    arrived(&log, 40).await;
    let answer = common::within("the patient call", patient).await.unwrap();
    assert_eq!(
        answer.unwrap().body.as_bytes().unwrap().as_ref(),
        b"still there?"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = log.lock().unwrap().clone();
    let expected: Vec<Bytes> = (0..40).map(message).collect();
    assert_eq!(got, expected, "every message once, in order");
    assert!(line.sent().dropped > 0, "the silence swallowed frames");

    // The events: down (reconnecting), a probe per attempt with its number and
    // wait, recovered, up. (A stall of the loaded machine as long as the
    // keepalive's patience would add an outage of its own: each is checked.)
    let (mut downs, mut probes, mut outages, mut ups) = (0, Vec::new(), Vec::new(), 0);
    while let Ok(event) = events.try_recv() {
        match event {
            Event::LinkDown {
                reason: DownReason::Reconnecting,
                ..
            } => downs += 1,
            Event::LinkRetrying {
                attempt,
                how: Retry::Probe,
                wait,
                error,
                ..
            } => {
                assert!(wait <= Duration::from_millis(250), "{wait:?}");
                assert!(matches!(error, DownReason::Unresponsive { .. }), "{error}");
                probes.push(attempt);
            }
            Event::LinkRecovered {
                attempts, outage, ..
            } => outages.push((attempts, outage)),
            Event::LinkUp { .. } => ups += 1,
            _ => {}
        }
    }
    assert!(downs >= 1);
    assert_eq!(outages.len(), downs, "each outage recovered");
    assert_eq!(ups, downs + 1, "up, then up again after each outage");
    // Attempts count 1, 2, 3, … within each outage.
    let mut expected = 0;
    for attempt in &probes {
        expected = if *attempt == 1 { 1 } else { expected + 1 };
        assert_eq!(*attempt, expected, "{probes:?}");
    }
    let (attempts, outage) = outages.iter().max_by_key(|(_, outage)| *outage).unwrap();
    assert!(*outage > Duration::from_secs(20), "{outage:?}");
    assert!(*attempts > 20, "{attempts} probes");
    eprintln!("resumed {resumed_after:?} after the line came back");
}

#[actix_rt::test]
async fn a_silent_peer_is_given_up_on_at_the_give_up_time() {
    let (a, b) = faulty_pair(FaultConfig::new(12));
    let line = a.handle();
    let server = receiver(Arc::default()).start();
    let client = Endpoint::builder().start();
    let mut options = radio();
    options.reconnect.give_up = Some(Duration::from_secs(2));
    let (link, other) = tokio::join!(client.attach(a, options), server.attach(b, radio()));
    let (link, _other) = (link.unwrap(), other.unwrap());
    line.silence(Duration::from_secs(3600));
    let call = {
        let link = link.clone();
        actix_rt::spawn(async move {
            link.request("echo", "x")
                .timeout(Duration::from_secs(60))
                .await
        })
    };
    let silent_at = Instant::now();
    let reason = common::within("the link giving up", link.closed()).await;
    let DownReason::GaveUp { after, cause } = &reason else {
        panic!("down for another reason: {reason}");
    };
    assert!(
        matches!(**cause, DownReason::Unresponsive { .. }),
        "{cause}"
    );
    assert!(*after >= Duration::from_secs(2), "{after:?}");
    // Silence noticed after ~6 s, then 2 s of probes.
    assert!(
        silent_at.elapsed() >= Duration::from_secs(6),
        "{:?}",
        silent_at.elapsed()
    );
    let failed = common::within("the call", call).await.unwrap();
    assert!(
        matches!(&failed, Err(CallError::LinkDown(DownReason::GaveUp { .. }))),
        "{failed:?}"
    );
}

/// A connector that fails while `down` is set, else opens the next pair of
/// `line` and hands its other end to `to_b`.
fn connector(
    line: &FaultyLine,
    down: &Arc<AtomicBool>,
    to_b: tokio::sync::mpsc::UnboundedSender<BoxedTransport>,
) -> Connector {
    let down = down.clone();
    common::opening_connector(line, to_b, move || {
        let down = down.load(Ordering::SeqCst);
        async move {
            if down {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such device",
                ));
            }
            Ok(())
        }
    })
}

#[actix_rt::test]
async fn a_port_that_comes_back_is_reopened_with_an_event_per_attempt() {
    let line = FaultyLine::new(FaultConfig::new(13));
    let (a, b) = line.reconnect();
    let down = Arc::new(AtomicBool::new(false));
    let (to_b, from_a) = tokio::sync::mpsc::unbounded_channel();
    let mut options_a = radio();
    options_a.connector = Some(connector(&line, &down, to_b));
    let mut options_b = radio();
    options_b.connector = Some(common::receiving_connector(from_a));
    let log: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let server = receiver(log.clone()).start();
    let client = Endpoint::builder().start();
    let mut events = client.events().subscribe();
    let (link, other) = tokio::join!(client.attach(a, options_a), server.attach(b, options_b));
    let (link, _other) = (link.unwrap(), other.unwrap());
    link.send("m", message(0)).await.unwrap();
    arrived(&log, 1).await;

    // The port fails and cannot be opened for a second.
    down.store(true, Ordering::SeqCst);
    line.cut();
    common::within("the link reconnecting", async {
        while link.state() != LinkState::Reconnecting {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    for i in 1..10 {
        link.send("m", message(i)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(link.state(), LinkState::Reconnecting);
    down.store(false, Ordering::SeqCst);
    let back = Instant::now();
    common::within("the link back up", async {
        while !link.is_up() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let resumed_after = back.elapsed();
    arrived(&log, 10).await;
    let expected: Vec<Bytes> = (0..10).map(message).collect();
    assert_eq!(*log.lock().unwrap(), expected);
    // The reopening waits are capped at 250 ms (ReconnectPolicy::serial).
    assert!(resumed_after < Duration::from_secs(5), "{resumed_after:?}");

    let mut reopens = Vec::new();
    let mut recovered = None;
    common::within("the recovery event", async {
        while recovered.is_none() {
            match events.recv().await.unwrap() {
                Event::LinkRetrying {
                    attempt,
                    how: Retry::Reopen,
                    error,
                    wait,
                    ..
                } => reopens.push((attempt, error, wait)),
                // (After the reopenings: not a stall-made outage before them.)
                Event::LinkRecovered { attempts, .. } if !reopens.is_empty() => {
                    recovered = Some(attempts)
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(reopens.len() >= 3, "{reopens:?}");
    for (n, (attempt, error, wait)) in reopens.iter().enumerate() {
        assert_eq!(*attempt as usize, n + 1);
        assert!(*wait <= Duration::from_millis(250));
        if n > 0 && n + 1 < reopens.len() {
            // Each failed reopening's error comes with the next attempt.
            assert!(
                matches!(error, DownReason::Transport(e) if e.kind() == std::io::ErrorKind::NotFound),
                "{error}"
            );
        }
    }
    assert!(recovered.unwrap() as usize >= reopens.len());
    eprintln!("resumed {resumed_after:?} after the port came back");
}

#[actix_rt::test]
async fn a_port_that_never_comes_back_is_given_up_on() {
    let line = FaultyLine::new(FaultConfig::new(14));
    let (a, b) = line.reconnect();
    let down = Arc::new(AtomicBool::new(false));
    let (to_b, _from_a) = tokio::sync::mpsc::unbounded_channel();
    let mut options = radio();
    options.connector = Some(connector(&line, &down, to_b));
    options.reconnect.give_up = Some(Duration::from_millis(1500));
    let server = receiver(Arc::default()).start();
    let client = Endpoint::builder().start();
    let (link, other) = tokio::join!(client.attach(a, options), server.attach(b, radio()));
    let (link, _other) = (link.unwrap(), other.unwrap());
    down.store(true, Ordering::SeqCst);
    let cut_at = Instant::now();
    line.cut();
    let reason = common::within("the link giving up", link.closed()).await;
    assert!(
        matches!(&reason, DownReason::GaveUp { after, .. } if *after >= Duration::from_millis(1500)),
        "{reason}"
    );
    assert!(cut_at.elapsed() >= Duration::from_millis(1500));
}
