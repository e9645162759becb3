//! `secure`: what the authenticated mode costs. Wire bytes of a 16-byte one-way
//! message to route `"t"` on both framings, sealed and plain (the protocol core's
//! own measurement, `proto::overhead`), the wire bytes of the handshake; the time
//! of one handshake (Noise `NNpsk0_25519_ChaChaPoly_BLAKE2s`, both sides, in
//! process) and of sealing plus opening one frame of 64 B, 1 KiB and 64 KiB.
//!
//! Every sealed frame is opened and compared with what was sealed; a mismatch
//! fails the scenario.

use crate::peers::Error;
use crate::report::{Json, Report};
use netcore::proto::framing::FramingKind;
use netcore::proto::overhead::{
    one_way_wire_bytes, secure_handshake_wire_bytes, secure_one_way_wire_bytes,
};
use netcore::proto::secure::handshake::respond;
use netcore::proto::secure::{Handshake, KeyId, SecureKeys, SecureStats};
use std::time::Instant;

const SIZES: [(usize, &str); 3] = [(64, "64"), (1024, "1024"), (65536, "65536")];

/// Runs the scenario; `quick` runs fewer iterations.
pub fn run(quick: bool) -> Result<Report, Error> {
    let mut report = Report::new("secure");
    let mut overhead = Vec::new();
    for (name, framing) in [
        ("serial", FramingKind::Serial),
        ("stream", FramingKind::Stream),
    ] {
        let plain = one_way_wire_bytes(framing, "t", 16) - 16;
        let sealed = secure_one_way_wire_bytes(framing, "t", 16) - 16;
        let handshake = secure_handshake_wire_bytes(framing);
        report.field(&format!("{name}_overhead_16"), sealed);
        report.field(&format!("{name}_plain_overhead_16"), plain);
        report.field(&format!("{name}_handshake_wire_bytes"), handshake);
        overhead.push(format!(
            "{name} {sealed} B (plain {plain} B), handshake {handshake} B"
        ));
    }

    let keys = SecureKeys::new().with("device", [7; 32]);
    let key_id = KeyId::from("device");
    let handshakes = if quick { 200 } else { 2000 };
    let start = Instant::now();
    let mut established = None;
    for _ in 0..handshakes {
        let opening = Handshake::initiate(&key_id, &[7; 32]).map_err(|e| e.to_string())?;
        let (answer, responder) =
            respond(&keys, opening.first_message()).map_err(|e| e.to_string())?;
        let initiator = opening.finish(&answer).map_err(|e| e.to_string())?;
        established = Some((initiator, responder));
    }
    let handshake_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(handshakes);
    report.field("handshake_us", handshake_us);

    let Some((initiator, responder)) = established else {
        return Err("no handshake ran".into());
    };
    let (mut sealer, _) = initiator.channel();
    let (_, mut opener) = responder.channel();
    let mut stats = SecureStats::default();
    let mut sealed = Vec::new();
    let mut per_size = Vec::new();
    let mut row = Vec::new();
    for (len, name) in SIZES {
        let frame = vec![0x5a; len];
        let frames = if quick {
            (4 << 20) / len.max(256)
        } else {
            (64 << 20) / len.max(256)
        };
        let start = Instant::now();
        for _ in 0..frames {
            sealer
                .seal(&frame[..3], &frame[3..], &mut sealed)
                .map_err(|e| e.to_string())?;
            let opened = opener
                .open(&sealed, &mut stats)
                .map_err(|e| e.to_string())?;
            if opened.len() != len || opened[..] != frame[..] {
                report.fail(format!(
                    "{len} B: the opened frame differs from the sealed one"
                ));
                break;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let ns = secs * 1e9 / frames as f64;
        let mbps = (len * frames) as f64 / secs / 1e6;
        per_size.push((
            name.to_string(),
            Json::Obj(vec![
                ("ns_per_frame".to_string(), Json::from(ns)),
                ("mb_per_s".to_string(), Json::from(mbps)),
            ]),
        ));
        row.push(format!("{len} B {ns:.0} ns ({mbps:.0} MB/s)"));
    }
    report.field("seal_open", Json::Obj(per_size));
    report.row = format!(
        "16 B one-way overhead: {}; handshake {handshake_us:.0} µs; seal+open {}",
        overhead.join(", "),
        row.join(", ")
    );
    Ok(report)
}
