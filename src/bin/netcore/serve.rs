//! `netcore serve`: an endpoint with the built-in routes, for poking at a link:
//! `echo` (the body back), `stats` (the endpoint's link statistics as JSON)
//! and, with `--dir`, the file store ([`crate::files`]). Runs until Ctrl-C or SIGTERM, or
//! until its one opened link goes down for good.

use crate::files;
use crate::link_args::{self, LinkArgs, Opened};
use crate::output::{self, CliError};
use clap::Args;
use netcore::{Endpoint, EndpointBuilder, Json, Request};
use std::path::PathBuf;
use std::sync::Arc;

/// `netcore serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub link: LinkArgs,
    /// Serve a file store over DIR: `files/put/NAME`, `files/get/NAME`,
    /// `files/list`.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print each link's arrival and departure as JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// Adds the built-in routes to `builder`: `echo`, `stats`, and the file store
/// over `dir` if given (bodies of `files/put/` streamed to disk as they arrive).
pub fn builtin_routes(
    builder: EndpointBuilder,
    dir: Option<PathBuf>,
    watcher: Arc<dyn files::Watcher>,
) -> Result<EndpointBuilder, CliError> {
    let builder = builder
        .route("echo", |request: Request| async move {
            Ok::<_, netcore::HandlerError>(request.body.into_bytes().await?)
        })
        .route("stats", |endpoint: Endpoint| async move {
            Json(endpoint.stats().await)
        });
    Ok(match dir {
        Some(dir) => {
            let meta = std::fs::metadata(&dir)
                .map_err(|e| CliError::new(format!("--dir {}: {e}", dir.display())))?;
            if !meta.is_dir() {
                return Err(CliError::new(format!(
                    "--dir {}: not a directory",
                    dir.display()
                )));
            }
            builder
                .stream_bodies(files::PUT)
                .blueprint(files::blueprint(dir, watcher))
        }
        None => builder,
    })
}

/// Runs `netcore serve`.
pub async fn run(args: ServeArgs) -> Result<(), CliError> {
    let side = args.link.side()?;
    let builder = args.link.builder(std::slice::from_ref(&side))?;
    let endpoint = builtin_routes(builder, args.dir.clone(), Arc::new(files::Quiet))?.start();
    let opened = link_args::open(&endpoint, &side).await?;
    let json = args.json;
    let announce = move |link: &netcore::Link, up: bool| -> Result<(), CliError> {
        if json {
            output::json_line(&serde_json::json!({
                "link": link.id().0,
                "up": up,
            }))
        } else {
            eprintln!("{} {}", link.id(), if up { "up" } else { "down" });
            Ok(())
        }
    };
    let serving = async {
        match &opened {
            Opened::Link(link) => {
                announce(link, true)?;
                let why = link.closed().await;
                announce(link, false)?;
                Err::<(), _>(CliError::new(format!("the link went down: {why}")))
            }
            Opened::Serving(serving) => {
                while let Some(link) = serving.next_link().await {
                    announce(&link, true)?;
                    actix_rt::spawn(async move {
                        let why = link.closed().await;
                        tracing::info!(link = %link.id(), %why, "link down");
                        let _ = announce(&link, false);
                    });
                }
                Ok(())
            }
        }
    };
    tokio::select! {
        outcome = serving => outcome,
        _ = output::shutdown() => {
            endpoint.stop().await;
            Ok(())
        }
    }
}
