//! `RUSTC_BOOTSTRAP=1 cargo fuzz run secure` (from the repository root). The driver and
//! what it checks: `netcore_proto::fuzzing::secure`, which the tests also run on every
//! file of `fuzz/corpus/secure/` and on arbitrary inputs (`proto/tests/fuzz_corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netcore_proto::fuzzing::secure(data);
});
