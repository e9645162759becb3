//! Limits and defaults, in one place. Every bound that protects memory from a peer
//! is here, with the reason for its default.

/// Default largest frame a side accepts (before framing): room for a 64 KiB chunk
/// plus the largest OPEN head (`frame::MAX_HEAD_LEN`, checked there).
pub const DEFAULT_MAX_FRAME_LEN: usize = 128 * 1024;

/// Default per-stream receive window: enough to keep a fast link busy for one
/// round trip of the credit loop, small enough that a stalled consumer pins little.
pub const DEFAULT_STREAM_WINDOW: u64 = 4 * 1024 * 1024;

/// Default link-wide receive window (sum over all streams).
pub const DEFAULT_LINK_WINDOW: u64 = 16 * 1024 * 1024;

/// Default chunk payload size for fast reliable links (TCP, Unix sockets).
pub const DEFAULT_STREAM_CHUNK_LEN: usize = 64 * 1024;

/// Bytes per second of an 8N1 serial line at `baud`: 10 bits on the wire per byte.
pub const fn serial_bytes_per_sec(baud: u32) -> u32 {
    baud / 10
}

/// Chunk payload size for a link of `bytes_per_sec`, so one chunk occupies the wire
/// for about `target_millis` (a small urgent message waits at most that long for
/// the chunk in flight). Clamped to 32 bytes .. 64 KiB.
pub fn chunk_len_for_rate(bytes_per_sec: u32, target_millis: u32) -> usize {
    let len = u64::from(bytes_per_sec) * u64::from(target_millis) / 1000;
    (len as usize).clamp(32, DEFAULT_STREAM_CHUNK_LEN)
}

/// Most CANCEL frames one link queues for its peer. CANCELs answer the peer's
/// frames (refused streams, DATA of streams never opened) and leave only as fast
/// as the peer reads; a peer that keeps provoking them without reading would
/// grow the queue without bound, so one more fails the link
/// ([`crate::ProtocolError::Backlog`], GOAWAY `FlowControl`). A peer that reads
/// never comes near it: the queue drains at every write.
pub const MAX_QUEUED_CANCELS: usize = 1024;

/// Most other control frames (CREDIT, PING, ACK; PONGs and each stream's
/// CREDITs coalesce, so one per stream at most) one link queues for its peer;
/// beyond it the link fails as for [`MAX_QUEUED_CANCELS`]. HELLO and GOAWAY are
/// never refused.
pub const MAX_QUEUED_ANSWERS: usize = 1024;

/// Default stall timeout (`LinkConfig::stall_timeout`): an inbound stream on
/// which the peer could send (it had stream and link credit, and was heard from)
/// and sent no body bytes for this long is canceled with `Timeout`, and what it
/// held is freed.
///
/// A minute is long for a LAN and right for a radio: a 9600-baud line carries
/// about 960 bytes/s, so one round of the peer's scheduler over a few hundred
/// concurrent streams (one ~40-byte frame each) takes tens of seconds, and the
/// reliable mode's retransmissions back off to 10 s per try; a legitimate stream
/// is not quiet for a minute while its peer keeps talking. A peer that stalls on
/// purpose holds its memory at most that long (plus a keepalive interval).
pub const DEFAULT_STALL_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(60);

/// Hard limits on what a peer may make this side hold (reassembly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest inbound message; above it the stream is refused with `TooLarge`.
    pub max_message_bytes: u64,
    /// Most inbound messages being reassembled at once; more are refused.
    pub max_inbound_streams: usize,
    /// Most body bytes held in memory across all inbound messages.
    pub max_buffered_bytes: u64,
    /// Messages above this size (announced or reached) go to a [`crate::reassembly::BodySink`]
    /// chunk by chunk instead of memory.
    pub spool_threshold: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 4 * 1024 * 1024 * 1024,
            max_inbound_streams: 1024,
            max_buffered_bytes: 64 * 1024 * 1024,
            spool_threshold: 8 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_chunks_take_a_few_millis() {
        let rate = serial_bytes_per_sec(115_200);
        assert_eq!(rate, 11_520);
        assert_eq!(chunk_len_for_rate(rate, 10), 115);
        assert_eq!(
            chunk_len_for_rate(1_000_000_000, 10),
            DEFAULT_STREAM_CHUNK_LEN
        );
        assert_eq!(chunk_len_for_rate(300, 10), 32);
    }
}
