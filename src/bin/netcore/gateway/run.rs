//! The running gateway: opens every device and uplink and keeps it open,
//! listens, routes requests to devices and telemetry to uplinks and listeners,
//! and keeps what the status page and `/metrics` show.
//!
//! Supervision has two levels. A serial device's link carries a connector that
//! reopens the port when it breaks (the library's reconnect policy, from the
//! config): the session resumes and calls in flight survive. When a link goes
//! down for good (the device restarted and refused the old session, the policy
//! gave up, an uplink's server closed), the link's supervisor task opens it
//! again from scratch with the same backoff, until it is back. Each device and
//! uplink has its own task, so one that is away holds up nobody.

use super::config::{Config, Device, Forward, Identity, ListenAddr, Telemetry, Uplink};
use crate::link_args::{read_keys, read_psk};
use netcore::actors::transport::LinkSpec;
use netcore::actors::{Connector, LinkOptions};
use netcore::proto::secure::{KeyId, SecureKeys, SecureRole};
use netcore::{
    Blueprint, Bytes, DownReason, Endpoint, EndpointBuilder, ErrorCode, Event, HandlerError, Link,
    LinkId, LinkState, LinkStats, ReconnectPolicy, Remainder, Reply, Request, Response,
    ServeHandle,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Recent events kept for the status page.
const RECENT_EVENTS: usize = 50;

/// A device or uplink the gateway opens: its current link, if up.
#[derive(Clone)]
struct Slot {
    kind: &'static str,
    address: String,
    link: Option<Link>,
    opens: u64,
    last_error: Option<String>,
}

/// What handlers, supervisors and the HTTP server share.
#[derive(Default)]
struct Shared {
    /// Devices and uplinks by name.
    slots: BTreeMap<String, Slot>,
    /// Names of the links the gateway opened, by link id.
    names: HashMap<LinkId, String>,
    /// Recent link events, oldest first.
    events: VecDeque<EventRow>,
    /// Transfers in progress, by (link, stream).
    transfers: BTreeMap<(u64, u64), TransferRow>,
    counters: Counters,
    /// The listeners' endpoints by name (telemetry goes to their links).
    listeners: HashMap<String, Endpoint>,
}

/// Gateway-wide counters.
#[derive(Clone, Copy, Default, Serialize)]
pub struct Counters {
    /// Requests forwarded to devices and answered.
    pub forwarded: u64,
    /// Forwarded requests that failed (device absent, error answer, timeout).
    pub forward_errors: u64,
    /// Telemetry messages received from devices.
    pub telemetry_in: u64,
    /// Telemetry messages sent on (one per receiving link).
    pub telemetry_out: u64,
}

/// One recent event.
#[derive(Clone, Serialize)]
pub struct EventRow {
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// The link's name (or id, for a listener's connection).
    pub link: String,
    /// What happened.
    pub text: String,
}

/// A transfer in progress.
#[derive(Clone, Serialize)]
pub struct TransferRow {
    /// The link's name.
    pub link: String,
    /// The stream.
    pub stream: u64,
    /// Bytes done.
    pub done: u64,
    /// Bytes in all, if known.
    pub total: Option<u64>,
}

/// One link on the status page and in `/metrics`.
#[derive(Clone, Serialize)]
pub struct LinkRow {
    /// Its name: a device's or uplink's, or `LISTENER/link-N` for an accepted
    /// connection.
    pub name: String,
    /// `device`, `uplink` or `listener`.
    pub kind: &'static str,
    /// Where it goes (a link spec, or the listener's address).
    pub address: String,
    /// Whether a link is there (for devices and uplinks: opened and not down).
    pub connected: bool,
    /// How often the gateway opened it (1 for a listener's connection).
    pub opens: u64,
    /// Why the last open failed or the link went down, if it did.
    pub last_error: Option<String>,
    /// The link's statistics, while it has a link.
    pub stats: Option<LinkStats>,
}

/// A listener on the status page.
#[derive(Clone, Serialize)]
pub struct ListenerRow {
    /// Its name.
    pub name: String,
    /// The address it is bound to.
    pub address: String,
    /// Connections up now.
    pub connections: usize,
}

/// Everything the status page and `/metrics` show, at one moment.
#[derive(Clone, Serialize)]
pub struct Snapshot {
    /// The gateway's name.
    pub gateway: String,
    /// Seconds since the Unix epoch.
    pub time: f64,
    /// Seconds since the gateway started.
    pub uptime: f64,
    /// Devices, uplinks and listeners' connections.
    pub links: Vec<LinkRow>,
    /// Listeners.
    pub listeners: Vec<ListenerRow>,
    /// Transfers in progress.
    pub transfers: Vec<TransferRow>,
    /// Recent events, newest last.
    pub events: Vec<EventRow>,
    /// Gateway-wide counters.
    pub counters: Counters,
}

/// A listener that is up.
struct Listening {
    name: String,
    endpoint: Endpoint,
    serving: ServeHandle,
}

/// The running gateway.
pub struct Gateway {
    name: String,
    started: Instant,
    /// Devices and uplinks are links of this endpoint.
    opened: Endpoint,
    listeners: Vec<Listening>,
    shared: Arc<Mutex<Shared>>,
}

/// Why the gateway could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Gateway {
    /// Starts everything `config` names: the listeners first (a bind failure
    /// ends the start), then a supervisor per device and uplink, which opens
    /// its link and reopens it whenever it goes down. Prints each listener's
    /// bound address on stderr (`listener NAME listening on ADDR`).
    pub async fn start(config: Config) -> Result<Gateway, StartError> {
        let shared: Arc<Mutex<Shared>> = Arc::default();
        let rules = Arc::new(Rules {
            forwards: config.forwards.clone(),
            telemetry: config.telemetry.clone(),
            call_timeout: config.call_timeout,
        });
        let opened = rules
            .builder(&config.name, Source::Opened, &shared, None)
            .start();
        record_events(&opened, &shared, None);
        let mut listeners = Vec::new();
        for listener in &config.listeners {
            let keys = match &listener.keys_file {
                Some(path) => Some(read_keys(path).map_err(|e| StartError(e.to_string()))?),
                None => None,
            };
            let endpoint = rules
                .builder(
                    &config.name,
                    Source::Listener(listener.name.clone()),
                    &shared,
                    keys,
                )
                .start();
            record_events(&endpoint, &shared, Some(&listener.name));
            let serving = match &listener.addr {
                ListenAddr::Tcp(addr) => endpoint.serve_tcp(addr.as_str()).await,
                ListenAddr::Unix(path) => endpoint.serve_unix(path.as_path()).await,
            }
            .map_err(|error| {
                StartError(format!(
                    "listener {} on {}: {error}",
                    listener.name, listener.addr
                ))
            })?;
            let bound = match serving.local_addr().tcp() {
                Some(addr) => addr.to_string(),
                None => serving.local_addr().to_string(),
            };
            eprintln!("listener {} listening on {bound}", listener.name);
            tracing::info!(listener = %listener.name, address = %bound, "listening");
            listeners.push(Listening {
                name: listener.name.clone(),
                endpoint,
                serving,
            });
        }
        for device in &config.devices {
            let options = device_options(device).map_err(StartError)?;
            supervise(
                opened.clone(),
                shared.clone(),
                device.name.clone(),
                "device",
                device.spec.clone(),
                options,
                device.reconnect,
            );
        }
        for uplink in &config.uplinks {
            let options = uplink_options(uplink).map_err(StartError)?;
            supervise(
                opened.clone(),
                shared.clone(),
                uplink.name.clone(),
                "uplink",
                uplink.spec.clone(),
                options,
                uplink.reconnect,
            );
        }
        Ok(Gateway {
            name: config.name,
            started: Instant::now(),
            opened,
            listeners,
            shared,
        })
    }

    /// Everything the status page shows, now.
    pub async fn snapshot(&self) -> Snapshot {
        let (slots, events, transfers, counters) = {
            let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            (
                shared.slots.clone(),
                shared.events.iter().cloned().collect::<Vec<_>>(),
                shared.transfers.values().cloned().collect::<Vec<_>>(),
                shared.counters,
            )
        };
        let mut links = Vec::new();
        for (name, slot) in slots {
            let stats = match &slot.link {
                Some(link) => link.stats().await,
                None => None,
            };
            links.push(LinkRow {
                name,
                kind: slot.kind,
                address: slot.address,
                connected: stats.is_some(),
                opens: slot.opens,
                last_error: slot.last_error,
                stats,
            });
        }
        let mut listeners = Vec::new();
        for listening in &self.listeners {
            let stats = listening.endpoint.stats().await;
            let address = match listening.serving.local_addr().tcp() {
                Some(addr) => addr.to_string(),
                None => listening.serving.local_addr().to_string(),
            };
            listeners.push(ListenerRow {
                name: listening.name.clone(),
                address: address.clone(),
                connections: stats.links.len(),
            });
            for stats in stats.links {
                links.push(LinkRow {
                    name: format!("{}/{}", listening.name, stats.link),
                    kind: "listener",
                    address: address.clone(),
                    connected: true,
                    opens: 1,
                    last_error: None,
                    stats: Some(stats),
                });
            }
        }
        Snapshot {
            gateway: self.name.clone(),
            time: now(),
            uptime: self.started.elapsed().as_secs_f64(),
            links,
            listeners,
            transfers,
            events,
            counters,
        }
    }

    /// Stops every endpoint (GOAWAY, drain, close).
    pub async fn stop(&self) {
        for listening in &self.listeners {
            listening.endpoint.stop().await;
        }
        self.opened.stop().await;
    }
}

