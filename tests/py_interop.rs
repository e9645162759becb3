//! Real Python Netcore 0.1.3 peers (`tests/peers/py_netcore_peer.py`, in the venv of
//! `scripts/py-venv.sh`) against a Rust side speaking the Python dialect over TCP
//! loopback with the sans-IO codec and session of `netcore_proto::pydialect`
//! directly: a Python client calling a Rust server, and a Rust client calling a Python
//! server. Bodies of 0 bytes, 1 MiB and 16 MiB cross byte-identical; what Python would lose is refused locally;
//! Python's silence on an unknown route ends in a timeout; a request cancelled
//! mid-body leaves the Python server serving; a Python server killed mid-transfer
//! ends the stream and leaves nothing held.
//!
//! Python peers busy-spin and convoy on the GIL on 2 cores, so each runs pinned to one
//! CPU (`taskset -c 0`) where `taskset` exists. Without python3 the tests skip.
// A skip and the answers' timings are reported on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use bytes::{Bytes, BytesMut};
use netcore_proto::pydialect::frame::encode;
use netcore_proto::pydialect::json::Object;
use netcore_proto::pydialect::{
    PyDecoder, PyError, PyInbound, PyLimits, PySession, PySessionLimits,
};
use netcore_proto::Instant;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// One Python-dialect connection driven by the test: the codec, the session, the
/// socket.
struct PyConn {
    stream: TcpStream,
    decoder: PyDecoder,
    session: PySession,
    input: BytesMut,
    start: std::time::Instant,
    /// Frame-level and message-level errors seen (none expected from Python).
    errors: Vec<PyError>,
    /// Whether the stream ended (end of file or a read error).
    ended: bool,
}

impl PyConn {
    fn new(stream: TcpStream, seed: u64) -> PyConn {
        stream.set_nodelay(true).unwrap();
        PyConn {
            stream,
            decoder: PyDecoder::new(PyLimits::default()),
            session: PySession::new(
                PySessionLimits {
                    // Python's sender can put data ahead of its head (its own
                    // receiver then loses the message); on a loaded machine a 16 MiB
                    // answer's head came after more than the default's 8 chunks and
                    // 1 s, so the test stashes a whole body's worth.
                    max_early_frames: 8192,
                    early_data_ttl: Duration::from_secs(120),
                    ..PySessionLimits::default()
                },
                seed,
            ),
            input: BytesMut::new(),
            start: std::time::Instant::now(),
            errors: Vec::new(),
            ended: false,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    /// Writes every frame the session has ready, each encoded as Python writes it.
    async fn flush(&mut self) {
        let mut out = BytesMut::new();
        while let Some(frame) = self.session.poll_frame() {
            encode(&frame, &mut out).expect("encodable");
            if out.len() >= 1 << 16 {
                self.stream.write_all(&out).await.unwrap();
                out.clear();
            }
        }
        self.stream.write_all(&out).await.unwrap();
    }

    /// Writes at most `frames` of the frames the session has ready; how many went out.
    async fn send_frames(&mut self, frames: usize) -> std::io::Result<usize> {
        let mut sent = 0;
        while sent < frames {
            let Some(frame) = self.session.poll_frame() else {
                break;
            };
            let mut out = BytesMut::new();
            encode(&frame, &mut out).expect("encodable");
            self.stream.write_all(&out).await?;
            sent += 1;
        }
        Ok(sent)
    }

    /// The next inbound message or cancel; `None` at the end of the stream (`ended`
    /// set) or after `wait`.
    async fn next(&mut self, wait: Duration) -> Option<PyInbound> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            loop {
                match self.decoder.decode(&mut self.input) {
                    Ok(Some(frame)) => {
                        let now = self.now();
                        match self.session.handle_frame(frame, now) {
                            Ok(Some(inbound)) => return Some(inbound),
                            Ok(None) => {}
                            Err(e) => self.errors.push(e),
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let fatal = e.is_fatal();
                        self.errors.push(e);
                        if fatal {
                            return None;
                        }
                    }
                }
            }
            self.input.reserve(64 * 1024);
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.input));
            match read.await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    self.ended = true;
                    return None;
                }
                Err(_) => return None,
                Ok(Ok(_)) => {}
            }
        }
    }
}

