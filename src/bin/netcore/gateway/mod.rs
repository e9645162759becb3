//! `netcore gateway --config FILE`: a long-running gateway from a config file
//! ([`config`]), supervised ([`run`]), with `/metrics` and a status page
//! ([`http`]) when given an HTTP address.

pub mod config;
pub mod http;
pub mod run;

use crate::output::CliError;
use clap::Args;
use std::path::PathBuf;
use std::rc::Rc;

/// `netcore gateway`'s arguments.
#[derive(Args, Debug)]
pub struct GatewayArgs {
    /// The gateway's config file (TOML; docs/gateway-config.md describes it).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Checks the config file and exits (0: valid; 2: the errors, each with
    /// its line and field, on stderr), without opening anything.
    #[arg(long)]
    pub check: bool,
    /// Serves `/metrics` (Prometheus) and the status page `/` on this address
    /// (overrides the config's `gateway.http`; port 0 for any free port).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
}

/// Runs `netcore gateway`: checks the config, then (without `--check`) starts
/// the gateway and serves until interrupted (Ctrl-C or SIGTERM), then stops
/// every link cleanly.
pub async fn run(args: GatewayArgs) -> Result<(), CliError> {
    let config = config::Config::load(&args.config).map_err(|errors| {
        // One line per error; the last one ends the command as a usage error.
        let mut lines: Vec<String> = errors
            .iter()
            .map(|error| format!("{}: {error}", args.config.display()))
            .collect();
        let last = lines.pop().unwrap_or_default();
        for line in lines {
            eprintln!("error: {line}");
        }
        CliError::usage(last)
    })?;
    if args.check {
        return crate::output::line(format_args!(
            "{}: ok (devices {}, listeners {}, uplinks {}, forwarding rules {}, telemetry rules {})",
            args.config.display(),
            config.devices.len(),
            config.listeners.len(),
            config.uplinks.len(),
            config.forwards.len(),
            config.telemetry.len()
        ));
    }
    let http = args.http.or(config.http);
    let gateway = Rc::new(
        run::Gateway::start(config)
            .await
            .map_err(|e| CliError::new(e.to_string()))?,
    );
    if let Some(addr) = http {
        let bound = http::serve(addr, gateway.clone())
            .await
            .map_err(|e| CliError::new(format!("http on {addr}: {e}")))?;
        eprintln!("http listening on {bound}");
        tracing::info!(address = %bound, "serving /metrics and the status page");
    }
    wait_for_signal().await;
    tracing::info!("stopping");
    gateway.stop().await;
    Ok(())
}

/// Waits for Ctrl-C, or SIGTERM on Unix.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
