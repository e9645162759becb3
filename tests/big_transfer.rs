//! 256 MiB over TCP loopback, received with spooling to disk: byte-identical, and
//! the process's memory (both endpoints live in it) stays bounded. Its own test
//! binary with a single test, so the resident set measured is this transfer's.
#![allow(clippy::unwrap_used)]

use netcore::{Body, Endpoint, Reply, Request};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LEN: usize = 256 << 20;
/// Resident-set growth allowed over the baseline: the design bound is 4 MiB stream
/// window in flight to the spool + one 256 KiB write batch + 64 KiB reads + a few
/// file-read chunks; allocator slack and the test's own buffers on top.
const BOUND_MIB: u64 = 48;

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Writes `LEN` pseudo-random bytes to `path` in 1 MiB pieces; returns their CRC-32C.
fn write_random_file(path: &std::path::Path) -> u32 {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut crc = 0;
    let mut piece = vec![0u8; 1 << 20];
    for _ in 0..LEN / piece.len() {
        for word in piece.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        crc = crc32c::crc32c_append(crc, &piece);
        file.write_all(&piece).unwrap();
    }
    file.flush().unwrap();
    crc
}

fn crc_of_file(path: &std::path::Path) -> (u64, u32) {
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

#[test]
fn a_256_mib_transfer_spools_to_disk_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("source.bin");
    let sent_crc = write_random_file(&path);

    let baseline = resident_kib();
    let peak = Arc::new(AtomicU64::new(baseline));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                peak.fetch_max(resident_kib(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    let received: Arc<Mutex<Option<(bool, u64, u32)>>> = Arc::default();
    let started = Instant::now();
    actix_rt::System::new().block_on({
        let received = received.clone();
        let path = path.clone();
        async move {
            let server = Endpoint::builder()
                .route("upload", move |req: Request| {
                    let received = received.clone();
                    async move {
                        let spooled = matches!(req.body, Body::File(_));
                        let Body::File(file) = &req.body else {
                            *received.lock().unwrap() = Some((false, req.body.len(), 0));
                            return Ok(Reply::empty());
                        };
                        let p = file.path().to_path_buf();
                        let (len, crc) = tokio::task::spawn_blocking(move || crc_of_file(&p))
                            .await
                            .unwrap();
                        *received.lock().unwrap() = Some((spooled, len, crc));
                        Ok(Reply::empty())
                    }
                })
                .start();
            let client = Endpoint::builder().start();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (_s, link) = tokio::join!(server.accept_tcp(&listener), client.connect_tcp(addr));
            let link = link.unwrap();
            let answer = link
                .request("upload", netcore::Payload::File(path))
                .timeout(Duration::from_secs(600))
                .await;
            answer.unwrap();
        }
    });
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();

    let (spooled, len, crc) = received.lock().unwrap().take().expect("the upload arrived");
    assert!(
        spooled,
        "a 256 MiB body is spooled to disk, not held in memory"
    );
    assert_eq!(len, LEN as u64);
    assert_eq!(crc, sent_crc, "byte-identical (CRC-32C of the whole body)");
    let growth_mib = (peak.load(Ordering::SeqCst) - baseline) / 1024;
    eprintln!(
        "256 MiB in {:.1} s ({:.0} MB/s); resident set grew by {growth_mib} MiB (bound {BOUND_MIB})",
        elapsed.as_secs_f64(),
        LEN as f64 / elapsed.as_secs_f64() / 1e6
    );
    assert!(growth_mib <= BOUND_MIB, "memory grew by {growth_mib} MiB");
}
