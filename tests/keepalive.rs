//! The keepalive on a real runtime link: a peer that completes the handshake and
//! then falls silent (its socket open, nothing read or written) takes the link
//! down as unresponsive after the configured unanswered PINGs.
#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use netcore::proto::frame::{Frame, Hello};
use netcore::proto::framing::{Framer, FramingKind};
use netcore::proto::link::Keepalive;
use netcore::proto::Envelope;
use netcore::{DownReason, Endpoint, LinkOptions, LinkState};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const INTERVAL: Duration = Duration::from_millis(100);
const MAX_MISSED: u32 = 3;

/// Every frame in `wire` (stream framing).
fn frames(wire: &[u8]) -> Vec<Frame> {
    use netcore::proto::framing::Framing;
    let mut framer = Framer::new(FramingKind::Stream, 1 << 20);
    let mut buf = BytesMut::from(wire);
    let mut frames = Vec::new();
    while let Ok(Some(raw)) = framer.decode(&mut buf) {
        frames.push(Envelope::decode(raw).unwrap().frame);
    }
    frames
}

#[actix_rt::test]
async fn a_silent_peer_takes_a_tcp_link_down_through_the_keepalive() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The peer: a raw socket that sends a HELLO, then nothing, and reads nothing
    // until the link gave up.
    let peer = tokio::spawn(async move {
        use netcore::proto::framing::Framing;
        let (mut socket, _) = listener.accept().await.unwrap();
        let hello = Envelope::from(Frame::Hello(Hello::new(42)));
        let mut head = Vec::new();
        hello.encode_head(&mut head);
        let mut wire = BytesMut::new();
        Framer::new(FramingKind::Stream, 1 << 20).encode(&head, hello.frame.payload(), &mut wire);
        socket.write_all(&wire).await.unwrap();
        socket
    });
    let endpoint = Endpoint::builder().start();
    let mut options = LinkOptions::stream();
    options.config.keepalive = Some(Keepalive {
        interval: INTERVAL,
        max_missed: MAX_MISSED,
    });
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let link = endpoint.attach(stream, options).await.unwrap();
    let up_at = Instant::now();
    assert!(link.is_up());
    let mut socket = peer.await.unwrap();

    // Generous: only a guard against hanging (the link gives up after ~400 ms).
    let reason = tokio::time::timeout(Duration::from_secs(30), link.closed())
        .await
        .expect("the link stayed up with a silent peer");
    assert!(
        matches!(
            reason,
            DownReason::Unresponsive {
                what: "keepalive PINGs unanswered"
            }
        ),
        "went down for another reason: {reason}"
    );
    assert!(matches!(link.state(), LinkState::Down(_)));
    // Not before the PINGs had their chance (a lower bound cannot flake on a
    // slow machine).
    assert!(
        up_at.elapsed() >= INTERVAL * MAX_MISSED,
        "down after {:?}",
        up_at.elapsed()
    );

    // What the silent peer was sent: the HELLO, then one PING per interval of
    // silence, up to the limit (then maybe a GOAWAY), and the connection closed.
    let mut wire = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut wire))
        .await
        .expect("the link closed its socket")
        .unwrap();
    let sent = frames(&wire);
    assert!(matches!(sent.first(), Some(Frame::Hello(_))), "{sent:?}");
    let pings = sent.iter().filter(|f| matches!(f, Frame::Ping(_))).count();
    assert_eq!(pings, MAX_MISSED as usize, "{sent:?}");
}
