//! Message bodies: what arrives ([`Body`]: in memory, spooled to a temporary file,
//! or streamed to the handler as it arrives) and what leaves ([`Payload`]: in
//! memory, or streamed from a file or a channel).

pub mod stream;

use crate::error::CallError;
use crate::transport::with_context;
use bytes::Bytes;
use netcore_proto::link::Message;
use std::io;
use std::path::{Path, PathBuf};
pub use stream::{BodyStream, Release};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The body of an inbound message.
#[derive(Debug)]
pub enum Body {
    /// A body small enough for memory.
    Bytes(Bytes),
    /// A body above the spool threshold, written to a temporary file as it arrived.
    File(SpooledFile),
    /// A multi-frame body on a route listed in
    /// `SpoolLimits::stream_routes`:
    /// its chunks, as they arrive.
    Stream(BodyStream),
}

impl Body {
    /// Body length in bytes; for a [`Body::Stream`], the length the sender
    /// announced (0 if it did not).
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File(file) => file.len,
            Body::Stream(stream) => stream.total_len().unwrap_or(0),
        }
    }

    /// True for an empty body.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The in-memory bytes, or `None` for a spooled or streamed body.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Body::Bytes(bytes) => Some(bytes),
            Body::File(_) | Body::Stream(_) => None,
        }
    }

    /// The whole body in memory (reads a spooled file or the whole stream: mind
    /// its size).
    pub async fn into_bytes(self) -> io::Result<Bytes> {
        match self {
            Body::Bytes(bytes) => Ok(bytes),
            Body::File(file) => Ok(Bytes::from(tokio::fs::read(file.path()).await?)),
            Body::Stream(mut stream) => {
                let mut all = Vec::new();
                while let Some(chunk) = stream.next().await? {
                    all.extend_from_slice(&chunk);
                }
                Ok(Bytes::from(all))
            }
        }
    }

    /// The body as a sequence of chunks of at most `chunk_len` bytes, read from
    /// the spool file as they are consumed (memory stays at one chunk); a
    /// [`Body::Stream`] yields its chunks as they arrived.
    pub fn into_chunks(self, chunk_len: usize) -> BodyChunks {
        BodyChunks {
            body: Some(self),
            file: None,
            leftover: Bytes::new(),
            chunk_len: chunk_len.max(1),
        }
    }

    /// Moves the body to `dest` (a rename when possible, else a copy; a stream is
    /// written as it arrives).
    pub async fn persist(self, dest: impl AsRef<Path>) -> io::Result<()> {
        match self {
            Body::Bytes(bytes) => tokio::fs::write(dest, &bytes).await,
            Body::Stream(mut stream) => {
                let mut file = tokio::fs::File::create(dest).await?;
                while let Some(chunk) = stream.next().await? {
                    file.write_all(&chunk).await?;
                }
                file.flush().await
            }
            Body::File(file) => {
                let dest = dest.as_ref().to_path_buf();
                if tokio::fs::rename(file.path(), &dest).await.is_ok() {
                    return Ok(());
                }
                tokio::fs::copy(file.path(), &dest).await.map(drop)
            }
        }
    }
}

/// A spooled body: a temporary file deleted when this value is dropped.
#[derive(Debug)]
pub struct SpooledFile {
    path: tempfile::TempPath,
    len: u64,
}

impl SpooledFile {
    pub(crate) fn new(path: tempfile::TempPath, len: u64) -> SpooledFile {
        SpooledFile { path, len }
    }

