//! The link's I/O: a reader task and a writer task per transport, spawned on
//! the link's arbiter.
//!
//! - the reader reads up to 256 KiB at a time (less on quiet links, see
//!   [`ReadSize`]) and sends it as [`Input`],
//!   awaiting each send, so a busy actor slows the reader instead of queueing
//!   bytes (the buffer comes back with the start of the next frame: frames are
//!   never copied), and waits before its next read while the link's spool
//!   backlog is over its bound (see [`crate::spool_backlog`]);
//! - the writer sends `Pull` to the scheduler actor and writes what comes back,
//!   one batch at a time, so nothing is encoded before the transport can take it.
//!
//! Both are tagged with the transport's generation: after a reconnection, what
//! the old tasks still send is ignored.

use super::LinkActor;
use crate::clock::now;
use crate::error::DownReason;
use crate::messages::Pull;
use crate::transport::BoxedTransport;
use actix::prelude::*;
use bytes::BytesMut;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

impl LinkActor {
    /// Spawns the reader and writer tasks of a (new) transport.
    pub(super) fn run_transport(&mut self, transport: BoxedTransport, ctx: &mut Context<Self>) {
        self.generation += 1;
        let generation = self.generation;
        let (mut reader, mut writer) = tokio::io::split(transport);
        let link = ctx.address();
        let mut size = ReadSize::new(self.read_size);
        let backlog = self.spool_backlog.clone();
        actix_rt::spawn(async move {
            // Large reads on fast links: one syscall and one `Input` message per
            // up to 256 KiB. The buffer goes to the actor and comes back holding the
            // start of the next frame, with room behind it: frames are split off it
            // without a copy. Quiet links read (and keep) small buffers.
            let mut buf = BytesMut::new();
            let reason = loop {
                if buf.capacity() - buf.len() < size.want / 16 {
                    buf.reserve(size.want);
                }
                let offered = buf.capacity() - buf.len();
                match reader.read_buf(&mut buf).await {
                    Ok(0) => break DownReason::EndOfStream,
                    Ok(n) => {
                        size.after_read(n, offered);
                        match link.send(Input(buf, generation, size.want)).await {
                            Ok(rest) => buf = size.keep(rest),
                            Err(_) => return,
                        }
                        backlog.wait_room().await;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "transport read failed");
                        break DownReason::Transport(Arc::new(error));
                    }
                }
            };
            link.do_send(TransportClosed(reason, generation));
        });
        let scheduler = self.scheduler.pull.clone();
        let link = ctx.address();
        let flush = self.flush;
        actix_rt::spawn(async move {
            let mut written = None;
            while let Ok(Some(mut batch)) = scheduler.send(Pull(written.take())).await {
                // Vectored: large payloads go from the message body to the socket.
                let mut result = writer.write_all_buf(&mut batch).await;
                written = Some(batch);
                if flush && result.is_ok() {
                    result = writer.flush().await;
                }
                if let Err(error) = result {
                    tracing::debug!(%error, "transport write failed");
                    link.do_send(TransportClosed(
                        DownReason::Transport(Arc::new(error)),
                        generation,
                    ));
                    return;
                }
            }
            let _ = writer.shutdown().await;
        });
    }
}

/// The smallest read: what a quiet link's reader keeps.
const MIN_READ: usize = 16 * 1024;

/// The most bytes a link's reader asks the transport for at a time: its write
/// batch size (the runtime's measure of the link's speed), from 16 KiB (serial
/// lines, whose reads are short anyway) up to 256 KiB (TCP: larger reads measured
/// no faster).
pub(super) fn read_size(batch_budget: usize) -> usize {
    batch_budget.clamp(MIN_READ, 256 * 1024)
}

/// How much the reader asks for next: it doubles after a read that filled half
/// of the room it was offered or more (the transport had more), up to the link's
/// [`read_size`], and halves after one under an eighth of it, down to 16 KiB. A busy link reads large
/// buffers; a quiet one (most of a gateway's links, and a peer that stopped
/// sending) holds 16 KiB instead of 256 KiB. With less than a sixteenth of `want`
/// left, the reader gets a new buffer before reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ReadSize {
    /// Bytes to ask for next; also the room the decoder leaves behind an
    /// incomplete frame ([`Session::set_read_ahead`]).
    pub want: usize,
    max: usize,
}

impl ReadSize {
    pub(super) fn new(max: usize) -> ReadSize {
        ReadSize {
            want: MIN_READ.min(max),
            max,
        }
    }