/// Where a request came from, as the rules name it.
#[derive(Clone)]
enum Source {
    /// A link the gateway opened: its name is looked up by link id.
    Opened,
    /// A connection accepted by this listener.
    Listener(String),
}

impl Source {
    fn name(&self, shared: &Mutex<Shared>, link: LinkId) -> Option<String> {
        match self {
            Source::Listener(name) => Some(name.clone()),
            Source::Opened => shared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .names
                .get(&link)
                .cloned(),
        }
    }
}

/// The forwarding and telemetry rules, served by every endpoint of the gateway.
struct Rules {
    forwards: Vec<Forward>,
    telemetry: Vec<Telemetry>,
    call_timeout: Duration,
}

impl Rules {
    /// An endpoint builder serving the rules, for links of `source`.
    fn builder(
        self: &Arc<Self>,
        gateway: &str,
        source: Source,
        shared: &Arc<Mutex<Shared>>,
        keys: Option<SecureKeys>,
    ) -> EndpointBuilder {
        let name = match &source {
            Source::Opened => gateway.to_owned(),
            Source::Listener(listener) => format!("{gateway}/{listener}"),
        };
        let mut builder = Endpoint::builder()
            .name(name)
            .call_timeout(self.call_timeout);
        if let Some(keys) = keys {
            builder = builder.keys(keys);
        }
        for (i, rule) in self.forwards.iter().enumerate() {
            let (rules, shared, source) = (self.clone(), shared.clone(), source.clone());
            builder = builder.blueprint(
                Blueprint::new(format!("forward-{i}"), rule.route.clone()).default_handler(
                    move |link: LinkId, Remainder(rest): Remainder, request: Request| {
                        let (rules, shared, source) =
                            (rules.clone(), shared.clone(), source.clone());
                        async move {
                            let rule = &rules.forwards[i];
                            let outcome =
                                forward(rule, &shared, &source, link, rest, request).await;
                            let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
                            match &outcome {
                                Ok(_) => shared.counters.forwarded += 1,
                                Err(_) => shared.counters.forward_errors += 1,
                            }
                            outcome
                        }
                    },
                ),
            );
        }
        for (i, rule) in self.telemetry.iter().enumerate() {
            let (rules, shared, source) = (self.clone(), shared.clone(), source.clone());
            builder = builder.blueprint(
                Blueprint::new(format!("telemetry-{i}"), rule.route.clone()).default_handler(
                    move |link: LinkId, request: Request| {
                        let (rules, shared, source) =
                            (rules.clone(), shared.clone(), source.clone());
                        async move {
                            let rule = &rules.telemetry[i];
                            fan_out(rule, &shared, &source, link, request).await
                        }
                    },
                ),
            );
        }
        builder
    }
}

