//! [`StreamActor`]: one per inbound message above the spool threshold (or moved
//! out of memory under pressure). It writes the body to a temporary file as the
//! chunks arrive, returns their credit to the peer once they are on disk, and
//! hands the complete message back to its link actor, which routes it like any
//! other. It reaches the link only through the recipients of a `SpoolTarget`.
//!
//! Messages below the threshold are reassembled in the link actor's protocol
//! core without an actor of their own: most messages are a single frame, and an
//! actor per frame would double the hops on the small-message path.
//!
//! Memory: a chunk is held from the moment the link actor decodes it until it is
//! written; the peer may have at most `stream_window` such bytes per stream (they
//! hold its stream credit, [`Accepted::Pending`]) and at most
//! [`SpoolLimits::max_spooling`] streams spool at once, so spooling holds at most
//! `max_spooling × stream_window` bytes whatever the peer does (64 × 2 MiB on TCP
//! links; in practice a few chunks, as the disk keeps up).

use crate::body::{Release, SpooledFile};
use crate::messages::{CancelStream, SpoolTarget, Spooled, StreamOpened};
use crate::spool_backlog::{SpoolBacklog, SpoolCharge};
use actix::prelude::*;
use bytes::Bytes;
use netcore_proto::reassembly::{Accepted, BodySink, MessageHead, SinkError, SinkFactory};
use netcore_proto::{ErrorCode, MessageKind, StreamId};
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Where and how many inbound messages spool.
#[derive(Clone, Debug)]
pub struct SpoolLimits {
    /// Directory of the temporary files (default: the system's temp dir).
    pub dir: PathBuf,
    /// Most messages spooling (or streaming, see `stream_routes`) at once on one
    /// link; more are refused (`Refused`).
    pub max_spooling: usize,
    /// Routes whose bodies go to their handler as they arrive, as a
    /// [`Body::Stream`](crate::body::Body::Stream), instead of being reassembled
    /// in memory or spooled to a file first: a request or one-way message whose
    /// route starts with one of these and whose body spans more than one frame
    /// (a single-frame body is complete at once and arrives as `Body::Bytes`).
    /// Such streams count towards `max_spooling`; beyond it, a body below the
    /// spool threshold is reassembled in memory instead. Default: none.
    pub stream_routes: Vec<String>,
}

impl SpoolLimits {
    /// Whether large bodies to `route` are streamed to the handler.
    pub fn streams(&self, route: &str) -> bool {
        self.stream_routes
            .iter()
            .any(|prefix| route.starts_with(prefix.as_str()))
    }
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            dir: std::env::temp_dir(),
            max_spooling: 64,
            stream_routes: Vec::new(),
        }
    }
}

/// Opens a [`StreamActor`] per spooled message; installed in the link's session.
pub(crate) struct SpoolFactory {
    pub(crate) link: SpoolTarget,
    pub(crate) limits: SpoolLimits,
    pub(crate) live: Arc<AtomicUsize>,
    /// Credit a streamed body returns at a time (a quarter of the stream window).
    pub(crate) release_every: u64,
    /// Our calls whose answer streams.
    pub(crate) streamed_answers: StreamedAnswers,
    /// The link's bytes on their way to spool files.
    pub(crate) backlog: SpoolBacklog,
}

/// Our calls whose answers go to the caller as a stream
/// (a call made with `stream_answer`): the link
/// actor adds and removes them, the sink factory looks an answer up at its OPEN.
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamedAnswers(Arc<Mutex<HashSet<StreamId>>>);

impl StreamedAnswers {
    fn set(&self) -> MutexGuard<'_, HashSet<StreamId>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, stream: StreamId) {
        self.set().insert(stream);
    }

    pub(crate) fn remove(&self, stream: StreamId) {
        self.set().remove(&stream);
    }

    pub(crate) fn clear(&self) {
        self.set().clear();
    }

    fn contains(&self, stream: StreamId) -> bool {
        self.set().contains(&stream)
    }
}

impl SinkFactory for SpoolFactory {
    /// Requests and one-way messages to a streamed route go to their handler as
    /// they arrive, whatever their size; so do the answers of calls made with
    /// `stream_answer` (an error answer never streams).
    fn prefers_sink(&self, head: &MessageHead) -> bool {
        match head.kind {
            MessageKind::Response => self.streamed_answers.contains(head.stream),
            MessageKind::ErrorResponse => false,
            _ => self.limits.streams(&head.route),
        }
    }

