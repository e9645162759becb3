//! Events, scheduled tasks and the cache of real endpoints, and the supervised
//! services restarting after an injected panic while the endpoint keeps serving.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use netcore::actors::supervision::InjectPanic;
use netcore::proto::StreamId;
use netcore::{Endpoint, Event};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::connect;

async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[actix_rt::test]
async fn events_are_delivered_in_order_to_on_once_and_streams() {
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let log = seen.clone();
    let server = Endpoint::builder()
        .route("echo", |b: Bytes| async move { b })
        .on(|_| true, move |e| log.lock().unwrap().push(e.clone()));
    let (server, client, link) = connect(server).await;
    let mut stream = server.events().subscribe();
    let once_count = Arc::new(AtomicUsize::new(0));
    let counter = once_count.clone();
    server.events().once(
        |e| matches!(e, Event::Request { .. }),
        move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        },
    );
    // A subscriber that panics does not stop the others.
    server.events().on(|_| true, |_| panic!("bad subscriber"));

    link.call("echo", "a").await.unwrap();
    link.call("echo", "b").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    std::fs::write(&path, vec![1u8; 300_000]).unwrap();
    let mut transfer = server.links()[0].send_file("nowhere", &path).await.unwrap();
    transfer.finished().await;

    eventually("the request and response events", || {
        let seen = seen.lock().unwrap();
        seen.iter()
            .filter(|e| matches!(e, Event::Response { ok: true, .. }))
            .count()
            == 2
    })
    .await;
    eventually("transfer progress events", || {
        seen.lock().unwrap().iter().any(|e| {
            matches!(
                e,
                Event::TransferProgress {
                    done: 300_000,
                    total: Some(300_000),
                    ..
                }
            )
        })
    })
    .await;
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0], Event::Started, "{seen:?}");
        assert!(matches!(seen[1], Event::LinkUp { .. }), "{seen:?}");
        let routes: Vec<_> = seen
            .iter()
            .filter_map(|e| match e {
                Event::Request { route, .. } => Some(route.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(routes, ["echo", "echo"]);
    }
    assert_eq!(once_count.load(Ordering::SeqCst), 1, "once fires once");
    // The broadcast stream saw the same requests.
    let mut requests = 0;
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), stream.recv()).await
    {
        requests += matches!(event, Event::Request { .. }) as usize;
    }
    assert_eq!(requests, 2);

    // The client stops: the server sees the link go down; then the server stops.
    client.stop().await;
    eventually("LinkDown", || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::LinkDown { .. }))
    })
    .await;
    server.stop().await;
    eventually("Stopped", || {
        seen.lock().unwrap().last() == Some(&Event::Stopped)
    })
    .await;
}

#[actix_rt::test]
async fn off_stops_delivery() {
    let server = Endpoint::builder().start();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let id = server.events().on(
        |e| matches!(e, Event::Canceled { .. }),
        move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        },
    );
    let link_id = netcore::LinkId(999);
    server.events().publish(Event::Canceled {
        link: link_id,
        stream: StreamId(1),
    });
    eventually("the first event", || count.load(Ordering::SeqCst) == 1).await;
    server.events().off(id);
    server.events().publish(Event::Canceled {
        link: link_id,
        stream: StreamId(2),
    });
    // The bus handles its messages in order, one event at a time: once a later
    // event reached another subscriber, the second one has been dealt with.
    let (barrier, passed) = tokio::sync::oneshot::channel();
    server.events().once(
        |e| {
            matches!(
                e,
                Event::Canceled {
                    stream: StreamId(3),
                    ..
                }
            )
        },
        move |_| {
            let _ = barrier.send(());
        },
    );
    server.events().publish(Event::Canceled {
        link: link_id,
        stream: StreamId(3),
    });
    tokio::time::timeout(Duration::from_secs(10), passed)
        .await
        .expect("the bus delivers a later event")
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn periodic_tasks_run_survive_panics_and_cancel() {
    // Virtual time: the timer actor runs on tokio's clock, so the windows below
    // are exact whatever the machine's load (time advances only when every task
    // is idle).
    tokio::time::pause();
    let server = Endpoint::builder().start();
    let ticks = Arc::new(AtomicUsize::new(0));
    let t = ticks.clone();
    let handle = server.timers().schedule(
        Duration::from_millis(10),
        Some(Duration::from_millis(20)),
        move || {
            let n = t.fetch_add(1, Ordering::SeqCst);
            if n == 1 {
                panic!("second tick fails");
            }
        },
    );
    eventually("four ticks, the second one panicking", || {
        ticks.load(Ordering::SeqCst) >= 4
    })
    .await;
    handle.cancel();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let stopped_at = ticks.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        ticks.load(Ordering::SeqCst),
        stopped_at,
        "a canceled task stops"
    );
    // A one-shot task runs once.
    let once = Arc::new(AtomicUsize::new(0));
    let o = once.clone();
    server
        .timers()
        .schedule(Duration::from_millis(5), None, move || {
            o.fetch_add(1, Ordering::SeqCst);
        });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(once.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn the_endpoint_cache_gets_deletes_clears_and_holds_its_capacity() {
    // (TTL expiry is the cache actor's own: `cache_ttl_expiry` in actors/tests.)
    let server = Endpoint::builder().cache_capacity(100).start();
    let cache = server.cache();
    cache
        .set("a", Bytes::from_static(b"1"), None)
        .await
        .unwrap();
    assert_eq!(
        cache.get("a").await.unwrap(),
        Some(Bytes::from_static(b"1"))
    );
    assert_eq!(
        cache.delete("a").await.unwrap(),
        Some(Bytes::from_static(b"1"))
    );
    assert_eq!(cache.get("a").await.unwrap(), None);
    for i in 0..1000 {
        cache
            .set(format!("k{i}"), Bytes::from_static(b"v"), None)
            .await
            .unwrap();
    }
    assert!(cache.entry_count().await.unwrap() <= 100, "capacity holds");
    cache.clear().await.unwrap();
    assert_eq!(cache.entry_count().await.unwrap(), 0);
}

#[actix_rt::test]
async fn supervised_services_restart_after_a_panic_and_keep_serving() {
    let restarts: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = restarts.clone();
    let server = Endpoint::builder()
        .route("echo", |b: Bytes| async move { b })
        .on(
            |e| matches!(e, Event::ActorRestarted { .. }),
            move |e| {
                if let Event::ActorRestarted { actor, .. } = e {
                    log.lock().unwrap().push(actor.clone());
                }
            },
        );
    let (server, _client, link) = connect(server).await;
    server
        .cache()
        .set("k", Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    let cache_addr = server.cache().addr().clone();
    assert!(cache_addr
        .send(InjectPanic("injected".into()))
        .await
        .unwrap()
        .is_err());
    let timer_addr = server.timers().addr().clone();
    assert!(timer_addr
        .send(InjectPanic("injected".into()))
        .await
        .unwrap()
        .is_err());
    eventually("two restart events", || restarts.lock().unwrap().len() >= 2).await;
    // Same addresses, still serving; the cache kept its contents.
    assert_eq!(
        server.cache().get("k").await.unwrap(),
        Some(Bytes::from_static(b"v"))
    );
    let ticked = Arc::new(AtomicUsize::new(0));
    let t = ticked.clone();
    server
        .timers()
        .schedule(Duration::from_millis(1), None, move || {
            t.fetch_add(1, Ordering::SeqCst);
        });
    eventually("the restarted timer runs tasks", || {
        ticked.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        link.call("echo", "ok")
            .await
            .unwrap()
            .body
            .as_bytes()
            .unwrap()
            .as_ref(),
        b"ok"
    );
}
