//! `overhead`: wire bytes of one one-way message to route `"t"` for several payload
//! sizes over both framings, and of a 16-byte request with a 16-byte response.
//!
//! The figures are the protocol core's own measurement (`proto::overhead`: real
//! frames encoded between two simulated links, handshake excluded). The same
//! exchange is repeated here on a `sim::Pair` to check the byte count and that
//! the message arrived intact (the core only checks delivery in debug builds).

use crate::peers::Error;
use crate::report::{Json, Report};
use bytes::Bytes;
use netcore::proto::framing::FramingKind;
use netcore::proto::link::{LinkConfig, LinkEvent, Message};
use netcore::proto::overhead::{one_way_wire_bytes, rpc_wire_bytes};
use netcore::proto::sim::{Pair, Wire};
use std::time::Duration;

const SIZES: [usize; 6] = [0, 16, 256, 4096, 65536, 1 << 20];

/// Runs the scenario (no quick variant: it is computed, not timed).
pub fn run(_quick: bool) -> Result<Report, Error> {
    let mut report = Report::new("overhead");
    let mut tables = Vec::new();
    for (name, framing) in [
        ("serial", FramingKind::Serial),
        ("stream", FramingKind::Stream),
    ] {
        let mut table = Vec::new();
        for len in SIZES {
            let wire = one_way_wire_bytes(framing, "t", len);
            match measure_one_way(framing, len) {
                Ok(mine) if mine == wire => {}
                Ok(mine) => report.fail(format!(
                    "{name} {len} B: proto::overhead says {wire} wire bytes, the check counted {mine}"
                )),
                Err(why) => report.fail(format!("{name} {len} B: {why}")),
            }
            table.push((len.to_string(), Json::from(wire)));
        }
        tables.push((name, table));
    }
    let get = |table: &[(String, Json)], len: usize| match table
        .iter()
        .find(|(k, _)| *k == len.to_string())
    {
        Some((_, Json::Num(n))) => *n,
        _ => f64::NAN,
    };
    let serial_16 = get(&tables[0].1, 16) - 16.0;
    let stream_16 = get(&tables[1].1, 16) - 16.0;
    let rpc_stream = rpc_wire_bytes(FramingKind::Stream, 16, 16);
    let rpc_serial = rpc_wire_bytes(FramingKind::Serial, 16, 16);
    let row_sizes: Vec<String> = SIZES
        .iter()
        .map(|&len| {
            format!(
                "{len}: {}/{}",
                get(&tables[0].1, len),
                get(&tables[1].1, len)
            )
        })
        .collect();
    for (name, table) in tables {
        report.field(name, Json::Obj(table));
    }
    report.field("serial_overhead_16", serial_16);
    report.field("stream_overhead_16", stream_16);
    report.field("rpc_16_wire_bytes", rpc_stream);
    report.field("rpc_16_wire_bytes_serial", rpc_serial);
    report.row = format!(
        "wire bytes serial/stream by payload {{{}}}; 16 B one-way overhead serial {serial_16} B, stream {stream_16} B; 16 B rpc {rpc_stream} B (serial {rpc_serial} B)",
        row_sizes.join(", ")
    );
    report.goal(
        "serial_overhead_16 ≤ 12",
        serial_16 <= 12.0,
        format!("{serial_16} B"),
    );
    report.goal(
        "stream_overhead_16 ≤ 8",
        stream_16 <= 8.0,
        format!("{stream_16} B"),
    );
    Ok(report)
}

/// Sends one `len`-byte one-way message to `"t"` between two simulated links;
/// returns the wire bytes A sent, after checking B got exactly that body.
fn measure_one_way(framing: FramingKind, len: usize) -> Result<u64, String> {
    let config = |nonce| match framing {
        FramingKind::Serial => LinkConfig::serial(115_200, nonce),
        FramingKind::Stream => LinkConfig::stream(nonce),
    };
    let mut pair = Pair::new(config(2), config(1), Wire::instant(Duration::ZERO));
    pair.drive();
    // The same bytes `proto::overhead` sends (COBS overhead depends on content).
    let body = Bytes::from(vec![0x5a; len]);
    let before = pair.a.link.stats().bytes_out;
    pair.a
        .link
        .one_way(Message::new("t", body.clone()))
        .map_err(|e| e.to_string())?;
    pair.drive();
    let delivered: Vec<&Bytes> = pair
        .b
        .events
        .iter()
        .filter_map(|(_, event)| match event {
            LinkEvent::Message { head, body } if head.route == "t" => Some(body),
            _ => None,
        })
        .collect();
    match delivered.as_slice() {
        [got] if **got == body => Ok(pair.a.link.stats().bytes_out - before),
        [_] => Err("delivered corrupted".into()),
        other => Err(format!("delivered {} times", other.len())),
    }
}
