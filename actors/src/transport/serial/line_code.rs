//! The line code: how a link's bytes cross a serial line that cannot carry every
//! byte value as one character.
//!
//! - **XON/XOFF** (software flow control): the kernel (`IXON`) takes 0x11 (XON)
//!   and 0x13 (XOFF) out of what it receives, wherever they appear. The serial
//!   framing (COBS) keeps only 0x00 out of a frame, so a frame holding either
//!   byte would lose it, fail its CRC-32C and be dropped, and its retransmission
//!   too, forever. The code escapes them.
//! - **7 data bits**: the line drops every byte's top bit. The code sends a
//!   byte of 0x80 and above as a marker character and its low seven bits.
//!
//! Escapes follow PPP's (RFC 1662): an escaped byte `b` is sent as `ESC`
//! (0x7D) followed by `b ^ 0x20`. With 7 data bits a byte `b ≥ 0x80` is sent as
//! `HIGH` (0x7E) followed by the code of `b & 0x7F`. Escaped are `ESC`, `HIGH`
//! with 7 data bits, and XON and XOFF with software flow control; `x ^ 0x20`
//! of each of them is none of them. The receiving side drops raw XON and XOFF
//! (flow control from a peer whose kernel does not take them out) and undoes
//! the escapes. Random bytes cost 1.2% more characters with XON/XOFF, 52% more
//! with 7 data bits (see [`LineCode::chars_per_256_bytes`]).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const ESC: u8 = 0x7D;
const HIGH: u8 = 0x7E;
const XON: u8 = 0x11;
const XOFF: u8 = 0x13;
/// What an escaped byte is XORed with.
const FLIP: u8 = 0x20;

/// Characters of encoded output one `poll_write` prepares at most.
const WRITE_CHUNK: usize = 4096;
/// Bytes one `poll_read` asks the port for at most.
const READ_CHUNK: usize = 4096;

/// Which byte values a serial line cannot carry as one character, and so
/// escapes (see the module docs). Both ends of a line must use the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LineCode {
    seven_bit: bool,
    xon_xoff: bool,
}

impl LineCode {
    /// The code of an 8-bit line: escapes XON and XOFF if `xon_xoff`, else none
    /// (bytes pass unchanged).
    pub fn eight_bit(xon_xoff: bool) -> LineCode {
        LineCode {
            seven_bit: false,
            xon_xoff,
        }
    }

    /// The code of a 7-bit line (and XON/XOFF if `xon_xoff`).
    pub fn seven_bit(xon_xoff: bool) -> LineCode {
        LineCode {
            seven_bit: true,
            xon_xoff,
        }
    }

    /// Whether every byte passes unchanged (8 bits, no XON/XOFF).
    pub fn is_identity(&self) -> bool {
        !self.seven_bit && !self.xon_xoff
    }

    /// Characters on the line for all 256 byte values once each (256 for the
    /// identity): the code's mean cost, in 256ths of a character per byte.
    pub fn chars_per_256_bytes(&self) -> u32 {
        let mut out = [0; 3];
        (0..=255u8).map(|b| self.encode(b, &mut out) as u32).sum()
    }

    /// Whether `b` (below 0x80 on a 7-bit line) goes escaped.
    fn escaped(&self, b: u8) -> bool {
        if self.is_identity() {
            return false;
        }
        b == ESC || (self.seven_bit && b == HIGH) || (self.xon_xoff && (b == XON || b == XOFF))
    }

    /// The characters of `b` in `out`; returns how many (1 to 3).
    fn encode(&self, b: u8, out: &mut [u8; 3]) -> usize {
        let mut len = 0;
        let mut low = b;
        if self.seven_bit && b >= 0x80 {
            out[0] = HIGH;
            len = 1;
            low = b & 0x7F;
        }
        if self.escaped(low) {
            out[len] = ESC;
            out[len + 1] = low ^ FLIP;
            len + 2
        } else {
            out[len] = low;
            len + 1
        }
    }

    fn encoded_len(&self, b: u8) -> usize {
        let mut out = [0; 3];
        self.encode(b, &mut out)
    }
}

