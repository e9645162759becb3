//! The authenticated, encrypted mode (feature `secure`): a pre-shared key per
//! device, a Noise handshake per transport, and every frame sealed after it.
//!
//! ```text
//!  initiator                                   responder (key table: key id → PSK)
//!    │── 04 'N' 'S' 01 key_id  e ───────────────────►│  unknown id: UnknownKey
//!    │   (again every second until answered)         │  wrong key: WrongKey
//!    │◄─────────────────────────── 04 'N' 'S' 02 e ee│
//!    │══ sealed HELLO, then every frame sealed ══════│
//! ```
//!
//! - Handshake ([`handshake`]): Noise `NNpsk0_25519_ChaChaPoly_BLAKE2s` through
//!   `snow`. Only the two handshake frames travel in the clear; they are the only
//!   frames with the AUTH flag (type byte `0x04`).
//! - Record layer ([`channel`]): `counter:varint ‖ ChaCha20-Poly1305(frame) ‖ tag:16`
//!   inside the link's framing; a 2048-counter sliding replay window per direction.
//!   The cipher is Noise's own (ChaChaPoly, nonce = counter) with the split keys, used
//!   directly so frames may exceed Noise's 65,535-byte message limit.
//! - Faults: on the serial framing a frame that fails its tag, repeats or predates
//!   the window is dropped and counted ([`SecureStats`]), like line noise; on the
//!   stream framing it fails the link. A side configured for this mode refuses a
//!   plain HELLO ([`SecureError::NotAuthenticated`]); a side that is not refuses the
//!   handshake ([`SecureError::NotConfigured`]): no silent downgrade either way.
//! - Resume: a session remembers the resume secret of its first handshake; a HELLO
//!   resuming it must carry `resume_proof` (a MAC over the session id, keyed by that
//!   secret, bound to the new handshake), else [`SecureError::ResumeRefused`].
//!
//! [`SecureLink`] is the inbound side's state machine (inside the
//! [`Session`](crate::link::Session)); the outbound side only needs the [`Sealer`]
//! it hands over.

pub mod channel;
pub mod handshake;

pub use channel::{Opener, ReplayWindow, Sealer, MAX_SEAL_OVERHEAD, REPLAY_WINDOW, TAG_LEN};
pub use handshake::{resume_proof, Established, Handshake, HANDSHAKE_MARKER, NOISE_PARAMS};

use crate::error::SecureError;
use crate::frame::{Envelope, Frame, RESUME_PROOF_LEN};
use crate::time::Instant;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use bytes::Bytes;
use core::time::Duration;

/// Longest key id.
pub const MAX_KEY_ID_LEN: usize = 64;

/// How often an initiator sends its first handshake frame again until answered.
pub const HANDSHAKE_RESEND: Duration = Duration::from_secs(1);

/// A pre-shared key: 32 bytes, e.g. from a key-derivation function or a random
/// generator, one per device.
pub type Psk = [u8; 32];

/// Names a device's pre-shared key: the identity a handshake authenticates.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(Arc<[u8]>);

impl KeyId {
    /// A key id of these bytes (at most [`MAX_KEY_ID_LEN`]; longer ones fail the
    /// handshake).
    pub fn new(bytes: impl AsRef<[u8]>) -> KeyId {
        KeyId(Arc::from(bytes.as_ref()))
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The id as text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(&self.0).ok()
    }
}

