//! Helpers shared by the integration tests: each test file that needs them says
//! `mod common;` (not every file uses every helper).
#![allow(dead_code, clippy::unwrap_used)]

use netcore::{Endpoint, EndpointBuilder, Link};

/// Starts `server` and `client`, connects them over TCP loopback, and returns the
/// server, its link to the client, the client, and its link to the server.
pub async fn tcp_pair(
    server: EndpointBuilder,
    client: EndpointBuilder,
) -> (Endpoint, Link, Endpoint, Link) {
    let server = server.start();
    let client = client.start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (s, c) = tokio::join!(server.accept_tcp(&listener), client.connect_tcp(addr));
    (server, s.unwrap(), client, c.unwrap())
}

/// [`tcp_pair`] with a plain client: (server, client, the client's link).
pub async fn connect(server: EndpointBuilder) -> (Endpoint, Endpoint, Link) {
    let (server, _, client, link) = tcp_pair(server, Endpoint::builder()).await;
    (server, client, link)
}

/// `len` pseudo-random bytes from `seed` (xorshift64): test data that compresses
/// badly and differs at every offset.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Awaits `future`, failing the test with `what` if it takes more than 30 s: a
/// guard against hangs, never a timing assertion.
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("timed out (30 s) waiting for {what}"))
}

/// What a test tells the handler of a [`gated_route`].
#[derive(Debug)]
pub enum Gate {
    /// Take chunks until more than this many bytes arrived, report
    /// [`Seen::Read`], then wait for the next order.
    ReadPast(u64),
    /// Take every chunk to the end (or the error), report [`Seen::Ended`].
    ReadAll,
}

/// What the handler of a [`gated_route`] reports.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// The message opened, announcing this length.
    Opened(Option<u64>),
    /// This many bytes taken so far.
    Read(u64),
    /// The body ended: `Ok((length, CRC-32C))` for a complete body, or the
    /// error its stream reported (with the bytes taken before it).
    Ended(Result<(u64, u32), (u64, std::io::ErrorKind, String)>),
}

/// The test's side of a [`gated_route`].
pub struct Gated {
    /// Orders for the handler.
    pub orders: tokio::sync::mpsc::UnboundedSender<Gate>,
    /// What the handler saw.
    pub seen: tokio::sync::mpsc::UnboundedReceiver<Seen>,
}

/// Adds `route` to `builder` as a streamed-body route (`stream_bodies`) whose
/// handler takes the body's chunks only as far as the test orders: until then the
/// body's credit stays with the handler and the sender stalls (flow control), so
/// a test can act at a known point of a transfer. Serves one message.
pub fn gated_route(builder: EndpointBuilder, route: &str) -> (EndpointBuilder, Gated) {
    use netcore::{Body, Reply, Request};
    use std::sync::{Arc, Mutex};
    use tokio::sync::mpsc;
    let (orders_tx, orders_rx) = mpsc::unbounded_channel::<Gate>();
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let orders_rx = Arc::new(Mutex::new(Some(orders_rx)));
    let builder = builder
        .stream_bodies(route)
        .route(route, move |req: Request| {
            let (orders, seen) = (orders_rx.lock().unwrap().take(), seen_tx.clone());
            async move {
                let mut orders = orders.expect("a gated route serves one message");
                let Body::Stream(mut body) = req.body else {
                    panic!("a gated route expects a multi-frame body");
                };
                seen.send(Seen::Opened(body.total_len())).unwrap();
                let mut crc = 0u32;
                while let Some(order) = orders.recv().await {
                    let until = match order {
                        Gate::ReadPast(n) => Some(n),
                        Gate::ReadAll => None,
                    };
                    while until.is_none_or(|n| body.received() <= n) {
                        match body.next().await {
                            Ok(Some(chunk)) => crc = crc32c::crc32c_append(crc, &chunk),
                            Ok(None) => {
                                seen.send(Seen::Ended(Ok((body.received(), crc)))).unwrap();
                                return Ok(Reply::new("stored"));
                            }
                            Err(e) => {
                                let end = (body.received(), e.kind(), e.to_string());
                                seen.send(Seen::Ended(Err(end))).unwrap();
                                return Ok(Reply::empty());
                            }
                        }
                    }
                    seen.send(Seen::Read(body.received())).unwrap();
                }
                Ok(Reply::empty())
            }
        });
    let gated = Gated {
        orders: orders_tx,
        seen: seen_rx,
    };
    (builder, gated)
}