/// Undoes a [`LineCode`], character by character, across reads.
#[derive(Debug, Clone, Copy)]
struct Decoder {
    code: LineCode,
    escape: bool,
    high: bool,
}

impl Decoder {
    /// Decodes `buf` in place (the output is never longer than the input);
    /// returns the decoded length.
    fn decode_in_place(&mut self, buf: &mut [u8]) -> usize {
        let mut out = 0;
        for i in 0..buf.len() {
            let mut c = buf[i];
            if self.code.seven_bit {
                c &= 0x7F;
            }
            if self.code.xon_xoff && (c == XON || c == XOFF) {
                continue; // flow control, never data
            }
            if self.code.is_identity() {
                buf[out] = c;
                out += 1;
                continue;
            }
            if c == ESC && !self.escape {
                self.escape = true;
                continue;
            }
            if self.code.seven_bit && c == HIGH && !self.escape {
                self.high = true;
                continue;
            }
            let mut b = if self.escape { c ^ FLIP } else { c };
            if self.high {
                b |= 0x80;
            }
            self.escape = false;
            self.high = false;
            buf[out] = b;
            out += 1;
        }
        out
    }
}

/// A transport whose bytes cross the line through a [`LineCode`]: what is
/// written is encoded, what is read is decoded.
///
/// Writes are accepted only as the inner transport takes their characters, so
/// nothing queues here, except the rest of one byte's escape that the inner
/// transport cut (at most two characters): the next write, flush or shutdown
/// sends it first. A write ending in a byte that is escaped may therefore
/// leave its last character until then; a link's writes end with a frame's
/// 0x00 delimiter, which is never escaped.
#[derive(Debug)]
pub struct LineCoded<T> {
    inner: T,
    code: LineCode,
    decoder: Decoder,
    /// Encoded characters prepared for the inner transport.
    scratch: Vec<u8>,
    /// The rest of an escape the inner transport took only part of.
    tail: [u8; 2],
    tail_len: usize,
}

impl<T> LineCoded<T> {
    /// `inner` with its bytes going through `code`.
    pub fn new(inner: T, code: LineCode) -> LineCoded<T> {
        LineCoded {
            inner,
            code,
            decoder: Decoder {
                code,
                escape: false,
                high: false,
            },
            scratch: Vec::new(),
            tail: [0; 2],
            tail_len: 0,
        }
    }

    /// The code.
    pub fn code(&self) -> LineCode {
        self.code
    }

