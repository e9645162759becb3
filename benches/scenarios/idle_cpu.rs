//! `idle_cpu`: two endpoints connected over TCP loopback and left idle; the CPU
//! time (user + system, the whole process) spent over the idle window, from
//! /proc/self/stat in clock ticks, and from the threads' schedstat in
//! nanoseconds. An echo call before and after checks that the link stayed up.
//!
//! The window is longer than the links' keepalive interval (`LinkOptions::stream`:
//! a PING after 10 s of silence), so what an idle link costs includes its
//! keepalives: 2.5 intervals (1.2 with `--quick`). The bytes the client wrote
//! during the window are counted (a pass-through [`Faulty`] wrapper around its
//! socket) to show that keepalives did cross it.

use crate::peers::{Error, Peers};
use crate::process::{clock_ticks_per_sec, cpu_time, cpu_time_schedstat};
use crate::report::Report;
use netcore::actors::transport::{FaultConfig, Faulty};
use netcore::{Endpoint, LinkOptions, Reply, Request};
use std::time::Duration;

/// Runs the scenario.
pub fn run(quick: bool) -> Result<Report, Error> {
    let options = LinkOptions::stream();
    let keepalive = options
        .config
        .keepalive
        .map(|k| k.interval)
        .ok_or("LinkOptions::stream() has no keepalive")?;
    let window = keepalive.mul_f64(if quick { 1.2 } else { 2.5 });
    let ticks = clock_ticks_per_sec();
    let mut report = Report::new("idle_cpu");
    let (cpu, fine, idle_bytes) = actix_rt::System::new().block_on(async {
        let server = Endpoint::builder().route("echo", |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
        });
        let mut counter = None;
        let peers = Peers::tcp_wrapped(server, options, |socket| {
            // No faults; every read a frame of its own (no delimiter to wait for).
            let counted = Faulty::new(socket, FaultConfig::new(0).with_frame_delimiter(None));
            counter = Some(counted.handle());
            counted
        })
        .await?;
        let counter = counter.ok_or("no client socket")?;
        check_echo(&peers, &mut report, "before").await?;
        // Let the set-up settle (handshake credit, first timers).
        tokio::time::sleep(Duration::from_millis(300)).await;
        let written_before = counter.sent().bytes_written;
        let (before, fine_before) = (cpu_time(ticks), cpu_time_schedstat());
        tokio::time::sleep(window).await;
        let (after, fine_after) = (cpu_time(ticks), cpu_time_schedstat());
        let idle_bytes = counter.sent().bytes_written - written_before;
        check_echo(&peers, &mut report, "after").await?;
        let cpu = after
            .zip(before)
            .map(|(a, b)| a.saturating_sub(b))
            .ok_or("cannot read /proc/self/stat")?;
        let fine = fine_after
            .zip(fine_before)
            .map(|(a, b)| a.saturating_sub(b));
        Ok::<_, Error>((cpu, fine, idle_bytes))
    })?;
    let seconds = cpu.as_secs_f64();
    let per_5s = seconds * 5.0 / window.as_secs_f64();
    let fine = fine.map_or(f64::NAN, |d| d.as_secs_f64());
    if idle_bytes == 0 {
        report.fail("no keepalive crossed the link during the idle window");
    }
    report.field("window_seconds", window.as_secs_f64());
    report.field("keepalive_interval_seconds", keepalive.as_secs_f64());
    report.field("client_bytes_written_idle", idle_bytes);
    report.field("cpu_seconds", seconds);
    report.field("cpu_seconds_per_5s", per_5s);
    report.field("cpu_seconds_schedstat", fine);
    report.field("clock_ticks_per_sec", ticks);
    report.row = format!(
        "idle {:.0} s (keepalive every {} s; the client wrote {idle_bytes} B): {seconds:.3} s CPU ({fine:.4} s by schedstat), {per_5s:.3} s per 5 s",
        window.as_secs_f64(),
        keepalive.as_secs(),
    );
    report.goal(
        "cpu_seconds ≤ 0.05 per 5 s",
        per_5s <= 0.05,
        format!("{per_5s:.3} s per 5 s"),
    );
    Ok(report)
}

async fn check_echo(peers: &Peers, report: &mut Report, when: &str) -> Result<(), Error> {
    let answer = peers.link.call("echo", "still there?").await?;
    if answer.body.as_bytes().map(|b| &b[..]) != Some(&b"still there?"[..]) {
        report.fail(format!("echo {when} the idle window: wrong answer"));
    }
    Ok(())
}