#[tokio::test]
async fn a_python_client_calls_a_rust_server() {
    let _one_peer = ONE_PEER.lock().await;
    let Some(python) = venv_python() else {
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let mut command = peer_command(&python, &["client", "127.0.0.1", &port]);
    let client = tokio::task::spawn_blocking(move || command.output().expect("python runs"));
    let (stream, _) = tokio::time::timeout(PY_HANG, listener.accept())
        .await
        .expect("the Python client connects")
        .unwrap();
    let mut conn = PyConn::new(stream, 0x5EED);
    let mut served = 0;
    // Serve echo and size until the Python client ends the connection.
    while let Some(inbound) = conn.next(PY_HANG).await {
        let PyInbound::Request(message) = inbound else {
            panic!("only requests expected: {inbound:?}")
        };
        let id = message.message_id().expect("a message_id").to_string();
        let (route, body) = match message.route() {
            Some("echo") => ("echo", message.body.clone()),
            Some("size") => (
                "size",
                Bytes::from(format!("{{\"size\": {}}}", message.body.len())),
            ),
            other => panic!("unexpected route {other:?}"),
        };
        conn.session.respond(Some(route), &id, body).unwrap();
        conn.flush().await;
        served += 1;
    }
    let output = tokio::time::timeout(PY_HANG, client)
        .await
        .expect("the Python client ends")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("py client: ok"),
        "the Python client failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(served, 55, "{stdout}");
    assert!(conn.errors.is_empty(), "{:?}", conn.errors);
}

/// Kills the Python server when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the Python server; returns it (killed when dropped) and a connection to it.
async fn python_server(python: &PathBuf, seed: u64) -> (Killed, PyConn) {
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
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    (server, PyConn::new(stream, seed))
}

#[tokio::test]
async fn a_rust_client_calls_a_python_server() {
    let _one_peer = ONE_PEER.lock().await;
    let Some(python) = venv_python() else {
        return;
    };
    let (_server, mut conn) = python_server(&python, 0xC11E).await;

    // What Python would lose never leaves.
    assert_eq!(
        conn.session.request("echo", Object::new(), Bytes::new()),
        Err(PyError::EmptyBody)
    );
    let text = Bytes::from_static("héllo\u{0}".as_bytes());
    let mib = Bytes::from(netcore_proto::rng::SplitMix64::new(1).bytes(1 << 20));
    let big = Bytes::from(netcore_proto::rng::SplitMix64::new(16).bytes(16 << 20));
    let mut expected = Vec::new();
    for (route, body, answer) in [
        ("echo", text.clone(), text.clone()),
        (
            "size",
            mib.clone(),
            Bytes::from_static(b"{\"size\": 1048576}"),
        ),
        ("echo", mib.clone(), mib.clone()),
        ("echo", big.clone(), big.clone()),
    ] {
        let out = conn.session.request(route, Object::new(), body).unwrap();
        expected.push((out.message_id, answer));
    }
    conn.flush().await;
    while !expected.is_empty() {
        let inbound = conn
            .next(PY_HANG)
            .await
            .unwrap_or_else(|| panic!("the Python server went silent; errors {:?}", conn.errors));
        let PyInbound::Response(message) = inbound else {
            panic!("only responses expected: {inbound:?}")
        };
        let at = expected
            .iter()
            .position(|(id, _)| Some(id.as_str()) == message.message_id())
            .expect("answers a pending request");
        let (_, answer) = expected.remove(at);
        eprintln!(
            "answer of {} bytes after {:?}",
            answer.len(),
            conn.start.elapsed()
        );
        assert!(message.body == answer, "{} bytes differ", answer.len());
        assert!(message.is_response());
    }
    // Python answers an unknown route with silence: the caller's timeout ends it.
    let lost = conn
        .session
        .request("nosuchroute", Object::new(), Bytes::from_static(b"hi"))
        .unwrap();
    conn.flush().await;
    assert_eq!(conn.next(Duration::from_secs(2)).await, None);
    assert!(conn.session.forget_request(&lost.message_id));
    assert!(conn.errors.is_empty(), "{:?}", conn.errors);
}

#[tokio::test]
async fn a_request_cancelled_mid_body_leaves_the_python_server_serving() {
    let _one_peer = ONE_PEER.lock().await;
    let Some(python) = venv_python() else {
        return;
    };
    let (_server, mut conn) = python_server(&python, 0xCA9C).await;
    let body = Bytes::from(netcore_proto::rng::SplitMix64::new(3).bytes(1 << 20));
    let cancelled = conn.session.request("echo", Object::new(), body).unwrap();
    // The head and 10 of its 256 chunks, then the cancel.
    assert_eq!(conn.send_frames(11).await.unwrap(), 11);
    assert!(conn.session.cancel(&cancelled.mission));
    conn.flush().await;
    assert!(conn.session.forget_request(&cancelled.message_id));
    // The Python server dropped the partial message and still answers.
    let after = conn
        .session
        .request("echo", Object::new(), Bytes::from_static(b"after-cancel"))
        .unwrap();
    conn.flush().await;
    let Some(PyInbound::Response(message)) = conn.next(PY_HANG).await else {
        panic!("no answer after the cancel; errors {:?}", conn.errors)
    };
    assert_eq!(message.message_id(), Some(after.message_id.as_str()));
    assert_eq!(&message.body[..], b"after-cancel");
    // Nothing ever answers the cancelled request.
    assert_eq!(conn.next(Duration::from_secs(1)).await, None);
    assert!(conn.errors.is_empty(), "{:?}", conn.errors);
}

#[tokio::test]
async fn a_python_server_killed_mid_transfer_ends_the_stream_not_the_caller() {
    let _one_peer = ONE_PEER.lock().await;
    let Some(python) = venv_python() else {
        return;
    };
    let (mut server, mut conn) = python_server(&python, 0xDEAD).await;
    let body = Bytes::from(netcore_proto::rng::SplitMix64::new(4).bytes(16 << 20));
    let call = conn.session.request("echo", Object::new(), body).unwrap();
    assert_eq!(conn.send_frames(100).await.unwrap(), 100);
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    // Writing the rest fails or is lost; reading sees the end of the stream, well
    // before any hang.
    let _ = conn.send_frames(usize::MAX).await;
    assert_eq!(conn.next(PY_HANG).await, None);
    assert!(conn.ended, "the end of the stream is seen");
    // The caller ends its call; nothing of the dead peer is held.
    assert!(conn.session.forget_request(&call.message_id));
    assert_eq!(conn.session.pending_requests(), 0);
    assert_eq!(
        (conn.session.committed(), conn.session.missions_in()),
        (0, 0)
    );
    assert!(!conn.decoder.is_failed());
}
