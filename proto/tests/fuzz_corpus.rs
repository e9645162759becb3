//! The fuzz targets in the normal test command: every file of `fuzz/corpus/<target>/`
//! through the driver its cargo-fuzz target calls (`netcore_proto::fuzzing`), then
//! a few thousand arbitrary inputs per driver. A driver panics when an invariant
//! breaks, so a failure names the corpus file or the shrunk input.

use netcore_proto::fuzzing;
use proptest::prelude::*;
use std::path::PathBuf;

/// Runs `driver` on every file of `fuzz/corpus/<target>/`; returns how many.
fn run_corpus(target: &str, driver: fn(&[u8])) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| driver(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", file.display());
    }
    assert!(
        !files.is_empty(),
        "{target}: empty corpus in {}",
        dir.display()
    );
    files.len()
}

#[test]
fn corpus_cobs() {
    run_corpus("cobs", fuzzing::cobs);
}

#[test]
fn corpus_length() {
    run_corpus("length", fuzzing::length);
}

#[test]
fn corpus_frame() {
    run_corpus("frame", fuzzing::frame);
}

#[test]
fn corpus_link() {
    run_corpus("link", fuzzing::link);
}

#[test]
fn corpus_reassembly() {
    run_corpus("reassembly", fuzzing::reassembly);
}

#[test]
fn corpus_secure() {
    run_corpus("secure", fuzzing::secure);
}

#[test]
fn corpus_pydialect() {
    run_corpus("pydialect", fuzzing::pydialect);
}

#[test]
fn corpus_scheduler() {
    run_corpus("scheduler", fuzzing::scheduler);
}

/// Arbitrary bytes, and arbitrary bytes behind a valid-looking prefix (a frame
/// type nibble, a HELLO's magic, a link driver's control byte), so the cases get
/// past the first check as often as they fail it.
fn input(prefixes: &'static [&'static [u8]], max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    (
        0..prefixes.len() + 1,
        proptest::collection::vec(any::<u8>(), 0..max_len),
    )
        .prop_map(move |(i, rest)| {
            let mut data = prefixes.get(i).map(|p| p.to_vec()).unwrap_or_default();
            data.extend(rest);
            data
        })
}

/// Frame heads of every kind, with and without the sequence byte.
const FRAME_PREFIXES: &[&[u8]] = &[
    b"\x00NC\x01",
    b"\x11\x01",
    b"\x10\x01",
    b"\x21\x01",
    b"\x30\x01",
    b"\x40\x01",
    b"\x50",
    b"\x60",
    b"\x70",
    b"\x80\x00",
    b"\x90\x00\x00",
    b"\x19\x07\x01",
    b"\x58",
];

/// Python-dialect streams' openings (size selector, split seed, then a frame's start).
const PY_PREFIXES: &[&[u8]] = &[
    b"\x0c\x01\x13\x00\x00\x00{\"type\": \"mission\"}",
    b"\x0c\x02\x27\x00\x00\x00{\"type\": \"data\", \"extension\": \"abcdef\"}",
    b"\x0c\x03\x29\x00\x00\x00{\"type\": \"cancel\", \"extension\": \"abcdef\"}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames(data in input(FRAME_PREFIXES, 64)) {
        fuzzing::frame(&data);
    }

    #[test]
    fn arbitrary_cobs_streams(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        fuzzing::cobs(&data);
    }

    #[test]
    fn arbitrary_length_streams(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        fuzzing::length(&data);
    }

    #[test]
    fn arbitrary_pydialect_streams(data in input(PY_PREFIXES, 300)) {
        fuzzing::pydialect(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Raw mode (control bit 2 clear) and frame mode (set) alike.
    #[test]
    fn arbitrary_link_input(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        fuzzing::link(&data);
    }

    #[test]
    fn arbitrary_reassembly_ops(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        fuzzing::reassembly(&data);
    }

    #[test]
    fn arbitrary_scheduler_ops(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        fuzzing::scheduler(&data);
    }
}

proptest! {
    // Each case runs two Noise handshakes' worth of key agreement: fewer cases.
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    /// Both framings (control bit 0), every kind of bad frame.
    #[test]
    fn arbitrary_secure_frames(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        fuzzing::secure(&data);
    }
}
