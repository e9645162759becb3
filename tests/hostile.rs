//! Hostile peers against a running endpoint over TCP: a raw client writes the
//! frames a broken or malicious implementation would (malformed varints, oversized
//! fields, stray frames, a wrong version, a second HELLO) and checks the typed
//! GOAWAY or CANCEL ARCHITECTURE.md's "Rules for implementers" promise, while a
//! good client on another link keeps getting answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::{Bytes, BytesMut};
use netcore::proto::frame::{Cancel, Credit, Data, End, Frame, GoAway, Hello, Open, Ping};
use netcore::proto::framing::{Framing, Length};
use netcore::proto::{Envelope, ErrorCode, MessageKind, StreamId};
use netcore::{Endpoint, Link, Reply, Request};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client that speaks the stream framing by hand.
struct Raw {
    socket: TcpStream,
    rx: BytesMut,
    decoder: Length,
    /// The server's HELLO, once read.
    server: Option<Hello>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        Raw {
            socket: TcpStream::connect(addr).await.unwrap(),
            rx: BytesMut::new(),
            decoder: Length::new(1 << 24),
            server: None,
        }
    }

    /// Writes one frame, length-prefixed.
    async fn send(&mut self, frame: Frame) {
        let envelope = Envelope::from(frame);
        let mut head = Vec::new();
        envelope.encode_head(&mut head);
        head.extend_from_slice(envelope.frame.payload());
        self.send_frame_bytes(&head).await;
    }

    /// Writes `frame` (any bytes) behind a correct length prefix.
    async fn send_frame_bytes(&mut self, frame: &[u8]) {
        let mut wire = BytesMut::new();
        Length::new(1 << 24).encode(frame, &[], &mut wire);
        self.send_raw(&wire).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.unwrap();
    }

    /// The next frame from the server; `None` once it closed the connection.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(raw) = self.decoder.decode(&mut self.rx).expect("server framing") {
                return Some(Envelope::decode(raw).expect("server frame").frame);
            }
            let n = common::within("a server frame", self.socket.read_buf(&mut self.rx))
                .await
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// Reads the server's HELLO (the server sends it without waiting for ours).
    async fn read_hello(&mut self) -> Hello {
        match self.next().await {
            Some(Frame::Hello(hello)) => {
                self.server = Some(hello);
                hello
            }
            other => panic!("expected the server's HELLO, got {other:?}"),
        }
    }

    /// A completed handshake: our nonce is below the server's, so we open even ids.
    async fn handshake(addr: SocketAddr) -> Raw {
        let mut raw = Raw::connect(addr).await;
        let server = raw.read_hello().await;
        raw.send(Frame::Hello(Hello::new(server.nonce / 2))).await;
        raw
    }

    /// Frames until a GOAWAY, which must come before the server closes.
    async fn goaway(&mut self) -> GoAway {
        loop {
            match self.next().await {
                Some(Frame::GoAway(goaway)) => return goaway,
                Some(_) => {}
                None => panic!(
                    "the connection closed without a GOAWAY (the server's HELLO came: {})",
                    self.server.is_some()
                ),
            }
        }
    }

    /// After a GOAWAY the server closes the connection.
    async fn closed(&mut self) {
        while let Some(frame) = self.next().await {
            assert!(
                !matches!(frame, Frame::Open(_) | Frame::Data(_)),
                "{frame:?} after the GOAWAY"
            );
        }
    }

    /// Sends a one-frame request and returns the answer's payload.
    async fn call(&mut self, stream: u64, route: &str, body: &'static [u8]) -> Open {
        let mut open = Open::new(StreamId(stream), MessageKind::Request, route);
        open.payload = Bytes::from_static(body);
        open.fin = true;
        self.send(Frame::Open(open)).await;
        loop {
            match self.next().await.expect("an answer") {
                Frame::Open(answer) if answer.stream == StreamId(stream) => return answer,
                Frame::GoAway(goaway) => panic!("GOAWAY instead of an answer: {goaway:?}"),
                _ => {}
            }
        }
    }
}

async fn echo(req: Request) -> netcore::HandlerResult {
    Ok(Reply::new(req.body.into_bytes().await.unwrap_or_default()))
}

/// An echo server accepting every connection, and a good client's link to it.
async fn server() -> (Endpoint, SocketAddr, Endpoint, Link) {
    let server = Endpoint::builder().route("echo", echo).start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepting = server.clone();
    actix_rt::spawn(async move {
        loop {
            // Refused handshakes fail here; the loop goes on to the next peer.
            let _ = accepting.accept_tcp(&listener).await;
        }
    });
    let client = Endpoint::builder().start();
    let link = client.connect_tcp(addr).await.unwrap();
    (server, addr, client, link)
}

