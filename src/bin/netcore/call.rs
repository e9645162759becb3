//! `netcore call ROUTE [BODY | @FILE]`: one call, its answer on stdout: as it
//! came, or pretty JSON when it parses as JSON and stdout is a terminal (or
//! `--json`). An error answer is one line on stderr and exit code 1.

use crate::link_args::{self, LinkArgs};
use crate::output::{self, CliError};
use clap::{Args, ValueEnum};
use netcore::{Body, CallError, Payload, Priority, Response};
use std::path::PathBuf;
use std::time::Duration;

/// `netcore call`.
#[derive(Args, Debug)]
pub struct CallArgs {
    /// The route to call.
    pub route: String,
    /// The request's body: text as given, `@FILE` for a file streamed from
    /// disk, `@-` for stdin; empty if left out.
    pub body: Option<String>,
    /// Give up (and cancel the call) if no answer came within this long
    /// (`30`, `1.5s`, `500ms`, `2m`).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = output::parse_duration)]
    pub timeout: Duration,
    /// The request's priority class.
    #[arg(long, value_enum, default_value_t = PriorityArg::Normal)]
    pub priority: PriorityArg,
    /// A header `NAME=VALUE` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// Print a JSON answer pretty even when stdout is no terminal, and an
    /// error answer as `{"error": {"code", "message"}}` on stdout too.
    #[arg(long, conflicts_with = "raw")]
    pub json: bool,
    /// Print the answer exactly as it came, even on a terminal.
    #[arg(long)]
    pub raw: bool,
    #[command(flatten)]
    pub link: LinkArgs,
}

/// A priority class on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PriorityArg {
    /// Commands that must overtake everything.
    Urgent,
    /// Ahead of normal traffic.
    High,
    /// The default.
    Normal,
    /// Bulk transfers.
    Bulk,
}

impl From<PriorityArg> for Priority {
    fn from(p: PriorityArg) -> Priority {
        match p {
            PriorityArg::Urgent => Priority::Urgent,
            PriorityArg::High => Priority::High,
            PriorityArg::Normal => Priority::Normal,
            PriorityArg::Bulk => Priority::Bulk,
        }
    }
}

/// Runs `netcore call`.
pub async fn run(args: CallArgs) -> Result<(), CliError> {
    let side = args.link.side()?;
    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--header {header:?}: expected NAME=VALUE")))?;
        headers.push((name.to_owned(), netcore::Bytes::from(value.to_owned())));
    }
    let body = match args.body.as_deref() {
        None => Payload::empty(),
        Some("@-") => {
            let mut all = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut all)
                .map_err(|e| CliError::new(format!("reading stdin: {e}")))?;
            Payload::Bytes(all.into())
        }
        Some(text) => match text.strip_prefix('@') {
            Some(path) => {
                let path = PathBuf::from(path);
                std::fs::metadata(&path)
                    .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
                Payload::File(path)
            }
            None => Payload::Bytes(text.to_owned().into()),
        },
    };
    let endpoint = args.link.builder(std::slice::from_ref(&side))?.start();
    let opened = link_args::open(&endpoint, &side).await?;
    let link = opened.first_link().await?;
    let answer = link
        .request(args.route.clone(), body)
        .priority(args.priority.into())
        .headers(headers)
        .timeout(args.timeout)
        .await;
    let outcome = match answer {
        Ok(response) => print_answer(response, args.json, args.raw).await,
        Err(error) => Err(call_failed(&args.route, error, args.json)),
    };
    endpoint.stop().await;
    outcome
}

/// The error of a failed call; with `json`, also printed on stdout as JSON.
fn call_failed(route: &str, error: CallError, json: bool) -> CliError {
    if json {
        let (code, message) = match &error {
            CallError::Remote { code, message } => (format!("{code:?}"), message.clone()),
            other => (format!("{:?}", other.code()), other.to_string()),
        };
        let _ = output::json_line(&serde_json::json!({
            "error": { "code": code, "message": message }
        }));
    }
    match error {
        CallError::Remote { code, message } => {
            CliError::new(format!("{route}: the peer answered {code}: {message}"))
        }
        other => CliError::new(format!("{route}: {}", CliError::from(other))),
    }
}

/// Answers larger than this are never parsed as JSON, just copied.
const MAX_PRETTY: u64 = 16 << 20;

/// Prints the answer's body on stdout: pretty JSON if it parses and a human
/// (or `--json`) reads it, else as it came (a large one chunk by chunk).
async fn print_answer(response: Response, json: bool, raw: bool) -> Result<(), CliError> {
    let pretty = !raw && (json || output::stdout_is_terminal());
    let body = response.body;
    if pretty && body.len() <= MAX_PRETTY {
        let bytes = body
            .into_bytes()
            .await
            .map_err(|e| CliError::new(format!("reading the answer: {e}")))?;
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let text = serde_json::to_string_pretty(&value)
                .map_err(|e| CliError::new(format!("printing the answer: {e}")))?;
            return output::line(text);
        }
        output::write_stdout(&bytes)?;
        if output::stdout_is_terminal() && !bytes.ends_with(b"\n") && !bytes.is_empty() {
            output::write_stdout(b"\n")?;
        }
        return Ok(());
    }
    copy_body(body).await
}

/// Copies a body to stdout chunk by chunk.
async fn copy_body(body: Body) -> Result<(), CliError> {
    let mut chunks = body.into_chunks(256 * 1024);
    while let Some(chunk) = chunks
        .next()
        .await
        .map_err(|e| CliError::new(format!("reading the answer: {e}")))?
    {
        output::write_stdout(&chunk)?;
    }
    Ok(())
}
