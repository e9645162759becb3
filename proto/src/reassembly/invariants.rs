//! The accounting identities, checked by tests, simulations and the fuzzer.

use super::stream::Body;
use super::Reassembly;

impl Reassembly {
    /// Checks the accounting (for tests, simulations and fuzzing): buffer totals
    /// match the buffers, every limit holds, and every byte received is held,
    /// freed, or granted back, on each stream and on the link.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let limits = &self.config.limits;
        let (mut len, mut cap) = (0u64, 0u64);
        for (id, inbound) in &self.streams {
            if let Some(total) = inbound.total_len {
                if inbound.window.received() > total {
                    return Err("a stream received more than its total_len");
                }
            }
            if inbound.window.received() > limits.max_message_bytes {
                return Err("a live stream exceeds max_message_bytes");
            }
            if let Body::Memory(m) = &inbound.body {
                if m.len() > limits.spool_threshold {
                    return Err("an in-memory body exceeds spool_threshold");
                }
                if m.len() != inbound.window.received() {
                    return Err("an in-memory body differs from the bytes received");
                }
                len += m.len();
                cap += m.capacity();
            }
            // Stream credit: every byte received is granted back, waiting for the
            // batch threshold, or held by a sink's consumer (`Pending`, not yet
            // released, and not already credited while it was buffered).
            let held = match &inbound.body {
                Body::Memory(_) => 0,
                Body::Sink(sb) if sb.precredited <= sb.pending => sb.pending - sb.precredited,
                Body::Sink(_) => return Err("more precredited bytes than pending ones"),
            };
            let accounted = inbound
                .window
                .available()
                .saturating_add(inbound.window.unreported())
                .saturating_add(held);
            if accounted != self.config.stream_window {
                return Err("stream credit leaked or granted twice");
            }
            if self.tombstones.contains(*id) {
                return Err("a live stream is also a tombstone");
            }
        }
        if len != self.buffered || cap != self.allocated {
            return Err("buffer accounting differs from the buffers");
        }
        if self.allocated > limits.max_buffered_bytes {
            return Err("allocated bytes exceed max_buffered_bytes");
        }
        if self.buffered > self.pressure_limit {
            return Err("buffered bytes exceed the pressure limit");
        }
        if self.streams.len() > limits.max_inbound_streams {
            return Err("more live streams than max_inbound_streams");
        }
        if self.tombstones.len() > self.tombstones.cap() {
            return Err("tombstones beyond their bound");
        }
        if self
            .stream_ready
            .keys()
            .any(|id| !self.streams.contains_key(id))
        {
            return Err("stream credit queued for a stream no longer live");
        }
        let accounted = self
            .link
            .available()
            .saturating_add(self.buffered)
            .saturating_add(self.undelivered)
            .saturating_add(self.link.unreported());
        if accounted != self.config.link_window {
            return Err("link credit leaked or double-freed");
        }
        let entries = self.streams.values().filter(|s| s.stall.queued.is_some());
        if self.stalls.queued() != entries.count() {
            return Err("stall deadlines differ from the live streams holding one");
        }
        Ok(())
    }
}
