//! `gateway_scale`: one gateway endpoint and N device endpoints in one process
//! (N = 256, quick 64), each device joined to the gateway by an in-memory byte
//! pipe (`tokio::io::duplex`, unthrottled) attached through the public API, with
//! the serial framing, the reliable mode and the keepalive at their defaults
//! ([`options`]).
//!
//! The gateway runs on an arbiter (thread) of its own, the devices on the
//! scenario's System, as a gateway process and its devices would be apart.
//!
//! - Memory: VmRSS once every endpoint is started, and again once every link is
//!   up; the difference over 2N is what one link end costs (`rss_per_link_kib`).
//! - Steady phase (20 s, quick 5 s): each device sends a 64-byte one-way
//!   telemetry message every 50 ms, the gateway calls each device once a second
//!   (32-byte request, echoed back), each on its own phase so the load is even.
//!   `cpu_cores` is the process's user + system time over the wall time of the
//!   phase.
//! - Saturation phase (5 s, quick 2 s): every device sends 64-byte one-way
//!   messages as fast as its link takes them (`Link::send` waits while the link's
//!   queue of one-way messages is full); `saturation_msgs_per_s` counts what the
//!   gateway's handlers received within the window, all devices together.
//!
//! Every telemetry and saturation message is checked (length and fill) and
//! counted at the gateway; every answer is compared with its request. After each
//! phase the run waits until everything sent arrived: anything lost, damaged or
//! unanswered fails the scenario.

use crate::peers::Error;
use crate::process::{clock_ticks_per_sec, cpu_time, rss_kib, thread_cpu_time, thread_id};
use crate::report::Report;
use crate::stats::{ms, percentile};
use actix_rt::Arbiter;
use bytes::Bytes;
use futures_util::future::join_all;
use netcore::{Endpoint, Link, LinkOptions, Reply, Request};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, oneshot};

const TELEMETRY_LEN: usize = 64;
const CALL_LEN: usize = 32;
const TELEMETRY_EVERY: Duration = Duration::from_millis(50);
const CALL_EVERY: Duration = Duration::from_secs(1);
/// Bytes an in-memory pipe holds per direction before its writer waits.
const PIPE_BUF: usize = 4096;
/// The fill byte of telemetry and saturation messages (after an 8-byte head).
const FILL: u8 = 0x5a;

/// The options of every link, both ends: a serial-framed link (COBS, CRC, the
/// reliable mode and its keepalive as `LinkOptions::serial` sets them), whose
/// writer takes up to [`PIPE_BUF`] bytes of frames per write. `LinkOptions::serial`
/// writes one frame at a time so that on a slow UART an urgent message waits at
/// most one chunk; an unthrottled pipe is no such line, and one frame per write
/// made the saturation phase cost a pull, a write and a wake-up per 64-byte
/// message (55-73k messages/s per core measured, against 100-140k with 4 KiB
/// writes).
pub fn options() -> LinkOptions {
    let mut options = LinkOptions::serial(115_200);
    options.batch_budget = PIPE_BUF;
    options
}

/// What the gateway's handlers counted.
#[derive(Default)]
struct Tally {
    telemetry: AtomicU64,
    saturation: AtomicU64,
    damaged: AtomicU64,
}