/// Forwards a request under a forwarding rule's prefix to its device, and
/// hands back the device's answer (one-way messages go on one-way).
async fn forward(
    rule: &Forward,
    shared: &Mutex<Shared>,
    source: &Source,
    link: LinkId,
    rest: String,
    request: Request,
) -> Result<Reply, HandlerError> {
    let from = source.name(shared, link);
    if !from.as_ref().is_some_and(|from| rule.from.contains(from)) {
        return Err(HandlerError::new(
            ErrorCode::NotFound,
            format!("no route {:?} here", request.route()),
        ));
    }
    let device = {
        let shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        shared
            .slots
            .get(&rule.device)
            .and_then(|slot| slot.link.clone())
    };
    let Some(device) = device.filter(Link::is_up) else {
        return Err(HandlerError::new(
            ErrorCode::GoingAway,
            format!("device {} is not connected", rule.device),
        ));
    };
    let route = format!("{}{rest}", rule.to);
    tracing::debug!(from = ?from, device = %rule.device, %route, "forwarding");
    if request.head.kind == netcore::proto::MessageKind::OneWay {
        let mut request = request;
        request.head.route = route;
        device.forward_one_way(request).await?;
        return Ok(Reply::empty());
    }
    let answer: Response = device
        .forward(request)
        .route(route)
        .timeout(rule.timeout)
        .await?;
    netcore::IntoReply::into_reply(answer)
}

