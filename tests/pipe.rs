//! Links over a pair of blocking functions as Python Netcore's `Pipe(recv, send)`
//! users write them: a `recv` that returns no bytes (a serial read that timed
//! out) means nothing yet, the end of the stream is an explicit signal
//! (`Pipe::end_of_stream`), and the link's options (framing, baud) apply as on
//! any other link.
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::Pipe;
use netcore::proto::rng::SplitMix64;
use netcore::{CallError, DownReason, Endpoint, ErrorCode, Link, LinkOptions, Reply, Request};
use std::io;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn endpoint(name: &'static str) -> Endpoint {
    Endpoint::builder()
        .handshake_timeout(Duration::from_secs(3))
        .route(
            "name",
            move |_req: Request| async move { Ok(Reply::new(name)) },
        )
        .route("echo", |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
        })
        .start()
}

/// What a line end's `recv` does next.
const RUNNING: u8 = 0;
const END_OF_STREAM: u8 = 1;
const FAILING: u8 = 2;

/// An in-process line between ends 0 and 1, shared with the test.
#[derive(Default)]
struct Wire {
    /// Empty results either end's `recv` returned.
    empty: AtomicUsize,
    /// Everything each end's `send` was given, in order.
    sent: [Mutex<Vec<u8>>; 2],
    /// Each end's `recv` mode: [`RUNNING`], [`END_OF_STREAM`] or [`FAILING`].
    mode: [AtomicU8; 2],
}

type RecvFn = Box<dyn FnMut(usize) -> io::Result<Vec<u8>> + Send>;
type SendFn = Box<dyn FnMut(&[u8]) -> io::Result<()> + Send>;

/// The `recv` and `send` of end `me`. `recv` behaves like a serial read with a
/// timeout: every other call sleeps 1 ms and returns nothing; the others wait up
/// to 5 ms for bytes and return nothing when none came. Each call hands over
/// whatever one `send` of the other end wrote (more than `max_len` is allowed).
fn line_end(
    wire: &Arc<Wire>,
    me: usize,
    incoming: mpsc::Receiver<Vec<u8>>,
    outgoing: mpsc::Sender<Vec<u8>>,
) -> (RecvFn, SendFn) {
    let mut calls = 0u64;
    let at_recv = Arc::clone(wire);
    let recv = move |_max_len: usize| {
        calls += 1;
        match at_recv.mode[me].load(Ordering::SeqCst) {
            RUNNING => {}
            END_OF_STREAM => return Err(Pipe::end_of_stream()),
            _ => return Err(io::Error::new(io::ErrorKind::ConnectionReset, "radio lost")),
        }
        if calls % 2 == 1 {
            std::thread::sleep(Duration::from_millis(1));
            at_recv.empty.fetch_add(1, Ordering::SeqCst);
            return Ok(Vec::new());
        }
        match incoming.recv_timeout(Duration::from_millis(5)) {
            Ok(bytes) => Ok(bytes),
            Err(RecvTimeoutError::Timeout) => {
                at_recv.empty.fetch_add(1, Ordering::SeqCst);
                Ok(Vec::new())
            }
            Err(RecvTimeoutError::Disconnected) => Err(Pipe::end_of_stream()),
        }
    };
    let at_send = Arc::clone(wire);
    let send = move |bytes: &[u8]| {
        at_send.sent[me].lock().unwrap().extend_from_slice(bytes);
        outgoing
            .send(bytes.to_vec())
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    };
    (Box::new(recv), Box::new(send))
}

/// A fresh line: its wire and the functions of its two ends.
fn line() -> (Arc<Wire>, (RecvFn, SendFn), (RecvFn, SendFn)) {
    let wire = Arc::new(Wire::default());
    let (to_b, from_a) = mpsc::channel();
    let (to_a, from_b) = mpsc::channel();
    let a = line_end(&wire, 0, from_b, to_b);
    let b = line_end(&wire, 1, from_a, to_a);
    (wire, a, b)
}

