//! A link whose transport is cut every 2 s and reopened through its connector: a
//! 16 MiB transfer arrives byte-identical (the session resumes), and calls in
//! flight complete. A restarted peer fails calls in flight with `PeerReset`; over
//! TCP, a server link waits its resume window for its client, and a client back
//! after it gets a fresh session.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use netcore::actors::transport::{BoxedTransport, CutSchedule, FaultConfig, Faults, FaultyLine};
use netcore::actors::Connector;
use netcore::{DownReason, Endpoint, LinkOptions};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LEN: usize = 16 << 20;

mod common;

fn data() -> Vec<u8> {
    common::random_bytes(0x1234_5678_9abc_def1, LEN)
}

/// Calls `ping` on `link` (30 s at most) and checks the `pong`.
async fn ping(link: &netcore::Link) {
    let answer = link
        .request("ping", "")
        .timeout(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(answer.body.as_bytes().unwrap().as_ref(), b"pong");
}

#[actix_rt::test]
async fn sixteen_mib_survive_a_cut_every_two_seconds() {
    let line = FaultyLine::new(
        FaultConfig::new(7)
            .with_faults(Faults::none().with_bytes_per_sec(4_000_000))
            .with_cuts(CutSchedule::every(Duration::from_secs(2))),
    );
    let (a, b) = line.reconnect();
    // A's connector opens the next pair and hands B its end.
    let (to_b, from_a) = tokio::sync::mpsc::unbounded_channel::<BoxedTransport>();
    let connector_a = common::opening_connector(&line, to_b, || async { Ok(()) });
    let connector_b = common::receiving_connector(from_a);
    let options = |connector: Connector| {
        let mut options = LinkOptions::serial_flushed(40_000_000);
        options.config.chunk_len = 4096;
        options.connector = Some(connector);
        options
    };
    let received: Arc<Mutex<Option<(usize, bool)>>> = Arc::default();
    let log = received.clone();
    let expected = Arc::new(data());
    let check = expected.clone();
    let server = Endpoint::builder()
        .route("upload", move |body: Bytes| {
            *log.lock().unwrap() = Some((body.len(), body[..] == check[..]));
            async { "stored" }
        })
        .route("ping", || async { "pong" })
        .start();
    let client = Endpoint::builder().start();
    let (l, _s) = tokio::join!(
        client.attach(a, options(connector_a)),
        server.attach(b, options(connector_b))
    );
    let link = l.unwrap();
    let mut events = client.events().subscribe();
    let upload = link
        .request("upload", Bytes::from(expected.as_ref().clone()))
        .timeout(Duration::from_secs(60));
    let pings = async {
        for _ in 0..20 {
            ping(&link).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (answer, ()) = tokio::join!(upload, pings);
    assert_eq!(answer.unwrap().body.as_bytes().unwrap().as_ref(), b"stored");
    assert_eq!(*received.lock().unwrap(), Some((LEN, true)));
    assert!(
        line.pairs() >= 3,
        "the line was cut and reopened: {} pairs",
        line.pairs()
    );
    // Each cut is reported: link down while reconnecting, up once resumed.
    // (Events travel through the bus actor: give the last ones time to arrive.)
    let (mut downs, mut ups) = (0, 0);
    while downs < 2 || ups < 2 {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Ok(netcore::Event::LinkDown { .. })) => downs += 1,
            Ok(Ok(netcore::Event::LinkUp { .. })) => ups += 1,
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    assert!(downs >= 2 && ups >= 2, "{downs} downs, {ups} ups");
}

#[actix_rt::test]
async fn a_restarted_peer_fails_calls_in_flight_with_peer_reset() {
    let line = FaultyLine::new(FaultConfig::new(9));
    let (a, b) = line.reconnect();
    let (to_test, mut new_b_ends) = tokio::sync::mpsc::unbounded_channel::<BoxedTransport>();
    let connector = common::opening_connector(&line, to_test, || async { Ok(()) });
    let mut options = LinkOptions::serial_flushed(40_000_000);
    options.connector = Some(connector);
    let started = Arc::new(tokio::sync::Notify::new());
    let running = started.clone();
    let slow = move || {
        running.notify_one();
        async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        }
    };
    let server = Endpoint::builder().route("slow", slow).start();
    let client = Endpoint::builder().start();
    let (l, _s) = tokio::join!(
        client.attach(a, options),
        server.attach(b, LinkOptions::serial_flushed(40_000_000))
    );
    let link = l.unwrap();
    let call = link.request("slow", "x").timeout(Duration::from_secs(20));
    let restart = async {
        // The call is in flight at the server.
        started.notified().await;
        // The server process "restarts": its endpoint is gone, a new one takes the
        // next transport the client's connector opens.
        // (Cut first: dropping the server first could let the client reconnect
        // before the cut, which would then hit the new pair.)
        line.cut();
        drop(server);
        let b = new_b_ends.recv().await.unwrap();
        let reborn = Endpoint::builder()
            .route("slow", || async { "fresh" })
            .start();
        reborn
            .attach(b, LinkOptions::serial_flushed(40_000_000))
            .await
            .unwrap();
        reborn
    };
    let (result, _reborn) = tokio::join!(call, restart);
    assert_eq!(
        result.map(|r| r.body.as_bytes().cloned()),
        Err(netcore::CallError::PeerReset)
    );
    // The link goes on with the new peer.
    let answer = link
        .request("slow", "y")
        .timeout(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(answer.body.as_bytes().unwrap().as_ref(), b"fresh");
}

/// A TCP proxy between client and server, paced to ~30 MB/s, whose connections
/// the test can cut (the network breaks; new connections go through again).
/// Returns its address, the cut trigger, and the count of bytes it forwarded
/// (both ways, all connections).
async fn cut_proxy(
    target: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    tokio::sync::watch::Sender<u32>,
    tokio::sync::watch::Receiver<u64>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cuts, _) = tokio::sync::watch::channel(0u32);
    let watch = cuts.clone();
    let (forwarded, forwarded_rx) = tokio::sync::watch::channel(0u64);
    let forwarded = Arc::new(forwarded);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let mut cut = watch.subscribe();
            let forwarded = forwarded.clone();
            tokio::spawn(async move {
                let (ir, iw) = inbound.into_split();
                let (or, ow) = outbound.into_split();
                let pump = |mut r: tokio::net::tcp::OwnedReadHalf,
                            mut w: tokio::net::tcp::OwnedWriteHalf| {
                    let forwarded = forwarded.clone();
                    async move {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = r.read(&mut buf).await.unwrap_or(0);
                            if n == 0 || w.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                            forwarded.send_modify(|total| *total += n as u64);
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                };
                tokio::select! {
                    _ = pump(ir, ow) => {}
                    _ = pump(or, iw) => {}
                    _ = cut.changed() => {}
                }
                // Dropping both sockets here is the cut.
            });
        }
    });
    (addr, cuts, forwarded_rx)
}

