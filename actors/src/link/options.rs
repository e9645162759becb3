//! [`LinkOptions`] (how a link runs: protocol settings plus the runtime's) and
//! [`Connector`] (how a broken transport is reopened).

use crate::stream_actor::SpoolLimits;
use crate::transport::{BoxedTransport, SecureOptions};
use netcore_proto::link::{Keepalive, LinkConfig};
use netcore_proto::reassembly::MemoryBudget;
use std::fmt;

/// How a link runs: protocol settings plus the runtime's.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    /// Framing, chunk size, windows and limits (see [`LinkConfig::serial`] and
    /// [`LinkConfig::stream`]); the nonce is drawn at random when the link starts.
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
}

impl LinkOptions {
    /// A serial or radio link at `baud`, 8N1 (10 bits a byte on the wire): COBS
    /// framing, ~10 ms chunks, one frame per write, the reliable mode, a
    /// keepalive PING after 5 s of silence (down after 3 unanswered), one-way
    /// messages queued up to about a second of the line (at least 16 KiB: enough
    /// to keep the line busy, little enough for a gateway with hundreds of
    /// links).
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
        LinkOptions {
            config,
            batch_budget: 1,
            spool: SpoolLimits::default(),
            flush: false,
            connector: None,
            resume_window: None,
            arbiter: None,
            one_way_queue: (bytes_per_sec as usize).max(16 * 1024),
            work_budget: None,
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
    /// after 10 s of silence (down after 3 unanswered), one-way messages queued up
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
            resume_window: None,
            arbiter: None,
            one_way_queue: 512 * 1024 * 1024,
            work_budget: None,
        }
    }

    /// Authenticates and encrypts the link (any transport, both framings): the
    /// link plays `secure`'s side of the handshake, refuses a plain peer, and seals
    /// every frame after the handshake.
    pub fn secure(mut self, secure: SecureOptions) -> LinkOptions {
        self.config.secure = Some(secure.role);
        self
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
