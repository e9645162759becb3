//! `tcp_mux`: 64 concurrent one-way messages A→B on one TCP link, against raw
//! TCP moving the same total bytes on one socket and 64 concurrent yamux
//! streams. Each system opens its connection once and keeps it for the whole
//! scenario; an unmeasured first round warms every connection up; then rounds
//! alternate netcore, raw, yamux. Figures are medians of rounds, ratios medians of
//! per-round paired ratios.
//!
//! netcore: the 64 `send` calls are queued at once (`join_all`); the timed section
//! ends when the last message is complete in its handler. Each message goes to
//! route `mux/<i>`, served by the fallback handler, and is compared with what was
//! sent once the round is over.
//!
//! The scheduler interleaves the 64 messages chunk by chunk, so the receiver holds
//! all of them incomplete at once: above its memory-pressure limit (half the link
//! window, 32 MiB) it moves the largest out of memory. The server lists `mux/` in
//! `EndpointBuilder::stream_bodies`, so those go to their handler as streams (it
//! copies each into its pre-touched buffer, as the yamux readers do) instead of
//! spool files. The link runs `LinkOptions::stream()` as it is: every round must
//! deliver every message at the defaults (`SpoolLimits::max_spooling`, 64, is the
//! most that may leave memory at once).

use crate::data::{compare, random_bytes, touched_buffer, Received};
use crate::peers::{Error, Peers};
use crate::report::Report;
use crate::stats::mbps;
use crate::{raw_tcp, yamux_base};
use bytes::Bytes;
use netcore::{Endpoint, LinkOptions, Reply, Request};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Concurrent messages.
const MESSAGES: usize = 64;

/// Runs the scenario.
pub fn run(quick: bool) -> Result<Report, Error> {
    let each: usize = if quick { 1 << 20 } else { 4 << 20 };
    let rounds: usize = if quick { 11 } else { 9 };
    let total = each * MESSAGES;
    let data = random_bytes(0x6d75, total);
    let parts: Vec<Bytes> = (0..MESSAGES)
        .map(|i| data.slice(i * each..(i + 1) * each))
        .collect();
    let crcs: Vec<u32> = parts.iter().map(|p| crc32c::crc32c(p)).collect();
    let mut report = Report::new("tcp_mux");
    let mut raw_buf = Some(touched_buffer(total));
    let mut yamux_bufs: Option<Vec<Vec<u8>>> =
        Some((0..MESSAGES).map(|_| touched_buffer(each)).collect());
    let (mut netcore, mut raw, mut yamux) = (Vec::new(), Vec::new(), Vec::new());
    let mut lost_with_defaults = 0;
    actix_rt::System::new().block_on(async {
        let mut receiver = Receiver::start(LinkOptions::stream(), each).await?;
        let raw_tcp = raw_tcp::Bulk::open()?;
        let yamux_session = yamux_base::Session::open(yamux_base::bulk_config())?;
        // Round 0 warms every connection up and is not counted.
        for round in 0..=rounds {
            let (elapsed, arrived) = receiver
                .round(&parts, &crcs, &mut report, &format!("round {round}"))
                .await?;
            if arrived < MESSAGES {
                lost_with_defaults = lost_with_defaults.max(MESSAGES - arrived);
                report.fail(format!(
                    "round {round}: {} of {MESSAGES} messages never arrived",
                    MESSAGES - arrived
                ));
                break;
            }
            let netcore_mbps = mbps(total as u64, elapsed);

            let mut buf = raw_buf.take().ok_or("raw buffer lost")?;
            buf.fill(0);
            let (elapsed, buf) = raw_tcp.transfer(data.clone(), buf)?;
            let raw_mbps = mbps(total as u64, elapsed);
            if let Some(why) = compare("raw tcp", &buf, &data) {
                report.fail(why);
            }
            raw_buf = Some(buf);

            let bufs = yamux_bufs.take().ok_or("yamux buffers lost")?;
            let (elapsed, bufs) = yamux_mux(&yamux_session, &parts, bufs)?;
            let yamux_mbps = mbps(total as u64, elapsed);
            for (i, buf) in bufs.iter().enumerate() {
                if let Some(why) = compare(&format!("yamux stream {i}"), buf, &parts[i]) {
                    report.fail(why);
                }
            }
            yamux_bufs = Some(bufs);
            if round > 0 {
                netcore.push(netcore_mbps);
                raw.push(raw_mbps);
                yamux.push(yamux_mbps);
            }
        }
        Ok::<(), Error>(())
    })?;
    report.field("messages", MESSAGES);
    report.field("message_bytes", each);
    report.field("rounds", rounds);
    report.field("max_spooling", LinkOptions::stream().spool.max_spooling);
    report.field("lost_with_default_options", lost_with_defaults);
    let what = format!("{MESSAGES} × {} MiB", each >> 20);
    let (ratio_raw, _) = report.throughput_vs_baselines(&what, netcore, raw, yamux);
    report.ratio_goal("ratio_raw ≥ 0.75", &ratio_raw, 0.75);
    Ok(report)
}

/// Pre-touched destination buffers of the streamed messages, by index.
type Slots = Arc<Mutex<Vec<Option<Vec<u8>>>>>;

/// The server endpoint's deliveries, collected here.
struct Receiver {
    peers: Peers,
    arrivals: mpsc::UnboundedReceiver<(Instant, String, Received)>,
    slots: Slots,
}

