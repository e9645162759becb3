//! The authenticated, encrypted mode on a transport: [`SecureOptions`] (which side
//! of the handshake a link plays, with which keys) and [`peek_secure_hello`], which
//! runs an accepted connection's handshake and opens its first HELLO, so the
//! endpoint can see which session it resumes before choosing a link.
//!
//! The protocol is the core's (`netcore_proto::secure`): a Noise
//! `NNpsk0_25519_ChaChaPoly_BLAKE2s` handshake with a pre-shared key per device,
//! then every frame sealed with ChaCha20-Poly1305. Any transport carries it
//! (serial, TCP, pipes): the handshake and the sealing live inside the link's
//! framing.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use netcore_proto::frame::Hello;
use netcore_proto::framing::{Framer, Framing, FramingKind};
use netcore_proto::secure::{handshake, SecureStats};
use netcore_proto::{Envelope, Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use netcore_proto::secure::{Established, KeyId, Psk, SecureKeys, SecureRole};
pub use netcore_proto::SecureError;

use super::Prefixed;

/// The longest first frame [`peek_secure_hello`] reads (a handshake opening and a
/// sealed HELLO are a few dozen bytes each).
const MAX_FIRST_FRAME: usize = 64 * 1024;

/// How a link authenticates: the side of the handshake it plays and its keys.
#[derive(Clone, Debug)]
pub struct SecureOptions {
    /// The role, as the protocol core takes it.
    pub role: SecureRole,
}

impl SecureOptions {
    /// The side that opens the handshake: a device with its key id and key.
    pub fn initiator(key_id: impl Into<KeyId>, psk: Psk) -> SecureOptions {
        SecureOptions {
            role: SecureRole::Initiator {
                key_id: key_id.into(),
                psk,
            },
        }
    }

    /// The side that answers: a table of every device's key by key id.
    pub fn responder(keys: SecureKeys) -> SecureOptions {
        SecureOptions {
            role: SecureRole::Responder { keys },
        }
    }
}

/// An accepted connection after [`peek_secure_hello`].
#[derive(Debug)]
pub struct SecureFirstFrame<T> {
    /// The handshake's keys, when the peer opened a handshake and it succeeded
    /// (the answer was written). `None`: the peer sent a plain first frame, or its
    /// handshake failed (a link started as a responder over [`transport`](Self::transport)
    /// runs it again and fails with the typed error, telling the peer).
    pub established: Option<Established>,
    /// The peer's first HELLO: opened with the handshake's keys, or plain.
    pub hello: Option<Hello>,
    /// Whether the first frame was a plain HELLO (the peer is not authenticated).
    pub plain: bool,
    /// The connection: after a successful handshake it serves every byte read
    /// after the opening (the sealed HELLO first); otherwise every byte read.
    pub transport: Prefixed<T>,
}

/// Reads frames from `read` until one whole frame is there; returns it and how
/// many bytes of `read` it took. `Ok(None)` at the end of the stream.
async fn next_frame<T: AsyncRead + Unpin>(
    stream: &mut T,
    read: &mut BytesMut,
    from: usize,
    deadline: tokio::time::Instant,
) -> io::Result<Option<(Bytes, usize)>> {
    loop {
        let mut framer = Framer::new(FramingKind::Stream, MAX_FIRST_FRAME);
        let mut probe = BytesMut::from(&read[from..]);
        let before = probe.len();
        match framer.decode(&mut probe) {
            Ok(Some(frame)) => return Ok(Some((frame, before - probe.len()))),
            Ok(None) => {}
            Err(_) => return Ok(None),
        }
        let n = tokio::time::timeout_at(deadline, stream.read_buf(read))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no first frame in time"))??;
        if n == 0 {
            return Ok(None);
        }
    }
}

/// Reads an accepted connection's first frame (stream framing) within `within`. A
/// handshake opening is answered with `keys` and the sealed HELLO after it opened,
/// so the caller learns who the peer is and which session it resumes; a plain
/// HELLO is returned as it is (`plain`). Bytes that a link must read again are
/// served again by the returned transport.
///
/// # Errors
/// `TimedOut` if the frames did not arrive within `within`; a read or write error.
pub async fn peek_secure_hello<T: AsyncRead + AsyncWrite + Unpin>(
    mut stream: T,
    keys: &SecureKeys,
    within: Duration,
) -> io::Result<SecureFirstFrame<T>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut read = BytesMut::new();
    let unrecognized = |read: BytesMut, stream, hello, plain| SecureFirstFrame {
        established: None,
        hello,
        plain,
        transport: Prefixed::new(read.freeze(), stream),
    };
    let Some((first, first_len)) = next_frame(&mut stream, &mut read, 0, deadline).await? else {
        return Ok(unrecognized(read, stream, None, false));
    };
    if !handshake::is_handshake_frame(&first) {
        let hello = match Envelope::decode(first) {
            Ok(Envelope {
                frame: Frame::Hello(hello),
                ..
            }) => Some(hello),
            _ => None,
        };
        let plain = hello.is_some();
        return Ok(unrecognized(read, stream, hello, plain));
    }
    let Ok((answer, established)) = handshake::respond(keys, &first) else {
        return Ok(unrecognized(read, stream, None, false));
    };
    let mut framed = BytesMut::new();
    Framer::new(FramingKind::Stream, MAX_FIRST_FRAME).encode(&answer, &[], &mut framed);
    tokio::time::timeout_at(deadline, stream.write_all(&framed))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake answer not written in time",
            )
        })??;
    // The initiator resends its opening until answered: skip copies of it (the
    // link that takes the connection answers them again).
    let mut after = first_len;
    let next = loop {
        match next_frame(&mut stream, &mut read, after, deadline).await? {
            Some((frame, len)) if frame == first => after += len,
            next => break next,
        }
    };
    let hello = match next {
        Some((sealed, _)) => {
            let (_, mut opener) = established.channel();
            let mut stats = SecureStats::default();
            match opener.open(&sealed, &mut stats).map(Envelope::decode) {
                Ok(Ok(Envelope {
                    frame: Frame::Hello(hello),
                    ..
                })) => Some(hello),
                _ => None,
            }
        }
        None => None,
    };
    let rest = read.split_off(first_len);
    Ok(SecureFirstFrame {
        established: Some(established),
        hello,
        plain: false,
        transport: Prefixed::new(rest.freeze(), stream),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netcore_proto::link::{Link, LinkConfig, ReliableConfig};
    use netcore_proto::Instant;
    use tokio::io::DuplexStream;

    const KEY: Psk = [3; 32];

    fn keys() -> SecureKeys {
        SecureKeys::new().with("dev", KEY)
    }

    /// A client link over `stream`, driven until `done` or the stream ends.
    async fn drive_client(mut link: Link, mut stream: DuplexStream, frames_in: usize) -> Link {
        let mut buf = [0u8; 4096];
        let mut handshakes = 0;
        loop {
            let mut out = BytesMut::new();
            while link.poll_transmit(&mut out) > 0 {}
            if !out.is_empty() {
                stream.write_all(&out).await.unwrap();
            }
            if handshakes >= frames_in {
                return link;
            }
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                return link;
            }
            link.handle_input(&buf[..n], Instant::ZERO).unwrap();
            handshakes += 1;
        }
    }

    fn client(psk: Psk) -> Link {
        let mut config = LinkConfig::stream(5);
        config.reliable = Some(ReliableConfig::default());
        config.session_id = 0xfeed;
        config.secure = Some(SecureOptions::initiator("dev", psk).role);
        Link::new(config, None)
    }

    #[tokio::test]
    async fn an_opening_is_answered_and_the_sealed_hello_opened() {
        let (client_end, server_end) = tokio::io::duplex(1 << 16);
        let client = tokio::spawn(drive_client(client(KEY), client_end, 1));
        let first = peek_secure_hello(server_end, &keys(), Duration::from_secs(5))
            .await
            .unwrap();
        let established = first.established.expect("the handshake succeeded");
        assert_eq!(established.key_id(), &KeyId::from("dev"));
        assert!(!first.plain);
        let session = first
            .hello
            .and_then(|h| h.session)
            .expect("a sealed HELLO with a session");
        assert_eq!(session.id, 0xfeed);
        let client = client.await.unwrap();
        // The link that takes the connection reads the sealed HELLO again.
        let mut server_config = LinkConfig::stream(9);
        server_config.reliable = Some(ReliableConfig::default());
        server_config.secure = Some(SecureRole::Established(established));
        let mut server = Link::new(server_config, None);
        let mut transport = first.transport;
        let mut buf = vec![0u8; 4096];
        let n = transport.read(&mut buf).await.unwrap();
        server.handle_input(&buf[..n], Instant::ZERO).unwrap();
        assert!(server.is_connected());
        assert_eq!(server.session().secure_peer(), Some(&KeyId::from("dev")));
        drop(client);
    }

    #[tokio::test]
    async fn a_resent_opening_is_skipped_and_answered_again_by_the_link() {
        let (mut client_end, server_end) = tokio::io::duplex(1 << 16);
        let client_side = tokio::spawn(async move {
            let mut link = client(KEY);
            let mut opening = BytesMut::new();
            while link.poll_transmit(&mut opening) > 0 {}
            // Unanswered for a while: the opening goes again before the answer.
            client_end.write_all(&opening).await.unwrap();
            client_end.write_all(&opening).await.unwrap();
            let mut buf = [0u8; 4096];
            let n = client_end.read(&mut buf).await.unwrap();
            link.handle_input(&buf[..n], Instant::ZERO).unwrap();
            let mut hello = BytesMut::new();
            while link.poll_transmit(&mut hello) > 0 {}
            client_end.write_all(&hello).await.unwrap();
            (link, client_end)
        });
        let first = peek_secure_hello(server_end, &keys(), Duration::from_secs(5))
            .await
            .unwrap();
        let session = first.hello.and_then(|h| h.session);
        assert_eq!(
            session.map(|s| s.id),
            Some(0xfeed),
            "the sealed HELLO found"
        );
        let (_client, _client_end) = client_side.await.unwrap();
        let mut server_config = LinkConfig::stream(9);
        server_config.reliable = Some(ReliableConfig::default());
        server_config.secure = Some(SecureRole::Established(first.established.unwrap()));
        let mut server = Link::new(server_config, None);
        let mut transport = first.transport;
        let mut buf = vec![0u8; 4096];
        let n = transport.read(&mut buf).await.unwrap();
        server
            .handle_input(&buf[..n], Instant::ZERO)
            .expect("the copy of the opening is no protocol error");
        assert!(server.is_connected());
    }

    #[tokio::test]
    async fn a_failed_handshake_is_served_again_whole() {
        let (client_end, server_end) = tokio::io::duplex(1 << 16);
        let _client = tokio::spawn(drive_client(client([4; 32]), client_end, 0));
        let first = peek_secure_hello(server_end, &keys(), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(first.established.is_none() && first.hello.is_none() && !first.plain);
        let mut transport = first.transport;
        let mut buf = vec![0u8; 4096];
        let n = transport.read(&mut buf).await.unwrap();
        let mut framer = Framer::new(FramingKind::Stream, 1 << 16);
        let mut read = BytesMut::from(&buf[..n]);
        let frame = framer.decode(&mut read).unwrap().unwrap();
        assert!(
            handshake::is_handshake_frame(&frame),
            "the opening comes again"
        );
    }

    #[tokio::test]
    async fn a_plain_hello_is_reported_plain() {
        let (mut client_end, server_end) = tokio::io::duplex(1 << 16);
        let mut link = Link::new(LinkConfig::stream(5), None);
        let mut out = BytesMut::new();
        while link.poll_transmit(&mut out) > 0 {}
        client_end.write_all(&out).await.unwrap();
        let first = peek_secure_hello(server_end, &keys(), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(first.plain && first.hello.is_some() && first.established.is_none());
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let (_client_end, server_end) = tokio::io::duplex(1 << 16);
        let error = peek_secure_hello(server_end, &keys(), Duration::from_millis(30))
            .await
            .expect_err("nothing was sent");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
