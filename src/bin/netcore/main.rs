//! `netcore`: the command-line tool. Serves and calls over any link, moves files
//! with a progress bar, watches a link's statistics, bridges two links and lists
//! serial ports, and runs a gateway from a config file (with `/metrics` and a
//! status page), on the library's public API only.
//!
//! Each subcommand has its module; `link_args` turns the link options every
//! command shares into links, `output` prints for humans or scripts (`--json`)
//! and carries the error that ends a command, `files` is the file store that
//! `serve` and `recv-file` share.
// A command-line tool talks through stdout and stderr: the workspace's
// print_stdout / print_stderr lints guard the library, not this binary.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bridge;
mod call;
mod files;
mod gateway;
mod link_args;
mod output;
mod ports;
mod serve;
mod transfer;
mod watch;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Many concurrent messages over one byte channel: serve, call, move files,
/// watch and bridge links (serial ports, TCP, Unix sockets) from a terminal.
#[derive(Parser, Debug)]
#[command(name = "netcore", version, propagate_version = true)]
struct Cli {
    /// Log output on stderr: errors only by default (a failure is then one
    /// line), -v info, -vv debug, -vvv trace (RUST_LOG, when set, decides
    /// instead).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs an endpoint with built-in routes: `echo`, `stats`, and with
    /// `--dir` a file store (`files/put/NAME`, `files/get/NAME`, `files/list`).
    Serve(serve::ServeArgs),
    /// Calls ROUTE with a body (text, or @FILE streamed from disk) and prints
    /// the answer.
    Call(call::CallArgs),
    /// Uploads a file (to `files/put/NAME` unless `--route` says otherwise)
    /// with a progress bar; prints the peer's answer.
    SendFile(transfer::SendArgs),
    /// Receives files sent with `send-file` into DIR, with a progress bar.
    RecvFile(transfer::RecvArgs),
    /// Shows a link's live statistics and events (serving the built-in routes
    /// meanwhile).
    Watch(watch::WatchArgs),
    /// Joins two links: every request (and one-way message) arriving on one
    /// is forwarded to the other, and the answer comes back.
    Bridge(bridge::BridgeArgs),
    /// Lists serial ports with their USB identities.
    Ports(ports::PortsArgs),
    /// Runs a gateway from a config file: devices, listeners, uplinks,
    /// forwarding and telemetry rules; `/metrics` and a status page with
    /// `--http`. `--check` validates the file only.
    Gateway(gateway::GatewayArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The gateway runs for long: its warnings (a device lost, a link that
    // cannot open) belong in its log by default.
    init_logging(cli.verbose, matches!(cli.command, Command::Gateway(_)));
    let system = actix_rt::System::new();
    let outcome = system.block_on(run(cli.command));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error.report();
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(command: Command) -> Result<(), output::CliError> {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Call(args) => call::run(args).await,
        Command::SendFile(args) => transfer::send(args).await,
        Command::RecvFile(args) => transfer::receive(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Bridge(args) => bridge::run(args).await,
        Command::Ports(args) => ports::run(args),
        Command::Gateway(args) => gateway::run(args).await,
    }
}

/// Logs to stderr through tracing-subscriber: `RUST_LOG` when set, else errors
/// only (warnings too for a long-running command), more with each `-v`.
fn init_logging(verbose: u8, long_running: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 if long_running => "warn",
        0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(default),
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(verbose >= 2)
        .init();
}
