//! Python Netcore's comprehensive example, in Rust: `cargo run --example comprehensive`
//!
//! A blueprint with a prefix and an auth middleware, a cached route with a TTL, a
//! start event, a global error handler, a periodic task clearing the cache, and
//! 4 workers, over a link made of two plain blocking functions (Python Netcore's
//! `Pipe(recv_func, send_func)`). A client on the other end of the pipe calls it.
#![allow(clippy::print_stdout)]

use netcore::actors::transport::Pipe;
use netcore::{
    Blueprint, CallError, Endpoint, Event, HandlerError, Json, Next, Reply, RequestContext, State,
};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default = "first_page")]
    page: u32,
}

fn first_page() -> u32 {
    1
}

#[derive(Serialize, Deserialize, Debug)]
struct User {
    id: u32,
    name: String,
}

fn fetch_users(page: u32) -> Vec<User> {
    (0..3)
        .map(|i| User {
            id: page * 10 + i,
            name: format!("user-{}", page * 10 + i),
        })
        .collect()
}

/// `GET /user/list`: cached per page for 300 s.
async fn user_list(
    Json(query): Json<ListQuery>,
    State(cache): State<netcore::Cache>,
) -> Result<Reply, HandlerError> {
    let key = format!("user_list_page_{}", query.page);
    if let Some(cached) = cache.get(&key).await? {
        return Ok(Reply::new(cached));
    }
    let data = serde_json::to_vec(&fetch_users(query.page))?;
    cache
        .set(&key, data.clone(), Some(Duration::from_secs(300)))
        .await?;
    Ok(Reply::new(data))
}

/// Prints an answer's text, or the error.
async fn show(what: &str, answer: Result<netcore::Response, CallError>) {
    match answer {
        Ok(answer) => match answer.text().await {
            Ok(text) => println!("[client] {what}: {text}"),
            Err(e) => println!("[client] {what}: unreadable answer: {e}"),
        },
        Err(e) => println!("[client] {what}: error {e}"),
    }
}

/// The blueprint's middleware: refuses requests without the right token.
async fn auth(ctx: RequestContext, next: Next) -> Result<Reply, HandlerError> {
    if ctx.header("authorization") != Some(b"Bearer s3cret".as_slice()) {
        return Err(HandlerError::new(
            netcore::ErrorCode::Refused,
            "unauthorized",
        ));
    }
    next.run(ctx).await
}

/// A pair of blocking functions over one end of a socket pair: any device driver's
/// `read`/`write` fits the same shape.
#[allow(clippy::type_complexity)] // the two closures' types are the point of the example
fn pipe_functions(
    stream: UnixStream,
) -> std::io::Result<(
    impl FnMut(usize) -> std::io::Result<Vec<u8>> + Send + 'static,
    impl FnMut(&[u8]) -> std::io::Result<()> + Send + 'static,
)> {
    let mut reader = stream.try_clone()?;
    let mut writer = stream;
    let recv = move |n: usize| {
        let mut buf = vec![0u8; n];
        // As in Python, returning no bytes means "nothing yet": a closed socket
        // (a read of 0) has to say end of stream instead.
        match reader.read(&mut buf)? {
            0 => Err(Pipe::end_of_stream()),
            got => {
                buf.truncate(got);
                Ok(buf)
            }
        }
    };
    let send = move |bytes: &[u8]| writer.write_all(bytes);
    Ok((recv, send))
}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let user_bp = Blueprint::new("users", "/user")
        .middleware(auth)
        .route("/list", user_list);

    let endpoint = Endpoint::builder()
        .max_workers(4)
        .blueprint(user_bp)
        .on(
            |e| matches!(e, Event::Started),
            |_| println!("[server] service started"),
        )
        .error_handler(|error, head| {
            // Turn every error into an answer the client can read, as Python Netcore does.
            let body = serde_json::json!({ "error": error.message, "route": head.route });
            Ok(Reply::new(body.to_string()))
        })
        .start();
    let cache = endpoint.cache().clone();
    endpoint.timers().schedule(
        Duration::from_secs(10),
        Some(Duration::from_secs(300)),
        move || {
            let cache = cache.clone();
            actix_rt::spawn(async move {
                let _ = cache.clear().await;
                println!("[server] cache cleared");
            });
        },
    );

    // Server and client on the two ends of a pipe.
    let (server_end, client_end) = UnixStream::pair()?;
    let (recv, send) = pipe_functions(server_end)?;
    let (crecv, csend) = pipe_functions(client_end)?;
    let client = Endpoint::builder().start();
    let (_served, link) = tokio::join!(
        endpoint.attach_pipe(recv, send),
        client.attach_pipe(crecv, csend)
    );
    let link = link?;

    let query = r#"{"page": 2}"#;
    show("without a token", link.call("/user/list", query).await).await;
    let authorized = || {
        link.request("/user/list", query)
            .header("authorization", "Bearer s3cret")
    };
    show("with a token", authorized().await).await;
    show("again (from the cache)", authorized().await).await;
    show("unknown route", link.call("/user/missing", "").await).await;
    endpoint.stop().await;
    client.stop().await;
    Ok(())
}
