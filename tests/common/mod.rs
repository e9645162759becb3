//! Helpers shared by the integration tests: each test file that needs them says
//! `mod common;` (not every file uses every helper).
#![allow(dead_code, clippy::unwrap_used)]

use netcore::{Endpoint, EndpointBuilder, Link};

/// Starts `server` and `client`, connects them over TCP loopback, and returns the
/// server, its link to the client, the client, and its link to the server.
pub async fn tcp_pair(
    server: EndpointBuilder,
    client: EndpointBuilder,
) -> (Endpoint, Link, Endpoint, Link) {
    let server = server.start();
    let client = client.start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (s, c) = tokio::join!(server.accept_tcp(&listener), client.connect_tcp(addr));
    (server, s.unwrap(), client, c.unwrap())
}

/// [`tcp_pair`] with a plain client: (server, client, the client's link).
pub async fn connect(server: EndpointBuilder) -> (Endpoint, Endpoint, Link) {
    let (server, _, client, link) = tcp_pair(server, Endpoint::builder()).await;
    (server, client, link)
}

/// `len` pseudo-random bytes from `seed` (xorshift64): test data that compresses
/// badly and differs at every offset.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