/// The good client still gets its answers.
async fn good_client_served(link: &Link) {
    let answer = common::within("the good client's call", link.call("echo", "still here"))
        .await
        .unwrap();
    assert_eq!(&answer.body.as_bytes().unwrap()[..], b"still here");
}

/// A HELLO frame's bytes with the given version and parameters (tag, raw value).
fn hello_bytes(version: u8, params: &[(u8, &[u8])]) -> Vec<u8> {
    let mut frame = vec![0x00, b'N', b'C', version];
    for (tag, value) in params {
        frame.push(*tag);
        frame.push(value.len() as u8);
        frame.extend_from_slice(value);
    }
    frame
}

#[actix_rt::test]
async fn refused_handshakes_get_their_goaway_before_the_close() {
    let (_server, addr, _client, link) = server().await;
    // Many times: the GOAWAY must not depend on whether the server's writer was
    // still busy with its HELLO when the bad first frame arrived.
    for round in 0..30 {
        let cases: [(&str, Vec<u8>, ErrorCode); 5] = [
            (
                "sequenced HELLO",
                b"\x08\x00NC\x01\x01\x01\x07".to_vec(),
                ErrorCode::Protocol,
            ),
            (
                "version 2",
                hello_bytes(2, &[(1, &[7])]),
                ErrorCode::Version,
            ),
            ("PING first", vec![0x60, 0x01], ErrorCode::Protocol),
            ("bad magic", b"\x00XY\x01".to_vec(), ErrorCode::Protocol),
            (
                "max_frame_len below the minimum",
                hello_bytes(1, &[(1, &[7]), (2, &[0x80, 0x01])]),
                ErrorCode::Protocol,
            ),
        ];
        for (what, frame, code) in cases {
            let mut raw = Raw::connect(addr).await;
            raw.send_frame_bytes(&frame).await;
            let goaway = raw.goaway().await;
            assert_eq!(goaway.code, code, "round {round}, {what}: {goaway:?}");
            raw.closed().await;
        }
    }
    good_client_served(&link).await;
}

#[actix_rt::test]
async fn malformed_varints_and_lengths_fail_the_link_with_goaway() {
    let (_server, addr, _client, link) = server().await;
    let cases: [(&str, Vec<u8>); 5] = [
        ("empty frame", vec![]),
        // CREDIT whose stream id has a redundant zero group.
        ("non-minimal varint", vec![0x80, 0x81, 0x00, 0x01]),
        // PING whose value runs over 10 bytes.
        ("varint over 10 bytes", {
            let mut f = vec![0x60];
            f.extend([0xFF; 10]);
            f.push(0x01);
            f
        }),
        ("truncated CANCEL", vec![0x40, 0x02]),
        ("unknown frame type", vec![0xA0]),
    ];
    for (what, frame) in cases {
        let mut raw = Raw::handshake(addr).await;
        raw.send_frame_bytes(&frame).await;
        let goaway = raw.goaway().await;
        assert_eq!(goaway.code, ErrorCode::Protocol, "{what}: {goaway:?}");
        raw.closed().await;
        good_client_served(&link).await;
    }
    // A length prefix that is no varint, and one above the frame-length limit.
    let prefixes: [(&str, Vec<u8>); 3] = [
        ("length prefix over 10 bytes", vec![0xFF; 11]),
        ("length prefix not minimal", vec![0x85, 0x00]),
        ("frame above max_frame_len", vec![0x80, 0x80, 0x80, 0x01]),
    ];
    for (what, prefix) in prefixes {
        let mut raw = Raw::handshake(addr).await;
        raw.send_raw(&prefix).await;
        let goaway = raw.goaway().await;
        assert_eq!(goaway.code, ErrorCode::Protocol, "{what}: {goaway:?}");
        raw.closed().await;
    }
    good_client_served(&link).await;
}

