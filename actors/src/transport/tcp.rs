//! TCP: connecting ([`TcpPeer`], [`connect_tcp`]) and accepting ([`accept_tcp`])
//! with `TCP_NODELAY`, and reading a new connection's first frame
//! ([`peek_hello`]) to see whether its HELLO resumes a session.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use netcore_proto::frame::Hello;
use netcore_proto::framing::{Framer, Framing, FramingKind};
use netcore_proto::{Envelope, Frame};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};

use super::{with_context, Prefixed};

/// The longest first frame [`peek_hello`] reads: a HELLO is a few dozen bytes;
/// anything longer is not one, and is served again unread.
const MAX_FIRST_FRAME: usize = 64 * 1024;

/// A TCP peer: the addresses its name resolved to, tried in order on every
/// connect (resolved once, so a link reconnecting after a cut does not depend
/// on the name service).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpPeer {
    addrs: Vec<SocketAddr>,
}

impl TcpPeer {
    /// Resolves `addr` (`"host:port"`, a [`SocketAddr`], ...).
    ///
    /// # Errors
    /// The resolver's error, or `InvalidInput` if the name resolved to nothing.
    pub async fn resolve(addr: impl ToSocketAddrs) -> io::Result<TcpPeer> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
            .await
            .map_err(|err| with_context(err, "resolving a tcp address"))?
            .collect();
        TcpPeer::new(addrs)
    }

    /// A peer at these addresses, tried in this order.
    ///
    /// # Errors
    /// `InvalidInput` if `addrs` is empty.
    pub fn new(addrs: Vec<SocketAddr>) -> io::Result<TcpPeer> {
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to connect to",
            ));
        }
        Ok(TcpPeer { addrs })
    }

    /// The addresses, in the order they are tried.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Connects to the first address that answers and sets `TCP_NODELAY` on the
    /// connection (best effort, see [`accept_tcp`]).
    ///
    /// # Errors
    /// The last address's connect error, prefixed with the peer.
    pub async fn connect(&self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(&self.addrs[..])
            .await
            .map_err(|err| with_context(err, format_args!("tcp connect to {self}")))?;
        Ok(with_nodelay(stream))
    }
}

impl fmt::Display for TcpPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.addrs[..] {
            [only] => write!(f, "{only}"),
            [first, more @ ..] => write!(f, "{first} (or {} more)", more.len()),
            [] => f.write_str("nowhere"),
        }
    }
}

/// Resolves `addr` (`host:port`) and connects to the first of its addresses
/// that answers, with `TCP_NODELAY` set, so small frames leave at once instead
/// of waiting for Nagle's algorithm (see [`TcpPeer`]).
///
/// # Errors
/// The resolver's or the connect error, prefixed with the address.
pub async fn connect_tcp(addr: &str) -> io::Result<TcpStream> {
    TcpPeer::resolve(addr)
        .await
        .map_err(|err| with_context(err, format_args!("tcp {addr}")))?
        .connect()
        .await
}

/// Accepts one connection from `listener` and sets `TCP_NODELAY` on it.
///
/// `TCP_NODELAY` is best effort, on either side: a socket that refuses it still
/// carries the link, its small frames may only leave a little later (logged).
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await?;
/// let (stream, peer) = netcore_actors::transport::accept_tcp(&listener).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// The accept error, prefixed with the listening address.
pub async fn accept_tcp(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let local = listener.local_addr()?;
    let (stream, peer) = listener
        .accept()
        .await
        .map_err(|err| with_context(err, format_args!("tcp accept on {local}")))?;
    tracing::debug!(%local, %peer, "accepted tcp link");
    Ok((with_nodelay(stream), peer))
}

/// Sets `TCP_NODELAY` on a new connection, best effort.
fn with_nodelay(stream: TcpStream) -> TcpStream {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::warn!(%error, "tcp: could not set TCP_NODELAY");
    }
    stream
}

/// A new connection whose first frame was read (see [`peek_hello`]).
#[derive(Debug)]
pub struct FirstFrame<T> {
    /// The peer's HELLO, if its first frame was one; `None` if it was another
    /// frame, did not decode, or the connection ended before a whole frame.
    pub hello: Option<Hello>,
    /// The connection, serving every byte read so far again before the rest.
    pub transport: Prefixed<T>,
}

