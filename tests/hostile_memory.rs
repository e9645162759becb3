//! Memory against many hostile peers at once. An endpoint with the default options
//! runs in a process of its own (this test binary started again, running only
//! `server_process`), so its resident memory is its own; raw clients then attack it
//! over TCP loopback all at once, each the way that costs a server most:
//!
//! - half-sent bodies: streams opened with a large declared length, a part of each
//!   body sent, never finished;
//! - answers never read: echo requests with 32 KiB bodies, back to back, while the
//!   client never reads a byte;
//! - a PING flood on links that never read;
//! - a thousand streams per link, each a few bytes into its body;
//! - silent connections that never send their HELLO.
//!
//! Its peak resident memory (`VmHWM`) must stay under 128 MiB, the bound SECURITY.md
//! aims at, and a good client must still be served. Linux only (`/proc`).
//!
//! Each attack can be left out to see what one costs alone: `HALF=0`, `UNREAD=0`,
//! `PING=0`, `MANY=0`, `SILENT=0` in the environment (or another count), e.g.
//! `HALF=0 PING=0 MANY=0 SILENT=0 cargo test --test hostile_memory -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(target_os = "linux")]

mod common;

use bytes::{Bytes, BytesMut};
use netcore::proto::frame::{Data, Frame, Hello, Open, Ping};
use netcore::proto::framing::{Framing, Length};
use netcore::proto::{Envelope, MessageKind, StreamId};
use netcore::{Endpoint, Reply, Request};
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Set in the server process's environment.
const SERVER_ENV: &str = "NETCORE_HOSTILE_MEMORY_SERVER";
/// The bound under test.
const MAX_RESIDENT: u64 = 128 * 1024 * 1024;
/// How long each attacker keeps at it (a write the server no longer reads ends there).
const ATTACK_TIME: Duration = Duration::from_secs(8);

async fn echo(req: Request) -> netcore::HandlerResult {
    Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
}

/// The server: an endpoint with the default options, serving `echo` on a port the
/// system chooses, which it prints; it runs until its stdin closes. Does nothing in
/// a normal test run (it is ignored, and without the variable it returns at once).
#[test]
#[ignore = "the server process of hostile_peers_leave_memory_bounded, which starts it"]
fn server_process() {
    if std::env::var_os(SERVER_ENV).is_none() {
        return;
    }
    actix_rt::System::new().block_on(async {
        let endpoint = Endpoint::builder().route("echo", echo).start();
        let serving = endpoint.serve_tcp("127.0.0.1:0").await.unwrap();
        println!("LISTENING {}", serving.local_addr().tcp().unwrap());
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
        drop(serving);
        endpoint.stop().await;
    });
}

/// Starts the server process, its temporary files (spooled bodies) in `tmp`, and
/// returns it with its address. The server is killed at the end, so it never
/// deletes its spool files itself: the caller removes `tmp`.
fn start_server(tmp: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "server_process", "--ignored", "--nocapture"])
        .env(SERVER_ENV, "1")
        .env("TMPDIR", tmp)
        .env("RUST_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = stdout.next() {
        if let Some(addr) = line.unwrap().strip_prefix("LISTENING ") {
            // Keep reading what the server's test harness prints, so it never
            // writes to a closed pipe.
            std::thread::spawn(move || stdout.for_each(drop));
            return (child, addr.parse().unwrap());
        }
    }
    let status = child.wait();
    panic!("the server process ended without listening ({status:?})");
}

/// The process's peak and current resident memory, in bytes.
fn resident(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A client speaking the stream framing by hand, from its own loopback address
/// (127.0.0.`host`), so the per-address handshake limit counts each attacker apart.
struct Attacker {
    socket: TcpStream,
    out: BytesMut,
}

impl Attacker {
    /// Connects and completes the handshake (our nonce is below the server's, so
    /// we open even stream ids).
    async fn handshake(addr: SocketAddr, host: u8) -> Attacker {
        let socket = connect_from(addr, host).await;
        let mut attacker = Attacker {
            socket,
            out: BytesMut::new(),
        };
        let hello = attacker.read_hello().await;
        attacker.push(Frame::Hello(Hello::new(hello.nonce / 2)));
        attacker.flush().await;
        attacker
    }

    async fn read_hello(&mut self) -> Hello {
        let mut decoder = Length::new(1 << 24);
        let mut rx = BytesMut::new();
        loop {
            if let Some(raw) = decoder.decode(&mut rx).unwrap() {
                match Envelope::decode(raw).unwrap().frame {
                    Frame::Hello(hello) => return hello,
                    other => panic!("expected the server's HELLO, got {other:?}"),
                }
            }
            let n = common::within("the server's HELLO", self.socket.read_buf(&mut rx))
                .await
                .unwrap();
            assert!(n > 0, "the server closed before its HELLO");
        }
    }

    /// Appends one frame to the write buffer.
    fn push(&mut self, frame: Frame) {
        let envelope = Envelope::from(frame);
        let mut head = Vec::new();
        envelope.encode_head(&mut head);
        Length::new(1 << 24).encode(&head, envelope.frame.payload(), &mut self.out);
    }

    /// Writes the buffer; false once the server stopped taking bytes or closed.
    async fn flush(&mut self) -> bool {
        let out = self.out.split();
        self.socket.write_all(&out).await.is_ok()
    }

    /// Flushes once the buffer holds a batch worth writing.
    async fn flush_batch(&mut self) -> bool {
        self.out.len() < 256 * 1024 || self.flush().await
    }
}

async fn connect_from(addr: SocketAddr, host: u8) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)),
            0,
        ))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

