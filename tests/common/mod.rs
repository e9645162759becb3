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

/// `len` pseudo-random bytes from `seed` (the shared seeded generator): test data
/// that compresses badly and differs at every offset.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    netcore::proto::rng::SplitMix64::new(seed).bytes(len)
}

/// Generous upper bound on any wait in the tests: reached only when something hangs.
pub const HANG: std::time::Duration = std::time::Duration::from_secs(20);

/// Awaits `future`, failing the test with `what` if it takes longer than [`HANG`].
pub async fn within<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(HANG, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Handlers the test holds: each reports its request's body when it starts, then
/// waits until the test releases it, then answers with the body. A handler
/// dropped before it finished (its request canceled) reports its body as aborted.
pub struct Gate {
    started_tx: tokio::sync::mpsc::UnboundedSender<bytes::Bytes>,
    started: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>>,
    aborted_tx: tokio::sync::mpsc::UnboundedSender<bytes::Bytes>,
    aborted: tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>>,
    release: tokio::sync::Semaphore,
}

impl Gate {
    /// A gate holding every handler until released.
    pub fn new() -> std::sync::Arc<Gate> {
        let (started_tx, started) = tokio::sync::mpsc::unbounded_channel();
        let (aborted_tx, aborted) = tokio::sync::mpsc::unbounded_channel();
        std::sync::Arc::new(Gate {
            started_tx,
            started: tokio::sync::Mutex::new(started),
            aborted_tx,
            aborted: tokio::sync::Mutex::new(aborted),
            release: tokio::sync::Semaphore::new(0),
        })
    }

    /// The handler to mount on a route.
    pub fn handler(
        self: &std::sync::Arc<Self>,
    ) -> impl Fn(
        bytes::Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = netcore::HandlerResult>>>
           + Clone
           + Send
           + Sync
           + 'static {
        let gate = self.clone();
        move |body: bytes::Bytes| {
            let gate = gate.clone();
            Box::pin(async move {
                /// Reports the body as aborted unless disarmed.
                struct Armed(
                    Option<(
                        tokio::sync::mpsc::UnboundedSender<bytes::Bytes>,
                        bytes::Bytes,
                    )>,
                );
                impl Drop for Armed {
                    fn drop(&mut self) {
                        if let Some((tx, body)) = self.0.take() {
                            let _ = tx.send(body);
                        }
                    }
                }
                let mut armed = Armed(Some((gate.aborted_tx.clone(), body.clone())));
                let _ = gate.started_tx.send(body.clone());
                gate.release.acquire().await.unwrap().forget();
                armed.0 = None;
                Ok(netcore::Reply::new(body))
            })
        }
    }

    /// The body of the next handler that started.
    pub async fn started(&self) -> bytes::Bytes {
        within("a held handler to start", async {
            self.started.lock().await.recv().await.unwrap()
        })
        .await
    }

    /// The bodies of the next `n` handlers that started, sorted.
    pub async fn started_n(&self, n: usize) -> Vec<bytes::Bytes> {
        let mut bodies = Vec::new();
        for _ in 0..n {
            bodies.push(self.started().await);
        }
        bodies.sort();
        bodies
    }

    /// The body of the next handler dropped before it finished.
    pub async fn aborted(&self) -> bytes::Bytes {
        within("a held handler to be aborted", async {
            self.aborted.lock().await.recv().await.unwrap()
        })
        .await
    }

    /// Lets `n` held handlers (present or future) answer.
    pub fn release(&self, n: usize) {
        self.release.add_permits(n);
    }
}

/// Connects a new plain client endpoint to `server`, which accepts the connection
/// with `options` (`None`: as `accept_tcp` does). Returns the server's link to the
/// client, the client, and the client's link.
pub async fn attach_client(
    server: &Endpoint,
    client: EndpointBuilder,
    options: Option<netcore::LinkOptions>,
) -> (Link, Endpoint, Link) {
    let client = client.start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = async {
        match options {
            None => server.accept_tcp(&listener).await.unwrap(),
            Some(options) => {
                let (stream, _) = listener.accept().await.unwrap();
                stream.set_nodelay(true).unwrap();
                server.attach(stream, options).await.unwrap()
            }
        }
    };
    let (s, c) = tokio::join!(accept, client.connect_tcp(addr));
    (s, client, c.unwrap())
}

/// What a test tells the handler of a [`gated_route`].
#[derive(Debug)]
pub enum Order {
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
    pub orders: tokio::sync::mpsc::UnboundedSender<Order>,
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
    let (orders_tx, orders_rx) = mpsc::unbounded_channel::<Order>();
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
                        Order::ReadPast(n) => Some(n),
                        Order::ReadAll => None,
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

/// A side's connector over an in-process `line`: each call waits for `ready`
/// (the line coming back; an error is a failed attempt), opens the line's next
/// pair of ends and sends the other end to `to_b` for the other side's
/// [`receiving_connector`].
pub fn opening_connector<F, Fut>(
    line: &netcore::actors::transport::FaultyLine,
    to_b: tokio::sync::mpsc::UnboundedSender<netcore::actors::transport::BoxedTransport>,
    ready: F,
) -> netcore::actors::Connector
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let (line, ready) = (line.clone(), std::sync::Arc::new(ready));
    netcore::actors::Connector::new(move || {
        let (line, to_b, ready) = (line.clone(), to_b.clone(), ready.clone());
        async move {
            ready().await?;
            let (a, b) = line.reconnect();
            let _ = to_b.send(Box::new(b));
            Ok(Box::new(a) as netcore::actors::transport::BoxedTransport)
        }
    })
}

/// The other side's connector: takes the ends [`opening_connector`] opened.
pub fn receiving_connector(
    from_a: tokio::sync::mpsc::UnboundedReceiver<netcore::actors::transport::BoxedTransport>,
) -> netcore::actors::Connector {
    let from_a = std::sync::Arc::new(tokio::sync::Mutex::new(from_a));
    netcore::actors::Connector::new(move || {
        let from_a = from_a.clone();
        async move {
            from_a
                .lock()
                .await
                .recv()
                .await
                .ok_or_else(|| std::io::Error::other("no more pairs"))
        }
    })
}