    /// The inner transport.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The inner transport, and whatever escape it holds unsent is lost.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncWrite + Unpin> LineCoded<T> {
    /// Sends the rest of a cut escape.
    fn poll_tail(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tail_len > 0 {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.tail[..self.tail_len]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.tail.copy_within(n..self.tail_len, 0);
            self.tail_len -= n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LineCoded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let room = buf.initialize_unfilled_to(buf.remaining().min(READ_CHUNK));
            let read = {
                let mut raw = ReadBuf::new(room);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut raw))?;
                raw.filled().len()
            };
            if read == 0 {
                return Poll::Ready(Ok(())); // end of stream
            }
            let decoded = this.decoder.decode_in_place(&mut room[..read]);
            buf.advance(decoded);
            if decoded > 0 {
                return Poll::Ready(Ok(()));
            }
            // Only escapes or flow control: read on (an empty read means the end).
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for LineCoded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_tail(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.scratch.clear();
        let mut out = [0; 3];
        for &b in buf {
            let len = this.code.encode(b, &mut out);
            if this.scratch.len() + len > WRITE_CHUNK {
                break;
            }
            this.scratch.extend_from_slice(&out[..len]);
        }
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, &this.scratch))?;
        if written == 0 {
            return Poll::Ready(Ok(0));
        }
        // The bytes whose characters went out; one cut inside its escape counts
        // as written and its rest waits in `tail`.
        let mut consumed = 0;
        let mut end = 0;
        while end < written {
            let len = this.code.encoded_len(buf[consumed]);
            if end + len > written {
                let rest = &this.scratch[written..end + len];
                this.tail[..rest.len()].copy_from_slice(rest);
                this.tail_len = rest.len();
            }
            end += len;
            consumed += 1;
        }
        Poll::Ready(Ok(consumed))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_tail(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_tail(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn codes() -> [LineCode; 4] {
        [
            LineCode::eight_bit(false),
            LineCode::eight_bit(true),
            LineCode::seven_bit(false),
            LineCode::seven_bit(true),
        ]
    }

    fn encode_all(code: LineCode, data: &[u8]) -> Vec<u8> {
        let mut out = [0; 3];
        let mut line = Vec::new();
        for &b in data {
            let len = code.encode(b, &mut out);
            line.extend_from_slice(&out[..len]);
        }
        line
    }

    #[test]
    fn the_line_never_carries_what_it_cannot() {
        let all: Vec<u8> = (0..=255).collect();
        for code in codes() {
            let line = encode_all(code, &all);
            if code.xon_xoff {
                assert!(!line.contains(&XON) && !line.contains(&XOFF), "{code:?}");
            }
            if code.seven_bit {
                assert!(line.iter().all(|&c| c < 0x80), "{code:?}");
            }
            assert_eq!(line.len() as u32, code.chars_per_256_bytes(), "{code:?}");
            // 0x00, the framing's delimiter, stays one character.
            assert_eq!(code.encoded_len(0), 1);
        }
        assert_eq!(LineCode::eight_bit(false).chars_per_256_bytes(), 256);
        assert_eq!(LineCode::eight_bit(true).chars_per_256_bytes(), 259);
        assert_eq!(LineCode::seven_bit(false).chars_per_256_bytes(), 388);
        assert_eq!(LineCode::seven_bit(true).chars_per_256_bytes(), 392);
    }

    proptest! {
        #[test]
        fn decoding_in_any_pieces_undoes_encoding(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(1usize..40, 1..50),
            which in 0usize..4,
            flow in proptest::collection::vec(0usize..2000, 0..8),
        ) {
            let code = codes()[which];
            let mut line = encode_all(code, &data);
            if code.xon_xoff {
                // A peer's kernel inserting flow control anywhere changes nothing.
                for at in flow {
                    let at = at % (line.len() + 1);
                    line.insert(at, if at % 2 == 0 { XON } else { XOFF });
                }
            }
            let mut decoder = Decoder { code, escape: false, high: false };
            let mut got = Vec::new();
            let mut rest = &mut line[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                i += 1;
                let (piece, after) = rest.split_at_mut(n);
                let len = decoder.decode_in_place(piece);
                got.extend_from_slice(&piece[..len]);
                rest = after;
            }
            prop_assert_eq!(got, data);
        }
    }

    /// A writer that takes at most `max` characters a write.
    struct Trickle {
        line: Vec<u8>,
        max: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.line.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn writes_cut_inside_an_escape_lose_nothing() {
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).chain([0]).collect();
        for code in codes() {
            for max in [1, 2, 3, 7, 5000] {
                let mut coded = LineCoded::new(
                    Trickle {
                        line: Vec::new(),
                        max,
                    },
                    code,
                );
                coded.write_all(&data).await.expect("a write");
                let line = coded.into_inner().line;
                assert_eq!(line, encode_all(code, &data), "{code:?} at {max}");
            }
        }
    }

    #[tokio::test]
    async fn a_coded_duplex_carries_every_byte_value_both_ways() {
        let data: Vec<u8> = (0..=255u8).cycle().take(20_000).collect();
        for code in codes() {
            let (a, b) = tokio::io::duplex(64);
            let mut a = LineCoded::new(a, code);
            let mut b = LineCoded::new(b, code);
            let mut got = vec![0; data.len()];
            let (written, read) = tokio::join!(a.write_all(&data), b.read_exact(&mut got));
            written.expect("written");
            read.expect("read");
            assert_eq!(got, data, "{code:?}");
            drop(a);
            let mut end = [0; 1];
            assert_eq!(
                b.read(&mut end).await.expect("end"),
                0,
                "the end reads as the end"
            );
        }
    }
}
