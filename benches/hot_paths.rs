//! Criterion micro-benchmarks of the protocol core's hot paths:
//! `cargo bench --bench hot_paths` (about half a minute).
//!
//! - `frame`: encoding and decoding one DATA frame (64 KiB and 32-byte payloads).
//! - `framing`: one frame through each framing and back (encode + decode), COBS +
//!   CRC-32C for serial links and the length prefix for streams.
//! - `write_batch`: four 64 KiB DATA frames through the stream framing into one
//!   write batch, copied into a `BytesMut` (as before) or referenced by a
//!   `WireBatch` (what the link writer uses now, with `writev`).
//! - `scheduler`: draining 1,000 queued four-chunk messages with `poll_transmit`
//!   (the writer's pull, with every stream competing in one class).
//! - `reassembly`: a 1 MiB message arriving as one OPEN and 15 DATA chunks.
//! - `stats`: reading a link's statistics: the protocol core's two snapshots
//!   (`Link::session_stats` and `transmitter_stats`, reliable mode on, a window
//!   of frames in flight), and `netcore::Link::stats` on a TCP loopback link
//!   (the two mailbox hops: link actor, scheduler actor), one read at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use netcore::proto::config::DEFAULT_MAX_FRAME_LEN;
use netcore::proto::frame::{Credit, Data, Envelope, Frame, Open};
use netcore::proto::framing::{Framer, Framing, FramingKind, WireBatch, WireOut};
use netcore::proto::reassembly::{InboundEvent, Reassembly, ReassemblyConfig};
use netcore::proto::scheduler::{Body, Scheduler, SchedulerConfig};
use netcore::proto::{MessageKind, StreamId};
use std::hint::black_box;
use std::time::Duration;

/// `len` bytes that are not all alike (COBS cost depends on where zeros fall).
fn payload(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect::<Vec<u8>>()
        .into()
}

fn data_frame(len: usize) -> Envelope {
    Envelope::from(Frame::Data(Data {
        stream: StreamId(7),
        payload: payload(len),
        fin: false,
    }))
}

fn frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for (name, len) in [("64KiB", 64 * 1024), ("32B", 32)] {
        let envelope = data_frame(len);
        let encoded = Bytes::from(envelope.to_bytes());
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(format!("encode_{name}"), |b| {
            let mut out = Vec::with_capacity(len + 16);
            b.iter(|| {
                out.clear();
                black_box(&envelope).encode(&mut out);
                black_box(out.len())
            })
        });
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| Envelope::decode(black_box(encoded.clone())).unwrap())
        });
    }
    group.finish();
}

fn framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing");
    for (kind_name, kind) in [
        ("serial", FramingKind::Serial),
        ("stream", FramingKind::Stream),
    ] {
        for (name, len) in [("64KiB", 64 * 1024), ("32B", 32)] {
            let envelope = data_frame(len);
            let mut head = Vec::new();
            envelope.encode_head(&mut head);
            let body = envelope.frame.payload().to_vec();
            let mut framer = Framer::new(kind, DEFAULT_MAX_FRAME_LEN);
            let mut wire = BytesMut::with_capacity(2 * len + 64);
            group.throughput(Throughput::Bytes(len as u64));
            group.bench_function(format!("{kind_name}_roundtrip_{name}"), |b| {
                b.iter(|| {
                    framer.encode(black_box(&head), black_box(&body), &mut wire);
                    let frame = framer.decode(&mut wire).unwrap().unwrap();
                    assert_eq!(frame.len(), head.len() + body.len());
                    frame
                })
            });
        }
    }
    group.finish();
}

fn write_batch(c: &mut Criterion) {
    const FRAMES: usize = 4;
    let envelope = data_frame(64 * 1024);
    let mut head = Vec::new();
    envelope.encode_head(&mut head);
    let body = envelope.frame.payload_bytes();
    let mut framer = Framer::new(FramingKind::Stream, DEFAULT_MAX_FRAME_LEN);
    let mut group = c.benchmark_group("write_batch");
    group.throughput(Throughput::Bytes((FRAMES * body.len()) as u64));
    group.bench_function("4x64KiB_copied", |b| {
        b.iter(|| {
            let mut batch = BytesMut::new();
            for _ in 0..FRAMES {
                batch.put_frame(&mut framer, black_box(&head), black_box(&body));
            }
            batch.freeze()
        })
    });
    group.bench_function("4x64KiB_shared", |b| {
        b.iter(|| {
            let mut batch = WireBatch::new();
            for _ in 0..FRAMES {
                batch.put_frame(&mut framer, black_box(&head), black_box(&body));
            }
            batch.into_segments()
        })
    });
    group.finish();
}

