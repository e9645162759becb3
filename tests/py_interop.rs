//! Real Python Netcore 0.1.3 peers (`tests/peers/py_netcore_peer.py`, in the venv of
//! `scripts/py-venv.sh`) against Rust endpoints on Python-dialect links over TCP
//! loopback, through the `Endpoint`/`Link` API: a Python client calling the routes of
//! `examples/py_interop.rs` (served with `serve_tcp_dialect`), a Python client calling a
//! gateway that forwards a route to a native link, and Rust endpoints calling a Python
//! server (`tcp+py:` specs, the example's `call`). Bodies of 0 bytes, 1 MiB and 16 MiB
//! cross byte-identical; 50 calls at once; what Python would lose is refused with a
//! typed error; Python's silence on an unknown route ends in a timeout; a call
//! cancelled mid-body leaves the Python server serving; a Python server killed
//! mid-transfer fails the call with a typed error and the endpoint keeps working.
//!
//! Python peers busy-spin and convoy on the GIL on 2 cores, so each runs pinned to one
//! CPU (`taskset -c 0`) where `taskset` exists. Without python3 the tests skip.
// A skip and the answers' timings are reported on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use bytes::Bytes;
use netcore::prelude::*;
use netcore::{Dialect, LinkId, LinkSpec, LinkStatus};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[path = "../examples/py_interop.rs"]
#[allow(dead_code)]
mod example;

/// Longest wait for one call to a Python peer (a 16 MiB echo from a pinned Python
/// peer on a loaded 2-core machine took tens of seconds).
const PY_CALL: Duration = Duration::from_secs(120);

/// Longest wait for anything a Python peer does (only reached when it hangs).
const PY_HANG: Duration = Duration::from_secs(240);

/// The venv's python with netcore 0.1.3 (made by `scripts/py-venv.sh`), or `None`
/// when python3 is missing.
fn venv_python() -> Option<PathBuf> {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIPPED: python3 is not installed, no Python Netcore peer can run");
        return None;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("scripts/py-venv.sh"))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/py-venv.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(PathBuf::from(
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
    ))
}

/// One Python peer at a time: two busy-spinning interpreters pinned to the same
/// CPU (and the Rust side with them on a loaded 2-core machine) took a 16 MiB echo
/// past its timeout.
static ONE_PEER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The peer script run by `python`, pinned to CPU 0 when `taskset` exists.
fn peer_command(python: &PathBuf, args: &[&str]) -> Command {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/py_netcore_peer.py");
    let pinned = Command::new("taskset").arg("-V").output().is_ok();
    let mut command = if pinned {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(python);
        c
    } else {
        Command::new(python)
    };
    command.arg(script).args(args);
    command
}

/// Kills the Python server when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the Python server; returns it (killed when dropped) and its address.
async fn python_server(python: &PathBuf) -> (Killed, String) {
    let mut server = Killed(
        peer_command(python, &["server", "127.0.0.1", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python runs"),
    );
    let stdout = server.0.stdout.take().unwrap();
    let port = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        // Python prints `[]` for every routed request: keep its stdout drained (a
        // closed pipe would make each print, and so each handler, fail).
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        line.trim()
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse::<u16>()
            .unwrap()
    });
    let port = tokio::time::timeout(PY_HANG, port).await.unwrap().unwrap();
    (server, format!("127.0.0.1:{port}"))
}

/// Starts the Python client in `mode` against `port`; the returned future asserts
/// that it reported success and yields its output.
fn python_client(
    python: &PathBuf,
    mode: &str,
    port: u16,
) -> impl std::future::Future<Output = String> {
    let mut command = peer_command(python, &[mode, "127.0.0.1", &port.to_string()]);
    let client = tokio::task::spawn_blocking(move || command.output().expect("python runs"));
    async move {
        let output = tokio::time::timeout(PY_HANG, client)
            .await
            .expect("the Python client ends")
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success() && stdout.contains("py client: ok"),
            "the Python client failed:\n{stdout}\n{stderr}"
        );
        stdout
    }
}

