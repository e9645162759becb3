//! A fuzzing driver: a [`Reassembly`] fed frames derived from raw bytes, with its
//! invariants checked after every step (`fuzz/fuzz_targets/reassembly.rs`, and a
//! proptest twin that runs on stable).

use super::{MemorySinkFactory, Reassembly, ReassemblyConfig, SinkFactory};
use crate::config::Limits;
use crate::error::ErrorCode;
use crate::error::ProtocolError;
use crate::frame::{Data, End, Envelope, Frame, Open};
use crate::ids::{MessageKind, StreamId};
use alloc::boxed::Box;
use alloc::vec;
use bytes::Bytes;

/// Small limits, so short inputs reach every limit.
const CONFIG: ReassemblyConfig = ReassemblyConfig {
    limits: Limits {
        max_message_bytes: 3000,
        max_inbound_streams: 4,
        max_buffered_bytes: 1500,
        spool_threshold: 600,
    },
    stream_window: 800,
    link_window: 2000,
    stall_timeout: None,
};

/// Drives a [`Reassembly`] with operations decoded from `data` and panics if an
/// invariant breaks ([`Reassembly::check_invariants`], and everything returned
/// and freed once the link closes). For fuzzers; not part of the API.
///
/// The first byte picks the sink factory and whether the simulated peer respects
/// its credit; each following operation byte picks a raw frame to decode, a
/// crafted OPEN/DATA/END/CANCEL, a local cancel or release, or a poll.
pub fn fuzz_frames(data: &[u8]) {
    let mut input = Input(data);
    let setup = input.byte().unwrap_or(0);
    let factory = match setup % 6 {
        0 => None,
        1 => Some(MemorySinkFactory::new()),
        2 => Some(MemorySinkFactory::pending()),
        3 => Some(MemorySinkFactory::new().failing_after(700)),
        4 => Some(MemorySinkFactory::refusing()),
        _ => Some(MemorySinkFactory::pending().failing_finish()),
    };
    let sinks = factory
        .as_ref()
        .map(|f| Box::new(f.clone()) as Box<dyn SinkFactory>);
    let obedient = setup & 0x80 != 0;
    let mut r = Reassembly::new(CONFIG, sinks);

    while let Some(op) = input.byte() {
        let result = step(&mut r, &mut input, op, obedient, factory.as_ref());
        if let Err(e) = r.check_invariants() {
            panic!("invariant broken after op {op}: {e}");
        }
        if result.is_err() {
            break; // fatal: the link would close
        }
    }

    while r.poll_event().is_some() {}
    r.close(ErrorCode::GoingAway);
    r.flush_credit();
    while r.poll_credit().is_some() {}
    if let Err(e) = r.check_invariants() {
        panic!("invariant broken at close: {e}");
    }
    assert_eq!(r.buffered_bytes(), 0, "bytes left buffered");
    assert_eq!(r.allocated_bytes(), 0, "capacity left allocated");
    assert_eq!(r.live_streams(), 0, "streams left live");
    assert_eq!(
        r.peer_link_credit(),
        CONFIG.link_window,
        "link credit not all returned"
    );
}

fn step(
    r: &mut Reassembly,
    input: &mut Input<'_>,
    op: u8,
    obedient: bool,
    factory: Option<&MemorySinkFactory>,
) -> Result<(), ProtocolError> {
    match op % 11 {
        0 => {
            let len = usize::from(input.byte().unwrap_or(0));
            let frame = Envelope::decode(Bytes::copy_from_slice(input.take(len)));
            match frame.map(|e| e.frame) {
                Ok(Frame::Open(open)) => r.handle_open(open),
                Ok(Frame::Data(data)) => r.handle_data(data),
                Ok(Frame::End(end)) => r.handle_end(end),
                Ok(Frame::Cancel(c)) => {
                    r.handle_cancel(c.stream, c.code);
                    Ok(())
                }
                _ => Ok(()),
            }
        }
        1 => {
            let stream = input.stream();
            let flags = input.byte().unwrap_or(0);
            let len = payload_len(r, input, stream, obedient);
            let total_len = match (flags >> 1) % 5 {
                0 => None,
                1 => Some(input.u16()),
                2 => Some(u64::MAX - u64::from(input.byte().unwrap_or(0))),
                3 => Some(len as u64),
                _ => Some(len as u64 + u64::from(input.byte().unwrap_or(0))),
            };
            let mut open = Open::new(stream, MessageKind::Request, "fuzz");
            open.total_len = total_len;
            open.payload = payload(stream, len);
            open.fin = flags & 1 != 0;
            r.handle_open(open)
        }
        2 => {
            let stream = input.stream();
            let fin = input.byte().unwrap_or(0) & 1 != 0;
            let len = payload_len(r, input, stream, obedient);
            let payload = payload(stream, len);
            r.handle_data(Data {
                stream,
                payload,
                fin,
            })
        }
        3 => r.handle_end(End {
            stream: input.stream(),
        }),
        4 => {
            let stream = input.stream();
            let code = ErrorCode::from_wire(u64::from(input.byte().unwrap_or(0)));
            r.handle_cancel(stream, code);
            Ok(())
        }
        5 => {
            r.cancel(input.stream(), ErrorCode::Canceled);
            Ok(())
        }
        6 => {
            let stream = input.stream();
            let n = match factory {
                Some(f) if obedient => f.take_unreleased(stream),
                _ => input.u16(),
            };
            r.release(stream, n);
            Ok(())
        }
        7 => {
            for _ in 0..=input.byte().unwrap_or(0) % 4 {
                r.poll_event();
            }
            Ok(())
        }
        8 => {
            while r.poll_credit().is_some() {}
            Ok(())
        }
        9 => {
            r.flush_credit();
            Ok(())
        }
        _ => {
            r.close(ErrorCode::GoingAway);
            Ok(())
        }
    }
}

/// A payload length: up to 1200 bytes, or up to the credit for an obedient peer.
fn payload_len(r: &Reassembly, input: &mut Input<'_>, stream: StreamId, obedient: bool) -> usize {
    let mut len = input.u16() % 1200;
    if obedient {
        let stream_credit = r.peer_stream_credit(stream).unwrap_or(CONFIG.stream_window);
        len = len.min(r.peer_link_credit()).min(stream_credit);
    }
    usize::try_from(len).unwrap_or(0)
}

fn payload(stream: StreamId, len: usize) -> Bytes {
    Bytes::from(vec![stream.0 as u8; len])
}

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn u16(&mut self) -> u64 {
        let hi = u64::from(self.byte().unwrap_or(0));
        let lo = u64::from(self.byte().unwrap_or(0));
        hi << 8 | lo
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }

    /// Ids 1..=7: few enough that frames collide with live and refused streams.
    fn stream(&mut self) -> StreamId {
        StreamId(u64::from(self.byte().unwrap_or(0) % 7) + 1)
    }
}