fn open(stream: u64, route: &str, total_len: u64, payload: Bytes, fin: bool) -> Frame {
    let mut open = Open::new(StreamId(stream), MessageKind::Request, route);
    open.total_len = Some(total_len);
    open.payload = payload;
    open.fin = fin;
    Frame::Open(open)
}

/// Opens 4 streams declaring 4 MiB each and sends 1 MiB of each, then waits.
async fn half_bodies(mut a: Attacker) {
    let chunk = Bytes::from(vec![0xA5; 64 * 1024]);
    for s in 0..4u64 {
        let stream = 2 * s + 2;
        a.push(open(stream, "echo", 4 << 20, chunk.clone(), false));
        for _ in 1..16 {
            a.push(Frame::Data(Data {
                stream: StreamId(stream),
                payload: chunk.clone(),
                fin: false,
            }));
            if !a.flush_batch().await {
                return;
            }
        }
    }
    a.flush().await;
    std::future::pending::<()>().await;
}

/// Echo requests of 32 KiB, back to back, never reading an answer.
async fn unread_answers(mut a: Attacker) {
    let body = Bytes::from(vec![0x5A; 32 * 1024]);
    for s in 0.. {
        a.push(open(
            2 * s + 2,
            "echo",
            body.len() as u64,
            body.clone(),
            true,
        ));
        if !a.flush_batch().await {
            return;
        }
    }
}

/// PINGs, as fast as the server reads them, never reading a PONG.
async fn ping_flood(mut a: Attacker) {
    for opaque in 0.. {
        a.push(Frame::Ping(Ping { opaque }));
        if !a.flush_batch().await {
            return;
        }
    }
}

/// A thousand streams, each declaring 64 KiB and sending 16 bytes of it.
async fn many_streams(mut a: Attacker) {
    for s in 0..1000u64 {
        a.push(open(
            2 * s + 2,
            "echo",
            64 * 1024,
            Bytes::from(vec![1; 16]),
            false,
        ));
    }
    a.flush().await;
    std::future::pending::<()>().await;
}

/// How many attackers of a kind run: `default`, or the number in the environment
/// variable `kind` (to run one kind alone while looking for what costs memory,
/// e.g. `HALF=0 PING=0 MANY=0 SILENT=0` leaves the unread answers).
fn n(kind: &str, default: usize) -> usize {
    std::env::var(kind)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts the attackers on a thread and runtime of their own (so the good client,
/// on the test's runtime, is not queued behind their tasks); they connect one at
/// a time, then attack all at once until `stop` is dropped.
fn start_attacks(addr: SocketAddr) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (ready, connected) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut host = 2u8;
            let mut next_host = || {
                host = if host >= 250 { 2 } else { host + 1 };
                host
            };
            let mut attackers = Vec::new();
            for (kind, default) in [("HALF", 48), ("UNREAD", 16), ("PING", 8), ("MANY", 16)] {
                for _ in 0..n(kind, default) {
                    attackers.push((kind, Attacker::handshake(addr, next_host()).await));
                }
            }
            let mut silent = Vec::new();
            for _ in 0..n("SILENT", 64) {
                silent.push(connect_from(addr, next_host()).await);
            }
            let mut attacks = tokio::task::JoinSet::new();
            for (kind, a) in attackers {
                match kind {
                    "HALF" => attacks.spawn(half_bodies(a)),
                    "UNREAD" => attacks.spawn(unread_answers(a)),
                    "PING" => attacks.spawn(ping_flood(a)),
                    _ => attacks.spawn(many_streams(a)),
                };
            }
            let _ = ready.send(());
            // Attack until the test drops `stop`.
            let _ = tokio::task::spawn_blocking(move || stopped.recv()).await;
            attacks.abort_all();
        });
    });
    connected.recv().expect("the attackers connected");
    (stop, thread)
}

#[actix_rt::test]
async fn hostile_peers_leave_memory_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, addr) = start_server(tmp.path());
    let (baseline, _) = resident(server.id());

    let (stop, attackers) = start_attacks(addr);

    let mut peak_seen = 0;
    let deadline = tokio::time::Instant::now() + ATTACK_TIME;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak_seen = peak_seen.max(resident(server.id()).1);
    }

    // A good client is still served.
    let served = std::time::Instant::now();
    let client = Endpoint::builder().start();
    let link = common::within("the good client's link", client.connect_tcp(addr))
        .await
        .unwrap();
    let answer = common::within("the good client's call", link.call("echo", "still here"))
        .await
        .unwrap();
    assert_eq!(&answer.body.as_bytes().unwrap()[..], b"still here");
    let served = served.elapsed();

    let (peak, now) = resident(server.id());
    drop(stop);
    attackers.join().unwrap();
    drop(server.stdin.take());
    let _ = server.kill();
    let _ = server.wait();
    eprintln!(
        "server resident memory: {} MiB at start, {} MiB at the end, peak {} MiB; \
         the good client was served in {served:?}",
        baseline >> 20,
        now >> 20,
        peak.max(peak_seen) >> 20
    );
    assert!(
        peak <= MAX_RESIDENT,
        "the server's peak resident memory was {} MiB, over {} MiB",
        peak >> 20,
        MAX_RESIDENT >> 20
    );
}