impl Tally {
    fn count(&self, counter: &AtomicU64, request: &Request) {
        let intact = request
            .body
            .as_bytes()
            .is_some_and(|b| b.len() == TELEMETRY_LEN && b[8..].iter().all(|&byte| byte == FILL));
        if intact {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            self.damaged.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A 64-byte message of `device`: its index and sequence number, then the fill.
fn telemetry(device: usize, seq: u32) -> Bytes {
    let mut body = vec![FILL; TELEMETRY_LEN];
    body[..4].copy_from_slice(&(device as u32).to_le_bytes());
    body[4..8].copy_from_slice(&seq.to_le_bytes());
    Bytes::from(body)
}

/// What the gateway's thread is asked to do.
enum Command {
    /// Run a link over this pipe end; say when it is up.
    Attach(DuplexStream, oneshot::Sender<Result<(), String>>),
    /// Call every device once per [`CALL_EVERY`] from `start` until `until`.
    Calls {
        start: Instant,
        until: Instant,
        done: oneshot::Sender<Calls>,
    },
}

/// The gateway's calls.
#[derive(Default)]
struct Calls {
    latencies: Vec<Duration>,
    made: u64,
    answered: u64,
    wrong: u64,
    failed: Vec<String>,
}

/// Starts the gateway endpoint on an arbiter of its own; returns it, its
/// command channel and (once known) the id of its thread.
fn start_gateway(
    tally: Arc<Tally>,
) -> (
    Arbiter,
    mpsc::UnboundedSender<Command>,
    oneshot::Receiver<Option<u64>>,
) {
    let arbiter = Arbiter::new();
    let (commands, mut inbox) = mpsc::unbounded_channel::<Command>();
    let (tid_tx, tid) = oneshot::channel();
    arbiter.spawn_fn(move || {
        let _ = tid_tx.send(thread_id());
        actix_rt::spawn(async move {
            let (t, s) = (tally.clone(), tally);
            let endpoint = Endpoint::builder()
                .route("t", move |req: Request| {
                    t.count(&t.telemetry, &req);
                    async { Ok(Reply::empty()) }
                })
                .route("s", move |req: Request| {
                    s.count(&s.saturation, &req);
                    async { Ok(Reply::empty()) }
                })
                .start();
            while let Some(command) = inbox.recv().await {
                match command {
                    Command::Attach(pipe, up) => {
                        let endpoint = endpoint.clone();
                        actix_rt::spawn(async move {
                            let result = endpoint.attach(pipe, options()).await;
                            let _ = up.send(result.map(drop).map_err(|e| e.to_string()));
                        });
                    }
                    Command::Calls { start, until, done } => {
                        let links = endpoint.links();
                        actix_rt::spawn(async move {
                            let n = links.len().max(1) as u32;
                            let loops = links.into_iter().enumerate().map(|(i, link)| {
                                call_loop(link, start + CALL_EVERY * i as u32 / n, until)
                            });
                            let mut all = Calls::default();
                            for calls in join_all(loops).await {
                                all.latencies.extend(calls.latencies);
                                all.made += calls.made;
                                all.answered += calls.answered;
                                all.wrong += calls.wrong;
                                all.failed.extend(calls.failed);
                            }
                            let _ = done.send(all);
                        });
                    }
                }
            }
            drop(endpoint);
        });
    });
    (arbiter, commands, tid)
}

/// Calls `link` every [`CALL_EVERY`] from `first` until `until`.
async fn call_loop(link: Link, first: Instant, until: Instant) -> Calls {
    let mut calls = Calls::default();
    let mut at = first;
    let mut seq = 0u8;
    while at < until {
        tokio::time::sleep_until(at.into()).await;
        let request = Bytes::from(vec![seq; CALL_LEN]);
        let began = Instant::now();
        calls.made += 1;
        match link.call("c", request.clone()).await {
            Ok(answer) => {
                calls.latencies.push(began.elapsed());
                calls.answered += 1;
                if answer.body.as_bytes() != Some(&request) {
                    calls.wrong += 1;
                }
            }
            Err(error) => calls.failed.push(error.to_string()),
        }
        at += CALL_EVERY;
        seq = seq.wrapping_add(1);
    }
    calls
}

/// Sends telemetry every [`TELEMETRY_EVERY`] from `first` until `until`;
/// returns how many messages were sent.
async fn telemetry_loop(
    link: Link,
    device: usize,
    first: Instant,
    until: Instant,
) -> Result<u64, String> {
    let mut at = first;
    let mut seq = 0u32;
    while at < until {
        tokio::time::sleep_until(at.into()).await;
        link.send("t", telemetry(device, seq))
            .await
            .map_err(|e| e.to_string())?;
        seq += 1;
        at += TELEMETRY_EVERY;
    }
    Ok(u64::from(seq))
}

/// Sends one-way messages as fast as the link takes them until `until`.
async fn saturate(link: Link, device: usize, until: Instant) -> Result<u64, String> {
    let mut seq = 0u32;
    while Instant::now() < until {
        link.send("s", telemetry(device, seq))
            .await
            .map_err(|e| e.to_string())?;
        seq += 1;
    }
    Ok(u64::from(seq))
}

/// Waits until `counter` reaches `want` or `patience` passed; returns its value.
async fn arrived(counter: &AtomicU64, want: u64, patience: Duration) -> u64 {
    let deadline = Instant::now() + patience;
    loop {
        let got = counter.load(Ordering::Relaxed);
        if got >= want || Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sums what a set of device loops sent; their errors go to `failed`.
fn sum_sent(
    results: Vec<Result<Result<u64, String>, tokio::task::JoinError>>,
) -> (u64, Vec<String>) {
    let mut sent = 0;
    let mut failed = Vec::new();
    for result in results {
        match result {
            Ok(Ok(n)) => sent += n,
            Ok(Err(error)) => failed.push(error),
            Err(error) => failed.push(error.to_string()),
        }
    }
    (sent, failed)
}

/// Runs the scenario.
pub fn run(quick: bool) -> Result<Report, Error> {
    let n: usize = if quick { 64 } else { 256 };
    let steady = Duration::from_secs(if quick { 5 } else { 20 });
    let saturation = Duration::from_secs(if quick { 2 } else { 5 });
    let ticks = clock_ticks_per_sec();
    let tally = Arc::new(Tally::default());
    let mut report = Report::new("gateway_scale");
    let outcome = actix_rt::System::new().block_on(async {
        let (gateway, commands, gateway_tid) = start_gateway(tally.clone());
        let gateway_tid = gateway_tid.await.ok().flatten();
        let gateway_cpu = || gateway_tid.and_then(|tid| thread_cpu_time(tid, ticks));
        let echo = |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
        };
        let devices: Vec<Endpoint> = (0..n)
            .map(|_| Endpoint::builder().link_threads(0).route("c", echo).start())
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_before = rss_kib().ok_or("cannot read VmRSS")?;

        let mut attaches = Vec::with_capacity(n);
        let mut ups = Vec::with_capacity(n);
        for device in &devices {
            let (here, there) = tokio::io::duplex(PIPE_BUF);
            let (up, is_up) = oneshot::channel();
            commands
                .send(Command::Attach(there, up))
                .map_err(|_| "gateway stopped")?;
            ups.push(is_up);
            attaches.push(device.attach(here, options()));
        }
        let mut links = Vec::with_capacity(n);
        for link in join_all(attaches).await {
            links.push(link?);
        }
        for up in ups {
            up.await.map_err(|_| "gateway stopped")??;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_up = rss_kib().ok_or("cannot read VmRSS")?;

        // Steady phase.
        let start = Instant::now() + Duration::from_millis(50);
        let until = start + steady;
        let (done, calls) = oneshot::channel();
        commands
            .send(Command::Calls { start, until, done })
            .map_err(|_| "gateway stopped")?;
        let loops: Vec<_> = links
            .iter()
            .enumerate()
            .map(|(i, link)| {
                let first = start + TELEMETRY_EVERY * i as u32 / n as u32;
                actix_rt::spawn(telemetry_loop(link.clone(), i, first, until))
            })
            .collect();
        tokio::time::sleep_until(start.into()).await;
        let (cpu0, gateway0, wall0) = (cpu_time(ticks), gateway_cpu(), Instant::now());
        tokio::time::sleep_until(until.into()).await;
        let (cpu1, gateway1, wall) = (cpu_time(ticks), gateway_cpu(), wall0.elapsed());
        let gateway_thread_cpu = gateway1.zip(gateway0).map(|(a, b)| a.saturating_sub(b));
        let cpu = cpu1
            .zip(cpu0)
            .map(|(a, b)| a.saturating_sub(b))
            .ok_or("cannot read /proc/self/stat")?;
        let (telemetry_sent, telemetry_failed) = sum_sent(join_all(loops).await);
        let calls = calls.await.map_err(|_| "gateway stopped")?;
        let telemetry_delivered =
            arrived(&tally.telemetry, telemetry_sent, Duration::from_secs(10)).await;
        let rss_steady = rss_kib().ok_or("cannot read VmRSS")?;

        // Saturation phase.
        let began = Instant::now();
        let until = began + saturation;
        let before = tally.saturation.load(Ordering::Relaxed);
        let saturation_cpu0 = cpu_time(ticks);
        let loops: Vec<_> = links
            .iter()
            .enumerate()
            .map(|(i, link)| actix_rt::spawn(saturate(link.clone(), i, until)))
            .collect();
        tokio::time::sleep_until(until.into()).await;
        let in_window = tally.saturation.load(Ordering::Relaxed) - before;
        let window = began.elapsed();
        let saturation_cpu = cpu_time(ticks)
            .zip(saturation_cpu0)
            .map(|(a, b)| a.saturating_sub(b))
            .ok_or("cannot read /proc/self/stat")?;
        let rss_saturated = rss_kib().ok_or("cannot read VmRSS")?;
        let (saturation_sent, saturation_failed) = sum_sent(join_all(loops).await);
        let saturation_delivered =
            arrived(&tally.saturation, saturation_sent, Duration::from_secs(60)).await;
        drop(links);
        drop(devices);
        gateway.stop();
        Ok::<_, Error>(Outcome {
            rss_before,
            rss_up,
            rss_steady,
            rss_saturated,
            cpu,
            gateway_thread_cpu,
            wall,
            telemetry_sent,
            telemetry_delivered,
            failed: [telemetry_failed, saturation_failed].concat(),
            calls,
            in_window,
            window,
            saturation_cpu,
            saturation_sent,
            saturation_delivered,
        })
    });
    let mut o = outcome?;
    let per_link = |rss: f64| (rss - o.rss_before) / (2 * n) as f64;
    let rss_per_link = per_link(o.rss_up);
    let cpu_cores = o.cpu.as_secs_f64() / o.wall.as_secs_f64();
    let rate = o.in_window as f64 / o.window.as_secs_f64();
    let p50 = ms(percentile(&mut o.calls.latencies, 50.0));
    let p99 = ms(percentile(&mut o.calls.latencies, 99.0));
    let damaged = tally.damaged.load(Ordering::Relaxed);
    report.field("links", n);
    report.field("telemetry_sent", o.telemetry_sent);
    report.field("telemetry_delivered", o.telemetry_delivered);
    report.field("calls", o.calls.made);
    report.field("calls_answered", o.calls.answered);
    report.field("call_p50_ms", p50);
    report.field("call_p99_ms", p99);
    report.field("cpu_cores", cpu_cores);
    let gateway_cores = o
        .gateway_thread_cpu
        .map_or(f64::NAN, |cpu| cpu.as_secs_f64() / o.wall.as_secs_f64());
    report.field("gateway_thread_cpu_cores", gateway_cores);
    report.field("rss_per_link_kib", rss_per_link);
    report.field("rss_per_link_after_steady_kib", per_link(o.rss_steady));
    report.field("rss_per_link_saturated_kib", per_link(o.rss_saturated));
    report.field("rss_before_links_kib", o.rss_before);
    report.field("saturation_msgs_per_s", rate);
    let saturation_cores = o.saturation_cpu.as_secs_f64() / o.window.as_secs_f64();
    report.field("saturation_cpu_cores", saturation_cores);
    report.field("saturation_sent", o.saturation_sent);
    report.field("saturation_delivered", o.saturation_delivered);
    report.field("damaged", damaged);
    report.field("steady_seconds", o.wall.as_secs_f64());
    report.row = format!(
        "{n} links: telemetry {}/{} delivered, calls {}/{} answered (p50 {p50:.2} ms, p99 {p99:.2} ms), {cpu_cores:.3} cores steady (gateway thread {gateway_cores:.3}), {rss_per_link:.1} KiB per link end ({:.1} after steady, {:.1} saturated), saturation {rate:.0} msgs/s on {saturation_cores:.2} cores ({}/{} delivered)",
        o.telemetry_delivered,
        o.telemetry_sent,
        o.calls.answered,
        o.calls.made,
        per_link(o.rss_steady),
        per_link(o.rss_saturated),
        o.saturation_delivered,
        o.saturation_sent,
    );
    for error in o.failed.iter().chain(&o.calls.failed).take(5) {
        report.fail(format!("send or call failed: {error}"));
    }
    if o.telemetry_delivered != o.telemetry_sent {
        report.fail(format!(
            "telemetry: {} sent, {} delivered",
            o.telemetry_sent, o.telemetry_delivered
        ));
    }
    if o.saturation_delivered != o.saturation_sent {
        report.fail(format!(
            "saturation: {} sent, {} delivered",
            o.saturation_sent, o.saturation_delivered
        ));
    }
    if damaged > 0 {
        report.fail(format!("{damaged} messages arrived damaged"));
    }
    if o.calls.wrong > 0 {
        report.fail(format!("{} calls got a wrong answer", o.calls.wrong));
    }
    let all_calls = o.calls.made > 0 && o.calls.answered == o.calls.made && o.calls.wrong == 0;
    let delivered = o.telemetry_delivered == o.telemetry_sent && o.telemetry_sent > 0;
    report.goal(
        "telemetry_delivered = telemetry_sent, every call answered",
        delivered && all_calls,
        format!(
            "{}/{} telemetry, {}/{} calls",
            o.telemetry_delivered, o.telemetry_sent, o.calls.answered, o.calls.made
        ),
    );
    report.goal(
        "rss_per_link_kib ≤ 64",
        rss_per_link <= 64.0,
        format!("{rss_per_link:.1} KiB"),
    );
    report.goal(
        "cpu_cores ≤ 0.25",
        cpu_cores <= 0.25,
        format!("{cpu_cores:.3}"),
    );
    report.goal(
        "saturation_msgs_per_s ≥ 100,000",
        rate >= 100_000.0,
        format!("{rate:.0}"),
    );
    report.goal("call_p99_ms ≤ 20", p99 <= 20.0, format!("{p99:.2} ms"));
    Ok(report)
}

/// What the run measured.
struct Outcome {
    rss_before: f64,
    rss_up: f64,
    rss_steady: f64,
    rss_saturated: f64,
    cpu: Duration,
    gateway_thread_cpu: Option<Duration>,
    wall: Duration,
    telemetry_sent: u64,
    telemetry_delivered: u64,
    failed: Vec<String>,
    calls: Calls,
    in_window: u64,
    window: Duration,
    saturation_cpu: Duration,
    saturation_sent: u64,
    saturation_delivered: u64,
}
