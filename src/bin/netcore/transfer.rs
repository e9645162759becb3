//! `netcore send-file PATH` and `netcore recv-file DIR`: a file uploaded as a
//! call to `files/put/NAME` (streamed from disk as the link takes it; the
//! answer confirms it was stored), and the side that stores such uploads in
//! DIR (streamed to disk as they arrive). Both draw a progress bar with the
//! rate and the time left when stderr is a terminal, and stay quiet otherwise.

use crate::files::{self, Stored, Watcher};
use crate::link_args::{self, LinkArgs, Opened};
use crate::output::{self, CliError};
use clap::Args;
use netcore::HandlerError;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// `netcore send-file`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// The file to send.
    pub path: PathBuf,
    /// The route to upload to (default `files/put/NAME`, NAME the file's name:
    /// what `recv-file` and `serve --dir` store).
    #[arg(long, value_name = "ROUTE")]
    pub route: Option<String>,
    /// How long the peer may take to answer once the file has left.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = output::parse_duration)]
    pub timeout: Duration,
    /// Print the outcome as one JSON line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub link: LinkArgs,
}

/// `netcore recv-file`.
#[derive(Args, Debug)]
pub struct RecvArgs {
    /// Where received files go.
    pub dir: PathBuf,
    /// Exit after this many files were stored (0: keep receiving).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub count: u64,
    /// Print each file stored as one JSON line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub link: LinkArgs,
}

/// Runs `netcore send-file`.
pub async fn send(args: SendArgs) -> Result<(), CliError> {
    let side = args.link.side()?;
    let meta = std::fs::metadata(&args.path)
        .map_err(|e| CliError::new(format!("{}: {e}", args.path.display())))?;
    if !meta.is_file() {
        return Err(CliError::new(format!(
            "{}: not a file",
            args.path.display()
        )));
    }
    let name = args
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CliError::new(format!("{}: no file name", args.path.display())))?;
    let route = args
        .route
        .clone()
        .unwrap_or_else(|| format!("{}{name}", files::PUT));
    let endpoint = args.link.builder(std::slice::from_ref(&side))?.start();
    let opened = link_args::open(&endpoint, &side).await?;
    let link = opened.first_link().await?;
    let started = Instant::now();
    let bar = output::progress_bar(Some(meta.len()), &name);
    let outcome = async {
        let mut call = link
            .upload(route.clone(), args.path.clone())
            .timeout(args.timeout)
            .start()
            .await?;
        if let Some(transfer) = call.transfer() {
            while let Some(progress) = transfer.changed().await {
                bar.set_position(progress.sent);
            }
        }
        call.response().await
    }
    .await;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let response = outcome.map_err(|e| match e {
        netcore::CallError::Remote { code, message } => {
            CliError::new(format!("{route}: the peer answered {code}: {message}"))
        }
        other => CliError::new(format!(
            "sending {}: {}",
            args.path.display(),
            CliError::from(other)
        )),
    })?;
    let answer = response
        .body
        .into_bytes()
        .await
        .map_err(|e| CliError::new(format!("reading the answer: {e}")))?;
    let answer_json = serde_json::from_slice::<serde_json::Value>(&answer)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&answer).into()));
    if args.json {
        output::json_line(&serde_json::json!({
            "file": args.path.display().to_string(),
            "route": route,
            "bytes": meta.len(),
            "seconds": elapsed.as_secs_f64(),
            "answer": answer_json,
        }))?;
    } else {
        output::line(format_args!(
            "sent {} ({}) in {}, {}; the peer answered {}",
            args.path.display(),
            output::bytes(meta.len()),
            output::duration(elapsed),
            output::rate(meta.len(), elapsed),
            answer_json
        ))?;
    }
    endpoint.stop().await;
    Ok(())
}

/// The progress bar of uploads being received; reports each stored file.
struct Receiving {
    bar: Mutex<Option<(indicatif::ProgressBar, Instant)>>,
    stored: mpsc::UnboundedSender<(Stored, Duration)>,
}

impl Watcher for Receiving {
    fn started(&self, name: &str, total: Option<u64>) {
        if let Ok(mut bar) = self.bar.lock() {
            *bar = Some((output::progress_bar(total, name), Instant::now()));
        }
    }

    fn progress(&self, written: u64) {
        if let Ok(bar) = self.bar.lock() {
            if let Some((bar, _)) = bar.as_ref() {
                bar.set_position(written);
            }
        }
    }

    fn finished(&self, outcome: &Result<Stored, HandlerError>) {
        let started = match self.bar.lock() {
            Ok(mut bar) => bar.take().map(|(bar, started)| {
                bar.finish_and_clear();
                started
            }),
            Err(_) => None,
        };
        match outcome {
            Ok(stored) => {
                let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
                let _ = self.stored.send((
                    Stored {
                        name: stored.name.clone(),
                        size: stored.size,
                    },
                    elapsed,
                ));
            }
            Err(error) => eprintln!("warning: an upload failed: {error}"),
        }
    }
}

/// Runs `netcore recv-file`.
pub async fn receive(args: RecvArgs) -> Result<(), CliError> {
    let side = args.link.side()?;
    let (stored, mut files) = mpsc::unbounded_channel();
    let watcher = Arc::new(Receiving {
        bar: Mutex::new(None),
        stored,
    });
    let builder = args.link.builder(std::slice::from_ref(&side))?;
    let endpoint = crate::serve::builtin_routes(builder, Some(args.dir.clone()), watcher)?.start();
    let opened = link_args::open(&endpoint, &side).await?;
    let link_lost = async {
        match &opened {
            Opened::Link(link) => {
                let why = link.closed().await;
                CliError::new(format!("the link went down: {why}"))
            }
            Opened::Serving(serving) => {
                // Accepted links come and go; the listener keeps serving.
                while serving.next_link().await.is_some() {}
                CliError::new("the listener stopped")
            }
        }
    };
    let mut received = 0u64;
    let receiving = async {
        while let Some((file, elapsed)) = files.recv().await {
            received += 1;
            if args.json {
                output::json_line(&serde_json::json!({
                    "name": file.name,
                    "size": file.size,
                    "path": args.dir.join(&file.name).display().to_string(),
                    "seconds": elapsed.as_secs_f64(),
                }))?;
            } else {
                output::line(format_args!(
                    "received {} ({}) in {}, {}",
                    args.dir.join(&file.name).display(),
                    output::bytes(file.size),
                    output::duration(elapsed),
                    output::rate(file.size, elapsed)
                ))?;
            }
            if args.count != 0 && received >= args.count {
                break;
            }
        }
        Ok::<(), CliError>(())
    };
    let outcome = tokio::select! {
        outcome = receiving => outcome,
        error = link_lost => Err(error),
        _ = output::shutdown() => Ok(()),
    };
    // The last answer reaches the sender before the endpoint stops.
    endpoint.stop().await;
    outcome
}
