//! The memory budget of incomplete in-memory bodies: growing buffers within
//! `max_buffered_bytes`, and moving bodies to sinks when they grow past
//! `spool_threshold` or memory pressure builds (see the module doc's "Limits").

use super::stream::{grow_target, to_usize, Body, Inbound, MemoryBody, SinkBody};
use super::{InboundEvent, Reassembly};
use crate::error::{ErrorCode, ProtocolError};
use crate::ids::StreamId;
use bytes::Bytes;

impl Reassembly {
    /// Appends a chunk to an in-memory body, moving it to a sink when it grows past
    /// `spool_threshold` or the budget; completes it on `fin`.
    pub(super) fn buffer(&mut self, id: StreamId, chunk: Bytes, fin: bool) {
        let n = chunk.len() as u64;
        let Some(Inbound {
            body: Body::Memory(m),
            ..
        }) = self.streams.get(&id)
        else {
            self.free_link(n);
            return;
        };
        let needed = m.len().saturating_add(n);
        let spool_threshold = self.config.limits.spool_threshold;
        if needed > spool_threshold {
            let has_factory = self.sinks.is_some();
            let no_sink = too_large_for_memory(id, needed, spool_threshold, has_factory);
            self.spill(id, no_sink);
            if self.write_to_sink(id, chunk, false) && fin {
                self.complete(id);
            }
            return;
        }
        if !self.make_room(id, needed) {
            // Moved to a sink to make room, or refused.
            if self.write_to_sink(id, chunk, false) && fin {
                self.complete(id);
            }
            return;
        }
        if let Some(Inbound {
            body: Body::Memory(m),
            ..
        }) = self.streams.get_mut(&id)
        {
            m.buf.extend_from_slice(&chunk); // within capacity: make_room reserved it
            self.buffered = self.buffered.saturating_add(n);
        }
        if fin {
            self.complete(id);
        } else {
            self.free_stream(id, n);
            self.relieve_pressure();
        }
    }

    /// Ensures `id`'s in-memory buffer can hold `needed` bytes within
    /// `max_buffered_bytes`: first by trimming the unused capacity of the other
    /// buffers (growth slack, reservations from `total_len`), then by moving the
    /// largest buffers (possibly this one) to sinks. False if `id` left memory (now
    /// spooling, or refused).
    pub(super) fn make_room(&mut self, id: StreamId, needed: u64) -> bool {
        let limits = self.config.limits;
        let mut trimmed = false;
        loop {
            let Some(Inbound {
                total_len,
                body: Body::Memory(m),
                ..
            }) = self.streams.get_mut(&id)
            else {
                return false;
            };
            let cap = m.capacity();
            if needed <= cap {
                return true;
            }
            let room = limits
                .max_buffered_bytes
                .saturating_sub(self.allocated)
                .min(self.share.room())
                .saturating_add(cap);
            let limit = total_len
                .unwrap_or(u64::MAX)
                .min(limits.spool_threshold)
                .min(limits.max_message_bytes);
            if let Some(target) = grow_target(cap, needed, limit, room) {
                let additional = to_usize(target).saturating_sub(m.buf.len());
                if m.buf.try_reserve_exact(additional).is_ok() {
                    let grown = m.capacity();
                    self.set_allocated(self.allocated.saturating_sub(cap).saturating_add(grown));
                    return true;
                }
                let max = limits.max_buffered_bytes;
                self.refuse(id, ProtocolError::BufferFull { id: id.0, max });
                return false;
            }
            if !trimmed {
                trimmed = true;
                if self.trim_others(id) {
                    continue;
                }
            }
            let Some(victim) = self.largest_in_memory() else {
                return false;
            };
            let max = limits.max_buffered_bytes;
            self.spill(victim, ProtocolError::BufferFull { id: victim.0, max });
            if victim == id {
                return false;
            }
        }
    }

    /// Gives back the unused capacity of every in-memory buffer but `id`'s.
    /// Returns whether any was given back.
    fn trim_others(&mut self, id: StreamId) -> bool {
        let mut freed = 0u64;
        for (other, inbound) in &mut self.streams {
            if let Body::Memory(m) = &mut inbound.body {
                let before = m.capacity();
                if *other != id && before > m.len() {
                    m.buf.shrink_to_fit();
                    freed = freed.saturating_add(before.saturating_sub(m.capacity()));
                }
            }
        }
        self.set_allocated(self.allocated.saturating_sub(freed));
        freed > 0
    }

    /// Moves the largest in-memory bodies to sinks until the incomplete in-memory
    /// bytes are back under the pressure limit.
    pub(super) fn relieve_pressure(&mut self) {
        while self.buffered > self.pressure_limit {
            let Some(victim) = self.largest_in_memory() else {
                return;
            };
            let max = self.pressure_limit;
            self.spill(victim, ProtocolError::BufferFull { id: victim.0, max });
        }
    }

    /// The in-memory stream holding the most bytes (ties: the highest id).
    pub(super) fn largest_in_memory(&self) -> Option<StreamId> {
        self.streams
            .iter()
            .filter_map(|(id, inbound)| match &inbound.body {
                Body::Memory(m) => Some((m.len(), *id)),
                Body::Sink(_) => None,
            })
            .max()
            .map(|(_, id)| id)
    }

    /// Moves an in-memory stream to a sink, its buffer so far as the first chunk;
    /// refuses it with `no_sink` if no sink can be opened.
    pub(super) fn spill(&mut self, id: StreamId, no_sink: ProtocolError) {
        let Some(Inbound {
            window,
            total_len,
            body,
            stall,
        }) = self.streams.remove(&id)
        else {
            return;
        };
        let m = match body {
            Body::Memory(m) => m,
            body @ Body::Sink(_) => {
                self.streams.insert(
                    id,
                    Inbound {
                        window,
                        total_len,
                        body,
                        stall,
                    },
                );
                return;
            }
        };
        self.buffered = self.buffered.saturating_sub(m.len());
        self.set_allocated(self.allocated.saturating_sub(m.capacity()));
        let MemoryBody { head, buf } = m;
        let Some(sink) = self.sinks.as_mut().and_then(|f| f.open(&head)) else {
            self.stalls.remove(id, &stall);
            self.free_link(buf.len() as u64);
            self.refused(id, no_sink);
            return;
        };
        self.events.push_back(InboundEvent::Streaming { head });
        let body = Body::Sink(SinkBody::new(sink));
        // The same stream, moved: its stall clock and deadline entry stay.
        self.streams.insert(
            id,
            Inbound {
                window,
                total_len,
                body,
                stall,
            },
        );
        self.streams_changed();
        self.write_to_sink(id, Bytes::from(buf), true);
    }
}

/// The refusal of a message too large for memory when no sink takes it: `TooLarge`
/// without a sink factory (this side never takes such a message), `Refused` when
/// the factory declined (it is at a limit, e.g. the runtime's `max_spooling`
/// streams per link, so the same message may be taken later).
pub(super) fn too_large_for_memory(
    id: StreamId,
    size: u64,
    spool_threshold: u64,
    has_factory: bool,
) -> ProtocolError {
    if has_factory {
        return ProtocolError::Sink {
            id: id.0,
            code: ErrorCode::Refused,
            reason: "no body sink available for a message too large for memory",
        };
    }
    ProtocolError::MessageTooLarge {
        id: id.0,
        size,
        max: spool_threshold,
    }
}
