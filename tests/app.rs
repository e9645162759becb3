//! The application layer between two real endpoints over TCP: extractors,
//! answers, blueprints, middleware order, short-circuits, per-blueprint
//! isolation, error and default handlers, handler actors.
#![allow(clippy::unwrap_used)]

use actix::prelude::*;
use bytes::Bytes;
use netcore::{
    Blueprint, CallError, Endpoint, ErrorCode, HandleRequest, HandlerError, HandlerResult, Headers,
    Json, LinkId, MsgPack, Next, Reply, RequestContext, State,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

mod common;
use common::connect;

fn text(answer: Result<netcore::Response, CallError>) -> String {
    let answer = answer.unwrap();
    String::from_utf8(answer.body.as_bytes().unwrap().to_vec()).unwrap()
}

fn code(answer: Result<netcore::Response, CallError>) -> (ErrorCode, String) {
    match answer {
        Err(CallError::Remote { code, message }) => (code, message),
        other => panic!("expected an error response, got {other:?}"),
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Item {
    id: u32,
    name: String,
}

struct Counter(Mutex<u32>);

#[actix_rt::test]
async fn extractors_and_answers() {
    let server = Endpoint::builder()
        .state(Counter(Mutex::new(0)))
        .route("text", |s: String| async move { s.to_uppercase() })
        .route("bytes", |b: Bytes| async move { b.len().to_string() })
        .route("json", |Json(p): Json<Point>| async move {
            Json(Point { x: p.y, y: p.x })
        })
        .route("msgpack", |MsgPack(p): MsgPack<Point>| async move {
            MsgPack(Point {
                x: p.x + 1,
                y: p.y + 1,
            })
        })
        .route("headers", |h: Headers| async move {
            String::from_utf8_lossy(h.get("user").unwrap_or(b"?")).into_owned()
        })
        .route("state", |State(c): State<Counter>| async move {
            let mut n = c.0.lock().unwrap();
            *n += 1;
            n.to_string()
        })
        .route("link", |id: LinkId| async move { id.to_string() })
        .route("two", |h: Headers, s: String| async move {
            format!("{}:{s}", h.0.len())
        })
        .route("result", |s: String| async move {
            if s == "ok" {
                Ok("fine".to_string())
            } else {
                Err(HandlerError::bad_request("not ok"))
            }
        });
    let (_s, _c, link) = connect(server).await;
    assert_eq!(text(link.call("text", "shout").await), "SHOUT");
    assert_eq!(text(link.call("bytes", vec![0u8; 1234]).await), "1234");
    let body = serde_json::to_vec(&Point { x: 1, y: 2 }).unwrap();
    let answer = link.call("json", body).await.unwrap();
    let p: Point = serde_json::from_slice(answer.body.as_bytes().unwrap()).unwrap();
    assert_eq!(p, Point { x: 2, y: 1 });
    let body = rmp_serde::to_vec_named(&Point { x: 1, y: 2 }).unwrap();
    let answer = link.call("msgpack", body).await.unwrap();
    let p: Point = rmp_serde::from_slice(answer.body.as_bytes().unwrap()).unwrap();
    assert_eq!(p, Point { x: 2, y: 3 });
    assert_eq!(
        text(link.request("headers", "").header("user", "ada").await),
        "ada"
    );
    assert_eq!(text(link.call("state", "").await), "1");
    assert_eq!(text(link.call("state", "").await), "2");
    assert!(text(link.call("link", "").await).starts_with("link-"));
    assert_eq!(text(link.request("two", "b").header("k", "v").await), "1:b");
    assert_eq!(text(link.call("result", "ok").await), "fine");
    assert_eq!(
        code(link.call("result", "no").await).0,
        ErrorCode::BadRequest
    );
    // An undecodable body is a bad request, and the handler never runs.
    let (c, message) = code(link.call("json", "{not json").await);
    assert_eq!(c, ErrorCode::BadRequest);
    assert!(message.contains("JSON"), "{message}");
    assert_eq!(
        code(link.call("text", vec![0xff, 0xfe]).await).0,
        ErrorCode::BadRequest
    );
}

type Log = Arc<Mutex<Vec<String>>>;

fn logging(
    log: &Log,
    name: &'static str,
) -> impl Fn(RequestContext, Next) -> futures_util::future::LocalBoxFuture<'static, HandlerResult>
       + Send
       + Sync
       + 'static {
    let log = log.clone();
    move |ctx, next| {
        let log = log.clone();
        Box::pin(async move {
            log.lock().unwrap().push(format!("{name}>"));
            let result = next.run(ctx).await;
            log.lock().unwrap().push(format!("<{name}"));
            result
        })
    }
}

fn hook(
    log: &Log,
    entry: &'static str,
) -> impl Fn(&mut RequestContext) -> Result<(), HandlerError> + Send + Sync + 'static {
    let log = log.clone();
    move |_ctx| {
        log.lock().unwrap().push(entry.to_string());
        Ok(())
    }
}

#[actix_rt::test]
async fn middleware_and_hooks_run_in_the_documented_order_and_stay_in_their_blueprint() {
    let log: Log = Arc::default();
    let handler_log = log.clone();
    let inner = Blueprint::new("inner", "/in")
        .middleware(logging(&log, "inner-mw"))
        .before(hook(&log, "inner-before"))
        .after({
            let log = log.clone();
            move |_head, _result| log.lock().unwrap().push("inner-after".into())
        })
        .route("/x", move || {
            let log = handler_log.clone();
            async move {
                log.lock().unwrap().push("handler".into());
                "x"
            }
        });
    let outer = Blueprint::new("outer", "/out")
        .middleware(logging(&log, "outer-mw"))
        .before(hook(&log, "outer-before"))
        .blueprint(inner);
    let other = Blueprint::new("other", "/other").route("/y", || async { "y" });
    let server = Endpoint::builder()
        .middleware(logging(&log, "global-mw"))
        .blueprint(outer)
        .blueprint(other)
        .route("plain", || async { "plain" });
    let (_s, _c, link) = connect(server).await;

    assert_eq!(text(link.call("/out/in/x", "").await), "x");
    assert_eq!(
        *log.lock().unwrap(),
        [
            "global-mw>",
            "outer-mw>",
            "outer-before",
            "inner-mw>",
            "inner-before",
            "handler",
            "inner-after",
            "<inner-mw",
            "<outer-mw",
            "<global-mw"
        ]
    );
    // Other routes see only the global middleware: blueprints do not leak.
    log.lock().unwrap().clear();
    assert_eq!(text(link.call("/other/y", "").await), "y");
    assert_eq!(text(link.call("plain", "").await), "plain");
    assert_eq!(
        *log.lock().unwrap(),
        ["global-mw>", "<global-mw", "global-mw>", "<global-mw"]
    );
}

#[actix_rt::test]
async fn auth_middleware_short_circuits() {
    let reached = Arc::new(Mutex::new(0));
    let count = reached.clone();
    let users = Blueprint::new("users", "/user")
        .middleware(|ctx: RequestContext, next: Next| async move {
            if ctx.header("token") != Some(b"secret".as_slice()) {
                return Err(HandlerError::new(ErrorCode::Refused, "unauthorized"));
            }
            next.run(ctx).await
        })
        .route("/list", move || {
            *count.lock().unwrap() += 1;
            async { "alice,bob" }
        });
    let (_s, _c, link) = connect(Endpoint::builder().blueprint(users)).await;
    let (c, message) = code(link.call("/user/list", "").await);
    assert_eq!((c, message.as_str()), (ErrorCode::Refused, "unauthorized"));
    assert_eq!(*reached.lock().unwrap(), 0, "the handler never ran");
    let ok = link
        .request("/user/list", "")
        .header("token", "secret")
        .await;
    assert_eq!(text(ok), "alice,bob");
}

#[actix_rt::test]
async fn error_and_default_handlers_per_blueprint_and_global() {
    let api = Blueprint::new("api", "/api")
        .route("/fail", || async {
            Err::<(), _>(HandlerError::failed("db down"))
        })
        .route("/panic", || async {
            if true {
                panic!("bug");
            }
        })
        .error_handler(|error, head| {
            Ok(Reply::new(format!(
                "api handled {} on {}: {}",
                error.code, head.route, error.message
            )))
        });
    let files =
        Blueprint::new("files", "/files").default_handler(|ctx_head: netcore::Head| async move {
            format!("no file {}", ctx_head.0.route)
        });
    let server = Endpoint::builder()
        .blueprint(api)
        .blueprint(files)
        .route("fail", || async {
            Err::<(), _>(HandlerError::failed("global"))
        })
        .error_handler(|error, _head| {
            if error.code == ErrorCode::NotFound {
                Err(HandlerError::new(
                    ErrorCode::NotFound,
                    format!("try /api ({})", error.message),
                ))
            } else {
                Err(error)
            }
        });
    let (_s, _c, link) = connect(server).await;
    assert_eq!(
        text(link.call("/api/fail", "").await),
        "api handled HandlerFailed on /api/fail: db down"
    );
    assert!(text(link.call("/api/panic", "").await).contains("handler panicked: bug"));
    assert_eq!(
        text(link.call("/files/a.txt", "").await),
        "no file /files/a.txt"
    );
    let (c, message) = code(link.call("/nowhere", "").await);
    assert_eq!(c, ErrorCode::NotFound);
    assert!(message.starts_with("try /api"), "{message}");
    // The api blueprint's error handler does not apply outside it.
    assert_eq!(
        code(link.call("fail", "").await),
        (ErrorCode::HandlerFailed, "global".into())
    );
}

/// A handler actor with its own state.
struct Tally {
    total: u64,
}

impl Actor for Tally {
    type Context = Context<Self>;
}

impl Handler<HandleRequest> for Tally {
    type Result = HandlerResult;

    fn handle(
        &mut self,
        HandleRequest(req): HandleRequest,
        _: &mut Self::Context,
    ) -> HandlerResult {
        self.total += req.body.len();
        Ok(Reply::new(self.total.to_string()))
    }
}

#[actix_rt::test]
async fn a_handler_actor_serves_its_routes_with_its_own_state() {
    let tally = Tally { total: 0 }.start();
    let bp = Blueprint::new("tally", "/tally")
        .route_actor("/add", tally.clone().recipient())
        .default_actor(tally.recipient());
    let (_s, _c, link) = connect(Endpoint::builder().blueprint(bp)).await;
    assert_eq!(text(link.call("/tally/add", "abc").await), "3");
    assert_eq!(text(link.call("/tally/add", "de").await), "5");
    assert_eq!(text(link.call("/tally/anything", "f").await), "6");
}

/// A handler actor that panics on request "boom".
struct Fragile {
    served: u32,
}

impl Actor for Fragile {
    type Context = Context<Self>;
}

impl Handler<HandleRequest> for Fragile {
    type Result = HandlerResult;

    fn handle(
        &mut self,
        HandleRequest(req): HandleRequest,
        _: &mut Self::Context,
    ) -> HandlerResult {
        if req.body.as_bytes().map(|b| &b[..]) == Some(b"boom") {
            panic!("fragile actor hit a bomb");
        }
        self.served += 1;
        Ok(Reply::new(self.served.to_string()))
    }
}

#[actix_rt::test]
async fn a_supervised_handler_actor_restarts_with_fresh_state_then_escalates() {
    let events: Arc<Mutex<Vec<netcore::Event>>> = Arc::default();
    let log = events.clone();
    let policy = netcore::RestartPolicy {
        max_restarts: 2,
        within: std::time::Duration::from_secs(60),
        backoff_initial: std::time::Duration::from_millis(1),
        backoff_max: std::time::Duration::from_millis(5),
    };
    let bp =
        Blueprint::new("fragile", "/f").route_supervised("/x", policy, || Fragile { served: 0 });
    let server = Endpoint::builder().blueprint(bp).on(
        |e| {
            matches!(
                e,
                netcore::Event::ActorRestarted { .. } | netcore::Event::ActorEscalated { .. }
            )
        },
        move |e| log.lock().unwrap().push(e.clone()),
    );
    let (server, _c, link) = connect(server).await;
    let server_events = server.events().clone();
    assert_eq!(text(link.call("/f/x", "a").await), "1");
    assert_eq!(text(link.call("/f/x", "a").await), "2");
    assert_eq!(
        code(link.call("/f/x", "boom").await).0,
        ErrorCode::HandlerFailed
    );
    // Restarted from the factory: fresh state.
    assert_eq!(text(link.call("/f/x", "a").await), "1");
    assert_eq!(
        code(link.call("/f/x", "boom").await).0,
        ErrorCode::HandlerFailed
    );
    assert_eq!(text(link.call("/f/x", "a").await), "1");
    // The third death within the window escalates: the route stays failed.
    assert_eq!(
        code(link.call("/f/x", "boom").await).0,
        ErrorCode::HandlerFailed
    );
    let (c, message) = code(link.call("/f/x", "a").await);
    assert_eq!(c, ErrorCode::HandlerFailed);
    assert!(message.contains("failed too often"), "{message}");
    // The events travel through the bus actor: wait for the escalation, the last.
    let (escalated, reported) = tokio::sync::oneshot::channel();
    let _ = server_events.once(
        |e| matches!(e, netcore::Event::ActorEscalated { .. }),
        move |_| {
            let _ = escalated.send(());
        },
    );
    // (It may have been published before that subscription: then the log has it.)
    let logged = || {
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, netcore::Event::ActorEscalated { .. }))
    };
    if !logged() {
        tokio::time::timeout(std::time::Duration::from_secs(10), reported)
            .await
            .expect("the escalation is reported")
            .unwrap();
    }
    let events = events.lock().unwrap();
    assert!(
        matches!(
            events.as_slice(),
            [
                netcore::Event::ActorRestarted { restarts: 1, .. },
                netcore::Event::ActorRestarted { restarts: 2, .. },
                netcore::Event::ActorEscalated { .. },
            ]
        ),
        "two restarts then an escalation, got {events:?}"
    );
}

