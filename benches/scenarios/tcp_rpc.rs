//! `tcp_rpc`: 32-byte requests echoed as 32-byte responses, 64 in flight, over
//! TCP loopback; against yamux with a stream per request. The round trips are
//! split into rounds alternating netcore and yamux; rates are total round trips
//! over total time. Latency is measured per call, from the call to its answer.

use crate::peers::{Error, Peers};
use crate::report::Report;
use crate::stats::{fmt_ratio, percentile, us};
use crate::yamux_base;
use netcore::{Endpoint, LinkOptions, Reply, Request};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Calls in flight at once.
const IN_FLIGHT: usize = 64;
/// Request and response size.
const LEN: usize = 32;

/// The request with sequence number `n`: distinct for every call, so an answer
/// given to the wrong caller is caught.
fn request(n: u64) -> [u8; LEN] {
    let mut req = [0u8; LEN];
    for (i, word) in req.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&(n.wrapping_mul(0x9e37_79b9) ^ (i as u64) << 56).to_le_bytes());
    }
    req
}

/// Results of one system's rounds.
#[derive(Default)]
struct Tally {
    calls: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    wrong: u64,
}

impl Tally {
    fn rps(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the scenario.
pub fn run(quick: bool) -> Result<Report, Error> {
    let total: u64 = if quick { 20_000 } else { 200_000 };
    let rounds: u64 = if quick { 2 } else { 4 };
    let per_round = total / rounds;
    let mut netcore = Tally::default();
    let mut yamux = Tally::default();
    actix_rt::System::new().block_on(async {
        let server = Endpoint::builder().route("echo", |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
        });
        let peers = Peers::tcp(server, LinkOptions::stream()).await?;
        // One unmeasured call so both sides are warm.
        peers.link.call("echo", request(u64::MAX).to_vec()).await?;
        for round in 0..rounds {
            let first = round * per_round;
            netcore_round(&peers, first, per_round, &mut netcore).await?;
            yamux_round(first, per_round, &mut yamux)?;
        }
        Ok::<(), Error>(())
    })?;
    let mut report = Report::new("tcp_rpc");
    for (name, tally) in [("netcore", &netcore), ("yamux", &yamux)] {
        let missing = total - tally.calls;
        if missing > 0 || tally.wrong > 0 {
            report.fail(format!(
                "{name}: {missing} calls unanswered, {} wrong answers",
                tally.wrong
            ));
        }
    }
    let (n, y) = (netcore.rps(), yamux.rps());
    let p50 = us(percentile(&mut netcore.latencies, 50.0));
    let p99 = us(percentile(&mut netcore.latencies, 99.0));
    let y50 = us(percentile(&mut yamux.latencies, 50.0));
    let y99 = us(percentile(&mut yamux.latencies, 99.0));
    report.field("round_trips", total);
    report.field("in_flight", IN_FLIGHT);
    report.field("rounds", rounds);
    report.field("netcore_rps", n);
    report.field("yamux_rps", y);
    report.field("ratio_yamux", n / y);
    report.field("p50_us", p50);
    report.field("p99_us", p99);
    report.field("yamux_p50_us", y50);
    report.field("yamux_p99_us", y99);
    report.row = format!(
        "{total} × 32 B, {IN_FLIGHT} in flight: netcore {n:.0}/s (p50 {p50:.0} µs, p99 {p99:.0} µs), yamux {y:.0}/s (p50 {y50:.0} µs, p99 {y99:.0} µs); ratio_yamux {}",
        fmt_ratio(n / y)
    );
    report.goal("ratio_yamux ≥ 1.5", n / y >= 1.5, fmt_ratio(n / y));
    Ok(report)
}

/// `count` calls numbered from `first`, `IN_FLIGHT` at a time.
async fn netcore_round(
    peers: &Peers,
    first: u64,
    count: u64,
    tally: &mut Tally,
) -> Result<(), Error> {
    let next = Cell::new(first);
    let end = first + count;
    let began = Instant::now();
    let workers = (0..IN_FLIGHT).map(|_| async {
        let mut latencies = Vec::new();
        let mut wrong = 0u64;
        loop {
            let n = next.get();
            if n >= end {
                return Ok::<_, Error>((latencies, wrong));
            }
            next.set(n + 1);
            let req = request(n);
            let sent = Instant::now();
            let answer = peers.link.call("echo", req.to_vec()).await?;
            latencies.push(sent.elapsed());
            if answer.body.as_bytes().map(|b| &b[..]) != Some(&req[..]) {
                wrong += 1;
            }
        }
    });
    let results = futures_util::future::join_all(workers).await;
    tally.elapsed += began.elapsed();
    for result in results {
        let (latencies, wrong) = result?;
        tally.calls += latencies.len() as u64;
        tally.latencies.extend(latencies);
        tally.wrong += wrong;
    }
    Ok(())
}

/// The same calls over yamux, a stream per request.
fn yamux_round(first: u64, count: u64, tally: &mut Tally) -> Result<(), Error> {
    let end = first + count;
    let (client, ()) = yamux_base::run(
        yamux_base::rpc_config(),
        |opener| async move {
            let next = Cell::new(first);
            let began = Instant::now();
            let workers = (0..IN_FLIGHT).map(|_| {
                let opener = opener.clone();
                let next = &next;
                async move {
                    let mut latencies = Vec::new();
                    let mut wrong = 0u64;
                    let mut answer = [0u8; LEN];
                    loop {
                        let n = next.get();
                        if n >= end {
                            return Ok::<_, Error>((latencies, wrong));
                        }
                        next.set(n + 1);
                        let req = request(n);
                        let sent = Instant::now();
                        yamux_base::call(&opener, &req, &mut answer).await?;
                        latencies.push(sent.elapsed());
                        if answer != req {
                            wrong += 1;
                        }
                    }
                }
            });
            let results = futures_util::future::join_all(workers).await;
            let elapsed = began.elapsed();
            let mut all = (Vec::new(), 0u64);
            for result in results {
                let (latencies, wrong) = result?;
                all.0.extend(latencies);
                all.1 += wrong;
            }
            Ok((elapsed, all))
        },
        |mut inbound| async move {
            let mut handlers = tokio::task::JoinSet::new();
            for _ in 0..count {
                let stream = inbound.recv().await.ok_or("too few inbound streams")?;
                handlers.spawn(yamux_base::echo(stream, LEN));
                while let Some(done) = handlers.try_join_next() {
                    done.map_err(|e| e.to_string())??;
                }
            }
            while let Some(done) = handlers.join_next().await {
                done.map_err(|e| e.to_string())??;
            }
            Ok(())
        },
    )?;
    let (elapsed, (latencies, wrong)) = client;
    tally.elapsed += elapsed;
    tally.calls += latencies.len() as u64;
    tally.latencies.extend(latencies);
    tally.wrong += wrong;
    Ok(())
}