#[actix_rt::test]
async fn a_tcp_link_resumes_after_the_network_breaks() {
    let data: Vec<u8> = (0..(6u32 << 20))
        .map(|i| (i.wrapping_mul(2246822519) >> 11) as u8)
        .collect();
    let expected = Arc::new(data.clone());
    let check = expected.clone();
    let server = Endpoint::builder()
        .tcp_resume(Duration::from_secs(10))
        .route("upload", move |body: Bytes| {
            let intact = body[..] == check[..];
            async move {
                if intact {
                    "intact"
                } else {
                    "corrupt"
                }
            }
        })
        .start();
    // The serve loop: the resuming connection's first frame is read in its own
    // task, and the connection goes to the link whose session it names.
    let serving = server.serve_tcp("127.0.0.1:0").await.unwrap();
    let server_addr = serving.local_addr().tcp().unwrap();
    let (proxy, cuts, mut forwarded) = cut_proxy(server_addr).await;
    let client = Endpoint::builder()
        .tcp_resume(Duration::from_secs(10))
        .start();
    let link = client.connect_tcp(proxy).await.unwrap();
    let call = async {
        let answer = link
            .request("upload", data)
            .timeout(Duration::from_secs(60))
            .await;
        (answer, *cuts.borrow())
    };
    let cut = async {
        // Break the network once a sixth of the upload went through.
        forwarded
            .wait_for(|bytes| *bytes >= (1 << 20))
            .await
            .unwrap();
        cuts.send_modify(|n| *n += 1);
    };
    let ((answer, cuts_before_answer), ()) = tokio::join!(call, cut);
    assert_eq!(
        cuts_before_answer, 1,
        "the network broke while the upload was in flight"
    );
    assert_eq!(answer.unwrap().body.as_bytes().unwrap().as_ref(), b"intact");
    assert_eq!(
        server.accept_stats().accepted,
        2,
        "the client came back on a second connection, routed to its session"
    );
    assert_eq!(
        server.links().len(),
        1,
        "one link, resumed, not a second one"
    );
    // Only the new link was announced, not its resumption.
    serving.stop();
    assert!(serving.next_link().await.is_some());
    assert!(serving.next_link().await.is_none());
}

