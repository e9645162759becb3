//! A gateway: one endpoint attached to three links at once (two in-process serial
//! lines and a TCP uplink). Each request knows its link, answers go back on it,
//! `call_on` addresses one link, links come and go at run time, and a link that
//! dies disturbs none of the others.
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::{throttled_pair, ThrottleConfig};
use netcore::{CallError, DownReason, Endpoint, LinkId, LinkOptions};
use std::time::Duration;

fn device(name: &'static str) -> Endpoint {
    Endpoint::builder()
        .route("name", move || async move { name })
        .start()
}

fn text(answer: netcore::Response) -> String {
    String::from_utf8(answer.body.as_bytes().unwrap().to_vec()).unwrap()
}

#[actix_rt::test]
async fn three_links_one_killed() {
    let gateway = Endpoint::builder()
        .route("whereami", |link: LinkId| async move { link.to_string() })
        .start();
    let serial = || {
        let mut options = LinkOptions::serial(1_000_000);
        options.flush = true;
        options
    };

    let (d1, d2, up) = (device("sensor-1"), device("sensor-2"), device("cloud"));
    let (a1, b1) = throttled_pair(ThrottleConfig::serial_8n1(1_000_000));
    let (a2, b2) = throttled_pair(ThrottleConfig::serial_8n1(1_000_000));
    let (l1, p1) = tokio::join!(gateway.attach(a1, serial()), d1.attach(b1, serial()));
    let (l2, p2) = tokio::join!(gateway.attach(a2, serial()), d2.attach(b2, serial()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (l3, p3) = tokio::join!(gateway.connect_tcp(addr), up.accept_tcp(&listener));
    let (l1, l2, l3) = (l1.unwrap(), l2.unwrap(), l3.unwrap());
    let (p1, p2, p3) = (p1.unwrap(), p2.unwrap(), p3.unwrap());
    assert_eq!(gateway.links().len(), 3);

    // Each link reaches its own peer, and each peer's request is answered on its link.
    assert_eq!(
        text(gateway.call_on(l1.id(), "name", "").await.unwrap()),
        "sensor-1"
    );
    assert_eq!(
        text(gateway.call_on(l2.id(), "name", "").await.unwrap()),
        "sensor-2"
    );
    assert_eq!(
        text(gateway.call_on(l3.id(), "name", "").await.unwrap()),
        "cloud"
    );
    assert_eq!(
        text(p1.call("whereami", "").await.unwrap()),
        l1.id().to_string()
    );
    assert_eq!(
        text(p2.call("whereami", "").await.unwrap()),
        l2.id().to_string()
    );
    assert_eq!(
        text(p3.call("whereami", "").await.unwrap()),
        l3.id().to_string()
    );

    // Kill sensor-2's side while calls run on the other links.
    let calls_running = tokio::sync::Notify::new();
    let busy = async {
        for _ in 0..50 {
            assert_eq!(text(l1.call("name", "").await.unwrap()), "sensor-1");
            calls_running.notify_one();
            assert_eq!(text(l3.call("name", "").await.unwrap()), "cloud");
        }
    };
    let kill = async {
        calls_running.notified().await;
        d2.stop().await;
    };
    tokio::join!(busy, kill);
    tokio::time::timeout(Duration::from_secs(5), l2.closed())
        .await
        .unwrap();
    assert!(matches!(
        gateway.call_on(l2.id(), "name", "").await,
        Err(CallError::LinkDown(DownReason::NotAttached(Some(id)))) if id == l2.id()
    ));
    assert_eq!(gateway.links().len(), 2);
    assert_eq!(
        text(gateway.call_on(l1.id(), "name", "").await.unwrap()),
        "sensor-1"
    );

    // Links are added and removed at run time.
    let d4 = device("sensor-4");
    let (a4, b4) = throttled_pair(ThrottleConfig::serial_8n1(1_000_000));
    let (l4, _p4) = tokio::join!(gateway.attach(a4, serial()), d4.attach(b4, serial()));
    let l4 = l4.unwrap();
    assert_eq!(
        text(gateway.call_on(l4.id(), "name", "").await.unwrap()),
        "sensor-4"
    );
    assert!(gateway.detach(l1.id()).await);
    assert!(!gateway.detach(l1.id()).await);
    assert_eq!(
        l1.call("name", "").await.map(drop),
        Err(CallError::LinkDown(DownReason::Detached))
    );
    assert_eq!(text(l3.call("name", "").await.unwrap()), "cloud");
    assert_eq!(text(l4.call("name", "").await.unwrap()), "sensor-4");
}