/// Reads `stream`'s first frame (stream framing, as on TCP and Unix sockets)
/// within `within`, to see whether the peer's HELLO resumes a session; the bytes
/// read are served again by the returned transport, so the link that gets it
/// reads the HELLO as if nothing had been read.
///
/// # Errors
/// `TimedOut` if no whole frame arrived within `within`; a read error.
pub async fn peek_hello<T: AsyncRead + Unpin>(
    mut stream: T,
    within: Duration,
) -> io::Result<FirstFrame<T>> {
    let mut read = BytesMut::new();
    let deadline = tokio::time::Instant::now() + within;
    let hello = loop {
        // A fresh decoder on a copy of everything read so far: a decoder keeps the
        // length prefix of a frame it has not seen whole, and `read` must keep
        // every byte to serve them again.
        let mut framer = Framer::new(FramingKind::Stream, MAX_FIRST_FRAME);
        let mut probe = read.clone();
        match framer.decode(&mut probe) {
            Ok(Some(frame)) => match Envelope::decode(frame) {
                Ok(Envelope {
                    frame: Frame::Hello(hello),
                    ..
                }) => break Some(hello),
                _ => break None,
            },
            Ok(None) => {}
            Err(_) => break None,
        }
        let n = tokio::time::timeout_at(deadline, stream.read_buf(&mut read))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no HELLO within {within:?}"),
                )
            })??;
        if n == 0 {
            break None;
        }
    };
    Ok(FirstFrame {
        hello,
        transport: Prefixed::new(read.freeze(), stream),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netcore_proto::link::{Link, LinkConfig, ReliableConfig};
    use tokio::io::AsyncWriteExt;

    /// The first bytes a link with the reliable mode and this session id sends:
    /// its HELLO, in the stream framing.
    fn hello_bytes(session_id: u64) -> BytesMut {
        let mut config = LinkConfig::stream(7);
        config.reliable = Some(ReliableConfig::default());
        config.session_id = session_id;
        let mut link = Link::new(config, None);
        let mut out = BytesMut::new();
        while link.poll_transmit(&mut out) > 0 {}
        assert!(!out.is_empty(), "a new link sends its HELLO");
        out
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = TcpPeer::resolve(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (client, accepted) = tokio::join!(peer.connect(), accept_tcp(&listener));
        let (client, (server, from)) = (client.unwrap(), accepted.unwrap());
        assert_eq!(from, client.local_addr().unwrap());
        assert!(client.nodelay().unwrap() && server.nodelay().unwrap());
        (client, server)
    }

    #[tokio::test]
    async fn an_accepted_hello_names_its_session_and_is_served_again() {
        let (mut client, server) = pair().await;
        let hello = hello_bytes(0x00c0_ffee);
        // In two writes: the peek waits for the whole frame.
        let (head, tail) = hello.split_at(3);
        client.write_all(head).await.unwrap();
        let writer = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.write_all(tail).await.unwrap();
            client.write_all(b"after").await.unwrap();
            client.shutdown().await.unwrap();
        };
        let (first, ()) = tokio::join!(peek_hello(server, Duration::from_secs(10)), writer);
        let mut first = first.unwrap();
        let session = first
            .hello
            .and_then(|h| h.session)
            .expect("a resumable HELLO");
        assert_eq!(session.id, 0x00c0_ffee);
        let mut again = Vec::new();
        first.transport.read_to_end(&mut again).await.unwrap();
        assert_eq!(&again[..hello.len()], &hello[..]);
        assert_eq!(&again[hello.len()..], b"after");
    }

    #[tokio::test]
    async fn anything_but_a_hello_is_served_again_without_one() {
        let (mut client, server) = pair().await;
        // A length prefix announcing more than a first frame may be: not a HELLO.
        let junk = [0xff, 0xff, 0xff, 0x7f, 1, 2, 3];
        client.write_all(&junk).await.unwrap();
        client.shutdown().await.unwrap();
        let mut first = peek_hello(server, Duration::from_secs(10)).await.unwrap();
        assert!(first.hello.is_none());
        let mut again = Vec::new();
        first.transport.read_to_end(&mut again).await.unwrap();
        assert_eq!(again, junk);
    }

    #[tokio::test]
    async fn a_silent_peer_times_the_peek_out() {
        let (_client, server) = pair().await;
        let error = peek_hello(server, Duration::from_millis(50))
            .await
            .expect_err("nothing was sent");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn connecting_where_nothing_listens_names_the_address() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let peer = TcpPeer::new(vec![addr]).unwrap();
        let error = peer.connect().await.expect_err("nothing listens");
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
        assert!(TcpPeer::new(Vec::new()).is_err());
    }
}
