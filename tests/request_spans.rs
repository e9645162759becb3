//! Logging as an operator turns it on: with a `tracing-subscriber` at debug level,
//! what a handler logs runs inside a `request` span naming the endpoint, the link,
//! the route and the stream.
#![allow(clippy::unwrap_used)]

use netcore::prelude::*;
use std::io::Write;
use std::sync::{Arc, Mutex};

mod common;
use common::tcp_pair;

/// Log lines, shared with the subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[actix_rt::test]
async fn a_handlers_log_lines_name_the_request() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // This test's thread runs both endpoints (no link threads).
    let _guard = tracing::subscriber::set_default(subscriber);

    let device = Endpoint::builder().name("device-7").link_threads(0).route(
        "probe",
        |body: Bytes| async move {
            tracing::info!(len = body.len(), "probing");
            body
        },
    );
    let (_device, _link_there, _client, link) =
        tcp_pair(device, Endpoint::builder().link_threads(0)).await;
    let answer = link.call("probe", "abc").await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "abc");

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|line| line.contains("probing"))
        .unwrap_or_else(|| panic!("no line from the handler in:\n{log}"));
    for field in [
        "request{",
        "endpoint=device-7",
        "route=probe",
        "stream=",
        "link=",
    ] {
        assert!(line.contains(field), "{field} missing from {line:?}");
    }
}