impl Receiver {
    /// A client and a server endpoint over TCP; the server's fallback handler
    /// reads every message (a stream into the buffer of its index) and forwards
    /// it here.
    async fn start(options: LinkOptions, each: usize) -> Result<Receiver, Error> {
        let slots: Slots = Arc::new(Mutex::new(
            (0..MESSAGES).map(|_| Some(touched_buffer(each))).collect(),
        ));
        let (tx, arrivals) = mpsc::unbounded_channel::<(Instant, String, Received)>();
        let handler_slots = slots.clone();
        let server =
            Endpoint::builder()
                .stream_bodies("mux/")
                .default_handler(move |req: Request| {
                    let tx = tx.clone();
                    let index = route_index(&req.head.route);
                    let buf = index
                        .and_then(|i| handler_slots.lock().ok()?.get_mut(i)?.take())
                        .unwrap_or_default();
                    async move {
                        let received = Received::take(req.body, buf).await;
                        let _ = tx.send((Instant::now(), req.head.route.clone(), received));
                        Ok(Reply::empty())
                    }
                });
        let peers = Peers::tcp(server, options).await?;
        Ok(Receiver {
            peers,
            arrivals,
            slots,
        })
    }

    /// Sends every part at once (message `i` to route `mux/<i>`), checks each
    /// arrival; returns the time to the last arrival and how many arrived. Gives
    /// up on the missing ones after [`STALL`] without an arrival.
    async fn round(
        &mut self,
        parts: &[Bytes],
        crcs: &[u32],
        report: &mut Report,
        what: &str,
    ) -> Result<(Duration, usize), Error> {
        let began = Instant::now();
        let sends = parts
            .iter()
            .enumerate()
            .map(|(i, part)| self.peers.link.send(format!("mux/{i}"), part.clone()));
        for sent in futures_util::future::join_all(sends).await {
            sent?;
        }
        let mut last = began;
        let mut received: Vec<Option<Received>> = (0..parts.len()).map(|_| None).collect();
        let mut arrived = 0;
        while arrived < parts.len() {
            let Ok(arrival) = tokio::time::timeout(STALL, self.arrivals.recv()).await else {
                break;
            };
            let (at, route, body) = arrival.ok_or("server endpoint gone")?;
            last = last.max(at);
            let index = route_index(&route)
                .filter(|&i| i < parts.len())
                .ok_or_else(|| format!("unexpected route {route:?}"))?;
            if received[index].replace(body).is_some() {
                report.fail(format!("netcore {what}: {route} delivered twice"));
                continue;
            }
            arrived += 1;
        }
        let elapsed = last - began;
        // Checked after the timed section; the buffers go back for the next round.
        for (index, body) in received.into_iter().enumerate() {
            let Some(body) = body else { continue };
            let label = format!("netcore {what} mux/{index}");
            if let Some(why) = body.check(&label, &parts[index], crcs[index]) {
                report.fail(why);
            }
            let mut buf = body.buf;
            buf.fill(0);
            if let Some(slot) = self
                .slots
                .lock()
                .map_err(|_| "slots poisoned")?
                .get_mut(index)
            {
                *slot = Some(buf);
            }
        }
        Ok((elapsed, arrived))
    }
}

/// `i` of route `mux/<i>`.
fn route_index(route: &str) -> Option<usize> {
    route.strip_prefix("mux/")?.parse().ok()
}

/// How long a round waits for the next message before counting the rest lost.
const STALL: Duration = Duration::from_secs(5);

/// 64 concurrent yamux streams, stream `i` carrying its index (4 bytes) then
/// `parts[i]`; returns the time from the first open to the last byte read, and
/// the bytes each stream delivered (in `bufs`, indexed like `parts`).
fn yamux_mux(
    session: &yamux_base::Session,
    parts: &[Bytes],
    mut bufs: Vec<Vec<u8>>,
) -> Result<(Duration, Vec<Vec<u8>>), Error> {
    for buf in &mut bufs {
        buf.fill(0);
    }
    let slots: Arc<Mutex<Vec<Option<Vec<u8>>>>> =
        Arc::new(Mutex::new(bufs.into_iter().map(Some).collect()));
    let server_slots = slots.clone();
    let sent_parts = parts.to_vec();
    let count = parts.len();
    let (began, finished) = session.round(
        move |opener| async move {
            let began = Instant::now();
            let sends = sent_parts.iter().enumerate().map(|(i, part)| {
                let opener = opener.clone();
                async move {
                    let index = (i as u32).to_le_bytes();
                    yamux_base::send_on_new_stream(&opener, &index, part).await
                }
            });
            for sent in futures_util::future::join_all(sends).await {
                sent?;
            }
            Ok(began)
        },
        move |inbound| async move {
            let mut readers = tokio::task::JoinSet::new();
            for _ in 0..count {
                let mut stream = inbound.next().await?;
                let slots = server_slots.clone();
                readers.spawn(async move {
                    let mut index = [0u8; 4];
                    yamux_base::read_exact(&mut stream, &mut index).await?;
                    let index = u32::from_le_bytes(index) as usize;
                    let taken = slots.lock().ok().and_then(|mut s| s.get_mut(index)?.take());
                    let mut buf = taken.ok_or("bad or repeated stream index")?;
                    yamux_base::read_exact(&mut stream, &mut buf).await?;
                    let finished = Instant::now();
                    if let Ok(mut slots) = slots.lock() {
                        slots[index] = Some(buf);
                    }
                    Ok::<Instant, Error>(finished)
                });
            }
            let mut last: Option<Instant> = None;
            while let Some(done) = readers.join_next().await {
                let finished = done.map_err(|e| e.to_string())??;
                last = Some(last.map_or(finished, |l| l.max(finished)));
            }
            Ok(last.ok_or("no stream")?)
        },
    )?;
    let bufs = slots
        .lock()
        .map_err(|_| "poisoned")?
        .drain(..)
        .map(Option::unwrap_or_default)
        .collect();
    Ok((finished.duration_since(began), bufs))
}