/// Sends a device's telemetry message on to every link the rule names; a
/// request is answered with how many links it reached.
async fn fan_out(
    rule: &Telemetry,
    shared: &Mutex<Shared>,
    source: &Source,
    link: LinkId,
    request: Request,
) -> Result<Reply, HandlerError> {
    let from = source.name(shared, link);
    if !from.as_ref().is_some_and(|from| rule.from.contains(from)) {
        return Err(HandlerError::new(
            ErrorCode::NotFound,
            format!("no route {:?} here", request.route()),
        ));
    }
    let route = request.route().to_owned();
    let priority = request.head.priority;
    let body: Bytes = request.body.into_bytes().await?;
    let mut targets: Vec<Link> = Vec::new();
    {
        let shared_now = shared.lock().unwrap_or_else(|e| e.into_inner());
        for name in &rule.to {
            if let Some(link) = shared_now.slots.get(name).and_then(|s| s.link.clone()) {
                targets.push(link);
            }
            if let Some(listener) = shared_now.listeners.get(name) {
                targets.extend(listener.links());
            }
        }
    }
    let mut reached = 0u64;
    for target in targets.iter().filter(|l| l.is_up()) {
        match target
            .send_with(route.clone(), body.clone(), priority)
            .await
        {
            Ok(_) => reached += 1,
            Err(error) => tracing::debug!(link = %target.id(), %error, "telemetry not sent on"),
        }
    }
    {
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.counters.telemetry_in += 1;
        shared.counters.telemetry_out += reached;
    }
    Ok(Reply::new(format!("{{\"reached\":{reached}}}")))
}

/// Records the link events of `endpoint` for the status page and logs them.
fn record_events(endpoint: &Endpoint, shared: &Arc<Mutex<Shared>>, listener: Option<&str>) {
    if let Some(listener) = listener {
        shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .listeners
            .insert(listener.to_owned(), endpoint.clone());
    }
    let shared = shared.clone();
    let listener = listener.map(str::to_owned);
    endpoint.events().on(
        |event| {
            matches!(
                event,
                Event::LinkUp { .. }
                    | Event::LinkDown { .. }
                    | Event::LinkRetrying { .. }
                    | Event::LinkRecovered { .. }
                    | Event::TransferProgress { .. }
            )
        },
        move |event| {
            let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
            let name_of = |shared: &Shared, link: LinkId| match &listener {
                Some(listener) => format!("{listener}/{link}"),
                None => shared
                    .names
                    .get(&link)
                    .cloned()
                    .unwrap_or_else(|| link.to_string()),
            };
            let (link, text) = match event {
                Event::TransferProgress {
                    link,
                    stream,
                    done,
                    total,
                } => {
                    let key = (link.0, stream.0);
                    if total.is_some_and(|total| *done >= total) {
                        shared.transfers.remove(&key);
                    } else {
                        let name = name_of(&shared, *link);
                        shared.transfers.insert(
                            key,
                            TransferRow {
                                link: name,
                                stream: key.1,
                                done: *done,
                                total: *total,
                            },
                        );
                    }
                    return;
                }
                Event::LinkUp { link } => (*link, "up".to_owned()),
                Event::LinkDown { link, reason } => (*link, format!("down: {reason}")),
                Event::LinkRetrying {
                    link,
                    attempt,
                    error,
                    ..
                } => (*link, format!("retrying (attempt {attempt}): {error}")),
                Event::LinkRecovered {
                    link,
                    attempts,
                    outage,
                } => (
                    *link,
                    format!(
                        "recovered after {attempts} attempts, {:.1} s",
                        outage.as_secs_f64()
                    ),
                ),
                _ => return,
            };
            let name = name_of(&shared, link);
            tracing::info!(link = %name, "{text}");
            if matches!(event, Event::LinkDown { .. }) {
                shared.transfers.retain(|(id, _), _| *id != link.0);
            }
            shared.events.push_back(EventRow {
                time: now(),
                link: name,
                text,
            });
            while shared.events.len() > RECENT_EVENTS {
                shared.events.pop_front();
            }
        },
    );
}

