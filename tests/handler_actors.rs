//! Handler actors with the endpoint's services, written as a user would: a
//! supervised actor's factory takes `&Services` (state, cache, the endpoint),
//! is run at the first request (after `start()`), and again after a crash; and
//! the services hold the endpoint weakly, so a dropped endpoint is gone.
#![allow(clippy::unwrap_used)]

mod common;

use actix::prelude::*;
use common::connect;
use netcore::{Endpoint, ErrorCode, HandleRequest, HandlerResult, Reply, RestartPolicy, Services};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Shared configuration, registered with `EndpointBuilder::state`.
struct Greeting(&'static str);

/// Counts its requests, remembers the last body in the cache, greets from the state.
struct Counter {
    services: Services,
    count: u32,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<HandleRequest> for Counter {
    type Result = ResponseFuture<HandlerResult>;

    fn handle(&mut self, HandleRequest(req): HandleRequest, _: &mut Context<Self>) -> Self::Result {
        if req.body.as_bytes().map(|b| &b[..]) == Some(b"boom") {
            panic!("the counter hit a bomb");
        }
        self.count += 1;
        let (services, count) = (self.services.clone(), self.count);
        Box::pin(async move {
            // The extractors of function handlers work on an actor's request too.
            let body: String = services.context(req).extract().await?;
            let cache = services.cache();
            let previous = cache.get("last").await?;
            cache.set("last", body, None).await?;
            let greeting = services.state::<Greeting>().map(|g| g.0).unwrap_or("?");
            let links = services.endpoint()?.links().len();
            let previous = previous.map(|p| String::from_utf8_lossy(&p).into_owned());
            Ok(Reply::new(format!(
                "{greeting} #{count} after {previous:?} on {links} link(s)"
            )))
        })
    }
}

fn text(answer: Result<netcore::Response, netcore::CallError>) -> String {
    String::from_utf8(answer.unwrap().body.as_bytes().unwrap().to_vec()).unwrap()
}

#[actix_rt::test]
async fn a_supervised_actor_reaches_state_cache_and_endpoint() {
    let built = Arc::new(Mutex::new(0));
    let counted = built.clone();
    let policy = RestartPolicy {
        max_restarts: 3,
        within: Duration::from_secs(60),
        backoff_initial: Duration::from_millis(1),
        ..RestartPolicy::default()
    };
    let server = Endpoint::builder()
        .state(Greeting("hello"))
        .route_supervised("count", policy, move |services: &Services| {
            *counted.lock().unwrap() += 1;
            Counter {
                services: services.clone(),
                count: 0,
            }
        });
    assert_eq!(
        *built.lock().unwrap(),
        0,
        "not built before the first request"
    );
    let (_server, _client, link) = connect(server).await;
    assert_eq!(
        text(link.call("count", "a").await),
        "hello #1 after None on 1 link(s)"
    );
    assert_eq!(
        text(link.call("count", "b").await),
        "hello #2 after Some(\"a\") on 1 link(s)"
    );
    // A crash: the actor is rebuilt from the factory (fresh count), with the
    // services again; the cache, the endpoint's, kept its value.
    let crashed = link.call("count", "boom").await;
    assert!(crashed.is_err());
    let after = common::within("the rebuilt actor", async {
        loop {
            if let Ok(answer) = link.call("count", "c").await {
                break String::from_utf8(answer.body.as_bytes().unwrap().to_vec()).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(after, "hello #1 after Some(\"b\") on 1 link(s)");
    assert_eq!(*built.lock().unwrap(), 2);
}

#[actix_rt::test]
async fn services_hold_the_endpoint_weakly() {
    let (sender, mut kept) = tokio::sync::mpsc::unbounded_channel::<Services>();
    let server = Endpoint::builder().route("keep", move |services: Services| {
        let sender = sender.clone();
        async move {
            sender.send(services).unwrap();
        }
    });
    let (server, client, link) = connect(server).await;
    link.call("keep", "").await.unwrap();
    let services = kept.recv().await.unwrap();
    assert_eq!(services.endpoint().unwrap().links().len(), 1);
    client.stop().await;
    server.stop().await;
    drop(server);
    let gone = services.endpoint().unwrap_err();
    assert_eq!(gone.code, ErrorCode::GoingAway);
}
