//! Feeders of streamed outbound bodies: a task per file or channel body pushes
//! it into the link's scheduler a few chunks ahead of the wire.

use crate::body::Payload;
use crate::error::{CallError, DownReason};
use crate::messages::PushBody;
use crate::transport::with_context;
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use netcore_proto::StreamId;
use std::io;

/// Streams a file or channel `payload` into `stream`, a few chunks ahead of the
/// wire (files are read through the blocking pool). Returns when the last byte
/// was queued.
///
/// `announced` is the body length the message's OPEN announced (for a file, its
/// length when the message was queued): the peer expects exactly that many
/// bytes, so a file is sent up to that length, and one that has fewer bytes by
/// the time they are read fails with [`CallError::Io`], as does a channel body
/// longer or shorter than its `total`.
pub(crate) async fn feed_body(
    scheduler: Recipient<PushBody>,
    stream: StreamId,
    payload: Payload,
    announced: Option<u64>,
    chunk_len: usize,
) -> Result<(), CallError> {
    let push = |bytes: Bytes, fin: bool| {
        let scheduler = scheduler.clone();
        async move {
            scheduler
                .send(PushBody { stream, bytes, fin })
                .await
                .map_err(|_| CallError::LinkDown(DownReason::ActorStopped))?
        }
    };
    match payload {
        Payload::Bytes(_) => Ok(()),
        Payload::File(path) => {
            let io = |e: std::io::Error| {
                CallError::from(with_context(e, format_args!("{}", path.display())))
            };
            let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
            let len = match announced {
                Some(len) => len,
                None => file.metadata().await.map_err(io)?.len(),
            };
            let read_len = chunk_len.clamp(4096, 1 << 20);
            let mut sent = 0u64;
            loop {
                let want = read_len.min((len - sent) as usize);
                let mut buf = BytesMut::zeroed(want);
                let n = if want == 0 {
                    0
                } else {
                    tokio::io::AsyncReadExt::read(&mut file, &mut buf)
                        .await
                        .map_err(io)?
                };
                if n == 0 && sent < len {
                    return Err(CallError::from(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} shrank while being sent ({sent} of {len} bytes)",
                            path.display()
                        ),
                    )));
                }
                buf.truncate(n);
                sent += n as u64;
                let fin = sent == len;
                push(buf.freeze(), fin).await?;
                if fin {
                    return Ok(());
                }
            }
        }
        Payload::Stream { mut chunks, total } => {
            let mut sent = 0u64;
            while let Some(bytes) = chunks.recv().await {
                if bytes.is_empty() {
                    continue;
                }
                sent += bytes.len() as u64;
                if total.is_some_and(|t| sent > t) {
                    return Err(CallError::from(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the stream produced more than its announced {} bytes",
                            total.unwrap_or(0)
                        ),
                    )));
                }
                let fin = total == Some(sent);
                push(bytes, fin).await?;
                if fin {
                    return Ok(());
                }
            }
            if total.is_some_and(|t| sent != t) {
                return Err(CallError::from(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the stream ended after {sent} of its announced {} bytes",
                        total.unwrap_or(0)
                    ),
                )));
            }
            push(Bytes::new(), true).await
        }
    }
}
