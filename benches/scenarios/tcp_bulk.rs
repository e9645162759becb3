//! `tcp_bulk`: one large message A→B over TCP loopback, against raw TCP and one
//! yamux stream moving the same bytes. Each system opens its connection once and
//! keeps it for the whole scenario; an unmeasured first round warms every
//! connection up; then rounds alternate netcore, raw, yamux. Each system's figure
//! is the median of its rounds, and the ratios are medians of per-round paired
//! ratios.
//!
//! netcore runs as a user gets it from `Endpoint::connect_tcp`/`accept_tcp`
//! (`LinkOptions::stream()`), with the route's large bodies streamed to the handler
//! (`EndpointBuilder::stream_bodies`): the handler keeps the chunks as they arrive,
//! as the baselines read into a buffer. (Spooling to disk is measured by
//! `large_spool`.) The timed section runs from the `send` call to the handler
//! having the last chunk; the bytes are checked after it.

use crate::data::{random_bytes, touched_buffer, Received};
use crate::peers::{Error, Peers};
use crate::report::Report;
use crate::stats::mbps;
use crate::{raw_tcp, yamux_base};
use netcore::{Endpoint, EndpointBuilder, HandlerError, LinkOptions, Reply, Request};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

/// Runs the scenario.
pub fn run(quick: bool) -> Result<Report, Error> {
    let len: usize = if quick { 64 << 20 } else { 256 << 20 };
    let rounds: usize = if quick { 11 } else { 9 };
    let data = random_bytes(0xb01c, len);
    let crc = crc32c::crc32c(&data);
    let mut report = Report::new("tcp_bulk");
    let mut raw_buf = Some(touched_buffer(len));
    let mut yamux_buf = Some(touched_buffer(len));
    let (mut netcore, mut raw, mut yamux) = (Vec::new(), Vec::new(), Vec::new());
    // The netcore handler's destination buffer, pre-touched like the baselines'.
    let netcore_buf = Arc::new(Mutex::new(Some(touched_buffer(len))));
    actix_rt::System::new().block_on(async {
        let (tx, mut arrivals) = mpsc::unbounded_channel::<(Instant, Received)>();
        let peers = Peers::tcp(bulk_server(tx, netcore_buf.clone()), LinkOptions::stream()).await?;
        let raw_tcp = raw_tcp::Bulk::open()?;
        let yamux_session = yamux_base::Session::open(yamux_base::bulk_config())?;
        // Round 0 warms every connection up and is not counted.
        for round in 0..=rounds {
            let began = Instant::now();
            peers.link.send("bulk", data.clone()).await?;
            let (at, body) = arrivals.recv().await.ok_or("server endpoint gone")?;
            let netcore_mbps = mbps(len as u64, at - began);
            if let Some(why) = body.check(&format!("netcore round {round}"), &data, crc) {
                report.fail(why);
            }
            let mut buf = body.buf;
            buf.fill(0);
            *netcore_buf.lock().map_err(|_| "buffer lock poisoned")? = Some(buf);

            let mut buf = raw_buf.take().ok_or("raw buffer lost")?;
            buf.fill(0);
            let (elapsed, buf) = raw_tcp.transfer(data.clone(), buf)?;
            let raw_mbps = mbps(len as u64, elapsed);
            if let Some(why) = crate::data::compare("raw tcp", &buf, &data) {
                report.fail(why);
            }
            raw_buf = Some(buf);

            let mut buf = yamux_buf.take().ok_or("yamux buffer lost")?;
            buf.fill(0);
            let (elapsed, buf) = yamux_bulk(&yamux_session, data.clone(), buf)?;
            let yamux_mbps = mbps(len as u64, elapsed);
            if let Some(why) = crate::data::compare("yamux", &buf, &data) {
                report.fail(why);
            }
            yamux_buf = Some(buf);
            if round > 0 {
                netcore.push(netcore_mbps);
                raw.push(raw_mbps);
                yamux.push(yamux_mbps);
            }
        }
        Ok::<(), Error>(())
    })?;
    report.field("bytes", len);
    report.field("rounds", rounds);
    let what = format!("{} MiB", len >> 20);
    let (ratio_raw, ratio_yamux) = report.throughput_vs_baselines(&what, netcore, raw, yamux);
    report.ratio_goal("ratio_raw ≥ 0.80", &ratio_raw, 0.80);
    report.ratio_goal("ratio_yamux ≥ 1.0", &ratio_yamux, 1.0);
    Ok(report)
}

/// The server endpoint: route `bulk` streams its body into the buffer in `dest`
/// (pre-touched, as the baselines' are) and reports the arrival on `tx`.
fn bulk_server(
    tx: mpsc::UnboundedSender<(Instant, Received)>,
    dest: Arc<Mutex<Option<Vec<u8>>>>,
) -> EndpointBuilder {
    Endpoint::builder()
        .stream_bodies("bulk")
        .route("bulk", move |req: Request| {
            let tx = tx.clone();
            let buf = dest.lock().ok().and_then(|mut slot| slot.take());
            async move {
                let buf = buf.ok_or_else(|| HandlerError::failed("no destination buffer"))?;
                let received = Received::take(req.body, buf).await;
                let _ = tx.send((Instant::now(), received));
                Ok(Reply::empty())
            }
        })
}

/// One yamux stream carrying `data`; returns the time from opening the stream to
/// the last byte read, and the bytes read.
fn yamux_bulk(
    session: &yamux_base::Session,
    data: bytes::Bytes,
    mut buf: Vec<u8>,
) -> Result<(std::time::Duration, Vec<u8>), Error> {
    let (began, (finished, buf)) = session.round(
        |opener| async move {
            let began = Instant::now();
            yamux_base::send_on_new_stream(&opener, &[], &data).await?;
            Ok(began)
        },
        |inbound| async move {
            let mut stream = inbound.next().await?;
            yamux_base::read_exact(&mut stream, &mut buf).await?;
            Ok((Instant::now(), buf))
        },
    )?;
    Ok((finished.duration_since(began), buf))
}
