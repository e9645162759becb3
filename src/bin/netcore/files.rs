//! The file store of `serve --dir DIR` and `recv-file DIR`: `files/put/NAME`
//! stores the request's body as DIR/NAME (streamed to disk as it arrives, under
//! a temporary name until complete, then replacing any file of that name) and
//! answers `{"name", "size"}`;
//! `files/get/NAME` answers the file, streamed from disk; `files/list` answers
//! `[{"name", "size"}]`. A NAME is one plain file name: no `/` or `\`, not `.`
//! or `..`, not starting with `.`; any other is refused with `BadRequest`.

use netcore::{Blueprint, Body, ErrorCode, File, HandlerError, Json, Remainder, Request};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Where uploads go, by route prefix.
pub const PUT: &str = "files/put/";
/// Where downloads come from.
pub const GET: &str = "files/get/";
/// The listing's route.
pub const LIST: &str = "files/list";

/// One stored file, as `files/put` and `files/list` answer it.
#[derive(Debug, Serialize)]
pub struct Stored {
    /// The file's name in the store.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Told about each upload as it arrives: its name and length when it opens,
/// then the bytes written so far, then the outcome.
pub trait Watcher: Send + Sync + 'static {
    /// An upload of `name`, `total` bytes if announced, began.
    fn started(&self, _name: &str, _total: Option<u64>) {}
    /// `written` bytes of it are on disk.
    fn progress(&self, _written: u64) {}
    /// It ended: stored, or failed.
    fn finished(&self, _outcome: &Result<Stored, HandlerError>) {}
}

/// A watcher that only logs.
pub struct Quiet;
impl Watcher for Quiet {}

/// The store's routes under `files/`, over `dir`, telling `watcher` about
/// uploads. The endpoint must stream bodies of [`PUT`] routes
/// (`stream_bodies(PUT)`) so large files are never held whole.
pub fn blueprint(dir: PathBuf, watcher: Arc<dyn Watcher>) -> Blueprint {
    let dir = Arc::new(dir);
    let put_dir = dir.clone();
    let get_dir = dir.clone();
    let counter = Arc::new(AtomicU64::new(0));
    let put = Blueprint::new("files-put", PUT).default_handler(
        move |Remainder(name): Remainder, request: Request| {
            let (dir, watcher, counter) = (put_dir.clone(), watcher.clone(), counter.clone());
            async move {
                let outcome = put_file(&dir, &name, request.body, &*watcher, &counter).await;
                watcher.finished(&outcome);
                outcome.map(Json)
            }
        },
    );
    let get =
        Blueprint::new("files-get", GET).default_handler(move |Remainder(name): Remainder| {
            let dir = get_dir.clone();
            async move {
                let path = dir.join(check_name(&name)?);
                match tokio::fs::metadata(&path).await {
                    Ok(meta) if meta.is_file() => Ok(File(path)),
                    _ => Err(HandlerError::new(
                        ErrorCode::NotFound,
                        format!("no file {name:?} in the store"),
                    )),
                }
            }
        });
    Blueprint::new("files", "")
        .blueprint(put)
        .blueprint(get)
        .route(LIST, move || {
            let dir = dir.clone();
            async move { list(&dir).await.map(Json) }
        })
}

/// `name` if it is one plain file name, else a `BadRequest` error.
pub fn check_name(name: &str) -> Result<&str, HandlerError> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0']);
    if plain {
        Ok(name)
    } else {
        Err(HandlerError::bad_request(format!(
            "invalid file name {name:?}: one plain name, no path, not starting with '.'"
        )))
    }
}

/// Stores `body` as `dir/name`: written to a hidden temporary file as it
/// arrives, renamed once complete (removed if the upload fails).
async fn put_file(
    dir: &Path,
    name: &str,
    body: Body,
    watcher: &dyn Watcher,
    counter: &AtomicU64,
) -> Result<Stored, HandlerError> {
    let name = check_name(name)?;
    let total = match &body {
        Body::Stream(stream) => stream.total_len(),
        other => Some(other.len()),
    };
    watcher.started(name, total);
    let part = dir.join(format!(
        ".{name}.part{}-{}",
        std::process::id(),
        counter.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_body(&part, body, watcher).await;
    let size = match written {
        Ok(size) => size,
        Err(error) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(HandlerError::failed(format!("storing {name}: {error}")));
        }
    };
    if let Err(error) = tokio::fs::rename(&part, dir.join(name)).await {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(HandlerError::failed(format!("storing {name}: {error}")));
    }
    tracing::info!(name, size, dir = %dir.display(), "file stored");
    Ok(Stored {
        name: name.to_owned(),
        size,
    })
}

/// Writes the body to `path` chunk by chunk; returns its length.
async fn write_body(path: &Path, body: Body, watcher: &dyn Watcher) -> std::io::Result<u64> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut chunks = body.into_chunks(256 * 1024);
    let mut written = 0u64;
    while let Some(chunk) = chunks.next().await? {
        file.write_all(&chunk).await?;
        written += chunk.len() as u64;
        watcher.progress(written);
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok(written)
}

/// The store's files (not the temporary ones), sorted by name.
async fn list(dir: &Path) -> Result<Vec<Stored>, HandlerError> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata().await?;
        if meta.is_file() && check_name(&name).is_ok() {
            files.push(Stored {
                name,
                size: meta.len(),
            });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_pass() {
        for good in ["a.bin", "firmware-1.2.img", "x"] {
            assert_eq!(check_name(good).ok(), Some(good));
        }
        for bad in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            ".hidden",
            "a\0b",
        ] {
            let error = check_name(bad).expect_err(bad);
            assert_eq!(error.code, ErrorCode::BadRequest, "{bad:?}");
        }
    }
}
