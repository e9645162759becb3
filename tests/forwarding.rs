//! A gateway forwarding requests to its devices, written as a user would: a
//! blueprint's default handler takes the `Endpoint` and the `Remainder` of the
//! route, and passes the request on in one line, keeping priority, headers and
//! body; the device's errors come back with their code; a canceled request
//! cancels the forwarded call on the device.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{random_bytes, tcp_pair, within, Gate};
use netcore::{
    Blueprint, CallError, Endpoint, ErrorCode, HandlerError, Head, LinkId, Priority, Remainder,
    Reply, Request, Response,
};
use std::future::IntoFuture;
use std::time::Duration;

/// `dev/<link id>/<route>` goes to the device on that link as `<route>`.
async fn to_device(
    endpoint: Endpoint,
    Remainder(rest): Remainder,
    request: Request,
) -> Result<Response, HandlerError> {
    let (id, route) = rest
        .split_once('/')
        .ok_or_else(|| HandlerError::bad_request("expected dev/<link>/<route>"))?;
    let id: u64 = id
        .parse()
        .map_err(|_| HandlerError::bad_request("not a link id"))?;
    let route = route.to_owned();
    Ok(endpoint
        .try_link(LinkId(id))?
        .forward(request)
        .route(route)
        .await?)
}

fn gateway() -> netcore::EndpointBuilder {
    Endpoint::builder().blueprint(Blueprint::new("devices", "dev/").default_handler(to_device))
}

/// The device answers what it saw: route, priority, the `trace` header, body length.
fn device(gate: &std::sync::Arc<Gate>) -> netcore::EndpointBuilder {
    Endpoint::builder()
        .route("temp", |Head(head): Head, body: Bytes| async move {
            let trace = netcore::proto::frame::header_value(&head.headers, "trace")
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            let mut reply = Reply::new(format!(
                "{} {:?} {} {}",
                head.route,
                head.priority,
                trace,
                body.len()
            ));
            reply
                .headers
                .push(("unit".into(), Bytes::from_static(b"C")));
            Ok(reply)
        })
        .route("slow", gate.handler())
}

fn text(response: &Response) -> String {
    String::from_utf8(response.body.as_bytes().unwrap().to_vec()).unwrap()
}

/// A gateway that accepted its client and connected to its device (whose
/// handlers hold on `gate`): the endpoints (kept alive), the client's link, and
/// the id of the gateway's link to the device.
async fn gateway_between(gate: &std::sync::Arc<Gate>) -> ([Endpoint; 3], netcore::Link, u64) {
    let (gateway, _, client_side, client) = tcp_pair(gateway(), Endpoint::builder()).await;
    let device_side = device(gate).start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (to_dev, _) = tokio::join!(gateway.connect_tcp(addr), device_side.accept_tcp(&listener));
    let dev = to_dev.unwrap().id().0;
    ([gateway, client_side, device_side], client, dev)
}

#[actix_rt::test]
async fn a_gateway_forwards_keeping_priority_headers_body_and_errors() {
    let gate = Gate::new();
    let (_endpoints, client, dev) = gateway_between(&gate).await;

    let answer = client
        .request(format!("dev/{dev}/temp"), vec![7u8; 10])
        .priority(Priority::Urgent)
        .header("trace", Bytes::from_static(b"t-1"))
        .await
        .unwrap();
    assert_eq!(text(&answer), "temp Urgent t-1 10");
    let unit = netcore::proto::frame::header_value(&answer.head.headers, "unit");
    assert_eq!(unit, Some(&b"C"[..]), "the device's headers come back");

    // A body large enough to be spooled on the gateway is streamed on.
    let big = random_bytes(13, 3 * 1024 * 1024);
    let answer = within(
        "a big forwarded body",
        client
            .request(format!("dev/{dev}/temp"), big)
            .timeout(common::HANG)
            .into_future(),
    )
    .await
    .unwrap();
    assert_eq!(text(&answer), format!("temp Normal  {}", 3 * 1024 * 1024));

    // The device's error comes back as it answered it.
    let missing = client.call(format!("dev/{dev}/nope"), "").await;
    assert!(
        matches!(&missing, Err(CallError::Remote { code: ErrorCode::NotFound, message }) if message.contains("nope")),
        "{missing:?}"
    );
    // No such device: the gateway answers GoingAway, naming the link.
    let gone = client.call("dev/999/temp", "").await;
    assert!(
        matches!(&gone, Err(CallError::Remote { code: ErrorCode::GoingAway, message }) if message.contains("999")),
        "{gone:?}"
    );
}

