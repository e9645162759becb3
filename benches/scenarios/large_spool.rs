//! `large_spool`: one very large message over TCP loopback, streamed from a file
//! by the sender (`Link::send_file`) and spooled to disk by the receiver
//! (`Body::File`), in a child process of its own (this binary re-run with
//! [`CHILD_FLAG`]) so that its peak resident memory (`VmHWM`, both endpoints) is
//! the transfer's alone.
//!
//! The child writes the source file first (not timed), times from `send_file` to
//! the handler getting the complete spooled body, then checks the spooled file's
//! CRC-32C and length against the source's, and prints one line for the parent.

use crate::data::{file_crc, Rng};
use crate::peers::{Error, Peers};
use crate::process::peak_rss_mib;
use crate::report::Report;
use crate::stats::mbps;
use netcore::{Body, Endpoint, LinkOptions, Reply, Request};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;
use tokio::sync::mpsc;

/// The hidden flag that makes the binary run the child's part.
pub const CHILD_FLAG: &str = "--child-large-spool";
const RESULT_PREFIX: &str = "large_spool_result";

/// Runs the scenario: starts the child and reports what it measured.
pub fn run(quick: bool) -> Result<Report, Error> {
    let mut child = Command::new(std::env::current_exe()?);
    child.arg(CHILD_FLAG);
    if quick {
        child.arg("--quick");
    }
    let output = child.stderr(Stdio::inherit()).output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_PREFIX))
        .ok_or_else(|| format!("the child printed no result ({})", output.status))?;
    let value = |key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let (bytes, rate, rss) = (value("bytes"), value("netcore_mbps"), value("peak_rss_mib"));
    let mut report = Report::new("large_spool");
    for failure in stdout.lines().filter_map(|l| l.strip_prefix("failure: ")) {
        report.fail(failure.to_string());
    }
    if !output.status.success() && report.failures.is_empty() {
        report.fail(format!("child exited with {}", output.status));
    }
    report.field("bytes", bytes);
    report.field("netcore_mbps", rate);
    report.field("peak_rss_mib", rss);
    report.row = format!(
        "{:.0} MiB file to spooled file: netcore {rate:.0} MB/s, peak RSS {rss:.1} MiB (child process, both endpoints)",
        bytes / 1048576.0
    );
    report.goal("peak_rss_mib ≤ 96", rss <= 96.0, format!("{rss:.1} MiB"));
    Ok(report)
}

/// The child's part; returns whether everything was verified.
pub fn child(quick: bool) -> bool {
    let len: u64 = if quick { 256 << 20 } else { 1 << 30 };
    let mut failures = Vec::new();
    let rate = match transfer(len, &mut failures) {
        Ok(rate) => rate,
        Err(error) => {
            failures.push(format!("did not complete: {error}"));
            f64::NAN
        }
    };
    let rss = peak_rss_mib().unwrap_or(f64::NAN);
    let mut out = std::io::stdout().lock();
    for failure in &failures {
        let _ = writeln!(out, "failure: {failure}");
    }
    let _ = writeln!(
        out,
        "{RESULT_PREFIX} bytes={len} netcore_mbps={rate} peak_rss_mib={rss}"
    );
    failures.is_empty()
}

/// Writes the source file, sends it, checks the spooled copy; returns MB/s.
fn transfer(len: u64, failures: &mut Vec<String>) -> Result<f64, Error> {
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("source.bin");
    let want_crc = write_source(&source, len)?;
    actix_rt::System::new().block_on(async {
        let (tx, mut arrivals) = mpsc::unbounded_channel::<(Instant, Body)>();
        let server = Endpoint::builder().route("spool", move |req: Request| {
            let _ = tx.send((Instant::now(), req.body));
            async { Ok(Reply::empty()) }
        });
        let peers = Peers::tcp(server, LinkOptions::stream()).await?;
        let began = Instant::now();
        let _transfer = peers.link.send_file("spool", &source).await?;
        let (at, body) = arrivals.recv().await.ok_or("server endpoint gone")?;
        let rate = mbps(len, at - began);
        match &body {
            Body::File(file) => match file_crc(file.path()) {
                Ok((crc, got)) if got == len && crc == want_crc => {}
                Ok((_, got)) if got != len => {
                    failures.push(format!("{got} bytes spooled, {len} sent"))
                }
                Ok(_) => failures.push("spooled body corrupted (CRC-32C differs)".into()),
                Err(e) => failures.push(format!("reading the spooled body: {e}")),
            },
            Body::Bytes(_) | Body::Stream(_) => {
                failures.push("expected a spooled body, got one in memory or streamed".into())
            }
        }
        Ok(rate)
    })
}

/// Writes `len` random bytes to `path` in 1 MiB blocks; returns their CRC-32C.
fn write_source(path: &std::path::Path, len: u64) -> std::io::Result<u32> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut rng = Rng::new(0x5b001);
    let mut block = vec![0u8; 1 << 20];
    let (mut written, mut crc) = (0u64, 0u32);
    while written < len {
        let n = (len - written).min(block.len() as u64) as usize;
        rng.fill(&mut block[..n]);
        crc = crc32c::crc32c_append(crc, &block[..n]);
        file.write_all(&block[..n])?;
        written += n as u64;
    }
    file.flush()?;
    Ok(crc)
}
