//! Unsigned LEB128 varints, as used for every id and length on the wire
//! (ARCHITECTURE.md, "Varints"): 7 bits per byte, low group first, high bit set on
//! every byte but the last. At most 10 bytes for a `u64`; a longer or overflowing
//! encoding, or a non-minimal one, is a [`DecodeError`].

use crate::error::DecodeError;
use bytes::BufMut;

/// Longest encoding of a `u64`.
pub const MAX_LEN: usize = 10;

/// Number of bytes `value` takes on the wire.
pub const fn encoded_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `value` to `dst`.
pub fn put(dst: &mut impl BufMut, mut value: u64) {
    while value >= 0x80 {
        dst.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    dst.put_u8(value as u8);
}

/// Writes `value` into the front of `dst`, returning the bytes used.
///
/// `dst` must hold at least [`encoded_len`]`(value)` bytes; callers size it with
/// [`MAX_LEN`].
pub fn write(dst: &mut [u8; MAX_LEN], mut value: u64) -> usize {
    let mut i = 0;
    while value >= 0x80 {
        dst[i] = (value as u8) | 0x80;
        value >>= 7;
        i += 1;
    }
    dst[i] = value as u8;
    i + 1
}

/// Reads a varint from the front of `src`, returning it and the bytes consumed.
///
/// `Ok(None)` when `src` ends inside the varint (more bytes may complete it).
pub fn read(src: &[u8]) -> Result<Option<(u64, usize)>, DecodeError> {
    let mut value: u64 = 0;
    for (i, &byte) in src.iter().enumerate() {
        if i == MAX_LEN {
            return Err(DecodeError::VarintOverflow);
        }
        let group = u64::from(byte & 0x7f);
        if i == MAX_LEN - 1 && group > 1 {
            return Err(DecodeError::VarintOverflow);
        }
        value |= group << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(DecodeError::VarintNotMinimal);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if src.len() >= MAX_LEN {
        return Err(DecodeError::VarintOverflow);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0]),
            (1, &[1]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for &(value, bytes) in cases {
            let mut out = Vec::new();
            put(&mut out, value);
            assert_eq!(out, bytes, "encoding {value}");
            assert_eq!(encoded_len(value), bytes.len());
            assert_eq!(read(bytes).unwrap(), Some((value, bytes.len())));
        }
    }

    #[test]
    fn rejects_bad_encodings() {
        assert_eq!(read(&[0x80, 0x00]), Err(DecodeError::VarintNotMinimal));
        assert_eq!(read(&[0xff; 10]), Err(DecodeError::VarintOverflow));
        assert_eq!(read(&[0xff; 11]), Err(DecodeError::VarintOverflow));
        // Tenth byte may only carry the top bit of a u64.
        let mut too_big = [0xffu8; 10];
        too_big[9] = 0x02;
        assert_eq!(read(&too_big), Err(DecodeError::VarintOverflow));
        assert_eq!(read(&[0x80, 0x80]), Ok(None));
        assert_eq!(read(&[]), Ok(None));
    }

    proptest! {
        #[test]
        fn round_trip(value: u64, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = Vec::new();
            put(&mut out, value);
            let mut fixed = [0u8; MAX_LEN];
            let n = write(&mut fixed, value);
            prop_assert_eq!(&fixed[..n], &out[..]);
            prop_assert_eq!(out.len(), encoded_len(value));
            out.extend_from_slice(&tail);
            prop_assert_eq!(read(&out).unwrap(), Some((value, n)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = read(&bytes);
        }
    }
}