    fn open(&mut self, head: &MessageHead) -> Option<Box<dyn BodySink>> {
        if self.live.load(Ordering::Relaxed) >= self.limits.max_spooling {
            tracing::warn!(
                stream = head.stream.0,
                "too many spooling streams; refusing"
            );
            return None;
        }
        if self.prefers_sink(head) {
            let release = self.link.release.clone();
            let (body, sink) =
                crate::body::stream::open(head, release, self.live.clone(), self.release_every);
            self.link.opened.do_send(StreamOpened {
                stream: head.stream,
                body,
            });
            return Some(sink);
        }
        let file = match tempfile::Builder::new()
            .prefix("netcore-spool-")
            .tempfile_in(&self.limits.dir)
        {
            Ok(file) => file,
            Err(error) => {
                tracing::warn!(%error, "cannot create a spool file; refusing the stream");
                return None;
            }
        };
        let (std_file, path) = file.into_parts();
        self.live.fetch_add(1, Ordering::Relaxed);
        let actor = StreamActor {
            stream: head.stream,
            link: self.link.clone(),
            file: Some(std_file),
            path: Some(path),
            written: 0,
            live: self.live.clone(),
            failed: false,
            queue: Vec::new(),
            charges: Vec::new(),
            writing: false,
            finishing: false,
        };
        Some(Box::new(StreamSink {
            actor: actor.start(),
            backlog: self.backlog.clone(),
        }))
    }
}

/// The protocol core's view of a [`StreamActor`]: every chunk is `Pending` until
/// the actor wrote it and released its credit.
struct StreamSink {
    actor: Addr<StreamActor>,
    backlog: SpoolBacklog,
}

impl BodySink for StreamSink {
    fn write(&mut self, chunk: Bytes) -> Result<Accepted, SinkError> {
        if !self.actor.connected() {
            return Err(SinkError::new("stream actor gone"));
        }
        // Unbounded send: the chunks in the mailbox are bounded by the stream's
        // credit, and all the link's together by its spool backlog.
        let charge = self.backlog.charge(chunk.len() as u64);
        self.actor.do_send(Chunk(chunk, charge));
        Ok(Accepted::Pending)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if !self.actor.connected() {
            return Err(SinkError::new("stream actor gone"));
        }
        self.actor.do_send(Finish);
        Ok(())
    }

    fn abort(&mut self, code: ErrorCode) {
        self.actor.do_send(Abort(code));
    }
}

/// Spools one inbound message to a temporary file.
///
/// Writes are grouped: chunks that arrive while a write runs (on the blocking
/// pool, straight from the received buffers, no copy) go out together in the next
/// one, and their credit returns to the peer once they are on disk.
pub struct StreamActor {
    stream: StreamId,
    link: SpoolTarget,
    file: Option<std::fs::File>,
    path: Option<tempfile::TempPath>,
    written: u64,
    live: Arc<AtomicUsize>,
    failed: bool,
    queue: Vec<Bytes>,
    /// The queued chunks' charges in the link's spool backlog.
    charges: Vec<SpoolCharge>,
    writing: bool,
    finishing: bool,
}

impl Actor for StreamActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Chunk(Bytes, SpoolCharge);

#[derive(Message)]
#[rtype(result = "()")]
struct Finish;

#[derive(Message)]
#[rtype(result = "()")]
struct Abort(ErrorCode);

impl StreamActor {
    fn fail(&mut self, ctx: &mut Context<Self>, error: std::io::Error) {
        tracing::warn!(stream = self.stream.0, %error, "spool write failed");
        self.failed = true;
        self.file = None;
        self.path = None;
        self.queue.clear();
        self.charges.clear();
        self.link.cancel.do_send(CancelStream {
            stream: self.stream,
            code: ErrorCode::Internal,
        });
        ctx.stop();
    }

    /// Starts writing what is queued, or completes the message once all is written.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.failed {
            return;
        }
        if self.queue.is_empty() {
            if self.finishing {
                self.complete(ctx);
            }
            return;
        }
        let Some(mut file) = self.file.take() else {
            return;
        };
        let batch = std::mem::take(&mut self.queue);
        let charges = std::mem::take(&mut self.charges);
        self.writing = true;
        let write = tokio::task::spawn_blocking(move || {
            let mut len = 0u64;
            for chunk in &batch {
                file.write_all(chunk)?;
                len += chunk.len() as u64;
            }
            // Written (or failed): the memory goes back to the backlog either way.
            drop((batch, charges));
            Ok::<_, std::io::Error>((file, len))
        });
        ctx.spawn(write.into_actor(self).map(|result, act, ctx| {
            act.writing = false;
            if act.failed {
                return;
            }
            match result {
                Ok(Ok((file, len))) => {
                    act.file = Some(file);
                    act.written += len;
                    act.link.release.do_send(Release {
                        stream: act.stream,
                        len,
                    });
                    act.flush(ctx);
                }
                Ok(Err(error)) => act.fail(ctx, error),
                Err(join) => act.fail(ctx, std::io::Error::other(join.to_string())),
            }
        }));
    }

    /// Every chunk is on disk: hands the file to the link actor.
    fn complete(&mut self, ctx: &mut Context<Self>) {
        if let Some(path) = self.path.take() {
            self.link.spooled.do_send(Spooled {
                stream: self.stream,
                file: SpooledFile::new(path, self.written),
            });
        }
        ctx.stop();
    }
}

impl Handler<Chunk> for StreamActor {
    type Result = ();

