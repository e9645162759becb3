//! The README's first example, whole: `cargo run --example quickstart`
//!
//! A device endpoint serves `echo` and `upload` on TCP loopback; a client endpoint
//! connects, makes an urgent call, and uploads a 1 MiB "firmware" file streamed
//! from disk, drawing its progress, then prints the device's answer. netcore's actors need an actix System: run inside
//! `#[actix_rt::main]` (or `actix_rt::System::new().block_on(..)`).
#![allow(clippy::print_stdout)]

use netcore::prelude::*;
use std::time::Duration;

#[actix_rt::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The device: `echo` answers the body it got; `upload` answers its length.
    let device = Endpoint::builder()
        .route("echo", |body: Bytes| async move { body })
        .route("upload", |body: Bytes| async move {
            format!("stored {} bytes", body.len())
        })
        .start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepting = device.accept_tcp(&listener);

    // The client: one link to the device.
    let client = Endpoint::builder().start();
    let (accepted, link) = tokio::join!(accepting, client.connect_tcp(addr));
    let (_device_link, link) = (accepted?, link?);

    let answer = link
        .request("echo", "hi")
        .priority(Priority::Urgent)
        .timeout(Duration::from_secs(2))
        .await?;
    println!("echo answered {:?}", answer.text().await?);

    // A file streamed from disk as the link takes it, with its progress, and the
    // device's answer once it has it all.
    let dir = tempfile::tempdir()?;
    let firmware = dir.path().join("firmware.bin");
    std::fs::write(&firmware, vec![0x5a; 1 << 20])?;
    let mut upload = link.upload("upload", firmware).start().await?;
    if let Some(transfer) = upload.transfer() {
        while let Some(Progress { sent, total }) = transfer.changed().await {
            println!("sent {sent} of {} bytes", total.unwrap_or(0));
        }
    }
    let stored = upload.response().await?.text().await?;
    println!("the device says: {stored}");

    client.stop().await;
    device.stop().await;
    Ok(())
}
