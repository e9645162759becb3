//! A whole `Link` after its handshake under arbitrary input: the first byte picks
//! the framing and how the rest is split into reads; nothing may panic, and a
//! failed link must refuse further input.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run link` (from the repository root). The stable
//! twins are the proptests in `proto/tests/link.rs`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use netcore_proto::frame::{Frame, Hello};
use netcore_proto::framing::{Framer, Framing, FramingKind};
use netcore_proto::link::{Link, LinkConfig};
use netcore_proto::{Envelope, Instant};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let kind = if control & 1 == 0 {
        FramingKind::Serial
    } else {
        FramingKind::Stream
    };
    let piece = usize::from(control >> 1).max(1);
    let mut link = Link::new(LinkConfig::new(kind, 1_000), None);
    let mut peer = Framer::new(kind, 1 << 20);
    let hello = Envelope::from(Frame::Hello(Hello::new(5)));
    let mut head = Vec::new();
    hello.encode_head(&mut head);
    let mut wire = BytesMut::new();
    peer.encode(&head, hello.frame.payload(), &mut wire);
    if link.handle_input(&wire, Instant::ZERO).is_err() {
        return;
    }
    let mut out = BytesMut::new();
    for chunk in rest.chunks(piece) {
        let ok = link.handle_input(chunk, Instant::ZERO).is_ok();
        assert!(!(link.is_failed() && ok));
        while link.poll_transmit(&mut out) > 0 {}
        out.clear();
        while link.poll_event().is_some() {}
    }
});
