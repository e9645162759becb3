//! `netcore watch`: an endpoint with the built-in routes (as `serve`) whose
//! links' statistics and events are shown live: redrawn in place on a
//! terminal, one block per update otherwise, one JSON line per update with
//! `--json` (`{"type": "stats", ...}` with the endpoint's statistics, and
//! `{"type": "event", ...}` for each event as it happens).

use crate::files;
use crate::link_args::{self, LinkArgs};
use crate::output::{self, CliError};
use clap::Args;
use netcore::{EndpointStats, Event, LinkStats};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;

/// `netcore watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Time between updates (`1s`, `250ms`).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = output::parse_duration)]
    pub interval: Duration,
    /// Exit after this many updates (0: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub updates: u64,
    /// Serve the file store over DIR too (as `serve --dir`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// One JSON line per update and per event.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub link: LinkArgs,
}

/// How many recent events the human view keeps.
const RECENT_EVENTS: usize = 8;

/// Runs `netcore watch`.
pub async fn run(args: WatchArgs) -> Result<(), CliError> {
    let side = args.link.side()?;
    let builder = args.link.builder(std::slice::from_ref(&side))?;
    let endpoint =
        crate::serve::builtin_routes(builder, args.dir.clone(), Arc::new(files::Quiet))?.start();
    let mut events = endpoint.events().subscribe();
    let opened = link_args::open(&endpoint, &side).await?;
    if let link_args::Opened::Serving(serving) = &opened {
        // Accepted links join the endpoint; nothing else to do with them here.
        let serving = serving.clone();
        actix_rt::spawn(async move { while serving.next_link().await.is_some() {} });
    }
    let started = Instant::now();
    let redraw = !args.json && output::stdout_is_terminal();
    let mut recent: VecDeque<(Duration, String)> = VecDeque::new();
    let mut ticker = tokio::time::interval(args.interval);
    let mut updates = 0u64;
    let watching = async {
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let stats = endpoint.stats().await;
                    if args.json {
                        let mut value = serde_json::to_value(&stats)
                            .map_err(|e| CliError::new(format!("encoding stats: {e}")))?;
                        if let Some(object) = value.as_object_mut() {
                            object.insert("type".into(), "stats".into());
                            object.insert("elapsed".into(), started.elapsed().as_secs_f64().into());
                        }
                        output::json_line(&value)?;
                    } else {
                        let text = render(&stats, &recent, started.elapsed());
                        if redraw {
                            // Home the cursor and clear the screen, then draw.
                            output::write_stdout(format!("\x1b[H\x1b[2J{text}").as_bytes())?;
                        } else {
                            output::line(text)?;
                        }
                    }
                    updates += 1;
                    if args.updates != 0 && updates >= args.updates {
                        return Ok::<(), CliError>(());
                    }
                }
                event = events.recv() => match event {
                    Ok(event) => {
                        if matches!(event, Event::TransferProgress { .. }) && !args.json {
                            continue; // The stats show transfers; the list stays readable.
                        }
                        if args.json {
                            output::json_line(&event_json(&event, started.elapsed()))?;
                        } else {
                            recent.push_back((started.elapsed(), describe(&event)));
                            while recent.len() > RECENT_EVENTS {
                                recent.pop_front();
                            }
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "events missed");
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
            }
        }
    };
    let outcome = tokio::select! {
        outcome = watching => outcome,
        _ = output::shutdown() => Ok(()),
    };
    endpoint.stop().await;
    outcome
}

/// The human view: one block per link, then the recent events.
fn render(
    stats: &EndpointStats,
    recent: &VecDeque<(Duration, String)>,
    elapsed: Duration,
) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "netcore watch: {} link(s), {} up, {} elapsed",
        stats.totals.links,
        stats.totals.up,
        output::duration(elapsed)
    );
    if stats.links.is_empty() {
        let _ = writeln!(text, "  (no link)");
    }
    for link in &stats.links {
        render_link(&mut text, link);
    }
    let _ = writeln!(text, "events:");
    if recent.is_empty() {
        let _ = writeln!(text, "  (none yet)");
    }
    for (at, event) in recent {
        let _ = writeln!(text, "  {:>8.1} s  {event}", at.as_secs_f64());
    }
    text
}