/// Forwards one proxied connection to `target` until the task is aborted (which
/// drops both sockets: the network breaks).
async fn forward(inbound: tokio::net::TcpStream, target: std::net::SocketAddr) {
    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let (mut ir, mut iw) = inbound.into_split();
    let (mut or, mut ow) = outbound.into_split();
    tokio::select! {
        _ = tokio::io::copy(&mut ir, &mut ow) => {}
        _ = tokio::io::copy(&mut or, &mut iw) => {}
    }
}

/// A listener on `addr` (port 0: any) that may be bound again on the same port.
fn rebindable(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    socket.listen(16).unwrap()
}

#[actix_rt::test]
async fn a_client_back_after_the_resume_window_gets_a_fresh_session() {
    const WINDOW: Duration = Duration::from_millis(300);
    // The server's handler tells the test when the request reached it.
    let (started, mut handler_started) = tokio::sync::mpsc::unbounded_channel::<()>();
    let server = Endpoint::builder()
        .tcp_resume(WINDOW)
        .route("slow", move || {
            let _ = started.send(());
            async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }
        })
        .route("ping", || async { "pong" })
        .start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let (links, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let acceptor = server.clone();
    actix_rt::spawn(async move {
        while let Ok(link) = acceptor.accept_tcp(&listener).await {
            let _ = links.send(link);
        }
    });

    // The client reaches the server through a proxy: one forwarded connection.
    let proxy = rebindable("127.0.0.1:0".parse().unwrap());
    let proxy_addr = proxy.local_addr().unwrap();
    let client = Endpoint::builder()
        .tcp_resume(Duration::from_secs(10))
        .start();
    // Aborting this task is the cut: it drops the connection and the listener.
    let first = tokio::spawn(async move {
        let (inbound, _) = proxy.accept().await.unwrap();
        forward(inbound, server_addr).await;
    });
    let link = client.connect_tcp(proxy_addr).await;
    let link = link.unwrap();
    let first_server_link = accepted.recv().await.unwrap();
    let call_link = link.clone();
    let call = actix_rt::spawn(async move {
        call_link
            .request("slow", "x")
            .timeout(Duration::from_secs(30))
            .await
            .map(|r| r.body.as_bytes().cloned())
    });
    handler_started.recv().await.unwrap();

    // The network breaks, and the client cannot get through (connections are
    // refused) until the server gave up waiting for it.
    first.abort();
    let reason = tokio::time::timeout(Duration::from_secs(30), first_server_link.closed())
        .await
        .expect("the server link waits for its client beyond the resume window");
    assert!(
        matches!(reason, DownReason::ResumeWindowElapsed(_)),
        "{reason}"
    );

    // The client gets through again: the server no longer has its session, so the
    // connection becomes a new link, and the client's call in flight fails with
    // PeerReset while the link goes on as a new session.
    let proxy = rebindable(proxy_addr);
    actix_rt::spawn(async move {
        while let Ok((inbound, _)) = proxy.accept().await {
            tokio::spawn(forward(inbound, server_addr));
        }
    });
    let result = call.await.unwrap();
    assert_eq!(result, Err(netcore::CallError::PeerReset));
    let second_server_link = tokio::time::timeout(Duration::from_secs(30), accepted.recv())
        .await
        .expect("the client came back")
        .unwrap();
    assert_ne!(second_server_link.id(), first_server_link.id());
    ping(&link).await;
    let up: Vec<_> = server.links().iter().map(|l| l.id()).collect();
    assert_eq!(up, vec![second_server_link.id()]);
}