impl core::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl core::fmt::Display for KeyId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.as_str() {
            Some(s) => write!(f, "{s:?}"),
            None => {
                for b in self.0.iter() {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl From<&str> for KeyId {
    fn from(s: &str) -> KeyId {
        KeyId::new(s)
    }
}

impl From<&[u8]> for KeyId {
    fn from(s: &[u8]) -> KeyId {
        KeyId::new(s)
    }
}

/// A responder's table of pre-shared keys by key id. Cheap to clone.
#[derive(Clone, Default)]
pub struct SecureKeys(Arc<BTreeMap<KeyId, Psk>>);

impl core::fmt::Debug for SecureKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl SecureKeys {
    /// An empty table.
    pub fn new() -> SecureKeys {
        SecureKeys::default()
    }

    /// Adds (or replaces) the key of `key_id`.
    pub fn with(mut self, key_id: impl Into<KeyId>, psk: Psk) -> SecureKeys {
        Arc::make_mut(&mut self.0).insert(key_id.into(), psk);
        self
    }

    /// The key of `key_id`.
    pub fn get(&self, key_id: &KeyId) -> Option<&Psk> {
        self.0.get(key_id)
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Which side of the handshake a link plays.
#[derive(Clone)]
pub enum SecureRole {
    /// Opens the handshake with its own key.
    Initiator {
        /// Names the key on the responder.
        key_id: KeyId,
        /// The key.
        psk: Psk,
    },
    /// Answers handshakes with the key the initiator's id names.
    Responder {
        /// Key ids and their keys.
        keys: SecureKeys,
    },
    /// The handshake already happened (an accepting runtime ran it to read the
    /// first HELLO); later transports come the same way
    /// ([`crate::link::Session::reconnect_established`]).
    Established(Established),
}

impl core::fmt::Debug for SecureRole {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SecureRole::Initiator { key_id, .. } => f
                .debug_struct("Initiator")
                .field("key_id", key_id)
                .finish_non_exhaustive(),
            SecureRole::Responder { keys } => {
                f.debug_struct("Responder").field("keys", keys).finish()
            }
            SecureRole::Established(e) => f.debug_tuple("Established").field(e).finish(),
        }
    }
}

/// Counters of the authenticated mode's inbound side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecureStats {
    /// Sealed frames opened.
    pub frames_opened: u64,
    /// Frames that failed their tag.
    pub dropped_tampered: u64,
    /// Frames whose counter was seen before.
    pub dropped_replayed: u64,
    /// Frames older than the replay window.
    pub dropped_too_old: u64,
    /// Frames too short or undecodable, and plain frames where sealed ones belong.
    pub dropped_malformed: u64,
    /// Completed handshakes.
    pub handshakes: u64,
}

impl SecureStats {
    /// Frames refused for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_tampered
            + self.dropped_replayed
            + self.dropped_too_old
            + self.dropped_malformed
    }
}

impl SecureError {
    /// True for faults of one frame (dropped on the serial framing), false for
    /// faults of the handshake or the session (always fatal).
    pub fn is_frame_fault(&self) -> bool {
        matches!(
            self,
            SecureError::Tampered
                | SecureError::Replayed
                | SecureError::TooOld
                | SecureError::Malformed { .. }
                | SecureError::Unexpected { .. }
        )
    }
}

/// What the inbound side asks of the outbound side.
#[derive(Debug)]
pub enum SecureOutput {
    /// Send this handshake frame as it is (unsealed), ahead of everything.
    Send(Bytes),
    /// The handshake completed: seal every later frame with this.
    Ready(Sealer),
}

/// What became of an inbound frame.
#[derive(Debug)]
pub enum Inbound {
    /// A protocol frame, opened: decode it.
    Frame(Bytes),
    /// A handshake frame, handled.
    Consumed,
}

/// The authenticated mode's state on one link's inbound side: handshake, opener,
/// who the peer is, and the session's resume secret.
#[derive(Debug)]
pub struct SecureLink {
    role: SecureRole,
    handshake: Option<Handshake>,
    opener: Option<Opener>,
    established: Option<Established>,
    /// Responder: the last opening answered and its answer, to answer a repeat.
    last_exchange: Option<(Bytes, Bytes)>,
    resend_at: Option<Instant>,
    out: VecDeque<SecureOutput>,
    stats: SecureStats,
    /// From the session's first handshake.
    resume_secret: Option<[u8; 32]>,
    session_peer: Option<KeyId>,
}

impl SecureLink {
    /// The inbound state of a link playing `role`; call [`SecureLink::start`] next.
    pub fn new(role: SecureRole) -> SecureLink {
        SecureLink {
            role,
            handshake: None,
            opener: None,
            established: None,
            last_exchange: None,
            resend_at: None,
            out: VecDeque::new(),
            stats: SecureStats::default(),
            resume_secret: None,
            session_peer: None,
        }
    }

    /// Starts the handshake on a new transport: the initiator's opening, or nothing
    /// (the responder waits), or the keys at once ([`SecureRole::Established`]).
    pub fn start(&mut self, now: Instant) -> Result<(), SecureError> {
        self.handshake = None;
        self.opener = None;
        self.established = None;
        self.last_exchange = None;
        self.resend_at = None;
        match &self.role {
            SecureRole::Initiator { key_id, psk } => {
                let handshake = Handshake::initiate(key_id, psk)?;
                self.out
                    .push_back(SecureOutput::Send(handshake.first_message().clone()));
                self.handshake = Some(handshake);
                self.resend_at = Some(now + HANDSHAKE_RESEND);
            }
            SecureRole::Responder { .. } => {}
            SecureRole::Established(established) => {
                let established = established.clone();
                self.last_exchange = established.exchange().cloned();
                self.install(established);
                // A later transport must come with its own handshake.
                self.role = SecureRole::Responder {
                    keys: SecureKeys::new(),
                };
            }
        }
        Ok(())
    }

    /// A new transport whose handshake the runtime already ran.
    pub fn start_established(&mut self, established: Established) {
        self.handshake = None;
        self.last_exchange = established.exchange().cloned();
        self.resend_at = None;
        self.install(established);
    }

    fn install(&mut self, established: Established) {
        let (sealer, opener) = established.channel();
        self.out.push_back(SecureOutput::Ready(sealer));
        self.opener = Some(opener);
        if self.resume_secret.is_none() {
            self.resume_secret = Some(established.resume_secret());
            self.session_peer = Some(established.key_id().clone());
        }
        self.stats.handshakes += 1;
        self.established = Some(established);
    }

