//! Drives the outbound scheduler with operations decoded from the fuzzer's bytes
//! (enqueue, push_body, cancel, credit grants, chunk-length changes, control frames,
//! polls) and checks its invariants against a model: never panics, never sends
//! beyond credit, frames of each message in order and byte-exact, drains to idle.
//! The decoding and the checks live in `netcore_proto::scheduler::fuzz_ops`, which
//! the `random_bytes_keep_invariants` proptest also runs on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netcore_proto::scheduler::fuzz_ops(data);
});
