//! `tcp_rpc`: 32-byte requests echoed as 32-byte responses, 64 in flight, over
//! TCP loopback; against yamux with a stream per request, and against the floor
//! of any framework, raw TCP with length-prefixed requests and an echo loop
//! ([`raw_tcp::Rpc`]). Each system opens its connection once and keeps it for the
//! whole scenario; an unmeasured first round warms every connection up; then the
//! round trips are split into rounds alternating netcore, yamux and raw TCP.
//! Rates are each system's median round; ratios are medians of per-round paired
//! ratios. Latency is measured per call, from the call to its answer.

use crate::peers::{Error, Peers};
use crate::raw_tcp;
use crate::report::Report;
use crate::stats::{median, percentile, us, PairedRatio};
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
    /// Round trips per second, round by round.
    rounds_rps: Vec<f64>,
    latencies: Vec<Duration>,
    wrong: u64,
}

impl Tally {
    /// Adds one round: its duration, its calls' latencies, its wrong answers.
    fn add_round(&mut self, elapsed: Duration, latencies: Vec<Duration>, wrong: u64) {
        let calls = latencies.len() as u64;
        self.calls += calls;
        self.rounds_rps
            .push(calls as f64 / elapsed.as_secs_f64().max(1e-9));
        self.latencies.extend(latencies);
        self.wrong += wrong;
    }

    /// Forgets the rounds so far (the warm-up), all but their wrong answers.
    fn forget_measurements(&mut self) {
        *self = Tally {
            wrong: self.wrong,
            ..Tally::default()
        };
    }

    fn rps(&self) -> f64 {
        median(&self.rounds_rps)
    }
}

/// Runs the scenario.
pub fn run(quick: bool) -> Result<Report, Error> {
    let total: u64 = if quick { 20_000 } else { 200_000 };
    let rounds: u64 = if quick { 5 } else { 8 };
    let per_round = total / rounds;
    let total = per_round * rounds;
    let mut netcore = Tally::default();
    let mut yamux = Tally::default();
    let mut raw = Tally::default();
    actix_rt::System::new().block_on(async {
        let server = Endpoint::builder().route("echo", |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
        });
        let peers = Peers::tcp(server, LinkOptions::stream()).await?;
        let yamux_session = yamux_base::Session::open(yamux_base::rpc_config())?;
        let raw_tcp = raw_tcp::Rpc::open()?;
        // Round 0 (the same calls as round 1) warms every connection up: only its
        // wrong answers count.
        for round in 0..=rounds {
            let first = round.saturating_sub(1) * per_round;
            netcore_round(&peers, first, per_round, &mut netcore).await?;
            yamux_round(&yamux_session, first, per_round, &mut yamux)?;
            let (elapsed, latencies, wrong) =
                raw_tcp.round(request, first, per_round, IN_FLIGHT)?;
            raw.add_round(elapsed, latencies, wrong);
            if round == 0 {
                for tally in [&mut netcore, &mut yamux, &mut raw] {
                    tally.forget_measurements();
                }
            }
        }
        Ok::<(), Error>(())
    })?;
    let mut report = Report::new("tcp_rpc");
    for (name, tally) in [("netcore", &netcore), ("yamux", &yamux), ("raw tcp", &raw)] {
        let missing = total - tally.calls;
        if missing > 0 || tally.wrong > 0 {
            report.fail(format!(
                "{name}: {missing} calls unanswered, {} wrong answers",
                tally.wrong
            ));
        }
    }
    let (n, y, r) = (netcore.rps(), yamux.rps(), raw.rps());
    let ratio_yamux = PairedRatio::of(&netcore.rounds_rps, &yamux.rounds_rps);
    let ratio_raw = PairedRatio::of(&netcore.rounds_rps, &raw.rounds_rps);
    let p50 = us(percentile(&mut netcore.latencies, 50.0));
    let p99 = us(percentile(&mut netcore.latencies, 99.0));
    let y50 = us(percentile(&mut yamux.latencies, 50.0));
    let y99 = us(percentile(&mut yamux.latencies, 99.0));
    let r50 = us(percentile(&mut raw.latencies, 50.0));
    let r99 = us(percentile(&mut raw.latencies, 99.0));
    report.field("round_trips", total);
    report.field("in_flight", IN_FLIGHT);
    report.field("rounds", rounds);
    report.field("netcore_rps", n);
    report.field("yamux_rps", y);
    report.field("raw_tcp_rps", r);
    report.ratio("yamux", &ratio_yamux);
    report.ratio("raw", &ratio_raw);
    report.field("netcore_rounds_rps", netcore.rounds_rps.clone());
    report.field("yamux_rounds_rps", yamux.rounds_rps.clone());
    report.field("raw_tcp_rounds_rps", raw.rounds_rps.clone());
    report.field("p50_us", p50);
    report.field("p99_us", p99);
    report.field("yamux_p50_us", y50);
    report.field("yamux_p99_us", y99);
    report.field("raw_tcp_p50_us", r50);
    report.field("raw_tcp_p99_us", r99);
    report.row = format!(
        "{total} × 32 B, {IN_FLIGHT} in flight: netcore {n:.0}/s (p50 {p50:.0} µs, p99 {p99:.0} µs), yamux {y:.0}/s (p50 {y50:.0} µs, p99 {y99:.0} µs), raw TCP {r:.0}/s (p50 {r50:.0} µs, p99 {r99:.0} µs); ratio_yamux {}, ratio_raw {} (medians of per-round ratios, with their range)",
        ratio_yamux.describe(),
        ratio_raw.describe()
    );
    report.ratio_goal("ratio_yamux ≥ 2.0", &ratio_yamux, 2.0);
    report.ratio_goal("ratio_raw ≥ 0.25", &ratio_raw, 0.25);
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
    let elapsed = began.elapsed();
    let (mut latencies, mut wrong) = (Vec::new(), 0);
    for result in results {
        let (some, w) = result?;
        latencies.extend(some);
        wrong += w;
    }
    tally.add_round(elapsed, latencies, wrong);
    Ok(())
}

/// The same calls over yamux, a stream per request.
fn yamux_round(
    session: &yamux_base::Session,
    first: u64,
    count: u64,
    tally: &mut Tally,
) -> Result<(), Error> {
    let end = first + count;
    let (client, ()) = session.round(
        move |opener| async move {
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
        move |inbound| async move {
            let mut handlers = tokio::task::JoinSet::new();
            for _ in 0..count {
                let stream = inbound.next().await?;
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
    tally.add_round(elapsed, latencies, wrong);
    Ok(())
}