#[actix_rt::test]
async fn oversized_fields_fail_the_link_with_goaway() {
    let (_server, addr, _client, link) = server().await;
    let long_route = {
        // OPEN|FIN, stream 2, meta = request, route present, route of 1025 bytes.
        let mut f = vec![0x11, 0x02, 0x41, 0x81, 0x08];
        f.extend(std::iter::repeat_n(b'r', 1025));
        f
    };
    let many_headers = {
        // OPEN|FIN, stream 2, meta = request, headers present, 33 headers.
        let mut f = vec![0x11, 0x02, 0x21, 33];
        for _ in 0..33 {
            f.extend([1, b'h', 1, b'v']);
        }
        f
    };
    let long_reason = {
        let mut f = vec![0x90, 0x00, 0x00];
        f.extend(std::iter::repeat_n(b'x', 257));
        f
    };
    let long_header_value = {
        // OPEN|FIN, stream 2, meta = request, headers present, one header whose
        // value is 1025 bytes.
        let mut f = vec![0x11, 0x02, 0x21, 1, 1, b'h', 0x81, 0x08];
        f.extend(std::iter::repeat_n(0u8, 1025));
        f
    };
    let long_sack = vec![0x50, 0x00, 17];
    for (what, frame) in [
        ("header value over 1024 bytes", long_header_value),
        ("route over 1024 bytes", long_route),
        ("33 headers", many_headers),
        ("GOAWAY reason over 256 bytes", long_reason),
        ("ACK bitmap over 16 bytes", long_sack),
    ] {
        let mut raw = Raw::handshake(addr).await;
        raw.send_frame_bytes(&frame).await;
        let goaway = raw.goaway().await;
        assert_eq!(goaway.code, ErrorCode::Protocol, "{what}: {goaway:?}");
        raw.closed().await;
        good_client_served(&link).await;
    }
    // A HELLO with 33 parameters, and one with a 65-byte parameter.
    let params: Vec<(u8, &[u8])> = (0..33).map(|i| (20 + i as u8, &[0u8][..])).collect();
    let long_param = [0u8; 65];
    for hello in [
        hello_bytes(1, &params),
        hello_bytes(1, &[(20, &long_param)]),
    ] {
        let mut raw = Raw::connect(addr).await;
        raw.send_frame_bytes(&hello).await;
        assert_eq!(raw.goaway().await.code, ErrorCode::Protocol);
        raw.closed().await;
    }
    good_client_served(&link).await;
    // A message declaring more than `max_message_bytes` (4 GiB): only that stream
    // is refused, with CANCEL(TooLarge).
    let mut raw = Raw::handshake(addr).await;
    let mut open = Open::new(StreamId(2), MessageKind::Request, "echo");
    open.total_len = Some(5 << 30);
    open.payload = Bytes::from_static(b"the first of five GiB");
    raw.send(Frame::Open(open)).await;
    let cancel = loop {
        match raw.next().await.expect("the link stays up") {
            Frame::Cancel(cancel) => break cancel,
            Frame::GoAway(goaway) => panic!("{goaway:?}"),
            _ => {}
        }
    };
    assert_eq!(
        cancel,
        Cancel {
            stream: StreamId(2),
            code: ErrorCode::TooLarge
        }
    );
    assert_eq!(raw.call(4, "echo", b"after").await.payload, &b"after"[..]);
}

#[actix_rt::test]
async fn stray_frames_for_unknown_streams_cost_nothing_but_their_stream() {
    let (_server, addr, _client, link) = server().await;
    let mut raw = Raw::handshake(addr).await;
    assert_eq!(raw.call(2, "echo", b"one").await.payload, &b"one"[..]);
    // DATA and END for streams we never opened: CANCEL(Protocol) for each stream,
    // once, and the link goes on.
    for frame in [
        Frame::Data(Data {
            stream: StreamId(40),
            payload: Bytes::from_static(b"orphan"),
            fin: false,
        }),
        Frame::Data(Data {
            stream: StreamId(40),
            payload: Bytes::from_static(b"orphan"),
            fin: true,
        }),
        Frame::End(End {
            stream: StreamId(42),
        }),
    ] {
        raw.send(frame).await;
    }
    // CANCEL and CREDIT for streams that do not exist (or ended): ignored.
    raw.send(Frame::Cancel(Cancel {
        stream: StreamId(2),
        code: ErrorCode::Canceled,
    }))
    .await;
    raw.send(Frame::Cancel(Cancel {
        stream: StreamId(1001),
        code: ErrorCode::Canceled,
    }))
    .await;
    raw.send(Frame::Credit(Credit {
        stream: StreamId(77),
        increment: u64::MAX,
    }))
    .await;
    raw.send(Frame::Ping(Ping { opaque: 99 })).await;
    let mut cancels = Vec::new();
    loop {
        match raw.next().await.expect("the link stays up") {
            Frame::Cancel(cancel) => cancels.push(cancel),
            Frame::Pong(pong) => {
                assert_eq!(pong.opaque, 99);
                break;
            }
            Frame::GoAway(goaway) => panic!("{goaway:?}"),
            _ => {}
        }
    }
    let code = ErrorCode::Protocol;
    assert_eq!(
        cancels,
        [
            Cancel {
                stream: StreamId(40),
                code
            },
            Cancel {
                stream: StreamId(42),
                code
            }
        ]
    );
    assert_eq!(raw.call(4, "echo", b"two").await.payload, &b"two"[..]);
    good_client_served(&link).await;
}

