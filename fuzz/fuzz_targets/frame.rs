//! `cargo fuzz run frame`: `Envelope::decode` on arbitrary bytes never panics, and
//! whatever it accepts re-encodes to something that decodes to the same envelope.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use netcore_proto::Envelope;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = Envelope::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let bytes = env.to_bytes();
    assert_eq!(bytes.len(), env.encoded_len());
    let again = Envelope::decode(Bytes::from(bytes)).expect("re-encoded envelope decodes");
    assert_eq!(again, env);
});
