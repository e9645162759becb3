//! Writes the fuzz seed corpus from real frames:
//! `cargo run -p netcore-proto --example fuzz_seeds -- fuzz/corpus`
//!
//! One file per seed under `<dir>/frame/` (bare frames), `<dir>/cobs/` and
//! `<dir>/length/` (a framed stream of all frames, behind the two header bytes the
//! framing targets read: max-frame-length selector and split seed). The output is
//! deterministic; rerun it when the wire format changes.

use bytes::{Bytes, BytesMut};
use netcore_proto::frame::{
    Ack, Cancel, Credit, Data, End, GoAway, Hello, Open, Ping, Pong, SessionResume,
};
use netcore_proto::framing::{Framer, Framing, FramingKind};
use netcore_proto::{Envelope, ErrorCode, Frame, MessageKind, Priority, StreamId};
use std::path::Path;

fn frames() -> Vec<(&'static str, Envelope)> {
    let mut hello = Hello::new(0x5eed);
    hello.session = Some(SessionResume {
        id: 7,
        received: 1234,
    });
    let mut open = Open::new(StreamId(1), MessageKind::Request, "sensors/temp");
    open.priority = Priority::High;
    open.headers = vec![("ct".into(), Bytes::from_static(b"json"))];
    open.payload = Bytes::from_static(b"{\"unit\":\"C\"}");
    open.total_len = Some(12);
    open.fin = true;
    let mut error = Open::new(StreamId(2), MessageKind::ErrorResponse, "");
    error.code = Some(ErrorCode::NotFound);
    error.fin = true;
    let data = Data {
        stream: StreamId(3),
        payload: Bytes::from(vec![0u8, 1, 0, 0, 255, 0]),
        fin: true,
    };
    vec![
        ("hello", Envelope::from(Frame::Hello(hello))),
        ("open", Envelope::from(Frame::Open(open))),
        ("open_error", Envelope::from(Frame::Open(error))),
        (
            "data_seq",
            Envelope {
                seq: Some(9),
                frame: Frame::Data(data),
            },
        ),
        (
            "end",
            Frame::End(End {
                stream: StreamId(3),
            })
            .into(),
        ),
        (
            "cancel",
            Frame::Cancel(Cancel {
                stream: StreamId(4),
                code: ErrorCode::Canceled,
            })
            .into(),
        ),
        (
            "ack",
            Frame::Ack(Ack {
                next: 10,
                selective: 0b1011,
            })
            .into(),
        ),
        ("ping", Frame::Ping(Ping { opaque: 42 }).into()),
        ("pong", Frame::Pong(Pong { opaque: 42 }).into()),
        (
            "credit",
            Frame::Credit(Credit {
                stream: StreamId(0),
                increment: 65536,
            })
            .into(),
        ),
        (
            "goaway",
            Frame::GoAway(GoAway {
                last_stream: StreamId(5),
                code: ErrorCode::GoingAway,
                reason: "bye".into(),
            })
            .into(),
        ),
    ]
}

/// All frames through one framing, behind the framing targets' two header bytes:
/// selector 12 (max_frame_len 4095) and a split seed.
fn framed_stream(kind: FramingKind, frames: &[(&str, Envelope)], seed: u8) -> Vec<u8> {
    let mut framer = Framer::new(kind, 4095);
    let mut wire = BytesMut::from(&[12u8, seed][..]);
    for (_, env) in frames {
        let mut head = Vec::new();
        env.encode_head(&mut head);
        framer.encode(&head, env.frame.payload(), &mut wire);
    }
    wire.to_vec()
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let dir = Path::new(&dir);
    let frames = frames();
    std::fs::create_dir_all(dir.join("frame"))?;
    for (name, env) in &frames {
        std::fs::write(dir.join("frame").join(name), env.to_bytes())?;
    }
    for (kind, target) in [
        (FramingKind::Serial, "cobs"),
        (FramingKind::Stream, "length"),
    ] {
        std::fs::create_dir_all(dir.join(target))?;
        for seed in [1u8, 200] {
            let stream = framed_stream(kind, &frames, seed);
            std::fs::write(dir.join(target).join(format!("all_frames_{seed}")), stream)?;
        }
        // One frame alone, and a HELLO with a tiny limit (drops as oversize).
        let one = framed_stream(kind, &frames[1..2], 7);
        std::fs::write(dir.join(target).join("open"), one)?;
        let mut tiny = framed_stream(kind, &frames[..1], 7);
        tiny[0] = 4; // max_frame_len 15
        std::fs::write(dir.join(target).join("hello_oversize"), tiny)?;
    }
    Ok(())
}