#[actix_rt::test]
async fn frames_that_break_the_id_rules_fail_the_link_with_goaway() {
    let (_server, addr, _client, link) = server().await;
    let request = |stream| {
        let mut open = Open::new(StreamId(stream), MessageKind::Request, "echo");
        open.fin = true;
        Frame::Open(open)
    };
    let answer = |stream| {
        let mut open = Open::new(StreamId(stream), MessageKind::Response, "");
        open.fin = true;
        Frame::Open(open)
    };
    let cases: [(&str, Frame); 7] = [
        ("a request on stream 0", request(0)),
        ("a request with the server's parity", request(3)),
        ("an answer with our own parity", answer(2)),
        ("an answer to a request never made", answer(1_000_001)),
        (
            "DATA on a server stream never opened",
            Frame::Data(Data {
                stream: StreamId(1_000_001),
                payload: Bytes::new(),
                fin: true,
            }),
        ),
        (
            "CANCEL on stream 0",
            Frame::Cancel(Cancel {
                stream: StreamId(0),
                code: ErrorCode::Canceled,
            }),
        ),
        ("a second HELLO", Frame::Hello(Hello::new(3))),
    ];
    for (what, frame) in cases {
        let mut raw = Raw::handshake(addr).await;
        raw.send(frame).await;
        let goaway = raw.goaway().await;
        assert_eq!(goaway.code, ErrorCode::Protocol, "{what}: {goaway:?}");
        raw.closed().await;
        good_client_served(&link).await;
    }
    // A sequenced frame on a link without the reliable mode.
    let mut raw = Raw::handshake(addr).await;
    raw.send_frame_bytes(&[0x68, 0x00, 0x05]).await;
    assert_eq!(raw.goaway().await.code, ErrorCode::Protocol);
    raw.closed().await;
    // An ACK without the reliable mode is ignored.
    let mut raw = Raw::handshake(addr).await;
    raw.send_frame_bytes(&[0x50, 0x03, 0x00]).await;
    assert_eq!(
        raw.call(2, "echo", b"ack ignored").await.payload,
        &b"ack ignored"[..]
    );
    good_client_served(&link).await;
}

/// Files in `dir` (the spool files of a link spooling there).
fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// A peer that sends half of two bodies (one held in memory, one spooled to a
/// file) and then only PINGs: after the stall timeout it gets CANCEL(Timeout)
/// for both, the endpoint's memory budget is back to 0, the spool file is gone,
/// and the link still serves.
#[actix_rt::test]
async fn half_sent_bodies_are_canceled_after_the_stall_timeout_and_freed() {
    let server = Endpoint::builder().route("echo", echo).start();
    let spool = tempfile::tempdir().unwrap();
    let mut options = netcore::LinkOptions::stream();
    options.config.stall_timeout = Some(std::time::Duration::from_millis(500));
    options.config.limits.spool_threshold = 4096;
    options.spool.dir = spool.path().to_path_buf();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = async {
        let (stream, _) = listener.accept().await.unwrap();
        server.attach(stream, options).await.unwrap()
    };
    let (_link, mut raw) = tokio::join!(accept, Raw::handshake(addr));

    let half = |stream: u64, total_len: u64| {
        let mut open = Open::new(StreamId(stream), MessageKind::Request, "echo");
        open.total_len = Some(total_len);
        open.payload = Bytes::from(vec![0x5a; 1000]);
        Frame::Open(open)
    };
    raw.send(half(2, 2000)).await; // in memory
    raw.send(half(4, 10_000)).await; // above the spool threshold: a file
    let held = async {
        while server.memory_budget().used() == 0 || files_in(spool.path()) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    common::within("the bodies held", held).await;

    // Only PINGs from now on; the CANCELs come once the timeout passed.
    let mut cancels = Vec::new();
    let mut opaque = 0;
    let stalled = async {
        while cancels.len() < 2 {
            opaque += 1;
            raw.send(Frame::Ping(Ping { opaque })).await;
            let wait = std::time::Duration::from_millis(20);
            while let Ok(frame) = tokio::time::timeout(wait, raw.next()).await {
                match frame.expect("the link stays up") {
                    Frame::Cancel(cancel) => cancels.push(cancel),
                    Frame::GoAway(goaway) => panic!("{goaway:?}"),
                    _ => {}
                }
            }
        }
    };
    common::within("the CANCELs", stalled).await;
    cancels.sort_by_key(|c| c.stream);
    let code = ErrorCode::Timeout;
    assert_eq!(
        cancels,
        [
            Cancel {
                stream: StreamId(2),
                code
            },
            Cancel {
                stream: StreamId(4),
                code
            }
        ]
    );
    assert_eq!(server.memory_budget().used(), 0);
    let gone = async {
        while files_in(spool.path()) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    common::within("the spool file deleted", gone).await;
    assert_eq!(raw.call(6, "echo", b"after").await.payload, &b"after"[..]);
}
