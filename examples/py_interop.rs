//! Talking to Python Netcore 0.1.3 (`pip install netcore==0.1.3`) peers:
//!
//! ```text
//! cargo run --example py_interop -- --listen 127.0.0.1:7000
//! cargo run --example py_interop -- --call 127.0.0.1:7001 echo hello
//! ```
//!
//! `--listen ADDR` serves, in the Python dialect, `echo` (answers the body unchanged,
//! response route `echo`) and `size` (answers JSON `{"size": N}`, N the body's
//! length) until interrupted. `--call ADDR ROUTE BODY` calls a Python server and
//! prints the answer's body. The routes are ordinary netcore routes: the same
//! endpoint could serve native links too.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use netcore::prelude::*;
use netcore::{Dialect, LinkSpec, ServeHandle};
use std::time::Duration;

/// The endpoint `--listen` runs: `echo` and `size`.
pub fn endpoint() -> Endpoint {
    Endpoint::builder()
        .name("py-interop")
        // The answer's route is the request's (`echo`): Python's `Response("echo", …)`.
        .route("echo", |body: Bytes| async move { body })
        .route("size", |body: Bytes| async move {
            format!("{{\"size\": {}}}", body.len())
        })
        .start()
}

/// Serves Python Netcore 0.1.3 clients on `addr` with `endpoint`'s routes.
///
/// # Errors
/// Binding `addr` failed.
pub async fn listen(endpoint: &Endpoint, addr: &str) -> std::io::Result<ServeHandle> {
    endpoint
        .serve_tcp_dialect(addr.to_string(), Dialect::python())
        .await
}

/// Calls `route` on the Python server at `addr` with `body`; the answer's body.
///
/// # Errors
/// The connection failed, or the call did (a Python server answers an unknown route
/// with silence: [`CallError::Timeout`] after `timeout`).
pub async fn call(
    addr: &str,
    route: &str,
    body: Bytes,
    timeout: Duration,
) -> Result<Bytes, CallError> {
    let client = Endpoint::builder().name("py-interop-client").start();
    let spec: LinkSpec = format!("tcp+py:{addr}")
        .parse()
        .map_err(|e: netcore::actors::transport::LinkSpecError| std::io::Error::from(e))?;
    let link = client.open(spec).await?;
    let answer = link.request(route, body).timeout(timeout).await;
    let answer = match answer {
        Ok(response) => response.bytes().await,
        Err(error) => Err(error),
    };
    client.stop().await;
    answer
}

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--listen", addr] => {
            let endpoint = endpoint();
            let serving = listen(&endpoint, addr).await?;
            println!(
                "serving echo and size to Python peers on {}",
                serving.local_addr()
            );
            // Until the process is interrupted.
            serving.stopped().await;
        }
        ["--call", addr, route, body] => {
            let answer = call(
                addr,
                route,
                Bytes::from(body.to_string()),
                Duration::from_secs(10),
            )
            .await?;
            println!("{}", String::from_utf8_lossy(&answer));
        }
        _ => {
            eprintln!("usage: py_interop --listen ADDR | --call ADDR ROUTE BODY");
            std::process::exit(2);
        }
    }
    Ok(())
}
