//! A TCP client for `tcp_server`: `cargo run --example tcp_client -- 127.0.0.1:7878 [FILE]`
//!
//! Calls `echo` and `time`, then uploads FILE (default: a generated 32 MiB file)
//! twice with a progress line: to `upload` (the server spools it) and to
//! `stream/upload` (the server's handler reads it as it arrives), and prints the
//! server's answers and the times.
#![allow(clippy::print_stdout)]

use netcore::{Body, Endpoint, Payload, Priority, Progress};
use std::io::Write;
use std::time::{Duration, Instant};

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7878".into());
    let client = Endpoint::builder().start();
    let link = client.connect_tcp(&addr).await?;
    println!("connected to {addr} as {}", link.id());

    let echo = link
        .request("echo", "hello")
        .priority(Priority::High)
        .await?;
    println!("echo -> {}", text(&echo.body));
    let time = link
        .request("time", "")
        .timeout(Duration::from_secs(2))
        .await?;
    println!("time -> {} (seconds since the epoch)", text(&time.body));

    let dir = tempfile::tempdir()?;
    let path = match args.next() {
        Some(path) => path.into(),
        None => {
            let path = dir.path().join("sample.bin");
            let data: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, data)?;
            path
        }
    };
    for route in ["upload", "stream/upload"] {
        upload(&link, route, &path).await?;
    }
    client.stop().await;
    Ok(())
}

/// Uploads the file at `path` to `route` with a progress line.
async fn upload(
    link: &netcore::Link,
    route: &str,
    path: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let total = std::fs::metadata(path)?.len();
    let started = Instant::now();
    let mut call = link
        .request(route, Payload::File(path.to_path_buf()))
        .timeout(Duration::from_secs(600))
        .start()
        .await?;
    if let Some(transfer) = call.transfer() {
        while let Some(Progress { sent: done, .. }) = transfer.changed().await {
            print!(
                "\r  {route} {:>5.1}%  {done} / {total} bytes",
                done as f64 * 100.0 / total.max(1) as f64
            );
            let _ = std::io::stdout().flush();
        }
    }
    let answer = call.response().await?;
    println!(
        "\n{route}: {total} bytes -> {} in {:.2} s",
        text(&answer.body),
        started.elapsed().as_secs_f64()
    );
    let _ = std::io::stdout().flush();
    Ok(())
}

/// A small answer's body as text.
fn text(body: &Body) -> String {
    match body.as_bytes() {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => format!("({} bytes spooled to disk)", body.len()),
    }
}
