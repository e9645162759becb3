//! The gateway's HTTP server (hyper): `/metrics` in the Prometheus text format
//! (OpenMetrics, encoded by `prometheus-client`), `/status.json` (everything
//! the gateway knows at this moment: links with their statistics, listeners,
//! transfers, recent events) and `/`, a self-contained status page that polls
//! `/status.json` every second.
//!
//! Every request takes a fresh snapshot: the link statistics are the library's
//! (`Link::stats`), asked for at that moment, so nothing is kept between
//! scrapes but the gateway's own counters and its recent events.

use super::run::{Gateway, LinkRow, Snapshot};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;

/// The status page: one HTML file with its style and script inline.
const STATUS_PAGE: &str = include_str!("status.html");

/// Binds `addr` and serves the gateway's pages on the current (actix) thread
/// until the process ends. Returns the bound address.
pub async fn serve(addr: SocketAddr, gateway: Rc<Gateway>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    actix_rt::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "http: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let gateway = gateway.clone();
            actix_rt::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(respond(&gateway, request).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(error) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                {
                    tracing::debug!(%peer, %error, "http: connection ended");
                }
            });
        }
    });
    Ok(bound)
}

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}

async fn respond<B>(gateway: &Gateway, request: Request<B>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    match request.uri().path() {
        "/" | "/index.html" => reply(StatusCode::OK, "text/html; charset=utf-8", STATUS_PAGE),
        "/status.json" => {
            let snapshot = gateway.snapshot().await;
            match serde_json::to_vec(&snapshot) {
                Ok(json) => reply(StatusCode::OK, "application/json", json),
                Err(error) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("{error}\n"),
                ),
            }
        }
        "/metrics" => {
            let snapshot = gateway.snapshot().await;
            match metrics(&snapshot) {
                Ok(text) => reply(
                    StatusCode::OK,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    text,
                ),
                Err(error) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("{error}\n"),
                ),
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// A link's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabels {
    gateway: String,
    name: String,
    kind: String,
}

/// A link's labels and a reason (dropped frames).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    gateway: String,
    name: String,
    kind: String,
    reason: String,
}

/// A link's labels and a priority class (queued bytes).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PriorityLabels {
    gateway: String,
    name: String,
    kind: String,
    priority: String,
}

/// A link's labels and a state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    gateway: String,
    name: String,
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GatewayLabels {
    gateway: String,
}

type Seconds = Gauge<f64, AtomicU64>;

