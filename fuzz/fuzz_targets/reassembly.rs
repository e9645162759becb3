//! Reassembly under arbitrary frame sequences: limits, accounting and credit
//! identities hold after every frame, and closing returns everything.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run reassembly` (from the repository root). The stable twin
//! is the proptest `reassembly::proptests::fuzz_driver_accepts_arbitrary_bytes`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netcore_proto::reassembly::fuzz_frames(data);
});
