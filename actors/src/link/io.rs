//! The link's I/O: a reader task and a writer task per transport, spawned on
//! the link's arbiter.
//!
//! - the reader reads up to 256 KiB at a time and sends it as [`Input`],
//!   awaiting each send, so a busy actor slows the reader instead of queueing
//!   bytes (the buffer comes back with the start of the next frame: frames are
//!   never copied);
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
        let read_size = self.read_size;
        actix_rt::spawn(async move {
            // Large reads on fast links: one syscall and one `Input` message per
            // ~256 KiB. The buffer goes to the actor and comes back holding the
            // start of the next frame, with room behind it: frames are split off it
            // without a copy.
            let mut buf = BytesMut::new();
            let reason = loop {
                if buf.capacity() - buf.len() < read_size / 16 {
                    buf.reserve(read_size);
                }
                match reader.read_buf(&mut buf).await {
                    Ok(0) => break DownReason::EndOfStream,
                    Ok(_) => match link.send(Input(buf, generation)).await {
                        Ok(rest) => buf = rest,
                        Err(_) => return,
                    },
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

/// How many bytes a link's reader asks the transport for at a time: its write
/// batch size (the runtime's measure of the link's speed), from 16 KiB (serial
/// lines, whose reads are short anyway: a gateway with many of them keeps small
/// buffers) up to 256 KiB (TCP: larger reads measured no faster, and a gateway's
/// TCP links keep 256 KiB buffers each). With less than a sixteenth of that left,
/// the reader gets a new buffer before reading.
pub(super) fn read_size(batch_budget: usize) -> usize {
    batch_budget.clamp(16 * 1024, 256 * 1024)
}

/// Bytes read from the transport, in the reader's buffer (see
/// [`Session::handle_input_buf`]); answered with the buffer, holding the start of a
/// frame still arriving.
#[derive(Message)]
#[rtype(result = "BytesMut")]
pub(crate) struct Input(pub BytesMut, pub u64);

impl Handler<Input> for LinkActor {
    type Result = MessageResult<Input>;

    fn handle(
        &mut self,
        Input(mut buf, generation): Input,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        if generation != self.generation {
            return MessageResult(BytesMut::new()); // a read of a transport that was replaced
        }
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
            (DownReason::EndOfStream, Some(code)) => DownReason::PeerWentAway(code),
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
