//! `accept_burst`: 1000 connections (quick: 250) open at once against a server
//! endpoint on an arbiter of its own; each completes its handshake and one
//! 32-byte echo call, checked against its request. Timed: from the first connect
//! to the last answer. The server accepts with `Endpoint::serve_tcp` (each
//! connection's handshake in a task of its own) or, as the baseline, with a
//! sequential `accept_tcp` loop (one handshake after another), in alternating
//! rounds, each with a fresh server and client endpoint. The burst comes from one
//! address, beyond the default accept limits, so the server raises them to the
//! burst's size.
//!
//! Then the same with 4 silent connections opened just before the burst (the
//! server's handshake timeout 250 ms): the sequential loop waits out each of them
//! before the clients behind them, the serve loop does not.

use crate::peers::Error;
use crate::report::Report;
use crate::stats::{median, PairedRatio};
use actix_rt::Arbiter;
use netcore::{Endpoint, Reply, Request};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Silent connections opened before the burst, in its second part.
const SILENT: usize = 4;

/// The server's handshake timeout in the second part: what each silent
/// connection costs a sequential loop.
const SILENT_TIMEOUT: Duration = Duration::from_millis(250);

/// How the server accepts.
#[derive(Clone, Copy, Debug)]
enum Accepting {
    /// `serve_tcp`: handshakes in tasks of their own.
    Serve,
    /// `accept_tcp` in a loop: one handshake at a time.
    Sequential,
}

/// Runs the scenario.
pub fn run(quick: bool) -> Result<Report, Error> {
    let connections = if quick { 250 } else { 1000 };
    let rounds = if quick { 2 } else { 3 };
    let mut report = Report::new("accept_burst");
    let long = Duration::from_secs(120);
    let (serve, sequential, serve_silent, sequential_silent) =
        actix_rt::System::new().block_on(async {
            // A first round of each, not counted: sockets, arbiters and allocations warm.
            burst(Accepting::Serve, connections / 4, 0, long).await?;
            burst(Accepting::Sequential, connections / 4, 0, long).await?;
            let (mut serve, mut sequential) = (Vec::new(), Vec::new());
            let (mut serve_silent, mut sequential_silent) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                serve.push(burst(Accepting::Serve, connections, 0, long).await?);
                sequential.push(burst(Accepting::Sequential, connections, 0, long).await?);
            }
            for _ in 0..rounds {
                let (how, silent) = (Accepting::Serve, SILENT_TIMEOUT);
                serve_silent.push(burst(how, connections, SILENT, silent).await?);
                let how = Accepting::Sequential;
                sequential_silent.push(burst(how, connections, SILENT, silent).await?);
            }
            Ok::<_, Error>((serve, sequential, serve_silent, sequential_silent))
        })?;
    let per_sec = |times: &[Duration]| -> Vec<f64> {
        times
            .iter()
            .map(|t| connections as f64 / t.as_secs_f64())
            .collect()
    };
    let ms =
        |times: &[Duration]| -> Vec<f64> { times.iter().map(|t| t.as_secs_f64() * 1e3).collect() };
    let (serve_cps, sequential_cps) = (per_sec(&serve), per_sec(&sequential));
    let ratio = PairedRatio::of(&serve_cps, &sequential_cps);
    let (serve_ms, sequential_ms) = (median(&ms(&serve)), median(&ms(&sequential)));
    report.field("connections", connections as f64);
    report.field("serve_ms", serve_ms);
    report.field("sequential_ms", sequential_ms);
    report.field("serve_cps", median(&serve_cps));
    report.field("sequential_cps", median(&sequential_cps));
    report.ratio("sequential", &ratio);
    report.field("serve_rounds_ms", ms(&serve));
    report.field("sequential_rounds_ms", ms(&sequential));
    let silent_ratio = PairedRatio::of(&per_sec(&serve_silent), &per_sec(&sequential_silent));
    let serve_silent_ms = median(&ms(&serve_silent));
    let sequential_silent_ms = median(&ms(&sequential_silent));
    report.field("silent", SILENT as f64);
    report.field("serve_silent_ms", serve_silent_ms);
    report.field("sequential_silent_ms", sequential_silent_ms);
    report.ratio("sequential_silent", &silent_ratio);
    report.row = format!(
        "{connections} connections, handshake + one echo each: serve_tcp {serve_ms:.0} ms ({:.0}/s), sequential accept_tcp {sequential_ms:.0} ms ({:.0}/s), ratio {}; behind {SILENT} silent connections ({} ms timeout): serve_tcp {serve_silent_ms:.0} ms, sequential {sequential_silent_ms:.0} ms, ratio {} (medians of per-round ratios, with their range)",
        median(&serve_cps),
        median(&sequential_cps),
        ratio.describe(),
        SILENT_TIMEOUT.as_millis(),
        silent_ratio.describe(),
    );
    report.goal(
        &format!("serve_ms < 1000 for {connections} connections"),
        serve_ms < 1000.0,
        format!("{serve_ms:.0} ms"),
    );
    Ok(report)
}

