//! 256 MiB over TCP loopback, streamed from a file with `Link::send_file` and
//! received with spooling to disk: byte-identical (CRC-32C computed streaming on
//! both sides), the spool file removed once the handler is done, and the
//! process's memory (both endpoints live in it) bounded. Its own test binary with
//! a single test that builds its own actix System, so the resident set measured
//! is this transfer's.
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::accept_tcp;
use netcore::{Body, Endpoint, LinkOptions, Reply, Request};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const LEN: u64 = 256 << 20;
/// Resident-set growth allowed over the baseline, in MiB, from the memory bounds
/// ARCHITECTURE.md documents ("Memory bounds whatever the peer does"). The
/// receiver holds at most one stream window of chunks decoded but not yet on
/// disk (spooled chunks give their credit back only once written; 2 MiB on TCP
/// links, `LinkOptions::stream`), pinning the 256 KiB read buffers they are
/// slices of, plus one partial frame (at most the 128 KiB frame-length limit)
/// and one read; the sender one 256 KiB write batch and its file read a few
/// 64 KiB chunks ahead of the wire. That is under 4 MiB; the rest of the bound is
/// margin for what the design does not count: blocking-pool thread stacks and
/// allocator arenas of a debug build (measured growth 4-9 MiB, also with 4
/// copies running at once on 2 cores). Holding the file or the body in memory
/// anywhere would add 256 MiB, eight times the bound.
const BOUND_MIB: u64 = 32;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Writes `LEN` pseudo-random bytes (the shared seeded generator) to `path` in
/// 1 MiB pieces; returns their CRC-32C.
fn write_random_file(path: &Path) -> u32 {
    let mut file = std::fs::File::create(path).unwrap();
    let mut rng = netcore::proto::rng::SplitMix64::new(0x9e37_79b9_7f4a_7c15);
    let mut crc = 0;
    let mut piece = vec![0u8; 1 << 20];
    for _ in 0..LEN / piece.len() as u64 {
        rng.fill(&mut piece);
        crc = crc32c::crc32c_append(crc, &piece);
        file.write_all(&piece).unwrap();
    }
    crc
}

/// (length, CRC-32C) of a file, read in 1 MiB pieces.
fn crc_of_file(path: &Path) -> (u64, u32) {
    let mut file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let (mut len, mut crc) = (0u64, 0u32);
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            return (len, crc);
        }
        len += n as u64;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
    }
}

/// What the receiving handler saw: spooled?, length, CRC-32C.
type Received = (bool, u64, u32);

#[test]
fn a_256_mib_transfer_spools_to_disk_with_bounded_memory() {
    let source = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let path = source.path().join("source.bin");
    let sent_crc = write_random_file(&path);

    let baseline = status_kib("VmRSS:");
    let peak = Arc::new(AtomicU64::new(baseline));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(status_kib("VmRSS:"), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let started = Instant::now();
    let (progress, received) = actix_rt::System::new().block_on({
        let (path, spool_dir) = (path.clone(), spool.path().to_path_buf());
        async move {
            let (tx, mut rx) = mpsc::unbounded_channel::<Received>();
            let server = Endpoint::builder()
                .route("upload", move |req: Request| {
                    let tx = tx.clone();
                    async move {
                        let Body::File(file) = &req.body else {
                            tx.send((false, req.body.len(), 0)).unwrap();
                            return Ok(Reply::empty());
                        };
                        let p = file.path().to_path_buf();
                        let (len, crc) = tokio::task::spawn_blocking(move || crc_of_file(&p))
                            .await
                            .unwrap();
                        tx.send((true, len, crc)).unwrap();
                        Ok(Reply::empty())
                    }
                })
                .start();
            let client = Endpoint::builder().start();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut options = LinkOptions::stream();
            options.spool.dir = spool_dir;
            let accept = async {
                let (stream, _) = accept_tcp(&listener).await.unwrap();
                server.attach(stream, options).await.unwrap()
            };
            let (_server_link, link) = tokio::join!(accept, client.connect_tcp(addr));
            let link = link.unwrap();
            let mut transfer = link.send_file("upload", path).await.unwrap();
            let progress = tokio::time::timeout(Duration::from_secs(300), transfer.finished())
                .await
                .expect("the transfer finishes");
            let received = tokio::time::timeout(Duration::from_secs(300), rx.recv())
                .await
                .expect("the upload arrives")
                .unwrap();
            (progress, received)
        }
    });
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();

    assert_eq!(
        progress,
        netcore::Progress {
            sent: LEN,
            total: Some(LEN)
        }
    );
    let (spooled, len, crc) = received;
    assert!(
        spooled,
        "a 256 MiB body is spooled to disk, not held in memory"
    );
    assert_eq!(len, LEN);
    assert_eq!(crc, sent_crc, "byte-identical (CRC-32C of the whole body)");
    // The spool file went away with the request once the handler was done.
    let left: Vec<_> = std::fs::read_dir(spool.path()).unwrap().collect();
    assert!(left.is_empty(), "spool files left behind: {left:?}");

    let growth_mib = (peak.load(Ordering::SeqCst) - baseline) / 1024;
    eprintln!(
        "256 MiB in {:.2} s ({:.0} MB/s); resident set {} MiB before, grew by {growth_mib} MiB \
         at most (bound {BOUND_MIB}); VmHWM {} MiB",
        elapsed.as_secs_f64(),
        LEN as f64 / elapsed.as_secs_f64() / 1e6,
        baseline / 1024,
        status_kib("VmHWM:") / 1024,
    );
    assert!(
        growth_mib <= BOUND_MIB,
        "memory grew by {growth_mib} MiB (bound {BOUND_MIB})"
    );
}
