//! The Python Netcore 0.1.3 dialect on a transport: [`Dialect`] (what a link speaks
//! on its wire) and [`bridge_python`], a task that drives a
//! [`PyBridge`] between the real transport (the Python wire) and one end of an
//! in-memory duplex whose other end the link actor runs over as its transport.
//!
//! ```text
//! LinkActor ◄──native──► duplex ◄──► driver task (PyBridge) ◄──Python frames──► TCP/Unix/serial/Pipe
//! ```
//!
//! Backpressure: the task does not read the Python wire while bytes for the local
//! side wait to be written (or the bridge holds `max_queued` bytes for it), nor the
//! local side while bytes for the Python wire wait; the duplex buffer is bounded.
//! Every error the bridge reports is logged with the link id (`tracing::warn!`, a
//! dropped frame or refused message at `info`). A fatal one (a lost Python stream,
//! a failed native side) closes the Python transport and the duplex: the link sees
//! the end of its transport and goes down, or reconnects through its connector
//! (a new transport gets a new bridge: Python has no session to resume). The end of
//! the Python wire closes the duplex; the end of the duplex (the link closed) shuts
//! the Python transport down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use netcore_proto::pydialect::{BridgeError, PyBridge, PyBridgeConfig, PySessionLimits};
use netcore_proto::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BoxedTransport;
use crate::clock::random_u64;
use crate::ids::LinkId;

/// Why the task stops when the Python peer closed its end.
const PY_ENDED: &str = "the python wire ended";
/// How long what the Python peer sent before its end may take to reach the link.
const FINAL_WRITE: std::time::Duration = std::time::Duration::from_secs(1);

/// Bytes the duplex between the link actor and the bridge buffers each way.
const DUPLEX_BUFFER: usize = 256 * 1024;
/// Bytes read from either side at a time, and the most taken from the bridge for
/// one write.
const IO_CHUNK: usize = 64 * 1024;

/// What a link speaks on its wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// The native protocol.
    #[default]
    Native,
    /// Python Netcore 0.1.3 (`pip install netcore==0.1.3`), under these limits on
    /// what the Python peer may make this side hold.
    Python(PySessionLimits),
}

impl Dialect {
    /// Python Netcore 0.1.3 with the default limits.
    pub fn python() -> Dialect {
        Dialect::Python(PySessionLimits::default())
    }

    /// Whether this is a Python dialect.
    pub fn is_python(&self) -> bool {
        matches!(self, Dialect::Python(_))
    }
}

/// The Python wire's counters, summed over every transport of a link (each runs its
/// own bridge).
#[derive(Debug, Default)]
pub struct PyWireCounters {
    /// Bytes read from the Python wire.
    pub bytes_in: AtomicU64,
    /// Bytes written to the Python wire.
    pub bytes_out: AtomicU64,
    /// Python frames decoded.
    pub frames_in: AtomicU64,
    /// Python frames sent.
    pub frames_out: AtomicU64,
    /// Errors the bridges reported (dropped frames, refused messages, fatal ones).
    pub errors: AtomicU64,
}

/// Runs `transport` (a Python Netcore 0.1.3 wire) through a new [`PyBridge`] on a task
/// of its own, and returns the native transport the link actor runs over. Must be
/// called inside a tokio runtime (actix's included).
pub fn bridge_python(
    transport: BoxedTransport,
    limits: PySessionLimits,
    link: LinkId,
    counters: Arc<PyWireCounters>,
) -> BoxedTransport {
    let (local, ours) = tokio::io::duplex(DUPLEX_BUFFER);
    let bridge = PyBridge::new(PyBridgeConfig::new(limits, random_u64(), random_u64()));
    actix_rt::spawn(drive(bridge, transport, ours, link, counters));
    Box::new(local)
}

/// Logs one bridge error with the link id.
fn log(link: LinkId, error: &BridgeError) {
    match error {
        BridgeError::Py(py) if py.is_fatal() => {
            tracing::warn!(%link, error = %error, ?py, "python wire lost; closing the link's transport");
        }
        BridgeError::LocalFailed(_) => {
            tracing::warn!(%link, %error, "python bridge failed; closing the link's transport");
        }
        BridgeError::Py(py) => tracing::warn!(%link, %error, ?py, "python wire"),
        other => tracing::warn!(%link, error = %other, "python bridge"),
    }
}

