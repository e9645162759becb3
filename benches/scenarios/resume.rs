//! `resume`: one 1 MiB (quick: 256 KiB) one-way message A→B over a 115200-baud
//! line (the public fault injector's `FaultyLine` at 11,520 bytes/s each way,
//! no other fault) with the serial defaults (reliable mode, supervised) and a
//! connector on both sides. The line is cut, both ends failing (reads end,
//! writes `BrokenPipe`), for 3 s once 25% of the message was delivered and for
//! 10 s once 60% was; meanwhile A's connector fails (`NotFound`, as a USB
//! adapter unplugged); then it opens the next pair of the line and hands B its
//! end (B's connector waits for it).
//!
//! B streams the body to its handler (`stream_bodies`), which timestamps every
//! chunk as it arrives. `resume_ms` per cut: from the line coming back (the
//! connector may open it again) to the first payload chunk delivered after
//! that; `intact`: the message arrived once, byte-identical; `duplicates`:
//! deliveries of it beyond the first.

use crate::data::random_bytes;
use crate::peers::{Error, Peers};
use crate::report::Report;
use crate::serial_hol::{options, LINE_RATE};
use bytes::Bytes;
use netcore::actors::transport::{BoxedTransport, FaultConfig, Faults, FaultyLine};
use netcore::actors::Connector;
use netcore::{Body, Endpoint, Reply, Request};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const SEED: u64 = 0x7e5;
/// (fraction of the message delivered, how long the line stays cut).
const CUTS: [(f64, Duration); 2] = [
    (0.25, Duration::from_secs(3)),
    (0.60, Duration::from_secs(10)),
];

/// What B's handler reports: a chunk of the message (with its arrival time),
/// or the start of a delivery of it.
enum Arrival {
    Delivery,
    Chunk(Instant, Bytes),
}