/// One round: a server accepting `how` with this handshake timeout, `silent`
/// connections that send nothing, then `connections` clients at once; the time
/// until every client had its echo answer.
async fn burst(
    how: Accepting,
    connections: usize,
    silent: usize,
    handshake_timeout: Duration,
) -> Result<Duration, Error> {
    let server = Server::start(how, connections + silent, handshake_timeout).await?;
    let mut quiet = Vec::new();
    for _ in 0..silent {
        quiet.push(tokio::net::TcpStream::connect(server.addr).await?);
    }
    // Generous: the sequential server reaches the last client late.
    let client = Endpoint::builder()
        .handshake_timeout(Duration::from_secs(120))
        .start();
    let started = Instant::now();
    let calls = (0..connections).map(|i| {
        let client = client.clone();
        async move {
            let link = client.connect_tcp(server.addr).await?;
            let request = format!("{i:032}");
            let answer = link.call("echo", request.clone()).await?;
            if answer.body.as_bytes().map(|b| &b[..]) != Some(request.as_bytes()) {
                return Err(Error::from(format!("connection {i}: a wrong echo")));
            }
            Ok::<_, Error>(link)
        }
    });
    let links = futures_util::future::try_join_all(calls).await;
    let elapsed = started.elapsed();
    let links = links.map_err(|e| format!("{how:?}: {e}"))?;
    let _ = tokio::time::timeout(Duration::from_secs(10), client.stop()).await;
    drop((links, quiet));
    drop(server);
    Ok(elapsed)
}

/// The server endpoint on an arbiter of its own, accepting until dropped.
struct Server {
    addr: SocketAddr,
    arbiter: Arbiter,
    stop: Option<oneshot::Sender<()>>,
}

impl Server {
    async fn start(
        how: Accepting,
        connections: usize,
        handshake_timeout: Duration,
    ) -> Result<Server, Error> {
        let arbiter = Arbiter::new();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<SocketAddr, String>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        arbiter.spawn_fn(move || {
            actix_rt::spawn(async move {
                let endpoint = Endpoint::builder()
                    .route("echo", |req: Request| async move {
                        Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
                    })
                    .max_links(connections)
                    .max_handshaking(connections)
                    .max_handshaking_per_address(connections)
                    .handshake_timeout(handshake_timeout)
                    .start();
                // A backlog the whole burst fits in (the kernel caps it at somaxconn).
                let listener = match backlogged_listener(connections) {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                match how {
                    Accepting::Serve => match endpoint.serve_tcp(listener).await {
                        Ok(serving) => {
                            let addr = serving.local_addr().tcp().ok_or("not tcp");
                            let _ = ready_tx.send(addr.map_err(str::to_owned));
                            let _ = stop_rx.await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                        }
                    },
                    Accepting::Sequential => {
                        let _ = ready_tx.send(listener.local_addr().map_err(|e| e.to_string()));
                        let accepting = async {
                            loop {
                                // A failed handshake fails that connection only.
                                let _ = endpoint.accept_tcp(&listener).await;
                            }
                        };
                        tokio::select! {
                            _ = stop_rx => {}
                            () = accepting => {}
                        }
                    }
                }
                drop(endpoint);
            });
        });
        let addr = ready_rx.await.map_err(|_| "server arbiter stopped")??;
        Ok(Server {
            addr,
            arbiter,
            stop: Some(stop_tx),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.arbiter.stop();
    }
}

/// A loopback listener with a backlog of `connections`.
fn backlogged_listener(connections: usize) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    socket.listen(u32::try_from(connections).unwrap_or(u32::MAX))
}