/// The metrics of one snapshot, encoded.
pub fn metrics(snapshot: &Snapshot) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("netcore");
    let counter = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<LinkLabels, Counter>::default();
        registry.register(name, help, family.clone());
        family
    };
    let gauge = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<LinkLabels, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    };
    let seconds = |registry: &mut Registry, name: &str, help: &str| {
        let family = Family::<LinkLabels, Seconds>::default();
        registry.register(name, help, family.clone());
        family
    };
    let bytes_out = counter(
        &mut registry,
        "link_bytes_out",
        "Wire bytes written (framing included)",
    );
    let bytes_in = counter(&mut registry, "link_bytes_in", "Wire bytes read");
    let frames_out = counter(
        &mut registry,
        "link_frames_out",
        "Frames written (control frames and retransmissions included)",
    );
    let frames_in = counter(
        &mut registry,
        "link_frames_in",
        "Frames read (damaged ones excluded)",
    );
    let payload_out = counter(
        &mut registry,
        "link_payload_bytes_out",
        "Message body bytes sent, each once",
    );
    let payload_in = counter(
        &mut registry,
        "link_payload_bytes_in",
        "Message body bytes received, each once",
    );
    let retransmissions = counter(
        &mut registry,
        "link_retransmissions",
        "Frames sent again (reliable mode)",
    );
    let duplicates = counter(
        &mut registry,
        "link_duplicates",
        "Frames received twice and dropped (reliable mode)",
    );
    let reconnects = counter(
        &mut registry,
        "link_reconnects",
        "Transports that replaced a broken one",
    );
    let opens = counter(
        &mut registry,
        "link_opens",
        "Times the gateway opened the link from scratch",
    );
    let dropped = Family::<ReasonLabels, Counter>::default();
    registry.register(
        "link_dropped_frames",
        "Frames dropped by integrity checks, by reason",
        dropped.clone(),
    );
    let queued = Family::<PriorityLabels, Gauge>::default();
    registry.register(
        "link_queued_bytes",
        "Body bytes queued and not yet sent, by priority class",
        queued.clone(),
    );
    let state = Family::<StateLabels, Gauge>::default();
    registry.register(
        "link_state",
        "1 for the link's state (connecting, reconnecting, up, closing, down, absent)",
        state.clone(),
    );
    let up = gauge(&mut registry, "link_up", "1 while the link is up");
    let in_flight = gauge(
        &mut registry,
        "link_in_flight_frames",
        "Frames sent and not yet acknowledged (reliable mode)",
    );
    let awaiting = gauge(
        &mut registry,
        "link_calls_awaiting_answer",
        "Calls waiting for their answer",
    );
    let in_service = gauge(
        &mut registry,
        "link_requests_in_service",
        "Peer requests being served",
    );
    let rtt = seconds(
        &mut registry,
        "link_rtt_seconds",
        "Smoothed round-trip time (reliable mode, once measured)",
    );
    let rto = seconds(
        &mut registry,
        "link_rto_seconds",
        "Retransmission timeout (reliable mode)",
    );
    let uptime = seconds(
        &mut registry,
        "link_uptime_seconds",
        "Time since the link started",
    );

    let gateway_labels = GatewayLabels {
        gateway: snapshot.gateway.clone(),
    };
    let forwarded = Family::<GatewayLabels, Counter>::default();
    registry.register(
        "gateway_forwarded",
        "Requests forwarded to devices and answered",
        forwarded.clone(),
    );
    let forward_errors = Family::<GatewayLabels, Counter>::default();
    registry.register(
        "gateway_forward_errors",
        "Forwarded requests that failed",
        forward_errors.clone(),
    );
    let telemetry_in = Family::<GatewayLabels, Counter>::default();
    registry.register(
        "gateway_telemetry_in",
        "Telemetry messages received from devices",
        telemetry_in.clone(),
    );
    let telemetry_out = Family::<GatewayLabels, Counter>::default();
    registry.register(
        "gateway_telemetry_out",
        "Telemetry messages sent on, one per receiving link",
        telemetry_out.clone(),
    );
    let gateway_uptime = Family::<GatewayLabels, Seconds>::default();
    registry.register(
        "gateway_uptime_seconds",
        "Time since the gateway started",
        gateway_uptime.clone(),
    );
    let counters = snapshot.counters;
    forwarded
        .get_or_create(&gateway_labels)
        .inc_by(counters.forwarded);
    forward_errors
        .get_or_create(&gateway_labels)
        .inc_by(counters.forward_errors);
    telemetry_in
        .get_or_create(&gateway_labels)
        .inc_by(counters.telemetry_in);
    telemetry_out
        .get_or_create(&gateway_labels)
        .inc_by(counters.telemetry_out);
    gateway_uptime
        .get_or_create(&gateway_labels)
        .set(snapshot.uptime);

    for row in &snapshot.links {
        let labels = labels(&snapshot.gateway, row);
        let (g, n, k) = (&labels.gateway, &labels.name, &labels.kind);
        let reason = |reason: &str| ReasonLabels {
            gateway: g.clone(),
            name: n.clone(),
            kind: k.clone(),
            reason: reason.to_owned(),
        };
        let priority = |priority: &str| PriorityLabels {
            gateway: g.clone(),
            name: n.clone(),
            kind: k.clone(),
            priority: priority.to_owned(),
        };
        let state_of = |state: &str| StateLabels {
            gateway: g.clone(),
            name: n.clone(),
            kind: k.clone(),
            state: state.to_owned(),
        };
        opens.get_or_create(&labels).inc_by(row.opens);
        let current = row.stats.as_ref().map_or("absent".to_owned(), |s| {
            serde_json::to_value(s.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        });
        for name in [
            "connecting",
            "reconnecting",
            "up",
            "closing",
            "down",
            "absent",
        ] {
            state
                .get_or_create(&state_of(name))
                .set(i64::from(current == name));
        }
        up.get_or_create(&labels).set(i64::from(current == "up"));
        let Some(stats) = &row.stats else {
            continue;
        };
        bytes_out.get_or_create(&labels).inc_by(stats.bytes_out);
        bytes_in.get_or_create(&labels).inc_by(stats.bytes_in);
        frames_out.get_or_create(&labels).inc_by(stats.frames_out);
        frames_in.get_or_create(&labels).inc_by(stats.frames_in);
        payload_out.get_or_create(&labels).inc_by(stats.payload_out);
        payload_in.get_or_create(&labels).inc_by(stats.payload_in);
        retransmissions
            .get_or_create(&labels)
            .inc_by(stats.retransmissions);
        duplicates.get_or_create(&labels).inc_by(stats.duplicates);
        reconnects.get_or_create(&labels).inc_by(stats.reconnects);
        let d = &stats.dropped;
        for (why, count) in [
            ("crc", d.crc),
            ("cobs", d.cobs),
            ("runt", d.runt),
            ("oversize", d.oversize),
            ("length", d.length),
            ("tampered", d.tampered),
            ("replayed", d.replayed),
            ("too_old", d.too_old),
            ("malformed", d.malformed),
        ] {
            dropped.get_or_create(&reason(why)).inc_by(count);
        }
        let q = &stats.queued_bytes;
        for (class, bytes) in [
            ("urgent", q.urgent),
            ("high", q.high),
            ("normal", q.normal),
            ("bulk", q.bulk),
        ] {
            queued
                .get_or_create(&priority(class))
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let gauge_of = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        in_flight
            .get_or_create(&labels)
            .set(gauge_of(stats.in_flight_frames.unwrap_or(0)));
        awaiting
            .get_or_create(&labels)
            .set(gauge_of(stats.calls_awaiting_answer));
        in_service
            .get_or_create(&labels)
            .set(gauge_of(stats.requests_in_service));
        if let Some(srtt) = stats.srtt {
            rtt.get_or_create(&labels).set(srtt.as_secs_f64());
        }
        if let Some(timeout) = stats.rto {
            rto.get_or_create(&labels).set(timeout.as_secs_f64());
        }
        uptime
            .get_or_create(&labels)
            .set(stats.uptime.as_secs_f64());
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

fn labels(gateway: &str, row: &LinkRow) -> LinkLabels {
    LinkLabels {
        gateway: gateway.to_owned(),
        name: row.name.clone(),
        kind: row.kind.to_owned(),
    }
}