    /// True once this transport's handshake completed.
    pub fn is_open(&self) -> bool {
        self.opener.is_some()
    }

    /// The authenticated peer of this transport.
    pub fn peer(&self) -> Option<&KeyId> {
        self.established.as_ref().map(Established::key_id)
    }

    /// The peer the session's first handshake authenticated.
    pub fn session_peer(&self) -> Option<&KeyId> {
        self.session_peer.as_ref()
    }

    /// The session's resume secret (from its first handshake).
    pub fn resume_secret(&self) -> Option<[u8; 32]> {
        self.resume_secret
    }

    /// The proof to put in our HELLO for session `session_id`.
    pub fn resume_proof(&self, session_id: u64) -> Option<[u8; RESUME_PROOF_LEN]> {
        let secret = self.resume_secret.as_ref()?;
        let established = self.established.as_ref()?;
        Some(resume_proof(
            secret,
            session_id,
            established.handshake_hash(),
        ))
    }

    /// Checks the peer's HELLO resuming its session `session_id`: same peer as the
    /// session's first handshake, and a valid proof of the session's secret.
    pub fn check_resume(
        &self,
        session_id: u64,
        proof: Option<&[u8; RESUME_PROOF_LEN]>,
    ) -> Result<(), SecureError> {
        if self.peer() != self.session_peer.as_ref() {
            return Err(SecureError::ResumeRefused);
        }
        match (proof, self.resume_proof(session_id)) {
            (Some(theirs), Some(expected)) if handshake::proofs_match(theirs, &expected) => Ok(()),
            _ => Err(SecureError::ResumeRefused),
        }
    }

    /// Counters.
    pub fn stats(&self) -> &SecureStats {
        &self.stats
    }

    /// The next request for the outbound side.
    pub fn poll_output(&mut self) -> Option<SecureOutput> {
        self.out.pop_front()
    }

    /// When the initiator sends its opening again.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.resend_at
    }

    /// Time passed: resends the opening if it is still unanswered.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (Some(due), Some(handshake)) = (self.resend_at, self.handshake.as_ref()) else {
            return;
        };
        if now >= due {
            self.out
                .push_back(SecureOutput::Send(handshake.first_message().clone()));
            self.resend_at = Some(now + HANDSHAKE_RESEND);
        }
    }

    /// One frame from the framing: a handshake frame is handled, a sealed frame
    /// opened. Errors say what was wrong; [`SecureError::is_frame_fault`] tells
    /// which of them a lossy line may just drop.
    pub fn handle(&mut self, frame: Bytes) -> Result<Inbound, SecureError> {
        if handshake::is_handshake_frame(&frame) {
            return self.handle_handshake(frame);
        }
        if let Some(opener) = self.opener.as_mut() {
            return opener.open(&frame, &mut self.stats).map(Inbound::Frame);
        }
        // A plain frame before the keys: a downgrade, a refusal, or noise.
        let error = match Envelope::decode(frame) {
            Ok(Envelope {
                frame: Frame::Hello(_),
                ..
            }) => SecureError::NotAuthenticated,
            Ok(Envelope {
                frame: Frame::GoAway(goaway),
                ..
            }) if self.handshake.is_some() => SecureError::Rejected(goaway.code),
            _ => SecureError::Unexpected {
                what: "a plain frame before the handshake completed",
            },
        };
        self.stats.dropped_malformed += 1;
        Err(error)
    }

    fn handle_handshake(&mut self, frame: Bytes) -> Result<Inbound, SecureError> {
        if let Some(handshake) = self.handshake.take() {
            if !Handshake::is_reply(&frame) {
                self.handshake = Some(handshake);
                return Err(SecureError::Unexpected {
                    what: "a handshake opening sent to the initiator",
                });
            }
            let established = handshake.finish(&frame)?;
            self.resend_at = None;
            self.install(established);
            return Ok(Inbound::Consumed);
        }
        if self.is_open() {
            if let Some((opening, answer)) = &self.last_exchange {
                if *opening == frame {
                    // Our answer was lost: the same opening gets the same answer.
                    self.out.push_back(SecureOutput::Send(answer.clone()));
                    return Ok(Inbound::Consumed);
                }
            }
            if Handshake::is_reply(&frame) {
                // A repeated answer (we sent our opening twice): nothing new.
                return Ok(Inbound::Consumed);
            }
            return Err(SecureError::Unexpected {
                what: "a handshake frame after the handshake",
            });
        }
        let SecureRole::Responder { keys } = &self.role else {
            return Err(SecureError::Unexpected {
                what: "a handshake frame on an established link",
            });
        };
        let (answer, established) = handshake::respond(keys, &frame)?;
        self.out.push_back(SecureOutput::Send(answer.clone()));
        self.last_exchange = Some((frame, answer));
        self.install(established);
        Ok(Inbound::Consumed)
    }
}

#[cfg(test)]
mod tests;
