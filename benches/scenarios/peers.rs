//! Two netcore endpoints joined by one link, each on its own thread as two peers
//! would be: the client endpoint on the calling arbiter (the scenario's System),
//! the server endpoint on an [`Arbiter`] of its own. The baselines get the same: a
//! thread per side.

use actix_rt::Arbiter;
use netcore::actors::transport::Transport;
use netcore::{Endpoint, EndpointBuilder, Link, LinkOptions};
use std::future::Future;
use std::io;
use tokio::sync::oneshot;

/// Boxed error of the scenarios.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A connected client and server endpoint.
pub struct Peers {
    /// The client endpoint (on the calling arbiter), kept for the link's lifetime.
    _client: Endpoint,
    /// The client's link to the server.
    pub link: Link,
    /// The server's link to the client (its statistics).
    pub server_link: Link,
    server: Arbiter,
    stop: Option<oneshot::Sender<()>>,
}

impl Peers {
    /// Starts `server` on a new arbiter with the transport `accept` yields there,
    /// and a client endpoint here over `client_transport`; returns once both
    /// links are up. Both sides use `options`.
    pub async fn start<F, Fut, T>(
        server: EndpointBuilder,
        accept: F,
        client_transport: impl Future<Output = io::Result<impl Transport>>,
        options: LinkOptions,
    ) -> Result<Peers, Error>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<T>> + 'static,
        T: Transport,
    {
        let server_options = options.clone();
        Peers::start_each(server, accept, client_transport, options, server_options).await
    }

    /// [`Peers::start`] with options of each side's own (a connector each, say).
    pub async fn start_each<F, Fut, T>(
        server: EndpointBuilder,
        accept: F,
        client_transport: impl Future<Output = io::Result<impl Transport>>,
        options: LinkOptions,
        server_options: LinkOptions,
    ) -> Result<Peers, Error>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<T>> + 'static,
        T: Transport,
    {
        let arbiter = Arbiter::new();
        let (up_tx, up_rx) = oneshot::channel::<Result<Link, String>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                let endpoint = server.start();
                let link = match accept().await {
                    Ok(transport) => endpoint
                        .attach(transport, server_options)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let failed = link.is_err();
                let _ = up_tx.send(link.clone());
                if !failed {
                    // Serve until the scenario is over.
                    let _ = stop_rx.await;
                }
                drop(endpoint);
            });
        });
        let client = Endpoint::builder().start();
        let transport = client_transport.await?;
        let link = client.attach(transport, options).await?;
        let server_link = up_rx.await.map_err(|_| "server arbiter stopped")??;
        Ok(Peers {
            _client: client,
            link,
            server_link,
            server: arbiter,
            stop: Some(stop_tx),
        })
    }

    /// Records what each side's reliable mode did (`a_*`: the client, `b_*`:
    /// the server): retransmissions, tail-loss probes, duplicates received,
    /// smoothed round trip.
    pub async fn reliable_fields(&self, report: &mut crate::report::Report) {
        for (side, link) in [("a", &self.link), ("b", &self.server_link)] {
            if let Some(s) = link.stats().await {
                report.field(&format!("{side}_retransmissions"), s.retransmissions);
                report.field(&format!("{side}_tail_probes"), s.tail_probes);
                report.field(&format!("{side}_duplicates_in"), s.duplicates);
                report.field(
                    &format!("{side}_srtt_ms"),
                    s.srtt.map_or(0.0, |d| d.as_secs_f64() * 1e3),
                );
            }
        }
    }

    /// A client and server over a fresh TCP loopback connection (`TCP_NODELAY`,
    /// as `Endpoint::connect_tcp` and `accept_tcp` set it).
    pub async fn tcp(server: EndpointBuilder, options: LinkOptions) -> Result<Peers, Error> {
        Peers::tcp_wrapped(server, options, |stream| stream).await
    }

    /// [`Peers::tcp`] with the client's socket wrapped by `wrap` (to count or
    /// disturb what crosses it).
    pub async fn tcp_wrapped<T: Transport>(
        server: EndpointBuilder,
        options: LinkOptions,
        wrap: impl FnOnce(tokio::net::TcpStream) -> T,
    ) -> Result<Peers, Error> {
        let (listener, addr) = crate::raw_tcp::loopback_listener()?;
        let accept = move || async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        };
        let connect = async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(wrap(stream))
        };
        Peers::start(server, accept, connect, options).await
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.stop();
    }
}
