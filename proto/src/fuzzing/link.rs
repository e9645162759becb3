//! The driver of a whole link under arbitrary input (see [`link`]).

use crate::config::Limits;
use crate::error::ErrorCode;
use crate::frame::{Envelope, Frame, Hello};
use crate::framing::{Framer, Framing, FramingKind};
use crate::ids::StreamId;
use crate::link::{Link, LinkConfig, Message, Session};
use crate::rng::SplitMix64;
use crate::time::Instant;
use alloc::vec;
use alloc::vec::Vec;
use bytes::BytesMut;

const NONCE: u64 = 1_000;
const PEER_NONCE: u64 = 5;

enum Step<'a> {
    Input(Vec<u8>),
    Raw(&'a [u8]),
    Call(u8, u8),
}

struct Harness {
    kind: FramingKind,
    link: Link,
    /// Decodes in place (`handle_input_buf`) where the link copies.
    twin: Session,
    twin_buf: BytesMut,
    max_frame_len: usize,
    bound: u64,
    failed: bool,
}

impl Harness {
    fn input(&mut self, bytes: &[u8]) {
        let result = self.link.handle_input(bytes, Instant::ZERO);
        self.twin_buf.extend_from_slice(bytes);
        let twin = self
            .twin
            .handle_input_buf(&mut self.twin_buf, Instant::ZERO);
        assert_eq!(result, twin, "Link and Session disagree");
        assert!(
            self.twin_buf.len() <= self.max_frame_len + 10,
            "the read buffer grew"
        );
        assert!(!(self.failed && result.is_ok()), "a failed link took input");
        self.failed |= result.is_err();
        assert_eq!(self.failed, self.link.is_failed());
        self.drain();
    }

    fn call(&mut self, op: u8, arg: u8) {
        let id = StreamId(u64::from(arg % 16));
        match op {
            0 => {
                let message = Message::new("r", vec![0u8; usize::from(arg) * 16]);
                let a = self.link.request(message.clone());
                assert_eq!(a, self.twin.request(message));
            }
            1 | 2 => {
                let outcome = if op == 1 {
                    Ok(())
                } else {
                    Err(ErrorCode::NotFound)
                };
                let a = self.link.respond(id, outcome, Message::new("", "a"));
                assert_eq!(a, self.twin.respond(id, outcome, Message::new("", "a")));
            }
            3 => {
                self.link.cancel(id, ErrorCode::Canceled);
                self.twin.cancel(id, ErrorCode::Canceled);
            }
            4 => {
                self.link.ping(u64::from(arg));
                self.twin.ping(u64::from(arg));
            }
            5 => {
                self.link.go_away(ErrorCode::NoError, "bye");
                self.twin.go_away(ErrorCode::NoError, "bye");
            }
            _ => {}
        }
        self.drain();
    }

    fn drain(&mut self) {
        let mut wire = BytesMut::new();
        while self.link.poll_transmit(&mut wire) > 0 {}
        let mut decoder = Framer::new(self.kind, 1 << 20);
        while let Some(raw) = decoder.decode(&mut wire).expect("our framing decodes") {
            Envelope::decode(raw).expect("our frames decode");
        }
        assert!(wire.is_empty());
        while self.link.poll_event().is_some() {}
        while self.twin.poll_command().is_some() {}
        while self.twin.poll_event().is_some() {}
        assert!(self.twin.buffered_bytes() <= self.bound);
    }
}

/// A whole `Link` after its handshake under arbitrary input; nothing may panic.
///
/// Input: `[control] rest…`. Control bit 0 picks the framing (serial, stream),
/// bit 1 tight windows and limits (so short inputs reach every limit), bit 2 the
/// mode, bits 3-7 the largest read (1 to 249 bytes; read sizes vary below it).
/// - raw mode: `rest` is the byte stream the peer sends;
/// - frame mode: `rest` is records: `len < 0xF0` then `len` bytes of one frame,
///   framed by a real peer framer (so the serial CRC lets arbitrary frames through
///   to the decoder and the state machine), or `0xF0 + op, arg`: a user call
///   (request, respond, cancel, ping, go_away) between frames.
///
/// Checked after every read: a failed link refuses further input; everything it
/// sends decodes; a bare `Session` fed the same input and calls, decoding it in
/// place (`handle_input_buf`) where the link copies (the inbound half of `Link`,
/// whose `buffered_bytes` the `Link` does not expose) agrees on every result and
/// keeps reassembly memory under `min(link_window / 2, max_buffered_bytes)`.
pub fn link(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let kind = if control & 1 == 0 {
        FramingKind::Serial
    } else {
        FramingKind::Stream
    };
    let mut config = LinkConfig::new(kind, NONCE);
    if control & 2 != 0 {
        config.stream_window = 1024;
        config.link_window = 4096;
        config.limits = Limits {
            max_message_bytes: 3000,
            max_inbound_streams: 4,
            max_buffered_bytes: 1536,
            spool_threshold: 1024,
        };
    }
    let bound = (config.link_window / 2).min(config.limits.max_buffered_bytes);
    let max_read = 1 + usize::from(control >> 3) * 8;

    let mut peer = Framer::new(kind, 1 << 20);
    let mut frame_bytes = |head: &[u8]| {
        let mut wire = BytesMut::new();
        peer.encode(head, &[], &mut wire);
        wire.to_vec()
    };
    let hello = Envelope::from(Frame::Hello(Hello::new(PEER_NONCE)));
    let mut head = Vec::new();
    hello.encode_head(&mut head);
    let hello = frame_bytes(&head);

    let max_frame_len = config.max_frame_len;
    let mut link = Link::new(config.clone(), None);
    let mut twin = Session::new(config, None);
    twin.set_read_ahead(1024);
    if link.handle_input(&hello, Instant::ZERO).is_err()
        || twin.handle_input(&hello, Instant::ZERO).is_err()
    {
        return;
    }
    let mut h = Harness {
        kind,
        link,
        twin,
        twin_buf: BytesMut::new(),
        max_frame_len,
        bound,
        failed: false,
    };
    h.drain();

    let mut steps = Vec::new();
    if control & 4 == 0 {
        steps.push(Step::Raw(rest));
    } else {
        let mut records = rest;
        while let [len, tail @ ..] = records {
            if *len >= 0xF0 {
                let [arg, tail @ ..] = tail else { break };
                steps.push(Step::Call(len - 0xF0, *arg));
                records = tail;
            } else {
                let (raw, tail) = tail.split_at(usize::from(*len).min(tail.len()));
                steps.push(Step::Input(frame_bytes(raw)));
                records = tail;
            }
        }
    }

    // Read sizes from the shared seeded generator, seeded by the control byte.
    let mut sizes = SplitMix64::new(u64::from(control));
    let mut next_len = move || 1 + sizes.below(max_read as u64) as usize;
    for step in steps {
        let bytes = match &step {
            Step::Call(op, arg) => {
                h.call(*op, *arg);
                continue;
            }
            Step::Input(bytes) => bytes.as_slice(),
            Step::Raw(bytes) => bytes,
        };
        let mut rest = bytes;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(next_len().min(rest.len()));
            h.input(piece);
            rest = tail;
        }
    }
}