/// Link options for a device: a serial port gets the serial framing at its
/// rate and a connector that reopens it (by path or USB identity) under the
/// device's reconnect policy; sockets get the stream framing.
fn device_options(device: &Device) -> Result<LinkOptions, String> {
    let mut options = match &device.spec {
        LinkSpec::Serial(serial) => {
            let mut options = LinkOptions::serial_at_rate(serial.bytes_per_sec());
            let serial = serial.clone();
            options.connector = Some(Connector::new(move || {
                let serial = serial.clone();
                async move { serial.open() }
            }));
            options
        }
        _ => LinkOptions::stream(),
    };
    options.reconnect = device.reconnect;
    if let Some(identity) = &device.identity {
        options.config.secure = Some(initiator(identity)?);
    }
    Ok(options)
}

fn uplink_options(uplink: &Uplink) -> Result<LinkOptions, String> {
    let mut options = LinkOptions::stream();
    options.reconnect = uplink.reconnect;
    if let Some(identity) = &uplink.identity {
        options.config.secure = Some(initiator(identity)?);
    }
    Ok(options)
}

fn initiator(identity: &Identity) -> Result<SecureRole, String> {
    Ok(SecureRole::Initiator {
        key_id: KeyId::new(&identity.key_id),
        psk: read_psk(&identity.psk_file).map_err(|e| e.to_string())?,
    })
}

/// Keeps the link `name` open: opens it, waits until it is down for good,
/// and opens it again, with `policy`'s backoff between failed attempts.
fn supervise(
    endpoint: Endpoint,
    shared: Arc<Mutex<Shared>>,
    name: String,
    kind: &'static str,
    spec: LinkSpec,
    options: LinkOptions,
    policy: ReconnectPolicy,
) {
    shared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .slots
        .insert(
            name.clone(),
            Slot {
                kind,
                address: spec.to_string(),
                link: None,
                opens: 0,
                last_error: None,
            },
        );
    actix_rt::spawn(async move {
        let mut failures: u32 = 0;
        loop {
            let opened = match spec.open().await {
                Ok(transport) => endpoint.attach(transport, options.clone()).await,
                Err(error) => Err(netcore::CallError::Io(error.into())),
            };
            match opened {
                Ok(link) => {
                    failures = 0;
                    tracing::info!(%kind, %name, link = %link.id(), %spec, "link up");
                    {
                        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
                        shared.names.insert(link.id(), name.clone());
                        if let Some(slot) = shared.slots.get_mut(&name) {
                            slot.link = Some(link.clone());
                            slot.opens += 1;
                            slot.last_error = None;
                        }
                    }
                    let reason = until_down(&link, &name).await;
                    tracing::warn!(%kind, %name, %reason, "link down; opening it again");
                    let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(slot) = shared.slots.get_mut(&name) {
                        slot.link = None;
                        slot.last_error = Some(reason.to_string());
                    }
                    if matches!(reason, DownReason::EndpointStopped | DownReason::Detached) {
                        return; // the gateway is stopping
                    }
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(%kind, %name, %spec, %error, "cannot open; retrying");
                    } else {
                        tracing::debug!(%kind, %name, %error, attempt = failures + 1, "cannot open");
                    }
                    failures = failures.saturating_add(1);
                    let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(slot) = shared.slots.get_mut(&name) {
                        slot.last_error = Some(error.to_string());
                    }
                }
            }
            tokio::time::sleep(backoff(&policy, failures)).await;
        }
    });
}

/// Waits until `link` is down; a link whose peer said it is going away (a
/// device whose firmware stops or restarts) is closed at once, so that the
/// supervisor opens it again instead of waiting for the silence to show.
async fn until_down(link: &Link, name: &str) -> DownReason {
    loop {
        tokio::select! {
            reason = link.closed() => return reason,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if matches!(link.state(), LinkState::Closing(_)) {
                    tracing::info!(%name, "the peer is going away; closing the link to open it again");
                    link.close("the peer is going away").await;
                }
            }
        }
    }
}

/// The wait after `failures` failed opens in a row: the policy's first wait
/// doubling to its longest (the first reopening after a link that was up comes
/// after the first wait).
fn backoff(policy: &ReconnectPolicy, failures: u32) -> Duration {
    let doubled = policy
        .initial
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(policy.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_wait_to_the_longest() {
        let policy = ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
            jitter: 0.0,
            give_up: None,
        };
        let waits: Vec<u64> = (0..5)
            .map(|n| backoff(&policy, n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 100, 200, 350, 350]);
    }
}
