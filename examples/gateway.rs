//! A gateway built in Rust: `cargo run --example gateway`
//!
//! Three devices on in-process serial lines (115200 baud): `thermo` and `valve`
//! on clean lines, `radio` on a radio-like line that drops out twice and comes
//! back. Every device sends a telemetry reading every 200 ms; the gateway's
//! `Aggregator`, a handler actor built from the endpoint's services, keeps
//! count, last value and range per device, and keeps each last reading in the
//! endpoint's cache for a second. Operators connect over TCP and reach the
//! devices through `dev/<device>/<route>` (forwarded with `call_on`), the
//! cached readings through `reading` and the aggregate through `summary`.
//!
//! An operator polls all three devices for about five seconds while the radio
//! line flaps: the link reopens it (its connector) and resumes the session,
//! the gateway's events say so, and the other two devices answer throughout.
//! `netcore gateway --config FILE` runs the same kind of gateway from a config
//! file (examples/gateway.toml).
#![allow(clippy::print_stdout)]

use actix::prelude::*;
use netcore::actors::transport::{
    throttled_pair, BoxedTransport, FaultConfig, FaultyLine, ThrottleConfig,
};
use netcore::actors::Connector;
use netcore::{
    Blueprint, Cache, Endpoint, ErrorCode, Event, HandleRequest, HandlerError, HandlerResult,
    LinkId, LinkOptions, Remainder, Reply, RestartPolicy, Services, State,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Per device: readings received, the last one and the range seen.
#[derive(Default)]
struct Aggregate {
    count: u64,
    last: f64,
    min: f64,
    max: f64,
}

/// The telemetry-aggregating handler actor, built from the endpoint's
/// services at the first reading: `telemetry` messages (`DEVICE VALUE`) come
/// in; it keeps count, last value and range per device (its own state), and
/// publishes in the endpoint's cache each device's last reading (for a second:
/// a reading older than that is no reading) and the summary, which the
/// `reading` and `summary` routes answer from.
struct Aggregator {
    services: Services,
    devices: BTreeMap<String, Aggregate>,
}

impl Actor for Aggregator {
    type Context = Context<Self>;
}

impl Handler<HandleRequest> for Aggregator {
    type Result = ResponseFuture<HandlerResult>;

    fn handle(
        &mut self,
        HandleRequest(request): HandleRequest,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let text = request
            .body
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let parsed = text
            .split_once(' ')
            .and_then(|(device, value)| Some((device.to_owned(), value.parse::<f64>().ok()?)));
        let Some((device, value)) = parsed else {
            return Box::pin(async { Err(HandlerError::bad_request("expected `DEVICE VALUE`")) });
        };
        let entry = self.devices.entry(device.clone()).or_insert(Aggregate {
            min: value,
            max: value,
            ..Aggregate::default()
        });
        entry.count += 1;
        entry.last = value;
        entry.min = entry.min.min(value);
        entry.max = entry.max.max(value);
        let summary: Vec<String> = self
            .devices
            .iter()
            .map(|(name, a)| {
                format!(
                    "{name}: {} readings, last {:.1}, range {:.1}..{:.1}",
                    a.count, a.last, a.min, a.max
                )
            })
            .collect();
        let cache = self.services.cache().clone();
        Box::pin(async move {
            let fresh = Some(Duration::from_secs(1));
            cache
                .set(&format!("last:{device}"), value.to_string(), fresh)
                .await?;
            cache.set("summary", summary.join("\n"), None).await?;
            Ok(Reply::empty())
        })
    }
}

/// A device: serves `name` and `read`, and sends a reading every 200 ms on
/// whatever link it has to the gateway.
fn device(name: &'static str, base: f64) -> Endpoint {
    let device = Endpoint::builder()
        .name(name)
        .route("name", move || async move { name })
        .route("read", move || async move { format!("{base:.1}") })
        .start();
    let sender = device.clone();
    actix_rt::spawn(async move {
        let mut tick = 0u32;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tick += 1;
            let value = base + f64::from(tick % 7) / 10.0;
            if let Ok(link) = sender.default_link() {
                let _ = link.send("telemetry", format!("{name} {value}")).await;
            }
        }
    });
    device
}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let at = move || format!("{:5.2}s", started.elapsed().as_secs_f64());
    // Device names by link id, filled in as the gateway opens them.
    let names: Arc<Mutex<HashMap<String, LinkId>>> = Arc::default();
    let by_id: Arc<Mutex<HashMap<LinkId, String>>> = Arc::default();

    let lookup = names.clone();
    let gateway = Endpoint::builder()
        .name("gateway")
        .call_timeout(Duration::from_secs(2))
        // `dev/<device>/<route>`: a command for one device, forwarded with call_on.
        .blueprint(Blueprint::new("devices", "dev/").default_handler(
            move |endpoint: Endpoint, Remainder(rest): Remainder, body: netcore::Bytes| {
                let lookup = lookup.clone();
                async move {
                    let (name, route) = rest.split_once('/').unwrap_or((&rest, ""));
                    let id = lookup.lock().ok().and_then(|n| n.get(name).copied());
                    let id =
                        id.ok_or_else(|| HandlerError::bad_request(format!("no device {name}")))?;
                    Ok::<_, HandlerError>(endpoint.call_on(id, route, body).await?)
                }
            },
        ))
        .route_supervised(
            "telemetry",
            RestartPolicy::default(),
            |services: &Services| Aggregator {
                services: services.clone(),
                devices: BTreeMap::new(),
            },
        )
        // Operators' queries, answered from what the aggregator publishes.
        .route("summary", |State(cache): State<Cache>| async move {
            let summary = cache.get("summary").await?.unwrap_or_default();
            Ok::<_, HandlerError>(summary)
        })
        .route(
            "reading",
            |State(cache): State<Cache>, device: String| async move {
                match cache.get(&format!("last:{device}")).await? {
                    Some(value) => Ok(value),
                    None => Err(HandlerError::new(
                        ErrorCode::NotFound,
                        format!("no fresh reading from {device}"),
                    )),
                }
            },
        )
        .start();

    // What happens to the links, as it happens.
    let events_names = by_id.clone();
    gateway.events().on(
        |e| {
            matches!(
                e,
                Event::LinkDown { .. } | Event::LinkRetrying { .. } | Event::LinkRecovered { .. }
            )
        },
        move |event| {
            let name = |link: &LinkId| {
                events_names
                    .lock()
                    .ok()
                    .and_then(|n| n.get(link).cloned())
                    .unwrap_or_else(|| link.to_string())
            };
            match event {
                Event::LinkDown { link, reason } => {
                    println!("{} event: {} down ({reason})", at(), name(link))
                }
                Event::LinkRetrying {
                    link,
                    attempt,
                    wait,
                    ..
                } => println!(
                    "{} event: {} retrying, attempt {attempt} in {} ms",
                    at(),
                    name(link),
                    wait.as_millis()
                ),
                Event::LinkRecovered {
                    link,
                    attempts,
                    outage,
                } => println!(
                    "{} event: {} recovered after {attempts} attempts ({} ms away)",
                    at(),
                    name(link),
                    outage.as_millis()
                ),
                _ => {}
            }
        },
    );

    // Two devices on clean 115200-baud lines.
    let serial = || {
        let mut options = LinkOptions::serial(115_200);
        options.flush = true;
        options
    };
    let (thermo, valve) = (device("thermo", 21.0), device("valve", 3.0));
    let mut links = Vec::new();
    for (name, endpoint) in [("thermo", &thermo), ("valve", &valve)] {
        let (a, b) = throttled_pair(ThrottleConfig::serial_8n1(115_200));
        let (to_device, _) =
            tokio::join!(gateway.attach(a, serial()), endpoint.attach(b, serial()));
        links.push((name, to_device?));
    }

    // The radio: a line that drops out (cut at 1.5 s and at 3 s); the
    // gateway's connector waits 400 ms for the radio to be back in range and
    // reopens it, the device side takes the new end.
    let radio = device("radio", 12.0);
    let line = FaultyLine::new(FaultConfig::new(7));
    let (to_radio, from_gateway) = tokio::sync::mpsc::unbounded_channel::<BoxedTransport>();
    let from_gateway = Arc::new(tokio::sync::Mutex::new(from_gateway));
    let reopen = line.clone();
    let mut gateway_side = serial();
    gateway_side.connector = Some(Connector::new(move || {
        let (line, to_radio) = (reopen.clone(), to_radio.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let (a, b) = line.reconnect();
            let _ = to_radio.send(Box::new(b));
            Ok(Box::new(a) as BoxedTransport)
        }
    }));
    let mut radio_side = serial();
    radio_side.connector = Some(Connector::new(move || {
        let from_gateway = from_gateway.clone();
        async move {
            let next = from_gateway.lock().await.recv().await;
            next.ok_or_else(|| std::io::Error::other("the gateway is gone"))
        }
    }));
    let (a, b) = line.reconnect();
    let (to_device, _) = tokio::join!(gateway.attach(a, gateway_side), radio.attach(b, radio_side));
    links.push(("radio", to_device?));
    for (name, link) in &links {
        names
            .lock()
            .map_err(|_| "poisoned")?
            .insert((*name).to_owned(), link.id());
        by_id
            .lock()
            .map_err(|_| "poisoned")?
            .insert(link.id(), (*name).to_owned());
        println!("{} {name} linked up as {}", at(), link.id());
    }
    let flaps = line.clone();
    actix_rt::spawn(async move {
        for at_ms in [1_500, 3_000] {
            tokio::time::sleep_until(tokio::time::Instant::from_std(
                started + Duration::from_millis(at_ms),
            ))
            .await;
            flaps.cut();
        }
    });

    // Operators connect over TCP.
    let uplink = gateway.serve_tcp("127.0.0.1:0").await?;
    let addr = uplink.local_addr().tcp().ok_or("a TCP listener")?;
    let operator = Endpoint::builder().name("operator").start();
    let to_gateway = operator.connect_tcp(addr).await?;
    println!("{} operator connected to the gateway on {addr}", at());

    // The operator polls every device for five seconds.
    let mut answered: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    let mut radio_after_last_flap = false;
    while started.elapsed() < Duration::from_millis(5_200) {
        for device in ["thermo", "valve", "radio"] {
            let answer = to_gateway
                .request(format!("dev/{device}/read"), ())
                .timeout(Duration::from_secs(1))
                .await;
            let tally = answered.entry(device).or_default();
            match answer {
                Ok(answer) => {
                    tally.0 += 1;
                    if device == "radio" && started.elapsed() > Duration::from_millis(3_600) {
                        radio_after_last_flap = true;
                    }
                    let _ = answer.body.into_bytes().await?;
                }
                Err(error) => {
                    tally.1 += 1;
                    println!("{} operator: dev/{device}/read failed: {error}", at());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (device, (ok, failed)) in &answered {
        println!(
            "{} operator: {device} answered {ok} times, failed {failed}",
            at()
        );
    }
    let text = |answer: netcore::Response| {
        answer
            .body
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let reading = to_gateway.call("reading", "thermo").await?;
    println!("{} operator: thermo's last reading {}", at(), text(reading));
    let summary = text(to_gateway.call("summary", ()).await?);
    println!(
        "{} operator: summary\n  {}",
        at(),
        summary.replace('\n', "\n  ")
    );

    // The clean devices never failed; the radio came back after each flap.
    for device in ["thermo", "valve"] {
        assert_eq!(answered[device].1, 0, "{device} kept answering");
    }
    assert!(
        radio_after_last_flap,
        "the radio answers after its last flap"
    );
    assert_eq!(
        line.pairs(),
        3,
        "the radio line was reopened after each flap"
    );
    assert!(
        summary.contains("radio:") && summary.contains("thermo:"),
        "{summary}"
    );

    operator.stop().await;
    gateway.stop().await;
    for device in [thermo, valve, radio] {
        device.stop().await;
    }
    Ok(())
}
