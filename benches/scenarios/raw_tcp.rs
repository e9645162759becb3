//! The raw TCP baselines: the same bytes over a plain loopback socket, one thread
//! per side (each a current-thread tokio runtime, as the yamux baseline and
//! netcore's endpoints have), `write_all` of the whole buffer and `read_exact`
//! into a buffer whose pages are already mapped. This is the ceiling a framed
//! protocol can approach. Tried and found no faster on this machine: blocking
//! std sockets (3.5–3.7 GB/s against 4.0–4.7 with tokio), and writing or reading
//! in 64 KiB–1 MiB pieces instead of one call. Socket buffers are left to Linux's
//! autotuning (fixed `SO_SNDBUF`/`SO_RCVBUF` would switch it off); `TCP_NODELAY`
//! is set as on netcore's sockets (it does not matter for writes this large).
//!
//! [`rpc`] is the floor of any RPC framework: length-prefixed requests pipelined
//! on one socket and a server loop that echoes each as it parses it.

use std::net::TcpListener;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Sends `data` over a fresh loopback connection into `recv` (same length);
/// returns the time from the first write to the last byte read. Connecting is
/// not timed. Callable from inside another runtime (both sides get threads).
pub fn transfer(data: &[u8], recv: &mut [u8]) -> std::io::Result<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (listener, addr) = loopback_listener()?;
    let start = Barrier::new(2);
    std::thread::scope(|scope| {
        let start = &start;
        let reading =
            named("raw-tcp-reader").spawn_scoped(scope, move || -> std::io::Result<Instant> {
                runtime()?.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let (mut reader, _) = listener.accept().await?;
                    reader.set_nodelay(true)?;
                    start.wait();
                    reader.read_exact(recv).await?;
                    Ok(Instant::now())
                })
            })?;
        let began = named("raw-tcp-writer")
            .spawn_scoped(scope, move || {
                runtime()?.block_on(async move {
                    let mut writer = tokio::net::TcpStream::connect(addr).await?;
                    writer.set_nodelay(true)?;
                    start.wait();
                    let began = Instant::now();
                    writer.write_all(data).await?;
                    Ok::<_, std::io::Error>(began)
                })
            })?
            .join()
            .map_err(|_| std::io::Error::other("writer thread panicked"))?;
        let finished = reading
            .join()
            .map_err(|_| std::io::Error::other("reader thread panicked"))??;
        Ok(finished.duration_since(began?))
    })
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

/// One round of the raw TCP RPC floor: `count` requests made by `make` from
/// sequence numbers `first..`, `in_flight` outstanding at once on one loopback
/// socket, each sent as a 4-byte little-endian length and the request. The
/// server is the plain echo loop: read a request (through a 64 KiB buffer),
/// write its answer (prefix and bytes in one write), next. The client reads
/// what arrived, checks each answer, and sends the requests that take the
/// answered ones' places in one write. One unmeasured request warms the connection up
/// first, as every system gets. Returns the time of the `count` round trips,
/// each one's latency, and how many answers differed from their request.
pub fn rpc<const N: usize>(
    make: fn(u64) -> [u8; N],
    first: u64,
    count: u64,
    in_flight: usize,
) -> std::io::Result<(Duration, Vec<Duration>, u64)> {
    use std::collections::VecDeque;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (listener, addr) = loopback_listener()?;
    let frame_len = 4 + N;
    let push_frame = move |out: &mut Vec<u8>, request: &[u8]| {
        out.extend_from_slice(&(request.len() as u32).to_le_bytes());
        out.extend_from_slice(request);
    };
    std::thread::scope(|scope| {
        let server = named("raw-rpc-server").spawn_scoped(scope, move || {
            runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let (socket, _) = listener.accept().await?;
                socket.set_nodelay(true)?;
                let (reader, mut writer) = socket.into_split();
                let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
                let mut answer = Vec::with_capacity(frame_len);
                loop {
                    let mut head = [0u8; 4];
                    if reader.read_exact(&mut head).await.is_err() {
                        return Ok::<_, std::io::Error>(());
                    }
                    let len = u32::from_le_bytes(head) as usize;
                    answer.clear();
                    answer.extend_from_slice(&head);
                    answer.resize(4 + len, 0);
                    reader.read_exact(&mut answer[4..]).await?;
                    writer.write_all(&answer).await?;
                }
            })
        })?;
        let client = named("raw-rpc-client")
            .spawn_scoped(scope, move || {
                runtime()?.block_on(async move {
                    let mut socket = tokio::net::TcpStream::connect(addr).await?;
                    socket.set_nodelay(true)?;
                    let mut out = Vec::with_capacity(in_flight * frame_len);
                    let mut input = Vec::with_capacity(64 * 1024);
                    let mut buf = vec![0u8; 64 * 1024];
                    push_frame(&mut out, &make(u64::MAX));
                    socket.write_all(&out).await?;
                    out.clear();
                    while input.len() < frame_len {
                        let n = socket.read(&mut buf).await?;
                        if n == 0 {
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        input.extend_from_slice(&buf[..n]);
                    }
                    input.clear();
                    let end = first + count;
                    let mut next = first;
                    let mut pending: VecDeque<(u64, Instant)> = VecDeque::new();
                    let mut latencies = Vec::with_capacity(count as usize);
                    let mut wrong = 0u64;
                    let began = Instant::now();
                    loop {
                        let now = Instant::now();
                        while next < end && pending.len() < in_flight {
                            push_frame(&mut out, &make(next));
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
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        input.extend_from_slice(&buf[..n]);
                        let arrived = Instant::now();
                        let mut at = 0;
                        while let Some(answer) = input.get(at + 4..at + frame_len) {
                            let (n, sent) = pending.pop_front().ok_or_else(|| {
                                std::io::Error::other("an answer nobody asked for")
                            })?;
                            latencies.push(arrived - sent);
                            if answer != make(n) {
                                wrong += 1;
                            }
                            at += frame_len;
                        }
                        input.drain(..at);
                    }
                    let elapsed = began.elapsed();
                    // Closing the socket ends the server's loop.
                    drop(socket);
                    Ok::<_, std::io::Error>((elapsed, latencies, wrong))
                })
            })?
            .join()
            .map_err(|_| std::io::Error::other("client thread panicked"))?;
        server
            .join()
            .map_err(|_| std::io::Error::other("server thread panicked"))??;
        client
    })
}
