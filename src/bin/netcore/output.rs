//! What the tool prints and how it fails: [`CliError`] (one line on stderr and
//! an exit code), JSON and human formatting, progress bars that only a terminal
//! sees.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Exit code of a command that failed at run time (a link that does not open,
/// an error answer, a timeout). Usage errors exit with clap's 2.
pub const FAILURE: u8 = 1;
/// Exit code of a usage error found after parsing (clap's own code for them).
pub const USAGE: u8 = 2;

/// The error that ends a command: its one-line message and exit code.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// A run-time failure (exit code 1).
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code: FAILURE,
        }
    }

    /// A usage error clap could not see (exit code 2, with a hint at `--help`).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code: USAGE,
        }
    }

    /// The process's exit code.
    pub fn exit_code(&self) -> u8 {
        self.code
    }

    /// Prints the error as one line on stderr (a usage error adds where to
    /// find the usage, as clap does).
    pub fn report(&self) {
        let line = self.message.replace('\n', " ");
        if self.code == USAGE {
            eprintln!("error: {line}\n\nFor more information, try '--help'.");
        } else {
            eprintln!("error: {line}");
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Any error becomes a run-time failure, its message followed by its causes
/// that it does not already name.
impl<E: std::error::Error> From<E> for CliError {
    fn from(error: E) -> CliError {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        CliError::new(message)
    }
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT), or SIGTERM on
/// Unix (a service manager stopping it). Long-running commands then stop their
/// endpoint, which lets calls in flight finish, and exit with 0.
pub async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Writes `bytes` to stdout and flushes.
pub fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::new(format!("writing to stdout: {e}")))
}

/// Prints one line on stdout (flushed: scripts read it as it comes).
pub fn line(text: impl fmt::Display) -> Result<(), CliError> {
    write_stdout(format!("{text}\n").as_bytes())
}

/// Prints `value` as one line of JSON on stdout.
pub fn json_line(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string(value)
        .map_err(|e| CliError::new(format!("encoding JSON output: {e}")))?;
    line(text)
}

/// True if stdout is a terminal (a human reads it).
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// True if stderr is a terminal (progress bars are drawn there, else nowhere).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A byte count for humans: `512 B`, `3.0 KiB`, `12.5 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A rate for humans: `bytes(n / seconds)/s`.
pub fn rate(n: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return String::from("-");
    }
    format!("{}/s", bytes((n as f64 / secs) as u64))
}

/// A duration for humans: `850 ms`, `12.3 s`, `4 min 05 s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{} min {:02} s", s / 60, s % 60)
    }
}

/// Parses a duration: `30` (seconds), `1.5s`, `500ms`, `2m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is no duration (e.g. 30, 1.5s, 500ms, 2m)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!(
            "{text:?} is no duration (e.g. 30, 1.5s, 500ms, 2m)"
        ));
    }
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

/// A progress bar over `total` bytes on stderr, showing the rate and the time
/// left; hidden unless stderr is a terminal (a piped run stays quiet).
pub fn progress_bar(total: Option<u64>, label: &str) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::no_length(),
    };
    if !stderr_is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
        return bar;
    }
    bar.set_draw_target(ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
    } else {
        "{msg} {bytes} {binary_bytes_per_sec} {elapsed}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    bar.tick(); // drawn at once, not only at the first update
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024), "3.0 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 + 512 * 1024), "5.5 MiB");
    }
}
