//! The raw TCP baseline: the same bytes over a plain loopback socket, one blocking
//! thread per side, `write_all` of the whole buffer and `read_exact` into a
//! buffer whose pages are already mapped. Socket buffers are left to Linux's
//! autotuning (larger fixed `SO_SNDBUF`/`SO_RCVBUF` only switch autotuning off),
//! and `TCP_NODELAY` is set as on netcore's sockets (it does not matter for bulk
//! writes this large). Writing and reading in 64 KiB–1 MiB pieces instead of one
//! call was no faster here (within this machine's noise). This is the ceiling a
//! framed protocol can approach.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Sends `data` over a fresh loopback connection into `recv` (same length);
/// returns the time from the first write to the last byte read. Connecting is
/// not timed.
pub fn transfer(data: &[u8], recv: &mut [u8]) -> std::io::Result<Duration> {
    assert_eq!(data.len(), recv.len());
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut writer = TcpStream::connect(addr)?;
    let (mut reader, _) = listener.accept()?;
    writer.set_nodelay(true)?;
    reader.set_nodelay(true)?;
    let start = Barrier::new(2);
    std::thread::scope(|scope| {
        let start = &start;
        let reading = scope.spawn(move || -> std::io::Result<Instant> {
            start.wait();
            reader.read_exact(recv)?;
            Ok(Instant::now())
        });
        start.wait();
        let began = Instant::now();
        let written = writer.write_all(data);
        let finished = reading
            .join()
            .map_err(|_| std::io::Error::other("reader thread panicked"))??;
        written?;
        Ok(finished.duration_since(began))
    })
}