    /// Adapts to a read of `n` bytes into `offered` bytes of room.
    pub(super) fn after_read(&mut self, n: usize, offered: usize) {
        if n.saturating_mul(2) >= offered {
            self.want = self.want.saturating_mul(2).min(self.max);
        } else if n.saturating_mul(8) < offered {
            self.want = (self.want / 2).max(MIN_READ.min(self.max));
        }
    }

    /// The buffer to read into next: `rest` as it came back, or, once the actor
    /// took every byte and the buffer is far larger than `want`, a fresh one (the
    /// large allocation goes back as soon as its frames are done).
    pub(super) fn keep(&self, rest: BytesMut) -> BytesMut {
        if rest.is_empty() && rest.capacity() > 2 * self.want {
            BytesMut::new()
        } else {
            rest
        }
    }
}

/// Bytes read from the transport, in the reader's buffer (see
/// [`Session::handle_input_buf`]), with the transport's generation and the
/// reader's next read size; answered with the buffer, holding the start of a
/// frame still arriving.
#[derive(Message)]
#[rtype(result = "BytesMut")]
pub(crate) struct Input(pub BytesMut, pub u64, pub usize);

impl Handler<Input> for LinkActor {
    type Result = MessageResult<Input>;

    fn handle(
        &mut self,
        Input(mut buf, generation, read_ahead): Input,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        if generation != self.generation {
            return MessageResult(BytesMut::new()); // a read of a transport that was replaced
        }
        self.session.set_read_ahead(read_ahead);
        // A protocol error arrives as `LinkEvent::Failed` too; `pump` handles it.
        let _ = self.session.handle_input_buf(&mut buf, now());
        self.pump(ctx);
        MessageResult(buf)
    }
}

/// The transport ended (`EndOfStream`) or failed (`Transport`).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct TransportClosed(pub DownReason, pub u64);

impl Handler<TransportClosed> for LinkActor {
    type Result = ();

    fn handle(
        &mut self,
        TransportClosed(reason, generation): TransportClosed,
        ctx: &mut Self::Context,
    ) {
        if generation != self.generation {
            return;
        }
        let reason = match (reason, self.peer_going_away) {
            // After its GOAWAY, the peer closing its end (a serial port or PTY
            // may report that as a read error) is the peer going away.
            (DownReason::EndOfStream | DownReason::Transport(_), Some(code)) => {
                DownReason::PeerWentAway(code)
            }
            (reason, _) => reason,
        };
        if self.connector.is_some() && !self.session.is_failed() {
            return self.reconnect(reason, ctx);
        }
        if let (Some(window), false) = (self.resume_window, self.session.is_failed()) {
            return self.await_peer(reason, window, ctx);
        }
        tracing::info!(link = %self.id, %reason, "transport closed");
        self.go_down(reason, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_grow_while_the_transport_fills_them_and_shrink_when_quiet() {
        let mut size = ReadSize::new(256 * 1024);
        assert_eq!(size.want, 16 * 1024);
        for expected in [32, 64, 128, 256, 256] {
            size.after_read(size.want, size.want);
            assert_eq!(size.want, expected * 1024);
        }
        size.after_read(100 * 1024, 256 * 1024);
        assert_eq!(size.want, 256 * 1024, "between an eighth and a half: kept");
        size.after_read(20 * 1024, 24 * 1024);
        assert_eq!(size.want, 256 * 1024, "the little room left was filled");
        for expected in [128, 64, 32, 16, 16] {
            size.after_read(100, 256 * 1024);
            assert_eq!(size.want, expected * 1024);
        }
    }

    #[test]
    fn a_serial_link_keeps_its_small_reads() {
        let mut size = ReadSize::new(read_size(1));
        size.after_read(16 * 1024, 16 * 1024);
        assert_eq!(size.want, 16 * 1024);
    }

    #[test]
    fn an_emptied_large_buffer_is_let_go_of_once_reads_are_small() {
        let size = ReadSize::new(256 * 1024);
        let large = BytesMut::with_capacity(256 * 1024);
        assert_eq!(size.keep(large).capacity(), 0);
        let mut partial = BytesMut::with_capacity(256 * 1024);
        partial.extend_from_slice(b"start of a frame");
        assert_eq!(size.keep(partial).len(), 16, "a frame's start is kept");
        let mut busy = ReadSize::new(256 * 1024);
        busy.want = 256 * 1024;
        assert!(busy.keep(BytesMut::with_capacity(256 * 1024)).capacity() >= 256 * 1024);
    }
}