/// The stats of `link` sampled every 100 ms until `until` resolves; the last
/// sample taken while the link was up.
async fn stats_while<T>(
    link: &Link,
    until: impl std::future::Future<Output = T>,
) -> (T, Option<netcore::LinkStats>) {
    tokio::pin!(until);
    let mut last = None;
    loop {
        tokio::select! {
            out = &mut until => return (out, last),
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if let Some(stats) = link.stats().await {
                    last = Some(stats);
                }
            }
        }
    }
}

fn py_spec(addr: &str) -> LinkSpec {
    format!("tcp+py:{addr}").parse().expect("a tcp+py spec")
}

#[actix_rt::test]
async fn a_python_client_calls_the_example_endpoint() {
    let _one_peer = ONE_PEER.lock().await;
    let Some(python) = venv_python() else {
        return;
    };
    let endpoint = example::endpoint();
    let serving = example::listen(&endpoint, "127.0.0.1:0").await.unwrap();
    let port = serving.local_addr().tcp().unwrap().port();
    // echo dict, echo and size 1 MiB, echo 16 MiB, size 0 bytes, 50 echo at once.
    let client = python_client(&python, "client", port);
    let link = serving.next_link().await.expect("the Python client's link");
    let (stdout, stats) = stats_while(&link, client).await;
    let stats = stats.expect("stats while the link was up");
    // The Python wire's bytes and frames, not the pipe to the bridge: at least the
    // 1 MiB and 16 MiB echoes each way (the last sample may precede the last calls).
    assert!(stats.bytes_in > 17 << 20, "{stats:?}\n{stdout}");
    assert!(stats.bytes_out > 17 << 20, "{stats:?}");
    assert!(
        stats.frames_in > 4 * 1024 && stats.frames_out > 4 * 1024,
        "{stats:?}"
    );
    serving.stop();
    endpoint.stop().await;
}

#[actix_rt::test]
async fn a_python_client_reaches_a_native_peer_through_a_gateway() {
    let _one_peer = ONE_PEER.lock().await;
    let Some(python) = venv_python() else {
        return;
    };
    // The native peer serves `size`.
    let native = example::endpoint();
    let native_serving = native.serve_tcp("127.0.0.1:0").await.unwrap();
    let native_addr = native_serving.local_addr().tcp().unwrap();
    // The gateway serves `echo` itself and forwards `size` to the native link.
    let upstream: Arc<OnceLock<LinkId>> = Arc::default();
    let forwarded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (to, count) = (upstream.clone(), forwarded.clone());
    let gateway = Endpoint::builder()
        .route("echo", |body: Bytes| async move { body })
        .route("size", move |endpoint: Endpoint, body: Bytes| {
            let (to, count) = (to.clone(), count.clone());
            async move {
                let id = *to
                    .get()
                    .ok_or_else(|| HandlerError::new(ErrorCode::Internal, "no upstream link"))?;
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let answer = endpoint.call_on(id, "size", body).await?;
                Ok::<Bytes, HandlerError>(answer.bytes().await?)
            }
        })
        .start();
    let link = gateway.connect_tcp(native_addr).await.unwrap();
    upstream.set(link.id()).unwrap();
    let serving = gateway
        .serve_tcp_dialect("127.0.0.1:0", Dialect::python())
        .await
        .unwrap();
    let port = serving.local_addr().tcp().unwrap().port();
    let client = python_client(&python, "client-small", port);
    let py_link = serving.next_link().await.expect("the Python client's link");
    // One endpoint, a native link and a Python link at once.
    let links: Vec<LinkId> = gateway.links().iter().map(Link::id).collect();
    assert!(
        links.contains(&link.id()) && links.contains(&py_link.id()),
        "{links:?}"
    );
    client.await;
    // size 1000 bytes and size 0 bytes went through the native link.
    assert_eq!(forwarded.load(std::sync::atomic::Ordering::Relaxed), 2);
    gateway.stop().await;
    native.stop().await;
}

