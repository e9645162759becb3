//! The fuzz drivers: one function per target in `fuzz/fuzz_targets/`, each taking
//! the fuzzer's raw bytes and panicking when an invariant breaks. The cargo-fuzz
//! targets call them, and so do the tests (`proto/tests/fuzz_corpus.rs`: every file
//! of `fuzz/corpus/` and a few thousand arbitrary inputs per driver), so the
//! corpus runs in the normal test command and the targets cannot rot.
//!
//! | driver | checks |
//! |---|---|
//! | [`cobs`] | the serial framing's decoder on arbitrary input in arbitrary pieces |
//! | [`length`] | the stream framing's decoder likewise |
//! | [`frame`] | `Envelope::decode` and the re-encoding of whatever it accepts |
//! | [`pydialect`] | the Python dialect's frame decoder likewise, and the re-encoding of what it decodes |
//! | [`link`] | a whole `Link` after its handshake, and a bare `Session` agreeing with it |
//! | [`reassembly`] | reassembly's limits, accounting and credit under arbitrary frames |
//! | [`scheduler`] | the outbound scheduler against a model |
//! | `secure` (feature `secure`) | the authenticated mode: arbitrary, replayed, altered and handshake-looking frames into a connected link |

mod framing;
mod link;
mod pydialect;
#[cfg(feature = "secure")]
mod secure;

pub use framing::{cobs, frame, framing_input, length};
pub use link::link;
pub use pydialect::pydialect;
#[cfg(feature = "secure")]
pub use secure::secure;

/// Reassembly under arbitrary frame sequences: limits, accounting and credit
/// identities hold after every frame, and closing returns everything
/// ([`crate::reassembly::fuzz_frames`]).
pub fn reassembly(data: &[u8]) {
    crate::reassembly::fuzz_frames(data);
}

/// The outbound scheduler driven by operations decoded from `data` and checked
/// against a model: never panics, never sends beyond credit, frames of each
/// message in order and byte-exact, drains to idle ([`crate::scheduler::fuzz_ops`]).
pub fn scheduler(data: &[u8]) {
    crate::scheduler::fuzz_ops(data);
}