/// Echo calls both ways at once, `len` random bytes each, answered byte-identical.
async fn echo_both_ways(a: &Link, b: &Link, len: usize, seed: u64) {
    let to_b = SplitMix64::new(seed).bytes(len);
    let to_a = SplitMix64::new(seed + 1).bytes(len);
    let (from_b, from_a) = tokio::join!(a.call("echo", to_b.clone()), b.call("echo", to_a.clone()));
    assert!(
        from_b.unwrap().body.as_bytes().unwrap() == &to_b[..],
        "a's echo differs"
    );
    assert!(
        from_a.unwrap().body.as_bytes().unwrap() == &to_a[..],
        "b's echo differs"
    );
    let name = a.call("name", "").await.unwrap();
    assert_eq!(name.body.as_bytes().unwrap(), &b"b"[..]);
    let name = b.call("name", "").await.unwrap();
    assert_eq!(name.body.as_bytes().unwrap(), &b"a"[..]);
}

/// Splits a serial (COBS) wire at its `0x00` delimiters: the longest frame.
fn longest_serial_frame(wire: &[u8]) -> usize {
    wire.split(|&b| b == 0).map(<[u8]>::len).max().unwrap_or(0)
}

#[actix_rt::test]
async fn reads_that_time_out_are_nothing_yet() {
    let (wire, (ra, sa), (rb, sb)) = line();
    let (a, b) = (endpoint("a"), endpoint("b"));
    let (la, lb) = tokio::join!(a.attach_pipe(ra, sa), b.attach_pipe(rb, sb));
    let (la, lb) = (la.unwrap(), lb.unwrap());
    echo_both_ways(&la, &lb, 64 * 1024, 1).await;
    let empty = wire.empty.load(Ordering::SeqCst);
    assert!(empty > 100, "recv returned nothing only {empty} times");
    assert!(la.is_up() && lb.is_up());
}

#[actix_rt::test]
async fn pipe_links_take_their_framing() {
    let (a, b) = (endpoint("a"), endpoint("b"));

    // Length framing on both ends: 1 MiB each way.
    let (_wire, (ra, sa), (rb, sb)) = line();
    let (la, lb) = tokio::join!(
        a.attach_pipe_with(ra, sa, LinkOptions::stream()),
        b.attach_pipe_with(rb, sb, LinkOptions::stream())
    );
    echo_both_ways(&la.unwrap(), &lb.unwrap(), 1 << 20, 3).await;

    // Length framing against the serial default: the two cannot talk.
    let (_wire, (ra, sa), (rb, sb)) = line();
    let (la, lb) = tokio::join!(
        a.attach_pipe_with(ra, sa, LinkOptions::stream()),
        b.attach_pipe(rb, sb)
    );
    let talked = match (la, lb) {
        (Ok(la), Ok(_)) => la.call("name", "").await.is_ok(),
        _ => false,
    };
    assert!(
        !talked,
        "a stream-framed pipe talked to a serial-framed one"
    );
}

#[actix_rt::test]
async fn pipe_links_size_chunks_by_their_baud() {
    let (a, b) = (endpoint("a"), endpoint("b"));
    let mut longest = Vec::new();
    for baud in [9_600, 1_000_000] {
        let (wire, (ra, sa), (rb, sb)) = line();
        let (la, lb) = tokio::join!(
            a.attach_pipe_with(ra, sa, LinkOptions::serial_flushed(baud)),
            b.attach_pipe_with(rb, sb, LinkOptions::serial_flushed(baud))
        );
        let (la, lb) = (la.unwrap(), lb.unwrap());
        echo_both_ways(&la, &lb, 16 * 1024, baud.into()).await;
        la.close("done").await;
        longest.push(longest_serial_frame(&wire.sent[0].lock().unwrap()));
    }
    // 15 ms of the line: 32 bytes (the least) at 9600 baud, 1500 at 1 Mbaud.
    assert!(
        longest[0] < 200 && longest[1] > 1000,
        "longest frames at 9600 and 1000000 baud: {longest:?}"
    );
}

