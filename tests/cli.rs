//! The `netcore` binary, spawned for real against live endpoints: serve + call
//! over TCP loopback (answers, JSON, error answers and exit codes, the file
//! store refusing path traversal), send-file + recv-file byte-identical (quiet
//! when piped, a progress bar on a terminal), bridge across a pseudo-terminal
//! pair with calls reaching through both ways, watch's JSON lines, ports, and
//! usage errors with exit code 2. Every spawned process is killed when its
//! guard drops.
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::pty_pair;
use netcore::{Endpoint, LinkOptions, Request};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_netcore");

/// A spawned `netcore` that is killed (and reaped) when dropped; its stderr
/// lines are collected by a thread, so it never blocks on a full pipe.
struct Running {
    child: Child,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(args: &[&str]) -> Running {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, stderr) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            child,
            stderr,
            seen: Vec::new(),
        }
    }

    /// The address of its `listening on ADDR` line on stderr.
    fn listening(&mut self) -> String {
        let deadline = Instant::now() + common::HANG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        return addr.to_owned();
                    }
                    self.seen.push(line);
                }
                Err(_) => panic!("no `listening on` line; stderr: {:?}", self.seen),
            }
        }
    }

    /// Waits for the process to exit (it must, within the hang bound); its
    /// exit status, stdout and the stderr lines.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<u8>, String) {
        let deadline = Instant::now() + common::HANG;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = Vec::new();
        if let Some(mut pipe) = self.child.stdout.take() {
            std::io::Read::read_to_end(&mut pipe, &mut stdout).unwrap();
        }
        let mut stderr = std::mem::take(&mut self.seen);
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(2)) {
            stderr.push(line);
        }
        (status, stdout, stderr.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `netcore ARGS` to completion (killed if it outlives the hang bound).
fn run(args: &[&str]) -> Output {
    let running = Running::spawn(args);
    let (status, stdout, stderr) = running.finish();
    Output {
        status,
        stdout,
        stderr: stderr.into_bytes(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn serve_and_call_over_tcp() {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().to_str().unwrap();
    let mut server = Running::spawn(&["serve", "--listen", "127.0.0.1:0", "--dir", dir]);
    let addr = server.listening();

    let echo = run(&["call", "--tcp", &addr, "echo", "hello there"]);
    assert!(echo.status.success(), "{}", text(&echo.stderr));
    assert_eq!(text(&echo.stdout), "hello there"); // piped: raw, as it came

    // A JSON answer, pretty with --json: the endpoint's stats, this link in it.
    let stats = run(&["call", "--tcp", &addr, "stats", "--json"]);
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    assert!(text(&stats.stdout).contains("\n  "), "pretty-printed");
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert!(stats["totals"]["links"].as_u64().unwrap() >= 1, "{stats}");

    // A body from a file, stored and listed.
    let body = store.path().join("..").join("cli-call-body.txt");
    std::fs::write(&body, "from a file").unwrap();
    let at = format!("@{}", body.display());
    let put = run(&["call", "--tcp", &addr, "files/put/note.txt", &at]);
    std::fs::remove_file(&body).unwrap();
    assert!(put.status.success(), "{}", text(&put.stderr));
    let stored = std::fs::read_to_string(store.path().join("note.txt")).unwrap();
    assert_eq!(stored, "from a file");
    let list = run(&["call", "--tcp", &addr, "files/list"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list, serde_json::json!([{"name": "note.txt", "size": 11}]));

    // Error answers: exit code 1, one line on stderr naming the error.
    let missing = run(&["call", "--tcp", &addr, "no/such/route"]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = text(&missing.stderr);
    assert!(stderr.contains("NotFound"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(missing.stdout.is_empty());
    let escape = run(&["call", "--tcp", &addr, "files/put/../escaped", "x"]);
    assert_eq!(escape.status.code(), Some(1));
    assert!(
        text(&escape.stderr).contains("BadRequest"),
        "{}",
        text(&escape.stderr)
    );
    assert!(!store.path().join("..").join("escaped").exists());
    // With --json the error is also on stdout, as JSON.
    let json = run(&["call", "--tcp", &addr, "files/get/absent", "--json"]);
    assert_eq!(json.status.code(), Some(1));
    let error: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(error["error"]["code"], "NotFound", "{error}");

    // SIGTERM (a service manager stopping it) stops the server cleanly: exit 0.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (status, _, stderr) = server.finish();
    assert!(status.success(), "{status:?}: {stderr}");

    // A link that does not open: exit code 1, one line, no panic.
    let refused = run(&["call", "--tcp", &addr, "echo", "x"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn send_file_and_recv_file_are_byte_identical_and_quiet_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let source = dir.path().join("payload.bin");
    let data = common::random_bytes(0x5eed_f11e, 3 * (1 << 20) + 12_345);
    std::fs::write(&source, &data).unwrap();

    let mut receiver = Running::spawn(&[
        "recv-file",
        inbox.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--json",
    ]);
    let addr = receiver.listening();
    let sent = run(&[
        "send-file",
        source.to_str().unwrap(),
        "--tcp",
        &addr,
        "--json",
    ]);
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    let report: serde_json::Value = serde_json::from_slice(&sent.stdout).unwrap();
    assert_eq!(report["bytes"], data.len() as u64);
    assert_eq!(report["answer"]["size"], data.len() as u64);
    assert_eq!(report["answer"]["name"], "payload.bin");

    // The receiver exits after its one file (--count 1 by default).
    let (status, stdout, stderr) = receiver.finish();
    assert!(status.success(), "{stderr}");
    let line: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(line["size"], data.len() as u64);
    assert_eq!(std::fs::read(inbox.join("payload.bin")).unwrap(), data);
    // Only the file, no leftover temporary one.
    assert_eq!(std::fs::read_dir(&inbox).unwrap().count(), 1);
    // Piped: no progress bar on either side.
    for stderr in [stderr, text(&sent.stderr)] {
        assert!(
            !stderr.contains("eta") && !stderr.contains('\r'),
            "{stderr:?}"
        );
    }
}

#[actix_rt::test]
async fn send_file_and_recv_file_draw_a_progress_bar_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let source = dir.path().join("big.bin");
    let data = common::random_bytes(7, 2 << 20);
    std::fs::write(&source, &data).unwrap();

    // The sender on a terminal, to a server.
    let mut server = Running::spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        store.to_str().unwrap(),
    ]);
    let addr = server.listening();
    let drawn = on_a_terminal(&["send-file", source.to_str().unwrap(), "--tcp", &addr]).await;
    assert!(
        drawn.contains("big.bin") && drawn.contains("eta"),
        "{drawn:?}"
    );
    assert_eq!(std::fs::read(store.join("big.bin")).unwrap(), data);

    // The receiver on a terminal, connecting to a sender that listens.
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let mut sender = Running::spawn(&[
        "send-file",
        source.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = sender.listening();
    let drawn = on_a_terminal(&["recv-file", inbox.to_str().unwrap(), "--tcp", &addr]).await;
    assert!(
        drawn.contains("big.bin") && drawn.contains("eta"),
        "{drawn:?}"
    );
    let (status, _, stderr) = tokio::task::spawn_blocking(move || sender.finish())
        .await
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(std::fs::read(inbox.join("big.bin")).unwrap(), data);
}

/// Runs `netcore ARGS` with its stderr on a pseudo-terminal until it exits
/// successfully; returns what it drew there.
async fn on_a_terminal(args: &[&str]) -> String {
    let (mut master, slave) = pty_pair().unwrap();
    let terminal = std::fs::OpenOptions::new()
        .write(true)
        .open(tokio_serial::SerialPort::name(&slave).unwrap())
        .unwrap();
    drop(slave);
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(terminal))
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let mut drawn = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + common::HANG;
    loop {
        let read = tokio::io::AsyncReadExt::read(&mut master, &mut buf);
        match tokio::time::timeout(Duration::from_millis(100), read).await {
            Ok(Ok(0)) | Ok(Err(_)) => break, // the process closed the terminal
            Ok(Ok(n)) => drawn.extend_from_slice(&buf[..n]),
            Err(_) => {
                if child.0.try_wait().unwrap().is_some() {
                    break;
                }
            }
        }
        assert!(Instant::now() < deadline, "{args:?} did not finish");
    }
    let status = tokio::task::spawn_blocking(move || child.0.wait().unwrap())
        .await
        .unwrap();
    let drawn = text(&drawn);
    assert!(status.success(), "{args:?}: {drawn}");
    drawn
}

/// A `std::process::Child` killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[actix_rt::test]
async fn a_bridge_joins_a_serial_device_and_a_tcp_listener() {
    // The device: an endpoint in this test on the master end of a PTY pair. The
    // bridge opens the slave end by its path. This test keeps the slave open
    // too (else the master reads a hang-up until the bridge opens it), through
    // a plain file: no exclusive lock, which the bridge's open takes.
    let (master, mut slave) = pty_pair().unwrap();
    slave.set_exclusive(false).unwrap();
    let path = tokio_serial::SerialPort::name(&slave).unwrap();
    let held_open = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    drop(slave);
    let device = Endpoint::builder()
        .route("who", |_req: Request| async {
            Ok(netcore::Reply::new("device"))
        })
        .start();
    let attaching = actix_rt::spawn({
        let device = device.clone();
        async move { device.attach(master, LinkOptions::serial(115_200)).await }
    });

    let bridge = Running::spawn(&[
        "bridge",
        "--serial",
        &path,
        "--baud",
        "115200",
        "--listen",
        "127.0.0.1:0",
    ]);
    // Waited for off the runtime's thread, where the device answers the handshake.
    let (_bridge, addr) = tokio::task::spawn_blocking(move || {
        let mut bridge = bridge;
        let addr = bridge.listening();
        (bridge, addr)
    })
    .await
    .unwrap();
    let device_link = common::within("the device's handshake", attaching)
        .await
        .unwrap()
        .unwrap();

    // A remote machine's call reaches the device through the bridge.
    let addr2 = addr.clone();
    let who = tokio::task::spawn_blocking(move || run(&["call", "--tcp", &addr2, "who"]))
        .await
        .unwrap();
    assert!(who.status.success(), "{}", text(&who.stderr));
    assert_eq!(text(&who.stdout), "device");
    // A route the device lacks: its NotFound comes back through the bridge.
    let addr2 = addr.clone();
    let missing = tokio::task::spawn_blocking(move || run(&["call", "--tcp", &addr2, "nothing"]))
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("NotFound"),
        "{}",
        text(&missing.stderr)
    );

    // And the other way: the device calls the machine behind the listener (a
    // `netcore serve` connected to the bridge) through it.
    let _behind = Running::spawn(&["serve", "--tcp", &addr]);
    let deadline = Instant::now() + common::HANG;
    let echoed = loop {
        match device_link.call("echo", "ping through").await {
            Ok(answer) => break answer,
            // Until the serve process connected, the bridge answers GoingAway.
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "no echo through the bridge: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(echoed.body.as_bytes().unwrap().as_ref(), b"ping through");
    drop(held_open);
}

#[test]
fn watch_prints_a_json_line_per_update() {
    let mut server = Running::spawn(&["serve", "--listen", "127.0.0.1:0"]);
    let addr = server.listening();
    let watch = run(&[
        "watch",
        "--tcp",
        &addr,
        "--json",
        "--interval",
        "100ms",
        "--updates",
        "3",
    ]);
    assert!(watch.status.success(), "{}", text(&watch.stderr));
    let lines: Vec<serde_json::Value> = text(&watch.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let stats: Vec<_> = lines.iter().filter(|l| l["type"] == "stats").collect();
    assert_eq!(stats.len(), 3, "{lines:?}");
    assert_eq!(stats[2]["links"][0]["state"], "up", "{lines:?}");
}

#[test]
fn ports_lists_and_its_json_parses() {
    let human = run(&["ports"]);
    assert!(human.status.success(), "{}", text(&human.stderr));
    let json = run(&["ports", "--json"]);
    assert!(json.status.success(), "{}", text(&json.stderr));
    let ports: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let ports = ports.as_array().unwrap();
    assert_eq!(ports.len(), text(&human.stdout).lines().count());
    for port in ports {
        assert!(port["path"].is_string(), "{port}");
    }
}

#[test]
fn bad_arguments_are_usage_errors_with_exit_code_2() {
    for args in [
        &["frobnicate"][..],
        &["call"],         // no route
        &["call", "echo"], // no link
        &[
            "call",
            "echo",
            "--tcp",
            "127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
        ], // two links
        &["serve", "--serial", "/dev/null", "--parity", "space"],
        &["serve", "--serial", "/dev/null", "--data", "6"],
        &["call", "echo", "--tcp", "127.0.0.1:1", "--timeout", "soon"],
        &["serve", "--tcp", "127.0.0.1:1", "--key-id", "gateway"], // no --psk-file
        &["bridge", "--tcp", "127.0.0.1:1"],                       // one side
    ] {
        let out = run(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--help") || stderr.contains("Usage"),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// The crate root of the binary names every subcommand module it has, and no
/// module of the binary reaches below the library's public API.
#[test]
fn the_binary_uses_the_public_api_only() {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/netcore")];
    let mut checked = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            checked += 1;
            for internal in ["netcore_actors", "netcore_proto"] {
                assert!(
                    !source.contains(internal),
                    "{} uses {internal}: the binary is built on the netcore crate's public API",
                    path.display()
                );
            }
        }
    }
    assert!(checked > 10, "the binary's sources were found");
}

#[test]
fn authenticated_links_take_a_key_id_and_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("gateway.psk");
    std::fs::write(&psk, format!("{}\n", "5a".repeat(32))).unwrap();
    let wrong = dir.path().join("wrong.psk");
    std::fs::write(&wrong, [7u8; 32]).unwrap(); // 32 raw bytes: another key
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("# id key\ngateway {}\n", "5a".repeat(32))).unwrap();
    let (psk, wrong, keys) = (
        psk.to_str().unwrap(),
        wrong.to_str().unwrap(),
        keys.to_str().unwrap(),
    );

    let mut server = Running::spawn(&["serve", "--listen", "127.0.0.1:0", "--keys", keys]);
    let addr = server.listening();
    let ok = run(&[
        "call",
        "--tcp",
        &addr,
        "--key-id",
        "gateway",
        "--psk-file",
        psk,
        "echo",
        "sealed",
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(text(&ok.stdout), "sealed");
    // The wrong key, or none: no link, exit code 1.
    let bad = run(&[
        "call",
        "--tcp",
        &addr,
        "--key-id",
        "gateway",
        "--psk-file",
        wrong,
        "echo",
        "x",
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stderr));
    let plain = run(&["call", "--tcp", &addr, "echo", "x"]);
    assert_eq!(plain.status.code(), Some(1), "{}", text(&plain.stderr));
    for failed in [&bad, &plain] {
        let stderr = text(&failed.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains("handshake") || stderr.contains("HELLO"),
            "{stderr}"
        );
    }

    // A listener given --key-id and --psk-file accepts that key.
    let mut server = Running::spawn(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--key-id",
        "gateway",
        "--psk-file",
        psk,
    ]);
    let addr = server.listening();
    let ok = run(&[
        "call",
        "--tcp",
        &addr,
        "--key-id",
        "gateway",
        "--psk-file",
        psk,
        "echo",
        "again",
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(text(&ok.stdout), "again");
}

#[test]
fn the_python_dialect_is_one_option() {
    let mut server = Running::spawn(&["serve", "--listen", "127.0.0.1:0", "--dialect", "py"]);
    let addr = server.listening();
    let echo = run(&["call", "--tcp", &addr, "--dialect", "py", "echo", "snake"]);
    assert!(echo.status.success(), "{}", text(&echo.stderr));
    assert_eq!(text(&echo.stdout), "snake");
    let bad = run(&["call", "--tcp", &addr, "--dialect", "ruby", "echo", "x"]);
    assert_eq!(bad.status.code(), Some(2));
}