    fn handle(&mut self, Chunk(bytes, charge): Chunk, ctx: &mut Self::Context) {
        if self.failed {
            return;
        }
        self.queue.push(bytes);
        self.charges.push(charge);
        self.flush(ctx);
    }
}

impl Handler<Finish> for StreamActor {
    type Result = ();

    fn handle(&mut self, _: Finish, ctx: &mut Self::Context) {
        self.finishing = true;
        self.flush(ctx);
    }
}

impl Handler<Abort> for StreamActor {
    type Result = ();

    fn handle(&mut self, Abort(code): Abort, ctx: &mut Self::Context) {
        tracing::debug!(stream = self.stream.0, %code, "spooled stream aborted");
        self.failed = true;
        self.file = None;
        self.path = None; // deletes the file
        ctx.stop();
    }
}

/// The stream actor and its sink factory alone: the link they report to is a
/// set of stand-ins recording what arrives.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{stub, Seen};
    use netcore_proto::Priority;

    struct Link {
        release: Seen<Release>,
        spooled: Seen<Spooled>,
        opened: Seen<StreamOpened>,
        cancel: Seen<CancelStream>,
    }

    fn factory(dir: &std::path::Path, max_spooling: usize) -> (SpoolFactory, Link) {
        let (release, released) = stub(|_: &Release| ());
        let (spooled, spools) = stub(|_: &Spooled| ());
        let (opened, opens) = stub(|_: &StreamOpened| ());
        let (cancel, cancels) = stub(|_: &CancelStream| ());
        let factory = SpoolFactory {
            link: SpoolTarget {
                release,
                spooled,
                opened,
                cancel,
            },
            limits: SpoolLimits {
                dir: dir.to_path_buf(),
                max_spooling,
                stream_routes: vec!["live/".into()],
            },
            live: Arc::new(AtomicUsize::new(0)),
            release_every: 4,
            streamed_answers: StreamedAnswers::default(),
            backlog: SpoolBacklog::new(None),
        };
        let link = Link {
            release: released,
            spooled: spools,
            opened: opens,
            cancel: cancels,
        };
        (factory, link)
    }

    fn head(stream: u64, route: &str) -> MessageHead {
        MessageHead {
            stream: StreamId(stream),
            kind: MessageKind::Request,
            priority: Priority::Bulk,
            route: route.into(),
            code: None,
            total_len: Some(10),
            headers: Vec::new(),
        }
    }

    #[actix_rt::test]
    async fn chunks_are_written_released_and_the_file_handed_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut factory, link) = factory(dir.path(), 4);
        let mut sink = factory.open(&head(3, "files/a")).unwrap();
        for chunk in [&b"hello"[..], b" ", b"disk"] {
            let accepted = sink.write(Bytes::copy_from_slice(chunk)).unwrap();
            assert_eq!(accepted, Accepted::Pending);
        }
        sink.finish().unwrap();
        let spooled = link.spooled.wait_for(1).await.remove(0);
        assert_eq!(spooled.stream, StreamId(3));
        assert_eq!(std::fs::read(spooled.file.path()).unwrap(), b"hello disk");
        // Every written byte's credit went back, none twice.
        let released: u64 = link.release.take().iter().map(|r| r.len).sum();
        assert_eq!(released, 10);
        assert_eq!(link.cancel.len(), 0);
        assert_eq!(link.opened.len(), 0);
    }

    #[actix_rt::test]
    async fn a_streamed_route_opens_a_body_stream_instead_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut factory, link) = factory(dir.path(), 4);
        assert!(factory.prefers_sink(&head(5, "live/feed")));
        let mut sink = factory.open(&head(5, "live/feed")).unwrap();
        let opened = link.opened.wait_for(1).await.remove(0);
        assert_eq!(opened.stream, StreamId(5));
        let mut body = opened.body;
        sink.write(Bytes::from_static(b"0123456789")).unwrap();
        sink.finish().unwrap();
        assert_eq!(body.next().await.unwrap().unwrap(), &b"0123456789"[..]);
        assert!(body.next().await.unwrap().is_none());
        let released: u64 = link.release.wait_for(1).await.iter().map(|r| r.len).sum();
        assert_eq!(released, 10);
        assert_eq!(link.spooled.len(), 0);
    }

    #[actix_rt::test]
    async fn beyond_max_spooling_a_stream_is_refused_and_an_abort_deletes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut factory, link) = factory(dir.path(), 1);
        let mut first = factory.open(&head(7, "files/a")).unwrap();
        assert!(factory.open(&head(9, "files/b")).is_none());
        first.write(Bytes::from_static(b"abc")).unwrap();
        let _ = link.release.wait_for(1).await;
        first.abort(ErrorCode::Canceled);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_dir(dir.path()).unwrap().count() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "spool file left behind"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        // The slot is free again.
        assert!(factory.open(&head(11, "files/c")).is_some());
        assert_eq!(link.spooled.len(), 0);
    }
}