#[actix_rt::test]
async fn the_end_of_stream_signal_takes_the_link_down() {
    let (wire, (ra, sa), (rb, sb)) = line();
    let (a, b) = (endpoint("a"), endpoint("b"));
    let (la, lb) = tokio::join!(a.attach_pipe(ra, sa), b.attach_pipe(rb, sb));
    let (la, lb) = (la.unwrap(), lb.unwrap());
    echo_both_ways(&la, &lb, 1024, 5).await;

    wire.mode[0].store(END_OF_STREAM, Ordering::SeqCst);
    let limit = Duration::from_secs(20);
    let reason = tokio::time::timeout(limit, la.closed()).await.unwrap();
    assert_eq!(reason, DownReason::EndOfStream);
    assert_eq!(
        la.call("name", "").await.map(drop),
        Err(CallError::LinkDown(DownReason::EndOfStream))
    );
    // a's pipe is gone with its link, and with it both of a's functions: b's
    // `recv` sees the end of the stream, or its `send` a broken pipe, first.
    let peer = tokio::time::timeout(limit, lb.closed()).await.unwrap();
    let broken_pipe =
        matches!(&peer, DownReason::Transport(e) if e.kind() == io::ErrorKind::BrokenPipe);
    assert!(
        peer == DownReason::EndOfStream || broken_pipe,
        "the peer went down for another reason: {peer}"
    );
}

#[actix_rt::test]
async fn a_failing_recv_takes_the_link_down_with_its_error() {
    let (wire, (ra, sa), (rb, sb)) = line();
    let (a, b) = (endpoint("a"), endpoint("b"));
    let (la, lb) = tokio::join!(a.attach_pipe(ra, sa), b.attach_pipe(rb, sb));
    let (la, lb) = (la.unwrap(), lb.unwrap());
    echo_both_ways(&la, &lb, 1024, 7).await;

    wire.mode[0].store(FAILING, Ordering::SeqCst);
    let limit = Duration::from_secs(20);
    let reason = tokio::time::timeout(limit, la.closed()).await.unwrap();
    let DownReason::Transport(error) = &reason else {
        panic!("went down for another reason: {reason}");
    };
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    assert!(reason.to_string().contains("radio lost"), "{reason}");
}

#[actix_rt::test]
async fn pipe_links_take_their_dialect() {
    let (wire, (ra, sa), (rb, sb)) = line();
    let (a, b) = (endpoint("a"), endpoint("b"));
    let (la, lb) = tokio::join!(
        a.attach_pipe_with(ra, sa, LinkOptions::python()),
        b.attach_pipe_with(rb, sb, LinkOptions::python())
    );
    let (la, lb) = (la.unwrap(), lb.unwrap());
    let to_b = SplitMix64::new(7).bytes(256 * 1024);
    let to_a = SplitMix64::new(8).bytes(10_000);
    let (from_b, from_a) =
        tokio::join!(la.call("echo", to_b.clone()), lb.call("echo", to_a.clone()));
    assert!(from_b.unwrap().body.as_bytes().unwrap() == &to_b[..]);
    assert!(from_a.unwrap().body.as_bytes().unwrap() == &to_a[..]);
    // Python Netcore's frames on the line: a head first, `int32 ext_len` then its ext.
    let sent = wire.sent[0].lock().unwrap().clone();
    let head = b"{\"type\": \"mission\"}";
    assert_eq!(&sent[..4], &(head.len() as i32).to_le_bytes());
    assert_eq!(&sent[4..4 + head.len()], head);
    // The dialect carries no 0-byte body: a typed error, not a message Python would lose.
    let empty = la.call("name", "").await;
    assert!(
        matches!(
            &empty,
            Err(CallError::Remote {
                code: ErrorCode::BadRequest,
                ..
            })
        ),
        "a 0-byte body on the Python dialect gave {empty:?}"
    );
}