/// Copies the bridge's counters' growth since `last` into `counters`.
fn count(bridge: &PyBridge, last: &mut [u64; 4], counters: &PyWireCounters) {
    let stats = bridge.stats();
    let now = [
        stats.py_bytes_in,
        stats.py_bytes_out,
        stats.decoder.frames,
        stats.session.frames_out,
    ];
    let targets = [
        &counters.bytes_in,
        &counters.bytes_out,
        &counters.frames_in,
        &counters.frames_out,
    ];
    for ((value, seen), target) in now.iter().zip(last.iter_mut()).zip(targets) {
        target.fetch_add(value.saturating_sub(*seen), Ordering::Relaxed);
        *seen = *value;
    }
}

/// The bridge's task: moves bytes both ways until either side ends or the bridge
/// fails.
async fn drive(
    mut bridge: PyBridge,
    py: BoxedTransport,
    local: tokio::io::DuplexStream,
    link: LinkId,
    counters: Arc<PyWireCounters>,
) {
    let (mut py_read, mut py_write) = tokio::io::split(py);
    let (mut local_read, mut local_write) = tokio::io::split(local);
    let start = std::time::Instant::now();
    let clock = move || Instant::from_micros(start.elapsed().as_micros() as u64);
    let mut from_py = vec![0u8; IO_CHUNK];
    let mut from_local = vec![0u8; IO_CHUNK];
    let mut to_py = BytesMut::new();
    let mut to_local = BytesMut::new();
    let mut last = [0u64; 4];
    let why = loop {
        if to_local.is_empty() {
            bridge.poll_local(&mut to_local, IO_CHUNK);
        }
        if to_py.is_empty() {
            bridge.poll_py(&mut to_py, IO_CHUNK);
        }
        while let Some(error) = bridge.poll_error() {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            log(link, &error);
        }
        count(&bridge, &mut last, &counters);
        if bridge.is_failed() {
            break "the bridge failed";
        }
        let deadline = bridge.poll_timeout().map(|at| {
            let wait = at.saturating_since(clock());
            tokio::time::Instant::now() + wait
        });
        let read_py = to_local.is_empty() && bridge.wants_py_input();
        let read_local = to_py.is_empty() && bridge.wants_local_input();
        tokio::select! {
            read = py_read.read(&mut from_py), if read_py => match read {
                Ok(0) => break PY_ENDED,
                Ok(n) => bridge.handle_py(&from_py[..n], clock()),
                Err(error) => {
                    tracing::info!(%link, %error, "python wire read failed");
                    break "the python wire broke";
                }
            },
            read = local_read.read(&mut from_local), if read_local => match read {
                Ok(0) => break "the link closed",
                Ok(n) => bridge.handle_local(&from_local[..n], clock()),
                Err(_) => break "the link closed",
            },
            written = py_write.write(&to_py), if !to_py.is_empty() => match written {
                Ok(n) => {
                    let _ = to_py.split_to(n);
                    if to_py.is_empty() {
                        if let Err(error) = py_write.flush().await {
                            tracing::info!(%link, %error, "python wire write failed");
                            break "the python wire broke";
                        }
                    }
                }
                Err(error) => {
                    tracing::info!(%link, %error, "python wire write failed");
                    break "the python wire broke";
                }
            },
            written = local_write.write(&to_local), if !to_local.is_empty() => match written {
                Ok(n) => { let _ = to_local.split_to(n); }
                Err(_) => break "the link closed",
            },
            () = sleep_until(deadline) => bridge.handle_timeout(clock()),
        }
    };
    if why == PY_ENDED {
        // What the Python peer sent before its end still reaches the link.
        loop {
            if to_local.is_empty() {
                bridge.poll_local(&mut to_local, IO_CHUNK);
            }
            if to_local.is_empty() {
                break;
            }
            let write = tokio::time::timeout(FINAL_WRITE, local_write.write_all(&to_local));
            if !matches!(write.await, Ok(Ok(()))) {
                break;
            }
            to_local.clear();
        }
    }
    while let Some(error) = bridge.poll_error() {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        log(link, &error);
    }
    count(&bridge, &mut last, &counters);
    tracing::debug!(%link, why, in_flight = bridge.in_flight(), "python bridge stopped");
    let _ = py_write.shutdown().await;
    let _ = local_write.shutdown().await;
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