fn render_link(text: &mut String, link: &LinkStats) {
    let ms = |d: Option<Duration>| match d {
        Some(d) => format!("{:.1} ms", d.as_secs_f64() * 1000.0),
        None => String::from("-"),
    };
    let _ = writeln!(
        text,
        "{}  {:?} for {}  (up {}, {} reconnect(s))",
        link.link,
        link.state,
        output::duration(link.time_in_state),
        output::duration(link.uptime),
        link.reconnects
    );
    let _ = writeln!(
        text,
        "  out  {:>10} wire, {:>10} payload, {} frames",
        output::bytes(link.bytes_out),
        output::bytes(link.payload_out),
        link.frames_out
    );
    let _ = writeln!(
        text,
        "  in   {:>10} wire, {:>10} payload, {} frames",
        output::bytes(link.bytes_in),
        output::bytes(link.payload_in),
        link.frames_in
    );
    let _ = writeln!(
        text,
        "  rtt {} (rto {}), {} retransmitted, {} duplicates, {} dropped (crc {}, tampered {}, replayed {})",
        ms(link.srtt),
        ms(link.rto),
        link.retransmissions,
        link.duplicates,
        link.dropped.total(),
        link.dropped.crc,
        link.dropped.tampered,
        link.dropped.replayed
    );
    let q = link.queued_bytes;
    let _ = writeln!(
        text,
        "  queued urgent {} high {} normal {} bulk {}; streams out {} in {}; calls waiting {}, requests served {}",
        output::bytes(q.urgent),
        output::bytes(q.high),
        output::bytes(q.normal),
        output::bytes(q.bulk),
        link.streams_out,
        link.streams_in,
        link.calls_awaiting_answer,
        link.requests_in_service
    );
}

/// An event in a few words.
fn describe(event: &Event) -> String {
    match event {
        Event::Started => String::from("endpoint started"),
        Event::Stopped => String::from("endpoint stopped"),
        Event::LinkUp { link } => format!("{link} up"),
        Event::LinkDown { link, reason } => format!("{link} down: {reason}"),
        Event::LinkRetrying {
            link,
            attempt,
            error,
            wait,
            ..
        } => format!(
            "{link} retrying (attempt {attempt} in {}): {error}",
            output::duration(*wait)
        ),
        Event::LinkRecovered {
            link,
            attempts,
            outage,
        } => format!(
            "{link} recovered after {attempts} attempt(s), {} out",
            output::duration(*outage)
        ),
        Event::Request { link, route } => format!("{link} request {route}"),
        Event::Response { link, route, ok } => {
            format!(
                "{link} answered {route} ({})",
                if *ok { "ok" } else { "error" }
            )
        }
        Event::Canceled { link, stream } => format!("{link} stream {stream:?} canceled"),
        Event::TransferProgress {
            link,
            stream,
            done,
            total,
        } => format!("{link} stream {stream:?} {done}/{total:?} bytes"),
        other => format!("{other:?}"),
    }
}

/// An event as a JSON object: `type`, `event` (its kind), `elapsed` and the
/// event's fields.
fn event_json(event: &Event, elapsed: Duration) -> serde_json::Value {
    use serde_json::json;
    let (kind, fields) = match event {
        Event::Started => ("started", json!({})),
        Event::Stopped => ("stopped", json!({})),
        Event::LinkUp { link } => ("link_up", json!({ "link": link.0 })),
        Event::LinkDown { link, reason } => (
            "link_down",
            json!({ "link": link.0, "reason": reason.to_string() }),
        ),
        Event::LinkRetrying {
            link,
            attempt,
            how,
            error,
            wait,
        } => (
            "link_retrying",
            json!({ "link": link.0, "attempt": attempt, "how": format!("{how:?}"),
                    "error": error.to_string(), "wait": wait.as_secs_f64() }),
        ),
        Event::LinkRecovered {
            link,
            attempts,
            outage,
        } => (
            "link_recovered",
            json!({ "link": link.0, "attempts": attempts, "outage": outage.as_secs_f64() }),
        ),
        Event::Request { link, route } => ("request", json!({ "link": link.0, "route": route })),
        Event::Response { link, route, ok } => (
            "response",
            json!({ "link": link.0, "route": route, "ok": ok }),
        ),
        Event::Canceled { link, stream } => (
            "canceled",
            json!({ "link": link.0, "stream": format!("{stream:?}") }),
        ),
        Event::TransferProgress {
            link,
            stream,
            done,
            total,
        } => (
            "transfer_progress",
            json!({ "link": link.0, "stream": format!("{stream:?}"), "done": done, "total": total }),
        ),
        other => ("other", json!({ "text": format!("{other:?}") })),
    };
    let mut value = json!({ "type": "event", "event": kind, "elapsed": elapsed.as_secs_f64() });
    if let (Some(object), serde_json::Value::Object(fields)) = (value.as_object_mut(), fields) {
        object.extend(fields);
    }
    value
}
