//! [`LinkOptions`] (how a link runs: protocol settings plus the runtime's),
//! [`Connector`] (how a broken transport is reopened) and [`ReconnectPolicy`]
//! (how often, and how long, a link tries to get its peer back).

use crate::event_bus::EventBus;
use crate::stream_actor::SpoolLimits;
use crate::transport::{BoxedTransport, Dialect, SecureOptions};
use netcore_proto::link::{Keepalive, LinkConfig};
use netcore_proto::reassembly::MemoryBudget;
use std::fmt;
use std::time::Duration;

/// How a link runs: protocol settings plus the runtime's.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    /// Framing, chunk size, windows and limits (see [`LinkConfig::serial`] and
    /// [`LinkConfig::stream`]), and whether a silent peer is waited for
    /// ([`LinkConfig::supervised`]); the nonce is drawn at random when the link starts.
    pub config: LinkConfig,
    /// Wire bytes the writer takes per pull: about one chunk on slow links (an
    /// urgent message waits at most one chunk), large on fast ones (fewer writes).
    pub batch_budget: usize,
    /// Where large inbound messages spool.
    pub spool: SpoolLimits,
    /// Flush the transport after each batch (off for serial ports, where flushing
    /// blocks until the UART drained).
    pub flush: bool,
    /// Reopens the transport after it breaks (reopen the serial device, reconnect
    /// TCP). With one, a broken transport does not end the link: it reconnects
    /// with exponential backoff and jitter and resumes the session (reliable mode),
    /// or fails the calls in flight with `PeerReset` if the peer lost it.
    pub connector: Option<Connector>,
    /// How a link whose peer is lost tries to get it back: the backoff between
    /// reopening attempts (with a connector) or probes of a silent peer
    /// ([`LinkConfig::supervised`]), and when to give up.
    pub reconnect: ReconnectPolicy,
    /// Where the link reports its outages: an [`Event::LinkRetrying`](crate::event::Event::LinkRetrying)
    /// per attempt, [`Event::LinkRecovered`](crate::event::Event::LinkRecovered)
    /// once the peer is back. The endpoint sets its own bus.
    pub events: Option<EventBus>,
    /// Without a connector (the accepting side of TCP): how long a link whose
    /// transport broke waits for the peer to come back on a new connection (the
    /// endpoint routes it here by session id) before going down.
    pub resume_window: Option<std::time::Duration>,
    /// The arbiter (thread) the link's actors run on; `None`: the current one.
    /// The endpoint spreads its links over a small pool of arbiters so the two
    /// directions of a busy link, or several busy links, use several cores.
    pub arbiter: Option<actix::ArbiterHandle>,
    /// Bytes of one-way messages with in-memory bodies the link queues ahead of
    /// its wire (each counts its body and route plus 64 bytes); `Link::send` waits
    /// while they are over it, so a fast producer is paced by the wire (see
    /// [`crate::one_way_queue`]).
    pub one_way_queue: usize,
    /// The budget the link's served messages share with other links (see
    /// [`crate::work_budget`]): inbound request and one-way bodies until their
    /// handler is done, answers until written. `None`: unbounded (the endpoint
    /// gives every link its own budget's share).
    pub work_budget: Option<MemoryBudget>,
    /// What the link speaks on its wire: the native protocol, or Python Netcore
    /// 0.1.3 through a bridge (see [`crate::transport::py`]). A Python link runs the
    /// native protocol over an in-memory pipe to the bridge: stream framing, no
    /// reliable mode, no keepalive, no authenticated mode (whatever `config` says),
    /// and a new bridge on every transport its connector opens.
    pub dialect: Dialect,
}

impl LinkOptions {
    /// A serial or radio link at `baud`, 8N1 (10 bits a byte on the wire): COBS
    /// framing, ~10 ms chunks, one frame per write, the reliable mode, a
    /// keepalive PING after 5 s of silence, one-way messages queued up to about
    /// a second of the line (at least 16 KiB: enough to keep the line busy,
    /// little enough for a gateway with hundreds of links). Supervised: a peer
    /// silent for 3 unanswered PINGs (or that never acknowledges a frame) does
    /// not take the link down; it is probed with [`ReconnectPolicy::serial`]'s
    /// backoff until it answers.
    pub fn serial(baud: u32) -> LinkOptions {
        LinkOptions::serial_at_rate(netcore_proto::config::serial_bytes_per_sec(baud))
    }

