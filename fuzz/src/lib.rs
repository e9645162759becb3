//! Helpers shared by the fuzz targets in `fuzz_targets/`.

/// Splits a framing target's input `[max selector] [split seed] stream...` into the
/// decoder's `max_frame_len` (`2^(selector % 14) - 1`: 0 to 8191), and the stream cut
/// into pieces of 1 to 64 bytes drawn from the seed, as reads would deliver it.
/// `None` for inputs shorter than the two header bytes.
pub fn framing_input(data: &[u8]) -> Option<(usize, impl Iterator<Item = &[u8]>)> {
    let [selector, seed, stream @ ..] = data else {
        return None;
    };
    let max_frame_len = (1usize << (selector % 14)) - 1;
    let mut state = u32::from(*seed) | 0x100;
    let mut rest = stream;
    let pieces = core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let (piece, tail) = rest.split_at((1 + state as usize % 64).min(rest.len()));
        rest = tail;
        Some(piece)
    });
    Some((max_frame_len, pieces))
}
