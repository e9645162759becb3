//! The raw TCP baselines: the same bytes over a plain loopback socket, one thread
//! per side (each a current-thread tokio runtime, as the yamux baseline and
//! netcore's endpoints have; see [`threads`](crate::threads)), the connection
//! opened once per scenario and kept across its rounds as netcore's link is.
//!
//! [`Bulk`]: `write_all` of the whole buffer and `read_exact` into a buffer whose
//! pages are already mapped. This is the ceiling a framed protocol can approach.
//! Tried and found no faster on this machine: blocking std sockets (3.5–3.7 GB/s
//! against 4.0–4.7 with tokio), and writing or reading in 64 KiB–1 MiB pieces
//! instead of one call. Socket buffers are left to Linux's autotuning (fixed
//! `SO_SNDBUF`/`SO_RCVBUF` would switch it off); `TCP_NODELAY` is set as on
//! netcore's sockets (it does not matter for writes this large).
//!
//! [`Rpc`] is the floor of any RPC framework: length-prefixed requests pipelined
//! on one socket and a server loop that echoes each as it parses it.

use crate::peers::Error;
use crate::threads::{wait, Side};
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::TcpListener;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// A socket owned by one side's thread.
type Socket = Rc<Mutex<TcpStream>>;

/// Accepts one connection on `listener` (set up as [`loopback_listener`] does).
async fn accept(listener: TcpListener) -> Result<TcpStream, Error> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let (socket, _) = listener.accept().await?;
    socket.set_nodelay(true)?;
    Ok(socket)
}

/// Connects to `addr` with `TCP_NODELAY`.
async fn connect(addr: std::net::SocketAddr) -> Result<TcpStream, Error> {
    let socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    Ok(socket)
}

/// One loopback connection carrying bulk transfers, a writer and a reader thread.
pub struct Bulk {
    writer: Side<Socket>,
    reader: Side<Socket>,
}

impl Bulk {
    /// Connects the writer to the reader.
    pub fn open() -> Result<Bulk, Error> {
        let (listener, addr) = loopback_listener()?;
        let reader = Side::spawn("raw-tcp-reader", move || async move {
            Ok(Rc::new(Mutex::new(accept(listener).await?)))
        })?;
        let writer = Side::spawn("raw-tcp-writer", move || async move {
            Ok(Rc::new(Mutex::new(connect(addr).await?)))
        })?;
        Ok(Bulk { writer, reader })
    }

    /// Sends `data` into `buf` (same length); returns the time from the first
    /// write to the last byte read, and the buffer.
    pub fn transfer(&self, data: Bytes, mut buf: Vec<u8>) -> Result<(Duration, Vec<u8>), Error> {
        let read = self.reader.start(move |socket| async move {
            socket.lock().await.read_exact(&mut buf).await?;
            Ok((Instant::now(), buf))
        });
        let began = self.writer.start(move |socket| async move {
            let began = Instant::now();
            socket.lock().await.write_all(&data).await?;
            Ok(began)
        });
        let began = wait(began)?;
        let (finished, buf) = wait(read)?;
        Ok((finished.duration_since(began), buf))
    }
}

/// One loopback connection for the RPC floor: a client thread, and a server
/// thread running the plain echo loop: read a request (a 4-byte little-endian
/// length and its bytes, through a 64 KiB buffer), write its answer (prefix and
/// bytes in one write), next.
pub struct Rpc {
    client: Side<Socket>,
    _server: Side<()>,
}

impl Rpc {
    /// Connects a client to a new echo server.
    pub fn open() -> Result<Rpc, Error> {
        let (listener, addr) = loopback_listener()?;
        let server = Side::spawn("raw-rpc-server", move || async move {
            let socket = accept(listener).await?;
            tokio::spawn(echo_loop(socket));
            Ok(())
        })?;
        let client = Side::spawn("raw-rpc-client", move || async move {
            Ok(Rc::new(Mutex::new(connect(addr).await?)))
        })?;
        Ok(Rpc {
            client,
            _server: server,
        })
    }

    /// `count` requests made by `make` from sequence numbers `first..`,
    /// `in_flight` outstanding at once. The client reads what arrived, checks each
    /// answer, and sends the requests that take the answered ones' places in one
    /// write. Returns the time of the round trips, each one's latency, and how
    /// many answers differed from their request.
    pub fn round<const N: usize>(
        &self,
        make: fn(u64) -> [u8; N],
        first: u64,
        count: u64,
        in_flight: usize,
    ) -> Result<(Duration, Vec<Duration>, u64), Error> {
        wait(self.client.start(move |socket| async move {
            let mut socket = socket.lock().await;
            let frame_len = 4 + N;
            let mut out = Vec::with_capacity(in_flight * frame_len);
            let mut input = Vec::with_capacity(64 * 1024);
            let mut buf = vec![0u8; 64 * 1024];
            let end = first + count;
            let mut next = first;
            let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
            let mut latencies = Vec::with_capacity(count as usize);
            let mut wrong = 0u64;
            let began = Instant::now();
            loop {
                let now = Instant::now();
                while next < end && pending.len() < in_flight {
                    out.extend_from_slice(&(N as u32).to_le_bytes());
                    out.extend_from_slice(&make(next));
                    pending.push_back((next, now));
                    next += 1;
                }
                if !out.is_empty() {
                    socket.write_all(&out).await?;
                    out.clear();
                }
                if pending.is_empty() {
                    break;
                }
                let n = socket.read(&mut buf).await?;
                if n == 0 {
                    return Err("the echo server closed the connection".into());
                }
                input.extend_from_slice(&buf[..n]);
                let arrived = Instant::now();
                let mut at = 0;
                while let Some(answer) = input.get(at + 4..at + frame_len) {
                    let (n, sent) = pending.pop_front().ok_or("an answer nobody asked for")?;
                    latencies.push(arrived - sent);
                    if answer != make(n) {
                        wrong += 1;
                    }
                    at += frame_len;
                }
                input.drain(..at);
            }
            Ok((began.elapsed(), latencies, wrong))
        }))
    }
}

/// The plain echo loop of the RPC floor, until the client closes the connection.
async fn echo_loop(socket: TcpStream) -> std::io::Result<()> {
    let (reader, mut writer) = socket.into_split();
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
    let mut answer = Vec::new();
    loop {
        let mut head = [0u8; 4];
        if reader.read_exact(&mut head).await.is_err() {
            return Ok(());
        }
        let len = u32::from_le_bytes(head) as usize;
        answer.clear();
        answer.extend_from_slice(&head);
        answer.resize(4 + len, 0);
        reader.read_exact(&mut answer[4..]).await?;
        writer.write_all(&answer).await?;
    }
}

/// A non-blocking listener on a free loopback port (for tokio to take over on
/// another thread), and its address.
pub fn loopback_listener() -> std::io::Result<(TcpListener, std::net::SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// The runtime each side of a baseline runs on: a current-thread tokio runtime,
/// as each netcore endpoint has an arbiter.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A thread builder with a name (profiles tell the baselines' threads apart).
pub fn named(name: &str) -> std::thread::Builder {
    std::thread::Builder::new().name(name.to_string())
}
