//! HELLO: the first frame each side sends; negotiates version, stream-id parity,
//! limits and (later) session resumption (ARCHITECTURE.md, "HELLO").
//!
//! `'N' 'C' | version:varint | (tag:varint | len:varint | value…)*`
//!
//! Parameters are tag-length-value so a newer peer can add some: unknown tags are
//! skipped, a missing tag means its default.

use super::reader::Reader;
use crate::error::DecodeError;
use crate::varint;
use bytes::BufMut;

/// The two magic bytes that open every HELLO.
pub const MAGIC: [u8; 2] = *b"NC";

/// The protocol version this build speaks.
pub const VERSION: u64 = 1;

/// Most parameters a HELLO may carry (known and unknown together).
const MAX_PARAMS: usize = 32;

/// Longest value of one parameter.
const MAX_PARAM_LEN: u64 = 64;

mod tag {
    pub const NONCE: u64 = 1;
    pub const MAX_FRAME_LEN: u64 = 2;
    pub const STREAM_WINDOW: u64 = 3;
    pub const LINK_WINDOW: u64 = 4;
    pub const FEATURES: u64 = 5;
    pub const SESSION: u64 = 6;
    pub const RESUME_PROOF: u64 = 7;
}

/// Bytes of a [`Hello::resume_proof`].
pub const RESUME_PROOF_LEN: usize = 16;

/// Feature bits a side offers in [`Hello::features`].
pub mod features {
    /// Link-layer reliability (sequence numbers, ACK, retransmission).
    pub const RELIABLE: u64 = 1 << 0;
}

/// Session identity and resume point, for reconnecting without losing messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionResume {
    /// Random id chosen by the side when its session began.
    pub id: u64,
    /// Count of reliable frames received in order from the peer so far.
    pub received: u64,
}

/// Handshake parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version.
    pub version: u64,
    /// Random value; the side with the larger nonce allocates odd stream ids.
    pub nonce: u64,
    /// Largest frame this side accepts (before framing).
    pub max_frame_len: u64,
    /// Initial per-stream receive window this side grants.
    pub stream_window: u64,
    /// Initial link-wide receive window this side grants.
    pub link_window: u64,
    /// Offered features ([`features`]).
    pub features: u64,
    /// Present when this side has a session to resume.
    pub session: Option<SessionResume>,
    /// Authenticated mode: a MAC over the session id, keyed by the session's resume
    /// secret and bound to this transport's handshake, proving the sender holds the
    /// session's keys (a stranger who learned only the id cannot resume it).
    pub resume_proof: Option<[u8; RESUME_PROOF_LEN]>,
}

impl Hello {
    /// A HELLO of this version with the given nonce and default parameters.
    pub fn new(nonce: u64) -> Hello {
        Hello {
            version: VERSION,
            nonce,
            max_frame_len: crate::config::DEFAULT_MAX_FRAME_LEN as u64,
            stream_window: crate::config::DEFAULT_STREAM_WINDOW,
            link_window: crate::config::DEFAULT_LINK_WINDOW,
            features: 0,
            session: None,
            resume_proof: None,
        }
    }

    fn put_param(dst: &mut impl BufMut, tag: u64, value: u64) {
        varint::put(dst, tag);
        varint::put(dst, varint::encoded_len(value) as u64);
        varint::put(dst, value);
    }

    fn param_len(tag: u64, value: u64) -> usize {
        let len = varint::encoded_len(value);
        varint::encoded_len(tag) + varint::encoded_len(len as u64) + len
    }

    fn params(&self) -> [(u64, u64); 5] {
        [
            (tag::NONCE, self.nonce),
            (tag::MAX_FRAME_LEN, self.max_frame_len),
            (tag::STREAM_WINDOW, self.stream_window),
            (tag::LINK_WINDOW, self.link_window),
            (tag::FEATURES, self.features),
        ]
    }

    pub(crate) fn encode_head(&self, dst: &mut impl BufMut) {
        dst.put_slice(&MAGIC);
        varint::put(dst, self.version);
        for (tag, value) in self.params() {
            Self::put_param(dst, tag, value);
        }
        if let Some(session) = self.session {
            varint::put(dst, tag::SESSION);
            varint::put(dst, 8 + varint::encoded_len(session.received) as u64);
            dst.put_u64_le(session.id);
            varint::put(dst, session.received);
        }
        if let Some(proof) = &self.resume_proof {
            varint::put(dst, tag::RESUME_PROOF);
            varint::put(dst, RESUME_PROOF_LEN as u64);
            dst.put_slice(proof);
        }
    }

    pub(crate) fn head_len(&self) -> usize {
        let mut len = MAGIC.len() + varint::encoded_len(self.version);
        for (tag, value) in self.params() {
            len += Self::param_len(tag, value);
        }
        if let Some(session) = self.session {
            let value_len = 8 + varint::encoded_len(session.received);
            len += varint::encoded_len(tag::SESSION)
                + varint::encoded_len(value_len as u64)
                + value_len;
        }
        if self.resume_proof.is_some() {
            len += varint::encoded_len(tag::RESUME_PROOF) + 1 + RESUME_PROOF_LEN;
        }
        len
    }

    pub(crate) fn decode(r: &mut Reader) -> Result<Self, DecodeError> {
        let magic = [r.u8("hello.magic")?, r.u8("hello.magic")?];
        if magic != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        let mut hello = Hello::new(0);
        hello.version = r.varint("hello.version")?;
        let mut count = 0;
        while r.remaining() > 0 {
            count += 1;
            if count > MAX_PARAMS {
                return Err(DecodeError::TooManyEntries {
                    field: "hello.params",
                    count: count as u64,
                    max: MAX_PARAMS as u64,
                });
            }
            let tag = r.varint("hello.tag")?;
            let len = r.len("hello.value", MAX_PARAM_LEN)?;
            let value = r.bytes(len, "hello.value")?;
            let mut inner = Reader::new(value);
            let field = match tag {
                tag::NONCE => &mut hello.nonce,
                tag::MAX_FRAME_LEN => &mut hello.max_frame_len,
                tag::STREAM_WINDOW => &mut hello.stream_window,
                tag::LINK_WINDOW => &mut hello.link_window,
                tag::FEATURES => &mut hello.features,
                tag::SESSION => {
                    let id_bytes = inner.bytes(8, "hello.session.id")?;
                    let mut id = [0u8; 8];
                    id.copy_from_slice(&id_bytes);
                    let received = inner.varint("hello.session.received")?;
                    inner.finish("HELLO session")?;
                    hello.session = Some(SessionResume {
                        id: u64::from_le_bytes(id),
                        received,
                    });
                    continue;
                }
                tag::RESUME_PROOF => {
                    let bytes = inner.bytes(RESUME_PROOF_LEN, "hello.resume_proof")?;
                    inner.finish("HELLO resume proof")?;
                    let mut proof = [0u8; RESUME_PROOF_LEN];
                    proof.copy_from_slice(&bytes);
                    hello.resume_proof = Some(proof);
                    continue;
                }
                _ => continue, // a newer peer's parameter: ignored by design
            };
            *field = inner.varint("hello.value")?;
            inner.finish("HELLO parameter")?;
        }
        Ok(hello)
    }
}

impl From<Hello> for super::Frame {
    fn from(f: Hello) -> Self {
        super::Frame::Hello(f)
    }
}
