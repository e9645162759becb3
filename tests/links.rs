//! Every kind of link carries calls both ways: Unix sockets, any AsyncRead +
//! AsyncWrite (an in-memory duplex), and a pair of plain blocking functions
//! (Python Netcore's `Pipe(recv, send)`).
#![allow(clippy::unwrap_used)]

use netcore::actors::transport::LinkSpec;
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
    let spec: LinkSpec = format!("unix:{}", path.display()).parse().unwrap();
    let (la, lb) = tokio::join!(a.open(&spec), async {
        let (stream, _) = listener.accept().await.unwrap();
        b.attach(stream, LinkOptions::stream()).await
    });
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
            let got = reader.read(&mut buf)?;
            buf.truncate(got);
            Ok(buf)
        };
        let send = move |bytes: &[u8]| writer.write_all(bytes);
        (recv, send)
    };
    let (ra, sa) = pipe(x);
    let (rb, sb) = pipe(y);
    let (la, lb) = tokio::join!(a.attach_pipe(ra, sa), b.attach_pipe(rb, sb));
    check(&la.unwrap(), &lb.unwrap()).await;
}
