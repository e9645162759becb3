//! CRC-32C (Castagnoli), the per-frame integrity check of the serial framing.
//!
//! With `std` the `crc32c` crate computes it (SSE 4.2 / ARMv8 instructions when the
//! CPU has them); without `std` a table-driven software version gives the same value,
//! so firmware and gateway agree byte for byte.

/// CRC-32C of `data`, continuing from `crc` (0 to start).
#[cfg(feature = "std")]
pub fn extend(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// CRC-32C of `data`, continuing from `crc` (0 to start).
#[cfg(not(feature = "std"))]
pub fn extend(crc: u32, data: &[u8]) -> u32 {
    software(crc, data)
}

/// CRC-32C of `data`.
pub fn checksum(data: &[u8]) -> u32 {
    extend(0, data)
}

/// Reflected polynomial 0x1EDC6F41.
const POLY: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Portable byte-at-a-time CRC-32C.
#[cfg_attr(feature = "std", allow(dead_code))]
pub(crate) fn software(crc: u32, data: &[u8]) -> u32 {
    let mut crc = !crc;
    for &byte in data {
        crc = TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vectors() {
        // RFC 3720 B.4 check value, and the crc32c crate's doc example.
        assert_eq!(checksum(b"123456789"), 0xE306_9283);
        assert_eq!(checksum(b"Hello world!"), 0x7B98_E751);
        assert_eq!(software(0, b"123456789"), 0xE306_9283);
    }

    proptest! {
        #[test]
        fn software_matches_accelerated(data in proptest::collection::vec(any::<u8>(), 0..2048), split in 0usize..2048) {
            let split = split.min(data.len());
            let (a, b) = data.split_at(split);
            prop_assert_eq!(software(software(0, a), b), checksum(&data));
            prop_assert_eq!(extend(extend(0, a), b), checksum(&data));
        }
    }
}
