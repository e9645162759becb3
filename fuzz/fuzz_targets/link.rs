//! `RUSTC_BOOTSTRAP=1 cargo fuzz run link` (from the repository root). The driver and
//! what it checks: `netcore_proto::fuzzing::link`, which the tests also run on every
//! file of `fuzz/corpus/link/` and on arbitrary inputs (`proto/tests/fuzz_corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netcore_proto::fuzzing::link(data);
});