/// Runs the scenario.
pub fn run(quick: bool) -> Result<Report, Error> {
    let len: usize = if quick { 256 << 10 } else { 1 << 20 };
    let data = random_bytes(SEED, len);
    let line = FaultyLine::new(
        FaultConfig::new(SEED).with_faults(Faults::none().with_bytes_per_sec(LINE_RATE as u32)),
    );
    let down = Arc::new(AtomicBool::new(false));
    let mut report = Report::new("resume");
    let mut received = Vec::with_capacity(len);
    let mut deliveries = 0u32;
    let mut resume_ms: Vec<f64> = Vec::new();
    let mut elapsed = Duration::ZERO;
    actix_rt::System::new().block_on(async {
        let (tx, mut arrivals) = mpsc::unbounded_channel::<Arrival>();
        let server =
            Endpoint::builder()
                .stream_bodies("bulk")
                .route("bulk", move |req: Request| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send(Arrival::Delivery);
                        match req.body {
                            Body::Stream(mut chunks) => {
                                while let Some(chunk) = chunks.next().await? {
                                    let _ = tx.send(Arrival::Chunk(Instant::now(), chunk));
                                }
                            }
                            whole => {
                                let bytes = whole.into_bytes().await?;
                                let _ = tx.send(Arrival::Chunk(Instant::now(), bytes));
                            }
                        }
                        Ok(Reply::empty())
                    }
                });
        let (a, b) = line.reconnect();
        let (to_b, from_a) = mpsc::unbounded_channel::<BoxedTransport>();
        let mut client_options = options();
        client_options.connector = Some(opening_connector(&line, &down, to_b));
        let mut server_options = options();
        server_options.connector = Some(receiving_connector(from_a));
        let peers = Peers::start_each(
            server,
            move || async move { Ok(b) },
            async { Ok(a) },
            client_options,
            server_options,
        )
        .await?;
        let began = Instant::now();
        peers.link.send("bulk", data.clone()).await?;
        // Only a guard against a hang: the message's wire time, twice, plus the cuts.
        let wire = Duration::from_secs_f64(len as f64 * 1.1 / LINE_RATE);
        let deadline = began + wire * 2 + Duration::from_secs(30);
        let mut cuts = CUTS.iter().peekable();
        let mut back: Option<Instant> = None;
        while received.len() < len {
            let wait = deadline.saturating_duration_since(Instant::now());
            let arrival = match tokio::time::timeout(wait, arrivals.recv()).await {
                Ok(Some(arrival)) => arrival,
                Ok(None) => return Err("server endpoint gone".into()),
                Err(_) => break,
            };
            let (at, chunk) = match arrival {
                Arrival::Delivery => {
                    deliveries += 1;
                    continue;
                }
                Arrival::Chunk(at, chunk) => (at, chunk),
            };
            received.extend_from_slice(&chunk);
            elapsed = at - began;
            // Chunks that arrived while the line was cut (queued here) do not end it.
            if let Some(since) = back.filter(|&since| at >= since) {
                resume_ms.push((at - since).as_secs_f64() * 1000.0);
                back = None;
            }
            if let Some(&&(fraction, cut_for)) = cuts.peek() {
                if received.len() as f64 >= fraction * len as f64 {
                    cuts.next();
                    down.store(true, Ordering::SeqCst);
                    line.cut();
                    tokio::time::sleep(cut_for).await;
                    down.store(false, Ordering::SeqCst);
                    back = Some(Instant::now());
                }
            }
        }
        // A second delivery of the message would come after the first.
        tokio::time::sleep(Duration::from_millis(500)).await;
        while let Ok(arrival) = arrivals.try_recv() {
            match arrival {
                Arrival::Delivery => deliveries += 1,
                Arrival::Chunk(_, chunk) => received.extend_from_slice(&chunk),
            }
        }
        drop(peers);
        Ok::<(), Error>(())
    })?;
    let intact = deliveries >= 1 && received.len() >= len && received[..len] == data[..];
    let duplicates = deliveries.saturating_sub(1);
    let max = resume_ms.iter().copied().fold(0.0, f64::max);
    let all_resumed = resume_ms.len() == CUTS.len();
    report.field("resume_ms", resume_ms.clone());
    report.field("resume_ms_max", max);
    report.field("intact", intact);
    report.field("duplicates", u64::from(duplicates));
    report.field("bytes", len);
    report.field("received_bytes", received.len());
    report.field("seconds", elapsed.as_secs_f64());
    report.field("pairs_opened", line.pairs());
    let resumes: Vec<String> = resume_ms.iter().map(|ms| format!("{ms:.0}")).collect();
    report.row = format!(
        "{} KiB A→B at 115200 baud, cut 3 s at 25% and 10 s at 60%: resumed after [{}] ms, intact {intact}, duplicates {duplicates}, {:.1} s, {} line pairs",
        len >> 10,
        resumes.join(", "),
        elapsed.as_secs_f64(),
        line.pairs()
    );
    if !intact || duplicates > 0 || received.len() != len {
        report.fail(format!(
            "{} of {len} bytes arrived, intact {intact}, {duplicates} duplicates",
            received.len()
        ));
    }
    if !all_resumed {
        report.fail(format!(
            "resumed after {} of {} cuts",
            resume_ms.len(),
            CUTS.len()
        ));
    }
    report.goal(
        "intact, duplicates = 0",
        intact && duplicates == 0,
        format!("intact {intact}, duplicates {duplicates}"),
    );
    report.goal(
        "resume_ms_max ≤ 500",
        all_resumed && max <= 500.0,
        format!("{max:.0} ms"),
    );
    Ok(report)
}

/// A's connector: fails while `down` (the port cannot be opened), else opens
/// the line's next pair and hands its other end to B.
fn opening_connector(
    line: &FaultyLine,
    down: &Arc<AtomicBool>,
    to_b: mpsc::UnboundedSender<BoxedTransport>,
) -> Connector {
    let (line, down) = (line.clone(), down.clone());
    Connector::new(move || {
        let (line, down, to_b) = (line.clone(), down.clone(), to_b.clone());
        async move {
            if down.load(Ordering::SeqCst) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "serial device gone",
                ));
            }
            let (a, b) = line.reconnect();
            to_b.send(Box::new(b))
                .map_err(|_| std::io::Error::other("B is gone"))?;
            Ok(Box::new(a) as BoxedTransport)
        }
    })
}

/// B's connector: the end A's connector opened.
fn receiving_connector(from_a: mpsc::UnboundedReceiver<BoxedTransport>) -> Connector {
    let from_a = Arc::new(tokio::sync::Mutex::new(from_a));
    Connector::new(move || {
        let from_a = from_a.clone();
        async move {
            from_a
                .lock()
                .await
                .recv()
                .await
                .ok_or_else(|| std::io::Error::other("A is gone"))
        }
    })
}
