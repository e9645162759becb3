//! The record layer: one sealed frame per protocol frame, a replay window per
//! direction.
//!
//! ```text
//! sealed frame = counter:varint ‖ ChaCha20-Poly1305(key, nonce = 0u32 ‖ counter:u64 LE, frame) ‖ tag:16
//! ```
//!
//! The counter is explicit (Noise's stateless transport layout) because the serial
//! framing drops damaged frames: the receiver cannot count them. A counter is used
//! once per direction and key; the receiver accepts each counter at most once, within
//! [`REPLAY_WINDOW`] counters of the highest it authenticated.

use super::SecureStats;
use crate::error::SecureError;
use crate::varint;
use alloc::vec::Vec;
use bytes::{Bytes, BytesMut};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce, Tag};

/// Bytes of the authentication tag after every sealed frame.
pub const TAG_LEN: usize = 16;

/// Most bytes sealing adds to a frame: the longest counter plus the tag.
pub const MAX_SEAL_OVERHEAD: usize = varint::MAX_LEN + TAG_LEN;

/// Counters behind the highest authenticated one that may still arrive (reordered
/// on the way); older ones are refused as [`SecureError::TooOld`].
pub const REPLAY_WINDOW: u64 = 2048;

const WINDOW_WORDS: usize = (REPLAY_WINDOW / 64) as usize;

fn nonce(counter: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_le_bytes());
    Nonce::from(bytes)
}

/// Seals outbound frames under one direction's key (see the [module docs](self)).
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    next: u64,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer").field("next", &self.next).finish()
    }
}

impl Sealer {
    /// A sealer with `key`, counting from 0.
    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: ChaCha20Poly1305::new(key.into()),
            next: 0,
        }
    }

    /// Writes the sealed form of the frame `head ‖ payload` into `out` (cleared first).
    pub fn seal(
        &mut self,
        head: &[u8],
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SecureError> {
        let counter = self.next;
        self.next = counter.checked_add(1).ok_or(SecureError::Crypto {
            what: "frame counter exhausted",
        })?;
        out.clear();
        out.reserve(MAX_SEAL_OVERHEAD + head.len() + payload.len());
        varint::put(out, counter);
        let start = out.len();
        out.extend_from_slice(head);
        out.extend_from_slice(payload);
        let tag = self
            .cipher
            .encrypt_in_place_detached(&nonce(counter), b"", &mut out[start..])
            .map_err(|_| SecureError::Crypto {
                what: "frame too long to seal",
            })?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// The counter the next sealed frame carries.
    pub fn next_counter(&self) -> u64 {
        self.next
    }
}

/// Which counters were authenticated recently: the highest, and a bitmap of the
/// [`REPLAY_WINDOW`] counters up to it.
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    top: Option<u64>,
    seen: [u64; WINDOW_WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow {
            top: None,
            seen: [0; WINDOW_WORDS],
        }
    }
}

impl ReplayWindow {
    fn bit(counter: u64) -> (usize, u64) {
        let slot = counter % REPLAY_WINDOW;
        ((slot / 64) as usize, 1 << (slot % 64))
    }

    /// Whether `counter` may be accepted (not seen, not too old).
    pub fn check(&self, counter: u64) -> Result<(), SecureError> {
        match self.top {
            None => Ok(()),
            Some(top) if counter > top => Ok(()),
            Some(top) if top - counter >= REPLAY_WINDOW => Err(SecureError::TooOld),
            Some(_) => {
                let (word, mask) = Self::bit(counter);
                if self.seen[word] & mask != 0 {
                    Err(SecureError::Replayed)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Records an authenticated `counter` (after [`ReplayWindow::check`] passed).
    pub fn mark(&mut self, counter: u64) {
        match self.top {
            Some(top) if counter <= top => {}
            Some(top) => {
                let advance = counter - top;
                if advance >= REPLAY_WINDOW {
                    self.seen = [0; WINDOW_WORDS];
                } else {
                    for c in top + 1..=counter {
                        let (word, mask) = Self::bit(c);
                        self.seen[word] &= !mask;
                    }
                }
                self.top = Some(counter);
            }
            None => self.top = Some(counter),
        }
        let (word, mask) = Self::bit(counter);
        self.seen[word] |= mask;
    }
}

/// Opens inbound sealed frames under one direction's key, refusing forged,
/// altered, replayed and too old ones.
pub struct Opener {
    cipher: ChaCha20Poly1305,
    window: ReplayWindow,
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opener")
            .field("window", &self.window.top)
            .finish()
    }
}

impl Opener {
    /// An opener with `key` and an empty replay window.
    pub fn new(key: &[u8; 32]) -> Opener {
        Opener {
            cipher: ChaCha20Poly1305::new(key.into()),
            window: ReplayWindow::default(),
        }
    }

    /// The plain frame inside `sealed`; every refusal is counted in `stats`.
    pub fn open(&mut self, sealed: &[u8], stats: &mut SecureStats) -> Result<Bytes, SecureError> {
        let result = self.open_inner(sealed);
        match &result {
            Ok(_) => stats.frames_opened += 1,
            Err(SecureError::Replayed) => stats.dropped_replayed += 1,
            Err(SecureError::TooOld) => stats.dropped_too_old += 1,
            Err(SecureError::Tampered) => stats.dropped_tampered += 1,
            Err(_) => stats.dropped_malformed += 1,
        }
        result
    }

    fn open_inner(&mut self, sealed: &[u8]) -> Result<Bytes, SecureError> {
        let (counter, prefix) = match varint::read(sealed) {
            Ok(Some(parsed)) => parsed,
            _ => {
                return Err(SecureError::Malformed {
                    what: "sealed frame counter",
                })
            }
        };
        let body = sealed.get(prefix..).unwrap_or_default();
        if body.len() < TAG_LEN + 1 {
            return Err(SecureError::Malformed {
                what: "sealed frame shorter than its tag",
            });
        }
        self.window.check(counter)?;
        let (cipher_text, tag) = body.split_at(body.len() - TAG_LEN);
        let mut plain = BytesMut::from(cipher_text);
        self.cipher
            .decrypt_in_place_detached(&nonce(counter), b"", &mut plain[..], Tag::from_slice(tag))
            .map_err(|_| SecureError::Tampered)?;
        self.window.mark(counter);
        Ok(plain.freeze())
    }
}