#[actix_rt::test]
#[should_panic(expected = "route \"/user/get\" is registered twice")]
async fn a_route_registered_twice_panics_at_start_naming_it() {
    let users = Blueprint::new("users", "/user").route("/get", || async { "first" });
    let _ = Endpoint::builder()
        .blueprint(users)
        .route("/user/get", || async { "second" })
        .start();
}

#[actix_rt::test]
#[should_panic(expected = "default handler for prefix \"/dev\" is registered twice")]
async fn two_default_handlers_for_one_prefix_panic_at_start() {
    let a = Blueprint::new("a", "/dev").default_handler(|| async { "a" });
    let b = Blueprint::new("b", "/dev").default_handler(|| async { "b" });
    let _ = Endpoint::builder().blueprint(a).blueprint(b).start();
}

/// Typed bodies on the calling side, as an application writes them: `Json` and
/// `MsgPack` values as request bodies, answers decoded with `json`, `msgpack`
/// and `text`, and `?` on serde errors inside handlers.
#[actix_rt::test]
async fn typed_bodies_on_the_calling_side() {
    let server = Endpoint::builder()
        .route("json", |Json(item): Json<Item>| async move {
            Json(Item {
                id: item.id + 1,
                ..item
            })
        })
        .route("msgpack", |MsgPack(item): MsgPack<Item>| async move {
            MsgPack(Item {
                id: item.id * 2,
                ..item
            })
        })
        .route("parse", |body: Bytes| async move {
            let item: Item = serde_json::from_slice(&body)?;
            Ok::<_, HandlerError>(item.name)
        });
    let (_server, _client, link) = connect(server).await;
    let item = Item {
        id: 41,
        name: "probe".into(),
    };

    let answer = link.call("json", Json(item.clone())).await.unwrap();
    let back: Item = answer.json().await.unwrap();
    assert_eq!(back.id, 42);
    let answer = link.call("msgpack", MsgPack(item.clone())).await.unwrap();
    assert_eq!(answer.msgpack::<Item>().await.unwrap().id, 82);
    let answer = link.call("parse", Json(item.clone())).await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "probe");

    // A body that is not JSON: the handler's `?` answers BadRequest.
    let (code, message) = code(link.call("parse", "not json").await);
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("invalid JSON"), "{message}");
    // An answer that is not what the caller expected: a decoding error.
    let answer = link.call("parse", Json(item.clone())).await.unwrap();
    let error = answer.json::<Item>().await.unwrap_err();
    assert!(
        matches!(
            error,
            CallError::Codec {
                format: "JSON",
                encoding: false,
                ..
            }
        ),
        "{error:?}"
    );
    // A value JSON cannot encode (a map with non-string keys): nothing is sent.
    let bad: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
    let error = link.call("json", Json(bad)).await.unwrap_err();
    assert!(
        matches!(
            error,
            CallError::Codec {
                format: "JSON",
                encoding: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(std::error::Error::source(&error).is_some());
}

/// A blocking handler (`netcore::blocking`) runs on tokio's blocking pool, not
/// on the endpoint's thread: while it sleeps 2 s, a ping on another route is
/// answered. It takes typed extractors (a JSON body, state) and its
/// blueprint's hooks wrap it; a panic in it is an error answer.
#[actix_rt::test]
async fn a_blocking_handler_does_not_delay_a_concurrent_ping() {
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ended.clone();
    let sleep = move |Json(item): Json<Item>, State(step): State<u32>| {
        let _ = started_tx.send(());
        std::thread::sleep(std::time::Duration::from_secs(2));
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Json(Item {
            id: item.id + *step,
            ..item
        })
    };
    let slow = Blueprint::new("slow", "slow/")
        .route("sleep", netcore::blocking(sleep))
        .route(
            "boom",
            netcore::blocking(|| -> Result<(), HandlerError> { panic!("blocking bug") }),
        )
        .after(|_, result| {
            if let Ok(reply) = result {
                reply
                    .headers
                    .push(("hooked".into(), Bytes::from_static(b"yes")));
            }
        });
    let server = Endpoint::builder()
        .state(1u32)
        .blueprint(slow)
        .route("ping", || async { "pong" });
    let (_server, _client, link) = connect(server).await;
    let item = Item {
        id: 41,
        name: "probe".into(),
    };

    let sleeping = link
        .request("slow/sleep", Json(item))
        .timeout(common::HANG)
        .start()
        .await
        .unwrap();
    common::within("the blocking handler to start", started.recv()).await;
    let pong = common::within("the ping", link.call("ping", "")).await;
    assert_eq!(text(pong), "pong");
    assert!(
        !ended.load(std::sync::atomic::Ordering::SeqCst),
        "the ping is answered while the blocking handler still runs"
    );
    let answer = common::within("the blocking answer", sleeping.response())
        .await
        .unwrap();
    assert!(ended.load(std::sync::atomic::Ordering::SeqCst));
    let hooked = netcore::proto::frame::header_value(&answer.head.headers, "hooked");
    assert_eq!(hooked, Some(&b"yes"[..]));
    assert_eq!(answer.json::<Item>().await.unwrap().id, 42);

    let (code, message) = code(link.call("slow/boom", "").await);
    assert_eq!(code, ErrorCode::HandlerFailed);
    assert!(message.contains("blocking bug"), "{message}");
}