fn scheduler(c: &mut Criterion) {
    const STREAMS: u64 = 1000;
    const CHUNK: usize = 1024;
    let body = payload(4 * CHUNK);
    let mut group = c.benchmark_group("scheduler");
    group.throughput(Throughput::Elements(STREAMS * 4));
    group.bench_function("pull_1000_streams_x4_chunks", |b| {
        b.iter_batched(
            || {
                let mut s = Scheduler::new(SchedulerConfig {
                    chunk_len: CHUNK,
                    ..SchedulerConfig::default()
                });
                s.set_initial_stream_credit(1 << 30);
                s.add_credit(Credit::LINK, 1 << 40);
                for i in 0..STREAMS {
                    let open = Open::new(StreamId(2 * i + 1), MessageKind::OneWay, "t");
                    s.enqueue(open, Body::Full(body.clone())).unwrap();
                }
                s
            },
            |mut s| {
                let mut frames = 0u64;
                while let Some(frame) = s.poll_transmit() {
                    black_box(&frame);
                    frames += 1;
                }
                while s.poll_event().is_some() {}
                assert_eq!(frames, STREAMS * 4);
                frames
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn reassembly(c: &mut Criterion) {
    const LEN: usize = 1 << 20;
    const CHUNK: usize = 64 * 1024;
    let body = payload(LEN);
    let mut group = c.benchmark_group("reassembly");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.bench_function("1MiB_in_16_chunks", |b| {
        b.iter_batched(
            || Reassembly::new(ReassemblyConfig::default(), None),
            |mut r| {
                let mut open = Open::new(StreamId(1), MessageKind::OneWay, "t");
                open.total_len = Some(LEN as u64);
                open.payload = body.slice(..CHUNK);
                r.handle_open(open).unwrap();
                for start in (CHUNK..LEN).step_by(CHUNK) {
                    let end = start + CHUNK;
                    r.handle_data(Data {
                        stream: StreamId(1),
                        payload: body.slice(start..end),
                        fin: end == LEN,
                    })
                    .unwrap();
                }
                let Some(InboundEvent::Message { body: got, .. }) = r.poll_event() else {
                    panic!("no message");
                };
                assert_eq!(got.len(), LEN);
                while r.poll_credit().is_some() {}
                got
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn stats(c: &mut Criterion) {
    use netcore::proto::link::{LinkConfig, Message};
    use netcore::proto::sim::{Pair, Wire};
    let mut group = c.benchmark_group("stats");
    // A serial pair mid-transfer: 32 frames in flight, bytes queued.
    let mut pair = Pair::new(
        LinkConfig::serial(115_200, 7),
        LinkConfig::serial(115_200, 3),
        Wire::rated(11_520),
    );
    pair.drive();
    pair.a
        .link
        .one_way(Message::new("bulk", vec![1u8; 64 * 1024]))
        .unwrap();
    pair.drive_until(pair.now + Duration::from_millis(200));
    let reliable = pair.a.link.transmitter_stats().reliable.unwrap();
    assert!(reliable.in_flight > 0);
    group.bench_function("proto_snapshot", |b| {
        b.iter(|| {
            let link = black_box(&pair.a.link);
            (link.session_stats(), link.transmitter_stats())
        })
    });
    let system = actix_rt::System::new();
    let (_server, _client, link) = system.block_on(async {
        let server = netcore::Endpoint::builder().start();
        let client = netcore::Endpoint::builder().start();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (s, c) = tokio::join!(server.accept_tcp(&listener), client.connect_tcp(addr));
        s.unwrap();
        (server, client, c.unwrap())
    });
    group.bench_function("link_stats_tcp", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    black_box(link.stats().await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(30)
}

criterion_group! {
    name = hot_paths;
    config = config();
    targets = frame, framing, write_batch, scheduler, reassembly, stats
}
criterion_main!(hot_paths);