    /// A serial or radio link moving `bytes_per_sec` payload bytes a second, as
    /// [`LinkOptions::serial`]: for a line whose characters are not 8N1, the
    /// rate of its [`SerialSpec`](crate::transport::SerialSpec)
    /// (`spec.bytes_per_sec()`: the baud rate over the bits a byte takes,
    /// counting start, data, parity and stop bits and the line code).
    pub fn serial_at_rate(bytes_per_sec: u32) -> LinkOptions {
        let mut config = LinkConfig::serial_at_rate(bytes_per_sec, 0);
        config.keepalive = Some(Keepalive {
            interval: std::time::Duration::from_secs(5),
            max_missed: 3,
        });
        config.supervised = true;
        LinkOptions {
            config,
            batch_budget: 1,
            spool: SpoolLimits::default(),
            flush: false,
            connector: None,
            reconnect: ReconnectPolicy::serial(),
            events: None,
            resume_window: None,
            arbiter: None,
            one_way_queue: (bytes_per_sec as usize).max(16 * 1024),
            work_budget: None,
            dialect: Dialect::Native,
        }
    }

    /// A serial-framed link at `baud` (like [`LinkOptions::serial`]; 10 bits per
    /// byte on the wire) over an in-process line or a pipe, flushed after each
    /// write.
    ///
    /// Chunks take ~15 ms rather than 10: the writer pulls the next frame only once
    /// the last one drained, and that wake-up (tokio's 1 ms timer) leaves the line
    /// idle up to ~1 ms per frame. Longer chunks keep it busy (the `serial_hol`
    /// benchmark at 115200 baud: bulk utilization 0.74–0.84 with 10 ms chunks,
    /// ~0.89 with 15 ms) while an urgent message still waits at most one chunk.
    pub fn serial_flushed(baud: u32) -> LinkOptions {
        let mut options = LinkOptions::serial(baud);
        let bytes_per_sec = netcore_proto::config::serial_bytes_per_sec(baud);
        options.config.chunk_len = netcore_proto::config::chunk_len_for_rate(bytes_per_sec, 15);
        options.flush = true;
        options
    }

    /// A reliable stream (TCP, Unix socket): length framing, 64 KiB chunks,
    /// writes of up to 1 MiB, 64 MiB link window, 2 MiB stream windows, a keepalive PING
    /// after 10 s of silence (down after 3 unanswered: a peer silent on a
    /// transport that itself retransmits is stuck or gone, not out of
    /// range), reconnects with [`ReconnectPolicy::stream`], one-way messages queued up
    /// to 512 MiB (eight link windows: a flood of small messages is still paced,
    /// while many large messages sent at once all share the wire: a message
    /// admitted only as an earlier one finishes would be sent alone at the end,
    /// held to its stream window).
    pub fn stream() -> LinkOptions {
        let mut config = LinkConfig::stream(0);
        config.link_window = 64 * 1024 * 1024;
        // 2 MiB per stream keeps loopback and LAN links busy (a CREDIT every 512 KiB)
        // and bounds what 64 spooling streams can hold (see `stream_actor`).
        config.stream_window = 2 * 1024 * 1024;
        config.keepalive = Some(Keepalive {
            interval: std::time::Duration::from_secs(10),
            max_missed: 3,
        });
        LinkOptions {
            config,
            batch_budget: 1024 * 1024,
            spool: SpoolLimits::default(),
            flush: true,
            connector: None,
            reconnect: ReconnectPolicy::stream(),
            events: None,
            resume_window: None,
            arbiter: None,
            one_way_queue: 512 * 1024 * 1024,
            work_budget: None,
            dialect: Dialect::Native,
        }
    }

    /// A link to a Python Netcore 0.1.3 peer over a stream (TCP, Unix socket) or a
    /// serial line: [`LinkOptions::stream`] with the Python dialect under its default
    /// limits. The native side runs over an in-memory pipe to the bridge, so it
    /// needs no keepalive (the Python wire has none to offer).
    pub fn python() -> LinkOptions {
        let mut options = LinkOptions::stream();
        options.config.keepalive = None;
        options.dialect = Dialect::python();
        options
    }

    /// The same options speaking `dialect` on the wire.
    pub fn with_dialect(mut self, dialect: Dialect) -> LinkOptions {
        self.dialect = dialect;
        self
    }

    /// Authenticates and encrypts the link (any transport, both framings): the
    /// link plays `secure`'s side of the handshake, refuses a plain peer, and seals
    /// every frame after the handshake.
    pub fn secure(mut self, secure: SecureOptions) -> LinkOptions {
        self.config.secure = Some(secure.role);
        self
    }
}

