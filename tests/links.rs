//! Every kind of link carries calls both ways: Unix sockets, any AsyncRead +
//! AsyncWrite (an in-memory duplex), and a pair of plain blocking functions
//! (Python Netcore's `Pipe(recv, send)`). A link whose transport fails goes down
//! with the `io::Error` as its reason, and its peer sees the end of stream.
#![allow(clippy::unwrap_used)]

use netcore::{Endpoint, Link, LinkOptions, Reply, Request};
use std::io::{Read, Write};

fn endpoint(name: &'static str) -> Endpoint {
    Endpoint::builder()
        .route(
            "name",
            move |_req: Request| async move { Ok(Reply::new(name)) },
        )
        .route("echo", |req: Request| async move {
            Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
        })
        .start()
}

async fn check(a: &Link, b: &Link) {
    let answer = a.call("name", "").await.unwrap();
    assert_eq!(answer.body.as_bytes().unwrap(), &b"b"[..]);
    let answer = b.call("name", "").await.unwrap();
    assert_eq!(answer.body.as_bytes().unwrap(), &b"a"[..]);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let answer = a.call("echo", big.clone()).await.unwrap();
    assert_eq!(answer.body.as_bytes().unwrap(), &big[..]);
}

#[actix_rt::test]
async fn unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netcore.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let (a, b) = (endpoint("a"), endpoint("b"));
    // The spec parsed in place, inside `join!`.
    let (la, lb) = tokio::join!(
        a.open(format!("unix:{}", path.display()).parse().unwrap()),
        async {
            let (stream, _) = listener.accept().await.unwrap();
            b.attach(stream, LinkOptions::stream()).await
        }
    );
    check(&la.unwrap(), &lb.unwrap()).await;
}

#[actix_rt::test]
async fn any_async_read_write() {
    let (x, y) = tokio::io::duplex(4096);
    let (a, b) = (endpoint("a"), endpoint("b"));
    let (la, lb) = tokio::join!(
        a.attach(x, LinkOptions::stream()),
        b.attach(y, LinkOptions::serial(115_200))
    );
    // Different framings on the two ends cannot talk...
    assert!(la.is_err() || lb.is_err() || la.as_ref().unwrap().call("name", "").await.is_err());
    let (x, y) = tokio::io::duplex(4096);
    let (la, lb) = tokio::join!(
        a.attach(x, LinkOptions::serial(115_200)),
        b.attach(y, LinkOptions::serial(115_200))
    );
    // ...the same framing does, even with tiny serial chunks.
    check(&la.unwrap(), &lb.unwrap()).await;
}

#[actix_rt::test]
async fn blocking_send_and_recv_functions() {
    let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
    let (a, b) = (endpoint("a"), endpoint("b"));
    let pipe = |stream: std::os::unix::net::UnixStream| {
        let mut reader = stream.try_clone().unwrap();
        let mut writer = stream;
        let recv = move |n: usize| {
            let mut buf = vec![0u8; n];
            match reader.read(&mut buf)? {
                0 => Err(netcore::actors::transport::Pipe::end_of_stream()),
                got => {
                    buf.truncate(got);
                    Ok(buf)
                }
            }
        };
        let send = move |bytes: &[u8]| writer.write_all(bytes);
        (recv, send)
    };
    let (ra, sa) = pipe(x);
    let (rb, sb) = pipe(y);
    let (la, lb) = tokio::join!(a.attach_pipe(ra, sa), b.attach_pipe(rb, sb));
    check(&la.unwrap(), &lb.unwrap()).await;
}

/// A transport whose reads fail with `ConnectionReset` once `broken` is set (from
/// the next read on: the peer's next bytes wake the reader).
struct Breakable<T> {
    inner: T,
    broken: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Breakable<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut by the test");
            return std::task::Poll::Ready(Err(reset));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Breakable<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[actix_rt::test]
async fn a_failed_read_takes_the_link_down_with_the_io_error() {
    use netcore::{CallError, DownReason};
    use std::error::Error;
    let (a, b) = (endpoint("a"), endpoint("b"));
    let (sa, sb) = tokio::io::duplex(64 * 1024);
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sa = Breakable {
        inner: sa,
        broken: broken.clone(),
    };
    let (la, lb) = tokio::join!(
        a.attach(sa, LinkOptions::stream()),
        b.attach(sb, LinkOptions::stream())
    );
    let (la, lb) = (la.unwrap(), lb.unwrap());
    check(&la, &lb).await;

    broken.store(true, std::sync::atomic::Ordering::SeqCst);
    lb.send("echo", "wakes a's reader").await.unwrap();
    let limit = std::time::Duration::from_secs(20);
    let reason = tokio::time::timeout(limit, la.closed()).await.unwrap();
    let DownReason::Transport(error) = &reason else {
        panic!("went down for another reason: {reason}");
    };
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(reason.to_string().contains("cut by the test"), "{reason}");
    let source = reason.source().expect("the io::Error");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
    // Calls fail with that reason, and the peer saw its transport end.
    assert_eq!(
        la.call("name", "").await.map(drop),
        Err(CallError::LinkDown(reason.clone()))
    );
    let peer = tokio::time::timeout(limit, lb.closed()).await.unwrap();
    assert_eq!(peer, DownReason::EndOfStream);
}
