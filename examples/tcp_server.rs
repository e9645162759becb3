//! A TCP server: `cargo run --example tcp_server -- 127.0.0.1:7878`
//!
//! Serves `echo` (the body back), `time` (seconds since the epoch), `upload`
//! (any size: large bodies are spooled to disk as they arrive, then read back) and
//! `stream/upload` (the same, but the handler gets the body as it arrives:
//! `stream_bodies("stream/")`); both answer the size and a CRC-32C. Each
//! connection is one link of the same endpoint; connections beyond the accept
//! limits (256 links, 256 handshaking, 16 handshaking per address) are refused.
#![allow(clippy::print_stdout)]

use netcore::{Body, Endpoint, HandlerError, Reply, Request};

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".into());
    let endpoint = Endpoint::builder()
        .route("echo", |req: Request| async move {
            Ok::<_, HandlerError>(Reply::new(req.body.into_bytes().await?))
        })
        .route("time", |_req: Request| async {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            Ok(Reply::new(now.to_string()))
        })
        .route("upload", checksum)
        .stream_bodies("stream/")
        .route("stream/upload", checksum)
        .max_workers(16)
        .start();
    // Each connection handshakes in a task of its own: a silent one delays nobody.
    let serving = endpoint.serve_tcp(addr.as_str()).await?;
    println!("listening on {}", serving.local_addr());
    while let Some(link) = serving.next_link().await {
        println!("{} connected", link.id());
    }
    Ok(())
}

/// Answers an upload's size and CRC-32C, reading it chunk by chunk: from the spool
/// file (`Body::File`), as it arrives (`Body::Stream`) or from memory.
async fn checksum(req: Request) -> Result<Reply, HandlerError> {
    let how = match &req.body {
        Body::Bytes(_) => "in memory",
        Body::File(_) => "spooled to disk first",
        Body::Stream(_) => "streamed as it arrived",
    };
    let mut chunks = req.body.into_chunks(1 << 20);
    let (mut len, mut crc) = (0u64, 0u32);
    while let Some(chunk) = chunks.next().await? {
        len += chunk.len() as u64;
        crc = crc32c::crc32c_append(crc, &chunk);
    }
    println!("{}: {len} bytes, crc32c {crc:08x}, {how}", req.head.route);
    Ok(Reply::new(format!("{len} bytes, crc32c {crc:08x}")))
}