/// How a link whose peer is lost tries to get it back: with a
/// [`Connector`], attempts to reopen its transport; on a supervised link whose
/// peer fell silent ([`LinkConfig::supervised`]), probes of the peer (and, after
/// a reopening, repeats of the HELLO). The `n`-th wait is `initial × 2ⁿ⁻¹`,
/// capped at `max`, shortened by a random fraction of up to `jitter` (so links
/// that broke together do not retry in step); a wait never exceeds `max`, so
/// a peer back after a long outage waits at most `max` for the next attempt
/// (and a probed peer not even that: any frame it sends ends the wait).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReconnectPolicy {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Up to this fraction (0..=1) of each wait is taken off at random.
    pub jitter: f64,
    /// Give up after the peer was lost this long: the link goes down with
    /// [`DownReason::GaveUp`](crate::error::DownReason::GaveUp). `None`: never.
    pub give_up: Option<Duration>,
}

impl ReconnectPolicy {
    /// Serial ports and radios: 20 ms doubling to 250 ms, forever. Reopening a
    /// local device is cheap and the line's return is what matters: the cap
    /// bounds the time from "line back" to the link resumed to about 250 ms plus
    /// a handshake. A probe is one frame (up to a chunk, ~10 ms of the line): a
    /// silent peer costs one such frame every 125–250 ms, about 5% of the line,
    /// while it is away; raise `max` on a shared radio channel.
    pub fn serial() -> ReconnectPolicy {
        ReconnectPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(250),
            jitter: 0.5,
            give_up: None,
        }
    }

    /// TCP and Unix sockets: 10 ms doubling to 5 s (a connection attempt costs
    /// the server an accept and a handshake), forever.
    pub fn stream() -> ReconnectPolicy {
        ReconnectPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_secs(5),
            jitter: 0.5,
            give_up: None,
        }
    }

    /// The wait before attempt `attempt` (1 for the first), with `random`
    /// drawing the jitter.
    pub fn wait(&self, attempt: u32, random: u64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        let max = self.max.max(self.initial);
        let wait = self
            .initial
            .checked_mul(1u32 << doublings.min(31))
            .map_or(max, |w| w.min(max));
        let jitter = self.jitter.clamp(0.0, 1.0);
        let fraction = (random % 1_000_001) as f64 / 1_000_000.0;
        wait.mul_f64(1.0 - jitter * fraction)
    }

    /// True once an outage that started `lost` ago has lasted past `give_up`.
    pub fn gives_up(&self, lost: Duration) -> bool {
        self.give_up.is_some_and(|limit| lost >= limit)
    }
}

/// Opens a fresh transport for a link whose transport broke.
#[derive(Clone)]
pub struct Connector(
    pub  std::sync::Arc<
        dyn Fn() -> futures_util::future::BoxFuture<'static, std::io::Result<BoxedTransport>>
            + Send
            + Sync,
    >,
);

impl Connector {
    /// A connector from an async function.
    pub fn new<F, Fut>(f: F) -> Connector
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = std::io::Result<BoxedTransport>> + Send + 'static,
    {
        Connector(std::sync::Arc::new(move || Box::pin(f())))
    }
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connector")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_cap_and_jitter_only_shortens() {
        let policy = ReconnectPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(250),
            jitter: 0.5,
            give_up: None,
        };
        let no_jitter: Vec<u128> = (1..=6).map(|n| policy.wait(n, 0).as_millis()).collect();
        assert_eq!(no_jitter, [20, 40, 80, 160, 250, 250]);
        assert_eq!(policy.wait(u32::MAX, 0), Duration::from_millis(250));
        for seed in 0..1000u64 {
            let random = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let wait = policy.wait(9, random);
            assert!(wait <= Duration::from_millis(250) && wait >= Duration::from_millis(125));
        }
        let fixed = ReconnectPolicy {
            jitter: 0.0,
            ..policy
        };
        assert_eq!(fixed.wait(2, u64::MAX), Duration::from_millis(40));
    }

    #[test]
    fn give_up_counts_from_the_outage() {
        let mut policy = ReconnectPolicy::serial();
        assert!(!policy.gives_up(Duration::from_secs(1_000_000)));
        policy.give_up = Some(Duration::from_secs(3));
        assert!(!policy.gives_up(Duration::from_millis(2_999)));
        assert!(policy.gives_up(Duration::from_secs(3)));
    }
}