#[actix_rt::test]
async fn a_canceled_request_cancels_its_forwarded_call() {
    let gate = Gate::new();
    let (_endpoints, client, dev) = gateway_between(&gate).await;

    let call = client
        .request(format!("dev/{dev}/slow"), "held")
        .timeout(Duration::from_millis(300));
    let (answer, started) = tokio::join!(call, gate.started());
    assert_eq!(started, "held");
    assert!(matches!(answer, Err(CallError::Timeout(_))), "{answer:?}");
    // The client's CANCEL aborted the gateway's handler, whose forwarded call
    // was canceled on the device: the device's handler is dropped too.
    assert_eq!(gate.aborted().await, "held");
}

#[actix_rt::test]
async fn a_one_way_message_is_forwarded_as_one_keeping_priority_and_body() {
    // The gateway passes every one-way message under `dev/` on to its device.
    let gateway = Endpoint::builder().blueprint(Blueprint::new("devices", "dev/").default_handler(
        |endpoint: Endpoint, Remainder(rest): Remainder, mut request: Request| async move {
            if !request.is_one_way() {
                return Err(HandlerError::bad_request("one-way messages only"));
            }
            request.head.route = rest;
            let device = endpoint
                .links()
                .into_iter()
                .last()
                .ok_or_else(|| HandlerError::failed("no device"))?;
            device.forward_one_way(request).await?;
            Ok(Reply::empty())
        },
    ));
    // The device reports each one-way message it got: kind, route, priority, body.
    let (seen, mut got) = tokio::sync::mpsc::unbounded_channel();
    let device = Endpoint::builder().route("log", move |request: Request| {
        let seen = seen.clone();
        async move {
            let one_way = request.is_one_way();
            let (route, priority) = (request.head.route.clone(), request.head.priority);
            let body = request.body.into_bytes().await?;
            let _ = seen.send((one_way, route, priority, body));
            Ok(Reply::empty())
        }
    });
    let (gateway, _, _client_side, client) = tcp_pair(gateway, Endpoint::builder()).await;
    let device = device.start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (to_dev, from_gateway) =
        tokio::join!(gateway.connect_tcp(addr), device.accept_tcp(&listener));
    let (_to_dev, _from_gateway) = (to_dev.unwrap(), from_gateway.unwrap());

    client
        .send_with("dev/log", "boot", Priority::High)
        .await
        .unwrap();
    let (one_way, route, priority, body) = within("the small message", got.recv()).await.unwrap();
    assert!(one_way, "arrives as a one-way message");
    assert_eq!((route.as_str(), priority), ("log", Priority::High));
    assert_eq!(body.as_ref(), b"boot");

    // A body the gateway spools to disk is streamed on, byte-identical.
    let big = random_bytes(21, 9 * 1024 * 1024);
    client
        .send_with("dev/log", big.clone(), Priority::Bulk)
        .await
        .unwrap();
    let (one_way, route, priority, body) = within("the big message", got.recv()).await.unwrap();
    assert!(one_way);
    assert_eq!((route.as_str(), priority), ("log", Priority::Bulk));
    assert!(
        body.as_ref() == big.as_slice(),
        "the big body arrives intact"
    );
}
