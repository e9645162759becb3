//! `netcore bridge`: joins two links, so a peer on one reaches the peer on the
//! other (a remote machine reaching a serial device through a gateway).
//!
//! What "joins" means: the bridge is one endpoint with both links and no route
//! of its own. Every request arriving on one side is forwarded to the other
//! side with `Link::forward` (same route, priority, headers and body, a large
//! body streamed on as it arrives) and the answer, error answers included,
//! comes back to the caller; a caller that cancels cancels the forwarded call.
//! One-way messages go on as one-way messages (`Link::forward_one_way`). A
//! listening side may have many links: requests from the other side go to the
//! oldest one that is up. A side with no link up answers `GoingAway`.

use crate::link_args::{self, LinkArgs, Opened, Side};
use crate::output::{self, CliError};
use clap::Args;
use netcore::actors::transport::Dialect;
use netcore::{ErrorCode, HandlerError, Link, LinkId, Reply, Request, Response};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `netcore bridge`.
#[derive(Args, Debug)]
pub struct BridgeArgs {
    /// The second link as a spec, when both are of one kind or speak different
    /// dialects: `serial:PATH@BAUD[?data=7|8&parity=..&stop=..&flow=..]`,
    /// `tcp:HOST:PORT`, `unix:PATH` or `listen:ADDR` (`listen:unix:PATH`), with
    /// `+py` after the scheme for the Python dialect (`tcp+py:HOST:PORT`,
    /// `listen+py:ADDR`); `--dialect` applies to the other link only.
    #[arg(long, value_name = "SPEC")]
    pub to: Option<String>,
    /// How long a forwarded call may wait for its answer.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = output::parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub link: LinkArgs,
}

/// The links of each side, oldest first.
#[derive(Default)]
struct Sides {
    links: Mutex<[Vec<Link>; 2]>,
}

impl Sides {
    fn add(&self, side: usize, link: Link) {
        if let Ok(mut links) = self.links.lock() {
            links[side].retain(|l| !matches!(l.state(), netcore::LinkState::Down(_)));
            links[side].push(link);
        }
    }

    /// The first link up on the other side than link `id`'s. A link just
    /// accepted may send its first request before its listener's loop took it
    /// in: an unknown link is looked up again for a moment.
    async fn across(&self, id: LinkId) -> Result<Link, HandlerError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(link) = self.other_side(id)? {
                return link.ok_or_else(|| {
                    HandlerError::new(
                        ErrorCode::GoingAway,
                        "the other side of the bridge is not connected",
                    )
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HandlerError::new(ErrorCode::Refused, "unknown link"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `None` if link `id` is on no side (yet); else the first link up on the
    /// other side, if any.
    fn other_side(&self, id: LinkId) -> Result<Option<Option<Link>>, HandlerError> {
        let links = self
            .links
            .lock()
            .map_err(|_| HandlerError::failed("bridge state poisoned"))?;
        let Some(from) = links
            .iter()
            .position(|side| side.iter().any(|l| l.id() == id))
        else {
            return Ok(None);
        };
        Ok(Some(links[1 - from].iter().find(|l| l.is_up()).cloned()))
    }
}

/// Runs `netcore bridge`.
pub async fn run(args: BridgeArgs) -> Result<(), CliError> {
    let mut sides = args.link.sides()?;
    if let Some(to) = &args.to {
        let listen = match to.strip_prefix("listen:") {
            Some(addr) => Some((addr, Dialect::Native)),
            None => to
                .strip_prefix("listen+py:")
                .map(|addr| (addr, Dialect::python())),
        };
        sides.push(match listen {
            Some((addr, dialect)) => Side::Listen(
                match addr.strip_prefix("unix:") {
                    Some(path) => link_args::ListenAddr::Unix(path.into()),
                    None => link_args::ListenAddr::Tcp(addr.to_owned()),
                },
                dialect,
            ),
            None => Side::Open(link_args::parse_spec(to)?),
        });
    }
    if sides.len() != 2 {
        return Err(CliError::usage(format!(
            "a bridge joins two links, {} given: two of --serial, --tcp, --unix, --listen, --to",
            sides.len()
        )));
    }
    let state = Arc::new(Sides::default());
    let forwarding = state.clone();
    let endpoint = args
        .link
        .builder(&sides)?
        .call_timeout(args.timeout)
        .default_handler(move |from: LinkId, request: Request| {
            let state = forwarding.clone();
            async move { forward(&state, from, request).await }
        })
        .start();
    eprintln!("bridging {} <-> {}", sides[0], sides[1]);
    let mut opened = Vec::new();
    for (index, side) in sides.iter().enumerate() {
        let this = link_args::open(&endpoint, side).await?;
        if let Opened::Link(link) = &this {
            state.add(index, link.clone());
        }
        opened.push(this);
    }
    let mut watchers = Vec::new();
    for (index, this) in opened.into_iter().enumerate() {
        let state = state.clone();
        watchers.push(Box::pin(async move {
            match this {
                Opened::Link(link) => {
                    let why = link.closed().await;
                    CliError::new(format!("{} went down: {why}", link.id()))
                }
                Opened::Serving(serving) => {
                    while let Some(link) = serving.next_link().await {
                        tracing::info!(link = %link.id(), side = index, "link up");
                        state.add(index, link);
                    }
                    CliError::new("the listener stopped")
                }
            }
        }));
    }
    let lost = futures_util::future::select_all(watchers);
    let outcome = tokio::select! {
        (error, _, _) = lost => Err(error),
        _ = output::shutdown() => Ok(()),
    };
    endpoint.stop().await;
    outcome
}

/// Forwards `request` from link `from` across the bridge.
async fn forward(state: &Sides, from: LinkId, request: Request) -> Result<Reply, HandlerError> {
    let to = state.across(from).await?;
    tracing::debug!(%from, to = %to.id(), route = request.route(), "forwarding");
    if request.is_one_way() {
        to.forward_one_way(request).await?;
        return Ok(Reply::empty());
    }
    let answer: Response = to.forward(request).await?;
    netcore::IntoReply::into_reply(answer)
}
