//! The raw TCP baseline: the same bytes over a plain loopback socket, one thread
//! per side (each a current-thread tokio runtime, as the yamux baseline and
//! netcore's endpoints have), `write_all` of the whole buffer and `read_exact`
//! into a buffer whose pages are already mapped. This is the ceiling a framed
//! protocol can approach. Tried and found no faster on this machine: blocking
//! std sockets (3.5–3.7 GB/s against 4.0–4.7 with tokio), and writing or reading
//! in 64 KiB–1 MiB pieces instead of one call. Socket buffers are left to Linux's
//! autotuning (fixed `SO_SNDBUF`/`SO_RCVBUF` would switch it off); `TCP_NODELAY`
//! is set as on netcore's sockets (it does not matter for writes this large).

use std::net::TcpListener;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Sends `data` over a fresh loopback connection into `recv` (same length);
/// returns the time from the first write to the last byte read. Connecting is
/// not timed. Callable from inside another runtime (both sides get threads).
pub fn transfer(data: &[u8], recv: &mut [u8]) -> std::io::Result<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let start = Barrier::new(2);
    std::thread::scope(|scope| {
        let start = &start;
        let reading =
            named("raw-tcp-reader").spawn_scoped(scope, move || -> std::io::Result<Instant> {
                rt()?.block_on(async move {
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
                rt()?.block_on(async move {
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

/// A thread builder with a name (profiles tell the baselines' threads apart).
pub fn named(name: &str) -> std::thread::Builder {
    std::thread::Builder::new().name(name.to_string())
}
