//! The bytes the scenarios move and how they are checked: a seeded generator (the
//! same seed gives the same bytes on both sides), and CRC-32C of files streamed in
//! 1 MiB reads so a spooled body is checked without loading it.

use bytes::Bytes;
use std::io::Read;
use std::path::Path;

/// The shared seeded generator of the test tooling (splitmix64).
pub use netcore::proto::rng::SplitMix64 as Rng;

/// `len` random bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Bytes {
    let mut buf = vec![0u8; len];
    Rng::new(seed).fill(&mut buf);
    Bytes::from(buf)
}

/// A zeroed buffer of `len` bytes whose pages are already mapped, so a baseline
/// reading into it pays no page faults inside its timed section.
pub fn touched_buffer(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    for page in buf.chunks_mut(4096) {
        page[0] = 1;
    }
    buf.fill(0);
    buf
}

/// CRC-32C and length of a file, read in 1 MiB pieces.
pub fn file_crc(path: &Path) -> std::io::Result<(u32, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut crc, mut len) = (0u32, 0u64);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((crc, len));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        len += n as u64;
    }
}

/// Why `got` differs from `want`, or `None` if they are identical.
pub fn compare(what: &str, got: &[u8], want: &[u8]) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!(
            "{what}: {} bytes received, {} sent",
            got.len(),
            want.len()
        ));
    }
    if got == want {
        return None;
    }
    let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
    Some(format!("{what}: corrupted from byte {at}"))
}

/// Why a received netcore body differs from `want` (whose CRC-32C is `want_crc`),
/// or `None` if it is identical: compared byte for byte in memory, by CRC-32C and
/// length when it was spooled to a file.
pub fn check_body(what: &str, body: &netcore::Body, want: &[u8], want_crc: u32) -> Option<String> {
    match body {
        netcore::Body::Bytes(bytes) => compare(what, bytes, want),
        netcore::Body::File(file) => match file_crc(file.path()) {
            Ok((crc, len)) if len == want.len() as u64 && crc == want_crc => None,
            Ok((_, len)) if len != want.len() as u64 => {
                Some(format!("{what}: {len} bytes spooled, {} sent", want.len()))
            }
            Ok(_) => Some(format!("{what}: spooled body corrupted (CRC-32C differs)")),
            Err(e) => Some(format!("{what}: reading the spooled body: {e}")),
        },
        netcore::Body::Stream(_) => Some(format!("{what}: a streamed body was not read")),
    }
}

/// What a benchmark handler received: a streamed body copied chunk by chunk into
/// the caller's buffer as it arrived (as the baselines read into theirs), or any
/// other body as it is.
pub struct Received {
    /// The buffer given to [`Received::take`] (holding the body if it streamed).
    pub buf: Vec<u8>,
    outcome: Outcome,
}

enum Outcome {
    Copied(usize),
    Body(netcore::Body),
    Failed(String),
}

impl Received {
    /// Reads a streamed body to its end into `buf`; other bodies stay as they are.
    pub async fn take(body: netcore::Body, mut buf: Vec<u8>) -> Received {
        let netcore::Body::Stream(mut stream) = body else {
            let outcome = Outcome::Body(body);
            return Received { buf, outcome };
        };
        let mut at = 0;
        let outcome = loop {
            match stream.next().await {
                Ok(Some(chunk)) => {
                    let Some(dest) = buf.get_mut(at..at + chunk.len()) else {
                        break Outcome::Failed("more bytes than sent".into());
                    };
                    dest.copy_from_slice(&chunk);
                    at += chunk.len();
                }
                Ok(None) => break Outcome::Copied(at),
                Err(e) => break Outcome::Failed(e.to_string()),
            }
        };
        Received { buf, outcome }
    }

    /// Like [`check_body`].
    pub fn check(&self, what: &str, want: &[u8], want_crc: u32) -> Option<String> {
        match &self.outcome {
            Outcome::Body(body) => check_body(what, body, want, want_crc),
            Outcome::Failed(why) => Some(format!("{what}: streamed body failed: {why}")),
            Outcome::Copied(len) if *len != want.len() => {
                Some(format!("{what}: {len} bytes streamed, {} sent", want.len()))
            }
            Outcome::Copied(_) => compare(what, &self.buf, want),
        }
    }
}