    /// Where the body is on disk.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Body length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty body.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Chunks of a [`Body`], see [`Body::into_chunks`].
#[derive(Debug)]
pub struct BodyChunks {
    body: Option<Body>,
    file: Option<(tokio::fs::File, SpooledFile)>,
    /// The rest of a streamed chunk longer than `chunk_len`.
    leftover: Bytes,
    chunk_len: usize,
}

impl BodyChunks {
    /// The next chunk, `None` at the end.
    pub async fn next(&mut self) -> io::Result<Option<Bytes>> {
        match self.body.take() {
            Some(Body::Bytes(mut bytes)) => {
                if bytes.is_empty() {
                    return Ok(None);
                }
                let chunk = bytes.split_to(bytes.len().min(self.chunk_len));
                self.body = Some(Body::Bytes(bytes));
                return Ok(Some(chunk));
            }
            Some(Body::File(spooled)) => {
                let file = tokio::fs::File::open(spooled.path()).await?;
                self.file = Some((file, spooled));
            }
            Some(Body::Stream(mut stream)) => {
                if self.leftover.is_empty() {
                    match stream.next().await? {
                        Some(chunk) => self.leftover = chunk,
                        None => return Ok(None),
                    }
                }
                let chunk = self
                    .leftover
                    .split_to(self.leftover.len().min(self.chunk_len));
                self.body = Some(Body::Stream(stream));
                return Ok(Some(chunk));
            }
            None => {}
        }
        let Some((file, _)) = self.file.as_mut() else {
            return Ok(None);
        };
        let mut buf = vec![0u8; self.chunk_len];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            self.file = None;
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some(Bytes::from(buf)))
    }
}

/// The body of an outbound message.
#[derive(Debug)]
pub enum Payload {
    /// In memory.
    Bytes(Bytes),
    /// Streamed from a file as the link takes it, never loaded whole.
    File(PathBuf),
    /// Streamed from a channel as the link takes it: the producer is paced by the
    /// link (a bounded channel fills up when the link is slower).
    Stream {
        /// The chunks, in order; the body ends when the channel closes.
        chunks: tokio::sync::mpsc::Receiver<Bytes>,
        /// The whole length, if known (announced to the receiver, and checked).
        total: Option<u64>,
    },
}

impl Payload {
    /// Puts the payload into `message`: in-memory bytes as its body; a file or a
    /// channel as an announced length (a file's looked up through the blocking
    /// pool, never on the caller's thread), handed back to be streamed. A file
    /// that cannot be read fails with [`CallError::Io`] naming it. The one place
    /// an outbound body becomes a message, for calls, one-way messages and answers.
    pub async fn into_message(self, message: &mut Message) -> Result<Option<Payload>, CallError> {
        match self {
            Payload::Bytes(bytes) => {
                message.body = Some(bytes);
                Ok(None)
            }
            Payload::File(path) => {
                let len = tokio::fs::metadata(&path)
                    .await
                    .map_err(|e| CallError::from(with_context(e, path.display())))?
                    .len();
                message.body = None;
                message.streamed_len = Some(len);
                Ok(Some(Payload::File(path)))
            }
            Payload::Stream { chunks, total } => {
                message.body = None;
                message.streamed_len = total;
                Ok(Some(Payload::Stream { chunks, total }))
            }
        }
    }

    /// An empty body.
    pub fn empty() -> Payload {
        Payload::Bytes(Bytes::new())
    }

    /// A body streamed from `chunks` (see [`Payload::Stream`]).
    pub fn stream(chunks: tokio::sync::mpsc::Receiver<Bytes>, total: Option<u64>) -> Payload {
        Payload::Stream { chunks, total }
    }

    /// True for bodies streamed after the message is queued (file, channel).
    pub fn is_streamed(&self) -> bool {
        !matches!(self, Payload::Bytes(_))
    }
}

/// No body: `link.call("status", ())`.
impl From<()> for Payload {
    fn from(_: ()) -> Self {
        Payload::empty()
    }
}

impl From<Bytes> for Payload {
    fn from(bytes: Bytes) -> Self {
        Payload::Bytes(bytes)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Payload::Bytes(bytes.into())
    }
}

impl From<&'static [u8]> for Payload {
    fn from(bytes: &'static [u8]) -> Self {
        Payload::Bytes(Bytes::from_static(bytes))
    }
}

impl<const N: usize> From<&'static [u8; N]> for Payload {
    fn from(bytes: &'static [u8; N]) -> Self {
        Payload::Bytes(Bytes::from_static(bytes))
    }
}

impl From<String> for Payload {
    fn from(text: String) -> Self {
        Payload::Bytes(text.into())
    }
}

impl From<&'static str> for Payload {
    fn from(text: &'static str) -> Self {
        Payload::Bytes(Bytes::from_static(text.as_bytes()))
    }
}
