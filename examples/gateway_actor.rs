//! A stateful handler actor on a gateway: `cargo run --example gateway_actor`
//!
//! A device serves `temp`. The gateway's `reading` route is served by a
//! supervised handler actor, `Registry`, built at the first request from the
//! endpoint's [`Services`]: it counts the requests per device (its own state),
//! keeps each device's last reading in the endpoint's cache for a second, and
//! asks the device (through the endpoint, on the device's link) when the cache
//! has nothing. A client asks the gateway three times.
#![allow(clippy::print_stdout)]

use actix::prelude::*;
use netcore::{
    Endpoint, HandleRequest, HandlerError, HandlerResult, LinkId, Reply, RestartPolicy, Services,
};
use std::collections::HashMap;
use std::time::Duration;

/// Requests served per device, and where the endpoint's services are.
struct Registry {
    services: Services,
    served: HashMap<u64, u64>,
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<HandleRequest> for Registry {
    type Result = ResponseFuture<HandlerResult>;

    /// The body names the device's link; the answer is its temperature.
    fn handle(
        &mut self,
        HandleRequest(request): HandleRequest,
        _: &mut Context<Self>,
    ) -> Self::Result {
        let services = self.services.clone();
        let device = request
            .body
            .as_bytes()
            .and_then(|b| std::str::from_utf8(b).ok()?.parse::<u64>().ok());
        let served = device.map(|id| {
            let count = self.served.entry(id).or_default();
            *count += 1;
            *count
        });
        Box::pin(async move {
            let (Some(device), Some(served)) = (device, served) else {
                return Err(HandlerError::bad_request(
                    "the body names a device's link id",
                ));
            };
            let key = format!("temp:{device}");
            let (reading, source) = match services.cache().get(&key).await? {
                Some(cached) => (cached, "cached"),
                None => {
                    let link = services.endpoint()?.try_link(LinkId(device))?;
                    let fresh = link.call("temp", ()).await?.bytes().await?;
                    let ttl = Some(Duration::from_secs(1));
                    services.cache().set(&key, fresh.clone(), ttl).await?;
                    (fresh, "asked the device")
                }
            };
            let reading = String::from_utf8_lossy(&reading);
            Ok(Reply::new(format!(
                "{reading} C ({source}; request {served} for device {device})"
            )))
        })
    }
}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Endpoint::builder()
        .route("temp", || async { "21.5" })
        .start();
    // The actor is built at the first request, once the services exist.
    let gateway = Endpoint::builder()
        .route_supervised(
            "reading",
            RestartPolicy::default(),
            |services: &Services| Registry {
                services: services.clone(),
                served: HashMap::new(),
            },
        )
        .start();
    let client = Endpoint::builder().start();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (to_device, _) = tokio::join!(gateway.connect_tcp(addr), device.accept_tcp(&listener));
    let device_id = to_device?.id().0;
    let (_, to_gateway) = tokio::join!(gateway.accept_tcp(&listener), client.connect_tcp(addr));
    let to_gateway = to_gateway?;

    let mut answers = Vec::new();
    for _ in 0..3 {
        let answer = to_gateway.call("reading", device_id.to_string()).await?;
        let text = String::from_utf8_lossy(&answer.body.into_bytes().await?).into_owned();
        println!("{text}");
        answers.push(text);
    }
    assert!(answers[0].contains("asked the device"), "{answers:?}");
    assert!(answers[2].contains("cached; request 3"), "{answers:?}");

    client.stop().await;
    gateway.stop().await;
    device.stop().await;
    Ok(())
}