#[actix_rt::test]
async fn rust_endpoints_call_a_python_server() {
    let _one_peer = ONE_PEER.lock().await;
    let Some(python) = venv_python() else {
        return;
    };
    let (_server, addr) = python_server(&python).await;

    // The example's `--call`.
    let answer = example::call(&addr, "echo", Bytes::from_static(b"hello"), PY_CALL)
        .await
        .unwrap();
    assert_eq!(&answer[..], b"hello");

    let client = Endpoint::builder().start();
    let link = client.open(py_spec(&addr)).await.unwrap();
    let text = Bytes::from_static("héllo\u{0}".as_bytes());
    let mib = Bytes::from(netcore_proto::rng::SplitMix64::new(1).bytes(1 << 20));
    let big = Bytes::from(netcore_proto::rng::SplitMix64::new(16).bytes(16 << 20));
    for (route, body, expected) in [
        ("echo", text.clone(), text.clone()),
        (
            "size",
            mib.clone(),
            Bytes::from_static(b"{\"size\": 1048576}"),
        ),
        ("echo", mib.clone(), mib.clone()),
        ("echo", big.clone(), big.clone()),
    ] {
        let started = std::time::Instant::now();
        let response = link.request(route, body).timeout(PY_CALL).await.unwrap();
        let route_header = netcore::proto::frame::header_value(&response.head.headers, "route");
        assert_eq!(route_header, Some(route.as_bytes()));
        let answer = response.bytes().await.unwrap();
        eprintln!(
            "{route}: {} bytes after {:?}",
            answer.len(),
            started.elapsed()
        );
        assert!(answer == expected, "{} bytes differ", expected.len());
    }

    // A 0-byte body would be lost by Python: refused with a typed error.
    match link.call("echo", Bytes::new()).await {
        Err(CallError::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::BadRequest);
            assert!(message.contains("0-byte"), "{message}");
        }
        other => panic!("a typed refusal expected: {other:?}"),
    }
    // Python answers an unknown route with silence: the call times out.
    let silent = link
        .request("nosuchroute", "hi")
        .timeout(Duration::from_secs(2))
        .await;
    assert!(matches!(silent, Err(CallError::Timeout(_))), "{silent:?}");

    // A call abandoned mid-body (its timeout) is cancelled on the Python wire; the
    // Python server drops the partial message and serves the next call.
    let abandoned = link
        .request("echo", big.clone())
        .timeout(Duration::from_millis(200))
        .await;
    assert!(
        matches!(abandoned, Err(CallError::Timeout(_))),
        "{abandoned:?}"
    );
    let after = link
        .request("echo", "after-cancel")
        .timeout(PY_CALL)
        .await
        .unwrap();
    assert_eq!(&after.bytes().await.unwrap()[..], b"after-cancel");

    let stats = link.stats().await.unwrap();
    assert!(stats.bytes_out > 17 << 20, "{stats:?}");
    assert_eq!(stats.calls_awaiting_answer, 0, "{stats:?}");
    client.stop().await;
}

#[actix_rt::test]
async fn a_python_server_killed_mid_transfer_fails_the_call_not_the_endpoint() {
    let _one_peer = ONE_PEER.lock().await;
    let Some(python) = venv_python() else {
        return;
    };
    let (mut server, addr) = python_server(&python).await;
    let client = Endpoint::builder().start();
    let link = client.open(py_spec(&addr)).await.unwrap();
    let big = Bytes::from(netcore_proto::rng::SplitMix64::new(4).bytes(16 << 20));
    let call = {
        let link = link.clone();
        actix_rt::spawn(async move { link.request("echo", big).timeout(PY_CALL).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let outcome = tokio::time::timeout(PY_HANG, call).await.unwrap().unwrap();
    match &outcome {
        Err(CallError::LinkDown(_) | CallError::PeerReset) => {}
        other => panic!("a typed link error expected: {other:?}"),
    }
    assert!(
        matches!(link.state(), LinkState::Down(_)),
        "{:?}",
        link.state()
    );
    if let Some(stats) = link.stats().await {
        assert_eq!(stats.state, LinkStatus::Down);
    }

    // The endpoint goes on: a new Python server, a new link, a call.
    let (_server, addr) = python_server(&python).await;
    let link = client.open(py_spec(&addr)).await.unwrap();
    let answer = link
        .request("echo", "still here")
        .timeout(PY_CALL)
        .await
        .unwrap();
    assert_eq!(&answer.bytes().await.unwrap()[..], b"still here");
    client.stop().await;
}
