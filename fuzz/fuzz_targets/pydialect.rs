//! `RUSTC_BOOTSTRAP=1 cargo fuzz run pydialect` (from the repository root). The driver and
//! what it checks: `netcore_proto::fuzzing::pydialect`, which the tests also run on every
//! file of `fuzz/corpus/pydialect/` and on arbitrary inputs (`proto/tests/fuzz_corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netcore_proto::fuzzing::pydialect(data);
});
