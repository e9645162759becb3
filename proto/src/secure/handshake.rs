//! The handshake: Noise `NNpsk0_25519_ChaChaPoly_BLAKE2s` (through `snow`), two
//! frames, then one key per direction.
//!
//! ```text
//! initiator → responder:  04 'N' 'S' 01 | key_id_len:u8 | key_id | e, payload tag  (48 B)
//! responder → initiator:  04 'N' 'S' 02 | e, ee, payload tag                        (48 B)
//! ```
//!
//! `0x04` is a HELLO type byte with the AUTH flag: only these two frames carry it,
//! and they are the only frames sent in the clear. The key id travels in the clear
//! (it selects the pre-shared key on the responder) and is bound to the handshake as
//! its Noise prologue. The pre-shared key is mixed in before the first message, so
//! a responder holding a different key for that id fails the first message's tag
//! ([`SecureError::WrongKey`]), and an eavesdropper learns nothing but the id. Each
//! handshake draws fresh ephemeral keys: every transport gets its own session keys,
//! with forward secrecy against a later leak of the pre-shared key.

use super::channel::{Opener, Sealer};
use super::{KeyId, Psk, SecureKeys, MAX_KEY_ID_LEN};
use crate::error::SecureError;
use crate::frame::RESUME_PROOF_LEN;
use alloc::vec::Vec;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2sMac256;
use bytes::Bytes;
use snow::{Builder, HandshakeState};

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";

/// The first bytes of both handshake frames: a HELLO type byte with the AUTH flag,
/// then `'N' 'S'`.
pub const HANDSHAKE_MARKER: [u8; 3] = [0x04, b'N', b'S'];

const STEP_OPEN: u8 = 1;
const STEP_REPLY: u8 = 2;
const PROLOGUE: &[u8] = b"netcore secure v1\0";
/// Longest Noise message of this pattern (an ephemeral key and a tag).
const NOISE_MSG_LEN: usize = 48;

/// True for a frame opening with [`HANDSHAKE_MARKER`].
pub fn is_handshake_frame(frame: &[u8]) -> bool {
    frame.starts_with(&HANDSHAKE_MARKER)
}

fn crypto(what: &'static str) -> impl Fn(snow::Error) -> SecureError {
    move |_| SecureError::Crypto { what }
}

fn prologue(key_id: &KeyId) -> Vec<u8> {
    let mut p = Vec::with_capacity(PROLOGUE.len() + key_id.as_bytes().len());
    p.extend_from_slice(PROLOGUE);
    p.extend_from_slice(key_id.as_bytes());
    p
}

fn build(psk: &Psk, key_id: &KeyId, initiator: bool) -> Result<HandshakeState, SecureError> {
    let params = NOISE_PARAMS
        .parse()
        .map_err(crypto("Noise protocol name"))?;
    let prologue = prologue(key_id);
    let builder = Builder::new(params)
        .psk(0, psk)
        .map_err(crypto("pre-shared key"))?
        .prologue(&prologue)
        .map_err(crypto("prologue"))?;
    if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
    .map_err(crypto("handshake state"))
}

/// What a completed handshake leaves: the two directions' keys, who the peer is,
/// and the handshake hash (for resume proofs).
#[derive(Clone)]
pub struct Established {
    send_key: [u8; 32],
    recv_key: [u8; 32],
    key_id: KeyId,
    handshake_hash: [u8; 32],
    /// On the responder: the opening it answered and its answer, so a link
    /// taking over the connection answers a repeated opening the same way.
    exchange: Option<(Bytes, Bytes)>,
}

impl core::fmt::Debug for Established {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Established")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Established {
    fn from_state(mut state: HandshakeState, key_id: KeyId) -> Result<Established, SecureError> {
        if !state.is_handshake_finished() {
            return Err(SecureError::Crypto {
                what: "handshake not finished",
            });
        }
        let mut handshake_hash = [0u8; 32];
        let hash = state.get_handshake_hash();
        if hash.len() != 32 {
            return Err(SecureError::Crypto {
                what: "handshake hash length",
            });
        }
        handshake_hash.copy_from_slice(hash);
        let initiator = state.is_initiator();
        let (i2r, r2i) = state.dangerously_get_raw_split();
        let (send_key, recv_key) = if initiator { (i2r, r2i) } else { (r2i, i2r) };
        Ok(Established {
            send_key,
            recv_key,
            key_id,
            handshake_hash,
            exchange: None,
        })
    }

    /// On the responder: the opening answered and the answer sent
    /// ([`respond`]). An initiator resends its opening until answered, so a copy
    /// may follow the answer onto the link that takes over the connection.
    pub(crate) fn exchange(&self) -> Option<&(Bytes, Bytes)> {
        self.exchange.as_ref()
    }

    /// The key id the handshake authenticated: the peer's identity.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The Noise handshake hash: unique to this handshake.
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    /// This handshake's resume secret: kept from a session's first handshake, it
    /// keys the proofs of later resumes ([`resume_proof`]).
    pub fn resume_secret(&self) -> [u8; 32] {
        mac(&self.handshake_hash, &[b"netcore resume secret"])
    }

    /// The sealer and opener of this handshake's keys.
    pub fn channel(&self) -> (Sealer, Opener) {
        (Sealer::new(&self.send_key), Opener::new(&self.recv_key))
    }
}

fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // A 32-byte key always fits BLAKE2s, so this cannot fail.
    let mut out = [0u8; 32];
    if let Ok(mut m) = <Blake2sMac256 as KeyInit>::new_from_slice(key) {
        for part in parts {
            m.update(part);
        }
        out.copy_from_slice(&m.finalize().into_bytes());
    }
    out
}

/// The proof that the sender of a HELLO resuming session `session_id` holds that
/// session's `resume_secret`, bound to the current transport's handshake so it
/// cannot be replayed on another.
pub fn resume_proof(
    resume_secret: &[u8; 32],
    session_id: u64,
    handshake_hash: &[u8; 32],
) -> [u8; RESUME_PROOF_LEN] {
    let full = mac(
        resume_secret,
        &[
            b"netcore resume proof",
            &session_id.to_le_bytes(),
            handshake_hash,
        ],
    );
    let mut proof = [0u8; RESUME_PROOF_LEN];
    proof.copy_from_slice(&full[..RESUME_PROOF_LEN]);
    proof
}

/// Compares two proofs in time independent of where they differ.
pub fn proofs_match(a: &[u8; RESUME_PROOF_LEN], b: &[u8; RESUME_PROOF_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The initiator's side of a handshake in progress.
pub struct Handshake {
    state: HandshakeState,
    key_id: KeyId,
    first: Bytes,
}

impl core::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Handshake")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Starts a handshake as the initiator: [`Handshake::first_message`] is the
    /// frame to send (again, until answered, on a lossy line).
    pub fn initiate(key_id: &KeyId, psk: &Psk) -> Result<Handshake, SecureError> {
        if key_id.as_bytes().len() > MAX_KEY_ID_LEN {
            return Err(SecureError::Crypto {
                what: "key id longer than 64 bytes",
            });
        }
        let mut state = build(psk, key_id, true)?;
        let mut noise = [0u8; NOISE_MSG_LEN + 16];
        let len = state
            .write_message(&[], &mut noise)
            .map_err(crypto("first handshake message"))?;
        let id = key_id.as_bytes();
        let mut first = Vec::with_capacity(5 + id.len() + len);
        first.extend_from_slice(&HANDSHAKE_MARKER);
        first.push(STEP_OPEN);
        first.push(id.len() as u8);
        first.extend_from_slice(id);
        first.extend_from_slice(&noise[..len]);
        Ok(Handshake {
            state,
            key_id: key_id.clone(),
            first: Bytes::from(first),
        })
    }

    /// The first handshake frame.
    pub fn first_message(&self) -> &Bytes {
        &self.first
    }

    /// Whether `frame` is the responder's answer (as opposed to another opening).
    pub fn is_reply(frame: &[u8]) -> bool {
        frame.get(HANDSHAKE_MARKER.len()) == Some(&STEP_REPLY)
    }

    /// Completes the handshake with the responder's answer.
    pub fn finish(mut self, reply: &[u8]) -> Result<Established, SecureError> {
        let Some(noise) = reply.strip_prefix(&HANDSHAKE_MARKER[..]) else {
            return Err(SecureError::Malformed {
                what: "handshake frame",
            });
        };
        let Some((&STEP_REPLY, noise)) = noise.split_first() else {
            return Err(SecureError::Unexpected {
                what: "a handshake opening sent to the initiator",
            });
        };
        let mut payload = [0u8; NOISE_MSG_LEN];
        self.state
            .read_message(noise, &mut payload)
            .map_err(|_| SecureError::WrongKey)?;
        Established::from_state(self.state, self.key_id)
    }
}

/// The responder's side: answers an opening with the key its id names. Returns the
/// answer frame and the established keys.
pub fn respond(keys: &SecureKeys, opening: &[u8]) -> Result<(Bytes, Established), SecureError> {
    let malformed = SecureError::Malformed {
        what: "handshake opening",
    };
    let rest = opening
        .strip_prefix(&HANDSHAKE_MARKER[..])
        .ok_or(malformed.clone())?;
    let (&step, rest) = rest.split_first().ok_or(malformed.clone())?;
    if step != STEP_OPEN {
        return Err(SecureError::Unexpected {
            what: "a handshake answer sent to the responder",
        });
    }
    let (&id_len, rest) = rest.split_first().ok_or(malformed.clone())?;
    let id_len = usize::from(id_len);
    if id_len > MAX_KEY_ID_LEN || rest.len() < id_len {
        return Err(malformed);
    }
    let (id, noise) = rest.split_at(id_len);
    let key_id = KeyId::new(id);
    let psk = keys.get(&key_id).ok_or(SecureError::UnknownKey)?;
    let mut state = build(psk, &key_id, false)?;
    let mut payload = [0u8; NOISE_MSG_LEN];
    state
        .read_message(noise, &mut payload)
        .map_err(|_| SecureError::WrongKey)?;
    let mut noise_out = [0u8; NOISE_MSG_LEN + 16];
    let len = state
        .write_message(&[], &mut noise_out)
        .map_err(crypto("handshake answer"))?;
    let mut reply = Vec::with_capacity(4 + len);
    reply.extend_from_slice(&HANDSHAKE_MARKER);
    reply.push(STEP_REPLY);
    reply.extend_from_slice(&noise_out[..len]);
    let reply = Bytes::from(reply);
    let mut established = Established::from_state(state, key_id)?;
    established.exchange = Some((Bytes::copy_from_slice(opening), reply.clone()));
    Ok((reply, established))
}
